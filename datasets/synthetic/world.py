"""Writing a world to disk: the files of every image, the manifest, and reusing a world that matches.

The world is drawn image by image (each from its own RNG, so parallel generation is byte-identical to
serial) into a temporary sibling folder, which is renamed into place once complete, with ``manifest.json``
written last: a killed generation never leaves a folder that looks like a world.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datasets import labels
from datasets.io import save_rgb_png
from utils.distributed import main_first
from utils.errors import ConfigError, DatasetError
from utils.paths import REPO_ROOT

from .scene import render

GENERATOR = "datasets.synthetic"  # the manifest's "generator": the package, whatever module writes the file
GENERATOR_VERSION: int = 5
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

# Worlds a step script can ask for with --demo; "tiny" is what the tests train on.
WORLD_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "tiny": dict(seed=0, n_source=16, n_train=12, n_val=8, source_size=(64, 128), target_size=(64, 128)),
}


# ----------------------------------------------------------------------------------------------------------
# Rendering tasks
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
    """One task per image: (domain, split, index, seed, shift, size, image path, label path)."""
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


_WORK_ROOT: Path | None = None  # where this process writes its tasks' files


def _init_worker(root: str) -> None:
    global _WORK_ROOT
    _WORK_ROOT = Path(root)


def _render_task(task: tuple) -> tuple[str, np.ndarray]:
    """Draw and write one image and its label; returns (domain key, label id pixel counts)."""
    domain, split, index, seed, shift, size, img_rel, lab_rel = task
    image, lab = render(domain, index, seed=seed, shift=shift, size=size, split=split)
    save_rgb_png(_WORK_ROOT / img_rel, image)
    label = Image.fromarray(lab)
    if domain == "source":
        label.putpalette(labels.LABEL_ID_PALETTE.tobytes())  # GTA5 ships P-mode PNGs of label ids
    label.save(_WORK_ROOT / lab_rel, compress_level=1)
    key = "source" if domain == "source" else f"target_{split}"
    return key, np.bincount(lab.ravel(), minlength=256)


def _draw_all(tasks: list[tuple], root: Path, workers: int,
              progress: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run every task, writing under ``root``; returns (label id pixel counts, images per label id) per key."""
    counts = {"source": np.zeros(256, np.int64), "target_train": np.zeros(256, np.int64),
              "target_val": np.zeros(256, np.int64)}
    presence = {k: np.zeros(256, np.int64) for k in counts}
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="synthetic world", unit="img", disable=not progress)
    try:
        if workers == 1:
            _init_worker(str(root))
            results = map(_render_task, tasks)
            pool = None
        else:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(str(root),))
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
    return counts, presence


# ----------------------------------------------------------------------------------------------------------
# Parameters and the folder a world replaces
# ----------------------------------------------------------------------------------------------------------
def _check_params(seed, shift, n_source, n_train, n_val, source_size, target_size) -> dict:
    """The identity part of the manifest, or ConfigError naming the first invalid parameter."""
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


def _check_workers(workers: int | None) -> int:
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    return workers


# ----------------------------------------------------------------------------------------------------------
# Generating a world
# ----------------------------------------------------------------------------------------------------------
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
    workers = _check_workers(workers)
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
        counts, presence = _draw_all(tasks, tmp, workers, progress)
        manifest.update(_class_summary(counts, presence))
        manifest["generator"] = GENERATOR
        manifest["layout"] = {"source": "GTA5 (images/, labels/ P-mode label ids)",
                              "target": "Cityscapes official (leftImg8bit/, gtFine/ labelIds)",
                              "train_cities": list(TRAIN_CITIES), "val_cities": list(VAL_CITIES)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        _move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``tmp``; the previous world is set aside first, then deleted."""
    old = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


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


def demo_world(synthetic_dir: str | Path, preset: str = "default") -> Path:
    """The synthetic world for --demo: generated on first use and whenever the preset asks for another.

    Args:
        synthetic_dir: the world's folder; a relative path is taken from the repository root.
        preset: which world, a key of ``WORLD_PRESETS`` ("default" or "tiny").
    """
    root = Path(synthetic_dir)
    if not root.is_absolute():
        root = REPO_ROOT / root
    if preset not in WORLD_PRESETS:
        raise ConfigError(f"SYNTHETIC_WORLD must be one of {sorted(WORLD_PRESETS)}, got {preset!r}")
    with main_first():  # under torchrun rank 0 generates it; the others then find it
        return Path(ensure_world(root, **WORLD_PRESETS[preset]))
