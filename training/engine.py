"""Process group and DeepSpeed engine: one code path for CPU (gloo) and GPU (NCCL)."""
from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from training.config import RunConfig, deep_merge


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare_environment(local_rank: int | None) -> None:
    """Rank variables for a plain `python launch.py` run (DeepSpeed would try MPI without them), and the
    CPU accelerator when there is no GPU. Call before importing deepspeed."""
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK=str(local_rank or 0),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


# The backend's own collective timeout comes this long after the trainer's watchdog (training.watchdog), which
# names the silent rank; the backend's is the backstop for a hang outside the watched loop.
BACKEND_TIMEOUT_MARGIN = datetime.timedelta(minutes=1)


def init_distributed(local_rank: int | None = None, timeout_minutes: float = 10.0) -> Dist:
    prepare_environment(local_rank)
    import deepspeed

    # The shared-memory all-reduce op is JIT-compiled at first init (minutes) and training does not use it.
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    use_cuda = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if use_cuda else "gloo",
                               timeout=datetime.timedelta(minutes=timeout_minutes) + BACKEND_TIMEOUT_MARGIN)
    rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", local_rank or 0))
    if use_cuda:
        torch.cuda.set_device(local)
    return Dist(rank, world_size, local, torch.device("cuda", local) if use_cuda else torch.device("cpu"))


def deepspeed_config(config: RunConfig, steps_per_epoch: int, exp_dir: Path) -> dict:
    """The DeepSpeed JSON generated from the run config; `deepspeed.config` overrides any field last."""
    solver, speed, logging = config.solver, config.deepspeed, config.logging
    precision = speed.precision
    optimizer_steps = max(steps_per_epoch // solver.grad_accumulation_steps, 1)
    generated = {
        "train_micro_batch_size_per_gpu": config.data.batch_size,
        "gradient_accumulation_steps": solver.grad_accumulation_steps,
        "gradient_clipping": solver.clip_gradient,
        "zero_optimization": {"stage": speed.zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16", "initial_scale_power": 16},
        # DeepSpeed casts only parameters to bf16/fp16; BatchNorm's running statistics (RN towers) must follow.
        "data_types": {"buffer_dtype": precision},
        # Warm-up then cosine, stepped every optimiser step; it scales each group's own lr (keeps x ratio, x f_ratio).
        "scheduler": {"type": "WarmupCosineLR", "params": {
            "total_num_steps": max(optimizer_steps * solver.epochs, 1),
            "warmup_num_steps": max(optimizer_steps * solver.lr_warmup_step, 1),  # DeepSpeed needs >= 1
            "warmup_type": "linear", "warmup_min_ratio": 0.0, "cos_min_ratio": 0.0}},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "tensorboard": {"enabled": logging.tensorboard, "output_path": str(exp_dir / "tensorboard"),
                        "job_name": "train"},
        "csv_monitor": {"enabled": logging.csv, "output_path": str(exp_dir / "csv"), "job_name": "train"},
        "wandb": {"enabled": logging.wandb, "project": logging.wandb_project},
    }
    return deep_merge(generated, speed.config)


def build_engine(model: torch.nn.Module, param_groups: list[dict], config: RunConfig, ds_config: dict):
    """DeepSpeed engine around `model` with AdamW over the ActionCLIP parameter groups."""
    import deepspeed

    optimizer = torch.optim.AdamW(param_groups, betas=tuple(config.solver.betas), eps=config.solver.eps)
    engine, _, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    return engine, scheduler
