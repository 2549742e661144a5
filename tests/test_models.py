"""Models: shapes, gradients, structure, input normalisation, parameter counts, weight loading, specs."""
from __future__ import annotations

import copy
import io
import json
import math
import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import models.bisenet
from models import BiSeNet, DeepLabV2, FCDiscriminator, build_model, check_spec, get_deeplab_v2
from models._common import CAFFE_NORM, TORCHVISION_NORM
from utils.errors import CheckpointError, ConfigError
from utils.ops import resize

SEG_MODELS = ["bisenet", "deeplabv2", "deeplabv2_frozen_bn"]
# ResNet-101: 104 convolutions and 104 BatchNorms (weight, bias, running mean, running var).
RESNET101_TENSORS = 104 + 104 * 4


def make(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "bisenet":
        return BiSeNet()
    if name == "deeplabv2":
        return DeepLabV2()
    if name == "deeplabv2_frozen_bn":
        return DeepLabV2(bn_mode="frozen")
    raise KeyError(name)


@pytest.fixture(scope="module")
def built():
    """One instance of each model for tests that only read them (building DeepLabV2 takes a second)."""
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            cache[name] = make(name)
        return cache[name]
    return get


def images(n: int = 2, h: int = 64, w: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)


# ----------------------------------------------------------------------------------------------- forward

# BiSeNet needs 1/32 features; DeepLabV2 (44 M parameters, output stride 8) runs smaller to keep tests fast.
FORWARD_SIZE = {"bisenet": (64, 128), "deeplabv2": (40, 72), "deeplabv2_frozen_bn": (40, 72)}


@pytest.mark.parametrize("name", SEG_MODELS)
def test_forward_train_and_eval(name, built):
    model = built(name)
    h, w = FORWARD_SIZE[name]
    model.train()
    with torch.no_grad():
        out = model(images(2, h, w))
    assert isinstance(out, tuple) and len(out) == 3
    assert out[0].shape == (2, 19, h, w) and torch.isfinite(out[0]).all()
    for aux in out[1:]:
        if name == "bisenet":
            assert aux.shape == (2, 19, h, w) and torch.isfinite(aux).all()
        else:
            assert aux is None
    model.eval()
    with torch.no_grad():
        logits = model(images(1, h - 7, w + 5))  # odd size: logits still come back at the input's size
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 19, h - 7, w + 5)
    assert torch.isfinite(logits).all()


def test_discriminator_forward():
    torch.manual_seed(0)
    d = FCDiscriminator(num_classes=19, ndf=64)
    probs = torch.softmax(torch.randn(2, 19, 64, 128), dim=1)
    out = d(probs)
    assert out.shape == (2, 1, 2, 4) and torch.isfinite(out).all()
    slopes = {m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}


def test_bisenet_refuses_batch_of_one_in_training(built):
    model = built("bisenet")
    model.train()
    with pytest.raises(ConfigError, match="BATCH_SIZE >= 2"):
        model(images(1, 64, 64))
    model.eval()
    with torch.no_grad():
        assert model(images(1, 64, 64)).shape == (1, 19, 64, 64)


# --------------------------------------------------------------------------------------------- gradients

def gradient_report(model: nn.Module, loss: torch.Tensor) -> tuple[list[str], list[str]]:
    """(trainable parameters without a real gradient, frozen parameters with one). Run in float64, where a
    gradient that is analytically zero (a bias feeding a BatchNorm) is ~1e-16 and real ones are > 1e-6."""
    loss.backward()
    dead = [n for n, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().max() < 1e-10)]
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    return dead, frozen_with_grad


def test_gradient_check_detects_a_dead_bias():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)).double()
    out = net(torch.rand(2, 3, 16, 16, dtype=torch.float64))
    dead, _ = gradient_report(net, F.cross_entropy(out, torch.randint(0, 4, (2, 14, 14))))
    assert dead == ["0.bias"]


@pytest.mark.parametrize("name", SEG_MODELS)
def test_every_trainable_parameter_learns(name):
    model = make(name).double().train()
    n, size = (2, 64) if name == "bisenet" else (1, 32)
    x = images(n, size, size)
    target = torch.randint(0, 19, (n, size, size), generator=torch.Generator().manual_seed(1))
    loss = sum(F.cross_entropy(o, target) for o in model(x) if o is not None)
    dead, frozen_with_grad = gradient_report(model, loss)
    assert dead == []
    assert frozen_with_grad == []
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if name == "deeplabv2_frozen_bn":
        assert len(frozen) == 2 * 104 and all(".bn" in n or "downsample.1" in n for n in frozen)
    else:
        assert frozen == []


