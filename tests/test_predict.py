"""predict.py: masks at the input's size in the Cityscapes colours, or benchmark-ready label-id PNGs, from a
checkpoint; clear errors."""
from __future__ import annotations

from pathlib import Path

import fnmatch
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import predict
from datasets.labels import ID_TO_TRAINID, PALETTE, TRAINID_TO_ID, colorize
from models import BiSeNet
from utils.checkpoint import atomic_save
from utils.config import run_main

SAMPLE = "cityscapes_sample/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png"
GT_NAME = "frankfurt_000000_000294_gtFine_labelIds.png"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint in the step scripts' format holding a randomly initialised BiSeNet."""
    torch.manual_seed(0)
    model = BiSeNet(num_classes=19)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    atomic_save({"trainer": {"model": model.state_dict(), "optimizer": {}, "global_it": 0},
                 "state": {"epoch": 1}, "rng": {}, "config": {"SEED": 0}, "model_spec": model.spec,
                 "variant": "default"}, path)
    return path


def _colours(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return np.unique(rgb, axis=0)


def test_predict_writes_palette_mask_of_input_size(checkpoint: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    image = fixtures_dir / SAMPLE
    written = predict.main(["--checkpoint", str(checkpoint), "--input", str(image), "--out", str(tmp_path),
                            "--device", "cpu", "--amp", "off"])
    stem = image.stem
    mask_path, overlay_path = tmp_path / f"{stem}_mask.png", tmp_path / f"{stem}_overlay.png"
    assert written == [mask_path, overlay_path]
    size = Image.open(image).size
    assert Image.open(mask_path).size == size and Image.open(overlay_path).size == size
    palette = {tuple(c) for c in PALETTE.tolist()}
    colours = {tuple(c) for c in _colours(mask_path).tolist()}
    assert colours and colours <= palette, colours - palette
    # the overlay blends the photo in: it has many more colours than the mask
    assert len(_colours(overlay_path)) > 10 * len(colours)


def test_predict_folder_any_size_with_network_size(checkpoint: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    photo = Image.open(fixtures_dir / SAMPLE).convert("RGB")
    photo.save(src / "a.png")
    photo.resize((101, 77)).save(src / "sub" / "b.jpg")
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    predict.main(["--checkpoint", str(checkpoint), "--input", str(src), "--out", str(out), "--device", "cpu",
                  "--amp", "off", "--size", "64x128"])
    assert Image.open(out / "a_mask.png").size == photo.size
    assert Image.open(out / "sub" / "b_mask.png").size == (101, 77)
    assert not (out / "broken_mask.png").exists()
    palette = {tuple(c) for c in PALETTE.tolist()}
    assert {tuple(c) for c in _colours(out / "sub" / "b_mask.png").tolist()} <= palette


def test_predict_corrupt_checkpoint_is_a_clear_error(fixtures_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SystemExit) as exc:
        run_main(predict.main, ["--checkpoint", str(bad), "--input", str(fixtures_dir / SAMPLE),
                                "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(bad) in err and "corrupt" in err

    no_spec = tmp_path / "weights.pt"
    torch.save({"model": {}}, no_spec)
    with pytest.raises(SystemExit) as exc:
        run_main(predict.main, ["--checkpoint", str(no_spec), "--input", str(fixtures_dir / SAMPLE),
                                "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert exc.value.code == 1 and "model_spec" in capsys.readouterr().err


def test_predict_label_ids_one_png_per_image_for_the_official_matcher(checkpoint: Path, fixtures_dir: Path,
                                                                      tmp_path: Path) -> None:
    src = fixtures_dir / "cityscapes_sample" / "leftImg8bit" / "val"
    out = tmp_path / "out"
    written = predict.main(["--checkpoint", str(checkpoint), "--input", str(src), "--out", str(out),
                            "--format", "labelIds", "--size", "64x128", "--device", "cpu", "--amp", "off"])
    target = out / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    assert written == [target]
    assert sorted(p for p in out.rglob("*") if p.is_file()) == [target]  # no overlay or colour file beside it
    # The official matcher: every PNG under the results folder named CITY_SEQ_FRAME*.png, exactly one allowed.
    city, seq, frame = GT_NAME.split("_")[:3]
    assert [p for p in out.rglob("*") if fnmatch.fnmatch(p.name, f"{city}_{seq}_{frame}*.png")] == [target]

    with Image.open(target) as im:
        assert im.mode == "L" and im.size == Image.open(fixtures_dir / SAMPLE).size
        ids = np.asarray(im)
    assert set(np.unique(ids).tolist()) <= set(TRAINID_TO_ID[:19].tolist())  # label ids, never train ids

    colour = tmp_path / "colour"
    predict.main(["--checkpoint", str(checkpoint), "--input", str(src), "--out", str(colour),
                  "--size", "64x128", "--device", "cpu", "--amp", "off"])
    mask = np.asarray(Image.open(colour / "frankfurt" / "frankfurt_000000_000294_leftImg8bit_mask.png"))
    np.testing.assert_array_equal(colorize(ID_TO_TRAINID[ids]), mask)  # both formats: one prediction


def test_predict_label_ids_clashes_and_leftovers(checkpoint: Path, fixtures_dir: Path, tmp_path: Path,
                                                 capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    photo = Image.open(fixtures_dir / SAMPLE).convert("RGB")
    photo.save(src / "a.png")
    photo.save(src / "a.jpg")
    common = ["--checkpoint", str(checkpoint), "--format", "labelIds", "--device", "cpu", "--amp", "off"]
    with pytest.raises(SystemExit) as exc:
        run_main(predict.main, [*common, "--input", str(src), "--out", str(tmp_path / "out")])
    assert exc.value.code == 1 and "a.png" in capsys.readouterr().err

    # A single image predicted into its own folder would be overwritten by its own prediction.
    with pytest.raises(SystemExit) as exc:
        run_main(predict.main, [*common, "--input", str(src / "a.png"), "--out", str(src)])
    assert exc.value.code == 1 and "overwrite" in capsys.readouterr().err
    assert Image.open(src / "a.png").mode == "RGB"

    # Colour files left from an earlier run would be a second candidate for the official matcher.
    out = tmp_path / "mixed"
    shutil.copy(src / "a.png", tmp_path / "b.png")
    predict.main(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "b.png"), "--out", str(out),
                  "--device", "cpu", "--amp", "off"])
    capsys.readouterr()
    assert predict.main([*common, "--input", str(tmp_path / "b.png"), "--out", str(out)]) == [out / "b.png"]
    assert "warning" in capsys.readouterr().out and (out / "b_mask.png").is_file()


def test_predict_label_ids_needs_the_19_cityscapes_classes(fixtures_dir: Path, tmp_path: Path, capsys) -> None:
    model = BiSeNet(num_classes=5)
    path = tmp_path / "five.pt"
    atomic_save({"trainer": {"model": model.state_dict(), "optimizer": {}, "global_it": 0},
                 "state": {"epoch": 1}, "rng": {}, "config": {"SEED": 0}, "model_spec": model.spec,
                 "variant": "default"}, path)
    with pytest.raises(SystemExit) as exc:
        run_main(predict.main, ["--checkpoint", str(path), "--input", str(fixtures_dir / SAMPLE), "--out",
                                str(tmp_path / "out"), "--format", "labelIds", "--device", "cpu"])
    assert exc.value.code == 1 and "--format color" in capsys.readouterr().err
