"""What every segmentation model here shares: input normalisation owned by the model, its spec, its groups.

Data reaches the model as uint8 RGB (0..255) or float RGB in [0, 1], NCHW. The model converts it to what its
weights expect, from buffers that travel with its state dict, so training, prediction and the benchmark all
normalise the same way and a checkpoint carries its own convention:

- torchvision ImageNet weights (and training from scratch): RGB in [0, 1], minus the ImageNet mean, over the std;
- the Caffe DeepLab checkpoint: BGR in 0..255 minus (104.008, 116.669, 122.675), std 1 (AdaptSegNet, ADVENT).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.checkpoint import load_checkpoint
from utils.errors import CheckpointError

# torchvision's ImageClassification preset, which all its ImageNet ResNet weights declare.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The Caffe DeepLab ImageNet model's mean (B, G, R) in 0..255, as DeepLab's prototxt gives it.
CAFFE_BGR_MEAN = (104.008, 116.669, 122.675)

TORCHVISION_NORM: dict[str, Any] = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                                    "channel_order": "RGB", "value_range": 1.0}
CAFFE_NORM: dict[str, Any] = {"mean": list(CAFFE_BGR_MEAN), "std": [1.0, 1.0, 1.0],
                              "channel_order": "BGR", "value_range": 255.0}

_ORDERS = {"RGB": (0, 1, 2), "BGR": (2, 1, 0)}


def _check_norm(norm: dict[str, Any]) -> dict[str, Any]:
    try:
        mean = [float(v) for v in norm["mean"]]
        std = [float(v) for v in norm["std"]]
        order = str(norm["channel_order"]).upper()
        value_range = float(norm["value_range"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"input_norm must have mean, std (3 numbers each), channel_order and value_range; "
                              f"got {norm!r} ({e})") from None
    if len(mean) != 3 or len(std) != 3 or order not in _ORDERS or value_range not in (1.0, 255.0) \
            or min(std) <= 0:
        raise CheckpointError(f"invalid input_norm {norm!r}: mean and std need 3 values (std > 0), "
                              f"channel_order RGB or BGR, value_range 1 or 255")
    return {"mean": mean, "std": std, "channel_order": order, "value_range": value_range}


class SegmentationModel(nn.Module):
    """Base of BiSeNet and DeepLabV2: input normalisation from buffers, ``spec`` and ``param_groups``.

    Persistent buffers (so a state dict says how its weights want their input): ``input_mean``, ``input_std``
    (in the model's channel order and value range), ``input_channel_order`` (index of the RGB input channel
    feeding each model channel) and ``input_value_range`` (1 or 255). Derived, non-persistent buffers fold
    it all into one multiply-add per pixel: ``x * scale + shift``.
    """

    arch: str = ""
    # Set by freeze_bn_statistics: a training-time behaviour, not part of the architecture or its spec.
    bn_statistics_frozen: bool = False

    def freeze_bn_statistics(self, frozen: bool = True) -> "SegmentationModel":
        """Keep every BatchNorm's running statistics as they are while the model trains (its affine parameters
        still train): BatchNorm layers stay in eval mode under ``train()``, normalising with those statistics.

        BatchNorm would otherwise move its statistics toward whatever passes through it in train mode, target
        images included, and the training loop calls ``train()`` every iteration: so the freeze lives there.
        """
        self.bn_statistics_frozen = bool(frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "SegmentationModel":
        super().train(mode)
        if mode and self.bn_statistics_frozen:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def _init_input_norm(self, norm: dict[str, Any]) -> None:
        self.register_buffer("input_mean", torch.zeros(3))
        self.register_buffer("input_std", torch.ones(3))
        self.register_buffer("input_channel_order", torch.tensor(_ORDERS["RGB"], dtype=torch.long))
        self.register_buffer("input_value_range", torch.tensor(1.0))
        self.register_buffer("_in_scale_u8", torch.ones(1, 3, 1, 1), persistent=False)
        self.register_buffer("_in_scale_float", torch.ones(1, 3, 1, 1), persistent=False)
        self.register_buffer("_in_shift", torch.zeros(1, 3, 1, 1), persistent=False)
        self.set_input_norm(norm)

    @torch.no_grad()
    def set_input_norm(self, norm: dict[str, Any]) -> None:
        """Set mean, std (model channel order, model value range), channel_order ("RGB"/"BGR"), value_range."""
        norm = _check_norm(norm)
        self.input_mean.copy_(torch.tensor(norm["mean"]))
        self.input_std.copy_(torch.tensor(norm["std"]))
        self.input_channel_order.copy_(torch.tensor(_ORDERS[norm["channel_order"]]))
        self.input_value_range.fill_(norm["value_range"])
        self._refresh_input_norm()

    @torch.no_grad()
    def _refresh_input_norm(self) -> None:
        # Runs at construction and after loading a state dict, never per forward: .tolist() may sync a GPU.
        order = tuple(self.input_channel_order.tolist())
        if order not in _ORDERS.values():
            raise CheckpointError(f"input_channel_order {list(order)} is neither RGB (0, 1, 2) nor BGR (2, 1, 0)")
        self._in_flip = order == _ORDERS["BGR"]
        mean = self.input_mean.double()
        std = self.input_std.double()
        value_range = self.input_value_range.double()
        scale = (value_range / std).view(1, 3, 1, 1)
        self._in_scale_float.copy_(scale)
        self._in_scale_u8.copy_(scale / 255.0)
        self._in_shift.copy_((-mean / std).view(1, 3, 1, 1))

    @torch.no_grad()
    def adopt_input_norm(self, state: dict[str, torch.Tensor]) -> bool:
        """Take the normalisation buffers of one of this project's checkpoints when ``state`` has them."""
        keys = ("input_mean", "input_std", "input_channel_order", "input_value_range")
        if not all(k in state for k in keys):
            return False
        try:
            for key in keys:
                getattr(self, key).copy_(state[key])
        except RuntimeError as e:
            raise CheckpointError(f"the input normalisation buffers in the weights file are malformed ({e})") from None
        self._refresh_input_norm()
        return True

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._refresh_input_norm()

    @property
    def input_norm(self) -> dict[str, Any]:
        """The normalisation as plain Python: mean, std, channel_order, value_range."""
        # 7 significant digits: what a float32 buffer holds, printed back as the decimal it was set from.
        order = tuple(self.input_channel_order.tolist())
        return {"mean": [float(f"{v:.7g}") for v in self.input_mean.tolist()],
                "std": [float(f"{v:.7g}") for v in self.input_std.tolist()],
                "channel_order": "BGR" if order == _ORDERS["BGR"] else "RGB",
                "value_range": float(f"{self.input_value_range.item():.7g}")}

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 RGB 0..255 or float RGB [0, 1], NCHW -> what the weights expect, in the buffers' dtype."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects an N x 3 x H x W RGB batch, got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            scale = self._in_scale_u8
        elif x.is_floating_point():
            scale = self._in_scale_float
        else:
            raise TypeError(f"{type(self).__name__} expects uint8 (0..255) or float ([0, 1]) images, got {x.dtype}")
        if self._in_flip:
            x = x.flip(1)
        return torch.addcmul(self._in_shift, x.to(scale.dtype), scale)

    @property
    def spec(self) -> dict[str, Any]:
        """Plain-Python description that ``models.build_model`` turns back into this model (untrained)."""
        return {"arch": self.arch, "num_classes": self.num_classes, **self._spec_extra(),
                "input_norm": self.input_norm}

    def _spec_extra(self) -> dict[str, Any]:
        return {}

    def load_weights(self, path: str | Path, missing_ok: tuple[str, ...] = ()) -> dict:
        """Start from a checkpoint of this project (or a bare state dict) that fits this model; returns what
        the file holds. A checkpoint of another model is refused naming the file and the difference.
        Parameters whose names start with one of ``missing_ok`` may be absent from the file (they keep their
        initialisation: e.g. a multi-level DeepLabV2's layer3 classifier started from a single-level run)."""
        ckpt = load_checkpoint(path)
        if "trainer" in ckpt:
            state, spec = ckpt["trainer"]["model"], ckpt.get("model_spec") or None
        else:
            state, spec = ckpt.get("model", ckpt), ckpt.get("model_spec")
        if spec:
            check_spec(self.spec, spec, path)
        try:
            result = self.load_state_dict(state, strict=not missing_ok)
            absent = [k for k in result.missing_keys if not k.startswith(missing_ok)]
            if absent or result.unexpected_keys:
                raise RuntimeError(f"Missing key(s) {absent}, unexpected key(s) {result.unexpected_keys}")
        except RuntimeError as e:
            missing = str(e).count("Missing key")
            raise CheckpointError(
                f"{path} does not fit this model ({self.arch}, {self.num_classes} classes): "
                f"{str(e).splitlines()[0]}{' ...' if missing else ''}. Use a checkpoint of the same model.") from None
        print(f"initialised weights from {path}")
        return ckpt

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups: ``{"name", "params" (trainable only), "lr_mult"}``; empty groups are left out."""
        groups = []
        for name, module, lr_mult in self._group_modules():
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                groups.append({"name": name, "params": params, "lr_mult": lr_mult})
        return groups

    def _group_modules(self) -> list[tuple[str, nn.Module, float]]:
        raise NotImplementedError


def check_spec(expected: dict[str, Any], found: dict[str, Any] | None, path: Any = "checkpoint",
               keys: tuple[str, ...] | None = ("arch", "num_classes", "context_path")) -> None:
    """Raise ``CheckpointError`` naming every difference between two model specs.

    Args:
        expected: spec of the model being built (``model.spec``).
        found: spec stored in the checkpoint.
        path: the checkpoint, for the message.
        keys: keys to compare; the default compares structure only, since the input normalisation travels
            in the state dict's buffers and is restored by ``load_state_dict``. None compares every key.
    """
    if not isinstance(found, dict):
        raise CheckpointError(f"{path} holds no model spec (architecture, classes): it was not written by this "
                              f"project's training code; pass it as a pretrained weights file instead.")
    names = sorted(set(expected) | set(found)) if keys is None else keys
    diffs = []
    for key in names:
        a, b = expected.get(key), found.get(key)
        if not _same(a, b):
            diffs.append(f"{key}: expected {a!r}, found {b!r}")
    if diffs:
        raise CheckpointError(f"{path} does not fit this model: " + "; ".join(diffs)
                              + ". Use a checkpoint of the same architecture and number of classes "
                                "(or change the model settings to match it).")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
