"""Where the objects of a street stand: along the curbs, in the parking and traffic lanes, on the sidewalks.

``plan_objects`` returns ``(depth, object)`` pairs; the scene paints them far to near. The planners run in
a fixed order, each drawing from the image's RNG, so that order is part of what a seed means.
"""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .objects import (Bridge, Bus, Car, Clutter, Drawable, GuardRailPiece, Palm, Person, Pole, Train, Tree,
                      Truck, TwoWheeler, Van)
from .street import SIDES, Street

Placed = list[tuple[float, Drawable]]


def plan_objects(cv: Canvas, street: Street) -> Placed:
    placed: Placed = []
    _trees(cv, street, placed)
    _posts(cv, street, placed)
    _traffic_lights(cv, street, placed)
    _parked(cv, street, placed)
    _traffic(cv, street, placed)
    _two_wheelers(cv, street, placed)
    _pedestrians(cv, street, placed)
    _fixtures(cv, street, placed)
    return placed


def _trees(cv: Canvas, street: Street, placed: Placed) -> None:
    """Street trees (or palms, in the style's share) along the sidewalk's curb edge, on some sides."""
    r = cv.rng
    for sgn in SIDES:
        if r.random() < 0.5:
            z = r.uniform(3.0, 12.0)
            step = r.uniform(7.0, 14.0)
            X = sgn * (street.curb(sgn) + r.uniform(0.5, 1.0))
            while z < 90.0:
                kind = Palm if r.random() < cv.style.palms else Tree
                placed.append((z, kind(cv, X, z)))
                z += step * r.uniform(0.8, 1.2)


def _posts(cv: Canvas, street: Street, placed: Placed) -> None:
    """Street lamps and sign posts near the curb, at regular steps, and a few short sign posts."""
    r = cv.rng
    for sgn in SIDES:
        Xc = sgn * (street.curb(sgn) + 0.4)
        z = r.uniform(4.0, 20.0)
        step = r.uniform(14.0, 30.0)
        while z < 110.0:
            placed.append((z, Pole(cv, Xc, z, light=r.random() < 0.15, sign=r.random() < 0.45)))
            z += step
        for _ in range(int(r.poisson(1.2))):
            zs = r.uniform(5.0, 45.0)
            placed.append((zs, Pole(cv, Xc + sgn * r.uniform(0.0, 1.0), zs, light=False, sign=True, short=True)))


def _traffic_lights(cv: Canvas, street: Street, placed: Placed) -> None:
    """Sometimes an intersection: a traffic light on each side, just beyond the crosswalk if there is one."""
    r = cv.rng
    if r.random() < 0.5:
        zi = street.crosswalk + 4.5 if street.crosswalk is not None else r.uniform(12.0, 40.0)
        for sgn in SIDES:
            Xc = sgn * (street.curb(sgn) + 0.5)
            placed.append((zi, Pole(cv, Xc, zi, light=True, sign=r.random() < 0.5, mast=r.random() < 0.5)))


def _parked(cv: Canvas, street: Street, placed: Placed) -> None:
    """Parked cars (and rare caravans and trailers) in the parking lanes."""
    r, s = cv.rng, cv.style.obj_scale
    for sgn in SIDES:
        sd = street.sides[sgn]
        if sd.park <= 0:
            continue
        Xc = sgn * (sd.edge + sd.park / 2)
        z = r.uniform(3.0, 10.0)
        while z < 70.0:
            u = r.random()
            if u < 0.5:
                placed.append((z, Car(cv, Xc + r.normal(0, 0.15), z, away=r.random() < 0.8)))
                z += 4.6 * s + r.uniform(0.4, 2.0)
            elif u < 0.515 and z > 10.0:
                kind = "caravan" if r.random() < 0.5 else "trailer"
                placed.append((z, Van(cv, Xc, z, kind)))
                z += 6.5 * s
            else:
                z += r.uniform(3.0, 8.0)


