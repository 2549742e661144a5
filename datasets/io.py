"""Robust PNG reading and label decoding shared by the datasets and ``datasets.check``.

Every reader fully decodes the file (``Image.load()``) so a truncated or corrupt PNG fails here, with a
message that names the file, instead of deep inside a DataLoader worker or, worse, as a half-black image.
``ImageFile.LOAD_TRUNCATED_IMAGES`` is deliberately left off: a truncated label would train on garbage.
Reading never writes; the one writer is ``save_rgb_png``, for the synthetic world.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datasets import labels
from utils import ops
from utils.errors import DatasetError

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)

# PIL modes that hold one integer per pixel (ids or train ids); P holds palette indices.
SINGLE_CHANNEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")
COLOR_MODES = ("RGB", "RGBA")


def open_png(path: str | Path) -> Image.Image:
    """Open and fully decode an image file, or raise DatasetError naming it and the fix."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found. Check the dataset folder is complete.") from None
    except PermissionError:
        raise DatasetError(f"{path}: permission denied. Make the file readable (chmod a+r).") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected a PNG file.") from None
    except _DECODE_ERRORS as e:
        raise DatasetError(
            f"{path}: cannot decode this image ({type(e).__name__}: {e}). The file is corrupt or truncated "
            "(an interrupted download or unzip); re-extract it from the original archive, or delete the "
            "image together with its label."
        ) from None


def peek_mode_and_size(path: str | Path) -> tuple[str, tuple[int, int]]:
    """(PIL mode, (H, W)) from the file header only, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.mode, (im.size[1], im.size[0])
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found. Check the dataset folder is complete.") from None
    except _DECODE_ERRORS as e:
        raise DatasetError(
            f"{path}: not a readable image ({type(e).__name__}: {e}). Re-extract it from the original archive."
        ) from None


def read_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB array of an image file (grey, palette or RGBA images are converted)."""
    im = open_png(path)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.array(im, dtype=np.uint8)


def pil_to_single_channel(im: Image.Image, path: str | Path) -> np.ndarray:
    """The raw integer per pixel of an L / P / 16-bit label image as uint8; values above 255 become 255.

    For P-mode files this is the palette index, not the colour (GTA5 stores label ids as indices).
    """
    if im.mode not in SINGLE_CHANNEL_MODES:
        raise DatasetError(f"{path}: expected a single-channel label image of ids, found a {im.mode} image.")
    arr = np.asarray(im)
    if arr.dtype != np.uint8:
        # 16/32-bit label files: anything that does not fit a uint8 is not a class of the table anyway.
        arr = np.where((arr < 0) | (arr > 255), labels.IGNORE_INDEX, arr).astype(np.uint8)
    return arr


def pil_to_rgb_array(im: Image.Image) -> np.ndarray:
    """HxWx3 uint8 colours of a colour label (RGBA drops alpha; a palette image is looked up)."""
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def decode_label_ids(arr: np.ndarray) -> np.ndarray:
    """Cityscapes label ids -> train ids: one vectorised table lookup, unknown ids -> 255."""
    return labels.ids_to_train_ids(arr)


# True for the values a train-id label cannot hold: 19..254 (0..18 are the classes, 255 is ignore).
_NOT_A_TRAIN_ID = np.ones(256, dtype=bool)
_NOT_A_TRAIN_ID[: labels.NUM_CLASSES] = False
_NOT_A_TRAIN_ID[labels.IGNORE_INDEX] = False


def decode_train_ids(arr: np.ndarray, path: str | Path = "label", fix: str = "") -> np.ndarray:
    """Train-id labels (0..18, 255 for ignore) as a uint8 copy. A value 19..254 cannot occur in a train-id file:
    the file holds another format (label ids, most often), and training on it would teach the wrong classes, so
    it is a DatasetError naming ``path`` and ``fix`` (the setting that reads the file's real format)."""
    arr = np.asarray(arr, dtype=np.uint8)
    bad = _NOT_A_TRAIN_ID[arr]
    if bad.any():
        values = np.unique(arr[bad])
        shown = ", ".join(str(v) for v in values[:8]) + (", ..." if values.size > 8 else "")
        raise DatasetError(
            f"{path} is read as train ids (0..18, 255 for ignore) but holds {shown}, values no train-id file holds: "
            f"it is in another format (values up to 33 are Cityscapes label ids). {fix}".rstrip())
    return arr.copy()


def decode_colors(rgb: np.ndarray) -> np.ndarray:
    """Cityscapes-coloured labels -> train ids; colours outside the 19 train classes -> 255, never 0."""
    return labels.colors_to_train_ids(np.ascontiguousarray(rgb[..., :3]))


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 array -> 3xHxW uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()


def label_to_tensor(train_ids: np.ndarray) -> torch.Tensor:
    """HxW uint8 train ids -> HxW int64 tensor."""
    return torch.from_numpy(np.ascontiguousarray(train_ids)).long()


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize of a 3xHxW uint8 image with the project's image helper (``ops.resize_image``: bilinear,
    antialiased when shrinking), rounded back to uint8."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = ops.resize_image(image[None].float(), size)[0]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of an HxW label map."""
    return ops.resize_labels(label, size)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def save_rgb_png(path: str | Path, image: np.ndarray) -> None:
    """Write an HxWx3 uint8 array as a standard 8-bit RGB PNG, fast.

    Pillow tries every PNG row filter on every row, which makes saving cost as much as drawing the image.
    The "Up" filter for all rows, computed in one numpy subtraction, with Huffman-only deflate is several
    times faster and compresses sensor-noisy images as well.
    """
    h, w, c = image.shape
    flat = np.ascontiguousarray(image, dtype=np.uint8).reshape(h, w * c)
    raw = np.empty((h, w * c + 1), np.uint8)
    raw[:, 0] = 2  # filter type Up: each byte minus the byte above it
    raw[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=raw[1:, 1:])
    comp = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    data = comp.compress(raw.tobytes()) + comp.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                 + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))
