"""Focal loss, OHEM cross-entropy and the void-safe cross-entropy."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.errors import ConfigError
from utils.losses import FocalLoss, OhemCrossEntropyLoss, SafeCrossEntropyLoss, build_seg_loss


def _batch(seed: int = 0, c: int = 5, ignore_frac: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, c, 6, 7, generator=g) * 3
    target = torch.randint(0, c, (2, 6, 7), generator=g)
    target[torch.rand(target.shape, generator=g) < ignore_frac] = 255
    return logits, target


def test_focal_gamma0_equals_cross_entropy_with_ignore():
    logits, target = _batch()
    assert (target == 255).any()
    got = FocalLoss(gamma=0.0)(logits, target)
    want = F.cross_entropy(logits, target, ignore_index=255)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_focal_gamma0_with_alpha_equals_weighted_cross_entropy():
    logits, target = _batch(1)
    alpha = [0.5, 2.0, 1.0, 0.1, 3.0]
    got = FocalLoss(gamma=0.0, alpha=alpha)(logits, target)
    want = F.cross_entropy(logits, target, weight=torch.tensor(alpha), ignore_index=255)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_focal_hand_computed_one_pixel():
    # Logits (2, 0), target 0: p = 1 / (1 + e^-2) = 0.880797...; loss = (1 - p)^2 * -ln p = 0.00180356...
    logits = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(0.0018035628, rel=1e-5)
    # With alpha = (0.25, 0.75) the single pixel's weight cancels in the weighted mean ...
    assert FocalLoss(gamma=2.0, alpha=[0.25, 0.75])(logits, target).item() == pytest.approx(0.0018035628, rel=1e-5)
    # ... and shows in the sum.
    s = FocalLoss(gamma=2.0, alpha=[0.25, 0.75], reduction="sum")(logits, target)
    assert s.item() == pytest.approx(0.25 * 0.0018035628, rel=1e-5)


def test_focal_down_weights_easy_pixels():
    logits, target = _batch(2)
    ce = FocalLoss(gamma=0.0, reduction="none")(logits, target)
    fl = FocalLoss(gamma=2.0, reduction="none")(logits, target)
    valid = target != 255
    assert (fl[valid] <= ce[valid] + 1e-7).all()
    assert (fl[valid] < ce[valid]).any()


def test_focal_alpha_weighted_mean():
    logits, target = _batch(3)
    alpha = torch.tensor([0.5, 2.0, 1.0, 0.1, 3.0])
    per_pixel = FocalLoss(gamma=2.0, reduction="none")(logits, target)
    valid = target != 255
    w = alpha[target[valid]]
    want = (per_pixel[valid] * w).sum() / w.sum()
    got = FocalLoss(gamma=2.0, alpha=alpha)(logits, target)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("loss", [FocalLoss(gamma=2.0), build_seg_loss("ce"), build_seg_loss("focal"),
                                  build_seg_loss("ohem")], ids=["focal", "ce", "built-focal", "ohem"])
def test_ignored_pixels_have_no_effect(loss):
    logits, target = _batch(4)
    logits.requires_grad_(True)
    out = loss(logits, target)
    out.backward()
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    assert (logits.grad[ignored] == 0).all()
    changed = logits.detach().clone()
    changed[ignored] = 50.0
    assert loss(changed, target).item() == pytest.approx(out.item(), rel=1e-6)


@pytest.mark.parametrize("loss", [FocalLoss(gamma=2.0), FocalLoss(gamma=0.5, alpha=[1.0, 2.0, 3.0]),
                                  build_seg_loss("ce"), build_seg_loss("ce", alpha=[1.0, 2.0, 3.0]),
                                  build_seg_loss("ohem")],
                         ids=["focal", "focal-alpha", "ce", "ce-weight", "ohem"])
def test_all_ignored_batch_gives_zero_with_finite_grad(loss):
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    out = loss(logits, target)
    assert out.item() == 0.0
    out.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_large_logits_are_stable(gamma):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]]).T.reshape(1, 3, 1, 2).clone().requires_grad_(True)
    target = torch.tensor([[[0, 0]]])  # pixel 0 is certain and right, pixel 1 certain and wrong
    out = FocalLoss(gamma=gamma)(logits, target)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()
    assert out.item() == pytest.approx(1e4, rel=1e-4)  # (0 + 2e4) / 2; the wrong pixel has (1 - p)^gamma = 1


def test_out_of_range_targets_are_ignored_not_a_crash():
    logits, target = _batch(5)
    bad = target.clone()
    bad[0, 0, :3] = torch.tensor([5, -1, 99])
    clean = bad.clone()
    clean[(clean < 0) | (clean >= 5)] = 255
    for loss in (FocalLoss(), build_seg_loss("ce"), build_seg_loss("ohem")):
        assert loss(logits, bad).item() == pytest.approx(loss(logits, clean).item(), rel=1e-6)


def test_bf16_logits_give_float32_loss():
    logits, target = _batch(6)
    out = FocalLoss()(logits.bfloat16(), target)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert out.item() == pytest.approx(FocalLoss()(logits.bfloat16().float(), target).item(), rel=1e-6)


def test_reduction_none_and_sum():
    logits, target = _batch(7)
    per_pixel = FocalLoss(reduction="none")(logits, target)
    assert per_pixel.shape == target.shape
    assert (per_pixel[target == 255] == 0).all()
    assert FocalLoss(reduction="sum")(logits, target).item() == pytest.approx(per_pixel.sum().item(), rel=1e-6)
    mean = per_pixel.sum() / (target != 255).sum()
    assert FocalLoss()(logits, target).item() == pytest.approx(mean.item(), rel=1e-6)


def test_build_seg_loss():
    ce = build_seg_loss("CE", ignore_index=7)
    assert isinstance(ce, nn.CrossEntropyLoss) and isinstance(ce, SafeCrossEntropyLoss)
    assert ce.ignore_index == 7
    focal = build_seg_loss("focal", gamma=3.0, alpha=[1.0, 2.0])
    assert isinstance(focal, FocalLoss) and focal.gamma == 3.0 and focal.alpha.tolist() == [1.0, 2.0]
    with pytest.raises(ConfigError, match="ce, ohem or focal"):
        build_seg_loss("dice")
    assert isinstance(build_seg_loss("OHEM"), OhemCrossEntropyLoss)
    with pytest.raises(ConfigError, match="OHEM"):
        build_seg_loss("ohem", alpha=[1.0, 2.0])
    logits, target = _batch(8)
    target[target == 255] = 7
    assert ce(logits, target).item() == pytest.approx(F.cross_entropy(logits, target, ignore_index=7).item())


def test_invalid_focal_settings():
    with pytest.raises(ConfigError):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ConfigError):
        FocalLoss(reduction="avg")
    with pytest.raises(ConfigError, match="3 weights"):
        FocalLoss(alpha=[1.0, 1.0, 1.0])(*_batch(9))
    assert not math.isnan(FocalLoss()(*_batch(9)).item())


def _ohem_by_hand(logits, target, thresh, min_kept):
    """Sort the valid pixels' losses; keep those with p(true class) < thresh, or the hardest min_kept of the
    valid pixels (CoinCheung's OhemCELoss counts n_min on the non-ignored pixels, not on all of them)."""
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none").flatten()
    valid = per_pixel[target.flatten() != 255]
    hard = valid[valid > -math.log(thresh)]
    k = int(valid.numel() * min_kept)
    if hard.numel() >= k:
        return hard.mean().item() if hard.numel() else 0.0
    return valid.sort(descending=True).values[:k].mean().item()


@pytest.mark.parametrize("thresh,min_kept", [(0.7, 1 / 16), (0.99, 0.5), (0.05, 0.25), (0.3, 1.0)])
def test_ohem_matches_hand_computation(thresh, min_kept):
    logits, target = _batch(3)
    got = OhemCrossEntropyLoss(thresh=thresh, min_kept=min_kept)(logits, target).item()
    assert got == pytest.approx(_ohem_by_hand(logits, target, thresh, min_kept), rel=1e-5)


def test_ohem_keeps_only_hard_pixels_and_their_gradient():
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 0, 0, :2] = 10.0  # pixels 0, 1: confidently class 0
    target = torch.tensor([[[0, 0, 1, 2]]])  # 0, 1 easy (p ~ 1); 2, 3 hard (p ~ 0)
    logits.requires_grad_(True)
    loss = OhemCrossEntropyLoss(thresh=0.7, min_kept=0.25)(logits, target)
    per_pixel = F.cross_entropy(logits.detach(), target, reduction="none").flatten()
    assert loss.item() == pytest.approx(per_pixel[2:].mean().item(), rel=1e-6)
    loss.backward()
    assert logits.grad[0, :, 0, :2].abs().max() == 0  # easy pixels get no gradient
    assert logits.grad[0, :, 0, 2:].abs().min() > 0
    with pytest.raises(ConfigError):
        OhemCrossEntropyLoss(thresh=1.5)
    with pytest.raises(ConfigError):
        OhemCrossEntropyLoss(min_kept=0.0)


