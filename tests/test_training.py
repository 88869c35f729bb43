"""launch.py end to end on CPU: real shards, real DALI loader, real DeepSpeed engine, real checkpoints."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ecosystem_fixtures import error_line
from media import write_video
from training.report_table import val_curve
from training_fixtures import REPO, launch, records, settings, training_shards

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict:
    return training_shards(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory) -> Path:
    exp_dir = tmp_path_factory.mktemp("run") / "exp"
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return exp_dir


def test_training_lowers_the_loss_and_writes_checkpoints_logs_and_results(trained):
    losses = [entry["loss"] for entry in records(trained, "train")]
    per_epoch = len(losses) // 2
    assert len(losses) == 2 * per_epoch and per_epoch >= 5
    assert sum(losses[per_epoch:]) / per_epoch < sum(losses[:per_epoch]) / per_epoch
    val = records(trained, "val")
    assert len(val) == 2 and all(0.0 <= entry["top1"] <= 100.0 for entry in val)
    for path in ("config.yaml", "checkpoints/best.pt", "checkpoints/last.pt", "checkpoints/deepspeed/latest"):
        assert (trained / path).exists(), path
    assert any((trained / "tensorboard").rglob("events.out.tfevents.*"))
    plotted = {path.stem for path in (trained / "csv").rglob("*.csv")}
    assert {"train_loss", "val_top1"} <= plotted
    # Where a row belongs (its epoch, a start, a resume) is in metrics.jsonl, not plotted as a measurement;
    # the epoch is plotted once, with the training rows.
    assert not {"val_epoch", "data_epoch", "start_epoch", "start_resumed"} & plotted, plotted


def test_multi_view_test_writes_results(trained, shards):
    result = launch("test", "--config", "configs/demo.yaml", *settings(shards, trained, **{
        "test.num_clips": 2, "test.num_crops": 3}), "--checkpoint", trained / "checkpoints" / "best.pt")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((trained / "results-test.json").read_text())
    assert results["videos"] == 20 and results["views"] == "2 clip(s) x 3 crop(s)"
    assert len(results["predictions"]) == 20
    best = json.loads(json.dumps(records(trained, "val")))
    assert results["mode"] == "test" and 0 <= results["top1"] <= 100 and best


def test_zero_shot_uses_the_held_out_label_set(trained, shards):
    result = launch("zero-shot", "--config", "configs/demo.yaml", *settings(shards, trained, **{
        "test.shards": shards["zeroshot"], "test.labels": shards["zeroshot_labels"]}),
        "--checkpoint", trained / "checkpoints" / "best.pt")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((trained / "results-zero-shot.json").read_text())["evaluations"][0]
    names = [line.split(",", 1)[1] for line in shards["zeroshot_labels"].read_text().splitlines()[1:]]
    assert results["classes"] == names and results["videos"] == len(names)
    trained_on = [line.split(",", 1)[1] for line in shards["labels"].read_text().splitlines()[1:]]
    assert not set(names) & set(trained_on)


def test_predict_on_an_h264_file(trained, tmp_path):
    video = write_video(tmp_path / "clip.mp4", video_frames=30, width=96, height=64, codec="libx264")
    result = launch("predict", "--checkpoint", trained / "checkpoints" / "best.pt", video)
    assert result.returncode == 0, result.stderr[-3000:]
    probabilities = [float(token) for line in result.stdout.splitlines() for token in line.split("│")[2:3]
                     if token.strip().replace(".", "").isdigit()]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert 0.0 < sum(probabilities) <= 1.0001
    assert "clip.mp4" in result.stdout
    # A missing or unreadable file is named; the other videos are still predicted.
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video")
    mixed = launch("predict", "--checkpoint", trained / "checkpoints" / "best.pt", tmp_path / "absent.mp4", garbage,
                   video)
    assert mixed.returncode == 2 and "2 of 3 videos not predicted" in mixed.stderr, mixed.stderr[-2000:]
    assert "absent.mp4" in mixed.stderr and "garbage.mp4" in mixed.stderr and "clip.mp4" in mixed.stdout


def test_killed_run_resumes_like_an_uninterrupted_one(trained, shards, tmp_path):
    exp_dir = tmp_path / "killed"
    command = [sys.executable, "launch.py", "--config", "configs/demo.yaml", *map(str, settings(shards, exp_dir))]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "DS_ACCELERATOR": "cpu"})
    latest = exp_dir / "checkpoints" / "deepspeed" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if latest.exists() and latest.read_text().strip() == "epoch0001":
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed in epoch 2"
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir), "--resume", "auto")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout
    uninterrupted = {entry["step"]: entry for entry in records(trained, "train")}
    # The killed run may have logged a few epoch-2 steps before it died; the resumed run's come last.
    second_epoch = {entry["step"]: entry for entry in records(exp_dir, "train") if entry["epoch"] == 2}
    assert len(second_epoch) == len([e for e in uninterrupted.values() if e["epoch"] == 2])
    for entry in second_epoch.values():
        reference = uninterrupted[entry["step"]]
        assert entry["lr"] == pytest.approx(reference["lr"], rel=1e-6)
        assert entry["loss"] == pytest.approx(reference["loss"], rel=1e-3, abs=1e-4)
    assert records(exp_dir, "data")[-1]["rank_sample_ranges"] == records(trained, "data")[-1]["rank_sample_ranges"]
    # The log keeps both processes' rows; the learning curve joins them: the killed run's epoch 1, the resumed 2.
    starts = records(exp_dir, "start")
    assert [(entry["epoch"], entry["resumed"]) for entry in starts] == [(1, False), (2, True)]
    val = records(exp_dir, "val")
    assert val_curve(exp_dir) == {1: val[0]["top1"], 2: val[-1]["top1"]} and val[-1]["epoch"] == 2


class RunsCode:
    """Unpickling this runs `touch <marker>`: what a planted checkpoint file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_resume_refuses_a_checkpoint_that_would_run_code(trained, shards, tmp_path):
    """--resume reads DeepSpeed's files with weights_only=True: a planted pickle is named, not run."""
    import shutil

    exp_dir = tmp_path / "planted"
    shutil.copytree(trained, exp_dir)
    marker = tmp_path / "ran"
    states = next((exp_dir / "checkpoints" / "deepspeed").glob("epoch*/mp_rank_00_model_states.pt"))
    torch.save({"module": RunsCode(marker)}, states)
    # The latest tag must be the planted one.
    (exp_dir / "checkpoints" / "deepspeed" / "latest").write_text(states.parent.name)
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir), "--resume", "auto")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert str(states) in result.stderr and "system" in result.stderr and "--trust-checkpoint" in result.stderr
    assert not marker.exists()
    for entry_point in (["test", "--config", "configs/demo.yaml", *settings(shards, exp_dir), "--checkpoint", states],
                        ["predict", "--checkpoint", states, write_video(tmp_path / "v.mp4", video_frames=12)],
                        ["--config", "configs/demo.yaml", *settings(shards, tmp_path / "fresh", **{
                            "network.pretrained": states, "network.zero_init_residual": True})]):
        refused = launch(*entry_point)
        assert refused.returncode == 2 and str(states) in refused.stderr, refused.stderr[-2000:]
    assert not marker.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA, GPU decoding runs")
