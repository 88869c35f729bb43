"""Annotation formats: turn a dataset's own lists into `VideoInput` records and a class list.

Supported `--format`s:
- `kinetics`: CSV `label,youtube_id,time_start,time_end,split`; files found by `--path-template`.
- `ucf101`: the official `classInd.txt` / `trainlistNN.txt` / `testlistNN.txt` folder.
- `hmdb51`: the official `<class>_test_splitN.txt` folder (1 = train, 2 = test, 0 = unused).
- `csv`: generic `path,label[,split]` (label is a class name or an integer id).
- `folder`: `root/<class>/<video>` trees.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from shard_tools.errors import ToolError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv"}
KINETICS_TEMPLATE = "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"


class AnnotationError(ToolError):
    """An annotation file or class list that cannot be used as given."""


@dataclass(frozen=True)
class VideoInput:
    path: str
    label: str
    split: str
    source_id: str
    time_start: float | None = None
    time_end: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", self.split.strip())  # " train" in a CSV is the train split


def normalise_class_name(name: str) -> str:
    """Compare class names loosely: `brush_hair`, `Brush Hair` and `brush hair` are one class."""
    return re.sub(r"[\s_]+", " ", name.strip()).lower()


def read_labels_csv(path: Path) -> list[str]:
    """Read an `id,name` class list; ids must be 0..n-1 (any order in the file), ids and names unique."""
    by_id: dict[int, tuple[int, str]] = {}
    by_name: dict[str, tuple[int, str]] = {}
    for line, row in _read_csv_rows(path, ("id", "name")):
        raw_id, name = row["id"].strip(), row["name"].strip()
        if not raw_id.isdigit():
            raise AnnotationError(f"{path}: line {line}: id {raw_id!r} is not a whole number; ids are 0..n-1")
        class_id, key = int(raw_id), normalise_class_name(name)
        if class_id in by_id:
            raise AnnotationError(f"{path}: line {line}: id {class_id} again (line {by_id[class_id][0]} has it "
                                  f"for {by_id[class_id][1]!r}); give every class its own id")
        if key in by_name:
            raise AnnotationError(f"{path}: line {line}: class {name!r} again (line {by_name[key][0]} has "
                                  f"{by_name[key][1]!r}; case, spaces and underscores are ignored); "
                                  "names must be unique")
        by_id[class_id] = by_name[key] = (line, name)
    missing = sorted(set(range(len(by_id))) - set(by_id))
    if missing:
        raise AnnotationError(f"{path}: class ids must be 0..{len(by_id) - 1} with none missing; "
                              f"missing {missing[:10]}")
    return [by_id[i][1] for i in range(len(by_id))]


def write_labels_csv(path: Path, classes: list[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name"])
        writer.writerows(enumerate(classes))


def class_lookup(classes: list[str]) -> dict[str, int]:
    return {normalise_class_name(name): index for index, name in enumerate(classes)}


def _read_csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of every row of a CSV with a header; each row must give the required columns a value."""
    rows = []
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in required if column not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
            for row in reader:
                absent = [column for column in required if row[column] is None]
                if absent:
                    raise AnnotationError(f"{path}: line {reader.line_num} is short: no {', '.join(absent)} "
                                          f"(every row needs {','.join(required)}); complete or remove it")
                empty = [column for column in required if not row[column].strip()]
                if empty:
                    raise AnnotationError(f"{path}: line {reader.line_num}: {', '.join(empty)} is empty; "
                                          "fill it in or remove the row")
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not UTF-8 text ({error.reason}); save it as a UTF-8 CSV") from error
    except csv.Error as error:
        raise AnnotationError(f"{path}: line {reader.line_num}: not valid CSV ({error})") from error
    return rows


def _resolve(root: Path, relative: str) -> str:
    path = Path(relative)
    return str(path if path.is_absolute() else root / path)


def _seconds(value: str, column: str, where: str) -> int:
    try:
        return int(float(value))
    except (ValueError, OverflowError):
        raise AnnotationError(f"{where}: {column} {value!r} is not a number of seconds") from None


