"""Reliability fault suite: bad data, bad checkpoints, interrupted runs and bad configuration, met the way a
user meets them (a step script's ``main`` under ``run_main``, or a subprocess), each ending in one clear
message or in the promised behaviour (docs/guarantees.md).

Cases already proven elsewhere are not repeated here; docs/guarantees.md lists every promise with
the test that proves it (this file or another).
"""
from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_datasets import make_cityscapes, make_gta5
from test_steps import tiny_args

from datasets import GTA5, Cityscapes
from utils.checkpoint import atomic_save, previous_path
from utils.config import Config, run_main
from utils.errors import CheckpointError, ConfigError, DatasetError
from utils.losses import SegLosses
from utils.runs import Run

ROOT = Path(__file__).resolve().parents[1]
RUN = "step2b_bisenet-demo"  # the demo run folder of step 2b
# 12 train images, batch 2: one epoch of 6 iterations, enough to interrupt it mid-epoch.
LONGER = ("--EPOCHS=1", "--BATCH_SIZE=2")


def step2b(argv: list[str]) -> dict:
    from step2b_bisenet_cityscapes import main

    return main(argv)


def user_error(argv: list[str], capsys) -> str:
    """Run step 2b as the command line does; assert it ends in one ``error:`` message; return that message."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_main(step2b, argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 1, err
    assert "error: " in err and "Traceback" not in err, err
    return err[err.index("error: "):]  # after any progress bars


# --------------------------------------------------------------------------------------------------- data
def test_wrong_layout_names_the_missing_folder(tmp_path: Path) -> None:
    make_gta5(tmp_path / "gta", n=1)
    shutil.rmtree(tmp_path / "gta" / "labels")
    with pytest.raises(DatasetError) as err:
        GTA5(tmp_path / "gta")
    assert "no labels/ folder" in str(err.value) and str(tmp_path / "gta" / "labels") in str(err.value)
    assert "ROOT/images/NNNNN.png and ROOT/labels/NNNNN.png" in str(err.value)

    make_cityscapes(tmp_path / "cs", n=1)
    shutil.rmtree(tmp_path / "cs" / "gtFine")
    with pytest.raises(DatasetError) as err:
        Cityscapes(tmp_path / "cs", "train")
    assert "no gtFine/ folder" in str(err.value) and "gtFine_trainvaltest.zip" in str(err.value)


@pytest.mark.parametrize("which", ["image", "label", "first label"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_gta5_corrupt_or_truncated_png_names_the_file(tmp_path: Path, which: str, damage: str) -> None:
    make_gta5(tmp_path, n=2)
    path = {"image": tmp_path / "images" / "00002.png", "label": tmp_path / "labels" / "00002.png",
            "first label": tmp_path / "labels" / "00001.png"}[which]
    data = path.read_bytes()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200) if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(DatasetError) as err:
        ds = GTA5(tmp_path)  # the first label's header is read to detect the format
        ds[0 if which == "first label" else 1]
    assert str(path) in str(err.value)
    assert "re-extract" in str(err.value).lower()


def test_train_id_labels_that_hold_label_ids_are_refused_by_the_checker_and_the_scripts(tiny_world, tmp_path,
                                                                                         capsys):
    """Label ids saved under the train-id name decode (every value fits a byte) but are not train ids: the checker
    and a step script stop naming the file and the setting that reads it right."""
    from PIL import Image

    from datasets.check import main as check

    data = tmp_path / "Cityscapes"
    shutil.copytree(tiny_world / "Cityscapes", data, ignore=shutil.ignore_patterns("cache"))
    for ids in data.rglob("*_gtFine_labelIds.png"):  # "train ids" that are label ids
        Image.open(ids).save(ids.with_name(ids.name.replace("labelIds", "labelTrainIds")))
    assert check(["--cityscapes", str(data), "--max-images", "4"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM:" in out and "_gtFine_labelTrainIds.png is read as train ids" in out
    assert "--label-source=labelIds" in out and "NOT USABLE" in out
    args = [a for a in tiny_args(tiny_world, tmp_path / "runs") if a != "--demo"]
    err = user_error([*args, f"--CITYSCAPES_ROOT={data}", "--PRETRAINED=none"], capsys)
    assert "_gtFine_labelTrainIds.png is read as train ids" in err and "--LABEL_SOURCE=labelIds" in err
    assert not list((tmp_path / "runs").rglob("last.pt"))  # refused before training
    results = step2b([*args, f"--CITYSCAPES_ROOT={data}", "--PRETRAINED=none", "--LABEL_SOURCE=labelIds"])
    assert results["iterations"] == 2  # the named setting reads the same files right (a half-made run replaced)

    gta = tmp_path / "gta"
    make_gta5(gta, fmt="labelIds", n=2)
    for label in (gta / "labels").glob("*.png"):  # label ids as greyscale, read as train ids
        Image.fromarray(np.asarray(Image.open(label))).save(label)
    with pytest.raises(DatasetError, match="is read as train ids") as err:
        GTA5(gta, label_format="trainIds")[0]
    assert "label_format='labelIds'" in str(err.value)


def test_labels_mostly_ignored_warn_in_the_checker_and_once_in_a_run_naming_a_file(tiny_world, tmp_path, capsys):
    """Colour labels saved as JPEG decode, but most colours then match no class (ignore): the checker warns and a
    run warns once per dataset, naming a file and the likely cause; the run is not stopped."""
    import io as bytes_io

    from PIL import Image

    from datasets.check import main as check
    from step3a3b_gta_to_cityscapes import main as step3

    gta = tmp_path / "GTA5"
    shutil.copytree(tiny_world / "GTA5", gta, ignore=shutil.ignore_patterns("cache"))
    for label in (gta / "labels").glob("*.png"):
        jpeg = bytes_io.BytesIO()
        Image.open(label).convert("RGB").save(jpeg, "JPEG", quality=90)
        Image.open(jpeg).convert("RGB").save(label)  # an RGB PNG again, of the JPEG's colours
    assert check(["--gta5", str(gta), "--max-images", "4"]) == 0  # usable, with a warning
    out = capsys.readouterr().out
    assert "WARNING:" in out and "are ignore (255)" in out and "colour labels saved as JPEG" in out
    assert str(gta / "labels") in out.split("are ignore (255), e.g.")[1]
    args = [a for a in tiny_args(tiny_world, tmp_path / "runs") if a != "--demo"]
    out = step3([*args, f"--GTA5_ROOT={gta}", f"--CITYSCAPES_ROOT={tiny_world / 'Cityscapes'}",
                 "--PRETRAINED=none", "--VARIANTS=none,flip"])
    assert set(out["variants"]) == {"none", "flip"}
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "labels spread over GTA5 train are ignore (255)" in err
    assert str(gta / "labels") in err and "python -m datasets.check --gta5" in err


def _read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode) for p in sorted(root.rglob("*"))}


def test_step_script_on_read_only_data_writes_nothing_there(tiny_world: Path, tmp_path: Path) -> None:
    """A whole step-2b run (train, evaluate, measure, plot) on a read-only copy of a Cityscapes folder."""
    data = tmp_path / "Cityscapes"
    shutil.copytree(tiny_world / "Cityscapes", data)
    _read_only(data)
    before = _snapshot(data)
    try:
        args = [a for a in tiny_args(tiny_world, tmp_path / "runs") if a != "--demo"]
        results = step2b([*args, f"--CITYSCAPES_ROOT={data}", "--PRETRAINED=false"])
        assert results["iterations"] == 2 and results["synthetic"] is False
        assert _snapshot(data) == before
    finally:
        for p in [data, *data.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_demo_that_cannot_write_its_prepared_images_reads_the_pngs(tiny_world: Path, tmp_path: Path,
                                                                   capsys) -> None:
    """Two epochs make a demo prepare its training images beside the world; a file in the way costs only speed."""
    world, ok_world = tmp_path / "world", tmp_path / "ok"
    for w in (world, ok_world):
        shutil.copytree(tiny_world, w, ignore=shutil.ignore_patterns("cache"))
    (world / "cache").write_text("not a folder")
    results = step2b(tiny_args(world, tmp_path / "runs", "--EPOCHS=2"))
    assert results["iterations"] == 4
    assert "could not prepare the demo images" in capsys.readouterr().out
    assert not (ok_world / "cache").exists()
    step2b(tiny_args(ok_world, tmp_path / "runs2", "--EPOCHS=2"))
    assert any((ok_world / "cache").glob("cityscapes-train-*/images.npy"))


# ------------------------------------------------------------------------------------------------ outputs
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_permissions = pytest.mark.skipif(AS_ROOT, reason="running as root: permissions do not stop root's writes")


def command(argv: list[str], capsys) -> tuple[int, str, str]:
    """``python ARGV`` (a script, or ``-m module``) as its ``__main__`` runs it, ``run_main(main, args)``, in this
    process (a subprocess would spend seconds importing torch); (exit status, stdout, stderr)."""
    import importlib

    module, args = (argv[1], argv[2:]) if argv[0] == "-m" else (argv[0].removesuffix(".py"), argv[1:])
    main = importlib.import_module({"datasets.synthetic": "datasets.synthetic.cli"}.get(module, module)).main
    capsys.readouterr()
    try:
        run_main(main, args)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _command_error(argv: list[str], capsys) -> str:
    """Run ``python ARGV``; assert one ``error:`` message and exit 1; return the message."""
    code, _, err = command(argv, capsys)
    assert code == 1 and "error: " in err and "Traceback" not in err, err
    return err[err.index("error: "):]


@pytest.mark.parametrize("where", ["runs_dir_is_a_file", "file_on_the_path"])
def test_a_run_folder_that_cannot_be_written_is_refused_before_training(tiny_world, tmp_path, capsys, where):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    runs = blocker if where == "runs_dir_is_a_file" else blocker / "mine"
    err = user_error(tiny_args(tiny_world, runs), capsys)
    assert "cannot write the run folder" in err and str(blocker) in err and "is a file, not a folder" in err
    assert "--RUNS_DIR" in err and "epoch 1" not in capsys.readouterr().out  # before any training
    assert blocker.read_text() == "not a folder"


def test_an_output_that_fails_during_a_run_is_one_message_naming_it(tiny_world, tmp_path, capsys):
    """Whatever no check could foresee (here a folder where metrics.csv goes) still ends in one message."""
    from step2b_bisenet_cityscapes import main

    args = tiny_args(tiny_world, tmp_path)
    folder = tmp_path / RUN
    Run(Config(dict(load_config_of(main, args)), demo=True)).start()
    (folder / "metrics.csv").mkdir()
    err = user_error(args, capsys)
    assert str(folder / "metrics.csv") in err and "Is a directory" in err


def load_config_of(main, argv: list[str]) -> Config:
    from utils.config import load_config

    return load_config(vars(sys.modules[main.__module__]), argv)


def test_outputs_of_the_tools_that_cannot_be_written(tiny_world, tmp_path, capsys):
    """predict.py, utils.report, datasets.prepare, benchmark.py, datasets.synthetic: a file where a folder should
    be, a folder where a file should be, is one message naming the path, before any work."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    image = next((tiny_world / "Cityscapes" / "leftImg8bit" / "val").rglob("*.png"))
    err = _command_error(["predict.py", "--checkpoint", str(tmp_path / "any.pt"), "--input", str(image),
                          "--out", str(blocker)], capsys)
    assert f"cannot write --out {blocker}: it is a file, not a folder" in err
    runs = tmp_path / "runs"
    (runs / "r").mkdir(parents=True)
    err = _command_error(["-m", "utils.report", str(runs), "--out", str(blocker / "RESULTS.md")], capsys)
    assert f"{blocker}, on its path, is a file, not a folder" in err
    err = _command_error(["-m", "utils.report", str(runs), "--out", str(runs)], capsys)
    assert f"cannot write --out {runs}: it is a folder; give a file name" in err
    err = _command_error(["-m", "datasets.prepare", "--gta5", str(tiny_world / "GTA5"), "--gta5-size", "32,64",
                          "--cache-dir", str(blocker), "--workers", "0"], capsys)
    assert f"cannot write the cache folder {blocker}: it is a file, not a folder" in err and "--cache-dir" in err
    err = _command_error(["benchmark.py", "--device", "cpu", "--json", str(blocker / "bench.json")], capsys)
    assert f"cannot write --json {blocker / 'bench.json'}: {blocker}, on its path, is a file" in err
    err = _command_error(["-m", "datasets.synthetic", "--out", str(blocker / "world")], capsys)
    assert f"cannot write --out {blocker / 'world'}: {blocker}, on its path, is a file" in err
    assert blocker.read_text() == "a file"


