"""The shard format, in one place for the tools that write shards and the loaders that read them.

A sample is the tar members `<key>.<component>` for COMPONENTS; its key has no dot and ends in its
9-digit position in the split's shuffled order. `.info` is little-endian int32 [label, video_frames,
height, width] (DALI reads it without Python), and video_frames is exactly what a decoder returns. Every
tar has a DALI webdataset index (`.idx`, "v1.2": a header `v1.2 <samples>`, then per sample the fields
`component offset size member` of each component). The `.json` holds, under DIGEST_KEY, the SHA-256 of
every other component as written (shards built before that have none).

Multi-label samples (Charades: several actions per video) also have a LABELS_COMPONENT member: their
label set, little-endian int32 class ids, ascending, at least one; `.cls` and `.info` then hold the
smallest id, so a single-label reader still reads a valid sample. A split whose samples carry label
sets says so in its manifest (MULTI_LABEL_KEY: true); single-label shards have neither.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

COMPONENTS = ("mp4", "cls", "info", "json")
# What the loaders read of a sample: the video and its .info record.
LOADER_COMPONENTS = ("mp4", "info")
INFO_FIELDS = ("label", "video_frames", "height", "width")
LABELS_COMPONENT = "labels"
MULTI_LABEL_KEY = "multi_label"
# The components whose SHA-256 the sample's .json stores under DIGEST_KEY ({component: hex digest}); a
# multi-label sample's LABELS_COMPONENT too.
DIGESTED_COMPONENTS = ("mp4", "cls", "info")
DIGEST_KEY = "sha256"
INDEX_VERSION = "v1.2"
KEY_DIGITS = 9
# Codecs DALI decodes on the CPU; the others need NVDEC (device="mixed").
DALI_CPU_CODECS = frozenset({"vp9", "vp8", "mjpeg"})
GPU_ONLY_CODECS = frozenset({"h264", "avc", "hevc", "h265", "av1", "mpeg4"})


class FormatError(ValueError):
    """A file that does not follow the shard format; the message names the file."""


def encode_info(label: int, video_frames: int, height: int, width: int) -> bytes:
    return np.array([label, video_frames, height, width], dtype="<i4").tobytes()


def decode_info(raw: bytes) -> dict[str, int]:
    values = np.frombuffer(raw, dtype="<i4")
    if values.size != len(INFO_FIELDS):
        raise FormatError(f".info holds {values.size} int32 values, expected {len(INFO_FIELDS)}")
    return dict(zip(INFO_FIELDS, (int(v) for v in values)))


def encode_labels(label_set: Sequence[int]) -> bytes:
    """A multi-label sample's LABELS_COMPONENT member."""
    ids = sorted(set(int(label) for label in label_set))
    if not ids or ids[0] < 0:
        raise ValueError(f"a label set needs at least one class id >= 0, got {list(label_set)}")
    return np.array(ids, dtype="<i4").tobytes()


def decode_labels(raw: bytes) -> tuple[int, ...]:
    values = np.frombuffer(raw, dtype="<i4")
    if values.size == 0 or values.min() < 0 or np.any(np.diff(values) <= 0):
        raise FormatError(f".{LABELS_COMPONENT} holds {values.tolist()}, expected ascending class ids >= 0")
    return tuple(int(v) for v in values)


def component_digests(members: Mapping[str, bytes]) -> dict[str, str]:
    """The .json's DIGEST_KEY entry for a sample's members: hex SHA-256 of each DIGESTED_COMPONENTS member
    (and of LABELS_COMPONENT when the sample has one)."""
    digested = DIGESTED_COMPONENTS + ((LABELS_COMPONENT,) if LABELS_COMPONENT in members else ())
    return {component: hashlib.sha256(members[component]).hexdigest() for component in digested}


def sample_key(name: str, split: str, position: int) -> str:
    """Key from the sample's position in the shuffled split: unique, dot-free, and sorts in build order."""
    prefix = re.sub(r"[^A-Za-z0-9]", "", f"{name}{split}")
    return f"{prefix}{position:0{KEY_DIGITS}d}"


def key_position(key: str) -> int:
    return int(key[-KEY_DIGITS:])


def member_key(member: str) -> tuple[str, str]:
    """(key, component) of a tar member name: the key ends at the first dot of the file name."""
    folder, _, name = member.rpartition("/")
    key, _, component = name.partition(".")
    return (f"{folder}/{key}" if folder else key), component


def read_index(index: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """Sample key -> {component: (offset, size)} of one DALI index, in index order.

    Raises FormatError for a file that is not a v1.2 index, a sample count that differs from the
    header, or a key that appears twice.
    """
    lines = index.read_text().splitlines()
    header = lines[0].split() if lines else []
    if len(header) != 2 or header[0] != INDEX_VERSION or not header[1].isdigit():
        raise FormatError(f"{index} is not a DALI {INDEX_VERSION} index (header {' '.join(header)!r}); rebuild it")
    body = [line.split() for line in lines[1:] if line.strip()]
    if len(body) != int(header[1]) or not body:
        raise FormatError(f"{index} announces {header[1]} samples but lists {len(body)}; rebuild it")
    samples: dict[str, dict[str, tuple[int, int]]] = {}
    for line, fields in enumerate(body, start=2):
        if len(fields) % 4:
            raise FormatError(f"{index}: line {line} is not 'component offset size member' fields; rebuild it")
        components = {}
        for start in range(0, len(fields) - 3, 4):
            key, _ = member_key(fields[start + 3])
            components[fields[start]] = (int(fields[start + 1]), int(fields[start + 2]))
        if key in samples:
            raise FormatError(f"{index}: sample key {key!r} appears twice; keys must be unique, re-shard with "
                              "shard_tools build-shards")
        samples[key] = components
    return samples
