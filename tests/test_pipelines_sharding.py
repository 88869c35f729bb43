"""Ranks, padding, multi-view layout and epoch reproducibility, for the DALI and the baseline loader."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from pipelines import build_loader
from pipelines.sampling import sample_frame_indices
from pipelines_fixtures import frame_number, ramp_shards, sample_records

RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)
BACKENDS = [dict(backend="dali"), dict(backend="baseline", workers=0)]


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


@pytest.mark.parametrize("backend", BACKENDS, ids=["dali", "baseline"])
def test_two_ranks_cover_every_val_sample_once(shards, backend):
    records = sample_records(shards, "val")  # 7 samples: ranks get 3 and 4, padded to 2 batches of 2
    seen = Counter()
    lengths = []
    for rank in range(2):
        loader = build_loader(shards, "val", split="val", batch_size=2, num_frames=4, image_size=32, rank=rank,
                              world_size=2, **RAW, **backend)
        batches = list(loader)
        lengths.append((len(loader), len(batches)))
        for batch in batches:
            assert batch["video"].shape == (2, 4, 3, 32, 32)
            frames = frame_number(batch["video"][:, :, 2].mean(dim=(-1, -2)).numpy())
            for clip_frames, video_id, label, valid in zip(frames, batch["video_id"], batch["label"], batch["valid"]):
                label_in_shard, video_frames, *_ = records[loader.shards.keys[int(video_id)]]
                # The slot holds the video its id names: same label, frames of that video's length.
                assert int(label) == label_in_shard
                assert clip_frames.tolist() == sample_frame_indices(video_frames, 4, train=False).tolist()
                seen[int(video_id)] += int(valid)
    assert lengths == [(2, 2), (2, 2)]
    assert seen == Counter(range(len(records)))


@pytest.mark.parametrize("backend", BACKENDS, ids=["dali", "baseline"])
def test_two_ranks_yield_equal_train_batches(shards, backend):
    records = sample_records(shards, "train")  # 12 samples, 6 per rank
    for batch_size, expected in ((3, 2), (4, 1)):
        labels = Counter()
        for rank in range(2):
            loader = build_loader(shards, "train", split="train", batch_size=batch_size, num_frames=4, image_size=32,
                                  rank=rank, world_size=2, epoch=1, **backend)
            batches = list(loader)
            assert len(loader) == len(batches) == expected
            labels.update(label for batch in batches for label in batch["label"].tolist())
        if batch_size == 3:  # nothing dropped: the two ranks read the whole split between them
            assert labels == Counter(label for label, *_ in records.values())


@pytest.mark.parametrize("backend", BACKENDS, ids=["dali", "baseline"])
def test_multiview_rows_line_up_with_videos(shards, backend):
    loader = build_loader(shards, "test", split="val", batch_size=2, num_frames=4, image_size=32, num_clips=2,
                          num_crops=3, **RAW, **backend)
    records = sample_records(shards, "val")
    videos = 0
    for batch in loader:
        assert batch["video"].shape == (2 * 6, 4, 3, 32, 32)
        views = batch["video"].view(2, 2, 3, 4, 3, 32, 32)  # video, clip, crop, frame, channel, y, x
        ids, labels = batch["video_id"].view(2, 6), batch["label"].view(2, 6)
        assert (ids == ids[:, :1]).all() and (labels == labels[:, :1]).all()
        assert (batch["valid"].view(2, 6) == batch["valid"].view(2, 6)[:, :1]).all()
        for video in range(2):
            label, _, height, width = records[loader.shards.keys[int(ids[video, 0])]]
            assert int(labels[video, 0]) == label
            # Crops move along the long side: red grows left to right, green top to bottom.
            channel = 0 if width > height else 1 if height > width else None
            if channel is not None:
                means = views[video, :, :, :, channel].mean(dim=(2, 3, 4))
                assert (means[:, 0] < means[:, 1]).all() and (means[:, 1] < means[:, 2]).all()
            # The second clip samples later frames: more blue.
            blue = views[video, :, :, :, 2].mean(dim=(1, 2, 3, 4))
            assert blue[0] <= blue[1]
        videos += int(batch["valid"].view(2, 6)[:, 0].sum())
    assert videos == len(records)


def epoch_videos(loader) -> list[torch.Tensor]:
    return [batch["video"] for batch in loader]


@pytest.mark.parametrize("backend", BACKENDS, ids=["dali", "baseline"])
def test_epoch_seed_reproduces_clips_and_resume_matches(shards, backend):
    def loader(epoch):
        return build_loader(shards, "train", split="train", batch_size=4, num_frames=4, image_size=32, seed=7,
                            epoch=epoch, rank=1, world_size=2, **backend)

    first, again = epoch_videos(loader(2)), epoch_videos(loader(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    resumed = loader(0)
    resumed.set_epoch(2)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch_videos(resumed), strict=True))
    replay = epoch_videos(resumed)  # iterating again without set_epoch replays the same epoch
    assert all(torch.equal(a, b) for a, b in zip(first, replay, strict=True))
    resumed.set_epoch(3)
    assert not all(torch.equal(a, b) for a, b in zip(first, epoch_videos(resumed), strict=True))


def test_tar_list_without_manifest_reads_like_the_manifest(shards):
    tars = sorted(shards.glob("synth-val-*.tar"))
    from_list = build_loader(tars, "val", batch_size=7, num_frames=4, image_size=32)
    from_manifest = build_loader(shards / "synth-val.manifest.json", "val", batch_size=7, num_frames=4, image_size=32)
    assert from_list.shards.classes is None and from_manifest.shards.classes == ("ramp_a", "ramp_b", "ramp_c")
    assert from_list.shards.keys == from_manifest.shards.keys
    (first,), (second,) = list(from_list), list(from_manifest)
    assert torch.equal(first["video"], second["video"]) and torch.equal(first["label"], second["label"])
