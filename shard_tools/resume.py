"""Re-running build-shards into the same --out: resume only what provably belongs to this build.

- The build record (`<name>-<split>.build.json`, written when the split's build starts) holds the settings
  that shape the shards and a fingerprint of the split's inputs and class list. A re-run resumes only when
  they match; otherwise it refuses, naming what differs (`--overwrite` deletes the split and rebuilds it).
- A finished shard (tar and index) that is damaged (index unreadable or without its tar, tar shorter than its
  index, an `.info` that is not a sample of this split) is named, deleted and rebuilt like an unfinished one.
- One build at a time per --out: a lock file held with `flock` for the build's duration; the kernel drops
  it when the process ends, however it ends.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

from pipelines.shard_format import COMPONENTS, FormatError, decode_info, key_position, read_index
from shard_tools.errors import ToolError
from shard_tools.inputs import LabelId, VideoInput
from shard_tools.shards import (
    failures_path, lock_path, manifest_path, read_member, record_path, shard_number, split_shards,
)

RECORD_VERSION = 1
# Build settings that change the bytes or the layout of a split's shards, with the flag that sets each.
RECORDED_FLAGS = {
    "seed": "--seed", "codec": "--codec", "short_side": "--short-side", "fps_cap": "--fps-cap", "gop": "--gop",
    "crf": "--crf", "min_frames": "--min-frames", "use_time_window": "--use-time-window",
    "max_samples": "--max-samples", "max_bytes": "--max-bytes",
}
# Input fingerprints: what each one covers, as the refusal names it.
INPUT_ASPECTS = {
    "sources_sha256": "the video paths or their order (other annotations, --root or --path-template), or the "
                      "frame folders' --image-tmpl, --index-bias or --frame-fps",
    "labels_sha256": "the videos' class ids (other labels in the annotations, or another --labels)",
    "time_windows_sha256": "the time windows",
}


def _sha256(rows: Iterable[object]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row).encode() + b"\n")
    return digest.hexdigest()


def _source_row(video: VideoInput) -> list:
    """What identifies an input's video: its path and id, and all of a tar member or frame folder source (a
    file's row is as in earlier records)."""
    return [video.path, video.source_id] + ([] if isinstance(video.source, str) else [asdict(video.source)])


def build_record(name: str, split: str, parameters: dict, classes: list[str],
                 items: list[tuple[VideoInput, LabelId]]) -> dict:
    """The record of one split's build: its settings and fingerprints of its ordered inputs and class list."""
    return {
        "record": RECORD_VERSION, "name": name, "split": split, "parameters": parameters,
        "classes": {"count": len(classes), "sha256": _sha256(classes)},
        "inputs": {
            "count": len(items),
            "sources_sha256": _sha256(_source_row(video) for video, _ in items),
            "labels_sha256": _sha256(label for _, label in items),
            "time_windows_sha256": _sha256([video.time_start, video.time_end] for video, _ in items),
        },
    }


