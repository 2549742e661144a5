"""Segment images with a trained checkpoint: a colour mask and an overlay per image, or Cityscapes label ids.

    python predict.py --checkpoint runs/step2b_bisenet-demo/best.pt --input data/synthetic/Cityscapes/leftImg8bit/val \
        --out predictions/
    python predict.py --checkpoint runs/step2b_bisenet/best.pt --input photos/ --out predictions/
    python predict.py --checkpoint best.pt --input street.jpg --out out/ --size 512x1024 --device cpu
    python predict.py --checkpoint best.pt --input data/Cityscapes/leftImg8bit/val --out results/ \
        --size 512x1024 --format labelIds

``--format labelIds`` writes what the official Cityscapes evaluation (cityscapesScripts'
evalPixelLevelSemanticLabeling) reads: per image one single-channel PNG of Cityscapes label ids at the image's
full resolution, named after the image (``CITY_SEQ_FRAME_leftImg8bit.png`` keeps its name), and nothing else,
so the official matcher finds exactly one prediction for each ``CITY_SEQ_FRAME_gtFine_labelIds.png``.

The model is rebuilt from the checkpoint's model spec (architecture, classes, input normalisation), so any
checkpoint written by the step scripts works without naming the model. Images of any size are accepted: the
network sees them at the size its run evaluated at (``EVAL_SIZE`` of the config the checkpoint holds, or of the
``config.json`` beside it; each image's own size when neither says), or at ``--size HxW`` / ``--size native``,
and the logits are resized back, so the mask always matches the input. The size used is printed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from datasets.io import image_to_tensor, resize_image
from datasets.labels import NUM_CLASSES, TRAINID_TO_ID, colorize
from utils.checkpoint import load_checkpoint
from utils.config import MIN_SIDE, SizeError, parse_size
from utils.device import AMP_CHOICES, amp_name, autocast, resolve_amp, resolve_device
from utils.errors import CheckpointError, ConfigError, UserError
from utils.fast import CHANNELS_LAST, inference_model
from utils.ops import resize
from utils.paths import writable_folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("color", "labelIds")
OVERLAY_ALPHA = 0.5  # share of the mask colour in the overlay


def load_model(path: str | Path, device: torch.device, ckpt: dict | None = None) -> torch.nn.Module:
    """The model of a project checkpoint, rebuilt from its spec, with its weights, in eval mode on ``device``
    (``ckpt``: the checkpoint already read, if it was)."""
    from models import build_model

    spec = (ckpt if ckpt is not None else load_checkpoint(path)).get("model_spec")
    if not spec:
        raise CheckpointError(f"{path} has no model_spec, so the model cannot be rebuilt: use a last.pt or best.pt "
                              "written by the step scripts.")
    model = build_model(spec)
    model.load_weights(path)
    return model.to(device).eval()


def size_arg(text: str) -> tuple[int, int] | str:
    """``--size``: ``HxW`` / ``H,W`` (each side at least ``MIN_SIDE``) or ``native``."""
    if text.strip().lower() == "native":
        return "native"
    try:
        return parse_size(text, min_side=MIN_SIDE)
    except SizeError as e:
        raise SizeError(f"{e}, or native") from None


def evaluated_size(path: Path, ckpt: dict) -> tuple[tuple[int, int] | None, str]:
    """The network input size the checkpoint's run evaluated at (None: each image's own), and where that was read:
    ``EVAL_SIZE`` of the config in the checkpoint, else of ``config.json`` beside it."""
    beside = path.parent / "config.json"
    try:
        config_beside = json.loads(beside.read_text()) if beside.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError):
        config_beside = None
    for config, source in ((ckpt.get("config"), "the checkpoint's EVAL_SIZE"),
                           (config_beside, f"EVAL_SIZE in {beside}")):
        size = config.get("EVAL_SIZE") if isinstance(config, dict) else None
        if size == "native":
            return None, source
        try:
            h, w = (int(v) for v in size)
            return (h, w), source
        except (TypeError, ValueError):
            continue
    return None, "the checkpoint records no evaluation size; --size HxW sets one"


def find_images(path: Path, exclude: Path) -> list[Path]:
    """``path`` itself, or every png/jpg under the folder ``path`` (recursively, outside ``exclude``)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"--input {path} does not exist: give an image or a folder of images.")
    exclude = exclude.resolve()
    images = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                    and exclude not in p.resolve().parents)
    if not images:
        raise ConfigError(f"no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images found under {path}.")
    return images


def output_paths(path: Path, input_root: Path, out: Path, fmt: str) -> list[Path]:
    """The files ``main`` writes for the image ``path``: mask and overlay, or the one label-id PNG."""
    # A folder's sub-folders are mirrored, so equal file names in two cities never overwrite each other.
    folder = out / path.parent.relative_to(input_root) if input_root.is_dir() else out
    if fmt == "labelIds":
        return [folder / f"{path.stem}.png"]
    return [folder / f"{path.stem}_{suffix}.png" for suffix in ("mask", "overlay")]


def check_folders(input_path: Path, out: Path) -> None:
    """Refuse an ``--out`` that is the ``--input`` folder, or holds it: predictions would lie among the images (and
    be read as images by the next run), and a folder's images under ``--out`` are never read."""
    if not input_path.is_dir():
        return
    source, target = input_path.resolve(), out.resolve()
    if target == source or target in source.parents:
        where = "is the --input folder" if target == source else f"holds the --input folder {input_path}"
        raise ConfigError(f"--out {out} {where}: the predictions would be written among the images. Give an --out "
                          "folder outside --input (e.g. predictions/).")


