"""`shard_tools verify`: decode every sample and check the shard contract, naming each bad shard and key."""
from __future__ import annotations

import argparse
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pipelines.pyav_decode import count_frames
from pipelines.shard_format import (
    COMPONENTS, DALI_CPU_CODECS, DIGEST_KEY, GPU_ONLY_CODECS, LABELS_COMPONENT, MULTI_LABEL_KEY, FormatError,
    component_digests, decode_info, decode_labels, member_key, read_index,
)
from shard_tools.errors import ToolError
from shard_tools.shards import shard_tars

console = Console(stderr=True)


@dataclass(frozen=True)
class Problem:
    shard: str
    key: str
    detail: str


@dataclass(frozen=True)
class SplitFacts:
    """What a tar's manifest says its samples must be (nothing is known of a tar without one)."""
    num_classes: int | None = None
    multi_label: bool = False


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "verify", help="decode every sample and check components, labels, frame counts and indexes",
        description="Check shards: all components present, their SHA-256 as recorded in the .json, .cls and "
                    ".info agree (a multi-label sample's .labels holds ids of the class list, the smallest as "
                    ".cls), the decoder returns exactly .info's frame count (DALI for VP9/MJPEG, PyAV otherwise, "
                    "DALI on GPU when --device gpu), and every .idx matches its tar. Exit status 1 when anything "
                    "is wrong.",
    )
    parser.add_argument("paths", nargs="+", help="shard folders, .tar files or .manifest.json files")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="decode with DALI on this device (gpu also decodes h264)")
    parser.add_argument("--threads", type=int, default=2, help="DALI decoding threads")
    parser.set_defaults(run=run)


class DaliFrameCounter:
    """Counts decoded frames with DALI's own video decoder, one sample at a time so an error names its sample."""

    def __init__(self, device: str, threads: int):
        self.device, self.threads = ("mixed" if device == "gpu" else "cpu"), threads
        self.codecs = DALI_CPU_CODECS | (GPU_ONLY_CODECS if device == "gpu" else frozenset())
        self.pipeline = None

    def _build(self):
        from nvidia.dali import fn, pipeline_def, types

        # Synchronous execution: a decoding error must surface on the run() of the sample that caused it.
        @pipeline_def(batch_size=1, num_threads=self.threads, device_id=0 if self.device == "mixed" else None,
                      prefetch_queue_depth=1, exec_async=False, exec_pipelined=False)
        def decode_all_frames():
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
            return fn.decoders.video(encoded, device=self.device)

        pipeline = decode_all_frames()
        pipeline.build()
        return pipeline

    def __call__(self, video: bytes) -> int:
        if self.pipeline is None:
            self.pipeline = self._build()
        self.pipeline.feed_input("encoded", [np.frombuffer(video, dtype=np.uint8)])
        try:
            (frames,) = self.pipeline.run()
        except RuntimeError:
            self.pipeline = None  # a failed DALI pipeline cannot run again
            raise
        return int(frames.shape()[0][0])


def _members(tar_path: Path) -> tuple[dict[str, dict[str, bytes]], dict[str, dict[str, tuple[int, int]]]]:
    samples: dict[str, dict[str, bytes]] = {}
    offsets: dict[str, dict[str, tuple[int, int]]] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive:
            if not member.isfile():
                continue
            key, extension = member_key(member.name)
            samples.setdefault(key, {})[extension] = archive.extractfile(member).read()
            offsets.setdefault(key, {})[extension] = (member.offset_data, member.size)
    return samples, offsets


def check_index(tar_path: Path, offsets: dict[str, dict[str, tuple[int, int]]]) -> list[Problem]:
    idx_path = tar_path.with_suffix(".idx")
    if not idx_path.exists():
        return [Problem(tar_path.name, "-", f"no index {idx_path.name}: rebuild with build-shards or run wds2idx")]
    try:
        indexed = read_index(idx_path)
    except (ValueError, OSError) as error:
        return [Problem(tar_path.name, "-", f"unreadable index: {error}")]
    if indexed != offsets:
        differing = sorted(set(indexed) ^ set(offsets) | {k for k in indexed if indexed[k] != offsets.get(k)})
        return [Problem(tar_path.name, key, "index entry does not match the tar") for key in differing[:20]]
    return []


def decoder_message(error: Exception) -> str:
    """The line of a DALI/FFmpeg error that says what went wrong (DALI wraps it in a traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    telling = [line for line in lines if line.startswith(("Assert", "Error", "[")) and "operator" not in line]
    return (telling or lines or [type(error).__name__])[0][:200]


def check_digests(parts: dict[str, bytes], meta: dict) -> list[str] | None:
    """Components whose bytes differ from the SHA-256 the .json recorded; None when it recorded none (older
    shards)."""
    stored = meta.get(DIGEST_KEY)
    if stored is None:
        return None
    if not isinstance(stored, dict):
        return [f".json {DIGEST_KEY!r} is not a component -> SHA-256 table"]
    computed = component_digests(parts)
    unmatched = [f".json records a SHA-256 of .{component}, which the sample does not have"
                 for component in stored if component not in computed]
    return unmatched + [
        f".{component} does not match its SHA-256 in the .json (recorded {str(stored.get(component))[:12]}..., "
        f"content {digest[:12]}...): the bytes changed after the build"
        for component, digest in computed.items() if stored.get(component) != digest]


def check_label_set(raw: bytes, label: int, num_classes: int | None) -> list[str]:
    """A multi-label sample's .labels: ascending ids of the class list, the smallest equal to .cls/.info."""
    try:
        label_set = decode_labels(raw)
    except FormatError as error:
        return [f"unreadable .{LABELS_COMPONENT}: {error}"]
    issues = []
    if num_classes is not None and label_set[-1] >= num_classes:
        issues.append(f".{LABELS_COMPONENT} {list(label_set)} has ids outside 0..{num_classes - 1}")
    if label != label_set[0]:
        issues.append(f".cls/.info say {label}, but the smallest id of .{LABELS_COMPONENT} {list(label_set)} is "
                      f"{label_set[0]}")
    return issues


