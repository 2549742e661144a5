"""Every step script end to end: a 2-iteration demo on the tiny synthetic world, results with every promised key,
re-runs (finished, changed config), and a SIGKILL mid-epoch followed by a resume that ends identically."""
from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
TINY = ["--demo", "--SYNTHETIC_WORLD=tiny", "--EPOCHS=1", "--BATCH_SIZE=6", "--TRAIN_SIZE=32,64",
        "--EVAL_SIZE=32,64", "--FLOPS_SIZE=32,64", "--LATENCY_SIZE=32,64", "--LATENCY_ITERS=2",
        "--NUM_WORKERS=0", "--DEVICE=cpu", "--TRAIN_IMAGES=0"]


# The keys every results.json holds (the results contract).
RESULT_KEYS = (
    "step", "variant", "model", "train_domain", "eval_domain", "miou", "pixel_acc", "per_class_iou",
    "eval_resolution", "eval_labels", "eval_pixels", "params_m", "flops_g", "flops_resolution", "latency_ms",
    "latency_std_ms", "fps", "latency_resolution", "device", "amp", "epochs", "iterations", "train_seconds",
    "synthetic", "config", "git_commit", "git_dirty", "torch", "cuda",
)


def tiny_args(world: Path, runs: Path, *extra: str) -> list[str]:
    return [*TINY, f"--SYNTHETIC_DIR={world}", f"--RUNS_DIR={runs}", *extra]


def check_results(results: dict, step: str) -> None:
    missing = [k for k in RESULT_KEYS if k not in results]
    assert not missing, f"results.json lacks {missing}"
    assert results["step"] == step
    assert results["iterations"] == 2  # 12 training images, batch 6, 1 epoch
    assert 0 <= results["miou"] <= 100 and 0 <= results["pixel_acc"] <= 100
    assert len(results["per_class_iou"]) == 19
    assert results["synthetic"] is True and results["device"] == "cpu"
    assert results["params_m"] > 1 and results["flops_g"] > 0 and results["latency_ms"] > 0
    assert results["config"]["RUN_NAME"].endswith("-demo")


@pytest.mark.parametrize("script,step,model", [
    ("step2a_deeplab_cityscapes", "2a", "deeplabv2"),
    ("step2b_bisenet_cityscapes", "2b", "bisenet"),
])
def test_step2_two_iterations(tiny_world, tmp_path, script, step, model):
    main = importlib.import_module(script).main
    results = main(tiny_args(tiny_world, tmp_path))
    check_results(results, step)
    assert results["model"] == model and results["variant"] == "default"
    run_dir = Path(results["path"])
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored["miou"] == pytest.approx(results["miou"])
    for name in ("last.pt", "best.pt", "config.json", "log.txt", "metrics.csv", "curves.png"):
        assert (run_dir / name).is_file(), name


def test_step3_two_variants_and_summary(tiny_world, tmp_path):
    from step3a3b_gta_to_cityscapes import main

    out = main(tiny_args(tiny_world, tmp_path, "--VARIANTS=none,flip"))
    assert list(out["variants"]) == ["none", "flip"]
    for r in out["variants"].values():
        check_results(r, "3a3b")
        assert r["train_domain"] == "gta5" and r["eval_domain"] == "cityscapes"
        assert "gta5_val" in r["extra_evals"]
    root = tmp_path / "step3_gta_to_cityscapes-demo"
    summary = (root / "summary.md").read_text()
    assert "none" in summary and "flip" in summary and "gain vs none" in summary
    assert (root / "summary.csv").is_file() and (root / "per_class_iou.png").stat().st_size > 0


