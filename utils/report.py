"""Results tables: one run's printed tables, the summary of a multi-variant experiment, and the report over
every run in a folder (`python -m utils.report`), beside the published figures."""
from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from utils.config import canonical
from utils.distributed import is_main
from utils.paths import REPO_ROOT, writable_file, writable_folder
from utils.runs import NON_IDENTITY_KEYS, write_json
from utils.stats import mean_std


def provenance() -> dict:
    """Which code produced a result: commit, uncommitted changes, library versions."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None,
            "torch": torch.__version__, "cuda": torch.version.cuda}


def _fmt(v, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def markdown_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def per_class_table(results: dict) -> str:
    """Per-class IoU of one result, then mIoU and pixel accuracy."""
    rows = [[name, iou] for name, iou in results["per_class_iou"].items()]
    rows += [["mIoU", results["miou"]], ["pixel acc.", results["pixel_acc"]]]
    title = f"{results['model']} {results['train_domain']} -> {results['eval_domain']}"
    if results.get("variant", "default") != "default":
        title += f" [{results['variant']}]"
    return f"{title}: IoU (%)\n" + markdown_table(["class", "IoU"], rows)


def complexity_row(results: dict) -> list:
    return [results["model"], results["params_m"], results["flops_g"], results["latency_ms"],
            results["latency_std_ms"], results["fps"], results["device"]]


def complexity_header(results: dict) -> list[str]:
    fh, fw = results["flops_resolution"]
    lh, lw = results["latency_resolution"]
    return ["model", "params (M)", f"FLOPs (G, fvcore multiply-adds, {fh}x{fw})",
            f"latency (ms, {lh}x{lw})", "std (ms)", "FPS", "device"]


def print_results(results: dict) -> None:
    print()
    print(per_class_table(results))
    print()
    print(markdown_table(complexity_header(results), [complexity_row(results)]))
    for name, ev in (results.get("extra_evals") or {}).items():
        print(f"{name}: mIoU {_fmt(ev['miou'])}")
    marker = " (synthetic world)" if results.get("synthetic") else ""
    adabn = ""
    if results.get("miou_before_adabn") is not None:
        adabn = f" after AdaBN ({_fmt(results['miou_before_adabn'])} before)"
    print(f"\nmIoU {_fmt(results['miou'])}{adabn}{marker}, {results['epochs']} epochs, "
          f"{results['iterations']} iterations, {results['train_seconds']:.0f} s on {results['device']}")


def write_summary(out_dir: Path, results: list[dict], baseline: str | None = None,
                  title: str = "Summary", also_vs: str | None = None) -> str:
    """summary.md and summary.csv for a multi-variant step: mIoU, gains, per-class IoU columns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {r["variant"]: r for r in results}
    base = by_name.get(baseline)
    other = by_name.get(also_vs)
    classes = list(results[0]["per_class_iou"]) if results else []
    header = ["variant", "mIoU"]
    adabn = any(r.get("miou_before_adabn") is not None for r in results)
    if adabn:
        header.append("mIoU before AdaBN")
    if base:
        header.append(f"gain vs {baseline}")
    if other:
        header.append(f"gain vs {also_vs}")
    extras = sorted({k for r in results for k in (r.get("extra_evals") or {})})
    header += extras
    rows = []
    for r in results:
        row = [r["variant"], r["miou"]]
        if adabn:
            row.append(r.get("miou_before_adabn"))
        if base:
            row.append(_gain(r, base))
        if other:
            row.append(_gain(r, other))
        row += [(r.get("extra_evals") or {}).get(e, {}).get("miou") for e in extras]
        rows.append(row)
    table = markdown_table(header, rows)
    class_table = markdown_table(["variant", *classes],
                                 [[r["variant"], *r["per_class_iou"].values()] for r in results])
    synthetic = any(r.get("synthetic") for r in results)
    text = (f"# {title}\n\n" + ("Data: the built-in synthetic world (not the real datasets).\n\n" if synthetic else "")
            + table + "\n\nPer-class IoU (%):\n\n" + class_table + "\n")
    (out_dir / "summary.md").write_text(text)
    with open(out_dir / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + classes)
        for row, r in zip(rows, results):
            w.writerow([_fmt(c, 4) if isinstance(c, float) else c for c in row]
                       + [_fmt(v, 4) for v in r["per_class_iou"].values()])
    write_json(out_dir / "summary.json", {"title": title, "results": [
        {"variant": r["variant"], "miou": r["miou"], "path": r.get("path")} for r in results]})
    return table


