"""One image: a street sampled from its own RNG and painted back to front, then finished in its domain's style.

The order of the steps in ``render`` is the order of the RNG draws, so it is part of what a seed means:
reordering them changes every world.
"""
from __future__ import annotations

import math

import numpy as np

from utils.errors import ConfigError

from .canvas import Canvas
from .finish import finish
from .ground import draw_ground
from .ids import ID
from .objects import Drawable
from .placement import plan_objects
from .roadside import draw_frontages, draw_skyline
from .street import Street
from .style import domain_style

_DOMAIN_CODE = {"source": 0, "target": 1}
_SPLIT_CODE = {"all": 0, "train": 1, "val": 2}


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
    cv = Canvas(size[0], size[1], style, rng)
    street = Street.sample(cv)
    sky_horizon, cloudiness = _draw_sky(cv)
    draw_ground(cv, street)
    draw_skyline(cv)
    draw_frontages(cv, street)
    for _, obj in sorted(plan_objects(cv, street), key=_far_first):
        obj.draw(cv)
    _draw_bonnet(cv, sky_horizon)
    image = finish(cv, sky_horizon, cloudiness)
    if domain == "target":
        _mark_void_like_cityscapes(cv)
    return image, cv.lab


def _far_first(item: tuple[float, Drawable]) -> float:
    return -item[0]


def _draw_sky(cv: Canvas) -> tuple[np.ndarray, float]:
    """A vertical gradient down to a paler horizon (glowing orange at dusk); returns (horizon colour,
    cloudiness) for the finish."""
    cond = cv.cond
    top = cv.colour("sky", k=cond.sky)
    horizon = np.clip(top * 1.15 + 0.08, 0.0, 1.0)
    if cond.kind == "dusk":
        horizon = (horizon * 0.35 + np.asarray([0.98, 0.62, 0.36], np.float32) * 0.65).astype(np.float32)
    rows = int(min(max(math.ceil(cv.y_h + 2), 1), cv.H))
    t = np.clip(cv.yc[:rows] / max(cv.y_h, 1.0), 0.0, 1.0)[:, None, None]
    cv.img[:, :rows] = (top + (horizon - top) * t).transpose(2, 0, 1)
    cv.lab[:rows] = ID["sky"]
    cv.dep[:rows] = 0.0
    return horizon, cond.cloudiness


def _draw_bonnet(cv: Canvas, sky_horizon: np.ndarray) -> None:
    """The ego vehicle's bonnet along the bottom edge, reflecting the sky near its top."""
    r = cv.rng
    height = cv.style.bonnet * cv.H * r.uniform(0.85, 1.15)
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
    colour = body + (sky_horizon * 0.5 - body) * np.clip(1.0 - 4.0 * depth_in, 0.0, 1.0) * 0.6
    cv.paint(y0, cv.H, 0, cv.W, mask, ID["ego vehicle"], colour, None, None, 0.0)


def _mark_void_like_cityscapes(cv: Canvas) -> None:
    """The void labels of a Cityscapes annotation, drawn into the label map only (the image stays as is)."""
    rng, lab, (H, W) = cv.rng, cv.lab, cv.lab.shape
    if rng.random() < 0.25:
        # annotators leave small unlabeled gaps in the cluttered distance
        cy = cv.y_h + rng.uniform(-0.05, 0.05) * H
        cx = cv.x_v + rng.uniform(-0.25, 0.25) * W
        rr = 0.015 * W
        yy, xx = np.ogrid[:H, :W]
        lab[((yy - cy) ** 2 + (xx - cx) ** 2) < rr * rr] = ID["unlabeled"]
    # a thin rectified-image border, and the region outside the ROI at the top
    b = max(1, round(W / 256))
    lab[:, :b] = ID["rectification border"]
    lab[:, -b:] = ID["rectification border"]
    lab[:b, :] = ID["out of roi"]
