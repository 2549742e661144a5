"""The ground plane: road, parking lanes, rail beds, verges and sidewalks, with their markings and shadows.

Every ground pixel gets a material index (one of a handful of bands across the street, or what lies beyond
the sidewalk at that depth), so the whole ground is coloured and labelled by two table lookups.
"""
from __future__ import annotations

import math

import numpy as np

from .canvas import Canvas
from .ids import ID
from .street import SIDES, Street

_BANDS = 6  # per side: road | parking lane | rail bed | verge | sidewalk | beyond


def draw_ground(cv: Canvas, street: Street) -> None:
    row0 = int(min(max(math.floor(cv.y_h + 1.0), 0), cv.H))
    if row0 >= cv.H:
        return
    z = (cv.f * cv.h / np.maximum(cv.yc[row0:] - cv.y_h, 0.5))[:, None]  # depth per row
    X = (cv.xc[None, :] - cv.x_v) * (z / cv.f)
    left = X < 0
    d = np.abs(X)
    mat, mat_lid, mat_col, edges = _materials(cv, street, z, left, d)
    lid = np.asarray(mat_lid, np.uint8)[mat]
    is_road = lid == ID["road"]
    yellow = cv.rng.random() < cv.style.yellow_lines
    paint, centre = _markings(cv.rng, street, X, z, is_road, yellow)
    paint_level = min(cv.style.marking * cv.rng.uniform(0.88, 1.04), 0.97)
    mat = np.where(paint, len(mat_lid), mat)
    mat_col.append(np.full(3, paint_level, np.float32))
    if yellow:
        mat = np.where(centre, len(mat_col), mat)
        mat_col.append(np.asarray([0.95, 0.78, 0.18], np.float32) * np.float32(paint_level))
    factor = _brightness(cv, street, X, z, left, d, lid, is_road, edges)
    if cv.rng.random() < cv.style.cobbles:
        _cobbles(factor, X, z, is_road & ~paint)
    if street.sunny:
        _street_shadow(cv, street, X, row0)
    cv.img[:, row0:] = np.asarray(mat_col, np.float32).T[:, mat] * factor
    cv.lab[row0:] = lid
    cv.dep[row0:] = z


def _materials(cv: Canvas, street: Street, z: np.ndarray, left: np.ndarray, d: np.ndarray):
    """(material index per pixel, label id per material, colour per material, band edges per side).

    The lateral bands come first, then each side's frontage verges: the "beyond" band of a side becomes
    the verge of whichever frontage covers that depth.
    """
    road_c = cv.colour("road")
    mat_lid, mat_col, edges = [], [], {}
    for sgn in SIDES:
        sd = street.sides[sgn]
        edges[sgn] = np.asarray([sd.edge, sd.edge + sd.park, sd.edge + sd.park + sd.rail,
                                 sd.outer - sd.walk, sd.outer], np.float32)
        park_c = road_c * 1.05 if sd.park_lid == ID["road"] else cv.colour("parking")
        mat_lid += [ID["road"], sd.park_lid, ID["rail track"], ID["terrain"], ID["sidewalk"], 0]
        mat_col += [road_c, park_c, cv.colour("rail track"), cv.colour("terrain"), cv.colour("sidewalk"),
                    np.zeros(3, np.float32)]
    mat = np.where(left, np.searchsorted(edges[-1.0], d, side="right"),
                   np.searchsorted(edges[1.0], d, side="right") + _BANDS)
    for sgn, beyond_band in ((-1.0, _BANDS - 1), (1.0, 2 * _BANDS - 1)):
        segs = street.frontages[sgn]
        zedges = np.asarray([sg.z1 for sg in segs], np.float32)
        seg_mat = len(mat_lid) + np.minimum(np.searchsorted(zedges, z), len(segs) - 1)
        mat = np.where(mat == beyond_band, seg_mat, mat)
        mat_lid += [sg.verge for sg in segs]
        mat_col += [sg.verge_col for sg in segs]
    return mat, mat_lid, mat_col, edges


