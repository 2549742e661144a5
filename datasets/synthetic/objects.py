"""The things placed in a street: trees, poles with lights and signs, vehicles, people, clutter.

Each object draws its random parameters when it is created, so the placement order fixes the RNG order,
and paints later with ``draw(cv)``, once every object is placed and they can be sorted far to near. The
bridge alone draws its colour and height when painted: moving those draws would change every world that
has a bridge.
"""
from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from .canvas import Canvas, Colour, Ellipse, Ring, Shape, Stroke, Triangle
from .ids import ID

_TYRE = np.asarray([0.07, 0.07, 0.08], np.float32)
_WHEEL = np.asarray([0.07] * 3, np.float32)
_SIGN_WHITE = np.asarray([0.9, 0.9, 0.88], np.float32)
_LAMPS = np.asarray([[0.9, 0.15, 0.1], [0.95, 0.7, 0.1], [0.2, 0.9, 0.4]], np.float32)  # red, amber, green


class Drawable(Protocol):
    def draw(self, cv: Canvas) -> None: ...


class Tree:
    """A street tree: a trunk and a crown of a few overlapping leaf blobs."""

    def __init__(self, cv: Canvas, X: float, z: float) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.X, self.z, self.s = X, z, s
        self.trunk_h = trunk_h = r.uniform(2.0, 3.5) * s
        self.R = R = r.uniform(1.4, 2.8) * s
        blobs = [(X + r.normal(0, R * 0.45), trunk_h + R + r.normal(0, R * 0.3), R * r.uniform(0.6, 1.0),
                  r.uniform(0.75, 1.15)) for _ in range(int(r.integers(3, 6)))]
        leaf = cv.colour("vegetation")
        self.bark = cv.colour("vegetation", k=0) * np.asarray([0.9, 0.7, 0.6], np.float32)
        self.parts = [(Ellipse(bx, by, br, br * 0.9), leaf * tone) for bx, by, br, tone in blobs]
        self.top = max(by + br for _, by, br, _ in blobs)
        self.half = max(max(abs(bx - X) + br for bx, _, br, _ in blobs), 0.5)

    def draw(self, cv: Canvas) -> None:
        X, z, s = self.X, self.z, self.s
        cv.front(z, X - 0.14 * s, X + 0.14 * s, 0.0, self.trunk_h + self.R * 0.5, ID["vegetation"], self.bark,
                 min_px=1)
        cv.front(z, X - self.half, X + self.half, self.trunk_h * 0.5, self.top, ID["vegetation"], self.parts)


class Palm:
    """A palm: a tall thin trunk and a crown of long fronds drooping from its top."""

    def __init__(self, cv: Canvas, X: float, z: float) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.X, self.z, self.s = X, z, s
        self.h = h = r.uniform(6.0, 11.0) * s
        self.lean = r.normal(0.0, 0.25) * s
        leaf = cv.colour("vegetation")
        self.trunk = cv.colour("vegetation", k=0) * np.asarray([1.1, 0.85, 0.65], np.float32)
        top = (X + self.lean, h)
        self.parts: list[tuple[Shape, Colour]] = []
        n = int(r.integers(6, 10))
        for i in range(n):
            angle = math.pi * (i + r.uniform(0.0, 0.6)) / n  # fanned across the upper half-circle
            length = r.uniform(2.0, 3.2) * s
            tip = (top[0] + math.cos(angle) * length, h + math.sin(angle) * length * 0.5 - 0.6 * s)
            self.parts.append((Stroke(top, tip, 0.22 * s), leaf * np.float32(r.uniform(0.8, 1.15))))
        self.half = 3.4 * s + abs(self.lean)

    def draw(self, cv: Canvas) -> None:
        X, z, s, h = self.X, self.z, self.s, self.h
        lo, hi = sorted((X, X + self.lean))
        cv.front(z, lo - 0.13 * s, hi + 0.13 * s, 0.0, h, ID["vegetation"], self.trunk,
                 shape=Stroke((X, 0.0), (X + self.lean, h), 0.13 * s), min_px=1)
        cv.front(z, X - self.half, X + self.half, h - 2.5 * s, h + 2.0 * s, ID["vegetation"], self.parts)


