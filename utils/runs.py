"""Run folders: where a run's config, checkpoints, logs and results live, and what re-running a name does.

Re-running a run name: unfinished with the same config -> resume; finished with the same config ->
reprint the stored results; a different config -> refused with the differences listed, unless
``--OVERWRITE=true`` or a new ``RUN_NAME``. A run that stopped before its first checkpoint (its config and log
alone) holds nothing to resume or keep: a command with another config starts it afresh.
"""
from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from utils import distributed
from utils.checkpoint import load_checkpoint, previous_path
from utils.config import config_diff, to_json
from utils.errors import CheckpointError, ConfigError, UserError
from utils.paths import writable_folder

# Keys that may change between a run and its resumption (or its repetition with another seed, for the report)
# without changing what it computes.
NON_IDENTITY_KEYS = ("RUNS_DIR", "RUN_NAME", "OVERWRITE", "CHECKPOINT_MINUTES", "NUM_WORKERS", "DEVICE",
                     "EVAL_ONLY", "VARIANTS", "LATENCY_ITERS")
# What tells the variants of one multi-variant experiment apart (the rest of their config is shared).
VARIANT_KEYS = ("VARIANT", "VARIANT_SPEC")
# Files a multi-variant step writes next to its variant folders (utils.report.summarize_variants).
SUMMARY_FILES = ("summary.md", "summary.csv", "summary.json", "per_class_iou.png")


