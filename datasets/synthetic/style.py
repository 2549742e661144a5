"""What the two domains look like: per-class materials, per-class textures, the conditions images are taken in,
and the camera or renderer that turns a lit scene into pixels.

Both domains share one scene grammar; a ``Style`` holds everything that tells them apart. The source style lies
``shift`` of the way from the target's (Cityscapes-like) to the GTA-like one, field by field: ``material``
moves every class colour from its target palette entry to its GTA entry, ``texture_style`` moves every class's
texture amplitudes from the target's table to the GTA table, and the condition probabilities, the tone curve,
bloom, blur, noise and geometry are interpolated likewise. docs/synthetic_world.md says why each differs.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np

from utils.errors import ConfigError

from .ids import ID, TRAIN_ID

Palette = tuple[tuple[int, int, int], ...]

# RGB 0..255: each class's materials as a Cityscapes-like camera records them (grey paving, dull greens, muted
# facades, mostly achromatic cars, overcast skies).
TARGET_PALETTES: dict[str, Palette] = {
    "road": ((100, 100, 104), (112, 110, 112), (90, 92, 96), (118, 114, 110)),
    "sidewalk": ((130, 130, 130), (120, 120, 124), (140, 138, 134), (106, 106, 110)),  # the last: asphalt
    "building": ((164, 156, 144), (188, 184, 176), (126, 120, 114), (148, 120, 106), (202, 200, 194),
                 (112, 116, 122), (166, 152, 134)),
    "wall": ((164, 162, 156), (130, 124, 116), (148, 148, 144)),
    "fence": ((118, 116, 108), (92, 100, 94), (136, 130, 118)),
    "pole": ((112, 112, 112), (74, 80, 76), (136, 136, 132)),
    "traffic light": ((42, 42, 38), (58, 60, 56)),
    "traffic sign": ((196, 40, 40), (40, 76, 166), (226, 200, 54), (222, 222, 218)),
    "vegetation": ((58, 78, 46), (50, 68, 42), (72, 88, 56), (62, 76, 58)),
    "terrain": ((90, 108, 64), (104, 110, 80), (80, 100, 58)),
    "sky": ((140, 168, 200), (178, 190, 206), (204, 208, 214)),  # clear, hazy, overcast
    "person": ((40, 40, 46), (52, 62, 92), (146, 44, 46), (206, 202, 196), (96, 80, 66), (70, 86, 72)),
    "rider": ((36, 36, 42), (60, 66, 94), (168, 62, 44), (198, 194, 188)),
    "car": ((32, 32, 36), (206, 206, 206), (160, 162, 166), (98, 100, 106), (40, 46, 72), (122, 34, 34),
            (62, 72, 92), (122, 118, 110)),
    "truck": ((222, 222, 218), (174, 178, 182), (44, 70, 126), (146, 44, 40)),
    "bus": ((218, 212, 188), (196, 178, 66), (176, 44, 44), (222, 222, 222)),
    "train": ((190, 46, 44), (44, 90, 164), (220, 220, 212)),
    "motorcycle": ((34, 34, 38), (164, 34, 34), (34, 52, 116)),
    "bicycle": ((30, 30, 32), (108, 24, 32), (60, 70, 80)),
}
# The same materials as GTA V renders them (paired entry by entry): warm, saturated pavers, yellow-green
# foliage, sun-dried grass, colourful stucco, deep blue skies, glossy saturated car paint, dark clean asphalt.
GTA_PALETTES: dict[str, Palette] = {
    "road": ((76, 76, 80), (88, 86, 90), (68, 68, 72), (96, 92, 88)),
    "sidewalk": ((246, 170, 102), (224, 136, 76), (255, 218, 142), (222, 130, 82)),
    "building": ((240, 176, 100), (255, 228, 160), (170, 88, 46), (224, 88, 46), (58, 124, 122),
                 (120, 132, 182), (255, 160, 78)),
    "wall": ((244, 190, 104), (174, 92, 44), (220, 192, 148)),
    "fence": ((186, 120, 44), (60, 148, 58), (208, 150, 54)),
    "pole": ((90, 90, 98), (56, 68, 60), (112, 112, 120)),
    "traffic light": ((34, 36, 30), (70, 62, 30)),
    "traffic sign": ((222, 28, 28), (20, 70, 204), (250, 210, 28), (240, 240, 236)),
    "vegetation": ((102, 146, 34), (86, 132, 26), (120, 160, 40), (90, 144, 58)),
    "terrain": ((255, 196, 116), (204, 154, 76), (255, 228, 142)),
    "sky": ((64, 128, 222), (116, 168, 230), (178, 186, 198)),
    "person": ((40, 40, 50), (38, 70, 146), (196, 38, 38), (232, 228, 214), (134, 90, 48), (56, 124, 56)),
    "rider": ((34, 34, 44), (40, 66, 150), (214, 66, 30), (226, 220, 206)),
    "car": ((20, 20, 24), (232, 232, 232), (188, 28, 28), (28, 60, 176), (226, 184, 36), (36, 146, 60),
            (210, 92, 28), (150, 152, 164)),
    "truck": ((236, 236, 230), (190, 196, 204), (28, 70, 170), (190, 36, 30)),
    "bus": ((236, 220, 170), (226, 196, 40), (206, 36, 36), (240, 240, 240)),
    "train": ((218, 36, 34), (30, 92, 204), (236, 236, 226)),
    "motorcycle": ((30, 30, 36), (206, 28, 28), (24, 50, 156)),
    "bicycle": ((28, 28, 32), (150, 18, 30), (40, 70, 110)),
}
# Void regions (label ids that map to ignore) look the same in both domains.
VOID_PALETTES: dict[str, Palette] = {
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
# Turned leaves and faded grass of an autumn picture (the target's recordings span spring to autumn).
AUTUMN = {"vegetation": np.asarray([(168, 120, 46), (150, 92, 40), (182, 148, 60), (120, 92, 52)], np.float32),
          "terrain": np.asarray([(140, 128, 80), (128, 116, 76)], np.float32)}
JITTER = {  # per-object colour standard deviation
    "road": 6, "sidewalk": 8, "building": 14, "wall": 10, "fence": 10, "pole": 8, "traffic light": 6,
    "traffic sign": 8, "vegetation": 9, "terrain": 10, "sky": 8, "person": 14, "rider": 14, "car": 12,
    "truck": 12, "bus": 10, "train": 10, "motorcycle": 12, "bicycle": 10,
}
_T = {k: np.asarray(v, np.float32) for k, v in TARGET_PALETTES.items()}
_G = {k: np.asarray(v, np.float32) for k, v in GTA_PALETTES.items()}
_V = {k: np.asarray(v, np.float32) for k, v in VOID_PALETTES.items()}
assert set(TRAIN_ID) == set(TARGET_PALETTES) == set(GTA_PALETTES) == set(JITTER)
assert all(_T[k].shape == _G[k].shape for k in _T), "GTA palettes pair with the target's entry by entry"


@functools.lru_cache(maxsize=256)
def palette(name: str, material: float) -> np.ndarray:
    """(n, 3) RGB 0..255 of class ``name``: its target palette moved ``material`` of the way to GTA's (shared:
    never modify it)."""
    if name in _V:
        return _V[name]
    t = _T[name]
    return t + np.float32(material) * (_G[name] - t)


# Texture amplitude per class at three scales (fine: per pixel; mid: a few pixels, grain and leaves; coarse:
# stains, patches, clumps), before lighting. GTA's game textures are crisp and busy at fine and mid scales
# and uniform at large ones; a real camera sees weathered materials: patches and stains, little crisp grain.
_TARGET_TEXTURE = {
    "road": (0.03, 0.03, 0.08), "sidewalk": (0.03, 0.03, 0.06), "building": (0.02, 0.03, 0.04),
    "wall": (0.03, 0.04, 0.05), "fence": (0.03, 0.03, 0.03), "pole": (0.02, 0.01, 0.01),
    "traffic light": (0.02, 0.0, 0.0), "traffic sign": (0.01, 0.0, 0.0), "vegetation": (0.10, 0.20, 0.14),
    "terrain": (0.07, 0.08, 0.10), "sky": (0.0, 0.0, 0.0), "person": (0.02, 0.02, 0.01),
    "rider": (0.02, 0.02, 0.01), "car": (0.01, 0.01, 0.01), "truck": (0.02, 0.02, 0.02),
    "bus": (0.01, 0.01, 0.02), "train": (0.01, 0.01, 0.02), "motorcycle": (0.02, 0.01, 0.01),
    "bicycle": (0.02, 0.0, 0.0),
}
_GTA_TEXTURE = {
    "road": (0.07, 0.05, 0.02), "sidewalk": (0.06, 0.12, 0.02), "building": (0.04, 0.09, 0.015),
    "wall": (0.06, 0.12, 0.02), "fence": (0.05, 0.06, 0.01), "pole": (0.03, 0.02, 0.01),
    "traffic light": (0.02, 0.0, 0.0), "traffic sign": (0.02, 0.0, 0.0), "vegetation": (0.18, 0.30, 0.07),
    "terrain": (0.16, 0.24, 0.04), "sky": (0.0, 0.0, 0.0), "person": (0.04, 0.03, 0.01),
    "rider": (0.04, 0.03, 0.01), "car": (0.02, 0.02, 0.01), "truck": (0.03, 0.03, 0.01),
    "bus": (0.02, 0.02, 0.01), "train": (0.02, 0.02, 0.01), "motorcycle": (0.03, 0.02, 0.01),
    "bicycle": (0.03, 0.0, 0.0),
}
_VOID_TEXTURE = {
    "ground": (0.1, 0.08, 0.08), "parking": (0.05, 0.04, 0.04), "rail track": (0.14, 0.08, 0.07),
    "static": (0.04, 0.03, 0.03), "dynamic": (0.04, 0.03, 0.03), "bridge": (0.05, 0.04, 0.05),
    "guard rail": (0.02, 0.02, 0.02),
}
assert set(_TARGET_TEXTURE) == set(_GTA_TEXTURE) == set(TRAIN_ID)


@functools.lru_cache(maxsize=8)
def texture_luts(texture_style: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label-id amplitudes (fine, mid, coarse), so the finishing pass textures an image by indexing (shared:
    never modify them)."""
    luts = np.zeros((3, 256), np.float32)
    for name, t in _TARGET_TEXTURE.items():
        g = _GTA_TEXTURE[name]
        luts[:, ID[name]] = [a + texture_style * (b - a) for a, b in zip(t, g)]
    for name, v in _VOID_TEXTURE.items():
        luts[:, ID[name]] = v
    return luts[0], luts[1], luts[2]


