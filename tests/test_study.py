"""The adaptation study (study.py): statistics against hand computations, a tiny study end to end, resume."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import study
from utils.errors import ConfigError
from utils.stats import mean_std, paired_gain, t_quantile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("df,expected", [(1, 12.706204736174707), (2, 4.302652729749464),
                                         (4, 2.7764451051977987), (30, 2.0422724563012373)])
def test_t_quantile_equals_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, rel=1e-9)


def test_t_quantile_refuses_what_it_cannot_answer():
    with pytest.raises(ValueError):
        t_quantile(0.3, 2)
    with pytest.raises(ValueError):
        t_quantile(0.975, 0)


def test_paired_gain_equals_a_hand_computation():
    a, b = [20.0, 22.0, 21.0], [18.0, 19.0, 21.0]
    # differences 2, 3, 0: mean 5/3; sample variance ((1/3)^2 + (4/3)^2 + (5/3)^2) / 2 = 7/3
    half = 4.302652729749464 * math.sqrt(7 / 3) / math.sqrt(3)
    g = paired_gain(a, b)
    assert g["mean"] == pytest.approx(5 / 3)
    assert g["std"] == pytest.approx(math.sqrt(7 / 3))
    assert g["ci95"] == pytest.approx([5 / 3 - half, 5 / 3 + half])
    assert paired_gain([1.0], [0.5])["ci95"] is None  # one seed: no interval
    with pytest.raises(ValueError):
        paired_gain([1.0, 2.0], [1.0])


def test_mean_std_is_the_sample_standard_deviation():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == (2.5, pytest.approx(math.sqrt(5 / 3)))
    assert mean_std([]) == (None, None)


def test_rows_bring_their_start_rows_and_unknown_rows_are_refused():
    assert study._resolve_rows("adv_ce_sgd") == ["augmented", "adv_ce_sgd"]
    default = study._resolve_rows("default")  # in ROW_SPECS' order: each row after the row it starts from
    assert sorted(default) == sorted(study.ROW_SETS["default"])
    assert all(default.index(study.ROW_SPECS[r].start) < default.index(r) for r in default if study.ROW_SPECS[r].start)
    assert set(study._resolve_rows("all")) == {*study.ROW_SETS["default"], "adv_focal_sgd", "adv_ce_adam"}
    assert study._resolve_rows("methods") == ["augmented", "source_only", "target_bn", "adv_ce_sgd", *study.METHODS,
                                              "source_only_adabn", *(f"{m}_adabn" for m in study.METHODS)]
    # a row's start chain is resolved to its root; ROWS=statistics trains no step-6 row
    assert study._resolve_rows("source_only_adabn") == ["augmented", "source_only", "source_only_adabn"]
    assert study._resolve_rows("adv_ce_sgd_frozen_adabn") == ["augmented", "adv_ce_sgd_frozen",
                                                              "adv_ce_sgd_frozen_adabn"]
    assert not {study.ROW_SPECS[r].script for r in study._resolve_rows("statistics")} & {study.STEP6}
    with pytest.raises(ConfigError, match="unknown row"):
        study._resolve_rows("adv_typo")


def test_augmented_is_the_set_step4_5_trains_with():
    import runpy

    step3 = runpy.run_path(str(ROOT / study.STEP3))  # the constants; main() is not called
    step45 = runpy.run_path(str(ROOT / study.STEP45))
    assert step3["VARIANTS"][study.augmented_variant()] == step45["SOURCE_AUGMENT"]
    assert study.script_constant(study.STEP2B, "RUN_NAME") == "step2b_bisenet"


def test_step6_trains_with_step4_5s_recipe():
    """The methods are compared with step 4/5's rows: same source augmentation, same study setting."""
    from models import pretrained_arg

    for name in ("SOURCE_AUGMENT", "LR", "BATCH_SIZE", "GTA5_SPLIT_SEED", "GTA5_VAL_FRACTION", "LAMBDA_ADV"):
        assert study.script_constant(study.STEP6, name) == study.script_constant(study.STEP45, name), name
    six, four_five = (dict(study.script_constant(s, "STUDY")) for s in (study.STEP6, study.STEP45))
    assert pretrained_arg(six.pop("PRETRAINED")) == pretrained_arg(four_five.pop("PRETRAINED")) is False
    assert six == four_five
    assert study.script_constant(study.STEP6, "MODEL") == "bisenet"