class Pole:
    """A lamp, sign or traffic-light post: optionally a lamp arm, a traffic light (on a mast) and a sign."""

    def __init__(self, cv: Canvas, X: float, z: float, *, light: bool, sign: bool, short: bool = False,
                 mast: bool = False) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.X, self.z, self.s, self.light, self.sign, self.mast = X, z, s, light, sign, mast
        self.height = (r.uniform(2.4, 3.2) if short else r.uniform(4.5, 8.0)) * s
        self.metal = cv.colour("pole")
        self.inward = -1.0 if X > 0 else 1.0  # towards the road centre
        self.sign_kind = int(r.integers(4))
        self.sign_col = cv.colour("traffic sign", k=self.sign_kind)
        self.sign_back = r.random() < 0.2
        self.sign_y = (self.height - 0.5 * s) if short else r.uniform(2.2, 3.0) * s
        self.light_y = r.uniform(2.4, 3.4) * s
        self.lit = int(r.integers(3))
        self.lamp_arm = not short and not light and r.random() < 0.6
        self.housing = cv.colour("traffic light")
        self.mast_len = r.uniform(3.0, 6.0)

    def draw(self, cv: Canvas) -> None:
        X, z, s, height, metal, inward = self.X, self.z, self.s, self.height, self.metal, self.inward
        width = 0.14 * s
        cv.front(z, X - width / 2, X + width / 2, 0.0, height, ID["pole"], metal, min_px=1)
        if self.lamp_arm:
            x1 = X + inward * 1.5 * s
            cv.front(z, min(X, x1), max(X, x1), height - 0.12 * s, height, ID["pole"], metal, min_px=1)
            cv.front(z, min(x1, x1 - inward * 0.5 * s), max(x1, x1 - inward * 0.5 * s), height - 0.3 * s,
                     height - 0.05 * s, ID["pole"], metal * 0.7, min_px=1)
        if self.light:
            if self.mast:
                x1 = X + inward * self.mast_len
                cv.front(z, min(X, x1), max(X, x1), height - 0.15 * s, height, ID["pole"], metal, min_px=1)
                self._draw_light(cv, x1, height - 0.6 * s, z - 0.05)
            else:
                self._draw_light(cv, X + inward * 0.25 * s, self.light_y, z - 0.05)
        if self.sign:
            self._draw_sign(cv)

    def _draw_light(self, cv: Canvas, cx: float, cy: float, zz: float) -> None:
        w, h = 0.34 * self.s, 0.9 * self.s
        if w * cv.f / zz < 3.0:  # too small for lamps to show
            cv.front(zz, cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2, ID["traffic light"], self.housing, min_px=1)
            return
        parts = [(None, self.housing)]
        for i in range(3):
            ly = cy + h / 3 - i * h / 3
            parts.append((Ellipse(cx, ly, w / 3, w / 3), _LAMPS[i] if i == self.lit else _LAMPS[i] * 0.25))
        cv.front(zz, cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2, ID["traffic light"], parts)

    def _draw_sign(self, cv: Canvas) -> None:
        cx, cy, rr = self.X + self.inward * 0.05, self.sign_y, 0.32 * self.s
        zz = self.z - 0.06
        box = (zz, cx - rr, cx + rr, cy - rr, cy + rr, ID["traffic sign"])
        if self.sign_back:
            cv.front(*box, self.metal * 1.1, shape=Ellipse(cx, cy, rr, rr))
        elif self.sign_kind in (0, 3):  # red-rimmed circle / triangle with a white face
            if self.sign_kind == 0:
                outer, inner = Ellipse(cx, cy, rr, rr), Ellipse(cx, cy, rr * 0.72, rr * 0.72)
            else:
                outer = Triangle(cx, cy - rr, cy + rr, 0.62)
                inner = Triangle(cx, cy - rr * 0.62, cy + rr * 0.55, 0.58)
            red = np.asarray([0.8, 0.12, 0.12], np.float32) + self.sign_col * 0.1
            cv.front(*box, [(outer, red), (inner, _SIGN_WHITE)])
        elif self.sign_kind == 1:  # blue disc
            cv.front(*box, self.sign_col, shape=Ellipse(cx, cy, rr, rr))
        else:  # rectangular plate
            cv.front(zz, cx - rr, cx + rr, cy - rr * 0.7, cy + rr * 0.7, ID["traffic sign"], self.sign_col,
                     min_px=1)


