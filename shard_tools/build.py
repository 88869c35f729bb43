"""`shard_tools build-shards`: re-encode a dataset in parallel and pack it into shuffled, indexed shards.

Resumable by construction: every split is shuffled with the seed, a sample's key is its position in that
order, and a shard is finished once its `.idx` exists. A re-run keeps finished shards and re-encodes only
the positions that no finished shard covers (a killed run, a deleted or damaged shard), into the same shard
numbers; `shard_tools.resume` makes sure the finished shards came from the same settings and inputs.
"""
from __future__ import annotations

import argparse
import errno
import json
import random
import statistics
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipelines.shard_format import LABELS_COMPONENT, MULTI_LABEL_KEY, decode_info, decode_labels, read_index, sample_key
from shard_tools import formats, resume
from shard_tools import inputs as annotations
from shard_tools.encode import ENCODERS, EncodeOptions, VideoRejected, reencode
from shard_tools.errors import ToolError
from shard_tools.shards import (
    Sample, ShardWriter, atomic_write_bytes, atomic_write_json, failures_path, manifest_path, read_member,
    record_path, shard_stem, split_shards,
)

console = Console(stderr=True)


@dataclass(frozen=True)
class EncodeTask:
    position: int
    key: str
    video: annotations.VideoInput
    label: annotations.LabelId
    label_names: tuple[str, ...]  # the names of the label's class ids
    options: EncodeOptions


@dataclass(frozen=True)
class Gap:
    """Positions [start, end) to encode into shards numbered from `first_number`, at most `last_number`."""
    first_number: int
    start: int
    end: int
    last_number: int | None


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build-shards", help="re-encode videos and pack them into webdataset shards",
        description="Re-encode every video of a dataset with PyAV and pack the splits into shuffled webdataset "
                    "tar shards with DALI index files and a manifest. Bad videos are reported, never fatal.",
    )
    formats.add_arguments(parser)
    parser.add_argument("--name", required=True, help="dataset name used in shard file names, e.g. k400")
    parser.add_argument("--out", type=Path, required=True, help="output folder for shards and manifests")
    parser.add_argument("--split", action="append",
                        help="build only these splits (repeatable); default: every split in the annotations")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="vp9",
                        help="vp9 decodes with DALI on CPU and GPU; h264 and hevc need a GPU to decode in DALI "
                             "(hevc: about a third of h264's bytes at the default --crf)")
    parser.add_argument("--short-side", type=int, default=256, help="resize so the short side is this (0: keep)")
    parser.add_argument("--fps-cap", type=float, help="drop frames above this frame rate")
    parser.add_argument("--gop", type=int, default=16,
                        help="fixed closed GOP length in frames (default 16: the loader decodes about T x GOP / 2 frames per clip; see README, Encoding)")
    parser.add_argument("--crf", type=int, help="quality (default: vp9 32, h264 23, hevc 28)")
    parser.add_argument("--min-frames", type=int, default=8, help="reject videos with fewer frames")
    parser.add_argument("--max-samples", type=int, default=1000, help="samples per shard at most")
    parser.add_argument("--max-bytes", type=float, default=512e6, help="bytes per shard at most (approximate)")
    parser.add_argument("--workers", type=int, default=1, help="encoding processes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle across shards")
    parser.add_argument("--strict", action="store_true", help="exit non-zero when any video failed")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the built splits' old shards, indexes, manifests and failure lists first and "
                             "rebuild them (needed when --out holds shards of other settings or inputs)")
    parser.set_defaults(run=run)


