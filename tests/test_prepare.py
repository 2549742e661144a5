"""Prepared dataset cache: exact round trip, stale and partial caches, read-only roots, worker errors."""
from __future__ import annotations

import gc
import json
import os
import shutil
import time
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from datasets import GTA5, Cityscapes, prepare
from datasets.transforms import build_augmentation
from utils.config import run_main
from utils.data import SeededDataset, StoppingLoader, make_loader
from utils.errors import ConfigError, DatasetError

SIZE = (32, 48)  # differs from the tiny world's 64x128, so resizing is part of what is cached
AUGMENT = {"hflip": 0.5, "color_jitter": 0.5, "blur": 0.5, "scale_crop": 0.5}


def build(kind: str, root: Path, cache_dir, split: str | None = None, **kw):
    if kind == "cityscapes":
        return Cityscapes(root / "Cityscapes", split or "train", size=SIZE, cache_dir=cache_dir, **kw)
    return GTA5(root / "GTA5", split or "all", size=SIZE, cache_dir=cache_dir, val_fraction=0.25, **kw)


def assert_same_items(a, b, indices) -> None:
    for i in indices:
        (x, y), (u, v) = a[i], b[i]
        assert x.dtype == u.dtype == torch.uint8 and y.dtype == v.dtype == torch.int64
        assert x.shape == (3, *SIZE) and y.shape == SIZE
        assert torch.equal(x, u), f"image {i} differs"
        assert torch.equal(y, v), f"label {i} differs"


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture
def world(tiny_world, tmp_path) -> Path:
    """A private copy of the tiny world that a test may modify."""
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    return root


@pytest.mark.parametrize("kind", ["cityscapes", "gta5"])
def test_prepared_items_equal_raw(kind, tiny_world, tmp_path, capsys):
    cache = tmp_path / "cache"
    folder = prepare.prepare(build(kind, tiny_world, False), cache, progress=False)
    assert folder.parent == cache and (folder / "manifest.json").is_file()
    cached, raw = build(kind, tiny_world, cache), build(kind, tiny_world, False)
    assert cached._cache is not None and raw._cache is None
    assert "using the prepared dataset" in capsys.readouterr().out
    assert_same_items(cached, raw, [0, 3, len(raw) - 1])
    # Augmentation runs after the cache, under the same per-sample seeds.
    transform = build_augmentation(AUGMENT, crop_size=SIZE)
    cached.transform = raw.transform = transform
    seeded_cached, seeded_raw = SeededDataset(cached), SeededDataset(raw)
    for i in range(4):
        (x, y), (u, v) = seeded_cached[(i, 100 + i)], seeded_raw[(i, 100 + i)]
        assert torch.equal(x, u) and torch.equal(y, v)
    # The arrays hold train ids as uint8 with 255 for ignore.
    labels = np.load(folder / "labels.npy")
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= set(range(19)) | {255}


def test_gta5_splits_served_by_the_whole_root(tiny_world, tmp_path):
    cache = tmp_path / "cache"
    prepare.prepare(build("gta5", tiny_world, False), cache, progress=False)
    for split in ("train", "val"):
        cached, raw = build("gta5", tiny_world, cache, split), build("gta5", tiny_world, False, split)
        assert cached._cache is not None
        assert_same_items(cached, raw, range(len(raw)))


def test_cached_loader_with_workers_matches_raw(tiny_world, tmp_path):
    cache = tmp_path / "cache"
    prepare.prepare(build("cityscapes", tiny_world, False), cache, workers=1, progress=False)
    cached, raw = build("cityscapes", tiny_world, cache), build("cityscapes", tiny_world, False)
    (x, y), (u, v) = (next(iter(DataLoader(d, batch_size=4, num_workers=1))) for d in (cached, raw))
    assert torch.equal(x, u) and torch.equal(y, v)


def test_no_cache_is_silent(tiny_world, tmp_path, capsys):
    ds = build("gta5", tiny_world, tmp_path / "empty")
    assert ds._cache is None
    assert capsys.readouterr().err == ""
    assert Cityscapes(tiny_world / "Cityscapes", "val", cache_dir=tmp_path)._cache is None  # no size: never


