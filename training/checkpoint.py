"""Checkpoints: DeepSpeed's own every epoch (resumable), plus `last.pt` / `best.pt` as one fp32 file.

The consolidated file is `{"format", "config", "classes", "epoch", "metrics", "state_dict"}` and loads with
`torch.load(weights_only=True)`. Original ActionCLIP checkpoints load through the same entry point.
"""
from __future__ import annotations

from pathlib import Path

import torch

from actionclip import ActionCLIP, import_original_checkpoint
from training.config import ConfigError

FORMAT = "actionclip-trainer/1"


def deepspeed_dir(exp_dir: Path) -> Path:
    return exp_dir / "checkpoints" / "deepspeed"


def save_epoch(engine, exp_dir: Path, client_state: dict) -> str:
    """A DeepSpeed checkpoint (model, optimiser, scheduler, client state) tagged by epoch; every rank calls."""
    tag = f"epoch{client_state['epoch']:04d}"
    engine.save_checkpoint(str(deepspeed_dir(exp_dir)), tag=tag, client_state=client_state)
    return tag


def fp32_state_dict(engine, exp_dir: Path, tag: str) -> dict[str, torch.Tensor]:
    """Full-precision weights: ZeRO's fp32 master copy when it has one, else the module's own weights."""
    if engine.zero_optimization_stage() > 0:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        return get_fp32_state_dict_from_zero_checkpoint(str(deepspeed_dir(exp_dir)), tag=tag)
    return {name: value.detach().float().cpu() for name, value in engine.module.state_dict().items()}


def export_consolidated(path: Path, state_dict: dict, config: dict, classes: list[str], epoch: int,
                        metrics: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, "config": config, "classes": list(classes), "epoch": epoch, "metrics": metrics,
                "state_dict": state_dict}, temporary)
    temporary.replace(path)


def read_checkpoint(path: str | Path) -> dict:
    """A consolidated or an original ActionCLIP checkpoint, read without executing pickled code."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint {path} not found; train first or pass --checkpoint PATH")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"{path} is not a checkpoint this trainer can read safely: {error}") from error
    if not isinstance(checkpoint, dict) or not (checkpoint.get("format") == FORMAT or "model_state_dict" in checkpoint):
        raise ConfigError(f"{path}: neither a '{FORMAT}' file (last.pt / best.pt) nor an original ActionCLIP "
                          "checkpoint (model_state_dict + fusion_model_state_dict)")
    return checkpoint


def is_consolidated(path: str | None) -> bool:
    """Whether `path` is a file this trainer exported (cheap: reads the zip's record list, not the tensors)."""
    if not path or not Path(path).is_file():
        return False
    try:
        checkpoint = torch.load(path, map_location="meta", weights_only=True, mmap=True)
    except Exception:
        return False
    return isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT


def load_weights(model: ActionCLIP, checkpoint: dict, source: str) -> None:
    if checkpoint.get("format") == FORMAT:
        missing, unexpected = model.load_state_dict(checkpoint["state_dict"], strict=False)
        if missing or unexpected:
            raise ConfigError(f"{source} does not fit this model (missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}): use the checkpoint's own network settings")
    else:
        import_original_checkpoint(model, checkpoint, source=source)


def resume_tag(exp_dir: Path, resume: str) -> tuple[str, str | None]:
    """(DeepSpeed checkpoint folder, tag) for `--resume auto` (latest here, or none) or a tag/folder path."""
    folder = deepspeed_dir(exp_dir)
    if resume == "auto":
        return str(folder), None
    path = Path(resume)
    if path.is_dir() and (path / "latest").exists():
        return str(path), None
    if path.is_dir():
        return str(path.parent), path.name
    raise ConfigError(f"--resume {resume}: not 'auto', a DeepSpeed checkpoint folder or one of its epoch tags")
