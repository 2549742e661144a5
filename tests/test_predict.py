"""predict.py: masks at the input's size in the Cityscapes colours, from a checkpoint; clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import predict
from datasets.labels import PALETTE
from models import BiSeNet
from utils.checkpoint import atomic_save
from utils.config import run_main

SAMPLE = "cityscapes_sample/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png"


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

