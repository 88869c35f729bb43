"""Decoded frames: DALI against PyAV, and the DALI loader against the baseline loader."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines import build_loader
from pipelines.pyav_decode import decode_frames
from pipelines.sampling import sample_frame_indices
from pipelines_fixtures import frame_number, ramp_shards

RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


def pyav_centre_clip(info, video_id: int, video_frames: int, size: int) -> np.ndarray:
    """PyAV frames at the val indices, centre-cropped to size x size: (T, 3, size, size)."""
    tar = Path(info.tars[info.tar_number(video_id)])
    with tarfile.open(tar) as archive:
        data = archive.extractfile(f"{info.keys[video_id]}.mp4").read()
    frames = decode_frames(data, sample_frame_indices(video_frames, 8, train=False))
    height, width = frames.shape[1:3]
    top, left = (height - size + 1) // 2, (width - size + 1) // 2
    return frames[:, top:top + size, left:left + size].transpose(0, 3, 1, 2).astype(np.float32)


def test_dali_val_frames_match_pyav_in_temporal_order(shards):
    # Short side 48 == round(42 * 256 / 224): the eval resize keeps the frames' scale, only the crop remains.
    loader = build_loader(shards, "val", split="val", batch_size=3, num_frames=8, image_size=42, **RAW)
    compared = 0
    for batch in loader:
        for clip, video_id, valid in zip(batch["video"].numpy(), batch["video_id"], batch["valid"]):
            if not valid:
                continue
            video_frames = _frame_count(loader.shards, int(video_id))
            reference = pyav_centre_clip(loader.shards, int(video_id), video_frames, 42)
            difference = np.abs(clip - reference)
            # DALI and FFmpeg's swscale convert YUV to RGB with slightly different rounding.
            assert difference.mean() < 3.0 and difference.max() <= 16, (video_id, difference.mean(), difference.max())
            numbers = frame_number(clip[:, 2].mean(axis=(1, 2)))
            assert numbers.tolist() == sample_frame_indices(video_frames, 8, train=False).tolist()
            compared += 1
    assert compared == loader.shards.num_samples


def _frame_count(info, video_id: int) -> int:
    tar = Path(info.tars[info.tar_number(video_id)])
    with tarfile.open(tar) as archive:
        return int(np.frombuffer(archive.extractfile(f"{info.keys[video_id]}.info").read(), "<i4")[1])


@pytest.mark.parametrize("options", [
    dict(mode="val", image_size=32),
    dict(mode="val", image_size=40, frame_interval=2),
    dict(mode="test", image_size=32, num_clips=2, num_crops=3),
], ids=["val", "dense", "multiview"])
def test_dali_and_baseline_give_the_same_eval_clips(shards, options):
    common = dict(split="val", batch_size=3, num_frames=6, world_size=2, rank=1, **options)
    dali = list(build_loader(shards, backend="dali", **common))
    baseline = list(build_loader(shards, backend="baseline", workers=0, **common))
    assert len(dali) == len(baseline) > 0
    for ours, theirs in zip(dali, baseline):
        for name in ("label", "video_id", "valid"):
            assert torch.equal(ours[name], theirs[name]), name
        assert ours["video"].shape == theirs["video"].shape
        difference = (ours["video"] - theirs["video"]).abs()
        # Normalised units: 0.04 is about 2.5 grey levels (colour conversion and resampling filters differ).
        assert difference.mean() < 0.04 and difference.max() < 0.2, (difference.mean(), difference.max())


def test_baseline_workers_keep_batch_order_and_draws(shards):
    common = dict(split="train", batch_size=2, num_frames=4, image_size=32, seed=5, epoch=1, backend="baseline")
    in_process = list(build_loader(shards, "train", workers=0, **common))
    with_workers = list(build_loader(shards, "train", workers=2, **common))
    assert len(in_process) == len(with_workers) == 12 // 2
    for first, second in zip(in_process, with_workers):
        assert torch.equal(first["label"], second["label"])
        assert torch.equal(first["video"], second["video"])