@needs_permissions
def test_read_only_outputs_are_refused_naming_the_path(tiny_world, tmp_path, capsys):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        err = user_error(tiny_args(tiny_world, read_only), capsys)
        assert "cannot write the run folder" in err and "read-only" in err
        image = next((tiny_world / "Cityscapes" / "leftImg8bit" / "val").rglob("*.png"))
        err = _command_error(["predict.py", "--checkpoint", str(tmp_path / "any.pt"), "--input", str(image),
                              "--out", str(read_only / "out")], capsys)
        assert "cannot write --out" in err and "read-only" in err
        err = _command_error(["-m", "utils.report", str(tmp_path), "--out", str(read_only / "RESULTS.md")], capsys)
        assert "cannot write --out" in err and "read-only" in err
        err = _command_error(["-m", "datasets.prepare", "--gta5", str(tiny_world / "GTA5"), "--gta5-size", "32,64",
                              "--cache-dir", str(read_only), "--workers", "0"], capsys)
        assert "cannot write the cache folder" in err and "read-only" in err
        assert list(read_only.iterdir()) == []
    finally:
        read_only.chmod(0o755)


# -------------------------------------------------------------------------------------------- checkpoints
class RunsCode:
    """Unpickling this calls ``os.mkdir(path)``: the kind of file a safe load must refuse."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory) -> dict[str, Path]:
    from models import BiSeNet, DeepLabV2

    folder = tmp_path_factory.mktemp("ckpts")
    good = BiSeNet(num_classes=19, pretrained=False)
    atomic_save({"model": good.state_dict(), "model_spec": good.spec}, folder / "good.pt")
    data = (folder / "good.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 3])
    deeplab = DeepLabV2(num_classes=19, pretrained=False)
    state = dict(list(deeplab.state_dict().items())[:8])
    torch.save({"trainer": {"model": state}, "model_spec": deeplab.spec}, folder / "deeplab_run.pt")
    sixteen = BiSeNet(num_classes=16, pretrained=False)
    torch.save({"model": sixteen.state_dict(), "model_spec": sixteen.spec}, folder / "classes16.pt")
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18_state_dict.pt")
    torch.save({"model": RunsCode(folder / "code_ran")}, folder / "runs_code.pt")
    return {"truncated": folder / "truncated.pt", "other_model": folder / "deeplab_run.pt",
            "other_classes": folder / "classes16.pt", "bare_other_network": folder / "resnet18_state_dict.pt",
            "executes_code": folder / "runs_code.pt", "missing": folder / "nope.pt"}


@pytest.mark.parametrize("case,expected", [
    ("truncated", "truncated or corrupt"),
    ("other_model", "arch: expected 'bisenet', found 'deeplabv2'"),
    ("other_classes", "num_classes: expected 19, found 16"),
    ("bare_other_network", "does not fit this model"),
    ("executes_code", "weights_only=True"),
    ("missing", "not found"),
])
@pytest.mark.parametrize("eval_only", [False, True])
def test_bad_init_from_is_one_clear_message(tiny_world, tmp_path, capsys, bad_checkpoints, case, expected,
                                            eval_only):
    path = bad_checkpoints[case]
    extra = ["--EVAL_ONLY=true"] if eval_only else []
    err = user_error(tiny_args(tiny_world, tmp_path, f"--INIT_FROM={path}", *extra), capsys)
    assert str(path) in err and expected in err
    if case == "executes_code":
        assert "could execute code" in err
        assert not (path.parent / "code_ran").exists()  # refused before anything in it ran
    assert not (tmp_path / RUN / "results.json").exists()


# Files that are not a readable checkpoint, as they turn up: an interrupted write or copy, a folder, a note.
UNREADABLE = ["empty", "one_byte", "ten_bytes", "half", "all_but_one_byte", "not_a_zip", "folder", "text", "json"]


def write_unreadable(path: Path, kind: str, good: bytes) -> None:
    """Put an unreadable file of ``kind`` at ``path``, cut from the good checkpoint ``good`` where it is one."""
    if kind == "folder":
        path.mkdir(parents=True)
        (path / "model.pt").write_bytes(good)
        return
    data = {"empty": b"", "one_byte": good[:1], "ten_bytes": good[:10], "half": good[: len(good) // 2],
            "all_but_one_byte": good[:-1], "not_a_zip": bytes(range(256)) * 16, "text": b"best epoch: 3\n",
            "json": b'{"model": "bisenet", "miou": 41.2}\n'}[kind]
    path.write_bytes(data)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    from models import BiSeNet

    path = tmp_path_factory.mktemp("good") / "good.pt"
    model = BiSeNet(num_classes=19, pretrained=False)
    atomic_save({"model": model.state_dict(), "model_spec": model.spec}, path)
    return path


def _says_what_it_is(message: str, path: Path, kind: str) -> None:
    assert str(path) in message and "could execute code" not in message, message
    expected = {"empty": "is empty", "folder": "is a folder", "text": "not a checkpoint",
                "json": "is a JSON file, not a checkpoint", "not_a_zip": "not a checkpoint"}.get(
        kind, "truncated or corrupt")
    assert expected in message, message


@pytest.mark.parametrize("kind", UNREADABLE)
def test_every_unreadable_checkpoint_is_one_message_and_last_pt_falls_back(tmp_path, good_checkpoint, kind):
    """Every way a file can fail to be a checkpoint, as last.pt (the previous one is used), as a weights file."""
    from models._weights import read_state_dict
    from utils.checkpoint import load_checkpoint, load_resumable

    good = good_checkpoint.read_bytes()
    last = tmp_path / "last.pt"
    write_unreadable(last, kind, good)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(last)
    _says_what_it_is(str(err.value), last, kind)
    with pytest.raises(CheckpointError) as err:
        load_resumable(last)  # no previous checkpoint: the damaged one is named
    _says_what_it_is(str(err.value), last, kind)
    previous_path(last).write_bytes(good)
    obj, used = load_resumable(last)
    assert used == previous_path(last) and "model_spec" in obj
    with pytest.raises(CheckpointError) as err:
        read_state_dict(last)
    _says_what_it_is(str(err.value), last, kind)


@pytest.mark.parametrize("kind", ["empty", "half", "folder", "json"])
def test_unreadable_init_from_and_predict_checkpoint_are_one_message(tiny_world, tmp_path, capsys, good_checkpoint,
                                                                     kind):
    import predict

    path = tmp_path / "bad.pt"
    write_unreadable(path, kind, good_checkpoint.read_bytes())
    err = user_error(tiny_args(tiny_world, tmp_path / "runs", f"--INIT_FROM={path}"), capsys)
    _says_what_it_is(err, path, kind)
    image = next((tiny_world / "Cityscapes").rglob("*_leftImg8bit.png"))
    with pytest.raises(SystemExit) as exit_:
        run_main(predict.main, ["--checkpoint", str(path), "--input", str(image), "--out", str(tmp_path / "out"),
                                "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    _says_what_it_is(err, path, kind)
    assert not (tmp_path / "out").exists()


def test_eval_only_without_a_checkpoint_says_what_to_pass(tiny_world, tmp_path, capsys):
    err = user_error(tiny_args(tiny_world, tmp_path, "--EVAL_ONLY=true"), capsys)
    assert "EVAL_ONLY=true without INIT_FROM" in err and str(tmp_path / RUN / "best.pt") in err
    assert "--INIT_FROM=" in err and not (tmp_path / RUN).exists()


def _cfg(tmp_path: Path, **kw) -> Config:
    base = dict(RUNS_DIR=str(tmp_path), RUN_NAME="r", EPOCHS=2, LR=0.1, OVERWRITE=False, SEED=0,
                CHECKPOINT_MINUTES=10.0, EVAL_ONLY=False, INIT_FROM=None)
    base.update(kw)
    return Config(base)


def test_checkpoint_of_another_config_is_refused_even_without_config_json(tmp_path: Path) -> None:
    """An older run folder holding only its checkpoint: the checkpoint's own config is compared."""
    run = Run(_cfg(tmp_path))
    run.start()
    atomic_save({"config": run.config, "trainer": {}}, run.last)
    run.config_path.unlink()
    with pytest.raises(ConfigError) as err:
        Run(_cfg(tmp_path, EPOCHS=3, LR=0.2)).start()
    msg = str(err.value)
    assert "EPOCHS: 2 -> 3" in msg and "LR: 0.1 -> 0.2" in msg and str(run.last) in msg
    assert "--OVERWRITE=true" in msg and run.last.is_file()
    assert Run(_cfg(tmp_path)).start() == "resume"  # same config: resumed, and config.json written again
    assert run.config_path.is_file()
    assert Run(_cfg(tmp_path, EPOCHS=3, OVERWRITE=True)).start() == "new"
    assert not run.last.exists()


