"""Output-space adversarial domain adaptation (Tsai et al., "Learning to Adapt Structured Output Space for
Semantic Segmentation", CVPR 2018 - AdaptSegNet, single level): one training iteration.

The whole method is :func:`adversarial_iteration`; ``step4_5_adversarial.py`` builds the discriminator
(``models.FCDiscriminator``), its Adam optimizer and poly schedule, and hands this iteration to the loop.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import distributed
from utils.engine import Env, check_finite

SOURCE_LABEL, TARGET_LABEL = 0.0, 1.0  # the discriminator's targets, as AdaptSegNet labels the domains


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def _outputs(outputs) -> tuple:
    """A network's outputs as a tuple, main first (eval-mode networks return the main output alone)."""
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def softmax_map(logits: torch.Tensor) -> torch.Tensor:
    """What AdaptSegNet's discriminator judges: the class probabilities."""
    return F.softmax(logits.float(), dim=1)


# A loss on the target's main output: (name, weight, function of the logits). Named for the log, weighted here.
TargetTerm = tuple[str, float, Callable[[torch.Tensor], torch.Tensor]]


def adversarial_iteration(model: nn.Module, discriminator: nn.Module | None, optimizers, seg_loss: Callable, batch,
                          target_images: torch.Tensor, env: Env, lambda_adv: float, *,
                          d_input: Callable[[torch.Tensor], torch.Tensor] = softmax_map,
                          target_terms: Sequence[TargetTerm] = (),
                          low_level: tuple[nn.Module, torch.optim.Optimizer, float] | None = None) -> dict[str, float]:
    """One output-space adversarial iteration.

    (a) segmentation loss on the labelled source batch; (b) on an unlabelled target batch, the frozen
    discriminator is asked to call the target's map "source", weighted by ``lambda_adv``, plus any
    ``target_terms``; (c) the discriminator learns source (0) vs target (1) on detached maps. Target labels are
    never read. AdaptSegNet's multi-level form adds a second discriminator on the lower output (``low_level``).
    Other methods reuse it: ADVENT judges another map (``d_input``) and adds an entropy term, and a method
    without a discriminator (``discriminator=None``) keeps (a) and the target terms of (b).

    Args:
        model: the segmentation network (DDP-wrapped under torchrun); train mode returns (main, lower, ...).
        discriminator: the output-space discriminator of the main output (DDP-wrapped under torchrun), or None.
        optimizers: ``(segmentation optimizer, discriminator optimizer or None)``, rates set for this iteration.
        seg_loss: ``(outputs, labels) -> {name: loss}`` on the source batch.
        batch: the source ``(uint8 images, int64 labels)``.
        target_images: a uint8 batch of the target domain.
        env: device, autocast, gradient scaler.
        lambda_adv: weight of the adversarial loss.
        d_input: the map the discriminator judges, from the main output's logits (default: the softmax).
        target_terms: more losses on the target's main output, ``(name, weight, loss of the logits)``.
        low_level: ``(discriminator, its optimizer, lambda_adv)`` for the lower output, the model's second;
            its logs end in ``_low``.

    Returns:
        the losses (target terms unweighted), and, with a discriminator, its accuracy on each domain in percent
        (``d_acc_source``, ``d_acc_target``): near 50 means it cannot tell the domains apart.
    """
    optimizer, d_optimizer = optimizers
    # (suffix, output index, discriminator, its optimizer, lambda_adv) per judged output
    levels = [("", 0, discriminator, d_optimizer, lambda_adv)] if discriminator is not None else []
    if low_level is not None:
        levels.append(("_low", 1, *low_level))
    images, labels = env.images(batch[0]), env.labels(batch[1])
    target_images = env.images(target_images)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    frozen = {}
    for suffix, _, disc, d_opt, _ in levels:
        disc.train()
        d_opt.zero_grad(set_to_none=True)
        # (a) and (b): the frozen discriminator is called outside its DDP wrapper (no gradient of its own to sync).
        frozen[suffix] = distributed.unwrap(disc)
        frozen[suffix].requires_grad_(False)
    with env.autocast():
        src_out = _outputs(model(images))
        seg = seg_loss(src_out, labels)
    seg_values = check_finite(seg)
    env.backward(sum(seg.values()))
    with env.autocast():
        tgt_out = _outputs(model(target_images))
        target = {name: fn(tgt_out[0]) for name, _, fn in target_terms}
        for suffix, index, _, _, _ in levels:
            target["loss_adv" + suffix] = _bce(frozen[suffix](d_input(tgt_out[index])), SOURCE_LABEL)
    weights = {name: w for name, w, _ in target_terms} | {"loss_adv" + lv[0]: lv[4] for lv in levels}
    if target:
        env.backward(sum(weights[k] * v for k, v in target.items()))
    logs = {"loss": sum(seg_values.values()), **seg_values, **check_finite(target)}
    if not levels:
        env.optimizer_step(optimizer)
        return logs

    # (c)
    judged = {}
    for suffix, index, disc, _, _ in levels:
        frozen[suffix].requires_grad_(True)
        with env.autocast():
            d_src = disc(d_input(src_out[index].detach())).float()
            d_tgt = disc(d_input(tgt_out[index].detach())).float()
            loss_d = _bce(d_src, SOURCE_LABEL) / 2 + _bce(d_tgt, TARGET_LABEL) / 2
        logs.update(check_finite({"loss_d" + suffix: loss_d}))
        env.backward(loss_d)
        judged[suffix] = d_src, d_tgt
    env.optimizer_step(optimizer, *(lv[3] for lv in levels))
    with torch.no_grad():
        for suffix, (d_src, d_tgt) in judged.items():
            logs["d_acc_source" + suffix] = float((d_src < 0).float().mean()) * 100
            logs["d_acc_target" + suffix] = float((d_tgt > 0).float().mean()) * 100
    return logs
