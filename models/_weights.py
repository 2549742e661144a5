"""Pretrained backbone weights: torchvision's ImageNet files and the shared Caffe DeepLab checkpoint.

A weights file that matches nothing must never train silently from scratch (users then report half the
expected mIoU), so every backbone tensor has to be found, with the right shape, or loading fails with a
message that names the file and the fix. Nothing here loads a state dict non-strictly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

import torch
from torch import nn

from utils.checkpoint import safe_load
from utils.errors import CheckpointError
from utils.paths import REPO_ROOT

_NO_WEIGHTS_HINT = "or set PRETRAINED to none (--PRETRAINED=none) to train from scratch"
# The shared Caffe checkpoint prefixes every key with one component, e.g. "Scale.layer1.0.conv1.weight".
CAFFE_PREFIX = "Scale."
DEEPLAB_FILE_HINT = ("DeepLabV2 reads DeepLab_resnet_pretrained_imagenet.pth (the ImageNet ResNet-101 converted from "
                     "Caffe that AdaptSegNet and the course template use; it comes with the course material) or a "
                     "torchvision ResNet-101 state dict: put the file at that path, or use PRETRAINED imagenet for "
                     "torchvision's ImageNet weights, " + _NO_WEIGHTS_HINT + ".")


def read_state_dict(path: str | os.PathLike, hint: str = "") -> dict[str, torch.Tensor]:
    """Read a weights file (a state dict, or a dict holding one under "state_dict"/"model") on the CPU."""
    path = Path(path)
    fix = f" {hint}" if hint else f" Check the path, {_NO_WEIGHTS_HINT}."
    if not path.exists():
        raise CheckpointError(f"weights file not found: {path}.{fix}")
    obj = safe_load(path, "cpu", what="weights file", fix=f"Download it again.{fix}")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path} holds no state dict (found {type(obj).__name__}).{fix}")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors.{fix}")
    return tensors


def find_prefix(state: dict[str, torch.Tensor], own_keys: Iterable[str] = (),
                stem_key: str = "conv1.weight") -> str | None:
    """The prefix before the backbone's own names: "" (torchvision), "Scale." (Caffe DeepLab), "backbone."...

    Candidates are the prefixes of keys ending in the stem's ``conv1.weight``; the one under which most of
    ``own_keys`` exist wins (a block's or a head's ``conv1`` also ends so), ties to the shortest.
    """
    own_keys = list(own_keys)
    candidates = {k[: len(k) - len(stem_key)] for k in state if k == stem_key or k.endswith("." + stem_key)}
    if not candidates:
        return None
    return max(sorted(candidates, key=len), key=lambda p: sum(p + k in state for k in own_keys))


def load_backbone(backbone: nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Copy every backbone tensor from ``state`` (prefix stripped) into ``backbone``; all must match.

    ``num_batches_tracked`` counters are not weights (old checkpoints lack them) and are not required. File
    tensors outside the backbone (torchvision's ``fc``, DeepLab's ``layer5``/``layer6`` classifier) are skipped.
    Returns ``{"loaded", "total", "prefix", "skipped"}``.
    """
    own = {k: v for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    prefix = find_prefix(state, own)
    if prefix is None:
        raise CheckpointError(f"{source} has no ResNet stem ('conv1.weight'): it is not a ResNet backbone "
                              f"state dict (torchvision format, or the DeepLab Caffe format with a prefix such as "
                              f"'Scale.'). Use ResNet weights of this backbone, {_NO_WEIGHTS_HINT}.")
    found, missing, bad_shape = {}, [], []
    for key, dst in own.items():
        src = state.get(prefix + key)
        if src is None:
            missing.append(key)
        elif tuple(src.shape) != tuple(dst.shape):
            bad_shape.append(f"{key} {tuple(src.shape)} vs {tuple(dst.shape)}")
        else:
            found[key] = src
    if missing or bad_shape:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if bad_shape:
            detail.append(f"{len(bad_shape)} of another shape (e.g. {', '.join(bad_shape[:3])})")
        raise CheckpointError(f"{source} matches only {len(found)}/{len(own)} backbone tensors "
                              f"({'; '.join(detail)}): it is a different network or an incomplete file. Use "
                              f"weights of the same backbone, {_NO_WEIGHTS_HINT}.")
    used = {prefix + k for k in own}
    skipped = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked"))
    merged = backbone.state_dict()
    merged.update(found)
    backbone.load_state_dict(merged)
    return {"loaded": len(found), "total": len(own), "prefix": prefix, "skipped": skipped}


def torchvision_weights_file(weights: Any) -> Path:
    """Path of a torchvision weights file in the hub cache (``TORCH_HOME``), downloading it when absent."""
    url = weights.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(path.name)
        torch.hub.download_url_to_file(url, str(path), hash_prefix=match.group(1) if match else None,
                                       progress=True)
    except Exception as e:  # offline (URLError), proxy, disk, hash mismatch: all need the same fix
        raise CheckpointError(
            f"torchvision ImageNet weights {weights} are not in the cache ({path}) and the download from {url} "
            f"failed ({type(e).__name__}: {e}). On a machine with internet run "
            f"`python -c \"import torch; torch.hub.download_url_to_file('{url}', '{path.name}')\"` and copy the "
            f"file to {path} (TORCH_HOME decides that folder), {_NO_WEIGHTS_HINT}.") from None
    return path


def describe(report: dict[str, Any], source: str, convention: str) -> str:
    """The one line a load prints: how many backbone tensors, from where, which input convention, what skipped."""
    skipped = report["skipped"]
    extra = ""
    if skipped:
        more = ", ..." if len(skipped) > 3 else ""
        extra = f"; skipped {len(skipped)} non-backbone tensors ({', '.join(skipped[:3])}{more})"
    return f"loaded {report['loaded']}/{report['total']} backbone tensors from {source} ({convention}{extra})"


def pretrained_arg(value: str | bool | None) -> bool | str:
    """A PRETRAINED setting as the model constructors take it: ``imagenet`` -> True (torchvision's ImageNet
    weights), ``none`` -> False (from scratch), anything else a weights file; ``true``/``false`` (and the bools)
    are aliases of ``imagenet``/``none``.

    A bare file name is looked up in the current directory, then in the repository's ``weights/`` folder.
    """
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip()
    if text.lower() in ("", "none", "false"):
        return False
    if text.lower() in ("imagenet", "true"):
        return True
    path = Path(text)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / "weights" / path).exists():
        return str(REPO_ROOT / "weights" / path)
    return text
