"""Joint (image, label) augmentations on ``torchvision.transforms.v2`` with ``tv_tensors.Image`` / ``Mask``.

Geometry (scale + crop, flip) moves image and label together; photometric changes (colour jitter,
blur) touch the image only, since v2 passes a ``Mask`` through them unchanged. Resizing goes through the
project's one interpolation helper (``utils.ops``: bilinear, align_corners=False, antialiased when an image
shrinks; nearest for labels), so augmentation, evaluation and the models all interpolate the same way.

Parameters follow the reports of the course project (BiSeNet-R18, GTA5 -> Cityscapes) and the papers:

- ``scale_crop``: scale factor uniform in ``SCALE_RANGE`` = (0.75, 1.5) (BiSeNet trains with scales from
  0.75 up; the course reports use 0.75-1.5), then a random crop back to the crop size (default: the input
  size); where the scaled image is smaller it is padded, image with 0 and label with 255 (ignored).
- ``hflip``: horizontal mirror (AdaptSegNet, BiSeNet).
- ``color_jitter``: ``ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)`` (BiSeNet's 0.4 on
  brightness/contrast/saturation, plus a small hue shift against GTA5's colour cast).
- ``blur``: ``GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))``.

Each is applied with its own probability (default 0.5). Order: colour jitter and blur first (so padding
stays exactly 0), then scale + crop, then flip.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from datasets import labels
from utils import ops
from utils.errors import ConfigError

SCALE_RANGE = (0.75, 1.5)
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}
BLUR_KERNEL = 5
BLUR_SIGMA = (0.1, 2.0)
DEFAULT_P = 0.5
AUGMENTATIONS = ("hflip", "color_jitter", "blur", "scale_crop")
"""Keys of an augmentation spec, each mapping to the probability of applying it."""

JointTransform = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple[tv_tensors.Image, tv_tensors.Mask]]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an Image (bilinear, antialiased when shrinking, dtype kept) or a Mask (nearest) with any
    leading dimensions."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if isinstance(x, tv_tensors.Mask):
        plain = x.as_subclass(torch.Tensor)
        flat = plain.reshape(-1, *plain.shape[-2:])
        out = ops.resize_labels(flat, size).reshape(*plain.shape[:-2], *size)
    else:
        plain = x.as_subclass(torch.Tensor)
        flat = plain.reshape(-1, *plain.shape[-3:]).float()
        out = ops.resize_image(flat, size)
        if not plain.is_floating_point():
            out = out.round_().clamp_(0, 255)
        out = out.to(plain.dtype).reshape(*plain.shape[:-2], *size)
    return tv_tensors.wrap(out, like=x)


def _check_same_size(flat_inputs: list[Any]) -> tuple[int, int]:
    sizes = {tuple(v2.functional.get_size(x)) for x in flat_inputs}
    if len(sizes) != 1:
        raise ValueError(f"joint transform got inputs of different sizes {sorted(sizes)}; image and label must align")
    return sizes.pop()


class RandomScaleCrop(v2.Transform):
    """Random rescale then random crop, identical for image and label; padding is 0 (image) and 255 (label).

    With probability ``p`` the pair is rescaled by a factor uniform in ``scale_range``; either way it is then
    cropped to ``crop_size`` (when given) so every output has the same size and batches can be stacked.

    Args:
        scale_range: (min, max) scale factor.
        crop_size: output (H, W), or None for the input's own size.
        p: probability of rescaling.
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Mask)

    def __init__(
        self,
        scale_range: tuple[float, float] = SCALE_RANGE,
        crop_size: tuple[int, int] | None = None,
        p: float = DEFAULT_P,
    ) -> None:
        super().__init__()
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise ConfigError(f"scale_range must satisfy 0 < min <= max, got {scale_range!r}")
        self.scale_range = (lo, hi)
        self.crop_size = None if crop_size is None else (int(crop_size[0]), int(crop_size[1]))
        self.p = float(p)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _check_same_size(flat_inputs)
        ch, cw = self.crop_size or (h, w)
        scale = 1.0
        if torch.rand(()) < self.p:
            lo, hi = self.scale_range
            scale = lo + (hi - lo) * float(torch.rand(()))
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        pad_h, pad_w = max(ch - sh, 0), max(cw - sw, 0)
        top = int(torch.randint(0, sh + pad_h - ch + 1, ()))
        left = int(torch.randint(0, sw + pad_w - cw + 1, ()))
        return {"size": (sh, sw), "pad": (pad_h, pad_w), "top": top, "left": left, "crop": (ch, cw)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = _resize(inpt, params["size"]).as_subclass(torch.Tensor)
        pad_h, pad_w = params["pad"]
        if pad_h or pad_w:
            fill = labels.IGNORE_INDEX if isinstance(inpt, tv_tensors.Mask) else 0
            out = F.pad(out, (0, pad_w, 0, pad_h), value=fill)
        ch, cw = params["crop"]
        top, left = params["top"], params["left"]
        out = out[..., top : top + ch, left : left + cw]
        return tv_tensors.wrap(out.contiguous(), like=inpt)


def _probability(key: str, value: Any) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"augmentation {key!r}: probability must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"augmentation {key!r}: probability must be in [0, 1], got {value!r}")
    return p


def build_augmentation(
    spec: dict[str, float] | None, crop_size: tuple[int, int] | None = None
) -> JointTransform | None:
    """The joint augmentation for a spec such as ``{"hflip": 0.5, "scale_crop": 0.5}``, or None (identity).

    Args:
        spec: augmentation name -> probability of applying it; names are ``AUGMENTATIONS``
            ("hflip", "color_jitter", "blur", "scale_crop"). None, an empty dict or all-zero
            probabilities mean no augmentation and return None.
        crop_size: output (H, W) of "scale_crop" (default: the input size); only used by "scale_crop".

    Returns:
        A callable ``(tv_tensors.Image, tv_tensors.Mask) -> (Image, Mask)`` for a dataset's ``transform``.
    """
    if not spec:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(f"augmentation spec must be a dict of name -> probability, got {spec!r}")
    unknown = sorted(set(spec) - set(AUGMENTATIONS))
    if unknown:
        raise ConfigError(
            f"unknown augmentation(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(AUGMENTATIONS)}"
        )
    p = {key: _probability(key, value) for key, value in spec.items()}
    steps: list[v2.Transform] = []
    if p.get("color_jitter", 0) > 0:
        steps.append(v2.RandomApply([v2.ColorJitter(**JITTER)], p=p["color_jitter"]))
    if p.get("blur", 0) > 0:
        steps.append(v2.RandomApply([v2.GaussianBlur(BLUR_KERNEL, BLUR_SIGMA)], p=p["blur"]))
    if p.get("scale_crop", 0) > 0:
        steps.append(RandomScaleCrop(SCALE_RANGE, crop_size, p=p["scale_crop"]))
    if p.get("hflip", 0) > 0:
        steps.append(v2.RandomHorizontalFlip(p=p["hflip"]))
    if not steps:
        return None
    return v2.Compose(steps)