# --------------------------------------------------------------------------------------------------- runs
def _popen(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _script(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "step2b_bisenet_cityscapes.py"), *args]


def _metrics(runs: Path) -> list[tuple[str, ...]]:
    rows = (runs / RUN / "metrics.csv").read_text().splitlines()[1:]
    return [tuple(r.split(",")[:4]) for r in rows]  # epoch, iter, global_it, loss


@pytest.fixture(scope="module")
def uninterrupted(tiny_world, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("uninterrupted")
    proc = _popen(_script(*tiny_args(tiny_world, runs, *LONGER, "--DETERMINISTIC=true")))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return runs


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_save_print_the_resume_command_and_it_finishes(tiny_world, tmp_path, uninterrupted,
                                                                          sig):
    """Ctrl-C and a cloud's pre-emption mid-epoch: exit 130/143, last.pt saved, the printed command resumes
    and the run ends with the uninterrupted run's metrics. Periodic checkpoints are off: the signal's is the
    only mid-epoch one."""
    args = tiny_args(tiny_world, tmp_path, *LONGER, "--DETERMINISTIC=true", "--CHECKPOINT_MINUTES=0")
    proc = _popen(_script(*args))
    metrics = tmp_path / RUN / "metrics.csv"
    deadline = time.time() + 300
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2) and time.time() < deadline:
        time.sleep(0.05)  # training has started: one iteration logged
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, out
    assert f"{name}: stopped at epoch 1" in out and "Traceback" not in out
    assert (tmp_path / RUN / "last.pt").is_file() and not (tmp_path / RUN / "results.json").exists()
    saved = torch.load(tmp_path / RUN / "last.pt", weights_only=True)
    assert 0 < saved["state"]["iter_in_epoch"] <= 6 and saved["state"]["epoch"] == 0

    command = out.split("Resume with:\n", 1)[1].splitlines()[0].strip()
    argv = shlex.split(command)
    assert argv[0] == "python" and argv[1].endswith("step2b_bisenet_cityscapes.py") and argv[2:] == args
    resumed = _popen([sys.executable, *argv[1:]])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming" in out
    a = json.loads((uninterrupted / RUN / "results.json").read_text())
    b = json.loads((tmp_path / RUN / "results.json").read_text())
    assert b["iterations"] == a["iterations"] == 6
    assert b["miou"] == a["miou"] and b["per_class_iou"] == a["per_class_iou"]
    assert _metrics(tmp_path) == _metrics(uninterrupted)


