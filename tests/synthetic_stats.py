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
