"""Frame sampling: the numpy reference, and the indices the DALI graph computes (read back from ramp videos)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from pipelines import build_loader
from pipelines.sampling import sample_frame_indices
from pipelines_fixtures import frame_number, ramp_shards, sample_records

RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # normalisation that leaves 0..255 pixel values
NO_COLOR = dict(color_jitter_prob=0.0, grayscale_prob=0.0)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


def decoded_frame_numbers(batch) -> np.ndarray:
    """(rows, T) frame numbers of a batch of unaugmented-colour clips, from the blue level."""
    return frame_number(batch["video"][:, :, 2].float().mean(dim=(-1, -2)).numpy())


@pytest.mark.parametrize("video_frames, varies", [(30, True), (17, True), (8, False), (5, True)])
def test_train_indices_fall_one_per_segment_and_vary(video_frames, varies):
    num_frames = 8
    draws = np.stack([sample_frame_indices(video_frames, num_frames, train=True, rng=np.random.default_rng(seed))
                      for seed in range(50)])
    segment = np.arange(num_frames)
    low = np.floor(segment * video_frames / num_frames)
    high = np.ceil((segment + 1) * video_frames / num_frames) - 1
    assert ((draws >= low) & (draws <= high)).all()
    assert (np.diff(draws, axis=1) >= 0).all()
    # With one frame per segment (N == T) there is nothing to draw.
    assert (len({tuple(row) for row in draws}) > 1) == varies


def test_val_indices_are_segment_centres_and_short_videos_repeat():
    assert sample_frame_indices(16, 8, train=False).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_frame_indices(80, 4, train=False).tolist() == [10, 30, 50, 70]
    assert sample_frame_indices(3, 8, train=False).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]


def test_eval_indices_are_exact_for_every_video_length_clip_length_and_view_count():
    """floor((t + (c + 1/2) / clips) * N / T) in exact arithmetic; float32 gave 54 for 55 at N=120, T=4, 3 clips."""
    assert sample_frame_indices(120, 4, train=False, num_clips=3).tolist()[8:] == [25, 55, 85, 115]
    for video_frames in range(1, 130):
        for num_frames in (1, 3, 4, 8, 16):
            for num_clips in (1, 2, 3, 4, 10):
                expected = [min(math.floor((t + Fraction(2 * c + 1, 2 * num_clips)) * video_frames / num_frames),
                                video_frames - 1) for c in range(num_clips) for t in range(num_frames)]
                got = sample_frame_indices(video_frames, num_frames, train=False, num_clips=num_clips)
                assert got.tolist() == expected, (video_frames, num_frames, num_clips)


def test_dense_and_multi_clip_indices():
    assert sample_frame_indices(40, 4, train=False, frame_interval=3).tolist() == [15, 18, 21, 24]
    assert sample_frame_indices(5, 4, train=False, frame_interval=3).tolist() == [0, 3, 4, 4]
    two_clips = sample_frame_indices(16, 4, train=False, num_clips=2)
    assert two_clips.tolist() == [1, 5, 9, 13, 3, 7, 11, 15]
    starts = {sample_frame_indices(40, 4, train=True, rng=np.random.default_rng(s), frame_interval=3)[0]
              for s in range(30)}
    assert min(starts) >= 0 and max(starts) <= 40 - 10 and len(starts) > 3


def test_dali_val_indices_match_reference(shards):
    records = sample_records(shards, "val")
    loader = build_loader(shards, "val", split="val", batch_size=4, num_frames=8, image_size=32, **RAW)
    seen = 0
    for batch in loader:
        frames = decoded_frame_numbers(batch)
        for row, (video_id, valid) in enumerate(zip(batch["video_id"], batch["valid"])):
            if not valid:
                continue
            video_frames = records[loader.shards.keys[int(video_id)]][1]
            assert frames[row].tolist() == sample_frame_indices(video_frames, 8, train=False).tolist()
            seen += 1
    assert seen == len(records)


def test_dali_train_indices_one_per_segment_vary_across_epochs(shards):
    records = sample_records(shards, "train")
    frame_counts = {label_frames[1] for label_frames in records.values()}
    loader = build_loader(shards, "train", split="train", batch_size=4, num_frames=8, image_size=32, seed=3,
                          **RAW, **NO_COLOR)
    per_epoch = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        clips = np.concatenate([decoded_frame_numbers(batch) for batch in loader])
        # Short videos repeat frames, never pad with black: every frame is a real frame of some video.
        assert clips.min() >= 0 and clips.max() < max(frame_counts)
        assert (np.diff(clips, axis=1) >= 0).all()
        per_epoch.append(clips)
    # Every clip fits the segment bounds of at least one video length in the split.
    for clip in np.concatenate(per_epoch):
        assert any(_fits_segments(clip, n) for n in frame_counts), clip
    assert not np.array_equal(per_epoch[0], per_epoch[1])


def _fits_segments(clip: np.ndarray, video_frames: int) -> bool:
    segment = np.arange(len(clip))
    low = np.floor(segment * video_frames / len(clip))
    high = np.ceil((segment + 1) * video_frames / len(clip)) - 1
    return bool(((clip >= low) & (clip <= high)).all())
