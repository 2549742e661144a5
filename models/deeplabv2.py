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
# How the backbone's BatchNorm trains: mode -> (affine parameters frozen, running statistics frozen).
BN_MODES = {
    "train": (False, False),  # everything trains: from scratch, where default statistics would not normalise
    "reference": (True, False),  # AdaptSegNet's and ADVENT's pretrained DeepLab: batch statistics, kept up to date
    "frozen": (True, True),  # a pretrained backbone's affine parameters and statistics both kept
    "statistics_frozen": (False, True),  # statistics kept, affine parameters trained (BN_STATS on a scratch net)
}


class Bottleneck(nn.Module):
    """1x1 (stride) -> 3x3 (dilation) -> 1x1 (x4 channels), each followed by BatchNorm, plus the shortcut."""

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
    multi-level set-up) is built and train mode returns ``(logits, layer3 logits, None)``.

    Args:
        num_classes: number of output classes.
        pretrained: False; True for torchvision's ImageNet ResNet-101 (downloaded or read from ``TORCH_HOME``);
            or the path of a weights file: the shared Caffe checkpoint ``DeepLab_resnet_pretrained_imagenet.pth``
            (keys with a prefix, e.g. ``Scale.``; its classifier keys are skipped) or a torchvision ResNet-101
            state dict. The input normalisation follows the weights (Caffe: BGR 0..255 minus the mean).
        bn_mode: how the backbone's BatchNorm trains (``BN_MODES``): "train" (affine parameters and statistics),
            "reference" (affine parameters frozen, statistics from the batch and kept up to date, as AdaptSegNet
            and ADVENT train it), "frozen" (both kept), "statistics_frozen" (statistics kept, affine trained).
            None: "reference" with pretrained weights, "train" from scratch. ``freeze_bn_statistics`` moves
            between the modes that differ in statistics alone.
        multi_level: also classify layer3's features (1024 channels), for multi-level adaptation; off by
            default, so the model, its parameter count and its FLOPs are the single-output DeepLabV2's.
    """

    arch = "deeplabv2"

    def __init__(self, num_classes: int = 19, pretrained: bool | str | os.PathLike = False,
                 bn_mode: str | None = None, multi_level: bool = False) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        if bn_mode is not None and bn_mode not in BN_MODES:
            raise ConfigError(f"unknown DeepLabV2 bn_mode {bn_mode!r}; choose one of {', '.join(BN_MODES)}")
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
        self.bn_mode = bn_mode or ("reference" if state is not None else "train")
        if BN_MODES[self.bn_mode][0]:
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

    @property
    def bn_statistics_frozen(self) -> bool:
        return BN_MODES[getattr(self, "bn_mode", "train")][1]

    def freeze_bn_statistics(self, frozen: bool = True) -> "DeepLabV2":
        """The mode with this one's affine setting and the statistics ``frozen`` (``reference`` <-> ``frozen``,
        ``train`` <-> ``statistics_frozen``)."""
        wanted = (BN_MODES[self.bn_mode][0], bool(frozen))
        self.bn_mode = next(mode for mode, what in BN_MODES.items() if what == wanted)
        return self.train(self.training)

    def _spec_extra(self) -> dict[str, Any]:
        return {"bn_mode": self.bn_mode, **({"multi_level": True} if self.multi_level else {})}

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
