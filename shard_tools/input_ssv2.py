"""Something-Something v2: the official JSON files and `<root>/<id>.webm` videos.

`labels.json` maps class name -> id (a string); `train.json` / `validation.json` list
`{"id", "label", "template", "placeholders"}`. A video's class is its template without the brackets, as
the official code reads it ("Putting [something] on [something]" -> "Putting something on something").
The files may also carry the download's `something-something-v2-` prefix. test.json has no classes.
"""
from __future__ import annotations

import json
from pathlib import Path

from shard_tools.inputs import AnnotationError, VideoInput, classes_in_id_order, resolve

SPLITS = {"train": "train.json", "val": "validation.json"}
DOWNLOAD_PREFIX = "something-something-v2-"


def _file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{DOWNLOAD_PREFIX}{name}"):
        if candidate.exists():
            return candidate
    raise AnnotationError(f"{folder / name} not found (nor {DOWNLOAD_PREFIX}{name}): --annotations must be the folder "
                          "of the official Something-Something v2 JSON files")


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not UTF-8 text ({error.reason})") from None


def read_classes(path: Path) -> list[str]:
    """`{"name": "id", ...}` with ids 0..n-1 -> the names in id order."""
    table = _load(path)
    if not isinstance(table, dict):
        raise AnnotationError(f"{path}: expected an object of class name -> id, got {type(table).__name__}")
    by_id: dict[int, str] = {}
    for name, raw_id in table.items():
        if not str(raw_id).isdigit() or int(raw_id) in by_id:
            raise AnnotationError(f"{path}: class {name!r} has id {raw_id!r}: ids must be distinct whole numbers")
        by_id[int(raw_id)] = name
    return classes_in_id_order(by_id, path)


def class_name(template: str) -> str:
    return template.replace("[", "").replace("]", "")


def read_ssv2(folder: Path, root: Path | None) -> tuple[list[VideoInput], list[str]]:
    classes = read_classes(_file(folder, "labels.json"))
    inputs = []
    for split, name in SPLITS.items():
        path = _file(folder, name)
        entries = _load(path)
        if not isinstance(entries, list):
            raise AnnotationError(f"{path}: expected a list of videos, got {type(entries).__name__}")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("template"), str):
                raise AnnotationError(f"{path}: entry {index} is not a video with an id and a template (each is "
                                      '{"id", "label", "template", "placeholders"}); fix or remove it')
            where = f"{path}: entry {index} (id {entry['id']})"
            inputs.append(VideoInput(resolve(root, f"{entry['id']}.webm", where), class_name(entry["template"]),
                                     split, str(entry["id"]), origin=where))
    return inputs, classes