def _gain(r: dict, base: dict):
    if r["miou"] is None or base["miou"] is None:
        return None
    return r["miou"] - base["miou"]


def summarize_variants(out_dir: Path, results: list[dict], baseline: str | None, title: str,
                       also_vs: str | None = None, note: str | None = None) -> str:
    """Summary files and the per-class bar chart of a multi-variant experiment in ``out_dir`` (its
    ``RUNS_DIR/RUN_NAME``); prints the table, with ``note`` under it when given."""
    from utils.plots import plot_per_class_iou

    if not is_main():  # under torchrun rank 0 alone writes (and prints) the summary
        return ""
    table = write_summary(out_dir, results, baseline=baseline, title=title, also_vs=also_vs)
    if note:
        table += f"\n\n{note}"
        with open(out_dir / "summary.md", "a") as f:
            f.write(f"\n{note}\n")
    plot_per_class_iou(results, out_dir / "per_class_iou.png", title=title)
    print(f"\n{title}\n{table}\n(summary in {out_dir}/summary.md, .csv; chart per_class_iou.png)")
    return table


# ------------------------------------------------------------------------------ the report over all runs
# Published figures, typed once here: per table of the report, mIoU (%, Cityscapes val, 19 classes) by row
# (model or variant; "*" = any other variant), latency by model, and the note printed under the table.
PUBLISHED_SOURCE = ("course student reports (512x1024, 50 epochs), the BiSeNet paper (Yu et al., ECCV 2018) and "
                    "AdaptSegNet (Tsai et al., CVPR 2018)")
PUBLISHED: dict[str, dict] = {
    "2": {"miou": {"deeplabv2": "43.1 (SGD) / 50.1 (Adam); 61.9", "bisenet": "32.8 (SGD) / 48.0 (Adam); 46.8; 52.8"},
          "latency": {"deeplabv2": "39 ms", "bisenet": "13 ms"},
          "note": "Published: BiSeNet-R18 paper 74.7 mIoU on Cityscapes test at 65.5 FPS (Titan XP, 768x1536); "
                  "latency at 512x1024 (GPU unstated): DeepLabV2 39 ms, BiSeNet 13 ms."},
    "3a3b": {"miou": {"none": "17.4 - 21.1", "*": "23.9 - 27.4 (with augmentation)"},
             "note": "Published: BiSeNet-R18 GTA5 -> Cityscapes 17.4 - 21.1 without, 23.9 - 27.4 with augmentation."},
    "6": {"miou": {"source_only": "36.6 (DeepLabV2-R101, AdaptSegNet)",
                   "adv_single": "41.4 (DeepLabV2-R101, AdaptSegNet)",
                   "adv_multilevel": "42.4 (DeepLabV2-R101, AdaptSegNet)",
                   "minent": "42.3 (DeepLabV2-R101, ADVENT)", "advent": "43.8 (DeepLabV2-R101, ADVENT)",
                   "advent_minent": "45.5 (DeepLabV2-R101, ADVENT)",
                   "fda": "50.45 FDA-MBT (DeepLabV2-R101, FDA Table 1; three betas and self-training)",
                   "dacs": "52.14 (DeepLabV2-R101, DACS Table 1)"},
          "note": "Published, DeepLabV2-R101 GTA5 -> Cityscapes: AdaptSegNet (Tsai et al., CVPR 2018) 36.6 source "
                  "only / 41.4 single-level / 42.4 multi-level; ADVENT (Vu et al., CVPR 2019) MinEnt 42.3, AdvEnt "
                  "43.8, both 45.5; FDA (Yang and Soatto, CVPR 2020, Table 1) 50.45 for FDA-MBT (three betas "
                  "and self-training; single-beta models without self-training score lower there); DACS "
                  "(Tranheden et al., WACV 2021, Table 1) 52.14."},
    "4_5": {"miou": {"source_only": "23.9 - 27.4 (augmented, not adapted)", "adv_ce_sgd": "27.0 - 30.4"},
            "note": "Published: BiSeNet-R18 with single-level adversarial adaptation 27.0 - 30.4; AdaptSegNet "
                    "DeepLabV2-R101 GTA5 -> Cityscapes source only 36.6 / multi-level adversarial 42.4 "
                    "(oracle 65.1)."},
}

