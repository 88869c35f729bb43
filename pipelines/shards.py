"""Find the shards of a split, check their DALI indexes, and list the samples in reading order.

Both loaders read the samples in the order of this listing (tars in manifest order, samples in
index order), so a sample's position in it is a stable id across loaders, ranks and runs.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from braceexpand import UnbalancedBracesError, braceexpand

from pipelines.errors import ShardError
from pipelines.shard_format import (
    LABELS_COMPONENT, LOADER_COMPONENTS, MULTI_LABEL_KEY, FormatError, decode_info, decode_labels, read_index,
)

INDEX_HINT = (
    "`python -m shard_tools build-shards` writes one next to every tar; for an existing tar run "
    "DALI's `wds2idx <shard>.tar <shard>.idx`"
)
VERIFY_HINT = "run `python -m shard_tools verify <shard folder>` to list every bad sample"


@dataclass(frozen=True)
class ShardSet:
    """The shards of one split, with the sample keys in reading order.

    `members[position]` is (offset, size) of the sample's .mp4 and then of its .info inside its tar,
    from the DALI index, so a sample is read with two positioned reads and no tar scan.
    """

    tars: tuple[str, ...]
    indexes: tuple[str, ...]
    keys: tuple[str, ...]
    samples_per_tar: tuple[int, ...]
    classes: tuple[str, ...] | None
    codec: str | None
    manifest_path: str | None
    members: np.ndarray = field(compare=False, repr=False)  # int64 (num_samples, 4)
    # Multi-label splits (manifest MULTI_LABEL_KEY): bool (num_samples, num_classes), row = a sample's label set.
    label_sets: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Set by `of_classes`: stored class id (the .info label) -> the id in `classes` the loaders yield, -1 for none.
    class_map: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def num_samples(self) -> int:
        return len(self.keys)

    @property
    def num_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def first_position(self, tar_number: int) -> int:
        return sum(self.samples_per_tar[:tar_number])

    def tar_number(self, position: int) -> int:
        """Number of the tar holding the sample at reading-order `position`."""
        if not 0 <= position < self.num_samples:
            raise IndexError(f"sample position {position} is outside [0, {self.num_samples})")
        return bisect.bisect_right(self._tar_ends, position)

    @functools.cached_property
    def _tar_ends(self) -> tuple[int, ...]:
        """Reading-order position after each tar's last sample (the source looks a tar up per sample)."""
        return tuple(itertools.accumulate(self.samples_per_tar))

    def class_id(self, stored: int) -> int:
        """The label the loaders yield for a sample whose .info holds class `stored`."""
        return stored if self.class_map is None else int(self.class_map[stored])

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """Every sample's class id as the loaders yield it (int64, reading order), read from the .info members by
        offset. Read on first use only: the loaders take each sample's label with its clip."""
        labels = np.empty(self.num_samples, dtype=np.int64)
        for number, tar in enumerate(self.tars):
            first = self.first_position(number)
            with open(tar, "rb") as handle:
                for position in range(first, first + self.samples_per_tar[number]):
                    offset, size = (int(value) for value in self.members[position, 2:])
                    try:
                        stored = decode_info(os.pread(handle.fileno(), size, offset))["label"]
                    except FormatError as error:
                        raise ShardError(f"{tar}: sample {self.keys[position]!r}: {error}; {VERIFY_HINT}") from error
                    labels[position] = self.class_id(stored)
        return labels

    def subset(self, positions: Sequence[int]) -> ShardSet:
        """The samples at reading-order `positions`, each once and in reading order (renumbered 0..n-1), with
        their members, label sets and the class map; tars left without a sample are dropped. Both loaders read
        a subset like a whole split (the baseline skips the other samples of its tars by key)."""
        positions = np.unique(np.asarray(positions, dtype=np.int64))
        if positions.size == 0:
            raise ValueError("a subset needs at least one sample")
        if positions[0] < 0 or positions[-1] >= self.num_samples:
            raise IndexError(f"subset positions must be in [0, {self.num_samples})")
        tar_numbers, counts = np.unique(np.searchsorted(self._tar_ends, positions, side="right"), return_counts=True)
        return replace(self, tars=tuple(self.tars[n] for n in tar_numbers),
                       indexes=tuple(self.indexes[n] for n in tar_numbers),
                       keys=tuple(self.keys[p] for p in positions), samples_per_tar=tuple(map(int, counts)),
                       members=self.members[positions],
                       label_sets=None if self.label_sets is None else self.label_sets[positions])

    def of_classes(self, class_ids: Sequence[int]) -> ShardSet:
        """Only the samples of the classes `class_ids` (ids in `classes`), relabelled by their place in that list:
        class `class_ids[i]` becomes class i, named `classes[class_ids[i]]`. Single-label splits only (a label set
        could hold classes of both sides)."""
        if self.label_sets is not None:
            raise ValueError("a class subset of a multi-label split is not defined: its videos hold several classes")
        ids = [int(class_id) for class_id in class_ids]
        known = self.num_classes if self.num_classes is not None else int(self.labels.max()) + 1
        if not ids or len(set(ids)) != len(ids) or min(ids) < 0 or max(ids) >= known:
            raise ValueError(f"class ids must be distinct ids in [0, {known}), got {ids}")
        renumber = np.full(known + 1, -1, dtype=np.int64)  # the last slot maps -1 (a class already left out) to -1
        renumber[ids] = np.arange(len(ids))
        kept = np.flatnonzero(renumber[self.labels] >= 0)
        if kept.size == 0:
            raise ValueError(f"no sample of the classes {ids}")
        stored_classes = self.class_map if self.class_map is not None else np.arange(known)
        return replace(self.subset(kept), class_map=renumber[stored_classes],
                       classes=None if self.classes is None else tuple(self.classes[i] for i in ids))

    def tars_overlapping(self, begin: int, end: int) -> list[int]:
        """Numbers of the tars holding any sample in positions [begin, end)."""
        numbers, first = [], 0
        for number, count in enumerate(self.samples_per_tar):
            if first < end and begin < first + count:
                numbers.append(number)
            first += count
        return numbers


