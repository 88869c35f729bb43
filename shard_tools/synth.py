"""`shard_tools synth`: generate the synthetic action dataset (raw H.264 videos + annotation CSVs).

Each clip shows one outlined shape on a textured background; the class is its motion, which only
the temporal order of frames reveals. Every video is drawn from its own seed derived from the run
seed, its split, class and index, so the output does not depend on the number of workers.
"""
from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shard_tools.synth_encode import encode_h264
from shard_tools.synth_render import render_background, render_frames
from shard_tools.synth_scene import ClassSpec, compositional_classes, motion_classes, sample_scene

SPLITS = ("train", "val", "test", "zeroshot")
LABEL_MODES = ("motion", "compositional")


@dataclass(frozen=True)
class VideoJob:
    """One video to draw: where it goes, what it shows and the seed that fixes everything else."""

    path: str  # relative to the output folder
    split: str
    spec: ClassSpec
    seed: tuple[int, ...]
    size: tuple[int, int]
    frames: tuple[int, int]


@dataclass
class SynthSummary:
    """What `synthesize` wrote and how long it took."""

    out_dir: Path
    labels: str
    classes: list[str]
    videos_per_split: dict[str, int]
    classes_per_split: dict[str, int]
    frames: int
    seconds: float
    workers: int
    files: list[Path]  # the CSV tables

    @property
    def videos(self) -> int:
        return sum(self.videos_per_split.values())

    @property
    def videos_per_second(self) -> float:
        return self.videos / self.seconds if self.seconds > 0 else float("inf")


