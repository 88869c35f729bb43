"""build-shards on bad input or a failing disk: one `error: ...` line naming the file (and line), exit 2.

Real builds of tiny videos the tests make; the disk failures (no permission as root, a full disk) are raised
by patching the one OS call that would fail.
"""
from __future__ import annotations

import errno
import os
import tarfile
from pathlib import Path

import pytest

from media import error_line, write_csv, write_video
from shard_tools.cli import main as shard_main

KINETICS_HEADER = ["label", "youtube_id", "time_start", "time_end", "split"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """Three tiny videos, a good `csv` annotation file and a good labels CSV."""
    folder = tmp_path_factory.mktemp("raw")
    for index in range(3):
        write_video(folder / f"v{index}.mp4", video_frames=12, width=48, height=32, fps=10)
    write_csv(folder / "annotations.csv", ["path", "label"], [(f"v{i}.mp4", ["jump", "run"][i % 2]) for i in range(3)])
    write_csv(folder / "labels.csv", ["id", "name"], [(0, "jump"), (1, "run")])
    return folder


def csv_argv(raw: Path, out: Path, annotations: Path | None = None, labels: Path | None = None) -> list[str]:
    return ["build-shards", "--format", "csv", "--annotations", str(annotations or raw / "annotations.csv"),
            "--root", str(raw), "--labels", str(labels or raw / "labels.csv"), "--name", "toy", "--out", str(out),
            "--short-side", "32", "--min-frames", "4"]


@pytest.mark.parametrize("rows, expected", [
    ([(0, "jump"), (1, "run"), (1, "walk")], "line 4: id 1 again (line 3 has it for 'run')"),
    ([(0, "jump"), (1, "run"), (2, "Jump")], "line 4: class 'Jump' again (line 2 has 'jump'"),
    ([(0, "brush_hair"), (1, "brush hair")], "line 3: class 'brush hair' again"),
    ([(0, "jump"), ("one", "run")], "line 3: id 'one' is not a whole number"),
    ([(0, "jump"), (1,)], "line 3 is short: no name"),
    ([(0, "jump"), (2, "run")], "class ids must be 0..1 with none missing; missing [1]"),
])
def test_a_bad_labels_csv_is_named_with_its_line(raw, tmp_path, capsys, rows, expected):
    labels = write_csv(tmp_path / "labels.csv", ["id", "name"], rows)
    line = error_line(shard_main(csv_argv(raw, tmp_path / "out", labels=labels)), capsys)
    assert line.startswith(f"error: {labels}: ") and expected in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("header, rows, template, expected", [
    (["path", "label"], [("v0.mp4", "jump"), ("v1.mp4",)], None, "line 3 is short: no label"),
    (KINETICS_HEADER, [("jump", "abc", 1)], None, "line 2 is short: no time_end"),
    (KINETICS_HEADER, [("jump", "abc", "", 10, "train")], None, "line 2: time_start is empty"),
    (KINETICS_HEADER, [("jump", "abc", "1", "ten", "train")], None, "line 2: time_end 'ten' is not a number"),
    (KINETICS_HEADER, [("jump", "abc", 1, 10, "train")], "{id}.mp4", "line 2 has no field {id}; the fields are"),
    (KINETICS_HEADER, [("jump", "abc", 1, 10, "train")], "{youtube_id:06d}.mp4", "line 2 does not fit"),
])
def test_a_bad_annotation_row_is_named_with_its_line(raw, tmp_path, capsys, header, rows, template, expected):
    annotations = write_csv(tmp_path / "annotations.csv", header, rows)
    argv = csv_argv(raw, tmp_path / "out", annotations=annotations)
    if header == KINETICS_HEADER:
        argv[argv.index("csv")] = "kinetics"
    if template:
        argv += ["--path-template", template]
    line = error_line(shard_main(argv), capsys)
    assert str(annotations) in line and expected in line
    assert template is None or f"--path-template {template!r}" in line


def test_an_unwritable_out_is_named(raw, tmp_path, capsys, monkeypatch):
    # A file where a folder should be fails for root too.
    (tmp_path / "file").write_text("")
    line = error_line(shard_main(csv_argv(raw, tmp_path / "file" / "out")), capsys)
    assert line == f"error: cannot write {tmp_path / 'file' / 'out'}: Not a directory"
    # No permission: root may write anywhere, so the refusal mkdir would get is raised here.
    out = tmp_path / "denied" / "out"

    def refuse(path, mode=0o777):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    line = error_line(shard_main(csv_argv(raw, out)), capsys)
    assert line == f"error: cannot write {out}: Permission denied; choose a writable --out or fix its permissions"


def test_a_full_disk_names_the_folder_and_a_rerun_finishes(raw, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    real_addfile = tarfile.TarFile.addfile
    written = []

    def fill_up(archive, info, fileobj=None):
        if len(written) == 5:  # the disk fills while the second sample is written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(info.name)
        return real_addfile(archive, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", fill_up)
    line = error_line(shard_main(csv_argv(raw, out) + ["--workers", "2"]), capsys)
    assert line == (f"error: no space left on the disk of {out}: free space or choose another --out, then re-run "
                    "the same command (finished shards are kept)")
    monkeypatch.setattr(tarfile.TarFile, "addfile", real_addfile)
    assert shard_main(csv_argv(raw, out)) == 0  # the lock went with the failed build
    assert shard_main(["verify", str(out)]) == 0
