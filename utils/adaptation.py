"""Output-space adversarial domain adaptation (Tsai et al., "Learning to Adapt Structured Output Space for
Semantic Segmentation", CVPR 2018 - AdaptSegNet): one training iteration, single- or multi-level.

The whole method is :func:`adversarial_iteration`, in the paper's order: the segmentation loss on a labelled
source batch; the adversarial loss, the target's outputs through frozen discriminators asked to call them
"source"; then each discriminator's update. A step script builds each aligned output's :class:`Level` (its
``models.FCDiscriminator``, Adam optimizer with its poly schedule, and weight) and hands the iteration to the loop.
ADVENT (``utils/advent.py``) reuses the two discriminator pieces, :func:`fooling_loss` and
:func:`discriminator_backward`, on other maps.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import distributed
from utils.engine import Env, backward_segmentation, check_finite, network_outputs

SOURCE_LABEL, TARGET_LABEL = 0.0, 1.0  # the discriminator's targets, as AdaptSegNet labels the domains
OutputMap = Callable[[torch.Tensor], torch.Tensor]  # logits -> the map a discriminator judges


def softmax_map(logits: torch.Tensor) -> torch.Tensor:
    """What AdaptSegNet's discriminator judges: the class probabilities."""
    return F.softmax(logits.float(), dim=1)


def domain_loss(logits: torch.Tensor, label: float) -> torch.Tensor:
    """Binary cross-entropy of a discriminator's logits against one domain label (0 source, 1 target)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


@dataclass
class Level:
    """One output the network aligns: its place among the network's training outputs (0 main, 1 the lower
    one), its discriminator and that discriminator's optimizer, and the weight of its adversarial loss.
    ``name`` labels its logs: "main" logs ``loss_adv``, any other ``loss_adv_<name>``."""

    name: str
    output: int
    discriminator: nn.Module
    optimizer: torch.optim.Optimizer
    lambda_adv: float

    @property
    def suffix(self) -> str:
        return "" if self.name == "main" else f"_{self.name}"


@contextlib.contextmanager
def frozen(discriminators: Sequence[nn.Module]) -> Iterator[None]:
    """Discriminators that pass gradients to their input but take none themselves."""
    for d in discriminators:
        distributed.unwrap(d).requires_grad_(False)
    try:
        yield
    finally:
        for d in discriminators:
            distributed.unwrap(d).requires_grad_(True)


def fooling_loss(discriminator: nn.Module, target_map: torch.Tensor) -> torch.Tensor:
    """The adversarial loss: a (frozen) discriminator asked to call a target map "source". It is called outside
    its DDP wrapper: it computes no gradient of its own to synchronise."""
    return domain_loss(distributed.unwrap(discriminator)(target_map), SOURCE_LABEL)


def discriminator_backward(discriminator: nn.Module, to_map: OutputMap, source_logits: torch.Tensor,
                           target_logits: torch.Tensor, env: Env, suffix: str = "") -> dict[str, float]:
    """A discriminator's loss, source maps labelled 0 and target maps 1 (both detached from the network),
    backpropagated into the discriminator alone. Returns ``loss_d`` and the accuracy on each domain in percent
    (``d_acc_source``, ``d_acc_target``: near 50 means it cannot tell the domains apart), names ending in
    ``suffix``."""
    with env.autocast():
        d_source = discriminator(to_map(source_logits.detach())).float()
        d_target = discriminator(to_map(target_logits.detach())).float()
        loss = domain_loss(d_source, SOURCE_LABEL) / 2 + domain_loss(d_target, TARGET_LABEL) / 2
    logs = check_finite({"loss_d" + suffix: loss})
    env.backward(loss)
    with torch.no_grad():
        logs["d_acc_source" + suffix] = float((d_source < 0).float().mean()) * 100
        logs["d_acc_target" + suffix] = float((d_target > 0).float().mean()) * 100
    return logs


def adversarial_iteration(model: nn.Module, optimizer: torch.optim.Optimizer, seg_loss: Callable, batch,
                          target_images: torch.Tensor, env: Env, levels: Sequence[Level]) -> dict[str, float]:
    """One AdaptSegNet iteration; target labels are never read.

    Args:
        model: the segmentation network (DDP-wrapped under torchrun); train mode returns (main, lower, ...).
        optimizer: its optimizer, learning rate set for this iteration.
        seg_loss: ``(outputs, labels) -> {name: loss}`` on the source batch.
        batch: the source ``(uint8 images, int64 labels)``.
        target_images: a uint8 batch of the target domain.
        env: device, autocast, gradient scaler.
        levels: the aligned outputs: single-level, the main one; multi-level, the main and the lower one.

    Returns:
        the losses, and each discriminator's loss and accuracies (:func:`discriminator_backward`).
    """
    images, labels = env.images(batch[0]), env.labels(batch[1])
    model.train()
    optimizer.zero_grad(set_to_none=True)
    for level in levels:
        level.discriminator.train()
        level.optimizer.zero_grad(set_to_none=True)

    # 1. segmentation loss on the labelled source batch
    source_out, logs = backward_segmentation(model, seg_loss, images, labels, env)

    # 2. adversarial loss: the target's outputs through the frozen discriminators, labelled "source"
    with frozen([level.discriminator for level in levels]):
        with env.autocast():
            target_out = network_outputs(model(env.images(target_images)))
            fooling = [(level, fooling_loss(level.discriminator, softmax_map(target_out[level.output])))
                       for level in levels]
        env.backward(sum(level.lambda_adv * loss for level, loss in fooling))
    logs.update(check_finite({"loss_adv" + level.suffix: loss for level, loss in fooling}))

    # 3. each discriminator learns source from target on the detached outputs
    judged = [discriminator_backward(level.discriminator, softmax_map, source_out[level.output],
                                     target_out[level.output], env, level.suffix) for level in levels]
    env.optimizer_step(optimizer, *(level.optimizer for level in levels))
    logs.update({k: v for d in judged for k, v in d.items() if k.startswith("loss_d")})
    logs.update({k: v for d in judged for k, v in d.items() if k.startswith("d_acc")})
    return logs


__all__ = ["Level", "SOURCE_LABEL", "TARGET_LABEL", "adversarial_iteration", "discriminator_backward",
           "domain_loss", "fooling_loss", "frozen", "softmax_map"]
