"""The fast inference path shared by the step scripts' latency figure, ``predict.py`` and ``benchmark.py``.

What it does, each kept because ``benchmark.py`` measured it paying off (docs/benchmarks/):

- BatchNorm folded into the convolution that feeds it: one kernel and one pass over the activations instead
  of two. Which BatchNorm follows which convolution is read off one traced forward pass (a BatchNorm whose
  input is exactly a convolution's output), never guessed from module names, and the folded copy is checked
  against the original before it is used.
- channels_last (``CHANNELS_LAST``, also the training memory format) and ``torch.inference_mode``.
- weights cast once to the AMP policy's dtype (``utils.device.resolve_amp``: bf16 on GPUs of compute
  capability 8.0+, fp16 on older ones, bf16 on CPUs with native bf16, else fp32), since autocast would cast
  them again on every call.
- optionally CUDA graphs (``COMPILE="cudagraph"``: one replay instead of a hundred kernel launches, which
  is what a batch-1 forward on a fast GPU waits for) or ``torch.compile``; "auto" picks what was measured
  to help on that device.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from utils.device import autocast, resolve_amp
from utils.errors import ConfigError

# Defined here, not in utils.config (which takes them from here), so the fast path needs no command-line parser.
COMPILE_CHOICES = ("auto", "off", "cudagraph", "default", "max-autotune-no-cudagraphs", "reduce-overhead")
# What "auto" means per device type (None = eager), as benchmark.py measured it (docs/benchmarks/).
COMPILE_AUTO: dict[str, str | None] = {"cpu": None, "cuda": "reduce-overhead"}
# Training and inference memory format. NHWC is what cuDNN's tensor-core convolutions want, and oneDNN on
# this project's CPU ran faster in it too; the figures behind both choices are in docs/benchmarks/README.md.
CHANNELS_LAST: dict[str, bool] = {"cpu": True, "cuda": True}


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(conv, bn) pairs where the BatchNorm's input is the very tensor the convolution returned."""
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
    hooks = []

    def on_conv(module, inputs, output):
        produced[id(output)] = module
        keep.append(output)

    def on_bn(module, inputs, output):
        conv = produced.get(id(inputs[0]))
        if conv is not None:
            pairs.append((conv, module))

    keep: list[torch.Tensor] = []  # holds outputs alive so their ids stay unique during the pass
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        if isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(on_bn))
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    # A convolution feeding two BatchNorms cannot absorb both; other reuse is caught by fold_batchnorm's check.
    return [(c, b) for c, b in pairs if sum(1 for cc, _ in pairs if cc is c) == 1]


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine \
        else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias.detach() if bn.affine else 0.0) - bn.running_mean * scale
    with torch.no_grad():
        bias = conv.bias.detach() * scale + shift if conv.bias is not None else shift
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)


def _replace(model: nn.Module, target: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for name, child in parent.named_children():
            if child is target:
                setattr(parent, name, new)


def fold_batchnorm(model: nn.Module, example: torch.Tensor | None = None, check: bool = True,
                   inplace: bool = False) -> nn.Module:
    """An eval-mode copy of ``model`` with each BatchNorm that directly follows a convolution folded into it.

    Args:
        model: any module; it is not modified.
        example: an input for the tracing pass (default: one 64x64 uint8 RGB image on the model's device).
        check: compare the folded copy with the original on ``example`` and return the unfolded copy, with a
            warning, when they disagree (a module that reuses a convolution's output elsewhere, say).
        inplace: fold into ``model`` itself (a copy the caller owns) instead of a new copy.

    Returns:
        The folded copy (``model.folded_batchnorms`` says how many were folded).
    """
    model = (model if inplace else copy.deepcopy(model)).eval()
    device = next(model.parameters()).device
    if example is None:
        example = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, device=device)
    pairs = _conv_bn_pairs(model, example)
    if not pairs:
        model.folded_batchnorms = 0
        return model
    original = copy.deepcopy(model) if check else None
    for conv, bn in pairs:
        _fold(conv, bn)
        _replace(model, bn, nn.Identity())
    model.folded_batchnorms = len(pairs)
    if original is not None:
        # In true fp32: TF32 convolutions alone differ from fp32 by ~1e-3.
        tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.inference_mode():
                ref, out = original(example).float(), model(example).float()
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        err = (out - ref).norm() / ref.norm().clamp_min(1e-12)
        if not torch.isfinite(err) or err > 1e-4:
            warnings.warn(f"BatchNorm folding changed {type(model).__name__}'s output (relative error "
                          f"{float(err):.2e}); using the unfolded model", stacklevel=2)
            original.folded_batchnorms = 0
            return original
    return model


