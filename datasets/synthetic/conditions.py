"""The conditions one image is taken in, drawn from its own RNG: weather, time of day and season, the light's
colour and strength, exposure, the sky, wetness, the camera's curve and its motion.

Each domain is a mixture of conditions (its style gives the probabilities and spreads), so no single pair of
per-channel statistics describes a domain: a dusk frame and a noon frame of the same street differ more than
the domains' averages do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .style import Style

# The light of each kind of condition: RGB multipliers before exposure (sunlight warm, skylight blue-grey).
_LIGHT = {
    "sunny": (1.05, 1.0, 0.93),
    "overcast": (0.97, 1.0, 1.03),
    "dusk": (1.22, 0.92, 0.66),
    "wet": (0.93, 0.98, 1.07),
}
_LEVEL = {"sunny": 1.0, "overcast": 0.82, "dusk": 0.68, "wet": 0.72}  # overall light level
KINDS = tuple(_LIGHT)


@dataclass(frozen=True)
class Conditions:
    """One image's conditions (see the module docstring)."""

    kind: str  # sunny, overcast, dusk or wet
    sun: float  # strength of direct sunlight, 0 (none) to 1
    sun_side: float  # which facades are lit: -1 left, +1 right
    light: tuple[float, float, float]  # RGB of the light, exposure included
    sky: int  # sky palette entry: 0 clear, 1 hazy, 2 overcast
    cloudiness: float
    wet: float  # wet film on the road, 0 (dry) to 1 (puddles)
    autumn: float  # share of the foliage that has turned, 0 (green) to 1
    tone_k: float  # strength of this image's logarithmic compression curve
    gamma: float  # this image's mid-tone factor on the camera's curve (1: the camera's usual look)
    saturation: float  # this image's colourfulness factor (1: the style's usual)
    motion: float  # horizontal motion blur length, pixels at width 512

    @classmethod
    def sample(cls, style: Style, r: np.random.Generator) -> Conditions:
        u = r.random()
        if u < style.p_sunny:
            kind = "sunny"
        elif u < style.p_sunny + style.p_dusk:
            kind = "dusk"
        elif u < style.p_sunny + style.p_dusk + style.p_wet:
            kind = "wet"
        else:
            kind = "overcast"
        sun = {"sunny": r.uniform(0.55, 1.0), "dusk": r.uniform(0.6, 0.9)}.get(kind, 0.0)
        sun_side = -1.0 if r.random() < 0.5 else 1.0
        exposure = math.exp(r.normal(0.0, style.exposure_sd)) * _LEVEL[kind]
        cast = 1.0 + r.normal(0.0, style.white_balance_sd, 3)
        light = tuple(float(v) for v in np.asarray(_LIGHT[kind]) * cast * exposure)
        sky = {"sunny": 0, "dusk": 1, "overcast": 2, "wet": 2}[kind]
        if kind == "sunny" and r.random() < 0.3:
            sky = 1
        cloudiness = r.uniform(0.0, 0.6) if kind in ("sunny", "dusk") else r.uniform(0.5, 1.0)
        wet = r.uniform(0.6, 1.0) if kind == "wet" else 0.0
        autumn = r.uniform(0.35, 0.85) if r.random() < style.p_autumn else 0.0
        tone_k = math.exp(r.uniform(math.log(2.0), math.log(16.0)))
        gamma = math.exp(r.normal(0.0, style.gamma_sd))
        saturation = math.exp(r.normal(0.0, style.saturation_sd))
        motion = style.motion * r.random() ** 1.5
        return cls(kind=kind, sun=sun, sun_side=sun_side, light=light, sky=sky, cloudiness=cloudiness, wet=wet,
                   autumn=autumn, tone_k=tone_k, gamma=gamma, saturation=saturation, motion=motion)
