"""Device and mixed-precision policy: one place decides what "auto" means, so training, evaluation, latency
and ``predict.py`` never disagree about it.

DEVICE=auto is the GPU when PyTorch sees one, else the CPU. AMP=auto is bf16 on GPUs of compute capability
8.0+, fp16 (with a GradScaler) on older GPUs, bf16 on CPUs that run it natively, and fp32 everywhere else.
"""
from __future__ import annotations

import contextlib
import functools
import platform

import torch

from utils.errors import ConfigError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu. Asking for cuda without a GPU is a clear error."""
    name = str(name).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"DEVICE={name} but no CUDA GPU is visible to PyTorch "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                          "use --DEVICE=cpu or install the torch build that matches your driver (README).")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"DEVICE must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16 or AMX: there bf16 matmuls run natively, elsewhere they are emulated."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` (one of ``AMP_CHOICES``) on ``device``; None means fp32.

    auto: bf16 on CUDA >= 8.0, fp16 (with a GradScaler) on older GPUs, bf16 on CPUs with native bf16,
    fp32 otherwise. ``torch.cuda.is_bf16_supported()`` is not used: it also says yes when bf16 is emulated.
    """
    amp = str(amp).lower()
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("AMP=fp16 needs a CUDA device; use AMP=bf16 or off on CPU.")
        return torch.float16
    if amp != "auto":
        raise ConfigError(f"AMP must be auto, bf16, fp16 or off, got {amp!r}")
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or, for None (fp32), a context that does nothing.

    Not ``torch.autocast(enabled=False)``: that would also switch off an autocast the caller has opened.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def amp_name(dtype: torch.dtype | None) -> str:
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def device_name(device: torch.device) -> str:
    """"cpu" or "cuda (GPU name)", as results.json records it."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"
