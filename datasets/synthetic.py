"""The synthetic two-domain world: procedural street scenes written as a GTA5-like source and a Cityscapes-like target.

Real Cityscapes and GTA5 cannot be downloaded everywhere, yet every experiment must run end to end and the
tests need data with a genuine domain shift. This module draws street scenes in all 19 Cityscapes train
classes (plus void regions that map to ignore) and writes them in the real on-disk formats:

- ``OUT/GTA5/images/NNNNN.png`` (RGB) and ``OUT/GTA5/labels/NNNNN.png`` (P-mode, Cityscapes label ids, the
  Cityscapes palette), exactly like the original GTA5 release;
- ``OUT/Cityscapes/leftImg8bit/{train,val}/CITY/CITY_SEQ_FRAME_leftImg8bit.png`` and
  ``OUT/Cityscapes/gtFine/{train,val}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png`` (L-mode label ids), the
  official Cityscapes layout.

Both domains share one scene grammar (geometry, object placement, class semantics) so a model trained on one
transfers partly to the other; they differ by a *style* (per-class colours, texture strength, lighting, haze,
sensor noise and blur, camera height, horizon and object scale). ``shift`` interpolates the source style from
the target's (0: identical distributions) to the GTA-like one (1, the default); the target never changes.
Every image is drawn from its own RNG seeded with (seed, domain, split, index), so parallel generation is
byte-identical to serial.

Usage: ``python -m datasets.synthetic --out data/synthetic`` (reuses a world whose manifest matches).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import shutil
import struct
import sys
import time
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageFilter
from torchvision.datasets import Cityscapes as _TVCityscapes

from . import labels
from utils.errors import ConfigError, DatasetError, UserError

GENERATOR = "datasets.synthetic"  # the manifest's "generator" (not __name__, which is __main__ under -m)
GENERATOR_VERSION: int = 4
"""Bumped whenever the images a given seed produces change, so stale worlds are regenerated."""

TRAIN_CITIES: tuple[str, ...] = ("aachen", "bremen", "darmstadt", "hamburg")
VAL_CITIES: tuple[str, ...] = ("frankfurt", "lindau", "munster")
FRAME = 19  # Cityscapes annotates the 20th frame of each snippet: names end in _000019.

# The manifest fields that identify a world: ensure_world regenerates when any of them differs.
IDENTITY_KEYS: tuple[str, ...] = (
    "generator_version", "seed", "shift", "n_source", "n_train", "n_val", "source_size", "target_size",
)
DEFAULTS: dict[str, Any] = {
    "seed": 0, "shift": 1.0, "n_source": 400, "n_train": 300, "n_val": 100,
    "source_size": (264, 480), "target_size": (256, 512),
}
MAX_SHIFT = 2.0
MIN_SIZE = 32

_DOMAIN_CODE = {"source": 0, "target": 1}
_SPLIT_CODE = {"all": 0, "train": 1, "val": 2}

# ----------------------------------------------------------------------------------------------------------
# Label ids. The 19 classes are written through labels.TRAINID_TO_ID; void regions use real Cityscapes ids
# whose train id is ignore, looked up by name in the same torchvision table labels.py is built from.
# ----------------------------------------------------------------------------------------------------------
_TRAIN_ID = {name: i for i, name in enumerate(labels.CLASS_NAMES)}
_TABLE_ID = {c.name: c.id for c in _TVCityscapes.classes if 0 <= c.id < 256}
_VOID_NAMES = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground",
    "parking", "rail track", "guard rail", "bridge", "caravan", "trailer",
)


def _label_id(name: str) -> int:
    if name in _TRAIN_ID:
        return int(labels.TRAINID_TO_ID[_TRAIN_ID[name]])
    lid = _TABLE_ID[name]
    assert labels.ID_TO_TRAINID[lid] == labels.IGNORE_INDEX, name
    return lid


ID = {name: _label_id(name) for name in (*labels.CLASS_NAMES, *_VOID_NAMES)}

# ----------------------------------------------------------------------------------------------------------
# Appearance tables (RGB 0..255). Palettes give the target-domain (Cityscapes-like) look of each class; the
# source adds _SOURCE_OFFSET scaled by the style, on top of its global grading.
# ----------------------------------------------------------------------------------------------------------
_PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "road": ((98, 98, 104), (112, 110, 114), (86, 88, 94), (120, 116, 112)),
    "sidewalk": ((156, 146, 146), (140, 138, 140), (170, 160, 150), (150, 130, 128)),
    "building": ((168, 156, 138), (192, 186, 172), (124, 114, 104), (150, 96, 78), (206, 204, 198),
                 (112, 116, 122), (176, 150, 120)),
    "wall": ((172, 168, 158), (132, 124, 114), (150, 150, 146)),
    "fence": ((122, 116, 104), (92, 102, 92), (140, 130, 110)),
    "pole": ((112, 112, 112), (72, 82, 76), (136, 136, 132)),
    "traffic light": ((42, 42, 38), (58, 60, 56)),
    "traffic sign": ((200, 34, 34), (34, 74, 172), (232, 204, 46), (226, 226, 222)),
    "vegetation": ((70, 96, 46), (58, 84, 40), (86, 108, 52), (64, 92, 58)),
    "terrain": ((122, 134, 82), (136, 132, 90), (108, 126, 72)),
    "sky": ((132, 166, 204), (176, 192, 210), (206, 212, 218)),
    "person": ((40, 40, 46), (52, 62, 92), (150, 40, 44), (210, 206, 200), (96, 80, 64), (70, 90, 70)),
    "rider": ((36, 36, 42), (60, 66, 96), (176, 60, 40), (200, 196, 190)),
    "car": ((30, 30, 34), (212, 212, 212), (160, 164, 170), (98, 100, 106), (30, 42, 92), (150, 32, 32),
            (40, 80, 140), (120, 110, 90)),
    "truck": ((226, 226, 222), (176, 180, 184), (40, 70, 130), (150, 40, 36)),
    "bus": ((222, 214, 186), (200, 180, 60), (180, 40, 40), (226, 226, 226)),
    "train": ((196, 40, 40), (40, 90, 170), (224, 224, 216)),
    "motorcycle": ((34, 34, 38), (170, 30, 30), (30, 50, 120)),
    "bicycle": ((30, 30, 32), (110, 20, 30), (60, 70, 80)),
    # void regions (label ids that map to ignore)
    "ego vehicle": ((44, 46, 50), (70, 72, 78)),
    "parking": ((120, 116, 116), (104, 104, 108)),
    "rail track": ((112, 100, 86), (96, 90, 82)),
    "ground": ((132, 110, 84), (118, 104, 88)),
    "static": ((72, 88, 72), (96, 96, 100), (120, 96, 70)),
    "dynamic": ((60, 90, 60), (40, 60, 110), (140, 120, 60)),
    "guard rail": ((168, 170, 172),),
    "bridge": ((150, 146, 140), (126, 120, 114)),
    "caravan": ((226, 222, 206), (212, 206, 190)),
    "trailer": ((170, 170, 168), (120, 112, 100)),
}
_JITTER = {  # per-object colour standard deviation
    "road": 6, "sidewalk": 8, "building": 14, "wall": 10, "fence": 10, "pole": 8, "traffic light": 6,
    "traffic sign": 8, "vegetation": 9, "terrain": 10, "sky": 8, "person": 14, "rider": 14, "car": 12,
    "truck": 12, "bus": 10, "train": 10, "motorcycle": 12, "bicycle": 10,
}
# GTA-like source: warmer, more saturated materials, deeper blue sky, yellower foliage.
_SOURCE_OFFSET = {
    "road": (4, 0, -6), "sidewalk": (14, 6, -4), "building": (14, 4, -8), "wall": (12, 4, -6),
    "fence": (12, 4, -6), "pole": (-10, -8, -4), "traffic light": (8, 6, -6), "traffic sign": (10, 0, -6),
    "vegetation": (0, 14, -8), "terrain": (20, 16, -14), "sky": (-36, -8, 28), "person": (10, 2, -4),
    "rider": (12, 0, -6), "car": (8, 0, -6), "truck": (10, 4, -6), "bus": (12, 8, -10),
    "train": (12, 0, -8), "motorcycle": (12, 0, -4), "bicycle": (12, 0, -4),
}
_SOURCE_OFFSET_ARR = {k: np.asarray(v, np.float64) for k, v in _SOURCE_OFFSET.items()}
assert set(_TRAIN_ID) <= set(_PALETTES) and set(_TRAIN_ID) == set(_JITTER) == set(_SOURCE_OFFSET)

# Texture amplitude per class: fine grain (per pixel) and blotches (low frequency), before the style's gain.
_TEXTURE = {
    "road": (0.05, 0.06), "sidewalk": (0.04, 0.05), "building": (0.025, 0.06), "wall": (0.05, 0.09),
    "fence": (0.04, 0.05), "pole": (0.02, 0.02), "traffic light": (0.02, 0.0), "traffic sign": (0.015, 0.0),
    "vegetation": (0.2, 0.28), "terrain": (0.13, 0.16), "sky": (0.0, 0.0), "person": (0.03, 0.02),
    "rider": (0.03, 0.02), "car": (0.015, 0.02), "truck": (0.02, 0.03), "bus": (0.015, 0.03),
    "train": (0.015, 0.03), "motorcycle": (0.02, 0.02), "bicycle": (0.02, 0.0), "ground": (0.1, 0.12),
    "parking": (0.05, 0.06), "rail track": (0.14, 0.1), "static": (0.04, 0.04), "dynamic": (0.04, 0.04),
    "bridge": (0.05, 0.08), "guard rail": (0.02, 0.02),
}
_FINE_LUT = np.zeros(256, np.float32)
_BLOTCH_LUT = np.zeros(256, np.float32)
_GROUND_LUT = np.zeros(256, bool)
_GROUND_LUT[[ID[n] for n in ("road", "sidewalk", "terrain", "parking", "ground", "rail track")]] = True
for _name, (_fine, _blotch) in _TEXTURE.items():
    _FINE_LUT[ID[_name]], _BLOTCH_LUT[ID[_name]] = _fine, _blotch


@dataclass(frozen=True)
class Style:
    """Everything that differs between the domains. The source style is a blend target -> GTA by ``shift``."""

    horizon: float  # horizon row / image height
    cam_height: float  # metres
    obj_scale: float  # size multiplier of people, vehicles, poles, trees
    saturation: float
    contrast: float
    tint: tuple[float, float, float]
    brightness: float
    class_offset: float  # weight of _SOURCE_OFFSET
    texture: float  # texture amplitude gain
    sun: float  # probability of direct sunlight
    shadow: float  # darkness of cast shadows in sunlight
    haze: float  # aerial-perspective strength
    noise: float  # sensor noise sigma (8-bit units)
    blur: float  # optical blur (Gaussian sigma) in pixels at width 512
    bonnet: float  # ego-vehicle bonnet height / image height


TARGET_STYLE = Style(
    horizon=0.45, cam_height=1.3, obj_scale=1.0, saturation=0.8, contrast=0.9, tint=(0.97, 1.0, 1.05),
    brightness=0.95, class_offset=0.0, texture=1.0, sun=0.35, shadow=0.35, haze=0.35, noise=3.5, blur=0.8,
    bonnet=0.09,
)
GTA_STYLE = Style(
    horizon=0.40, cam_height=1.7, obj_scale=1.12, saturation=1.15, contrast=1.1, tint=(1.04, 1.0, 0.94),
    brightness=1.06, class_offset=1.0, texture=1.45, sun=0.8, shadow=0.5, haze=0.12, noise=1.0, blur=0.0,
    bonnet=0.04,
)


def domain_style(domain: str, shift: float = 1.0) -> Style:
    """The style of ``domain`` ("source" or "target"): the source lies ``shift`` of the way target -> GTA."""
    if domain == "target":
        return TARGET_STYLE
    if domain != "source":
        raise ConfigError(f"unknown domain {domain!r}: use 'source' or 'target'")
    values = {}
    for fld in fields(Style):
        a, b = getattr(TARGET_STYLE, fld.name), getattr(GTA_STYLE, fld.name)
        if isinstance(a, tuple):
            values[fld.name] = tuple(x + shift * (y - x) for x, y in zip(a, b))
        else:
            values[fld.name] = a + shift * (b - a)
    values["sun"] = min(max(values["sun"], 0.0), 1.0)
    for key in ("noise", "blur", "bonnet", "haze"):
        values[key] = max(values[key], 0.0)
    return Style(**values)


# ----------------------------------------------------------------------------------------------------------
# Renderer: a pinhole camera over a flat ground plane. World X is lateral (right positive), Y height above the
# ground, z depth. Every primitive is a planar polygon rasterised inside its bounding box (vectorised numpy),
# painted back to front into colour, label id and depth buffers.
# ----------------------------------------------------------------------------------------------------------
Colour = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]
Shape = Callable[[np.ndarray, np.ndarray], np.ndarray] | None


def _span(a: float, b: float, n: int) -> tuple[int, int]:
    """Pixel range [i0, i1) whose centres lie in [min(a, b), max(a, b)), clipped to [0, n)."""
    if b < a:
        a, b = b, a
    i0 = math.ceil(a - 0.5) if a > -1e6 else 0
    i1 = math.ceil(b - 0.5) if b < 1e6 else n
    return max(i0, 0), min(i1, n)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> Shape:
    return lambda a, b: ((a - cx) / rx) ** 2 + ((b - cy) / ry) ** 2 < 1.0


def _segment(p: tuple[float, float], q: tuple[float, float], r: float) -> Shape:
    """A thick line from p to q of half-width r (plane coordinates)."""
    px, py = p
    dx, dy = q[0] - px, q[1] - py
    ll = dx * dx + dy * dy + 1e-9

    def shape(a, b):
        t = np.clip(((a - px) * dx + (b - py) * dy) / ll, 0.0, 1.0)
        return (a - px - t * dx) ** 2 + (b - py - t * dy) ** 2 < r * r
    return shape


class _Canvas:
    def __init__(self, height: int, width: int, style: Style, rng: np.random.Generator):
        self.H, self.W, self.style, self.rng = height, width, style, rng
        self.f = width * rng.uniform(0.95, 1.05)
        self.y_h = height * (style.horizon + rng.normal(0.0, 0.015))
        self.x_v = width * (0.5 + rng.normal(0.0, 0.03))
        self.h = style.cam_height * rng.uniform(0.92, 1.08)
        # planar (3, H, W): the per-pixel colour pipeline in finish() runs on long contiguous rows
        self.img = np.zeros((3, height, width), np.float32)
        self.lab = np.zeros((height, width), np.uint8)
        self.dep = np.zeros((height, width), np.float32)
        self.shade = np.ones((height, width), np.float32)
        self.yc = np.arange(height, dtype=np.float32) + 0.5
        self.xc = np.arange(width, dtype=np.float32) + 0.5
        self.px = width / 512.0  # one "reference pixel" at this resolution

    # colours ------------------------------------------------------------------------------------------------
    def colour(self, name: str, jitter: float = 1.0, k: int | None = None) -> np.ndarray:
        pal = _PALETTES[name]
        base = np.asarray(pal[self.rng.integers(len(pal)) if k is None else k % len(pal)], np.float32)
        c = base + self.rng.normal(0.0, _JITTER.get(name, 8) * jitter, 3)
        if name in _SOURCE_OFFSET:
            c += self.style.class_offset * _SOURCE_OFFSET_ARR[name]
        return np.maximum(np.minimum(c * (1.0 / 255.0), 1.0), 0.01).astype(np.float32)

    # painting -----------------------------------------------------------------------------------------------
    def _paint(self, y0, y1, x0, x1, mask, lid, colour, a, b, depth) -> None:
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
        x0, x1 = _span(self.x_v + f * X0 / z, self.x_v + f * X1 / z, self.W)
        y0, y1 = _span(self.y_h + f * (h - Y1) / z, self.y_h + f * (h - Y0) / z, self.H)
        if x0 >= x1 or y0 >= y1:
            return
        a = ((self.xc[x0:x1] - self.x_v) * (z / f))[None, :]
        b = (h - (self.yc[y0:y1] - self.y_h) * (z / f))[:, None]
        if isinstance(colour, list):
            a, b = np.broadcast_arrays(a, b)
            mask = np.zeros(a.shape, bool)
            col = np.empty((*a.shape, 3), np.float32)
            for part_shape, part_colour in colour:
                if part_shape is None:
                    mask[:] = True
                    col[:] = part_colour
                else:
                    m = part_shape(a, b)
                    mask |= m
                    col[m] = part_colour
            self._paint(y0, y1, x0, x1, mask, lid, col, a, b, z)
            return
        mask = None if shape is None else shape(a, b)
        self._paint(y0, y1, x0, x1, mask, lid, colour, a, b, z)

    def side(self, Xs: float, z0: float, z1: float, Y0: float, Y1: float | Callable, lid: int,
             colour: Colour, shape: Shape = None) -> None:
        """A vertical plane at lateral position Xs spanning depths [z0, z1]; plane coordinates (z, Y).

        ``Y1`` may be a function of depth (ragged tops of hedges and tree lines).
        """
        z0 = max(z0, 0.3)
        if abs(Xs) < 1e-3 or z1 <= z0:
            return
        f, h = self.f, self.h
        x0, x1 = _span(self.x_v + f * Xs / z0, self.x_v + f * Xs / z1, self.W)
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
        y0, y1 = _span(float(np.min(self.y_h + f * (h - top[valid]) / zv)),
                       float(np.max(self.y_h + f * (h - Y0) / zv)), self.H)
        if y0 >= y1:
            return
        a = np.where(valid, z, 1.0)[None, :]
        b = h - (self.yc[y0:y1, None] - self.y_h) * a / f
        mask = valid[None, :] & (b >= Y0) & (b < top[None, :])
        if shape is not None:
            mask &= shape(a, b)
        self._paint(y0, y1, x0, x1, mask, lid, colour, a, b, a)

    def top(self, Y: float, X0: float, X1: float, z0: float, z1: float, lid: int, colour: Colour) -> None:
        """A horizontal rectangle at height Y (< camera height), seen from above; plane coordinates (X, z)."""
        f, h = self.f, self.h
        z0 = max(z0, 0.3)
        if Y >= h - 0.02 or z1 <= z0:
            return
        y0, y1 = _span(self.y_h + f * (h - Y) / z1, self.y_h + f * (h - Y) / z0, self.H)
        xs = [self.x_v + f * X / z for X in (X0, X1) for z in (z0, z1)]
        x0, x1 = _span(min(xs), max(xs), self.W)
        if x0 >= x1 or y0 >= y1:
            return
        z = (f * (h - Y) / (self.yc[y0:y1] - self.y_h))[:, None]
        a = (self.xc[x0:x1] - self.x_v)[None, :] * z / f
        mask = (a >= X0) & (a < X1) & (z >= z0) & (z < z1)
        self._paint(y0, y1, x0, x1, mask, lid, colour, a, z, z)

    def ground_shade(self, X0: float, X1: float, z0: float, z1: float, factor: float) -> None:
        """Darken the ground under a footprint (contact shadows of vehicles); finish() applies it to ground."""
        f, h = self.f, self.h
        z0 = max(z0, 0.3)
        y0, y1 = _span(self.y_h + f * h / z1, self.y_h + f * h / z0, self.H)
        xs = [self.x_v + f * X / z for X in (X0, X1) for z in (z0, z1)]
        x0, x1 = _span(min(xs), max(xs), self.W)
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


# ----------------------------------------------------------------------------------------------------------
# Scene grammar
# ----------------------------------------------------------------------------------------------------------
def _hash01(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """A cheap deterministic pseudo-random value in [0, 1) per integer cell (the tint of each window)."""
    v = np.sin(i * 12.9898 + j * 78.233 + salt) * 43758.5453
    return v - np.floor(v)


class _Scene:
    """One image: samples a street layout from ``rng`` and renders it with ``style``."""

    def __init__(self, height: int, width: int, style: Style, rng: np.random.Generator):
        self.cv = cv = _Canvas(height, width, style, rng)
        self.rng, self.style = rng, style
        r = rng
        self.sunny = r.random() < style.sun
        self.sun_strength = r.uniform(0.5, 1.0) if self.sunny else 0.0
        self.sun_side = -1.0 if r.random() < 0.5 else 1.0  # which facades are lit
        # road cross-section
        self.n_lanes = int(r.choice([2, 2, 3, 4]))
        self.lane_w = r.uniform(2.9, 3.6)
        ego = self.n_lanes - 1 - int(r.random() < 0.35 and self.n_lanes > 2)
        self.road_l = -(ego + 0.5) * self.lane_w
        self.road_r = (self.n_lanes - ego - 0.5) * self.lane_w
        self.oncoming = self.n_lanes // 2  # lanes [0, oncoming) drive towards the camera
        self.sides = {}
        for sgn in (-1.0, 1.0):
            edge = -self.road_l if sgn < 0 else self.road_r
            park = 2.3 if r.random() < 0.6 else 0.0
            park_lid = ID["parking"] if r.random() < 0.3 else ID["road"]
            rail = 3.4 if sgn < 0 and r.random() < 0.12 else 0.0
            verge = r.uniform(0.8, 2.5) if r.random() < 0.3 else 0.0
            walk = r.uniform(2.5, 6.0)
            self.sides[sgn] = dict(edge=edge, park=park, park_lid=park_lid, rail=rail, verge=verge, walk=walk,
                                   outer=edge + park + rail + verge + walk)
        self.crosswalk = r.uniform(8, 30) if r.random() < 0.3 else None
        self.has_train = r.random() < 0.15
        self.rail_side = -1.0 if self.sides[-1.0]["rail"] > 0 else None
        self.objects: list[tuple[float, Callable[[], None]]] = []

    # -- helpers -------------------------------------------------------------------------------------------
    def add(self, z: float, fn: Callable[[], None]) -> None:
        self.objects.append((z, fn))

    def lane_centre(self, k: int) -> float:
        return self.road_l + (k + 0.5) * self.lane_w

    # -- background ----------------------------------------------------------------------------------------
    def draw_sky(self) -> None:
        cv, r = self.cv, self.rng
        top = cv.colour("sky", k=0 if self.sunny else int(r.integers(1, 3)))
        horizon = np.clip(top * 1.15 + 0.08, 0.0, 1.0)
        rows = int(min(max(math.ceil(cv.y_h + 2), 1), cv.H))
        t = np.clip(cv.yc[:rows] / max(cv.y_h, 1.0), 0.0, 1.0)[:, None, None]
        cv.img[:, :rows] = (top + (horizon - top) * t).transpose(2, 0, 1)
        cv.lab[:rows] = ID["sky"]
        cv.dep[:rows] = 0.0
        self.sky_horizon = horizon
        self.cloudiness = r.uniform(0.0, 1.0)

    def draw_ground(self) -> None:
        cv, r = self.cv, self.rng
        row0 = int(min(max(math.floor(cv.y_h + 1.0), 0), cv.H))
        if row0 >= cv.H:
            return
        z = (cv.f * cv.h / np.maximum(cv.yc[row0:] - cv.y_h, 0.5))[:, None]  # depth per row
        X = (cv.xc[None, :] - cv.x_v) * (z / cv.f)
        left = X < 0
        d = np.abs(X)
        # materials: 6 lateral bands per side (road | parking lane | rail bed | verge | sidewalk | beyond),
        # then the verge of every side segment (what lies beyond the sidewalk at that depth), then paint
        road_c = cv.colour("road")
        mat_lid, mat_col, edges = [], [], {}
        for sgn in (-1.0, 1.0):
            sd = self.sides[sgn]
            edges[sgn] = np.asarray([sd["edge"], sd["edge"] + sd["park"], sd["edge"] + sd["park"] + sd["rail"],
                                     sd["outer"] - sd["walk"], sd["outer"]], np.float32)
            park_c = road_c * 1.05 if sd["park_lid"] == ID["road"] else cv.colour("parking")
            mat_lid += [ID["road"], sd["park_lid"], ID["rail track"], ID["terrain"], ID["sidewalk"], 0]
            mat_col += [road_c, park_c, cv.colour("rail track"), cv.colour("terrain"), cv.colour("sidewalk"),
                        np.zeros(3, np.float32)]
        mat = np.where(left, np.searchsorted(edges[-1.0], d, side="right"),
                       np.searchsorted(edges[1.0], d, side="right") + 6)
        for sgn, beyond_band in ((-1.0, 5), (1.0, 11)):
            segs = self.segments[sgn]
            zedges = np.asarray([sg["z1"] for sg in segs], np.float32)
            seg_mat = len(mat_lid) + np.minimum(np.searchsorted(zedges, z), len(segs) - 1)
            mat = np.where(mat == beyond_band, seg_mat, mat)
            mat_lid += [sg["verge"] for sg in segs]
            mat_col += [sg["verge_col"] for sg in segs]
        lid = np.asarray(mat_lid, np.uint8)[mat]
        is_road = lid == ID["road"]
        # lane markings: dashed lane lines, a solid centre line, optional edge lines and a crosswalk
        u = (X - self.road_l) * (1.0 / self.lane_w)
        k = np.rint(u)
        dash = ((z / 9.0 + 0.3) % 1.0) < 0.45
        paint = (np.abs(u - k) < 0.075 / self.lane_w) & (k >= 1) & (k <= self.n_lanes - 1) \
            & (dash | (k == self.oncoming))
        if r.random() < 0.5:
            paint |= (np.abs(X - self.road_l - 0.3) < 0.07) | (np.abs(X - self.road_r + 0.3) < 0.07)
        if self.crosswalk is not None:
            cw = (z >= self.crosswalk) & (z < self.crosswalk + 4.0)
            paint |= cw & ((X - np.floor(X)) < 0.5)
        paint &= is_road
        wear = r.uniform(0.7, 0.95)
        mat = np.where(paint, len(mat_lid), mat)
        mat_col.append(np.full(3, wear * 0.92, np.float32))
        # brightness details: paving grout fading with distance, curb stones, parking bays, rails
        factor = np.ones(X.shape, np.float32)
        walk = lid == ID["sidewalk"]
        near = np.clip(1.0 - z / 25.0, 0.0, 1.0)
        gx = X * (1.0 / 0.6)
        grout = ((gx - np.floor(gx)) < 0.07) | (((z / 0.6) % 1.0) < 0.07)
        factor[walk & grout] = np.broadcast_to(1.0 - 0.18 * near, X.shape)[walk & grout]
        inner = np.where(left, edges[-1.0][3], edges[1.0][3])
        factor[walk & (d - inner < 0.2)] = 1.12
        bays = np.broadcast_to(((z / 5.5) % 1.0) < 0.04, X.shape)
        factor[(lid == ID["parking"]) & bays] = 1.6
        rail_x = None
        if self.sides[-1.0]["rail"] > 0:
            rail_x = -(self.sides[-1.0]["edge"] + self.sides[-1.0]["park"] + 1.7)
        elif self.has_train:
            rail_x = self.lane_centre(0)  # tram rails embedded in the leftmost lane
        if rail_x is not None:
            rails = (np.abs(np.abs(X - rail_x) - 0.72) < 0.05) & (is_road | (lid == ID["rail track"]))
            factor[rails] = 0.55
        # facades on the sunny side cast a shadow across part of the street
        if self.sunny:
            far_side = self.sides[-self.sun_side]["outer"]
            reach = r.uniform(0.0, 1.0) * (far_side + self.sides[self.sun_side]["outer"])
            cv.shade[row0:][(-self.sun_side * X) > far_side - reach] = 1.0 - self.style.shadow * self.sun_strength
        cv.img[:, row0:] = np.asarray(mat_col, np.float32).T[:, mat] * factor
        cv.lab[row0:] = lid
        cv.dep[row0:] = z

    def plan_sides(self) -> None:
        """Segments along each side of the street: buildings, tree lines, walls, fences, open fields."""
        r = self.rng
        self.segments = {}
        for sgn in (-1.0, 1.0):
            segs, z = [], r.uniform(-12.0, 0.0)
            while z < 220.0:
                length = r.uniform(10.0, 34.0)
                kind = r.choice(["building", "vegetation", "wall", "fence", "open"], p=[0.55, 0.17, 0.11, 0.11, 0.06])
                setback = 0.0 if r.random() < 0.7 else r.uniform(1.0, 5.0)
                verge = r.choice(["sidewalk", "terrain", "ground"], p=[0.5, 0.35, 0.15])
                if kind in ("vegetation", "open"):
                    verge = "terrain" if r.random() < 0.75 else "ground"
                seg = dict(kind=str(kind), z0=z, z1=z + length, setback=setback, verge=ID[str(verge)],
                           verge_col=self.cv.colour(str(verge)), rng_seed=int(r.integers(1 << 31)))
                segs.append(seg)
                z += length
            self.segments[sgn] = segs

    def draw_skyline(self) -> None:
        """Far blocks that close the street towards the vanishing point."""
        cv, r = self.cv, self.rng
        X, zf = -70.0, r.uniform(160.0, 240.0)
        while X < 70.0:
            w = r.uniform(6.0, 22.0)
            if r.random() < 0.65:
                cv.front(zf, X, X + w, 0.0, r.uniform(10.0, 40.0), ID["building"], cv.colour("building") * 0.9)
            else:
                hgt = r.uniform(5.0, 14.0)
                cv.front(zf, X, X + w, 0.0, hgt, ID["vegetation"], cv.colour("vegetation"),
                         shape=_ellipse(X + w / 2, hgt * 0.45, w * 0.6, hgt * 0.55))
            X += w

    def draw_sides(self) -> None:
        items = [(seg["z0"], sgn, i, seg) for sgn in (-1.0, 1.0) for i, seg in enumerate(self.segments[sgn])]
        items.sort(key=lambda t: (-t[0], t[1]))
        for _, sgn, i, seg in items:
            nxt = self.segments[sgn][i + 1] if i + 1 < len(self.segments[sgn]) else None
            self.draw_segment(sgn, seg, nxt)

    def _facade_colour(self, base: np.ndarray, lit: float, seg_rng: np.random.Generator):
        """Facade colour function in plane coordinates (along, height): windows, floors, shop fronts."""
        su = seg_rng.uniform(2.4, 4.0)  # window pitch along the street
        sv = seg_rng.uniform(2.8, 3.5)  # floor height
        wu, wv = seg_rng.uniform(0.35, 0.6), seg_rng.uniform(0.35, 0.55)
        glass = np.asarray(seg_rng.uniform([0.12, 0.14, 0.17], [0.3, 0.33, 0.38]), np.float32)
        shop = seg_rng.random() < 0.5
        shop_col = np.asarray(seg_rng.uniform([0.1, 0.1, 0.1], [0.35, 0.3, 0.28]), np.float32)
        salt = seg_rng.uniform(0, 100)
        base = (base * lit).astype(np.float32)
        ground_floor = 3.2

        def colour(a, b):
            a, b = np.broadcast_arrays(a, b)
            au = a / su
            i = np.floor(au)
            bv = (b - ground_floor) / sv
            j = np.floor(bv)
            fv = bv - j
            win = (np.abs(au - i - 0.5) < wu / 2) & (np.abs(fv - 0.45) < wv / 2) & (b > ground_floor + 0.4)
            out = np.empty((*a.shape, 3), np.float32)
            out[:] = base
            out[(b > ground_floor) & (fv < 0.06)] = base * 0.85
            if win.any():
                tint = 0.7 + 0.6 * _hash01(i[win], j[win], salt)
                out[win] = glass * tint[:, None].astype(np.float32)
            if shop:
                front = (b > 0.3) & (b < ground_floor - 0.5) & ((a / 5.0) % 1.0 < 0.8)
                out[front] = shop_col
            return out
        return colour

    def draw_segment(self, sgn: float, seg: dict, nxt: dict | None) -> None:
        cv = self.cv
        sd = self.sides[sgn]
        seg_rng = np.random.default_rng(seg["rng_seed"])
        X = sgn * (sd["outer"] + seg["setback"])
        z0, z1 = seg["z0"], seg["z1"]
        lit = 1.0 + 0.25 * self.sun_strength * (1 if sgn == self.sun_side else -1)
        kind = seg["kind"]

        def building(Xb: float, shrink: float = 1.0) -> None:
            hgt = seg_rng.uniform(12.0, 38.0) * shrink
            base = cv.colour("building")
            cv.side(Xb, z0, z1, 0.0, hgt, ID["building"], self._facade_colour(base, lit, seg_rng))
            # the end wall is visible where the next segment does not continue the facade
            if nxt is not None and (nxt["kind"] != "building" or nxt["setback"] > seg["setback"] + 0.5):
                lo, hi = sorted((Xb, Xb + sgn * 12.0))
                cv.front(z1, lo, hi, 0.0, hgt, ID["building"], self._facade_colour(base * 0.9, lit, seg_rng))

        def tree_line(Xt: float, base_h: float) -> None:
            ph = seg_rng.uniform(0, 6.3, 3)
            fr = seg_rng.uniform(0.15, 0.6, 3)
            amp = seg_rng.uniform(0.5, 2.0)

            def top(z):
                return base_h + amp * (np.sin(z * fr[0] + ph[0]) + 0.6 * np.sin(z * fr[1] * 2.7 + ph[1])
                                       + 0.4 * np.sin(z * fr[2] * 6.1 + ph[2]))
            cv.side(Xt, z0, z1, 0.0, top, ID["vegetation"], cv.colour("vegetation") * lit)

        if kind == "building":
            building(X)
        elif kind == "vegetation":
            tree_line(X + sgn * seg_rng.uniform(0.0, 2.0), seg_rng.uniform(2.0, 11.0))
        elif kind == "open":
            if seg_rng.random() < 0.5:
                building(X + sgn * seg_rng.uniform(25.0, 50.0), 0.7)
            tree_line(X + sgn * seg_rng.uniform(8.0, 30.0), seg_rng.uniform(5.0, 12.0))
        else:  # a wall or fence in front of buildings or trees
            back = X + sgn * seg_rng.uniform(3.0, 9.0)
            if seg_rng.random() < 0.5:
                building(back)
            else:
                tree_line(back, seg_rng.uniform(4.0, 10.0))
            hgt = seg_rng.uniform(1.0, 2.6)
            if kind == "wall":
                cv.side(X, z0, z1, 0.0, hgt, ID["wall"], cv.colour("wall") * lit)
            else:
                bar = cv.colour("fence") * lit
                pitch = seg_rng.uniform(0.12, 0.3)
                post = seg_rng.uniform(2.0, 3.0)

                def fence_colour(a, b, bar=bar, pitch=pitch, post=post):
                    gap = (((a / pitch) % 1.0) > 0.45) & (b < hgt - 0.12) & (b > 0.1) & (((a / post) % 1.0) > 0.05)
                    return np.where(gap[..., None], bar * 0.45, bar)
                cv.side(X, z0, z1, 0.0, hgt, ID["fence"], fence_colour)

    # -- objects -------------------------------------------------------------------------------------------
    def plan_objects(self) -> None:
        r, s = self.rng, self.style.obj_scale
        cv = self.cv
        # street trees along the outer sidewalk edge
        for sgn in (-1.0, 1.0):
            if r.random() < 0.5:
                sd = self.sides[sgn]
                z = r.uniform(3.0, 12.0)
                step = r.uniform(7.0, 14.0)
                X = sgn * (sd["outer"] - sd["walk"] + r.uniform(0.5, 1.0))
                while z < 90.0:
                    self.add(z, self._tree_fn(X, z))
                    z += step * r.uniform(0.8, 1.2)
        # street lamps and sign posts near the curb, traffic lights at an intersection
        for sgn in (-1.0, 1.0):
            sd = self.sides[sgn]
            Xc = sgn * (sd["outer"] - sd["walk"] + 0.4)
            z = r.uniform(4.0, 20.0)
            step = r.uniform(14.0, 30.0)
            while z < 110.0:
                self.add(z, self._pole_fn(Xc, z, light=r.random() < 0.15, sign=r.random() < 0.45))
                z += step
            for _ in range(int(r.poisson(1.2))):
                zs = r.uniform(5.0, 45.0)
                self.add(zs, self._pole_fn(Xc + sgn * r.uniform(0.0, 1.0), zs, light=False, sign=True, short=True))
        if r.random() < 0.5:
            zi = self.crosswalk + 4.5 if self.crosswalk is not None else r.uniform(12.0, 40.0)
            for sgn in (-1.0, 1.0):
                sd = self.sides[sgn]
                Xc = sgn * (sd["outer"] - sd["walk"] + 0.5)
                self.add(zi, self._pole_fn(Xc, zi, light=True, sign=r.random() < 0.5, mast=r.random() < 0.5))
        # parked cars (and rare caravans / trailers) in parking lanes
        for sgn in (-1.0, 1.0):
            sd = self.sides[sgn]
            if sd["park"] <= 0:
                continue
            Xc = sgn * (sd["edge"] + sd["park"] / 2)
            z = r.uniform(3.0, 10.0)
            while z < 70.0:
                u = r.random()
                if u < 0.5:
                    self.add(z, self._car_fn(Xc + r.normal(0, 0.15), z, away=r.random() < 0.8))
                    z += 4.6 * s + r.uniform(0.4, 2.0)
                elif u < 0.515 and z > 10.0:
                    kind = "caravan" if r.random() < 0.5 else "trailer"
                    self.add(z, self._van_fn(Xc, z, kind))
                    z += 6.5 * s
                else:
                    z += r.uniform(3.0, 8.0)
        # moving traffic
        for _ in range(int(r.poisson(2.2))):
            lane = int(r.integers(self.n_lanes))
            z = r.uniform(6.0, 70.0)
            self.add(z, self._car_fn(self.lane_centre(lane) + r.normal(0, 0.2), z, away=lane >= self.oncoming))
        if r.random() < 0.18:
            lane = int(r.integers(self.n_lanes))
            z = r.uniform(12.0, 60.0)
            self.add(z, self._truck_fn(self.lane_centre(lane), z, away=lane >= self.oncoming))
        if r.random() < 0.22:
            lane = int(r.integers(self.n_lanes))
            z = r.uniform(10.0, 45.0)
            self.add(z, self._bus_fn(self.lane_centre(lane), z, away=lane >= self.oncoming))
        if self.has_train:
            if self.rail_side is not None:
                sd = self.sides[-1.0]
                Xc = -(sd["edge"] + sd["park"] + 1.7)
            else:
                Xc = self.lane_centre(0)
            z = r.uniform(12.0, 60.0)
            self.add(z, self._train_fn(Xc, z))
        # two-wheelers: ridden on the road edge, parked on the sidewalk
        for _ in range(int(r.poisson(0.5))):
            sgn = 1.0 if r.random() < 0.7 else -1.0
            X = self.road_r - 0.8 if sgn > 0 else self.road_l + 0.8
            z = r.uniform(5.0, 35.0)
            self.add(z, self._two_wheeler_fn(X, z, motor=r.random() < 0.45, ridden=r.random() < 0.85))
        for _ in range(int(r.poisson(2.0))):
            sgn = -1.0 if r.random() < 0.5 else 1.0
            sd = self.sides[sgn]
            X = sgn * (sd["outer"] - r.uniform(0.5, 1.5))
            z = r.uniform(5.0, 30.0)
            self.add(z, self._two_wheeler_fn(X, z, motor=r.random() < 0.25, ridden=False))
        # pedestrians on the sidewalks, some crossing
        for _ in range(int(r.poisson(8.0))):
            sgn = -1.0 if r.random() < 0.5 else 1.0
            sd = self.sides[sgn]
            X = sgn * (sd["outer"] - r.uniform(0.3, sd["walk"] - 0.3))
            z = 3.0 + 42.0 * r.random() ** 1.5  # crowds thin out with distance
            self.add(z, self._person_fn(X, z))
        if self.crosswalk is not None and r.random() < 0.6:
            for _ in range(int(r.integers(1, 4))):
                z = self.crosswalk + r.uniform(0.5, 3.5)
                self.add(z, self._person_fn(r.uniform(self.road_l, self.road_r), z))
        # static clutter (bins, boxes), dynamic clutter (carts), a guard rail, a bridge
        for _ in range(int(r.poisson(1.5))):
            sgn = -1.0 if r.random() < 0.5 else 1.0
            sd = self.sides[sgn]
            X = sgn * (sd["outer"] - r.uniform(0.3, 1.2))
            z = r.uniform(4.0, 40.0)
            self.add(z, self._clutter_fn(X, z, "static" if r.random() < 0.7 else "dynamic"))
        if r.random() < 0.15:
            sgn = -1.0 if r.random() < 0.5 else 1.0
            X = self.road_l - 0.3 if sgn < 0 else self.road_r + 0.3
            if self.sides[sgn]["park"] > 0:
                X += sgn * self.sides[sgn]["park"]
            # in short pieces, so each sorts between the objects in front of and behind it
            col = cv.colour("guard rail")
            for z0 in np.arange(2.0, 90.0, 5.0):
                self.add(float(z0), lambda X=X, z0=float(z0), col=col: self._guard_rail(X, z0, z0 + 5.0, col))
        if r.random() < 0.06:
            zb = r.uniform(40.0, 90.0)
            self.add(zb, lambda zb=zb: self._bridge(zb))

    def _tree_fn(self, X: float, z: float) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        trunk_h = r.uniform(2.0, 3.5) * s
        R = r.uniform(1.4, 2.8) * s
        blobs = [(X + r.normal(0, R * 0.45), trunk_h + R + r.normal(0, R * 0.3), R * r.uniform(0.6, 1.0),
                  r.uniform(0.75, 1.15)) for _ in range(int(r.integers(3, 6)))]
        leaf = cv.colour("vegetation")
        bark = cv.colour("vegetation", k=0) * np.asarray([0.9, 0.7, 0.6], np.float32)
        parts = [(_ellipse(bx, by, br, br * 0.9), leaf * tone) for bx, by, br, tone in blobs]
        top = max(by + br for _, by, br, _ in blobs)
        half = max(max(abs(bx - X) + br for bx, _, br, _ in blobs), 0.5)

        def draw():
            cv.front(z, X - 0.14 * s, X + 0.14 * s, 0.0, trunk_h + R * 0.5, ID["vegetation"], bark, min_px=1)
            cv.front(z, X - half, X + half, trunk_h * 0.5, top, ID["vegetation"], parts)
        return draw

    def _pole_fn(self, X: float, z: float, *, light: bool, sign: bool, short: bool = False,
                 mast: bool = False) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        height = (r.uniform(2.4, 3.2) if short else r.uniform(4.5, 8.0)) * s
        metal = cv.colour("pole")
        width = 0.14 * s
        inward = -1.0 if X > 0 else 1.0  # towards the road centre
        sign_kind = int(r.integers(4))
        sign_col = cv.colour("traffic sign", k=sign_kind)
        sign_back = r.random() < 0.2
        sign_y = (height - 0.5 * s) if short else r.uniform(2.2, 3.0) * s
        light_y = r.uniform(2.4, 3.4) * s
        lit = int(r.integers(3))
        lamp_arm = not short and not light and r.random() < 0.6
        housing = cv.colour("traffic light")
        mast_len = r.uniform(3.0, 6.0)

        def draw_light(cx: float, cy: float, zz: float) -> None:
            w, h = 0.34 * s, 0.9 * s
            if w * cv.f / zz < 3.0:  # too small for lamps to show
                cv.front(zz, cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2, ID["traffic light"], housing, min_px=1)
                return
            lamps = np.asarray([[0.9, 0.15, 0.1], [0.95, 0.7, 0.1], [0.2, 0.9, 0.4]], np.float32)
            parts = [(None, housing)]
            for i in range(3):
                ly = cy + h / 3 - i * h / 3
                parts.append((_ellipse(cx, ly, w / 3, w / 3), lamps[i] if i == lit else lamps[i] * 0.25))
            cv.front(zz, cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2, ID["traffic light"], parts)

        def draw():
            cv.front(z, X - width / 2, X + width / 2, 0.0, height, ID["pole"], metal, min_px=1)
            if lamp_arm:
                x1 = X + inward * 1.5 * s
                cv.front(z, min(X, x1), max(X, x1), height - 0.12 * s, height, ID["pole"], metal, min_px=1)
                cv.front(z, min(x1, x1 - inward * 0.5 * s), max(x1, x1 - inward * 0.5 * s), height - 0.3 * s,
                         height - 0.05 * s, ID["pole"], metal * 0.7, min_px=1)
            if light:
                if mast:
                    x1 = X + inward * mast_len
                    cv.front(z, min(X, x1), max(X, x1), height - 0.15 * s, height, ID["pole"], metal, min_px=1)
                    draw_light(x1, height - 0.6 * s, z - 0.05)
                else:
                    draw_light(X + inward * 0.25 * s, light_y, z - 0.05)
            if sign:
                cx, cy, rr = X + inward * 0.05, sign_y, 0.32 * s
                zz = z - 0.06
                if sign_back:
                    cv.front(zz, cx - rr, cx + rr, cy - rr, cy + rr, ID["traffic sign"], metal * 1.1,
                             shape=_ellipse(cx, cy, rr, rr))
                elif sign_kind in (0, 3):  # red-rimmed circle / triangle with a white face
                    if sign_kind == 0:
                        outer, inner = _ellipse(cx, cy, rr, rr), _ellipse(cx, cy, rr * 0.72, rr * 0.72)
                    else:
                        def outer(a, b):
                            return (b > cy - rr) & (np.abs(a - cx) < (cy + rr - b) * 0.62)
                        def inner(a, b):
                            return (b > cy - rr * 0.62) & (np.abs(a - cx) < (cy + rr * 0.55 - b) * 0.58)
                    red = np.asarray([0.8, 0.12, 0.12], np.float32) + sign_col * 0.1
                    cv.front(zz, cx - rr, cx + rr, cy - rr, cy + rr, ID["traffic sign"],
                             [(outer, red), (inner, np.asarray([0.9, 0.9, 0.88], np.float32))])
                elif sign_kind == 1:  # blue disc
                    cv.front(zz, cx - rr, cx + rr, cy - rr, cy + rr, ID["traffic sign"], sign_col,
                             shape=_ellipse(cx, cy, rr, rr))
                else:  # rectangular plate
                    cv.front(zz, cx - rr, cx + rr, cy - rr * 0.7, cy + rr * 0.7, ID["traffic sign"], sign_col,
                             min_px=1)
        return draw

    def _car_fn(self, Xc: float, z: float, *, away: bool) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        w, L = r.uniform(1.7, 1.95) * s, r.uniform(4.0, 4.9) * s
        hb, hc = r.uniform(0.95, 1.15) * s, r.uniform(1.4, 1.6) * s
        paint = cv.colour("car")
        glass = np.asarray([0.16, 0.19, 0.23], np.float32) + r.uniform(0.0, 0.08)
        tyre = np.asarray([0.07, 0.07, 0.08], np.float32)
        lamp = np.asarray([0.75, 0.1, 0.1] if away else [0.95, 0.93, 0.85], np.float32)
        X0, X1 = Xc - w / 2, Xc + w / 2

        plate = np.asarray([0.85, 0.85, 0.82], np.float32)
        wheel_r = 0.33 * s

        def rear(a, b):
            a, b = np.broadcast_arrays(a, b)
            out = np.empty((*a.shape, 3), np.float32)
            out[:] = paint
            out[(b > hb - 0.3 * s) & (b < hb - 0.12 * s) & (np.abs(a - Xc) > w / 2 - 0.38 * s)] = lamp
            out[(b > 0.45 * s) & (b < 0.57 * s) & (np.abs(a - Xc) < 0.26 * s)] = plate
            return out

        def wheels(a, b):
            return (((a - z - 0.85 * s) ** 2 + (b - wheel_r) ** 2 < wheel_r ** 2)
                    | ((a - z - L + 0.85 * s) ** 2 + (b - wheel_r) ** 2 < wheel_r ** 2))

        def draw():
            cv.ground_shade(X0 - 0.1, X1 + 0.1, z - 0.1, z + L, 0.45)
            inset = 0.14 * s
            cv.box(X0 + inset, X1 - inset, z + 1.0 * s, z + L - 1.2 * s, hb, hc, ID["car"], glass,
                   side_colour=glass * 0.9, top_colour=paint * 1.05)
            detailed = hc * cv.f / z > 10.0  # level of detail: far cars skip lamps and wheels
            cv.box(X0, X1, z, z + L, 0.3 * s, hb, ID["car"], rear if detailed else paint,
                   side_colour=paint * 0.8, top_colour=np.minimum(paint * 1.1, 1.0))
            if not detailed:
                return
            if X0 > 0 or X1 < 0:
                Xs = X0 if X0 > 0 else X1
                cv.side(Xs - math.copysign(0.01, Xs), z, z + L, 0.0, 2 * wheel_r, ID["car"], tyre, shape=wheels)
            cv.front(z + 0.3, X0 + 0.05, X1 - 0.05, 0.0, 0.32 * s, ID["car"], tyre,
                     shape=lambda a, b: np.abs(a - Xc) > w / 2 - 0.3 * s)
        return draw

    def _van_fn(self, Xc: float, z: float, kind: str) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        w, L, hgt = 2.2 * s, r.uniform(5.0, 6.5) * s, r.uniform(2.3, 2.8) * s
        body = cv.colour(kind)

        def draw():
            cv.ground_shade(Xc - w / 2, Xc + w / 2, z, z + L, 0.5)
            cv.box(Xc - w / 2, Xc + w / 2, z, z + L, 0.35 * s, hgt, ID[kind], body)
            cv.front(z - 0.01, Xc - w / 2 + 0.3, Xc + w / 2 - 0.3, hgt * 0.55, hgt * 0.8, ID[kind], body * 0.4)
        return draw

    def _truck_fn(self, Xc: float, z: float, *, away: bool) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        w, L, hgt = r.uniform(2.3, 2.55) * s, r.uniform(6.0, 9.0) * s, r.uniform(3.0, 3.9) * s
        cargo = cv.colour("truck")
        cab = cv.colour("truck")
        glass = np.asarray([0.15, 0.18, 0.22], np.float32)
        X0, X1 = Xc - w / 2, Xc + w / 2

        def draw():
            cv.ground_shade(X0, X1, z, z + L + 2.2 * s, 0.45)
            if away:
                cv.box(X0 + 0.05, X1 - 0.05, z + L, z + L + 2.2 * s, 0.5 * s, 2.9 * s, ID["truck"], cab)
                cv.box(X0, X1, z, z + L, 0.9 * s, hgt, ID["truck"], cargo)
                cv.front(z - 0.01, X0, X1, 0.35 * s, 0.9 * s, ID["truck"], np.asarray([0.1, 0.1, 0.1], np.float32))
                cv.front(z - 0.02, Xc - 0.03, Xc + 0.03, 1.0 * s, hgt - 0.1, ID["truck"], cargo * 0.6, min_px=1)
            else:
                cv.box(X0, X1, z + 2.2 * s, z + L + 2.2 * s, 0.9 * s, hgt, ID["truck"], cargo)
                cv.box(X0 + 0.05, X1 - 0.05, z, z + 2.2 * s, 0.5 * s, 2.9 * s, ID["truck"], cab)
                cv.front(z - 0.01, X0 + 0.2, X1 - 0.2, 1.7 * s, 2.6 * s, ID["truck"], glass)
            for xw in (X0 + 0.05, X1 - 0.35 * s):
                cv.front(z + 0.4, xw, xw + 0.3 * s, 0.0, 0.5 * s, ID["truck"], np.asarray([0.07] * 3, np.float32))
        return draw

    def _bus_fn(self, Xc: float, z: float, *, away: bool) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        w, L, hgt = 2.55 * s, r.uniform(11.0, 13.5) * s, r.uniform(3.0, 3.3) * s
        body = cv.colour("bus")
        glass = np.asarray([0.14, 0.17, 0.21], np.float32)
        X0, X1 = Xc - w / 2, Xc + w / 2

        def side_colour(a, b):
            win = (b > 1.15 * s) & (b < 2.5 * s) & ((((a - z) / (1.7 * s)) % 1.0) > 0.12)
            return np.where(win[..., None], glass, body * 0.85)

        def rear_colour(a, b):
            win = (b > (1.5 if away else 1.0) * s) & (b < 2.7 * s) & (np.abs(a - Xc) < w / 2 - 0.15)
            out = np.where(win[..., None], glass, body)
            sign_band = (b > 2.75 * s) & (b < 3.0 * s) & (np.abs(a - Xc) < w / 2 - 0.4)
            return np.where(sign_band[..., None], np.asarray([0.95, 0.6, 0.1], np.float32), out)

        def draw():
            cv.ground_shade(X0, X1, z, z + L, 0.45)
            cv.top(hgt, X0, X1, z, z + L, ID["bus"], np.minimum(body * 1.1, 1.0))
            if X0 > 0 or X1 < 0:
                cv.side(X0 if X0 > 0 else X1, z, z + L, 0.35 * s, hgt, ID["bus"], side_colour)
            cv.front(z, X0, X1, 0.35 * s, hgt, ID["bus"], rear_colour)
            for xw in (X0 + 0.05, X1 - 0.35 * s):
                cv.front(z + 0.5, xw, xw + 0.3 * s, 0.0, 0.4 * s, ID["bus"], np.asarray([0.07] * 3, np.float32))
        return draw

    def _train_fn(self, Xc: float, z: float) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        w, L, hgt = 2.5 * s, r.uniform(25.0, 35.0) * s, 3.3 * s
        livery = cv.colour("train")
        white = np.asarray([0.88, 0.88, 0.86], np.float32)
        glass = np.asarray([0.13, 0.16, 0.2], np.float32)
        X0, X1 = Xc - w / 2, Xc + w / 2

        def paint(a, b, along):
            win = (b > 1.3 * s) & (b < 2.5 * s) & ((((along) / (2.2 * s)) % 1.0) > 0.15)
            out = np.where((b > 2.6 * s)[..., None], white, livery)
            return np.where(win[..., None], glass, out)

        def draw():
            cv.ground_shade(X0, X1, z, z + L, 0.5)
            cv.top(hgt, X0, X1, z, z + L, ID["train"], white * 0.9)
            if X0 > 0 or X1 < 0:
                cv.side(X0 if X0 > 0 else X1, z, z + L, 0.4 * s, hgt, ID["train"],
                        lambda a, b: paint(a, b, a - z) * 0.85)
            cv.front(z, X0, X1, 0.4 * s, hgt, ID["train"],
                     lambda a, b: np.where(((b > 1.4 * s) & (b < 2.7 * s) & (np.abs(a - Xc) < w / 2 - 0.2))[..., None],
                                           glass, np.where((b > 2.7 * s)[..., None], white, livery)))
            cv.front(z + 2.0, Xc - 0.03, Xc + 0.03, hgt, hgt + 1.0 * s, ID["train"], glass, min_px=1)
            cv.front(z + 2.0, Xc - 0.5, Xc + 0.5, hgt + 0.9 * s, hgt + 1.0 * s, ID["train"], glass, min_px=1)
        return draw

    def _person_shapes(self, X: float, ph: float, seated: bool) -> list[tuple[Shape, str]]:
        """Body parts as (shape, part) in the frontal plane of a person of height ph at lateral X."""
        r = self.rng
        stride = r.uniform(-0.12, 0.12) * ph
        parts: list[tuple[Shape, str]] = []
        if not seated:
            parts += [(_segment((X - 0.05 * ph, 0.47 * ph), (X - 0.05 * ph + stride, 0.03 * ph), 0.045 * ph), "legs"),
                      (_segment((X + 0.05 * ph, 0.47 * ph), (X + 0.05 * ph - stride, 0.03 * ph), 0.045 * ph), "legs")]
            torso_y0 = 0.45 * ph
        else:
            parts += [(_segment((X - 0.08 * ph, 0.56 * ph), (X + 0.12 * ph, 0.3 * ph), 0.05 * ph), "legs")]
            torso_y0 = 0.55 * ph
        parts += [(_segment((X, torso_y0 + 0.05 * ph), (X, 0.78 * ph), 0.1 * ph), "top"),
                  (_segment((X - 0.12 * ph, 0.78 * ph), (X - 0.14 * ph, 0.5 * ph), 0.035 * ph), "top"),
                  (_segment((X + 0.12 * ph, 0.78 * ph), (X + 0.14 * ph + (0.1 * ph if seated else 0), 0.5 * ph),
                            0.035 * ph), "top"),
                  (_ellipse(X, 0.9 * ph, 0.065 * ph, 0.08 * ph), "head")]
        return parts

    def _draw_person(self, X: float, z: float, ph: float, lid: int, cols: dict,
                     parts: list[tuple[Shape, str]]) -> None:
        self.cv.front(z, X - 0.3 * ph, X + 0.3 * ph, 0.0, ph, lid, [(shape, cols[part]) for shape, part in parts])

    def _person_cols(self, name: str) -> dict:
        cv, r = self.cv, self.rng
        skin = np.asarray([0.78, 0.62, 0.5] if r.random() < 0.7 else [0.5, 0.36, 0.28], np.float32)
        hair = np.asarray([0.15, 0.11, 0.08] if r.random() < 0.6 else [0.55, 0.45, 0.3], np.float32)
        return {"legs": cv.colour(name), "top": cv.colour(name), "head": skin, "hair": hair}

    def _person_fn(self, X: float, z: float) -> Callable[[], None]:
        r, s = self.rng, self.style.obj_scale
        ph = r.normal(1.72, 0.08) * s if r.random() < 0.9 else r.uniform(1.0, 1.4) * s
        cols = self._person_cols("person")
        parts = self._person_shapes(X, ph, seated=False)
        parts.append((_ellipse(X, 0.95 * ph, 0.07 * ph, 0.045 * ph), "hair"))
        return lambda: self._draw_person(X, z, ph, ID["person"], cols, parts)

    def _two_wheeler_fn(self, X: float, z: float, *, motor: bool, ridden: bool) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        d = 1.0 if r.random() < 0.5 else -1.0  # facing direction in the image plane
        lid = ID["motorcycle"] if motor else ID["bicycle"]
        frame = cv.colour("motorcycle" if motor else "bicycle")
        tyre = np.asarray([0.06, 0.06, 0.07], np.float32)
        R = (0.32 if motor else 0.34) * s
        half = (0.7 if motor else 0.52) * s
        ph = r.normal(1.72, 0.07) * s
        cols = self._person_cols("rider")
        cols["hair"] = cv.colour("rider")  # a helmet
        rider = self._person_shapes(X - d * 0.12 * s, ph, seated=True)
        rider.append((_ellipse(X - d * 0.12 * s, 0.93 * ph, 0.075 * ph, 0.065 * ph), "hair"))
        seat = 0.55 * ph
        rear, front_ = X - d * half, X + d * half
        parts: list[tuple[Shape, Colour]] = []
        for cx in (rear, front_):
            if motor:
                parts += [(_ellipse(cx, R, R, R), tyre), (_ellipse(cx, R, R * 0.4, R * 0.4), frame * 0.6 + 0.3)]
            else:
                parts.append(((lambda a, b, cx=cx: (((a - cx) / R) ** 2 + ((b - R) / R) ** 2 < 1.0)
                               & (((a - cx) / (R * 0.82)) ** 2 + ((b - R) / (R * 0.82)) ** 2 > 1.0)), tyre))
        tw = 0.07 * s if motor else 0.03 * s
        hub, saddle, bar = (X + d * 0.1 * s, R), (X - d * 0.1 * s, seat - 0.1 * s), (front_ - d * 0.1 * s, seat)
        for p, q in (((rear, R), saddle), (saddle, bar), ((rear, R), hub), (hub, saddle), (hub, bar),
                     ((front_ - d * 0.1 * s, seat + 0.1 * s), (front_, R))):
            parts.append((_segment(p, q, tw), frame))
        if motor:
            parts.append((_ellipse(X, (R * 0.8 + seat) / 2, half * 0.75, (seat - R * 0.8) / 2), frame))

        def draw():
            cv.front(z, X - half - R, X + half + R, 0.0, seat + 0.2 * s, lid, parts)
            if ridden:
                self._draw_person(X - d * 0.12 * s, z - 0.05, ph, ID["rider"], cols, rider)
        return draw

    def _clutter_fn(self, X: float, z: float, kind: str) -> Callable[[], None]:
        r, s, cv = self.rng, self.style.obj_scale, self.cv
        w, hgt = r.uniform(0.4, 1.2) * s, r.uniform(0.6, 1.3) * s
        col = cv.colour(kind)

        def draw():
            cv.box(X - w / 2, X + w / 2, z, z + w, 0.0, hgt, ID[kind], col)
        return draw

    def _guard_rail(self, X: float, z0: float, z1: float, col: np.ndarray) -> None:
        cv = self.cv
        cv.side(X, z0, z1, 0.45, 0.8, ID["guard rail"], col)
        cv.side(X, z0, z1, 0.0, 0.45, ID["guard rail"], col * 0.7, shape=lambda a, b: ((a / 2.0) % 1.0) < 0.06)

    def _bridge(self, zb: float) -> None:
        cv = self.cv
        col = cv.colour("bridge")
        lo, thick = self.rng.uniform(5.0, 7.0), self.rng.uniform(1.2, 2.2)
        cv.front(zb, -80.0, 80.0, lo, lo + thick, ID["bridge"], col)
        for Xp in (self.road_l - 1.0, self.road_r + 1.0):
            cv.front(zb + 0.1, Xp - 0.6, Xp + 0.6, 0.0, lo, ID["bridge"], col * 0.85)

    def draw_objects(self) -> None:
        for _, fn in sorted(self.objects, key=lambda t: -t[0]):
            fn()

    def draw_bonnet(self) -> None:
        cv, r = self.cv, self.rng
        height = self.style.bonnet * cv.H * r.uniform(0.85, 1.15)
        if height < 0.5:
            return
        cx, half = cv.W * (0.5 + r.normal(0, 0.02)), cv.W * r.uniform(0.7, 0.9)
        u = (cv.xc - cx) / half
        top = cv.H - height * np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))  # per column
        rows = np.arange(cv.H, dtype=np.float32)[:, None] + 0.5
        y0 = int(max(0, math.floor(top.min())))
        mask = rows[y0:] >= top[None, :]
        body = cv.colour("ego vehicle")
        depth_in = np.clip((rows[y0:] - top[None, :]) / max(height, 1.0), 0.0, 1.0)[..., None]
        colour = body + (self.sky_horizon * 0.5 - body) * np.clip(1.0 - 4.0 * depth_in, 0.0, 1.0) * 0.6
        cv._paint(y0, cv.H, 0, cv.W, mask, ID["ego vehicle"], colour, None, None, 0.0)

    # -- post-processing -----------------------------------------------------------------------------------
    def finish(self) -> np.ndarray:
        cv, r, st = self.cv, self.rng, self.style
        H, W = cv.H, cv.W
        lab = cv.lab
        fine, blotch, clouds, sensor = _noise(H, W, r)
        # clouds whiten the sky where the low-frequency field is high
        rows = int(min(max(math.ceil(cv.y_h + 2), 1), H))
        cloud = np.clip((clouds[:rows] - 0.6 + self.cloudiness) * 0.6, 0.0, 0.75)
        cloud *= lab[:rows] == ID["sky"]
        for plane in cv.img[:, :rows]:
            plane += cloud * (np.float32(0.92) - plane)
        # per-pixel brightness: class textures times cast and contact shadows
        mod = _FINE_LUT[lab] * fine
        mod += _BLOTCH_LUT[lab] * blotch
        mod *= np.float32(st.texture)
        mod += 1.0
        # cast and contact shadows darken the ground only: whatever was painted over it stays lit
        mod *= np.where(_GROUND_LUT[lab], cv.shade, np.float32(1.0))
        # aerial perspective: far things fade towards the horizon colour
        haze = st.haze * r.uniform(0.6, 1.4)
        a = np.exp(cv.dep * np.float32(-1.0 / 90.0))
        a *= -haze
        a += haze
        mod *= 1.0 - a
        # illumination (exposure, tint, sunlight) and the domain's grading are linear in RGB: one 3x3 matrix
        exposure = st.brightness * math.exp(r.normal(0.0, 0.12)) * (1.0 + 0.15 * self.sun_strength)
        light = np.asarray([1.0 + 0.06 * self.sun_strength, 1.0, 1.0 - 0.06 * self.sun_strength])
        light = light * (1.0 + r.normal(0.0, 0.03, 3)) * exposure
        sat = st.saturation * np.eye(3) + (1.0 - st.saturation) / 3.0
        grade = np.diag(st.tint) @ (st.contrast * sat)
        offset = np.asarray(st.tint) * 0.45 * (1.0 - st.contrast) * 255.0
        A = (grade @ np.diag(light)) * 255.0
        hz = (grade @ (self.sky_horizon * exposure)) * 255.0
        blur = st.blur * cv.px * r.uniform(0.8, 1.2)
        out = np.empty((H, W, 3), np.uint8)
        src = cv.img
        tmp = np.empty((H, W), np.float32)
        for c in range(3):
            acc = np.multiply(src[0], np.float32(A[c, 0]))
            acc += np.multiply(src[1], np.float32(A[c, 1]), out=tmp)
            acc += np.multiply(src[2], np.float32(A[c, 2]), out=tmp)
            acc *= mod
            acc += np.multiply(a, np.float32(hz[c]), out=tmp)
            acc += np.float32(offset[c])
            if blur > 0.15:
                _blur_plane(acc, blur, tmp)
            if st.noise > 0.05:
                acc += np.multiply(sensor[c], np.float32(st.noise), out=tmp)
            acc += 0.5
            np.clip(acc, 0.0, 255.0, out=acc)
            out[..., c] = acc
        return out


def _blur_plane(x: np.ndarray, sigma: float, tmp: np.ndarray) -> None:
    """In-place Gaussian-like blur of a 2-D float plane: repeated separable [w, 1-2w, w] passes.

    Each pass adds variance 2w (w <= 0.25), so n passes with w = sigma^2 / (2n) give variance sigma^2.
    """
    n = max(1, math.ceil(sigma * sigma / 0.5))
    w = np.float32(sigma * sigma / (2 * n))
    c = np.float32(1.0 - 2.0 * w)
    for _ in range(n):
        for axis in (0, 1):
            np.multiply(x, c, out=tmp)
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(None, -1), slice(1, None)
            tmp[tuple(lo)] += w * x[tuple(hi)]
            tmp[tuple(hi)] += w * x[tuple(lo)]
            # edges: the missing neighbour repeats the edge pixel
            first = [slice(None)] * 2
            last = [slice(None)] * 2
            first[axis], last[axis] = 0, -1
            tmp[tuple(first)] += w * x[tuple(first)]
            tmp[tuple(last)] += w * x[tuple(last)]
            x[...] = tmp


@functools.lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> tuple[np.ndarray, ...]:
    """Noise fields larger than an image, drawn once per process; images take random crops of them.

    Drawing fresh full-size Gaussian fields for every image costs more than the rest of the rendering.
    The bank depends only on the size, so crops chosen by each image's own RNG stay deterministic.
    """
    rng = np.random.default_rng([2024, height, width])
    bh, bw = height + height // 2, width + width // 2
    fine = rng.standard_normal((bh, bw), dtype=np.float32)
    blotch = np.asarray(Image.fromarray(rng.standard_normal((bh // 6 + 2, bw // 6 + 2), dtype=np.float32))
                        .resize((bw, bh), Image.Resampling.BILINEAR))
    clouds = np.asarray(Image.fromarray(rng.standard_normal((bh // 12 + 2, bw // 12 + 2), dtype=np.float32))
                        .resize((bw, bh), Image.Resampling.BILINEAR))
    sensor = rng.standard_normal((3, bh, bw), dtype=np.float32)
    return fine, blotch, clouds, sensor


def _noise(height: int, width: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Independent random crops (and sign flips) of the bank's fine, blotch, cloud and sensor fields."""
    out = []
    for field in _noise_bank(height, width):
        oy = int(rng.integers(field.shape[-2] - height + 1))
        ox = int(rng.integers(field.shape[-1] - width + 1))
        crop = field[..., oy:oy + height, ox:ox + width]
        out.append(-crop if rng.random() < 0.5 else crop)
    return out