def synthesize(
    out_dir: Path,
    *,
    seed: int = 0,
    train_per_class: int = 64,
    val_per_class: int = 16,
    test_per_class: int = 16,
    zeroshot_per_class: int | None = None,
    size: Sequence[int] = (112, 160),
    frames: Sequence[int] = (24, 64),
    workers: int = 1,
    labels: str = "motion",
    on_progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write the videos, `annotations.csv` and the label files under `out_dir`.

    `size` is the short side in pixels and `frames` the clip length, each one value or a
    (min, max) range. In compositional mode train/val/test use the seen colour x shape x motion
    combinations and the `zeroshot` split (`zeroshot_per_class`, default `test_per_class`) uses the
    held-out ones. `on_progress(done, total)` is called after each finished video. With
    `workers` > 1 the videos are drawn in spawned processes, so a script calling this needs the
    usual `if __name__ == "__main__":` guard.
    """
    size_range, frame_range = _size_range(size), _range("frames", frames, 4)
    counts = {"train": train_per_class, "val": val_per_class, "test": test_per_class}
    if labels == "compositional":
        counts["zeroshot"] = test_per_class if zeroshot_per_class is None else zeroshot_per_class
    for split, count in counts.items():
        if count < 0:
            raise ValueError(f"--{split}-per-class must be >= 0, got {count}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    seen, held_out = _classes(labels)
    jobs = _plan(seen, held_out, counts, seed, size_range, frame_range)
    if not jobs:
        raise ValueError("nothing to generate: every --*-per-class count is 0")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frame_counts = _run_jobs(out_dir, jobs, workers, on_progress)
    files = _write_tables(out_dir, jobs, seen, held_out)
    return SynthSummary(
        out_dir=out_dir,
        labels=labels,
        classes=sorted(spec.name for spec in seen + held_out),
        videos_per_split={s: sum(job.split == s for job in jobs) for s in SPLITS if s in counts},
        classes_per_split={s: len({job.spec.name for job in jobs if job.split == s}) for s in SPLITS if s in counts},
        frames=sum(frame_counts),
        seconds=time.perf_counter() - started,
        workers=workers,
        files=files,
    )


def _range(option: str, values: Sequence[int], minimum: int) -> tuple[int, int]:
    if len(values) not in (1, 2):
        raise ValueError(f"--{option} takes one value or a min and a max, got {list(values)}")
    low, high = int(values[0]), int(values[-1])
    if low < minimum or high < low:
        raise ValueError(f"--{option} needs {minimum} <= min <= max, got {list(values)}")
    return low, high


def _size_range(values: Sequence[int]) -> tuple[int, int]:
    low, high = _range("size", values, 16)
    if low == high and low % 2:
        raise ValueError(f"--size {low} is odd: H.264 yuv420p frames need even sizes, give an even size or a range")
    return low, high


def _classes(labels: str) -> tuple[list[ClassSpec], list[ClassSpec]]:
    if labels == "motion":
        return motion_classes(), []
    if labels == "compositional":
        return compositional_classes()
    raise ValueError(f"--labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}")


def _plan(
    seen: list[ClassSpec],
    held_out: list[ClassSpec],
    counts: dict[str, int],
    seed: int,
    size: tuple[int, int],
    frames: tuple[int, int],
) -> list[VideoJob]:
    jobs = []
    for split, count in counts.items():
        for spec in held_out if split == "zeroshot" else seen:
            folder = spec.name.replace(" ", "_")
            # crc32 of the class name keeps each video's seed independent of class order and counts.
            class_key = zlib.crc32(spec.name.encode())
            for index in range(count):
                jobs.append(
                    VideoJob(
                        path=f"{split}/{folder}/{index:05d}.mp4",
                        split=split,
                        spec=spec,
                        seed=(seed, SPLITS.index(split), class_key, index),
                        size=size,
                        frames=frames,
                    )
                )
    return jobs


def _run_jobs(
    out_dir: Path, jobs: list[VideoJob], workers: int, on_progress: Callable[[int, int], None] | None
) -> list[int]:
    make = partial(make_video, out_dir)
    if workers == 1:
        return [_report(make(job), done, len(jobs), on_progress) for done, job in enumerate(jobs, 1)]
    # spawn, not fork: the parent may hold threads (progress display) that a fork would copy mid-state.
    # A process pool executor (unlike multiprocessing.Pool) fails fast when a worker dies.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        finished = pool.map(make, jobs, chunksize=4)
        return [_report(frames, done, len(jobs), on_progress) for done, frames in enumerate(finished, 1)]


def _report(frames: int, done: int, total: int, on_progress: Callable[[int, int], None] | None) -> int:
    if on_progress:
        on_progress(done, total)
    return frames


def make_video(out_dir: Path, job: VideoJob) -> int:
    """Draw and encode one video; returns its frame count."""
    rng = np.random.default_rng(job.seed)
    scene = sample_scene(rng, job.spec, job.size, job.frames)
    video = render_frames(scene, render_background(rng, scene.height, scene.width), rng)
    path = out_dir / job.path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(path.name + ".part")
    encode_h264(video, scene.fps, partial_path)
    os.replace(partial_path, path)
    return scene.video_frames


def _write_tables(out_dir: Path, jobs: list[VideoJob], seen: list[ClassSpec], held_out: list[ClassSpec]) -> list[Path]:
    tables = {"annotations.csv": [("path", "label", "split")] + [(j.path, j.spec.name, j.split) for j in jobs]}
    tables["labels.csv"] = _label_rows(sorted(spec.name for spec in seen + held_out))
    if held_out:
        tables["labels-seen.csv"] = _label_rows([spec.name for spec in seen])
        tables["labels-zeroshot.csv"] = _label_rows([spec.name for spec in held_out])
    written = []
    for name, rows in tables.items():
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        path = out_dir / name
        partial_path = path.with_name(name + ".part")
        partial_path.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(partial_path, path)
        written.append(path)
    return written


def _label_rows(names: list[str]) -> list[tuple]:
    return [("id", "name")] + list(enumerate(names))


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth",
        help="generate the synthetic action dataset (H.264 videos + annotations.csv + labels.csv)",
        description=(
            "Generate small videos of a shape on a textured background whose class (its motion) can only be "
            "told from the temporal order of frames. Writes <out>/<split>/<class>/NNNNN.mp4, annotations.csv "
            "(path,label,split) and labels.csv (id,name); in compositional mode also labels-seen.csv and "
            "labels-zeroshot.csv."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="run seed; the same seed gives the same dataset")
    for split, default in (("train", 64), ("val", 16), ("test", 16)):
        parser.add_argument(
            f"--{split}-per-class", type=int, default=default, metavar="N",
            help=f"{split} videos per class (default {default})",
        )
    parser.add_argument(
        "--zeroshot-per-class", type=int, default=None, metavar="N",
        help="compositional mode: videos per held-out class (default: --test-per-class)",
    )
    parser.add_argument(
        "--size", type=int, nargs="+", default=[112, 160], metavar="PX",
        help="short side in pixels: one value or MIN MAX (default 112 160)",
    )
    parser.add_argument(
        "--frames", type=int, nargs="+", default=[24, 64], metavar="N",
        help="frames per clip: one value or MIN MAX (default 24 64)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)"
    )
    parser.add_argument(
        "--labels", choices=LABEL_MODES, default="motion",
        help="motion: 10 motion classes; compositional: colour x shape x motion with held-out zero-shot classes",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("drawing videos", total=None)

            def show(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = synthesize(
                args.out,
                seed=args.seed,
                train_per_class=args.train_per_class,
                val_per_class=args.val_per_class,
                test_per_class=args.test_per_class,
                zeroshot_per_class=args.zeroshot_per_class,
                size=args.size,
                frames=args.frames,
                workers=args.workers,
                labels=args.labels,
                on_progress=show,
            )
    except ValueError as error:
        print(f"shard_tools synth: error: {error}", file=sys.stderr)
        return 2
    _print_summary(console, summary)
    return 0


def _print_summary(console: Console, summary: SynthSummary) -> None:
    table = Table(title=f"synth: {summary.labels} labels")
    table.add_column("split")
    table.add_column("classes", justify="right")
    table.add_column("videos", justify="right")
    for split, videos in summary.videos_per_split.items():
        table.add_row(split, str(summary.classes_per_split[split]), str(videos))
    console.print(table)
    console.print(
        f"{summary.videos} videos, {summary.frames} frames, {len(summary.classes)} classes in "
        f"{summary.seconds:.1f} s ({summary.videos_per_second:.1f} videos/s on {summary.workers} workers)\n"
        f"wrote {', '.join(path.name for path in summary.files)} in {summary.out_dir}"
    )