def _hand_made_runs(root: Path, mious: dict, seconds: dict | None = None, held_out: list | None = None) -> dict:
    """results.json per row and seed 1, 2, 3 as a finished run writes it: a row with a start row trained 300
    iterations, a root row 600; an evaluation row records its mIoU before AdaBN too; ``none`` its mIoU on
    held-out source images (``held_out``, per seed) where given."""
    runs = {}
    for row, values in mious.items():
        runs[row] = {}
        for seed, v in zip((1, 2, 3), values):
            folder = root / row / str(seed)
            folder.mkdir(parents=True)
            record = {"miou": v, "iterations": 300 if study.ROW_SPECS[row].start else 600,
                      "train_seconds": (seconds or {}).get(row, 50.0), "history": [], "device": "cpu"}
            if row == "none" and held_out:
                record["extra_evals"] = {"gta5_val": {"miou": held_out[seed - 1], "per_class_iou": []}}
            if study.ROW_SPECS[row].evaluates_only:
                record.update(miou_before_adabn=v - 7, adabn_seconds=4.0)
            (folder / "results.json").write_text(json.dumps(record))
            runs[row][seed] = folder
    return runs


def test_methods_gains_pair_seeds_against_both_baselines(tmp_path):
    """STUDY.json's methods block from hand-made results: paired gains and the time per iteration ratio."""
    from utils.stats import paired_gain

    mious = {"augmented": [19.0, 19.5, 20.0], "source_only": [20.0, 21.0, 22.0], "adv_ce_sgd": [23.0, 23.5, 25.0],
             "minent": [24.0, 24.0, 26.0]}  # start rows first, as the study runs them
    seconds = {"source_only": 30.0, "adv_ce_sgd": 120.0, "minent": 60.0, "augmented": 60.0}
    out = study.collect(_hand_made_runs(tmp_path, mious, seconds), [1, 2, 3], tmp_path, [], minutes=1.0)
    m = out["methods"]["minent"]
    assert m["vs_source_only"] == paired_gain(mious["minent"], mious["source_only"])
    assert m["vs_adv_ce_sgd"] == paired_gain(mious["minent"], mious["adv_ce_sgd"])
    assert m["time_vs_source_only"] == pytest.approx(2.0)
    assert set(out["methods"]) == {"minent"} and out["rows"]["minent"]["iterations"] == 900


def test_warm_started_rows_start_from_their_start_rows_final_weights(tmp_path):
    weights = study.run_folder("augmented", 5, tmp_path) / "last.pt"
    cmd = study.row_command("target_bn", 5, tmp_path, ["--DEVICE=cpu"], weights)
    assert cmd[:2] == [study.STEP45, "--study"] and "--VARIANTS=target_bn" in cmd and cmd[-1] == "--DEVICE=cpu"
    assert f"--INIT_FROM={tmp_path}/seed5/step3_gta_to_cityscapes-study/flip_jitter_blur/last.pt" in cmd
    assert f"--RUNS_DIR={tmp_path}/seed5" in cmd


def test_d_acc_max_is_the_best_epoch_of_the_two_domains_mean():
    history = [{"d_acc_source": 60.0, "d_acc_target": 50.0}, {"d_acc_source": 70.0, "d_acc_target": 64.0},
               {"d_acc_source": 90.0, "d_acc_target": 30.0}]
    assert study._d_acc_max(history) == 67.0
    assert study._d_acc_max([{"loss": 1.0}]) is None


def test_bench_checks_say_no_where_a_gain_falls_short():
    rows = {"adv_ce_sgd": {"d_acc_max": 55.0, "starts_from": "augmented"},
            "adv_ce_sgd_frozen": {"d_acc_max": 75.0, "starts_from": "augmented"}}
    gains = {"domain_gap": {"mean": 12.0, "ci95": [1.0, 23.0]}, "augmentation": {"mean": 2.5, "ci95": [-0.1, 5.1]},
             "adversarial": {"mean": -0.1, "ci95": [-0.3, 0.1]},  # reported, no longer a check
             "adversarial_frozen": {"mean": 0.4, "ci95": [0.1, 0.7]}}
    verdict = {c["check"]: c["ok"] for c in study._checks(rows, gains)}
    assert verdict == {"domain_gap": True, "augmentation": False, "adversarial_frozen": True,
                       "adv_ce_sgd d_acc_max": False, "adv_ce_sgd_frozen d_acc_max": True}


