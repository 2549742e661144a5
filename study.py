"""The adaptation study: how much of the synthetic-to-real gap do augmentation and adversarial adaptation close
for a real-time network? Every row is one step-script command at that script's STUDY setting (``--study``, the
synthetic world), run once per seed; the study then reports each row over the seeds and the gains paired by
seed with 95% Student t intervals.

    python study.py                     (make study)             the default rows, seeds 1,2,3
    python study.py --SEEDS=11,12,13    (make study SEEDS=...)   other seeds
    python study.py --ROWS=all          (make study ROWS=all)    also adv_focal_sgd and adv_ce_adam
    python study.py --ROWS=calibration  (make study ROWS=calibration) the world's method-free rows
    python study.py --ROWS=statistics   (make study ROWS=statistics) BatchNorm statistics apart from each method
    python study.py --ROWS=methods      (make study ROWS=methods) step 6's methods beside step 4/5's rows

Resumable: after a kill the same command goes on (each step script resumes its own run); finished runs are
reused. Writes RUNS_DIR/STUDY.md, STUDY.json, study.png and discriminator.png; STUDY.md shows the world's
calibration beside a recorded study's (``COMPARE``, the previous world's by default). ``--RENDER=FOLDER``
rewrites a copy's STUDY.md and study.png from its STUDY.json.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

# CONFIG ------------------------------------------------------------------------------------------------
RUNS_DIR = "runs/study"                # the study's folder: seed<N>/ run folders, STUDY.md/.json, plots
SEEDS = (1, 2, 3)                      # one run of every row per seed (>= 2 for intervals)
ROWS = "default"                       # default | all | statistics | methods | comma-separated rows (ROW_SPECS)
DEVICE = "auto"                        # passed to every row: auto | cpu | cuda | cuda:N
ROW_ARGS = ""                          # more --KEY=value for every row's command (e.g. --SYNTHETIC_WORLD=tiny)
RENDER = None                          # a folder with a STUDY.json: rewrite its STUDY.md and study.png, run nothing
COMPARE = "docs/study/v4_xeon_statistics/STUDY.json"  # a recorded study shown beside this one's calibration ("": none)

CHOICES = {"DEVICE": ("auto", "cpu", "cuda:N")}

STEP2B, STEP3, STEP45 = "step2b_bisenet_cityscapes.py", "step3a3b_gta_to_cityscapes.py", "step4_5_adversarial.py"
STEP6 = "step6_uda_methods.py"
WORLD_SOURCE = "datasets/synthetic/world.py"  # where the synthetic world's GENERATOR_VERSION is set


@dataclass(frozen=True)
class Row:
    """One row: a step script's variant at the script's STUDY setting, run once per seed.

    ``variant`` "augmented" stands for step 3's variant that applies step 4/5's SOURCE_AUGMENT
    (``augmented_variant``). ``start``: the row whose final weights (``last.pt``) this one starts from, or
    evaluates. ``args``: more ``--KEY=value`` of this row; a row with arguments of its own gets its own run
    folder (its script's RUN_NAME plus ``-<row>``).
    """

    script: str
    variant: str | None
    start: str | None
    what: str
    args: tuple[str, ...] = ()

    @property
    def evaluates_only(self) -> bool:
        """An evaluation of its start row's weights: 0 iterations and 0 training seconds of its own."""
        return "--EVAL_ONLY=true" in self.args


# Running statistics kept at the warm start's through the adaptation phase. Frozen statistics no longer rescale
# each layer's gradient as batch statistics do, and at step 4/5's 2.5e-2 a network trained from random weights
# diverges (on world version 5: NaN loss within 20 iterations); both frozen rows take a tenth of it, so
# adversarial_frozen still compares like with like.
FROZEN_LR = 2.5e-3
FROZEN_ARGS = ("--BN_STATS=frozen", f"--LR={FROZEN_LR:g}")
ADABN_ARGS = ("--EVAL_ONLY=true", "--ADABN=true")  # the start row's weights, AdaBN on the target, evaluated
ROW_SPECS = {
    "oracle": Row(STEP2B, None, None, "step 2b: trained on the target's labels"),
    "none": Row(STEP3, "none", None, "step 3: source only, no augmentation"),
    "augmented": Row(STEP3, "augmented", None, "step 3: source only, step 4/5's SOURCE_AUGMENT"),
    "source_only": Row(STEP45, "source_only", "augmented", "step 4/5: more source-only training"),
    "target_bn": Row(STEP45, "target_bn", "augmented", "step 4/5: target batches through the network, lambda_adv 0"),
    "adv_ce_sgd": Row(STEP45, "adv_ce_sgd", "augmented", "step 4/5: adversarial, cross-entropy, SGD"),
    "adv_focal_adam": Row(STEP45, "adv_focal_adam", "augmented", "step 4/5: adversarial, Focal loss, Adam"),
    "adv_focal_sgd": Row(STEP45, "adv_focal_sgd", "augmented", "step 4/5: adversarial, Focal loss, SGD"),
    "adv_ce_adam": Row(STEP45, "adv_ce_adam", "augmented", "step 4/5: adversarial, cross-entropy, Adam"),
    "source_only_frozen": Row(STEP45, "source_only", "augmented", "source_only, BatchNorm statistics frozen "
                              "(stands for target_bn too: with lambda_adv 0 and frozen statistics they are equal)",
                              FROZEN_ARGS),
    "adv_ce_sgd_frozen": Row(STEP45, "adv_ce_sgd", "augmented", "adv_ce_sgd, BatchNorm statistics frozen",
                             FROZEN_ARGS),
    "adv_multilevel": Row(STEP6, "adv_multilevel", "augmented",
                          "step 6: AdaptSegNet multi-level, a second discriminator on the 1/16 auxiliary output"),
    "minent": Row(STEP6, "minent", "augmented", "step 6: ADVENT's MinEnt, the target's entropy minimised"),
    "advent": Row(STEP6, "advent", "augmented", "step 6: ADVENT's AdvEnt, discriminator on self-information"),
    "advent_minent": Row(STEP6, "advent_minent", "augmented", "step 6: AdvEnt and MinEnt together"),
    "fda": Row(STEP6, "fda", "augmented", "step 6: FDA, target low frequencies on source images, entropy term"),
    "dacs": Row(STEP6, "dacs", "augmented", "step 6: DACS, mean-teacher pseudo-labels and ClassMix"),
}
METHODS = ("adv_multilevel", "minent", "advent", "advent_minent", "fda", "dacs")  # step 6's rows
# Each of these rows' final weights, evaluated after AdaBN: what the row's training leaves beyond statistics.
ADABN_OF = ("none", "augmented", "source_only", "adv_ce_sgd", "source_only_frozen", "adv_ce_sgd_frozen", *METHODS)
ROW_SPECS.update({f"{row}_adabn": Row(ROW_SPECS[row].script, ROW_SPECS[row].variant, row,
                                      f"{row}'s final weights, BatchNorm statistics re-estimated on the target "
                                      "(AdaBN)", ADABN_ARGS) for row in ADABN_OF})
# The method-free rows a world is calibrated on (docs/synthetic_world.md), then the course's rows.
ROW_SETS = {"calibration": ("oracle", "none", "none_adabn", "augmented", "augmented_adabn")}
ROW_SETS["default"] = (*ROW_SETS["calibration"], "source_only", "target_bn", "adv_ce_sgd", "adv_focal_adam")
ROW_SETS["all"] = (*ROW_SETS["default"], "adv_focal_sgd", "adv_ce_adam")
ROW_SETS["statistics"] = ("oracle", "none", "augmented", "source_only", "target_bn", "adv_ce_sgd", "none_adabn",
                          "augmented_adabn", "source_only_adabn", "adv_ce_sgd_adabn", "source_only_frozen",
                          "adv_ce_sgd_frozen", "source_only_frozen_adabn", "adv_ce_sgd_frozen_adabn")
ROW_SETS["methods"] = ("source_only", "target_bn", "adv_ce_sgd", "source_only_adabn", *METHODS,
                       *(f"{m}_adabn" for m in METHODS))
# gain -> (row, minus row, the question it answers)
GAINS = {
    "domain_gap": ("oracle", "none", "what the domain shift costs a source-only network"),
    "augmentation": ("augmented", "none", "what source augmentation buys"),
    "augmentation_after_adabn": ("augmented_adabn", "none_adabn",
                                 "what augmentation buys once both networks' statistics are the target's"),
    "target_batchnorm": ("target_bn", "source_only",
                         "what target batches through the network in train mode (its statistics) give alone"),
    "adversarial": ("adv_ce_sgd", "target_bn", "what the adversarial gradient adds, statistics moving in both"),
    "adversarial_vs_source_only": ("adv_ce_sgd", "source_only",
                                   "what step 4/5 gains over more source training (statistics and term together)"),
    "adabn": ("source_only_adabn", "source_only", "what re-estimated statistics give a source-only network, free"),
    "adabn_step3": ("augmented_adabn", "augmented", "the same for step 3's augmented network"),
    "adabn_vs_target_bn": ("source_only_adabn", "target_bn", "AdaBN against statistics moved while training"),
    "adabn_vs_adversarial": ("source_only_adabn", "adv_ce_sgd", "AdaBN (no training) against adversarial training"),
    "adversarial_beyond_statistics": ("adv_ce_sgd_adabn", "source_only_adabn",
                                      "what adversarial training leaves once both have the target's statistics"),
    "adversarial_frozen": ("adv_ce_sgd_frozen", "source_only_frozen",
                           "the adversarial term's effect where statistics cannot move"),
    "adversarial_frozen_adabn": ("adv_ce_sgd_frozen_adabn", "source_only_frozen_adabn",
                                 "what of that effect survives re-estimated statistics"),
}
# What the bench must show for the study to be evidence: gain -> (least mean, interval above zero?).
BENCH_CHECKS = {"domain_gap": (10.0, False), "augmentation": (2.0, True), "adversarial_frozen": (None, True)}
# On GTA5 -> Cityscapes re-estimated statistics close about 15% of the gap in AdaptSegNet's setting (README,
# "The adaptation study"), 0.35 leaving a margin: a bench where they close more shows statistics, not what a
# method does beyond them.
MAX_STATISTICS_SHARE = 0.35
# Points by which `none` on held-out source images must beat `none` on the target, interval above 0: the
# gap is then a domain gap, not a limit of the network's capacity at the study's size and iterations.
MIN_SOURCE_VAL_GAP = 5.0
MIN_D_ACC_MAX = 60.0  # percent: a discriminator that never gets there is not playing the game
# Where the published real-data figure of a row lives: (step table, its row), see utils.report.PUBLISHED.
PUBLISHED_ROWS = {"oracle": ("2", "bisenet"), "none": ("3a3b", "none"), "augmented": ("3a3b", "*"),
                  "source_only": ("4_5", "source_only"), "adv_ce_sgd": ("4_5", "adv_ce_sgd")}


def main(argv: list[str] | None = None) -> dict:
    from utils.config import load_config
    from utils.errors import ConfigError

    cfg = load_config(globals(), argv)
    if cfg.demo:
        raise ConfigError("study.py runs every row at its script's STUDY setting: it has no --demo or --study.")
    if cfg.RENDER:
        if not (Path(cfg.RENDER) / "STUDY.json").is_file():
            raise ConfigError(f"RENDER={cfg.RENDER}: no STUDY.json there to render.")
        print(render(cfg.RENDER))
        return {}
    rows = _resolve_rows(cfg.ROWS)
    compare = _load_compare(cfg.COMPARE)
    seeds = [int(s) for s in cfg.SEEDS]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"SEEDS repeats a seed: {cfg.SEEDS}")

    # RUN: every (seed, row) in order; a row's start row runs first -----------------------------------
    import shlex
    import time

    from tqdm import tqdm

    from utils.paths import REPO_ROOT

    out = Path(cfg.RUNS_DIR)
    if not out.is_absolute() and Path.cwd().resolve() != REPO_ROOT.resolve():  # the rows run in the repository
        out = out.resolve()
    extra = shlex.split(cfg.ROW_ARGS) + ([f"--DEVICE={cfg.DEVICE}"] if cfg.DEVICE != "auto" else [])
    started = time.time()
    runs: dict[str, dict[int, Path]] = {r: {} for r in rows}
    todo = [(s, r) for s in seeds for r in rows]
    for seed, row in tqdm(todo, desc="study", unit="run", dynamic_ncols=True):
        runs[row][seed] = _run_row(row, seed, out, extra, runs)

    # REPORT ------------------------------------------------------------------------------------------
    study = collect(runs, seeds, out, extra, minutes=(time.time() - started) / 60)
    if compare:
        study["compare"] = compare
    write_study(study, out, runs)
    return study


