"""build-shards --format list / frames / ssv2 / charades / wds on small inputs the tests make (issue #14).

Real PyAV-encoded videos and JPEG frame folders, real annotation files in each dataset's own layout, real
tars built, read back and checked with `shard_tools verify` (DALI decodes every sample).
"""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from media import decoded_frames, error_line, tar_samples, write_csv, write_frames, write_tar, write_video
from pipelines.shard_format import decode_info, decode_labels, encode_labels, read_index
from shard_tools.cli import main as shard_main
from shard_tools.shards import write_index

REPO = Path(__file__).resolve().parents[1]


def build(*argv: str) -> int:
    return shard_main(["build-shards", *argv, "--short-side", "32", "--gop", "8", "--min-frames", "4"])


def samples(out: Path, name: str, split: str) -> dict[str, tuple[dict[str, bytes], dict]]:
    """source_id -> (components, .json) of every sample of a split."""
    found = {}
    for tar_path in sorted(out.glob(f"{name}-{split}-*.tar")):
        for parts in tar_samples(tar_path).values():
            meta = json.loads(parts["json"])
            found[meta["source_id"]] = (parts, meta)
    return found


def manifest(out: Path, name: str, split: str) -> dict:
    return json.loads((out / f"{name}-{split}.manifest.json").read_text())


def labels(by_id: dict[str, tuple[dict[str, bytes], dict]]) -> dict[str, int]:
    return {source_id: int(parts["cls"]) for source_id, (parts, _) in by_id.items()}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """v0..v3.mp4 (12..15 frames, 10 fps), one in a folder with spaces, and a labels CSV jump,run."""
    folder = tmp_path_factory.mktemp("videos")
    for index in range(4):
        write_video(folder / ("my clips/v 3.mp4" if index == 3 else f"v{index}.mp4"), video_frames=12 + index,
                    width=48, height=32, fps=10)
    write_csv(folder / "labels.csv", ["id", "name"], [(0, "jump"), (1, "run")])
    return folder


def test_list_format_reads_split_lists_with_ids_names_and_absolute_paths(videos, tmp_path, capsys):
    train = tmp_path / "train.txt"
    train.write_text(f"{videos}/v0.mp4 0\n\n{videos}/v1.mp4 run\n{videos}/my clips/v 3.mp4 1\n")
    val = tmp_path / "val.txt"
    val.write_text("v2.mp4 jump\n")
    out = tmp_path / "out"
    assert build("--format", "list", "--annotations", f"train={train}", f"val={val}", "--root", str(videos),
                 "--labels", str(videos / "labels.csv"), "--name", "lst", "--out", str(out)) == 0
    train_samples, val_samples = samples(out, "lst", "train"), samples(out, "lst", "val")
    assert labels(train_samples) == {"v0": 0, "v1": 1, "v 3": 1} and labels(val_samples) == {"v2": 0}
    assert {k: decode_info(p["info"])["video_frames"] for k, (p, _) in train_samples.items()} == \
        {"v0": 12, "v1": 13, "v 3": 15}
    assert shard_main(["verify", str(out)]) == 0
    # One plain list: its split is --split-name; absolute paths need no --root.
    plain = tmp_path / "plain"
    assert build("--format", "list", "--annotations", str(train), "--split-name", "trainval", "--labels",
                 str(videos / "labels.csv"), "--name", "lst", "--out", str(plain)) == 0
    assert manifest(plain, "lst", "trainval")["num_samples"] == 3
    # A relative path without --root is named with its file and line.
    line = error_line(build("--format", "list", "--annotations", str(val), "--labels", str(videos / "labels.csv"),
                            "--name", "lst", "--out", str(tmp_path / "x")), capsys)
    assert line.startswith(f"error: {val}: line 1: path 'v2.mp4' is relative and there is no --root; pass --root")


@pytest.mark.parametrize("content, expected", [
    ("just-a-path.mp4\n", "line 1: 'just-a-path.mp4' is not 'path label'"),
    ("v0.mp4 7\n", "line 1: label '7' of"),
    ("v0.mp4 swim\n", "label 'swim' of"),
])
def test_a_bad_list_line_is_named(videos, tmp_path, capsys, content, expected):
    listed = tmp_path / "train.txt"
    listed.write_text(content)
    line = error_line(build("--format", "list", "--annotations", str(listed), "--root", str(videos), "--labels",
                            str(videos / "labels.csv"), "--name", "lst", "--out", str(tmp_path / "out")), capsys)
    assert line.startswith(f"error: {listed}: ") and expected in line


