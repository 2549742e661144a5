"""Where the repository lives, so that defaults such as ``data/synthetic`` do not depend on the current folder;
and the check that a command can write where it is told to, made before it does any work."""
from __future__ import annotations

import os
from pathlib import Path

from utils.errors import OutputError

REPO_ROOT = Path(__file__).resolve().parents[1]


def writable_folder(folder: str | Path, what: str, fix: str, _named: Path | None = None) -> Path:
    """``folder``, when the command can make it (or write into it); else an ``OutputError`` naming it, what is
    wrong (a file in the way, a read-only folder or disk) and ``fix``. Nothing is created.

    Args:
        folder: the folder the command will write into.
        what: what it is, for the message ("the run folder", "--out").
        fix: what to do, for the message.
    """
    folder = Path(folder)
    named = _named or folder
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        where = "it" if existing == named else f"{existing}, on its path,"
        raise OutputError(f"cannot write {what} {named}: {where} is a file, not a folder. {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == named else f"{existing}, where it would go,"
        raise OutputError(f"cannot write {what} {named}: {where} is read-only (no write permission, or a read-only "
                          f"disk). {fix}")
    return folder


def writable_file(path: str | Path, what: str, fix: str) -> Path:
    """``path``, a file the command will write: not a folder, in a folder it can write (:func:`writable_folder`)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {what} {path}: it is a folder; give a file name. {fix}")
    writable_folder(path.parent, what, fix, _named=path)
    return path