def test_rows_with_their_own_arguments_get_their_own_run_folders(tmp_path):
    """Evaluation rows: AdaBN on the start row's final weights, each row in a run folder of its own."""
    weights = study.run_folder("source_only", 2, tmp_path) / "last.pt"
    cmd = study.row_command("source_only_adabn", 2, tmp_path, [], weights)
    assert cmd[:2] == [study.STEP45, "--study"] and "--EVAL_ONLY=true" in cmd and "--ADABN=true" in cmd
    assert "--RUN_NAME=step4_5_adversarial-source_only_adabn" in cmd and f"--INIT_FROM={weights}" in cmd
    assert "--VARIANTS=source_only" in cmd
    folders = {study.run_folder(r, 2, tmp_path) for r in ("source_only", "source_only_adabn", "source_only_frozen",
                                                            "adv_ce_sgd_adabn", "source_only_frozen_adabn")}
    assert len(folders) == 5
    assert study.ROW_SPECS["source_only_adabn"].evaluates_only and not study.ROW_SPECS["source_only"].evaluates_only


def test_both_frozen_rows_train_at_the_same_lower_learning_rate(tmp_path):
    """adversarial_frozen pairs two frozen rows: they differ in the variant (and run folder) alone, both at
    FROZEN_LR."""
    a, b = (study.row_command(r, 1, tmp_path, []) for r in ("source_only_frozen", "adv_ce_sgd_frozen"))
    for cmd in (a, b):
        assert "--BN_STATS=frozen" in cmd and f"--LR={study.FROZEN_LR:g}" in cmd
    assert study.FROZEN_LR < study.script_constant(study.STEP45, "LR")
    own = ("--VARIANTS=", "--RUN_NAME=")
    assert [x for x in a if not x.startswith(own)] == [x for x in b if not x.startswith(own)]


def test_statistics_rows_gains_and_share_from_hand_made_results(tmp_path):
    """STUDY.json's decomposition: each gain paired by seed, the statistics share per seed, evaluation rows
    counted as 0 iterations and 0 training seconds of their own."""
    mious = {"oracle": [30.0, 31.0, 29.0], "none": [17.0, 18.0, 16.0], "augmented": [19.0, 20.0, 18.5],
             "source_only": [20.0, 21.0, 22.0], "none_adabn": [20.0, 21.5, 19.0],
             "source_only_adabn": [27.0, 27.5, 28.0], "source_only_frozen": [20.0, 20.5, 21.0],
             "adv_ce_sgd_frozen": [22.0, 23.0, 23.5]}
    out = study.collect(_hand_made_runs(tmp_path, mious), [1, 2, 3], tmp_path, [], minutes=1.0)
    rows, gains = out["rows"], out["gains"]
    assert rows["source_only_adabn"]["own_iterations"] == 0 and rows["source_only_adabn"]["train_seconds"] == 0
    assert rows["source_only_adabn"]["iterations"] == 900 and rows["source_only_adabn"]["adabn_seconds"] == 12.0
    for name in ("adabn", "adversarial_frozen", "domain_gap", "augmentation"):
        a, b, _ = study.GAINS[name]
        expected = paired_gain(mious[a], mious[b])
        assert {k: gains[name][k] for k in expected} == expected
    assert "adversarial_beyond_statistics" not in gains  # adv_ce_sgd_adabn did not run
    share = out["statistics_share"]
    assert share["per_seed"] == pytest.approx([3 / 13, 3.5 / 13, 3 / 13])
    assert share["mean"] == pytest.approx(sum(share["per_seed"]) / 3) and share["ci95"][0] < share["mean"]
    assert gains["adabn"]["seeds_needed"] == 2  # +7, +6.5, +6: unmistakable with two seeds