def test_gpu_decoding_on_a_machine_without_cuda_is_one_error_line(shards, tmp_path):
    result = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "exp", **{"data.decode_device": "gpu"}))
    assert error_line(result) == ("error: data.decode_device='gpu' but CUDA is not available on this machine; set "
                                  "data.decode_device=cpu or auto")


def test_resume_passes_over_a_damaged_or_missing_epoch_and_names_it(trained, shards, tmp_path):
    import shutil

    exp_dir = Path(shutil.copytree(trained, tmp_path / "damaged"))
    folder = exp_dir / "checkpoints" / "deepspeed"
    tag = (folder / "latest").read_text().strip()
    states = folder / tag / "mp_rank_00_model_states.pt"
    states.write_bytes(states.read_bytes()[:1000])
    named = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir), "--resume", folder / tag)
    assert named.returncode == 2 and f"{states} is damaged" in named.stderr, named.stderr[-2000:]
    assert "Traceback" not in named.stderr
    earlier = sorted(path.name for path in folder.glob("epoch*"))[-2]
    resumed = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir), "--resume", "auto")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"passed over {states} is damaged" in resumed.stdout and f"resuming from {earlier}" in resumed.stdout
    # The epoch after the intact one was trained again and saved whole.
    assert checkpoint_whole(folder / tag)
    shutil.rmtree(folder / tag)
    gone = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir, **{"solver.epochs": 3}),
                  "--resume", "auto", "--max-steps", "1")
    assert gone.returncode == 0 and f"{folder / tag} does not exist" in gone.stdout, gone.stderr[-2000:]