def test_class_ids_without_a_class_list_are_refused(videos, tmp_path, capsys):
    listed = tmp_path / "train.txt"
    listed.write_text("v0.mp4 0\nv1.mp4 1\n")
    line = error_line(build("--format", "list", "--annotations", str(listed), "--root", str(videos), "--name", "lst",
                            "--out", str(tmp_path / "out")), capsys)
    assert line == (f"error: {listed}: line 1: label '0' is a class id, and there is no class list to name it: "
                    "pass --labels (a CSV id,name)")


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> dict:
    """Rawframes: clip_a (12 JPEGs from img_00001), clip_b (10), clip_c listed with 12 but holding 8."""
    root = tmp_path_factory.mktemp("rawframes")
    for name, count in (("clip_a", 12), ("clip_b", 10), ("clip_c", 8)):
        write_frames(root / name, count, width=48, height=32)
    listed = root / "train.txt"
    listed.write_text("clip_a 12 0\nclip_b 10 run\nclip_c 12 1\n")
    labels_csv = write_csv(root / "labels.csv", ["id", "name"], [(0, "jump"), (1, "run")])
    argv = ["--format", "frames", "--annotations", str(listed), "--root", str(root), "--labels", str(labels_csv),
            "--frame-fps", "10", "--name", "raw"]
    out = tmp_path_factory.mktemp("frames-out")
    assert build(*argv, "--out", str(out)) == 0
    return {"root": root, "argv": argv, "out": out, "labels": labels_csv}


def test_frame_folders_become_videos_frame_for_frame(frames):
    built = samples(frames["out"], "raw", "train")
    assert labels(built) == {"clip_a": 0, "clip_b": 1}
    for name, count in (("clip_a", 12), ("clip_b", 10)):
        parts, meta = built[name]
        assert decode_info(parts["info"])["video_frames"] == count == meta["num_frames"]
        assert (meta["fps"], meta["duration"], meta["source"]) == (10.0, count / 10, str(frames["root"] / name))
        assert meta["encode"]["codec"] == "vp9" and meta["encode"]["gop"] == 8
        # Frame i is img_{i+1}: the picture brightens frame by frame from the first file on.
        green = [frame[..., 1].mean() for frame in decoded_frames(parts["mp4"])]
        assert len(green) == count and np.all(np.diff(green) > 4) and abs(green[0] - 20) < 8
    failure, = manifest(frames["out"], "raw", "train")["failures"]
    assert failure["reason"] == "missing" and "img_00009.jpg" in failure["detail"]
    assert failure["path"] == str(frames["root"] / "clip_c")
    assert shard_main(["verify", str(frames["out"])]) == 0


def test_frame_template_and_index_bias_are_options(frames, tmp_path):
    write_frames(tmp_path / "clip_d", 9, width=48, height=32, template="frame{:03d}.jpg", start=0)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{tmp_path / 'clip_d'} 9 jump\n")
    out = tmp_path / "out"
    assert build("--format", "frames", "--annotations", f"val={listed}", "--image-tmpl", "frame{:03d}.jpg",
                 "--index-bias", "0", "--labels", str(frames["labels"]), "--name", "raw", "--out", str(out)) == 0
    (parts, meta), = samples(out, "raw", "val").values()
    assert decode_info(parts["info"])["video_frames"] == 9 and meta["fps"] == 30.0  # --frame-fps default


