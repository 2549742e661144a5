"""Segmentation losses: cross-entropy, OHEM cross-entropy and Focal loss, all safe on void-only crops.

A random crop can land entirely on void pixels (e.g. the ego-vehicle bonnet); torch's mean cross-entropy
is then 0/0 = NaN and one such batch poisons the weights. Every loss here returns 0 for such a batch,
still connected to the graph so ``backward`` runs. Target values outside 0..C-1 other than the ignore
index are treated as ignored too: on CUDA they would otherwise raise the "device-side assert".
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.classes import IGNORE_INDEX
from utils.errors import ConfigError

__all__ = ["FocalLoss", "OhemCrossEntropyLoss", "SafeCrossEntropyLoss", "SegLosses", "build_seg_loss",
           "class_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


def _sanitize_target(target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    out_of_range = (target < 0) | (target >= num_classes)
    return target.masked_fill(out_of_range, ignore_index)


class SafeCrossEntropyLoss(nn.CrossEntropyLoss):
    """``nn.CrossEntropyLoss`` that gives 0 instead of NaN when every target pixel is ignored.

    Args:
        ignore_index: target value that contributes neither loss nor gradient.
        weight: optional per-class weights (length C), as in ``nn.CrossEntropyLoss``.
        reduction: "mean", "sum" or "none".
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, weight: torch.Tensor | None = None,
                 reduction: str = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"loss reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _sanitize_target(target, input.shape[1], self.ignore_index)
        loss = super().forward(input, target)
        if self.reduction != "mean":
            return loss
        any_valid = (target != self.ignore_index).any()
        # torch.where (not .item()) keeps this free of a host sync; the zero stays on the graph.
        return torch.where(any_valid, loss, input.sum() * 0.0)