def _load_compare(path: str) -> dict | None:
    """The calibration figures of a recorded study (its STUDY.json), kept in this study's STUDY.json so that
    STUDY.md shows both worlds side by side and re-renders without the file."""
    import json

    from utils.errors import ConfigError
    from utils.paths import REPO_ROOT

    if not path:
        return None
    file = Path(path)
    if not file.is_absolute() and not file.exists():  # the default names a copy in the repository's docs
        file = REPO_ROOT / file
    if file.is_dir():
        file = file / "STUDY.json"
    try:
        recorded = json.loads(file.read_text())
        summary = calibration_summary(recorded)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"COMPARE={path}: not a readable study ({type(e).__name__}: {e}); give a study's "
                          "STUDY.json (docs/study/*/STUDY.json) or COMPARE='' for none.") from None
    return {"study": path, **summary}


CALIBRATION_GAINS = ("domain_gap", "augmentation", "augmentation_after_adabn")


def calibration_summary(study: dict) -> dict:
    """What a study says about its world, method-free rows only: the calibration rows' means, the gap, the
    statistics share, augmentation before and after AdaBN and the held-out source margin (absent: None)."""
    rows = study["rows"]
    return {"generator_version": (study.get("world") or {}).get("generator_version"), "seeds": study["seeds"],
            "machine": study["machine"]["processor"],
            "rows": {r: {"mean": rows[r]["mean"], "std": rows[r]["std"]}
                     for r in ROW_SETS["calibration"] if r in rows},
            "gains": {g: study["gains"][g] for g in CALIBRATION_GAINS if g in study["gains"]},
            "statistics_share": study.get("statistics_share"),
            "source_val_minus_none": (study.get("source_val") or {}).get("minus_target")}


