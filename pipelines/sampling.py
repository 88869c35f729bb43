"""Which frames make a clip: TSN segment sampling and dense (fixed stride) sampling.

Both loaders call `sample_frame_indices` with a generator seeded by (seed, epoch, rank, position), so
they draw the same frames for the same sample.

Layout of a multi-clip request: `num_clips * clip_len` indices, clip-major (clip 0's frames first).
"""
from __future__ import annotations

import numpy as np


def eval_offsets(clip_len: int, num_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, grid) for deterministic views: clip c sits at fraction (c + 0.5) / num_clips.

    With one clip that is the centre of every segment (segment sampling) or the centred window
    (dense sampling).
    """
    offsets = np.repeat((np.arange(num_clips, dtype=np.float32) + 0.5) / num_clips, clip_len)
    return offsets, frame_grid(clip_len, num_clips)


def frame_grid(clip_len: int, num_clips: int = 1) -> np.ndarray:
    """Frame slot t of every clip, clip-major."""
    return np.tile(np.arange(clip_len, dtype=np.float32), num_clips)


def frame_indices(num_frames: np.float32, offsets: np.ndarray, grid: np.ndarray, clip_len: int,
                  frame_interval: int | None = None) -> np.ndarray:
    """Frame indices (float, integral) for a clip of `clip_len` frames from a video of `num_frames`.

    Segment sampling (`frame_interval=None`): split [0, N) into `clip_len` equal segments and take
    `floor((t + offset_t) * N / T)`; offsets in [0, 1) (random for training, 0.5 for the centre).
    Videos shorter than the clip repeat frames instead of running past the end.
    Dense sampling: `clip_len` frames `frame_interval` apart from a start at fraction `offset` of the
    room left in the video; indices past the end repeat the last frame.
    """
    last = num_frames - 1
    if frame_interval is None:
        return np.minimum(np.floor(num_frames * (offsets + grid) / clip_len), last)
    span = (clip_len - 1) * frame_interval + 1
    room = np.maximum(num_frames - span, 0)
    start = np.floor(room * offsets)
    return np.minimum(start + grid * frame_interval, last)


def sample_frame_indices(num_frames: int, clip_len: int, *, train: bool, rng: np.random.Generator | None = None,
                         num_clips: int = 1, frame_interval: int | None = None) -> np.ndarray:
    """numpy version of the DALI sampling: int64 indices, `num_clips * clip_len` long, clip-major.

    Training draws one offset per segment (segment sampling) or one per clip (dense sampling).
    """
    if train:
        if rng is None:
            raise ValueError("training-mode sampling needs an rng")
        draws = clip_len if frame_interval is None else 1
        offsets = np.broadcast_to(rng.random(draws, dtype=np.float32), (clip_len,))
        grid = frame_grid(clip_len)
    else:
        offsets, grid = eval_offsets(clip_len, num_clips)
    indices = frame_indices(np.float32(num_frames), offsets, grid, clip_len, frame_interval)
    return indices.astype(np.int64)
