"""ShardSet.subset and ShardSet.of_classes, read by the DALI and the baseline loader."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipelines import build_loader, open_shards
from pipelines.sampling import sample_frame_indices
from pipelines_fixtures import CLASSES, frame_number, ramp_shards, sample_records

RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)
BACKENDS = [dict(backend="dali"), dict(backend="baseline", workers=0)]


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


def test_a_subset_keeps_reading_order_members_and_tars(shards):
    whole = open_shards(shards, split="train")  # 12 samples in tars of 4
    subset = whole.subset([9, 1, 5, 4, 1])
    assert subset.keys == tuple(whole.keys[p] for p in (1, 4, 5, 9))
    assert subset.samples_per_tar == (1, 2, 1) and subset.tars == whole.tars
    assert (subset.members == whole.members[[1, 4, 5, 9]]).all()
    assert subset.subset([3]).tars == (whole.tars[2],) and subset.subset([3]).keys == (whole.keys[9],)
    assert subset.tar_number(0) == 0 and subset.tar_number(2) == 1 and subset.tar_number(3) == 2
    records = sample_records(shards, "train")
    assert subset.labels.tolist() == [records[key][0] for key in subset.keys]
    with pytest.raises(IndexError):
        whole.subset([12])
    with pytest.raises(ValueError, match="at least one sample"):
        whole.subset([])


def test_a_class_subset_renumbers_labels_in_the_order_given(shards):
    whole = open_shards(shards, split="train")
    picked = whole.of_classes([2, 0])
    assert picked.classes == (CLASSES[2], CLASSES[0])
    stored = sample_records(shards, "train")
    assert picked.keys == tuple(key for key in whole.keys if stored[key][0] in (2, 0))
    assert picked.labels.tolist() == [{2: 0, 0: 1}[stored[key][0]] for key in picked.keys]
    assert [picked.class_id(c) for c in range(3)] == [1, -1, 0]
    # A class subset of a class subset maps the stored ids through both.
    again = picked.of_classes([1])
    assert again.classes == (CLASSES[0],) and set(again.labels.tolist()) == {0}
    assert [again.class_id(c) for c in range(3)] == [0, -1, -1]
    assert again.keys == tuple(key for key in whole.keys if stored[key][0] == 0)
    with pytest.raises(ValueError, match="distinct ids in \\[0, 3\\)"):
        whole.of_classes([0, 0])
    with pytest.raises(ValueError, match="distinct ids"):
        whole.of_classes([3])
    multi_label = replace(whole, label_sets=np.ones((whole.num_samples, 3), dtype=bool))
    with pytest.raises(ValueError, match="multi-label"):
        multi_label.of_classes([0])
    assert multi_label.subset([0, 1]).label_sets.shape == (2, 3)


@pytest.mark.parametrize("backend", BACKENDS, ids=["dali", "baseline"])
def test_both_loaders_read_exactly_a_subsets_videos_with_remapped_labels(shards, backend):
    """Each val slot holds the video its id names (its frame count shows in the decoded frames) and the label
    of that video's class in the subset's class list."""
    whole = open_shards(shards, split="train")
    subset = whole.of_classes([2, 1]).subset([0, 2, 3, 5, 6, 7])
    stored = sample_records(shards, "train")
    loader = build_loader(subset, "val", batch_size=4, num_frames=4, image_size=32, **RAW, **backend)
    seen = []
    for batch in loader:
        frames = frame_number(batch["video"][:, :, 2].mean(dim=(-1, -2)).numpy())
        for clip_frames, video_id, label, valid in zip(frames, batch["video_id"], batch["label"], batch["valid"]):
            key = subset.keys[int(video_id)]
            stored_label, video_frames, *_ = stored[key]
            assert clip_frames.tolist() == sample_frame_indices(video_frames, 4, train=False).tolist()
            assert int(label) == {2: 0, 1: 1}[stored_label]
            if valid:
                seen.append(key)
    assert seen == list(subset.keys) and len(seen) == 6
    train = build_loader(subset, "train", batch_size=3, num_frames=4, image_size=32, **RAW, **backend)
    labels = sorted(int(label) for batch in train for label in batch["label"])
    assert labels == sorted(subset.labels.tolist())
