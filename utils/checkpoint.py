"""Checkpoints that are never half-written and never execute code.

A checkpoint holds only tensors and plain Python types, so ``torch.load(weights_only=True)`` reads it: a
checkpoint passed around between classmates cannot run code on load.
"""
from __future__ import annotations

import errno
import io
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.errors import CheckpointError

# A full disk, or a full quota (EDQUOT is missing on some platforms).
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def atomic_save(obj: Any, path: str | Path, keep_previous: bool = False) -> None:
    """Write ``obj`` to ``path`` through a temporary file and a rename.

    A crash or a kill during the write leaves the previous file intact. With ``keep_previous`` the file
    being replaced is kept as ``<stem>.prev.pt`` so a checkpoint damaged later (a full disk, a bad copy)
    still has a good one to fall back to. A full disk or an exhausted quota is a ``CheckpointError`` that
    says how much room the checkpoint needs and how much is free.
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
    except (OSError, RuntimeError) as e:
        cause = _no_space_cause(e)
        if cause is None:
            raise
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)  # before measuring: the partial file's space is free again
        raise _no_space_error(obj, path, cause, written) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _no_space_cause(error: BaseException) -> OSError | None:
    """The out-of-space OSError behind ``error``: torch's zip writer reports a failed write as a
    RuntimeError raised while the OSError is being handled, so the chain is searched."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return error
        error = error.__cause__ or error.__context__
    return None


class _ByteCounter(io.RawIOBase):
    """A sink that only counts what torch.save writes to it."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.size += n
        return n


def _no_space_error(obj: Any, path: Path, cause: OSError, written: int) -> CheckpointError:
    counter = _ByteCounter()
    try:
        torch.save(obj, counter)
        needed = _format_bytes(counter.size)
    except Exception:  # the size is a courtesy: the error must be reported all the same
        needed = f"more than the {_format_bytes(written)} written before the failure"
    try:
        free = _format_bytes(shutil.disk_usage(path.parent).free)
    except OSError:
        free = "an unknown amount"
    what = "the disk quota is exhausted" if cause.errno != errno.ENOSPC else "the disk is full"
    return CheckpointError(
        f"could not write the checkpoint {path}: {what}. It needs {needed}; {free} is free in {path.parent}. "
        f"Free some space (e.g. delete old runs) and run the step again, or set RUNS_DIR to a folder on a disk "
        f"with more room. The previous checkpoint, if any, is unchanged and no partial file was left.")


def _format_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit} ({n} bytes)"


def previous_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely; every failure is a CheckpointError naming the file and the fix."""
    obj = safe_load(path, map_location, fix="Use another checkpoint, or delete it to start again.")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dictionary (found {type(obj).__name__}).")
    return obj


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", what: str = "checkpoint",
              fix: str = "") -> Any:
    """``torch.load(path, weights_only=True)``; any file it cannot read is a CheckpointError naming the file.

    Only a file whose unpickling the safe loader stopped at an object it does not allow (a global such as
    ``os.system``) is called one that could execute code; an empty, truncated, text or JSON file, or a folder,
    is named for what it is.

    Args:
        path: the file.
        map_location: where tensors are loaded.
        what: what the file should be, for the messages ("checkpoint", "weights file").
        fix: what to do about an unreadable file, appended to the message.
    """
    path = Path(path)
    fix = f" {fix}" if fix else ""
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a {what} file.{fix}")
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}. Check the path (INIT_FROM / --checkpoint).")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a damaged file fails in many ways (RuntimeError, EOFError, KeyError, ...)
        refused = _REFUSED_GLOBAL.search(str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if refused:
            raise CheckpointError(
                f"{path} contains an object that a safe load refuses ({refused.group(1)}; weights_only=True): it "
                f"was not written by this project and could execute code when loaded. Refusing it.{fix}") from None
        detail = _first_line(e)
        detail = f" ({type(e).__name__}: {detail})" if detail else ""
        raise CheckpointError(f"{path} {_what_file(path)}: it cannot be read as a {what}{detail}.{fix}") from None


# How torch's safe unpickler names the global it refused ("Unsupported global: GLOBAL os.system" and variants).
_REFUSED_GLOBAL = re.compile(r"unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", re.IGNORECASE)
# torch.save writes a zip archive; torch before 1.6 wrote a bare pickle (protocol 2 and up start with 0x80).
_CHECKPOINT_HEADS = (b"PK\x03\x04", b"\x80")


def _first_line(error: BaseException) -> str:
    """The informative part of a loader's error: its first sentence, or what the safe unpickler stopped at."""
    text = str(error)
    if "WeightsUnpickler error:" in text:  # after a paragraph about weights_only that says nothing of this file
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(". ")[0] if lines else ""


def _what_file(path: Path) -> str:
    """What a file that torch cannot load looks like: empty, a damaged checkpoint, text, JSON, other bytes."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if size == 0:
        return "is empty (0 bytes: a write that never finished, or a failed copy)"
    if any(head.startswith(h) or h.startswith(head) for h in _CHECKPOINT_HEADS):  # a few bytes of one too
        return f"is truncated or corrupt ({_format_bytes(size)})"
    try:
        text = head.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        return f"is not a checkpoint (its {_format_bytes(size)} are neither a zip archive nor a pickle)"
    kind = "a JSON" if text.startswith(("{", "[")) else "a text"
    return f"is {kind} file, not a checkpoint"


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
