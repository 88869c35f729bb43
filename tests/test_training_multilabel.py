"""Multi-label end to end: Charades-style shards -> label sets in both loaders -> KL over label sets -> mAP."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from media import write_csv, write_video
from pipelines import build_loader, open_shards
from shard_tools.cli import main as shard_main
from training_fixtures import launch, records

pytestmark = pytest.mark.slow
CLASSES = ["c000 Opening a door", "c001 Closing a door", "c002 Sitting down", "c003 Standing up"]
HEADER = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
          "actions", "length"]


def actions(label_set: tuple[int, ...]) -> str:
    return ";".join(f"c{label:03d} 0.0 2.0" for label in label_set)


@pytest.fixture(scope="module")
def charades(tmp_path_factory) -> dict:
    """24 train and 8 test videos, each with a set of 1-3 of 4 classes, as multi-label shards."""
    root, folder = tmp_path_factory.mktemp("videos"), tmp_path_factory.mktemp("annotations")
    rng = np.random.default_rng(0)
    sets = {}
    for split, count in (("train", 24), ("test", 8)):
        for number in range(count):
            video_id = f"{split[:2].upper()}{number:02d}"
            write_video(root / f"{video_id}.mp4", video_frames=20, width=80, height=64, fps=10, codec="libvpx-vp9")
            sets[video_id] = tuple(sorted(rng.choice(4, size=int(rng.integers(1, 4)), replace=False).tolist()))
    (folder / "Charades_v1_classes.txt").write_text("\n".join(CLASSES) + "\n")
    row = ("S1", "Kitchen", 6, 7, "Yes", "script", "door", "description")
    for split in ("train", "test"):
        ids = [video_id for video_id in sets if video_id.startswith(split[:2].upper())]
        write_csv(folder / f"Charades_v1_{split}.csv", HEADER,
                  [(video_id, *row, actions(sets[video_id]), 2.0) for video_id in ids])
    out = tmp_path_factory.mktemp("shards")
    assert shard_main(["build-shards", "--format", "charades", "--annotations", str(folder), "--root", str(root),
                       "--name", "cha", "--out", str(out), "--short-side", "64", "--gop", "4"]) == 0
    return {"out": out, "sets": sets, "train": out / "cha-train.manifest.json", "test": out / "cha-test.manifest.json"}


def test_both_loaders_give_each_clip_its_label_set(charades):
    shards = open_shards(charades["test"])
    assert shards.label_sets is not None and shards.label_sets.shape == (8, 4)
    expected = sorted(label_set for video_id, label_set in charades["sets"].items() if video_id.startswith("TE"))
    assert sorted(tuple(np.flatnonzero(row).tolist()) for row in shards.label_sets) == expected
    common = dict(batch_size=3, num_frames=4, image_size=32, split="test")
    dali = list(build_loader(shards, "val", **common))
    baseline = list(build_loader(shards, "val", backend="baseline", workers=0, **common))
    for ours, theirs in zip(dali, baseline, strict=True):
        assert torch.equal(ours["label_set"], theirs["label_set"]) and ours["label_set"].dtype == torch.bool
        keep = ours["valid"]
        assert torch.equal(ours["label_set"][keep], torch.from_numpy(shards.label_sets[ours["video_id"][keep]]))
        # .info's label, the single-label view, is the smallest id of the set.
        assert torch.equal(ours["label"][keep], ours["label_set"][keep].int().argmax(dim=1))
    train = build_loader(charades["train"], "train", batch_size=4, num_frames=4, image_size=32, seed=1)
    batch = next(iter(train))
    assert batch["label_set"].shape == (4, 4) and batch["label_set"].any(dim=1).all()


def test_multi_label_training_and_test_report_map(charades, tmp_path):
    exp_dir = tmp_path / "run"
    values = {"data.train_shards": charades["train"], "data.val_shards": charades["test"], "data.num_segments": 4,
              "data.batch_size": 4, "data.workers": 1, "data.labels": "null", "solver.epochs": 2, "solver.lr_warmup_step": 1,
              "logging.print_freq": 1, "logging.exp_dir": exp_dir}
    overrides = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    trained = launch("--config", "configs/demo.yaml", *overrides)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    val = records(exp_dir, "val")
    assert len(val) == 2 and all(0 <= entry["mAP"] <= 100 for entry in val)
    assert all(entry["loss"] > 0 for entry in records(exp_dir, "train"))
    tested = launch("test", "--config", "configs/demo.yaml", *overrides)
    assert tested.returncode == 0, tested.stderr[-3000:]
    results = json.loads((exp_dir / "results-test.json").read_text())
    assert results["videos"] == 8 and 0 <= results["mAP"] <= 100 and "mAP" in tested.stdout
    present = {label for label_set in results["label_sets"] for label in label_set}
    assert sorted(map(int, results["per_class_ap"])) == sorted(present)
    assert results["mAP"] == pytest.approx(sum(results["per_class_ap"].values()) / len(present) * 100)
