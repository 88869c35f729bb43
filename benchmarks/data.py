"""The benchmark data: synthetic source videos and the shards built from them, cached under the data folder.

A folder is complete once the file shard_tools writes last exists (`annotations.csv` for `synth`, the
manifest for `build-shards`), so an interrupted run resumes and a finished one is reused as is.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines import open_shards
from shard_tools.cli import main as shard_main
from pipelines.shard_format import read_index

from benchmarks.settings import Settings, shown_path

SHARD_NAME = "bench"
SYNTH_CLASSES = 10  # shard_tools synth's motion classes
BUILD_TIME_FILE = "build-time.json"


class BenchmarkError(RuntimeError):
    """A section cannot run; the message says why and what to change."""


@dataclass(frozen=True)
class SourceSet:
    """Raw videos with a shard_tools `csv` annotation file (path,label,split) and `labels.csv`."""

    root: Path
    annotations: Path
    labels: Path


@dataclass(frozen=True)
class ShardBuild:
    folder: Path
    seconds: float | None  # wall time of the build that made the folder (None: unknown)
    workers: int
    cached: bool


def synthesize(settings: Settings, per_class: int, frames: tuple[int, int]) -> tuple[SourceSet, float | None]:
    """`per_class` synthetic videos per class (SYNTH_CLASSES) of `frames` (min, max) frames at the settings' sizes,
    drawn now or found in the cache, and the seconds drawing took (None when cached)."""
    (low, high), (first, last) = settings.video_size, frames
    name = f"synth-seed{settings.run.seed}-{per_class}x{SYNTH_CLASSES}-px{low}-{high}-f{first}-{last}"
    root = settings.data_dir / name
    sources = SourceSet(root, root / "annotations.csv", root / "labels.csv")
    if sources.annotations.exists():
        return sources, None
    started = time.perf_counter()
    status = shard_main(["synth", "--out", str(root), "--seed", str(settings.run.seed),
                         "--train-per-class", str(per_class), "--val-per-class", "0",
                         "--test-per-class", "0", "--size", *map(str, settings.video_size),
                         "--frames", *map(str, frames), "--workers", str(settings.workers)])
    if status != 0 or not sources.annotations.exists():
        raise BenchmarkError(f"shard_tools synth failed (status {status}) writing {root}; see its message above")
    return sources, time.perf_counter() - started


def default_sources(settings: Settings) -> tuple[SourceSet, float | None]:
    """The default set's source videos (`videos_per_class` per class, `video_frames` long), and the seconds
    drawing took."""
    return synthesize(settings, settings.videos_per_class, settings.video_frames)


def build_shards(sources: SourceSet, out: Path, *, codec: str, gop: int, short_side: int, workers: int,
                 max_samples: int, min_frames: int, fps_cap: float | None = None) -> ShardBuild:
    """Shards of `sources` in `out` (built now unless its manifest exists), with the build's wall time.

    The time is kept next to the shards (`build-time.json`), so cached folders still report it.
    """
    manifest, timing = out / f"{SHARD_NAME}-train.manifest.json", out / BUILD_TIME_FILE
    if manifest.exists():
        recorded = json.loads(timing.read_text()) if timing.exists() else {}
        return ShardBuild(out, recorded.get("seconds"), recorded.get("workers", workers), cached=True)
    started = time.perf_counter()
    status = shard_main(["build-shards", "--format", "csv", "--annotations", str(sources.annotations),
                         "--root", str(sources.root), "--labels", str(sources.labels), "--name", SHARD_NAME,
                         "--out", str(out), "--split", "train", "--codec", codec, "--gop", str(gop),
                         "--short-side", str(short_side), "--workers", str(workers),
                         "--max-samples", str(max_samples), "--min-frames", str(min_frames), "--strict",
                         *(["--fps-cap", str(fps_cap)] if fps_cap else [])])
    if status != 0 or not manifest.exists():
        raise BenchmarkError(f"shard_tools build-shards failed (status {status}) for {out} "
                             f"({codec}, GOP {gop}, short side {short_side}); see its message above")
    seconds = time.perf_counter() - started
    timing.write_text(json.dumps({"seconds": seconds, "workers": workers}))
    return ShardBuild(out, seconds, workers, cached=False)


def default_shards(settings: Settings) -> tuple[Path, dict]:
    """The shard folder the loader/step/e2e sections read, and how it was obtained."""
    if settings.shards is not None:
        return Path(settings.shards), {"source": "given", "path": shown_path(settings.shards)}
    sources, synth_seconds = default_sources(settings)
    fps = f"-fps{settings.shard_fps_cap:g}" if settings.shard_fps_cap else ""
    folder = sources.root / (f"shards-{settings.shard_codec}-gop{settings.shard_gop}-"
                             f"side{settings.shard_short_side}{fps}-per{settings.shard_samples}")
    build = build_shards(sources, folder, codec=settings.shard_codec, gop=settings.shard_gop,
                         short_side=settings.shard_short_side, workers=settings.workers,
                         max_samples=settings.shard_samples, min_frames=settings.run.data.num_frames,
                         fps_cap=settings.shard_fps_cap)
    return folder, {"source": "synthetic default set", "path": shown_path(folder), "videos": settings.videos_per_class * SYNTH_CLASSES,
                    "synth_seconds": synth_seconds, "build_seconds": build.seconds,
                    "cached": synth_seconds is None and build.cached}


def repeated_manifest(shards, clips: int, folder: Path) -> tuple[Path | str, int]:
    """A manifest in `folder` that lists the shards' tars often enough to hold `clips` samples, and that count.

    Every read of a listed sample decodes it anew, so a small set gives a long epoch without more encoding.
    """
    shard_set = open_shards(shards)
    repeats = math.ceil(clips / shard_set.num_samples)
    if repeats == 1:
        return shards, 1
    manifest = {"name": SHARD_NAME, "split": "train", "classes": list(shard_set.classes or []),
                "num_samples": shard_set.num_samples * repeats, "encode": {"codec": shard_set.codec},
                "shards": [{"tar": tar, "idx": index, "samples": count}
                           for _ in range(repeats)
                           for tar, index, count in zip(shard_set.tars, shard_set.indexes, shard_set.samples_per_tar)]}
    if not manifest["classes"]:
        raise BenchmarkError(f"{shards} has no manifest with class names; build the shards with "
                             "shard_tools build-shards")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{SHARD_NAME}-x{repeats}.manifest.json"
    path.write_text(json.dumps(manifest))
    return path, repeats


def source_subset(sources: SourceSet, count: int, folder: Path) -> SourceSet:
    """`count` videos spread evenly over `sources` (every class appears when count allows), as a new CSV."""
    with open(sources.annotations, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if count > len(rows):
        raise BenchmarkError(f"{sources.annotations} lists {len(rows)} videos, fewer than the {count} asked for; "
                             "lower --codec-videos / --build-videos or raise --videos-per-class")
    chosen = [rows[i * len(rows) // count] for i in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    annotations = folder / f"subset-{count}.csv"
    with open(annotations, "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label", "split")] + [(row["path"], row["label"], "train")
                                                                     for row in chosen])
    return SourceSet(sources.root, annotations, sources.labels)


def video_bytes(folder: Path) -> tuple[int, int, int]:
    """(samples, total .mp4 bytes, total tar bytes) of a built shard folder, from its manifest and indexes."""
    manifest = json.loads((folder / f"{SHARD_NAME}-train.manifest.json").read_text())
    samples = mp4 = tar = 0
    for shard in manifest["shards"]:
        entries = read_index(folder / shard["idx"])
        samples += len(entries)
        mp4 += sum(components["mp4"][1] for components in entries.values())
        tar += shard["bytes"]
    return samples, mp4, tar
