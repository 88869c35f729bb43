"""benchmarks: a smoke run of every section at toy sizes through the real CLI, plus the report arithmetic."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import codecs, report as reports
from benchmarks.cli import main as bench_main, parser, report_name, settings_from
from benchmarks.data import BenchmarkError
from benchmarks.settings import resolve
from benchmarks.stats import summarize
from benchmarks.trainer import training_config

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("loader", "step", "e2e", "codecs", "lengths", "build")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m benchmarks ...` in a fresh process (the e2e section sets up torch.distributed)."""
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    data, out = root / "data", root / "reports"
    done = run_cli("report", "--preset", "smoke", "--data-dir", str(data), "--out-dir", str(out), "--name", "smoke",
                   "--note", "first")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # Read now: a later test runs again into the same folder.
    return {"data": data, "out": out, "report": json.loads((out / "smoke.json").read_text()), "stdout": done.stdout,
            "markdown": (out / "smoke.md").read_text()}


def test_smoke_report_has_every_section_with_measurements(smoke):
    report = smoke["report"]
    assert list(report["sections"]) == list(SECTIONS)
    assert all(section["status"] == "ok" for section in report["sections"].values())
    loader = report["sections"]["loader"]
    for name in ("dali", "dali-dense", "baseline"):
        rate = loader[name]["clips_per_s"]
        assert rate["repeats"] == 2 and rate["min"] > 0 and rate["min"] <= rate["median"] <= rate["max"]
        # Each repeat times the epoch minus its warm-up batch: 10 clips / batch 2 = 5 batches, 4 timed.
        assert loader[name]["timed_clips"] == 2 * 4 * 2
        assert loader[name]["cpu_ms_per_clip"]["median"] > 0 and loader[name]["cores_busy"]["median"] > 0
    assert loader["dali_vs_baseline"] == pytest.approx(
        loader["dali"]["clips_per_s"]["median"] / loader["baseline"]["clips_per_s"]["median"])
    assert loader["sparse_vs_dense"] == pytest.approx(
        loader["dali"]["clips_per_s"]["median"] / loader["dali-dense"]["clips_per_s"]["median"])
    # Sparse decoding walks through fewer frames than decoding up to the last sampled one; its GOPs are closed.
    assert 4 <= loader["dali"]["frames_decoded_per_clip"] < loader["dali-dense"]["frames_decoded_per_clip"]
    assert loader["dali"]["dense_clips"] == 0 and loader["baseline"]["frames_decoded_per_clip"] is None
    assert loader["dali"]["frames_decoded_per_s"] == pytest.approx(
        loader["dali"]["frames_decoded_per_clip"] * loader["dali"]["clips_per_s"]["median"])
    # Decoding is on the CPU here already: no second DALI row with the CPU decoder, and nothing listed twice.
    assert "dali-cpu" not in loader and loader["gpu_vs_cpu_decode"] is None and loader["shard_repeats"] == 1
    step = report["sections"]["step"]
    assert step["flops_per_clip"] > 1e6 and step["matmul_bf16_tflops"] > 0 and 0 < step["mfu"] < 1
    e2e = report["sections"]["e2e"]
    assert e2e["steps"] == 3 and e2e["clips_per_s"] > 0 and 0 <= e2e["data_wait_pct"] <= 100
    # The steady window starts after the first (logged) step; the whole run counts pipeline start too.
    assert (e2e["steady"]["from_step"], e2e["steady"]["to_step"]) == (1, 3)
    assert e2e["whole_run"]["clips_per_s"] > 0
    assert report["machine"]["cpu"] and report["machine"]["libraries"]["torch"]
    assert report["settings"]["arch"] == "ViT-Tiny-16" and report["settings"]["preset"] == "smoke"