def encode_one(task: EncodeTask) -> Sample | dict:
    """Worker: a finished `Sample`, or a failure record naming the input and the reason."""
    label_set = task.label if isinstance(task.label, tuple) else None
    window = None
    if task.video.time_start is not None and task.video.time_end is not None:
        window = (task.video.time_start, task.video.time_end)
    try:
        if label_set == ():
            raise VideoRejected("no-label", f"{task.video.origin}: no class (a multi-label sample needs at least one)")
        encoded = reencode(task.video.source, task.options, window)
    except VideoRejected as error:
        return {"position": task.position, "key": task.key, "path": task.video.path,
                "reason": error.reason, "detail": error.detail}
    except Exception as error:  # a decoder can fail in ways PyAV does not classify; report, never stop the build
        return {"position": task.position, "key": task.key, "path": task.video.path,
                "reason": "undecodable", "detail": f"{type(error).__name__}: {error}"}
    # .cls and .info of a multi-label sample hold its smallest class id (pipelines.shard_format).
    label = label_set[0] if label_set else task.label
    # The .json keys are the on-disk format: "num_frames" is the video's length, as old shards have it.
    meta = {
        "key": task.key, "label": label, "label_name": task.label_names[0], "split": task.video.split,
        "source": task.video.path, "source_id": task.video.source_id, "fps": encoded.fps,
        "duration": round(encoded.duration, 4), "num_frames": encoded.video_frames,
        "height": encoded.height, "width": encoded.width, "source_fps": encoded.source_fps,
        "source_size": list(encoded.source_size), "time_window": list(window) if window else None,
        "encode": {"codec": task.options.codec, "gop": task.options.gop, "short_side": task.options.short_side,
                   "fps_cap": task.options.fps_cap, "crf": task.options.crf},
    }
    if label_set:
        meta.update(labels=list(label_set), label_names=list(task.label_names))
    return Sample(task.key, encoded.data, label, encoded.video_frames, encoded.height, encoded.width, meta, label_set)


def plan_gaps(finished: dict[int, list[int]], num_inputs: int) -> list[Gap]:
    """The position ranges no finished shard covers, each bounded by the finished shards around it."""
    gaps, next_position, number = [], 0, 0
    for finished_number in sorted(finished) + [None]:
        if finished_number is None:
            if next_position < num_inputs:
                gaps.append(Gap(number, next_position, num_inputs, None))
            break
        positions = finished[finished_number]
        if finished_number > number and next_position < min(positions):
            gaps.append(Gap(number, next_position, min(positions), finished_number - 1))
        next_position, number = max(positions) + 1, finished_number + 1
    return gaps


def write_gaps(gaps: list[Gap], results: Iterator[Sample | dict], out: Path,
               name: str, split: str, limits: tuple[int, float], on_result) -> list[dict]:
    """Stream encoded samples into shards, rolling over at the limits; returns the new failures."""
    failures, max_samples, max_bytes = [], *limits
    for gap in gaps:
        number, writer = gap.first_number, None
        for _ in range(gap.end - gap.start):
            result = next(results)
            on_result(result)
            if isinstance(result, dict):
                failures.append(result)
                continue
            if writer is None:
                writer = ShardWriter(out / f"{shard_stem(name, split, number)}.tar")
            writer.add(result)
            may_roll = gap.last_number is None or number < gap.last_number
            if may_roll and (writer.samples >= max_samples or writer.bytes >= max_bytes):
                writer.finish()
                writer, number = None, number + 1
        if writer is not None:
            writer.finish()
    return failures


def split_statistics(out: Path, name: str, split: str, classes: list[str]) -> dict:
    """Counts and frame statistics read back from the finished shards (covers resumed shards too); a
    multi-label sample counts for each of its classes."""
    shards, counts, frames, sizes, label_counts = [], [0] * len(classes), [], Counter(), []
    for idx_path in split_shards(out, name, split, ".idx"):
        tar_path = idx_path.with_suffix(".tar")
        entries = read_index(idx_path)
        with open(tar_path, "rb") as handle:
            for components in entries.values():
                info = decode_info(read_member(handle, *components["info"]))
                labels = [info["label"]]
                if LABELS_COMPONENT in components:
                    labels = decode_labels(read_member(handle, *components[LABELS_COMPONENT]))
                    label_counts.append(len(labels))
                for label in labels:
                    counts[label] += 1
                frames.append(info["video_frames"])
                sizes[f"{info['width']}x{info['height']}"] += 1
        keys = list(entries)
        shards.append({"tar": tar_path.name, "idx": idx_path.name, "samples": len(keys),
                       "bytes": tar_path.stat().st_size, "first_key": keys[0], "last_key": keys[-1]})
    return {"shards": shards, "counts_per_class": dict(zip(classes, counts)), "frames_per_clip": _spread(frames),
            **({"labels_per_sample": _spread(label_counts)} if label_counts else {}),
            "resolutions": dict(sizes.most_common(5)), "num_samples": len(frames)}


