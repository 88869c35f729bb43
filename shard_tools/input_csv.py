"""CSV annotations: Kinetics' `label,youtube_id,time_start,time_end,split` and the generic `path,label[,split]`."""
from __future__ import annotations

from pathlib import Path

from shard_tools.inputs import AnnotationError, VideoInput, number, read_csv_rows, resolve

KINETICS_TEMPLATE = "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"


def read_kinetics(annotations: Path, root: Path | None, path_template: str) -> list[VideoInput]:
    """One input per row; the file is `path_template` filled with the row's fields (times in whole seconds)."""
    inputs = []
    for line, row in read_csv_rows(annotations, ("label", "youtube_id", "time_start", "time_end")):
        where = f"{annotations}: line {line}"
        start = int(number(row["time_start"], "time_start", where))
        end = int(number(row["time_end"], "time_end", where))
        fields = {**row, "time_start": start, "time_end": end, "split": row.get("split") or "train"}
        try:
            relative = path_template.format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            known = " ".join(name for name in fields if name is not None)
            problem = f"has no field {{{error.args[0]}}}" if isinstance(error, KeyError) else f"does not fit ({error})"
            raise AnnotationError(f"--path-template {path_template!r}: {where} {problem}; the fields are {known}") from None
        inputs.append(VideoInput(resolve(root, relative, where), row["label"], fields["split"],
                                 f"{row['youtube_id']}_{start:06d}_{end:06d}", float(start), float(end), where))
    return inputs


def read_generic_csv(annotations: Path, root: Path | None) -> list[VideoInput]:
    """`path,label[,split]` rows; the split defaults to `train`."""
    inputs = []
    for line, row in read_csv_rows(annotations, ("path", "label")):
        where = f"{annotations}: line {line}"
        inputs.append(VideoInput(resolve(root, row["path"], where), row["label"], row.get("split") or "train",
                                 Path(row["path"]).stem, origin=where))
    return inputs