def write_json(path: Path, obj: Any) -> None:
    """Valid JSON (NaN and inf written as null), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_json(obj), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


class Run:
    """One trained model's folder: ``RUNS_DIR/RUN_NAME[/VARIANT]``.

    The run machinery reads the keys every step script has: ``RUNS_DIR``, ``RUN_NAME``, ``OVERWRITE``,
    ``EVAL_ONLY`` and ``INIT_FROM``; the whole config is the run's identity.

    Args:
        cfg: the resolved config (``utils.config.Config``).
        variant: the variant name for multi-variant steps, or None for single-run steps.
        variant_spec: what the variant changes; part of this run's identity.
        eval_run: with ``EVAL_ONLY`` and ``INIT_FROM``, the evaluation is a run of its own (e.g. AdaBN's, which
            changes the weights it evaluates): its folder holds its config, ``results.json`` and weights, and a
            finished one is reused, as a trained run is.
    """

    def __init__(self, cfg, variant: str | None = None, variant_spec: Any = None, eval_run: bool = False) -> None:
        name = str(cfg.RUN_NAME).strip()
        if not name or Path(name).is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
            # RUNS_DIR itself (or a folder above it) would become the run folder that OVERWRITE may delete.
            raise ConfigError(f"RUN_NAME={cfg.RUN_NAME!r} is not a folder name under RUNS_DIR: use a plain "
                              "name such as --RUN_NAME=my_run.")
        self.root = Path(cfg.RUNS_DIR) / cfg.RUN_NAME
        self.dir = self.root / variant if variant else self.root
        self.variant = variant or "default"
        self.config = dict(cfg.to_jsonable())
        if variant:
            self.config["VARIANT"] = variant
            self.config["VARIANT_SPEC"] = variant_spec
        self.overwrite = bool(cfg.OVERWRITE)
        self.eval_only, self.init_from = bool(cfg.EVAL_ONLY), cfg.INIT_FROM
        self.eval_run = bool(eval_run) and self.eval_only and bool(self.init_from)
        if self.eval_run:  # EVAL_ONLY is not part of a run's identity: a trained run of this config is another run
            self.config["EVAL_RUN"] = True
        self.defaults = dict(getattr(cfg, "defaults", {}))  # what keys absent from an older run's config mean
        self.synthetic = cfg.demo  # --demo reads the synthetic world
        self.user_keys = set(cfg.overrides)  # set on the command line
        self.status: str | None = None
        launcher = ["python"]
        if distributed.launched_world() > 1:
            per_node = os.environ.get("LOCAL_WORLD_SIZE", distributed.launched_world())
            launcher = ["torchrun", f"--nproc_per_node={per_node}"]
        self.command = " ".join(shlex.quote(a) for a in [*launcher, *sys.argv])

    last = property(lambda self: self.dir / "last.pt")
    best = property(lambda self: self.dir / "best.pt")
    results_path = property(lambda self: self.dir / "results.json")
    config_path = property(lambda self: self.dir / "config.json")
    log_path = property(lambda self: self.dir / "log.txt")
    metrics_path = property(lambda self: self.dir / "metrics.csv")

    def start(self) -> str:
        """Decide what this invocation does, and remember it as ``self.status``: "new", "resume", "finished"
        (see :meth:`_decide`), or "evaluate" with ``EVAL_ONLY`` (the folder is left as it is).

        Under torchrun rank 0 decides (and alone touches the folder); every rank gets its answer, or its error.
        """
        self.status = self._start()
        return self.status

    @property
    def eval_checkpoint(self) -> Path:
        """What ``EVAL_ONLY`` evaluates: ``INIT_FROM`` when set, else this run's own ``best.pt``."""
        if self.init_from:
            return Path(self.init_from)
        if not self.best.is_file():
            raise ConfigError(f"EVAL_ONLY=true without INIT_FROM evaluates this run's own best checkpoint, "
                              f"{self.best}, which does not exist: train the run first, or pass "
                              "--INIT_FROM=<checkpoint> (e.g. runs/NAME/best.pt).")
        return self.best

    def _start(self) -> str:
        if self.eval_only and not self.eval_run:
            self._writable()  # for its eval_<checkpoint>.json
            return "evaluate"
        if not distributed.is_initialized():
            return self._decide()
        decision: tuple[str, str] | None = None
        if distributed.is_main():
            try:
                decision = ("ok", self._decide())
            except UserError as e:
                decision = ("error", str(e))
            except BaseException:
                distributed.broadcast_object(("error", f"rank 0 failed to prepare {self.dir}"))
                raise
        kind, value = distributed.broadcast_object(decision)
        if kind == "error":
            raise ConfigError(value)
        return value

    def _decide(self) -> str:
        """Decide what this invocation does: "new", "resume" or "finished".

        Refuses (ConfigError listing the differences), unless ``OVERWRITE``, a folder whose run has another
        config (read from config.json, or from its checkpoint when config.json is gone), a folder of files
        that is not a run at all, and for a variant a ``RUN_NAME`` folder whose other runs have another config.
        """
        self._writable()
        if self.dir != self.root:
            self._check_experiment_root()
        old, source = self._stored_config() if _contents(self.dir) else (None, "")
        if old is not None and _half_made(self.dir) and config_diff(old, self.config, NON_IDENTITY_KEYS,
                                                                    absent=self.defaults):
            print(f"{self.dir} holds a run of another config that stopped before its first checkpoint: starting afresh")
            _clear_half_made(self.dir)
        if _contents(self.dir):
            if old is None:
                problem = (f"{self.dir} already holds files that are not a run of this config and no readable "
                           f"config.json ({source}); it may belong to another experiment.")
            else:
                diffs = config_diff(old, self.config, NON_IDENTITY_KEYS, absent=self.defaults)
                problem = (f"{self.dir} holds a run with a different config (from {source}):\n  "
                           + "\n  ".join(diffs)) if diffs else None
                if diffs and self._previous_demo(diffs):
                    print(f"--demo: {self.dir} holds a run of other demo settings ({'; '.join(diffs)}); "
                          "starting afresh")
                    shutil.rmtree(self.dir)
                    problem = None
            if problem and not self.overwrite:
                raise ConfigError(problem + "\nUse a new --RUN_NAME=..., or --OVERWRITE=true to replace that run.")
            if problem:
                print(f"OVERWRITE: replacing {self.dir}: {problem.splitlines()[0]}")
                shutil.rmtree(self.dir)
        if self.results_path.is_file():
            return "finished"
        if self.eval_run:
            write_json(self.config_path, self.config)
            return "evaluate"
        status = "resume" if (self.last.exists() or previous_path(self.last).exists()) else "new"
        if status == "new" and self.dir.exists() and self.overwrite:
            shutil.rmtree(self.dir)
        write_json(self.config_path, self.config)
        return status

    def _writable(self) -> None:
        """Refuse, before any work, a run folder that cannot be written (a file in the way, a read-only disk)."""
        writable_folder(self.dir, "the run folder", "Set --RUNS_DIR to a folder you can write to (or another "
                        "--RUN_NAME).")

    def _previous_demo(self, diffs: list[str]) -> bool:
        """A --demo run made with other demo settings (new script defaults or DEMO values, none of the keys the
        user set now): demo runs are cheap, and a user who pulled new settings must not see ``make demo`` refuse.
        """
        return self.synthetic and not any(line.split(":", 1)[0] in self.user_keys for line in diffs)

    def _stored_config(self) -> tuple[dict | None, str]:
        """(config, where it was read) of the run in ``self.dir``; (None, what was found) when there is none."""
        if self.config_path.is_file():
            try:
                old = json.loads(self.config_path.read_text())
                if isinstance(old, dict):
                    return old, str(self.config_path)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                pass
        for ckpt in (self.last, previous_path(self.last)):
            if ckpt.is_file():
                try:
                    old = load_checkpoint(ckpt).get("config")
                except CheckpointError:
                    continue
                if isinstance(old, dict):
                    return old, str(ckpt)
        return None, "found: " + ", ".join(_contents(self.dir)[:5])

    def _check_experiment_root(self) -> None:
        """A variant's ``RUNS_DIR/RUN_NAME`` must hold only variants of this experiment and their summary."""
        mine = {k: v for k, v in self.config.items() if k not in VARIANT_KEYS}
        if _half_made(self.root):
            print(f"{self.root} holds a run that stopped before its first checkpoint: starting afresh")
            _clear_half_made(self.root)
        names = _contents(self.root)
        if not names:
            return
        foreign = []
        for name in names:
            path = self.root / name
            if path == self.dir or name in SUMMARY_FILES or (path.is_dir() and not _contents(path)):
                continue
            config_file = path / "config.json" if path.is_dir() else path
            try:
                old = json.loads(config_file.read_text()) if config_file.name == "config.json" else None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                old = None
            if not isinstance(old, dict):
                foreign.append((path, [f"{name} is not a run of this experiment"]))
                continue
            diffs = config_diff({k: v for k, v in old.items() if k not in VARIANT_KEYS}, mine, NON_IDENTITY_KEYS,
                                absent=self.defaults)
            if diffs and path.is_dir() and _half_made(path):
                print(f"removing {path}, a run of another config that stopped before its first checkpoint")
                _clear_half_made(path)
                if not any(path.iterdir()):
                    path.rmdir()
            elif diffs and self._previous_demo(diffs):
                print(f"--demo: removing {path}, a run of other demo settings ({'; '.join(diffs)})")
                shutil.rmtree(path)
            elif diffs:
                foreign.append((path, diffs))
        if not foreign:
            return
        if not self.overwrite:
            # a differing config says more than a list of files that are not runs
            path, diffs = min(foreign, key=lambda f: f[1][0].endswith("is not a run of this experiment"))
            raise ConfigError(
                f"{self.root} holds runs of another experiment or config ({path}):\n  " + "\n  ".join(diffs)
                + "\nUse a new --RUN_NAME=..., or --OVERWRITE=true to replace them.")
        if (self.root / "config.json").is_file():
            print(f"OVERWRITE: replacing {self.root} (a run of another experiment)")
            shutil.rmtree(self.root)
            return
        for path, _ in foreign:
            print(f"OVERWRITE: removing {path} (another config)")
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def log(self, message: str) -> None:
        if not distributed.is_main():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def stored_results(self) -> dict:
        return json.loads(self.results_path.read_text())

    def save_results(self, results: dict) -> None:
        if not distributed.is_main():
            return
        write_json(self.results_path, results)


