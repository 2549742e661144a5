"""The prepared-dataset cache: its on-disk format, where a dataset's prepared set lives, and reading it.

Each prepared set is one folder under the cache folder (``data/cache`` under the repository root unless
told otherwise; never inside a dataset folder) named after the dataset, split and size, holding
``images.npy`` (N x 3 x H x W uint8 RGB), ``labels.npy`` (N x H x W uint8 train ids, 255 = ignore) and
``manifest.json`` (settings, the source files with their sizes and modification times, and a key hashing
them). It is written into a temporary folder and renamed into place, so a folder with a manifest is
complete.

``Cityscapes(...)`` and ``GTA5(...)`` built with a ``size`` look their prepared set up here
(:func:`find_cache`) and use it when it exists, matches their settings and its source files are unchanged;
a stale or incomplete set is ignored with a one-line note saying how to rebuild it. Making the sets is
``datasets.prepare``'s job. This module knows datasets only through the attributes it reads
(:class:`Preparable`), so the dataset classes can import it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from utils.errors import ConfigError, DatasetError
from utils.paths import REPO_ROOT

# 2: images are downscaled with antialiasing (utils.ops.resize_image); sets of version 1 hold the old
# plain-bilinear pixels and must be rebuilt, not served beside raw files that now resize differently.
FORMAT_VERSION = 2
DEFAULT_CACHE_DIR = REPO_ROOT / "data" / "cache"
MANIFEST = "manifest.json"
ARRAYS = {"images": "images.npy", "labels": "labels.npy"}
KINDS = ("cityscapes", "gta5")

_noted: set[tuple[str, str]] = set()


class Preparable(Protocol):
    """What the cache reads of a dataset (``datasets.Cityscapes`` and ``datasets.GTA5`` have it all).

    ``cache_kind`` is "cityscapes" (which also has ``label_source``) or "gta5" (``label_format``).
    """

    cache_kind: str | None
    root: Path
    split: str
    size: tuple[int, int] | None
    samples: list[tuple[Path, Path]]


class StaleCache(Exception):
    """A prepared set that exists but cannot be used; the message says why."""


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``data/cache`` under the repository root.

    Args:
        cache_dir: a folder, or None.
    """
    return DEFAULT_CACHE_DIR if cache_dir is None else Path(cache_dir)


def _kind(ds: Preparable) -> str:
    kind = getattr(ds, "cache_kind", None)
    if kind not in KINDS:
        raise ConfigError(f"datasets.prepare handles Cityscapes and GTA5 datasets, not {type(ds).__name__}")
    return kind


def identity(ds: Preparable) -> dict:
    """Everything besides the source files that decides a prepared set's content.

    Args:
        ds: a Cityscapes or GTA5 dataset with a ``size``.
    """
    kind = _kind(ds)
    if ds.size is None:
        raise ConfigError("only datasets with a size (H, W) can be prepared: items of native size differ in shape")
    labels = {"label_source": ds.label_source} if kind == "cityscapes" else {"label_format": ds.label_format}
    return {"dataset": type(ds).__name__, "root": str(Path(ds.root).resolve()),
            "split": ds.split if kind == "cityscapes" else "all", "size": list(ds.size), "labels": labels}


def unit_dir(ds: Preparable, cache_dir: str | Path | None = None) -> Path:
    """The folder of the prepared set that serves ``ds``.

    Args:
        ds: a Cityscapes or GTA5 dataset with a ``size``.
        cache_dir: the cache folder (None: :func:`resolve_cache_dir`).
    """
    ident = identity(ds)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
    label = next(iter(ident["labels"].values()))
    h, w = ident["size"]
    return resolve_cache_dir(cache_dir) / f"{_kind(ds)}-{ident['split']}-{h}x{w}-{label}-{digest}"


