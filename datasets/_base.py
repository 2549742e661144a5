"""What Cityscapes and GTA5 share: the item pipeline and argument checks."""
from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset, get_worker_info
from torchvision import tv_tensors

from datasets import io, labels
from datasets.cache import PreparedItems, find_cache
from utils.data import spread_indices
from utils.errors import ConfigError, DatasetError, option

Transform = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple[tv_tensors.Image, tv_tensors.Mask]]

DEMO_HINT = "Step scripts accept --demo to run on the built-in synthetic world instead (no download needed)."
# Above this share of ignored (255) pixels the labels are most likely read in the wrong format.
IGNORE_SHARE_WARNING = 0.5
LABELS_CHECKED = 8  # labels a run reads, spread over a dataset, before training on it (check_labels)
_checked: set[tuple] = set()


def ignore_share_warning(share: float, where: str, worst: Path, worst_share: float, check: str = "") -> str | None:
    """The warning when ``share`` of the labelled pixels read are ignore (255) is above ``IGNORE_SHARE_WARNING``.

    Args:
        share: ignored pixels over all pixels read.
        where: what was read ("8 labels spread over ...").
        worst: the file with the largest share, named as an example.
        worst_share: its share.
        check: the command that checks the dataset, when the warning is not the check's own.
    """
    if share <= IGNORE_SHARE_WARNING:
        return None
    return (f"{share:.0%} of the pixels of {where} are ignore (255), e.g. {worst_share:.0%} of {worst}: the labels "
            "are most likely read in the wrong format (colour labels saved as JPEG, whose colours no longer match "
            "the palette; label ids read as another format)." + (f" Check them: {check}" if check else ""))


def check_size(size: tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (H, W) or None, got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"size must be two positive integers (H, W), got {size!r}")
    return h, w


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{option(name, value)} is not valid; choose one of: {', '.join(choices)}")
    return value


class WorkerDatasetError(DatasetError):
    """A DatasetError raised inside a DataLoader worker, re-raised in the main process with its message only.

    PyTorch re-raises a worker's exception as ``type(e)(text)`` where ``text`` is the worker's whole
    traceback; this class keeps only its own message from that text, so entry points print one clean line
    naming the file instead of a traceback.
    """

    def __init__(self, message: str = "") -> None:
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message[message.rindex(marker) + len(marker):].rstrip()
        super().__init__(message)


class SegmentationDataset(Dataset):
    """Shared item pipeline: decode -> optional resize to ``size`` -> optional joint transform -> tensors.

    Subclasses fill ``self.samples`` with (image path, label path) pairs and implement ``_load``.
    """

    samples: list[tuple[Path, Path]]
    # The classes its labels hold (train ids 0..18; 255 is ignored): a model must predict as many.
    num_classes: int = labels.NUM_CLASSES
    # Names the dataset to the prepared-set cache (datasets.cache): "cityscapes", "gta5", or None (not cached).
    cache_kind: str | None = None
    # Prepared items (datasets.cache), replacing decode + resize; augmentation still runs per item.
    _cache: PreparedItems | None = None

    def __init__(self, size: tuple[int, int] | None, transform: Transform | None, full_labels: bool = False) -> None:
        self.size = check_size(size)
        self.transform = transform
        # The official evaluation protocol: the network sees the image at ``size``, its logits are scored
        # against every labelled pixel of the full-resolution label.
        self.full_labels = bool(full_labels)
        if self.full_labels and transform is not None:
            raise ConfigError("full_labels keeps labels at their file's resolution for evaluation; a joint "
                              "transform needs image and label of one size: use one or the other.")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(3xHxW uint8 image, HxW int64 train ids) at the label's native size."""
        raise NotImplementedError

    def check_labels(self, n: int = LABELS_CHECKED) -> None:
        """Once per dataset and process: read ``n`` labels spread over it (as decoded, no augmentation) and print a
        warning naming a file when most of their pixels are ignore (``ignore_share_warning``)."""
        key = (type(self).__name__, str(Path(getattr(self, "root", "")).resolve()), getattr(self, "split", None),
               getattr(self, "label_source", None), getattr(self, "label_format", None))
        if key in _checked or not len(self):
            return
        _checked.add(key)
        ignored = total = 0
        worst = (-1.0, Path())
        for i in spread_indices(len(self), n):
            label = self._cache.item(i)[1] if self._cache is not None else self._load(i)[1]
            k, t = int((label == labels.IGNORE_INDEX).sum()), label.numel()
            ignored, total = ignored + k, total + t
            worst = max(worst, (k / max(t, 1), self.samples[i][1]))
        where = f"{min(n, len(self))} labels spread over {type(self).__name__} {getattr(self, 'split', '')}"
        check = f"python -m datasets.check --{self.cache_kind} {getattr(self, 'root', '')}"
        text = ignore_share_warning(ignored / max(total, 1), where, worst[1], worst[0], check)
        if text:
            print(f"warning: {text}", file=sys.stderr)

    def _use_cache(self, cache_dir: str | Path | bool | None) -> None:
        """Serve items from a prepared set in ``cache_dir`` when one is present and fresh (``datasets.cache``;
        ``python -m datasets.prepare`` makes them).

        Args:
            cache_dir: the cache folder, None for the project's default, False to always read the raw files.
        """
        if self.size is None or cache_dir is False or self.full_labels:  # the cache holds labels at ``size``
            return
        self._cache = find_cache(self, cache_dir)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = operator.index(index)
        n = len(self.samples)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {type(self).__name__} of {n} items")
        image_path, label_path = self.samples[index]
        try:
            if self._cache is not None:
                image, label = self._cache.item(index)
            else:
                image, label = self._load(index)
            return self._finish(image, label)
        except DatasetError as e:
            if get_worker_info() is not None and not isinstance(e, WorkerDatasetError):
                raise WorkerDatasetError(str(e)) from None
            raise
        except Exception as e:
            # DataLoader workers re-raise with the traceback text: the note carries the file names with it.
            e.add_note(f"while loading {image_path} with label {label_path}")
            raise

    def _finish(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size is not None:
            image = io.resize_image(image, self.size)
            if not self.full_labels:
                label = io.resize_label(label, self.size)
        if self.transform is not None:
            out = self.transform(tv_tensors.Image(image), tv_tensors.Mask(label))
            image, label = out
            image = image.as_subclass(torch.Tensor)
            label = label.as_subclass(torch.Tensor)
            if image.dtype != torch.uint8:
                # torchvision's convention: float images lie in [0, 1].
                image = (image.float() * 255).round_().clamp_(0, 255).to(torch.uint8)
            label = label.long()
            # A user transform may pad with -1 or 0..N: nothing outside 0..18 / 255 may reach the loss.
            bad = (label < 0) | ((label >= labels.NUM_CLASSES) & (label != labels.IGNORE_INDEX))
            if bool(bad.any()):
                label = label.masked_fill(bad, labels.IGNORE_INDEX)
            if image.shape[-2:] != label.shape[-2:]:
                raise ValueError(
                    f"the transform returned an image of size {tuple(image.shape[-2:])} and a label of size "
                    f"{tuple(label.shape[-2:])}; a joint transform must keep them aligned"
                )
        return image.contiguous(), label.contiguous()