def test_other_frame_settings_are_not_resumed(frames, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(frames["out"], out)
    line = error_line(build(*frames["argv"], "--frame-fps", "20", "--out", str(out)), capsys)
    assert "the frame folders' --image-tmpl, --index-bias or --frame-fps differ" in line
    assert build(*frames["argv"], "--out", str(out)) == 0  # the same settings resume


@pytest.mark.parametrize("extra, expected", [
    (["--image-tmpl", "img.jpg"], "--image-tmpl 'img.jpg' has no {} field for the frame number"),
    (["--image-tmpl", "img_{name}.jpg"], "--image-tmpl 'img_{name}.jpg' does not take a frame number"),
    (["--frame-fps", "0"], "--frame-fps must be > 0"),
])
def test_bad_frame_options_are_named(frames, tmp_path, capsys, extra, expected):
    line = error_line(build(*frames["argv"], *extra, "--out", str(tmp_path / "out")), capsys)
    assert expected in line


def test_a_bad_frame_count_is_named(frames, tmp_path, capsys):
    listed = tmp_path / "list.txt"
    listed.write_text("clip_a 12 0\nclip_b ten 1\n")
    argv = [str(listed) if value == str(frames["root"] / "train.txt") else value for value in frames["argv"]]
    line = error_line(build(*argv, "--out", str(tmp_path / "out")), capsys)
    assert line == f"error: {listed}: line 2: num_frames 'ten' is not a whole number ('folder num_frames label')"


def test_ssv2_official_json_files(tmp_path, capsys):
    root, annotations = tmp_path / "20bn-something-something-v2", tmp_path / "labels"
    for video_id, frames_count in (("101", 14), ("102", 12), ("201", 13)):
        write_video(root / f"{video_id}.webm", video_frames=frames_count, width=48, height=32, fps=12,
                    codec="libvpx-vp9")
    annotations.mkdir()
    classes = {"Pushing something from left to right": "0", "Putting something on something": "1",
               "Something falling like a rock": "2"}
    (annotations / "labels.json").write_text(json.dumps(classes))
    (annotations / "train.json").write_text(json.dumps([
        {"id": "101", "label": "putting a cup on a table", "template": "Putting [something] on [something]",
         "placeholders": ["a cup", "a table"]},
        {"id": "102", "label": "a pen falling like a rock", "template": "[Something] falling like a rock",
         "placeholders": ["a pen"]}]))
    (annotations / "something-something-v2-validation.json").write_text(json.dumps([
        {"id": "201", "label": "pushing a box from left to right", "template": "Pushing [something] from left to right",
         "placeholders": ["a box"]}]))
    out = tmp_path / "out"
    assert build("--format", "ssv2", "--annotations", str(annotations), "--root", str(root), "--name", "ssv2",
                 "--out", str(out)) == 0
    assert labels(samples(out, "ssv2", "train")) == {"101": 1, "102": 2}
    assert labels(samples(out, "ssv2", "val")) == {"201": 0}
    assert manifest(out, "ssv2", "train")["classes"] == list(classes)
    assert (out / "ssv2-classes.csv").read_text().splitlines() == [
        "id,name", "0,Pushing something from left to right", "1,Putting something on something",
        "2,Something falling like a rock"]
    assert shard_main(["verify", str(out)]) == 0
    (annotations / "train.json").write_text(json.dumps([{"id": "101", "label": "x"}]))
    line = error_line(build("--format", "ssv2", "--annotations", str(annotations), "--root", str(root), "--name",
                            "ssv2", "--out", str(tmp_path / "bad")), capsys)
    assert line.startswith(f"error: {annotations / 'train.json'}: entry 0 is not a video with an id and a template")


def test_ssv2_configs_do_not_flip():
    from training.config import load_config

    shipped = sorted((REPO / "configs" / "ssv2").glob("*.yaml"))
    assert shipped and all(load_config(path).data.flip is False for path in shipped)


CHARADES_HEADER = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
                   "actions", "length"]


@pytest.fixture(scope="module")
def charades(tmp_path_factory) -> dict:
    """Four 3 s videos at 10 fps: V1 (two actions), V2 (one), V3 (none) in train, T1 (three spans) in test."""
    root, folder = tmp_path_factory.mktemp("Charades_v1_480"), tmp_path_factory.mktemp("Charades")
    for video_id in ("V1", "V2", "V3", "T1"):
        write_video(root / f"{video_id}.mp4", video_frames=30, width=48, height=32, fps=10)
    (folder / "Charades_v1_classes.txt").write_text(
        "c000 Holding some clothes\nc001 Putting clothes somewhere\nc002 Taking a picture of something\n")
    row = ("S1", "Bedroom", 6, 7, "Yes", "A person ...", "clothes", "...")
    write_csv(folder / "Charades_v1_train.csv", CHARADES_HEADER, [
        ("V1", *row, "c001 0.00 1.50;c000 1.00 2.50", 3.0), ("V2", *row, "c002 0.5 2.0", 3.0),
        ("V3", *row, "", 3.0)])
    write_csv(folder / "Charades_v1_test.csv", CHARADES_HEADER, [
        ("T1", *row, "c000 0.0 1.0;c002 1.0 2.5;c000 2.0 3.0", 3.0)])
    out = tmp_path_factory.mktemp("charades-out")
    argv = ["--format", "charades", "--annotations", str(folder), "--root", str(root), "--name", "cha"]
    assert build(*argv, "--out", str(out)) == 0
    return {"root": root, "folder": folder, "argv": argv, "out": out}


