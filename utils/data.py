"""Data loading for the engine: deterministic, resumable sample order and loaders sized to the machine.

The order of samples in an epoch and each sample's augmentation draw are functions of (SEED, epoch, index)
alone, so a run resumed mid-epoch continues exactly as the uninterrupted run would, whatever the number of
loader workers.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from utils.errors import ConfigError


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


def _cpus() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def spare_cores(processes: int = 1) -> int:
    """Cores left to decode images (at most 8) when each of ``processes`` keeps one for itself."""
    return max(0, min(8, _cpus() // processes - 1))


def default_workers(device: torch.device) -> int:
    """A GPU wants every spare core decoding; on a CPU the workers would compete with the model for cores."""
    if device.type == "cuda":
        return max(1, spare_cores(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return 1 if _cpus() >= 4 else 0


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


class SizeGroups(list):
    """An evaluation batch whose items differ in size: a list of ``(images, labels)`` batches, one per size."""


def collate_by_size(items: list) -> list | SizeGroups:
    """Evaluation's collate: ``[images, labels]`` stacked as usual when every item has one image size and one label
    size, else :class:`SizeGroups` of the items grouped by those sizes (in order of first appearance): native-size
    images, or full-resolution labels, of frames of several sizes."""
    def shape(item) -> tuple:
        return tuple(tuple(x.shape) for x in item)

    shapes = [shape(item) for item in items]
    if len(set(shapes)) <= 1:
        return default_collate(items)
    groups: dict[tuple, list] = {}
    for item, key in zip(items, shapes):
        groups.setdefault(key, []).append(item)
    return SizeGroups(default_collate(group) for group in groups.values())


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, seed: int, device: torch.device,
                num_workers: int = -1, rank: int = 0, world: int = 1, stream: int = 0) -> DataLoader:
    """A loader over ``dataset`` driven by an :class:`EpochSampler` (reach it as ``loader.sampler``).

    Training drops the last incomplete batch (BiSeNet's BatchNorm over a 1x1 pooled map needs at least 2), so a
    training set smaller than one batch (per process under torchrun) is refused here, before anything runs.
    Evaluation batches of items of several sizes come as :class:`SizeGroups` (:func:`collate_by_size`).
    """
    shard = len(dataset) // world
    if train and (batch_size < 1 or shard < batch_size):
        per = f" ({shard} per process, {world} processes)" if world > 1 else ""
        raise ConfigError(f"BATCH_SIZE={batch_size} but the training set has {len(dataset)} images{per}: "
                          "use a batch between 1 and the number of images (2 or more for BiSeNet).")
    workers = default_workers(device) if num_workers < 0 else num_workers
    sampler = EpochSampler(len(dataset), seed, shuffle=train, rank=rank, world=world, stream=stream)
    return StoppingLoader(
        SeededDataset(dataset), batch_size=batch_size, sampler=sampler, drop_last=train,
        collate_fn=None if train else collate_by_size,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


class BatchStream:
    """Batches of ``loader`` epoch after epoch, for a second domain whose length differs from the one the loop
    iterates over (the unlabelled target domain of adversarial training).

    ``batch(it)`` returns the ``it``-th batch overall: the first call starts the stream there (so a resumed
    run continues it where the interrupted one was), later calls take the next batch.
    """

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self._batches: Iterator | None = None

    def batch(self, it: int):
        if self._batches is None:
            self._batches = self._stream(start=it)
        return next(self._batches)

    def _stream(self, start: int) -> Iterator:
        self.loader.sampler.set_epoch(0, 0)
        per_epoch = len(self.loader)
        epoch, pos = divmod(start, per_epoch)
        while True:
            self.loader.sampler.set_epoch(epoch, pos * self.loader.batch_size)
            yield from self.loader
            epoch, pos = epoch + 1, 0


def spread_indices(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, the first one 0; all of them when ``k <= 0`` or ``k >= n``."""
    if k <= 0 or k >= n:
        return list(range(n))
    stride = n / k
    return [int(i * stride) for i in range(k)]


def limit(dataset: Dataset, n: int) -> Dataset:
    """``n`` images of ``dataset`` spread evenly over it (all when ``n`` is 0): quick runs."""
    if n <= 0 or n >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, spread_indices(len(dataset), n))
