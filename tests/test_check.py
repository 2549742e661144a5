"""python -m datasets.check: a usable dataset exits 0, a broken one exits 1 naming the file."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets import labels
from datasets.check import main

ROOT = Path(__file__).resolve().parents[1]
H, W = 32, 64


def _png(path: Path, array: np.ndarray, palette: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    if palette is not None:
        im.putpalette(palette.tobytes())
    im.save(path)
    return path


def _ids(rng: np.random.Generator) -> np.ndarray:
    # Road, car and sky blocks plus some void (id 0).
    blocks = rng.choice(np.array([7, 26, 23, 0], np.uint8), size=(H // 8, W // 8))
    return np.kron(blocks, np.ones((8, 8), np.uint8))


def make_cityscapes(root: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(n):
            stem = f"aachen_{i:06d}_000019"
            image = rng.integers(0, 256, (H, W, 3), np.uint8)
            _png(root / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", image)
            _png(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", _ids(rng))
    return root


def make_gta5(root: Path, n: int = 3, fmt: str = "color") -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        _png(root / "images" / f"{i:05d}.png", rng.integers(0, 256, (H, W, 3), np.uint8))
        ids = _ids(rng)
        if fmt == "color":
            _png(root / "labels" / f"{i:05d}.png", labels.LABEL_ID_PALETTE[ids])
        else:
            _png(root / "labels" / f"{i:05d}.png", labels.ID_TO_TRAINID[ids])
    return root


def test_valid_datasets_exit_0(tmp_path: Path, capsys) -> None:
    cs, gta = make_cityscapes(tmp_path / "cs"), make_gta5(tmp_path / "gta")
    assert main(["--cityscapes", str(cs), "--gta5", str(gta)]) == 0
    out = capsys.readouterr().out
    for text in ("layout: official", "train: 2 images (label files: labelIds 2)", "val: 2 images",
                 "auto -> color", "32x64", "OK: usable for training"):
        assert text in out
    assert "PROBLEM" not in out
    # The histogram counts real pixels: only road, car, sky and ignore occur.
    rows = re.findall(r"^ +\d+ +(\S.*?) +([\d.]+) %", out, re.M)
    assert len(rows) == 2 * 20  # both datasets: 19 classes and ignore
    shares = {name: float(share) for name, share in rows[:20]}
    assert sum(shares.values()) == pytest.approx(100, abs=0.1)
    assert shares["road"] > 0 and shares["car"] > 0 and shares["sky"] > 0 and shares["ignore"] > 0
    assert shares["sidewalk"] == 0 and shares["traffic light"] == 0


@pytest.mark.parametrize("damage", ["corrupt", "size"])
def test_broken_cityscapes_exits_1_naming_the_file(tmp_path: Path, capsys, damage: str) -> None:
    cs = make_cityscapes(tmp_path / "cs")
    bad = cs / "gtFine" / "val" / "aachen" / "aachen_000001_000019_gtFine_labelIds.png"
    if damage == "corrupt":
        bad.write_bytes(bad.read_bytes()[:100])
    else:
        _png(bad, np.zeros((H, W // 2), np.uint8))
    assert main(["--cityscapes", str(cs)]) == 1
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM:")]
    assert len(problems) == 1 and str(bad) in problems[0]
    assert "NOT USABLE" in out


def test_greyscale_gta5_needs_label_format(tmp_path: Path, capsys) -> None:
    gta = make_gta5(tmp_path / "gta", fmt="trainIds")
    assert main(["--gta5", str(gta)]) == 1
    assert "--label-format=trainIds" in capsys.readouterr().out  # as this command spells it
    assert main(["--gta5", str(gta), "--label-format", "trainIds"]) == 0


def test_missing_split_and_skipped_images(tmp_path: Path, capsys) -> None:
    cs = make_cityscapes(tmp_path / "cs")
    for p in (cs / "leftImg8bit" / "val").rglob("*.png"):
        p.unlink()
    gta = make_gta5(tmp_path / "gta", n=4)
    (gta / "labels" / "00002.png").unlink()
    assert main(["--cityscapes", str(cs), "--gta5", str(gta), "--max-images", "2"]) == 1
    out = capsys.readouterr().out
    assert "val split is empty" in out
    assert f"1 image(s) have no label file and are skipped: {gta / 'images' / '00002.png'}" in out
    assert "decoded 2 of 2 sampled images (3 in all)" in out


def test_command_line_exit_status_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [sys.executable, "-m", "datasets.check", "--cityscapes", str(missing)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert str(missing) in result.stdout and "--demo" in result.stdout
