"""The renderer: a pinhole camera over a flat ground plane, painting into colour, label and depth buffers.

World X is lateral (right positive), Y height above the ground, z depth. Every primitive is a planar polygon
rasterised inside its bounding box (vectorised numpy) and painted back to front. Primitives take a colour
and an optional shape as functions of their own plane coordinates ``(a, b)``, so one rectangle can carry
windows, lamps or a wheel without being split into many small paints.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .conditions import Conditions
from .style import AUTUMN, JITTER, Style, palette

Colour = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]
Shape = Callable[[np.ndarray, np.ndarray], np.ndarray] | None


def span(a: float, b: float, n: int) -> tuple[int, int]:
    """Pixel range [i0, i1) whose centres lie in [min(a, b), max(a, b)), clipped to [0, n)."""
    if b < a:
        a, b = b, a
    i0 = math.ceil(a - 0.5) if a > -1e6 else 0
    i1 = math.ceil(b - 0.5) if b < 1e6 else n
    return max(i0, 0), min(i1, n)


@dataclass(frozen=True)
class Ellipse:
    """The inside of an axis-aligned ellipse (plane coordinates)."""

    cx: float
    cy: float
    rx: float
    ry: float

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((a - self.cx) / self.rx) ** 2 + ((b - self.cy) / self.ry) ** 2 < 1.0


class Stroke:
    """A thick line from p to q of half-width r (plane coordinates): limbs and frame tubes."""

    def __init__(self, p: tuple[float, float], q: tuple[float, float], r: float) -> None:
        self.px, self.py = p
        self.dx, self.dy = q[0] - self.px, q[1] - self.py
        self.ll = self.dx * self.dx + self.dy * self.dy + 1e-9
        self.r = r

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        px, py, dx, dy = self.px, self.py, self.dx, self.dy
        t = np.clip(((a - px) * dx + (b - py) * dy) / self.ll, 0.0, 1.0)
        return (a - px - t * dx) ** 2 + (b - py - t * dy) ** 2 < self.r * self.r


@dataclass(frozen=True)
class Ring:
    """A wheel rim: inside the circle of radius r around (cx, cy) and outside the one of radius r_in."""

    cx: float
    cy: float
    r: float
    r_in: float

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((((a - self.cx) / self.r) ** 2 + ((b - self.cy) / self.r) ** 2 < 1.0)
                & (((a - self.cx) / self.r_in) ** 2 + ((b - self.cy) / self.r_in) ** 2 > 1.0))


@dataclass(frozen=True)
class Triangle:
    """An upright triangle: above ``bottom`` and less than ``slope * (apex - b)`` from the centre line ``cx``."""

    cx: float
    bottom: float
    apex: float
    slope: float

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (b > self.bottom) & (np.abs(a - self.cx) < (self.apex - b) * self.slope)


class Canvas:
    """One image's camera and conditions (sampled from ``rng``) and its colour, label id, depth and
    ground-shade buffers."""

    def __init__(self, height: int, width: int, style: Style, rng: np.random.Generator):
        self.H, self.W, self.style, self.rng = height, width, style, rng
        self.f = width * rng.uniform(0.95, 1.05)
        self.y_h = height * (style.horizon + rng.normal(0.0, 0.015))
        self.x_v = width * (0.5 + rng.normal(0.0, 0.03))
        self.h = style.cam_height * rng.uniform(0.92, 1.08)
        # planar (3, H, W): the per-pixel colour pipeline of the finishing pass runs on long contiguous rows
        self.img = np.zeros((3, height, width), np.float32)
        self.lab = np.zeros((height, width), np.uint8)
        self.dep = np.zeros((height, width), np.float32)
        self.shade = np.ones((height, width), np.float32)
        self.yc = np.arange(height, dtype=np.float32) + 0.5
        self.xc = np.arange(width, dtype=np.float32) + 0.5
        self.px = width / 512.0  # one "reference pixel" at this resolution
        self.cond = Conditions.sample(style, rng)

    def colour(self, name: str, jitter: float = 1.0, k: int | None = None) -> np.ndarray:
        """An RGB colour (0..1) of class ``name`` in this style: palette entry ``k`` (else a random one)."""
        pal = palette(name, self.style.material)
        base = pal[self.rng.integers(len(pal)) if k is None else k % len(pal)]
        c = base + self.rng.normal(0.0, JITTER.get(name, 8) * jitter, 3)
        if self.cond.autumn > 0 and name in AUTUMN:
            turned = AUTUMN[name][self.rng.integers(len(AUTUMN[name]))]
            c += (self.cond.autumn * self.rng.uniform(0.6, 1.2)) * (turned - c)
        return np.maximum(np.minimum(c * (1.0 / 255.0), 1.0), 0.01).astype(np.float32)

    def paint(self, y0, y1, x0, x1, mask, lid, colour, a, b, depth) -> None:
        """Write label ``lid``, ``colour`` and ``depth`` into the box [y0, y1) x [x0, x1) where ``mask`` holds."""
        if callable(colour):
            colour = colour(a, b)
        colour = np.asarray(colour, np.float32)
        sl = (slice(y0, y1), slice(x0, x1))
        shape = (y1 - y0, x1 - x0)
        if mask is None:
            self.lab[sl] = lid
            self.img[:, y0:y1, x0:x1] = np.moveaxis(colour, -1, 0) if colour.ndim == 3 else colour[:, None, None]
            self.dep[sl] = depth
            return
        if mask.shape != shape:
            mask = np.broadcast_to(mask, shape)
        idx = np.nonzero(mask)
        if idx[0].size == 0:
            return
        self.lab[sl][idx] = lid
        if colour.ndim == 3:
            if colour.shape[:2] != shape:
                colour = np.broadcast_to(colour, (*shape, 3))
            colour = colour[idx]
        self.img[:, y0:y1, x0:x1][:, idx[0], idx[1]] = colour.T if colour.ndim == 2 else colour[:, None]
        if np.ndim(depth):
            depth = np.broadcast_to(depth, shape)[idx]
        self.dep[sl][idx] = depth

    def front(self, z: float, X0: float, X1: float, Y0: float, Y1: float, lid: int,
              colour: Colour | list[tuple[Shape, Colour]], shape: Shape = None, min_px: float = 0.0) -> None:
        """A rectangle [X0, X1] x [Y0, Y1] facing the camera at depth z; ``shape(X, Y)`` cuts it.

        ``colour`` may be a list of parts ``(shape or None, colour)`` painted in order inside the rectangle:
        one paint for a whole person, sign or traffic light instead of one per part.
        """
        if z <= 0.2:
            return
        f, h = self.f, self.h
        if min_px and (X1 - X0) * f / z < min_px:
            c, half = (X0 + X1) / 2, 0.5 * min_px * z / f
            X0, X1 = c - half, c + half
        x0, x1 = span(self.x_v + f * X0 / z, self.x_v + f * X1 / z, self.W)
        y0, y1 = span(self.y_h + f * (h - Y1) / z, self.y_h + f * (h - Y0) / z, self.H)
        if x0 >= x1 or y0 >= y1:
            return
        a = ((self.xc[x0:x1] - self.x_v) * (z / f))[None, :]
        b = (h - (self.yc[y0:y1] - self.y_h) * (z / f))[:, None]
        if isinstance(colour, list):
            mask, col = _compose(colour, a, b)
            self.paint(y0, y1, x0, x1, mask, lid, col, a, b, z)
            return
        mask = None if shape is None else shape(a, b)
        self.paint(y0, y1, x0, x1, mask, lid, colour, a, b, z)

    def side(self, Xs: float, z0: float, z1: float, Y0: float, Y1: float | Callable, lid: int,
             colour: Colour, shape: Shape = None) -> None:
        """A vertical plane at lateral position Xs spanning depths [z0, z1]; plane coordinates (z, Y).

        ``Y1`` may be a function of depth (ragged tops of hedges and tree lines).
        """
        z0 = max(z0, 0.3)
        if abs(Xs) < 1e-3 or z1 <= z0:
            return
        f, h = self.f, self.h
        x0, x1 = span(self.x_v + f * Xs / z0, self.x_v + f * Xs / z1, self.W)
        if x0 >= x1:
            return
        dx = self.xc[x0:x1] - self.x_v
        with np.errstate(divide="ignore", invalid="ignore"):
            z = f * Xs / dx
        valid = (z >= z0) & (z <= z1)
        if not valid.any():
            return
        top = Y1(z) if callable(Y1) else np.full_like(z, Y1)
        zv = z[valid]
        y0, y1 = span(float(np.min(self.y_h + f * (h - top[valid]) / zv)),
                      float(np.max(self.y_h + f * (h - Y0) / zv)), self.H)
        if y0 >= y1:
            return
        a = np.where(valid, z, 1.0)[None, :]
        b = h - (self.yc[y0:y1, None] - self.y_h) * a / f
        mask = valid[None, :] & (b >= Y0) & (b < top[None, :])
        if shape is not None:
            mask &= shape(a, b)
        self.paint(y0, y1, x0, x1, mask, lid, colour, a, b, a)

    def top(self, Y: float, X0: float, X1: float, z0: float, z1: float, lid: int, colour: Colour) -> None:
        """A horizontal rectangle at height Y (< camera height), seen from above; plane coordinates (X, z)."""
        f, h = self.f, self.h
        z0 = max(z0, 0.3)
        if Y >= h - 0.02 or z1 <= z0:
            return
        y0, y1 = span(self.y_h + f * (h - Y) / z1, self.y_h + f * (h - Y) / z0, self.H)
        xs = [self.x_v + f * X / z for X in (X0, X1) for z in (z0, z1)]
        x0, x1 = span(min(xs), max(xs), self.W)
        if x0 >= x1 or y0 >= y1:
            return
        z = (f * (h - Y) / (self.yc[y0:y1] - self.y_h))[:, None]
        a = (self.xc[x0:x1] - self.x_v)[None, :] * z / f
        mask = (a >= X0) & (a < X1) & (z >= z0) & (z < z1)
        self.paint(y0, y1, x0, x1, mask, lid, colour, a, z, z)

    def ground_shade(self, X0: float, X1: float, z0: float, z1: float, factor: float) -> None:
        """Darken the ground under a footprint (contact shadows of vehicles); the finishing pass applies it."""
        f, h = self.f, self.h
        z0 = max(z0, 0.3)
        y0, y1 = span(self.y_h + f * h / z1, self.y_h + f * h / z0, self.H)
        xs = [self.x_v + f * X / z for X in (X0, X1) for z in (z0, z1)]
        x0, x1 = span(min(xs), max(xs), self.W)
        if x0 >= x1 or y0 >= y1:
            return
        z = (f * h / (self.yc[y0:y1] - self.y_h))[:, None]
        a = (self.xc[x0:x1] - self.x_v)[None, :] * z / f
        mask = (a >= X0) & (a < X1)
        self.shade[y0:y1, x0:x1][mask] *= factor

    def box(self, X0: float, X1: float, z0: float, z1: float, Y0: float, Y1: float, lid: int,
            colour: Colour, side_colour: Colour | None = None, top_colour: Colour | None = None) -> None:
        """An axis-aligned box: the faces the camera sees (top, inner side, the face at z0)."""
        if isinstance(colour, np.ndarray):
            side_colour = colour * 0.8 if side_colour is None else side_colour
            top_colour = np.minimum(colour * 1.1, 1.0) if top_colour is None else top_colour
        if top_colour is not None:
            self.top(Y1, X0, X1, z0, z1, lid, top_colour)
        if side_colour is not None:
            if X0 > 0:
                self.side(X0, z0, z1, Y0, Y1, lid, side_colour)
            elif X1 < 0:
                self.side(X1, z0, z1, Y0, Y1, lid, side_colour)
        self.front(z0, X0, X1, Y0, Y1, lid, colour)


def _compose(parts: list[tuple[Shape, Colour]], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, per-pixel colour) of parts painted in order; a part without a shape fills the whole rectangle."""
    a, b = np.broadcast_arrays(a, b)
    mask = np.zeros(a.shape, bool)
    col = np.empty((*a.shape, 3), np.float32)
    for part_shape, part_colour in parts:
        if part_shape is None:
            mask[:] = True
            col[:] = part_colour
        else:
            m = part_shape(a, b)
            mask |= m
            col[m] = part_colour
    return mask, col