# What a step's table shows: rows by model or by variant, and the variants gains are measured against.
TABLES: dict[str, dict] = {
    "2": {"steps": ("2a", "2b"), "title": "Step 2: DeepLabV2 and BiSeNet trained and evaluated on Cityscapes",
          "baselines": ()},
    "3a3b": {"steps": ("3a3b",), "title": "Step 3: BiSeNet GTA5 -> Cityscapes, data augmentation",
             "baselines": ("none",)},
    "4_5": {"steps": ("4_5",), "title": "Steps 4/5: adversarial adaptation, Focal loss, Adam (GTA5 -> Cityscapes)",
            "baselines": ("source_only", "adv_ce_sgd")},
    "6": {"steps": ("6",), "title": "Step 6: AdaptSegNet, ADVENT, FDA and DACS (GTA5 -> Cityscapes)",
          "baselines": ("source_only",)},
}
# Config keys that may differ between runs of one experiment repeated with other seeds.
SEED_GROUP_IGNORED = (*NON_IDENTITY_KEYS, "SEED")
SYNTHETIC_MARK = "SYNTHETIC"
_REQUIRED = ("step", "variant", "model", "miou")


def load_all_results(root: Path) -> list[dict]:
    """Every readable results.json under ``root`` (recursively); malformed ones are skipped with a warning."""
    out = []
    for path in sorted(Path(root).rglob("results.json")):
        try:
            r = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            print(f"warning: skipping {path}: not valid JSON ({str(e).splitlines()[0]})", file=sys.stderr)
            continue
        missing = [k for k in _REQUIRED if not isinstance(r, dict) or k not in r]
        if missing:
            print(f"warning: skipping {path}: not a results.json of this project (missing {', '.join(missing)})",
                  file=sys.stderr)
            continue
        miou_ok = r["miou"] is None or (isinstance(r["miou"], (int, float)) and not isinstance(r["miou"], bool))
        if not miou_ok or not isinstance(r.get("config") or {}, dict):
            print(f"warning: skipping {path}: 'miou' is not a number or 'config' is not a dict", file=sys.stderr)
            continue
        out.append({**r, "_file": str(path)})
    return out


def _identity(r: dict, with_variant: bool) -> str:
    ignored = SEED_GROUP_IGNORED if with_variant else (*SEED_GROUP_IGNORED, "VARIANT", "VARIANT_SPEC")
    cfg = {k: canonical(k, v) for k, v in (r.get("config") or {}).items() if k not in ignored}
    key = [str(r["step"]), r["model"], r.get("train_domain"), r.get("eval_domain"), bool(r.get("synthetic")), cfg]
    if with_variant:
        key.append(r["variant"])
    return json.dumps(key, sort_keys=True, default=str)


