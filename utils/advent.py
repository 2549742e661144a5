"""ADVENT (Vu et al., "ADVENT: Adversarial Entropy Minimization for Domain Adaptation in Semantic Segmentation",
CVPR 2019): MinEnt, AdvEnt and both together, one training iteration.

MinEnt lowers the target's normalised entropy directly; AdvEnt trains AdaptSegNet's discriminator on weighted
self-information maps instead of probabilities, so that target maps come to look like source ones.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from utils.adaptation import Level, discriminator_backward, fooling_loss, frozen
from utils.engine import Env, backward_segmentation, check_finite, network_outputs
from utils.losses import class_entropy


def self_information(logits: torch.Tensor) -> torch.Tensor:
    """The weighted self-information map ``-p log p / log C`` per class, (N, C, H, W): what AdvEnt's
    discriminator judges. Summed over classes it is the normalised entropy (0 certain, 1 uniform)."""
    return class_entropy(logits) / math.log(logits.shape[1])


def entropy_map(logits: torch.Tensor) -> torch.Tensor:
    """Normalised entropy per pixel, (N, H, W), in [0, 1]."""
    return self_information(logits).sum(dim=1)


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """MinEnt's loss: the normalised entropy averaged over every pixel of the batch."""
    return entropy_map(logits).mean()


def advent_iteration(model: nn.Module, optimizer: torch.optim.Optimizer, seg_loss, batch,
                     target_images: torch.Tensor, env: Env, *, lambda_ent: float,
                     level: Level | None = None) -> dict[str, float]:
    """One ADVENT iteration: the source segmentation loss; on the target's main output, MinEnt's entropy
    (``lambda_ent`` > 0) and/or AdvEnt's adversarial loss on its self-information map (with a discriminator);
    then, for AdvEnt, the discriminator's update on source and target self-information maps.

    Args:
        model: the segmentation network.
        optimizer: its optimizer, learning rate set for this iteration.
        seg_loss: ``(outputs, labels) -> {name: loss}`` on the source batch.
        batch: the source ``(uint8 images, int64 labels)``.
        target_images: a uint8 batch of the target domain (its labels are never read).
        env: device, autocast, gradient scaler.
        lambda_ent: weight of MinEnt's entropy loss (0: AdvEnt alone).
        level: AdvEnt's discriminator on the main output, its optimizer and ``lambda_adv``; None for MinEnt alone.
    """
    images, labels = env.images(batch[0]), env.labels(batch[1])
    discriminators = [level.discriminator] if level is not None else []
    model.train()
    optimizer.zero_grad(set_to_none=True)
    if level is not None:
        level.discriminator.train()
        level.optimizer.zero_grad(set_to_none=True)
    source_out, logs = backward_segmentation(model, seg_loss, images, labels, env)

    with frozen(discriminators):
        with env.autocast():
            target_main = network_outputs(model(env.images(target_images)))[0]
            weighted = []  # (name, weight, loss)
            if lambda_ent > 0:  # MinEnt
                weighted.append(("loss_ent", lambda_ent, entropy_loss(target_main)))
            if level is not None:  # AdvEnt
                fooling = fooling_loss(level.discriminator, self_information(target_main))
                weighted.append(("loss_adv", level.lambda_adv, fooling))
        if weighted:
            env.backward(sum(weight * loss for _, weight, loss in weighted))
    logs.update(check_finite({name: loss for name, _, loss in weighted}))

    if level is not None:
        logs.update(discriminator_backward(level.discriminator, self_information, source_out[0], target_main, env))
    env.optimizer_step(optimizer, *([level.optimizer] if level is not None else []))
    return logs