def open_shards(source: str | os.PathLike | Sequence[str | os.PathLike], split: str | None = None) -> ShardSet:
    """Resolve a manifest, a shard folder, a single tar, a brace pattern of tars (`k400-train-{000000..000099}.tar`,
    as webdataset and open_clip expand it) or a list of tars into a checked ShardSet.

    A folder must hold exactly one `*.manifest.json`, or one whose split is `split`.
    Raises ShardError for a missing path, an empty list, a missing `.idx` or a sample lacking a component.
    """
    pattern = isinstance(source, str) and "{" in source and not Path(source).exists()
    tars = _expand(source) if pattern else None
    if tars is not None:
        return _from_tars(tars, classes=None, codec=None, manifest_path=None)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ShardError(f"shard path {path} does not exist")
        if path.is_dir():
            return _from_manifest(_find_manifest(path, split))
        if path.name.endswith(".json"):
            return _from_manifest(path)
        return _from_tars([path], classes=None, codec=None, manifest_path=None)
    tars = [Path(tar) for tar in source]
    if not tars:
        raise ShardError("the shard list is empty: pass a manifest, a shard folder or at least one .tar")
    return _from_tars(tars, classes=None, codec=None, manifest_path=None)


def _expand(pattern: str) -> list[Path] | None:
    """The tars a brace pattern names, each of which must exist; None when its braces expand to nothing else."""
    try:
        tars = [Path(tar) for tar in braceexpand(pattern)]
    except UnbalancedBracesError as error:
        raise ShardError(f"shard pattern {pattern}: {error}; write ranges as {{000000..000099}}") from None
    if tars == [Path(pattern)]:
        return None
    missing = next((tar for tar in tars if not tar.is_file()), None)
    if missing is not None:
        raise ShardError(f"shard pattern {pattern} names {len(tars)} tars, but {missing} does not exist: fix the "
                         "pattern or build the missing shards")
    return tars


def _find_manifest(folder: Path, split: str | None) -> Path:
    manifests = sorted(folder.glob("*.manifest.json"))
    if split is not None:
        manifests = [m for m in manifests if m.name.endswith(f"-{split}.manifest.json")]
    if len(manifests) == 1:
        return manifests[0]
    wanted = "manifest" if split is None else f"manifest for split {split!r}"
    if not manifests:
        raise ShardError(f"{folder} holds no {wanted} (*.manifest.json); build shards with "
                         "`python -m shard_tools build-shards` or pass the .tar files")
    raise ShardError(f"{folder} holds several manifests {[m.name for m in manifests]}: pass the manifest "
                     "path or a split")