def group_by_seed(results: list[dict]) -> list[list[dict]]:
    """Runs identical but for their seed (and run name, device, ...) in one group, in first-seen order."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(_identity(r, with_variant=True), []).append(r)
    return list(groups.values())


def _numbers(group: list[dict], key: str) -> list[float]:
    vals = [r.get(key) for r in group]
    return [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _pm(mean: float | None, std: float | None, nd: int = 2, sign: bool = False) -> str:
    if mean is None:
        return "-"
    text = f"{mean:+.{nd}f}" if sign else f"{mean:.{nd}f}"
    return text if std is None else f"{text} ± {std:.{nd}f}"


def _seed(r: dict):
    return (r.get("config") or {}).get("SEED")


def seed_gain(group: list[dict], base: list[dict]) -> tuple[float | None, float | None]:
    """mIoU gain of ``group`` over ``base``: paired by seed when both ran the same seeds, else of the means."""
    by_seed = {_seed(r): r.get("miou") for r in base}
    seeds = [_seed(r) for r in group]
    if len(group) > 1 and len(set(seeds)) == len(seeds) and set(seeds) == set(by_seed):
        diffs = [r["miou"] - by_seed[_seed(r)] for r in group
                 if r.get("miou") is not None and by_seed[_seed(r)] is not None]
        if len(diffs) == len(group):
            return mean_std(diffs)
    a, b = mean_std(_numbers(group, "miou"))[0], mean_std(_numbers(base, "miou"))[0]
    return (a - b if a is not None and b is not None else None), None


def _run_label(group: list[dict]) -> str:
    names = sorted({str((r.get("config") or {}).get("RUN_NAME") or Path(r["_file"]).parent.name) for r in group})
    return names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1}"


def _res(v) -> str:
    return "x".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v or "-")


def published(table: str, row: str, kind: str = "miou") -> str:
    """The published figure of a step table's row ("-" where none), e.g. ``published("3a3b", "none")``."""
    figures = PUBLISHED.get(table, {}).get(kind, {})
    return figures.get(row, figures.get("*", "-"))


def _common_row(group: list[dict]) -> dict:
    r0 = group[0]
    miou, miou_std = mean_std(_numbers(group, "miou"))
    seeds = [_seed(r) for r in group]
    return {"step": r0["step"], "model": r0["model"], "variant": r0["variant"],
            "data": SYNTHETIC_MARK if r0.get("synthetic") else "real", "run": _run_label(group), "n": len(group),
            "seeds": ",".join("-" if s is None else str(s) for s in seeds), "miou": miou, "miou_std": miou_std,
            "files": ";".join(r["_file"] for r in group)}


def _step2_rows(groups: list[list[dict]]) -> list[dict]:
    order = {"deeplabv2": 0, "bisenet": 1}
    rows = []
    for g in sorted(groups, key=lambda g: (order.get(g[0]["model"], 9), _run_label(g))):
        r0 = g[0]
        row = _common_row(g)
        row.update(
            params_m=mean_std(_numbers(g, "params_m"))[0], flops_g=mean_std(_numbers(g, "flops_g"))[0],
            flops_resolution=_res(r0.get("flops_resolution")), latency_ms=mean_std(_numbers(g, "latency_ms"))[0],
            latency_resolution=_res(r0.get("latency_resolution")), fps=mean_std(_numbers(g, "fps"))[0],
            device="; ".join(sorted({str(r.get("device", "-")) for r in g})),
            published_miou=published("2", r0["model"]), published_latency=published("2", r0["model"], "latency"))
        rows.append(row)
    return rows


