"""DeepLabV2 (Chen et al., TPAMI 2017) with a ResNet-101 backbone, as AdaptSegNet's ``Res_Deeplab`` builds it.

Caffe-style bottlenecks (the stride sits on the first 1x1 conv), max-pool with ``ceil_mode=True``, layer3 and
layer4 dilated 2 and 4 with stride 1 (output stride 8), and the ASPP classifier: four 3x3 convolutions with
dilations 6, 12, 18, 24 whose outputs are summed (all four: AdaptSegNet's loop returns after two).
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torchvision
from torch import nn

from models._common import CAFFE_NORM, TORCHVISION_NORM, SegmentationModel
from models._weights import (CAFFE_PREFIX, DEEPLAB_FILE_HINT, describe, load_backbone, read_state_dict,
                             torchvision_weights_file)
from utils.errors import ConfigError
from utils.ops import resize

TORCHVISION_WEIGHTS = torchvision.models.ResNet101_Weights.IMAGENET1K_V1
# How a pretrained backbone's BatchNorm trains. "reference": affine parameters frozen, statistics from the
# batch and kept up to date (AdaptSegNet's and ADVENT's DeepLab); "frozen": statistics frozen too.
BN_MODES = ("reference", "frozen")


class Bottleneck(nn.Module):
    """1x1 (stride) -> 3x3 (dilation) -> 1x1 (x4 channels), each followed by BatchNorm, plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """Caffe-style ResNet (torchvision parameter names) with dilated layer3/layer4: output stride 8."""

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 23, 3)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self._in = 64
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], dilation=2)
        self.layer4 = self._make_layer(512, layers[3], dilation=4)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self._in, planes * 4, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self._in, planes, stride, dilation, downsample)]
        self._in = planes * 4
        layers += [Bottleneck(self._in, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features_to_layer3(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.features_to_layer3(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling classifier: parallel dilated 3x3 convs to class scores, summed."""

    def __init__(self, in_channels: int, num_classes: int, dilations: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=d, dilation=d) for d in dilations)
        for conv in self.branches:
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class DeepLabV2(SegmentationModel):
    """DeepLabV2-ResNet101 (ASPP, output stride 8).

    Train mode returns ``(logits, None, None)`` (the tuple shape BiSeNet trains with), eval mode the logits;
    both at the input's size. With ``multi_level`` a second ASPP classifier on layer3 (AdaptSegNet's
    multi-level set-up) is built and train mode returns ``(logits, layer3 logits, None)``. A pretrained backbone's BatchNorm affine parameters do not train; with
    ``bn_mode="reference"`` its BN layers still normalise with the batch statistics and update their running
    statistics during training, with ``bn_mode="frozen"`` they stay in eval mode under ``model.train()``.

    Args:
        num_classes: number of output classes.
        pretrained: False; True for torchvision's ImageNet ResNet-101 (downloaded or read from ``TORCH_HOME``);
            or the path of a weights file: the shared Caffe checkpoint ``DeepLab_resnet_pretrained_imagenet.pth``
            (keys with a prefix, e.g. ``Scale.``; its classifier keys are skipped) or a torchvision ResNet-101
            state dict. The input normalisation follows the weights (Caffe: BGR 0..255 minus the mean).
        freeze_bn: whether ``bn_mode`` applies. None: iff pretrained weights are loaded; from scratch the
            BatchNorm trains fully, as default statistics would leave the net unnormalised. True applies it
            to an untrained model too, e.g. one rebuilt from a pretrained model's spec.
        bn_mode: how a pretrained backbone's BatchNorm trains: "reference" (affine parameters frozen,
            statistics from the batch, as AdaptSegNet and ADVENT train it) or "frozen" (affine parameters and
            statistics frozen).
        multi_level: also classify layer3's features (1024 channels), for multi-level adaptation; off by
            default, so the model, its parameter count and its FLOPs are the single-output DeepLabV2's.
    """

    arch = "deeplabv2"

    def __init__(self, num_classes: int = 19, pretrained: bool | str | os.PathLike = False,
                 freeze_bn: bool | None = None, bn_mode: str = "reference", multi_level: bool = False) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        if bn_mode not in BN_MODES:
            raise ConfigError(f"unknown DeepLabV2 bn_mode {bn_mode!r}; choose one of {', '.join(BN_MODES)}")
        self.bn_mode = bn_mode
        self.num_classes = int(num_classes)
        # The weights file is read first, so a wrong path fails at once rather than after building the net.
        state, source = None, ""
        if pretrained is True:
            path = torchvision_weights_file(TORCHVISION_WEIGHTS)
            state, source = read_state_dict(path, DEEPLAB_FILE_HINT), f"{path} (torchvision {TORCHVISION_WEIGHTS})"
        elif pretrained not in (False, None):
            state, source = read_state_dict(pretrained, DEEPLAB_FILE_HINT), str(pretrained)
        self.backbone = ResNetBackbone()
        self.classifier = ASPP(2048, self.num_classes)
        self.multi_level = bool(multi_level)
        self.low_classifier = ASPP(1024, self.num_classes) if self.multi_level else None
        self._init_input_norm(TORCHVISION_NORM)
        if state is not None:
            self._load_backbone(state, source)
        self.freeze_bn = state is not None if freeze_bn is None else bool(freeze_bn)
        if self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.requires_grad_(False)
                    m.bias.requires_grad_(False)
        self.train(self.training)

    def _load_backbone(self, state: dict[str, torch.Tensor], source: str) -> None:
        report = load_backbone(self.backbone, state, source)
        if self.adopt_input_norm(state):
            convention = f"a trained model's own input normalisation: {self.input_norm}"
        elif report["prefix"] == CAFFE_PREFIX:
            self.set_input_norm(CAFFE_NORM)
            convention = "DeepLab Caffe format: BGR 0..255 minus mean (104.008, 116.669, 122.675)"
        else:
            self.set_input_norm(TORCHVISION_NORM)
            convention = "torchvision format: RGB [0, 1], ImageNet mean/std"
        print(describe(report, source, convention))

    def train(self, mode: bool = True) -> "DeepLabV2":
        super().train(mode)
        if getattr(self, "freeze_bn", False) and self.bn_mode == "frozen":
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def _spec_extra(self) -> dict[str, Any]:
        extra = {"freeze_bn": self.freeze_bn, "bn_mode": self.bn_mode}
        return {**extra, "multi_level": True} if self.multi_level else extra

    def _group_modules(self) -> list[tuple[str, nn.Module, float]]:
        groups = [("backbone", self.backbone, 1.0), ("classifier", self.classifier, 10.0)]
        return groups + ([("low_classifier", self.low_classifier, 10.0)] if self.multi_level else [])

    def optim_parameters(self, lr: float) -> list[dict[str, Any]]:
        """The course template's groups: backbone at ``lr``, classifier at ``10 * lr``."""
        return [{"params": g["params"], "lr": lr * g["lr_mult"]} for g in self.param_groups()]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None, None]:
        size = x.shape[-2:]
        if not (self.multi_level and self.training):
            logits = resize(self.classifier(self.backbone(self.normalize_input(x))), size)
            return (logits, None, None) if self.training else logits
        low = self.backbone.features_to_layer3(self.normalize_input(x))
        logits = resize(self.classifier(self.backbone.layer4(low)), size)
        return logits, resize(self.low_classifier(low), size), None


def get_deeplab_v2(num_classes: int = 19, pretrain: bool = True,
                   pretrain_model_path: str = "DeepLab_resnet_pretrained_imagenet.pth") -> DeepLabV2:
    """The course template's constructor: DeepLabV2 from the shared Caffe ImageNet checkpoint.

    Args:
        num_classes: number of output classes.
        pretrain: load ``pretrain_model_path`` into the backbone (a missing file is a clear error).
        pretrain_model_path: the shared ``DeepLab_resnet_pretrained_imagenet.pth`` (or a torchvision ResNet-101
            state dict).
    """
    return DeepLabV2(num_classes, pretrained=pretrain_model_path if pretrain else False)
