"""Which samples a rank reads in an epoch, how many batches it yields, and which slots are padding.

Padding policy (the same for the DALI and the baseline loader):
- The split is cut into `world_size` contiguous ranges of floor/ceil(N / world_size) samples
  (DALI's reader sharding). In training, rank r reads range (r + epoch) % world_size, so every rank
  sees other samples each epoch.
- train: every rank yields floor(floor(N / world_size) / batch_size) full batches; the samples past
  that (at most batch_size per rank) are skipped this epoch and read in others (ranges rotate).
  The DALI loader reads its range in a random order drawn from (seed, epoch, rank) (`positions`).
- val/test: every rank yields ceil(ceil(N / world_size) / batch_size) full batches; slots past the
  end of a rank's range repeat its last sample and are marked `valid = False`, so each sample is
  counted exactly once across ranks when only valid slots are used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.shards import rank_range


@dataclass(frozen=True)
class EpochPlan:
    num_samples: int
    batch_size: int
    rank: int
    world_size: int
    epoch: int
    train: bool

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")
        if self.num_samples < self.world_size:
            raise ValueError(f"{self.num_samples} samples cannot be split over {self.world_size} ranks")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.num_batches == 0:
            raise ValueError(f"{self.num_samples} samples over {self.world_size} ranks do not fill one "
                             f"{'training ' if self.train else ''}batch of {self.batch_size}: lower the batch size")

    @property
    def shard_id(self) -> int:
        return (self.rank + self.epoch) % self.world_size if self.train else self.rank

    @property
    def sample_range(self) -> tuple[int, int]:
        return rank_range(self.num_samples, self.shard_id, self.world_size)

    @property
    def num_batches(self) -> int:
        if self.train:
            return self.num_samples // self.world_size // self.batch_size
        return math.ceil(math.ceil(self.num_samples / self.world_size) / self.batch_size)

    def positions(self, seed: int) -> np.ndarray:
        """Reading-order positions of every batch slot of the epoch, batch after batch.

        Training: a permutation of the rank's range drawn from `seed`, cut to whole batches. Val/test:
        the range in order, its last sample repeated to fill the last batch (see `eval_slots`).
        """
        begin, end = self.sample_range
        slots = self.num_batches * self.batch_size
        if self.train:
            return begin + np.random.default_rng(seed).permutation(end - begin)[:slots]
        return begin + np.minimum(np.arange(slots), end - begin - 1)

    def eval_slots(self, batch_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(video_id, valid) of the batch slots in val/test order: ids are reading-order positions."""
        begin, end = self.sample_range
        offsets = batch_index * self.batch_size + np.arange(self.batch_size)
        valid = offsets < end - begin
        return begin + np.minimum(offsets, end - begin - 1), valid

