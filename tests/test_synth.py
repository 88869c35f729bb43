"""`shard_tools synth`: determinism, decodable videos, consistent tables, held-out classes, and
motion that is really visible in the decoded frames."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from shard_tools.cli import main as shard_main
from shard_tools.synth import synthesize
from shard_tools.synth_scene import (
    COMPOSITIONAL_COLOURS,
    COMPOSITIONAL_SHAPES,
    COLOURS,
    MOTIONS,
    ClassSpec,
    sample_scene,
)

SIZE = (64, 80)
FRAMES = (16, 24)
PER_SPLIT = {"train": 2, "val": 1, "test": 1}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture(scope="module")
def motion_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_motion")
    synthesize(
        out,
        seed=3,
        train_per_class=PER_SPLIT["train"],
        val_per_class=PER_SPLIT["val"],
        test_per_class=PER_SPLIT["test"],
        size=SIZE,
        frames=FRAMES,
    )
    return out


@pytest.fixture(scope="module")
def compositional_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_compositional")
    synthesize(
        out, seed=0, labels="compositional", train_per_class=1, val_per_class=0, test_per_class=0,
        zeroshot_per_class=1, size=(48, 48), frames=(8, 8), workers=2,
    )
    return out


def test_same_seed_same_dataset_any_workers_and_other_seed_differs(tmp_path: Path) -> None:
    options = dict(train_per_class=1, val_per_class=1, test_per_class=0, size=(48, 64), frames=(8, 12))
    first = synthesize(tmp_path / "a", seed=7, workers=1, **options)
    synthesize(tmp_path / "b", seed=7, workers=2, **options)
    synthesize(tmp_path / "c", seed=8, workers=1, **options)
    assert first.videos == 20
    for name in ("annotations.csv", "labels.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    differing = 0
    for row in read_csv(tmp_path / "a" / "annotations.csv"):
        same_seed = decode(tmp_path / "a" / row["path"])
        np.testing.assert_array_equal(same_seed, decode(tmp_path / "b" / row["path"]), err_msg=row["path"])
        other_seed = decode(tmp_path / "c" / row["path"])
        differing += same_seed.shape != other_seed.shape or not np.array_equal(same_seed, other_seed)
    assert differing == 20


def test_every_video_decodes_as_h264_within_size_and_length(motion_set: Path) -> None:
    rows = read_csv(motion_set / "annotations.csv")
    assert len(rows) == len(MOTIONS) * sum(PER_SPLIT.values())
    for row in rows:
        with av.open(str(motion_set / row["path"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
            assert 12 <= float(stream.average_rate) <= 30
        frames = decode(motion_set / row["path"])
        video_frames, height, width, _ = frames.shape
        assert FRAMES[0] <= video_frames <= FRAMES[1], row["path"]
        assert SIZE[0] <= min(height, width) <= SIZE[1] and max(height, width) <= min(height, width) * 4 / 3 + 2
        assert height % 2 == 0 and width % 2 == 0


def test_tables_are_consistent_and_splits_as_requested(motion_set: Path) -> None:
    with (motion_set / "annotations.csv").open() as handle:
        assert handle.readline().strip() == "path,label,split"
    labels = read_csv(motion_set / "labels.csv")
    names = [row["name"] for row in labels]
    assert [int(row["id"]) for row in labels] == list(range(len(MOTIONS)))
    assert names == sorted(MOTIONS)
    rows = read_csv(motion_set / "annotations.csv")
    assert len({row["path"] for row in rows}) == len(rows)
    assert all((motion_set / row["path"]).is_file() and not Path(row["path"]).is_absolute() for row in rows)
    counts = Counter((row["split"], row["label"]) for row in rows)
    assert counts == {(split, name): n for split, n in PER_SPLIT.items() for name in names}
    assert not (motion_set / "labels-zeroshot.csv").exists()


def test_compositional_mode_holds_out_whole_combinations(compositional_set: Path) -> None:
    rows = read_csv(compositional_set / "annotations.csv")
    seen = [row["name"] for row in read_csv(compositional_set / "labels-seen.csv")]
    held_out = [row["name"] for row in read_csv(compositional_set / "labels-zeroshot.csv")]
    everything = read_csv(compositional_set / "labels.csv")
    for table in ("labels-seen.csv", "labels-zeroshot.csv", "labels.csv"):
        ids = [int(row["id"]) for row in read_csv(compositional_set / table)]
        assert ids == list(range(len(ids))), table
    assert [row["name"] for row in everything] == sorted(seen + held_out)
    assert len(seen) + len(held_out) == len(COMPOSITIONAL_COLOURS) * len(COMPOSITIONAL_SHAPES) * len(MOTIONS)
    assert not set(seen) & set(held_out)
    assert {row["label"] for row in rows if row["split"] == "train"} == set(seen)
    assert {row["label"] for row in rows if row["split"] == "zeroshot"} == set(held_out)
    # Zero-shot names recombine parts that training shows: every pair of (colour, shape, motion) is seen.
    seen_pairs = {pair for name in seen for pair in _pairs(name)}
    for name in held_out:
        assert set(_pairs(name)) <= seen_pairs, name


def _pairs(name: str) -> list[tuple[str, str]]:
    colour, shape, motion = name.split(" ", 2)
    return [(colour, shape), (colour, motion), (shape, motion)]


def test_compositional_videos_show_the_named_colour(compositional_set: Path) -> None:
    rows = read_csv(compositional_set / "annotations.csv")
    for row in rows:
        frames = decode(compositional_set / row["path"]).astype(np.float32)
        fill = (frames.max(axis=-1) - frames.min(axis=-1)) > 60
        assert fill.sum() > 0, row["path"]
        mean_rgb = frames[fill].mean(axis=0)
        nearest = min(COMPOSITIONAL_COLOURS, key=lambda c: np.linalg.norm(mean_rgb - np.array(COLOURS[c])))
        assert nearest == row["label"].split()[0], (row["path"], mean_rgb)


def _track(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame area, centroid and cap angle of the object, segmented from decoded frames.

    The fill is the only saturated colour in a clip (backgrounds are near grey) and the cap the only
    near-white one; the cap's direction from the object's centroid turns with the object.
    """
    pixels = frames.astype(np.int16)
    fill = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 60
    cap = pixels.min(axis=-1) > 205
    rows, cols = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    area, x, y, angle = [], [], [], []
    for fill_mask, cap_mask in zip(fill, cap):
        area.append(fill_mask.sum())
        body = fill_mask | cap_mask
        cx, cy = (cols[body].mean(), rows[body].mean()) if body.any() else (np.nan, np.nan)
        x.append(cx)
        y.append(cy)
        angle.append(np.arctan2(rows[cap_mask].mean() - cy, cols[cap_mask].mean() - cx) if cap_mask.any() else np.nan)
    return {key: np.array(value, np.float64) for key, value in (("area", area), ("x", x), ("y", y), ("angle", angle))}


