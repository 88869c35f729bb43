"""Which frames make a clip: TSN segment sampling and dense (fixed stride) sampling.

Both loaders call `sample_frame_indices` with a generator seeded by (seed, epoch, rank, position), so
they draw the same frames for the same sample.

Layout of a multi-clip request: `num_clips * clip_len` indices, clip-major (clip 0's frames first).
"""
from __future__ import annotations

import numpy as np


def sample_frame_indices(num_frames: int, clip_len: int, *, train: bool, rng: np.random.Generator | None = None,
                         num_clips: int = 1, frame_interval: int | None = None) -> np.ndarray:
    """int64 indices of a clip of `clip_len` frames from a video of `num_frames`, `num_clips * clip_len` long.

    Segment sampling (`frame_interval=None`): split [0, N) into `clip_len` equal segments and take
    `floor((t + offset_t) * N / T)`. Dense sampling: `clip_len` frames `frame_interval` apart from a start
    at fraction `offset` of the room left in the video. Training draws the offsets from `rng` (one per
    segment, or one per clip for dense sampling); val/test put clip c at offset (c + 1/2) / num_clips,
    in integer arithmetic, so a segment centre never rounds down to the frame before it. Indices past
    the end (videos shorter than the clip) repeat the last frame.
    """
    grid = np.tile(np.arange(clip_len, dtype=np.int64), 1 if train else num_clips)
    if train:
        if rng is None:
            raise ValueError("training-mode sampling needs an rng")
        offsets = rng.random(clip_len if frame_interval is None else 1, dtype=np.float32).astype(np.float64)
        if frame_interval is None:
            indices = np.floor(num_frames * (offsets + grid) / clip_len).astype(np.int64)
        else:
            indices = int(np.floor(_room(num_frames, clip_len, frame_interval) * offsets[0])) + grid * frame_interval
    else:
        twice_offset = np.repeat(2 * np.arange(num_clips, dtype=np.int64) + 1, clip_len)  # 2 * num_clips * offset
        if frame_interval is None:
            indices = num_frames * (twice_offset + 2 * num_clips * grid) // (2 * num_clips * clip_len)
        else:
            indices = _room(num_frames, clip_len, frame_interval) * twice_offset // (2 * num_clips) + grid * frame_interval
    return np.minimum(indices, num_frames - 1)


def _room(num_frames: int, clip_len: int, frame_interval: int) -> int:
    """Frames a dense clip's start can move over: the video's length minus the clip's span."""
    return max(num_frames - ((clip_len - 1) * frame_interval + 1), 0)
