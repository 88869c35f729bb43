"""PyTorch-facing DALI loader: one pipeline per epoch, seeded by (seed, epoch, rank).

Rebuilding the pipeline for every epoch makes an epoch's clips a function of its seed alone, so a
run resumed at an epoch boundary reads exactly what the uninterrupted run would have read.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import re
from typing import Iterator

import numpy as np
import torch
from nvidia.dali.plugin.base_iterator import LastBatchPolicy
from nvidia.dali.plugin.pytorch import DALIGenericIterator

from pipelines.batch import assemble_batch
from pipelines.config import ClipConfig
from pipelines.dali_pipeline import video_pipeline
from pipelines.errors import CorruptSampleError
from pipelines.loader import EpochLoader
from pipelines.pyav_decode import find_undecodable
from pipelines.shards import VERIFY_HINT, ShardSet
from pipelines.source import ClipSource

log = logging.getLogger(__name__)
# A source worker's CorruptSampleError reaches the main process as text inside DALI's exception.
WORKER_ERROR = re.compile(r"CorruptSampleError: (?P<message>.+)")
DECODER_OPERATOR = "fn.decoders.video"
# Most samples re-decoded with PyAV to find the one that failed a batch when DALI does not name it.
PROBE_LIMIT = 256
START_METHODS = ("fork", "spawn")


class DaliVideoLoader(EpochLoader):
    """Iterate batches of one epoch; call `set_epoch(e)` before each epoch (as with DistributedSampler).

    `decoder` is "cpu" or "mixed"; with "mixed" `device_id` is the CUDA device and outputs live there.
    `prefetch` batches are decoded ahead of the training step (DALI's prefetch queue). `num_threads`
    DALI threads decode and augment, as many source worker processes read and select GOPs; they start
    by fork, or by spawn once a CUDA context exists (`start_method` overrides). `sparse=False` decodes
    every frame up to the last sampled one (the dense path, for comparison).
    After an epoch, `decode_stats` holds the frames decoded per clip and the clips decoded densely.
    """

    def __init__(self, shards: ShardSet, spec: ClipConfig, *, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, epoch: int = 0, decoder: str = "cpu", device_id: int | None = None,
                 num_threads: int = 2, prefetch: int = 2, dtype: str | torch.dtype = "float32",
                 shuffle_buffer: int = 1024, output_device: str | torch.device | None = None, sparse: bool = True,
                 start_method: str | None = None) -> None:
        if decoder not in ("cpu", "mixed"):
            raise ValueError(f"decoder must be 'cpu' or 'mixed', got {decoder!r}")
        if decoder == "mixed" and device_id is None:
            raise ValueError("GPU decoding needs a CUDA device_id")
        if start_method not in (None, *START_METHODS):
            raise ValueError(f"start_method must be one of {START_METHODS} or None, got {start_method!r}")
        self.decoder, self.device_id = decoder, device_id if decoder == "mixed" else None
        self.num_threads, self.sparse, self.start_method = num_threads, sparse, start_method
        self.decode_stats: dict[str, float] = {}
        self._dense_reported = False
        self._source: ClipSource | None = None  # the epoch's, for naming the samples of a failed batch
        super().__init__(shards, spec, batch_size=batch_size, rank=rank, world_size=world_size, seed=seed,
                         epoch=epoch, prefetch=prefetch, dtype=dtype, shuffle_buffer=shuffle_buffer,
                         output_device=output_device)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        batch_index, decoded, dense = 0, [], 0
        try:
            iterator = self._iterator()  # decodes the first batch already
            for batch_index in range(len(self)):
                outputs = next(iterator)[0]
                stats = outputs["decode_stats"].numpy().reshape(-1, 2)
                decoded.append(stats[:, 0])
                dense += int((stats[:, 1] == 0).sum())
                first = batch_index * self.batch_size
                label_sets = self.label_sets(self._source.positions[first:first + self.batch_size])
                yield assemble_batch(outputs["video"], outputs["label"], self.spec, self.plan, batch_index,
                                     self.dtype, self.output_device, label_sets)
        except Exception as error:  # DALI re-raises worker failures as a bare Exception
            named = self._named_error(error, batch_index)
            if named is error:
                raise
            raise named from error
        finally:
            self._record(decoded, dense)

    def _iterator(self) -> DALIGenericIterator:
        self._source = source = ClipSource(self.shards, self.spec, self.plan, self.seed, sparse=self.sparse)
        pipeline = video_pipeline(
            source, self.spec, decoder=self.decoder, read_ahead=self.prefetch,
            output_type="float16" if self.dtype == torch.float16 else "float32",
            batch_size=self.batch_size, num_threads=self.num_threads,
            device_id=self.device_id, seed=source.seed, prefetch_queue_depth=self.prefetch,
            py_num_workers=self.num_threads, py_start_method=self._start_method(),
            enable_conditionals=self.spec.rand_augment is not None)
        # The source ends the epoch (StopIteration) after exactly len(self) full batches.
        with _frozen_heap() if pipeline.py_start_method == "fork" else contextlib.nullcontext():
            return DALIGenericIterator(pipeline, ["video", "label", "decode_stats"],
                                       last_batch_policy=LastBatchPolicy.DROP)

    def _start_method(self) -> str:
        """fork is cheap but unsafe once CUDA is initialised in this process (DALI's rule); spawn then."""
        if self.start_method is not None:
            return self.start_method
        return "spawn" if self.decoder == "mixed" or torch.cuda.is_initialized() else "fork"

    def _record(self, decoded: list[np.ndarray], dense: int) -> None:
        frames = np.concatenate(decoded) if decoded else np.zeros(0)
        self.decode_stats = {"clips": int(frames.size), "frames_decoded_per_clip": float(frames.mean()) if frames.size
                             else 0.0, "dense_clips": dense}
        if self.sparse and dense and not self._dense_reported:
            self._dense_reported = True
            log.warning("%d of %d clips in epoch %d were decoded from the start of the video: their GOPs are not "
                        "closed (or cannot be remuxed), so the frames cannot be cut out; re-shard with "
                        "`python -m shard_tools build-shards` for sparse decoding", dense, frames.size, self.epoch)

    def _named_error(self, error: Exception, batch_index: int) -> Exception:
        """The shard and sample behind a failed batch (DALI fails the whole batch), or the error itself."""
        worker = WORKER_ERROR.findall(str(error))
        if worker:
            return CorruptSampleError(worker[-1].strip())
        if DECODER_OPERATOR not in str(error):
            return error
        reason = str(error).strip().splitlines()
        reason = next((line for line in reason if "failed" in line.lower()), reason[0] if reason else "")
        # Samples are read in a known order: the failing batch is this one or one DALI prefetched after it.
        first = batch_index * self.batch_size
        slots = self._source.positions[first:first + (self.prefetch + 1) * self.batch_size]
        candidates = sorted(set(slots.tolist()))
        bad = find_undecodable(self.shards, candidates[:PROBE_LIMIT])
        if bad:
            return CorruptSampleError("corrupt sample(s) " + ", ".join(f"{key!r} in shard {tar}" for tar, key in bad)
                                      + f": DALI cannot decode a batch ({reason}); {VERIFY_HINT}, then rebuild or "
                                      "drop those shards")
        begin, end = self.plan.sample_range
        tars = [self.shards.tars[number] for number in self.shards.tars_overlapping(begin, end)]
        return CorruptSampleError(f"DALI failed batch {batch_index} of epoch {self.epoch} on rank {self.rank} "
                                  f"(shards {tars}): {reason}; {VERIFY_HINT}")


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Fork source workers with the parent's objects out of the garbage collector's reach.

    A forked worker inherits every object of this process, unreachable earlier DALI pipelines included;
    if its garbage collector finalised one of them it would shut down threads the worker does not have.
    Frozen objects are never collected in the worker; the parent collects them as usual after unfreezing.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
