"""The synthetic two-domain world: determinism, the real on-disk formats, class coverage, the tunable domain
shift and what it is made of (per-class appearance no per-channel affine map explains, conditions that vary from
image to image, the source's sharper rendering), reuse/regeneration by manifest, safety against half-written
worlds, the CLI, loading through the project's Cityscapes / GTA5 datasets, and byte-identity with hashes recorded
from this generator version."""
from __future__ import annotations

import hashlib
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
from datasets.synthetic import WORLD_PRESETS, Conditions, domain_style, ensure_world, generate, world_status
from datasets.synthetic import cli as synthetic_cli
from synthetic_stats import (STUFF_CLASSES, affine_residual, colour_gap, domain_stats, local_contrast,
                             per_image_brightness)
from utils.errors import ConfigError, DatasetError

SMALL = dict(seed=0, n_source=3, n_train=3, n_val=2, source_size=(48, 96), target_size=(40, 80), progress=False)
MODERATE = dict(seed=0, n_source=40, n_train=30, n_val=10, source_size=(96, 192), target_size=(96, 192),
                workers=1, progress=False)
VALID_IDS = {c.id for c in TVCityscapes.classes if 0 <= c.id < 256}
# Measured on MODERATE worlds of GENERATOR_VERSION 5 (values in docs/synthetic_world.md), with margins.
GAP0_MAX, GAP1_MIN = 20.0, 40.0
AFFINE_RESIDUAL_MIN = 25.0
ROAD_BRIGHTNESS_CV_MIN = 0.12
SHARPER_MIN = 1.5
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


@pytest.fixture(scope="module")
def same_distribution_world(tmp_path_factory) -> Path:
    """The moderate world at shift 0: the source drawn from the target's distribution."""
    root = tmp_path_factory.mktemp("synthetic_shift0") / "world"
    generate(root, shift=0.0, **MODERATE)
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


def test_every_split_holds_every_class_and_the_manifest_counts_what_the_labels_hold(tmp_path):
    """Source, target train and target val each hold all 19 classes (the rare ones in a few images), so every
    split can train and evaluate every class; the manifest's per-split image counts are what the label files
    hold."""
    root = tmp_path / "world"
    generate(root, seed=1, n_source=40, n_train=40, n_val=40, source_size=(64, 128), target_size=(64, 128),
             workers=1, progress=False)
    splits = {"source": sorted((root / "GTA5" / "labels").glob("*.png")),
              "target_train": sorted((root / "Cityscapes" / "gtFine" / "train").glob("*/*_labelIds.png")),
              "target_val": sorted((root / "Cityscapes" / "gtFine" / "val").glob("*/*_labelIds.png"))}
    counted = json.loads((root / "manifest.json").read_text())["images_with_class"]
    for split, paths in splits.items():
        assert len(paths) == 40, split
        images_with = np.zeros(labels.NUM_CLASSES, int)
        for p in paths:
            present = np.unique(labels.ids_to_train_ids(np.asarray(Image.open(p))))
            images_with[present[present < labels.NUM_CLASSES]] += 1
        assert dict(zip(labels.CLASS_NAMES, images_with.tolist())) == counted[split], split
        missing = [c for c, n in zip(labels.CLASS_NAMES, images_with) if n == 0]
        assert not missing, f"{split} lacks {missing}"


def test_shift_zero_is_the_same_distribution_and_shift_one_is_measurably_shifted(moderate_world,
                                                                                 same_distribution_world):
    assert domain_style("source", 0.0) == domain_style("target")
    assert domain_style("source", 1.0) != domain_style("target")
    assert json.loads((same_distribution_world / "manifest.json").read_text())["shift"] == 0.0
    gap0 = colour_gap(same_distribution_world, classes=STUFF_CLASSES)
    gap1 = colour_gap(moderate_world, classes=STUFF_CLASSES)
    # mean colour distance (0..255 RGB) of the large classes; at shift 0 only sampling noise remains
    assert gap0["mean"] < GAP0_MAX, gap0
    assert gap1["mean"] > GAP1_MIN and gap1["mean"] > 3 * gap0["mean"], (gap0, gap1)
    every0, every1 = colour_gap(same_distribution_world), colour_gap(moderate_world)
    assert every1["median"] > 2 * every0["median"], (every0, every1)
    # beyond shift 1 the style extrapolates, but every probability and amount stays possible
    far = domain_style("source", 2.0)
    assert 0.0 <= far.p_sunny + far.p_dusk + far.p_wet <= 1.0
    assert min(far.noise, far.blur, far.motion, far.bonnet, far.haze, far.glass, far.palms) >= 0.0