def test_discriminator_every_parameter_learns():
    torch.manual_seed(0)
    d = FCDiscriminator().double()
    out = d(torch.softmax(torch.randn(2, 19, 64, 64, dtype=torch.float64), dim=1))
    dead, _ = gradient_report(d, F.binary_cross_entropy_with_logits(out, torch.ones_like(out)))
    assert dead == []


def test_frozen_batchnorm_keeps_statistics_in_train_mode(built):
    frozen = copy.deepcopy(built("deeplabv2_frozen_bn")).train()
    bns = [m for m in frozen.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and frozen.classifier.training
    before = bns[0].running_mean.clone()
    with torch.no_grad():
        frozen(images(1, 32, 32))
    assert torch.equal(bns[0].running_mean, before)

    scratch = copy.deepcopy(built("deeplabv2")).train()
    bn = next(m for m in scratch.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.training and bn.weight.requires_grad
    before = bn.running_mean.clone()
    with torch.no_grad():
        scratch(images(1, 32, 32))
    assert not torch.equal(bn.running_mean, before)


# --------------------------------------------------------------------------------------------- structure

def test_deeplab_structure_is_caffe_style_output_stride_8(built):
    backbone = built("deeplabv2").backbone
    assert backbone.maxpool.ceil_mode
    for layer, (stride, dilation) in {"layer1": (1, 1), "layer2": (2, 1), "layer3": (1, 2),
                                      "layer4": (1, 4)}.items():
        for i, block in enumerate(getattr(backbone, layer)):
            first_stride = stride if i == 0 else 1
            assert block.conv1.stride == (first_stride, first_stride), f"{layer}.{i}: stride sits on the 1x1 conv"
            assert block.conv1.kernel_size == (1, 1)
            assert block.conv2.stride == (1, 1)
            assert block.conv2.dilation == (dilation, dilation) and block.conv2.padding == (dilation, dilation)
            if block.downsample is not None:
                assert block.downsample[0].stride == (first_stride, first_stride)
    sizes = {}

    def record(name):
        def hook(module, inputs, output):
            sizes[name] = tuple(output.shape[-2:])
        return hook
    hooks = [getattr(backbone, n).register_forward_hook(record(n)) for n in ("layer2", "layer3", "layer4")]
    with torch.no_grad():
        backbone.eval()(torch.rand(1, 3, 64, 128))
    for h in hooks:
        h.remove()
    # Output stride 8 with AdaptSegNet's ceil-mode max-pool: 512x1024 -> 65x129, 64x128 -> 9x17.
    assert sizes["layer2"] == sizes["layer3"] == sizes["layer4"] == (math.ceil(64 / 8) + 1, math.ceil(128 / 8) + 1)
    classifier = built("deeplabv2").classifier
    assert [c.dilation for c in classifier.branches] == [(d, d) for d in (6, 12, 18, 24)]


def test_bisenet_structure(built):
    model = built("bisenet")
    assert not hasattr(model.context_path, "fc") and not hasattr(model.context_path, "avgpool")
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        spatial = model.spatial_path(x)
        feat16, feat32, tail = model.context_path(x)
    assert spatial.shape[-2:] == (8, 16) and spatial.shape[1] == 256
    assert feat16.shape[-2:] == (4, 8) and feat16.shape[1] == 256
    assert feat32.shape[-2:] == (2, 4) and feat32.shape[1] == 512 and tail.shape[-2:] == (1, 1)
    assert model.arm16.conv.bias is None and isinstance(model.arm16.bn, nn.BatchNorm2d)


@pytest.mark.parametrize("name", ["bisenet", "deeplabv2"])
def test_no_conv_bias_feeds_a_batchnorm(name, built):
    last_conv = None
    for module_name, m in built(name).named_modules():
        if isinstance(m, nn.Conv2d):
            last_conv = (module_name, m)
        elif isinstance(m, nn.BatchNorm2d):
            assert last_conv is not None and last_conv[1].bias is None, f"{last_conv[0]} feeds {module_name}"


def test_bisenet_classifier_commutes_with_upsampling(built):
    """BiSeNet classifies at 1/8 and then upsamples; the reference upsamples first. Same logits (a 1x1 conv
    and bilinear interpolation, whose weights sum to 1, commute), 64x fewer classifier FLOPs."""
    model = built("bisenet").eval()
    feature = torch.randn(1, 19, 8, 16)
    with torch.no_grad():
        ours = resize(model.classifier(feature), (64, 128))
        reference_order = model.classifier(resize(feature, (64, 128)))
    torch.testing.assert_close(ours, reference_order, rtol=1e-5, atol=1e-5)


def test_bisenet_aux_heads_follow_the_reference_order(built):
    """ooooverflow/BiSeNet upsamples the refined 1/16 and 1/32 context features (after the ARMs and the
    global context) to 1/8, applies the 1x1 supervision convolutions there, then upsamples x8."""
    model = copy.deepcopy(built("bisenet")).train()
    x = images(2, 64, 128)

    def up(t: torch.Tensor, factor: int) -> torch.Tensor:
        return F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)
    with torch.no_grad():
        _, aux16, aux32 = model(x)
        # Train-mode BatchNorm normalises with the batch's statistics: a second pass sees the same features.
        normalized = model.normalize_input(x)
        feat16, feat32, tail = model.context_path(normalized)
        feat16, feat32 = model.arm16(feat16), model.arm32(feat32) * tail
        ref16 = up(model.aux_head16(up(feat16, 2)), 8)
        ref32 = up(model.aux_head32(up(feat32, 4)), 8)
        old16 = resize(model.aux_head16(feat16), x.shape[-2:])
        old32 = resize(model.aux_head32(feat32), x.shape[-2:])
    torch.testing.assert_close(aux16, ref16, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(aux32, ref32, rtol=1e-5, atol=1e-5)
    # One direct upsampling from 1/16 or 1/32 gives other logits: the test tells the two orders apart.
    assert (old16 - ref16).abs().max() > 0.05 and (old32 - ref32).abs().max() > 0.05


def test_bisenet_resnet101_context_path():
    torch.manual_seed(0)
    model = BiSeNet(num_classes=5, context_path="resnet101").eval()
    trunk = torchvision.models.resnet101()
    expected = sum(p.numel() for n, p in trunk.named_parameters() if not n.startswith("fc."))
    assert sum(p.numel() for p in model.context_path.parameters()) == expected
    with torch.no_grad():
        assert model(images(1, 64, 64)).shape == (1, 5, 64, 64)
    with pytest.raises(ConfigError, match="resnet18"):
        BiSeNet(context_path="resnet50")


def test_bisenet_builds_and_downloads_only_the_chosen_backbone(monkeypatch, tmp_path):
    built_names, requested = [], []
    table = dict(models.bisenet._CONTEXT_PATHS)
    for key, (builder, weights, c16, c32) in table.items():
        def record(*a, _key=key, _builder=builder, **kw):
            built_names.append(_key)
            return _builder(*a, **kw)
        table[key] = (record, weights, c16, c32)
    monkeypatch.setattr(models.bisenet, "_CONTEXT_PATHS", table)
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)

    def fake_weights_file(weights):
        requested.append(weights)
        return path
    monkeypatch.setattr(models.bisenet, "torchvision_weights_file", fake_weights_file)
    BiSeNet(pretrained=True)
    assert built_names == ["resnet18"]
    assert requested == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1]