def test_smoke_headline_ratios_come_from_the_sections(smoke):
    report = smoke["report"]
    head, sections = report["headline"], report["sections"]
    dali = sections["loader"]["dali"]["clips_per_s"]["median"]
    step = sections["step"]["clips_per_s"]["median"]
    assert head["overlap_efficiency"] == pytest.approx(sections["e2e"]["clips_per_s"] / min(dali, step))
    assert head["e2e_mfu"] == pytest.approx(sections["e2e"]["clips_per_s"] * sections["step"]["flops_per_clip"]
                                            / (sections["step"]["matmul_bf16_tflops"] * 1e12))
    assert head["sparse_vs_dense"] == sections["loader"]["sparse_vs_dense"]
    # The default set's encoding (vp9, GOP 8, short side 48) is a point of the codec sweep.
    point = next(row for row in sections["codecs"]["rows"]
                 if (row["codec"], row["gop"], row["short_side"]) == ("vp9", 8, 48))
    assert head["decode_vs_limit"] == pytest.approx(point["decode"]["dali"]["cpu_ms_per_clip"]["median"]
                                                    / point["decode"]["limit"]["cpu_ms_per_clip"]["median"])
    peers = {name: peer["cpu_ms_per_clip"]["median"] for name, peer in point["decode"]["peers"].items()
             if "error" not in peer}
    assert head["best_peer"] == min(peers, key=peers.get, default=None)
    # The smoke sweep has no 480-frame videos.
    assert head["sparse_vs_dense_long"] is None and head["long_vs_short_cost"] is None
    text = smoke["markdown"]
    for line in ("DALI vs baseline loader", "sparse vs dense decoding", "needed-GOPs limit", "best peer",
                 "overlap efficiency", "MFU, model step", "Where the time goes", "## lengths: DALI train loader",
                 "## Machine", "## Settings", "## History", "sparse/dense"):
        assert line in text
    assert f"{head['dali_vs_baseline']:.2f}x" in text and f"{head['decode_vs_limit']:.2f}x" in text
    assert "Headline" in smoke["stdout"] and "json:" in smoke["stdout"]


def test_smoke_codec_sweep_decodes_what_dali_can_on_this_device(smoke):
    section = smoke["report"]["sections"]["codecs"]
    points = {(row["codec"], row["gop"], row["short_side"]) for row in section["rows"]}
    assert points == {("vp9", 1, 48), ("vp9", 1, 32), ("vp9", 8, 48), ("vp9", 8, 32), ("h264", 1, 48),
                      ("h264", 1, 32), ("h264", 8, 48), ("h264", 8, 32), ("mjpeg", None, 48), ("mjpeg", None, 32)}
    by_point = {(row["codec"], row["gop"], row["short_side"]): row for row in section["rows"]}
    # Intra-only frames cost more bytes than a GOP of 8, and a larger short side more than a smaller one.
    assert by_point["vp9", 1, 48]["bytes_per_clip"] > by_point["vp9", 8, 48]["bytes_per_clip"]
    assert by_point["vp9", 8, 48]["bytes_per_clip"] > by_point["vp9", 8, 32]["bytes_per_clip"]
    gpu = smoke["report"]["machine"]["gpu"] is not None
    for row in section["rows"]:
        if row["codec"] == "h264" and not gpu:
            assert row["decode"] is None and "GPU" in row["decode_skipped"]
            continue
        decode = row["decode"]
        dali, dense, limit = decode["dali"], decode["dali-dense"], decode["limit"]
        assert dali["clips_per_s"]["median"] > 0 and dense["clips_per_s"]["median"] > 0
        assert dali["cpu_ms_per_clip"]["median"] > 0 and limit["cpu_ms_per_clip"]["median"] > 0
        assert limit["remux_ms_per_clip"]["median"] > 0 and dali["dense_clips"] == 0
        # The limit decodes exactly the frames the DALI decoder is fed; both fewer than the dense path.
        assert limit["frames_decoded_per_clip"] == pytest.approx(dali["frames_decoded_per_clip"])
        assert dali["frames_decoded_per_clip"] < dense["frames_decoded_per_clip"]
        if row["gop"] in (1, None):  # every frame is a keyframe: only the sampled ones are decoded
            assert dali["frames_decoded_per_clip"] == 4
        assert decode["dali_vs_limit"] == pytest.approx(dali["cpu_ms_per_clip"]["median"]
                                                        / limit["cpu_ms_per_clip"]["median"])
        assert set(decode["peers"]) == set(section["peers"])
        for peer in decode["peers"].values():
            assert peer.get("error") or peer["cpu_ms_per_clip"]["median"] > 0
    assert set(section["peers"]) | set(section["peers_missing"]) == set(codecs.PEERS)
    assert section["skipped_decode"] == ([] if gpu else ["h264"])
    if not gpu:
        assert "h264: decode skipped" in smoke["markdown"]
    build = smoke["report"]["sections"]["build"]
    assert [row["workers"] for row in build["rows"]] == [1] and build["rows"][0]["videos_per_s"] > 0


