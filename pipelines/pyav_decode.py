"""PyAV decoding of shard videos: the baseline loader's decoder, sparse decoding for loose files, and the
corrupt-sample probe."""
from __future__ import annotations

import io
import tarfile
from typing import Iterable, Sequence

import av
import numpy as np

from pipelines.shards import ShardSet
from pipelines.sparse import select_gops


def decode_frames(data: bytes, indices: Sequence[int], *, one_thread: bool = False) -> np.ndarray:
    """RGB frames (len(indices), H, W, 3) uint8 at `indices` (any order, repeats allowed).

    Decodes from the start up to the largest index; indices past the last frame repeat it, as
    DALI's pad_mode="edge" does. `one_thread` keeps FFmpeg on the calling thread (cost measurements).
    """
    wanted = set(int(i) for i in indices)
    last_wanted = max(wanted)
    frames: dict[int, np.ndarray] = {}
    number, frame = -1, None
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE" if one_thread else "AUTO"
        if one_thread:
            stream.codec_context.thread_count = 1
        for number, frame in enumerate(container.decode(stream)):
            if number in wanted:
                frames[number] = frame.to_ndarray(format="rgb24")
            if number == last_wanted:
                break
        if frame is None:
            raise ValueError("the video has no frames")
        if number not in frames:
            frames[number] = frame.to_ndarray(format="rgb24")
    return np.stack([frames[min(int(i), number)] for i in indices])


def decode_clip(data: bytes, indices: Sequence[int]) -> np.ndarray:
    """`decode_frames` that decodes only the GOPs holding `indices` (see pipelines.sparse)."""
    selected = select_gops(data, indices)
    return decode_frames(selected.data, selected.indices)


def count_frames(data: bytes) -> int:
    """Decode every frame; raises av.error.FFmpegError (or ValueError) on a broken stream."""
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def find_undecodable(shards: ShardSet, positions: Iterable[int]) -> list[tuple[str, str]]:
    """(tar, key) of the samples at reading-order `positions` whose .mp4 PyAV cannot decode fully."""
    by_tar: dict[int, list[str]] = {}
    for position in positions:
        by_tar.setdefault(shards.tar_number(position), []).append(shards.keys[position])
    bad = []
    for number, keys in sorted(by_tar.items()):
        with tarfile.open(shards.tars[number]) as archive:
            for key in keys:
                try:
                    count_frames(archive.extractfile(f"{key}.mp4").read())
                except (av.error.FFmpegError, ValueError, KeyError):
                    bad.append((shards.tars[number], key))
    return bad


def probe_codec(shards: ShardSet) -> str:
    """Codec name (FFmpeg's, e.g. "vp9", "h264") of the first video in the shard set."""
    with tarfile.open(shards.tars[0]) as archive:
        data = archive.extractfile(f"{shards.keys[0]}.mp4").read()
    with av.open(io.BytesIO(data)) as container:
        return container.streams.video[0].codec_context.name