def _variant_rows(table: str, groups: list[list[dict]]) -> list[dict]:
    baselines = TABLES[table]["baselines"]
    families: dict[str, list[list[dict]]] = {}
    for g in groups:
        families.setdefault(_identity(g[0], with_variant=False), []).append(g)
    rows = []
    for fam in sorted(families.values(), key=lambda f: min(_run_label(g) for g in f)):
        by_variant = {g[0]["variant"]: g for g in fam}
        listed = (fam[0][0].get("config") or {}).get("VARIANTS")
        listed = list(listed) if isinstance(listed, (dict, list)) else []

        def rank(g, listed=listed):
            v = g[0]["variant"]
            return (baselines.index(v) if v in baselines else len(baselines),
                    listed.index(v) if v in listed else len(listed), v)

        extras = sorted({k for g in fam for r in g for k in (r.get("extra_evals") or {})})
        for g in sorted(fam, key=rank):
            row = _common_row(g)
            for b in baselines:
                row[f"gain_vs_{b}"], row[f"gain_vs_{b}_std"] = (
                    seed_gain(g, by_variant[b]) if b in by_variant else (None, None))
            for e in extras:
                vals = [((r.get("extra_evals") or {}).get(e) or {}).get("miou") for r in g]
                row[f"extra_{e}_miou"], row[f"extra_{e}_miou_std"] = mean_std(
                    [float(v) for v in vals if isinstance(v, (int, float)) and math.isfinite(v)])
            row["published_miou"] = published(table, g[0]["variant"])
            rows.append(row)
    return rows


def _step2_markdown(rows: list[dict]) -> str:
    header = ["model", "data", "run", "n", "mIoU (%)", "published mIoU (%)", "params (M)",
              "FLOPs (G, fvcore multiply-adds)", "latency (ms)", "published latency", "FPS", "device"]
    body = [[r["model"], r["data"], r["run"], r["n"], _pm(r["miou"], r["miou_std"]), r["published_miou"],
             _pm(r["params_m"], None, 3), f"{_pm(r['flops_g'], None)} @{r['flops_resolution']}",
             f"{_pm(r['latency_ms'], None)} @{r['latency_resolution']}", r["published_latency"],
             _pm(r["fps"], None, 1), r["device"]] for r in rows]
    return markdown_table(header, body)


def _variant_markdown(table: str, rows: list[dict]) -> str:
    baselines = TABLES[table]["baselines"]
    extras = sorted({k[len("extra_"):-len("_miou")] for r in rows for k in r
                     if k.startswith("extra_") and k.endswith("_miou")})
    header = ["variant", "data", "run", "n", "mIoU (%)", *(f"gain vs {b}" for b in baselines),
              *(f"mIoU on {e} (%)" for e in extras), "published mIoU (%)"]
    body = [[r["variant"], r["data"], r["run"], r["n"], _pm(r["miou"], r["miou_std"]),
             *(_pm(r[f"gain_vs_{b}"], r[f"gain_vs_{b}_std"], sign=True) for b in baselines),
             *(_pm(r.get(f"extra_{e}_miou"), r.get(f"extra_{e}_miou_std")) for e in extras), r["published_miou"]]
            for r in rows]
    return markdown_table(header, body)


def _other_markdown(rows: list[dict]) -> str:
    header = ["step", "model", "variant", "data", "run", "n", "mIoU (%)"]
    return markdown_table(header, [[r["step"], r["model"], r["variant"], r["data"], r["run"], r["n"],
                                    _pm(r["miou"], r["miou_std"])] for r in rows])