def test_stale_cache_is_not_used(world, tmp_path, capsys):
    cache = tmp_path / "cache"
    prepare.prepare(build("gta5", world, False), cache, progress=False)
    label = sorted((world / "GTA5" / "labels").glob("*.png"))[2]
    im = Image.open(label)
    arr = np.array(im)
    arr[:] = 7  # label id 7 = road
    out = Image.fromarray(arr, mode="P")
    out.putpalette(im.getpalette())
    out.save(label)
    capsys.readouterr()
    ds = build("gta5", world, cache)
    assert ds._cache is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"labels/{label.name} changed" in err
    assert "python -m datasets.prepare --gta5" in err
    assert torch.equal(ds[2][1], torch.zeros(SIZE, dtype=torch.int64))  # the raw file, not the old cache
    # Rebuilding makes it fresh again.
    prepare.prepare(build("gta5", world, False), cache, progress=False)
    assert build("gta5", world, cache)._cache is not None


def test_cache_of_the_previous_format_version_is_not_used(tiny_world, tmp_path, monkeypatch, capsys):
    """A set written before images were antialiased holds other pixels: it is reported stale and rebuilt."""
    from datasets import cache as cache_module

    cache = tmp_path / "cache"
    current = cache_module.FORMAT_VERSION
    assert current >= 2  # 2: antialiased image downscaling
    with monkeypatch.context() as m:
        m.setattr(cache_module, "FORMAT_VERSION", current - 1)
        folder = prepare.prepare(build("cityscapes", tiny_world, False), cache, progress=False)
    assert json.loads((folder / "manifest.json").read_text())["format_version"] == current - 1
    # Pixels an old set could hold: if they were served, the items would differ from the raw files.
    images = np.load(folder / "images.npy", mmap_mode="r+")
    images[:] = 0
    images.flush()
    del images
    capsys.readouterr()
    ds = build("cityscapes", tiny_world, cache)
    assert ds._cache is None
    err = capsys.readouterr().err
    assert f"made by format version {current - 1}, this code reads {current}" in err
    assert "python -m datasets.prepare --cityscapes" in err
    assert_same_items(ds, build("cityscapes", tiny_world, False), [0, 1])
    # Preparing again rebuilds it in the current format instead of keeping the old set.
    assert prepare.prepare(build("cityscapes", tiny_world, False), cache, progress=False) == folder
    assert json.loads((folder / "manifest.json").read_text())["format_version"] == current
    rebuilt, raw = build("cityscapes", tiny_world, cache), build("cityscapes", tiny_world, False)
    assert rebuilt._cache is not None
    assert_same_items(rebuilt, raw, range(len(raw)))


def test_touched_source_is_stale(world, tmp_path):
    cache = tmp_path / "cache"
    prepare.prepare(build("cityscapes", world, False), cache, progress=False)
    image = build("cityscapes", world, False).samples[1][0]
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert build("cityscapes", world, cache)._cache is None


@pytest.mark.parametrize("damage", ["no_manifest", "no_labels", "truncated_images", "bad_manifest"])
def test_partial_cache_is_not_used(damage, tiny_world, tmp_path, capsys):
    cache = tmp_path / "cache"
    folder = prepare.prepare(build("cityscapes", tiny_world, False), cache, progress=False)
    if damage == "no_manifest":
        (folder / "manifest.json").unlink()
    elif damage == "no_labels":
        (folder / "labels.npy").unlink()
    elif damage == "truncated_images":
        path = folder / "images.npy"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        (folder / "manifest.json").write_text('{"format_version": 1, "identi')
    capsys.readouterr()
    ds = build("cityscapes", tiny_world, cache)
    assert ds._cache is None
    err = capsys.readouterr().err
    assert "not using the prepared dataset" in err and "python -m datasets.prepare --cityscapes" in err
    assert_same_items(ds, build("cityscapes", tiny_world, False), [0])


def test_failed_preparation_leaves_nothing(world, tmp_path):
    cache = tmp_path / "cache"
    victim = sorted((world / "GTA5" / "images").glob("*.png"))[5]
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(DatasetError, match=victim.name):
        prepare.prepare(build("gta5", world, False), cache, progress=False)
    assert list(cache.iterdir()) == []