def check_outputs(images: list[Path], targets: list[list[Path]]) -> None:
    """Refuse a run that would write one file twice (a.png and a.jpg) or write over one of its inputs."""
    seen: dict[Path, Path] = {}
    inputs = {p.resolve() for p in images}
    for image, paths in zip(images, targets):
        for target in paths:
            if target.resolve() in inputs:
                raise ConfigError(f"writing {target} would overwrite that input image: choose another --out.")
            if target in seen:
                raise ConfigError(f"{seen[target]} and {image} would both be written to {target}: rename one of "
                                  "them or predict them separately.")
            seen[target] = image


@torch.inference_mode()
def predict(model: torch.nn.Module, image: np.ndarray, device: torch.device, amp_dtype: torch.dtype | None,
            size: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW train ids at the image's own size."""
    # The dataset's own tensor and image resize (antialiased, rounded to uint8), on the CPU as in its loader:
    # the network sees exactly what evaluation feeds it.
    x = image_to_tensor(image)
    if size is not None:
        x = resize_image(x, size)
    x = x[None].to(device)
    with autocast(device, amp_dtype):
        logits = model(x)
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    logits = resize(logits.float(), image.shape[:2])
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="last.pt / best.pt of a step script")
    parser.add_argument("--input", required=True, type=Path, help="an image (png/jpg) or a folder of images")
    parser.add_argument("--out", required=True, type=Path,
                        help="folder for <stem>_mask.png and <stem>_overlay.png, or <stem>.png with --format "
                             "labelIds (sub-folders of --input mirrored)")
    parser.add_argument("--format", default="color", choices=FORMATS,
                        help="color: a colour mask and an overlay per image (default); labelIds: one PNG of "
                             "Cityscapes label ids per image at its full resolution, for the official evaluation")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--amp", default="auto", choices=AMP_CHOICES,
                        help="mixed precision (default auto: the project's policy for the device)")
    parser.add_argument("--size", type=size_arg, default=None,
                        help="HxW the network sees (e.g. 512x1024), or native (each image's own size); default: the "
                             "size the checkpoint was evaluated at")
    args = parser.parse_args(argv)
    check_folders(args.input, args.out)

    writable_folder(args.out, "--out", "Give a folder you can write to.")
    device = resolve_device(args.device)
    amp_dtype = resolve_amp(args.amp, device)
    images = find_images(args.input, exclude=args.out)
    targets = [output_paths(path, args.input, args.out, args.format) for path in images]
    check_outputs(images, targets)
    ckpt = load_checkpoint(args.checkpoint)
    model = load_model(args.checkpoint, device, ckpt)
    if args.size is None:
        size, source = evaluated_size(args.checkpoint, ckpt)
    else:
        size, source = (None if args.size == "native" else args.size), "--size"
    if args.format == "labelIds" and model.num_classes != NUM_CLASSES:
        raise ConfigError(f"--format labelIds maps the {NUM_CLASSES} Cityscapes train classes to label ids, but "
                          f"{args.checkpoint} predicts {model.num_classes} classes: use --format color.")
    # The fast inference path (folded BatchNorm, weights in the AMP dtype, channels_last); eager, since
    # images of many sizes would each need their own CUDA graph.
    model = inference_model(model, device, channels_last=CHANNELS_LAST[device.type], dtype=amp_dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    shown = f"{size[0]}x{size[1]}" if size else "each image's own size"
    print(f"{len(images)} image(s) on {device}, AMP {amp_name(amp_dtype)}, network input {shown} ({source}) "
          f"-> {args.out}")
    written, failed = [], []
    for path, paths in zip(tqdm(images, desc="predict", unit="img", dynamic_ncols=True), targets):
        try:
            with Image.open(path) as im:
                image = np.array(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            why = f"too large to decode safely ({e})" if isinstance(e, Image.DecompressionBombError) else str(e)
            if len(images) == 1:
                raise UserError(f"cannot read {path}: {why}") from None
            tqdm.write(f"warning: skipping {path}: cannot read it ({why})")
            failed.append(path)
            continue
        try:
            pred = predict(model, image, device, amp_dtype, size)
        except torch.OutOfMemoryError:
            raise UserError(f"out of GPU memory on {path} ({image.shape[0]}x{image.shape[1]}): "
                            "use --size to run the network smaller, or --device cpu.") from None
        if args.format == "labelIds":
            arrays = [TRAINID_TO_ID[pred]]
        else:
            mask = colorize(pred)
            arrays = [mask, (image * (1 - OVERLAY_ALPHA) + mask * OVERLAY_ALPHA).round().astype(np.uint8)]
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for target, array in zip(paths, arrays):
            Image.fromarray(array).save(target)
            written.append(target)
    what = "label-id PNG(s)" if args.format == "labelIds" else "mask(s) and overlay(s)"
    print(f"wrote {len(written) // len(targets[0])} {what} to {args.out}"
          + (f"; skipped {len(failed)} unreadable file(s)" if failed else ""))
    if args.format == "labelIds":
        warn_other_pngs(args.out, written)
    return written


def warn_other_pngs(out: Path, written: list[Path]) -> None:
    """Name PNGs in ``out`` that this run did not write: the official matcher searches the folder recursively
    and refuses a frame for which it finds two candidate predictions."""
    ours = {p.resolve() for p in written}
    others = sorted(p for p in out.rglob("*.png") if p.resolve() not in ours)
    if others:
        print(f"warning: {out} also holds {len(others)} PNG file(s) not written by this run (e.g. {others[0]}); "
              "the official Cityscapes evaluation may take one for a second prediction of a frame: give an "
              "empty --out.")


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