def test_ohem_is_zero_and_connected_on_an_all_void_batch():
    logits, target = _batch(4)
    logits.requires_grad_(True)
    target[:] = 255
    loss = OhemCrossEntropyLoss()(logits, target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def _quarter_void_batch():
    """768 pixels, 192 (25%) void; 20 valid pixels labelled wrongly (hard), the rest confidently right."""
    g = torch.Generator().manual_seed(0)
    c, h, w = 4, 24, 32
    target = torch.randint(0, c, (1, h, w), generator=g)
    logits = torch.randn(1, c, h, w, generator=g) + 6 * F.one_hot(target, c).permute(0, 3, 1, 2)
    flat = target.view(-1)
    order = torch.randperm(h * w, generator=g)
    flat[order[:192]] = 255
    flat[order[192:212]] = (flat[order[192:212]] + 1) % c
    return logits, target


def test_ohem_min_kept_counts_only_valid_pixels():
    logits, target = _quarter_void_batch()
    valid = target.flatten() != 255
    assert valid.sum() == 576
    # By hand: per-pixel cross-entropy from log-softmax, valid pixels only, hardest first.
    per_pixel = -logits.log_softmax(1).gather(1, target.clamp(max=3).unsqueeze(1)).flatten()[valid]
    ranked = per_pixel.sort(descending=True).values
    n_hard = int((ranked > -math.log(0.7)).sum())
    n_min = 576 // 16
    assert 0 < n_hard < n_min  # few hard pixels: the n_min hardest are kept
    want = ranked[:n_min].mean().item()

    logits.requires_grad_(True)
    loss = OhemCrossEntropyLoss(thresh=0.7)(logits, target)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert loss.item() == pytest.approx(3.4603, abs=1e-4)
    loss.backward()
    kept = logits.grad.abs().sum(1).flatten() > 0
    assert int(kept.sum()) == n_min  # 36; counting all 768 pixels would keep 48 (loss 2.612)
    assert not kept[~valid].any()
    assert ranked[: 768 // 16].mean().item() == pytest.approx(2.6121, abs=1e-4)


def test_ohem_with_fewer_than_16_valid_pixels_keeps_only_hard_ones():
    logits = torch.zeros(1, 3, 1, 20)
    logits[0, 0] = 10.0
    target = torch.full((1, 1, 20), 255)
    target[0, 0, :10] = 0  # 10 valid, all easy: n_min = 10 // 16 = 0, nothing is kept
    logits.requires_grad_(True)
    loss = OhemCrossEntropyLoss()(logits, target)
    assert loss.item() == 0.0
    loss.backward()
    assert (logits.grad == 0).all()
    target[0, 0, 0] = 1  # one hard pixel: kept on its own
    per_pixel = F.cross_entropy(logits.detach(), target, ignore_index=255, reduction="none").flatten()
    assert OhemCrossEntropyLoss()(logits, target).item() == pytest.approx(per_pixel[0].item(), rel=1e-6)