class OhemCrossEntropyLoss(nn.Module):
    """Cross-entropy averaged over the hard pixels only (online hard example mining, Shrivastava et al., 2016).

    A pixel is hard when its loss exceeds ``-log(thresh)`` (its probability of the true class is below
    ``thresh``). When fewer than ``n_min = floor(min_kept * n_valid)`` pixels are hard, ``n_valid`` being the
    batch's non-ignored pixels, the mean is over the ``n_min`` largest losses instead; when nothing is kept
    (no hard pixel and ``n_min`` 0, e.g. an all-void batch) the loss is 0. This is CoinCheung/BiSeNet's
    ``OhemCELoss`` (``n_min = n_valid // 16``), how the BiSeNet reference implementations train on
    Cityscapes: the easy road and sky pixels stop dominating the gradient, so thin and rare classes are
    learned sooner.

    Args:
        thresh: probability below which a pixel counts as hard (0 < thresh < 1).
        min_kept: fraction of the batch's non-ignored pixels (0 < min_kept <= 1) always kept, the hardest
            first.
        ignore_index: target value that contributes neither loss nor gradient.
    """

    def __init__(self, thresh: float = 0.7, min_kept: float = 1 / 16, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if not 0.0 < thresh < 1.0:
            raise ConfigError(f"OHEM threshold must be in (0, 1), got {thresh}")
        if not 0.0 < min_kept <= 1.0:
            raise ConfigError(f"OHEM min_kept must be a fraction in (0, 1], got {min_kept}")
        self.loss_thresh = -math.log(thresh)
        self.min_kept = min_kept
        # n_min is counted on the device in integers, so 1/16 gives exactly the reference's n_valid // 16.
        ratio = Fraction(min_kept).limit_denominator(1 << 16)
        self._kept_num, self._kept_den = ratio.numerator, ratio.denominator
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _sanitize_target(target, input.shape[1], self.ignore_index)
        loss = F.cross_entropy(input, target, ignore_index=self.ignore_index, reduction="none").flatten()
        valid = target.flatten() != self.ignore_index
        n_min = torch.div(valid.sum() * self._kept_num, self._kept_den, rounding_mode="floor")
        hard = (loss > self.loss_thresh) & valid
        n_hard = hard.sum()
        # n_min is a device tensor (reading it would stall a GPU), so topk takes the bound that the shape
        # gives and the ranks past n_min are masked out. Ignored pixels have loss 0: they rank below every
        # valid pixel that has any loss, and n_min <= n_valid.
        bound = min(loss.numel(), loss.numel() * self._kept_num // self._kept_den)
        top = torch.topk(loss, bound, sorted=True).values
        in_top = torch.arange(bound, device=loss.device) < n_min
        # The clamps keep the branch torch.where does not take finite, so its gradient is 0, not NaN.
        top_mean = (top * in_top).sum() / n_min.clamp(min=1)
        hard_mean = (loss * hard).sum() / n_hard.clamp(min=1)
        zero = input.sum() * 0.0
        return torch.where(n_hard < n_min, top_mean, torch.where(n_hard > 0, hard_mean, zero))

    def extra_repr(self) -> str:
        return (f"thresh={math.exp(-self.loss_thresh):.3g}, min_kept={self.min_kept:.4g}, "
                f"ignore_index={self.ignore_index}")


class FocalLoss(nn.Module):
    """Focal loss on logits: ``-alpha_t * (1 - p_t) ** gamma * log(p_t)`` per pixel.

    Args:
        gamma: focusing parameter; 0 gives (weighted) cross-entropy exactly.
        alpha: optional per-class weights (length C). The mean is then weighted like ``F.cross_entropy``'s:
            sum of weighted losses divided by the sum of the weights of the counted pixels.
        ignore_index: target value that contributes neither loss nor gradient.
        reduction: "mean" (over non-ignored pixels), "sum" or "none" (an NHW map, 0 at ignored pixels).

    Computed in float32 from ``log_softmax`` (stable for any logit magnitude, also under autocast), with
    ``1 - p_t`` as ``-expm1(log p_t)`` so confident pixels keep their small loss instead of rounding to 0.
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | torch.Tensor | None = None,
                 ignore_index: int = IGNORE_INDEX, reduction: str = "mean") -> None:
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"focal loss gamma must be >= 0, got {gamma}")
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"loss reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        self.reduction = reduction
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.float32).flatten()
            if (alpha < 0).any():
                raise ConfigError("focal loss alpha weights must be >= 0")
        self.register_buffer("alpha", alpha, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        if self.alpha is not None and self.alpha.numel() != num_classes:
            raise ConfigError(f"focal loss alpha has {self.alpha.numel()} weights but the model predicts "
                              f"{num_classes} classes")
        target = _sanitize_target(target, num_classes, self.ignore_index)
        valid = target != self.ignore_index
        safe_target = torch.where(valid, target, 0).unsqueeze(1)
        logpt = F.log_softmax(logits.float(), dim=1).gather(1, safe_target).squeeze(1)
        loss = -logpt
        if self.gamma > 0:
            # clamp: for gamma < 1 the derivative of x**gamma is infinite at x = 0 (a pixel with p_t == 1).
            one_minus_pt = (-torch.expm1(logpt)).clamp(min=1e-12)
            loss = one_minus_pt.pow(self.gamma) * loss
        weight = valid.to(loss.dtype)
        if self.alpha is not None:
            weight = weight * self.alpha.to(loss.device)[safe_target.squeeze(1)]
        loss = loss * weight
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        # An all-ignored batch: 0 / tiny = 0, with a gradient path through ``loss``.
        return loss.sum() / weight.sum().clamp(min=torch.finfo(loss.dtype).tiny)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, ignore_index={self.ignore_index}, reduction={self.reduction!r}"


def build_seg_loss(name: str, ignore_index: int = IGNORE_INDEX, gamma: float = 2.0,
                   alpha: Sequence[float] | torch.Tensor | None = None) -> nn.Module:
    """The segmentation loss named by a step script's ``LOSS`` constant.

    Args:
        name: "ce" (cross-entropy), "ohem" (cross-entropy over hard pixels) or "focal" (case-insensitive).
        ignore_index: target value to ignore.
        gamma: focal loss focusing parameter (unused for "ce").
        alpha: optional per-class weights; for "ce" they are its ``weight``.
    """
    key = str(name).lower()
    if key == "ce":
        weight = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        return SafeCrossEntropyLoss(ignore_index=ignore_index, weight=weight)
    if key == "focal":
        return FocalLoss(gamma=gamma, alpha=alpha, ignore_index=ignore_index)
    if key == "ohem":
        if alpha is not None:
            raise ConfigError("class weights are not supported with the OHEM loss; use ce or focal")
        return OhemCrossEntropyLoss(ignore_index=ignore_index)
    raise ConfigError(f"unknown loss {name!r}; choose ce, ohem or focal")


class SegLosses(nn.Module):
    """The losses of a segmentation network's output: ``criterion`` on the main head and, weighted by
    ``aux_weight``, on each auxiliary head that training mode returns (BiSeNet's 1/16 and 1/32 context heads).

    Called as ``seg_loss(outputs, labels)``; returns ``{"loss_seg", "loss_aux16", "loss_aux32"}`` (the heads
    present), each computed in float32.
    """

    AUX_NAMES = ("loss_aux16", "loss_aux32")

    def __init__(self, criterion: nn.Module, aux_weight: float = 1.0) -> None:
        super().__init__()
        self.criterion, self.aux_weight = criterion, float(aux_weight)

    def forward(self, outputs, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        main, *aux = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        losses = {"loss_seg": self.criterion(main.float(), labels)}
        for name, out in zip(self.AUX_NAMES, aux):
            if out is not None:
                losses[name] = self.aux_weight * self.criterion(out.float(), labels)
        return losses


def class_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``-p log p`` per class and pixel, (N, C, H, W), in float32: summed over the classes, the entropy of each
    pixel's prediction (what ADVENT's self-information maps and MinEnt, and FDA's entropy penalty, are made of)."""
    logits = logits.float()
    return -(F.softmax(logits, dim=1) * F.log_softmax(logits, dim=1))
