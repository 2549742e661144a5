"""Prepared datasets: decode, resize and convert the labels once, then load items several times faster.

    python -m datasets.prepare --cityscapes /data/Cityscapes --gta5 /data/GTA5
    python -m datasets.prepare --gta5 /data/GTA5 --gta5-size 720,1280 --label-format color --workers 8

This module makes the prepared sets; their format and how a dataset finds its set are ``datasets.cache``.
Each set is one folder under the cache folder (``data/cache`` under the repository root unless told
otherwise; never inside a dataset folder) holding the decoded, resized images and train-id labels as
``.npy`` arrays and a ``manifest.json``, written into a temporary folder and renamed into place.

``Cityscapes(...)`` and ``GTA5(...)`` built with a ``size`` use a prepared set automatically when it
exists, matches their settings and its source files are unchanged: it replaces decoding and resizing only,
so transforms (augmentation) and per-sample seeding run exactly as on the raw files. A stale or incomplete
set is ignored with a one-line note saying how to rebuild it. Cityscapes is prepared per split; GTA5 as a
whole root, which serves its "all", "train" and "val" splits.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from datasets._base import SegmentationDataset
from datasets.cache import (ARRAYS, DEFAULT_CACHE_DIR, MANIFEST, StaleCache, check_cache, find_cache, identity,
                            make_manifest, relative_samples, source_stats, unit_dir)
from datasets.cityscapes import LABEL_SOURCES, Cityscapes
from datasets.gta5 import GTA5, LABEL_FORMATS
from utils.data import StoppingLoader, spare_cores
from utils.distributed import main_first
from utils.config import MIN_SIDE, SizeError, format_value, parse_size
from utils.errors import ConfigError, DatasetError, OutputError
from utils.paths import writable_folder

__all__ = ["prepare", "use_prepared", "use_prepared_for_demo", "loader_throughput", "main", "DEFAULT_SIZES"]

# The sizes the step scripts train at by default on the real datasets.
DEFAULT_SIZES = {"cityscapes": (512, 1024), "gta5": (720, 1280)}


def _free_bytes(folder: Path) -> int:
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def prepare(ds: SegmentationDataset, cache_dir: str | Path | None = None, *, workers: int = 0,
            progress: bool = True, force: bool = False) -> Path:
    """Write the prepared set serving ``ds`` (atomically) and return its folder; a fresh one is kept.

    Args:
        ds: a Cityscapes or GTA5 dataset with a ``size``; for GTA5 prepare ``split="all"`` so that every
            split can use it. Its transform is not applied.
        cache_dir: the cache folder (None: :func:`resolve_cache_dir`); it may not lie inside the dataset root.
        workers: DataLoader worker processes decoding the files.
        progress: show a progress bar.
        force: rebuild even when a fresh set exists.
    """
    folder = unit_dir(ds, cache_dir)
    cache_root = folder.parent
    root = Path(ds.root).resolve()
    if cache_root.resolve().is_relative_to(root):
        raise ConfigError(f"the cache folder {cache_root} lies inside the dataset root {root}: choose a folder "
                          "outside it (--cache-dir); dataset folders are never written to.")
    if not force and folder.is_dir():
        try:
            check_cache(ds, folder)
            return folder
        except StaleCache:
            pass
    writable_folder(cache_root, "the cache folder", "Choose another --cache-dir (cache_dir), or make it writable.")
    plain = copy.copy(ds)
    plain.transform, plain._cache = None, None
    samples = relative_samples(plain)
    # Stat before decoding: a file changed while this runs then reads as stale afterwards, never as fresh.
    stats = [source_stats(Path(ds.root), s) for s in samples]
    n, (h, w) = len(plain), plain.size
    need = n * 4 * h * w
    if need > _free_bytes(cache_root):
        raise DatasetError(
            f"preparing {n} images at {h}x{w} needs {need / 1e9:.1f} GB but {cache_root} has "
            f"{_free_bytes(cache_root) / 1e9:.1f} GB free: free some space or choose another --cache-dir."
        )
    cache_root.mkdir(parents=True, exist_ok=True)
    # mkdir rather than mkdtemp: the folder gets the user's umask permissions (mkdtemp's are owner-only).
    tmp = cache_root / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        start = time.perf_counter()
        images = np.lib.format.open_memmap(tmp / ARRAYS["images"], mode="w+", dtype=np.uint8, shape=(n, 3, h, w))
        labels = np.lib.format.open_memmap(tmp / ARRAYS["labels"], mode="w+", dtype=np.uint8, shape=(n, h, w))
        # A private generator: the loader's seed draw must not move the global RNG, or a run that prepares
        # would initialise its model differently from the same run finding the set already prepared.
        loader = StoppingLoader(plain, batch_size=8, shuffle=False, num_workers=workers,
                                generator=torch.Generator().manual_seed(0))
        from tqdm import tqdm

        i = 0
        with tqdm(total=n, desc=f"preparing {folder.name}", unit="img", disable=not progress,
                  file=sys.stderr) as bar:
            for image, label in loader:
                images[i:i + len(image)] = image.numpy()
                labels[i:i + len(label)] = label.numpy()  # train ids 0..18 and 255 fit a uint8
                i += len(image)
                bar.update(len(image))
        images.flush()
        labels.flush()
        del images, labels
        manifest = make_manifest(identity(ds), samples, stats, (h, w), time.perf_counter() - start)
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        old = None
        if folder.exists():
            old = cache_root / f".old-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            folder.rename(old)
        tmp.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def use_prepared(ds: SegmentationDataset, cache_dir: str | Path | None = None, *, workers: int = 0) -> bool:
    """Prepare the set serving ``ds`` when it is absent or stale, then make ``ds`` read it; True when it does.

    For small datasets read many times (the synthetic world over several epochs), where preparing costs
    less than one epoch of decoding. A GTA5 split is served by the prepared whole root.

    Args:
        ds: a Cityscapes or GTA5 dataset with a ``size``; others are left alone (False).
        cache_dir: the cache folder (None: :func:`resolve_cache_dir`).
        workers: DataLoader worker processes decoding the files.
    """
    if not isinstance(ds, (Cityscapes, GTA5)) or ds.size is None:
        return False
    whole = ds
    if isinstance(ds, GTA5) and ds.split != "all":
        whole = GTA5(ds.root, "all", size=ds.size, label_format=ds.label_format, cache_dir=False)
    prepare(whole, cache_dir, workers=workers, progress=False)
    ds._cache = find_cache(ds, cache_dir, notify=False)
    return ds._cache is not None


def use_prepared_for_demo(ds: SegmentationDataset, images_read: int) -> None:
    """A demo that reads the synthetic world's training images at least twice decodes them once instead,
    into ``<world>/cache`` (deleted with the world); rank 0 writes it under torchrun.

    Args:
        ds: the whole training set of the synthetic world (before any ``TRAIN_IMAGES`` limit).
        images_read: images the run will read (epochs x images per epoch).
    """
    if images_read < 2 * len(ds):
        return
    cache_dir = Path(ds.root).resolve().parent / "cache"
    with main_first():
        try:
            use_prepared(ds, cache_dir)
        except (OSError, DatasetError, OutputError) as e:  # a read-only or full disk costs speed, never the run
            print(f"note: could not prepare the demo images in {cache_dir} ({e}); reading the PNGs instead")


def _head(ds: SegmentationDataset, n: int) -> SegmentationDataset:
    """A copy of ``ds`` restricted to its first ``n`` items."""
    sub = copy.copy(ds)
    sub.samples = ds.samples[:n]
    for name in ("label_kinds", "ids"):
        if hasattr(ds, name):
            setattr(sub, name, getattr(ds, name)[:n])
    return sub


def _images_per_second(ds: SegmentationDataset, batch_size: int, num_workers: int, min_seconds: float) -> float:
    loader = StoppingLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        persistent_workers=num_workers > 0)
    for _ in loader:  # warm-up: worker start-up and the OS file cache are not what is measured
        pass
    count, start = 0, time.perf_counter()
    while True:
        for images, _ in loader:
            count += len(images)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return count / elapsed


def loader_throughput(root: str | Path, kind: str, size: tuple[int, int], n_images: int = 64,
                      cache_dir: str | Path | None = None, batch_size: int = 8, num_workers: int = 0,
                      label_format: str = "auto", min_seconds: float = 1.0) -> dict[str, float]:
    """Images per second of a DataLoader over the raw files vs over a prepared set of the same images.

    The first ``n_images`` items (Cityscapes train, or GTA5) are prepared into a temporary folder, which is
    deleted afterwards; preparation time is not measured. Each side gets one untimed warm-up pass, then
    full passes until ``min_seconds`` have elapsed.

    Args:
        root: dataset root.
        kind: "cityscapes" or "gta5".
        size: (H, W) the items are resized to.
        n_images: how many items to iterate over.
        cache_dir: folder in which the temporary prepared set is made (None: the system's temp folder).
        batch_size: loader batch size.
        num_workers: loader worker processes.
        label_format: GTA5 label format.
        min_seconds: minimum timed duration per side.

    Returns:
        ``{"raw": images/s, "prepared": images/s}``.
    """
    kind = kind.lower()
    if kind == "cityscapes":
        ds = Cityscapes(root, "train", size=size, cache_dir=False)
    elif kind == "gta5":
        ds = GTA5(root, "all", size=size, label_format=label_format, cache_dir=False)
    else:
        raise ConfigError(f"kind must be 'cityscapes' or 'gta5', got {kind!r}")
    raw = _head(ds, max(1, n_images))
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prepared-bench-", dir=cache_dir) as tmp:
        prepare(raw, tmp, workers=num_workers, progress=False)
        cached = copy.copy(raw)
        cached._cache = find_cache(raw, tmp, notify=False)
        if cached._cache is None:
            raise DatasetError(f"the prepared set written to {tmp} could not be read back")
        return {"raw": _images_per_second(raw, batch_size, num_workers, min_seconds),
                "prepared": _images_per_second(cached, batch_size, num_workers, min_seconds)}


def _size(words: list[str], parser: argparse.ArgumentParser, flag: str) -> tuple[int, int]:
    """One size as typed: ``H,W`` or ``HxW`` (the project's syntax), or ``H W`` (two words)."""
    try:
        return parse_size(",".join(words) if len(words) == 2 else " ".join(words), min_side=MIN_SIDE)
    except SizeError as e:
        parser.error(f"--{flag.replace('_', '-')}: {e}")


def main(argv: list[str] | None = None) -> dict[str, str]:
    """Command line: prepare Cityscapes and/or GTA5; returns {description: prepared folder}.

    Args:
        argv: arguments (None: ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(
        prog="python -m datasets.prepare",
        description="Decode, resize and convert a dataset once into a cache that loads several times faster. "
                    "Cityscapes(...) and GTA5(...) with the same root, size and label setting then use it "
                    "automatically. Dataset folders are only read.")
    p.add_argument("--cityscapes", metavar="ROOT", help="Cityscapes root (official or course layout)")
    p.add_argument("--gta5", metavar="ROOT", help="GTA5 root (images/ and labels/); prepared as a whole, "
                   "serving the all, train and val splits")
    p.add_argument("--cityscapes-size", nargs="+", action="append", metavar="H,W",
                   help="Cityscapes size, H,W or HxW (H W also works); repeat for several (default "
                        f"{format_value(DEFAULT_SIZES['cityscapes'])})")
    p.add_argument("--gta5-size", nargs="+", action="append", metavar="H,W",
                   help=f"GTA5 size, H,W or HxW; repeat for several (default {format_value(DEFAULT_SIZES['gta5'])})")
    p.add_argument("--split", nargs="+", choices=("train", "val"), default=["train", "val"],
                   help="Cityscapes splits (default: train val)")
    p.add_argument("--label-source", choices=LABEL_SOURCES, default="auto", help="Cityscapes label files")
    p.add_argument("--label-format", choices=LABEL_FORMATS, default="auto", help="GTA5 label format")
    p.add_argument("--cache-dir", default=None,
                   help=f"cache folder (default {DEFAULT_CACHE_DIR}); never inside a dataset folder")
    p.add_argument("--workers", type=int, default=spare_cores(),
                   help="decoding processes (default: every spare core, at most 8)")
    p.add_argument("--force", action="store_true", help="rebuild even when a fresh prepared set exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if not args.cityscapes and not args.gta5:
        p.error("give --cityscapes ROOT and/or --gta5 ROOT")
    if args.workers < 0:
        p.error("--workers must be 0 or more")
    for flag in ("cityscapes_size", "gta5_size"):
        setattr(args, flag, [_size(words, p, flag) for words in getattr(args, flag) or []])
    cache_dir = None if args.cache_dir is None else Path(args.cache_dir).absolute()

    jobs = []
    if args.cityscapes:
        for h, w in args.cityscapes_size or [DEFAULT_SIZES["cityscapes"]]:
            for split in dict.fromkeys(args.split):
                jobs.append(Cityscapes(args.cityscapes, split, size=(h, w), label_source=args.label_source,
                                       cache_dir=False))
    if args.gta5:
        for h, w in args.gta5_size or [DEFAULT_SIZES["gta5"]]:
            jobs.append(GTA5(args.gta5, "all", size=(h, w), label_format=args.label_format, cache_dir=False))
    done = {}
    for ds in jobs:
        h, w = ds.size
        what = f"{type(ds).__name__} {identity(ds)['split']} at {h}x{w}"
        folder = unit_dir(ds, cache_dir)
        fresh = False
        if not args.force and folder.is_dir():
            try:
                check_cache(ds, folder)
                fresh = True
            except StaleCache as e:
                print(f"{what}: rebuilding {folder} ({e})")
        if fresh:
            print(f"{what}: already prepared and up to date in {folder}")
        else:
            print(f"{what}: {len(ds)} images, {len(ds) * 4 * h * w / 1e9:.2f} GB -> {folder}")
            start = time.perf_counter()
            prepare(ds, cache_dir, workers=args.workers, progress=not args.no_progress, force=True)
            print(f"{what}: done in {time.perf_counter() - start:.1f} s")
        done[what] = str(folder)
    return done


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
