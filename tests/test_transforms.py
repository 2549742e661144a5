"""Joint augmentations: image and label stay aligned, photometric changes leave labels alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from datasets import io, labels
from datasets.transforms import AUGMENTATIONS, RandomScaleCrop, build_augmentation
from utils import ops
from utils.errors import ConfigError

H, W = 48, 64
PALETTE = torch.from_numpy(labels.PALETTE).long()  # 19 distinct colours, none black


def painted_pair(seed: int = 0) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """A blocky label and an image painted with each pixel's class colour: the image encodes its label."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, labels.NUM_CLASSES, (H // 8, W // 8), generator=g)
    label = blocks.repeat_interleave(8, 0).repeat_interleave(8, 1)
    image = PALETTE[label].permute(2, 0, 1).to(torch.uint8)
    return tv_tensors.Image(image), tv_tensors.Mask(label)


def label_from_colours(image: torch.Tensor) -> torch.Tensor:
    """Class of each pixel whose colour is exactly a palette colour, else -1."""
    rgb = image.permute(1, 2, 0).numpy()
    ids = torch.from_numpy(labels.colors_to_train_ids(rgb).astype(np.int64))
    return torch.where(ids == 255, -1, ids)


@pytest.mark.parametrize("spec", [None, {}, {"hflip": 0, "blur": 0.0}])
def test_no_augmentation_is_identity(spec) -> None:
    assert build_augmentation(spec) is None
    assert build_augmentation(spec, crop_size=(16, 16)) is None


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        build_augmentation({"hflip": 0.5, "rotate": 0.5})
    assert "'rotate'" in str(err.value)
    for key in AUGMENTATIONS:
        assert key in str(err.value)
    with pytest.raises(ConfigError, match="probability"):
        build_augmentation({"blur": 1.5})
    with pytest.raises(ConfigError, match="probability"):
        build_augmentation({"blur": "often"})


def test_hflip_p1_flips_both() -> None:
    image, label = painted_pair()
    out_image, out_label = build_augmentation({"hflip": 1.0})(image, label)
    assert isinstance(out_image, tv_tensors.Image) and isinstance(out_label, tv_tensors.Mask)
    assert torch.equal(out_image, image.flip(-1)) and torch.equal(out_label, label.flip(-1))


def test_probability_is_respected() -> None:
    torch.manual_seed(0)
    image, label = painted_pair()
    flip = build_augmentation({"hflip": 0.5})
    flipped = sum(not torch.equal(flip(image, label)[1], label) for _ in range(200))
    assert 70 < flipped < 130


@pytest.mark.parametrize("key", ["color_jitter", "blur"])
def test_photometric_changes_image_only(key: str) -> None:
    torch.manual_seed(0)
    image, label = painted_pair()
    out_image, out_label = build_augmentation({key: 1.0})(image, label)
    assert torch.equal(out_label, label) and out_label.dtype == torch.int64
    assert out_image.dtype == torch.uint8 and out_image.shape == image.shape
    assert not torch.equal(out_image, image)


@pytest.mark.parametrize("crop_size", [None, (32, 40), (64, 96)])
def test_scale_crop_keeps_image_and_label_aligned(crop_size) -> None:
    torch.manual_seed(0)
    augment = build_augmentation({"scale_crop": 1.0, "hflip": 0.5}, crop_size=crop_size)
    padded_seen = False
    for seed in range(12):
        image, label = painted_pair(seed)
        out_image, out_label = augment(image, label)
        assert out_image.shape[-2:] == out_label.shape == (crop_size or (H, W))
        pad = out_label == 255
        # Padding: label 255 exactly where the image is black (0), nowhere else.
        assert torch.equal(pad, (out_image == 0).all(0))
        padded_seen |= bool(pad.any())
        decoded = label_from_colours(out_image)
        valid = ~pad & (decoded >= 0)  # bilinear blends only along block borders
        assert valid.float().mean() > 0.5 * (~pad).float().mean()
        agreement = (decoded[valid] == out_label[valid]).float().mean()
        assert agreement > 0.99, (seed, agreement)
    assert padded_seen == (crop_size != (32, 40))  # 32x40 fits inside even the smallest scale of 48x64