def test_calibration_rows_give_the_share_the_source_gap_and_their_checks(tmp_path):
    """`make study ROWS=calibration`: the statistics share, `none` on held-out source images against the target,
    and the world's checks, each computed by hand."""
    mious = {"oracle": [30.0, 31.0, 29.0], "none": [18.0, 18.0, 17.0], "none_adabn": [21.0, 22.0, 20.0],
             "augmented": [21.0, 20.5, 19.5], "augmented_adabn": [22.0, 23.0, 21.5]}
    out = study.collect(_hand_made_runs(tmp_path, mious, held_out=[27.0, 26.0, 25.0]), [1, 2, 3], tmp_path, [],
                        minutes=1.0)
    assert tuple(out["rows"]) == study.ROW_SETS["calibration"]
    assert out["statistics_share"]["per_seed"] == pytest.approx([3 / 12, 4 / 13, 3 / 12])
    held = out["source_val"]
    assert held["miou"] == [27.0, 26.0, 25.0] and held["minus_target"]["per_seed"] == [9.0, 8.0, 8.0]
    verdict = {c["check"]: c["ok"] for c in out["checks"]}
    # augmentation +3, +2.5, +2.5: interval above 0; share 0.27 <= 0.35; gap 12, 13, 12; source gap 8.3 >= 5
    assert verdict == {"statistics_share": True, "source_val - none": True, "domain_gap": True,
                       "augmentation": True}
    text = study.markdown(out, [])
    assert "held-out source images" in text and "| statistics_share | mean <= 0.35 | yes |" in text

    mious["none_adabn"] = [23.0, 24.0, 22.0]  # statistics close half the gap: the world fails its check
    out = study.collect(_hand_made_runs(tmp_path / "half", mious, held_out=[20.0, 19.0, 18.0]), [1, 2, 3],
                        tmp_path, [], minutes=1.0)
    verdict = {c["check"]: c["ok"] for c in out["checks"]}
    assert verdict["statistics_share"] is False and verdict["source_val - none"] is False  # +1.3 < 5


def test_compare_shows_both_worlds_calibration_side_by_side(tmp_path):
    """COMPARE: a recorded study's calibration figures beside this one's in STUDY.md, kept in STUDY.json."""
    this = {"oracle": [30.0, 31.0, 29.0], "none": [18.0, 18.0, 17.0], "none_adabn": [21.0, 22.0, 20.0],
            "augmented": [21.0, 20.5, 19.5], "augmented_adabn": [22.0, 23.0, 21.5]}
    other = {**this, "none_adabn": [27.0, 28.0, 26.0]}
    recorded = study.collect(_hand_made_runs(tmp_path / "old", other), [1, 2, 3], tmp_path, [], minutes=1.0)
    recorded.pop("world")  # a study recorded before the world's version was kept
    (tmp_path / "old" / "STUDY.json").write_text(json.dumps(recorded))
    compare = study._load_compare(str(tmp_path / "old"))
    assert compare["generator_version"] is None and compare["seeds"] == [1, 2, 3]
    assert compare["statistics_share"]["per_seed"] == pytest.approx([9 / 12, 10 / 13, 9 / 12])
    assert compare["source_val_minus_none"] is None
    out = study.collect(_hand_made_runs(tmp_path / "new", this, held_out=[27.0, 26.0, 25.0]), [1, 2, 3], tmp_path,
                        [], minutes=1.0)
    out["compare"] = compare
    text = study.markdown(json.loads(json.dumps(out)), [])  # as rendered from STUDY.json
    from datasets.synthetic import GENERATOR_VERSION
    assert out["world"]["generator_version"] == GENERATOR_VERSION
    assert f"this study (world version {GENERATOR_VERSION}, seeds 1, 2, 3" in text
    assert "| none_adabn | 21.00 ± 1.00 | 27.00 ± 1.00 |" in text
    assert "| statistics_share | 0.27 [" in text and "| 0.76 [" in text
    assert "| none on held-out source - none on target | +8.33 [" in text
    for bad in (tmp_path / "missing.json", tmp_path / "new"):  # no file; a folder without a STUDY.json
        with pytest.raises(ConfigError, match="COMPARE="):
            study._load_compare(str(bad))
    assert study._load_compare("") is None
    assert study._load_compare(study.COMPARE)["seeds"] == [1, 2, 3]  # the default: a copy in docs/study


def test_seeds_needed_for_an_interval_to_exclude_zero():
    from utils.stats import seeds_to_exclude_zero

    # t(0.975, n - 1) * 2 / sqrt(n) < 1.5 first holds at n = 10 (2.262 * 2 / 3.162 = 1.43; n = 9: 1.54)
    assert seeds_to_exclude_zero(1.5, 2.0) == 10
    assert seeds_to_exclude_zero(0.0, 1.0) is None and seeds_to_exclude_zero(1.0, None) is None


