"""Data loading for the engine: deterministic, resumable sample order and loaders sized to the machine.

The order of samples in an epoch and each sample's augmentation draw are functions of (SEED, epoch, index)
alone, so a run resumed mid-epoch continues exactly as the uninterrupted run would, whatever the number of
loader workers.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

REPO_ROOT = Path(__file__).resolve().parents[1]

# Worlds a step script can ask for with --demo; "tiny" is what the tests train on.
WORLD_PRESETS: dict[str, dict] = {
    "default": {},
    "tiny": dict(seed=0, n_source=16, n_train=12, n_val=8, source_size=(64, 128), target_size=(64, 128)),
}


def sample_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    return int(np.random.SeedSequence([seed, stream, epoch, index + 1]).generate_state(1)[0])


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed)`` pairs: a (SEED, epoch)-determined order, sharded across processes.

    ``set_epoch(epoch, start)`` skips the first ``start`` samples of this process's share, which is how a
    resumed run continues mid-epoch. Training shards are cut to equal length (no padding); evaluation
    shards (``shuffle=False``) keep every sample exactly once across processes.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1,
                 stream: int = 0) -> None:
        self.n, self.seed, self.shuffle, self.rank, self.world, self.stream = n, seed, shuffle, rank, world, stream
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1, self.stream))
            order = torch.randperm(self.n, generator=g).tolist()
            order = order[: self.n - self.n % self.world]
        else:
            order = list(range(self.n))
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self._indices()[self.start:]:
            yield i, sample_seed(self.seed, self.epoch, i, self.stream)

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start)


class SeededDataset(Dataset):
    """Applies the wrapped dataset's random transforms under a per-sample seed from the sampler."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            return self.dataset[index]
        state = torch.get_rng_state()
        torch.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(state)


def default_workers(device: torch.device) -> int:
    """A GPU wants every spare core decoding; on a CPU the workers would compete with the model for cores."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cuda":
        world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, min(8, cpus // world - 1))
    return 1 if cpus >= 4 else 0


class StoppingLoader(DataLoader):
    """A DataLoader that stops its worker processes as soon as an error leaves an iteration.

    Otherwise the error's traceback holds the iterator in a reference cycle, and its later shutdown by the
    garbage collector (often at exit, after the error message) waits seconds per worker.
    """

    def __iter__(self) -> Iterator:
        it = super().__iter__()
        try:
            yield from it
        except Exception:
            stop = getattr(it, "_shutdown_workers", None)
            if stop is not None:
                stop()
                self._iterator = None  # persistent workers: start fresh ones on the next iteration
            raise


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, seed: int, device: torch.device,
                num_workers: int = -1, rank: int = 0, world: int = 1, stream: int = 0) -> DataLoader:
    """A loader over ``dataset`` driven by an :class:`EpochSampler` (reach it as ``loader.sampler``).

    Training drops the last incomplete batch (BiSeNet's BatchNorm over a 1x1 pooled map needs at least 2).
    """
    workers = default_workers(device) if num_workers < 0 else num_workers
    sampler = EpochSampler(len(dataset), seed, shuffle=train, rank=rank, world=world, stream=stream)
    return StoppingLoader(
        SeededDataset(dataset), batch_size=batch_size, sampler=sampler, drop_last=train,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def batch_stream(loader: DataLoader, start: int = 0) -> Iterator:
    """An endless stream of batches, epoch after epoch, starting at the ``start``-th batch overall.

    Used for the unlabelled target domain in adversarial training, whose length differs from the source's.
    """
    loader.sampler.set_epoch(0, 0)
    per_epoch = len(loader)
    if per_epoch == 0:
        return
    epoch, pos = divmod(start, per_epoch)
    while True:
        loader.sampler.set_epoch(epoch, pos * loader.batch_size)
        yield from loader
        epoch, pos = epoch + 1, 0


def demo_world(synthetic_dir: str, preset: str = "default") -> Path:
    """The synthetic world for --demo: generated on first use and whenever the preset asks for another."""
    from datasets.synthetic import ensure_world
    from utils.distributed import main_first

    root = Path(synthetic_dir)
    if not root.is_absolute():
        root = REPO_ROOT / root
    if preset not in WORLD_PRESETS:
        from utils.errors import ConfigError
        raise ConfigError(f"SYNTHETIC_WORLD must be one of {sorted(WORLD_PRESETS)}, got {preset!r}")
    with main_first():  # under torchrun rank 0 generates it; the others then find it
        return Path(ensure_world(root, **WORLD_PRESETS[preset]))


def dataset_root(cfg, key: str, domain: str) -> tuple[Path, bool]:
    """The root of ``domain`` ("Cityscapes" or "GTA5"): the configured ``cfg[key]``, or with --demo the
    synthetic world's copy of it. Returns (root, synthetic)."""
    if getattr(cfg, "demo", False):
        from utils import distributed
        from utils.device import resolve_device

        distributed.init(resolve_device(cfg.DEVICE))  # the processes wait for rank 0's world
        return demo_world(cfg.SYNTHETIC_DIR, cfg.SYNTHETIC_WORLD) / domain, True
    return Path(cfg[key]), False


def pretrained_arg(value: str | bool) -> bool | str:
    """A PRETRAINED constant as the model constructors take it: False, True (torchvision ImageNet) or a path.

    A bare file name is looked up in the current directory, then in the repository's ``weights/`` folder.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("", "none", "false", "no", "0", "off"):
        return False
    if text.lower() in ("true", "imagenet", "torchvision", "yes", "1"):
        return True
    path = Path(text)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / "weights" / path).exists():
        return str(REPO_ROOT / "weights" / path)
    return text


def spread_indices(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, the first one 0; all of them when ``k <= 0`` or ``k >= n``."""
    if k <= 0 or k >= n:
        return list(range(n))
    step = n / k
    return [int(i * step) for i in range(k)]


def limit(dataset: Dataset, n: int) -> Dataset:
    """``n`` images of ``dataset`` spread evenly over it (all when ``n`` is 0): quick runs."""
    if n <= 0 or n >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, spread_indices(len(dataset), n))
