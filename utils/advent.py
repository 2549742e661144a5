"""ADVENT (Vu et al., "ADVENT: Adversarial Entropy Minimization for Domain Adaptation in Semantic Segmentation",
CVPR 2019): MinEnt, AdvEnt and both together, one training iteration.

MinEnt lowers the target's normalised entropy directly; AdvEnt trains AdaptSegNet's discriminator on weighted
self-information maps instead of probabilities, so that target maps come to look like source ones. Both share
:func:`utils.adaptation.adversarial_iteration`: this module supplies the maps and the entropy term.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.adaptation import adversarial_iteration
from utils.engine import Env


def self_information(logits: torch.Tensor) -> torch.Tensor:
    """The weighted self-information map ``-p log p / log C`` per class, (N, C, H, W): what AdvEnt's
    discriminator judges. Summed over classes it is the normalised entropy (0 certain, 1 uniform)."""
    logits = logits.float()
    p, log_p = F.softmax(logits, dim=1), F.log_softmax(logits, dim=1)
    return -(p * log_p) / math.log(logits.shape[1])


def entropy_map(logits: torch.Tensor) -> torch.Tensor:
    """Normalised entropy per pixel, (N, H, W), in [0, 1]."""
    return self_information(logits).sum(dim=1)


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """MinEnt's loss: the normalised entropy averaged over every pixel of the batch."""
    return entropy_map(logits).mean()


def advent_iteration(model: nn.Module, discriminator: nn.Module | None, optimizers, seg_loss, batch,
                     target_images: torch.Tensor, env: Env, lambda_adv: float, lambda_ent: float) -> dict[str, float]:
    """One ADVENT iteration: source segmentation, then on the target MinEnt (``lambda_ent``) and/or AdvEnt.

    Args:
        model: the segmentation network.
        discriminator: AdvEnt's discriminator on self-information maps; None for MinEnt alone.
        optimizers: ``(segmentation optimizer, discriminator optimizer or None)``.
        seg_loss: ``(outputs, labels) -> {name: loss}`` on the source batch.
        batch: the source ``(uint8 images, int64 labels)``.
        target_images: a uint8 batch of the target domain (its labels are never read).
        env: device, autocast, gradient scaler.
        lambda_adv: weight of AdvEnt's adversarial loss (ignored without a discriminator).
        lambda_ent: weight of MinEnt's entropy loss (0: AdvEnt alone).
    """
    terms = [("loss_ent", lambda_ent, entropy_loss)] if lambda_ent > 0 else []
    return adversarial_iteration(model, discriminator, optimizers, seg_loss, batch, target_images, env, lambda_adv,
                                 d_input=self_information, target_terms=terms)