def resolve_compile(mode: str, device: torch.device) -> str | None:
    """The torch.compile mode for ``COMPILE`` on ``device`` (None: run eagerly)."""
    mode = str(mode).lower()
    if mode not in COMPILE_CHOICES:
        raise ConfigError(f"COMPILE must be one of {', '.join(COMPILE_CHOICES)}; got {mode!r}")
    if mode == "auto":
        return COMPILE_AUTO.get(device.type)
    return None if mode == "off" else mode


class CUDAGraphed(nn.Module):
    """Replays a captured CUDA graph of ``module``'s forward, one graph per input shape and dtype.

    The input is copied into the graph's static buffer and the output is a fresh copy, so callers can keep
    results across calls. Inference only.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self._graphs: dict = {}
        if hasattr(module, "normalize_input"):  # callers check it to feed uint8 images
            self.normalize_input = module.normalize_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last))
        if key not in self._graphs:
            static_in = x.clone()
            stream = torch.cuda.Stream(x.device)
            stream.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # cuDNN picks its algorithms before the capture
                    self.module(static_in)
            torch.cuda.current_stream(x.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.module(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()


def inference_model(model: nn.Module, device: torch.device, *, channels_last: bool,
                    dtype: torch.dtype | None = None, compile_mode: str | None = None) -> nn.Module:
    """The model as the fast path runs it: an eval copy, BatchNorm folded, cast, in channels_last, graphed.

    Args:
        model: a trained or random model (left untouched).
        device: where it will run.
        channels_last: convert weights to NHWC (what cuDNN's tensor cores want).
        dtype: cast weights and buffers to this dtype (the AMP dtype), or None for fp32.
        compile_mode: "cudagraph" (CUDA only), a ``torch.compile`` mode, or None for eager.
    """
    fast = fold_batchnorm(copy.deepcopy(model).to(device).eval(), inplace=True)
    for p in fast.parameters():
        p.requires_grad_(False)
    if dtype is not None:
        fast = fast.to(dtype)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    if compile_mode == "cudagraph":
        return CUDAGraphed(fast) if device.type == "cuda" else fast
    if compile_mode is not None:
        return _CompiledOrGraphed(fast, compile_mode)
    return fast


class _CompiledOrGraphed(nn.Module):
    """``torch.compile(module)``; if compiling fails (no compiler, an unsupported op), the CUDA-graphed
    (or, on CPU, eager) module, with one warning that says why."""

    def __init__(self, module: nn.Module, mode: str) -> None:
        super().__init__()
        self.module = module
        self.compiled = torch.compile(module, mode=mode, dynamic=False)
        self.fallback: nn.Module | None = None
        if hasattr(module, "normalize_input"):
            self.normalize_input = module.normalize_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fallback is None:
            try:
                out = self.compiled(x)
                # reduce-overhead replays CUDA graphs into static memory: hand out a copy, as CUDAGraphed does.
                return out.clone()
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # noqa: BLE001 - any compiler failure falls back to a path that works
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                              "using CUDA graphs / eager instead (set COMPILE=cudagraph or off to skip it)",
                              stacklevel=2)
                self.fallback = CUDAGraphed(self.module) if x.is_cuda else self.module
        return self.fallback(x)


@contextlib.contextmanager
def inference_context(device: torch.device, amp_dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast to ``amp_dtype`` (None: fp32)."""
    with torch.inference_mode(), autocast(device, amp_dtype):
        yield


def fast_settings(device: torch.device, amp: str = "auto", compile_mode: str = "auto") -> dict:
    """The fast path's settings on ``device`` (what the step scripts and benchmark.py's "fast" use).

    Returns:
        ``{"amp_dtype", "channels_last", "compile"}`` (BatchNorm is always folded on the fast path).
    """
    return {"amp_dtype": resolve_amp(amp, device), "channels_last": CHANNELS_LAST[device.type],
            "compile": resolve_compile(compile_mode, device)}
