"""Writing shard files: tars, their DALI `.idx` files and manifests (the format is `pipelines.shard_format`)."""
from __future__ import annotations

import io
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from wds2idx import IndexCreator  # shipped with the DALI wheel

from pipelines.shard_format import DIGEST_KEY, LABELS_COMPONENT, component_digests, encode_info, encode_labels


@dataclass(frozen=True)
class Sample:
    key: str
    video: bytes
    label: int
    video_frames: int
    height: int
    width: int
    meta: dict
    label_set: tuple[int, ...] | None = None  # a multi-label sample's class ids, ascending; `label` is the first

    def __post_init__(self) -> None:
        if self.label_set is not None and (not self.label_set or self.label != min(self.label_set)):
            raise ValueError(f"sample {self.key}: label {self.label} is not the smallest id of {self.label_set}")


def shard_stem(name: str, split: str, number: int) -> str:
    return f"{name}-{split}-{number:06d}"


def manifest_path(folder: Path, name: str, split: str) -> Path:
    return folder / f"{name}-{split}.manifest.json"


def failures_path(folder: Path, name: str, split: str) -> Path:
    return folder / f"{name}-{split}.failures.jsonl"


def record_path(folder: Path, name: str, split: str) -> Path:
    """The split's build record: the settings and input fingerprint a re-run must match to resume."""
    return folder / f"{name}-{split}.build.json"


def lock_path(folder: Path) -> Path:
    return folder / ".build-shards.lock"


def shard_number(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])


def split_shards(folder: Path, name: str, split: str, suffix: str) -> list[Path]:
    """The split's shard files ending in `suffix` (".tar", ".idx"), in shard-number order."""
    pattern = re.compile(rf"{re.escape(name)}-{re.escape(split)}-[0-9]{{6,}}{re.escape(suffix)}")
    return sorted((path for path in folder.iterdir() if pattern.fullmatch(path.name)), key=shard_number)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def atomic_write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=1) + "\n").encode())


class ShardWriter:
    """Stream samples into a temporary tar; `finish` renames it and writes the DALI index last,
    so a tar with an `.idx` beside it is always complete."""

    def __init__(self, tar_path: Path):
        self.tar_path = tar_path
        self.temporary = tar_path.with_name(f".{tar_path.name}.tmp")
        self.archive = tarfile.open(self.temporary, "w", format=tarfile.USTAR_FORMAT)
        self.samples = 0

    def add(self, sample: Sample) -> None:
        """Append the sample's members; its .json records the SHA-256 of the others as written."""
        members = {
            "mp4": sample.video,
            "cls": str(sample.label).encode(),
            "info": encode_info(sample.label, sample.video_frames, sample.height, sample.width),
        }
        if sample.label_set is not None:
            members[LABELS_COMPONENT] = encode_labels(sample.label_set)
        meta = {**sample.meta, DIGEST_KEY: component_digests(members)}
        members["json"] = json.dumps(meta, sort_keys=True).encode()
        for extension, data in members.items():
            info = tarfile.TarInfo(f"{sample.key}.{extension}")
            info.size = len(data)
            info.mode = 0o644
            self.archive.addfile(info, io.BytesIO(data))
        self.samples += 1

    @property
    def bytes(self) -> int:
        return self.archive.fileobj.tell()

    def finish(self) -> int:
        self.archive.close()
        os.replace(self.temporary, self.tar_path)
        write_index(self.tar_path, self.tar_path.with_suffix(".idx"))
        return self.tar_path.stat().st_size


def write_index(tar_path: Path, idx_path: Path) -> None:
    temporary = idx_path.with_name(f".{idx_path.name}.tmp")
    with IndexCreator(str(tar_path), str(temporary), verbose=False) as creator:
        creator.create_index()
    os.replace(temporary, idx_path)


def read_member(handle, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def shard_tars(paths: list[str | Path]) -> list[Path]:
    """Tars named by the user: files, folders (every tar inside) or manifests (their shard list)."""
    tars: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            tars.extend(sorted(path.glob("*.tar")))
        elif path.name.endswith(".manifest.json"):
            manifest = json.loads(path.read_text())
            tars.extend(path.parent / shard["tar"] for shard in manifest["shards"])
        elif path.suffix == ".tar":
            tars.append(path)
        else:
            raise FileNotFoundError(f"{path}: not a shard folder, .tar or .manifest.json")
    return tars


def manifests_in(paths: list[str | Path]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.glob("*.manifest.json")))
        elif path.name.endswith(".manifest.json"):
            found.append(path)
    return found
