"""Cityscapes (gtFine) in the official or the course folder layout, as 19-class train ids with 255 ignore."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from datasets import io
from datasets._base import DEMO_HINT, SegmentationDataset, Transform, check_choice
from utils.errors import DatasetError, option

SPLITS = ("train", "val")
LABEL_SOURCES = ("auto", "labelIds", "labelTrainIds")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = {"labelTrainIds": "_gtFine_labelTrainIds.png", "labelIds": "_gtFine_labelIds.png"}
# Folder holding the images, by layout name; both layouts keep labels in ROOT/gtFine.
IMAGE_FOLDERS = {"official": "leftImg8bit", "course": "images"}

LAYOUTS_TEXT = (
    "Accepted layouts:\n"
    "  official: ROOT/leftImg8bit/{train,val}/CITY/CITY_SEQ_FRAME_leftImg8bit.png\n"
    "            ROOT/gtFine/{train,val}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png (or _gtFine_labelTrainIds.png)\n"
    "  course:   ROOT/images/{train,val}/CITY/CITY_SEQ_FRAME_leftImg8bit.png\n"
    "            ROOT/gtFine/{train,val}/CITY/CITY_SEQ_FRAME_gtFine_labelTrainIds.png"
)


def _root_hint(root: Path) -> str:
    """Point at the right folder when the user gave one level too high or too low."""
    if root.name in ("leftImg8bit", "images", "gtFine") and root.parent.is_dir():
        return f" It looks like a sub-folder of the dataset: try ROOT={root.parent}."
    if root.is_dir():
        below = sorted(p.parent for name in IMAGE_FOLDERS.values() for p in root.glob(f"*/{name}") if p.is_dir())
        if below:
            return f" Found a Cityscapes-like folder one level down: try ROOT={below[0]}."
    return ""


def find_layout(root: str | Path) -> tuple[str, Path]:
    """('official' or 'course', image folder) of a Cityscapes root, or a DatasetError saying where it looked."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"Cityscapes root not found: {root} (absolute: {root.absolute()}) does not exist or is not a "
            f"folder.{_root_hint(root)}\n{LAYOUTS_TEXT}\n{DEMO_HINT}"
        )
    for layout, folder in IMAGE_FOLDERS.items():
        if (root / folder).is_dir():
            return layout, root / folder
    raise DatasetError(
        f"{root} is not a Cityscapes root: it has neither a leftImg8bit/ nor an images/ folder.{_root_hint(root)}\n"
        f"{LAYOUTS_TEXT}\n{DEMO_HINT}"
    )


