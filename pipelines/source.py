"""The DALI pipeline's input: one sample per call, read from its tar by offset, its frame indices drawn, and
only the GOPs those frames need passed on (`pipelines.sparse`).

DALI runs the callable in worker processes (`fn.external_source(parallel=True)`), so it is a pure
function of the sample's slot in the epoch: which sample fills a slot and which frames it gives depend
on (seed, epoch, rank, position) alone, never on the worker, the thread count or the batch.
"""
from __future__ import annotations

import os

import av
import numpy as np

from pipelines.config import ClipConfig, epoch_seed
from pipelines.epoch import EpochPlan
from pipelines.errors import CorruptSampleError
from pipelines.sampling import sample_frame_indices
from pipelines.shards import VERIFY_HINT, ShardSet
from pipelines.sparse import SparseClip, select_gops

# Per-sample outputs, in the order the callable returns them.
OUTPUTS = ("encoded", "indices", "label", "decode_stats")


class ClipSource:
    """`source(sample_info)` -> (encoded video uint8, frame indices int32, label int32, [decoded frames, sparse]).

    `sparse=False` hands the decoder the whole video with the sampled indices (the dense path).
    Raises StopIteration past the end of the epoch and CorruptSampleError, naming the shard and the
    sample, for a video that cannot be demuxed.
    """

    def __init__(self, shards: ShardSet, spec: ClipConfig, plan: EpochPlan, seed: int, *, sparse: bool = True) -> None:
        self.shards, self.spec, self.sparse = shards, spec, sparse
        self.seed = epoch_seed(seed, plan.epoch, plan.rank)
        self.positions = plan.positions(self.seed)
        self._files: dict[int, int] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}}  # descriptors stay in the process that opened them

    def __call__(self, sample_info) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if sample_info.idx_in_epoch >= len(self.positions):
            raise StopIteration
        position = int(self.positions[sample_info.idx_in_epoch])
        video, label, video_frames = self.read(position)
        spec = self.spec
        indices = sample_frame_indices(video_frames, spec.num_frames, train=spec.train,
                                       rng=np.random.default_rng([self.seed, position]), num_clips=spec.num_clips,
                                       frame_interval=spec.frame_interval)
        try:
            selected = select_gops(video, indices) if self.sparse else _whole(video, indices)
        except (av.error.FFmpegError, ValueError, IndexError) as error:
            raise CorruptSampleError(self.describe(position, f"cannot demux it ({error})")) from error
        return (np.frombuffer(selected.data, dtype=np.uint8), selected.indices, np.array(label, dtype=np.int32),
                np.array([selected.decoded_frames, selected.sparse], dtype=np.int32))

    def read(self, position: int) -> tuple[bytes, int, int]:
        """(.mp4 bytes, label (its id in the shard set's classes), video_frames) of the sample at `position`."""
        tar_number = self.shards.tar_number(position)
        if tar_number not in self._files:
            self._files[tar_number] = os.open(self.shards.tars[tar_number], os.O_RDONLY)
        descriptor = self._files[tar_number]
        video_offset, video_size, info_offset, info_size = (int(v) for v in self.shards.members[position])
        video = os.pread(descriptor, video_size, video_offset)
        info = np.frombuffer(os.pread(descriptor, info_size, info_offset), dtype="<i4")
        if len(video) != video_size or info.size < 2:
            raise CorruptSampleError(self.describe(position, "the tar is shorter than its index says (truncated?)"))
        return video, self.shards.class_id(int(info[0])), int(info[1])

    def describe(self, position: int, problem: str) -> str:
        tar = self.shards.tars[self.shards.tar_number(position)]
        return f"corrupt sample {self.shards.keys[position]!r} in shard {tar}: {problem}; {VERIFY_HINT}"


def _whole(video: bytes, indices: np.ndarray) -> SparseClip:
    return SparseClip(video, indices.astype(np.int32), int(indices.max()) + 1, sparse=False)