def test_smoke_length_sweep_measures_sparse_and_dense_loaders_per_length(smoke):
    section = smoke["report"]["sections"]["lengths"]
    assert [row["frames"] for row in section["rows"]] == [16, 48]
    assert section["clips_per_epoch"] == (1 + 2 + 2 * 2) * 2  # warm-up, timed, read-ahead batches; batch 2
    for row in section["rows"]:
        sparse, dense = row["sparse"], row["dense"]
        for result in (sparse, dense):
            assert result["clips_per_s"]["median"] > 0 and result["steady_cpu_ms_per_clip"]["median"] > 0
            assert result["timed_clips"] == 2 * 2 * 2  # 2 repeats x 2 timed batches x batch 2
        assert sparse["frames_decoded_per_clip"] < dense["frames_decoded_per_clip"] <= row["frames"]
        assert sparse["dense_clips"] == 0 and row["bytes_per_clip"] > 0
        assert row["sparse_vs_dense"] == pytest.approx(sparse["clips_per_s"]["median"] / dense["clips_per_s"]["median"])
    short, long = section["rows"]
    assert short["sparse_cost_vs_shortest"] == 1.0
    assert long["sparse_cost_vs_shortest"] == pytest.approx(long["sparse"]["steady_cpu_ms_per_clip"]["median"]
                                                            / short["sparse"]["steady_cpu_ms_per_clip"]["median"])
    # Dense decoding follows the video's length; sparse stays near T x GOP / 2 frames.
    assert long["dense"]["frames_decoded_per_clip"] > 2 * short["dense"]["frames_decoded_per_clip"]
    assert long["sparse"]["frames_decoded_per_clip"] < long["dense"]["frames_decoded_per_clip"] / 2


def test_peer_decoders_run_where_they_load_and_say_why_not(smoke, monkeypatch):
    from pipelines import open_shards
    from pipelines.pyav_decode import decode_frames

    def broken(data, indices):
        raise RuntimeError("cannot decode this one\nsecond line")

    def missing():
        raise ImportError("No module named 'nothing'")

    monkeypatch.setattr(codecs, "PEERS", {"pyav": lambda: decode_frames, "missing": missing,
                                          "short": lambda: lambda data, indices: decode_frames(data, indices[:1])})
    folder = next(smoke["data"].glob("synth-*/codecs-*/vp9-gop8-side48"))
    clips = codecs.epoch_clips(open_shards(folder), resolve("smoke", None, {}))
    peers, why_not = codecs.load_peers(clips[0])
    assert list(peers) == ["pyav"]
    assert why_not == {"missing": "ImportError: No module named 'nothing'", "short": "returned 1 frames for 4 indices"}
    result = codecs.peer_decode(peers["pyav"], clips, repeats=2)
    assert result["cpu_ms_per_clip"]["repeats"] == 2 and result["cpu_ms_per_clip"]["median"] > 0
    assert codecs.peer_decode(broken, clips, repeats=2) == {"error": "RuntimeError: cannot decode this one"}


def test_cpu_time_counts_running_child_processes():
    import multiprocessing
    import time

    from benchmarks.stats import cpu_seconds

    def spin_then_wait(done):
        started = time.process_time()
        while time.process_time() - started < 0.3:
            pass
        done.set()
        time.sleep(30)

    context = multiprocessing.get_context("fork")
    done = context.Event()
    before = cpu_seconds()
    child = context.Process(target=spin_then_wait, args=(done,))
    child.start()
    try:
        assert done.wait(20)
        assert cpu_seconds() - before >= 0.29  # the child still runs: read from /proc
    finally:
        child.terminate()
        child.join()
    assert cpu_seconds() - before >= 0.29  # reaped: counted once, in the children's usage