def test_class_appearance_differs_in_a_way_no_per_channel_affine_map_explains(moderate_world,
                                                                             same_distribution_world):
    """Re-normalising each input channel (what re-estimated BatchNorm statistics do at the input) is an affine
    map per channel; fitted as well as possible to the class-mean colours, it leaves most of the domains'
    per-class difference (sidewalks, foliage, terrain, cars differ each their own way) unexplained."""
    shifted, same = affine_residual(moderate_world), affine_residual(same_distribution_world)
    assert shifted["classes"] >= 8 and same["classes"] >= 8
    assert shifted["after"] > AFFINE_RESIDUAL_MIN, shifted
    assert shifted["after"] > 0.5 * shifted["before"], shifted  # the fit removes less than half of it
    assert same["after"] < 0.35 * shifted["after"], (same, shifted)  # sampling noise of 40 images


def test_conditions_vary_from_image_to_image_within_each_domain(moderate_world):
    # each domain is a mixture of weathers and times of day, with an exposure spread
    for domain, kinds in (("source", {"sunny", "overcast", "dusk", "wet"}), ("target", {"sunny", "overcast", "wet"})):
        rng = np.random.default_rng(0)
        drawn = [Conditions.sample(domain_style(domain), rng) for _ in range(400)]
        assert {c.kind for c in drawn} == kinds, domain
        level = np.log([np.mean(c.light) for c in drawn])
        assert level.std() > 0.1, (domain, level.std())
    # and the pixels show it: the same material (road) is brighter or darker from one image to the next by far
    # more than the spread of its palette
    for domain in ("source", "target"):
        road = per_image_brightness(moderate_world, domain, "road")
        assert len(road) >= 25, domain
        assert road.std() / road.mean() > ROAD_BRIGHTNESS_CV_MIN, (domain, road.std() / road.mean())


