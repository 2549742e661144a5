"""The finishing pass that turns painted flat colours into a photo of the domain: clouds, textures, shadows,
aerial haze, exposure and colour grading, optical blur and sensor noise."""
from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from .canvas import Canvas
from .ids import ID
from .style import BLOTCH_LUT, FINE_LUT, GROUND_LUT, Style


def finish(cv: Canvas, sky_horizon: np.ndarray, cloudiness: float, sun_strength: float) -> np.ndarray:
    """The HxWx3 uint8 RGB image of a painted canvas, in its style (draws from the canvas's RNG)."""
    r, st = cv.rng, cv.style
    fine, blotch, clouds, sensor = _noise(cv.H, cv.W, r)
    _add_clouds(cv, clouds, cloudiness)
    mod = _texture_and_shadows(cv, fine, blotch)
    # aerial perspective: far things fade towards the horizon colour
    haze = st.haze * r.uniform(0.6, 1.4)
    a = np.exp(cv.dep * np.float32(-1.0 / 90.0))
    a *= -haze
    a += haze
    mod *= 1.0 - a
    A, hz, offset = _grading(st, r, sky_horizon, sun_strength)
    blur = st.blur * cv.px * r.uniform(0.8, 1.2)
    return _develop(cv.img, mod, a, A, hz, offset, blur, sensor, st.noise)


def _add_clouds(cv: Canvas, clouds: np.ndarray, cloudiness: float) -> None:
    """Clouds whiten the sky where the low-frequency field is high."""
    rows = int(min(max(math.ceil(cv.y_h + 2), 1), cv.H))
    cloud = np.clip((clouds[:rows] - 0.6 + cloudiness) * 0.6, 0.0, 0.75)
    cloud *= cv.lab[:rows] == ID["sky"]
    for plane in cv.img[:, :rows]:
        plane += cloud * (np.float32(0.92) - plane)


def _texture_and_shadows(cv: Canvas, fine: np.ndarray, blotch: np.ndarray) -> np.ndarray:
    """Per-pixel brightness: class textures times cast and contact shadows."""
    lab = cv.lab
    mod = FINE_LUT[lab] * fine
    mod += BLOTCH_LUT[lab] * blotch
    mod *= np.float32(cv.style.texture)
    mod += 1.0
    # shadows darken the ground only: whatever was painted over it stays lit
    mod *= np.where(GROUND_LUT[lab], cv.shade, np.float32(1.0))
    return mod


def _grading(st: Style, r: np.random.Generator, sky_horizon: np.ndarray,
             sun_strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(3x3 colour matrix, haze colour, offset) in 8-bit units.

    Illumination (exposure, tint, sunlight) and the domain's grading are linear in RGB, so they fold into
    one matrix applied once per pixel.
    """
    exposure = st.brightness * math.exp(r.normal(0.0, 0.12)) * (1.0 + 0.15 * sun_strength)
    light = np.asarray([1.0 + 0.06 * sun_strength, 1.0, 1.0 - 0.06 * sun_strength])
    light = light * (1.0 + r.normal(0.0, 0.03, 3)) * exposure
    sat = st.saturation * np.eye(3) + (1.0 - st.saturation) / 3.0
    grade = np.diag(st.tint) @ (st.contrast * sat)
    offset = np.asarray(st.tint) * 0.45 * (1.0 - st.contrast) * 255.0
    A = (grade @ np.diag(light)) * 255.0
    hz = (grade @ (sky_horizon * exposure)) * 255.0
    return A, hz, offset


def _develop(src: np.ndarray, mod: np.ndarray, a: np.ndarray, A: np.ndarray, hz: np.ndarray,
             offset: np.ndarray, blur: float, sensor: np.ndarray, noise: float) -> np.ndarray:
    """Apply brightness, grading and haze to the planar colours, then blur and noise, one channel at a time."""
    _, H, W = src.shape
    out = np.empty((H, W, 3), np.uint8)
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
        if noise > 0.05:
            acc += np.multiply(sensor[c], np.float32(noise), out=tmp)
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
