"""Re-running build-shards into a folder that has shards: nothing silently mixed or lost (issue #13).

Real builds of tiny videos the tests make: a re-run with other settings or inputs is refused naming what
differs, --overwrite rebuilds, damaged shards are named and rebuilt, one build per folder at a time, and
every sample's components carry SHA-256 hashes that verify checks.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from media import error_line, largest_packet, tar_samples, write_csv, write_video
from pipelines.pyav_decode import count_frames
from pipelines.shard_format import read_index
from shard_tools.cli import main as shard_main

CLASSES = ["jump", "run", "walk"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    """Eight tiny videos (six train, two val), their annotations and labels, and one finished build of them."""
    raw = tmp_path_factory.mktemp("raw")
    rows = []
    for index in range(8):
        write_video(raw / f"v{index}.mp4", video_frames=10 + index, width=48, height=32, fps=10)
        rows.append((f"v{index}.mp4", CLASSES[index % 3], "val" if index >= 6 else "train"))
    annotations = write_csv(raw / "annotations.csv", ["path", "label", "split"], rows)
    labels = write_csv(raw / "labels.csv", ["id", "name"], list(enumerate(CLASSES)))
    built = tmp_path_factory.mktemp("built") / "shards"
    toy = {"raw": raw, "rows": rows, "annotations": annotations, "labels": labels, "built": built}
    assert shard_main(build_argv(toy, built)) == 0
    return toy


def build_argv(toy: dict, out: Path, *extra: str, annotations: Path | None = None, labels: Path | None = None) -> list[str]:
    return ["build-shards", "--format", "csv", "--annotations", str(annotations or toy["annotations"]),
            "--root", str(toy["raw"]), "--labels", str(labels or toy["labels"]), "--name", "toy", "--out", str(out),
            "--short-side", "32", "--gop", "8", "--min-frames", "4", "--max-samples", "2", *extra]


def copy_of_build(toy: dict, tmp_path: Path) -> Path:
    out = tmp_path / "shards"
    shutil.copytree(toy["built"], out)
    return out


def snapshot(folder: Path, *suffixes: str) -> dict[str, bytes]:
    """Every file (of these suffixes) but the lock, by name."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".") and path.name.endswith(suffixes or ("",))}


@pytest.mark.parametrize("flag, expected", [
    (["--gop", "4"], "--gop was 8, now 4"),
    (["--seed", "1"], "--seed was 0, now 1"),
    (["--codec", "mjpeg"], "--codec was vp9, now mjpeg"),
    (["--short-side", "48"], "--short-side was 32, now 48"),
    (["--fps-cap", "5"], "--fps-cap was unset, now 5"),
    (["--crf", "20"], "--crf was unset, now 20"),
    (["--min-frames", "5"], "--min-frames was 4, now 5"),
    (["--max-samples", "3"], "--max-samples was 2, now 3"),
    (["--max-bytes", "1e6"], "--max-bytes was 512000000, now 1000000"),
    (["--use-time-window"], "--use-time-window was off, now on"),
])
def test_rerun_with_other_settings_is_refused_naming_the_flag(toy, tmp_path, capsys, flag, expected):
    out = copy_of_build(toy, tmp_path)
    before = snapshot(out)
    # argparse keeps the last of a repeated option, so the appended flag wins.
    line = error_line(shard_main(build_argv(toy, out, *flag)), capsys)
    assert expected in line and "toy-train.build.json" in line
    assert "--overwrite" in line and "new --out" in line
    assert snapshot(out) == before  # refused before anything was written


def _other_inputs(toy: dict, tmp_path: Path, change: str) -> tuple[Path, Path]:
    rows, labels = list(toy["rows"]), toy["labels"]
    if change == "fewer":
        rows = rows[1:]
    elif change == "relabelled":
        rows[0] = (rows[0][0], CLASSES[1], rows[0][2])
    elif change == "reordered":
        rows[0], rows[1] = rows[1], rows[0]
    elif change == "classes":
        labels = write_csv(tmp_path / "labels4.csv", ["id", "name"], list(enumerate(CLASSES + ["swim"])))
    return write_csv(tmp_path / "annotations.csv", ["path", "label", "split"], rows), labels


