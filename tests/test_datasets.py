"""Cityscapes and GTA5 loading: real sample files, all label formats, and every kind of bad input."""
from __future__ import annotations

import os
import shutil
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile

from datasets import GTA5, Cityscapes, labels
from utils.errors import ConfigError, DatasetError

SAMPLE_STEM = "frankfurt_000000_000294"
H, W = 32, 64
# Label ids of the 19 train classes, and some that Cityscapes maps to ignore.
TRAIN_CLASS_IDS = np.array([i for i in range(256) if labels.ID_TO_TRAINID[i] != 255], dtype=np.uint8)


def write_png(path: Path, array: np.ndarray, palette: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.ascontiguousarray(array))
    if palette is not None:
        im.putpalette(palette.astype(np.uint8).tobytes())
    im.save(path)
    return path


def random_ids(rng: np.random.Generator, size=(H, W)) -> np.ndarray:
    """Blocky label ids of the 19 train classes plus void ids (0, 1, 4)."""
    choices = np.concatenate([TRAIN_CLASS_IDS, [0, 1, 4]]).astype(np.uint8)
    blocks = rng.choice(choices, size=(size[0] // 8, size[1] // 8))
    return np.kron(blocks, np.ones((8, 8), dtype=np.uint8))


def random_image(rng: np.random.Generator, size=(H, W)) -> np.ndarray:
    return rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)


def make_cityscapes(
    root: Path, layout: str = "official", kind: str = "labelIds", n: int = 2, seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """A tiny Cityscapes root; returns the label ids written per split."""
    rng = np.random.default_rng(seed)
    folder = "leftImg8bit" if layout == "official" else "images"
    written = {}
    for split in ("train", "val"):
        written[split] = []
        for i in range(n):
            stem = f"city_{i:06d}_000019"
            write_png(root / folder / split / "city" / f"{stem}_leftImg8bit.png", random_image(rng))
            ids = random_ids(rng)
            if kind == "labelIds":
                write_png(root / "gtFine" / split / "city" / f"{stem}_gtFine_labelIds.png", ids)
            else:
                path = root / "gtFine" / split / "city" / f"{stem}_gtFine_labelTrainIds.png"
                write_png(path, labels.ID_TO_TRAINID[ids])
            written[split].append(ids)
    return written


def make_gta5(root: Path, fmt: str = "labelIds", n: int = 4, seed: int = 0) -> list[np.ndarray]:
    """A tiny GTA5 root in one label format; returns the label ids written."""
    rng = np.random.default_rng(seed)
    written = []
    for i in range(n):
        write_png(root / "images" / f"{i + 1:05d}.png", random_image(rng))
        ids = random_ids(rng)
        path = root / "labels" / f"{i + 1:05d}.png"
        if fmt == "labelIds":
            write_png(path, ids, palette=labels.LABEL_ID_PALETTE)
        elif fmt == "color":
            write_png(path, labels.LABEL_ID_PALETTE[ids])
        else:
            write_png(path, labels.ID_TO_TRAINID[ids])
        written.append(ids)
    return written


@pytest.fixture()
def sample_copy(fixtures_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    shutil.copytree(fixtures_dir / "cityscapes_sample", root)
    for p in root.rglob("*"):
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return root


def _sample_files(root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "gtFine" / "val" / "frankfurt"
    ids = np.array(Image.open(folder / f"{SAMPLE_STEM}_gtFine_labelIds.png"))
    train_ids = np.array(Image.open(folder / f"{SAMPLE_STEM}_gtFine_labelTrainIds.png"))
    return ids, train_ids


# --- the real sample ---------------------------------------------------------------------------------------


def test_real_sample_label_ids_agree_with_train_id_file(fixtures_dir: Path) -> None:
    root = fixtures_dir / "cityscapes_sample"
    _, train_ids = _sample_files(root)
    ds = Cityscapes(root, split="val", label_source="labelIds")
    assert len(ds) == 1
    image, label = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 128, 256)
    assert label.dtype == torch.int64 and label.shape == (128, 256)
    agreement = (label.numpy() == train_ids).mean()
    assert agreement >= 0.995, agreement
    assert set(label.unique().tolist()) <= set(range(19)) | {255}

    from_file = Cityscapes(root, split="val", label_source="labelTrainIds")[0][1]
    assert np.array_equal(from_file.numpy(), train_ids)


def test_real_sample_auto_falls_back_to_label_ids(sample_copy: Path) -> None:
    _, train_ids = _sample_files(sample_copy)
    (sample_copy / "gtFine" / "val" / "frankfurt" / f"{SAMPLE_STEM}_gtFine_labelTrainIds.png").unlink()
    ds = Cityscapes(sample_copy, split="val")
    assert ds.label_kind_counts == {"labelIds": 1}
    assert (ds[0][1].numpy() == train_ids).mean() >= 0.995
    with pytest.raises(DatasetError, match="labelTrainIds.png"):
        Cityscapes(sample_copy, split="val", label_source="labelTrainIds")


def test_real_sample_as_gta5_palette_and_colour(fixtures_dir: Path, tmp_path: Path) -> None:
    root = fixtures_dir / "cityscapes_sample"
    ids, _ = _sample_files(root)
    image = Image.open(root / "leftImg8bit" / "val" / "frankfurt" / f"{SAMPLE_STEM}_leftImg8bit.png")
    expected = Cityscapes(root, split="val", label_source="labelIds")[0][1].numpy()
    for fmt in ("labelIds", "color"):
        gta = tmp_path / fmt
        (gta / "images").mkdir(parents=True)
        image.save(gta / "images" / "00001.png")
        if fmt == "labelIds":
            write_png(gta / "labels" / "00001.png", ids, palette=labels.LABEL_ID_PALETTE)
            assert Image.open(gta / "labels" / "00001.png").mode == "P"
        else:
            write_png(gta / "labels" / "00001.png", labels.LABEL_ID_PALETTE[ids])
        ds = GTA5(gta)
        assert ds.detected_format == fmt
        label = ds[0][1].numpy()
        if fmt == "labelIds":
            assert np.array_equal(label, expected)
        else:
            train_class = expected != 255
            assert train_class.mean() > 0.5
            assert np.array_equal(label[train_class], expected[train_class])
            # The sample's void ids (1..4: black) have no train-class colour, so they are ignored too.
            assert np.all(label[~train_class] == 255)
        assert np.array_equal(GTA5(gta, label_format=fmt)[0][1].numpy(), label)


def test_colour_collisions_resolve_to_the_train_class(tmp_path: Path) -> None:
    # polegroup (id 18) shares pole's colour, license plate shares car's: a table built from all 34 classes
    # would send these to 255 / -1. Built from the 19 train classes, pole and car colours stay pole and car.
    pole, car, polegroup = 17, 26, 18
    ids = np.full((H, W), pole, dtype=np.uint8)
    ids[:, W // 2 :] = car
    ids[: H // 2, : W // 4] = polegroup
    write_png(tmp_path / "c" / "images" / "00001.png", np.zeros((H, W, 3), np.uint8))
    write_png(tmp_path / "c" / "labels" / "00001.png", labels.LABEL_ID_PALETTE[ids])
    write_png(tmp_path / "p" / "images" / "00001.png", np.zeros((H, W, 3), np.uint8))
    write_png(tmp_path / "p" / "labels" / "00001.png", ids, palette=labels.LABEL_ID_PALETTE)
    colour = GTA5(tmp_path / "c")[0][1]
    palette = GTA5(tmp_path / "p")[0][1]
    pole_t, car_t = int(labels.ID_TO_TRAINID[pole]), int(labels.ID_TO_TRAINID[car])
    assert (pole_t, car_t) == (labels.CLASS_NAMES.index("pole"), labels.CLASS_NAMES.index("car"))
    assert torch.all(colour[:, W // 2 :] == car_t)
    assert torch.all(colour[:, : W // 2] == pole_t)  # polegroup's colour is pole's: cannot be told apart
    assert torch.all(palette[: H // 2, : W // 4] == 255)  # by id, polegroup is ignored as Cityscapes defines
    assert torch.all(palette[H // 2 :, : W // 2] == pole_t)


def test_class_table_is_defined_once_in_utils_classes() -> None:
    from utils import classes

    for name in ("IGNORE_INDEX", "NUM_CLASSES", "CLASS_NAMES", "PALETTE", "colorize"):
        assert getattr(labels, name) is getattr(classes, name), name
    assert len(classes.CLASS_NAMES) == 19 and classes.CLASS_NAMES[:3] == ("road", "sidewalk", "building")
    assert labels.TRAINID_TO_ID[classes.CLASS_NAMES.index("car")] == 26
    assert np.array_equal(labels.ID_TO_TRAINID[labels.TRAINID_TO_ID[:19]], np.arange(19))


# --- layouts and formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout,kind", [("official", "labelIds"), ("official", "labelTrainIds"), ("course", "labelTrainIds")]
)
def test_cityscapes_layouts(tmp_path: Path, layout: str, kind: str) -> None:
    written = make_cityscapes(tmp_path, layout=layout, kind=kind)
    for split in ("train", "val"):
        ds = Cityscapes(tmp_path, split=split)
        assert ds.layout == layout and len(ds) == 2 and ds.label_kind_counts == {kind: 2}
        for i, ids in enumerate(written[split]):
            image, label = ds[i]
            assert image.shape == (3, H, W) and image.dtype == torch.uint8
            assert np.array_equal(label.numpy(), labels.ID_TO_TRAINID[ids])


def test_cityscapes_resize(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    native_image, native_label = Cityscapes(tmp_path, "val")[0]
    image, label = Cityscapes(tmp_path, "val", size=(16, 24))[0]
    assert image.shape == (3, 16, 24) and image.dtype == torch.uint8
    assert label.shape == (16, 24) and label.dtype == torch.int64
    assert set(label.unique().tolist()) <= set(native_label.unique().tolist())
    assert image.float().mean() == pytest.approx(native_image.float().mean().item(), abs=6)


def test_gta5_train_ids_format(tmp_path: Path) -> None:
    written = make_gta5(tmp_path, fmt="trainIds")
    ds = GTA5(tmp_path, label_format="trainIds")
    assert len(ds) == 4 and ds.num_skipped == 0
    for i, ids in enumerate(written):
        assert np.array_equal(ds[i][1].numpy(), labels.ID_TO_TRAINID[ids])


def test_gta5_format_mismatch_is_explained(tmp_path: Path) -> None:
    make_gta5(tmp_path, fmt="labelIds", n=1)
    with pytest.raises(DatasetError, match="palette PNG.*labelIds"):
        GTA5(tmp_path, label_format="trainIds")[0]
    with pytest.raises(ConfigError, match="auto, labelIds, color, trainIds"):
        GTA5(tmp_path, label_format="colour")


def test_transform_gets_tv_tensors_and_result_is_plain(tmp_path: Path) -> None:
    from torchvision import tv_tensors

    make_cityscapes(tmp_path)
    seen = []

    def flip(image, mask):
        seen.append((type(image), type(mask)))
        return image.flip(-1), mask.flip(-1)

    plain_image, plain_label = Cityscapes(tmp_path, "train")[0]
    image, label = Cityscapes(tmp_path, "train", transform=flip)[0]
    assert seen == [(tv_tensors.Image, tv_tensors.Mask)]
    assert type(image) is torch.Tensor and type(label) is torch.Tensor
    assert torch.equal(image, plain_image.flip(-1)) and torch.equal(label, plain_label.flip(-1))


# --- bad input ---------------------------------------------------------------------------------------------


def test_unknown_label_ids_become_ignore(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, n=1)
    ids = np.full((H, W), 7, dtype=np.uint8)  # road
    ids[:, :8], ids[:, 8:16], ids[:, 16:24] = 50, 200, 34  # not in the table
    write_png(tmp_path / "gtFine" / "val" / "city" / "city_000000_000019_gtFine_labelIds.png", ids)
    label = Cityscapes(tmp_path, "val")[0][1]
    assert torch.all(label[:, :24] == 255) and torch.all(label[:, 24:] == 0)

    train_ids = np.zeros((H, W), dtype=np.uint8)
    train_ids[:, :8], train_ids[:, 8:16] = 19, 100  # no train id: the file is not in the format it is read as
    path = tmp_path / "gtFine" / "val" / "city" / "city_000000_000019_gtFine_labelTrainIds.png"
    write_png(path, train_ids)
    with pytest.raises(DatasetError, match="holds 19, 100, values no train-id file holds") as err:
        Cityscapes(tmp_path, "val")[0]
    assert str(path) in str(err.value) and "label_source='labelIds'" in str(err.value)


def test_unknown_colours_become_ignore_never_road(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    rgb[:, :8] = labels.PALETTE[0] + np.array([0, 0, 1], np.uint8)  # one step off road's colour
    rgb[:, 8:16] = labels.PALETTE[0]
    write_png(tmp_path / "images" / "00001.png", random_image(rng))
    write_png(tmp_path / "labels" / "00001.png", rgb)
    label = GTA5(tmp_path, label_format="color")[0][1]
    assert torch.all(label[:, 8:16] == 0)
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[:, 8:16] = False
    known = np.isin(labels.colors_to_train_ids(rgb), np.arange(19))[outside.numpy()]
    assert not known.any()  # random colours do not hit the palette by chance at this seed
    assert torch.all(label[outside] == 255)


def test_cityscapes_size_mismatch_names_both_files(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, n=1)
    label_path = tmp_path / "gtFine" / "val" / "city" / "city_000000_000019_gtFine_labelIds.png"
    write_png(label_path, np.full((H // 2, W // 2), 7, np.uint8))
    ds = Cityscapes(tmp_path, "val")
    with pytest.raises(DatasetError) as err:
        ds[0]
    msg = str(err.value)
    assert str(label_path) in msg and "city_000000_000019_leftImg8bit.png" in msg
    assert f"{W}x{H}" in msg and f"{W // 2}x{H // 2}" in msg


def test_gta5_image_resized_to_label(tmp_path: Path) -> None:
    written = make_gta5(tmp_path, n=1)
    write_png(tmp_path / "images" / "00001.png", np.full((H + 6, W - 10, 3), 90, np.uint8))
    image, label = GTA5(tmp_path)[0]
    assert image.shape == (3, H, W) and label.shape == (H, W)
    assert torch.all(image == 90)
    assert np.array_equal(label.numpy(), labels.ID_TO_TRAINID[written[0]])
    image, label = GTA5(tmp_path, size=(16, 24))[0]
    assert image.shape == (3, 16, 24) and label.shape == (16, 24) and torch.all(image == 90)


def _checkerboard(h: int, w: int) -> np.ndarray:
    """HxWx3 uint8 one-pixel checkerboard of 0 and 255 (mean 127.5): what aliasing turns into black and white."""
    yy, xx = np.mgrid[:h, :w]
    return np.repeat(((yy + xx) % 2 * 255).astype(np.uint8)[..., None], 3, axis=2)


def _antialiased(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0].round().clamp(0, 255).to(torch.uint8)


def test_dataset_downscale_is_antialiased(tmp_path: Path) -> None:
    board = _checkerboard(48, 96)
    ids = np.kron(np.array([[7, 26, 23]], np.uint8), np.ones((48, 32), np.uint8))  # road | car | sky
    stem = "city_000000_000019"
    city = tmp_path / "cityscapes"
    write_png(city / "leftImg8bit" / "val" / "city" / f"{stem}_leftImg8bit.png", board)
    write_png(city / "gtFine" / "val" / "city" / f"{stem}_gtFine_labelIds.png", ids)
    image, label = Cityscapes(city, "val", size=(16, 32), cache_dir=False)[0]  # 3x smaller
    assert torch.equal(image, _antialiased(board, (16, 32)))
    assert (image.float() - 127.5).abs().max() <= 3
    assert set(label.unique().tolist()) == {0, 13, 10}  # nearest: road, car, sky and nothing in between

    # GTA5 with an image larger than its label: the image goes straight to ``size`` (or the label's size).
    gta = tmp_path / "gta5"
    write_png(gta / "images" / "00001.png", board)
    write_png(gta / "labels" / "00001.png", ids[::2, ::2], palette=labels.LABEL_ID_PALETTE)
    image, label = GTA5(gta, size=(16, 32), cache_dir=False)[0]
    assert torch.equal(image, _antialiased(board, (16, 32))) and label.shape == (16, 32)
    image, label = GTA5(gta, cache_dir=False)[0]
    assert torch.equal(image, _antialiased(board, (24, 48))) and label.shape == (24, 48)
    assert (image.float() - 127.5).abs().max() <= 3


def test_dataset_upscale_is_plain_bilinear(tmp_path: Path) -> None:
    board = _checkerboard(16, 32)
    write_png(tmp_path / "images" / "00001.png", board)
    write_png(tmp_path / "labels" / "00001.png", np.full((16, 32), 7, np.uint8), palette=labels.LABEL_ID_PALETTE)
    image, label = GTA5(tmp_path, size=(40, 80), cache_dir=False)[0]
    x = torch.from_numpy(board).permute(2, 0, 1)[None].float()
    plain = F.interpolate(x, size=(40, 80), mode="bilinear", align_corners=False)[0].round().to(torch.uint8)
    assert torch.equal(image, plain) and torch.all(label == 0)


@pytest.mark.parametrize("which", ["image", "label"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_or_truncated_png_names_the_file(tmp_path: Path, which: str, damage: str) -> None:
    make_cityscapes(tmp_path, n=1)
    if which == "image":
        path = tmp_path / "leftImg8bit" / "val" / "city" / "city_000000_000019_leftImg8bit.png"
    else:
        path = tmp_path / "gtFine" / "val" / "city" / "city_000000_000019_gtFine_labelIds.png"
    data = path.read_bytes()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200) if damage == "garbage" else data[: len(data) // 2])
    ds = Cityscapes(tmp_path, "val")
    with pytest.raises(DatasetError, match="corrupt or truncated") as err:
        ds[0]
    assert str(path) in str(err.value)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_other_errors_in_getitem_carry_the_file_names(tmp_path: Path) -> None:
    # DataLoader workers re-raise with the original traceback text, notes included: the path travels along.
    make_gta5(tmp_path, n=1)

    def broken(image, mask):
        raise RuntimeError("bug in a transform")

    with pytest.raises(RuntimeError, match="bug in a transform") as err:
        GTA5(tmp_path, transform=broken)[0]
    notes = "\n".join(getattr(err.value, "__notes__", []))
    assert str(tmp_path / "images" / "00001.png") in notes and str(tmp_path / "labels" / "00001.png") in notes


def test_missing_root_explains_layouts_and_demo(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(DatasetError) as err:
        Cityscapes(missing, "train")
    msg = str(err.value)
    for text in (str(missing), "leftImg8bit/{train,val}", "images/{train,val}", "gtFine", "--demo"):
        assert text in msg
    with pytest.raises(DatasetError) as err:
        GTA5(missing)
    msg = str(err.value)
    for text in (str(missing), "images/NNNNN.png", "labels/NNNNN.png", "--demo"):
        assert text in msg


def test_root_one_level_too_high_gets_a_hint(tmp_path: Path) -> None:
    make_cityscapes(tmp_path / "Cityscapes", n=1)
    with pytest.raises(DatasetError, match="try ROOT=.*Cityscapes"):
        Cityscapes(tmp_path, "train")


def test_missing_split_folder(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, n=1)
    shutil.rmtree(tmp_path / "leftImg8bit" / "val")
    with pytest.raises(DatasetError, match="val split not found.*splits present.*train"):
        Cityscapes(tmp_path, "val")


def test_empty_split_folder(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, n=1)
    shutil.rmtree(tmp_path / "leftImg8bit" / "val")
    (tmp_path / "leftImg8bit" / "val" / "city").mkdir(parents=True)
    with pytest.raises(DatasetError, match="val split is empty"):
        Cityscapes(tmp_path, "val")
    for p in (tmp_path / "gta" / "images", tmp_path / "gta" / "labels"):
        p.mkdir(parents=True)
    with pytest.raises(DatasetError, match="no .png images"):
        GTA5(tmp_path / "gta")


def test_cityscapes_image_without_label_names_both(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, n=2)
    label = tmp_path / "gtFine" / "train" / "city" / "city_000001_000019_gtFine_labelIds.png"
    label.unlink()
    with pytest.raises(DatasetError) as err:
        Cityscapes(tmp_path, "train")
    msg = str(err.value)
    assert "1 of 2 images have no label" in msg
    assert "city_000001_000019_leftImg8bit.png" in msg and str(label) in msg


def test_gta5_greyscale_with_auto_says_what_to_set(tmp_path: Path) -> None:
    make_gta5(tmp_path, fmt="trainIds", n=2)
    with pytest.raises(DatasetError) as err:
        GTA5(tmp_path)
    msg = str(err.value)
    assert "00001.png" in msg and "label_format='trainIds'" in msg and "label_format='labelIds'" in msg
    assert "suggest train ids" in msg
    assert len(GTA5(tmp_path, label_format="trainIds")) == 2


def test_gta5_image_without_label_is_skipped_and_counted(tmp_path: Path) -> None:
    make_gta5(tmp_path, n=5)
    (tmp_path / "labels" / "00002.png").unlink()
    (tmp_path / "labels" / "00004.png").unlink()
    with pytest.warns(UserWarning, match="2 of 5 images have no label file"):
        ds = GTA5(tmp_path)
    assert ds.num_skipped == 2 and len(ds) == 3
    assert ds.ids == ["00001", "00003", "00005"]
    full = tmp_path / "full"
    make_gta5(full, n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GTA5(full).num_skipped == 0  # no warning when nothing is skipped


def test_gta5_split_disjoint_covering_deterministic(tmp_path: Path) -> None:
    make_gta5(tmp_path, n=20)
    all_ids = GTA5(tmp_path).ids
    train, val = GTA5(tmp_path, split="train").ids, GTA5(tmp_path, split="val").ids
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == all_ids
    assert GTA5(tmp_path, split="val").ids == val  # deterministic
    other = {tuple(GTA5(tmp_path, split="val", split_seed=s, val_fraction=0.25).ids) for s in range(4)}
    assert len(other) > 1 and all(len(v) == 5 for v in other)

    list_file = tmp_path / "val.txt"
    list_file.write_text("# val images\n00003\n00007.png\nimages/00011.png\n\n")
    assert GTA5(tmp_path, split="val", list_file=list_file).ids == ["00003", "00007", "00011"]
    train = GTA5(tmp_path, split="train", list_file=list_file).ids
    assert len(train) == 17 and not {"00003", "00007", "00011"} & set(train)
    list_file.write_text("00003\n99999\n")
    with pytest.raises(DatasetError, match="99999"):
        GTA5(tmp_path, split="val", list_file=list_file)
    with pytest.raises(ConfigError, match="val_fraction"):
        GTA5(tmp_path, split="val", val_fraction=1.5)


def test_split_membership_does_not_shift_when_labels_are_missing(tmp_path: Path) -> None:
    make_gta5(tmp_path, n=20)
    val = GTA5(tmp_path, split="val", val_fraction=0.3).ids
    (tmp_path / "labels" / f"{val[0]}.png").unlink()
    with pytest.warns(UserWarning):
        assert GTA5(tmp_path, split="val", val_fraction=0.3).ids == val[1:]


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode) for p in sorted(root.rglob("*"))}


def test_read_only_dataset_folders_work_and_nothing_is_written(tmp_path: Path) -> None:
    make_cityscapes(tmp_path / "cs")
    make_gta5(tmp_path / "gta", fmt="color")
    paths = [tmp_path / "cs", tmp_path / "gta"]
    for root in paths:
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = {str(r): _snapshot(r) for r in paths}
    try:
        for split in ("train", "val"):
            ds = Cityscapes(tmp_path / "cs", split, size=(16, 32))
            assert all(ds[i][0].shape == (3, 16, 32) for i in range(len(ds)))
        for split in ("all", "train", "val"):
            ds = GTA5(tmp_path / "gta", split=split)
            assert all(ds[i][1].shape == (H, W) for i in range(len(ds)))
        from datasets.check import main

        assert main(["--cityscapes", str(tmp_path / "cs"), "--gta5", str(tmp_path / "gta")]) == 0
        assert {str(r): _snapshot(r) for r in paths} == before
    finally:
        for root in paths:
            for p in [root, *root.rglob("*")]:
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