def test_step4_5_two_variants_then_eval_only(tiny_world, tmp_path):
    from step4_5_adversarial import main

    out = main(tiny_args(tiny_world, tmp_path, "--VARIANTS=source_only,adv_focal_adam"))
    assert set(out["variants"]) == {"source_only", "adv_focal_adam"}
    for r in out["variants"].values():
        check_results(r, "4_5")
    root = tmp_path / "step4_5_adversarial-demo"
    assert "gain vs source_only" in (root / "summary.md").read_text()
    import csv
    with open(root / "adv_focal_adam" / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert {"loss_adv", "loss_d", "d_acc_source", "d_acc_target"} <= set(row)

    # EVAL_ONLY without INIT_FROM: each variant evaluates its own best.pt
    trained = {name: r["miou"] for name, r in out["variants"].items()}
    assert trained["source_only"] != trained["adv_focal_adam"]  # else the checks below could not tell them apart
    evaluated = main(tiny_args(tiny_world, tmp_path, "--VARIANTS=source_only,adv_focal_adam", "--EVAL_ONLY=true"))
    for name, r in evaluated["variants"].items():
        assert r["miou"] == pytest.approx(trained[name]) and r["evaluated_checkpoint"] == str(root / name / "best.pt")
        assert (root / name / "eval_best.json").is_file()
    # with INIT_FROM: every variant evaluates that file, and the summary says so
    init = root / "source_only" / "best.pt"
    evaluated = main(tiny_args(tiny_world, tmp_path, "--VARIANTS=source_only,adv_focal_adam", "--EVAL_ONLY=true",
                               f"--INIT_FROM={init}"))
    assert {n: r["miou"] for n, r in evaluated["variants"].items()} == pytest.approx(
        {"source_only": trained["source_only"], "adv_focal_adam": trained["source_only"]})
    assert f"every variant evaluated INIT_FROM={init}" in (root / "summary.md").read_text()


def test_adversarial_training_never_reads_target_labels(tiny_world, tmp_path):
    """Two adversarial runs whose worlds differ only in the target training labels train identically."""
    import shutil

    import numpy as np
    from PIL import Image

    from step4_5_adversarial import main

    other = tmp_path / "world"
    shutil.copytree(tiny_world, other)
    labels = sorted((other / "Cityscapes" / "gtFine" / "train").rglob("*_labelIds.png"))
    assert labels
    rng = np.random.default_rng(0)
    for path in labels:
        with Image.open(path) as im:
            size = im.size
        Image.fromarray(rng.integers(0, 34, size[::-1], dtype=np.uint8)).save(path)
    runs = [main(tiny_args(world, tmp_path / name, "--VARIANTS=adv_ce_sgd"))["variants"]["adv_ce_sgd"]
            for world, name in ((tiny_world, "a"), (other, "b"))]
    losses = [[{k: v for k, v in h.items() if k != "img_per_s"} for h in r["history"]] for r in runs]
    assert runs[0]["miou"] == runs[1]["miou"] and losses[0] == losses[1]


def test_rerun_finished_prints_stored_results_and_changed_config_is_refused(tiny_world, tmp_path, capsys):
    from step2b_bisenet_cityscapes import main
    from utils.errors import ConfigError

    first = main(tiny_args(tiny_world, tmp_path))
    again = main(tiny_args(tiny_world, tmp_path))
    assert again["miou"] == pytest.approx(first["miou"])
    assert "already finished" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="LR"):
        main(tiny_args(tiny_world, tmp_path, "--LR=0.5"))


def test_demo_runs_of_other_demo_settings_start_afresh(tiny_world, tmp_path, capsys, monkeypatch):
    """A user who pulled new demo settings reruns `make demo`: the old demo runs are replaced, not refused."""
    import step3a3b_gta_to_cityscapes as step3

    args = tiny_args(tiny_world, tmp_path, "--VARIANTS=none,flip")
    step3.main(args)
    monkeypatch.setattr(step3, "MOMENTUM", 0.5)  # what a new version of the script's settings looks like
    out = step3.main(args)
    printed = capsys.readouterr().out
    assert "a run of other demo settings (MOMENTUM: 0.9 -> 0.5)" in printed and "already finished" not in printed
    assert all(r["config"]["MOMENTUM"] == 0.5 for r in out["variants"].values())


