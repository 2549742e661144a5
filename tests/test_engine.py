"""The engine's pieces: checkpoints, deterministic sampling, run folders, the NaN guard, one iteration."""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from utils.checkpoint import atomic_save, load_checkpoint, load_resumable, previous_path, rng_state, set_rng_state
from utils.config import Config
from utils.data import EpochSampler, SeededDataset
from utils.data import make_loader
from utils.engine import Env, NonFiniteLoss, TrainingError, TrainState, make_optimizer, train_iteration, train_one_epoch
from utils.errors import CheckpointError, ConfigError
from utils.losses import SegLosses, build_seg_loss
from utils.runs import Run


# --------------------------------------------------------------------------------------------- checkpoints
def test_atomic_save_crash_leaves_previous_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"w": torch.ones(3)}, path)

    real_save = torch.save

    def crashing_save(obj, f):
        real_save(obj, f)
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError):
        atomic_save({"w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def _no_space_message(tmp_path, monkeypatch, failing_save, keep_previous=False) -> str:
    path = tmp_path / "last.pt"
    atomic_save({"w": torch.ones(3)}, path)
    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: SimpleNamespace(total=1 << 40, used=1 << 40, free=1536))
    with pytest.raises(CheckpointError) as err:
        atomic_save({"w": torch.zeros(1000)}, path, keep_previous=keep_previous)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary (or .prev) file left behind
    message = str(err.value)
    assert str(path) in message and "1.5 KiB (1536 bytes) is free" in message
    assert "Free some space" in message and "RUNS_DIR" in message
    return message


def test_atomic_save_on_a_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    real_save = torch.save

    def full_disk_save(obj, f):
        if not isinstance(f, io.BufferedWriter):  # the size estimate writes to no disk
            return real_save(obj, f)
        f.write(b"x" * 512)
        raise OSError(errno.ENOSPC, "No space left on device")
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(1000)}, buffer)
    size = len(buffer.getvalue())
    message = _no_space_message(tmp_path, monkeypatch, full_disk_save, keep_previous=True)
    assert "the disk is full" in message
    assert f"It needs {size / 1024:.1f} KiB ({size} bytes)" in message

    def quota_save(obj, f):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert "quota" in _no_space_message(tmp_path, monkeypatch, quota_save)


def test_atomic_save_full_disk_reported_by_torch_as_a_runtime_error(tmp_path, monkeypatch):
    """torch's zip writer turns the failed write into a RuntimeError raised while handling the OSError."""
    def torch_like_save(obj, f):
        f.write(b"x" * 700)
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    message = _no_space_message(tmp_path, monkeypatch, torch_like_save)
    assert "more than the 700 bytes written" in message


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("numel", [10, 1_000_000])  # the error comes from close, or from torch's zip writer
def test_atomic_save_real_enospc_from_dev_full(tmp_path, numel):
    path = tmp_path / "last.pt"
    atomic_save({"w": torch.ones(3)}, path)
    # Every write to /dev/full fails with ENOSPC: the temporary file atomic_save opens is pointed there.
    os.symlink("/dev/full", tmp_path / f".last.pt.tmp-{os.getpid()}")
    with pytest.raises(CheckpointError, match="the disk is full. It needs .* bytes"):
        atomic_save({"w": torch.zeros(numel)}, path, keep_previous=True)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_last_falls_back_to_previous(tmp_path, capsys):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path, keep_previous=True)
    atomic_save({"step": 2}, path, keep_previous=True)
    assert previous_path(path).is_file()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    obj, used = load_resumable(path)
    assert obj["step"] == 1 and used == previous_path(path)
    assert "damaged" in capsys.readouterr().out


def test_truncated_checkpoint_without_fallback_names_file(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="last.pt"):
        load_resumable(path)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)