def _shown(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def differences(old: dict, new: dict) -> list[str]:
    """What differs between an earlier build record and this build's, one phrase each."""
    found = [f"{flag} was {_shown(old.get('parameters', {}).get(key))}, now {_shown(new['parameters'][key])}"
             for key, flag in RECORDED_FLAGS.items() if old.get("parameters", {}).get(key) != new["parameters"][key]]
    old_classes, new_classes = old.get("classes", {}), new["classes"]
    if old_classes != new_classes:
        found.append(f"the class list was {old_classes.get('count')} classes, now {new_classes['count']}"
                     if old_classes.get("count") != new_classes["count"]
                     else f"the class list differs ({new_classes['count']} classes, other names or order)")
    old_inputs, new_inputs = old.get("inputs", {}), new["inputs"]
    if old_inputs.get("count") != new_inputs["count"]:
        found.append(f"the split had {old_inputs.get('count')} inputs, now {new_inputs['count']}")
    else:
        found += [f"{aspect} differ" for key, aspect in INPUT_ASPECTS.items() if old_inputs.get(key) != new_inputs[key]]
    if not found and old != new:
        found.append(f"the record is version {old.get('record')}, this build-shards writes {RECORD_VERSION}")
    return found


def split_files(out: Path, name: str, split: str) -> list[Path]:
    """The split's shards, indexes, manifest and failure list that exist in `out` (not its build record)."""
    listed = [manifest_path(out, name, split), failures_path(out, name, split)]
    return split_shards(out, name, split, ".tar") + split_shards(out, name, split, ".idx") + \
        [path for path in listed if path.exists()]


def check_resume(out: Path, name: str, split: str, record: dict) -> None:
    """Refuse (ToolError) to add this build to files of the split that another build, or an unknown one, wrote."""
    existing = split_files(out, name, split)
    if not existing:
        return
    path = record_path(out, name, split)
    fix = ("re-run with --overwrite to delete and rebuild the splits being built (--split picks them), or choose "
           "a new --out")
    if not path.exists():
        raise ToolError(f"{out} holds {len(existing)} file(s) of {name}-{split} (e.g. {existing[0].name}) but no "
                        f"build record {path.name} (an older build-shards), so a resume cannot tell whether they "
                        f"match this build: {fix}")
    try:
        old = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ToolError(f"{path}: unreadable build record ({error}): {fix}") from None
    found = differences(old if isinstance(old, dict) else {}, record)
    if found:
        raise ToolError(f"{path}: the {name}-{split} shards in {out} were built differently: {'; '.join(found)}. "
                        f"Resuming would mix the two builds: {fix}")


def remove_split(out: Path, name: str, split: str) -> list[Path]:
    """Delete the split's files and build record (for --overwrite); returns what was deleted."""
    removed = split_files(out, name, split) + [path for path in [record_path(out, name, split)] if path.exists()]
    for path in removed:
        path.unlink()
    return removed


def intact_positions(tar_path: Path, idx_path: Path, num_classes: int) -> list[int]:
    """The sample positions of a finished shard; FormatError saying why it is damaged otherwise (cheap checks:
    the full check is `shard_tools verify`)."""
    if not tar_path.exists():
        raise FormatError(f"{idx_path.name} has no tar {tar_path.name}")
    try:
        entries = read_index(idx_path)
        positions = [key_position(key) for key in entries]
    except (ValueError, OSError) as error:
        raise FormatError(f"{idx_path.name} is unreadable ({error})") from None
    incomplete = [key for key, components in entries.items() if set(COMPONENTS) - set(components)]
    if incomplete:
        raise FormatError(f"{idx_path.name} lists sample {incomplete[0]} without all of {list(COMPONENTS)}")
    end = max(offset + size for components in entries.values() for offset, size in components.values())
    size = tar_path.stat().st_size
    if size < end:
        raise FormatError(f"{tar_path.name} is {size} bytes but its index reaches byte {end} (truncated)")
    with open(tar_path, "rb") as handle:
        for key, components in entries.items():
            try:
                info = decode_info(read_member(handle, *components["info"]))
            except FormatError as error:
                raise FormatError(f"{tar_path.name}: sample {key} has a damaged .info ({error})") from None
            if not 0 <= info["label"] < num_classes or min(info.values()) < 0 or info["video_frames"] == 0:
                raise FormatError(f"{tar_path.name}: sample {key} has a damaged .info ({info})")
    return positions


def finished_shards(out: Path, name: str, split: str, num_classes: int) -> tuple[dict[int, list[int]], list[str]]:
    """Shard number -> sample positions of every intact finished shard, and why each damaged one was deleted."""
    finished, damaged = {}, []
    for idx_path in split_shards(out, name, split, ".idx"):
        tar_path = idx_path.with_suffix(".tar")
        try:
            finished[shard_number(idx_path)] = intact_positions(tar_path, idx_path, num_classes)
        except FormatError as damage:
            damaged.append(str(damage))
            for path in (idx_path, tar_path):
                path.unlink(missing_ok=True)
    return finished, damaged


@contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold `out`'s lock file for the block; another build into `out` meanwhile is refused at once."""
    path = lock_path(out)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ToolError(f"{out} is being built by another build-shards ({holder}, holding {path}): wait for "
                            "it to finish or use another --out") from None
        handle.truncate(0)
        handle.write(f"build-shards pid {os.getpid()}\n")
        handle.flush()
        yield
