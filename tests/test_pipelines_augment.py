"""Training augmentation on DALI: shapes, dtypes, normalisation, and one crop/flip/colour draw per clip."""
from __future__ import annotations

import pytest
import torch

from pipelines import CLIP_MEAN, CLIP_STD, build_loader
from pipelines_fixtures import ramp_shards

RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)
NO_COLOR = dict(color_jitter_prob=0.0, grayscale_prob=0.0)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


def train_clips(shards, epochs=(0,), **options) -> torch.Tensor:
    """All training clips of the given epochs as float32 (N, T, 3, S, S)."""
    loader = build_loader(shards, "train", split="train", batch_size=4, num_frames=4, image_size=32, seed=1,
                          **options)
    clips = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        clips += [batch["video"].float() for batch in loader]
    return torch.cat(clips)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_train_batch_shapes_dtypes_and_normalised_range(shards, dtype):
    loader = build_loader(shards, "train", split="train", batch_size=4, num_frames=4, image_size=32, dtype=dtype)
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    mean = torch.tensor(CLIP_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 1, 3, 1, 1)
    for batch in batches:
        assert batch["video"].shape == (4, 4, 3, 32, 32) and batch["video"].dtype == dtype
        assert batch["label"].shape == (4,) and batch["label"].dtype == torch.int64
        assert set(batch["label"].tolist()) <= {0, 1, 2}
        video = batch["video"].float()
        assert torch.isfinite(video).all()
        tolerance = 0.02  # bf16 rounding of values up to ~2.2
        assert (video >= (0 - mean) / std - tolerance).all() and (video <= (1 - mean) / std + tolerance).all()
        assert video.std() > 0.1


def test_crop_and_flip_are_shared_by_all_frames_of_a_clip(shards):
    clips = train_clips(shards, epochs=(0, 1, 2), flip=True, **RAW, **NO_COLOR)
    red, green = clips[:, :, 0], clips[:, :, 1]  # x and y gradients: identical in every source frame
    # Same window for every frame: the spatial gradients agree frame to frame (codec noise aside).
    assert (red - red[:, :1]).abs().amax(dim=(1, 2, 3)).max() <= 12
    assert (green - green[:, :1]).abs().amax(dim=(1, 2, 3)).max() <= 12
    left, right = red[..., 0].mean(dim=(1, 2)), red[..., -1].mean(dim=(1, 2))
    flipped = left > right
    assert 0 < flipped.sum() < len(clips)
    # Multi-scale crops: the horizontal extent seen (red span) varies between clips.
    span = (left - right).abs()
    assert span.max() - span.min() > 20


def test_flip_off_keeps_orientation(shards):
    clips = train_clips(shards, epochs=(0, 1, 2), flip=False, **RAW, **NO_COLOR)
    red = clips[:, :, 0]
    assert (red[..., 0].mean(dim=(1, 2)) < red[..., -1].mean(dim=(1, 2))).all()


def test_color_jitter_is_one_draw_per_clip(shards):
    # Brightness and contrast only: a per-channel map, so equal source channels stay equal across frames.
    jittered = train_clips(shards, epochs=(0, 1), color_jitter=(0.4, 0.4, 0.0, 0.0), color_jitter_prob=1.0,
                           grayscale_prob=0.0, **RAW)
    plain = train_clips(shards, epochs=(0, 1), **RAW, **NO_COLOR)
    red = jittered[:, :, 0]
    assert (red - red[:, :1]).abs().amax(dim=(1, 2, 3)).max() <= 12
    # ...and the draws differ between clips: mean brightness spreads wider than without jitter.
    assert jittered[:, :, 0].mean(dim=(1, 2, 3)).std() > plain[:, :, 0].mean(dim=(1, 2, 3)).std() + 5


def test_grayscale_always_gives_equal_channels(shards):
    clips = train_clips(shards, grayscale_prob=1.0, color_jitter_prob=0.0, **RAW)
    assert (clips[:, :, 0] - clips[:, :, 1]).abs().max() <= 1
    assert (clips[:, :, 1] - clips[:, :, 2]).abs().max() <= 1


@pytest.mark.parametrize("backend", ["dali", "baseline"])
def test_rand_augment_runs_on_sequences(shards, backend):
    loader = build_loader(shards, "train", split="train", batch_size=4, num_frames=4, image_size=32,
                          randaug={"N": 2, "M": 9}, backend=backend, workers=0 if backend == "baseline" else 2)
    batch = next(iter(loader))
    assert batch["video"].shape == (4, 4, 3, 32, 32) and torch.isfinite(batch["video"]).all()
