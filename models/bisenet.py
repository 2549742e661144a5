"""BiSeNet (Yu et al., ECCV 2018): spatial path + context path, attention refinement, feature fusion.

Layout as in the course implementation (ooooverflow/BiSeNet lineage), without its dead
parameters: torchvision's 1000-class ``fc`` is not kept, convolutions feeding a BatchNorm have no bias, and
the attention refinement module is the paper's 1x1 conv -> BatchNorm -> sigmoid.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torchvision
from torch import nn

from models._common import TORCHVISION_NORM, SegmentationModel
from models._weights import CAFFE_PREFIX, describe, load_backbone, read_state_dict, torchvision_weights_file
from utils.errors import CheckpointError, ConfigError
from utils.ops import resize

# Context path backbones: (torchvision builder, ImageNet weights, channels at 1/16, channels at 1/32).
_CONTEXT_PATHS = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, 256, 512),
    "resnet101": (torchvision.models.resnet101, torchvision.models.ResNet101_Weights.IMAGENET1K_V1, 1024, 2048),
}


class ConvBNReLU(nn.Sequential):
    """3x3 (or k x k) convolution without bias (the BatchNorm's shift replaces it), BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SpatialPath(nn.Sequential):
    """Three stride-2 conv-BN-ReLU layers: a wide, shallow 1/8 feature that keeps spatial detail."""

    def __init__(self) -> None:
        super().__init__(ConvBNReLU(3, 64, stride=2), ConvBNReLU(64, 128, stride=2), ConvBNReLU(128, 256, stride=2))


class ContextPath(nn.Module):
    """An ImageNet ResNet without its classifier; returns the 1/16 and 1/32 features and the global context."""

    def __init__(self, name: str = "resnet18") -> None:
        super().__init__()
        builder = _CONTEXT_PATHS[name][0]
        resnet = builder(weights=None)
        # Only the convolutional trunk is kept: the avgpool/fc classifier would be dead parameters.
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feat16 = self.layer3(self.layer2(self.layer1(x)))
        feat32 = self.layer4(feat16)
        tail = feat32.mean(dim=(2, 3), keepdim=True)
        return feat16, feat32, tail


class AttentionRefinementModule(nn.Module):
    """Global pooling -> 1x1 conv -> BatchNorm -> sigmoid, reweighting the channels of its input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.bn(self.conv(self.avgpool(x))))


class FeatureFusionModule(nn.Module):
    """Concatenate spatial and context features, conv-BN-ReLU, then a squeeze-excite style residual reweighting."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convblock = ConvBNReLU(in_channels, out_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(out_channels, out_channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feature = self.convblock(torch.cat((spatial, context), dim=1))
        attention = self.sigmoid(self.conv2(self.relu(self.conv1(self.avgpool(feature)))))
        return feature + feature * attention


class BiSeNet(SegmentationModel):
    """Bilateral Segmentation Network.

    Train mode returns ``(main, aux16, aux32)`` logits, eval mode the main logits; all at the input's size.
    Training needs batches of at least 2: the attention refinement BatchNorm sees one value per channel and
    image (a 1x1 pooled map).

    Args:
        num_classes: number of output classes.
        context_path: "resnet18" (the paper's real-time model) or "resnet101"; only this backbone is built.
        pretrained: False, True (torchvision ImageNet weights, downloaded or read from ``TORCH_HOME``) or the
            path of a torchvision-format ResNet state dict for the context path.
    """

    arch = "bisenet"

    def __init__(self, num_classes: int = 19, context_path: str = "resnet18",
                 pretrained: bool | str | os.PathLike = False) -> None:
        super().__init__()
        if context_path not in _CONTEXT_PATHS:
            raise ConfigError(f"unknown BiSeNet context_path {context_path!r}; choose one of {sorted(_CONTEXT_PATHS)}")
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = int(num_classes)
        self.context_path_name = context_path
        _, weights, ch16, ch32 = _CONTEXT_PATHS[context_path]
        # The weights file is read first, so a wrong path fails at once rather than after building the net.
        state, source = None, ""
        if pretrained is True:
            path = torchvision_weights_file(weights)
            state, source = read_state_dict(path), f"{path} (torchvision {weights})"
        elif pretrained not in (False, None):
            state, source = read_state_dict(pretrained), str(pretrained)

        self.spatial_path = SpatialPath()
        self.context_path = ContextPath(context_path)
        self.arm16 = AttentionRefinementModule(ch16)
        self.arm32 = AttentionRefinementModule(ch32)
        self.ffm = FeatureFusionModule(256 + ch16 + ch32, num_classes)
        self.classifier = nn.Conv2d(num_classes, num_classes, kernel_size=1)
        # Auxiliary heads (training only) supervise the refined 1/16 and 1/32 context features, brought to 1/8.
        self.aux_head16 = nn.Conv2d(ch16, num_classes, kernel_size=1)
        self.aux_head32 = nn.Conv2d(ch32, num_classes, kernel_size=1)
        self._init_heads()
        self._init_input_norm(TORCHVISION_NORM)
        if state is not None:
            if any(k.startswith(CAFFE_PREFIX) for k in state):
                raise CheckpointError(f"{source} is the Caffe DeepLab ResNet (keys prefixed '{CAFFE_PREFIX}'), "
                                      f"built for DeepLabV2's Caffe-style backbone and BGR input; BiSeNet's context "
                                      f"path takes torchvision ResNet weights: use PRETRAINED imagenet or a "
                                      f"torchvision {context_path} state dict, or none.")
            report = load_backbone(self.context_path, state, source)
            if self.adopt_input_norm(state):
                convention = f"a trained model's own input normalisation: {self.input_norm}"
            else:  # torchvision-format weights want RGB in [0, 1] with the ImageNet statistics, set above
                convention = "RGB [0, 1], ImageNet mean/std"
            print(describe(report, source, convention))

    def _init_heads(self) -> None:
        for name, m in self.named_modules():
            if name.startswith("context_path"):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _spec_extra(self) -> dict[str, Any]:
        return {"context_path": self.context_path_name}

    def _group_modules(self) -> list[tuple[str, nn.Module, float]]:
        # The reference trains every parameter at the base rate (its mul_lr list is built but never used).
        heads = nn.ModuleList([self.spatial_path, self.arm16, self.arm32, self.ffm, self.classifier,
                               self.aux_head16, self.aux_head32])
        return [("backbone", self.context_path, 1.0), ("heads", heads, 1.0)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.training and x.shape[0] < 2:
            raise ConfigError("BiSeNet trains with batches of at least 2 images: the attention refinement "
                              "BatchNorm normalises a 1x1 pooled map, one value per image. Use BATCH_SIZE >= 2 "
                              "(training drops the last incomplete batch).")
        size = x.shape[-2:]
        x = self.normalize_input(x)
        spatial = self.spatial_path(x)
        feat16, feat32, tail = self.context_path(x)
        feat16 = self.arm16(feat16)
        feat32 = self.arm32(feat32) * tail
        fused = spatial.shape[-2:]
        context = torch.cat((resize(feat16, fused), resize(feat32, fused)), dim=1)
        # The 1x1 classifier commutes with bilinear upsampling: applying it at 1/8 gives the same logits as
        # the reference's upsample-then-classify for 1/64 of the cost.
        main = resize(self.classifier(self.ffm(spatial, context)), size)
        if not self.training:
            return main
        # The reference supervises the context features once upsampled to 1/8 and upsamples those logits to
        # full size: two bilinear steps, which one direct step does not reproduce. The 1x1 heads run before
        # the first step (they commute with it, as the classifier does), so no 1/8 copy of the wide features
        # is kept for their backward pass.
        aux16 = resize(resize(self.aux_head16(feat16), fused), size)
        aux32 = resize(resize(self.aux_head32(feat32), fused), size)
        return main, aux16, aux32
