"""What the ecosystem tests share: a small checkpoint of this trainer, and how a refused command reads."""
from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from training import checkpoint, components
from training.config import RunConfig, with_values

TINY = {"network.arch": "ViT-Tiny-16", "network.pretrained": "none", "data.num_segments": 4, "data.input_size": 64,
        "network.sim_header": "Transf"}
CLASSES = ["juggling balls", "archery", "surfing water", "riding a bike"]


def tiny_config(**values) -> RunConfig:
    return with_values(RunConfig(), {**TINY, **values}, "test")


def tiny_checkpoint(path: Path, seed: int, **values) -> Path:
    """A best.pt of a random tiny ViT model (the network settings `values` over TINY), as training writes it."""
    torch.manual_seed(seed)
    config = tiny_config(**values)
    model = components.model_from_config(config)
    checkpoint.export_consolidated(path, model.state_dict(), components.resolved_config(config, model).as_dict(),
                                   CLASSES, 3, {"top1": 50.0})
    return path


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one `error: ...` line of a refused launch.py command: exit status 2, no traceback."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]
