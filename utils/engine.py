"""The generic training loop, shared by every step script.

A step script builds its datasets, model, optimizer(s) and loss, and writes the iteration it trains with as a
function ``iteration(batch, it) -> logs``. This module runs it, torchvision-references style, in small pieces:
:func:`train_one_epoch`, :func:`confusion_matrix`, and :func:`fit`, which adds evaluation, checkpoints, resume and
signal handling around them. :func:`train_iteration` is the supervised iteration most scripts hand over.
"""
from __future__ import annotations

import math
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from utils import distributed
from utils.checkpoint import atomic_save, load_resumable, rng_state, set_rng_state
from utils.data import SizeGroups, make_loader
from utils.device import amp_name, autocast, device_name, resolve_amp, resolve_device
from utils.errors import ConfigError, UserError, option
from utils.fast import CHANNELS_LAST
from utils.metrics import ConfusionMatrix
from utils.ops import resize
from utils.runs import MetricsCSV, Run

Iteration = Callable[[Any, int], dict]  # (batch, global iteration index) -> logged values


class TrainingError(UserError):
    """Training cannot go on (a diverged loss, out of memory); the message says what to change."""


class NonFiniteLoss(ArithmeticError):
    """A loss became NaN or infinite; ``values`` holds every loss of that iteration."""

    def __init__(self, values: dict[str, float]) -> None:
        super().__init__(", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v)))
        self.values = values


class Interrupted(SystemExit):
    """SIGINT/SIGTERM: a checkpoint was saved; exits with 130 (SIGINT) or 143 (SIGTERM)."""


# ----------------------------------------------------------------------------------------------- setup
@dataclass
class Env:
    """Where and how tensors are computed: device, autocast dtype (None = fp32), memory format, the fp16
    gradient scaler, and this process's place among those torchrun started (rank 0 of 1 without torchrun)."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    rank: int = 0
    world: int = 1
    scaler: torch.amp.GradScaler | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        return autocast(self.device, self.amp_dtype)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batches travel as uint8 (4x less than float) and are normalised by the model on device."""
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.to(self.device, non_blocking=True)

    def loader(self, dataset, batch_size: int, *, train: bool, seed: int, num_workers: int = -1,
               stream: int = 0) -> torch.utils.data.DataLoader:
        """This process's loader over ``dataset`` (``utils.data.make_loader``: its shard under torchrun)."""
        return make_loader(dataset, batch_size, train=train, seed=seed, device=self.device,
                           num_workers=num_workers, rank=self.rank, world=self.world, stream=stream)

    def place(self, model: nn.Module, find_unused_parameters: bool = False,
              channels_last: bool | None = None) -> nn.Module:
        """``model`` moved to the device, in the training memory format unless ``channels_last`` says otherwise;
        under torchrun, wrapped for DDP (whose parameters are the model's: an optimizer may take either)."""
        model.to(self.device)
        if self.channels_last if channels_last is None else channels_last:
            model.to(memory_format=torch.channels_last)
        return distributed.wrap(model, self.device, find_unused_parameters=find_unused_parameters)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def optimizer_step(self, *optimizers: torch.optim.Optimizer) -> None:
        for opt in optimizers:
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                opt.step()
        if self.scaler is not None:
            self.scaler.update()

    def describe(self) -> dict:
        return {"device": device_name(self.device), "amp": amp_name(self.amp_dtype),
                "channels_last": self.channels_last}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_env(device: str = "auto", amp: str = "auto", deterministic: bool = False) -> Env:
    """Device, mixed-precision policy and the CUDA speed settings; under torchrun, joins the process group
    (each process then computes on its own GPU).

    Args:
        device: "auto", "cpu", "cuda" or "cuda:N".
        amp: "auto", "bf16", "fp16" or "off".
        deterministic: deterministic algorithms (slower; warn-only on CUDA).
    """
    device_ = distributed.init(resolve_device(device))
    amp_dtype = resolve_amp(amp, device_)
    if deterministic:
        # warn_only: adaptive pooling, bilinear backward and NLL loss have no deterministic CUDA kernel.
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device_.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    scaler = torch.amp.GradScaler(device_.type) if amp_dtype == torch.float16 else None
    return Env(device=device_, amp_dtype=amp_dtype, channels_last=CHANNELS_LAST[device_.type],
               rank=distributed.rank(), world=distributed.world(), scaler=scaler)


def make_optimizer(name: str, param_groups: list[dict], lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.Optimizer:
    """SGD (momentum) or Adam over a model's parameter groups; each group keeps its ``lr_mult``."""
    groups = [dict(g, lr=lr * g.get("lr_mult", 1.0)) for g in param_groups]
    for g in groups:
        g["params"] = list(g["params"])
    # One fused kernel per optimizer step instead of a loop over tensors, same update rule (docs/benchmarks/).
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
def check_finite(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """The losses as floats; :class:`NonFiniteLoss` when one is NaN or infinite (the loop names the iteration)."""
    values = {k: float(v.detach()) for k, v in losses.items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise NonFiniteLoss(values)
    return values


def network_outputs(outputs) -> tuple:
    """A network's outputs as a tuple, main first (in eval mode a network returns its main output alone)."""
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def backward_segmentation(model: nn.Module, seg_loss: Callable, images: torch.Tensor, labels: torch.Tensor,
                          env: Env) -> tuple[tuple, dict[str, float]]:
    """The supervised part of every iteration: forward a labelled batch (on the device), its losses, backward.

    Returns the network's outputs (main first) and the logged losses: ``loss``, their sum, and each of them.
    """
    with env.autocast():
        outputs = network_outputs(model(images))
        losses = seg_loss(outputs, labels)
    values = check_finite(losses)
    env.backward(sum(losses.values()))
    return outputs, {"loss": sum(values.values()), **values}


def train_iteration(model: nn.Module, optimizer: torch.optim.Optimizer, seg_loss: Callable, batch,
                    env: Env) -> dict[str, float]:
    """One supervised iteration: forward (main and auxiliary heads), backward, optimizer step.

    Args:
        model: the segmentation network (DDP-wrapped under torchrun).
        optimizer: its optimizer, learning rate already set for this iteration.
        seg_loss: ``(outputs, labels) -> {name: loss}`` (``utils.losses.SegLosses``).
        batch: ``(uint8 images, int64 labels)``.
        env: device, autocast, gradient scaler.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    _, logs = backward_segmentation(model, seg_loss, env.images(batch[0]), env.labels(batch[1]), env)
    env.optimizer_step(optimizer)
    return logs


# ------------------------------------------------------------------------------------ epochs and evaluation
class TrainState:
    """What a checkpoint holds to resume training: named modules and optimizers, the global iteration.

    ``TrainState(env, model=net, optimizer=opt)``, plus e.g. ``discriminator=...``, ``disc_optimizer=...``.
    ``model`` is the network the loop evaluates. Under torchrun modules may be DDP wrappers; checkpoints hold
    the modules inside, so they load into single-process runs and back.
    """

    def __init__(self, env: Env, **parts: Any) -> None:
        if "model" not in parts:
            raise TypeError("TrainState needs model=")
        self.env, self.parts, self.global_it = env, parts, 0

    @property
    def model(self) -> nn.Module:
        return self.parts["model"]

    def state_dict(self) -> dict:
        state = {name: distributed.unwrap(p).state_dict() for name, p in self.parts.items()}
        state["global_it"] = self.global_it
        if self.env.scaler is not None:
            state["scaler"] = self.env.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for name, part in self.parts.items():
            distributed.unwrap(part).load_state_dict(state[name])
        self.global_it = int(state["global_it"])
        if self.env.scaler is not None and "scaler" in state:
            self.env.scaler.load_state_dict(state["scaler"])


def train_one_epoch(state: TrainState, iteration: Iteration, loader, epoch: int, *, start_iter: int = 0,
                    progress: bool = True) -> Iterator[tuple[int, dict]]:
    """Run ``iteration`` over one epoch of ``loader`` from batch ``start_iter``, yielding ``(iteration in the
    epoch, its logs)`` after each one: where the caller writes metrics, checks signals and saves."""
    loader.sampler.set_epoch(epoch, start_iter * loader.batch_size)
    bar = tqdm(loader, total=start_iter + len(loader), initial=start_iter, desc=f"epoch {epoch + 1}",
               leave=False, disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    for i, batch in enumerate(bar, start=start_iter + 1):
        try:
            logs = iteration(batch, state.global_it)
        except NonFiniteLoss as e:
            raise TrainingError(
                f"loss became {e} at iteration {state.global_it + 1}; training stopped and the last good "
                "checkpoint was kept. Lower the learning rate, or try --AMP=off.") from None
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"out of GPU memory at iteration {state.global_it + 1} (batch {batch[0].shape[0]} at "
                f"{tuple(batch[0].shape[-2:])}): lower --BATCH_SIZE or the crop/train size, or use --AMP=auto."
            ) from None
        state.global_it += 1
        t1 = time.perf_counter()
        logs["img_per_s"] = batch[0].shape[0] * state.env.world / max(t1 - t0, 1e-9)
        t0 = t1
        bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{logs.get('lr', float('nan')):.2e}")
        yield i, logs


class Means:
    """The mean of each logged value over an epoch's iterations."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, logs: dict[str, float]) -> None:
        self.n += 1
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def result(self) -> dict[str, float]:
        return {k: v / max(self.n, 1) for k, v in self.sums.items()}


@torch.inference_mode()
def confusion_matrix(model: nn.Module, loader, env: Env, num_classes: int | None = None, progress: bool = True,
                     desc: str = "eval") -> ConfusionMatrix:
    """The confusion matrix of ``model``'s predictions over the whole loader (the mIoU comes from it, never from
    an average of per-batch mIoUs).

    Logits of another size than the label (``EVAL_SIZE="native"`` with a resized input) are upsampled to
    the label, bilinearly, before the argmax. A batch of frames of several sizes (native-size images,
    full-resolution labels) is evaluated one size at a time. ``num_classes`` defaults to the model's. Under
    torchrun each process evaluates its shard of the loader (no image twice) with the unwrapped model (a DDP
    forward would wait for the other ranks at every batch, and shards may differ by one batch); the matrices are
    then summed.
    """
    model = distributed.unwrap(model)
    model.eval()
    cm = ConfusionMatrix(num_classes=num_classes or model.num_classes)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(0, 0)
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        # Images (or full-resolution labels) of several sizes come as one batch per size (utils.data.SizeGroups).
        for images, labels in batch if isinstance(batch, SizeGroups) else [batch]:
            labels = env.labels(labels)
            try:
                with env.autocast():
                    logits = model(env.images(images))
                if logits.shape[-2:] != labels.shape[-2:]:
                    logits = resize(logits.float(), labels.shape[-2:])
            except torch.OutOfMemoryError:
                raise TrainingError(
                    f"out of GPU memory while evaluating (batch {images.shape[0]} at {tuple(images.shape[-2:])}, "
                    f"labels {tuple(labels.shape[-2:])}): lower --BATCH_SIZE (evaluation uses it too) or "
                    "--EVAL_SIZE.") from None
            cm.update(pred=logits.argmax(1), target=labels)
    cm.reduce_from_all_processes()
    return cm


def eval_record(cm: ConfusionMatrix) -> dict:
    """A confusion matrix's scores (mIoU, pixel accuracy, per-class IoU) and the matrix itself, as a run records
    an evaluation."""
    return {**cm.compute(), "confusion": cm.mat.tolist()}


# ------------------------------------------------------------------------------------------- whole runs
@dataclass
class Progress:
    """Where a run is and what it measured: what ``last.pt`` holds besides the weights, so a resumed run goes on
    from there. ``unrecorded``: an epoch trained but not yet evaluated and recorded (a run stopped in between
    does that first when resumed)."""

    epoch: int = 0  # epochs finished
    iter_in_epoch: int = 0  # iterations finished in the epoch under way
    history: list = field(default_factory=list)  # one entry per finished epoch: mean logs, val_miou when evaluated
    best_miou: float | None = None
    train_seconds: float = 0.0  # over every resume
    last_eval: dict | None = None
    unrecorded: dict | None = None

    @classmethod
    def from_checkpoint(cls, state: dict) -> Progress:
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})


class Checkpoints:
    """fit's checkpoints: ``last.pt`` (the one it replaces kept as ``last.prev.pt``) and ``best.pt``, written by
    rank 0 alone; ``save_if_due`` writes ``last.pt`` when ``minutes`` have passed since the last one."""

    def __init__(self, state: TrainState, run: Run, progress: Progress, minutes: float) -> None:
        self.state, self.run, self.progress, self.minutes = state, run, progress, minutes
        self.model_spec = distributed.unwrap(state.model).spec
        self.saved_at = time.monotonic()

    def save(self, path: Path | None = None) -> None:
        path = path or self.run.last
        if self.state.env.is_main:
            ckpt = {"trainer": self.state.state_dict(), "state": asdict(self.progress), "rng": rng_state(),
                    "config": self.run.config, "model_spec": self.model_spec, "variant": self.run.variant}
            atomic_save(ckpt, path, keep_previous=path == self.run.last)
        if path == self.run.last:
            self.saved_at = time.monotonic()

    def save_if_due(self) -> None:
        if self.minutes > 0 and time.monotonic() - self.saved_at >= self.minutes * 60:
            self.save()


class StopSignals:
    """The first SIGINT/SIGTERM becomes a flag the loop checks between iterations; a second one interrupts at
    once. ``stop_if_received`` then saves ``last.pt``, prints the command that resumes, and exits."""

    def __init__(self, run: Run, checkpoints: Checkpoints) -> None:
        self.run, self.checkpoints = run, checkpoints
        self.received: int | None = None
        self._old: dict = {}

    def __enter__(self) -> StopSignals:
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

    def stop_if_received(self, where: str, save: bool = True) -> None:
        """After a signal on any rank (every rank stops at the same iteration): save, say how to resume, exit."""
        signum = distributed.any_rank_max(self.received or 0)
        if not signum:
            return
        if save:
            self.checkpoints.save()
        name = signal.Signals(signum).name
        print(f"\n{name}: stopped {where}; checkpoint saved to {self.run.last}.\nResume with:\n  {self.run.command}")
        self.run.log(f"{name} {where}; checkpoint saved")
        raise Interrupted(128 + signum)


def fit(state: TrainState, iteration: Iteration, run: Run, train_loader, val_loader, *, epochs: int,
        eval_every: int = 1, checkpoint_minutes: float = 10.0) -> dict:
    """Train ``state.model`` with ``iteration`` for ``epochs``, evaluating on ``val_loader`` every
    ``eval_every`` epochs and after the last; atomic checkpoints at epoch ends, every ``checkpoint_minutes``
    and on SIGINT/SIGTERM; exact mid-epoch resume when ``run.status`` is "resume". When it is "evaluate"
    (``EVAL_ONLY``), loads ``run.eval_checkpoint`` into the model and evaluates it instead.

    Returns the training record: ``last_eval`` (the final evaluation), ``epochs``, ``iterations``,
    ``train_seconds``, and for a trained run ``best_miou`` and ``history``.
    """
    env, show = state.env, state.env.is_main
    check_data(state.model, train_loader.dataset, val_loader.dataset)
    if run.status == "evaluate":
        return _evaluate_checkpoint(state, run, val_loader)
    if run.status not in ("new", "resume"):
        raise ValueError(f"fit needs a started run (new or resume), not {run.status!r}")
    progress = _resume(state, run) if run.status == "resume" else Progress()
    described = env.describe()
    run.log(f"{run.status}: {run.dir}, {epochs} epochs x {len(train_loader)} iterations, {described}")
    print(f"[{run.dir}] {len(train_loader.dataset)} train / {len(val_loader.dataset)} val images, "
          f"{epochs} epochs x {len(train_loader)} iterations, {described['device']}, AMP {described['amp']}")
    metrics = MetricsCSV(run.metrics_path, resume_at=state.global_it if run.status == "resume" else None) \
        if show else None
    checkpoints = Checkpoints(state, run, progress, checkpoint_minutes)
    started, seconds_before = time.perf_counter(), progress.train_seconds

    def seconds() -> float:
        return seconds_before + time.perf_counter() - started

    with StopSignals(run, checkpoints) as stop:
        if progress.unrecorded is not None:
            print(f"epoch {progress.unrecorded['epoch']} was trained but not evaluated and recorded before the run "
                  "stopped: doing that first")
            _record_epoch(state, run, val_loader, progress, checkpoints, epochs, eval_every, seconds)
        for epoch in tqdm(range(progress.epoch, epochs), initial=progress.epoch, total=epochs, desc="epochs",
                          disable=not show, dynamic_ncols=True):
            progress.epoch = epoch
            means = Means()
            for i, logs in train_one_epoch(state, iteration, train_loader, epoch, start_iter=progress.iter_in_epoch,
                                           progress=show):
                means.add(logs)
                progress.iter_in_epoch, progress.train_seconds = i, seconds()
                if metrics is not None:
                    metrics.write({"epoch": epoch + 1, "iter": i, "global_it": state.global_it, **logs})
                stop.stop_if_received(f"at epoch {epoch + 1}, iteration {i}")
                checkpoints.save_if_due()
            progress.epoch, progress.iter_in_epoch = epoch + 1, 0
            progress.unrecorded = {"epoch": epoch + 1, "global_it": state.global_it, **means.result()}
            progress.train_seconds = seconds()
            checkpoints.save()  # the epoch's training is kept whatever its evaluation does
            _record_epoch(state, run, val_loader, progress, checkpoints, epochs, eval_every, seconds)
            # a signal during the evaluation or the epoch's last iteration: last.pt was just saved
            stop.stop_if_received(f"after epoch {epoch + 1}", save=False)
    return {"last_eval": progress.last_eval, "epochs": epochs, "iterations": state.global_it,
            "train_seconds": progress.train_seconds, "best_miou": progress.best_miou, "history": progress.history}


def _resume(state: TrainState, run: Run) -> Progress:
    """The weights, optimizers, RNG states and progress of the run's ``last.pt`` (or of the previous one)."""
    resume = load_resumable(run.last, map_location=state.env.device)[0]
    state.load_state_dict(resume["trainer"])
    set_rng_state(resume["rng"])
    progress = Progress.from_checkpoint(resume["state"])
    print(f"resuming {run.dir} at epoch {progress.epoch + 1}, iteration {progress.iter_in_epoch} "
          f"(global {state.global_it})")
    run.log(f"resumed at epoch {progress.epoch + 1} iteration {progress.iter_in_epoch}")
    return progress


def _record_epoch(state: TrainState, run: Run, val_loader, progress: Progress, checkpoints: Checkpoints,
                  epochs: int, eval_every: int, seconds: Callable[[], float]) -> None:
    """The end of the epoch in ``progress.unrecorded``: evaluated when due, appended to the history, saved
    (``best.pt`` when it is the best so far, then ``last.pt``) and logged."""
    entry = progress.unrecorded
    done = entry["epoch"]
    best = False
    if done % eval_every == 0 or done == epochs:
        distributed.broadcast_buffers(state.model)
        result = eval_record(confusion_matrix(state.model, val_loader, state.env, progress=state.env.is_main))
        entry["val_miou"] = result["miou"]
        progress.last_eval = {**result, "epoch": done}
        best = progress.best_miou is None or result["miou"] > progress.best_miou
        if best:
            progress.best_miou = result["miou"]
    progress.history.append(entry)
    progress.unrecorded = None
    progress.train_seconds = seconds()
    if best:
        checkpoints.save(run.best)
    checkpoints.save()
    line = (f"epoch {done}/{epochs} loss {entry.get('loss', float('nan')):.4f} lr {entry.get('lr', float('nan')):.3e}"
            + (f" val mIoU {entry['val_miou']:.2f}" if "val_miou" in entry else ""))
    run.log(line)
    tqdm.write(line) if state.env.is_main else print(line)


def check_data(model: nn.Module, *datasets) -> None:
    """Before training on ``datasets`` (looked through wrappers such as ``Subset``): a ConfigError when ``model``
    predicts another number of classes than their labels hold (``num_classes``: its mIoU would be over the wrong
    classes), then each dataset's own check of its labels (``check_labels()``: a warning when most pixels are
    ignored)."""
    predicted = distributed.unwrap(model).num_classes
    inners = []
    for dataset in datasets:
        while getattr(dataset, "num_classes", None) is None and hasattr(dataset, "dataset"):
            dataset = dataset.dataset
        inners.append(dataset)
        held = getattr(dataset, "num_classes", None)
        if held is not None and held != predicted:
            raise ConfigError(f"{option('num_classes', predicted)} does not fit the data: the labels of "
                              f"{type(dataset).__name__} hold {held} classes (train ids 0..{held - 1}, 255 ignored), "
                              f"so a model of {predicted} classes would be trained and scored on the wrong classes. "
                              f"Use {option('num_classes', held)}.")
    for dataset in inners:
        if distributed.is_main() and hasattr(dataset, "check_labels"):
            dataset.check_labels()


def _evaluate_checkpoint(state: TrainState, run: Run, val_loader) -> dict:
    """``EVAL_ONLY``: the model's weights from ``run.eval_checkpoint``, evaluated once."""
    model = distributed.unwrap(state.model)
    path = run.eval_checkpoint
    ckpt = model.load_weights(path)
    result = eval_record(confusion_matrix(model, val_loader, state.env, progress=state.env.is_main))
    trained = ckpt.get("state", {})
    return {"last_eval": result, "epochs": trained.get("epoch", 0),
            "iterations": ckpt.get("trainer", {}).get("global_it", 0),
            "train_seconds": trained.get("train_seconds", 0.0), "evaluated_checkpoint": str(path)}


__all__ = ["Env", "TrainState", "TrainingError", "Interrupted", "NonFiniteLoss", "setup_env", "seed_everything",
           "make_optimizer", "check_finite", "network_outputs", "backward_segmentation", "train_iteration",
           "train_one_epoch", "Means", "confusion_matrix", "eval_record", "Progress", "Checkpoints", "StopSignals",
           "fit", "check_data"]