def rebuild_command(ds: Preparable, cache_dir: str | Path | None = None) -> str:
    """The command line that (re)builds the prepared set serving ``ds``.

    Args:
        ds: a Cityscapes or GTA5 dataset with a ``size``.
        cache_dir: the cache folder (None: :func:`resolve_cache_dir`).
    """
    h, w = ds.size
    if _kind(ds) == "cityscapes":
        cmd = f"python -m datasets.prepare --cityscapes {ds.root} --split {ds.split} --cityscapes-size {h},{w}"
        if ds.label_source != "auto":
            cmd += f" --label-source {ds.label_source}"
    else:
        cmd = f"python -m datasets.prepare --gta5 {ds.root} --gta5-size {h},{w}"
        if ds.label_format != "auto":
            cmd += f" --label-format {ds.label_format}"
    folder = resolve_cache_dir(cache_dir)
    if folder != DEFAULT_CACHE_DIR:
        cmd += f" --cache-dir {folder}"
    return cmd


def relative_samples(ds: Preparable) -> list[tuple[str, str]]:
    """The dataset's (image, label) files relative to its root, as POSIX paths: how the manifest names them."""
    root = Path(ds.root)
    return [(Path(i).relative_to(root).as_posix(), Path(l).relative_to(root).as_posix()) for i, l in ds.samples]


def source_stats(root: Path, rel: tuple[str, str]) -> list[int]:
    """[image bytes, image mtime_ns, label bytes, label mtime_ns]."""
    out = []
    for name in rel:
        st = os.stat(root / name)
        out += [st.st_size, st.st_mtime_ns]
    return out


def make_manifest(ident: dict, samples: list[tuple[str, str]], stats: list[list[int]], size: tuple[int, int],
                  seconds: float) -> dict:
    """The manifest of a prepared set of ``samples`` (with their ``stats``) at ``size``.

    Args:
        ident: :func:`identity` of the dataset.
        samples: :func:`relative_samples`, in the arrays' row order.
        stats: :func:`source_stats` of each sample, taken before decoding.
        size: (H, W) of the items.
        seconds: how long preparing took.
    """
    n, (h, w) = len(samples), size
    source_hash = hashlib.sha256(json.dumps([samples, stats]).encode()).hexdigest()
    return {
        "format_version": FORMAT_VERSION, "identity": ident, "n": n,
        "key": hashlib.sha256(json.dumps([FORMAT_VERSION, ident, source_hash], sort_keys=True).encode()
                              ).hexdigest(),
        "source_hash": source_hash, "arrays": dict(ARRAYS),
        "image_shape": [n, 3, h, w], "label_shape": [n, h, w], "seconds": round(seconds, 1),
        "samples": [list(s) for s in samples], "stats": stats,
    }