def render(domain: str, index: int, *, seed: int = 0, shift: float = 1.0, size: tuple[int, int] = (256, 512),
           split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Draw one image of a domain: (HxWx3 uint8 RGB, HxW uint8 Cityscapes label ids).

    Args:
        domain: "source" (GTA5-like) or "target" (Cityscapes-like).
        index: image index within its split; with ``seed``, ``domain`` and ``split`` it seeds the image's RNG.
        seed: world seed.
        shift: domain-shift strength of the source style (0 = the target's distribution).
        size: (H, W).
        split: "all" for the source, "train" or "val" for the target.
    """
    style = domain_style(domain, shift)
    if split not in _SPLIT_CODE:
        raise ConfigError(f"unknown split {split!r}: use one of {list(_SPLIT_CODE)}")
    rng = np.random.default_rng([seed, _DOMAIN_CODE[domain], _SPLIT_CODE[split], index])
    sc = _Scene(size[0], size[1], style, rng)
    sc.plan_sides()
    sc.draw_sky()
    sc.draw_ground()
    sc.draw_skyline()
    sc.draw_sides()
    sc.plan_objects()
    sc.draw_objects()
    sc.draw_bonnet()
    image = sc.finish()
    lab = sc.cv.lab
    if domain == "target" and rng.random() < 0.25:
        # annotators leave small unlabeled gaps in the cluttered distance; the content stays visible
        cy = sc.cv.y_h + rng.uniform(-0.05, 0.05) * size[0]
        cx = sc.cv.x_v + rng.uniform(-0.25, 0.25) * size[1]
        rr = 0.015 * size[1]
        yy, xx = np.ogrid[: size[0], : size[1]]
        lab[((yy - cy) ** 2 + (xx - cx) ** 2) < rr * rr] = ID["unlabeled"]
    if domain == "target":
        # Cityscapes labels a thin rectified-image border and the region outside the ROI as void
        b = max(1, round(size[1] / 256))
        lab[:, :b] = ID["rectification border"]
        lab[:, -b:] = ID["rectification border"]
        lab[:b, :] = ID["out of roi"]
    return image, lab


# ----------------------------------------------------------------------------------------------------------
# Writing a world
# ----------------------------------------------------------------------------------------------------------
def _target_names(n: int, cities: tuple[str, ...]) -> list[tuple[str, str]]:
    """(city, stem) for n images spread over contiguous city blocks, stems like aachen_000003_000019."""
    out, counters = [], {}
    for i in range(n):
        city = cities[i * len(cities) // max(n, 1)]
        seq = counters.get(city, 0)
        counters[city] = seq + 1
        out.append((city, f"{city}_{seq:06d}_{FRAME:06d}"))
    return out


def _tasks(seed: int, shift: float, n_source: int, n_train: int, n_val: int, source_size, target_size):
    digits = max(5, len(str(n_source)))
    for i in range(n_source):
        name = f"{i + 1:0{digits}d}.png"
        yield ("source", "all", i, seed, shift, tuple(source_size),
               f"GTA5/images/{name}", f"GTA5/labels/{name}")
    for split, n, cities in (("train", n_train, TRAIN_CITIES), ("val", n_val, VAL_CITIES)):
        for i, (city, stem) in enumerate(_target_names(n, cities)):
            yield ("target", split, i, seed, shift, tuple(target_size),
                   f"Cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png",
                   f"Cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png")


_WORK_ROOT: Path | None = None


def _init_worker(root: str) -> None:
    global _WORK_ROOT
    _WORK_ROOT = Path(root)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def save_rgb_png(path: str | Path, image: np.ndarray) -> None:
    """Write an HxWx3 uint8 array as a standard 8-bit RGB PNG, fast.

    Pillow tries every PNG row filter on every row, which makes saving cost as much as drawing the image.
    The "Up" filter for all rows, computed in one numpy subtraction, with Huffman-only deflate is several
    times faster and compresses sensor-noisy images as well.
    """
    h, w, c = image.shape
    flat = np.ascontiguousarray(image, dtype=np.uint8).reshape(h, w * c)
    raw = np.empty((h, w * c + 1), np.uint8)
    raw[:, 0] = 2  # filter type Up: each byte minus the byte above it
    raw[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=raw[1:, 1:])
    comp = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    data = comp.compress(raw.tobytes()) + comp.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                 + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))


def _render_task(task: tuple) -> tuple[str, np.ndarray]:
    domain, split, index, seed, shift, size, img_rel, lab_rel = task
    image, lab = render(domain, index, seed=seed, shift=shift, size=size, split=split)
    save_rgb_png(_WORK_ROOT / img_rel, image)
    label = Image.fromarray(lab)
    if domain == "source":
        label.putpalette(labels.LABEL_ID_PALETTE.tobytes())  # GTA5 ships P-mode PNGs of label ids
    label.save(_WORK_ROOT / lab_rel, compress_level=1)
    key = "source" if domain == "source" else f"target_{split}"
    return key, np.bincount(lab.ravel(), minlength=256)


def _check_params(seed, shift, n_source, n_train, n_val, source_size, target_size) -> dict:
    try:
        shift = float(shift)
    except (TypeError, ValueError):
        raise ConfigError(f"shift must be a number in [0, {MAX_SHIFT}], got {shift!r}") from None
    if not (0.0 <= shift <= MAX_SHIFT):
        raise ConfigError(f"shift must be in [0, {MAX_SHIFT}] (0 = no domain shift, 1 = default), got {shift}")
    for name, v in (("seed", seed), ("n_source", n_source), ("n_train", n_train), ("n_val", n_val)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"{name} must be an integer, got {v!r}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    for name, v in (("n_source", n_source), ("n_train", n_train), ("n_val", n_val)):
        if v < 1:
            raise ConfigError(f"{name} must be at least 1, got {v}")
    sizes = {}
    for name, v in (("source_size", source_size), ("target_size", target_size)):
        try:
            hw = tuple(int(x) for x in v)
        except (TypeError, ValueError):
            hw = ()
        if len(hw) != 2 or min(hw) < MIN_SIZE or hw != tuple(v):
            raise ConfigError(f"{name} must be (H, W) integers >= {MIN_SIZE}, got {v!r}")
        sizes[name] = list(hw)
    return {"generator_version": GENERATOR_VERSION, "seed": int(seed), "shift": shift, "n_source": int(n_source),
            "n_train": int(n_train), "n_val": int(n_val), **sizes}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_siblings(out: Path) -> None:
    """Remove temporary folders left by killed generations of this world (their process is gone)."""
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{out.name}.*-*"):
        parts = p.name[len(out.name) + 2:].split("-")
        if len(parts) >= 2 and parts[0] in ("tmp", "old") and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            shutil.rmtree(p, ignore_errors=True)


def _is_replaceable(out: Path) -> bool:
    """Only ever delete a folder that is (or was being made into) a synthetic world."""
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    names = {p.name for p in out.iterdir()}
    if "manifest.json" in names:
        try:
            m = json.loads((out / "manifest.json").read_text())
            # early versions run as `python -m` recorded "__main__" as their generator
            return m.get("generator") in (GENERATOR, "__main__") and "generator_version" in m
        except (OSError, ValueError, AttributeError):
            return False
    return names <= {"GTA5", "Cityscapes"}


def generate(out: str | Path, *, seed: int = 0, shift: float = 1.0, n_source: int = 400, n_train: int = 300,
             n_val: int = 100, source_size: tuple[int, int] = (264, 480), target_size: tuple[int, int] = (256, 512),
             workers: int | None = None, progress: bool = True) -> dict:
    """Generate the world into ``out`` (replacing a previous world there) and return its manifest.

    The world is written into a temporary sibling folder and renamed into place once complete, with
    ``manifest.json`` written last, so a killed generation never leaves a world that looks complete.

    Args:
        out: destination folder; it will contain ``GTA5/``, ``Cityscapes/`` and ``manifest.json``.
        seed: world seed; the same parameters give byte-identical files.
        shift: domain-shift strength, 0 (same distribution) to 2; 1 is the default GTA-like source.
        n_source: number of source (GTA5-like) images.
        n_train: number of target (Cityscapes-like) train images.
        n_val: number of target val images.
        source_size: (H, W) of source images.
        target_size: (H, W) of target images.
        workers: processes to draw with; default min(2, CPU count). 1 draws in this process.
        progress: show a tqdm progress bar.
    """
    out = Path(out)
    manifest = _check_params(seed, shift, n_source, n_train, n_val, source_size, target_size)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if not _is_replaceable(out):
        raise DatasetError(f"{out} exists and is not a synthetic world (no manifest.json of {GENERATOR}); "
                           "refusing to overwrite it: choose another --out folder or delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tasks = list(_tasks(manifest["seed"], manifest["shift"], n_source, n_train, n_val, source_size, target_size))
    try:
        for d in {str(Path(t[6]).parent) for t in tasks} | {str(Path(t[7]).parent) for t in tasks}:
            (tmp / d).mkdir(parents=True, exist_ok=True)
        counts = {"source": np.zeros(256, np.int64), "target_train": np.zeros(256, np.int64),
                  "target_val": np.zeros(256, np.int64)}
        presence = {k: np.zeros(256, np.int64) for k in counts}
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="synthetic world", unit="img", disable=not progress)
        try:
            if workers == 1:
                _init_worker(str(tmp))
                results = map(_render_task, tasks)
                pool = None
            else:
                ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
                pool = ctx.Pool(workers, initializer=_init_worker, initargs=(str(tmp),))
                results = pool.imap_unordered(_render_task, tasks, chunksize=4)
            try:
                for key, bc in results:
                    counts[key] += bc
                    presence[key] += bc > 0
                    bar.update(1)
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
        finally:
            bar.close()
        manifest.update(_class_summary(counts, presence))
        manifest["generator"] = GENERATOR
        manifest["layout"] = {"source": "GTA5 (images/, labels/ P-mode label ids)",
                              "target": "Cityscapes official (leftImg8bit/, gtFine/ labelIds)",
                              "train_cities": list(TRAIN_CITIES), "val_cities": list(VAL_CITIES)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _class_summary(counts: dict[str, np.ndarray], presence: dict[str, np.ndarray]) -> dict:
    """Per-domain class pixel fractions (of all pixels; void and ignore ids under "ignore") and image counts."""
    fractions, images = {}, {}
    domains = {"source": counts["source"], "target": counts["target_train"] + counts["target_val"]}
    for dom, c in domains.items():
        per = np.bincount(labels.ID_TO_TRAINID, weights=c, minlength=256)
        total = max(c.sum(), 1)
        frac = {name: round(float(per[i] / total), 6) for i, name in enumerate(labels.CLASS_NAMES)}
        frac["ignore"] = round(float(per[labels.IGNORE_INDEX] / total), 6)
        fractions[dom] = frac
    is_class = labels.ID_TO_TRAINID < labels.NUM_CLASSES
    for split, pres in presence.items():
        per = np.zeros(labels.NUM_CLASSES, np.int64)
        # each label id maps to at most one class, so summing per-id image counts counts images per class
        np.add.at(per, labels.ID_TO_TRAINID[is_class], pres[is_class])
        images[split] = {name: int(per[i]) for i, name in enumerate(labels.CLASS_NAMES)}
    return {"class_fractions": fractions, "images_with_class": images}


# ----------------------------------------------------------------------------------------------------------
# Reusing a world
# ----------------------------------------------------------------------------------------------------------
def _expected_files(m: dict) -> dict[str, int]:
    return {"GTA5/images": m["n_source"], "GTA5/labels": m["n_source"],
            "Cityscapes/leftImg8bit/train": m["n_train"], "Cityscapes/gtFine/train": m["n_train"],
            "Cityscapes/leftImg8bit/val": m["n_val"], "Cityscapes/gtFine/val": m["n_val"]}


def world_status(out: str | Path, **params) -> str | None:
    """None when ``out`` holds a complete world generated with ``params``, else why not (one line)."""
    out = Path(out)
    unknown = set(params) - set(DEFAULTS) - {"workers", "progress"}
    if unknown:
        raise ConfigError(f"unknown synthetic-world parameter(s) {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    want = _check_params(**{k: params.get(k, v) for k, v in DEFAULTS.items()})
    path = out / "manifest.json"
    if not path.is_file():
        return "absent" if not out.exists() else "incomplete (no manifest.json)"
    try:
        have = json.loads(path.read_text())
    except (OSError, ValueError):
        return "unreadable manifest.json"
    if not isinstance(have, dict):
        return "unreadable manifest.json"
    diff = [f"{k}: {have.get(k)!r} -> {want[k]!r}" for k in IDENTITY_KEYS if have.get(k) != want[k]]
    if diff:
        return "parameters differ (" + ", ".join(diff) + ")"
    for rel, n in _expected_files(want).items():
        found = sum(1 for _ in (out / rel).rglob("*.png")) if (out / rel).is_dir() else 0
        if found != n:
            return f"incomplete ({rel}: {found} of {n} files)"
    return None


def ensure_world(out: str | Path, **params) -> Path:
    """Return ``out`` if it holds the world ``params`` describe (see ``generate``), else (re)generate it.

    Prints one line when it generates, saying why (absent, incomplete, or which parameters differ).
    """
    out = Path(out)
    why = world_status(out, **params)
    if why is not None:
        print(f"synthetic world at {out}: {why}; generating", flush=True)
        generate(out, **params)
    return out


# ----------------------------------------------------------------------------------------------------------
# Measuring a world (used by the tests and the CLI summary)
# ----------------------------------------------------------------------------------------------------------
def _domain_files(root: Path, domain: str) -> list[tuple[Path, Path]]:
    if domain == "source":
        labels_dir = root / "GTA5" / "labels"
        return [(p, labels_dir / p.name) for p in sorted((root / "GTA5" / "images").glob("*.png"))]
    if domain == "target":
        pairs = []
        for p in sorted((root / "Cityscapes" / "leftImg8bit").glob("*/*/*_leftImg8bit.png")):
            rel = p.relative_to(root / "Cityscapes" / "leftImg8bit")
            lab = root / "Cityscapes" / "gtFine" / rel.parent / p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
            pairs.append((p, lab))
        return pairs
    raise ConfigError(f"unknown domain {domain!r}: use 'source' or 'target'")


def domain_stats(root: str | Path, domain: str, max_images: int | None = 200) -> dict:
    """Per-class statistics of a written domain, read back from its PNGs.

    Returns ``{"n_images", "pixels": (19,) int counts, "fraction": (19,) of all pixels,
    "mean_colour": (19, 3) mean RGB (NaN where absent), "std_colour": (19, 3)}``.
    """
    root = Path(root)
    pairs = _domain_files(root, domain)
    if not pairs:
        raise DatasetError(f"no {domain} images under {root}: generate a world with python -m datasets.synthetic")
    if max_images is not None:
        pairs = pairs[:max_images]
    n = labels.NUM_CLASSES
    pixels = np.zeros(n + 1, np.float64)
    total = 0
    s1 = np.zeros((n + 1, 3), np.float64)
    s2 = np.zeros((n + 1, 3), np.float64)
    for img_p, lab_p in pairs:
        img = np.asarray(Image.open(img_p).convert("RGB"), np.float64).reshape(-1, 3)
        t = labels.ids_to_train_ids(np.asarray(Image.open(lab_p))).ravel().astype(np.int64)
        t = np.minimum(t, n)  # ignore -> bin n
        total += t.size
        pixels += np.bincount(t, minlength=n + 1)
        for ch in range(3):
            s1[:, ch] += np.bincount(t, weights=img[:, ch], minlength=n + 1)
            s2[:, ch] += np.bincount(t, weights=img[:, ch] ** 2, minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1[:n] / pixels[:n, None]
        std = np.sqrt(np.maximum(s2[:n] / pixels[:n, None] - mean ** 2, 0.0))
    return {"n_images": len(pairs), "pixels": pixels[:n].astype(np.int64), "fraction": pixels[:n] / max(total, 1),
            "mean_colour": mean, "std_colour": std}


STUFF_CLASSES = ("road", "sidewalk", "building", "vegetation", "terrain", "sky")
"""Large regions in every image: their mean colours are the least noisy measure of the domain gap."""


def colour_gap(root: str | Path, max_images: int | None = 200, min_pixels: int = 200,
               classes: tuple[str, ...] | None = None) -> dict:
    """How far apart the domains look: per-class Euclidean distance of mean RGB colours (0..255 units).

    Returns ``{"per_class": {name: distance or None}, "median": float, "mean": float}``, the summaries over
    ``classes`` (default: all) with at least ``min_pixels`` pixels in both domains.
    """
    src, tgt = domain_stats(root, "source", max_images), domain_stats(root, "target", max_images)
    ok = (src["pixels"] >= min_pixels) & (tgt["pixels"] >= min_pixels)
    if classes is not None:
        unknown = set(classes) - set(labels.CLASS_NAMES)
        if unknown:
            raise ConfigError(f"unknown class name(s) {sorted(unknown)}; valid: {list(labels.CLASS_NAMES)}")
        ok &= np.isin(np.asarray(labels.CLASS_NAMES), list(classes))
    dist = np.linalg.norm(src["mean_colour"] - tgt["mean_colour"], axis=1)
    per = {name: (round(float(dist[i]), 2) if ok[i] else None) for i, name in enumerate(labels.CLASS_NAMES)}
    vals = dist[ok]
    return {"per_class": per, "median": float(np.median(vals)) if vals.size else float("nan"),
            "mean": float(np.mean(vals)) if vals.size else float("nan")}


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x512, got {text!r}") from None
    return h, w


def _summary(m: dict) -> str:
    lines = [f"source (GTA5): {m['n_source']} images {m['source_size'][0]}x{m['source_size'][1]}; "
             f"target (Cityscapes): {m['n_train']} train + {m['n_val']} val images "
             f"{m['target_size'][0]}x{m['target_size'][1]}; seed {m['seed']}, shift {m['shift']}",
             f"{'class':<14}{'source %':>10}{'target %':>10}"]
    fr = m["class_fractions"]
    for name in (*labels.CLASS_NAMES, "ignore"):
        lines.append(f"{name:<14}{100 * fr['source'][name]:>10.2f}{100 * fr['target'][name]:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Generate (or reuse) a synthetic world from the command line; returns its manifest."""
    p = argparse.ArgumentParser(prog="python -m datasets.synthetic", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="destination folder, e.g. data/synthetic")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--shift", type=float, default=DEFAULTS["shift"], help="domain-shift strength, 0..2 (0 = none)")
    p.add_argument("--n-source", type=int, default=DEFAULTS["n_source"])
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"])
    p.add_argument("--n-val", type=int, default=DEFAULTS["n_val"])
    p.add_argument("--source-size", type=_size, default=DEFAULTS["source_size"], help="HxW, default 264x480")
    p.add_argument("--target-size", type=_size, default=DEFAULTS["target_size"], help="HxW, default 256x512")
    p.add_argument("--workers", type=int, default=None, help="processes (default min(2, CPUs))")
    p.add_argument("--force", action="store_true", help="regenerate even if a matching world exists")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    params = dict(seed=a.seed, shift=a.shift, n_source=a.n_source, n_train=a.n_train, n_val=a.n_val,
                  source_size=a.source_size, target_size=a.target_size)
    out = Path(a.out)
    why = "forced" if a.force else world_status(out, **params)
    start = time.perf_counter()
    if why is None:
        manifest = json.loads((out / "manifest.json").read_text())
        print(f"reusing the synthetic world at {out} (manifest matches)")
    else:
        print(f"synthetic world at {out}: {why}; generating")
        manifest = generate(out, workers=a.workers, progress=not a.no_progress, **params)
        print(f"generated in {time.perf_counter() - start:.1f} s")
    print(_summary(manifest))
    return manifest


def cli(argv: list[str] | None = None) -> int:
    """The program: ``main`` with a user error printed as one line (no traceback); returns the exit status."""
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