def checkpoint_whole(tag_folder: Path) -> bool:
    from training.checkpoint import tag_problem

    return tag_problem(tag_folder, world_size=1) is None


def test_a_new_run_does_not_replace_an_earlier_runs_checkpoints(trained, shards):
    before = (trained / "checkpoints" / "best.pt").read_bytes()
    again = launch("--config", "configs/demo.yaml", *settings(shards, trained))
    assert again.returncode == 2 and "--resume auto" in again.stderr and "--overwrite" in again.stderr, again.stderr
    assert (trained / "checkpoints" / "best.pt").read_bytes() == before


def test_bf16_trains_a_resnet_tower_with_batch_norm(shards, tmp_path):
    """DeepSpeed casts parameters to bf16; the BatchNorm statistics must be cast with them."""
    result = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "bf16", **{
        "deepspeed.precision": "bf16"}), "--max-steps", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(records(tmp_path / "bf16", "train")) == 2
    # Written to a pipe, progress is plain lines, one per logged step, never a redrawn bar cut at 80 columns.
    assert re.search(r"^epoch 1/2  1/\d+  loss \d\.\d{4}  lr .* clips/s  wait \d+%  \d\d:\d\d:\d\d$", result.stdout,
                     re.MULTILINE), result.stdout[-2000:]
    assert "…" not in result.stdout


def test_two_ranks_read_different_samples(shards, tmp_path):
    exp_dir = tmp_path / "two"
    launcher = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", "29731"]
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir, **{"solver.epochs": 1}),
                    launcher=launcher)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranges = records(exp_dir, "data")[0]["rank_sample_ranges"]
    assert len(ranges) == 2 and ranges[0][1] == ranges[1][0] and ranges[0][0] == 0 and ranges[1][1] == 60
    assert (exp_dir / "checkpoints" / "last.pt").exists()
    single_rank_steps = 60 // 8
    assert records(exp_dir, "train")[-1]["step"] == 60 // 2 // 8 < single_rank_steps


