"""Which frames make a clip: TSN segment sampling and dense (fixed stride) sampling.

Both loaders call `sample_frame_indices` with a generator seeded by (seed, epoch, rank, position), so
they draw the same frames for the same sample.

Layout of a multi-clip request: `num_clips * num_frames` indices, clip-major (clip 0's frames first).
"""
from __future__ import annotations

import numpy as np


def sample_frame_indices(video_frames: int, num_frames: int, *, train: bool, rng: np.random.Generator | None = None,
                         num_clips: int = 1, frame_interval: int | None = None) -> np.ndarray:
    """int64 indices, `num_clips * num_frames` long, of a clip of T = `num_frames` frames from a video of
    N = `video_frames` frames.

    Segment sampling (`frame_interval=None`): split [0, N) into T equal segments and take
    `floor((t + offset_t) * N / T)`. Dense sampling: T frames `frame_interval` apart from a start
    at fraction `offset` of the room left in the video. Training draws the offsets from `rng` (one per
    segment, or one per clip for dense sampling); val/test put clip c at offset (c + 1/2) / num_clips,
    in integer arithmetic, so a segment centre never rounds down to the frame before it. Indices past
    the end (videos shorter than the clip) repeat the last frame.
    """
    grid = np.tile(np.arange(num_frames, dtype=np.int64), 1 if train else num_clips)
    if train:
        if rng is None:
            raise ValueError("training-mode sampling needs an rng")
        offsets = rng.random(num_frames if frame_interval is None else 1, dtype=np.float32).astype(np.float64)
        if frame_interval is None:
            indices = np.floor(video_frames * (offsets + grid) / num_frames).astype(np.int64)
        else:
            room = _room(video_frames, num_frames, frame_interval)
            indices = int(np.floor(room * offsets[0])) + grid * frame_interval
    else:
        twice_offset = np.repeat(2 * np.arange(num_clips, dtype=np.int64) + 1, num_frames)  # 2 * num_clips * offset
        if frame_interval is None:
            indices = video_frames * (twice_offset + 2 * num_clips * grid) // (2 * num_clips * num_frames)
        else:
            room = _room(video_frames, num_frames, frame_interval)
            indices = room * twice_offset // (2 * num_clips) + grid * frame_interval
    return np.minimum(indices, video_frames - 1)


def _room(video_frames: int, num_frames: int, frame_interval: int) -> int:
    """Frames a dense clip's start can move over: the video's length (`video_frames`) minus the clip's span
    (`num_frames` frames `frame_interval` apart)."""
    return max(video_frames - ((num_frames - 1) * frame_interval + 1), 0)