def _tiny_args(world: Path) -> str:
    return (f"--SYNTHETIC_WORLD=tiny --SYNTHETIC_DIR={world} --EPOCHS=1 --TRAIN_IMAGES=8 --TRAIN_SIZE=32,64 "
            "--EVAL_SIZE=32,64 --FLOPS_SIZE=32,64 --LATENCY_SIZE=32,64 --LATENCY_ITERS=1 --NUM_WORKERS=0")


def _study_cmd(out: Path, world: Path, rows: str) -> list[str]:
    return [sys.executable, "study.py", f"--RUNS_DIR={out}", "--SEEDS=3,4", f"--ROWS={rows}", "--DEVICE=cpu",
            f"--ROW_ARGS={_tiny_args(world)}"]


def test_a_killed_tiny_study_goes_on_and_writes_its_report(tmp_path, tiny_world):
    """2 seeds, 2 rows, 2 iterations: killed after its first run, the same command reuses that run and finishes."""
    out = tmp_path / "study"
    cmd = _study_cmd(out, tiny_world, "none,augmented,none_adabn")
    first = study.run_folder("none", 3, out) / "results.json"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while not first.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.is_file(), "the first row never finished"
    os.killpg(proc.pid, signal.SIGKILL)  # the study and the row it runs now
    proc.wait()
    assert not (out / "STUDY.json").exists()
    stamp = first.stat().st_mtime_ns
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp  # reused, not trained again

    s = json.loads((out / "STUDY.json").read_text())
    assert s["seeds"] == [3, 4]
    assert list(s["rows"]) == ["none", "augmented", "none_adabn"]
    for name, row in s["rows"].items():
        assert len(row["miou"]) == 2 and all(0 <= v <= 100 for v in row["miou"])
        assert row["mean"] == pytest.approx(sum(row["miou"]) / 2)
        assert row["std"] == pytest.approx(abs(row["miou"][0] - row["miou"][1]) / math.sqrt(2))
        assert row["command"].startswith("python step")
        per_seed = [json.loads((study.run_folder(name, seed, out) / "results.json").read_text())["miou"]
                    for seed in (3, 4)]
        assert row["miou"] == per_seed
    assert s["rows"]["none"]["iterations"] == 2 and "d_acc_max" not in s["rows"]["none"]
    adapted = s["rows"]["none_adabn"]  # AdaBN on none's final weights: evaluated, not trained
    assert adapted["own_iterations"] == 0 and adapted["iterations"] == 2 and adapted["train_seconds"] == 0
    assert adapted["miou_before_adabn"] == s["rows"]["none"]["miou"]
    aug = s["gains"]["augmentation"]
    expected = paired_gain(s["rows"]["augmented"]["miou"], s["rows"]["none"]["miou"])
    assert aug["mean"] == pytest.approx(expected["mean"]) and aug["ci95"] == pytest.approx(expected["ci95"])
    assert "adversarial" not in s["gains"]  # adv_ce_sgd did not run
    assert (out / "STUDY.md").is_file() and (out / "study.png").is_file()
    assert not (out / "discriminator.png").exists()  # no adversarial row
    assert "| augmentation | augmented - none |" in (out / "STUDY.md").read_text()

    # a row's printed command re-runs it alone: here it finds its finished run and reuses it
    row_cmd = s["rows"]["none"]["command"].replace("<seed>", "3").split()[1:]
    rerun = subprocess.run([sys.executable, *row_cmd], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and "finished" in rerun.stdout.lower(), rerun.stdout[-1500:] + rerun.stderr


def test_a_failing_row_names_its_log(tmp_path, tiny_world):
    done = subprocess.run([*_study_cmd(tmp_path / "study", tiny_world, "none")[:-1],
                           f"--ROW_ARGS={_tiny_args(tiny_world)} --EPOCHS=0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert "row none, seed 3 failed" in done.stderr and ".log" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (ROOT / "docs" / "study").glob("*/STUDY.json")))
def test_the_docs_study_tables_equal_the_json_beside_them(folder):
    """Every study copy in docs/ is its STUDY.json rendered (python study.py --RENDER=docs/study/<folder>), with
    its own pictures: a figure typed by hand, or a picture of another study, fails here."""
    folder = ROOT / "docs" / "study" / folder
    pictures = [p for p in ("study.png", "discriminator.png") if (folder / p).is_file()]
    assert "study.png" in pictures
    assert (folder / "STUDY.md").read_text() == study.markdown(json.loads((folder / "STUDY.json").read_text()),
                                                                pictures)