def test_bad_inputs_fail_with_clear_errors(shards, tmp_path):
    typo = launch("--config", "configs/demo.yaml", "--set", "solver.lr_warmup_steps=3")
    assert typo.returncode == 2 and "unknown key 'solver.lr_warmup_steps'" in typo.stderr
    assert "did you mean 'solver.lr_warmup_step'" in typo.stderr
    wrong_type = launch("--config", "configs/demo.yaml", "--set", "data.batch_size=many")
    assert wrong_type.returncode == 2 and "'data.batch_size' must be int" in wrong_type.stderr
    missing = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "x", **{
        "data.train_shards": tmp_path / "nowhere"}))
    assert missing.returncode == 2 and "'data.train_shards'" in missing.stderr and "nowhere" in missing.stderr
    import shutil

    without_index = shutil.copytree(shards["train"].parent, tmp_path / "no-index")
    next(without_index.glob("motion-train-*.idx")).unlink()
    no_index = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "z", **{
        "data.train_shards": without_index / shards["train"].name}))
    assert no_index.returncode == 2 and "has no DALI index" in no_index.stderr, no_index.stderr[-2000:]
    assert "Traceback" not in no_index.stderr
    duplicated = tmp_path / "duplicated.csv"
    duplicated.write_text("id,name\n0,left\n1,left\n")
    bad_labels = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "l", **{"data.labels": duplicated}))
    assert bad_labels.returncode == 2 and "'data.labels'" in bad_labels.stderr and "line 3" in bad_labels.stderr
    too_big = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "b", **{"data.batch_size": 61}))
    assert too_big.returncode == 2 and "do not fill one training batch of 61" in too_big.stderr, too_big.stderr[-2000:]
    assert "'data.batch_size'" in too_big.stderr and "Traceback" not in too_big.stderr
    import importlib.util

    if importlib.util.find_spec("wandb") is None:  # the `wandb` extra is not part of the test install
        wandb = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "w", **{"logging.wandb": True}))
        assert wandb.returncode == 2 and "pip install -e '.[wandb]'" in wandb.stderr, wandb.stderr[-2000:]
    no_checkpoint = launch("test", "--config", "configs/demo.yaml", *settings(shards, tmp_path / "y"),
                           "--checkpoint", tmp_path / "absent.pt")
    assert no_checkpoint.returncode == 2 and "absent.pt not found" in no_checkpoint.stderr


def test_label_sets_must_match_the_shards_class_for_class(trained, shards, tmp_path):
    """Same size, another order: the run stops naming the first differing id instead of scoring at chance."""
    rows = shards["labels"].read_text().splitlines()
    names = [row.split(",", 1)[1] for row in rows[1:]]
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join([rows[0], f"0,{names[1]}", f"1,{names[0]}",
                                  *(f"{i},{name}" for i, name in enumerate(names[2:], 2))]) + "\n")
    train = launch("--config", "configs/demo.yaml", *settings(shards, tmp_path / "t", **{"data.labels": swapped}))
    assert train.returncode == 2 and "swapped.csv" in train.stderr, train.stderr[-2000:]
    assert f"class id 0 is '{names[1]}' in one and '{names[0]}' in the other (2 of" in train.stderr
    ignored = launch("test", "--config", "configs/demo.yaml", *settings(shards, trained, **{"test.labels": swapped}),
                     "--checkpoint", trained / "checkpoints" / "best.pt")
    assert ignored.returncode == 2 and "'test.labels'" in ignored.stderr and "zero-shot" in ignored.stderr
    other_shards = launch("test", "--config", "configs/demo.yaml", *settings(shards, trained, **{
        "test.shards": shards["zeroshot"]}), "--checkpoint", trained / "checkpoints" / "best.pt")
    assert other_shards.returncode == 2 and "unseen-zeroshot.manifest.json" in other_shards.stderr
    assert "Traceback" not in train.stderr + ignored.stderr + other_shards.stderr