def test_read_only_root_is_never_written(world, tmp_path, capsys):
    cache = tmp_path / "cache"
    before = tree_state(world)
    paths = sorted(world.rglob("*"), reverse=True) + [world]
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        # sizes as everywhere in the project (HxW, H,W), and as two words (H W) as before
        done = prepare.main(["--cityscapes", str(world / "Cityscapes"), "--cityscapes-size", "{}x{}".format(*SIZE),
                             "--gta5", str(world / "GTA5"), "--gta5-size", "{},{}".format(*SIZE),
                             "--cache-dir", str(cache), "--workers", "0", "--no-progress"])
        assert tree_state(world) == before
        assert len(done) == 3 and all(Path(f).parent == cache for f in done.values())
        assert build("gta5", world, cache)._cache is not None
        assert build("cityscapes", world, cache, "val")._cache is not None
        again = prepare.main(["--gta5", str(world / "GTA5"), "--gta5-size", *map(str, SIZE),
                              "--cache-dir", str(cache), "--no-progress"])
        assert "already prepared and up to date" in capsys.readouterr().out
        assert list(again.values()) == [done[f"GTA5 all at {SIZE[0]}x{SIZE[1]}"]]
        with pytest.raises(ConfigError, match="inside the dataset root"):
            prepare.prepare(build("gta5", world, False), world / "GTA5" / "cache", progress=False)
    finally:
        for p in reversed(paths):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert sorted(p.name for p in cache.iterdir()) == sorted(Path(f).name for f in done.values())


def test_worker_error_names_the_file(world, capsys):
    victim = sorted((world / "GTA5" / "labels").glob("*.png"))[3]
    victim.write_bytes(victim.read_bytes()[:100])
    ds = build("gta5", world, False)
    loader = StoppingLoader(SeededDataset(ds), batch_size=2, num_workers=1)
    with pytest.raises(DatasetError) as info:
        list(loader)
    message = str(info.value)
    assert message.startswith(f"{victim}: cannot decode") and "Traceback" not in message and "\n" not in message
    del info
    gc.collect()

    def main(argv=None):
        for _ in make_loader(ds, 2, train=False, seed=0, device=torch.device("cpu"), num_workers=1):
            pass

    with pytest.raises(SystemExit) as exit_info:
        run_main(main)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: {message}\n"
    # The workers were stopped with the error: collecting its traceback does not wait on them (5 s each).
    del exit_info
    start = time.perf_counter()
    gc.collect()
    assert time.perf_counter() - start < 3


def test_loader_throughput(tiny_world, tmp_path):
    result = prepare.loader_throughput(tiny_world / "GTA5", "gta5", SIZE, n_images=8, cache_dir=tmp_path,
                                       batch_size=4, min_seconds=0.01)
    assert set(result) == {"raw", "prepared"} and all(v > 0 for v in result.values())
    assert list(tmp_path.iterdir()) == []  # the temporary prepared set is gone


@pytest.mark.parametrize("kind,split", [("cityscapes", None), ("gta5", "train")])
def test_use_prepared_prepares_once_then_reads_it(kind, split, tiny_world, tmp_path):
    cache = tmp_path / "cache"
    ds, raw = build(kind, tiny_world, False, *([split] if split else [])), \
        build(kind, tiny_world, False, *([split] if split else []))
    assert prepare.use_prepared(ds, cache) and ds._cache is not None
    assert_same_items(ds, raw, range(len(raw)))
    (folder,) = cache.iterdir()
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    again = build(kind, tiny_world, False, *([split] if split else []))
    assert prepare.use_prepared(again, cache) and (folder / "manifest.json").stat().st_mtime_ns == stamp
    native = Cityscapes(tiny_world / "Cityscapes", "val")
    assert not prepare.use_prepared(native, cache)  # no size: nothing to prepare


def test_only_cityscapes_and_gta5_are_prepared(tmp_path):
    from datasets._base import SegmentationDataset

    class Other(SegmentationDataset):
        samples = []

    with pytest.raises(ConfigError, match="handles Cityscapes and GTA5 datasets, not Other"):
        prepare.prepare(Other(SIZE, None), tmp_path / "cache", progress=False)


def test_preparing_leaves_the_global_rng_alone(tiny_world, tmp_path):
    """A run that prepares must draw the same random weights as one that finds the set already prepared."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert prepare.use_prepared(build("cityscapes", tiny_world, False), tmp_path / "cache")
    assert torch.equal(torch.rand(3), expected)
