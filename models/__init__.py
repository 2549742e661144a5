"""Models: BiSeNet, DeepLabV2, the FC discriminator, and rebuilding a model from its spec.

``model.spec`` is a plain-Python dict (arch, num_classes, context_path or bn_mode, input_norm)
stored in checkpoints; ``build_model(spec)`` rebuilds that model untrained and ``check_spec`` tells a
checkpoint of another model apart before its state dict is loaded.
"""
from __future__ import annotations

from typing import Any

from models._common import CAFFE_NORM, TORCHVISION_NORM, SegmentationModel, check_spec
from models._weights import pretrained_arg
from models.bisenet import BiSeNet
from models.deeplabv2 import DeepLabV2, get_deeplab_v2
from models.discriminator import FCDiscriminator
from utils.errors import CheckpointError, ConfigError

MODELS = {"bisenet": BiSeNet, "deeplabv2": DeepLabV2}

__all__ = ["BiSeNet", "DeepLabV2", "FCDiscriminator", "get_deeplab_v2", "build_model",
           "check_spec", "pretrained_arg", "SegmentationModel", "MODELS", "TORCHVISION_NORM", "CAFFE_NORM"]


def build_model(spec: dict[str, Any]) -> SegmentationModel:
    """Rebuild an untrained model from ``model.spec`` (same architecture, classes and input normalisation)."""
    if not isinstance(spec, dict) or spec.get("arch") not in MODELS:
        raise CheckpointError(f"model spec {spec!r} names no known architecture (expected arch in {sorted(MODELS)})")
    try:
        num_classes = int(spec["num_classes"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"model spec {spec!r} has no valid num_classes") from None
    if spec["arch"] == "bisenet":
        model: SegmentationModel = BiSeNet(num_classes, context_path=spec.get("context_path", "resnet18"))
    else:
        bn_mode = spec.get("bn_mode", "train")
        if "freeze_bn" in spec:  # written before the one BatchNorm setting: bn_mode applied under freeze_bn alone,
            # and the oldest specs, without bn_mode, froze the statistics with the affine parameters
            bn_mode = spec.get("bn_mode", "frozen") if spec["freeze_bn"] else "train"
        try:
            model = DeepLabV2(num_classes, bn_mode=bn_mode, multi_level=bool(spec.get("multi_level", False)))
        except ConfigError as e:
            raise CheckpointError(f"model spec {spec!r}: {e}") from None
    if "input_norm" in spec:
        model.set_input_norm(spec["input_norm"])
    return model