def test_scale_crop_shifts_content() -> None:
    torch.manual_seed(1)
    image, label = painted_pair()
    outs = [RandomScaleCrop(crop_size=(24, 24), p=1.0)(image, label)[1] for _ in range(5)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_scale_crop_without_scaling_still_crops_to_size() -> None:
    image, label = painted_pair()
    out_image, out_label = RandomScaleCrop(crop_size=(16, 16), p=0.0)(image, label)
    assert out_label.shape == (16, 16)
    decoded = label_from_colours(out_image)
    assert torch.equal(decoded, out_label)  # scale 1: exact copy of a window


def test_misaligned_inputs_are_refused() -> None:
    image, label = painted_pair()
    with pytest.raises(ValueError, match="different sizes"):
        RandomScaleCrop()(image, tv_tensors.Mask(label[:-1]))


# --- antialiased downscaling ---------------------------------------------------------------------------------


def checkerboard(h: int, w: int) -> torch.Tensor:
    """3xHxW uint8 one-pixel checkerboard of 0 and 255: all energy at the highest frequency, mean 127.5."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy + xx) % 2 * 255).to(torch.uint8).expand(3, h, w).contiguous()


def reference(image: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return out[0].round().clamp(0, 255).to(torch.uint8)


def test_downscale_is_antialiased() -> None:
    image = checkerboard(48, 96)
    small = io.resize_image(image, (16, 32))  # 3x smaller
    assert small.dtype == torch.uint8 and small.shape == (3, 16, 32)
    assert torch.equal(small, reference(image, (16, 32), antialias=True))
    assert (small.float() - 127.5).abs().max() <= 3  # the checkerboard averages out to grey
    aliased = reference(image, (16, 32), antialias=False)
    assert (aliased.float() - 127.5).abs().max() > 100  # plain bilinear samples single pixels: black or white
    # One side shrinking is enough to filter that side.
    assert torch.equal(io.resize_image(image, (16, 192)), reference(image, (16, 192), antialias=True))
    floats = image[None].float()
    assert torch.equal(ops.resize_image(floats, (16, 32)),
                       F.interpolate(floats, size=(16, 32), mode="bilinear", align_corners=False, antialias=True))


def test_upscale_equals_plain_bilinear() -> None:
    image = checkerboard(16, 32)
    for size in ((48, 96), (17, 32), (16, 33)):
        assert torch.equal(io.resize_image(image, size), reference(image, size, antialias=False)), size
        floats = image[None].float()
        assert torch.equal(ops.resize_image(floats, size),
                           F.interpolate(floats, size=size, mode="bilinear", align_corners=False)), size


def test_logits_resize_stays_plain_bilinear() -> None:
    logits = torch.randn(1, 19, 48, 96, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ops.resize(logits, (16, 32)),
                       F.interpolate(logits, size=(16, 32), mode="bilinear", align_corners=False))


def test_scale_crop_downscale_antialiases_image_and_keeps_labels_nearest() -> None:
    image = tv_tensors.Image(checkerboard(48, 96))
    label = tv_tensors.Mask(torch.tensor([3, 7, 255]).repeat_interleave(32).expand(48, 96).contiguous())
    out_image, out_label = RandomScaleCrop(scale_range=(1 / 3, 1 / 3), crop_size=(16, 32), p=1.0)(image, label)
    assert out_image.dtype == torch.uint8 and out_label.dtype == label.dtype
    assert torch.equal(out_image.as_subclass(torch.Tensor), reference(image.as_subclass(torch.Tensor), (16, 32),
                                                                      antialias=True))
    assert set(out_label.unique().tolist()) == {3, 7, 255}  # never a blend of two classes
    assert torch.equal(out_label.as_subclass(torch.Tensor), ops.resize_labels(label.as_subclass(torch.Tensor),
                                                                              (16, 32)))


def test_scale_crop_upscale_is_plain_bilinear() -> None:
    image, label = painted_pair()
    out_image, out_label = RandomScaleCrop(scale_range=(1.5, 1.5), crop_size=(72, 96), p=1.0)(image, label)
    assert torch.equal(out_image.as_subclass(torch.Tensor),
                       reference(image.as_subclass(torch.Tensor), (72, 96), antialias=False))
    assert set(out_label.unique().tolist()) <= set(label.unique().tolist())


def test_float_images_are_antialiased_too() -> None:
    image = tv_tensors.Image(checkerboard(48, 96).float() / 255)
    label = tv_tensors.Mask(torch.zeros(48, 96, dtype=torch.int64))
    out_image, _ = RandomScaleCrop(scale_range=(1 / 3, 1 / 3), crop_size=(16, 32), p=1.0)(image, label)
    assert out_image.dtype == torch.float32
    assert (out_image - 0.5).abs().max() < 0.02
