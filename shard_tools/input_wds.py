"""Existing webdataset tars as input (video2dataset layout: `<key>.mp4` with `<key>.txt` and/or `<key>.json`).

Each sample's video member is re-encoded like any other input, read from the tar by offset when it is
encoded; its label (a class name or id) comes from the member `--label-key` names: `txt` (the member's text),
`cls`, or `json:FIELD` (a field of the .json, `a.b` for a nested one).
"""
from __future__ import annotations

import glob
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.shard_format import member_key
from shard_tools.inputs import VIDEO_SUFFIXES, AnnotationError, VideoInput
from shard_tools.sources import TarMember


@dataclass(frozen=True)
class LabelKey:
    """`--label-key`: the member holding a sample's label and, for a .json, the path of its field."""
    spec: str
    extension: str
    field: tuple[str, ...]


def parse_label_key(spec: str) -> LabelKey:
    extension, _, field = spec.partition(":")
    if not extension or (field and extension != "json") or (extension == "json" and not field):
        raise AnnotationError(f"--label-key {spec!r}: give a member extension (txt, cls) or json:FIELD")
    return LabelKey(spec, extension, tuple(field.split(".")) if field else ())


def expand_tars(pattern: str) -> list[Path]:
    """A tar file, a folder (every .tar in it) or a glob pattern, as sorted tar paths."""
    path = Path(pattern)
    if path.is_dir():
        found = sorted(path.glob("*.tar"))
    elif glob.has_magic(pattern):
        found = sorted(Path(match) for match in glob.glob(pattern))
    else:
        found = [path] if path.exists() else []
    if not found:
        raise AnnotationError(f"--annotations {pattern!r}: no tar files there; give tars, a folder of tars or a glob")
    return found


def _read_label(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], key: LabelKey, where: str) -> str:
    if key.extension not in members:
        raise AnnotationError(f"{where} has no .{key.extension} member (it has {sorted(members)}); choose --label-key")
    try:
        value: object = archive.extractfile(members[key.extension]).read().decode()
        if key.field:
            value = json.loads(value)
            for name in key.field:
                if not isinstance(value, dict) or name not in value:
                    known = sorted(value) if isinstance(value, dict) else type(value).__name__
                    raise AnnotationError(f"{where}: its .json has no field {'.'.join(key.field)!r} ({known}); "
                                          "choose --label-key")
                value = value[name]
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(f"{where}: its .{key.extension} is not readable text or JSON ({error})") from None
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise AnnotationError(f"{where}: --label-key {key.spec} gives {value!r}, not a class name or id")


def _sample_inputs(archive: tarfile.TarFile, tar: Path, split: str, label_key: LabelKey) -> list[VideoInput]:
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    for member in archive:
        if member.isfile():
            key, extension = member_key(member.name)
            samples.setdefault(key, {})[extension] = member
    inputs = []
    for key, members in samples.items():
        where = f"{tar}: sample {key}"
        videos = [m for ext, m in members.items() if f".{ext.rsplit('.', 1)[-1].lower()}" in VIDEO_SUFFIXES]
        if len(videos) != 1:
            raise AnnotationError(f"{where} has {len(videos)} video members ({sorted(members)}); each sample needs one")
        source = TarMember(str(tar), videos[0].name, videos[0].offset_data, videos[0].size)
        inputs.append(VideoInput(source, _read_label(archive, members, label_key, where), split, key, origin=where))
    return inputs


def read_tar(tar: Path, split: str, label_key: LabelKey) -> list[VideoInput]:
    try:
        with tarfile.open(tar, "r:") as archive:
            return _sample_inputs(archive, tar, split, label_key)
    except tarfile.TarError as error:
        raise AnnotationError(f"{tar}: not a readable uncompressed tar ({error}); decompress or re-download "
                              "it") from None


def read_wds(sources: list[tuple[str, str]], label_key: str) -> list[VideoInput]:
    """Every sample of the (split, tar / folder / glob) sources."""
    key = parse_label_key(label_key)
    return [item for split, pattern in sources for tar in expand_tars(pattern) for item in read_tar(tar, split, key)]