# ---------------------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("name", ["bisenet", "deeplabv2"])
def test_uint8_and_float_input_give_the_same_logits(name, built):
    model = copy.deepcopy(built(name)).eval()
    x = images(2, 32, 32)
    # DeepLabV2 checks the Caffe convention only (BGR, 0..255): the torchvision path is BiSeNet's, same code.
    for norm in (TORCHVISION_NORM, CAFFE_NORM) if name == "bisenet" else (CAFFE_NORM,):
        model.set_input_norm(norm)
        with torch.no_grad():
            a = model(x)
            b = model(x.float() / 255.0)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * a.abs().max().item())


def test_normalisation_matches_each_weight_convention(built):
    model = copy.deepcopy(built("bisenet"))
    pixel = torch.tensor([10, 128, 250], dtype=torch.uint8).view(1, 3, 1, 1)
    rgb = pixel.double().view(3) / 255.0
    out = model.double().normalize_input(pixel).view(3)
    expected = (rgb - torch.tensor(TORCHVISION_NORM["mean"], dtype=torch.float64)) / torch.tensor(
        TORCHVISION_NORM["std"], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    model.set_input_norm(CAFFE_NORM)
    out = model.normalize_input(pixel).view(3)
    bgr = pixel.double().view(3).flip(0)
    # float32 buffers: 104.008 is stored to ~1e-6
    torch.testing.assert_close(out, bgr - torch.tensor([104.008, 116.669, 122.675], dtype=torch.float64),
                               rtol=0, atol=1e-5)
    # The torchvision convention is the one its ResNet weights declare.
    for weights in (torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                    torchvision.models.ResNet101_Weights.IMAGENET1K_V1):
        preset = weights.transforms()
        assert list(preset.mean) == TORCHVISION_NORM["mean"] and list(preset.std) == TORCHVISION_NORM["std"]


def test_non_image_input_is_refused(built):
    model = built("bisenet").eval()
    with pytest.raises(TypeError, match="uint8"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.int64))
    with pytest.raises(ValueError, match="3 x H x W"):
        model(torch.zeros(1, 1, 32, 32))


