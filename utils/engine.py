"""The one training and evaluation engine, shared by every step script.

Small pieces, torchvision-references style: :func:`seg_step` and :func:`adversarial_step` (one iteration),
:func:`train_one_epoch`, :func:`evaluate`, and :func:`fit`, which adds evaluation, checkpoints, resume and
signal handling around them.
"""
from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from utils import distributed
from utils.checkpoint import atomic_save, rng_state, set_rng_state
from utils.device import amp_name, device_name, resolve_amp, resolve_device
from utils.errors import ConfigError, UserError
from utils.fast import CHANNELS_LAST
from utils.metrics import ConfusionMatrix
from utils.ops import resize
from utils.runs import MetricsCSV, Run
from utils.schedule import set_poly_lr

SOURCE_LABEL, TARGET_LABEL = 0.0, 1.0  # discriminator targets, as AdaptSegNet


class TrainingError(UserError):
    """Training cannot go on (a diverged loss, out of memory); the message says what to change."""


class Interrupted(SystemExit):
    """SIGINT/SIGTERM: a checkpoint was saved; exits with 130 (SIGINT) or 143 (SIGTERM)."""


# ----------------------------------------------------------------------------------------------- setup
@dataclass
class Env:
    """Where and how tensors are computed: device, autocast dtype (None = fp32) and memory format, and
    this process's place among those torchrun started (rank 0 of 1 without torchrun)."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batches travel as uint8 (4x less than float) and are normalised by the model on device."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def describe(self) -> dict:
        return {"device": device_name(self.device), "amp": amp_name(self.amp_dtype),
                "channels_last": self.channels_last}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_env(cfg) -> Env:
    """Device, AMP policy (SPEC 5), seeds, and the CUDA speed settings, from a step script's config.

    Under torchrun, also joins the process group; each process then computes on its own GPU.
    """
    device = distributed.init(resolve_device(cfg.DEVICE))
    amp_dtype = resolve_amp(cfg.AMP, device)
    seed_everything(cfg.SEED)
    deterministic = bool(cfg.get("DETERMINISTIC", False))
    if deterministic:
        # warn_only: adaptive pooling, bilinear backward and NLL loss have no deterministic CUDA kernel.
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Env(device=device, amp_dtype=amp_dtype, channels_last=CHANNELS_LAST[device.type],
               rank=distributed.rank(), world=distributed.world())


def make_optimizer(name: str, param_groups: list[dict], lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.Optimizer:
    """SGD (momentum) or Adam over a model's parameter groups; each group keeps its ``lr_mult``."""
    groups = [dict(g, lr=lr * g.get("lr_mult", 1.0)) for g in param_groups]
    for g in groups:
        g["params"] = list(g["params"])
    # One fused kernel per step instead of a loop over tensors, same update rule: BiSeNet's Adam step on a
    # 2-core CPU falls from 46.5 to 13.2 ms (benchmark.py), a tenth of a demo iteration saved.
    fused = _fusable(p for g in groups for p in g["params"])
    name = name.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=fused)
    raise ConfigError(f"OPTIMIZER must be sgd or adam, got {name!r}")


def _fusable(params) -> bool | None:
    """True when every parameter lives where PyTorch has fused optimizer kernels (CPU, CUDA) in a float type."""
    params = list(params)
    ok = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return True if ok and len({p.device for p in params}) == 1 else None