class Car:
    """A car seen from behind (``away``) or from the front: body, glasshouse, lamps, plate, wheels."""

    def __init__(self, cv: Canvas, Xc: float, z: float, *, away: bool) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.Xc, self.z, self.s = Xc, z, s
        if r.random() < cv.style.suv:  # a tall, wide SUV or pickup
            self.w, self.L = r.uniform(1.9, 2.1) * s, r.uniform(4.7, 5.5) * s
            self.hb, self.hc = r.uniform(1.2, 1.4) * s, r.uniform(1.75, 1.95) * s
        else:
            self.w, self.L = r.uniform(1.7, 1.95) * s, r.uniform(4.0, 4.9) * s
            self.hb, self.hc = r.uniform(0.95, 1.15) * s, r.uniform(1.4, 1.6) * s
        self.paint = cv.colour("car")
        # glossy paint reflects the bright sky along the body's upper edge and on the roof
        self.shine = self.paint + (np.float32(0.95) - self.paint) * np.float32(0.5 * cv.style.gloss)
        self.glass = np.asarray([0.16, 0.19, 0.23], np.float32) + r.uniform(0.0, 0.08)
        self.lamp = np.asarray([0.75, 0.1, 0.1] if away else [0.95, 0.93, 0.85], np.float32)
        self.plate = np.asarray([0.85, 0.85, 0.82], np.float32)
        self.wheel_r = 0.33 * s

    def _rear(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s, hb, Xc, w = self.s, self.hb, self.Xc, self.w
        a, b = np.broadcast_arrays(a, b)
        out = np.empty((*a.shape, 3), np.float32)
        out[:] = self.paint
        out[(b > hb - 0.1 * s) & (b < hb - 0.02 * s)] = self.shine
        out[(b > hb - 0.3 * s) & (b < hb - 0.12 * s) & (np.abs(a - Xc) > w / 2 - 0.38 * s)] = self.lamp
        out[(b > 0.45 * s) & (b < 0.57 * s) & (np.abs(a - Xc) < 0.26 * s)] = self.plate
        return out

    def _wheels(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s, z, L, wheel_r = self.s, self.z, self.L, self.wheel_r
        return (((a - z - 0.85 * s) ** 2 + (b - wheel_r) ** 2 < wheel_r ** 2)
                | ((a - z - L + 0.85 * s) ** 2 + (b - wheel_r) ** 2 < wheel_r ** 2))

    def _tyres_below(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(a - self.Xc) > self.w / 2 - 0.3 * self.s

    def draw(self, cv: Canvas) -> None:
        s, z, L, paint, glass = self.s, self.z, self.L, self.paint, self.glass
        X0, X1 = self.Xc - self.w / 2, self.Xc + self.w / 2
        cv.ground_shade(X0 - 0.1, X1 + 0.1, z - 0.1, z + L, 0.45)
        inset = 0.14 * s
        cv.box(X0 + inset, X1 - inset, z + 1.0 * s, z + L - 1.2 * s, self.hb, self.hc, ID["car"], glass,
               side_colour=glass * 0.9, top_colour=self.shine)
        detailed = self.hc * cv.f / z > 10.0  # level of detail: far cars skip lamps and wheels
        cv.box(X0, X1, z, z + L, 0.3 * s, self.hb, ID["car"], self._rear if detailed else paint,
               side_colour=paint * 0.8, top_colour=self.shine)
        if not detailed:
            return
        if X0 > 0 or X1 < 0:
            Xs = X0 if X0 > 0 else X1
            cv.side(Xs - math.copysign(0.01, Xs), z, z + L, 0.0, 2 * self.wheel_r, ID["car"], _TYRE,
                    shape=self._wheels)
        cv.front(z + 0.3, X0 + 0.05, X1 - 0.05, 0.0, 0.32 * s, ID["car"], _TYRE, shape=self._tyres_below)


class Van:
    """A parked caravan or trailer: a tall box with a window band."""

    def __init__(self, cv: Canvas, Xc: float, z: float, kind: str) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.Xc, self.z, self.s, self.kind = Xc, z, s, kind
        self.w, self.L, self.hgt = 2.2 * s, r.uniform(5.0, 6.5) * s, r.uniform(2.3, 2.8) * s
        self.body = cv.colour(kind)

    def draw(self, cv: Canvas) -> None:
        Xc, z, s, w, L, hgt, body, lid = self.Xc, self.z, self.s, self.w, self.L, self.hgt, self.body, ID[self.kind]
        cv.ground_shade(Xc - w / 2, Xc + w / 2, z, z + L, 0.5)
        cv.box(Xc - w / 2, Xc + w / 2, z, z + L, 0.35 * s, hgt, lid, body)
        cv.front(z - 0.01, Xc - w / 2 + 0.3, Xc + w / 2 - 0.3, hgt * 0.55, hgt * 0.8, lid, body * 0.4)


class Truck:
    """A lorry: a cab and a cargo box, the cab nearest the camera when it comes towards it."""

    def __init__(self, cv: Canvas, Xc: float, z: float, *, away: bool) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.Xc, self.z, self.s, self.away = Xc, z, s, away
        self.w, self.L, self.hgt = r.uniform(2.3, 2.55) * s, r.uniform(6.0, 9.0) * s, r.uniform(3.0, 3.9) * s
        self.cargo = cv.colour("truck")
        self.cab = cv.colour("truck")

    def draw(self, cv: Canvas) -> None:
        Xc, z, s, L, hgt, cargo, cab = self.Xc, self.z, self.s, self.L, self.hgt, self.cargo, self.cab
        X0, X1 = Xc - self.w / 2, Xc + self.w / 2
        lid = ID["truck"]
        cv.ground_shade(X0, X1, z, z + L + 2.2 * s, 0.45)
        if self.away:
            cv.box(X0 + 0.05, X1 - 0.05, z + L, z + L + 2.2 * s, 0.5 * s, 2.9 * s, lid, cab)
            cv.box(X0, X1, z, z + L, 0.9 * s, hgt, lid, cargo)
            cv.front(z - 0.01, X0, X1, 0.35 * s, 0.9 * s, lid, np.asarray([0.1, 0.1, 0.1], np.float32))
            cv.front(z - 0.02, Xc - 0.03, Xc + 0.03, 1.0 * s, hgt - 0.1, lid, cargo * 0.6, min_px=1)
        else:
            cv.box(X0, X1, z + 2.2 * s, z + L + 2.2 * s, 0.9 * s, hgt, lid, cargo)
            cv.box(X0 + 0.05, X1 - 0.05, z, z + 2.2 * s, 0.5 * s, 2.9 * s, lid, cab)
            cv.front(z - 0.01, X0 + 0.2, X1 - 0.2, 1.7 * s, 2.6 * s, lid, np.asarray([0.15, 0.18, 0.22], np.float32))
        for xw in (X0 + 0.05, X1 - 0.35 * s):
            cv.front(z + 0.4, xw, xw + 0.3 * s, 0.0, 0.5 * s, lid, _WHEEL)


class Bus:
    """A city bus: a long box with a window band along its side and a destination sign."""

    GLASS = np.asarray([0.14, 0.17, 0.21], np.float32)

    def __init__(self, cv: Canvas, Xc: float, z: float, *, away: bool) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.Xc, self.z, self.s, self.away = Xc, z, s, away
        self.w, self.L, self.hgt = 2.55 * s, r.uniform(11.0, 13.5) * s, r.uniform(3.0, 3.3) * s
        self.body = cv.colour("bus")

    def _side_colour(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = self.s
        win = (b > 1.15 * s) & (b < 2.5 * s) & ((((a - self.z) / (1.7 * s)) % 1.0) > 0.12)
        return np.where(win[..., None], self.GLASS, self.body * 0.85)

    def _end_colour(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s, w = self.s, self.w
        win = (b > (1.5 if self.away else 1.0) * s) & (b < 2.7 * s) & (np.abs(a - self.Xc) < w / 2 - 0.15)
        out = np.where(win[..., None], self.GLASS, self.body)
        sign_band = (b > 2.75 * s) & (b < 3.0 * s) & (np.abs(a - self.Xc) < w / 2 - 0.4)
        return np.where(sign_band[..., None], np.asarray([0.95, 0.6, 0.1], np.float32), out)

    def draw(self, cv: Canvas) -> None:
        z, s, L, hgt = self.z, self.s, self.L, self.hgt
        X0, X1 = self.Xc - self.w / 2, self.Xc + self.w / 2
        cv.ground_shade(X0, X1, z, z + L, 0.45)
        cv.top(hgt, X0, X1, z, z + L, ID["bus"], np.minimum(self.body * 1.1, 1.0))
        if X0 > 0 or X1 < 0:
            cv.side(X0 if X0 > 0 else X1, z, z + L, 0.35 * s, hgt, ID["bus"], self._side_colour)
        cv.front(z, X0, X1, 0.35 * s, hgt, ID["bus"], self._end_colour)
        for xw in (X0 + 0.05, X1 - 0.35 * s):
            cv.front(z + 0.5, xw, xw + 0.3 * s, 0.0, 0.4 * s, ID["bus"], _WHEEL)


class Train:
    """A tram or train: livery below a white roof band, windows, and a pantograph."""

    WHITE = np.asarray([0.88, 0.88, 0.86], np.float32)
    GLASS = np.asarray([0.13, 0.16, 0.2], np.float32)

    def __init__(self, cv: Canvas, Xc: float, z: float) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.Xc, self.z, self.s = Xc, z, s
        self.w, self.L, self.hgt = 2.5 * s, r.uniform(25.0, 35.0) * s, 3.3 * s
        self.livery = cv.colour("train")

    def _side_colour(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = self.s
        win = (b > 1.3 * s) & (b < 2.5 * s) & ((((a - self.z) / (2.2 * s)) % 1.0) > 0.15)
        out = np.where((b > 2.6 * s)[..., None], self.WHITE, self.livery)
        return np.where(win[..., None], self.GLASS, out) * 0.85

    def _end_colour(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = self.s
        win = (b > 1.4 * s) & (b < 2.7 * s) & (np.abs(a - self.Xc) < self.w / 2 - 0.2)
        return np.where(win[..., None], self.GLASS, np.where((b > 2.7 * s)[..., None], self.WHITE, self.livery))

    def draw(self, cv: Canvas) -> None:
        Xc, z, s, L, hgt = self.Xc, self.z, self.s, self.L, self.hgt
        X0, X1 = Xc - self.w / 2, Xc + self.w / 2
        cv.ground_shade(X0, X1, z, z + L, 0.5)
        cv.top(hgt, X0, X1, z, z + L, ID["train"], self.WHITE * 0.9)
        if X0 > 0 or X1 < 0:
            cv.side(X0 if X0 > 0 else X1, z, z + L, 0.4 * s, hgt, ID["train"], self._side_colour)
        cv.front(z, X0, X1, 0.4 * s, hgt, ID["train"], self._end_colour)
        cv.front(z + 2.0, Xc - 0.03, Xc + 0.03, hgt, hgt + 1.0 * s, ID["train"], self.GLASS, min_px=1)
        cv.front(z + 2.0, Xc - 0.5, Xc + 0.5, hgt + 0.9 * s, hgt + 1.0 * s, ID["train"], self.GLASS, min_px=1)


def _figure_colours(cv: Canvas, name: str) -> dict[str, np.ndarray]:
    r = cv.rng
    skin = np.asarray([0.78, 0.62, 0.5] if r.random() < 0.7 else [0.5, 0.36, 0.28], np.float32)
    hair = np.asarray([0.15, 0.11, 0.08] if r.random() < 0.6 else [0.55, 0.45, 0.3], np.float32)
    return {"legs": cv.colour(name), "top": cv.colour(name), "head": skin, "hair": hair}


def _figure_parts(r: np.random.Generator, X: float, ph: float, seated: bool) -> list[tuple[Shape, str]]:
    """Body parts as (shape, part) in the frontal plane of a person of height ph at lateral X."""
    stride = r.uniform(-0.12, 0.12) * ph
    parts: list[tuple[Shape, str]] = []
    if not seated:
        parts += [(Stroke((X - 0.05 * ph, 0.47 * ph), (X - 0.05 * ph + stride, 0.03 * ph), 0.045 * ph), "legs"),
                  (Stroke((X + 0.05 * ph, 0.47 * ph), (X + 0.05 * ph - stride, 0.03 * ph), 0.045 * ph), "legs")]
        torso_y0 = 0.45 * ph
    else:
        parts += [(Stroke((X - 0.08 * ph, 0.56 * ph), (X + 0.12 * ph, 0.3 * ph), 0.05 * ph), "legs")]
        torso_y0 = 0.55 * ph
    parts += [(Stroke((X, torso_y0 + 0.05 * ph), (X, 0.78 * ph), 0.1 * ph), "top"),
              (Stroke((X - 0.12 * ph, 0.78 * ph), (X - 0.14 * ph, 0.5 * ph), 0.035 * ph), "top"),
              (Stroke((X + 0.12 * ph, 0.78 * ph), (X + 0.14 * ph + (0.1 * ph if seated else 0), 0.5 * ph),
                      0.035 * ph), "top"),
              (Ellipse(X, 0.9 * ph, 0.065 * ph, 0.08 * ph), "head")]
    return parts


def _draw_figure(cv: Canvas, X: float, z: float, ph: float, lid: int, cols: dict[str, np.ndarray],
                 parts: list[tuple[Shape, str]]) -> None:
    cv.front(z, X - 0.3 * ph, X + 0.3 * ph, 0.0, ph, lid, [(shape, cols[part]) for shape, part in parts])


class Person:
    """A pedestrian, mostly adult-sized, some children."""

    def __init__(self, cv: Canvas, X: float, z: float) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.X, self.z = X, z
        self.ph = ph = r.normal(1.72, 0.08) * s if r.random() < 0.9 else r.uniform(1.0, 1.4) * s
        self.cols = _figure_colours(cv, "person")
        self.parts = _figure_parts(r, X, ph, seated=False)
        self.parts.append((Ellipse(X, 0.95 * ph, 0.07 * ph, 0.045 * ph), "hair"))

    def draw(self, cv: Canvas) -> None:
        _draw_figure(cv, self.X, self.z, self.ph, ID["person"], self.cols, self.parts)


class TwoWheeler:
    """A bicycle or motorcycle in side view, parked or with a seated rider (labelled rider) on it."""

    def __init__(self, cv: Canvas, X: float, z: float, *, motor: bool, ridden: bool) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.X, self.z, self.s, self.ridden = X, z, s, ridden
        self.d = d = 1.0 if r.random() < 0.5 else -1.0  # facing direction in the image plane
        self.lid = ID["motorcycle"] if motor else ID["bicycle"]
        frame = cv.colour("motorcycle" if motor else "bicycle")
        self.R = (0.32 if motor else 0.34) * s
        self.half = (0.7 if motor else 0.52) * s
        self.ph = ph = r.normal(1.72, 0.07) * s
        self.cols = _figure_colours(cv, "rider")
        self.cols["hair"] = cv.colour("rider")  # a helmet
        self.rider = _figure_parts(r, X - d * 0.12 * s, ph, seated=True)
        self.rider.append((Ellipse(X - d * 0.12 * s, 0.93 * ph, 0.075 * ph, 0.065 * ph), "hair"))
        self.seat = 0.55 * ph
        self.parts = self._vehicle_parts(frame, motor)

    def _vehicle_parts(self, frame: np.ndarray, motor: bool) -> list[tuple[Shape, Colour]]:
        X, s, d, R, half, seat = self.X, self.s, self.d, self.R, self.half, self.seat
        tyre = np.asarray([0.06, 0.06, 0.07], np.float32)
        rear, front_ = X - d * half, X + d * half
        parts: list[tuple[Shape, Colour]] = []
        for cx in (rear, front_):
            if motor:
                parts += [(Ellipse(cx, R, R, R), tyre), (Ellipse(cx, R, R * 0.4, R * 0.4), frame * 0.6 + 0.3)]
            else:
                parts.append((Ring(cx, R, R, R * 0.82), tyre))
        tw = 0.07 * s if motor else 0.03 * s
        hub, saddle, bar = (X + d * 0.1 * s, R), (X - d * 0.1 * s, seat - 0.1 * s), (front_ - d * 0.1 * s, seat)
        for p, q in (((rear, R), saddle), (saddle, bar), ((rear, R), hub), (hub, saddle), (hub, bar),
                     ((front_ - d * 0.1 * s, seat + 0.1 * s), (front_, R))):
            parts.append((Stroke(p, q, tw), frame))
        if motor:
            parts.append((Ellipse(X, (R * 0.8 + seat) / 2, half * 0.75, (seat - R * 0.8) / 2), frame))
        return parts

    def draw(self, cv: Canvas) -> None:
        X, z, s = self.X, self.z, self.s
        cv.front(z, X - self.half - self.R, X + self.half + self.R, 0.0, self.seat + 0.2 * s, self.lid, self.parts)
        if self.ridden:
            _draw_figure(cv, X - self.d * 0.12 * s, z - 0.05, self.ph, ID["rider"], self.cols, self.rider)


class Clutter:
    """A static (bins, boxes) or dynamic (carts) object on the sidewalk: a small box."""

    def __init__(self, cv: Canvas, X: float, z: float, kind: str) -> None:
        r, s = cv.rng, cv.style.obj_scale
        self.X, self.z, self.kind = X, z, kind
        self.w, self.hgt = r.uniform(0.4, 1.2) * s, r.uniform(0.6, 1.3) * s
        self.col = cv.colour(kind)

    def draw(self, cv: Canvas) -> None:
        X, z, w = self.X, self.z, self.w
        cv.box(X - w / 2, X + w / 2, z, z + w, 0.0, self.hgt, ID[self.kind], self.col)


def _rail_posts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a / 2.0) % 1.0) < 0.06


class GuardRailPiece:
    """One piece of a guard rail along the road: a beam over posts every 2 m."""

    def __init__(self, X: float, z0: float, z1: float, col: np.ndarray) -> None:
        self.X, self.z0, self.z1, self.col = X, z0, z1, col

    def draw(self, cv: Canvas) -> None:
        cv.side(self.X, self.z0, self.z1, 0.45, 0.8, ID["guard rail"], self.col)
        cv.side(self.X, self.z0, self.z1, 0.0, 0.45, ID["guard rail"], self.col * 0.7, shape=_rail_posts)


class Bridge:
    """A bridge across the street at depth zb, on a pier beside each road edge."""

    def __init__(self, zb: float, road_l: float, road_r: float) -> None:
        self.zb, self.road_l, self.road_r = zb, road_l, road_r

    def draw(self, cv: Canvas) -> None:
        zb = self.zb
        col = cv.colour("bridge")
        lo, thick = cv.rng.uniform(5.0, 7.0), cv.rng.uniform(1.2, 2.2)
        cv.front(zb, -80.0, 80.0, lo, lo + thick, ID["bridge"], col)
        for Xp in (self.road_l - 1.0, self.road_r + 1.0):
            cv.front(zb + 0.1, Xp - 0.6, Xp + 0.6, 0.0, lo, ID["bridge"], col * 0.85)
