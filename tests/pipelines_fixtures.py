"""Shards of "ramp" videos for the pipeline tests, built once per test session with shard_tools.

Frame k of every video is R = x gradient (0 -> 255 left to right), G = y gradient (top to bottom),
B = 20 + 10 k. The blue level tells which frame a loader returned, the red/green gradients tell
which window it cropped and whether it flipped. Each video's label is its index modulo 3 and its
frame count comes from FRAME_COUNTS, so tests can recompute every expectation.
"""
from __future__ import annotations

import csv
import struct
import tarfile
from pathlib import Path

import av
import numpy as np

from shard_tools.cli import main as shard_main

CLASSES = ("ramp_a", "ramp_b", "ramp_c")
# (frames, height, width): short videos (fewer frames than a clip), landscape, portrait and square ones.
VAL_VIDEOS = ((5, 48, 64), (23, 64, 48), (12, 48, 48), (3, 48, 64), (17, 48, 64), (9, 64, 48), (20, 48, 64))
TRAIN_VIDEOS = VAL_VIDEOS + ((14, 48, 64), (8, 64, 48), (21, 48, 48), (6, 48, 64), (11, 48, 64))
BLUE_START, BLUE_STEP = 20, 10
_CACHE: dict[str, Path] = {}


def ramp_frame(k: int, height: int, width: int) -> np.ndarray:
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.stack([x, y, np.full((height, width), BLUE_START + BLUE_STEP * k)], -1).round().astype(np.uint8)


def frame_number(blue_level: np.ndarray) -> np.ndarray:
    """Frame index from the mean blue level of a decoded frame."""
    return np.rint((np.asarray(blue_level, dtype=np.float64) - BLUE_START) / BLUE_STEP).astype(np.int64)


def write_ramp_video(path: Path, frames: int, height: int, width: int) -> None:
    """Near-lossless H.264 source; build-shards re-encodes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for k in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(ramp_frame(k, height, width), format="rgb24")))
        container.mux(stream.encode())


def write_raw_dataset(raw: Path) -> None:
    rows = []
    for split, videos in (("val", VAL_VIDEOS), ("train", TRAIN_VIDEOS)):
        for number, (frames, height, width) in enumerate(videos):
            relative = f"{split}/{number:03d}_{frames}.mp4"
            write_ramp_video(raw / relative, frames, height, width)
            rows.append((relative, CLASSES[number % len(CLASSES)], split))
    with open(raw / "annotations.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label", "split"), *rows])
    with open(raw / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("id", "name"), *enumerate(CLASSES)])


def ramp_shards(root: Path, codec: str = "vp9") -> Path:
    """Folder with synth-{train,val} shards (2 tars per split) and manifests; built once per codec."""
    if codec not in _CACHE:
        raw, out = root / "raw", root / f"shards_{codec}"
        if not (raw / "annotations.csv").exists():
            write_raw_dataset(raw)
        status = shard_main(["build-shards", "--format", "csv", "--annotations", str(raw / "annotations.csv"),
                             "--root", str(raw), "--labels", str(raw / "labels.csv"), "--name", "synth",
                             "--out", str(out), "--codec", codec, "--short-side", "0", "--crf", "4", "--gop", "4",
                             "--min-frames", "1", "--max-samples", "4", "--workers", "2", "--seed", "0", "--strict"])
        assert status == 0, f"build-shards failed with status {status}"
        _CACHE[codec] = out
    return _CACHE[codec]


def sample_records(shards: Path, split: str) -> dict[str, tuple[int, int, int, int]]:
    """key -> (label, video_frames, height, width) read from the shards' .info members."""
    records = {}
    for tar in sorted(shards.glob(f"synth-{split}-*.tar")):
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                if member.name.endswith(".info"):
                    key = member.name.split(".", 1)[0]
                    records[key] = struct.unpack("<4i", archive.extractfile(member).read())
    return records
