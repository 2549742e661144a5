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


# Worlds generated by datasets/synthetic.py as it was before it became a package (GENERATOR_VERSION 4), and the
# sha256 of every file they held, manifest included: {name: (generate() parameters, {path: sha256})}.
RECORDED_WORLDS: dict[str, tuple[dict, dict[str, str]]] = {
    "seed0_shift1": (dict(seed=0, shift=1.0, n_source=6, n_train=4, n_val=3, source_size=(64, 128),
                          target_size=(64, 128)), {
        "Cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png":
            "b77e348e85f6460d40d491b615498473b8f825190954ef6db7901ae0834cbfbc",
        "Cityscapes/gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png":
            "6e730480248d6df0b44dafbf072351190d9f5a5433fdc2b3096e68f38a15fe62",
        "Cityscapes/gtFine/train/darmstadt/darmstadt_000000_000019_gtFine_labelIds.png":
            "5851e80f40a948202a4c9e897c24d5d42f1bf7e25bf93d488318f03c2e877939",
        "Cityscapes/gtFine/train/hamburg/hamburg_000000_000019_gtFine_labelIds.png":
            "71a6db0f7c924a73deadbd4a4b3194f76cb5e29b0bbab48a5ef20f625e296304",
        "Cityscapes/gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png":
            "907360dedc3eee16affae816df52be8c0bf4e0c6804da460c2995f0d9fdc857e",
        "Cityscapes/gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png":
            "b5baffbb7fab6ac854118d48c21e4e51271663da0f9feb0d517f2a5ef5700086",
        "Cityscapes/gtFine/val/munster/munster_000000_000019_gtFine_labelIds.png":
            "ed2d0f1e87c66d53c3e5430393d404840e584393745268d4c5256919dfbb56ea",
        "Cityscapes/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png":
            "ec7963fa9aa7d527777423861e98d3f28253c64d8094137c79c71c208f76055a",
        "Cityscapes/leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png":
            "d7bd592e0ab23fa98208093026396824d2d9d3ffa917187bad6cbfd406d0aa9a",
        "Cityscapes/leftImg8bit/train/darmstadt/darmstadt_000000_000019_leftImg8bit.png":
            "44fd8b3966eb33f26ed3523c66d741956ad90cfbeecde78548648d1ba001bffc",
        "Cityscapes/leftImg8bit/train/hamburg/hamburg_000000_000019_leftImg8bit.png":
            "076360efe368eec83afd4d93d315658af7b908e0d9220ab5040dc282f2c794f0",
        "Cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png":
            "dc9a105d1e14749ed88913fd8468a3783c8b3d7dc4c3143c4c308760d96d9e6d",
        "Cityscapes/leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png":
            "b5fbc173dc60113a30bf2d8fe97d02c55b9dd611e33e9ca565f63c88ef815572",
        "Cityscapes/leftImg8bit/val/munster/munster_000000_000019_leftImg8bit.png":
            "c09a92e4bd4f091cddfc984335cea23ccf0d55ae6b8091644ce3307794f9ab84",
        "GTA5/images/00001.png":
            "39351a799b121342df991c18eaa1283042475bd8503a53f32ba59ea00eb9b124",
        "GTA5/images/00002.png":
            "7652150cea33aa314b280e4779c9fc068bfdb847bdb9f79b8a89c0981590fee7",
        "GTA5/images/00003.png":
            "b3a483526ee13f2947722d5fe255828c4475ff9e00bba7db53de289e594b75eb",
        "GTA5/images/00004.png":
            "b87d47bbe18e45eeab7ff3c882a7b04f0de7ca29f7b01a4f7a91397eaf9709de",
        "GTA5/images/00005.png":
            "8f370812eb3d280b1ff23b8d147511ea3e480ff938f7854db5fbae42e220a536",
        "GTA5/images/00006.png":
            "3ff0fb9334eebc9611936ede233c2928d7c0cd984ef657290605e57ce7c733ad",
        "GTA5/labels/00001.png":
            "bbd97991e1160c65a7a1c2f5f4e51bc2b535cf2e27c6b1cf98522fa5a5fd24c6",
        "GTA5/labels/00002.png":
            "8b7b4a67a44779e08e284faf157625dcc9747f7a2023130e0f7628c0ae882e12",
        "GTA5/labels/00003.png":
            "3826646a64c4be00070750f894fa33b05f56925f5750cdb2eeee2c1ac02fea82",
        "GTA5/labels/00004.png":
            "9b18830c245d7b6b7d927e2994d9331ff9c66d99feb76483336a26d3503e5c8b",
        "GTA5/labels/00005.png":
            "41ab0e4ae4bf87ee3192f99e9d24bbca34565a861865a62ab1e4bd885c7848cf",
        "GTA5/labels/00006.png":
            "63c682bdee162db16e634c98c4331eaeb2e315f0daee6c4ab7dcd6541b92eac6",
        "manifest.json":
            "9f48c1fd49095695df31b2f5bd7478708f28a2093ac603e6a4bf5c7841e2a96a",
    }),
    "seed3_shift0.5": (dict(seed=3, shift=0.5, n_source=4, n_train=3, n_val=3, source_size=(48, 96),
                            target_size=(40, 80)), {
        "Cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png":
            "d3f893953cee93f5bdf0bd72038256415bc44c406f34bcd4527599be10884e23",
        "Cityscapes/gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png":
            "6e6a7b7a7fc42a5403bf4515f6dbaa6617f0d7c5b86a34df9a4d5e5d6120ff63",
        "Cityscapes/gtFine/train/darmstadt/darmstadt_000000_000019_gtFine_labelIds.png":
            "77a5de47889e40c59c9fbf6cd229c443cb30c7f3e5b947409b2239646b615e7d",
        "Cityscapes/gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png":
            "239b1407b43665b5b2c7c71742d2823caa81dde1c8b2c7177c667ab553527503",
        "Cityscapes/gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png":
            "3759cd189df2735c29b84a286fa31f58dc371aaf0ab343b3ac2c77f1ca806687",
        "Cityscapes/gtFine/val/munster/munster_000000_000019_gtFine_labelIds.png":
            "438e3e6edc6d4d0c1cad1ffde330cceb1c6acacce58757971b62d46f209f8f38",
        "Cityscapes/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png":
            "9d03d67b787aa828b075856cd21fbfd75cf9187ada627754bd216818109739bb",
        "Cityscapes/leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png":
            "b62557c7317bbf6b38cab619f7aa720f086378b472070936038f5e4bc70392d4",
        "Cityscapes/leftImg8bit/train/darmstadt/darmstadt_000000_000019_leftImg8bit.png":
            "38863f8dad9fb67f46c36ab5fdbd0b326f3099499ee47ed98a6d4a8a2ab66ed1",
        "Cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png":
            "931ffecf3408114db1d51231b5675fa25d17dee7dec3be8ac59e761b36197866",
        "Cityscapes/leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png":
            "6e0bd07dd38da9175f3bca4dd21a441718f4f21d22e3e7de67edf2d1e68ebb01",
        "Cityscapes/leftImg8bit/val/munster/munster_000000_000019_leftImg8bit.png":
            "1c608e3fcb7d0e241af66a03488a3a60751c74f3034931a4e78124f9e400c719",
        "GTA5/images/00001.png":
            "2e1cee8944a01bbcd82306a1ab66afd6d47e1aceefa842e568a4c94b11493602",
        "GTA5/images/00002.png":
            "5f517621475b0c65ecaf446c318a43a0f2e0e421d3d3a106fa4fce3357ed90ec",
        "GTA5/images/00003.png":
            "c6599305ca5921da2683936f173e8928b99bd0347277f96c850c86f5dfbb02ec",
        "GTA5/images/00004.png":
            "b36211a80c4d1cd48f6180fa4c5ae9bb767dbca3b97ab40be974bf2c85c65e4a",
        "GTA5/labels/00001.png":
            "ba0e5084a724bcf1eaeffba78199dc1cf36117cbe4e1a4cc27c42e128409872d",
        "GTA5/labels/00002.png":
            "880ddbc8141482727da0fe907ff055abe54350f020689fc035e53060007b17c4",
        "GTA5/labels/00003.png":
            "4b37cefb2ea65c417ac59749e8624d69dbe97756d0285f96a133097b30d852f4",
        "GTA5/labels/00004.png":
            "f4b0e56877535215fb654df071eb64ad5bb88e9b167e00ce1c90b4485648df93",
        "manifest.json":
            "1a80c46aa1022f569db865db5f658dc57a5d1918367974d47ba60c8568e9cf69",
    }),
}


def sha256_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(RECORDED_WORLDS))
def test_worlds_are_byte_identical_to_hashes_recorded_before_the_package_split(tmp_path, name):
    """The hashes were recorded from the generator before the package split (the single module
    datasets/synthetic.py), so any byte change is a regression: a refactoring must not move one random draw.
    Only a deliberate change of the images may change them, together with a GENERATOR_VERSION bump and
    newly recorded hashes."""
    params, recorded = RECORDED_WORLDS[name]
    root = tmp_path / "world"
    generate(root, workers=1, progress=False, **params)
    got = sha256_tree(root)
    assert sorted(got) == sorted(recorded)
    changed = [rel for rel in recorded if got[rel] != recorded[rel]]
    assert not changed, f"{len(changed)} of {len(recorded)} files differ from the recorded generator: {changed}"