def test_signal_during_evaluation_saves_and_prints_the_resume_command(tiny_world, tmp_path, capsys, monkeypatch):
    """A pre-emption that lands in the end-of-epoch evaluation (long on the real val set) also says how to go on."""
    import utils.engine

    real_evaluate = utils.engine.confusion_matrix

    def preempted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_evaluate(*args, **kwargs)

    args = tiny_args(tiny_world, tmp_path, "--CHECKPOINT_MINUTES=0")
    monkeypatch.setattr(utils.engine, "confusion_matrix", preempted)
    with pytest.raises(SystemExit) as exit_:
        step2b(args)
    out = capsys.readouterr().out
    assert exit_.value.code == 143
    assert "SIGTERM: stopped after epoch 1" in out and "Resume with:" in out and str(tmp_path / RUN / "last.pt") in out
    assert torch.load(tmp_path / RUN / "last.pt", weights_only=True)["state"]["epoch"] == 1
    assert not (tmp_path / RUN / "results.json").exists()
    monkeypatch.setattr(utils.engine, "confusion_matrix", real_evaluate)
    results = step2b(args)
    assert "resuming" in capsys.readouterr().out and results["iterations"] == 2
    assert (tmp_path / RUN / "results.json").is_file()


def _cityscapes_of_two_sizes(tiny_world: Path, dest: Path) -> Path:
    """A copy of the tiny world's Cityscapes whose every other val frame (image and label) is 48x96, not 64x128."""
    from PIL import Image

    shutil.copytree(tiny_world / "Cityscapes", dest, ignore=shutil.ignore_patterns("cache"))
    images = sorted((dest / "leftImg8bit" / "val").rglob("*_leftImg8bit.png"))
    for image in images[::2]:
        label = dest / "gtFine" / "val" / image.parent.name / image.name.replace("leftImg8bit", "gtFine_labelIds")
        Image.open(image).resize((96, 48), Image.BILINEAR).save(image)
        Image.open(label).resize((96, 48), Image.NEAREST).save(label)
    return dest


