"""The one interpolation helper: bilinear with align_corners=False everywhere (training, evaluation, models).

Mixing align_corners settings between training and evaluation changes results measurably (AdaptSegNet
users reported 40.8 vs 42.4 mIoU for the same model), so every resize of images or logits goes through here.
Images go through :func:`resize_image` (antialiased when they shrink), logits through :func:`resize`, label
maps through :func:`resize_labels`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size, antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of an NCHW float tensor to ``size`` (H, W); logits use it as is, images via
    :func:`resize_image`.

    Args:
        x: NCHW float tensor.
        size: output (H, W).
        antialias: low-pass with the triangle filter stretched to the scale factor (torch's ``antialias``), so
            a downscale averages every input pixel instead of sampling four per output pixel.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)


def resize_image(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of an NCHW float image batch, antialiased when either side shrinks.

    Plain bilinear reads only the 2x2 input pixels nearest each output pixel, so a large downscale (GTA5's
    1914x1052 -> 1280x720, Cityscapes' 2048x1024 -> 1024x512) skips pixels and aliases fine texture (fences,
    poles, foliage) into moire that the network then trains on; AdaptSegNet's PIL bicubic filters for the
    same reason. Upscaling has nothing to alias, and there the triangle filter reduces to plain bilinear,
    so upscales keep the plain path. Logits are not images: they stay on plain :func:`resize`.
    """
    h, w = int(size[0]), int(size[1])
    shrinks = h < x.shape[-2] or w < x.shape[-1]
    return resize(x, (h, w), antialias=shrinks)


def resize_labels(y: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Nearest resize of an (N)HW integer label map: labels are never blended."""
    size = (int(size[0]), int(size[1]))
    if tuple(y.shape[-2:]) == size:
        return y
    squeeze = y.dim() == 2
    y4 = y[None, None] if squeeze else y[:, None]
    out = F.interpolate(y4.float(), size=size, mode="nearest-exact").to(y.dtype)
    return out[0, 0] if squeeze else out[:, 0]