def _turn_degrees(angle: np.ndarray) -> float:
    """Total signed turn, positive = clockwise on screen (image y points down)."""
    steps = np.diff(angle)
    return float(np.degrees(np.sum((steps + np.pi) % (2 * np.pi) - np.pi)))


def _reversals(values: np.ndarray, tolerance: float) -> int:
    """How often a sequence changes direction by more than `tolerance`."""
    count, direction, extreme = 0, 0, values[0]
    for value in values[1:]:
        if direction >= 0 and value < extreme - tolerance or direction <= 0 and value > extreme + tolerance:
            count += direction != 0
            direction = 1 if value > extreme else -1
            extreme = value
        elif direction > 0 and value > extreme or direction < 0 and value < extreme:
            extreme = value
    return count


def test_the_motion_is_visible_in_decoded_frames(motion_set: Path) -> None:
    checked = Counter()
    for row in read_csv(motion_set / "annotations.csv"):
        frames = decode(motion_set / row["path"])
        _check_motion(row["label"], _track(frames), min(frames.shape[1:3]), row["path"])
        checked[row["label"]] += 1
    assert set(checked) == set(MOTIONS)


def _check_motion(label: str, track: dict[str, np.ndarray], short: int, where: str) -> None:
    shown = track["area"] > 0.05 * track["area"].max()
    if label == "blinking":
        assert 0 < shown.sum() < len(shown) and np.count_nonzero(np.diff(shown.astype(int))) >= 2, (where, shown)
        return
    assert shown.all(), where
    dx, dy = track["x"][-1] - track["x"][0], track["y"][-1] - track["y"][0]
    area_ratio = track["area"][-1] / track["area"][0]
    turn = _turn_degrees(track["angle"])
    expected = {
        "moving right": dx > 0.3 * short and abs(dy) < 0.05 * short,
        "moving left": dx < -0.3 * short and abs(dy) < 0.05 * short,
        "moving down": dy > 0.3 * short and abs(dx) < 0.05 * short,
        "moving up": dy < -0.3 * short and abs(dx) < 0.05 * short,
        "growing": area_ratio > 2.5,
        "shrinking": area_ratio < 1 / 2.5,
        "rotating clockwise": turn > 120,
        "rotating counter-clockwise": turn < -120,
        "bouncing": np.ptp(track["y"]) > 0.25 * short
        and np.ptp(track["x"]) < 0.05 * short
        and _reversals(track["y"], 0.05 * short) >= 2,
    }
    assert expected[label], (where, dict(dx=dx, dy=dy, area_ratio=area_ratio, turn=turn, y=track["y"]))