def test_rng_state_round_trips_through_weights_only(tmp_path):
    import random

    import numpy as np

    state = rng_state()
    atomic_save({"rng": state}, tmp_path / "r.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


# ----------------------------------------------------------------------------------------------- sampling
def test_epoch_sampler_order_is_a_function_of_seed_and_epoch():
    s = EpochSampler(20, seed=3)
    s.set_epoch(1)
    first = list(s)
    s.set_epoch(1)
    assert list(s) == first
    s.set_epoch(2)
    assert list(s) != first
    s.set_epoch(1, start=7)
    assert list(s) == first[7:] and len(s) == 13


@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_shards_cover_every_sample_once_without_padding(world):
    seen = []
    for rank in range(world):
        s = EpochSampler(10, seed=0, shuffle=False, rank=rank, world=world)
        seen += [i for i, _ in s]
    assert sorted(seen) == list(range(10))


def test_seeded_dataset_repeats_random_transforms_and_restores_global_rng():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(2)

    ds = SeededDataset(Noisy())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b = ds[(1, 123)], ds[(1, 123)]
    assert torch.equal(a, b) and not torch.equal(a, ds[(1, 124)])
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------------------------------------- run folders
def _cfg(tmp_path, **kw) -> Config:
    base = dict(RUNS_DIR=str(tmp_path), RUN_NAME="r", EPOCHS=2, LR=0.1, OVERWRITE=False, SEED=0,
                CHECKPOINT_MINUTES=10.0, EVAL_ONLY=False, INIT_FROM=None)
    base.update(kw)
    return Config(base)


def test_run_refuses_changed_config_and_lists_differences(tmp_path):
    run = Run(_cfg(tmp_path))
    assert run.start() == "new"
    atomic_save({"x": 1}, run.last)  # trained: a run to protect
    with pytest.raises(ConfigError, match=r"EPOCHS: 2 -> 3") as e:
        Run(_cfg(tmp_path, EPOCHS=3)).start()
    assert "OVERWRITE" in str(e.value)
    # keys that do not change what is computed may change
    assert Run(_cfg(tmp_path, CHECKPOINT_MINUTES=1.0)).start() == "resume"
    assert Run(_cfg(tmp_path, EPOCHS=3, OVERWRITE=True)).start() == "new"
    assert json.loads((tmp_path / "r" / "config.json").read_text())["EPOCHS"] == 3


def test_run_status_resume_and_finished(tmp_path):
    run = Run(_cfg(tmp_path))
    run.start()
    atomic_save({"x": 1}, run.last)
    assert Run(_cfg(tmp_path)).start() == "resume"
    run.save_results({"miou": float("nan")})
    assert Run(_cfg(tmp_path)).start() == "finished"
    assert json.loads(run.results_path.read_text())["miou"] is None  # NaN written as null


# ----------------------------------------------------------------------------------------- one iteration
class TinySeg(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x.float() / 255)

    def param_groups(self):
        return [{"params": list(self.parameters()), "lr_mult": 1.0, "name": "all"}]


CPU = Env(device=torch.device("cpu"), amp_dtype=None, channels_last=False)


def _batch():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 4, (2, 8, 8), generator=g)
    labels[:, 0] = 255
    return images, labels


def test_train_iteration_updates_weights_and_logs_the_losses():
    model = TinySeg()
    optimizer = make_optimizer("sgd", model.param_groups(), 0.1)
    w0 = model.conv.weight.detach().clone()
    logs = train_iteration(model, optimizer, SegLosses(build_seg_loss("ce")), _batch(), CPU)
    assert not torch.equal(w0, model.conv.weight)
    assert set(logs) == {"loss", "loss_seg"} and logs["loss"] == logs["loss_seg"] > 0


def test_nan_loss_stops_with_iteration_named():
    model = TinySeg()
    optimizer = make_optimizer("sgd", model.param_groups(), 0.1)
    nan_loss = SegLosses(lambda out, y: out.sum() * float("nan"))
    with pytest.raises(NonFiniteLoss):
        train_iteration(model, optimizer, nan_loss, _batch(), CPU)
    state = TrainState(CPU, model=model, optimizer=optimizer)
    state.global_it = 6
    images, labels = _batch()
    loader = make_loader(torch.utils.data.TensorDataset(images, labels), 2, train=True, seed=0,
                         device=torch.device("cpu"), num_workers=0)
    w0 = model.conv.weight.detach().clone()
    with pytest.raises(TrainingError, match="iteration 7"):
        list(train_one_epoch(state, lambda batch, it: train_iteration(model, optimizer, nan_loss, batch, CPU), loader,
                             0, progress=False))
    assert torch.equal(w0, model.conv.weight)  # nothing was stepped with the bad loss


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError):
        make_optimizer("rmsprop", TinySeg().param_groups(), 0.1)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizer_is_fused_and_updates_like_the_reference(name):
    """The fused kernels (one per step) must give PyTorch's reference update, lr_mult groups included."""
    torch.manual_seed(0)
    fused_model, ref_model = TinySeg(), TinySeg()
    ref_model.load_state_dict(fused_model.state_dict())
    w0 = fused_model.conv.weight.detach().clone()
    groups = [{"params": [fused_model.conv.weight], "lr_mult": 1.0},
              {"params": [fused_model.conv.bias], "lr_mult": 10.0}]
    opt = make_optimizer(name, groups, 0.05, momentum=0.9, weight_decay=1e-3)
    assert opt.defaults["fused"] is True
    ref_groups = [{"params": [ref_model.conv.weight], "lr": 0.05}, {"params": [ref_model.conv.bias], "lr": 0.5}]
    ref = (torch.optim.SGD(ref_groups, lr=0.05, momentum=0.9, weight_decay=1e-3, foreach=False) if name == "sgd"
           else torch.optim.Adam(ref_groups, lr=0.05, betas=(0.9, 0.99), weight_decay=1e-3, foreach=False))
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        for model, o in ((fused_model, opt), (ref_model, ref)):
            o.zero_grad()
            model(x).square().sum().backward()
            o.step()
    for a, b in zip(fused_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (fused_model.conv.weight - w0).abs().max() > 1e-3  # it did move
