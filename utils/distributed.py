"""Several processes, one run: what the engine needs from ``torch.distributed`` under ``torchrun``.

``torchrun --nproc_per_node=N script.py ...`` starts N copies of a step script with ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` set. :func:`init` joins them into one process group (NCCL on CUDA, Gloo on CPU), gives
each its own GPU, and silences ``print`` to stdout on every rank but 0. Run without torchrun, every function
here is a cheap no-op and the process behaves as a single-process run always did.
"""
from __future__ import annotations

import atexit
import builtins
import contextlib
import os
import sys
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from utils.errors import ConfigError


def launched_world() -> int:
    """How many processes torchrun started (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group (once) and return the device this process computes on.

    Args:
        device: the resolved ``DEVICE``; a CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per process).
    """
    if launched_world() <= 1:
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', '?')} processes on this machine "
                              f"but only {torch.cuda.device_count()} GPU(s) are visible: use "
                              f"--nproc_per_node={torch.cuda.device_count()} or fewer.")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
        atexit.register(cleanup)
        if dist.get_rank() != 0:
            _quiet_stdout()
    return device


def cleanup() -> None:
    """Leave the process group (at exit; harmless when there is none)."""
    if is_initialized():
        dist.destroy_process_group()


def _quiet_stdout() -> None:
    """Every rank runs the same code: only rank 0's stdout is worth reading. stderr (errors) stays on."""
    real_print = builtins.print

    def print(*args, **kwargs):  # noqa: A001 - stands in for the builtin on ranks > 0
        if kwargs.get("file") in (None, sys.stdout):
            return
        real_print(*args, **kwargs)

    builtins.print = print


def barrier() -> None:
    if is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. generates files); the others wait, then run it (and find them)."""
    if not is_main():
        barrier()
    yield
    if is_main():  # not reached when rank 0 fails: torchrun then stops the waiting ranks
        barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def collective_device() -> torch.device:
    """Where tensors handed to collectives must live: the current GPU under NCCL, else the CPU."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank_max(value: int) -> int:
    """The largest ``value`` over all ranks (e.g. a signal number, 0 for none): one decision for all."""
    if not is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def sum_across_ranks(value: int) -> int:
    """The sum of ``value`` over all ranks (``value`` itself without torchrun)."""
    if not is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(t)
    return int(t.item())


@torch.no_grad()
def average_across_ranks(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor, in place, by its mean over all ranks (a no-op without torchrun)."""
    if not is_initialized():
        return
    dev = collective_device()
    for tensor in tensors:
        t = tensor.to(dev)
        dist.all_reduce(t)
        t /= world()
        tensor.copy_(t)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def wrap(model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` for training on every rank: SyncBatchNorm (CUDA only) inside DistributedDataParallel.

    Unchanged when there is one process. The BatchNorm layers are swapped in place, keeping their parameters
    and buffers (and state-dict keys), so an optimizer built over ``model`` and checkpoints of
    ``unwrap(wrapped)`` stay valid and interchangeable with single-process ones.

    Args:
        find_unused_parameters: True when a backward pass does not reach every parameter (the adversarial
            iteration's target pass leaves BiSeNet's auxiliary heads out).
    """
    if world() <= 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters)


@torch.no_grad()
def broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    Without SyncBatchNorm (CPU) each rank's statistics drift on its own shard; evaluating with rank 0's
    everywhere makes the sharded evaluation that of the model the checkpoint holds.
    """
    if not is_initialized():
        return
    dev = collective_device()
    for buf in unwrap(model).buffers():
        t = buf.to(dev)
        dist.broadcast(t, src=0)
        if t is not buf:
            buf.copy_(t)