class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations; items are (3xHxW uint8 RGB image, HxW int64 train ids with 255).

    Args:
        root: dataset folder, in the official layout (``leftImg8bit/`` + ``gtFine/``) or the course layout
            (``images/`` + ``gtFine/``).
        split: "train" or "val".
        size: (H, W) to resize every item to (image bilinear, label nearest), or None for the native size.
        transform: joint transform applied after loading/resizing; takes and returns
            ``(tv_tensors.Image, tv_tensors.Mask)`` (see ``datasets.transforms.build_augmentation``).
        label_source: "auto" (``_gtFine_labelTrainIds.png`` where present, else ``_gtFine_labelIds.png``),
            "labelIds" (map the 34 label ids to train ids) or "labelTrainIds" (use the train-id files).
        cache_dir: where ``python -m datasets.prepare`` caches decoded, resized items; a fresh cache of this
            split at ``size`` is used instead of the PNGs. None: the project's default; False: never.
        full_labels: resize only the image to ``size`` and keep the label at its file's resolution (the
            official evaluation protocol: logits are upsampled to the full label); no ``transform`` then.
    """

    cache_kind = "cityscapes"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: tuple[int, int] | None = None,
        transform: Transform | None = None,
        label_source: str = "auto",
        cache_dir: str | Path | bool | None = None,
        full_labels: bool = False,
    ) -> None:
        super().__init__(size, transform, full_labels)
        self.root = Path(root)
        self.split = check_choice("split", split, SPLITS)
        self.label_source = check_choice("label_source", label_source, LABEL_SOURCES)
        self.layout, image_root = find_layout(self.root)
        image_dir = image_root / split
        label_dir = self.root / "gtFine" / split
        for folder in (image_dir, label_dir):
            if not folder.parent.is_dir():
                raise DatasetError(
                    f"Cityscapes root {self.root} has no {folder.parent.name}/ folder (looked for {folder.parent}). "
                    f"Extract the {'gtFine_trainvaltest' if folder is label_dir else 'leftImg8bit_trainvaltest'}"
                    f".zip archive into ROOT.\n{LAYOUTS_TEXT}\n{DEMO_HINT}"
                )
            if not folder.is_dir():
                present = sorted(p.name for p in folder.parent.iterdir() if p.is_dir())
                raise DatasetError(
                    f"Cityscapes {split} split not found: {folder} does not exist (splits present in "
                    f"{folder.parent}: {', '.join(present) or 'none'}).\n{LAYOUTS_TEXT}"
                )
        images = sorted(image_dir.rglob(f"*{IMAGE_SUFFIX}"))
        if not images:
            raise DatasetError(
                f"Cityscapes {split} split is empty: no *{IMAGE_SUFFIX} files under {image_dir}. "
                f"Extract leftImg8bit_trainvaltest.zip there (or copy the course images).\n{LAYOUTS_TEXT}"
            )
        existing = {p for p in label_dir.rglob("*_gtFine_label*Ids.png")}
        wanted = ("labelTrainIds", "labelIds") if label_source == "auto" else (label_source,)
        self.samples = []
        self.label_kinds: list[str] = []
        missing: list[tuple[Path, list[Path]]] = []
        for image in images:
            stem = image.name[: -len(IMAGE_SUFFIX)]
            folder = label_dir / image.parent.relative_to(image_dir)
            candidates = [folder / f"{stem}{LABEL_SUFFIXES[kind]}" for kind in wanted]
            found = next(((c, k) for c, k in zip(candidates, wanted) if c in existing), None)
            if found is None:
                missing.append((image, candidates))
            else:
                self.samples.append((image, found[0]))
                self.label_kinds.append(found[1])
        if missing:
            examples = "\n".join(
                f"  {img} -> expected {' or '.join(str(c) for c in cands)}" for img, cands in missing[:5]
            )
            fix = (
                f"Set {option('label_source', 'labelIds')} to use the labelIds files, or create the train-id files "
                "with cityscapesScripts' createTrainIdLabelImgs."
                if label_source == "labelTrainIds"
                else "Extract gtFine_trainvaltest.zip into ROOT (images and labels must come from the same split)."
            )
            raise DatasetError(
                f"Cityscapes {split}: {len(missing)} of {len(images)} images have no label file:\n{examples}\n{fix}"
            )
        self._use_cache(cache_dir)

    @property
    def label_kind_counts(self) -> dict[str, int]:
        """How many items use labelTrainIds and how many labelIds files."""
        return dict(Counter(self.label_kinds))

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.samples[index]
        rgb = io.read_rgb(image_path)
        raw = io.pil_to_single_channel(io.open_png(label_path), label_path)
        if raw.shape != rgb.shape[:2]:
            raise DatasetError(
                f"Cityscapes image and label differ in size: {image_path} is {rgb.shape[1]}x{rgb.shape[0]} "
                f"(WxH) but {label_path} is {raw.shape[1]}x{raw.shape[0]}. They must come from the same frame at "
                "the same resolution: re-extract or re-create the pair (or remove both files)."
            )
        if self.label_kinds[index] == "labelIds":
            train_ids = io.decode_label_ids(raw)
        else:
            train_ids = io.decode_train_ids(raw, label_path, fix=(
                "Cityscapes' _gtFine_labelTrainIds.png files hold train ids (cityscapesScripts' "
                "createTrainIdLabelImgs writes them): re-create it, or read the _gtFine_labelIds.png files "
                f"instead ({option('label_source', 'labelIds')})."))
        return io.image_to_tensor(rgb), io.label_to_tensor(train_ids)

    def __repr__(self) -> str:
        return (
            f"Cityscapes(root={str(self.root)!r}, split={self.split!r}, layout={self.layout!r}, "
            f"n={len(self)}, size={self.size}, label_source={self.label_source!r})"
        )