def _spread(values: list[int]) -> dict | None:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)} if values else None


def build_split(split: str, items: list[tuple[annotations.VideoInput, annotations.LabelId]], classes: list[str],
                record: dict, args: argparse.Namespace, options: EncodeOptions, pool: Pool | None,
                progress: Progress) -> dict:
    if args.overwrite:
        removed = resume.remove_split(args.out, args.name, split)
        if removed:
            console.print(f"--overwrite: deleted {len(removed)} file(s) of {args.name}-{split} in {args.out}",
                          soft_wrap=True)
    atomic_write_json(record_path(args.out, args.name, split), record)
    order = list(range(len(items)))
    random.Random(f"{args.seed}:{split}").shuffle(order)
    tasks = [EncodeTask(position, sample_key(args.name, split, position), items[source][0], items[source][1],
                        _label_names(items[source][1], classes), options)
             for position, source in enumerate(order)]
    finished, damaged = resume.finished_shards(args.out, args.name, split, len(classes))
    for damage in damaged:
        console.print(f"[yellow]damaged shard[/] {damage}: deleted, rebuilding it", soft_wrap=True)
    gaps = plan_gaps(finished, len(tasks))
    pending = [task for gap in gaps for task in tasks[gap.start:gap.end]]
    failure_file = failures_path(args.out, args.name, split)
    redone = {task.position for task in pending}
    kept_failures = [record for record in _read_jsonl(failure_file) if record["position"] not in redone]

    task_id = progress.add_task(split, total=len(pending), failed=0, rate="-")
    started, counters = time.monotonic(), {"done": 0, "failed": 0}

    def on_result(result: Sample | dict) -> None:
        counters["done"] += 1
        counters["failed"] += isinstance(result, dict)
        rate = counters["done"] / max(time.monotonic() - started, 1e-6)
        progress.update(task_id, advance=1, failed=counters["failed"], rate=f"{rate:.1f}")

    results = pool.imap(encode_one, pending, chunksize=1) if pool else map(encode_one, pending)
    new_failures = write_gaps(gaps, iter(results), args.out, args.name, split,
                              (args.max_samples, args.max_bytes), on_result)
    failures = sorted(kept_failures + new_failures, key=lambda record: record["position"])
    atomic_write_bytes(failure_file, "".join(json.dumps(record) + "\n" for record in failures).encode())

    multi_label = any(isinstance(label, tuple) for _, label in items)
    manifest = {
        "name": args.name, "split": split, "classes": classes, "num_classes": len(classes),
        **({MULTI_LABEL_KEY: True} if multi_label else {}),
        "num_inputs": len(tasks), "num_failed": len(failures), "seed": args.seed,
        "encode": options.describe(), "skipped_finished_shards": len(finished), "encoded_now": len(pending),
        **split_statistics(args.out, args.name, split, classes), "failures": failures,
    }
    if manifest["num_samples"] + manifest["num_failed"] != manifest["num_inputs"]:
        raise ToolError(
            f"{args.out}: {args.name}-{split} has {manifest['num_samples']} written + {manifest['num_failed']} "
            f"failed != {manifest['num_inputs']} inputs; its shards do not all come from this build: re-run "
            "with --overwrite"
        )
    atomic_write_json(manifest_path(args.out, args.name, split), manifest)
    return manifest


