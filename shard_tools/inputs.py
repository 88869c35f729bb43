"""What every annotation format produces: `VideoInput` records and a class list, and the parsing they share.

The readers of the `--format`s live in `input_*.py` (`shard_tools.formats` lists them); each turns a
dataset's own annotation files into `VideoInput`s and, where the dataset has one, its official class list.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from shard_tools.errors import ToolError
from shard_tools.sources import VideoSource

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv"}
# A class name or id; a tuple holds every class of a multi-label sample (empty: the annotations give none).
Label = Union[str, tuple[str, ...]]
# A class index; a tuple: the ascending class indices of a multi-label sample.
LabelId = Union[int, tuple[int, ...]]


class AnnotationError(ToolError):
    """An annotation file or class list that cannot be used as given."""


@dataclass(frozen=True)
class VideoInput:
    source: VideoSource
    label: Label
    split: str
    source_id: str
    time_start: float | None = None
    time_end: float | None = None
    origin: str = ""  # the annotation file and line (or tar and key) it comes from, named in errors

    def __post_init__(self) -> None:
        object.__setattr__(self, "split", self.split.strip())  # " train" in a CSV is the train split

    @property
    def path(self) -> str:
        """The source as failures and the sample's .json name it."""
        return str(self.source)


def normalise_class_name(name: str) -> str:
    """Compare class names loosely: `brush_hair`, `Brush Hair` and `brush hair` are one class."""
    return re.sub(r"[\s_]+", " ", name.strip()).lower()


def read_labels_csv(path: Path) -> list[str]:
    """Read an `id,name` class list; ids must be 0..n-1 (any order in the file), ids and names unique."""
    by_id: dict[int, tuple[int, str]] = {}
    by_name: dict[str, tuple[int, str]] = {}
    for line, row in read_csv_rows(path, ("id", "name")):
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
    return classes_in_id_order({class_id: name for class_id, (_, name) in by_id.items()}, path)


def classes_in_id_order(by_id: dict[int, str], path: Path) -> list[str]:
    """The names of a class list given by distinct ids, which must be 0..n-1."""
    missing = sorted(set(range(len(by_id))) - set(by_id))
    if missing:
        raise AnnotationError(f"{path}: class ids must be 0..{len(by_id) - 1} with none missing; "
                              f"missing {missing[:10]}")
    return [by_id[i] for i in range(len(by_id))]


def write_labels_csv(path: Path, classes: list[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name"])
        writer.writerows(enumerate(classes))


def class_lookup(classes: list[str]) -> dict[str, int]:
    return {normalise_class_name(name): index for index, name in enumerate(classes)}


def read_csv_rows(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()
                  ) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of every row of a CSV with a header; each row must give the required columns a value,
    the header must have the optional ones too (their values may be empty)."""
    rows = []
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in required + optional if column not in (reader.fieldnames or [])]
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


def text_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line without surrounding white space) of every non-blank line of a UTF-8 text file."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def resolve(root: Path | None, relative: str, where: str) -> str:
    """An annotation's path: absolute as given, else under --root (an error without one)."""
    path = Path(relative)
    if path.is_absolute():
        return str(path)
    if root is None:
        raise AnnotationError(f"{where}: path {relative!r} is relative and there is no --root; pass --root (the "
                              "folder the paths are relative to) or make the paths absolute")
    return str(root / path)


def number(value: str, what: str, where: str) -> float:
    try:
        return float(value)
    except (ValueError, OverflowError):
        raise AnnotationError(f"{where}: {what} {value!r} is not a number") from None


def split_sources(values: list[str], default_split: str) -> list[tuple[str, str]]:
    """`--annotations` values as (split, file or pattern): `SPLIT=FILE`, or a plain FILE in `default_split`."""
    pairs = []
    for value in values:
        split, separator, rest = value.partition("=")
        if separator and re.fullmatch(r"[\w-]+", split) and not os.path.exists(value):
            pairs.append((split, rest))
        else:
            pairs.append((default_split, value))
    return pairs


def _names(item: VideoInput) -> tuple[str, ...]:
    return item.label if isinstance(item.label, tuple) else (item.label,)


def label_ids(inputs: list[VideoInput], classes: list[str]) -> list[LabelId]:
    """Class index of every input (ascending indices for a multi-label one); an integer label is an id."""
    lookup = class_lookup(classes)

    def index(item: VideoInput, label: str) -> int:
        name = normalise_class_name(label)
        if name in lookup:
            return lookup[name]
        if name.isdigit() and int(name) < len(classes):
            return int(name)
        known = f"ids are 0..{len(classes) - 1}" if name.isdigit() else "it is not in the class list"
        raise AnnotationError(f"{item.origin}: label {label!r} of {item.path}: {known}; fix the annotation or pass "
                              "the right --labels CSV")

    return [tuple(sorted({index(item, label) for label in item.label})) if isinstance(item.label, tuple)
            else index(item, item.label) for item in inputs]


def derive_classes(inputs: list[VideoInput]) -> list[str]:
    """The sorted class names of the inputs, when no class list is given; ids cannot name a class."""
    names: dict[str, str] = {}
    for item in inputs:
        for label in _names(item):
            if label.strip().isdigit():
                raise AnnotationError(f"{item.origin}: label {label!r} is a class id, and there is no class list to "
                                      "name it: pass --labels (a CSV id,name)")
            names.setdefault(normalise_class_name(label), label.strip())
    return [names[key] for key in sorted(names)]