GROUND_LUT = np.zeros(256, bool)
GROUND_LUT[[ID[n] for n in ("road", "sidewalk", "terrain", "parking", "ground", "rail track")]] = True
WET_LUT = np.zeros(256, np.float32)  # how much a surface shows a wet film: asphalt most, paving less
WET_LUT[[ID["road"], ID["parking"]]] = 1.0
WET_LUT[ID["sidewalk"]] = 0.6


@dataclass(frozen=True)
class Style:
    """Everything that differs between the domains. The source style is a blend target -> GTA by ``shift``."""

    # geometry of the camera and the scene
    horizon: float  # horizon row / image height
    cam_height: float  # metres
    obj_scale: float  # size multiplier of people, vehicles, poles, trees
    bonnet: float  # ego-vehicle bonnet height / image height
    # materials
    material: float  # 0: target palettes, 1: GTA palettes
    texture_style: float  # 0: target texture table, 1: GTA texture table
    grout: float  # contrast of the joints between paving slabs
    slab: float  # paving slab size, metres
    marking: float  # brightness of road paint (worn paint is dimmer)
    gloss: float  # specular highlight on vehicle paint
    glass: float  # 0: dark window glass, 1: the game's bright reflective glass
    window_pitch: float  # mean spacing of facade windows along the street, metres
    palms: float  # share of street trees that are palms (GTA V's Los Angeles)
    suv: float  # share of vehicles with a tall, wide SUV or pickup build
    yellow_lines: float  # probability of a street's centre line being a double yellow line (US roads)
    cobbles: float  # probability of a street's road being cobbled (old European town centres)
    # conditions, drawn per image (conditions.py)
    p_sunny: float  # probability of direct sunlight
    p_dusk: float  # probability of a low, orange evening sun
    p_wet: float  # probability of rain: overcast, wet road
    p_autumn: float  # probability of an autumn picture: part of the foliage yellow and brown, the grass faded
    exposure_sd: float  # per-image exposure spread (log units): auto-exposure and scene brightness
    white_balance_sd: float  # per-image colour cast of the recorded light
    gamma_sd: float  # per-image spread of the tone curve's mid-tones (log units)
    saturation_sd: float  # per-image spread of colourfulness (log units)
    shadow: float  # darkness of cast shadows in full sunlight
    shadow_soft: float  # blur of shadow edges, pixels at width 512
    haze: float  # aerial-perspective strength
    reflect: float  # strength of reflections in wet surfaces
    # the camera (target) or renderer (GTA) that makes pixels of the lit scene
    tone: float  # 0: the game's filmic curve, 1: the camera's per-image logarithmic compression
    saturation: float
    contrast: float
    tint: tuple[float, float, float]
    brightness: float
    bloom: float  # glow of bright regions (a game post effect)
    blur: float  # optical blur (Gaussian sigma) in pixels at width 512
    motion: float  # longest horizontal motion blur in pixels at width 512 (drawn per image)
    noise: float  # read noise sigma, 8-bit units
    shot: float  # photon noise: sigma = shot * sqrt(level) in 8-bit units
    chroma: float  # colour noise of demosaicking, coarse (2 px), 8-bit units
    vignette: float  # corner darkening of the lens