def _label_names(label: annotations.LabelId, classes: list[str]) -> tuple[str, ...]:
    return tuple(classes[index] for index in (label if isinstance(label, tuple) else (label,)))


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(args: argparse.Namespace) -> int:
    try:
        inputs, classes, derived = formats.load_dataset(args)
    except OSError as error:
        raise ToolError(f"cannot read {error.filename or ' '.join(args.annotations or [])}: "
                        f"{error.strerror or error}") from None
    present = sorted({item.split for item in inputs})
    wanted = [s for group in args.split for s in group.split(",")] if args.split else present
    missing = [split for split in wanted if split not in present]
    if missing:
        raise annotations.AnnotationError(f"no inputs for split(s) {missing}; the annotations have {present}")
    # Labels are checked for the requested splits only: a split may use its own label set (zero-shot).
    inputs = [item for item in inputs if item.split in wanted]
    label_ids = annotations.label_ids(inputs, classes)
    by_split: dict[str, list[tuple[annotations.VideoInput, annotations.LabelId]]] = {split: [] for split in wanted}
    for item, label in zip(inputs, label_ids):
        by_split[item.split].append((item, label))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        with resume.build_lock(args.out):
            return build(args, by_split, classes, derived)
    except OSError as error:
        raise ToolError(write_error(error, args.out)) from None


def write_error(error: OSError, out: Path) -> str:
    """One line for a failed write under --out: which file, why, and what to do."""
    where = error.filename or out
    if error.errno == errno.ENOSPC:
        writing = f" (writing {error.filename})" if error.filename else ""
        return (f"no space left on the disk of {out}{writing}: free space or choose another --out, then re-run the "
                "same command (finished shards are kept)")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: {error.strerror}; choose a writable --out or fix its permissions"
    return f"cannot write {where}: {error.strerror or error}"


@contextmanager
def encoder_pool(workers: int) -> Iterator[Pool | None]:
    """`workers` encoding processes (none for 1); on an error they are stopped, not left to finish the queue."""
    if workers <= 1:
        yield None
        return
    pool = get_context("spawn").Pool(workers)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


def build(args: argparse.Namespace, by_split: dict[str, list[tuple[annotations.VideoInput, annotations.LabelId]]],
          classes: list[str], derived: bool) -> int:
    """Build every split of `by_split` into --out (locked by the caller); refuses before writing anything when
    --out holds shards of another build."""
    parameters = {key: getattr(args, key) for key in resume.RECORDED_FLAGS}
    records = {split: resume.build_record(args.name, split, parameters, classes, items)
               for split, items in by_split.items()}
    if not args.overwrite:
        for split, record in records.items():
            resume.check_resume(args.out, args.name, split, record)
    if derived:
        annotations.write_labels_csv(args.out / f"{args.name}-classes.csv", classes)
    options = EncodeOptions(codec=args.codec, short_side=args.short_side, fps_cap=args.fps_cap, gop=args.gop,
                            crf=args.crf, min_frames=args.min_frames, use_time_window=args.use_time_window)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} videos/s"), TimeRemainingColumn(),
               TextColumn("failed: {task.fields[failed]}"))
    with encoder_pool(args.workers) as pool, Progress(*columns, console=console) as progress:
        manifests = [build_split(split, items, classes, records[split], args, options, pool, progress)
                     for split, items in by_split.items()]
    print_summary(manifests, args.out)
    written = sum(m["num_samples"] for m in manifests)
    failed = sum(m["num_failed"] for m in manifests)
    return 1 if written == 0 or (args.strict and failed) else 0


def print_summary(manifests: list[dict], out: Path) -> None:
    table = Table(title=f"shards in {out}")
    for column in ("split", "inputs", "written", "failed", "shards", "MB", "re-encoded"):
        table.add_column(column, justify="right")
    for m in manifests:
        table.add_row(m["split"], str(m["num_inputs"]), str(m["num_samples"]), str(m["num_failed"]),
                      str(len(m["shards"])), f"{sum(s['bytes'] for s in m['shards']) / 1e6:.1f}",
                      str(m["encoded_now"]))
    Console().print(table)
    for m in manifests:
        for failure in m["failures"][:20]:
            console.print(f"[yellow]failed[/] {failure['path']}: {failure['reason']} ({failure['detail']})")
        if len(m["failures"]) > 20:
            console.print(f"[yellow]... {len(m['failures']) - 20} more in {m['name']}-{m['split']}.failures.jsonl")