def _traffic(cv: Canvas, street: Street, placed: Placed) -> None:
    """Moving cars, sometimes a truck or a bus, and a train on the rail bed or tram rails."""
    r = cv.rng
    for _ in range(int(r.poisson(2.2))):
        lane = int(r.integers(street.n_lanes))
        z = r.uniform(6.0, 70.0)
        placed.append((z, Car(cv, street.lane_centre(lane) + r.normal(0, 0.2), z, away=lane >= street.oncoming)))
    if r.random() < 0.18:
        lane = int(r.integers(street.n_lanes))
        z = r.uniform(12.0, 60.0)
        placed.append((z, Truck(cv, street.lane_centre(lane), z, away=lane >= street.oncoming)))
    if r.random() < 0.22:
        lane = int(r.integers(street.n_lanes))
        z = r.uniform(10.0, 45.0)
        placed.append((z, Bus(cv, street.lane_centre(lane), z, away=lane >= street.oncoming)))
    if street.has_train:
        if street.rail_side is not None:
            sd = street.sides[-1.0]
            Xc = -(sd.edge + sd.park + 1.7)
        else:
            Xc = street.lane_centre(0)
        z = r.uniform(12.0, 60.0)
        placed.append((z, Train(cv, Xc, z)))


def _two_wheelers(cv: Canvas, street: Street, placed: Placed) -> None:
    """Two-wheelers: mostly ridden along the road edge, and parked on the sidewalks."""
    r = cv.rng
    for _ in range(int(r.poisson(0.5))):
        sgn = 1.0 if r.random() < 0.7 else -1.0
        X = street.road_r - 0.8 if sgn > 0 else street.road_l + 0.8
        z = r.uniform(5.0, 35.0)
        placed.append((z, TwoWheeler(cv, X, z, motor=r.random() < 0.45, ridden=r.random() < 0.85)))
    for _ in range(int(r.poisson(2.0))):
        sgn = -1.0 if r.random() < 0.5 else 1.0
        X = sgn * (street.sides[sgn].outer - r.uniform(0.5, 1.5))
        z = r.uniform(5.0, 30.0)
        placed.append((z, TwoWheeler(cv, X, z, motor=r.random() < 0.25, ridden=False)))


def _pedestrians(cv: Canvas, street: Street, placed: Placed) -> None:
    """Pedestrians on the sidewalks, thinning out with distance, and some on the crosswalk."""
    r = cv.rng
    for _ in range(int(r.poisson(8.0))):
        sgn = -1.0 if r.random() < 0.5 else 1.0
        sd = street.sides[sgn]
        X = sgn * (sd.outer - r.uniform(0.3, sd.walk - 0.3))
        z = 3.0 + 42.0 * r.random() ** 1.5
        placed.append((z, Person(cv, X, z)))
    if street.crosswalk is not None and r.random() < 0.6:
        for _ in range(int(r.integers(1, 4))):
            z = street.crosswalk + r.uniform(0.5, 3.5)
            placed.append((z, Person(cv, r.uniform(street.road_l, street.road_r), z)))


def _fixtures(cv: Canvas, street: Street, placed: Placed) -> None:
    """Static clutter (bins, boxes), dynamic clutter (carts), sometimes a guard rail or a bridge."""
    r = cv.rng
    for _ in range(int(r.poisson(1.5))):
        sgn = -1.0 if r.random() < 0.5 else 1.0
        X = sgn * (street.sides[sgn].outer - r.uniform(0.3, 1.2))
        z = r.uniform(4.0, 40.0)
        placed.append((z, Clutter(cv, X, z, "static" if r.random() < 0.7 else "dynamic")))
    if r.random() < 0.15:
        sgn = -1.0 if r.random() < 0.5 else 1.0
        X = street.road_l - 0.3 if sgn < 0 else street.road_r + 0.3
        if street.sides[sgn].park > 0:
            X += sgn * street.sides[sgn].park
        # in short pieces, so each sorts between the objects in front of and behind it
        col = cv.colour("guard rail")
        for z0 in np.arange(2.0, 90.0, 5.0):
            placed.append((float(z0), GuardRailPiece(X, float(z0), float(z0) + 5.0, col)))
    if r.random() < 0.06:
        zb = r.uniform(40.0, 90.0)
        placed.append((zb, Bridge(zb, street.road_l, street.road_r)))