@pytest.mark.parametrize(
    ("forward", "backward", "quantity"),
    [
        ("moving right", "moving left", "centre_x"),
        ("moving down", "moving up", "centre_y"),
        ("growing", "shrinking", "diameter"),
        ("rotating clockwise", "rotating counter-clockwise", "angle"),
    ],
)
def test_single_frames_do_not_tell_opposite_motions_apart(forward: str, backward: str, quantity: str) -> None:
    """Pooled over frames, opposite classes share one distribution; only the order differs."""

    def per_frame(motion: str) -> np.ndarray:
        values = []
        for index in range(400):
            rng = np.random.default_rng([11, index])
            scene = sample_scene(rng, ClassSpec(name=motion, motion=motion), (100, 100), (16, 16))
            values.append(getattr(scene, quantity) % (2 * np.pi) if quantity == "angle" else getattr(scene, quantity))
        return np.stack(values)

    a, b = per_frame(forward), per_frame(backward)
    spread = np.std(np.concatenate([a, b]))
    quantiles = np.linspace(0.1, 0.9, 9)
    assert np.abs(np.quantile(a, quantiles) - np.quantile(b, quantiles)).max() < 0.1 * spread
    if quantity != "angle":  # while the first frames alone differ clearly
        assert abs(np.mean(a[:, 0]) - np.mean(b[:, 0])) > 0.5 * spread


def test_cli_prints_summary_and_rejects_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "raw"
    common = ["synth", "--out", str(out), "--val-per-class", "0", "--test-per-class", "0", "--workers", "1"]
    assert shard_main([*common, "--train-per-class", "1", "--size", "32", "--frames", "6", "8"]) == 0
    printed = capsys.readouterr().out
    assert "10 videos" in printed and "videos/s" in printed and "train" in printed
    assert len(read_csv(out / "annotations.csv")) == 10
    assert shard_main([*common, "--train-per-class", "1", "--size", "64", "32"]) == 2
    assert "--size" in capsys.readouterr().err
    assert shard_main([*common, "--train-per-class", "0"]) == 2
    assert "nothing to generate" in capsys.readouterr().err