# --------------------------------------------------------------------------------------- parameter counts

@pytest.mark.parametrize("name,expected", [("bisenet", 12.068e6), ("deeplabv2", 43.901e6),
                                           ("discriminator", 2.781e6)])
def test_parameter_counts_match_spec(name, expected, built):
    model = FCDiscriminator(19, 64) if name == "discriminator" else built(name)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - expected) / expected < 1e-3, count


# -------------------------------------------------------------------------------------- weight loading

def backbone_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def resnet101_files(tmp_path_factory):
    """One random torchvision ResNet-101 saved as torchvision does (with its fc) and in the shared Caffe
    format (one key prefix, the classifier's layer5 keys, no num_batches_tracked, as in the old file)."""
    torch.manual_seed(1)
    source = torchvision.models.resnet101()
    for m in source.modules():  # non-trivial statistics, so a missed copy shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    folder = tmp_path_factory.mktemp("weights")
    torch.save(source.state_dict(), folder / "resnet101_tv.pth")
    tensors = {k: v for k, v in backbone_tensors(source).items() if not k.startswith("fc.")}
    caffe = {f"Scale.{k}": v for k, v in tensors.items()}
    caffe["Scale.layer5.conv2d_list.0.weight"] = torch.randn(19, 2048, 3, 3)
    caffe["Scale.layer5.conv2d_list.0.bias"] = torch.randn(19)
    torch.save(caffe, folder / "DeepLab_resnet_pretrained_imagenet.pth")
    return {"caffe": folder / "DeepLab_resnet_pretrained_imagenet.pth", "torchvision": folder / "resnet101_tv.pth",
            "tensors": tensors}


def test_deeplab_loads_the_shared_caffe_checkpoint(resnet101_files, capsys):
    path = resnet101_files["caffe"]
    model = DeepLabV2(pretrained=path)
    out = capsys.readouterr().out
    assert f"loaded {RESNET101_TENSORS}/{RESNET101_TENSORS} backbone tensors from {path}" in out
    assert "skipped 2 non-backbone" in out
    loaded = backbone_tensors(model.backbone)
    assert loaded.keys() == resnet101_files["tensors"].keys()
    for k, v in resnet101_files["tensors"].items():
        assert torch.equal(loaded[k], v), k
    assert model.input_norm == {k: CAFFE_NORM[k] for k in model.input_norm}
    assert model.bn_mode == model.spec["bn_mode"] == "reference"
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    assert frozen and not any(id(p) in frozen for g in model.param_groups() for p in g["params"])

    course = get_deeplab_v2(num_classes=19, pretrain=True, pretrain_model_path=str(path))
    assert torch.equal(course.backbone.conv1.weight, resnet101_files["tensors"]["conv1.weight"])


def test_deeplab_loads_a_torchvision_state_dict(resnet101_files, capsys):
    path = resnet101_files["torchvision"]
    model = DeepLabV2(num_classes=7, pretrained=str(path))
    out = capsys.readouterr().out
    assert f"loaded {RESNET101_TENSORS}/{RESNET101_TENSORS} backbone tensors from {path}" in out
    assert "fc.bias" in out and "fc.weight" in out
    loaded = backbone_tensors(model.backbone)
    for k, v in resnet101_files["tensors"].items():
        assert torch.equal(loaded[k], v), k
    assert model.input_norm == TORCHVISION_NORM


