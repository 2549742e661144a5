"""The report over a folder of runs (``python -m utils.report``): tables, seed groups, gains, marks, bad files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from utils import report
from utils.config import run_main


def _result(step: str, variant: str, miou: float | None, seed: int = 42, run: str = "run", model: str = "bisenet",
            synthetic: bool = False, **config) -> dict:
    cfg = {"RUN_NAME": run, "RUNS_DIR": "runs", "SEED": seed, "DEVICE": "auto", "EPOCHS": 50, "LR": 0.025,
           "OVERWRITE": False, "NUM_WORKERS": -1, **config}
    if variant != "default":
        cfg.update(VARIANT=variant, VARIANT_SPEC={"name": variant})
    domain = "cityscapes" if step in ("2a", "2b") else "gta5"
    return {"step": step, "variant": variant, "model": model, "train_domain": domain, "eval_domain": "cityscapes",
            "miou": miou, "pixel_acc": 80.0, "per_class_iou": {}, "eval_resolution": [512, 1024],
            "params_m": 12.068 if model == "bisenet" else 43.901, "flops_g": 25.78 if model == "bisenet" else 374.6,
            "flops_resolution": [512, 1024], "latency_ms": 13.0, "latency_std_ms": 0.2, "fps": 76.9,
            "latency_resolution": [512, 1024], "device": "cuda (NVIDIA H100)", "amp": "bf16", "epochs": 50,
            "iterations": 100, "train_seconds": 1.0, "synthetic": synthetic, "config": cfg, "extra_evals": {},
            "history": [], "best_miou": miou}


def _write(root: Path, rel: str, obj) -> Path:
    path = root / rel / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _row(text: str, *cells: str) -> list[str]:
    """Cells of the one table line whose leading cells are ``cells``."""
    hits = []
    for line in text.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and parts[:len(cells)] == list(cells):
            hits.append(parts)
    assert len(hits) == 1, f"expected one row starting {cells}, found {len(hits)} in:\n{text}"
    return hits[0]


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    _write(root, "step2a", _result("2a", "default", 45.0, model="deeplabv2", run="step2a"))
    _write(root, "step2b-demo", _result("2b", "default", 30.5, run="step2b-demo", synthetic=True))
    # Step 3: three seeds of the same experiment (other run names), and one run with another EPOCHS.
    for seed, (none, full) in zip((1, 2, 3), ((20.0, 25.0), (22.0, 26.0), (24.0, 30.0))):
        _write(root, f"s3-seed{seed}/none", _result("3a3b", "none", none, seed=seed, run=f"s3-seed{seed}"))
        _write(root, f"s3-seed{seed}/full", _result("3a3b", "full", full, seed=seed, run=f"s3-seed{seed}"))
    _write(root, "s3-short/none", _result("3a3b", "none", 10.0, run="s3-short", EPOCHS=5))
    for variant, miou in (("source_only", 24.0), ("adv_ce_sgd", 28.5), ("adv_focal_adam", 30.0)):
        _write(root, f"s45/{variant}", _result("4_5", variant, miou, run="s45"))
    return root


def test_report_tables(runs: Path, tmp_path: Path, capsys) -> None:
    out, csv_path = tmp_path / "RESULTS.md", tmp_path / "results.csv"
    text = report.main([str(runs), "--out", str(out), "--csv", str(csv_path)])
    assert capsys.readouterr().out.strip() == text.strip()
    assert out.read_text() == text

    # Step 2: both models, complexity, published figures, the synthetic mark on the demo row only.
    deeplab = _row(text, "deeplabv2")
    assert deeplab[1:5] == ["real", "step2a", "1", "45.00"]
    assert "43.1 (SGD)" in deeplab[5] and "39 ms" in deeplab
    assert "374.60 @512x1024" in deeplab and "43.901" in deeplab
    bisenet = _row(text, "bisenet")
    assert bisenet[1] == report.SYNTHETIC_MARK and bisenet[4] == "30.50" and "32.8 (SGD)" in bisenet[5]
    assert "synthetic world" in text

    # Step 3: the seeds are one row, mean ± sample std, n=3; the other EPOCHS is its own row.
    none = _row(text, "none", "real", "s3-seed1 +2")
    assert none[3:6] == ["3", "22.00 ± 2.00", "+0.00 ± 0.00"] and none[-1] == "17.4 - 21.1"
    full = _row(text, "full", "real", "s3-seed1 +2")
    # paired by seed: gains 5, 4, 6 -> +5.00 ± 1.00
    assert full[3:6] == ["3", "27.00 ± 2.65", "+5.00 ± 1.00"] and full[-1].startswith("23.9 - 27.4")
    assert _row(text, "none", "real", "s3-short")[3:5] == ["1", "10.00"]

    # Steps 4/5: gains over source_only and over adv_ce_sgd.
    assert _row(text, "source_only")[4:7] == ["24.00", "+0.00", "-4.50"]
    assert _row(text, "adv_ce_sgd")[4:8] == ["28.50", "+4.50", "+0.00", "27.0 - 30.4"]
    assert _row(text, "adv_focal_adam")[4:8] == ["30.00", "+6.00", "+1.50", "-"]
    assert "AdaptSegNet" in text and "42.4" in text

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 + 3 + 3
    full_csv = next(r for r in rows if r["variant"] == "full")
    assert full_csv["table"] == "3a3b" and full_csv["n"] == "3" and full_csv["seeds"] == "1,2,3"
    assert float(full_csv["miou"]) == pytest.approx(27.0) and float(full_csv["gain_vs_none"]) == pytest.approx(5.0)


def test_seed_grouping_ignores_only_run_keys() -> None:
    a = _result("3a3b", "none", 20.0, seed=1, run="a", DEVICE="cpu", NUM_WORKERS=0)
    b = _result("3a3b", "none", 22.0, seed=2, run="b", CHECKPOINT_MINUTES=5.0)
    c = _result("3a3b", "none", 22.0, seed=3, run="c", LR=0.01)
    d = _result("3a3b", "flip", 22.0, seed=1, run="a")
    for r in (a, b, c, d):
        r["_file"] = "x/results.json"
    groups = report.group_by_seed([a, b, c, d])
    assert [len(g) for g in groups] == [2, 1, 1]
    assert report.mean_std([1.0]) == (1.0, None)
    assert report.mean_std([20.0, 22.0, 24.0]) == (22.0, 2.0)


def test_report_skips_malformed_files(runs: Path, capsys) -> None:
    bad = _write(runs, "broken", "{not json")
    other = _write(runs, "other", {"hello": 1})
    report.main([str(runs)])
    captured = capsys.readouterr()
    assert f"warning: skipping {bad}" in captured.err and f"warning: skipping {other}" in captured.err
    assert "missing step" in captured.err
    assert _row(captured.out, "adv_ce_sgd")[4] == "28.50"


def test_report_empty_folder_and_missing_folder(tmp_path: Path, capsys) -> None:
    assert report.main([str(tmp_path)]) == ""
    assert "no results found" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        run_main(report.main, [str(tmp_path / "nowhere")])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere" in err


def test_figures_are_exported_small_and_named_by_run(tmp_path):
    from PIL import Image

    from utils.report import export_figures

    for run, variant in (("step2b_bisenet-demo", "default"), ("step3-demo/full", "full")):
        d = tmp_path / "runs" / run
        d.mkdir(parents=True)
        Image.new("RGB", (2400, 600), (128, 64, 0)).save(d / "qualitative.png")
        (d / "results.json").write_text("{}")
        r = {"variant": variant, "_file": str(d / "results.json")}
        out = export_figures([r], tmp_path / "figs")
        assert len(out) == 1 and out[0].exists()
        with Image.open(out[0]) as im:
            assert im.size == (1000, 250)
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["step2b_bisenet-demo.png", "step3-demo_full.png"]
