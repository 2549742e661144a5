"""The synthetic two-domain world: determinism, the real on-disk formats, class coverage, the tunable domain
shift, reuse/regeneration by manifest, safety against half-written worlds, the CLI, and loading through the
project's Cityscapes / GTA5 datasets."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import Cityscapes as TVCityscapes

from datasets import labels, synthetic
from datasets.synthetic import colour_gap, domain_style, ensure_world, generate, world_status
from utils.errors import ConfigError, DatasetError

SMALL = dict(seed=0, n_source=3, n_train=3, n_val=2, source_size=(48, 96), target_size=(40, 80), progress=False)
MODERATE = dict(seed=0, n_source=40, n_train=30, n_val=10, source_size=(96, 192), target_size=(96, 192),
                workers=1, progress=False)
VALID_IDS = {c.id for c in TVCityscapes.classes if 0 <= c.id < 256}
STEM = re.compile(r"^([a-z]+)_(\d{6})_(\d{6})$")


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def train_ids_in(paths) -> set[int]:
    seen: set[int] = set()
    for p in paths:
        seen |= set(np.unique(labels.ids_to_train_ids(np.asarray(Image.open(p)))).tolist())
    return seen


@pytest.fixture(scope="module")
def moderate_world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_moderate") / "world"
    generate(root, shift=1.0, **MODERATE)
    return root


def test_deterministic_for_a_seed_and_parallel_equals_serial(tmp_path):
    a = tree_bytes(Path(ensure_world(tmp_path / "a", workers=1, **SMALL)))
    b = tree_bytes(Path(ensure_world(tmp_path / "b", workers=2, **SMALL)))
    assert len(a) == 2 * (3 + 3 + 2) + 1  # image + label per sample, and the manifest
    assert a == b  # byte-identical, manifest included
    c = tree_bytes(Path(ensure_world(tmp_path / "c", workers=1, **{**SMALL, "seed": 1})))
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith(".png") and ("images" in k or "leftImg8bit" in k)]
    assert all(a[k] != c[k] for k in images)  # another seed draws other scenes


def test_source_is_written_exactly_like_gta5(tiny_world):
    images = sorted((tiny_world / "GTA5" / "images").iterdir())
    assert [p.name for p in images] == [f"{i:05d}.png" for i in range(1, 17)]
    assert sorted(p.name for p in (tiny_world / "GTA5" / "labels").iterdir()) == [p.name for p in images]
    for p in images:
        im = Image.open(p)
        assert im.mode == "RGB" and im.size == (128, 64)
        lab = Image.open(tiny_world / "GTA5" / "labels" / p.name)
        assert lab.mode == "P" and lab.size == (128, 64)
        palette = np.asarray(lab.getpalette(), np.uint8).reshape(-1, 3)
        assert np.array_equal(palette[:256], labels.LABEL_ID_PALETTE)
        assert set(np.unique(np.asarray(lab)).tolist()) <= VALID_IDS


def test_target_is_written_exactly_like_cityscapes(tiny_world):
    root = tiny_world / "Cityscapes"
    for split, n, cities in (("train", 12, synthetic.TRAIN_CITIES), ("val", 8, synthetic.VAL_CITIES)):
        images = sorted((root / "leftImg8bit" / split).glob("*/*"))
        assert len(images) == n
        assert {p.parent.name for p in images} <= set(cities) and len({p.parent.name for p in images}) > 1
        for p in images:
            assert p.name.endswith("_leftImg8bit.png")
            stem = p.name[: -len("_leftImg8bit.png")]
            m = STEM.match(stem)
            assert m and m.group(1) == p.parent.name, p.name
            im = Image.open(p)
            assert im.mode == "RGB" and im.size == (128, 64)
            lab_path = root / "gtFine" / split / p.parent.name / f"{stem}_gtFine_labelIds.png"
            lab = Image.open(lab_path)
            assert lab.mode == "L" and lab.size == (128, 64)
            assert set(np.unique(np.asarray(lab)).tolist()) <= VALID_IDS
        assert len(list((root / "gtFine" / split).glob("*/*"))) == n
    manifest = json.loads((tiny_world / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("generator_version", "seed", "shift", "n_source", "n_train", "n_val")} == {
        "generator_version": synthetic.GENERATOR_VERSION, "seed": 0, "shift": 1.0, "n_source": 16, "n_train": 12,
        "n_val": 8}
    assert manifest["source_size"] == [64, 128] and manifest["target_size"] == [64, 128]
    # the step scripts' --SYNTHETIC_WORLD=tiny preset finds this very world and reuses it
    from utils.data import WORLD_PRESETS
    assert world_status(tiny_world, **WORLD_PRESETS["tiny"]) is None
    for domain in ("source", "target"):
        fractions = manifest["class_fractions"][domain]
        assert set(fractions) == {*labels.CLASS_NAMES, "ignore"}
        assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-4)


def test_every_class_and_void_regions_occur_with_cityscapes_like_frequencies(moderate_world):
    src_labels = sorted((moderate_world / "GTA5" / "labels").glob("*.png"))
    tgt_labels = sorted((moderate_world / "Cityscapes" / "gtFine").glob("*/*/*_labelIds.png"))
    everything = set(range(labels.NUM_CLASSES))
    for name, paths in (("source", src_labels), ("target", tgt_labels)):
        seen = train_ids_in(paths)
        missing = [labels.CLASS_NAMES[i] for i in everything - seen]
        assert not missing, f"{name} lacks {missing}"
        ids = set()
        for p in paths:
            ids |= set(np.unique(np.asarray(Image.open(p))).tolist())
        assert synthetic.ID["ego vehicle"] in ids  # the bonnet
        # several label ids that all map to ignore, so the id -> train id mapping is really exercised
        void_ids = {i for i in ids if labels.ID_TO_TRAINID[i] == labels.IGNORE_INDEX}
        assert len(void_ids) >= 4, void_ids
    target_voids = set()
    for p in tgt_labels:
        target_voids |= set(np.unique(np.asarray(Image.open(p))).tolist())
    assert {synthetic.ID["rectification border"], synthetic.ID["out of roi"]} <= target_voids

    manifest = json.loads((moderate_world / "manifest.json").read_text())
    for domain in ("source", "target"):
        fr = manifest["class_fractions"][domain]
        ranked = sorted(labels.CLASS_NAMES, key=lambda c: -fr[c])
        assert {"road", "building", "vegetation"} <= set(ranked[:5]), ranked[:5]
        assert fr["road"] > 0.15 and fr["building"] > 0.1 and fr["vegetation"] > 0.05 and fr["sky"] > 0.02
        for rare in ("traffic light", "rider", "motorcycle", "bicycle", "truck", "bus", "train"):
            assert 0 < fr[rare] < 0.02, (domain, rare, fr[rare])
        assert 0.02 < fr["ignore"] < 0.25
    counts = manifest["images_with_class"]
    assert all(counts["source"][c] > 0 for c in labels.CLASS_NAMES)
    assert all(counts["target_train"][c] + counts["target_val"][c] > 0 for c in labels.CLASS_NAMES)


def test_shift_zero_is_the_same_distribution_and_shift_one_is_measurably_shifted(moderate_world, tmp_path):
    assert domain_style("source", 0.0) == domain_style("target")
    assert domain_style("source", 1.0) != domain_style("target")
    world0 = generate(tmp_path / "shift0", shift=0.0, **MODERATE)
    assert world0["shift"] == 0.0
    gap0 = colour_gap(tmp_path / "shift0", classes=synthetic.STUFF_CLASSES)
    gap1 = colour_gap(moderate_world, classes=synthetic.STUFF_CLASSES)
    # mean colour distance (0..255 RGB) of the large classes; at shift 0 only sampling noise remains
    assert gap0["mean"] < 20, gap0
    assert gap1["mean"] > 40 and gap1["mean"] > 3 * gap0["mean"], (gap0, gap1)
    every0, every1 = colour_gap(tmp_path / "shift0"), colour_gap(moderate_world)
    assert every1["median"] > 2.5 * every0["median"], (every0, every1)
    # the source's other appearance statistics move too: sharper and more saturated at shift 1
    src1, tgt1 = (synthetic.domain_stats(moderate_world, d) for d in ("source", "target"))
    road = labels.CLASS_NAMES.index("road")
    assert not np.allclose(src1["mean_colour"][road], tgt1["mean_colour"][road], atol=10)


def test_ensure_world_reuses_a_matching_world_and_regenerates_otherwise(tmp_path, capsys):
    out = tmp_path / "world"
    assert world_status(out, **SMALL) == "absent"
    ensure_world(out, workers=1, **SMALL)
    assert "absent" in capsys.readouterr().out
    manifest = out / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert ensure_world(out, **SMALL) == out
    assert capsys.readouterr().out == "" and manifest.stat().st_mtime_ns == stamp  # reused, untouched
    ensure_world(out, workers=1, **{**SMALL, "seed": 3, "shift": 0.5})
    said = capsys.readouterr().out
    assert "seed: 0 -> 3" in said and "shift: 1.0 -> 0.5" in said
    assert json.loads(manifest.read_text())["seed"] == 3
    ensure_world(out, workers=1, **{**SMALL, "seed": 3, "shift": 0.5, "target_size": (48, 64)})
    assert "target_size" in capsys.readouterr().out
    assert Image.open(next((out / "Cityscapes" / "leftImg8bit").rglob("*.png"))).size == (64, 48)
    # a file lost afterwards is noticed too
    next((out / "GTA5" / "labels").glob("*.png")).unlink()
    assert world_status(out, **{**SMALL, "seed": 3, "shift": 0.5, "target_size": (48, 64)}).startswith("incomplete")


def test_a_half_written_generation_is_never_taken_for_a_world(tmp_path, monkeypatch, capsys):
    out = tmp_path / "world"
    real_render = synthetic.render
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("killed")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render", failing_render)
    with pytest.raises(RuntimeError, match="killed"):
        generate(out, workers=1, **SMALL)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing that looks like a world, no debris
    monkeypatch.undo()

    # what a SIGKILL leaves behind: a temporary sibling of a dead process, or files without a manifest
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".world.tmp-{dead.pid}-1"
    (stale / "GTA5" / "images").mkdir(parents=True)
    (out / "GTA5" / "images").mkdir(parents=True)
    Image.new("RGB", (96, 48)).save(out / "GTA5" / "images" / "00001.png")
    assert world_status(out, **SMALL) == "incomplete (no manifest.json)"
    ensure_world(out, workers=1, **SMALL)
    assert "incomplete" in capsys.readouterr().out
    assert world_status(out, **SMALL) is None
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


def test_refuses_to_replace_a_folder_that_is_not_a_world_and_rejects_bad_parameters(tmp_path):
    foreign = tmp_path / "mydata"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a synthetic world"):
        ensure_world(foreign, workers=1, **SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"
    for bad in ({"shift": -0.5}, {"shift": 5.0}, {"n_train": 0}, {"source_size": (10, 10)},
                {"target_size": (64, 64.5)}, {"seed": "zero"}):
        with pytest.raises(ConfigError):
            generate(tmp_path / "w", **{**SMALL, **bad})
    with pytest.raises(ConfigError, match="unknown synthetic-world parameter"):
        ensure_world(tmp_path / "w", n_images=3)
    with pytest.raises(ConfigError):
        generate(tmp_path / "w", workers=0, **SMALL)


def test_cli_generates_reuses_and_forces(tmp_path, capsys):
    args = ["--out", str(tmp_path / "w"), "--n-source", "2", "--n-train", "2", "--n-val", "1",
            "--source-size", "48x96", "--target-size", "40x80", "--workers", "1", "--no-progress"]
    first = synthetic.main(args)
    said = capsys.readouterr().out
    assert "absent; generating" in said and "generated in" in said
    assert "road" in said and "source %" in said and "target %" in said
    assert first["n_source"] == 2 and first["source_size"] == [48, 96]
    again = synthetic.main(args)
    assert "reusing" in capsys.readouterr().out and again == first
    synthetic.main([*args, "--force"])
    assert "forced" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        synthetic.main([*args[:-2], "--source-size", "big"])
    # as a program (python -m, where the module is __main__), and the world it writes is reusable as a library's
    prog = subprocess.run([sys.executable, "-m", "datasets.synthetic", *args[:2], "--seed", "5", *args[2:]],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert prog.returncode == 0, prog.stderr
    assert json.loads((tmp_path / "w" / "manifest.json").read_text())["generator"] == "datasets.synthetic"
    assert world_status(tmp_path / "w", **{**SMALL, "seed": 5, "n_source": 2, "n_train": 2, "n_val": 1,
                                           "source_size": (48, 96), "target_size": (40, 80)}) is None
    # a user error is one line on stderr and exit status 1, no traceback
    assert synthetic.cli(["--out", str(tmp_path / "bad"), "--shift", "-1"]) == 1
    err = capsys.readouterr().err
    assert "shift must be" in err and "Traceback" not in err


def test_world_loads_through_the_project_datasets(tiny_world):
    from datasets import GTA5, Cityscapes

    for split, n in (("train", 12), ("val", 8)):
        ds = Cityscapes(tiny_world / "Cityscapes", split=split)
        assert len(ds) == n
        image, label = ds[0]
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 64, 128)
        assert label.dtype == torch.int64 and tuple(label.shape) == (64, 128)
        values = set(label.unique().tolist())
        assert values <= set(range(labels.NUM_CLASSES)) | {labels.IGNORE_INDEX}
    gta = GTA5(tiny_world / "GTA5")
    assert len(gta) == 16
    image, label = gta[0]
    assert tuple(image.shape) == (3, 64, 128) and image.dtype == torch.uint8
    raw = np.asarray(Image.open(tiny_world / "GTA5" / "labels" / "00001.png"))
    assert np.array_equal(label.numpy(), labels.ids_to_train_ids(raw).astype(np.int64))
    assert np.array_equal(image.permute(1, 2, 0).numpy(),
                          np.asarray(Image.open(tiny_world / "GTA5" / "images" / "00001.png")))
    assert len(GTA5(tiny_world / "GTA5", split="train")) + len(GTA5(tiny_world / "GTA5", split="val")) == 16
