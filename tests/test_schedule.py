"""Poly LR: hand values, lr_mult groups, no compounding."""
from __future__ import annotations

import pytest
import torch

from utils.schedule import poly_lr, set_poly_lr


def test_poly_lr_hand_values():
    assert poly_lr(0.01, 0, 100) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.005358867312681466)  # 0.01 * 0.5 ** 0.9
    assert poly_lr(0.01, 99, 100) == pytest.approx(0.00015848931924611134)  # 0.01 * 0.01 ** 0.9
    assert poly_lr(0.01, 100, 100) == 0.0
    assert poly_lr(0.01, 25, 100, power=1.0) == pytest.approx(0.0075)


def test_poly_lr_clamps_iteration():
    assert poly_lr(0.01, 150, 100) == 0.0
    assert poly_lr(0.01, -3, 100) == pytest.approx(0.01)
    assert poly_lr(0.01, 0, 0) == 0.01  # nothing to train: no decay, no division by zero
    with pytest.raises(ValueError):
        poly_lr(0.01, 0, -1)


def _optimizer():
    backbone, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    return torch.optim.SGD([{"params": backbone.parameters()},
                            {"params": head.parameters(), "lr_mult": 10.0}], lr=123.0, momentum=0.9)


def test_set_poly_lr_groups():
    opt = _optimizer()
    lr = set_poly_lr(opt, 2.5e-4, 50, 100)
    assert lr == pytest.approx(2.5e-4 * 0.5 ** 0.9)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr)
    assert opt.param_groups[1]["lr"] == pytest.approx(10 * lr)


def test_not_compounded():
    opt = _optimizer()
    first = set_poly_lr(opt, 0.01, 30, 100)
    second = set_poly_lr(opt, 0.01, 30, 100)
    assert first == second == opt.param_groups[0]["lr"]
    assert opt.param_groups[1]["lr"] == pytest.approx(10 * first)
    # Stepping through every iteration ends where the formula says, not at a compounded value.
    for it in range(61):
        set_poly_lr(opt, 0.01, it, 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.4 ** 0.9)