def _resolve_rows(spec: str) -> list[str]:
    """Row names in run order, with every row their start chains need (source_only_adabn needs source_only,
    which needs augmented)."""
    from utils.errors import ConfigError

    names = ROW_SETS.get(spec) or [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROW_SPECS]
    if unknown or not names:
        raise ConfigError(f"ROWS: unknown row(s) {unknown or spec!r}; give {', '.join(ROW_SETS)}, or some of "
                          f"{', '.join(ROW_SPECS)}.")
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [ROW_SPECS[name].start] if ROW_SPECS[name].start else []
    return [n for n in ROW_SPECS if n in wanted]


@functools.lru_cache(maxsize=None)
def script_constant(script: str, name: str):
    """A constant of a step script or of a module the scripts use, read from its source (the study runs
    scripts, it never imports them or what they build on)."""
    import ast

    from utils.paths import REPO_ROOT

    tree = ast.parse((REPO_ROOT / script).read_text(), filename=script)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return ast.literal_eval(node.value)
    raise KeyError(f"{script} has no constant {name}")


def augmented_variant() -> str:
    """The step-3 variant whose augmentations are step 4/5's ``SOURCE_AUGMENT``: the set fixed before the
    study (never chosen on the target), which the adversarial rows also train with."""
    wanted = script_constant(STEP45, "SOURCE_AUGMENT")
    for name, augment in script_constant(STEP3, "VARIANTS").items():
        if augment == wanted:
            return name
    from utils.errors import ConfigError

    raise ConfigError(f"no step-3 variant applies step 4/5's SOURCE_AUGMENT {wanted}: add one to {STEP3}'s "
                      "VARIANTS.")


