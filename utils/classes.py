"""The one class table of the project: the 19 Cityscapes train classes, their names and colours.

Everything is derived from ``torchvision.datasets.Cityscapes.classes`` so nobody types the table again.
This is pure data for every layer (metrics, losses, figures, datasets); the label-id mappings built on it
live in ``datasets.labels``.
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.datasets import Cityscapes as _TVCityscapes

IGNORE_INDEX = 255
NUM_CLASSES = 19

TABLE = _TVCityscapes.classes
"""Every Cityscapes class (name, id, train_id, category, ..., color), as torchvision defines them."""

TRAIN_CLASSES = tuple(sorted((c for c in TABLE if 0 <= c.train_id < NUM_CLASSES), key=lambda c: c.train_id))
"""The table's entries of the 19 train classes, indexed by train id."""
assert [c.train_id for c in TRAIN_CLASSES] == list(range(NUM_CLASSES))

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in TRAIN_CLASSES)
"""Names of the 19 train classes, indexed by train id."""

PALETTE = np.array([c.color for c in TRAIN_CLASSES], dtype=np.uint8)
"""(19, 3) RGB colour of each train class."""


def colorize(train_ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """HxW train ids -> HxWx3 uint8 RGB in the Cityscapes colours; ignore is black."""
    if isinstance(train_ids, torch.Tensor):
        train_ids = train_ids.cpu().numpy()
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    return lut[train_ids.astype(np.uint8)]
