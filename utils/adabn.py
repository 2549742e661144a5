"""AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", ICLR workshop 2017): the
network's BatchNorm running statistics re-estimated on unlabelled target images, no weight changed.

It costs no training and is the control every adaptation result needs beside it: any method whose target images
pass through the network in train mode moves these statistics toward the target, and part or all of its gain may
be that alone. A step script with ``ADABN`` builds the target loader (:func:`adabn_loader`) and, after training
(or under ``EVAL_ONLY``), calls :func:`adapt_and_evaluate`.
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from utils import distributed
from utils.checkpoint import atomic_save
from utils.data import limit
from utils.engine import Env, confusion_matrix, eval_record
from utils.runs import Run

ADABN_FILE = "adabn.pt"  # the adapted weights, beside the run's other checkpoints


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in distributed.unwrap(model).modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def adabn_loader(dataset: Dataset, images: int, batch_size: int, env: Env, seed: int, num_workers: int = -1):
    """The target images AdaBN reads: ``images`` of ``dataset`` spread over it as ``utils.data.limit`` spreads
    them (0: all), in order, in batches of ``batch_size``. Under torchrun every rank gets as many images (the
    remainder is dropped), so all ranks run the same number of forwards."""
    subset = limit(dataset, images)
    usable = len(subset) - len(subset) % env.world
    if usable < len(subset):
        subset = Subset(subset, range(usable))
    return env.loader(subset, batch_size, train=False, seed=seed, num_workers=num_workers)


@torch.no_grad()
def reestimate_bn_statistics(model: nn.Module, loader, env: Env, progress: bool = True) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them on ``loader``'s images: train-mode
    forwards without gradient, PyTorch's cumulative average (``momentum=None``: the per-batch means and unbiased
    variances averaged over batches). A last batch of one image is dropped (a variance over one image is not a
    variance, and BiSeNet's pooled BatchNorm refuses it). Only images are read, never labels; no parameter
    changes. Under torchrun the ranks' averages are averaged (each rank ran as many batches).

    Returns the number of images the statistics came from (all ranks).
    """
    model = distributed.unwrap(model)
    layers = batchnorm_layers(model)
    was_training = model.training
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for m in layers:  # also where the model keeps its statistics frozen in training (BN_STATS)
        m.train()
    seen = 0
    try:
        for batch in tqdm(loader, desc="AdaBN", leave=False, disable=not progress, dynamic_ncols=True):
            images = batch[0]
            if images.shape[0] < 2:
                continue
            with env.autocast():
                model(env.images(images))
            seen += images.shape[0]
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    distributed.average_across_ranks([t for m in layers for t in (m.running_mean, m.running_var)])
    return distributed.sum_across_ranks(seen)


def adapt_and_evaluate(model: nn.Module, target_loader, val_loader, env: Env, run: Run, trained: dict) -> dict:
    """AdaBN after training (or an ``EVAL_ONLY`` evaluation): the statistics re-estimated on ``target_loader``,
    the adapted weights saved as ``adabn.pt`` (model spec and config beside them, for ``predict.py``), then
    evaluated on ``val_loader``.

    Returns ``trained`` (what ``utils.engine.fit`` returned) with the adapted evaluation as ``last_eval`` and
    the figure before it as ``miou_before_adabn``, plus ``adabn_images`` and ``adabn_seconds``.
    """
    model = distributed.unwrap(model)
    before = trained["last_eval"]["miou"]
    start = time.perf_counter()
    images = reestimate_bn_statistics(model, target_loader, env, progress=env.is_main)
    seconds = time.perf_counter() - start
    if images == 0:
        from utils.errors import ConfigError

        raise ConfigError("ADABN found no batch of two or more target images: lower BATCH_SIZE or raise "
                          "ADABN_IMAGES.")
    if env.is_main:
        atomic_save({"model": model.state_dict(), "model_spec": model.spec, "config": run.config,
                     "adabn": {"images": images, "miou_before": before}}, run.dir / ADABN_FILE)
    result = eval_record(confusion_matrix(model, val_loader, env, progress=env.is_main, desc="eval (AdaBN)"))
    print(f"AdaBN: BatchNorm statistics re-estimated on {images} target images in {seconds:.0f} s; "
          f"mIoU {before:.2f} -> {result['miou']:.2f} (adapted weights: {run.dir / ADABN_FILE})")
    return {**trained, "last_eval": result, "miou_before_adabn": before, "adabn_images": images,
            "adabn_seconds": seconds}


__all__ = ["ADABN_FILE", "adabn_loader", "adapt_and_evaluate", "batchnorm_layers", "reestimate_bn_statistics"]
