"""build-shards / verify / inspect on videos the test makes: real PyAV encodes, real tars, real DALI reads."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from shard_tools.cli import main as shard_main
from shard_tools.encode import EncodeOptions, reencode
from pipelines.shard_format import decode_info, read_index
from pipelines.sparse import select_gops
from media import decoded_frames, tar_samples, write_csv, write_video

CLASSES = ["jump", "run", "walk"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """Good videos of varied codecs, sizes, frame rates (one with audio, one with odd dimensions), plus bad ones."""
    raw = tmp_path_factory.mktemp("raw")
    good = {
        "a.mp4": dict(video_frames=20, width=96, height=64, fps=25),
        "b.mp4": dict(video_frames=31, width=128, height=72, fps=30),
        "c.mp4": dict(video_frames=17, width=64, height=96, fps=15),
        "d.mp4": dict(video_frames=24, width=96, height=64, fps=24, audio=True),
        "e.mkv": dict(video_frames=22, width=97, height=65, fps=24, pix_fmt="yuv444p"),
        "f.avi": dict(video_frames=19, width=80, height=60, fps=20, codec="mjpeg", pix_fmt="yuvj420p"),
        "g.mp4": dict(video_frames=26, width=96, height=64, fps=25),
        "h.mp4": dict(video_frames=28, width=96, height=64, fps=25),
    }
    for name, spec in good.items():
        write_video(raw / name, **spec)
    (raw / "zero.mp4").write_bytes(b"")
    (raw / "notes.mp4").write_text("this is not a video\n")
    whole = (raw / "a.mp4").read_bytes()
    (raw / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    write_video(raw / "short.mp4", video_frames=4)
    bad = {"zero.mp4": "empty", "notes.mp4": "not-a-video", "truncated.mp4": "not-a-video",
           "short.mp4": "too-short", "absent.mp4": "missing"}
    names = list(good) + list(bad)
    rows = [(name, CLASSES[i % 3], "val" if name in ("g.mp4", "h.mp4") else "train") for i, name in enumerate(names)]
    annotations = write_csv(raw / "annotations.csv", ["path", "label", "split"], rows)
    labels = write_csv(raw / "labels.csv", ["id", "name"], list(enumerate(CLASSES)))
    out = tmp_path_factory.mktemp("shards")
    argv = ["build-shards", "--format", "csv", "--annotations", str(annotations), "--root", str(raw),
            "--labels", str(labels), "--name", "toy", "--out", str(out), "--short-side", "48",
            "--max-samples", "2", "--gop", "8", "--workers", "2"]
    assert shard_main(argv) == 0
    return {"raw": raw, "out": out, "argv": argv, "good": good, "bad": bad, "rows": rows}


def _manifest(out: Path, split: str) -> dict:
    return json.loads((out / f"toy-{split}.manifest.json").read_text())


def test_counts_reconcile_and_failures_are_named(dataset):
    train = _manifest(dataset["out"], "train")
    assert train["num_samples"] + train["num_failed"] == train["num_inputs"] == 11
    assert train["num_samples"] == 6
    reasons = {Path(f["path"]).name: f["reason"] for f in train["failures"]}
    assert reasons == dataset["bad"]
    logged = [json.loads(line) for line in (dataset["out"] / "toy-train.failures.jsonl").read_text().splitlines()]
    assert {Path(f["path"]).name for f in logged} == set(dataset["bad"])
    assert sum(train["counts_per_class"].values()) == train["num_samples"]
    assert [s["samples"] for s in train["shards"]] == [2, 2, 2]
    val = _manifest(dataset["out"], "val")
    assert (val["num_samples"], val["num_failed"]) == (2, 0)


def test_frame_counts_sizes_and_labels_are_exact(dataset):
    by_source = {}
    for tar_path in sorted(dataset["out"].glob("toy-*.tar")):
        for key, parts in tar_samples(tar_path).items():
            meta = json.loads(parts["json"])
            info = decode_info(parts["info"])
            by_source[Path(meta["source"]).name] = (key, info, meta, parts)
    assert set(by_source) == set(dataset["good"])
    labels = {name: CLASSES.index(label) for name, label, _ in dataset["rows"]}
    for name, spec in dataset["good"].items():
        key, info, meta, parts = by_source[name]
        assert "." not in key
        assert info["video_frames"] == spec["video_frames"] == len(decoded_frames(parts["mp4"]))
        assert min(info["height"], info["width"]) == 48 and info["height"] % 2 == info["width"] % 2 == 0
        assert info["label"] == int(parts["cls"]) == labels[name] == meta["label"]
        assert meta["label_name"] == CLASSES[labels[name]]


def test_samples_are_shuffled_across_shards_deterministically(dataset, tmp_path):
    order = [json.loads(p["json"])["source"] for t in sorted(dataset["out"].glob("toy-train-*.tar"))
             for p in tar_samples(t).values()]
    listed = [str(dataset["raw"] / name) for name, _, split in dataset["rows"] if split == "train"]
    assert sorted(order) == sorted(o for o in listed if Path(o).name in dataset["good"])
    assert order != [o for o in listed if o in order]  # the build order is not the annotation order
    again = tmp_path / "again"
    argv = [a if a != str(dataset["out"]) else str(again) for a in dataset["argv"]]
    assert shard_main(argv + ["--split", "train", "--workers", "1"]) == 0
    for tar_path in sorted(dataset["out"].glob("toy-train-*.tar")):
        assert (again / tar_path.name).read_bytes() == tar_path.read_bytes()


def test_resume_rebuilds_only_the_deleted_shard(dataset, tmp_path):
    out = tmp_path / "resume"
    argv = [a if a != str(dataset["out"]) else str(out) for a in dataset["argv"]] + ["--split", "train"]
    assert shard_main(argv) == 0
    tars = sorted(out.glob("toy-train-*.tar"))
    before = {t.name: (t.read_bytes(), t.stat().st_mtime_ns) for t in tars}
    os.remove(tars[1])
    os.remove(tars[1].with_suffix(".idx"))
    assert shard_main(argv) == 0
    manifest = _manifest(out, "train")
    assert manifest["skipped_finished_shards"] == 2
    assert manifest["encoded_now"] < manifest["num_inputs"]
    assert manifest["num_samples"] + manifest["num_failed"] == manifest["num_inputs"]
    for tar_path in sorted(out.glob("toy-train-*.tar")):
        data, mtime = before[tar_path.name]
        assert tar_path.read_bytes() == data
        assert (tar_path.stat().st_mtime_ns == mtime) == (tar_path.name != tars[1].name)


def test_webdataset_library_reads_the_shards(dataset):
    urls = [str(p) for p in sorted(dataset["out"].glob("toy-train-*.tar"))]
    records = list(wds.WebDataset(urls, shardshuffle=False).decode().to_tuple("__key__", "cls", "json"))
    assert len(records) == 6
    for key, label, meta in records:
        assert meta["key"] == key and meta["label"] == label


def test_dali_reads_index_info_and_decodes_the_stored_frame_count(dataset):
    from nvidia.dali import fn, pipeline_def, types

    tars = sorted(str(p) for p in dataset["out"].glob("toy-train-*.tar"))

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def read_and_decode():
        video, info = fn.readers.webdataset(paths=tars, index_paths=[t[:-4] + ".idx" for t in tars],
                                            ext=["mp4", "info"], dtypes=[types.UINT8, types.INT32],
                                            name="reader")
        return fn.decoders.video(video, device="cpu"), info

    pipeline = read_and_decode()
    pipeline.build()
    seen = 0
    for _ in range(3):
        frames, info = pipeline.run()
        for i in range(len(frames)):
            record = np.array(info[i])
            assert record.dtype == np.int32 and record.shape == (4,)
            assert np.array(frames[i]).shape == (record[1], record[2], record[3], 3)
            seen += 1
    assert seen == 6


@pytest.mark.parametrize("codec", ["mjpeg", "h264", "hevc"])
def test_other_codecs_build_and_verify(dataset, tmp_path, codec):
    out = tmp_path / codec
    argv = [a if a != str(dataset["out"]) else str(out) for a in dataset["argv"]]
    assert shard_main(argv + ["--codec", codec, "--split", "val", "--workers", "1"]) == 0
    manifest = _manifest(out, "val")
    assert manifest["encode"]["codec"] == codec and manifest["num_samples"] == 2
    assert shard_main(["verify", str(out)]) == 0
    for sample in tar_samples(next(out.glob("toy-val-*.tar"))).values():
        with av.open(io.BytesIO(sample["mp4"])) as container:
            stream = container.streams.video[0]
            keyframes = [packet.is_keyframe for packet in container.demux(stream) if packet.size]
        assert stream.codec_context.name == codec
        # Intra-only MJPEG aside, a keyframe starts every --gop 8 frames and only there (closed GOPs: sparse cuts).
        assert keyframes == [True] * len(keyframes) if codec == "mjpeg" else [i % 8 == 0 for i in range(len(keyframes))]
        assert select_gops(sample["mp4"], [len(keyframes) - 1]).sparse


@pytest.mark.parametrize("codec", ["vp9", "h264", "hevc"])
def test_the_gop_grid_is_the_builds_whatever_the_sources_keyframes(tmp_path, codec):
    """Decoded frames keep their source's picture types; the encoder must not take them as orders."""
    source = write_video(tmp_path / "gop5.mp4", video_frames=40, gop=5)  # keyframes at 0, 5, 10, ...
    encoded = reencode(source, EncodeOptions(codec=codec, short_side=48, gop=8))
    with av.open(io.BytesIO(encoded.data)) as container:
        keyframes = [packet.is_keyframe for packet in container.demux(video=0) if packet.size]
    assert encoded.video_frames == 40 and keyframes == [i % 8 == 0 for i in range(40)]