def test_the_source_is_rendered_sharper_than_the_target_is_photographed(moderate_world, same_distribution_world):
    """GTA V's crisp, busy game textures against a car camera's softer picture (lens and motion blur over
    weathered materials), per class; at shift 0 the two domains have the same detail."""
    for name in ("vegetation", "sidewalk", "terrain", "road"):
        src, tgt = (local_contrast(moderate_world, d, name, max_images=25) for d in ("source", "target"))
        assert src > SHARPER_MIN * tgt, (name, src, tgt)
        src0, tgt0 = (local_contrast(same_distribution_world, d, name, max_images=25) for d in ("source", "target"))
        assert 0.7 < src0 / tgt0 < 1.4, (name, src0, tgt0)


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

    monkeypatch.setattr("datasets.synthetic.world.render", failing_render)  # where the world writer calls it
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
    first = synthetic_cli.main(args)
    said = capsys.readouterr().out
    assert "absent; generating" in said and "generated in" in said
    assert "road" in said and "source %" in said and "target %" in said
    assert first["n_source"] == 2 and first["source_size"] == [48, 96]
    again = synthetic_cli.main(args)
    assert "reusing" in capsys.readouterr().out and again == first
    synthetic_cli.main([*args, "--force"])
    assert "forced" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        synthetic_cli.main([*args[:-2], "--source-size", "big"])
    # as a program (python -m, where the module is __main__), and the world it writes is reusable as a library's
    prog = subprocess.run([sys.executable, "-m", "datasets.synthetic", *args[:2], "--seed", "5", *args[2:]],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert prog.returncode == 0, prog.stderr
    assert json.loads((tmp_path / "w" / "manifest.json").read_text())["generator"] == "datasets.synthetic"
    assert world_status(tmp_path / "w", **{**SMALL, "seed": 5, "n_source": 2, "n_train": 2, "n_val": 1,
                                           "source_size": (48, 96), "target_size": (40, 80)}) is None
    # a user error is one line on stderr and exit status 1, no traceback
    assert synthetic_cli.cli(["--out", str(tmp_path / "bad"), "--shift", "-1"]) == 1
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


# Worlds generated by GENERATOR_VERSION 5, and the sha256 of every file they held, manifest included:
# {name: (generate() parameters, {path: sha256})}.
RECORDED_WORLDS: dict[str, tuple[dict, dict[str, str]]] = {
    "seed0_shift1": (dict(seed=0, shift=1.0, n_source=6, n_train=4, n_val=3, source_size=(64, 128),
                          target_size=(64, 128)), {
        "Cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png":
            "9303fd15e16e9a83497e0b6292f50e162a5fed54f22cb6f5e452dd9e471826a8",
        "Cityscapes/gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png":
            "0836b52d38df5c7553d3a9b9f62dc54686b5bdf5a25a2a0b84929df975934ea4",
        "Cityscapes/gtFine/train/darmstadt/darmstadt_000000_000019_gtFine_labelIds.png":
            "67ab3dfc19d43fb335c1b62767dc2d0dc36ef589ca58b794efa5962fe3a46237",
        "Cityscapes/gtFine/train/hamburg/hamburg_000000_000019_gtFine_labelIds.png":
            "fe867897ac8985cdfff62561280bcd5f4ddd3b8c93f659397efe418fbb87fd66",
        "Cityscapes/gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png":
            "eef29069c53dd9529da072d8a21fe1c3f93cb1abe338cb4855d3c3d16a46ec77",
        "Cityscapes/gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png":
            "b07dd5cbb6d9989c1c0b68e119ebb03a9440db6e1af6c562c78cedce3a93b0b9",
        "Cityscapes/gtFine/val/munster/munster_000000_000019_gtFine_labelIds.png":
            "c27cc8344e60ab5b08cf82ce8c9d410711b38cda652ce667c2c705e9873b96c6",
        "Cityscapes/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png":
            "f162fff73f7e9f6b91b1bde42816d9a7f14c189443c7d6edea463d0c9bb910f7",
        "Cityscapes/leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png":
            "89d787c431c8e8b77ecb891b4a2fbdfec35d37aa31714a436f8a6cc51d52b6e5",
        "Cityscapes/leftImg8bit/train/darmstadt/darmstadt_000000_000019_leftImg8bit.png":
            "d50ecb0a099844036fc2db086acb21a9f0fdf6487422c22e17afa647ca2f6cef",
        "Cityscapes/leftImg8bit/train/hamburg/hamburg_000000_000019_leftImg8bit.png":
            "b9500dd3f0ff7fb0fbd89578ca6b479c1f7bcd4ff84f1b2231973d6366555a53",
        "Cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png":
            "ffe3c399cb0dc2e1e6b56cad8674602dbb9afa5d612f1c7b9c87a7c3e9f7ce65",
        "Cityscapes/leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png":
            "43dc946a641229e081fdc78f910dc26a0bb364652e2d69535ff80bfe48890219",
        "Cityscapes/leftImg8bit/val/munster/munster_000000_000019_leftImg8bit.png":
            "7560d065b93830f3144a854e06e18e0439e8d9b9f51c463eb54d0c03d7c54d9f",
        "GTA5/images/00001.png":
            "905945e546e1ff8911f7821d81446ecbe19e368f7bca9a215449e441cdce1ca3",
        "GTA5/images/00002.png":
            "eca9f6e733b3bfc01369044f47cd48a5266839efbaf9924a48b9153a41c9e978",
        "GTA5/images/00003.png":
            "f08e83d0e448f1a3a44868bf16e9cdcc2e7eb4b1b58a56cfa8168dbb44fe7049",
        "GTA5/images/00004.png":
            "8fa09b1be13f6b83e2d633912fd9f1b5f7ad9499c701ddcc40262969964e987f",
        "GTA5/images/00005.png":
            "4fe607ec0eaec0918330b002c71b3f9fa3010244628870b3fd0fc9257cf182b4",
        "GTA5/images/00006.png":
            "fdab600ab8c0b7517b540e6c1b42b7c7254aa4e0d661c6ebf4ac9712fc3dacfa",
        "GTA5/labels/00001.png":
            "3b373d01aa586755348ecfaa5e00db8ba4527c9d8ca25f0e89b7140d06475fde",
        "GTA5/labels/00002.png":
            "8ff0f0db12726f175b36a28ea0d123190fbf0560a14c0e44ee7ee28a39f33693",
        "GTA5/labels/00003.png":
            "b33d1c92860909fe955bcab2f21f12ce8f111d58d1294f0f70509e41ae59c0e6",
        "GTA5/labels/00004.png":
            "da42ffb031d362d73b1248baa44b0746c6dff1902f13cb5fbe9d3b769e77e8ec",
        "GTA5/labels/00005.png":
            "5dc8b0430d12c75b504056eb43cbd522412425d640006fc4b30475023a2cc9a3",
        "GTA5/labels/00006.png":
            "b365313a2d82b213087c3d1232a5155d38a36b54ce84ebfad34607d951e4d4d0",
        "manifest.json":
            "fda6bc68b62f6ee01865498ef7b8ba0d16c714e6bb6f1ea69c04f7431c042ddf",
    }),
    "seed3_shift0.5": (dict(seed=3, shift=0.5, n_source=4, n_train=3, n_val=3, source_size=(48, 96),
                            target_size=(40, 80)), {
        "Cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png":
            "b6512b5085a811756fa9c30a4f0bef0da753914d7b5fe1b96ef4312403c27be1",
        "Cityscapes/gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png":
            "5f106370cacfc26c05111462e6b75dd657b27140ca40fad0acc53c9711e7504c",
        "Cityscapes/gtFine/train/darmstadt/darmstadt_000000_000019_gtFine_labelIds.png":
            "b55fd229f72718360e7dd875482ccd3c9643d41015e59a660232489b001fd92c",
        "Cityscapes/gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png":
            "c46d3703bc006c151bc9e35d5acf885ae56192180471e4d8c85098a2223fde12",
        "Cityscapes/gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png":
            "3eca92cfa61dc674640501fd9b5a002cc469d6bcaf8ec816d5680bc5077bd75e",
        "Cityscapes/gtFine/val/munster/munster_000000_000019_gtFine_labelIds.png":
            "0c32ab445605cce11c536072c72a93da9ecd324eaee20d5f55863784cc76e27f",
        "Cityscapes/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png":
            "9029ce2ac4d3c2870b4d8e8044ea9b14743f62674038e2d066d570ef32ddbc63",
        "Cityscapes/leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png":
            "f464d3465f86d236ffe0db1899eac07e2511bbad3438eb1d22900609c3d354be",
        "Cityscapes/leftImg8bit/train/darmstadt/darmstadt_000000_000019_leftImg8bit.png":
            "a159504ccf2bd0df429b68503e1a627ee3736ba8461ee1810f2ba2a7c5cf94dc",
        "Cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png":
            "3d2a361a9f13354c40d4794e94bd891a608bf0b1f679443fd552938d088b6b4b",
        "Cityscapes/leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png":
            "f5ccb38aa57b4c1ced71feea622c494369b802472226096ec24628e5a09c0770",
        "Cityscapes/leftImg8bit/val/munster/munster_000000_000019_leftImg8bit.png":
            "e8fa669ff376058e65c554c5f2cb18ba5241879b77449d7a6aec29a1e1c03bd4",
        "GTA5/images/00001.png":
            "88d3d21efb1acd5b2b752759aa89a772c5dee4e3c26ec8167fecb14b1369f870",
        "GTA5/images/00002.png":
            "407ce7ee38627fb6d0728bde2ca818f5eb062aeeffe1fd4fa53d9e83f60d5f7f",
        "GTA5/images/00003.png":
            "d1bd492c04aa13222d773014399ff685e7223c7564fcb0c66057cb2d376e81fa",
        "GTA5/images/00004.png":
            "570c546ded11323a46f6e5f2a9e528c00e75b6037ebb283f17cfcccf19c3a27d",
        "GTA5/labels/00001.png":
            "6d4b59b41b1a4c6f6cfc646d54b025df5891fe8e3e1038e3417f98963503d319",
        "GTA5/labels/00002.png":
            "1ae85dfdfc2628c0d6b0ec06348bb4b323bb274ed98cac968b27587ea9261515",
        "GTA5/labels/00003.png":
            "6cc2cf6de55ceca55d9f3a23b79752b75e6b8bb113c429a038c91a28db51c2e6",
        "GTA5/labels/00004.png":
            "c2208aa4d6b470d41ee3ad08daebe7d600da9068e0c6fdd643b78d33fa17fede",
        "manifest.json":
            "f02c044063d301c557c45156e9e4fd8771393b10287b2b7a81eab43595115f80",
    }),
}


def sha256_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(RECORDED_WORLDS))
def test_worlds_are_byte_identical_to_hashes_recorded_for_this_generator_version(tmp_path, name):
    """Any byte change is a regression: a refactoring must not move one random draw. Only a deliberate change
    of the images may change them, together with a GENERATOR_VERSION bump and newly recorded hashes."""
    params, recorded = RECORDED_WORLDS[name]
    root = tmp_path / "world"
    generate(root, workers=1, progress=False, **params)
    got = sha256_tree(root)
    assert sorted(got) == sorted(recorded)
    changed = [rel for rel in recorded if got[rel] != recorded[rel]]
    assert not changed, f"{len(changed)} of {len(recorded)} files differ from the recorded generator: {changed}"