def test_bisenet_loads_torchvision_weights_from_the_cache(monkeypatch, tmp_path, capsys):
    torch.manual_seed(3)
    tv = torchvision.models.resnet18()
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
    cache.parent.mkdir(parents=True)
    torch.save(tv.state_dict(), cache)

    def offline(*args, **kwargs):
        raise AssertionError("a cached file must not be downloaded again")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    model = BiSeNet(pretrained=True)
    assert "loaded 100/100 backbone tensors" in capsys.readouterr().out
    for k, v in backbone_tensors(tv).items():
        if not k.startswith("fc."):
            assert torch.equal(model.context_path.state_dict()[k], v), k
    assert model.input_norm == TORCHVISION_NORM


def test_pretrained_true_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(CheckpointError) as err:
        BiSeNet(pretrained=True)
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "--PRETRAINED=none" in message and "download.pytorch.org" in message


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("r18") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def bad_files(folder, resnet101_files, resnet18_file):
    truncated = folder / "truncated.pth"
    truncated.write_bytes(resnet18_file.read_bytes()[: 1 << 20])
    garbage = folder / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 100)
    incomplete = folder / "incomplete.pth"
    torch.save({f"Scale.{k}": v for k, v in resnet101_files["tensors"].items() if not k.startswith("layer4")},
               incomplete)
    not_a_resnet = folder / "not_a_resnet.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, not_a_resnet)
    pickled_numpy = folder / "numpy.pth"
    import numpy as np
    torch.save({"conv1.weight": np.zeros(3)}, pickled_numpy)
    return {"missing": folder / "nope.pth", "truncated": truncated, "garbage": garbage, "incomplete": incomplete,
            "not_a_resnet": not_a_resnet, "pickled_numpy": pickled_numpy, "other_network": resnet18_file}


@pytest.mark.parametrize("case", ["missing", "truncated", "garbage", "incomplete", "not_a_resnet",
                                  "pickled_numpy", "other_network"])
def test_bad_weight_files_give_a_clear_error(case, tmp_path, resnet101_files, resnet18_file):
    path = bad_files(tmp_path, resnet101_files, resnet18_file)[case]
    with pytest.raises(CheckpointError) as err:
        DeepLabV2(pretrained=path)
    message = str(err.value)
    assert str(path) in message
    assert "PRETRAINED" in message
    if case in ("incomplete", "other_network"):
        assert f"/{RESNET101_TENSORS} backbone tensors" in message


def test_bisenet_refuses_deeplab_weights(resnet101_files):
    with pytest.raises(CheckpointError, match="Caffe DeepLab ResNet"):
        BiSeNet(context_path="resnet101", pretrained=resnet101_files["caffe"])
    with pytest.raises(CheckpointError, match=r"matches only \d+/100 backbone tensors"):
        BiSeNet(pretrained=resnet101_files["torchvision"])


def test_a_trained_checkpoint_as_pretrained_weights_keeps_its_normalisation(tmp_path, built, capsys):
    trained = copy.deepcopy(built("bisenet"))
    trained.set_input_norm(CAFFE_NORM)
    path = tmp_path / "best.pt"
    torch.save({"model": trained.state_dict(), "spec": trained.spec}, path)
    model = BiSeNet(pretrained=path)
    assert "loaded 100/100 backbone tensors" in capsys.readouterr().out
    assert model.input_norm == CAFFE_NORM
    assert torch.equal(model.context_path.layer4[1].conv2.weight, trained.context_path.layer4[1].conv2.weight)


def test_course_constructor_with_missing_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="DeepLab_resnet_pretrained_imagenet.pth") as err:
        get_deeplab_v2()
    assert "--PRETRAINED=none" in str(err.value)
    model = get_deeplab_v2(num_classes=16, pretrain=False)
    assert model.num_classes == 16 and model.bn_mode == "train"


# ----------------------------------------------------------------------------- DeepLabV2 BatchNorm modes

def backbone_bns(model: DeepLabV2) -> list[nn.BatchNorm2d]:
    return [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]


