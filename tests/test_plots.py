"""Figures: confusion matrix and qualitative grid write real PNGs with what they claim to show."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from utils.classes import CLASS_NAMES, IGNORE_INDEX, PALETTE
from utils.data import spread_indices
from utils.engine import Env
from utils.metrics import ConfusionMatrix
from utils.plots import ERROR_RGB, IGNORE_RGB, error_map, plot_confusion_matrix, plot_qualitative, row_normalize

ROAD, SKY = 0, CLASS_NAMES.index("sky")


def _rgb(path: Path) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 0
    return np.asarray(Image.open(path).convert("RGB"))


def _has_colour(img: np.ndarray, rgb) -> bool:
    return bool((img.reshape(-1, 3) == np.asarray(rgb, np.uint8)).all(axis=1).any())


def test_row_normalize() -> None:
    m = torch.tensor([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    n = row_normalize(m)
    np.testing.assert_allclose(n[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(n[2], [0.25, 0.25, 0.5])
    assert np.isnan(n[1]).all()  # a class without ground-truth pixels has no recall


def test_plot_confusion_matrix(tmp_path: Path) -> None:
    cm = ConfusionMatrix(num_classes=19)
    target = torch.tensor([ROAD] * 50 + [SKY] * 30 + [2] * 20)
    pred = target.clone()
    pred[80:90] = ROAD  # half of class 2 called road; road and sky are all right
    cm.update(pred=pred, target=target)
    img = _rgb(plot_confusion_matrix(cm, tmp_path / "cm.png"))
    h, w = img.shape[:2]
    assert w >= 1000 and h >= 900, "19 class names on both axes need a large figure"
    assert _has_colour(img, [8, 48, 107])  # Blues at 100%: the road and sky diagonal cells
    assert _has_colour(img, [238, 238, 238])  # rows of classes absent from the ground truth

    small = _rgb(plot_confusion_matrix([[5, 1, 0], [0, 4, 0], [1, 1, 8]], tmp_path / "cm3.png",
                                       class_names=["a", "b", "c"]))
    assert small.shape[0] < h and small.shape[1] < w
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(torch.zeros(3, 3), tmp_path / "x.png", class_names=["a"])


def test_spread_indices() -> None:
    # int(i * n / k) for i < k: the first index is 0, the last need not be n - 1.
    assert spread_indices(10, 4) == [0, 2, 5, 7]
    assert spread_indices(500, 4) == [0, 125, 250, 375]
    assert spread_indices(7, 3) == [0, 2, 4]
    assert spread_indices(2, 4) == [0, 1]  # k >= n: all of them
    assert spread_indices(5, 0) == [0, 1, 2, 3, 4]  # k <= 0: all of them
    assert spread_indices(0, 4) == []


def test_error_map() -> None:
    image = np.full((2, 3, 3), 200, np.uint8)
    target = np.array([[ROAD, ROAD, IGNORE_INDEX], [SKY, SKY, SKY]])
    pred = np.array([[ROAD, SKY, SKY], [SKY, ROAD, SKY]])
    out = error_map(image, target, pred)
    assert (out[0, 1] == ERROR_RGB).all() and (out[1, 1] == ERROR_RGB).all()
    assert (out[0, 2] == IGNORE_RGB).all()
    right = out[[0, 1, 1], [0, 0, 2]]
    assert (right == right[0]).all() and right[0, 0] < 128 and right[0, 0] == right[0, 1]  # dimmed grey


class _HalfSky(nn.Module):
    """Stand-in model: sky where the red channel is bright, road elsewhere (uint8 NCHW -> logits)."""

    spec = {"arch": "stand-in", "num_classes": 19}

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8 and not self.training
        sky = (x[:, 0] > 127).float()
        logits = torch.zeros(x.shape[0], 19, *x.shape[-2:])
        logits[:, SKY] = sky
        logits[:, ROAD] = 1 - sky
        return logits


def _dataset(n: int, h: int = 64, w: int = 128) -> list:
    items = []
    for _ in range(n):
        image = torch.zeros(3, h, w, dtype=torch.uint8)
        image[0, :, w // 2:] = 255  # the model calls the right half sky
        label = torch.full((h, w), ROAD, dtype=torch.long)
        label[: h // 4, : w // 4] = IGNORE_INDEX
        items.append((image, label))
    return items


def test_plot_qualitative(tmp_path: Path) -> None:
    model = _HalfSky().train()
    env = Env(device=torch.device("cpu"), amp_dtype=None, channels_last=False)
    data = _dataset(6)
    img4 = _rgb(plot_qualitative(model, data, [0, 2, 3, 5], env, tmp_path / "q4.png"))
    assert model.training, "the model's mode is restored"
    for colour in (PALETTE[ROAD], PALETTE[SKY], ERROR_RGB, IGNORE_RGB):
        assert _has_colour(img4, colour)
    h4, w4 = img4.shape[:2]
    assert w4 >= 4 * 128  # four panels at least at the images' resolution
    img2 = _rgb(plot_qualitative(model, data, [0, 5], env, tmp_path / "q2.png"))
    assert img2.shape[1] == w4 and h4 - img2.shape[0] >= 2 * 64  # one more row per image

    big = _dataset(1, 96, 512)
    wide = _rgb(plot_qualitative(model, big, [0], None, tmp_path / "big.png"))
    capped = _rgb(plot_qualitative(model, big, [0], None, tmp_path / "capped.png", max_size=128))
    assert wide.shape[1] >= 4 * 512 and capped.shape[1] < 4 * 128 * 1.5  # max_size caps each panel
