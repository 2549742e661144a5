"""AdaBN and the BatchNorm statistics control: re-estimated statistics equal a hand computation, nothing but
BatchNorm buffers changes, no target label is read, a finished evaluation is reused; BN_STATS=frozen keeps the
statistics (target_bn then equals source_only to the last bit), DACS's teacher in train or eval mode."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_steps import tiny_args

from models import BiSeNet
from utils.adabn import adabn_loader, batchnorm_layers, reestimate_bn_statistics
from utils.checkpoint import load_checkpoint
from utils.engine import setup_env


class _Images(torch.utils.data.Dataset):
    """Random uint8 images with labels that must never be looked at."""

    def __init__(self, n: int, size=(32, 64), seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, *size), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], torch.full(self.images.shape[-2:], 255, dtype=torch.int64)


def _bisenet(seed: int = 0) -> BiSeNet:
    torch.manual_seed(seed)
    return BiSeNet(num_classes=19, context_path="resnet18")


def test_reestimated_statistics_equal_the_average_computed_by_hand():
    """Per BatchNorm: the mean over batches of each batch's per-channel mean and unbiased variance of the
    layer's input, from the same train-mode pass; 7 images in batches of 2: the last batch of one is dropped."""
    env = setup_env("cpu", "off")
    model = _bisenet().eval()
    layers = batchnorm_layers(model)
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {i: [] for i in range(len(layers))}

    def hook(i):
        def record(module, inputs):
            x = inputs[0].detach().double()
            seen[i].append((x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=True)))
        return record

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(layers)]
    loader = adabn_loader(_Images(7), 0, 2, env, seed=0, num_workers=0)
    assert reestimate_bn_statistics(model, loader, env, progress=False) == 6
    for h in handles:
        h.remove()
    for i, m in enumerate(layers):
        assert len(seen[i]) == 3 and int(m.num_batches_tracked) == 3
        mean = torch.stack([s[0] for s in seen[i]]).mean(0)
        var = torch.stack([s[1] for s in seen[i]]).mean(0)
        torch.testing.assert_close(m.running_mean.double(), mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m.running_var.double(), var, rtol=1e-5, atol=1e-6)
        assert m.momentum == 0.1  # restored for training
    assert not model.training  # the mode it had before


def test_only_batchnorm_statistics_change_and_images_are_spread_over_the_split():
    env = setup_env("cpu", "off")
    model = _bisenet()
    model.freeze_bn_statistics(True)  # AdaBN re-estimates them all the same
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reestimate_bn_statistics(model, adabn_loader(_Images(8), 4, 2, env, seed=0, num_workers=0), env, progress=False)
    stats = {f"{name}.{b}" for name, m in model.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             for b in ("running_mean", "running_var", "num_batches_tracked")}
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= stats
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert adabn_loader(_Images(8), 4, 2, env, seed=0).dataset.dataset.indices == [0, 2, 4, 6]  # as limit spreads


def _step3(world: Path, runs: Path, *extra: str) -> dict:
    from step3a3b_gta_to_cityscapes import main

    return main(tiny_args(world, runs, "--VARIANTS=none", "--TARGET_SIZE=32,64", *extra))


