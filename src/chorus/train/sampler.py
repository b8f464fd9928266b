"""A seeded, shardable batch sampler whose position can be saved and restored.

Why: to resume a run *exactly* after a crash, the trainer must replay the same
sample order from the same place. PyTorch's ``RandomSampler`` draws its order
from a global RNG and cannot start mid-epoch. Here the order of epoch ``e`` is
``torch.randperm(n)`` from a private generator seeded with ``seed + e``: a pure
function of (seed, epoch), identical on every rank, never touching global RNG.
Resuming is then just "epoch e, skip the first k batches" (an O(1) slice).

Sharding follows ``torch.utils.data.DistributedSampler``: the permutation is
padded by repeating its first elements up to a multiple of ``world_size`` (or
truncated to one when ``drop_last``), and rank ``r`` takes positions
``r, r + W, r + 2W, ...``. With that layout, batch ``b`` of all ranks together
is exactly batch ``b`` of a single process using ``W`` times the batch size, so
a DDP run matches a one-process run on the global batch. The padding repeats at
most ``W - 1`` samples per epoch (they count twice in that epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from chorus.errors import ConfigError, DataError


class ResumableBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices for one rank; call ``set_epoch`` before each pass."""

    def __init__(
        self,
        dataset_len: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if dataset_len <= 0:
            raise DataError(f"the training dataset is empty (len {dataset_len})")
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} outside world of size {world_size}")
        self.dataset_len = dataset_len
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self.skip_batches = 0
        if drop_last:
            self.per_rank = dataset_len // world_size
        else:
            self.per_rank = -(-dataset_len // world_size)
        if self.per_rank == 0:
            raise DataError(f"dataset of {dataset_len} samples cannot be split over {world_size} ranks")

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the order of ``epoch`` and start after its first ``skip_batches`` batches."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def epoch_indices(self) -> list[int]:
        """This rank's sample indices for the current epoch, before batching and skipping."""
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.dataset_len, generator=generator).tolist()
        else:
            order = list(range(self.dataset_len))
        total = self.per_rank * self.world_size
        while len(order) < total:  # pad by wrapping around, like DistributedSampler
            order += order[: total - len(order)]
        return order[:total][self.rank :: self.world_size]

    def __len__(self) -> int:
        """Batches per epoch for this rank (ignoring ``skip_batches``)."""
        if self.drop_last:
            return self.per_rank // self.batch_size
        return -(-self.per_rank // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        indices = self.epoch_indices()
        for b in range(self.skip_batches, len(self)):
            yield indices[b * self.batch_size : (b + 1) * self.batch_size]
