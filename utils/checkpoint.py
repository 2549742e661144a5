"""Checkpoints that are never half-written and never execute code.

A checkpoint holds only tensors and plain Python types, so ``torch.load(weights_only=True)`` reads it: a
checkpoint passed around between classmates cannot run code on load.
"""
from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.errors import CheckpointError


def atomic_save(obj: Any, path: str | Path, keep_previous: bool = False) -> None:
    """Write ``obj`` to ``path`` through a temporary file and a rename.

    A crash or a kill during the write leaves the previous file intact. With ``keep_previous`` the file
    being replaced is kept as ``<stem>.prev.pt`` so a checkpoint damaged later (a full disk, a bad copy)
    still has a good one to fall back to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def previous_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely; every failure is a CheckpointError naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}. Check the path (INIT_FROM / --checkpoint).")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} contains objects that a safe load refuses (weights_only=True): it was not written by "
            f"this project and could execute code when loaded. Refusing it. Detail: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {str(e).splitlines()[0]}). "
            "Use another checkpoint, or delete it to start again."
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dictionary (found {type(obj).__name__}).")
    return obj


def load_resumable(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, Path]:
    """Load ``last.pt``, falling back to the previous good one when it is damaged; say which was used."""
    path = Path(path)
    try:
        return load_checkpoint(path, map_location), path
    except CheckpointError as first:
        prev = previous_path(path)
        if prev.is_file():
            try:
                obj = load_checkpoint(prev, map_location)
            except CheckpointError:
                raise first from None
            print(f"warning: {path} is damaged ({first}); resuming from the previous checkpoint {prev}")
            return obj, prev
        raise


def rng_state() -> dict:
    """All RNG states as tensors and plain Python values (no numpy arrays: weights_only would refuse them)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(x):
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