@pytest.mark.parametrize("change, expected", [
    ("fewer", "the split had 6 inputs, now 5"),
    ("relabelled", "class ids (other labels"),
    ("reordered", "video paths or their order"),
    ("classes", "the class list was 3 classes, now 4"),
])
def test_rerun_with_other_inputs_is_refused_naming_what_differs(toy, tmp_path, capsys, change, expected):
    out = copy_of_build(toy, tmp_path)
    annotations, labels = _other_inputs(toy, tmp_path, change)
    line = error_line(shard_main(build_argv(toy, out, "--split", "train", annotations=annotations, labels=labels)),
                      capsys)
    assert expected in line and "toy-train" in line and "--overwrite" in line


def test_overwrite_deletes_the_old_split_and_rebuilds_it(toy, tmp_path):
    out = copy_of_build(toy, tmp_path)
    assert len(list(out.glob("toy-train-*.tar"))) == 3
    assert shard_main(build_argv(toy, out, "--max-samples", "4", "--overwrite")) == 0
    fresh = tmp_path / "fresh"
    assert shard_main(build_argv(toy, fresh, "--max-samples", "4")) == 0
    # No shard of the old layout is left behind: the folder is exactly a fresh build's.
    assert snapshot(out) == snapshot(fresh)
    assert [s["samples"] for s in json.loads((out / "toy-train.manifest.json").read_text())["shards"]] == [4, 2]
    assert shard_main(build_argv(toy, out, "--max-samples", "4")) == 0  # and now it resumes as usual


def test_a_folder_without_build_record_is_refused_unless_overwrite(toy, tmp_path, capsys):
    out = copy_of_build(toy, tmp_path)
    for record in out.glob("*.build.json"):
        record.unlink()  # as an older build-shards left it
    line = error_line(shard_main(build_argv(toy, out)), capsys)
    assert "no build record toy-" in line and "--overwrite" in line
    assert shard_main(build_argv(toy, out, "--overwrite")) == 0
    assert snapshot(out) == snapshot(toy["built"])


def test_the_same_command_still_resumes_and_a_stray_record_does_not_block(toy, tmp_path):
    out = copy_of_build(toy, tmp_path)
    assert shard_main(build_argv(toy, out)) == 0
    assert json.loads((out / "toy-train.manifest.json").read_text())["encoded_now"] == 0
    # A record alone (a build killed before it finished a shard) mixes nothing: other settings may start over.
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(out / "toy-train.build.json", empty)
    assert shard_main(build_argv(toy, empty, "--gop", "4", "--split", "train")) == 0


def _truncate(tar: Path) -> None:
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])


def _garble_index(tar: Path) -> None:
    tar.with_suffix(".idx").write_bytes(b"\x00\xff not an index")


def _zero_info(tar: Path) -> None:
    offset, size = next(iter(read_index(tar.with_suffix(".idx")).values()))["info"]
    data = bytearray(tar.read_bytes())
    data[offset:offset + size] = bytes(size)
    tar.write_bytes(bytes(data))


def _drop_tar(tar: Path) -> None:
    tar.unlink()


@pytest.mark.parametrize("damage, expected", [
    (_truncate, "toy-train-000001.tar is "),
    (_garble_index, "toy-train-000001.idx is unreadable"),
    (_zero_info, "damaged .info"),
    (_drop_tar, "toy-train-000001.idx has no tar"),
])
def test_a_damaged_shard_is_named_and_rebuilt(toy, tmp_path, capsys, damage, expected):
    out = copy_of_build(toy, tmp_path)
    damage(out / "toy-train-000001.tar")
    capsys.readouterr()
    assert shard_main(build_argv(toy, out, "--split", "train")) == 0
    err = capsys.readouterr().err
    assert expected in err and "rebuilding" in err
    assert snapshot(out, ".tar", ".idx") == snapshot(toy["built"], ".tar", ".idx")
    assert shard_main(["verify", str(out)]) == 0


