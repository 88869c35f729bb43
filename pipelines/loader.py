"""What both loaders (DALI and baseline) share: one rank's epoch plan, `set_epoch`, `len()`, the batch dtype."""
from __future__ import annotations

import numpy as np
import torch

from pipelines.batch import torch_dtype
from pipelines.epoch import EpochPlan


class EpochLoader:
    """What both loaders share: one rank's epoch plan, `set_epoch(e)` (as with DistributedSampler) and `len()`."""

    def __init__(self, shards, spec, *, batch_size: int, rank: int, world_size: int, seed: int, epoch: int,
                 prefetch: int, dtype, shuffle_buffer: int, output_device) -> None:
        self.shards, self.spec, self.batch_size = shards, spec, batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.prefetch, self.shuffle_buffer = prefetch, shuffle_buffer
        self.dtype = torch_dtype(dtype)
        self.output_device = None if output_device is None else torch.device(output_device)
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.plan = EpochPlan(self.shards.num_samples, self.batch_size, self.rank, self.world_size, epoch,
                              self.spec.train)

    def __len__(self) -> int:
        return self.plan.num_batches

    def label_sets(self, positions: np.ndarray) -> np.ndarray | None:
        """The label sets of the samples at reading-order `positions` (a multi-label split), else None."""
        return None if self.shards.label_sets is None else self.shards.label_sets[positions]