def test_adabn_after_training_and_as_an_evaluation_run_reads_no_target_label_and_is_reused(tiny_world, tmp_path,
                                                                                          capsys):
    trained = _step3(tiny_world, tmp_path / "a", "--ADABN=true")["variants"]["none"]
    run_dir = Path(trained["path"])
    assert trained["miou_before_adabn"] is not None and trained["adabn_images"] == 12
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored["miou"] == trained["miou"] and stored["miou_before_adabn"] == trained["miou_before_adabn"]
    adapted = load_checkpoint(run_dir / "adabn.pt")
    assert adapted["model_spec"]["arch"] == "bisenet" and adapted["config"]["ADABN"] is True
    last = load_checkpoint(run_dir / "last.pt")["trainer"]["model"]
    assert any(not torch.equal(adapted["model"][k], last[k]) for k in last if k.endswith("running_mean"))

    # the same weights evaluated with AdaBN as a run of their own, on a world whose target labels are noise
    other = tmp_path / "world"
    shutil.copytree(tiny_world, other)
    rng = np.random.default_rng(0)
    for path in sorted((other / "Cityscapes" / "gtFine" / "train").rglob("*_labelIds.png")):
        with Image.open(path) as im:
            size = im.size
        Image.fromarray(rng.integers(0, 34, size[::-1], dtype=np.uint8)).save(path)
    evaluation = ("--EVAL_ONLY=true", "--ADABN=true", f"--INIT_FROM={run_dir / 'last.pt'}", "--RUN_NAME=evaluated")
    results = [_step3(world, tmp_path / name, *evaluation)["variants"]["none"]
               for world, name in ((tiny_world, "b"), (other, "c"))]
    assert results[0]["miou"] == results[1]["miou"] == trained["miou"]
    assert results[0]["miou_before_adabn"] == trained["miou_before_adabn"]
    weights = [load_checkpoint(Path(r["path"]) / "adabn.pt")["model"] for r in results]
    assert all(torch.equal(weights[0][k], weights[1][k]) and torch.equal(weights[0][k], adapted["model"][k])
               for k in weights[0])
    results_file = Path(results[0]["path"]) / "results.json"
    stamp = results_file.stat().st_mtime_ns
    capsys.readouterr()
    again = _step3(tiny_world, tmp_path / "b", *evaluation)["variants"]["none"]
    assert "already finished" in capsys.readouterr().out
    assert again["miou"] == results[0]["miou"] and results_file.stat().st_mtime_ns == stamp


def _final_state(result: dict) -> dict:
    return load_checkpoint(Path(result["path"]) / "last.pt")["trainer"]["model"]


def test_frozen_statistics_make_target_bn_equal_source_only_and_train_differs_in_statistics_only(tiny_world,
                                                                                                  tmp_path):
    """With lambda_adv 0 the target backward adds zeros: under BN_STATS=frozen target_bn ends with
    source_only's weights and buffers to the last bit; under "train" its target batches move the statistics."""
    from step4_5_adversarial import main

    start = _step3(tiny_world, tmp_path / "start", "--ADABN=true")["variants"]["none"]
    warm = Path(start["path"]) / "adabn.pt"  # statistics of images, not BatchNorm's initial 0 / 1
    states = {}
    for stats in ("frozen", "train"):
        out = main(tiny_args(tiny_world, tmp_path / stats, "--VARIANTS=source_only,target_bn",
                             f"--BN_STATS={stats}", f"--INIT_FROM={warm}", "--TARGET_SIZE=32,64",
                             "--LR=1e-3"))["variants"]
        states[stats] = {v: _final_state(out[v]) for v in ("source_only", "target_bn")}
    frozen, train = states["frozen"], states["train"]
    assert all(torch.equal(frozen["source_only"][k], frozen["target_bn"][k]) for k in frozen["source_only"])
    warm_state = load_checkpoint(warm)["model"]
    assert all(torch.equal(frozen["source_only"][k], warm_state[k]) for k in warm_state
               if k.endswith(("running_mean", "running_var")))  # the warm start's statistics, kept
    differ = {k for k in train["source_only"] if not torch.equal(train["source_only"][k], train["target_bn"][k])}
    assert any(k.endswith("running_mean") for k in differ)
    assert all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in differ)


def test_freeze_keeps_batchnorm_in_eval_mode_under_train():
    model = _bisenet()
    model.freeze_bn_statistics(True).train()
    assert model.training and not any(m.training for m in batchnorm_layers(model))
    x = torch.randint(0, 256, (2, 3, 32, 64), dtype=torch.uint8)
    before = [m.running_mean.clone() for m in batchnorm_layers(model)]
    model(x)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, batchnorm_layers(model)))
    model.freeze_bn_statistics(False)
    assert all(m.training for m in batchnorm_layers(model))


@pytest.mark.parametrize("train_mode", [True, False])
def test_dacs_teacher_mode_and_what_the_ema_averages(train_mode):
    from utils.dacs import ema_update, make_teacher

    student = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    teacher = make_teacher(student, train_mode=train_mode)
    assert teacher.training == train_mode and not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        student[1].running_mean.fill_(5.0)
        teacher[1].running_mean.fill_(-1.0)
    ema_update(teacher, student, 0.99, 10)
    # DACS's teacher (train mode) keeps its own statistics; an eval-mode teacher normalises with the student's
    assert float(teacher[1].running_mean[0]) == (-1.0 if train_mode else 5.0)
