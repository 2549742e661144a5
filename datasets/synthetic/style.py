"""What the two domains look like: per-class colours and textures, and the style that tells them apart.

Both domains share one scene grammar; they differ by a ``Style`` (colour offsets, texture strength, lighting,
haze, sensor noise and blur, camera height, horizon and object scale). The source style lies ``shift`` of
the way from the target's to the GTA-like one.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from utils.errors import ConfigError

from .ids import ID, TRAIN_ID

# RGB 0..255. Palettes give the target-domain (Cityscapes-like) look of each class; the source adds
# SOURCE_OFFSET scaled by the style, on top of its global grading.
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "road": ((98, 98, 104), (112, 110, 114), (86, 88, 94), (120, 116, 112)),
    "sidewalk": ((156, 146, 146), (140, 138, 140), (170, 160, 150), (150, 130, 128)),
    "building": ((168, 156, 138), (192, 186, 172), (124, 114, 104), (150, 96, 78), (206, 204, 198),
                 (112, 116, 122), (176, 150, 120)),
    "wall": ((172, 168, 158), (132, 124, 114), (150, 150, 146)),
    "fence": ((122, 116, 104), (92, 102, 92), (140, 130, 110)),
    "pole": ((112, 112, 112), (72, 82, 76), (136, 136, 132)),
    "traffic light": ((42, 42, 38), (58, 60, 56)),
    "traffic sign": ((200, 34, 34), (34, 74, 172), (232, 204, 46), (226, 226, 222)),
    "vegetation": ((70, 96, 46), (58, 84, 40), (86, 108, 52), (64, 92, 58)),
    "terrain": ((122, 134, 82), (136, 132, 90), (108, 126, 72)),
    "sky": ((132, 166, 204), (176, 192, 210), (206, 212, 218)),
    "person": ((40, 40, 46), (52, 62, 92), (150, 40, 44), (210, 206, 200), (96, 80, 64), (70, 90, 70)),
    "rider": ((36, 36, 42), (60, 66, 96), (176, 60, 40), (200, 196, 190)),
    "car": ((30, 30, 34), (212, 212, 212), (160, 164, 170), (98, 100, 106), (30, 42, 92), (150, 32, 32),
            (40, 80, 140), (120, 110, 90)),
    "truck": ((226, 226, 222), (176, 180, 184), (40, 70, 130), (150, 40, 36)),
    "bus": ((222, 214, 186), (200, 180, 60), (180, 40, 40), (226, 226, 226)),
    "train": ((196, 40, 40), (40, 90, 170), (224, 224, 216)),
    "motorcycle": ((34, 34, 38), (170, 30, 30), (30, 50, 120)),
    "bicycle": ((30, 30, 32), (110, 20, 30), (60, 70, 80)),
    # void regions (label ids that map to ignore)
    "ego vehicle": ((44, 46, 50), (70, 72, 78)),
    "parking": ((120, 116, 116), (104, 104, 108)),
    "rail track": ((112, 100, 86), (96, 90, 82)),
    "ground": ((132, 110, 84), (118, 104, 88)),
    "static": ((72, 88, 72), (96, 96, 100), (120, 96, 70)),
    "dynamic": ((60, 90, 60), (40, 60, 110), (140, 120, 60)),
    "guard rail": ((168, 170, 172),),
    "bridge": ((150, 146, 140), (126, 120, 114)),
    "caravan": ((226, 222, 206), (212, 206, 190)),
    "trailer": ((170, 170, 168), (120, 112, 100)),
}
JITTER = {  # per-object colour standard deviation
    "road": 6, "sidewalk": 8, "building": 14, "wall": 10, "fence": 10, "pole": 8, "traffic light": 6,
    "traffic sign": 8, "vegetation": 9, "terrain": 10, "sky": 8, "person": 14, "rider": 14, "car": 12,
    "truck": 12, "bus": 10, "train": 10, "motorcycle": 12, "bicycle": 10,
}
# GTA-like source: warmer, more saturated materials, deeper blue sky, yellower foliage.
SOURCE_OFFSET = {
    "road": (4, 0, -6), "sidewalk": (14, 6, -4), "building": (14, 4, -8), "wall": (12, 4, -6),
    "fence": (12, 4, -6), "pole": (-10, -8, -4), "traffic light": (8, 6, -6), "traffic sign": (10, 0, -6),
    "vegetation": (0, 14, -8), "terrain": (20, 16, -14), "sky": (-36, -8, 28), "person": (10, 2, -4),
    "rider": (12, 0, -6), "car": (8, 0, -6), "truck": (10, 4, -6), "bus": (12, 8, -10),
    "train": (12, 0, -8), "motorcycle": (12, 0, -4), "bicycle": (12, 0, -4),
}
SOURCE_OFFSET_ARR = {k: np.asarray(v, np.float64) for k, v in SOURCE_OFFSET.items()}
assert set(TRAIN_ID) <= set(PALETTES) and set(TRAIN_ID) == set(JITTER) == set(SOURCE_OFFSET)

# Texture amplitude per class: fine grain (per pixel) and blotches (low frequency), before the style's gain.
_TEXTURE = {
    "road": (0.05, 0.06), "sidewalk": (0.04, 0.05), "building": (0.025, 0.06), "wall": (0.05, 0.09),
    "fence": (0.04, 0.05), "pole": (0.02, 0.02), "traffic light": (0.02, 0.0), "traffic sign": (0.015, 0.0),
    "vegetation": (0.2, 0.28), "terrain": (0.13, 0.16), "sky": (0.0, 0.0), "person": (0.03, 0.02),
    "rider": (0.03, 0.02), "car": (0.015, 0.02), "truck": (0.02, 0.03), "bus": (0.015, 0.03),
    "train": (0.015, 0.03), "motorcycle": (0.02, 0.02), "bicycle": (0.02, 0.0), "ground": (0.1, 0.12),
    "parking": (0.05, 0.06), "rail track": (0.14, 0.1), "static": (0.04, 0.04), "dynamic": (0.04, 0.04),
    "bridge": (0.05, 0.08), "guard rail": (0.02, 0.02),
}
# Per-label-id lookup tables, so the finishing pass textures a whole image with one indexing each.
FINE_LUT = np.zeros(256, np.float32)
BLOTCH_LUT = np.zeros(256, np.float32)
GROUND_LUT = np.zeros(256, bool)
GROUND_LUT[[ID[n] for n in ("road", "sidewalk", "terrain", "parking", "ground", "rail track")]] = True
for _name, (_fine, _blotch) in _TEXTURE.items():
    FINE_LUT[ID[_name]], BLOTCH_LUT[ID[_name]] = _fine, _blotch


@dataclass(frozen=True)
class Style:
    """Everything that differs between the domains. The source style is a blend target -> GTA by ``shift``."""

    horizon: float  # horizon row / image height
    cam_height: float  # metres
    obj_scale: float  # size multiplier of people, vehicles, poles, trees
    saturation: float
    contrast: float
    tint: tuple[float, float, float]
    brightness: float
    class_offset: float  # weight of SOURCE_OFFSET
    texture: float  # texture amplitude gain
    sun: float  # probability of direct sunlight
    shadow: float  # darkness of cast shadows in sunlight
    haze: float  # aerial-perspective strength
    noise: float  # sensor noise sigma (8-bit units)
    blur: float  # optical blur (Gaussian sigma) in pixels at width 512
    bonnet: float  # ego-vehicle bonnet height / image height


TARGET_STYLE = Style(
    horizon=0.45, cam_height=1.3, obj_scale=1.0, saturation=0.8, contrast=0.9, tint=(0.97, 1.0, 1.05),
    brightness=0.95, class_offset=0.0, texture=1.0, sun=0.35, shadow=0.35, haze=0.35, noise=3.5, blur=0.8,
    bonnet=0.09,
)
GTA_STYLE = Style(
    horizon=0.40, cam_height=1.7, obj_scale=1.12, saturation=1.15, contrast=1.1, tint=(1.04, 1.0, 0.94),
    brightness=1.06, class_offset=1.0, texture=1.45, sun=0.8, shadow=0.5, haze=0.12, noise=1.0, blur=0.0,
    bonnet=0.04,
)


def domain_style(domain: str, shift: float = 1.0) -> Style:
    """The style of ``domain`` ("source" or "target"): the source lies ``shift`` of the way target -> GTA."""
    if domain == "target":
        return TARGET_STYLE
    if domain != "source":
        raise ConfigError(f"unknown domain {domain!r}: use 'source' or 'target'")
    values = {}
    for fld in fields(Style):
        a, b = getattr(TARGET_STYLE, fld.name), getattr(GTA_STYLE, fld.name)
        if isinstance(a, tuple):
            values[fld.name] = tuple(x + shift * (y - x) for x, y in zip(a, b))
        else:
            values[fld.name] = a + shift * (b - a)
    # extrapolating beyond GTA (shift > 1) must not produce impossible values
    values["sun"] = min(max(values["sun"], 0.0), 1.0)
    for key in ("noise", "blur", "bonnet", "haze"):
        values[key] = max(values[key], 0.0)
    return Style(**values)
