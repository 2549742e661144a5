"""Measuring a written synthetic world from its PNGs: per-class colour statistics and the colour gap between
the domains. Test helpers for tests/test_synthetic.py, not part of the generator."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from datasets import labels
from utils.errors import ConfigError, DatasetError

STUFF_CLASSES = ("road", "sidewalk", "building", "vegetation", "terrain", "sky")
"""Large regions in every image: their mean colours are the least noisy measure of the domain gap."""


def _domain_files(root: Path, domain: str) -> list[tuple[Path, Path]]:
    if domain == "source":
        labels_dir = root / "GTA5" / "labels"
        return [(p, labels_dir / p.name) for p in sorted((root / "GTA5" / "images").glob("*.png"))]
    if domain == "target":
        pairs = []
        for p in sorted((root / "Cityscapes" / "leftImg8bit").glob("*/*/*_leftImg8bit.png")):
            rel = p.relative_to(root / "Cityscapes" / "leftImg8bit")
            name = p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
            pairs.append((p, root / "Cityscapes" / "gtFine" / rel.parent / name))
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


def affine_residual(root: str | Path, max_images: int | None = 200, min_pixels: int = 5000) -> dict:
    """How much of the domains' class colour difference a global per-channel affine map leaves unexplained.

    Fits, per RGB channel, the least-squares map ``target_mean = a * source_mean + b`` over the class-mean
    colours of every class with at least ``min_pixels`` pixels in both domains (what re-normalising each input
    channel can do), and returns ``{"classes": n, "before": rms distance, "after": rms residual of the fit,
    "gain": (3,), "offset": (3,)}`` in 8-bit units.
    """
    src, tgt = domain_stats(root, "source", max_images), domain_stats(root, "target", max_images)
    ok = (src["pixels"] >= min_pixels) & (tgt["pixels"] >= min_pixels)
    s, t = src["mean_colour"][ok], tgt["mean_colour"][ok]
    gain, offset, residual = np.zeros(3), np.zeros(3), np.zeros_like(t)
    for ch in range(3):
        design = np.stack([s[:, ch], np.ones(len(s))], axis=1)
        (gain[ch], offset[ch]), *_ = np.linalg.lstsq(design, t[:, ch], rcond=None)
        residual[:, ch] = t[:, ch] - design @ np.asarray([gain[ch], offset[ch]])
    rms = lambda x: float(np.sqrt(np.mean(np.sum(x ** 2, axis=1))))  # noqa: E731
    return {"classes": int(ok.sum()), "before": rms(t - s), "after": rms(residual), "gain": gain, "offset": offset}


def per_image_brightness(root: str | Path, domain: str, class_name: str, max_images: int | None = 200,
                         min_pixels: int = 200) -> np.ndarray:
    """Mean brightness (mean of R, G, B, 8-bit) of one class in each image where it has ``min_pixels`` pixels."""
    pairs = _domain_files(Path(root), domain)[:max_images]
    k = labels.CLASS_NAMES.index(class_name)
    out = []
    for img_p, lab_p in pairs:
        img = np.asarray(Image.open(img_p).convert("RGB"), np.float64)
        mask = labels.ids_to_train_ids(np.asarray(Image.open(lab_p))) == k
        if mask.sum() >= min_pixels:
            out.append(img[mask].mean())
    return np.asarray(out)


def local_contrast(root: str | Path, domain: str, class_name: str, max_images: int | None = 200) -> float:
    """Fine detail of one class: the mean absolute difference between a pixel's brightness and the mean of its
    3x3 neighbourhood, over pixels whose whole neighbourhood is that class (edges excluded)."""
    pairs = _domain_files(Path(root), domain)[:max_images]
    k = labels.CLASS_NAMES.index(class_name)
    total, count = 0.0, 0
    for img_p, lab_p in pairs:
        lum = np.asarray(Image.open(img_p).convert("RGB"), np.float64).mean(axis=2)
        inside = labels.ids_to_train_ids(np.asarray(Image.open(lab_p))) == k
        box = sum(lum[1 + dy:lum.shape[0] - 1 + dy, 1 + dx:lum.shape[1] - 1 + dx]
                  for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
        whole = np.ones_like(box, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                whole &= inside[1 + dy:inside.shape[0] - 1 + dy, 1 + dx:inside.shape[1] - 1 + dx]
        diff = np.abs(lum[1:-1, 1:-1] - box)[whole]
        total += diff.sum()
        count += diff.size
    return total / max(count, 1)
