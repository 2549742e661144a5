"""The fast path (utils/fast.py) computes what the plain model computes, and benchmark.py keeps its contract.

Timing claims live in benchmark.py; these tests only check that "fast" is the same function.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from models import BiSeNet, DeepLabV2
from utils import fast
from utils.errors import ConfigError

MODELS = {"bisenet": lambda: BiSeNet(num_classes=19), "deeplabv2": lambda: DeepLabV2(num_classes=19)}


def _randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial statistics and affine parameters, so folding them has something to get wrong."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def _world_image(tiny_world) -> torch.Tensor:
    """A structured input: a synthetic-world street image, not noise."""
    path = sorted((tiny_world / "Cityscapes" / "leftImg8bit" / "val").rglob("*.png"))[0]
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fast_path_matches_plain(name, tiny_world):
    torch.manual_seed(0)
    model = _randomise_batchnorm(MODELS[name]())
    x = _world_image(tiny_world)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    quick = fast.inference_model(model, torch.device("cpu"), channels_last=True)
    assert quick.folded_batchnorms == n_bn  # every BatchNorm in both models follows a convolution
    assert not any(isinstance(m, nn.BatchNorm2d) for m in quick.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the original must be left untouched"
    with torch.inference_mode():
        ref = model(x)
        out = quick(x.contiguous(memory_format=torch.channels_last))
    rel = ((out - ref).norm() / ref.norm()).item()
    assert rel < 1e-4, f"fp32 fast path differs from plain by {rel:.2e}"
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.98


def test_bf16_fast_path_agrees_on_argmax(tiny_world):
    torch.manual_seed(0)
    model = _randomise_batchnorm(BiSeNet(num_classes=19))
    x = _world_image(tiny_world)
    quick = fast.inference_model(model, torch.device("cpu"), channels_last=True, dtype=torch.bfloat16)
    with torch.inference_mode():
        ref, out = model(x), quick(x).float()
    assert out.shape == ref.shape
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.98


class _ReusesConvOutput(nn.Module):
    """The convolution's raw output also feeds the sum, so folding its BatchNorm into it would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x.float())
        return self.bn(y) + y


def test_folding_that_would_change_the_output_is_refused():
    model = _randomise_batchnorm(_ReusesConvOutput())
    x = torch.rand(1, 3, 16, 16)
    with pytest.warns(UserWarning, match="BatchNorm folding changed"):
        folded = fast.fold_batchnorm(model, example=x)
    assert folded.folded_batchnorms == 0
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x))


def test_compile_failure_falls_back_with_a_warning(monkeypatch):
    def broken_compile(module, **kwargs):
        def run(x):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = BiSeNet(num_classes=19).eval()
    quick = fast.inference_model(model, torch.device("cpu"), channels_last=False, compile_mode="reduce-overhead")
    x = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        with torch.inference_mode():
            out = quick(x)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, then quietly on the fallback
        assert torch.allclose(quick(x), out)


def test_fp32_autocast_leaves_an_outer_autocast_alone():
    from utils.device import autocast

    cpu = torch.device("cpu")
    with autocast(cpu, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        with fast.inference_context(cpu, None):
            assert torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


def test_compile_setting_is_validated():
    cpu = torch.device("cpu")
    assert fast.resolve_compile("auto", cpu) is None
    assert fast.resolve_compile("off", torch.device("cuda")) is None
    assert fast.resolve_compile("reduce-overhead", cpu) == "reduce-overhead"
    with pytest.raises(ConfigError, match="COMPILE must be one of"):
        fast.resolve_compile("turbo", cpu)


def test_benchmark_writes_the_spec_json(tiny_world, tmp_path):
    import benchmark

    out = tmp_path / "bench.json"
    # BiSeNet only: DeepLabV2's fast path is checked above, and its fvcore trace alone costs a minute here.
    result = benchmark.main(["--device", "cpu", "--models", "bisenet", "--height", "32", "--width", "64",
                             "--iters", "1", "--warmup", "0", "--train-height", "32", "--train-width", "64",
                             "--train-batch", "2", "--loader-images", "4", "--peak-size", "128",
                             "--data-root", str(tiny_world / "Cityscapes"), "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["resolution"] == [32, 64] and saved["train_resolution"] == [32, 64] and saved["batch"] == 1
    for key in ("device", "torch", "train_batch", "peak_gflops", "models", "data"):
        assert key in saved
    assert set(saved["peak_gflops"]) == {"fp32", "bf16"} and saved["peak_gflops"]["fp32"] > 0
    assert set(saved["models"]) == {"bisenet"}
    for m in saved["models"].values():
        for key in ("latency_ms", "fps", "train_img_s"):
            assert set(m[key]) >= {"plain", "fast"} and all(v > 0 for v in m[key].values())
        assert m["mfu_fast"] > 0 and m["argmax_agreement"] >= 0.9
        assert set(m["optimizer_step_ms"]) == {"sgd", "adam"}
        assert all(set(v) == {"plain", "fast"} and min(v.values()) > 0 for v in m["optimizer_step_ms"].values())
    assert saved["models"]["bisenet"]["params_m"] == pytest.approx(12.068, abs=0.01)
    assert set(saved["data"]["label_decode_ms"]) == {"naive", "fast"}
    assert all(v > 0 for v in saved["data"]["loader_img_s"].values())
    assert result["models"]["bisenet"]["flops_g"] == saved["models"]["bisenet"]["flops_g"]