def check_sample(parts: dict[str, bytes], count_with_dali, facts: SplitFacts) -> tuple[list[str], bool]:
    """Everything wrong with one sample, as sentences, and whether its .json lacks content hashes."""
    required = COMPONENTS + ((LABELS_COMPONENT,) if facts.multi_label else ())
    missing = [c for c in required if c not in parts]
    if missing:
        because = f" (the manifest says {MULTI_LABEL_KEY})" if LABELS_COMPONENT in missing else ""
        return [f"missing component(s) {missing}{because}"], False
    try:
        info = decode_info(parts["info"])
        label = int(parts["cls"].decode())
        meta = json.loads(parts["json"])
    except (ValueError, UnicodeDecodeError) as error:
        return [f"unreadable .cls/.info/.json: {error}"], False
    digest_issues = check_digests(parts, meta)
    issues = list(digest_issues or [])
    if label != info["label"]:
        issues.append(f".cls says {label} but .info says {info['label']}")
    if facts.num_classes is not None and not 0 <= label < facts.num_classes:
        issues.append(f"label {label} outside 0..{facts.num_classes - 1}")
    if LABELS_COMPONENT in parts:
        issues += check_label_set(parts[LABELS_COMPONENT], label, facts.num_classes)
    if meta.get("num_frames") != info["video_frames"]:  # the .json keeps its on-disk key "num_frames"
        issues.append(f".json num_frames {meta.get('num_frames')} != .info {info['video_frames']}")
    codec = meta.get("encode", {}).get("codec", "vp9")
    try:
        decoded = count_with_dali(parts["mp4"]) if codec in count_with_dali.codecs else count_frames(parts["mp4"])
    except Exception as error:  # any decoder failure is the finding, reported against the sample
        return issues + [f"does not decode ({codec}): {decoder_message(error)}"], digest_issues is None
    if decoded != info["video_frames"]:
        issues.append(f"decoder returns {decoded} frames, .info says {info['video_frames']}")
    return issues, digest_issues is None


def verify_tar(tar_path: Path, counter, facts: SplitFacts) -> tuple[int, int, list[Problem]]:
    """(samples, samples without content hashes, problems) of one tar."""
    try:
        samples, offsets = _members(tar_path)
    except (tarfile.TarError, OSError) as error:
        return 0, 0, [Problem(tar_path.name, "-", f"unreadable tar: {error}")]
    problems, unhashed = check_index(tar_path, offsets), 0
    for key, parts in samples.items():
        issues, lacks_hashes = check_sample(parts, counter, facts)
        problems += [Problem(tar_path.name, key, issue) for issue in issues]
        unhashed += lacks_hashes
    return len(samples), unhashed, problems


def split_facts(tar_path: Path) -> SplitFacts:
    stem = tar_path.stem.rsplit("-", 1)[0]
    path = tar_path.with_name(f"{stem}.manifest.json")
    if not path.exists():
        return SplitFacts()
    manifest = json.loads(path.read_text())
    return SplitFacts(manifest["num_classes"], bool(manifest.get(MULTI_LABEL_KEY)))


def run(args: argparse.Namespace) -> int:
    try:
        tars = shard_tars(args.paths)
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as error:
        raise ToolError(f"verify: {error}") from None
    if not tars:
        raise ToolError(f"verify: no shards found in {args.paths}")
    counter = DaliFrameCounter(args.device, args.threads)
    problems, total, unhashed = [], 0, {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("verify", total=len(tars))
        for tar_path in tars:
            count, lacking, found = verify_tar(tar_path, counter, split_facts(tar_path))
            total, problems = total + count, problems + found
            if lacking:
                unhashed[tar_path.name] = lacking
            progress.advance(task)
    if unhashed:
        console.print(f"note: {sum(unhashed.values())} sample(s) in {len(unhashed)} shard(s) (e.g. {next(iter(unhashed))}) "
                      "have no content hashes (built before build-shards recorded them): only their decode checks "
                      "ran; rebuild them to add hashes", soft_wrap=True)
    if problems:
        table = Table(title=f"{len(problems)} problem(s) in {len(tars)} shard(s)")
        for column in ("shard", "key", "problem"):
            table.add_column(column)
        for problem in problems:
            table.add_row(problem.shard, problem.key, problem.detail)
        Console().print(table)
        console.print("[red]verify failed[/]: rebuild the named shards (delete them and re-run build-shards)")
        return 1
    Console().print(f"verified {total} samples in {len(tars)} shard(s): all components present, "
                    f"{'content hashes match, ' if len(unhashed) < len(tars) else ''}labels agree, "
                    "frame counts exact, indexes match")
    return 0
