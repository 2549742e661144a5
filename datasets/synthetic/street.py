"""The layout of one street, sampled before anything is drawn: lanes, both sides' cross-sections, sunlight,
and the frontages (buildings, tree lines, walls, fences, open fields) along each side."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .canvas import Canvas
from .ids import ID

SIDES = (-1.0, 1.0)  # left, right: the sign of X on that side


@dataclass(frozen=True)
class Side:
    """The cross-section of one side of the street, in metres from the road centre line outwards."""

    edge: float  # the road's edge
    park: float  # width of the parking lane (0: none)
    park_lid: int  # what the parking lane is labelled as
    rail: float  # width of a rail bed beside the road (0: none)
    verge: float  # width of a verge between road and sidewalk
    walk: float  # sidewalk width
    outer: float  # where the frontages start


@dataclass(frozen=True)
class Frontage:
    """A stretch of one side between depths z0 and z1, and what lies beyond its sidewalk."""

    kind: str  # building, vegetation, wall, fence or open
    z0: float
    z1: float
    setback: float
    verge: int  # label id of the ground beyond the sidewalk
    verge_col: np.ndarray
    rng_seed: int  # its details are drawn from their own RNG, in whatever order the stretches are painted


@dataclass(frozen=True)
class Street:
    """Where everything is: the road's lanes, both sides' cross-sections and frontages, and the sunlight."""

    sunny: bool
    sun_strength: float
    sun_side: float  # which facades are lit
    n_lanes: int
    lane_w: float
    road_l: float
    road_r: float
    oncoming: int  # lanes [0, oncoming) drive towards the camera
    sides: dict[float, Side]
    crosswalk: float | None  # depth of a zebra crossing
    has_train: bool
    rail_side: float | None
    frontages: dict[float, list[Frontage]]

    @classmethod
    def sample(cls, cv: Canvas) -> Street:
        """Draw a street from the canvas's RNG, lit as the canvas's conditions say."""
        r = cv.rng
        sunny, sun_strength, sun_side = cv.cond.sun > 0, cv.cond.sun, cv.cond.sun_side
        n_lanes = int(r.choice([2, 2, 3, 4]))
        lane_w = r.uniform(2.9, 3.6)
        ego = n_lanes - 1 - int(r.random() < 0.35 and n_lanes > 2)
        road_l = -(ego + 0.5) * lane_w
        road_r = (n_lanes - ego - 0.5) * lane_w
        sides = {sgn: _sample_side(r, sgn, -road_l if sgn < 0 else road_r) for sgn in SIDES}
        crosswalk = r.uniform(8, 30) if r.random() < 0.3 else None
        has_train = r.random() < 0.15
        rail_side = -1.0 if sides[-1.0].rail > 0 else None
        frontages = {sgn: _plan_frontages(cv) for sgn in SIDES}
        return cls(sunny=sunny, sun_strength=sun_strength, sun_side=sun_side, n_lanes=n_lanes, lane_w=lane_w,
                   road_l=road_l, road_r=road_r, oncoming=n_lanes // 2, sides=sides, crosswalk=crosswalk,
                   has_train=has_train, rail_side=rail_side, frontages=frontages)

    def lane_centre(self, k: int) -> float:
        return self.road_l + (k + 0.5) * self.lane_w

    def curb(self, sgn: float) -> float:
        """|X| of the sidewalk's inner edge on side ``sgn``."""
        sd = self.sides[sgn]
        return sd.outer - sd.walk


def _sample_side(r: np.random.Generator, sgn: float, edge: float) -> Side:
    park = 2.3 if r.random() < 0.6 else 0.0
    park_lid = ID["parking"] if r.random() < 0.3 else ID["road"]
    rail = 3.4 if sgn < 0 and r.random() < 0.12 else 0.0
    verge = r.uniform(0.8, 2.5) if r.random() < 0.3 else 0.0
    walk = r.uniform(2.5, 6.0)
    return Side(edge=edge, park=park, park_lid=park_lid, rail=rail, verge=verge, walk=walk,
                outer=edge + park + rail + verge + walk)


def _plan_frontages(cv: Canvas) -> list[Frontage]:
    """Consecutive frontages of one side, from just behind the camera to beyond the skyline's depth."""
    r = cv.rng
    segs, z = [], r.uniform(-12.0, 0.0)
    while z < 220.0:
        length = r.uniform(10.0, 34.0)
        kind = r.choice(["building", "vegetation", "wall", "fence", "open"], p=[0.55, 0.17, 0.11, 0.11, 0.06])
        setback = 0.0 if r.random() < 0.7 else r.uniform(1.0, 5.0)
        verge = r.choice(["sidewalk", "terrain", "ground"], p=[0.5, 0.35, 0.15])
        if kind in ("vegetation", "open"):
            verge = "terrain" if r.random() < 0.75 else "ground"
        segs.append(Frontage(kind=str(kind), z0=z, z1=z + length, setback=setback, verge=ID[str(verge)],
                             verge_col=cv.colour(str(verge)), rng_seed=int(r.integers(1 << 31))))
        z += length
    return segs