def read_kinetics(annotations: Path, root: Path, path_template: str) -> list[VideoInput]:
    inputs = []
    for line, row in _read_csv_rows(annotations, ("label", "youtube_id", "time_start", "time_end")):
        where = f"{annotations}: line {line}"
        start, end = _seconds(row["time_start"], "time_start", where), _seconds(row["time_end"], "time_end", where)
        fields = {**row, "time_start": start, "time_end": end, "split": row.get("split") or "train"}
        try:
            relative = path_template.format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            known = " ".join(name for name in fields if name is not None)
            problem = f"has no field {{{error.args[0]}}}" if isinstance(error, KeyError) else f"does not fit ({error})"
            raise AnnotationError(f"--path-template {path_template!r}: {where} {problem}; the fields are {known}") from None
        inputs.append(VideoInput(
            path=_resolve(root, relative),
            label=row["label"],
            split=fields["split"],
            source_id=f"{row['youtube_id']}_{start:06d}_{end:06d}",
            time_start=float(start),
            time_end=float(end),
        ))
    return inputs


def read_ucf101(split_dir: Path, root: Path, split_id: int) -> tuple[list[VideoInput], list[str]]:
    class_file = split_dir / "classInd.txt"
    if not class_file.exists():
        raise AnnotationError(f"{class_file} not found: --annotations must be the folder of the official split lists")
    classes = [line.split()[1] for line in class_file.read_text().splitlines() if line.strip()]
    inputs = []
    for split, list_name in (("train", f"trainlist{split_id:02d}.txt"), ("test", f"testlist{split_id:02d}.txt")):
        list_file = split_dir / list_name
        if not list_file.exists():
            raise AnnotationError(f"{list_file} not found (UCF101 split {split_id})")
        for line in list_file.read_text().splitlines():
            if not line.strip():
                continue
            relative = line.split()[0]
            inputs.append(VideoInput(_resolve(root, relative), relative.split("/")[0], split, Path(relative).stem))
    return inputs, classes


def read_hmdb51(split_dir: Path, root: Path, split_id: int) -> tuple[list[VideoInput], list[str]]:
    split_files = sorted(split_dir.glob(f"*_test_split{split_id}.txt"))
    if not split_files:
        raise AnnotationError(f"no '*_test_split{split_id}.txt' files in {split_dir} (HMDB51 split lists)")
    usage = {"1": "train", "2": "test"}
    inputs, classes = [], []
    for split_file in split_files:
        class_name = split_file.name[: -len(f"_test_split{split_id}.txt")]
        classes.append(class_name)
        for line in split_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] in usage:
                inputs.append(VideoInput(str(root / class_name / parts[0]), class_name, usage[parts[1]], Path(parts[0]).stem))
    return inputs, classes


def read_generic_csv(annotations: Path, root: Path) -> list[VideoInput]:
    return [
        VideoInput(_resolve(root, row["path"]), row["label"], row.get("split") or "train", Path(row["path"]).stem)
        for _, row in _read_csv_rows(annotations, ("path", "label"))
    ]


def read_folder(root: Path, split: str) -> list[VideoInput]:
    if not root.is_dir():
        raise AnnotationError(f"{root} is not a folder of class folders")
    return [
        VideoInput(str(path), class_dir.name, split, path.stem)
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(class_dir.iterdir())
        if path.suffix.lower() in VIDEO_SUFFIXES
    ]


def label_ids(inputs: list[VideoInput], classes: list[str], source: str) -> list[int]:
    """Class index of every input; a label that is an integer id is accepted as such."""
    lookup = class_lookup(classes)
    ids = []
    for item in inputs:
        name = normalise_class_name(item.label)
        if name in lookup:
            ids.append(lookup[name])
        elif name.isdigit() and int(name) < len(classes):
            ids.append(int(name))
        else:
            raise AnnotationError(
                f"{source}: label {item.label!r} of {item.path} is not in the class list; "
                "fix the annotation or pass the right --labels CSV"
            )
    return ids


def derive_classes(inputs: list[VideoInput]) -> list[str]:
    names: dict[str, str] = {}
    for item in inputs:
        names.setdefault(normalise_class_name(item.label), item.label.strip())
    return [names[key] for key in sorted(names)]