def build_report(results: list[dict], root: Path | str = "runs") -> tuple[str, list[dict]]:
    """The Markdown report over ``results`` and its rows (one per seed group) for the CSV."""
    groups = group_by_seed(results)
    step_of = {s: t for t, spec in TABLES.items() for s in spec["steps"]}
    by_table: dict[str, list[list[dict]]] = {}
    for g in groups:
        by_table.setdefault(step_of.get(str(g[0]["step"]), "other"), []).append(g)
    parts = [f"# Results\n\n{len(results)} results.json under {root}, {len(groups)} experiments. Runs that differ "
             "only in their seed are one row: mean ± sample standard deviation over n seeds; gains are paired "
             "by seed when both rows ran the same seeds. mIoU in %, 19 classes."]
    all_rows = []
    for table in (*TABLES, "other"):
        if table not in by_table:
            continue
        if table == "2":
            rows = _step2_rows(by_table[table])
            text = _step2_markdown(rows)
        elif table == "other":
            rows = [_common_row(g) for g in by_table[table]]
            text = _other_markdown(rows)
        else:
            rows = _variant_rows(table, by_table[table])
            text = _variant_markdown(table, rows)
        title = TABLES[table]["title"] if table in TABLES else "Other steps"
        notes = []
        if any(r["data"] == SYNTHETIC_MARK for r in rows):
            notes.append(f"{SYNTHETIC_MARK}: rows from the project's generated synthetic world (--demo), not the "
                         "real datasets; they check that the pipeline works and are not comparable with the "
                         "published figures.")
        if "note" in PUBLISHED.get(table, {}):
            notes.append(PUBLISHED[table]["note"])
        parts.append(f"## {title}\n\n{text}" + "".join(f"\n\n{n}" for n in notes))
        all_rows += [{"table": table, **r} for r in rows]
    parts.append(f"Published figures: {PUBLISHED_SOURCE}.")
    return "\n\n".join(parts) + "\n", all_rows


def write_report_csv(path: Path, rows: list[dict]) -> None:
    """One line per row of every table, numbers unformatted."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])


def export_figures(results: list[dict], out: Path, max_width: int = 1000, only: list[str] | None = None) -> list[Path]:
    """Each run's ``qualitative.png`` scaled to at most ``max_width`` pixels wide, for a README; ``only``
    keeps the names (``<run>`` or ``<run>_<variant>``) listed."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for r in results:
        folder = Path(r["_file"]).parent if r.get("_file") else Path(r.get("path", ""))
        src = folder / "qualitative.png"
        if not src.is_file():
            continue
        name = src.parent.name if r.get("variant", "default") == "default" else \
            f"{src.parent.parent.name}_{src.parent.name}"
        if only and name not in only:
            continue
        with Image.open(src) as im:
            im = im.convert("RGB")
            if im.width > max_width:
                im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
            dst = out / f"{name}.png"
            im.save(dst, optimize=True)
        written.append(dst)
    return written


def main(argv: list[str] | None = None) -> str:
    """``python -m utils.report [runs/] [--out RESULTS.md] [--csv PATH] [--figures DIR]``: the tables of every
    run in a folder."""
    from utils.errors import UserError

    parser = argparse.ArgumentParser(
        prog="python -m utils.report",
        description="Tables of every results.json under a folder (steps 2, 3, 4/5), seeds averaged, "
                    "beside the published figures.")
    parser.add_argument("runs", nargs="?", default="runs", help="folder searched recursively (default: runs)")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--csv", type=Path, help="also write the table rows as CSV to this file")
    parser.add_argument("--figures", type=Path, help="also copy each run's qualitative.png here, at most "
                        "1000 px wide, named <run>[_<variant>].png (the README's pictures)")
    parser.add_argument("--figures-only", default="", help="comma-separated names to export with --figures")
    args = parser.parse_args(argv)
    root = Path(args.runs)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the RUNS_DIR of the step scripts (default: runs).")
    for flag, path in (("--out", args.out), ("--csv", args.csv)):
        if path:
            writable_file(path, flag, f"Give {flag} a file in a folder you can write to.")
    if args.figures:
        writable_folder(args.figures, "--figures", "Give --figures a folder you can write to.")
    results = load_all_results(root)
    if not results:
        print(f"no results found: no readable results.json under {root} (run a step script first).")
        return ""
    text, rows = build_report(results, root)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.csv:
        write_report_csv(args.csv, rows)
    if args.figures:
        export_figures(results, args.figures, only=[n for n in args.figures_only.split(",") if n] or None)
    print(text)
    for what, path in (("report", args.out), ("CSV", args.csv)):
        if path:
            print(f"{what} written to {path}", file=sys.stderr)
    return text


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
