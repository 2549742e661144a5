"""Model complexity: parameters, FLOPs (fvcore) and latency.

fvcore counts one multiply-add as one FLOP, so every figure shown says "FLOPs (fvcore, multiply-adds)".
Latency is timed with ``time.perf_counter`` around a synchronised device: without ``torch.cuda.synchronize``
a GPU timing measures the kernel launches, not the work.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import torch
from torch import nn

from utils.device import autocast

FLOPS_HEADER = "FLOPs (fvcore, multiply-adds)"


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared tensors once)."""
    return sum(p.numel() for p in model.parameters())


def _input_channels(model: nn.Module) -> int:
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return 3 if first_conv is None else first_conv.in_channels


def _example_input(model: nn.Module, size: Sequence[int], batch: int, device: torch.device,
                   uint8: bool) -> torch.Tensor:
    """An image batch as the model takes it: uint8 RGB for models that normalise their own input."""
    h, w = int(size[0]), int(size[1])
    if uint8 and hasattr(model, "normalize_input"):
        return torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, device=device)
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.rand(batch, _input_channels(model), h, w, device=device, dtype=dtype)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def count_flops(model: nn.Module, size: Sequence[int] = (512, 1024)) -> float:
    """GFLOPs of one eval-mode forward pass at ``size`` (H, W), as fvcore counts them (multiply-adds).

    The input is one float image in [0, 1] on the model's device (the count does not depend on the device).
    The model's train/eval mode is restored afterwards.

    Args:
        model: the model; its first convolution's channels decide the input channels when it does not take
            RGB images.
        size: input (H, W).
    """
    from fvcore.nn import FlopCountAnalysis

    was_training = model.training
    model.eval()
    try:
        x = _example_input(model, size, 1, _model_device(model), uint8=False)
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            gflops = analysis.total() / 1e9
    finally:
        model.train(was_training)
    return gflops


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_channels_last(model: nn.Module) -> bool:
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    return weight is not None and weight.is_contiguous(memory_format=torch.channels_last) \
        and not weight.is_contiguous()


def measure_latency(model: nn.Module, size: Sequence[int] = (512, 1024),
                    device: torch.device | str = torch.device("cpu"), iters: int = 20, warmup: int = 5,
                    batch: int = 1, amp_dtype: torch.dtype | None = None,
                    channels_last: bool = False) -> dict[str, Any]:
    """Inference latency of ``model`` on ``device``: warm-up, then ``iters`` individually timed runs.

    Each run is timed with ``time.perf_counter`` between two device synchronisations, under
    ``torch.inference_mode()`` and in eval mode, on a uint8 image batch already on the device (models that
    normalise their own input; others get float input). The model's device, memory format and mode are
    restored afterwards.

    Args:
        model: the model to time.
        size: input (H, W).
        device: where to run it.
        iters: timed runs.
        warmup: untimed runs first (cuDNN autotuning, allocator, caches).
        batch: images per run.
        amp_dtype: autocast to this dtype (e.g. ``torch.bfloat16``), or None for fp32.
        channels_last: run model and input in channels-last memory format.

    Returns:
        ``{"latency_ms", "latency_std_ms", "fps", "runs", "resolution", "batch", "device", "amp"}``: mean and
        sample standard deviation of one run in ms, images per second, the number of timed runs, [H, W].
    """
    if iters < 1 or warmup < 0 or batch < 1:
        raise ValueError(f"need iters >= 1, warmup >= 0, batch >= 1 (got {iters}, {warmup}, {batch})")
    device = torch.device(device)
    was_training = model.training
    home = _model_device(model)
    was_channels_last = _is_channels_last(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.eval()
    times = []
    try:
        x = _example_input(model, size, batch, device, uint8=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device, amp_dtype):
            for _ in range(warmup):
                model(x)
            _synchronize(device)
            for _ in range(iters):
                start = time.perf_counter()
                model(x)
                _synchronize(device)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        if channels_last and not was_channels_last:
            model.to(memory_format=torch.contiguous_format)
        model.to(home)
        model.train(was_training)
    mean = statistics.fmean(times)
    return {"latency_ms": mean, "latency_std_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
            "fps": batch * 1000.0 / mean, "runs": len(times), "resolution": [int(size[0]), int(size[1])],
            "batch": batch, "device": str(device), "amp": "off" if amp_dtype is None else str(amp_dtype)}
