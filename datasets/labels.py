"""Label-id mappings of the Cityscapes class table: label ids, colours and train ids to and from each other.

The table itself (names, colours, ignore index) lives in ``utils.classes`` and is re-exported here, so
``from datasets.labels import CLASS_NAMES`` keeps working; the lookup tables below are built from it.
"""
from __future__ import annotations

import functools

import numpy as np

from utils.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE, TABLE, TRAIN_CLASSES, colorize

__all__ = [
    "CLASS_NAMES", "IGNORE_INDEX", "NUM_CLASSES", "PALETTE", "colorize",
    "ID_TO_TRAINID", "LABEL_ID_PALETTE", "TRAINID_TO_ID",
    "color_lut", "ids_to_train_ids", "colors_to_train_ids", "sanitize_train_ids",
]

# A label id outside the table (e.g. a GTA5 id that Cityscapes does not define) maps to ignore.
ID_TO_TRAINID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _c in TABLE:
    if 0 <= _c.id < 256 and 0 <= _c.train_id < NUM_CLASSES:
        ID_TO_TRAINID[_c.id] = _c.train_id

LABEL_ID_PALETTE = np.zeros((256, 3), dtype=np.uint8)
"""RGB colour of every Cityscapes label id: the palette of GTA5's P-mode label PNGs."""
for _c in TABLE:
    if 0 <= _c.id < 256:
        LABEL_ID_PALETTE[_c.id] = _c.color

# Train id -> a label id that maps back to it (the first one in the table), for writing labelIds files.
TRAINID_TO_ID = np.zeros(256, dtype=np.uint8)
for _c in reversed(TRAIN_CLASSES):
    TRAINID_TO_ID[_c.train_id] = _c.id


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