@pytest.mark.parametrize("eval_size,eval_labels", [("native", "resized"), ("native", "full"), ("32,64", "full")])
def test_evaluation_of_frames_of_several_sizes_equals_one_by_one(tiny_world, tmp_path, eval_size, eval_labels):
    """Native-size images, or full-resolution labels, of frames of two sizes: the run's mIoU is the one of
    evaluating every frame alone."""
    from models import build_model
    from utils.data import make_loader
    from utils.engine import confusion_matrix, setup_env

    data = _cityscapes_of_two_sizes(tiny_world, tmp_path / "Cityscapes")
    args = [a for a in tiny_args(tiny_world, tmp_path / "runs") if a != "--demo"]
    results = step2b([*args, f"--CITYSCAPES_ROOT={data}", "--PRETRAINED=none", f"--EVAL_SIZE={eval_size}",
                      f"--EVAL_LABELS={eval_labels}", "--BATCH_SIZE=4"])  # val batches mix the two sizes
    ckpt = torch.load(Path(results["path"]) / "last.pt", weights_only=True)
    model = build_model(ckpt["model_spec"])
    model.load_state_dict(ckpt["trainer"]["model"])
    size = None if eval_size == "native" else (32, 64)
    val = Cityscapes(data, "val", size=size, full_labels=eval_labels == "full")
    assert len({tuple(val[i][1].shape) for i in range(len(val))}) == 2
    one_by_one = make_loader(val, 1, train=False, seed=0, device=torch.device("cpu"), num_workers=0)
    # at the run's precision
    alone = confusion_matrix(model, one_by_one, setup_env("cpu", "auto"), progress=False).compute()
    assert results["miou"] == pytest.approx(alone["miou"], abs=1e-6)
    assert results["per_class_iou"] == pytest.approx(alone["per_class_iou"], abs=1e-6)
    assert results["eval_pixels"] == sum(int((val[i][1] != 255).sum()) for i in range(len(val)))


def test_a_failed_evaluation_keeps_the_epoch_and_the_resumed_run_evaluates_it(tiny_world, tmp_path, capsys,
                                                                               monkeypatch):
    """Training is saved before it is evaluated: an evaluation that fails costs no training, and the same command
    then evaluates the epoch it missed and ends as an uninterrupted run."""
    import utils.engine

    reference = step2b(tiny_args(tiny_world, tmp_path / "reference"))
    real_evaluate = utils.engine.confusion_matrix

    def failing(*args, **kwargs):
        raise DatasetError("val/x_gtFine_labelIds.png: cannot decode this image (simulated)")

    args = tiny_args(tiny_world, tmp_path / "runs")
    monkeypatch.setattr(utils.engine, "confusion_matrix", failing)
    err = user_error(args, capsys)
    assert "cannot decode this image" in err
    saved = torch.load(tmp_path / "runs" / RUN / "last.pt", weights_only=True)
    assert saved["trainer"]["global_it"] == 2 and saved["state"]["unrecorded"]["epoch"] == 1
    assert not (tmp_path / "runs" / RUN / "results.json").exists()
    monkeypatch.setattr(utils.engine, "confusion_matrix", real_evaluate)
    results = step2b(args)
    out = capsys.readouterr().out
    assert "epoch 1 was trained but not evaluated" in out
    assert results["iterations"] == 2 and len(_metrics(tmp_path / "runs")) == 2  # no iteration trained twice
    assert results["miou"] == reference["miou"] and results["history"][0]["val_miou"] == reference["miou"]


def _interrupt_at(monkeypatch, global_it: int) -> None:
    """SIGTERM to this process during iteration ``global_it + 1`` of the next step-script run."""
    import utils.engine

    real = utils.engine.train_iteration
    calls = itertools.count()

    def iteration(*args, **kwargs):
        if next(calls) == global_it:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(utils.engine, "train_iteration", iteration)


def test_truncated_last_pt_falls_back_to_the_previous_or_names_the_file(tiny_world, tmp_path, capsys, monkeypatch):
    import utils.engine

    real_iteration = utils.engine.train_iteration
    args = tiny_args(tiny_world, tmp_path, *LONGER, "--CHECKPOINT_MINUTES=0.00001")  # a checkpoint per iteration
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(SystemExit) as exit_:
        step2b(args)
    assert exit_.value.code == 143
    monkeypatch.setattr(utils.engine, "train_iteration", real_iteration)
    last = tmp_path / RUN / "last.pt"
    prev = previous_path(last)
    assert torch.load(prev, weights_only=True)["trainer"]["global_it"] == 2  # the one before the signal's
    intact_prev = prev.read_bytes()
    last.write_bytes(last.read_bytes()[:1000])  # a bad copy between machines, a full disk

    # without a good previous checkpoint: one message naming the damaged file and what to do
    prev.unlink()
    err = user_error(args, capsys)
    assert str(last) in err and "truncated or corrupt" in err and "delete it to start again" in err
    last.write_bytes(b"")  # a write that never began: empty, which once failed inside the error handler
    err = user_error(args, capsys)
    assert str(last) in err and "is empty" in err and "delete it to start again" in err

    prev.write_bytes(intact_prev)
    results = step2b(args)
    out = capsys.readouterr().out
    assert f"{last} is damaged" in out and f"resuming from the previous checkpoint {prev}" in out
    assert "resuming" in out and results["iterations"] == 6


def test_nan_loss_stops_the_script_naming_the_iteration_and_keeps_the_checkpoint(tiny_world, tmp_path, capsys,
                                                                                  monkeypatch):
    import utils.engine

    real = utils.engine.train_iteration
    calls = itertools.count()

    def diverging(model, optimizer, seg_loss, batch, env):
        if next(calls) == 2:
            seg_loss = SegLosses(lambda out, y: out.float().sum() * float("nan"))
        return real(model, optimizer, seg_loss, batch, env)

    monkeypatch.setattr(utils.engine, "train_iteration", diverging)
    err = user_error(tiny_args(tiny_world, tmp_path, *LONGER, "--CHECKPOINT_MINUTES=0.00001"), capsys)
    assert "loss became" in err and "nan" in err and "at iteration 3" in err and "learning rate" in err
    last = torch.load(tmp_path / RUN / "last.pt", weights_only=True)
    assert last["trainer"]["global_it"] == 2
    assert all(torch.isfinite(v).all() for v in last["trainer"]["model"].values() if v.is_floating_point())


