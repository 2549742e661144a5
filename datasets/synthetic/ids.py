"""Label ids of every region the scenes draw, by Cityscapes class name.

The 19 train classes are written through ``labels.TRAINID_TO_ID``; void regions use real Cityscapes ids whose
train id is ignore, looked up by name in the same torchvision table ``datasets.labels`` is built from, so a
model sees the id -> train id mapping exercised exactly as on real data.
"""
from __future__ import annotations

from torchvision.datasets import Cityscapes as _TVCityscapes

from datasets import labels

TRAIN_ID = {name: i for i, name in enumerate(labels.CLASS_NAMES)}
_TABLE_ID = {c.name: c.id for c in _TVCityscapes.classes if 0 <= c.id < 256}
VOID_NAMES = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground",
    "parking", "rail track", "guard rail", "bridge", "caravan", "trailer",
)


def _label_id(name: str) -> int:
    if name in TRAIN_ID:
        return int(labels.TRAINID_TO_ID[TRAIN_ID[name]])
    lid = _TABLE_ID[name]
    assert labels.ID_TO_TRAINID[lid] == labels.IGNORE_INDEX, name
    return lid


ID = {name: _label_id(name) for name in (*labels.CLASS_NAMES, *VOID_NAMES)}
"""Cityscapes label id of each drawable region, by class name."""