class PreparedItems:
    """Items of one dataset served from a prepared set: ``item(index)`` -> (3xHxW uint8, HxW int64).

    The arrays are memory-mapped on first use in each process (DataLoader workers map their own).
    """

    def __init__(self, folder: Path, rows: list[int], n: int, size: tuple[int, int]) -> None:
        self.folder, self.rows, self.n, self.size = folder, rows, n, tuple(size)
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def open(self) -> tuple[np.ndarray, np.ndarray]:
        """The memory-mapped (images, labels) arrays; StaleCache when missing, truncated or misshapen."""
        h, w = self.size
        arrays = []
        for key, shape in (("images", (self.n, 3, h, w)), ("labels", (self.n, h, w))):
            path = self.folder / ARRAYS[key]
            try:
                arr = np.load(path, mmap_mode="r")
            except FileNotFoundError:
                raise StaleCache(f"{ARRAYS[key]} is missing") from None
            except (OSError, ValueError, EOFError) as e:
                raise StaleCache(f"{ARRAYS[key]} is truncated or corrupt ({e})") from None
            if arr.shape != shape or arr.dtype != np.uint8:
                raise StaleCache(f"{ARRAYS[key]} holds {arr.dtype} {arr.shape}, expected uint8 {shape}")
            arrays.append(arr)
        return arrays[0], arrays[1]

    def item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(3xHxW uint8 image, HxW int64 train ids) of dataset item ``index``."""
        try:
            if self._arrays is None:
                self._arrays = self.open()
            images, labels = self._arrays
            row = self.rows[index]
            return torch.from_numpy(np.array(images[row])), torch.from_numpy(labels[row].astype(np.int64))
        except (StaleCache, OSError, ValueError) as e:
            raise DatasetError(
                f"prepared dataset {self.folder} cannot be read ({e}). Delete that folder (the raw files are then "
                "used) or rebuild it with python -m datasets.prepare."
            ) from None

    def __getstate__(self) -> dict:
        # Workers started by spawn map the files themselves instead of receiving copies of the arrays.
        return {**self.__dict__, "_arrays": None}


def check_cache(ds: Preparable, folder: Path) -> PreparedItems:
    """The prepared set in ``folder`` for ``ds``, or StaleCache saying why it cannot be used.

    Args:
        ds: a Cityscapes or GTA5 dataset with a ``size``.
        folder: a prepared set's folder.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise StaleCache(f"it is incomplete ({MANIFEST} is missing)")
    try:
        manifest = json.loads(path.read_text())
        version, ident = manifest["format_version"], manifest["identity"]
        n, samples, stats = int(manifest["n"]), manifest["samples"], manifest["stats"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StaleCache(f"its {MANIFEST} is unreadable ({type(e).__name__})") from None
    if version != FORMAT_VERSION:
        raise StaleCache(f"it was made by format version {version}, this code reads {FORMAT_VERSION}")
    if ident != identity(ds):
        raise StaleCache("it was made with other settings")
    if not (len(samples) == len(stats) == n):
        raise StaleCache(f"its {MANIFEST} is inconsistent")
    row_of = {tuple(s): i for i, s in enumerate(samples)}
    wanted = relative_samples(ds)
    rows = [row_of.get(s, -1) for s in wanted]
    missing = [s for s, r in zip(wanted, rows) if r < 0]
    if missing:
        raise StaleCache(f"{len(missing)} of the dataset's images are not in it (e.g. {missing[0][0]})")
    items = PreparedItems(folder, rows, n, tuple(ds.size))
    items.open()
    root = Path(ds.root)
    for rel, row in zip(wanted, rows):
        try:
            now = source_stats(root, rel)
        except OSError:
            raise StaleCache(f"a source file is gone ({rel[0]} or {rel[1]})") from None
        if now != stats[row]:
            changed = rel[0] if now[:2] != stats[row][:2] else rel[1]
            raise StaleCache(f"{changed} changed since it was prepared")
    return items


def find_cache(ds: Preparable, cache_dir: str | Path | None = None, notify: bool = True) -> PreparedItems | None:
    """The fresh prepared set serving ``ds``, or None (raw files); never raises for a bad cache.

    A set that exists but is stale or incomplete is reported once per process in one line with the command
    that rebuilds it.

    Args:
        ds: a Cityscapes or GTA5 dataset; None is returned when it has no ``size``.
        cache_dir: the cache folder (None: :func:`resolve_cache_dir`).
        notify: print the one-line notes (using / not using a prepared set).
    """
    if ds.size is None:
        return None
    folder = unit_dir(ds, cache_dir)
    if not folder.is_dir():
        return None
    try:
        items = check_cache(ds, folder)
    except StaleCache as e:
        if notify and (str(folder), str(e)) not in _noted:
            _noted.add((str(folder), str(e)))
            print(f"note: not using the prepared dataset {folder}: {e}; reading the raw files. "
                  f"Rebuild it with: {rebuild_command(ds, cache_dir)}", file=sys.stderr)
        return None
    if notify and (str(folder), "") not in _noted:
        _noted.add((str(folder), ""))
        print(f"using the prepared dataset {folder}")
    return items
