"""`step`: training-step clips/s of the model alone on a batch already on the device (no loading).

One step is the trainer's: its model and prompts from the run config, its DeepSpeed engine (precision,
ZeRO, clipping, AdamW groups), forward, KL loss, backward, optimiser step. FLOPs are counted once with
torch.utils.flop_counter; MFU compares the achieved rate with the bf16 matmul rate measured here.
"""
from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from actionclip import actionclip_loss, param_groups
from pipelines.batch import torch_dtype

from benchmarks.data import BenchmarkError
from benchmarks.settings import Settings
from benchmarks.stats import summarize, synchronize
from benchmarks.trainer import training_config

# (size, timed repeats) of the square bf16 matmul that probes the peak rate: big enough to saturate the
# device, small enough to take about a second.
MATMUL_PROBE = {"cuda": (8192, 10), "cpu": (2048, 4)}
# Optimiser steps per epoch the engine's LR schedule is built for; throughput does not depend on it.
SCHEDULE_STEPS = 1000


def matmul_rate(device: torch.device, dtype: torch.dtype = torch.bfloat16) -> float:
    """Measured FLOP/s of a large square matmul on `device` (mean of the timed repeats after 3 warm-ups)."""
    size, repeats = MATMUL_PROBE[device.type]
    generator = torch.Generator(device=device).manual_seed(0)
    left = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    right = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    for _ in range(3):
        torch.mm(left, right)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(left, right)
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


class TrainStep:
    """The trainer's engine and one resident batch; `__call__` runs one training step."""

    def __init__(self, settings: Settings, shards, class_names: list[str], exp_dir: Path) -> None:
        from training import components
        from training.engine import build_engine, deepspeed_config, init_distributed

        config = training_config(settings, shards, exp_dir)
        self.dist = init_distributed()
        device = self.dist.device
        torch.manual_seed(config.seed)
        model = components.model_from_config(config)
        data = config.data
        if model.image_size[0] != data.image_size:
            raise BenchmarkError(f"{config.network.arch} takes {model.image_size[0]} px frames, but --input-size is "
                                 f"{data.image_size}; make them match")
        solver = config.solver
        groups = param_groups(model, solver.lr, solver.weight_decay, solver.ratio, solver.f_ratio)
        self.engine, _ = build_engine(model, groups, config, deepspeed_config(config, SCHEDULE_STEPS, exp_dir))
        self.prompts = components.prompt_table(config, class_names, device)
        generator = torch.Generator(device=device).manual_seed(config.seed)
        dtype = torch_dtype(config.deepspeed.precision)  # what the loader would hand over
        self.video = torch.randn(data.batch_size, data.num_frames, 3, data.image_size, data.image_size, device=device,
                                 generator=generator).to(dtype)
        self.labels = torch.randint(len(class_names), (data.batch_size,), device=device, generator=generator)

    def __call__(self) -> None:
        video_embedding, text_embedding, scale = self.engine(self.video, self.prompts.sample(self.labels))
        loss = actionclip_loss(video_embedding, text_embedding, self.labels, scale)
        self.engine.backward(loss)
        self.engine.step()

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self()
        return counter.get_total_flops()


def run(settings: Settings, shards, class_names: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-step-") as exp_dir:
        step = TrainStep(settings, shards, class_names, Path(exp_dir))
        device = step.dist.device
        flops_per_clip = step.flops() / settings.run.data.batch_size  # also the first, untimed step
        for _ in range(settings.step_warmup):
            step()
        rates = []
        for _ in range(settings.step_repeats):
            synchronize(device)
            started = time.perf_counter()
            for _ in range(settings.step_iters):
                step()
            synchronize(device)
            rates.append(settings.run.data.batch_size * settings.step_iters / (time.perf_counter() - started))
        parameters = sum(p.numel() for p in step.engine.module.parameters())
        memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        del step
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    peak = matmul_rate(device)
    clips_per_s = summarize(rates, "clips/s")
    return {"status": "ok", "clips_per_s": clips_per_s, "flops_per_clip": flops_per_clip,
            "achieved_tflops": flops_per_clip * clips_per_s["median"] / 1e12,
            "matmul_bf16_tflops": peak / 1e12, "mfu": flops_per_clip * clips_per_s["median"] / peak,
            "device": str(device), "parameters": parameters, "max_memory_gib": memory,
            "classes": len(class_names)}
