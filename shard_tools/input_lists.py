"""Whitespace-separated video lists (MMAction2 / X-CLIP / ViFi-CLIP): `path label` per line for videos,
`folder num_frames label` for frame folders (TSN / original ActionCLIP / MMAction2 rawframes).

Fields are split from the right, so a path may hold spaces; a label is a class id or a name without spaces.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from shard_tools.inputs import AnnotationError, VideoInput, resolve, text_lines
from shard_tools.sources import FrameFolder

IMAGE_TEMPLATE = "img_{:05d}.jpg"


def _fields(lists: list[tuple[str, Path]], count: int, layout: str) -> Iterator[tuple[str, str, list[str]]]:
    """(split, where, fields) of every line: `count` fields, split from the right."""
    for split, path in lists:
        for number, line in text_lines(path):
            fields, where = line.rsplit(maxsplit=count - 1), f"{path}: line {number}"
            if len(fields) != count:
                raise AnnotationError(f"{where}: {line!r} is not '{layout}'; fix or remove the line")
            yield split, where, fields


def read_video_list(lists: list[tuple[str, Path]], root: Path | None) -> list[VideoInput]:
    """`path label` lines of each (split, list file)."""
    return [VideoInput(resolve(root, path, where), label, split, Path(path).stem, origin=where)
            for split, where, (path, label) in _fields(lists, 2, "path label")]


def check_image_template(template: str) -> None:
    """`--image-tmpl` must name a different file for every frame number."""
    try:
        distinct = template.format(0) != template.format(1)
    except (IndexError, KeyError, ValueError) as error:
        raise AnnotationError(f"--image-tmpl {template!r} does not take a frame number ({error}); write it like "
                              f"{IMAGE_TEMPLATE!r}") from None
    if not distinct:
        raise AnnotationError(f"--image-tmpl {template!r} has no {{}} field for the frame number; write it like "
                              f"{IMAGE_TEMPLATE!r}")


def read_frame_list(lists: list[tuple[str, Path]], root: Path | None, template: str, start: int,
                    fps: float) -> list[VideoInput]:
    """`folder num_frames label` lines: frames `template.format(start)` .. `template.format(start + n - 1)`."""
    check_image_template(template)
    inputs = []
    for split, where, (folder, frames, label) in _fields(lists, 3, "folder num_frames label"):
        if not frames.isdigit():
            raise AnnotationError(f"{where}: num_frames {frames!r} is not a whole number ('folder num_frames label')")
        source = FrameFolder(resolve(root, folder, where), template, start, int(frames), fps)
        inputs.append(VideoInput(source, label, split, Path(folder).name, origin=where))
    return inputs
