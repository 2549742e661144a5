"""Segment images with a trained checkpoint: a colour mask and an overlay per image.

    python predict.py --checkpoint runs/step2b_bisenet/best.pt --input photos/ --out predictions/
    python predict.py --checkpoint best.pt --input street.jpg --out out/ --size 512x1024 --device cpu

The model is rebuilt from the checkpoint's model spec (architecture, classes, input normalisation), so any
checkpoint written by the step scripts works without naming the model. Images of any size are accepted;
``--size HxW`` resizes them for the network and resizes the logits back, so the mask always matches the input.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from datasets.labels import colorize
from utils.checkpoint import load_checkpoint
from utils.config import parse_size
from utils.device import AMP_CHOICES, amp_name, autocast, resolve_amp, resolve_device
from utils.errors import CheckpointError, ConfigError, UserError
from utils.fast import CHANNELS_LAST, inference_model
from utils.ops import resize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
OVERLAY_ALPHA = 0.5  # share of the mask colour in the overlay


def load_model(path: str | Path, device: torch.device) -> torch.nn.Module:
    """The model of a project checkpoint, rebuilt from its spec, with its weights, in eval mode on ``device``."""
    from models import build_model

    spec = load_checkpoint(path).get("model_spec")
    if not spec:
        raise CheckpointError(f"{path} has no model_spec, so the model cannot be rebuilt: use a last.pt or best.pt "
                              "written by the step scripts.")
    model = build_model(spec)
    model.load_weights(path)
    return model.to(device).eval()


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


@torch.inference_mode()
def predict(model: torch.nn.Module, image: np.ndarray, device: torch.device, amp_dtype: torch.dtype | None,
            size: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW train ids at the image's own size."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(device)
    if size is not None:
        x = resize(x.float() / 255.0, size)  # models take float RGB in [0, 1] as well as uint8
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
                        help="folder for <stem>_mask.png and <stem>_overlay.png (sub-folders of --input mirrored)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--amp", default="auto", choices=AMP_CHOICES,
                        help="mixed precision (default auto: the project's policy for the device)")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="HxW the network sees (e.g. 512x1024); default: each image's own size")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    amp_dtype = resolve_amp(args.amp, device)
    images = find_images(args.input, exclude=args.out)
    # The fast inference path (folded BatchNorm, weights in the AMP dtype, channels_last); eager, since
    # images of many sizes would each need their own CUDA graph.
    model = inference_model(load_model(args.checkpoint, device), device, channels_last=CHANNELS_LAST[device.type],
                            dtype=amp_dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(images)} image(s) on {device}, AMP {amp_name(amp_dtype)}"
          + (f", network input {args.size[0]}x{args.size[1]}" if args.size else "") + f" -> {args.out}")
    written, failed = [], []
    for path in tqdm(images, desc="predict", unit="img", dynamic_ncols=True):
        try:
            with Image.open(path) as im:
                image = np.array(im.convert("RGB"))
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
            if len(images) == 1:
                raise UserError(f"cannot read {path}: {e}") from None
            tqdm.write(f"warning: skipping {path}: cannot read it ({e})")
            failed.append(path)
            continue
        try:
            pred = predict(model, image, device, amp_dtype, args.size)
        except torch.OutOfMemoryError:
            raise UserError(f"out of GPU memory on {path} ({image.shape[0]}x{image.shape[1]}): "
                            "use --size to run the network smaller, or --device cpu.") from None
        mask = colorize(pred)
        overlay = (image * (1 - OVERLAY_ALPHA) + mask * OVERLAY_ALPHA).round().astype(np.uint8)
        # A folder's sub-folders are mirrored, so equal file names in two cities never overwrite each other.
        folder = args.out / path.parent.relative_to(args.input) if args.input.is_dir() else args.out
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, array in (("mask", mask), ("overlay", overlay)):
            target = folder / f"{path.stem}_{suffix}.png"
            Image.fromarray(array).save(target)
            written.append(target)
    print(f"wrote {len(written) // 2} mask(s) and overlay(s) to {args.out}"
          + (f"; skipped {len(failed)} unreadable file(s)" if failed else ""))
    return written


if __name__ == "__main__":
    from utils.config import run_main

    run_main(main)
