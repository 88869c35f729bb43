"""Charades: `Charades_v1_classes.txt` (`c000 Holding some clothes`), `Charades_v1_train.csv` and
`Charades_v1_test.csv` (columns `id, ..., actions`, actions `c092 11.90 21.20;c147 0.00 12.60;...` or empty),
videos `<root>/<id>.mp4`.

Whole videos by default: one multi-label sample per video with the set of its action classes (a video with
none is an input that fails as `no-label`). With `spans`, one single-label sample per action, its
[start, end) window cut out of the video.
"""
from __future__ import annotations

from pathlib import Path

from shard_tools.inputs import (
    AnnotationError, VideoInput, normalise_class_name, number, read_csv_rows, resolve, text_lines,
)

CLASSES_FILE = "Charades_v1_classes.txt"
SPLITS = {"train": "Charades_v1_train.csv", "test": "Charades_v1_test.csv"}


def read_classes(path: Path) -> dict[str, str]:
    """Class code -> name, in the file's order."""
    codes: dict[str, str] = {}
    names: set[str] = set()
    for line, text in text_lines(path):
        code, _, name = text.partition(" ")
        where = f"{path}: line {line}"
        if not name.strip():
            raise AnnotationError(f"{where}: {text!r} is not 'cNNN class name'")
        if code in codes or normalise_class_name(name) in names:
            raise AnnotationError(f"{where}: class {code} {name.strip()!r} again; codes and names must be unique")
        codes[code] = name.strip()
        names.add(normalise_class_name(name))
    return codes


def _actions(field: str, codes: dict[str, str], where: str) -> list[tuple[str, float, float]]:
    """(class name, start, end) of each `code start end` of an actions field."""
    actions = []
    for action in filter(None, (part.strip() for part in field.split(";"))):
        parts = action.split()
        if len(parts) != 3:
            raise AnnotationError(f"{where}: action {action!r} is not 'cNNN start end'")
        if parts[0] not in codes:
            raise AnnotationError(f"{where}: action class {parts[0]!r} is not in {CLASSES_FILE}")
        actions.append((codes[parts[0]], number(parts[1], "start", where), number(parts[2], "end", where)))
    return actions


def read_charades(folder: Path, root: Path | None, spans: bool) -> tuple[list[VideoInput], list[str]]:
    class_file = folder / CLASSES_FILE
    if not class_file.exists():
        raise AnnotationError(f"{class_file} not found: --annotations must be the folder of the Charades CSVs and "
                              f"{CLASSES_FILE}")
    codes = read_classes(class_file)
    inputs = []
    for split, name in SPLITS.items():
        path = folder / name
        if not path.exists():
            raise AnnotationError(f"{path} not found (the Charades {split} annotations)")
        for line, row in read_csv_rows(path, ("id",), optional=("actions",)):
            where, video_id = f"{path}: line {line}", row["id"].strip()
            video = resolve(root, f"{video_id}.mp4", where)
            actions = _actions(row["actions"] or "", codes, where)
            if spans:
                inputs += [VideoInput(video, label, split, f"{video_id}_{start:.2f}_{end:.2f}", start, end, where)
                           for label, start, end in actions]
            else:
                labels = tuple(dict.fromkeys(label for label, _, _ in actions))
                inputs.append(VideoInput(video, labels, split, video_id, origin=where))
    return inputs, list(codes.values())