def first_bn_io(model: DeepLabV2, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step's forward and backward; returns the first backbone BatchNorm's input and output."""
    seen = {}

    def keep(module, inputs, output):  # copies: the ReLU after this BatchNorm works in place
        seen.update(x=inputs[0].detach().clone(), y=output.detach().clone())
    hook = model.backbone.bn1.register_forward_hook(keep)
    logits, _, _ = model(x)
    hook.remove()
    logits.float().logsumexp(1).mean().backward()
    return seen["x"], seen["y"]


def bn_by_hand(bn: nn.BatchNorm2d, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    return (x - mean.view(shape)) / (var.view(shape) + bn.eps).sqrt() * bn.weight.view(shape) + bn.bias.view(shape)


@pytest.mark.parametrize("bn_mode", ["reference", "frozen"])
def test_deeplab_pretrained_batchnorm_modes(bn_mode, resnet101_files):
    kwargs = {} if bn_mode == "reference" else {"bn_mode": bn_mode}  # "reference" is the default
    model = DeepLabV2(pretrained=resnet101_files["caffe"], **kwargs).train()
    assert model.bn_mode == bn_mode and model.spec["bn_mode"] == bn_mode
    bns = backbone_bns(model)
    assert len(bns) == 104 and model.classifier.training
    assert not any(p.requires_grad for bn in bns for p in bn.parameters())
    first = model.backbone.bn1
    stats = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    x, y = first_bn_io(model, images(2, 32, 32))
    assert all(bn.weight.grad is None and bn.bias.grad is None for bn in bns)
    assert model.backbone.conv1.weight.grad is not None
    if bn_mode == "reference":  # AdaptSegNet / ADVENT: batch statistics, running statistics kept up to date
        assert all(bn.training for bn in bns)
        assert all(not torch.equal(bn.running_mean, m) and not torch.equal(bn.running_var, v)
                   for bn, (m, v) in zip(bns, stats))
        want = bn_by_hand(first, x, x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False))
    else:  # statistics frozen: eval-mode BatchNorm under model.train()
        assert not any(bn.training for bn in bns)
        assert all(torch.equal(bn.running_mean, m) and torch.equal(bn.running_var, v)
                   for bn, (m, v) in zip(bns, stats))
        want = bn_by_hand(first, x, stats[0][0], stats[0][1])
    torch.testing.assert_close(y, want.detach(), rtol=1e-4, atol=1e-4)
    frozen = {id(p) for bn in bns for p in bn.parameters()}
    assert not any(id(p) in frozen for g in model.param_groups() for p in g["params"])
    rebuilt = build_model(model.spec).train()
    assert rebuilt.bn_mode == bn_mode
    assert [bn.training for bn in backbone_bns(rebuilt)] == [bn.training for bn in bns]


def test_deeplab_from_scratch_batchnorm_trains_fully():
    torch.manual_seed(0)
    model = DeepLabV2().train()
    assert model.bn_mode == "train"
    bns = backbone_bns(model)
    assert all(bn.training and bn.weight.requires_grad and bn.bias.requires_grad for bn in bns)
    before = bns[-1].running_mean.clone()
    first_bn_io(model, images(2, 32, 32))
    assert not torch.equal(bns[-1].running_mean, before)
    assert all(bn.weight.grad is not None for bn in bns)


def test_deeplab_one_batchnorm_setting_carries_the_statistics_freeze():
    """freeze_bn_statistics (BN_STATS) moves between the modes that differ in statistics alone; the affine
    setting stays."""
    model = DeepLabV2(bn_mode="reference")
    assert model.freeze_bn_statistics(True).bn_mode == "frozen" and not model.backbone.bn1.weight.requires_grad
    assert model.freeze_bn_statistics(False).bn_mode == "reference"
    scratch = DeepLabV2().freeze_bn_statistics(True).train()
    assert scratch.bn_mode == "statistics_frozen" and scratch.spec["bn_mode"] == "statistics_frozen"
    assert all(not bn.training and bn.weight.requires_grad for bn in backbone_bns(scratch))


def test_deeplab_checkpoints_written_before_the_one_setting_still_load(tmp_path):
    """Specs of freeze_bn and bn_mode (and, older, of freeze_bn alone) build the mode they trained with, and
    such a checkpoint loads into the model its spec names."""
    base = {"arch": "deeplabv2", "num_classes": 19}
    for old, mode in (({"freeze_bn": True}, "frozen"), ({"freeze_bn": True, "bn_mode": "frozen"}, "frozen"),
                      ({"freeze_bn": True, "bn_mode": "reference"}, "reference"),
                      ({"freeze_bn": False, "bn_mode": "reference"}, "train"), ({"freeze_bn": False}, "train")):
        assert build_model(dict(base, **old)).bn_mode == mode, old
    old_frozen = build_model(dict(base, freeze_bn=True)).train()
    assert not any(bn.training or bn.weight.requires_grad for bn in backbone_bns(old_frozen))
    torch.manual_seed(0)
    trained = DeepLabV2(bn_mode="frozen")
    path = tmp_path / "old.pt"
    torch.save({"model": trained.state_dict(), "model_spec": dict(base, freeze_bn=True, bn_mode="frozen",
                                                                  input_norm=trained.input_norm)}, path)
    loaded = DeepLabV2(bn_mode="frozen")
    loaded.load_weights(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), trained.state_dict().values()))
    with pytest.raises(CheckpointError, match="bn_mode 'batch'"):
        build_model(dict(base, freeze_bn=True, bn_mode="batch"))
    with pytest.raises(ConfigError, match="reference, frozen"):
        DeepLabV2(bn_mode="eval")


# ------------------------------------------------------------------------------- spec, building, groups

@pytest.mark.parametrize("name", ["bisenet", "deeplabv2"])
def test_spec_rebuilds_the_model(name, built):
    model = copy.deepcopy(built(name)).eval()
    if name == "deeplabv2":
        model.set_input_norm(CAFFE_NORM)
    spec = model.spec
    assert spec["arch"] == name and spec["num_classes"] == 19
    assert json.loads(json.dumps(spec)) == spec
    buffer = io.BytesIO()
    torch.save({"spec": spec, "model": model.state_dict()}, buffer)
    buffer.seek(0)
    stored = torch.load(buffer, weights_only=True)
    rebuilt = build_model(stored["spec"]).eval()
    assert rebuilt.spec == spec
    check_spec(rebuilt.spec, stored["spec"], "ckpt.pt")
    rebuilt.load_state_dict(stored["model"])
    x = images(1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_state_dict_carries_the_normalisation(built):
    caffe = copy.deepcopy(built("bisenet")).eval()
    caffe.set_input_norm(CAFFE_NORM)
    other = copy.deepcopy(built("bisenet")).eval()
    assert other.input_norm == TORCHVISION_NORM
    other.load_state_dict(caffe.state_dict())
    assert other.input_norm == caffe.input_norm
    x = images(1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(other(x), caffe(x))


def test_check_spec_names_the_differences(built):
    bisenet, deeplab = built("bisenet").spec, built("deeplabv2").spec
    with pytest.raises(CheckpointError, match="arch: expected 'deeplabv2', found 'bisenet'") as err:
        check_spec(deeplab, bisenet, "runs/x/last.pt")
    assert "runs/x/last.pt" in str(err.value)
    with pytest.raises(CheckpointError, match="num_classes: expected 19, found 16"):
        check_spec(bisenet, dict(bisenet, num_classes=16), "ckpt")
    with pytest.raises(CheckpointError, match="no model spec"):
        check_spec(bisenet, None, "ckpt")
    with pytest.raises(CheckpointError, match="input_norm"):
        check_spec(deeplab, dict(deeplab, input_norm=CAFFE_NORM), "ckpt", keys=None)
    check_spec(bisenet, copy.deepcopy(bisenet), "ckpt", keys=None)


def test_unknown_architecture_in_a_spec_is_refused():
    with pytest.raises(CheckpointError):
        build_model({"arch": "segformer", "num_classes": 19})


@pytest.mark.parametrize("name", SEG_MODELS)
def test_param_groups_cover_every_trainable_parameter_once(name, built):
    model = built(name)
    groups = model.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    mults = {g["name"]: g["lr_mult"] for g in groups}
    if name == "bisenet":
        assert mults == {"backbone": 1.0, "heads": 1.0}
        assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.context_path.parameters()}
    else:
        assert mults == {"backbone": 1.0, "classifier": 10.0}
        assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.classifier.parameters()}
        course = model.optim_parameters(2.5e-4)
        assert [g["lr"] for g in course] == [2.5e-4, 2.5e-3]
    torch.optim.SGD([{"params": g["params"], "lr": 0.01 * g["lr_mult"]} for g in groups], lr=0.01)