def test_verify_passes_clean_shards_and_names_an_overwritten_sample(dataset, tmp_path, capsys):
    assert shard_main(["verify", str(dataset["out"])]) == 0
    broken = tmp_path / "broken.tar"
    source = sorted(dataset["out"].glob("toy-train-*.tar"))[0]
    broken.write_bytes(source.read_bytes())
    broken.with_suffix(".idx").write_text(source.with_suffix(".idx").read_text())
    entries = read_index(broken.with_suffix(".idx"))
    victim, components = list(entries.items())[1]
    offset, size = components["mp4"]
    data = bytearray(broken.read_bytes())
    data[offset + size // 4: offset + size - 8] = b"\x05" * (size - 8 - size // 4)
    broken.write_bytes(bytes(data))
    capsys.readouterr()
    assert shard_main(["verify", str(broken)]) == 1
    report = capsys.readouterr().out
    assert victim in report and "broken.tar" in report
    others = [key for key in entries if key != victim]
    assert not any(key in report for key in others)


def test_verify_flags_a_stale_index(dataset, tmp_path, capsys):
    source = sorted(dataset["out"].glob("toy-val-*.tar"))[0]
    copy = tmp_path / source.name
    copy.write_bytes(source.read_bytes())
    lines = source.with_suffix(".idx").read_text().splitlines()
    fields = lines[1].split()
    fields[1] = str(int(fields[1]) + 512)
    copy.with_suffix(".idx").write_text("\n".join([lines[0], " ".join(fields), *lines[2:]]) + "\n")
    assert shard_main(["verify", str(copy)]) == 1
    assert "index entry does not match" in capsys.readouterr().out


def test_inspect_summarises_every_split(dataset, capsys):
    assert shard_main(["inspect", "--json", str(dataset["out"])]) == 0
    rows = {row["split"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["train"]["samples"] == 6 and rows["train"]["shards"] == 3 and rows["train"]["failed"] == 5
    assert rows["train"]["frames_per_clip"] == {"min": 17, "median": 21.0, "max": 31}
    assert rows["val"]["codec"] == "vp9" and rows["val"]["gop"] == 8
    assert shard_main(["inspect", str(dataset["out"])]) == 0
    assert "frames min/median/max" in capsys.readouterr().out


def test_strict_and_nothing_written_exit_non_zero(dataset, tmp_path):
    out = tmp_path / "strict"
    argv = [a if a != str(dataset["out"]) else str(out) for a in dataset["argv"]]
    assert shard_main(argv + ["--split", "train", "--strict"]) == 1
    only_bad = write_csv(tmp_path / "bad.csv", ["path", "label"], [("zero.mp4", "run"), ("absent.mp4", "jump")])
    assert shard_main(["build-shards", "--format", "csv", "--annotations", str(only_bad), "--root",
                       str(dataset["raw"]), "--name", "bad", "--out", str(tmp_path / "bad")]) == 1


def test_unknown_label_is_named(dataset, tmp_path, capsys):
    annotations = write_csv(tmp_path / "ann.csv", ["path", "label"], [("a.mp4", "swim")])
    labels = dataset["raw"] / "labels.csv"
    assert shard_main(["build-shards", "--format", "csv", "--annotations", str(annotations), "--root",
                       str(dataset["raw"]), "--labels", str(labels), "--name", "x", "--out", str(tmp_path)]) == 2
    assert "'swim'" in capsys.readouterr().err


def test_dataset_formats(tmp_path):
    """Kinetics, UCF101, HMDB51 and folder annotations all become shards with the right labels."""
    video = write_video(tmp_path / "src.mp4", video_frames=30, fps=10)
    # Kinetics: a full-length source cut to its [start, end) window.
    kinetics_root = tmp_path / "k400"
    kinetics_root.mkdir()
    (kinetics_root / "abc_000001_000002.mp4").write_bytes(video.read_bytes())
    kinetics_csv = write_csv(tmp_path / "k400.csv", ["label", "youtube_id", "time_start", "time_end", "split"],
                              [("air drumming", "abc", 1, 2, "val")])
    # UCF101 official lists.
    ucf_lists, ucf_root = tmp_path / "ucfTrainTestlist", tmp_path / "UCF-101"
    ucf_lists.mkdir()
    for name in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Archery/v_Archery_g02_c01.avi"):
        (ucf_root / name).parent.mkdir(parents=True, exist_ok=True)
        (ucf_root / name).write_bytes(video.read_bytes())
    (ucf_lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 ApplyLipstick\n3 Archery\n")
    (ucf_lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n")
    (ucf_lists / "testlist01.txt").write_text("Archery/v_Archery_g02_c01.avi\n")
    # HMDB51 official lists: 1 = train, 2 = test, 0 = unused.
    hmdb_lists, hmdb_root = tmp_path / "hmdb_splits", tmp_path / "hmdb51"
    hmdb_lists.mkdir()
    for class_name, clip in (("brush_hair", "x1.avi"), ("cartwheel", "y1.avi")):
        (hmdb_root / class_name).mkdir(parents=True)
        (hmdb_root / class_name / clip).write_bytes(video.read_bytes())
    (hmdb_lists / "brush_hair_test_split1.txt").write_text("x1.avi 1 \nunused.avi 0 \n")
    (hmdb_lists / "cartwheel_test_split1.txt").write_text("y1.avi 2 \n")
    shared = Path(__file__).resolve().parents[1] / "configs" / "labels"
    builds = {
        "k400": (["--format", "kinetics", "--annotations", str(kinetics_csv), "--root", str(kinetics_root),
                  "--use-time-window", "--labels", str(shared / "kinetics400.csv")], {"val": (1, 10)}),
        "ucf": (["--format", "ucf101", "--annotations", str(ucf_lists), "--root", str(ucf_root),
                 "--labels", str(shared / "ucf101.csv")], {"train": (0, 30), "test": (2, 30)}),
        "hmdb": (["--format", "hmdb51", "--annotations", str(hmdb_lists), "--root", str(hmdb_root),
                  "--labels", str(shared / "hmdb51.csv")], {"train": (0, 30), "test": (1, 30)}),
        "folder": (["--format", "folder", "--root", str(hmdb_root)], {"train": None}),
    }
    for name, (argv, expected) in builds.items():
        out = tmp_path / f"out-{name}"
        assert shard_main(["build-shards", *argv, "--name", name, "--out", str(out), "--short-side", "32",
                           "--min-frames", "4"]) == 0, name
        for split, label_and_frames in expected.items():
            manifest = json.loads((out / f"{name}-{split}.manifest.json").read_text())
            infos = [decode_info(p["info"]) for t in sorted(out.glob(f"{name}-{split}-*.tar"))
                     for p in tar_samples(t).values()]
            if label_and_frames is None:
                assert sorted(i["label"] for i in infos) == [0, 1]
                assert (out / f"{name}-classes.csv").read_text().splitlines()[1:] == ["0,brush_hair", "1,cartwheel"]
            else:
                assert [(i["label"], i["video_frames"]) for i in infos] == [label_and_frames], (name, split)
            assert manifest["num_failed"] == 0


def test_audio_only_input_is_no_video_stream_and_split_names_are_stripped(tmp_path):
    import av
    import numpy as np

    from shard_tools.encode import EncodeOptions, VideoRejected, reencode
    from shard_tools.inputs import VideoInput

    audio = tmp_path / "speech.m4a"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(20):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, index * 1024
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    with pytest.raises(VideoRejected) as caught:
        reencode(str(audio), EncodeOptions())
    assert caught.value.reason == "no-video-stream"
    assert VideoInput("a.mp4", "x", " train ", "a").split == "train"
