"""The one home of the poly learning-rate schedule.

``lr = base * (1 - it / max_it) ** power`` is always computed from the base rate. Computing it from the
optimizer's *current* rate compounds the decay (a known trap): after a few hundred iterations the
rate is near zero. The segmentation net and the discriminator each call this with their own base rate.
"""
from __future__ import annotations

import torch

__all__ = ["poly_lr", "set_poly_lr"]


def poly_lr(base_lr: float, it: int, max_it: int, power: float = 0.9) -> float:
    """Poly rate at iteration ``it`` of ``max_it`` (``it`` is clamped to [0, max_it]; 0 at the end).

    ``max_it == 0`` (a run with nothing to train, e.g. evaluation only) gives the base rate.
    """
    if max_it < 0:
        raise ValueError(f"max_it must be >= 0, got {max_it}")
    if max_it == 0:
        return float(base_lr)
    it = min(max(it, 0), max_it)
    return float(base_lr) * (1.0 - it / max_it) ** power


def set_poly_lr(optimizer: torch.optim.Optimizer, base_lr: float, it: int, max_it: int,
                power: float = 0.9) -> float:
    """Set every param group's lr to ``base_lr * group.get("lr_mult", 1.0) * factor``; return the base lr now.

    ``lr_mult`` lets a group (e.g. DeepLab's classifier head, 10x) follow the same schedule at a multiple.
    """
    lr = poly_lr(base_lr, it, max_it, power)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    return lr
