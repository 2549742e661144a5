"""Segmentation metrics from one confusion matrix over the whole evaluation set.

Averaging per-batch mIoU instead is a known trap: a class that appears in few batches then weighs as much
as one that appears everywhere, and batches where a class is absent shift the mean. Here every batch only
adds counts; IoUs are computed once, at the end, from the summed matrix.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist

from utils.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from utils.distributed import collective_device, is_initialized

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """Accumulates a KxK confusion matrix (rows = ground truth, columns = prediction).

    Args:
        num_classes: number of classes K.
        ignore_index: target value whose pixels are skipped (void).
        class_names: one name per class; defaults to the Cityscapes train class names when K is 19,
            else "0", "1", ...

    ``update`` adds one batch with a single ``torch.bincount`` on the device the tensors live on, so
    evaluation on a GPU never copies label maps to the host. Pixels whose target is ``ignore_index`` or
    outside 0..K-1 are skipped (datasets already map unknown labels to ignore; this keeps a stray value from
    crashing an evaluation), as are pixels whose prediction is outside 0..K-1 (an argmax never produces one).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX,
                 class_names: Sequence[str] | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is None:
            class_names = CLASS_NAMES if num_classes == NUM_CLASSES else [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = tuple(str(n) for n in class_names)
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``target`` are integer label maps of the same shape (any leading dims)."""
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if pred.is_floating_point() or target.is_floating_point():
            raise ValueError("pred and target must be integer label maps (take the argmax of the logits first)")
        if self.mat.device != target.device:
            self.mat = self.mat.to(target.device)
        k = self.num_classes
        pred = pred.reshape(-1).to(device=target.device, dtype=torch.int64)
        target = target.reshape(-1).to(torch.int64)
        valid = (target >= 0) & (target < k) & (target != self.ignore_index) & (pred >= 0) & (pred < k)
        # Skipped pixels go to one extra bin that is dropped: no boolean indexing, so no extra host sync.
        idx = torch.where(valid, target * k + pred, k * k)
        counts = torch.bincount(idx, minlength=k * k + 1)[: k * k]
        self.mat += counts.view(k, k)

    def reset(self) -> None:
        self.mat.zero_()

    def reduce_from_all_processes(self) -> None:
        """Sum the matrices of all processes (no-op unless torch.distributed is initialised).

        Each process must have seen a disjoint shard of the evaluation set: a padded ``DistributedSampler``
        repeats images, which would then count twice.
        """
        if is_initialized():
            # NCCL reduces GPU tensors only, Gloo CPU ones; a rank with an empty shard still holds a CPU matrix.
            mat = self.mat.to(collective_device())
            dist.all_reduce(mat, op=dist.ReduceOp.SUM)
            self.mat = mat.to(self.mat.device)

    def compute(self) -> dict:
        """``{"miou", "pixel_acc", "per_class_iou": {name: IoU}}`` in percent, as Python floats.

        A class absent from both prediction and ground truth has IoU NaN and is left out of the mIoU; a class
        predicted but absent from the ground truth has IoU 0. With no counted pixel at all, everything is NaN.
        """
        m = self.mat.detach().to("cpu", torch.float64)
        tp = m.diagonal()
        union = m.sum(1) + m.sum(0) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan)) * 100.0
        total = m.sum()
        pixel_acc = float(tp.sum() / total * 100.0) if total > 0 else math.nan
        miou = float(torch.nanmean(iou)) if bool((union > 0).any()) else math.nan
        return {
            "miou": miou,
            "pixel_acc": pixel_acc,
            "per_class_iou": {name: float(v) for name, v in zip(self.class_names, iou.tolist())},
        }

    def __str__(self) -> str:
        res = self.compute()
        width = max(len("class"), *(len(n) for n in self.class_names))
        lines = [f"{'class':<{width}}  IoU %", "-" * (width + 8)]
        for name, v in res["per_class_iou"].items():
            lines.append(f"{name:<{width}}  {_pct(v):>6}")
        lines.append("-" * (width + 8))
        lines.append(f"{'mIoU':<{width}}  {_pct(res['miou']):>6}")
        lines.append(f"{'pixel acc':<{width}}  {_pct(res['pixel_acc']):>6}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={int(self.mat.sum())})")


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2f}"
