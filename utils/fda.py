"""FDA (Yang and Soatto, "FDA: Fourier Domain Adaptation for Semantic Segmentation", CVPR 2020): one iteration.

Each source image takes a target image's low-frequency amplitude spectrum (its overall colour and illumination)
and keeps its own phase (its content); the network trains on these images with the source labels, plus the
paper's robust entropy term on the target's predictions. No discriminator.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.engine import Env, backward_segmentation, check_finite, network_outputs
from utils.errors import ConfigError
from utils.losses import class_entropy


def window_size(beta: float, size: tuple[int, int], reference: tuple[int, int] | None = None) -> int:
    """b: the swapped window spans frequencies |k| < b on each axis, b = floor(min(H, W) * beta).

    With ``reference``, b is taken at that resolution and scaled to ``size`` (rounded, at least 1 when it is at
    least 1 there): at 80 x 160, beta 0.01 would give b = 0, an empty window, where the paper swaps a few
    of the lowest frequencies.

    Args:
        beta: the paper's window fraction, 0 <= beta <= 0.5.
        size: (H, W) of the images swapped.
        reference: (H, W) at which beta is meant (the paper's GTA5 crops: 512 x 1024), or None for ``size``.
    """
    if not 0.0 <= beta <= 0.5:
        raise ConfigError(f"FDA beta must be in [0, 0.5], got {beta}")
    if reference is None:
        return math.floor(min(size) * beta)
    b_ref = math.floor(min(reference) * beta)
    if b_ref == 0:
        return 0
    return max(1, round(b_ref * min(size) / min(reference)))


def _low_frequencies(h: int, w: int, b: int, device) -> torch.Tensor:
    """(H, W) bool: |ky| < b and |kx| < b in the unshifted FFT layout. Symmetric in k and -k, so the swapped
    spectrum stays Hermitian and its inverse transform real."""
    ky = torch.fft.fftfreq(h, 1.0 / h, device=device).abs()
    kx = torch.fft.fftfreq(w, 1.0 / w, device=device).abs()
    return (ky[:, None] < b) & (kx[None, :] < b)


def amplitude_swap(source: torch.Tensor, target: torch.Tensor, b: int) -> torch.Tensor:
    """``source`` (N, C, H, W, float) with the amplitude of ``target`` at the low frequencies |k| < b on both
    axes and its own phase everywhere. b = 0 returns ``source`` unchanged (up to the FFT round trip)."""
    if b == 0:
        return source
    spec_s, spec_t = torch.fft.fft2(source.double()), torch.fft.fft2(target.double())
    low = _low_frequencies(source.shape[-2], source.shape[-1], b, source.device)
    amplitude = torch.where(low, spec_t.abs(), spec_s.abs())
    swapped = torch.polar(amplitude, spec_s.angle())
    return torch.fft.ifft2(swapped).real.to(source.dtype)


def fda_source_to_target(source: torch.Tensor, target: torch.Tensor, b: int) -> torch.Tensor:
    """uint8 source images (N, 3, H, W) given the low-frequency amplitude of uint8 target images, resized to
    the source's size first when theirs differs; back to uint8, clipped to 0..255 (the swap can overshoot,
    and the network reads 0..255 images)."""
    if b == 0:
        return source
    target = target[torch.arange(source.shape[0], device=target.device) % target.shape[0]].float()  # pair every one
    if target.shape[-2:] != source.shape[-2:]:
        target = F.interpolate(target, size=source.shape[-2:], mode="bilinear", align_corners=False)
    out = amplitude_swap(source.float(), target, b)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def robust_entropy(logits: torch.Tensor, eta: float) -> torch.Tensor:
    """The paper's target term: the normalised entropy per pixel, penalised as (ent^2 + 1e-8)^eta, averaged."""
    ent = class_entropy(logits).sum(dim=1) / math.log(logits.shape[1])
    return ((ent ** 2 + 1e-8) ** eta).mean()


def fda_iteration(model: nn.Module, optimizer: torch.optim.Optimizer, seg_loss, batch, target_images: torch.Tensor,
                  env: Env, b: int, ent_weight: float, eta: float) -> dict[str, float]:
    """One FDA iteration: the source batch restyled with the target batch's low frequencies and its segmentation
    loss; then the target's predictions and ``ent_weight`` times their robust entropy (two backward passes,
    one per batch, as the paper's code does).

    Args:
        model: the segmentation network.
        optimizer: its optimizer, learning rate set for this iteration.
        seg_loss: ``(outputs, labels) -> {name: loss}`` on the (restyled) source batch.
        batch: the source ``(uint8 images, int64 labels)``.
        target_images: a uint8 batch of the target domain (its labels are never read).
        env: device, autocast, gradient scaler.
        b: the swapped window (``window_size``).
        ent_weight: weight of the entropy term (0: the swap alone).
        eta: the entropy penalty's exponent.
    """
    images = fda_source_to_target(batch[0].to(env.device), target_images.to(env.device), b)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    _, logs = backward_segmentation(model, seg_loss, env.images(images), env.labels(batch[1]), env)
    with env.autocast():  # the target passes through the network whatever the weight: its statistics move
        target_main = network_outputs(model(env.images(target_images)))[0]
        entropy = robust_entropy(target_main, eta) if ent_weight > 0 else None
    if entropy is not None:
        env.backward(ent_weight * entropy)
        logs.update(check_finite({"loss_ent": entropy}))
    env.optimizer_step(optimizer)
    return logs
