"""GTA5 (Playing for Data) as 19-class Cityscapes train ids with 255 ignore, in all three label formats."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datasets import io, labels
from datasets._base import DEMO_HINT, SegmentationDataset, Transform, check_choice
from utils.errors import ConfigError, DatasetError, option

SPLITS = ("all", "train", "val")
LABEL_FORMATS = ("auto", "labelIds", "color", "trainIds")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

LAYOUT_TEXT = (
    "Expected layout: ROOT/images/NNNNN.png and ROOT/labels/NNNNN.png, labels as palette PNGs of Cityscapes "
    "label ids (the original release), RGB PNGs in the Cityscapes colours, or greyscale train ids (which need "
    "the label format set to trainIds)."
)


def _format_hint(raw: np.ndarray) -> str:
    values = np.unique(raw)
    classes = values[values != labels.IGNORE_INDEX]
    if classes.size and classes.max() >= labels.NUM_CLASSES:
        top = int(classes.max())
        return f"Its values go up to {top}, which suggests Cityscapes label ids: {option('label_format', 'labelIds')}."
    return f"Its values (0..18 and 255) suggest train ids: {option('label_format', 'trainIds')}."


def greyscale_error(path: Path, raw: np.ndarray | None = None) -> DatasetError:
    hint = f" {_format_hint(raw)}" if raw is not None else ""
    return DatasetError(
        f"{path} is a greyscale label: it may hold Cityscapes label ids (0..33) or train ids (0..18, 255), and one "
        f"file cannot tell which, so {option('label_format', 'auto')} refuses to guess. Set "
        f"{option('label_format', 'trainIds')} or {option('label_format', 'labelIds')}.{hint}"
    )


def decode_label(im: Image.Image, fmt: str, path: Path) -> np.ndarray:
    """Train ids (HxW uint8) of one decoded GTA5 label image in format ``fmt`` (may be "auto")."""
    mode = im.mode
    single = mode in io.SINGLE_CHANNEL_MODES and mode != "P"
    if fmt == "auto":
        if mode == "P":
            fmt = "labelIds"
        elif mode in io.COLOR_MODES:
            fmt = "color"
        elif single:
            raise greyscale_error(path, io.pil_to_single_channel(im, path))
        else:
            raise DatasetError(f"{path}: a {mode} image is not a GTA5 label format. {LAYOUT_TEXT}")
    if fmt == "labelIds":
        if mode == "P" or single:
            # Palette indices are the label ids; the palette colours are not looked at.
            return io.decode_label_ids(io.pil_to_single_channel(im, path))
        if mode in io.COLOR_MODES:
            raise DatasetError(f"{path} is an {mode} colour label, not label ids: use "
                               f"{option('label_format', 'color')} or {option('label_format', 'auto')}.")
    elif fmt == "color":
        if mode in io.COLOR_MODES or mode == "P":
            return io.decode_colors(io.pil_to_rgb_array(im))
        if single:
            raise DatasetError(
                f"{path} is a greyscale label, not a colour one: use {option('label_format', 'trainIds')} or "
                f"{option('label_format', 'labelIds')}."
            )
    elif fmt == "trainIds":
        if single:
            return io.decode_train_ids(io.pil_to_single_channel(im, path), path,
                                       fix=f"If the labels hold Cityscapes label ids, use "
                                           f"{option('label_format', 'labelIds')}.")
        if mode == "P":
            raise DatasetError(
                f"{path} is a palette PNG (the original GTA5 release, whose indices are label ids, not train ids): "
                f"use {option('label_format', 'labelIds')} or {option('label_format', 'auto')}."
            )
        if mode in io.COLOR_MODES:
            raise DatasetError(f"{path} is an {mode} colour label, not train ids: use "
                               f"{option('label_format', 'color')} or {option('label_format', 'auto')}.")
    raise DatasetError(f"{path}: a {mode} image cannot be read as {option('label_format', fmt)}. {LAYOUT_TEXT}")


def read_list_file(list_file: str | Path) -> list[str]:
    """Ids from a split list: one id or file name per line (``00001``, ``00001.png``, ``images/00001.png``)."""
    path = Path(list_file)
    try:
        text = path.read_text()
    except OSError as e:
        raise DatasetError(f"GTA5 list_file {path} cannot be read ({e.strerror or e}). Check the path.") from None
    ids = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(Path(line.replace("\\", "/")).stem)
    return ids


class GTA5(SegmentationDataset):
    """GTA5 frames with Cityscapes labels; items are (3xHxW uint8 RGB image, HxW int64 train ids with 255).

    Images without a label file are skipped and counted (``num_skipped``, one warning). An image whose size
    differs from its label's is resized (``io.resize_image``) to the label's size: the label is the ground truth.

    Args:
        root: folder with ``images/`` and ``labels/``.
        split: "all", or a deterministic "train" / "val" partition (disjoint, together all the images).
        size: (H, W) to resize every item to (image bilinear, label nearest), or None for the native size.
        transform: joint transform applied after loading/resizing; takes and returns
            ``(tv_tensors.Image, tv_tensors.Mask)``.
        label_format: "labelIds" (P-mode PNG whose palette indices are Cityscapes label ids), "color" (RGB in
            the Cityscapes colours; unknown colours -> 255), "trainIds" (greyscale train ids), or "auto"
            (from the PNG mode: P -> labelIds, RGB/RGBA -> color; greyscale is refused as ambiguous).
        val_fraction: share of the images in "val" when no ``list_file`` is given.
        split_seed: seed of the random train/val partition.
        list_file: text file listing the **val** images (one id or file name per line, ``#`` comments);
            "train" is every other image.
        cache_dir: where ``python -m datasets.prepare`` caches decoded, resized items; a fresh cache of this
            root at ``size`` is used instead of the PNGs. None: the project's default; False: never.
    """

    cache_kind = "gta5"

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        size: tuple[int, int] | None = None,
        transform: Transform | None = None,
        label_format: str = "auto",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        list_file: str | Path | None = None,
        cache_dir: str | Path | bool | None = None,
    ) -> None:
        super().__init__(size, transform)
        self.root = Path(root)
        self.split = check_choice("split", split, SPLITS)
        self.label_format = check_choice("label_format", label_format, LABEL_FORMATS)
        if not self.root.is_dir():
            hint = ""
            if self.root.name in ("images", "labels") and self.root.parent.is_dir():
                hint = f" It looks like a sub-folder of the dataset: try ROOT={self.root.parent}."
            raise DatasetError(
                f"GTA5 root not found: {self.root} (absolute: {self.root.absolute()}) does not exist or is not a "
                f"folder.{hint}\n{LAYOUT_TEXT}\n{DEMO_HINT}"
            )
        image_dir, label_dir = self.root / "images", self.root / "labels"
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise DatasetError(f"GTA5 root {self.root} has no {folder.name}/ folder ({folder}).\n{LAYOUT_TEXT}")
        images = sorted(
            (e.name for e in os.scandir(image_dir) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        )
        if not images:
            raise DatasetError(f"GTA5 images folder {image_dir} has no .png images.\n{LAYOUT_TEXT}")
        label_names = {e.name for e in os.scandir(label_dir) if e.name.lower().endswith(".png")}

        ids = [Path(name).stem for name in images]
        if len(set(ids)) != len(ids):
            raise DatasetError(
                f"GTA5 images folder {image_dir} holds two images with the same id (e.g. .png and .jpg): keep one."
            )
        keep = self._split_mask(ids, split, val_fraction, split_seed, list_file)
        if not any(keep):
            raise DatasetError(
                f"GTA5 {split} split is empty: none of the {len(ids)} images in {image_dir} falls in it "
                f"(list_file={list_file}, {option('val_fraction', val_fraction)}). Use more images, or no held-out "
                f"share ({option('val_fraction', 0)})."
            )

        self.samples, self.ids, skipped = [], [], []
        for name, image_id, wanted in zip(images, ids, keep):
            if not wanted:
                continue
            label_name = f"{image_id}.png"
            if label_name in label_names:
                self.samples.append((image_dir / name, label_dir / label_name))
                self.ids.append(image_id)
            else:
                skipped.append(name)
        self.num_skipped = len(skipped)
        self.skipped = skipped
        if skipped:
            warnings.warn(
                f"GTA5 {split}: {len(skipped)} of {len(skipped) + len(self.samples)} images have no label file in "
                f"{label_dir} and are skipped (e.g. {', '.join(skipped[:3])}). The original release lacks a few "
                "labels, so a small count is expected.",
                stacklevel=2,
            )
        if not self.samples:
            raise DatasetError(
                f"GTA5 {split}: no image in {image_dir} has a label file in {label_dir} "
                f"({len(skipped)} images, 0 labels matched by name).\n{LAYOUT_TEXT}"
            )
        self.detected_format = self._detect_format()
        self._use_cache(cache_dir)

    @staticmethod
    def _split_mask(
        ids: list[str], split: str, val_fraction: float, split_seed: int, list_file: str | Path | None
    ) -> list[bool]:
        """Which ids belong to ``split``; decided over all images (labelled or not) so it never shifts."""
        if split == "all":
            return [True] * len(ids)
        if list_file is not None:
            val_ids = set(read_list_file(list_file))
            unknown = sorted(val_ids.difference(ids))
            if unknown:
                raise DatasetError(
                    f"GTA5 list_file {list_file} names {len(unknown)} image(s) that are not in the images folder "
                    f"(e.g. {', '.join(unknown[:3])}). It must list the val images by id or file name."
                )
            in_val = [i in val_ids for i in ids]
        else:
            if not 0.0 < float(val_fraction) < 1.0:
                raise ConfigError(f"{option('val_fraction', val_fraction)}: the held-out share must be between 0 and "
                                  "1 (exclusive), or 0 for none.")
            n = len(ids)
            n_val = min(max(int(round(val_fraction * n)), 1), max(n - 1, 1))
            order = np.random.default_rng(split_seed).permutation(n)
            val_index = set(order[:n_val].tolist())
            in_val = [i in val_index for i in range(n)]
        want_val = split == "val"
        return [v == want_val for v in in_val]

    def _detect_format(self) -> str:
        """The format of the first label ("labelIds", "color" or "trainIds"); refuses greyscale under auto."""
        if self.label_format != "auto":
            return self.label_format
        path = self.samples[0][1]
        mode, _ = io.peek_mode_and_size(path)
        if mode == "P":
            return "labelIds"
        if mode in io.COLOR_MODES:
            return "color"
        if mode in io.SINGLE_CHANNEL_MODES:
            raise greyscale_error(path, io.pil_to_single_channel(io.open_png(path), path))
        raise DatasetError(f"{path}: a {mode} image is not a GTA5 label format. {LAYOUT_TEXT}")

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.samples[index]
        train_ids = decode_label(io.open_png(label_path), self.label_format, label_path)
        image = io.image_to_tensor(io.read_rgb(image_path))
        if tuple(image.shape[-2:]) != train_ids.shape:
            # The label is the ground truth; with ``size`` set, go straight there instead of resizing twice.
            image = io.resize_image(image, self.size or train_ids.shape)
        return image, io.label_to_tensor(train_ids)

    def __repr__(self) -> str:
        return (
            f"GTA5(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, skipped={self.num_skipped}, "
            f"size={self.size}, label_format={self.label_format!r})"
        )