def test_plot_is_written_or_its_absence_is_reported(smoke):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in smoke["markdown"]
        assert not (smoke["out"] / "smoke.png").exists()
    else:
        assert (smoke["out"] / "smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert smoke["report"]["plot"] == "smoke.png"


def test_second_run_reuses_cached_data_and_extends_history(smoke):
    done = run_cli("loader", "--preset", "smoke", "--data-dir", str(smoke["data"]), "--out-dir", str(smoke["out"]),
                   "--name", "smoke", "--note", "one core", "--cpus", "1", "--loader-repeats", "1")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((smoke["out"] / "smoke.json").read_text())
    assert list(report["sections"]) == ["loader"] and report["data"]["cached"] is True
    assert len(report["sections"]["loader"]["cores"]) == 1
    history = [json.loads(line) for line in (smoke["out"] / "history.jsonl").read_text().splitlines()]
    assert [entry["note"] for entry in history] == ["first", "one core"]
    text = (smoke["out"] / "smoke.md").read_text()
    assert "| first |" in text and "| one core |" in text


@pytest.mark.parametrize(("arguments", "name"), [
    (["report", "--preset", "cpu"], "cpu-x-2cores"),
    (["report", "--preset", "cpu", "--sections", "e2e", "loader"], "cpu-x-2cores-loader-e2e"),
    (["loader", "--preset", "cpu"], "cpu-x-2cores-loader"),
    (["report", "--preset", "gpu"], "cpu-x-2cores"),
    (["report", "--preset", "gpu", "--sections", "loader"], "cpu-x-2cores-loader"),
    (["report", "--preset", "cpu", "--sections", "loader", "--name", "mine"], "mine")])
def test_a_run_of_fewer_sections_than_the_report_gets_its_own_file(arguments, name):
    """A loader-only run must not overwrite the machine's whole report (and put its row in that history)."""
    settings = settings_from(parser().parse_args(arguments))
    assert report_name(settings, {"gpu": None, "cpu": "X", "cpus_usable": 2}) == name


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA, GPU decoding runs")
def test_a_setting_this_machine_cannot_run_is_one_line_not_a_traceback(smoke, tmp_path):
    done = run_cli("loader", "--preset", "smoke", "--data-dir", str(smoke["data"]), "--out-dir", str(tmp_path),
                   "--set", "data.decode_device=gpu")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert "loader: data.decode_device='gpu' but CUDA is not available" in " ".join(done.stderr.split())  # rich wraps


def test_loader_section_names_the_fix_when_the_set_is_too_small(smoke):
    from benchmarks import loader

    shards = next(smoke["data"].glob("synth-*/shards-*"))
    settings = resolve("smoke", None, {"batch_size": 5, "loader_warmup": 2})
    with pytest.raises(BenchmarkError, match="2 batches of 5.*--videos-per-class.*--loader-batches"):
        loader.run(settings, shards)


def test_loader_batches_lists_a_small_set_often_enough_to_time_them(smoke):
    from benchmarks import loader

    shards = next(smoke["data"].glob("synth-*/shards-*"))  # 10 clips: 2 batches of 5
    settings = resolve("smoke", None, {"batch_size": 5, "loader_warmup": 2, "loader_batches": 3, "loader_repeats": 1})
    section = loader.run(settings, shards)
    assert section["shard_repeats"] == 3 and section["num_samples"] == 30  # (2 + 3) batches of 5 = 25 clips
    assert all(section[name]["timed_clips"] == 3 * 5 for name in ("dali", "dali-dense", "baseline"))


def test_loader_rows_add_dali_on_the_cpu_where_dali_decodes_on_the_gpu():
    from benchmarks.loader import loader_rows

    assert list(loader_rows("cpu")) == ["dali", "dali-dense", "baseline"]
    rows = loader_rows("gpu")
    assert list(rows) == ["dali", "dali-dense", "dali-cpu", "baseline"]
    assert rows["dali-cpu"] == {**rows["dali"], "decode_device": "cpu"} and "decode_device" not in rows["dali"]


def test_data_command_prints_the_shard_folder_the_sections_read(smoke):
    done = run_cli("data", "--preset", "smoke", "--data-dir", str(smoke["data"]))
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.splitlines()[-1]) == next(smoke["data"].glob("synth-*/shards-*"))


