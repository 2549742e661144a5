"""The one class table of the project: names, colours and id mappings of the 19 Cityscapes train classes.

Everything is derived from ``torchvision.datasets.Cityscapes.classes`` so nobody types the table again.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torchvision.datasets import Cityscapes as _TVCityscapes

IGNORE_INDEX = 255
NUM_CLASSES = 19

_TABLE = _TVCityscapes.classes
_TRAIN = sorted((c for c in _TABLE if 0 <= c.train_id < NUM_CLASSES), key=lambda c: c.train_id)
assert [c.train_id for c in _TRAIN] == list(range(NUM_CLASSES))

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in _TRAIN)
"""Names of the 19 train classes, indexed by train id."""

PALETTE = np.array([c.color for c in _TRAIN], dtype=np.uint8)
"""(19, 3) RGB colour of each train class."""

# A label id outside the table (e.g. a GTA5 id that Cityscapes does not define) maps to ignore.
ID_TO_TRAINID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _c in _TABLE:
    if 0 <= _c.id < 256 and 0 <= _c.train_id < NUM_CLASSES:
        ID_TO_TRAINID[_c.id] = _c.train_id

LABEL_ID_PALETTE = np.zeros((256, 3), dtype=np.uint8)
"""RGB colour of every Cityscapes label id: the palette of GTA5's P-mode label PNGs."""
for _c in _TABLE:
    if 0 <= _c.id < 256:
        LABEL_ID_PALETTE[_c.id] = _c.color

# Train id -> a label id that maps back to it (the first one in the table), for writing labelIds files.
TRAINID_TO_ID = np.zeros(256, dtype=np.uint8)
for _c in reversed(_TRAIN):
    TRAINID_TO_ID[_c.train_id] = _c.id
VOID_ID = 0  # 'unlabeled'


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@functools.lru_cache(maxsize=1)
def color_lut() -> np.ndarray:
    """A 2**24 table packed RGB -> train id; unknown colours -> 255.

    Built from the 19 train classes only: in the full table polegroup shares pole's colour and license
    plate shares car's, and a last-one-wins build would send those pixels to ignore or to -1.
    """
    lut = np.full(1 << 24, IGNORE_INDEX, dtype=np.uint8)
    lut[_pack(PALETTE)] = np.arange(NUM_CLASSES, dtype=np.uint8)
    return lut


def ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map Cityscapes label ids (uint8 array, any shape) to train ids with 255 for ignore."""
    return ID_TO_TRAINID[label_ids]


def colors_to_train_ids(rgb: np.ndarray) -> np.ndarray:
    """Map an HxWx3 uint8 colour label to HxW train ids; colours outside the 19 classes become 255."""
    return color_lut()[_pack(rgb)]


def sanitize_train_ids(train_ids: np.ndarray) -> np.ndarray:
    """Values outside 0..18 become 255, so nothing out of range ever reaches a loss."""
    out = train_ids.astype(np.uint8, copy=True)
    out[out >= NUM_CLASSES] = IGNORE_INDEX
    return out


def colorize(train_ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """HxW train ids -> HxWx3 uint8 RGB in the Cityscapes colours; ignore is black."""
    if isinstance(train_ids, torch.Tensor):
        train_ids = train_ids.cpu().numpy()
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    return lut[train_ids.astype(np.uint8)]