def _row_variant(row: str) -> str | None:
    variant = ROW_SPECS[row].variant
    return augmented_variant() if variant == "augmented" else variant


def _run_name(row: str) -> str:
    """The row's RUN_NAME: its script's, plus ``-<row>`` for a row with arguments of its own."""
    spec = ROW_SPECS[row]
    return script_constant(spec.script, "RUN_NAME") + (f"-{row}" if spec.args else "")


def row_command(row: str, seed: int | str, out, extra: list[str], start_weights=None) -> list[str]:
    """The step-script command of one row and seed (without the interpreter)."""
    spec, variant = ROW_SPECS[row], _row_variant(row)
    cmd = [spec.script, "--study", f"--SEED={seed}", f"--RUNS_DIR={out}/seed{seed}"]
    if spec.args:
        cmd += [f"--RUN_NAME={_run_name(row)}", *spec.args]
    if variant:
        cmd.append(f"--VARIANTS={variant}")
    if start_weights:
        cmd.append(f"--INIT_FROM={start_weights}")
    return cmd + list(extra)


def run_folder(row: str, seed: int | str, out) -> Path:
    """Where a row's run of one seed lives: ``RUNS_DIR/seed<N>/<RUN_NAME>-study[/<variant>]``."""
    from utils.config import STUDY_SUFFIX

    variant = _row_variant(row)
    folder = Path(out) / f"seed{seed}" / (_run_name(row) + STUDY_SUFFIX)
    return folder / variant if variant else folder