def test_out_of_memory_in_training_suggests_a_smaller_batch_or_crop(tiny_world, tmp_path, capsys, monkeypatch):
    import utils.engine

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    monkeypatch.setattr(utils.engine, "train_iteration", oom)
    err = user_error(tiny_args(tiny_world, tmp_path), capsys)
    assert "out of GPU memory at iteration 1" in err and "(batch 6 at (32, 64))" in err
    assert "--BATCH_SIZE" in err and "crop" in err


def test_out_of_memory_in_evaluation_suggests_a_smaller_batch_or_size() -> None:
    from utils.data import make_loader
    from utils.engine import Env, TrainingError, confusion_matrix

    class Huge(torch.nn.Module):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    data = torch.utils.data.TensorDataset(torch.zeros(4, 3, 8, 16, dtype=torch.uint8), torch.zeros(4, 8, 16).long())
    loader = make_loader(data, 2, train=False, seed=0, device=torch.device("cpu"), num_workers=0)
    env = Env(device=torch.device("cpu"), amp_dtype=None, channels_last=False)
    with pytest.raises(TrainingError, match=r"while evaluating \(batch 2 at \(8, 16\).*--BATCH_SIZE.*--EVAL_SIZE"):
        confusion_matrix(Huge(), loader, env, num_classes=19, progress=False)


# ------------------------------------------------------------------------------------------------ predict
def _huge_png(path: Path, height: int = 20000, width: int = 20000) -> None:
    """A few bytes of PNG whose header announces ``height`` x ``width`` RGB pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_predict_as_a_first_time_user_meets_it(tiny_world, tmp_path, capsys):
    """The README's example on what a --demo run writes; the checkpoint's evaluation size by default, said, with
    --size and --size native kept; --out equal to --input refused; an image too large to decode is one message."""
    import re

    import predict

    example = re.search(r"python predict\.py --checkpoint (runs/\S+/best\.pt) --input (data/synthetic/\S+) --out",
                        (ROOT / "README.md").read_text())
    assert example, "the README shows predict.py on a demo run's checkpoint"
    step2b(tiny_args(tiny_world, tmp_path / "runs"))  # --demo (its EVAL_SIZE here 32,64)
    checkpoint = tmp_path / example.group(1)
    images = tiny_world / Path(example.group(2)).relative_to("data/synthetic")
    assert checkpoint.is_file() and images.is_dir()

    def run(out: str, *extra: str) -> str:
        capsys.readouterr()
        predict.main(["--checkpoint", str(checkpoint), "--input", str(images), "--out", str(tmp_path / out),
                      "--device", "cpu", *extra])
        return capsys.readouterr().out

    assert "network input 32x64 (the checkpoint's EVAL_SIZE)" in run("default")
    assert "network input 32x64 (--size)" in run("sized", "--size", "32,64")
    assert "network input each image's own size (--size)" in run("native", "--size", "native")
    masks = sorted((tmp_path / "default").rglob("*_mask.png"))
    assert len(masks) == 8
    for mask in masks:
        assert mask.read_bytes() == (tmp_path / "sized" / mask.relative_to(tmp_path / "default")).read_bytes()

    for out in (images, images.parent):  # the --input folder itself, or a folder holding it
        with pytest.raises(SystemExit) as exit_:
            run_main(predict.main, ["--checkpoint", str(checkpoint), "--input", str(images), "--out", str(out)])
        err = capsys.readouterr().err
        assert exit_.value.code == 1 and "Traceback" not in err and "the predictions would be written among" in err
    assert not list(images.rglob("*_mask.png"))

    bomb = tmp_path / "huge.png"
    _huge_png(bomb)
    with pytest.raises(SystemExit) as exit_:
        run_main(predict.main, ["--checkpoint", str(checkpoint), "--input", str(bomb), "--out", str(tmp_path / "b"),
                                "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and f"cannot read {bomb}: too large to decode safely" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("arg,expected", [
    ("--EPOCH=3", "Did you mean EPOCHS?"),
    ("--BATCH_SIZE=eight", "BATCH_SIZE expects an integer"),
    ("--TRAIN_SIZE=big", "TRAIN_SIZE must be two integers H,W"),
    ("--TRAIN_SIZE=7,3", "TRAIN_SIZE must be two integers H,W (or HxW) of at least 32 each"),
    ("--EVAL_SIZE=1x1", "EVAL_SIZE must be two integers H,W (or HxW) of at least 32 each"),
    ("--TRAIN_SIZE=31,64", "TRAIN_SIZE must be two integers H,W (or HxW) of at least 32 each"),
    ("--SEED=-1", "SEED must be in [0, 4294967295], got -1"),
    ("--SEED=4294967296", "SEED must be in [0, 4294967295], got 4294967296"),
    ("--MOMENTUM=5", "MOMENTUM must be in [0, 1), got 5"),
    ("--MOMENTUM=1", "MOMENTUM must be in [0, 1), got 1"),
    ("--MOMENTUM=-0.1", "MOMENTUM must be in [0, 1), got -0.1"),
    ("--NUM_WORKERS=-5", "NUM_WORKERS must be at least -1, got -5"),
    ("--BETAS=0.9,1.5", "BETAS must be in [0, 1) each, got 0.9,1.5"),
    ("--EPOCHS=0", "EPOCHS must be at least 1, got 0"),
    ("--BATCH_SIZE=0", "BATCH_SIZE must be at least 1, got 0"),
    ("--BATCH_SIZE=-4", "BATCH_SIZE must be at least 1, got -4"),
    ("--TRAIN_SIZE=0,64", "TRAIN_SIZE must be two integers H,W (or HxW) of at least 32 each"),
    ("--EVAL_SIZE=-32,64", "EVAL_SIZE must be two integers H,W"),
    ("--FLOPS_SIZE=512", "FLOPS_SIZE must be two integers H,W"),
    ("--LATENCY_SIZE=0x0", "LATENCY_SIZE must be two integers H,W"),
    ("--EVAL_EVERY=0", "EVAL_EVERY must be at least 1"),
    ("--LATENCY_ITERS=0", "LATENCY_ITERS must be at least 1"),
    ("--LR=-0.01", "LR must be at least 0"),
    ("--LR=nan", "LR must be at least 0"),
    ("--NUM_CLASSES=0", "NUM_CLASSES must be at least 1"),
    ("--TRAIN_IMAGES=-1", "TRAIN_IMAGES must be at least 0"),
    ("--CHECKPOINT_MINUTES=-5", "CHECKPOINT_MINUTES must be at least 0"),
])
def test_bad_config_value_is_refused_before_anything_runs(tmp_path, capsys, arg, expected):
    err = user_error(["--demo", f"--RUNS_DIR={tmp_path}", arg], capsys)
    assert expected in err and f"--{arg[2:].split('=')[0]}" in err
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_demo_defaults_pass_the_bounds() -> None:
    """Every step script's defaults, DEMO and STUDY values are within the bounds the command line is held to."""
    import importlib

    from utils.config import load_config

    for name in ("step2a_deeplab_cityscapes", "step2b_bisenet_cityscapes", "step3a3b_gta_to_cityscapes",
                 "step4_5_adversarial", "step6_uda_methods"):
        ns = vars(importlib.import_module(name))
        load_config(ns, [])
        load_config(ns, ["--demo"])
        if "STUDY" in ns:
            load_config(ns, ["--study"])