def test_charades_whole_videos_are_multi_label(charades, capsys):
    out = charades["out"]
    train, test = samples(out, "cha", "train"), samples(out, "cha", "test")
    assert set(train) == {"V1", "V2"} and set(test) == {"T1"}
    for source_id, expected in (("V1", (0, 1)), ("V2", (2,))):
        parts, meta = train[source_id]
        assert decode_labels(parts["labels"]) == expected
        assert int(parts["cls"]) == decode_info(parts["info"])["label"] == meta["label"] == expected[0]
        assert meta["labels"] == list(expected) and decode_info(parts["info"])["video_frames"] == 30
        assert set(meta["sha256"]) == {"mp4", "cls", "info", "labels"}
    assert decode_labels(test["T1"][0]["labels"]) == (0, 2)
    split = manifest(out, "cha", "train")
    assert split["multi_label"] is True
    assert (split["num_inputs"], split["num_samples"], split["num_failed"]) == (3, 2, 1)
    assert split["failures"][0]["reason"] == "no-label" and split["failures"][0]["path"].endswith("V3.mp4")
    assert split["counts_per_class"] == {"Holding some clothes": 1, "Putting clothes somewhere": 1,
                                         "Taking a picture of something": 1}
    assert split["labels_per_sample"] == {"min": 1, "median": 1.5, "max": 2}
    assert shard_main(["verify", str(out)]) == 0
    capsys.readouterr()
    assert shard_main(["inspect", "--json", str(out)]) == 0
    rows = {row["split"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["train"]["multi_label"] and rows["test"]["labels_per_sample"] == {"min": 2, "median": 2, "max": 2}
    assert shard_main(["inspect", str(out)]) == 0
    assert "1/1.5/2 multi-label" in capsys.readouterr().out


def _copy_split(out: Path, tmp_path: Path, split: str) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in out.glob(f"cha-{split}*"):
        shutil.copy(path, copy / path.name)
    return copy


def test_verify_checks_the_label_set(charades, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one problem per table row, unwrapped
    copy = _copy_split(charades["out"], tmp_path, "train")
    tar_path = next(copy.glob("cha-train-*.tar"))
    entries = read_index(tar_path.with_suffix(".idx"))
    victim = next(key for key, parts in entries.items() if parts["labels"][1] == 8)  # V1's two ids
    offset, size = entries[victim]["labels"]
    data = bytearray(tar_path.read_bytes())
    data[offset:offset + size] = encode_labels([1, 7])
    tar_path.write_bytes(bytes(data))
    capsys.readouterr()
    assert shard_main(["verify", str(copy)]) == 1
    report = capsys.readouterr().out
    for expected in (".labels does not match its SHA-256", ".labels [1, 7] has ids outside 0..2",
                     "the smallest id of .labels [1, 7] is 1"):
        assert expected in report
    # A sample of a multi-label split without its .labels member.
    with tarfile.open(tar_path) as archive:
        kept = {m.name: archive.extractfile(m).read() for m in archive if m.name != f"{victim}.labels"}
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, payload in kept.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    write_index(tar_path, tar_path.with_suffix(".idx"))
    assert shard_main(["verify", str(copy)]) == 1
    assert "missing component(s) ['labels'] (the manifest says multi_label)" in capsys.readouterr().out


def test_charades_spans_are_single_label_windows(charades, tmp_path):
    out = tmp_path / "spans"
    assert build(*charades["argv"], "--charades-spans", "--out", str(out)) == 0
    train, test = samples(out, "cha", "train"), samples(out, "cha", "test")
    frames_and_label = {key: (decode_info(parts["info"])["video_frames"], int(parts["cls"]), "labels" in parts)
                        for key, (parts, _) in {**train, **test}.items()}
    assert frames_and_label == {
        "V1_0.00_1.50": (15, 1, False), "V1_1.00_2.50": (15, 0, False), "V2_0.50_2.00": (15, 2, False),
        "T1_0.00_1.00": (10, 0, False), "T1_1.00_2.50": (15, 2, False), "T1_2.00_3.00": (10, 0, False)}
    split = manifest(out, "cha", "train")
    assert "multi_label" not in split and (split["num_inputs"], split["num_failed"]) == (3, 0)
    record = json.loads((out / "cha-train.build.json").read_text())
    assert record["parameters"]["use_time_window"] is True
    assert shard_main(["verify", str(out)]) == 0


@pytest.mark.parametrize("actions, expected", [
    ("c009 0.0 1.0", "action class 'c009' is not in Charades_v1_classes.txt"),
    ("c000 0.0", "action 'c000 0.0' is not 'cNNN start end'"),
    ("c000 zero 1.0", "start 'zero' is not a number"),
])
def test_a_bad_charades_action_is_named(charades, tmp_path, capsys, actions, expected):
    folder = tmp_path / "Charades"
    shutil.copytree(charades["folder"], folder)
    write_csv(folder / "Charades_v1_train.csv", CHARADES_HEADER, [("V1", *["x"] * 8, actions, 3.0)])
    argv = [str(folder) if value == str(charades["folder"]) else value for value in charades["argv"]]
    line = error_line(build(*argv, "--out", str(tmp_path / "out")), capsys)
    assert line == f"error: {folder / 'Charades_v1_train.csv'}: line 2: {expected}"


@pytest.fixture(scope="module")
def wds_input(tmp_path_factory) -> dict:
    """video2dataset-style tars: parts/a-000.tar and a-001.tar (train), val/b-000.tar; one empty and one
    non-video member among them."""
    folder = tmp_path_factory.mktemp("wds")
    clip = {count: write_video(folder / f"clip{count}.mp4", video_frames=count, width=48, height=32,
                               fps=10).read_bytes() for count in (12, 13, 14)}

    def sample(video: bytes, label: object) -> dict[str, bytes]:
        return {"mp4": video, "txt": b"a person doing something", "json": json.dumps(
            {"url": "https://example.org/v", "label": label}).encode()}

    (folder / "parts").mkdir()
    (folder / "val").mkdir()
    write_tar(folder / "parts" / "a-000.tar", {"000000000": sample(clip[12], "run"), "000000001": sample(b"", "run")})
    write_tar(folder / "parts" / "a-001.tar", {"000000002": sample(clip[13], 0),
                                               "000000003": sample(b"not a video" * 9, "jump")})
    write_tar(folder / "val" / "b-000.tar", {"000000004": sample(clip[14], "jump")})
    write_csv(folder / "labels.csv", ["id", "name"], [(0, "jump"), (1, "run")])
    return {"folder": folder}


def test_wds_tars_are_re_encoded_with_labels_from_a_member(wds_input, tmp_path, capsys):
    folder, out = wds_input["folder"], tmp_path / "out"
    assert build("--format", "wds", "--annotations", f"train={folder}/parts/a-*.tar", f"val={folder / 'val'}",
                 "--label-key", "json:label", "--labels", str(folder / "labels.csv"), "--name", "web",
                 "--out", str(out), "--workers", "2") == 0  # the tar members travel to worker processes
    train, val = samples(out, "web", "train"), samples(out, "web", "val")
    assert labels(train) == {"000000000": 1, "000000002": 0} and labels(val) == {"000000004": 0}
    parts, meta = train["000000002"]
    assert meta["source"] == f"{folder / 'parts' / 'a-001.tar'}:000000002.mp4"
    assert decode_info(parts["info"])["video_frames"] == 13 and meta["encode"]["short_side"] == 32
    reasons = {Path(f["path"]).name: f["reason"] for f in manifest(out, "web", "train")["failures"]}
    assert reasons == {"a-000.tar:000000001.mp4": "empty", "a-001.tar:000000003.mp4": "not-a-video"}
    assert shard_main(["verify", str(out)]) == 0


@pytest.mark.parametrize("extra, expected", [
    ([], "--format wds needs --label-key"),
    (["--label-key", "json:class"], "sample 000000004: its .json has no field 'class' (['label', 'url'])"),
    (["--label-key", "cls"], "sample 000000004 has no .cls member (it has ['json', 'mp4', 'txt'])"),
    (["--label-key", "txt"], "label 'a person doing something' of"),
    (["--label-key", "txt:label"], "--label-key 'txt:label': give a member extension (txt, cls) or json:FIELD"),
])
def test_a_wds_label_that_cannot_be_read_is_named(wds_input, tmp_path, capsys, extra, expected):
    folder = wds_input["folder"]
    line = error_line(build("--format", "wds", "--annotations", str(folder / "val" / "b-000.tar"), *extra,
                            "--labels", str(folder / "labels.csv"), "--name", "web", "--out", str(tmp_path)), capsys)
    assert expected in line


def test_a_compressed_or_absent_wds_tar_is_named(wds_input, tmp_path, capsys):
    import gzip

    packed = tmp_path / "c.tar"
    packed.write_bytes(gzip.compress((wds_input["folder"] / "val" / "b-000.tar").read_bytes()))
    for given, expected in ((str(packed), f"error: {packed}: not a readable uncompressed tar"),
                            (f"{tmp_path}/none-*.tar", "no tar files there")):
        line = error_line(build("--format", "wds", "--annotations", given, "--label-key", "json:label", "--name",
                                "web", "--out", str(tmp_path / "out")), capsys)
        assert line.startswith(expected) or expected in line


def test_single_file_formats_take_one_annotation(videos, tmp_path, capsys):
    line = error_line(build("--format", "csv", "--annotations", "a.csv", "b.csv", "--name", "x", "--out",
                            str(tmp_path)), capsys)
    assert line == "error: --format csv takes one --annotations (a CSV path,label[,split]); got 2"
