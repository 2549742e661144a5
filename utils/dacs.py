"""DACS (Tranheden et al., "DACS: Domain Adaptation via Cross-domain Mixed Sampling", WACV 2021): self-training
with a mean teacher and ClassMix, one training iteration.

An exponential moving average of the network (the teacher) labels target images; half of the classes of each
source image are pasted, with their source labels, onto a target image whose other pixels keep the teacher's
labels; the network trains on the source batch and on these mixed images (colour-jittered and blurred), the
pseudo-labelled pixels weighted by the share of confident teacher predictions.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.classes import IGNORE_INDEX
from utils.engine import Env, backward_segmentation, check_finite, network_outputs
from utils.losses import SafeCrossEntropyLoss


def make_teacher(model: nn.Module, train_mode: bool = True) -> nn.Module:
    """The teacher: a copy of ``model`` that takes no gradient.

    Args:
        model: the student.
        train_mode: as DACS runs it (``ema_model.train()``): BatchNorm normalises each target batch with that
            batch's statistics, and the teacher's running statistics are its own. False: eval mode, normalising
            with the student's running statistics, which :func:`ema_update` then copies over.
    """
    import copy

    teacher = copy.deepcopy(model)
    teacher.requires_grad_(False)
    return teacher.train(train_mode)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float, iteration: int) -> float:
    """teacher <- a * teacher + (1 - a) * student for every parameter, with a = min(1 - 1 / (iteration + 1),
    alpha) (DACS's warm-up: early teachers follow the student closely). Buffers (BatchNorm statistics) are not
    averaged: a teacher in train mode keeps its own, as DACS's does; one in eval mode takes the student's, which
    it normalises with. Returns a."""
    a = min(1.0 - 1.0 / (iteration + 1), alpha)
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(a).add_(s.detach(), alpha=1.0 - a)
    if not teacher.training:
        for t, s in zip(teacher.buffers(), student.buffers()):
            t.copy_(s)
    return a


def classmix_masks(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per source label map (N, H, W), a bool mask of the pixels of half of its classes (rounded up), chosen
    at random; ignored pixels are never pasted."""
    masks = torch.zeros_like(labels, dtype=torch.bool)
    for i, lab in enumerate(labels):
        classes = lab.unique()
        classes = classes[classes != IGNORE_INDEX]
        if classes.numel() == 0:
            continue
        order = torch.randperm(classes.numel(), generator=generator, device="cpu")
        chosen = classes[order[: (classes.numel() + 1) // 2].to(classes.device)]
        masks[i] = torch.isin(lab, chosen)
    return masks


def classmix(source_images: torch.Tensor, source_labels: torch.Tensor, target_images: torch.Tensor,
             pseudo_labels: torch.Tensor, pseudo_weight: torch.Tensor, masks: torch.Tensor):
    """Mixed images, labels and pixel weights: source pixels (and labels, weight 1) where ``masks``, the
    target's pixels, pseudo-labels and ``pseudo_weight`` elsewhere."""
    m = masks.unsqueeze(1)
    images = torch.where(m, source_images, target_images)
    labels = torch.where(masks, source_labels, pseudo_labels)
    weights = torch.where(masks, torch.ones_like(pseudo_weight), pseudo_weight)
    return images, labels, weights


@torch.no_grad()
def pseudo_labels(teacher: nn.Module, target_images: torch.Tensor, env: Env, threshold: float):
    """The teacher's labels of the target batch and their weight: the share of pixels whose top probability
    exceeds ``threshold``, one value for the batch as in DACS, broadcast to (N, H, W)."""
    with env.autocast():
        logits = network_outputs(teacher(target_images))[0]
    confidence, labels = F.softmax(logits.float(), dim=1).max(dim=1)
    weight = (confidence > threshold).float().mean()
    return labels, weight.expand_as(confidence)


def strong_augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """DACS's augmentation of the mixed images, uint8 (N, 3, H, W) in and out: with probability 0.8 a colour
    jitter (brightness, contrast and saturation factors in [0.75, 1.25], hue shift in [-0.25, 0.25], drawn per
    image), and with probability 0.5 a Gaussian blur of the batch (sigma in [0.15, 1.15], a kernel a tenth of
    the image's size, odd)."""
    from torchvision.transforms.v2 import functional as TF

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    out = images
    if uniform(0, 1) > 0.2:
        jittered = []
        for img in out:
            img = TF.adjust_brightness(img, uniform(0.75, 1.25))
            img = TF.adjust_contrast(img, uniform(0.75, 1.25))
            img = TF.adjust_saturation(img, uniform(0.75, 1.25))
            jittered.append(TF.adjust_hue(img, uniform(-0.25, 0.25)))
        out = torch.stack(jittered)
    if uniform(0, 1) > 0.5:
        sigma = uniform(0.15, 1.15)
        kernel = [int(math.floor(math.ceil(0.1 * n) - 0.5 + math.ceil(0.1 * n) % 2)) for n in out.shape[-2:]]
        kernel = [k if k % 2 else k + 1 for k in kernel]
        out = TF.gaussian_blur(out.float(), kernel_size=kernel[::-1], sigma=[sigma, sigma]).round().clamp(0, 255)
        out = out.to(torch.uint8)
    return out


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per pixel times its weight, averaged over the non-ignored pixels (0 when there are none)."""
    per_pixel = SafeCrossEntropyLoss(reduction="none")(logits.float(), labels)
    valid = (labels >= 0) & (labels < logits.shape[1])  # what the loss above does not ignore
    return (per_pixel * weights).sum() / valid.sum().clamp(min=1)


def dacs_iteration(model: nn.Module, teacher: nn.Module, optimizer: torch.optim.Optimizer, seg_loss, batch,
                   target_images: torch.Tensor, env: Env, it: int, *, alpha: float = 0.99,
                   threshold: float = 0.968, generator: torch.Generator | None = None) -> dict[str, float]:
    """One DACS iteration: source segmentation; the teacher's pseudo-labels of the target batch; ClassMix of the
    two batches, then DACS's colour jitter and blur; the mixed loss; the optimizer step; the teacher's EMA update.

    Args:
        model: the segmentation network (the student).
        teacher: its EMA copy (``make_teacher``), updated here after the step.
        optimizer: the student's optimizer, learning rate set for this iteration.
        seg_loss: ``(outputs, labels) -> {name: loss}`` on the source batch.
        batch: the source ``(uint8 images, int64 labels)``.
        target_images: a uint8 batch of the target domain, the source's size (its labels are never read).
        env: device, autocast, gradient scaler.
        it: the global iteration (the EMA's warm-up).
        alpha: the teacher's EMA rate.
        threshold: the confidence above which a pseudo-labelled pixel counts toward the batch's weight.
        generator: RNG of the classes ClassMix pastes and of the augmentation (None: torch's global RNG).
    """
    images, labels = env.images(batch[0]), env.labels(batch[1])
    target_images = env.images(target_images)
    if target_images.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"DACS mixes source and target images of one size, got {tuple(images.shape[-2:])} and "
                         f"{tuple(target_images.shape[-2:])}: give TARGET_SIZE the value of TRAIN_SIZE")
    n = min(images.shape[0], target_images.shape[0])
    model.train()
    optimizer.zero_grad(set_to_none=True)
    _, logs = backward_segmentation(model, seg_loss, images, labels, env)

    plabels, pweight = pseudo_labels(teacher, target_images[:n], env, threshold)
    masks = classmix_masks(labels[:n], generator)
    mixed, mixed_labels, mixed_weights = classmix(images[:n], labels[:n], target_images[:n], plabels, pweight, masks)
    mixed = strong_augment(mixed, generator)
    with env.autocast():
        loss_mix = weighted_cross_entropy(network_outputs(model(mixed))[0], mixed_labels, mixed_weights)
    logs.update(check_finite({"loss_mix": loss_mix}))
    env.backward(loss_mix)
    env.optimizer_step(optimizer)
    ema_update(teacher, model, alpha, it)
    return {**logs, "pseudo_weight": float(pweight.flatten()[0]) if pweight.numel() else 0.0}