def _run_row(row: str, seed: int, out, extra: list[str], runs: dict) -> Path:
    """Run one row's command (a finished run is reused by the step script itself); its output goes to a log."""
    import subprocess
    import sys

    from utils.errors import UserError
    from utils.paths import REPO_ROOT

    start = ROW_SPECS[row].start
    weights = runs[start][seed] / "last.pt" if start else None
    cmd = row_command(row, seed, out, extra, weights)
    folder = run_folder(row, seed, out)
    log = Path(out) / f"seed{seed}" / "logs" / f"{row}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"\n[seed {seed}] {row}: python {' '.join(cmd)}  (output: {log})", flush=True)
    with open(log, "a") as f:
        done = subprocess.run([sys.executable, *cmd], cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not (folder / "results.json").is_file():
        tail = log.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-5:]
        raise UserError(f"row {row}, seed {seed} failed (exit {done.returncode}); its output is in {log}:\n  "
                        + "\n  ".join(tail) + "\nFix it, then run the same study command again: finished runs "
                        "are reused.")
    return folder


def _d_acc_max(history: list[dict]) -> float | None:
    """The highest epoch-mean discriminator accuracy in percent, source and target averaged."""
    accs = [(h["d_acc_source"] + h["d_acc_target"]) / 2 for h in history
            if h.get("d_acc_source") is not None and h.get("d_acc_target") is not None]
    return max(accs) if accs else None


def collect(runs: dict[str, dict[int, Path]], seeds: list[int], out, extra: list[str],
            minutes: float) -> dict:
    """STUDY.json's content from the rows' results.json files."""
    import json
    import os
    import platform

    import torch

    from utils.report import published
    from utils.stats import mean_std, paired_gain, seeds_to_exclude_zero

    rows, device, source_val = {}, None, None
    for row, by_seed in runs.items():
        spec = ROW_SPECS[row]
        results = [json.loads((by_seed[s] / "results.json").read_text()) for s in seeds]
        if row == "none":
            source_val = _source_val(results)
        device = device or results[0].get("device")
        miou = [r["miou"] for r in results]
        mean, std = mean_std(miou)
        # an evaluation row trains nothing: its results carry the iterations and seconds of the weights it read
        own_iters = 0 if spec.evaluates_only else results[0]["iterations"]
        seconds = 0.0 if spec.evaluates_only else sum(r["train_seconds"] for r in results)
        template = run_folder(spec.start, "<seed>", out) / "last.pt" if spec.start else None
        entry = {"miou": miou, "mean": mean, "std": std, "seeds": seeds,
                 "command": "python " + " ".join(row_command(row, "<seed>", out, extra, template)),
                 "what": spec.what, "starts_from": spec.start,
                 "iterations": (rows[spec.start]["iterations"] if spec.start else 0) + own_iters,
                 "own_iterations": own_iters, "train_seconds": seconds,
                 "seconds_per_iteration": seconds / own_iters / len(results) if own_iters else None}
        if any("miou_before_adabn" in r for r in results):
            entry["miou_before_adabn"] = [r.get("miou_before_adabn") for r in results]
            entry["adabn_seconds"] = sum(r.get("adabn_seconds") or 0.0 for r in results)
        d_max = [_d_acc_max(r.get("history") or []) for r in results]
        if all(d is not None for d in d_max):
            entry["d_acc_max"] = sum(d_max) / len(d_max)
            entry["d_acc_max_per_seed"] = d_max
        if row in PUBLISHED_ROWS:
            entry["published"] = published(*PUBLISHED_ROWS[row])
        rows[row] = entry
    gains = {}
    for name, (a, b, _) in GAINS.items():
        if a in rows and b in rows:
            g = paired_gain(rows[a]["miou"], rows[b]["miou"])
            gains[name] = {**g, "seeds_needed": seeds_to_exclude_zero(g["mean"], g["std"])}
    methods = {}
    for row in (r for r in METHODS if r in rows):
        m = {f"vs_{base}": paired_gain(rows[row]["miou"], rows[base]["miou"])
             for base in ("source_only", "adv_ce_sgd", "target_bn", "source_only_adabn") if base in rows}
        if f"{row}_adabn" in rows and "source_only_adabn" in rows:  # what the method leaves beyond statistics
            m["adabn_vs_source_only_adabn"] = paired_gain(rows[f"{row}_adabn"]["miou"],
                                                          rows["source_only_adabn"]["miou"])
        if "source_only" in rows:
            m["time_vs_source_only"] = rows[row]["seconds_per_iteration"] / rows["source_only"]["seconds_per_iteration"]
        methods[row] = m
    share = statistics_share(rows)
    if source_val:
        source_val["minus_target"] = {"per_seed": [h - t for h, t in zip(source_val["miou"], rows["none"]["miou"])],
                                      **paired_gain(source_val["miou"], rows["none"]["miou"])}
    world = {"generator_version": script_constant(WORLD_SOURCE, "GENERATOR_VERSION")}
    return {"seeds": seeds, "world": world, "rows": rows, "gains": gains,
            **({"methods": methods} if methods else {}),
            **({"statistics_share": share} if share else {}),
            **({"source_val": source_val} if source_val else {}),
            "checks": _checks(rows, gains, share, source_val),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "torch": torch.__version__, "device": device},
            "minutes_this_invocation": minutes,
            "train_minutes": sum(r["train_seconds"] for r in rows.values()) / 60}