def test_e2e_lists_small_shard_sets_often_enough_for_one_epoch(smoke, tmp_path):
    from benchmarks.data import repeated_manifest
    from pipelines import open_shards

    shards = next(smoke["data"].glob("synth-*/shards-*"))
    assert repeated_manifest(shards, 10, tmp_path) == (shards, 1)
    manifest, repeats = repeated_manifest(shards, 25, tmp_path)
    repeated, once = open_shards(manifest), open_shards(shards)
    assert repeats == 3 and repeated.num_samples == 30 and repeated.keys == once.keys * 3
    assert repeated.classes == once.classes


def test_settings_precedence_preset_then_training_config_then_flags(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("data:\n  batch_size: 7\n  num_segments: 16\nnetwork:\n  arch: ViT-Tiny-16\n")
    settings = resolve("smoke", config, {"num_frames": 4, "threads": None})
    run = settings.run
    assert (run.data.batch_size, run.data.num_frames, run.network.arch) == (7, 4, "ViT-Tiny-16")
    # Every loader/model key comes from the training config, its defaults included (data.workers: 4) ...
    assert run.data.workers == 4 and run.deepspeed.precision == "bf16"
    # ... and everything else from the preset.
    assert settings.loader_repeats == 2 and settings.videos_per_class == 1
    assert resolve("cpu", None, {}).run.network.arch == "ViT-B-32"
    # report runs every section, but the gpu preset's report only those it needs (time on the GPU machine is short).
    from benchmarks.cli import parser, settings_from

    def sections(*argv: str) -> tuple:
        return settings_from(parser().parse_args(argv)).sections

    assert sections("report", "--preset", "smoke") == SECTIONS and sections("loader", "--preset", "gpu") == ("loader",)
    assert sections("report", "--preset", "gpu") == ("loader", "step", "e2e")
    assert sections("report", "--preset", "gpu", "--sections", "codecs", "loader") == ("loader", "codecs")
    assert resolve("cpu", None, {}, ["data.sparse_decode=false"]).run.data.sparse_decode is False
    # The loader rows decode where the run config says; auto: where this machine can.
    assert resolve("cpu", None, {}).decode_device == ("gpu" if torch.cuda.is_available() else "cpu")
    assert resolve("cpu", None, {}, ["data.decode_device=gpu"]).decode_device == "gpu"


@pytest.mark.parametrize("argv, message", [
    (["loader", "--preset", "smoke", "--shards", "/no/such/shards"], "--shards /no/such/shards does not exist"),
    (["step", "--preset", "smoke", "--batch-size", "0"], "--batch-size 0: 'data.batch_size' must be >= 1"),
    (["loader", "--preset", "smoke", "--cpus", "999"], "--cpus must be in"),
    (["step", "--preset", "smoke", "--sections", "loader"], "--sections goes with the report command"),
])
def test_bad_settings_exit_2_naming_the_flag(argv, message, capsys):
    assert bench_main(argv) == 2
    assert message in capsys.readouterr().err


def test_benchmark_runs_set_the_training_config_they_were_given(tmp_path):
    settings = resolve("smoke", None, {"batch_size": 3})
    config = training_config(settings, tmp_path / "shards", tmp_path / "exp", print_freq=2)
    assert config.data.batch_size == 3 == settings.run.data.batch_size
    assert config.data.num_frames == settings.run.data.num_frames == 4
    assert config.network.arch == "ViT-Tiny-16" and config.network.pretrained == "none"
    assert config.data.val_shards is None and config.deepspeed.precision == "bf16"
    assert config.data.train_shards == str(tmp_path / "shards") and config.logging.print_freq == 2


def test_summary_and_headline_arithmetic():
    summary = summarize([4.0, 2.0, 3.0], "clips/s")
    assert (summary["median"], summary["min"], summary["max"]) == (3.0, 2.0, 4.0)
    assert summary["spread_pct"] == pytest.approx(100 * 2 / 3)
    def cost(ms: float) -> dict:
        return {"cpu_ms_per_clip": {"median": ms}}

    lengths = [{"frames": 48, "sparse": {"steady_cpu_ms_per_clip": {"median": 10.0}}, "sparse_vs_dense": 1.5},
               {"frames": 480, "sparse": {"steady_cpu_ms_per_clip": {"median": 25.0}}, "sparse_vs_dense": 3.5}]
    decode = {"dali": cost(12.0), "limit": cost(10.0), "dali_vs_limit": 1.2,
              "peers": {"decord": cost(24.0), "torchcodec": cost(16.0), "other": {"error": "DECORDError: size"}}}
    sections = {"loader": {"status": "ok", "dali": {"clips_per_s": {"median": 30.0}, "frames_decoded_per_s": 960.0},
                           "dali-dense": {"clips_per_s": {"median": 20.0}}, "sparse_vs_dense": 1.5,
                           "dali-cpu": {"clips_per_s": {"median": 15.0}}, "gpu_vs_cpu_decode": 2.0,
                           "baseline": {"clips_per_s": {"median": 10.0}}, "decode_device": "gpu"},
                "step": {"status": "ok", "clips_per_s": {"median": 20.0}, "flops_per_clip": 1e12,
                         "matmul_bf16_tflops": 100.0, "mfu": 0.2},
                "e2e": {"status": "ok", "clips_per_s": 18.0, "data_wait_pct": 5.0},
                "codecs": {"status": "ok", "decoder": "cpu",
                           "rows": [{"codec": "vp9", "gop": 16, "short_side": 256, "decode": decode},
                                    {"codec": "vp9", "gop": 32, "short_side": 256, "decode": None}]},
                "lengths": {"status": "ok", "rows": lengths}}
    settings = {"arch": "ViT-B-32", "num_frames": 8, "precision": "bf16", "shard_codec": "vp9", "shard_gop": 16,
                "shard_short_side": 256}
    head = reports.compute(sections, settings, {"gpu": {"name": "NVIDIA H200"}})
    assert head["dali_vs_baseline"] == 3.0 and head["overlap_efficiency"] == pytest.approx(0.9)
    assert (head["gpu_vs_cpu_decode"], head["frames_decoded_per_s"], head["decode_device"]) == (2.0, 960.0, "gpu")
    assert head["bottleneck"] == "model step" and head["e2e_mfu"] == pytest.approx(0.18)
    assert (head["sparse_vs_dense"], head["sparse_vs_dense_long"], head["long_vs_short_cost"]) == (1.5, 3.5, 2.5)
    assert head["decode_vs_limit"] == 1.2 and head["best_peer"] == "torchcodec"
    assert head["dali_vs_best_peer"] == pytest.approx(0.75)
    assert reports.verdicts(head) == {"dali_vs_baseline": True, "sparse_vs_dense": True, "sparse_vs_dense_long": True,
                                      "long_vs_short_cost": False, "decode_vs_limit": True, "dali_vs_best_peer": True,
                                      "overlap_efficiency": True, "e2e_clips_per_s": False, "data_wait_pct": False}
    assert "model step is the bottleneck" in reports.where_time_goes(head)
    # The end-to-end targets are set for ViT-B/32 8f bf16 on a Hopper GPU; elsewhere they are not judged.
    for gpu, judged in (("NVIDIA H100 80GB HBM3", True), ("NVIDIA A100-SXM4-80GB", False), (None, False)):
        head = reports.compute(sections, settings, {"gpu": gpu and {"name": gpu}})
        verdict = reports.verdicts(head)
        assert (verdict["e2e_clips_per_s"], verdict["data_wait_pct"]) == ((False, False) if judged else (None, None))


def test_failed_section_is_reported_with_its_reason():
    sections = {"e2e": {"status": "error", "error": "trainer not available: module training.train is missing"}}
    machine = {"gpu": None, "cpu": "x", "cpus_usable": 1, "cpu_count": 1, "memory_gib": 1, "os": "Linux",
               "revision": None, "libraries": {}}
    report = {"name": "t", "created": "2026-01-01T00:00:00", "note": "", "command": ["python -m benchmarks", "e2e"],
              "headline": reports.compute(sections, {}, machine), "where_time_goes": "", "machine": machine,
              "settings": {}, "data": {}, "sections": sections}
    text = reports.markdown(report, [])
    assert "| error | trainer not available: module training.train is missing |" in text
