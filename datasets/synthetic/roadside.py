"""What lines the street: frontages of buildings, tree lines, walls and fences, and the far skyline."""
from __future__ import annotations

import numpy as np

from .canvas import Canvas, Ellipse
from .ids import ID
from .street import SIDES, Frontage, Street

_GROUND_FLOOR = 3.2  # metres: shop fronts below, storeys of windows above


def _hash01(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """A cheap deterministic pseudo-random value in [0, 1) per integer cell (the tint of each window)."""
    v = np.sin(i * 12.9898 + j * 78.233 + salt) * 43758.5453
    return v - np.floor(v)


class Facade:
    """A facade's colour in its plane coordinates (along, height): windows, floors, shop fronts."""

    def __init__(self, base: np.ndarray, lit: float, seg_rng: np.random.Generator, glass: float,
                 pitch: float) -> None:
        self.su = pitch * seg_rng.uniform(0.8, 1.25)  # window pitch along the street
        self.sv = seg_rng.uniform(2.8, 3.5)  # floor height
        self.wu, self.wv = seg_rng.uniform(0.35, 0.6), seg_rng.uniform(0.35, 0.55)
        dark = seg_rng.uniform([0.12, 0.14, 0.17], [0.3, 0.33, 0.38])
        mirror = seg_rng.uniform([0.45, 0.6, 0.72], [0.6, 0.74, 0.88])  # the game's glass reflects the sky
        self.glass = np.asarray(dark + glass * (mirror - dark), np.float32)
        self.shop = seg_rng.random() < 0.5
        self.shop_col = np.asarray(seg_rng.uniform([0.1, 0.1, 0.1], [0.35, 0.3, 0.28]), np.float32)
        self.salt = seg_rng.uniform(0, 100)
        self.base = (base * lit).astype(np.float32)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        base, ground_floor = self.base, _GROUND_FLOOR
        a, b = np.broadcast_arrays(a, b)
        au = a / self.su
        i = np.floor(au)
        bv = (b - ground_floor) / self.sv
        j = np.floor(bv)
        fv = bv - j
        win = ((np.abs(au - i - 0.5) < self.wu / 2) & (np.abs(fv - 0.45) < self.wv / 2)
               & (b > ground_floor + 0.4))
        out = np.empty((*a.shape, 3), np.float32)
        out[:] = base
        out[(b > ground_floor) & (fv < 0.06)] = base * 0.85
        if win.any():
            tint = 0.7 + 0.6 * _hash01(i[win], j[win], self.salt)
            out[win] = self.glass * tint[:, None].astype(np.float32)
        if self.shop:
            front = (b > 0.3) & (b < ground_floor - 0.5) & ((a / 5.0) % 1.0 < 0.8)
            out[front] = self.shop_col
        return out


class TreeLineTop:
    """The ragged top height of a tree line or hedge as a function of depth: three summed sines."""

    def __init__(self, base_h: float, seg_rng: np.random.Generator) -> None:
        self.base_h = base_h
        self.ph = seg_rng.uniform(0, 6.3, 3)
        self.fr = seg_rng.uniform(0.15, 0.6, 3)
        self.amp = seg_rng.uniform(0.5, 2.0)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        ph, fr = self.ph, self.fr
        return self.base_h + self.amp * (np.sin(z * fr[0] + ph[0]) + 0.6 * np.sin(z * fr[1] * 2.7 + ph[1])
                                         + 0.4 * np.sin(z * fr[2] * 6.1 + ph[2]))


class FenceColour:
    """Vertical bars with gaps, a top and bottom rail, and a post every few metres."""

    def __init__(self, bar: np.ndarray, pitch: float, post: float, hgt: float) -> None:
        self.bar, self.pitch, self.post, self.hgt = bar, pitch, post, hgt

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        gap = ((((a / self.pitch) % 1.0) > 0.45) & (b < self.hgt - 0.12) & (b > 0.1)
               & (((a / self.post) % 1.0) > 0.05))
        return np.where(gap[..., None], self.bar * 0.45, self.bar)


def draw_skyline(cv: Canvas) -> None:
    """Far blocks that close the street towards the vanishing point."""
    r = cv.rng
    X, zf = -70.0, r.uniform(160.0, 240.0)
    while X < 70.0:
        w = r.uniform(6.0, 22.0)
        if r.random() < 0.65:
            cv.front(zf, X, X + w, 0.0, r.uniform(10.0, 40.0), ID["building"], cv.colour("building") * 0.9)
        else:
            hgt = r.uniform(5.0, 14.0)
            cv.front(zf, X, X + w, 0.0, hgt, ID["vegetation"], cv.colour("vegetation"),
                     shape=Ellipse(X + w / 2, hgt * 0.45, w * 0.6, hgt * 0.55))
        X += w


def _far_first(item: tuple[float, float, int, Frontage]) -> tuple[float, float]:
    return -item[0], item[1]


def draw_frontages(cv: Canvas, street: Street) -> None:
    """Both sides' frontages, far to near (the left side first at equal depth)."""
    items = [(seg.z0, sgn, i, seg) for sgn in SIDES for i, seg in enumerate(street.frontages[sgn])]
    items.sort(key=_far_first)
    for _, sgn, i, seg in items:
        segs = street.frontages[sgn]
        nxt = segs[i + 1] if i + 1 < len(segs) else None
        _FrontagePainter(cv, street, sgn, seg, nxt).draw()


class _FrontagePainter:
    """Paints one frontage: its details come from the frontage's own RNG, its colours from the canvas's."""

    def __init__(self, cv: Canvas, street: Street, sgn: float, seg: Frontage, nxt: Frontage | None) -> None:
        self.cv, self.sgn, self.seg, self.nxt = cv, sgn, seg, nxt
        self.rng = np.random.default_rng(seg.rng_seed)
        self.X = sgn * (street.sides[sgn].outer + seg.setback)
        self.lit = 1.0 + 0.25 * street.sun_strength * (1 if sgn == street.sun_side else -1)

    def draw(self) -> None:
        kind, sgn, X, seg_rng = self.seg.kind, self.sgn, self.X, self.rng
        if kind == "building":
            self.building(X)
        elif kind == "vegetation":
            self.tree_line(X + sgn * seg_rng.uniform(0.0, 2.0), seg_rng.uniform(2.0, 11.0))
        elif kind == "open":
            if seg_rng.random() < 0.5:
                self.building(X + sgn * seg_rng.uniform(25.0, 50.0), 0.7)
            self.tree_line(X + sgn * seg_rng.uniform(8.0, 30.0), seg_rng.uniform(5.0, 12.0))
        else:
            self.wall_or_fence()

    def building(self, Xb: float, shrink: float = 1.0) -> None:
        cv, seg, nxt, lit = self.cv, self.seg, self.nxt, self.lit
        hgt = self.rng.uniform(12.0, 38.0) * shrink
        base = cv.colour("building")
        glass, pitch = cv.style.glass, cv.style.window_pitch
        cv.side(Xb, seg.z0, seg.z1, 0.0, hgt, ID["building"], Facade(base, lit, self.rng, glass, pitch))
        # the end wall is visible where the next frontage does not continue the facade
        if nxt is not None and (nxt.kind != "building" or nxt.setback > seg.setback + 0.5):
            lo, hi = sorted((Xb, Xb + self.sgn * 12.0))
            cv.front(seg.z1, lo, hi, 0.0, hgt, ID["building"], Facade(base * 0.9, lit, self.rng, glass, pitch))

    def tree_line(self, Xt: float, base_h: float) -> None:
        top = TreeLineTop(base_h, self.rng)
        self.cv.side(Xt, self.seg.z0, self.seg.z1, 0.0, top, ID["vegetation"], self.cv.colour("vegetation") * self.lit)

    def wall_or_fence(self) -> None:
        """A wall or fence at the sidewalk, with a building or trees further back."""
        cv, seg_rng, X, z0, z1 = self.cv, self.rng, self.X, self.seg.z0, self.seg.z1
        back = X + self.sgn * seg_rng.uniform(3.0, 9.0)
        if seg_rng.random() < 0.5:
            self.building(back)
        else:
            self.tree_line(back, seg_rng.uniform(4.0, 10.0))
        hgt = seg_rng.uniform(1.0, 2.6)
        if self.seg.kind == "wall":
            cv.side(X, z0, z1, 0.0, hgt, ID["wall"], cv.colour("wall") * self.lit)
        else:
            bar = cv.colour("fence") * self.lit
            pitch = seg_rng.uniform(0.12, 0.3)
            post = seg_rng.uniform(2.0, 3.0)
            cv.side(X, z0, z1, 0.0, hgt, ID["fence"], FenceColour(bar, pitch, post, hgt))
