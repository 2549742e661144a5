"""The synthetic two-domain world: procedural street scenes written as a GTA5-like source and a Cityscapes-like target.

Real Cityscapes and GTA5 cannot be downloaded everywhere, yet every experiment must run end to end and the
tests need data with a genuine domain shift. This package draws street scenes in all 19 Cityscapes train
classes (plus void regions that map to ignore) and writes them in the real on-disk formats:

- ``OUT/GTA5/images/NNNNN.png`` (RGB) and ``OUT/GTA5/labels/NNNNN.png`` (P-mode, Cityscapes label ids, the
  Cityscapes palette), exactly like the original GTA5 release;
- ``OUT/Cityscapes/leftImg8bit/{train,val}/CITY/CITY_SEQ_FRAME_leftImg8bit.png`` and
  ``OUT/Cityscapes/gtFine/{train,val}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png`` (L-mode label ids), the
  official Cityscapes layout.

Both domains share one scene grammar (geometry, object placement, class semantics) so a model trained on one
transfers partly to the other. They differ as GTA5 and Cityscapes do (docs/synthetic_world.md gives the sources):
per class and per material (pavers, foliage, dry grass, facades, car paint, road paint), in the conditions each
image is taken in (weather, time of day, light, exposure: a mixture in each domain, drawn image by image), in how
pixels are made (the game's crisp textures, filmic curve and bloom; the car camera's lens and motion blur, noise
and per-image logarithmic tone curve), and in camera height, horizon, object scale and the bonnet. ``shift``
interpolates the source style from the target's (0: identical distributions) to the GTA-like one (1, the
default); the target never changes. Every image is drawn from its own RNG seeded with (seed, domain, split,
index), so parallel generation is byte-identical to serial.

Modules: ``style`` (the domains' styles, materials, textures), ``conditions`` (one image's weather and light),
``canvas`` (camera and rasteriser), ``street`` (layout), ``ground``, ``roadside``, ``objects`` and ``placement``
(what is drawn), ``finish`` (lighting and the camera or renderer), ``scene`` (one image: ``render``), ``world``
(files, manifest, reuse), ``cli``.

Usage: ``python -m datasets.synthetic --out data/synthetic`` (reuses a world whose manifest matches).
"""
from __future__ import annotations

from .conditions import Conditions
from .ids import ID
from .scene import render
from .style import GTA_STYLE, TARGET_STYLE, Style, domain_style
from .world import (DEFAULTS, FRAME, GENERATOR, GENERATOR_VERSION, IDENTITY_KEYS, MAX_SHIFT, MIN_SIZE,
                    TRAIN_CITIES, VAL_CITIES, WORLD_PRESETS, demo_world, ensure_world, generate, world_status)

__all__ = [
    "Conditions", "DEFAULTS", "FRAME", "GENERATOR", "GENERATOR_VERSION", "GTA_STYLE", "ID", "IDENTITY_KEYS",
    "MAX_SHIFT", "MIN_SIZE", "Style", "TARGET_STYLE", "TRAIN_CITIES", "VAL_CITIES", "WORLD_PRESETS",
    "demo_world", "domain_style", "ensure_world", "generate", "render", "world_status",
]