TARGET_STYLE = Style(
    horizon=0.45, cam_height=1.3, obj_scale=1.0, bonnet=0.09,
    material=0.0, texture_style=0.0, grout=0.06, slab=0.3, marking=0.72, gloss=0.15, glass=0.0, window_pitch=2.6,
    palms=0.0, suv=0.1, yellow_lines=0.0, cobbles=0.3,
    p_sunny=0.3, p_dusk=0.0, p_wet=0.05, p_autumn=0.3, exposure_sd=0.45, white_balance_sd=0.08, gamma_sd=0.4,
    saturation_sd=0.35, shadow=0.35, shadow_soft=5.0,
    haze=0.325, reflect=0.25,
    tone=1.0, saturation=0.92, contrast=0.95, tint=(0.98, 1.01, 0.98), brightness=1.0, bloom=0.0, blur=0.9,
    motion=10.0, noise=2.0, shot=0.6, chroma=2.0, vignette=0.2,
)
GTA_STYLE = Style(
    horizon=0.40, cam_height=1.7, obj_scale=1.12, bonnet=0.04,
    material=1.0, texture_style=1.0, grout=0.32, slab=0.9, marking=0.95, gloss=0.8, glass=1.0, window_pitch=4.2,
    palms=0.35, suv=0.6, yellow_lines=0.9, cobbles=0.0,
    p_sunny=0.62, p_dusk=0.12, p_wet=0.1, p_autumn=0.0, exposure_sd=0.08, white_balance_sd=0.015, gamma_sd=0.0,
    saturation_sd=0.03, shadow=0.55, shadow_soft=0.0,
    haze=0.12, reflect=0.6,
    tone=0.0, saturation=1.065, contrast=1.0, tint=(1.02, 1.0, 0.97), brightness=1.3, bloom=0.18, blur=0.0,
    motion=0.0, noise=0.4, shot=0.0, chroma=0.0, vignette=0.0,
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
    for key in ("p_sunny", "p_dusk", "p_wet", "p_autumn", "material", "texture_style", "tone", "glass", "palms", "suv",
                "yellow_lines", "cobbles"):
        values[key] = min(max(values[key], 0.0), 1.0)
    if values["p_sunny"] + values["p_dusk"] + values["p_wet"] > 1.0:
        total = values["p_sunny"] + values["p_dusk"] + values["p_wet"]
        for key in ("p_sunny", "p_dusk", "p_wet"):
            values[key] /= total
    for key in ("noise", "shot", "chroma", "blur", "motion", "bonnet", "haze", "bloom", "vignette", "gloss",
                "grout", "reflect", "shadow_soft", "exposure_sd", "white_balance_sd", "gamma_sd", "saturation_sd"):
        values[key] = max(values[key], 0.0)
    values["slab"] = max(values["slab"], 0.1)
    values["window_pitch"] = max(values["window_pitch"], 1.5)
    values["shadow"] = min(max(values["shadow"], 0.0), 0.9)
    return Style(**values)