def statistics_share(rows: dict) -> dict | None:
    """The share of the domain gap that re-estimated statistics alone close: per seed
    (none_adabn - none) / (oracle - none), with its mean and 95% interval; None without those rows."""
    from utils.stats import mean_interval

    if not all(r in rows for r in ("oracle", "none", "none_adabn")):
        return None
    per_seed = [(a - n) / (o - n) for o, n, a in zip(rows["oracle"]["miou"], rows["none"]["miou"],
                                                     rows["none_adabn"]["miou"])]
    return {"per_seed": per_seed, **mean_interval(per_seed)}


def _source_val(results: list[dict]) -> dict | None:
    """`none`'s mIoU on the held-out source images (step 3's ``gta5_val``) per seed; None where a run has none."""
    from utils.stats import mean_std

    held = [((r.get("extra_evals") or {}).get("gta5_val") or {}).get("miou") for r in results]
    if any(v is None for v in held):
        return None
    mean, std = mean_std(held)
    return {"miou": held, "mean": mean, "std": std}


def _checks(rows: dict, gains: dict, share: dict | None = None, source_val: dict | None = None) -> list[dict]:
    """Whether the bench shows what it must: each check with its figure and verdict."""
    checks = []
    if share:
        checks.append({"check": "statistics_share", "wants": f"mean <= {MAX_STATISTICS_SHARE:g}",
                       "ok": share["mean"] <= MAX_STATISTICS_SHARE})
    if source_val:
        g = source_val["minus_target"]
        checks.append({"check": "source_val - none", "wants": f">= {MIN_SOURCE_VAL_GAP:g} and 95% interval above 0",
                       "ok": g["mean"] >= MIN_SOURCE_VAL_GAP and g["ci95"] is not None and g["ci95"][0] > 0})
    for name, (least, ci_above_zero) in BENCH_CHECKS.items():
        g = gains.get(name)
        if g is None:
            continue
        ok = least is None or g["mean"] >= least
        wants = [f">= {least:g}"] if least is not None else []
        if ci_above_zero:
            ok = ok and g["ci95"] is not None and g["ci95"][0] > 0
            wants.append("95% interval above 0")
        checks.append({"check": name, "wants": " and ".join(wants), "ok": bool(ok)})
    for row, r in rows.items():
        if "d_acc_max" in r and r["starts_from"] and row != "target_bn":
            checks.append({"check": f"{row} d_acc_max", "wants": f">= {MIN_D_ACC_MAX:g}",
                           "ok": r["d_acc_max"] >= MIN_D_ACC_MAX})
    return checks