def _from_manifest(path: Path) -> ShardSet:
    try:
        manifest = json.loads(path.read_text())
        entries = manifest["shards"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ShardError(f"cannot read manifest {path}: {error}") from error
    if not entries:
        raise ShardError(f"manifest {path} lists no shards (were all inputs failures? see its 'failures')")
    folder = path.parent
    tars = [folder / entry["tar"] for entry in entries]
    indexes = [folder / entry["idx"] if entry.get("idx") else None for entry in entries]
    shard_set = _from_tars(tars, indexes=indexes, classes=manifest.get("classes"),
                           codec=manifest.get("encode", {}).get("codec"), manifest_path=str(path))
    for entry, tar, count in zip(entries, shard_set.tars, shard_set.samples_per_tar):
        if "samples" in entry and entry["samples"] != count:
            raise ShardError(f"{tar}: manifest {path} says {entry['samples']} samples, its index lists {count}; "
                             f"the index is stale, rebuild it ({INDEX_HINT})")
    if manifest.get(MULTI_LABEL_KEY):
        if shard_set.classes is None:
            raise ShardError(f"manifest {path} is multi-label but lists no classes; rebuild it with build-shards")
        shard_set = replace(shard_set, label_sets=_label_sets(shard_set))
    return shard_set


def _label_sets(shards: ShardSet) -> np.ndarray:
    """Every sample's label set as a row of a (num_samples, num_classes) bool matrix, read by the index."""
    sets = np.zeros((shards.num_samples, len(shards.classes)), dtype=bool)
    position = 0
    for tar, index in zip(shards.tars, shards.indexes):
        with open(tar, "rb") as handle:
            for key, components in read_index(Path(index)).items():
                if LABELS_COMPONENT not in components:
                    raise ShardError(f"{tar}: sample {key!r} of a multi-label split has no .{LABELS_COMPONENT} "
                                     "component; re-shard it with shard_tools build-shards")
                offset, size = components[LABELS_COMPONENT]
                handle.seek(offset)
                try:
                    label_set = decode_labels(handle.read(size))
                except FormatError as error:
                    raise ShardError(f"{tar}: sample {key!r}: {error}; {VERIFY_HINT}") from error
                if label_set[-1] >= sets.shape[1]:
                    raise ShardError(f"{tar}: sample {key!r} has class id {label_set[-1]}, but the manifest lists "
                                     f"{sets.shape[1]} classes; {VERIFY_HINT}")
                sets[position, list(label_set)] = True
                position += 1
    return sets


def _from_tars(tars: Sequence[Path], *, indexes: Sequence[Path | None] | None = None,
               classes: Sequence[str] | None, codec: str | None, manifest_path: str | None) -> ShardSet:
    indexes = indexes or [None] * len(tars)
    keys: list[str] = []
    members: list[tuple[int, int, int, int]] = []
    counts: list[int] = []
    index_paths: list[Path] = []
    for tar, index in zip(tars, indexes):
        if not tar.is_file():
            raise ShardError(f"shard {tar} does not exist")
        index = index or tar.with_suffix(".idx")
        if not index.is_file():
            raise ShardError(f"shard {tar} has no DALI index {index}: {INDEX_HINT}")
        tar_samples = _loader_members(tar, index)
        keys.extend(tar_samples)
        members.extend(tar_samples.values())
        counts.append(len(tar_samples))
        index_paths.append(index)
    return ShardSet(tars=tuple(map(str, tars)), indexes=tuple(map(str, index_paths)), keys=tuple(keys),
                    samples_per_tar=tuple(counts), classes=None if classes is None else tuple(classes),
                    codec=None if codec is None else str(codec).lower(), manifest_path=manifest_path,
                    members=np.array(members, dtype=np.int64).reshape(-1, 4))


def _loader_members(tar: Path, index: Path) -> dict[str, tuple[int, int, int, int]]:
    """Sample key -> (.mp4 offset, size, .info offset, size) of one tar, in index order.

    Checks that every sample has the components the loaders read and that the index fits the tar.
    """
    try:
        samples = read_index(index)
    except FormatError as error:
        raise ShardError(f"{error} ({INDEX_HINT})") from error
    tar_size = tar.stat().st_size
    members = {}
    for key, components in samples.items():
        for component in LOADER_COMPONENTS:
            if component not in components:
                raise ShardError(f"{tar}: sample {key!r} has no .{component} component "
                                 f"(has {sorted(components)}); re-shard it with shard_tools build-shards")
        if max(offset + size for offset, size in components.values()) > tar_size:
            raise ShardError(f"{index} points past the end of {tar} (sample {key!r}); the tar is truncated "
                             f"or the index is stale: rebuild it ({INDEX_HINT})")
        members[key] = tuple(value for component in LOADER_COMPONENTS for value in components[component])
    return members


def rank_range(num_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """[begin, end) positions of the samples rank `rank` reads: DALI's contiguous split."""
    return num_samples * rank // world_size, num_samples * (rank + 1) // world_size
