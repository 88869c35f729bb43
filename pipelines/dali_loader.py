"""PyTorch-facing DALI loader: one pipeline per epoch, seeded by (seed, epoch, rank).

Rebuilding the pipeline for every epoch makes an epoch's clips a function of its seed alone, so a
run resumed at an epoch boundary reads exactly what the uninterrupted run would have read.
"""
from __future__ import annotations

import re
from typing import Iterator

import torch
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from pipelines.batch import assemble_batch
from pipelines.config import ClipConfig, epoch_seed
from pipelines.dali_pipeline import READER_NAME, video_pipeline
from pipelines.epoch import EpochLoader
from pipelines.errors import CorruptSampleError
from pipelines.pyav_decode import find_undecodable
from pipelines.shards import VERIFY_HINT, ShardSet

# DALI names the failing stream as "<tar>:<offset>:<member>" when it cannot open it.
SOURCE_INFO = re.compile(r"(?P<tar>[^\s\"']+\.tar):\d+:(?P<member>[^\s\"']+)")
DECODER_OPERATOR = "fn.decoders.video"
# Most samples re-decoded with PyAV to find the one that failed a batch when DALI does not name it.
PROBE_LIMIT = 256


class DaliVideoLoader(EpochLoader):
    """Iterate batches of one epoch; call `set_epoch(e)` before each epoch (as with DistributedSampler).

    `decoder` is "cpu" or "mixed"; with "mixed" `device_id` is the CUDA device and outputs live there.
    `prefetch` batches are decoded ahead of the training step (DALI's prefetch queue).
    """

    def __init__(self, shards: ShardSet, clip: ClipConfig, *, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, epoch: int = 0, decoder: str = "cpu", device_id: int | None = None,
                 num_threads: int = 2, prefetch: int = 2, dtype: str | torch.dtype = "float32",
                 shuffle_buffer: int = 1024, output_device: str | torch.device | None = None) -> None:
        if decoder not in ("cpu", "mixed"):
            raise ValueError(f"decoder must be 'cpu' or 'mixed', got {decoder!r}")
        if decoder == "mixed" and device_id is None:
            raise ValueError("GPU decoding needs a CUDA device_id")
        self.decoder, self.device_id = decoder, device_id if decoder == "mixed" else None
        self.num_threads = num_threads
        super().__init__(shards, clip, batch_size=batch_size, rank=rank, world_size=world_size, seed=seed,
                         epoch=epoch, prefetch=prefetch, dtype=dtype, shuffle_buffer=shuffle_buffer,
                         output_device=output_device)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        batch_index = 0
        try:
            iterator = self._iterator()  # decodes the first batch already
            for batch_index in range(len(self)):
                outputs = next(iterator)[0]
                yield assemble_batch(outputs["video"], outputs["label"], self.clip, self.plan, batch_index,
                                     self.dtype, self.output_device)
        except RuntimeError as error:
            if DECODER_OPERATOR not in str(error):
                raise
            raise self._decode_error(error, batch_index) from error

    def _iterator(self) -> DALIGenericIterator:
        plan = self.plan
        seed = epoch_seed(self.seed, self.epoch, self.rank)
        pipeline = video_pipeline(
            self.info, self.clip, shard_id=plan.shard_id, num_shards=self.world_size, reader_seed=seed,
            decoder=self.decoder, output_type="float16" if self.dtype == torch.float16 else "float32",
            shuffle_buffer=self.shuffle_buffer, read_ahead=self.prefetch,
            batch_size=self.batch_size, num_threads=self.num_threads, device_id=self.device_id, seed=seed,
            prefetch_queue_depth=self.prefetch, enable_conditionals=self.clip.rand_augment is not None)
        iterator = DALIGenericIterator(
            pipeline, ["video", "label"], reader_name=READER_NAME,
            last_batch_policy=LastBatchPolicy.DROP if self.clip.train else LastBatchPolicy.FILL)
        if len(iterator) != len(self):
            raise RuntimeError(f"DALI plans {len(iterator)} batches for rank {self.rank}, the loader {len(self)}")
        return iterator

    def _decode_error(self, error: RuntimeError, batch_index: int) -> Exception:
        """Name the shard and sample behind a failed batch (DALI fails the whole batch)."""
        reason = str(error).strip().splitlines()
        reason = next((line for line in reason if "failed" in line.lower()), reason[0] if reason else "")
        named = SOURCE_INFO.search(str(error))
        if named:
            key = named["member"].rsplit("/", 1)[-1].split(".", 1)[0]
            return CorruptSampleError(f"corrupt sample {key!r} in shard {named['tar']}: DALI cannot decode it "
                                      f"({reason}); {VERIFY_HINT}, then rebuild or drop that shard")
        begin, end = self.plan.sample_range
        if self.clip.train:  # shuffled: any sample of this rank's range may be in the batch
            candidates = range(begin, end)
        else:  # read in order: the failing batch is this one or one DALI prefetched after it
            first = begin + batch_index * self.batch_size
            candidates = range(first, min(end, first + (self.prefetch + 1) * self.batch_size))
        bad = find_undecodable(self.info, candidates) if len(candidates) <= PROBE_LIMIT else []
        if bad:
            return CorruptSampleError("corrupt sample(s) " + ", ".join(f"{key!r} in shard {tar}" for tar, key in bad)
                                      + f": DALI cannot decode a batch ({reason}); {VERIFY_HINT}, then rebuild or "
                                      "drop those shards")
        tars = [self.info.tars[number] for number in self.info.tars_overlapping(begin, end)]
        return CorruptSampleError(f"DALI failed batch {batch_index} of epoch {self.epoch} on rank {self.rank} "
                                  f"(shards {tars}): {reason}; {VERIFY_HINT}")