def _fmt(v, nd: int = 2, sign: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def _gain_cell(g: dict | None) -> str:
    if g is None:
        return "-"
    ci = "" if g["ci95"] is None else f" [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]"
    return f"{g['mean']:+.2f}{ci}"


def write_study(study: dict, out, runs: dict) -> None:
    """STUDY.json, the bar plot, the discriminator curves and STUDY.md; prints the tables."""
    from utils.plots import plot_discriminator_curves
    from utils.runs import write_json

    out = Path(out)
    write_json(out / "STUDY.json", study)
    adversarial = {n: [runs[n][s] / "metrics.csv" for s in study["seeds"]] for n, r in study["rows"].items()
                   if "d_acc_max" in r}
    curves = plot_discriminator_curves(adversarial, out / "discriminator.png")
    _plot_bars(study, out)
    pictures = ["study.png"] + (["discriminator.png"] if curves else [])
    text = markdown(study, pictures)
    (out / "STUDY.md").write_text(text)
    print("\n" + text)
    print(f"(written: {out / 'STUDY.md'}, {out / 'STUDY.json'}, " + ", ".join(str(out / p) for p in pictures) + ")")


def render(folder) -> str:
    """A copy of a study's outputs (``STUDY.json``, with or without the pictures beside it): its ``STUDY.md`` and
    ``study.png`` rewritten from the JSON, nothing run. The discriminator curves need the runs' metrics and are
    shown only where their picture is there."""
    import json

    folder = Path(folder)
    study = json.loads((folder / "STUDY.json").read_text())
    _plot_bars(study, folder)
    pictures = ["study.png"] + (["discriminator.png"] if (folder / "discriminator.png").is_file() else [])
    text = markdown(study, pictures)
    (folder / "STUDY.md").write_text(text)
    return text


def _plot_bars(study: dict, out: Path) -> None:
    from utils.plots import plot_seed_bars

    plot_seed_bars({n: r["miou"] for n, r in study["rows"].items()}, out / "study.png",
                   title=f"adaptation study, synthetic world: mIoU over seeds {study['seeds']}")


def markdown(study: dict, pictures: list[str]) -> str:
    """STUDY.md: the rows, the gains with the question each answers, the statistics share, the methods, the
    bench checks and each row's command, from STUDY.json's content alone."""
    rows, gains, machine = study["rows"], study["gains"], study["machine"]
    minutes = study.get("train_minutes")
    lines = ["# The adaptation study (synthetic world)", "",
             f"Seeds {', '.join(map(str, study['seeds']))}; {machine['processor']}, {machine['cpus']} CPUs, torch "
             f"{machine['torch']}, device {machine['device']}; "
             + (f"training {minutes:.1f} min in all, " if minutes is not None else "")
             + f"this invocation {study['minutes_this_invocation']:.1f} min (finished runs are reused).", "",
             "| row | what | iterations | mIoU mean ± std | per seed | d_acc_max | published (real data) |",
             "|-----|------|-----------:|-----------------|----------|----------:|-----------------------|"]
    for name, r in rows.items():
        per_seed = ", ".join(f"{v:.2f}" for v in r["miou"])
        own = r.get("own_iterations", r["iterations"])
        total = f"{r['iterations']}" + (f" ({r['iterations'] - own} + {own})" if r["starts_from"] else "")
        lines.append(f"| {name} | {r['what']} | {total} | {_fmt(r['mean'])} ± {_fmt(r['std'])} | {per_seed} | "
                     f"{_fmt(r.get('d_acc_max'), 1)} | {r.get('published', '-')} |")
    lines += ["", "Gains, paired by seed (95% Student t interval; seeds needed: how many seeds the interval would "
              "need to exclude 0 if the mean and the spread of the per-seed differences stay as measured):", "",
              "| gain | rows | mean | 95% interval | seeds needed | the question it answers |",
              "|------|------|-----:|--------------|-------------:|-------------------------|"]
    for name, g in gains.items():
        a, b, question = GAINS[name]
        ci = "-" if g["ci95"] is None else f"[{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]"
        lines.append(f"| {name} | {a} - {b} | {_fmt(g['mean'], sign=True)} | {ci} | "
                     f"{g.get('seeds_needed') or '-'} | {question} |")
    share = study.get("statistics_share")
    if share:
        ci = "-" if share["ci95"] is None else f"[{share['ci95'][0]:.2f}, {share['ci95'][1]:.2f}]"
        lines += ["", f"Share of the domain gap that re-estimated statistics close alone, (none_adabn - none) / "
                  f"(oracle - none): {share['mean']:.2f}, 95% interval {ci}; per seed "
                  + ", ".join(f"{v:.2f}" for v in share["per_seed"]) + "."]
    held = study.get("source_val")
    if held:
        lines += ["", f"`none` on held-out source images (step 3's gta5_val): {held['mean']:.2f} ± {held['std'] or 0:.2f}, "
                  f"{_gain_cell(held['minus_target'])} above `none` on the target (per seed "
                  + ", ".join(f"{v:.2f}" for v in held["miou"]) + "): the gap is a domain gap, not a limit of "
                  "the network at this size."]
    if study.get("compare") and all(r in rows for r in ("oracle", "none")):
        lines += [""] + _calibration_table(calibration_summary(study), study["compare"])
    if study.get("methods"):
        bases = [b for b in ("source_only", "adv_ce_sgd", "target_bn", "source_only_adabn")
                 if any(f"vs_{b}" in m for m in study["methods"].values())]
        beyond = any("adabn_vs_source_only_adabn" in m for m in study["methods"].values())
        lines += ["", "Step 6's methods, paired by seed (95% Student t interval); "
                  + ("beyond statistics: the method's weights after AdaBN minus source_only's after AdaBN; "
                     if beyond else "") + "time per iteration relative to source_only:", "",
                  "| method | " + " | ".join(f"vs {b}" for b in bases) + (" | beyond statistics" if beyond else "")
                  + " | time |", "|--------|" + "---|" * (len(bases) + beyond) + "-----:|"]
        for name, m in study["methods"].items():
            cells = [_gain_cell(m.get(f"vs_{b}")) for b in bases]
            cells += [_gain_cell(m.get("adabn_vs_source_only_adabn"))] if beyond else []
            lines.append(f"| {name} | {' | '.join(cells)} | {_fmt(m.get('time_vs_source_only'), 1)}x |")
    if study["checks"]:
        lines += ["", "What the bench must show:", "", "| check | wants | holds |", "|-------|-------|-------|"]
        lines += [f"| {c['check']} | {c['wants']} | {'yes' if c['ok'] else 'NO'} |" for c in study["checks"]]
    lines += ["", "Each row is one command (`<seed>`: each of the seeds):", ""]
    lines += [f"- {name}: `{r['command']}`" for name, r in rows.items()]
    return "\n".join(lines + [""] + [f"![{p[:-4]}]({p})\n" for p in pictures])


def _calibration_table(this: dict, other: dict) -> list[str]:
    """This study's world beside a recorded one, method-free rows only."""
    def head(c: dict) -> str:
        version = f"world version {c['generator_version']}" if c.get("generator_version") else "world"
        return f"{version}, seeds {', '.join(map(str, c['seeds']))}, {c['machine']}"

    def row(c: dict, r: str) -> str:
        v = c["rows"].get(r)
        return "-" if v is None else f"{v['mean']:.2f} ± {_fmt(v['std'])}"

    def share(c: dict) -> str:
        s = c.get("statistics_share")
        if not s:
            return "-"
        return f"{s['mean']:.2f}" + ("" if s["ci95"] is None else f" [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]")

    lines = [f"The world's calibration (method-free rows) beside `{other['study']}`:", "",
             f"| figure | this study ({head(this)}) | {other['study']} ({head(other)}) |", "|---|---|---|"]
    lines += [f"| {r} | {row(this, r)} | {row(other, r)} |" for r in ROW_SETS["calibration"]]
    lines += [f"| {g} ({GAINS[g][0]} - {GAINS[g][1]}) | {_gain_cell(this['gains'].get(g))} | "
              f"{_gain_cell(other['gains'].get(g))} |" for g in CALIBRATION_GAINS]
    lines.append(f"| statistics_share | {share(this)} | {share(other)} |")
    lines.append(f"| none on held-out source - none on target | {_gain_cell(this['source_val_minus_none'])} | "
                 f"{_gain_cell(other['source_val_minus_none'])} |")
    return lines


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