def _markings(r: np.random.Generator, street: Street, X: np.ndarray, z: np.ndarray, is_road: np.ndarray,
              yellow: bool) -> tuple[np.ndarray, np.ndarray]:
    """Where road paint is: dashed lane lines, a solid centre line, optional edge lines and a crosswalk; with
    ``yellow``, the centre line is a double yellow line as on US roads. Returns (white paint, yellow paint)."""
    u = (X - street.road_l) * (1.0 / street.lane_w)
    k = np.rint(u)
    dash = ((z / 9.0 + 0.3) % 1.0) < 0.45
    line = (np.abs(u - k) < 0.075 / street.lane_w) & (k >= 1) & (k <= street.n_lanes - 1)
    centre = np.zeros(X.shape, bool)
    if yellow and 1 <= street.oncoming <= street.n_lanes - 1:
        off = np.abs(u - street.oncoming) * street.lane_w  # metres from the centre of the road's divide
        centre = (np.abs(off - 0.12) < 0.06) & is_road
        paint = line & dash & (k != street.oncoming)
    else:
        paint = line & (dash | (k == street.oncoming))
    if r.random() < 0.5:
        paint |= (np.abs(X - street.road_l - 0.3) < 0.07) | (np.abs(X - street.road_r + 0.3) < 0.07)
    if street.crosswalk is not None:
        cw = (z >= street.crosswalk) & (z < street.crosswalk + 4.0)
        paint |= cw & ((X - np.floor(X)) < 0.5)
    paint &= is_road
    return paint & ~centre, centre


def _cobbles(factor: np.ndarray, X: np.ndarray, z: np.ndarray, where: np.ndarray) -> None:
    """Setts: small stones in offset rows, their dark joints fading with distance as they get too fine to see."""
    row = np.floor(z * (1.0 / 0.14))
    shifted = X * (1.0 / 0.2) + 0.5 * (row % 2)
    joint = (((z * (1.0 / 0.14)) % 1.0) < 0.18) | ((shifted - np.floor(shifted)) < 0.14)
    near = np.broadcast_to(np.clip(1.0 - z / 20.0, 0.0, 1.0), X.shape)
    dark = joint & where
    factor[dark] *= 1.0 - 0.35 * near[dark]
    factor[where] *= 1.08  # granite setts are lighter than asphalt


def _brightness(cv: Canvas, street: Street, X: np.ndarray, z: np.ndarray, left: np.ndarray, d: np.ndarray,
                lid: np.ndarray, is_road: np.ndarray, edges: dict[float, np.ndarray]) -> np.ndarray:
    """Brightness factor of ground details: paving joints fading with distance, curb stones, bays, rails."""
    factor = np.ones(X.shape, np.float32)
    walk = lid == ID["sidewalk"]
    slab = cv.style.slab
    near = np.clip(1.0 - z / 30.0, 0.0, 1.0)
    gx = X * (1.0 / slab)
    grout = ((gx - np.floor(gx)) < 0.08) | (((z / slab) % 1.0) < 0.08)
    factor[walk & grout] = np.broadcast_to(1.0 - cv.style.grout * near, X.shape)[walk & grout]
    inner = np.where(left, edges[-1.0][3], edges[1.0][3])
    factor[walk & (d - inner < 0.2)] = 1.12
    bays = np.broadcast_to(((z / 5.5) % 1.0) < 0.04, X.shape)
    factor[(lid == ID["parking"]) & bays] = 1.6
    rail_x = None
    if street.sides[-1.0].rail > 0:
        rail_x = -(street.sides[-1.0].edge + street.sides[-1.0].park + 1.7)
    elif street.has_train:
        rail_x = street.lane_centre(0)  # tram rails embedded in the leftmost lane
    if rail_x is not None:
        rails = (np.abs(np.abs(X - rail_x) - 0.72) < 0.05) & (is_road | (lid == ID["rail track"]))
        factor[rails] = 0.55
    return factor


def _street_shadow(cv: Canvas, street: Street, X: np.ndarray, row0: int) -> None:
    """The facades on the sunny side cast a shadow across part of the street."""
    far_side = street.sides[-street.sun_side].outer
    low_sun = cv.cond.kind == "dusk"  # a low sun throws long shadows
    reach = cv.rng.uniform(0.5 if low_sun else 0.0, 1.0) * (far_side + street.sides[street.sun_side].outer)
    cv.shade[row0:][(-street.sun_side * X) > far_side - reach] = 1.0 - cv.style.shadow * street.sun_strength