def test_missing_data_root_explains_and_mentions_demo(tmp_path, capsys):
    from step2b_bisenet_cityscapes import main
    from utils.config import run_main

    with pytest.raises(SystemExit) as e:
        run_main(main, [f"--CITYSCAPES_ROOT={tmp_path / 'nowhere'}"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "nowhere" in err and "--demo" in err and "Traceback" not in err


def _run_script(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(ROOT / "step2b_bisenet_cityscapes.py"), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tiny_world, tmp_path):
    """Deterministic CPU run: checkpoint every iteration, SIGKILL in epoch 2, restart, same final metrics."""
    common = ["--EPOCHS=2", "--BATCH_SIZE=2", "--DETERMINISTIC=true", "--CHECKPOINT_MINUTES=0.00001"]
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "killed"
    ref = _run_script(tiny_args(tiny_world, ref_dir, *common))
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out

    proc = _run_script(tiny_args(tiny_world, kill_dir, *common))
    metrics = kill_dir / "step2b_bisenet-demo" / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline:  # 6 iterations per epoch: kill inside the second epoch
        if metrics.is_file() and len(metrics.read_text().splitlines()) - 1 >= 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (kill_dir / "step2b_bisenet-demo" / "results.json").exists()

    resumed = _run_script(tiny_args(tiny_world, kill_dir, *common))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming" in out
    a = json.loads((ref_dir / "step2b_bisenet-demo" / "results.json").read_text())
    b = json.loads((kill_dir / "step2b_bisenet-demo" / "results.json").read_text())
    assert b["miou"] == a["miou"] and b["per_class_iou"] == a["per_class_iou"]
    assert b["iterations"] == a["iterations"] == 12
    # every iteration's loss, before and after the kill, as the uninterrupted run logged it
    def losses(d):
        rows = (d / "step2b_bisenet-demo" / "metrics.csv").read_text().splitlines()[1:]
        return [tuple(r.split(",")[:4]) for r in rows]  # epoch, iter, global_it, loss
    assert losses(kill_dir) == losses(ref_dir)


@pytest.mark.parametrize("protocol", ["resized", "full"])
def test_eval_protocols_feed_eval_size_and_count_the_right_pixels(tiny_world, protocol):
    """EVAL_SIZE is always the network's input; "resized" scores labels nearest-resized to it, "full" scores the
    logits upsampled to every labelled pixel of the full-resolution label."""
    import numpy as np
    import torch
    from PIL import Image

    from datasets import Cityscapes
    from datasets.labels import ids_to_train_ids
    from utils.data import make_loader
    from utils.engine import Env, confusion_matrix
    from utils.ops import resize_labels

    seen = []

    class Spy(torch.nn.Module):  # predicts road everywhere, records what it was fed
        num_classes = 19

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return torch.zeros(x.shape[0], 19, *x.shape[-2:])

    val = Cityscapes(tiny_world / "Cityscapes", "val", size=(32, 64), full_labels=protocol == "full")
    loader = make_loader(val, 3, train=False, seed=0, device=torch.device("cpu"), num_workers=0)
    cm = confusion_matrix(Spy(), loader, Env(torch.device("cpu"), None, False), progress=False)
    assert set(seen) == {(32, 64)} and len(val) == 8
    files = sorted((tiny_world / "Cityscapes" / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    labelled = 0
    for path in files:
        train_ids = torch.from_numpy(ids_to_train_ids(np.asarray(Image.open(path))).astype(np.int64))
        if protocol == "resized":
            train_ids = resize_labels(train_ids, (32, 64))
        assert train_ids.shape == ((64, 128) if protocol == "full" else (32, 64))
        labelled += int((train_ids != 255).sum())
    assert int(cm.mat.sum()) == labelled


def test_step4_5_source_only_trains_on_step3s_images(tiny_world, tmp_path):
    """One GTA5 training set: step 4/5's source_only and step 3's run with the same augmentations (the default
    SOURCE_AUGMENT) are one experiment, iteration by iteration, whatever SEED is."""
    import csv

    from step3a3b_gta_to_cityscapes import main as step3
    from step4_5_adversarial import SOURCE_AUGMENT
    from step4_5_adversarial import main as step4_5

    args = ["--SEED=7", "--TRAIN_IMAGES=12"]
    a = step3(tiny_args(tiny_world, tmp_path / "3", *args, "--VARIANTS=flip_jitter_blur"))["variants"]
    b = step4_5(tiny_args(tiny_world, tmp_path / "45", *args, "--VARIANTS=source_only"))["variants"]
    assert a["flip_jitter_blur"]["config"]["VARIANT_SPEC"] == SOURCE_AUGMENT

    def losses(result):
        with open(Path(result["path"]) / "metrics.csv") as f:
            return [{k: v for k, v in row.items() if k != "img_per_s"} for row in csv.DictReader(f)]

    assert losses(a["flip_jitter_blur"]) == losses(b["source_only"])
    assert a["flip_jitter_blur"]["miou"] == b["source_only"]["miou"]


def test_target_bn_is_adv_ce_sgd_without_its_adversarial_gradient(tiny_world, tmp_path):
    """The study's control trains exactly as adv_ce_sgd at LAMBDA_ADV=0; and a run that reads the target images
    twice or more reads them from the prepared cache, as the source's."""
    import shutil

    from step4_5_adversarial import main

    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    args = ["--EPOCHS=4", "--TRAIN_IMAGES=6", "--TARGET_SIZE=32,64"]  # 4 iterations read 24 target images
    control = main(tiny_args(world, tmp_path / "a", "--VARIANTS=target_bn", *args))["variants"]["target_bn"]
    zero = main(tiny_args(world, tmp_path / "b", "--VARIANTS=adv_ce_sgd", "--LAMBDA_ADV=0", *args))
    zero = zero["variants"]["adv_ce_sgd"]
    strip = [[{k: v for k, v in h.items() if k != "img_per_s"} for h in r["history"]] for r in (control, zero)]
    assert control["miou"] == zero["miou"] and strip[0] == strip[1]
    assert "d_acc_source" in strip[0][0]
    assert any(p.name.startswith("cityscapes-train-32x64") for p in (world / "cache").iterdir())