# ----------------------------------------------------------------------------------------- one iteration
@dataclass
class Trainer:
    """Everything one training iteration touches, and what a checkpoint must hold to resume it.

    Under torchrun ``model`` and ``discriminator`` are DistributedDataParallel wrappers; checkpoints hold the
    modules inside, so they load into single-process runs and back.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    env: Env
    base_lr: float
    max_iter: int
    aux_weight: float = 1.0
    scaler: torch.amp.GradScaler | None = None
    discriminator: nn.Module | None = None
    disc_optimizer: torch.optim.Optimizer | None = None
    disc_base_lr: float = 0.0
    lambda_adv: float = 0.0
    target_batches: Any = None  # endless iterator of target batches (labels unused)
    global_it: int = 0
    extra_state: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scaler is None and self.env.amp_dtype == torch.float16:
            self.scaler = torch.amp.GradScaler(self.env.device.type)

    def state_dict(self) -> dict:
        state = {"model": distributed.unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                 "global_it": self.global_it}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.discriminator is not None:
            state["discriminator"] = distributed.unwrap(self.discriminator).state_dict()
            state["disc_optimizer"] = self.disc_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        distributed.unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.global_it = int(state["global_it"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.discriminator is not None:
            distributed.unwrap(self.discriminator).load_state_dict(state["discriminator"])
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])


def _backward(tr: Trainer, loss: torch.Tensor) -> None:
    (tr.scaler.scale(loss) if tr.scaler is not None else loss).backward()


def _step(tr: Trainer, *optimizers: torch.optim.Optimizer) -> None:
    for opt in optimizers:
        if tr.scaler is not None:
            tr.scaler.step(opt)
        else:
            opt.step()
    if tr.scaler is not None:
        tr.scaler.update()


def _seg_losses(tr: Trainer, outputs, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    main, *aux = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    losses = {"loss_seg": tr.loss_fn(main.float(), labels)}
    for name, out in zip(("loss_aux16", "loss_aux32"), aux):
        if out is not None:
            losses[name] = tr.aux_weight * tr.loss_fn(out.float(), labels)
    return losses


def _check_finite(tr: Trainer, losses: dict[str, torch.Tensor]) -> dict[str, float]:
    values = {k: float(v.detach()) for k, v in losses.items()}
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise TrainingError(
            f"loss became {', '.join(f'{k}={v}' for k, v in bad.items())} at iteration {tr.global_it + 1}; "
            "training stopped and the last good checkpoint was kept. Lower the learning rate, "
            "or try --AMP=off.")
    return values


def seg_step(tr: Trainer, batch) -> dict[str, float]:
    """One supervised iteration: poly LR, forward (main + auxiliary heads), backward, optimizer step."""
    images, labels = batch
    lr = set_poly_lr(tr.optimizer, tr.base_lr, tr.global_it, tr.max_iter)
    images, labels = tr.env.images(images), labels.to(tr.env.device, non_blocking=True)
    tr.model.train()
    with tr.env.autocast():
        losses = _seg_losses(tr, tr.model(images), labels)
    total = sum(losses.values())
    values = _check_finite(tr, losses)
    tr.optimizer.zero_grad(set_to_none=True)
    _backward(tr, total)
    _step(tr, tr.optimizer)
    return {"loss": sum(values.values()), **values, "lr": lr}


def adversarial_step(tr: Trainer, batch) -> dict[str, float]:
    """One output-space adversarial iteration (AdaptSegNet, single level).

    (a) segmentation loss on the labelled source batch; (b) on an unlabelled target batch, the frozen
    discriminator is asked to call the target's softmax output "source", weighted by ``lambda_adv``;
    (c) the discriminator learns source (0) vs target (1) on detached outputs. Target labels are never read.
    """
    images, labels = batch
    target_images = next(tr.target_batches)[0]
    d, d_opt = tr.discriminator, tr.disc_optimizer
    lr = set_poly_lr(tr.optimizer, tr.base_lr, tr.global_it, tr.max_iter)
    set_poly_lr(d_opt, tr.disc_base_lr, tr.global_it, tr.max_iter)
    images, labels = tr.env.images(images), labels.to(tr.env.device, non_blocking=True)
    target_images = tr.env.images(target_images)
    tr.model.train()
    d.train()
    tr.optimizer.zero_grad(set_to_none=True)
    d_opt.zero_grad(set_to_none=True)

    # The frozen discriminator is called outside its DDP wrapper: no gradient of its own to synchronise.
    d_frozen = distributed.unwrap(d)
    d_frozen.requires_grad_(False)
    with tr.env.autocast():
        src_out = tr.model(images)
        seg = _seg_losses(tr, src_out, labels)
    seg_values = _check_finite(tr, seg)
    _backward(tr, sum(seg.values()))
    with tr.env.autocast():
        tgt_main = tr.model(target_images)[0]
        d_tgt = d_frozen(F.softmax(tgt_main.float(), dim=1))
        adv = F.binary_cross_entropy_with_logits(d_tgt.float(), torch.full_like(d_tgt.float(), SOURCE_LABEL))
    _backward(tr, tr.lambda_adv * adv)

    d_frozen.requires_grad_(True)
    src_main = src_out[0] if isinstance(src_out, (tuple, list)) else src_out
    with tr.env.autocast():
        d_src = d(F.softmax(src_main.detach().float(), dim=1)).float()
        d_tgt = d(F.softmax(tgt_main.detach().float(), dim=1)).float()
        loss_d_src = F.binary_cross_entropy_with_logits(d_src, torch.full_like(d_src, SOURCE_LABEL)) / 2
        loss_d_tgt = F.binary_cross_entropy_with_logits(d_tgt, torch.full_like(d_tgt, TARGET_LABEL)) / 2
    d_values = _check_finite(tr, {"loss_adv": adv, "loss_d": loss_d_src + loss_d_tgt})
    _backward(tr, loss_d_src + loss_d_tgt)
    _step(tr, tr.optimizer, d_opt)
    with torch.no_grad():
        acc_src = float((d_src < 0).float().mean()) * 100
        acc_tgt = float((d_tgt > 0).float().mean()) * 100
    return {"loss": sum(seg_values.values()), **seg_values, **d_values,
            "d_acc_source": acc_src, "d_acc_target": acc_tgt, "lr": lr}


# ------------------------------------------------------------------------------------ epochs and evaluation
def train_one_epoch(tr: Trainer, loader, epoch: int, *, step_fn: Callable = seg_step, start_iter: int = 0,
                    on_iteration: Callable[[int, dict], bool] | None = None, progress: bool = True) -> dict:
    """Train over one epoch of ``loader`` from batch ``start_iter``; returns the mean of each logged value.

    ``on_iteration(iter_in_epoch, logs)`` runs after every iteration; returning True stops the epoch early.
    """
    loader.sampler.set_epoch(epoch, start_iter * loader.batch_size)
    sums: dict[str, float] = {}
    n = 0
    bar = tqdm(loader, total=start_iter + len(loader), initial=start_iter, desc=f"epoch {epoch + 1}",
               leave=False, disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    for i, batch in enumerate(bar, start=start_iter + 1):
        try:
            logs = step_fn(tr, batch)
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"out of GPU memory at iteration {tr.global_it + 1} (batch {batch[0].shape[0]} at "
                f"{tuple(batch[0].shape[-2:])}): lower --BATCH_SIZE or the crop/train size, or use --AMP=auto."
            ) from None
        tr.global_it += 1
        t1 = time.perf_counter()
        logs["img_per_s"] = batch[0].shape[0] * tr.env.world / max(t1 - t0, 1e-9)
        t0 = t1
        n += 1
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{logs['lr']:.2e}")
        if on_iteration is not None and on_iteration(i, logs):
            break
    return {k: v / max(n, 1) for k, v in sums.items()}


@torch.inference_mode()
def evaluate(model: nn.Module, loader, env: Env, num_classes: int = 19, progress: bool = True,
             desc: str = "eval") -> ConfusionMatrix:
    """One confusion matrix over the whole loader (never an average of per-batch mIoUs).

    Logits of another size than the label (``EVAL_SIZE="native"`` with a resized input) are upsampled to
    the label, bilinearly, before the argmax. Under torchrun each process evaluates its shard of the loader
    (no image twice) with the unwrapped model (a DDP forward would wait for the other ranks at every batch,
    and shards may differ by one batch); the matrices are then summed.
    """
    model = distributed.unwrap(model)
    model.eval()
    cm = ConfusionMatrix(num_classes=num_classes)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(0, 0)
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        labels = labels.to(env.device, non_blocking=True)
        try:
            with env.autocast():
                logits = model(env.images(images))
            if logits.shape[-2:] != labels.shape[-2:]:
                logits = resize(logits.float(), labels.shape[-2:])
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"out of GPU memory while evaluating (batch {images.shape[0]} at {tuple(images.shape[-2:])}, "
                f"labels {tuple(labels.shape[-2:])}): lower --BATCH_SIZE (evaluation uses it too) or --EVAL_SIZE."
            ) from None
        cm.update(pred=logits.argmax(1), target=labels)
    cm.reduce_from_all_processes()
    return cm


# ------------------------------------------------------------------------------------------- whole runs
class _StopSignals:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks; a second one interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def fit(tr: Trainer, run: Run, train_loader, val_loader, *, epochs: int, eval_every: int = 1,
        checkpoint_minutes: float = 10.0, num_classes: int = 19, step_fn: Callable = seg_step,
        resume: dict | None = None, model_spec: dict | None = None, progress: bool = True) -> dict:
    """Train for ``epochs`` with evaluation, atomic checkpoints (epoch ends, every ``checkpoint_minutes``,
    SIGINT/SIGTERM) and exact mid-epoch resume. Returns the training state: history, best, timings."""
    state = {"epoch": 0, "iter_in_epoch": 0, "history": [], "best_miou": None, "train_seconds": 0.0,
             "last_eval": None}
    if resume is not None:
        tr.load_state_dict(resume["trainer"])
        state.update(resume["state"])
        set_rng_state(resume["rng"])
        print(f"resuming {run.dir} at epoch {state['epoch'] + 1}, iteration {state['iter_in_epoch']} "
              f"(global {tr.global_it})")
        run.log(f"resumed at epoch {state['epoch'] + 1} iteration {state['iter_in_epoch']}")
    metrics = MetricsCSV(run.metrics_path, resume_at=tr.global_it if resume is not None else None) \
        if tr.env.is_main else None

    def save(path) -> None:
        if not tr.env.is_main:
            return
        ckpt = {"trainer": tr.state_dict(), "state": state, "rng": rng_state(), "config": run.config,
                "model_spec": model_spec or {}, "variant": run.variant}
        atomic_save(ckpt, path, keep_previous=path == run.last)

    t_start = time.perf_counter()
    seconds_before = state["train_seconds"]
    last_ckpt = time.monotonic()
    epoch_bar = tqdm(range(state["epoch"], epochs), initial=state["epoch"], total=epochs, desc="epochs",
                     disable=not progress, dynamic_ncols=True)
    with _StopSignals() as stop:
        def on_iteration(i: int, logs: dict) -> bool:
            nonlocal last_ckpt
            state["iter_in_epoch"] = i
            state["train_seconds"] = seconds_before + time.perf_counter() - t_start
            if metrics is not None:
                metrics.write({"epoch": state["epoch"] + 1, "iter": i, "global_it": tr.global_it, **logs})
            signum = distributed.any_rank_max(stop.received or 0)  # all ranks stop at the same iteration
            if signum:
                save(run.last)
                name = signal.Signals(signum).name
                msg = (f"{name}: stopped at epoch {state['epoch'] + 1}, iteration {i}; checkpoint saved to "
                       f"{run.last}.\nResume with:\n  {run.command}")
                print("\n" + msg)
                run.log(f"{name} at epoch {state['epoch'] + 1} iteration {i}; checkpoint saved")
                raise Interrupted(128 + signum)
            if checkpoint_minutes > 0 and time.monotonic() - last_ckpt >= checkpoint_minutes * 60:
                save(run.last)
                last_ckpt = time.monotonic()
            return False

        for epoch in epoch_bar:
            state["epoch"] = epoch
            logs = train_one_epoch(tr, train_loader, epoch, step_fn=step_fn, start_iter=state["iter_in_epoch"],
                                   on_iteration=on_iteration, progress=progress)
            entry = {"epoch": epoch + 1, "global_it": tr.global_it, **logs}
            if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs:
                distributed.broadcast_buffers(tr.model)
                cm = evaluate(tr.model, val_loader, tr.env, num_classes, progress=progress)
                result = cm.compute()
                entry["val_miou"] = result["miou"]
                state["last_eval"] = {**result, "epoch": epoch + 1, "confusion": cm.mat.tolist()}
                if state["best_miou"] is None or result["miou"] > state["best_miou"]:
                    state["best_miou"] = result["miou"]
                    state["epoch"], state["iter_in_epoch"] = epoch + 1, 0
                    save(run.best)
            state["history"].append(entry)
            state["epoch"], state["iter_in_epoch"] = epoch + 1, 0
            state["train_seconds"] = seconds_before + time.perf_counter() - t_start
            save(run.last)
            last_ckpt = time.monotonic()
            line = (f"epoch {epoch + 1}/{epochs} loss {logs.get('loss', float('nan')):.4f} "
                    f"lr {logs.get('lr', float('nan')):.3e}"
                    + (f" val mIoU {entry['val_miou']:.2f}" if "val_miou" in entry else ""))
            run.log(line)
            epoch_bar.write(line) if progress else print(line)
            signum = distributed.any_rank_max(stop.received or 0)
            if signum:  # arrived during evaluation or the epoch's last iteration: last.pt was just saved
                name = signal.Signals(signum).name
                print(f"\n{name}: stopped after epoch {epoch + 1}; checkpoint saved to {run.last}.\n"
                      f"Resume with:\n  {run.command}")
                run.log(f"{name} after epoch {epoch + 1}; checkpoint saved")
                raise Interrupted(128 + signum)
    return state