@pytest.mark.parametrize("script,arg", [("step3a3b_gta_to_cityscapes.py", "--GTA5_SPLIT_SEED=-3"),
                                        ("study.py", "--SEEDS=1,4294967296")])
def test_every_seed_is_held_to_numpys_range(tmp_path, capsys, script, arg):
    key = arg[2:].split("=")[0]
    err = _command_error([script, f"--RUNS_DIR={tmp_path}", arg], capsys)
    assert f"{key} must be in [0, 4294967295]" in err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("classes", [5, 30])
def test_num_classes_other_than_the_labels_is_refused_naming_the_key(tiny_world, tmp_path, capsys, classes):
    """Cityscapes and GTA5 labels hold 19 train ids: a model of 5 or 30 classes would report a wrong mIoU."""
    err = user_error(tiny_args(tiny_world, tmp_path, f"--NUM_CLASSES={classes}"), capsys)
    assert f"--NUM_CLASSES={classes} does not fit the data" in err and "Use --NUM_CLASSES=19" in err
    assert not (tmp_path / RUN / "last.pt").exists() and not (tmp_path / RUN / "metrics.csv").exists()
    assert step2b(tiny_args(tiny_world, tmp_path))["iterations"] == 2  # the fixed command starts afresh


def test_messages_name_the_scripts_own_key(tiny_world, tmp_path, capsys):
    """A library argument (the GTA5 dataset's label_format) is named as the step script's key."""
    from step3a3b_gta_to_cityscapes import main as step3

    gta = tmp_path / "gta"
    make_gta5(gta, n=4, fmt="trainIds")  # greyscale labels: the format must be named
    args = [a for a in tiny_args(tiny_world, tmp_path / "runs") if a != "--demo"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_main(step3, [*args, f"--GTA5_ROOT={gta}", f"--CITYSCAPES_ROOT={tiny_world / 'Cityscapes'}",
                         "--PRETRAINED=none"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    assert "--GTA5_LABEL_FORMAT=trainIds" in err and "label_format=" not in err
    assert not (tmp_path / "runs").exists()


def test_only_the_config_block_is_options_and_a_wrong_value_names_its_values(tmp_path, capsys):
    """Tables below a script's settings (the study's GAINS, step 6's METHODS) are not options, and --help does not
    list them; a wrong value names that key's valid values, an unknown key lists the keys."""
    for script, table in (("study.py", "GAINS"), ("step6_uda_methods.py", "METHODS"), ("study.py", "ROW_SPECS")):
        err = _command_error([script, f"--{table}=dacs", f"--RUNS_DIR={tmp_path}"], capsys)
        assert f"unknown option --{table}" in err and "Valid keys: RUNS_DIR" in err
        assert f"{table}," not in err.split("Valid keys:")[1]
        code, shown, _ = command([script, "--help"], capsys)
        assert code == 0 and f"--{table}=" not in shown and "--RUNS_DIR=" in shown
    err = _command_error(["step2b_bisenet_cityscapes.py", "--OPTIMIZER=adamw", f"--RUNS_DIR={tmp_path}"], capsys)
    assert "OPTIMIZER must be one of sgd, adam; got 'adamw'" in err
    err = _command_error(["step4_5_adversarial.py", "--DETERMINISTIC=maybe", f"--RUNS_DIR={tmp_path}"], capsys)
    assert "DETERMINISTIC expects a bool (true/false/1/0/yes/no)" in err
    assert "Valid keys" not in err and list(tmp_path.iterdir()) == []


def test_pretrained_is_one_vocabulary_and_runs_made_with_true_false_are_reused(tiny_world, tmp_path, capsys):
    """imagenet, none or a weights file in every script; true/false mean imagenet/none, so a finished study row
    whose config.json says PRETRAINED false (as the study wrote them) is reused, not refused or retrained."""
    import importlib

    from utils.config import load_config

    for name in ("step2a_deeplab_cityscapes", "step2b_bisenet_cityscapes", "step3a3b_gta_to_cityscapes",
                 "step4_5_adversarial", "step6_uda_methods"):
        ns = vars(importlib.import_module(name))
        assert load_config(ns, ["--PRETRAINED=true"]).PRETRAINED == "imagenet"
        assert load_config(ns, ["--PRETRAINED=False"]).PRETRAINED == "none"
        assert load_config(ns, ["--PRETRAINED=none"]).PRETRAINED == "none"
        assert load_config(ns, ["--PRETRAINED=w/r18.pth"]).PRETRAINED == "w/r18.pth"
        assert load_config(ns, ["--demo"]).PRETRAINED == "none"
    args = [a for a in tiny_args(tiny_world, tmp_path) if a != "--demo"] + ["--study", "--SEED=1"]
    first = step2b(args)  # a study row, shortened (the tiny world, one epoch)
    folder = Path(first["path"])
    for name in ("config.json", "results.json"):  # as the study wrote them before PRETRAINED took words
        stored = json.loads((folder / name).read_text())
        (stored.get("config") or stored)["PRETRAINED"] = False
        (folder / name).write_text(json.dumps(stored))
    capsys.readouterr()
    again = step2b(args)
    assert "already finished with this config" in capsys.readouterr().out and again["miou"] == first["miou"]
    (folder / "results.json").unlink()
    resumed = step2b(args)  # unfinished: resumed (from the last epoch's checkpoint), not refused
    assert "resuming" in capsys.readouterr().out and resumed["iterations"] == first["iterations"]
    from utils.report import group_by_seed

    old, new = json.loads((folder / "results.json").read_text()), dict(first)
    old["config"]["PRETRAINED"] = False
    assert len(group_by_seed([old, new])) == 1  # the report averages them as one experiment
    err = user_error([*args, "--PRETRAINED=imagenet"], capsys)
    assert "PRETRAINED: 'none' -> 'imagenet'" in err


def test_output_folder_of_another_experiment_is_never_overwritten(tiny_world, tmp_path, capsys):
    """Files in the run folder that are not a run (no config.json): refused, left as they were."""
    folder = tmp_path / RUN
    folder.mkdir()
    (folder / "metrics.csv").write_text("epoch,iter,global_it,loss\n1,1,1,0.5\n")
    (folder / "notes.txt").write_text("my other experiment")
    before = _snapshot(folder)
    err = user_error(tiny_args(tiny_world, tmp_path), capsys)
    assert str(folder) in err and "metrics.csv, notes.txt" in err and "another experiment" in err
    assert "--RUN_NAME" in err and "--OVERWRITE=true" in err
    assert _snapshot(folder) == before


def test_variant_runs_refuse_a_folder_of_another_experiment(tmp_path: Path) -> None:
    """RUN_NAME of a multi-variant step pointing at another step's run, or at variants of another config."""
    single = Run(_cfg(tmp_path, STEP_KEY="2b"))
    single.start()
    atomic_save({"config": single.config}, single.last)  # a run with training to keep
    with pytest.raises(ConfigError, match=r"holds runs of another experiment.*config.json") as err:
        Run(_cfg(tmp_path, STEP_KEY="3"), variant="none", variant_spec={}).start()
    assert "STEP_KEY: '2b' -> '3'" in str(err.value)
    assert single.config_path.is_file()

    other = tmp_path / "other"
    none = Run(_cfg(other), variant="none", variant_spec={})
    assert none.start() == "new"
    atomic_save({"config": none.config}, none.last)
    # another variant of the same experiment: welcome
    assert Run(_cfg(other, VARIANTS=["flip"]), variant="flip", variant_spec={"hflip": 0.5}).start() == "new"
    # a variant of the same name with another config: the variants beside it would mix two configs
    with pytest.raises(ConfigError, match=r"EPOCHS: 2 -> 5"):
        Run(_cfg(other, EPOCHS=5), variant="blur", variant_spec={"blur": 0.5}).start()
    assert not (other / "blur").exists()
    assert Run(_cfg(other, EPOCHS=5, OVERWRITE=True), variant="blur", variant_spec={}).start() == "new"
    assert sorted(p.name for p in (other / "r").iterdir()) == ["blur"]  # the old config's variants were replaced

    assert Run(_cfg(tmp_path, STEP_KEY="3", OVERWRITE=True), variant="none", variant_spec={}).start() == "new"
    assert not single.config_path.exists()


def test_a_run_that_failed_before_its_first_checkpoint_starts_afresh_when_fixed(tiny_world, tmp_path, capsys):
    """A value caught late (here a missing INIT_FROM) leaves config.json and no checkpoint: the fixed command is
    not refused as another config."""
    missing = tmp_path / "nope.pt"
    err = user_error(tiny_args(tiny_world, tmp_path, f"--INIT_FROM={missing}"), capsys)
    assert str(missing) in err and "not found" in err
    assert (tmp_path / RUN / "config.json").is_file() and not (tmp_path / RUN / "last.pt").exists()
    results = step2b(tiny_args(tiny_world, tmp_path))
    assert "stopped before its first checkpoint: starting afresh" in capsys.readouterr().out
    assert results["iterations"] == 2 and results["config"]["INIT_FROM"] is None


def test_half_made_variant_folders_start_afresh_but_runs_with_checkpoints_are_kept(tmp_path: Path) -> None:
    """Variants alike: a half-made variant, a half-made variant beside it, a half-made single run at RUN_NAME."""
    half = Run(_cfg(tmp_path), variant="none", variant_spec={})
    half.start()
    half.log("started")
    assert Run(_cfg(tmp_path, EPOCHS=3), variant="none", variant_spec={}).start() == "new"  # the same variant
    assert Run(_cfg(tmp_path, EPOCHS=5), variant="flip", variant_spec={"hflip": 0.5}).start() == "new"  # beside it
    assert not (tmp_path / "r" / "none").exists()
    assert json.loads((tmp_path / "r" / "flip" / "config.json").read_text())["EPOCHS"] == 5

    single = Run(_cfg(tmp_path, RUN_NAME="s"))
    single.start()
    assert Run(_cfg(tmp_path, RUN_NAME="s", EPOCHS=4), variant="none", variant_spec={}).start() == "new"
    assert not (tmp_path / "s" / "config.json").exists()

    kept = Run(_cfg(tmp_path, RUN_NAME="k"), variant="none", variant_spec={})
    kept.start()
    atomic_save({"config": kept.config, "trainer": {}}, kept.last)
    with pytest.raises(ConfigError, match="EPOCHS: 2 -> 3"):
        Run(_cfg(tmp_path, RUN_NAME="k", EPOCHS=3), variant="none", variant_spec={}).start()
    (kept.dir / "last.pt").unlink()
    (kept.dir / "notes.txt").write_text("mine")  # not a file a run writes: the folder is not a half-made run
    with pytest.raises(ConfigError, match="EPOCHS: 2 -> 3"):
        Run(_cfg(tmp_path, RUN_NAME="k", EPOCHS=3), variant="none", variant_spec={}).start()
    assert (kept.dir / "notes.txt").is_file()


@pytest.mark.parametrize("name", ["", " ", ".", "..", "../elsewhere", "/tmp/abs", "a//b"])
def test_run_name_must_be_a_folder_under_runs_dir(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="RUN_NAME"):
        Run(_cfg(tmp_path, RUN_NAME=name, OVERWRITE=True))
    assert tmp_path.is_dir()