def test_a_second_build_into_the_same_folder_is_refused_while_the_first_holds_the_lock(toy, tmp_path, capsys):
    out = tmp_path / "locked"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from shard_tools.resume import build_lock\n"
         "with build_lock(Path(sys.argv[1])):\n    print('locked', flush=True); sys.stdin.read()", str(out)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = error_line(shard_main(build_argv(toy, out)), capsys)
        assert f"{out} is being built by another build-shards (build-shards pid {holder.pid}" in line
        assert not list(out.glob("toy-*"))
    finally:
        holder.kill()  # a crashed build: the kernel releases its lock
        holder.wait()
    assert shard_main(build_argv(toy, out)) == 0


def test_every_sample_records_the_sha256_of_its_components(toy):
    tars = sorted(toy["built"].glob("toy-*.tar"))
    samples = [parts for tar in tars for parts in tar_samples(tar).values()]
    assert len(samples) == 8
    for parts in samples:
        recorded = json.loads(parts["json"])["sha256"]
        assert recorded == {name: hashlib.sha256(parts[name]).hexdigest() for name in ("mp4", "cls", "info")}


def _copy_shard(toy: dict, tmp_path: Path) -> tuple[Path, str, dict[str, tuple[int, int]]]:
    source = toy["built"] / "toy-train-000000.tar"
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    shutil.copy(source.with_suffix(".idx"), copy.with_suffix(".idx"))
    shutil.copy(toy["built"] / "toy-train.manifest.json", tmp_path)
    key, components = list(read_index(copy.with_suffix(".idx")).items())[1]
    return copy, key, components


@pytest.mark.parametrize("flipped", [1, 8])
def test_verify_names_a_changed_mp4_that_still_decodes(toy, tmp_path, capsys, monkeypatch, flipped):
    monkeypatch.setenv("COLUMNS", "400")  # one table row per problem
    tar, key, components = _copy_shard(toy, tmp_path)
    offset, size = components["mp4"]
    data = bytearray(tar.read_bytes())
    video = bytes(data[offset:offset + size])
    packet, length = largest_packet(video)
    middle = offset + packet + length // 2
    data[middle:middle + flipped] = bytes(b ^ 0x55 for b in data[middle:middle + flipped])
    tar.write_bytes(bytes(data))
    changed = bytes(data[offset:offset + size])
    assert changed != video and count_frames(changed) == count_frames(video)  # the decode checks cannot see it
    capsys.readouterr()
    assert shard_main(["verify", str(tar)]) == 1
    report = capsys.readouterr().out
    assert key in report and tar.name in report and ".mp4 does not match its SHA-256" in report
    assert "does not decode" not in report and "decoder returns" not in report


def test_verify_names_a_changed_cls_byte(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    tar, key, components = _copy_shard(toy, tmp_path)
    offset, _ = components["cls"]
    data = bytearray(tar.read_bytes())
    data[offset] = ord("1") if data[offset] != ord("1") else ord("2")
    tar.write_bytes(bytes(data))
    capsys.readouterr()
    assert shard_main(["verify", str(tar)]) == 1
    report = capsys.readouterr().out
    assert key in report and ".cls does not match its SHA-256" in report


def test_shards_without_hashes_still_verify_with_a_note(toy, tmp_path, capsys):
    """Shards of an older build-shards (no "sha256" in the .json) pass verify's decode checks, with a note."""
    from shard_tools.shards import write_index

    source = toy["built"] / "toy-val-000000.tar"
    old = tmp_path / source.name
    with tarfile.open(source) as archive, tarfile.open(old, "w", format=tarfile.USTAR_FORMAT) as rewritten:
        for member in archive:
            data = archive.extractfile(member).read()
            if member.name.endswith(".json"):
                meta = json.loads(data)
                del meta["sha256"]
                data = json.dumps(meta, sort_keys=True).encode()
                member.size = len(data)
            rewritten.addfile(member, io.BytesIO(data))
    write_index(old, old.with_suffix(".idx"))
    capsys.readouterr()
    assert shard_main(["verify", str(old)]) == 0
    captured = capsys.readouterr()
    assert "2 sample(s) in 1 shard(s)" in captured.err and "no content hashes" in captured.err
    assert "content hashes match" not in captured.out