def test_a_silent_rank_is_named_and_the_run_ends(shards, tmp_path):
    """Rank 1 stops answering (SIGSTOP) mid-run: rank 0's watchdog names it within the configured timeout."""
    exp_dir = tmp_path / "hung"
    launcher = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", "29733"]
    command = launcher + ["launch.py", "--config", "configs/demo.yaml", *settings(shards, exp_dir, **{
        "solver.epochs": 50, "deepspeed.timeout_minutes": 0.1})]
    with open(tmp_path / "stderr", "w") as stderr:
        run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                               env={**os.environ, "DS_ACCELERATOR": "cpu"})
    beat = exp_dir / "heartbeats" / "rank-1.json"
    try:
        deadline = time.time() + 240
        while not (beat.exists() and json.loads(beat.read_text())["step"] >= 2):
            assert run.poll() is None and time.time() < deadline, (tmp_path / "stderr").read_text()[-3000:]
            time.sleep(0.2)
        silent = json.loads(beat.read_text())["pid"]
        os.kill(silent, signal.SIGSTOP)
        stopped = time.time()
        while "stopped answering" not in (tmp_path / "stderr").read_text():
            assert time.time() - stopped < 90, (tmp_path / "stderr").read_text()[-3000:]
            time.sleep(0.5)
        os.kill(silent, signal.SIGKILL)
        assert run.wait(timeout=120) != 0
    finally:
        with contextlib.suppress(ProcessLookupError):  # the launcher and both ranks, whatever happened above
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    message = next(line for line in (tmp_path / "stderr").read_text().splitlines() if "stopped answering" in line)
    assert "error: rank 0 spent over 0.1 min in step" in message and f"rank 1 (pid {silent} on" in message, message


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_zero_stages_2_and_3_train_and_export_the_weights_they_scored(shards, tmp_path, zero_stage):
    """ZeRO partitions gradients (2) and parameters (3) across ranks; best.pt must still hold the whole model:
    testing it scores exactly what validation scored at the end of training."""
    exp_dir = tmp_path / f"zero{zero_stage}"
    extra = {"solver.epochs": 1, "deepspeed.zero_stage": zero_stage}
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir, **extra))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tested = launch("test", "--config", "configs/demo.yaml", *settings(shards, exp_dir, **extra))
    assert tested.returncode == 0, tested.stderr[-3000:]
    scored = json.loads((exp_dir / "results-test.json").read_text())
    assert scored["top1"] == pytest.approx(records(exp_dir, "val")[-1]["top1"], abs=1e-6)
    assert scored["top5"] == pytest.approx(records(exp_dir, "val")[-1]["top5"], abs=1e-6)
    weights = torch.load(exp_dir / "checkpoints" / "best.pt", weights_only=True)["state_dict"]
    assert all(value.numel() > 0 for value in weights.values())  # no ZeRO-3 partition placeholders
    assert all(value.dtype == torch.float32 for value in weights.values() if value.is_floating_point())


def test_two_nodes_rehearsed_on_one_machine_train_and_consolidate(shards, tmp_path):
    """The DeepSpeed launcher's multi-node mode without ssh (`--no_ssh --node_rank N`), one process per
    "node": the two ranks split the data, ZeRO-2 partitions the optimiser, rank 0 writes best.pt whole."""
    exp_dir = tmp_path / "nodes"
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node-a slots=1\nnode-b slots=1\n")
    extra = {"solver.epochs": 1, "deepspeed.zero_stage": 2}
    runs = []
    for node in (0, 1):
        command = [str(Path(sys.executable).parent / "deepspeed"), "--hostfile", str(hostfile), "--no_ssh",
                   "--num_nodes", "2", "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port",
                   "29735", "--num_gpus", "1", "launch.py", "--config", "configs/demo.yaml",
                   *settings(shards, exp_dir, **extra)]
        runs.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env={**os.environ, "DS_ACCELERATOR": "cpu"}))
    try:
        outputs = [run.communicate(timeout=300)[0] for run in runs]
    finally:
        for run in runs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    ranges = records(exp_dir, "data")[0]["rank_sample_ranges"]
    assert ranges == [[0, 30], [30, 60]]
    tag = (exp_dir / "checkpoints" / "deepspeed" / "latest").read_text().strip()
    assert len(list((exp_dir / "checkpoints" / "deepspeed" / tag).glob("*optim_states.pt"))) == 2
    tested = launch("test", "--config", "configs/demo.yaml", *settings(shards, exp_dir, **extra))
    assert tested.returncode == 0, tested.stderr[-2000:]
    scored = json.loads((exp_dir / "results-test.json").read_text())
    assert scored["top1"] == pytest.approx(records(exp_dir, "val")[-1]["top1"], abs=1e-6)