def _contents(folder: Path) -> list[str]:
    """Names in ``folder`` that belong to a run or to someone else: hidden temporary files and evaluations of
    other checkpoints (``eval_*.json``, written without a run) do not count."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.startswith(".") and not (p.name.startswith("eval_") and p.suffix == ".json"))


# What a run writes before its first checkpoint; a folder of nothing more has no training to resume or keep.
_HALF_MADE_FILES = ("config.json", "log.txt", "metrics.csv")


def _half_made(folder: Path) -> bool:
    """A run that stopped before its first checkpoint (a late config error, a failed first evaluation): its
    config and log, and no checkpoint, results or other file. Re-running with another config replaces it."""
    names = _contents(folder)
    return "config.json" in names and set(names) <= set(_HALF_MADE_FILES)


def _clear_half_made(folder: Path) -> None:
    for name in _HALF_MADE_FILES:
        (folder / name).unlink(missing_ok=True)


class MetricsCSV:
    """Per-iteration metrics, appended; on resume, rows after the checkpoint's iteration are dropped."""

    def __init__(self, path: Path, resume_at: int | None = None) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if resume_at is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["global_it"]) <= resume_at]
            self._rewrite(rows)
        elif path.is_file():
            path.unlink()

    def _rewrite(self, rows: list[dict]) -> None:
        if not rows:
            self.path.unlink(missing_ok=True)
            return
        self.fields = list(rows[0])
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
