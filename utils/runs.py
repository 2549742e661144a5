"""Run folders: where a run's config, checkpoints, logs and results live, and what re-running a name does.

Re-running a run name (SPEC 5): unfinished with the same config -> resume; finished with the same config ->
reprint the stored results; a different config -> refused with the differences listed, unless
``--OVERWRITE=true`` or a new ``RUN_NAME``.
"""
from __future__ import annotations

import csv
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from utils.config import config_diff
from utils.errors import ConfigError

# Keys that may change between a run and its resumption without changing what it computes.
NON_IDENTITY_KEYS = ("RUNS_DIR", "RUN_NAME", "OVERWRITE", "CHECKPOINT_MINUTES", "NUM_WORKERS", "DEVICE",
                     "EVAL_ONLY", "VARIANTS", "LATENCY_ITERS")


def to_json(obj: Any) -> Any:
    """JSON-safe copy: NaN and inf become null (results.json must be valid JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_json(obj), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


class Run:
    """One trained model's folder: ``RUNS_DIR/RUN_NAME[/VARIANT]``.

    Args:
        cfg: the resolved config (``utils.config.Config``).
        variant: the variant name for multi-variant steps, or None for single-run steps.
        variant_spec: what the variant changes; part of this run's identity.
        command: the command line that started the run, printed as the way to resume it.
    """

    def __init__(self, cfg, variant: str | None = None, variant_spec: Any = None,
                 command: str | None = None) -> None:
        self.root = Path(cfg.RUNS_DIR) / cfg.RUN_NAME
        self.dir = self.root / variant if variant else self.root
        self.variant = variant or "default"
        self.config = dict(cfg.to_jsonable())
        if variant:
            self.config["VARIANT"] = variant
            self.config["VARIANT_SPEC"] = variant_spec
        self.overwrite = bool(cfg.OVERWRITE)
        self.command = command or " ".join(shlex.quote(a) for a in ["python", *sys.argv])

    last = property(lambda self: self.dir / "last.pt")
    best = property(lambda self: self.dir / "best.pt")
    results_path = property(lambda self: self.dir / "results.json")
    config_path = property(lambda self: self.dir / "config.json")
    log_path = property(lambda self: self.dir / "log.txt")
    metrics_path = property(lambda self: self.dir / "metrics.csv")

    def prepare(self) -> str:
        """Decide what this invocation does: "new", "resume" or "finished"; refuse a changed config."""
        if self.config_path.is_file():
            try:
                old = json.loads(self.config_path.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            diffs = ["config.json unreadable"] if old is None else config_diff(old, self.config, NON_IDENTITY_KEYS)
            if diffs and not self.overwrite:
                raise ConfigError(
                    f"{self.dir} holds a run with a different config:\n  " + "\n  ".join(diffs)
                    + "\nUse a new --RUN_NAME=..., or --OVERWRITE=true to replace that run.")
            if diffs:
                print(f"OVERWRITE: replacing the run in {self.dir} ({len(diffs)} config differences)")
                shutil.rmtree(self.dir)
        if self.results_path.is_file():
            return "finished"
        status = "resume" if (self.last.is_file() or self.last.with_name("last.prev.pt").is_file()) else "new"
        if status == "new" and self.dir.exists() and self.overwrite:
            shutil.rmtree(self.dir)
        write_json(self.config_path, self.config)
        return status

    def log(self, message: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def stored_results(self) -> dict:
        return json.loads(self.results_path.read_text())

    def save_results(self, results: dict) -> None:
        write_json(self.results_path, results)


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
