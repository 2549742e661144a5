"""The finishing pass that turns painted flat colours into a picture of the domain.

The scene is lit first (class textures at three scales, cast shadows hard or soft, the conditions' light, wet
surfaces that mirror what stands above them, aerial haze), then recorded: by a game renderer (bloom around
bright regions, a contrasty filmic curve, no sensor) or by a car's camera (lens blur, motion blur, vignetting,
photon and read noise, a logarithmic compression curve of its own per image, colour noise of demosaicking),
as the style mixes them; last, the domain's colour grading.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from .canvas import Canvas
from .conditions import Conditions
from .ids import ID
from .style import GROUND_LUT, WET_LUT, Style, texture_luts


def finish(cv: Canvas, sky_horizon: np.ndarray, cloudiness: float) -> np.ndarray:
    """The HxWx3 uint8 RGB image of a painted canvas, in its style and conditions (draws from the canvas's RNG)."""
    r, st, cond = cv.rng, cv.style, cv.cond
    fine, mid, coarse, clouds, sensor, chroma = _noise(cv.H, cv.W, r)
    _add_clouds(cv, clouds, cloudiness)
    mod = _texture_and_shadows(cv, fine, mid, coarse)
    light = np.asarray(cond.light, np.float32)
    rad = cv.img * mod
    rad *= light[:, None, None]
    if cond.wet > 0:
        _wet_surfaces(cv, rad, coarse)
    # aerial perspective: far things fade towards the horizon colour
    haze = st.haze * r.uniform(0.6, 1.4)
    a = np.exp(cv.dep * np.float32(-1.0 / 90.0))
    a *= -haze
    a += haze
    rad *= 1.0 - a
    rad += a * (sky_horizon * light)[:, None, None]
    if st.bloom > 0:
        _bloom(rad, st.bloom, cv.px)
    _optics(cv, rad, st.blur * cv.px * r.uniform(0.8, 1.2), cond.motion * cv.px)
    if st.vignette > 0:
        rad *= _vignette(cv.H, cv.W, st.vignette)
    if st.noise > 0 or st.shot > 0:
        level = np.sqrt(np.maximum(rad, 0.0))
        level *= np.float32(st.shot / 255.0)
        level += np.float32(st.noise / 255.0)
        level *= sensor
        rad += level
    return _develop(rad, st, cond, chroma)


def _add_clouds(cv: Canvas, clouds: np.ndarray, cloudiness: float) -> None:
    """Clouds whiten the sky where the low-frequency field is high."""
    rows = int(min(max(math.ceil(cv.y_h + 2), 1), cv.H))
    cloud = np.clip((clouds[:rows] - 0.6 + cloudiness) * 0.6, 0.0, 0.75)
    cloud *= cv.lab[:rows] == ID["sky"]
    for plane in cv.img[:, :rows]:
        plane += cloud * (np.float32(0.92) - plane)


def _texture_and_shadows(cv: Canvas, fine: np.ndarray, mid: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Per-pixel brightness: class textures at three scales times cast and contact shadows."""
    lab = cv.lab
    f_lut, m_lut, c_lut = texture_luts(cv.style.texture_style)
    mod = f_lut[lab] * fine
    mod += m_lut[lab] * mid
    mod += c_lut[lab] * coarse
    mod += 1.0
    shade = cv.shade
    soft = cv.style.shadow_soft * cv.px
    if soft > 0.5 and cv.cond.sun > 0:
        shade = _smooth(shade, soft)
    # shadows darken the ground only: whatever was painted over it stays lit
    mod *= np.where(GROUND_LUT[lab], shade, np.float32(1.0))
    return mod


def _wet_surfaces(cv: Canvas, rad: np.ndarray, coarse: np.ndarray) -> None:
    """Rain darkens the road and paving and makes them mirror what stands above them, most at grazing angles
    and in puddles."""
    st, wet = cv.style, cv.cond.wet
    row0 = int(min(max(math.floor(cv.y_h + 1.0), 0), cv.H - 1))
    below = slice(row0, cv.H)
    film = WET_LUT[cv.lab[below]] * np.float32(wet)
    if not film.any():
        return
    rows = np.arange(row0, cv.H, dtype=np.float32) + 0.5
    mirror = np.clip(np.round(2.0 * cv.y_h - rows - 0.5), 0, cv.H - 1).astype(np.int64)
    grazing = np.clip(1.15 - (rows - cv.y_h) / max(cv.H - cv.y_h, 1.0), 0.25, 1.0).astype(np.float32)
    puddles = np.clip(coarse[below] * 4.0 + 0.5, 0.0, 1.0)
    weight = film * np.float32(st.reflect) * grazing[:, None] * (0.45 + 0.55 * puddles)
    darken = 1.0 - np.float32(0.35) * film
    for plane in rad:
        reflected = _smooth(plane[mirror], 1.5 * cv.px)
        plane[below] *= darken
        plane[below] += weight * (reflected - plane[below])


def _bloom(rad: np.ndarray, strength: float, px: float) -> None:
    """A game's glow: light spills from bright regions (sky, paint, highlights) into their surroundings."""
    bright = np.maximum(rad.mean(axis=0) - np.float32(0.7), 0.0)
    if not bright.any():
        return
    glow = _smooth(bright, 10.0 * px) * np.float32(strength * 1.6)
    rad += glow[None] * np.asarray([1.0, 0.97, 0.9], np.float32)[:, None, None]


def _optics(cv: Canvas, rad: np.ndarray, blur: float, motion: float) -> None:
    """Lens blur, then the blur of the car's forward motion: the scene streams out of the vanishing point,
    sideways at the image's sides and downwards below the horizon."""
    tmp = np.empty(rad.shape[1:], np.float32)
    if blur > 0.15:
        for plane in rad:
            _blur_plane(plane, blur, tmp)
    n = int(round(motion))
    if n < 2:
        return
    wx = np.clip(np.abs(cv.xc - cv.x_v) / (0.5 * cv.W), 0.0, 1.0)[None, :]
    wy = np.clip((cv.yc - cv.y_h) / max(cv.H - cv.y_h, 1.0), 0.0, 1.0)[:, None]
    for plane in rad:
        h = _box(plane, n, axis=1)
        v = _box(plane, n, axis=0)
        h -= plane
        h *= wx
        v -= plane
        v *= wy
        plane += h
        plane += v


def _box(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Centred moving average of length n along ``axis``, edges repeated."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (n // 2 + 1, n - n // 2)
    c = np.cumsum(np.pad(x, pad, mode="edge"), axis=axis, dtype=np.float32)
    length = x.shape[axis]
    hi = [slice(None)] * 2
    lo = [slice(None)] * 2
    hi[axis] = slice(n, n + length)
    lo[axis] = slice(0, length)
    return (c[tuple(hi)] - c[tuple(lo)]) * np.float32(1.0 / n)


@functools.lru_cache(maxsize=4)
def _vignette(height: int, width: int, strength: float) -> np.ndarray:
    """The lens's fall-off towards the corners (cos^4-like), 1 at the centre."""
    y = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    x = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    r2 = (x[None, :] ** 2 + y[:, None] ** 2) * 2.0
    return (1.0 - strength * r2).astype(np.float32)


def _develop(rad: np.ndarray, st: Style, cond: Conditions, chroma: np.ndarray) -> np.ndarray:
    """Tone curve (the game's filmic S-curve and the camera's logarithmic compression, mixed by the style),
    colour grading, demosaicking noise, 8 bits. The camera's curve is the image's own: its strength, its black
    and white points and its mid-tones differ from one image to the next, as does its colourfulness."""
    x = np.maximum(rad, 0.0)
    x *= np.float32(st.brightness)
    y = np.zeros_like(x)
    if st.tone < 1.0:
        g = np.float32(2.0)
        s = np.tanh(g * (x - np.float32(0.5)))
        s *= np.float32(0.5 / math.tanh(0.5 * 2.0))
        s += 0.5
        y += np.float32(1.0 - st.tone) * s
    if st.tone > 0.0:
        lg = np.log1p(np.float32(cond.tone_k) * x)
        lo, hi = np.percentile(lg.mean(axis=0)[::5, ::5], (0.5, 99.5))
        lg -= np.float32(lo)
        lg *= np.float32(1.0 / max(hi - lo, 1e-3))
        np.maximum(lg, 0.0, out=lg)
        lg **= np.float32(1.25 * cond.gamma)  # the LDR images' dark, flat look
        lg *= np.float32(st.tone)
        y += lg
    saturation = st.saturation * cond.saturation
    sat = saturation * np.eye(3) + (1.0 - saturation) / 3.0
    grade = (np.diag(st.tint) @ (st.contrast * sat)).astype(np.float32)
    offset = (np.asarray(st.tint) * 0.45 * (1.0 - st.contrast)).astype(np.float32)
    out = np.empty((*x.shape[1:], 3), np.uint8)
    acc = np.empty(x.shape[1:], np.float32)
    tmp = np.empty(x.shape[1:], np.float32)
    for c in range(3):
        np.multiply(y[0], grade[c, 0], out=acc)
        acc += np.multiply(y[1], grade[c, 1], out=tmp)
        acc += np.multiply(y[2], grade[c, 2], out=tmp)
        acc += offset[c]
        acc *= 255.0
        if st.chroma > 0.05:
            acc += np.multiply(chroma[c], np.float32(st.chroma), out=tmp)
        acc += 0.5
        np.clip(acc, 0.0, 255.0, out=acc)
        out[..., c] = acc
    return out


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """A wide, cheap blur of a 2-D float plane (box-downsample by about sigma, bilinear back up)."""
    f = max(1, int(round(sigma)))
    if f == 1:
        return x.copy()
    h, w = x.shape
    small = Image.fromarray(np.ascontiguousarray(x, np.float32)).resize(
        (max(1, w // f), max(1, h // f)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), np.float32)


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


def _upsampled(rng: np.random.Generator, shape: tuple[int, ...], factor: int) -> np.ndarray:
    """Gaussian noise drawn at 1/factor resolution and bilinearly enlarged: texture of that grain size."""
    bh, bw = shape[-2:]
    out = []
    for _ in range(shape[0] if len(shape) == 3 else 1):
        small = rng.standard_normal((bh // factor + 2, bw // factor + 2), dtype=np.float32)
        out.append(np.array(Image.fromarray(small).resize((bw, bh), Image.Resampling.BILINEAR)))
    return np.stack(out) if len(shape) == 3 else out[0]


@functools.lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> tuple[np.ndarray, ...]:
    """Noise fields larger than an image, drawn once per process; images take random crops of them.

    Drawing fresh full-size Gaussian fields for every image costs more than the rest of the rendering.
    The bank depends only on the size, so crops chosen by each image's own RNG stay deterministic.
    Grain sizes are in pixels at width 512 (scaled to the image): fine 2, mid 5, coarse 12, clouds 16,
    demosaicking colour noise 2; sensor noise is per pixel.
    """
    rng = np.random.default_rng([2025, height, width])
    bh, bw = height + height // 2, width + width // 2
    px = width / 512.0

    def grain(size: float) -> int:
        return max(1, round(size * px))

    fine = _upsampled(rng, (bh, bw), grain(2))
    fine *= np.float32(1.0 / max(fine.std(), 1e-6))
    mid = _upsampled(rng, (bh, bw), grain(5))
    mid *= np.float32(1.0 / max(mid.std(), 1e-6))
    coarse = _upsampled(rng, (bh, bw), grain(12))
    coarse *= np.float32(1.0 / max(coarse.std(), 1e-6))
    clouds = _upsampled(rng, (bh, bw), grain(16))
    sensor = rng.standard_normal((3, bh, bw), dtype=np.float32)
    chroma = _upsampled(rng, (3, bh, bw), grain(2))
    chroma -= chroma.mean(axis=0, keepdims=True)  # colour, not brightness
    chroma *= np.float32(1.0 / max(chroma.std(), 1e-6))
    return fine, mid, coarse, clouds, sensor, chroma


def _noise(height: int, width: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Independent random crops (and sign flips) of the bank's fields."""
    out = []
    for field in _noise_bank(height, width):
        oy = int(rng.integers(field.shape[-2] - height + 1))
        ox = int(rng.integers(field.shape[-1] - width + 1))
        crop = field[..., oy:oy + height, ox:ox + width]
        out.append(-crop if rng.random() < 0.5 else crop)
    return out
