"""The command line: generate a world, or reuse one whose manifest matches, and print its class summary."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import datasets.synthetic
from datasets import labels
from utils.config import parse_size
from utils.errors import UserError
from utils.paths import writable_folder

from .world import DEFAULTS, generate, world_status


def _summary(m: dict) -> str:
    lines = [f"source (GTA5): {m['n_source']} images {m['source_size'][0]}x{m['source_size'][1]}; "
             f"target (Cityscapes): {m['n_train']} train + {m['n_val']} val images "
             f"{m['target_size'][0]}x{m['target_size'][1]}; seed {m['seed']}, shift {m['shift']}",
             f"{'class':<14}{'source %':>10}{'target %':>10}"]
    fr = m["class_fractions"]
    for name in (*labels.CLASS_NAMES, "ignore"):
        lines.append(f"{name:<14}{100 * fr['source'][name]:>10.2f}{100 * fr['target'][name]:>10.2f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m datasets.synthetic",
                                description=datasets.synthetic.__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="destination folder, e.g. data/synthetic")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--shift", type=float, default=DEFAULTS["shift"], help="domain-shift strength, 0..2 (0 = none)")
    p.add_argument("--n-source", type=int, default=DEFAULTS["n_source"])
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"])
    p.add_argument("--n-val", type=int, default=DEFAULTS["n_val"])
    p.add_argument("--source-size", type=parse_size, default=DEFAULTS["source_size"], help="HxW, default 264x480")
    p.add_argument("--target-size", type=parse_size, default=DEFAULTS["target_size"], help="HxW, default 256x512")
    p.add_argument("--workers", type=int, default=None, help="processes (default min(2, CPUs))")
    p.add_argument("--force", action="store_true", help="regenerate even if a matching world exists")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Generate (or reuse) a synthetic world from the command line; returns its manifest."""
    a = _parser().parse_args(argv)
    params = dict(seed=a.seed, shift=a.shift, n_source=a.n_source, n_train=a.n_train, n_val=a.n_val,
                  source_size=a.source_size, target_size=a.target_size)
    out = Path(a.out)
    why = "forced" if a.force else world_status(out, **params)
    start = time.perf_counter()
    if why is None:
        manifest = json.loads((out / "manifest.json").read_text())
        print(f"reusing the synthetic world at {out} (manifest matches)")
    else:
        writable_folder(out, "--out", "Give --out a folder you can write to.")
        print(f"synthetic world at {out}: {why}; generating")
        manifest = generate(out, workers=a.workers, progress=not a.no_progress, **params)
        print(f"generated in {time.perf_counter() - start:.1f} s")
    print(_summary(manifest))
    return manifest


def cli(argv: list[str] | None = None) -> int:
    """The program: ``main`` with a user error printed as one line (no traceback); returns the exit status."""
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
