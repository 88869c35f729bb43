"""The GPU path: NVDEC decoding, loader outputs on the device, and launch.py training on CUDA with bf16.

Every test here needs CUDA and skips with that reason elsewhere (`make test` lists the skips);
`benchmarks/gpu_run.sh test` runs them on the GPU machine.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from media import write_video
from pipelines import build_loader
from pipelines_fixtures import ramp_shards
from training_fixtures import launch, records, settings, training_shards

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (NVDEC decoding, CUDA training)")]
SMALL = dict(batch_size=3, num_frames=6, image_size=32, workers=2)
STEPS = 21  # 3 whole epochs of 7 steps: a run stopped inside an epoch writes no checkpoint


@pytest.mark.parametrize("codec", ["vp9", "h264", "hevc"])
def test_nvdec_decodes_sparse_clips_as_whole_videos_and_as_the_cpu_does(tmp_path_factory, codec):
    """NVDEC orders frames by timestamp: the cut streams must give the dense frames there too. Against the
    CPU decoder (VP9) or the PyAV baseline (H.264, HEVC: DALI's CPU decoder cannot read them): within
    colour-conversion rounding. Outputs are on the device in the asked dtype."""
    folder = ramp_shards(tmp_path_factory.getbasetemp() / "pipelines", codec=codec)
    common = dict(split="val", decode_device="gpu", dtype="bfloat16", **SMALL)
    sparse = build_loader(folder, "val", **common)
    dense = build_loader(folder, "val", sparse_decode=False, **common)
    reference = build_loader(folder, "val", split="val", decode_device="cpu",
                             backend="dali" if codec == "vp9" else "baseline", **SMALL)
    for ours, whole, theirs in zip(sparse, dense, reference, strict=True):
        assert ours["video"].is_cuda and ours["video"].dtype == torch.bfloat16 and ours["label"].is_cuda
        assert torch.equal(ours["video"], whole["video"])
        assert torch.equal(ours["video_id"].cpu(), theirs["video_id"].cpu())
        difference = (ours["video"].float().cpu() - theirs["video"].float().cpu()).abs()
        # Normalised units; 0.04 is about 2.5 grey levels (YUV -> RGB rounding, bf16, resampling).
        assert difference.mean() < 0.04, difference.mean()
    assert sparse.decode_stats["frames_decoded_per_clip"] < dense.decode_stats["frames_decoded_per_clip"]


def test_loader_hands_dali_device_memory_to_torch(tmp_path_factory):
    """The decoded batch leaves DALI as a CUDA tensor: no copy through host memory on the way to the engine."""
    folder = ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")
    loader = build_loader(folder, "train", split="train", decode_device="gpu", **SMALL)
    outputs = next(loader._iterator())[0]
    assert outputs["video"].is_cuda and not outputs["decode_stats"].is_cuda


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict:
    return training_shards(tmp_path_factory.mktemp("data"))


def cuda_run(shards: dict, exp_dir: Path, *args: str, zero_stage: int = 1, **extra):
    """`deepspeed --num_gpus 1 launch.py` with bf16 on the GPU (decode on NVDEC)."""
    # The runner module, not the `deepspeed` script: on the GPU machine the wheels are installed with --target.
    launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "1", "--master_port", "29741"]
    options = {"deepspeed.precision": "bf16", "deepspeed.zero_stage": zero_stage, "data.decode_device": "gpu",
               "solver.epochs": 4, **extra}
    return launch("--config", "configs/demo.yaml", *settings(shards, exp_dir, **options), *args, launcher=launcher,
                  accelerator="cuda", timeout=600)


@pytest.fixture(scope="module", params=[1, 2], ids=["zero1", "zero2"])
def cuda_trained(request, shards, tmp_path_factory) -> Path:
    exp_dir = tmp_path_factory.mktemp(f"cuda-zero{request.param}") / "exp"
    result = cuda_run(shards, exp_dir, "--max-steps", str(STEPS), zero_stage=request.param)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return exp_dir


def test_cuda_training_lowers_the_loss(cuda_trained):
    losses = [entry["loss"] for entry in records(cuda_trained, "train")]
    assert len(losses) == STEPS
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses


def test_cuda_run_resumes_where_it_stopped(cuda_trained, shards):
    zero_stage = 2 if "zero2" in str(cuda_trained) else 1
    result = cuda_run(shards, cuda_trained, "--resume", "auto", "--max-steps", str(STEPS + 7), zero_stage=zero_stage)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resumed from" in result.stdout
    steps = [entry["step"] for entry in records(cuda_trained, "train")]
    assert steps[-1] == STEPS + 7 and len(steps) > STEPS


def test_multi_view_test_and_predict_on_the_gpu(cuda_trained, shards, tmp_path):
    checkpoint = cuda_trained / "checkpoints" / "last.pt"
    tested = launch("test", "--config", "configs/demo.yaml", *settings(shards, cuda_trained, **{
        "test.num_clips": 2, "test.num_crops": 3, "data.decode_device": "gpu"}), "--checkpoint", checkpoint,
        accelerator="cuda")
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "top-1" in tested.stdout
    video = write_video(tmp_path / "clip.mp4", video_frames=30, width=96, height=64, codec="libx264")
    predicted = launch("predict", "--checkpoint", checkpoint, video, accelerator="cuda")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "clip.mp4" in predicted.stdout
