"""Everything a run needs, built from the config in one place: class names, model, tokenizer, loaders."""
from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from actionclip import ActionCLIP, PromptTable, build_model, resolve_model_name
from pipelines import build_loader, open_shards
from shard_tools.inputs import read_labels_csv
from training import checkpoint
from training.config import ConfigError, RunConfig, updated
from training.engine import Dist


def class_names(labels_csv: str | None, shards: str | None, key: str) -> list[str]:
    """The label set: the CSV when given, else the class names stored in the shard manifest."""
    if labels_csv:
        if not Path(labels_csv).exists():
            raise ConfigError(f"'{key}': labels file {labels_csv} not found")
        return read_labels_csv(Path(labels_csv))
    if not shards:
        raise ConfigError(f"no label set: set '{key}' (a CSV id,name) or the shards to read class names from")
    return list(open_shards(shards).classes)


def require_shards(value: str | None, key: str) -> str:
    """The shard path configured at `key`, which must exist."""
    if not value:
        raise ConfigError(f"'{key}' is not set: point it at a shard folder or manifest built by shard_tools")
    if not Path(value).exists():
        raise ConfigError(f"'{key}': {value} does not exist; build it with `shard_tools build-shards`")
    return value


def model_from_config(config: RunConfig, weights: checkpoint.Checkpoint | None = None) -> ActionCLIP:
    """The configured model with `weights` (a checkpoint already opened), else network.pretrained: an open_clip
    tag, a weights file, or this trainer's own best.pt / last.pt (e.g. to fine-tune a K400 model on UCF101)."""
    network = config.network
    if weights is None and network.pretrained and Path(network.pretrained).is_file():
        weights = checkpoint.open_checkpoint(network.pretrained, other_weights=True)
    own = weights is not None and weights.is_own
    source = weights.weights if weights is not None else network.pretrained
    try:
        model = build_model(
            network.arch, pretrained="none" if own else source, num_frames=config.data.num_frames,
            sim_header=network.sim_header, tsm=network.tsm, joint=network.joint,
            grad_checkpointing=network.grad_checkpointing, fix_text=network.fix_text, fix_img=network.fix_img,
            zero_init_residual=network.zero_init_residual)
    except ValueError as error:  # a weights file or option the model refuses: the message says which and why
        raise ConfigError(f"network: {error}") from error
    if own:
        checkpoint.load_own_weights(model, weights)
    return model


def model_for_evaluation(config: RunConfig, checkpoint_path: str | None,
                         device: torch.device) -> tuple[RunConfig, ActionCLIP, list[str] | None]:
    """(config to evaluate with, model on `device`, training classes or None) for a checkpoint, or for
    network.pretrained without one. One of this trainer's checkpoints brings its own network, frames and
    input size; an original ActionCLIP checkpoint is built as the run config says."""
    if checkpoint_path is None:
        return config, model_from_config(config).to(device), None
    opened = checkpoint.open_checkpoint(checkpoint_path)
    if opened.is_own:
        config = checkpoint_network(config, opened)
    return config, model_from_config(config, opened).to(device), opened.classes


# Settings a checkpoint carries that define its network; evaluation takes them from the checkpoint.
NETWORK_KEYS = ("arch", "sim_header", "tsm", "joint")


def checkpoint_network(config: RunConfig, opened: checkpoint.Checkpoint) -> RunConfig:
    """The run config with the checkpoint's own network, frames and input size (test settings stay the run's)."""
    saved = opened.config
    network = {key: saved["network"][key] for key in NETWORK_KEYS}
    data = {key: saved["data"][key] for key in ("num_segments", "input_size")}
    # Built with a random init that the checkpoint's weights then replace, so the init option is moot.
    network.update(pretrained="none", zero_init_residual=True)
    return updated(config, {"network": network, "data": data}, f"{opened.path} (its saved config)")


def prompt_table(config: RunConfig, classes: list[str], device: torch.device) -> PromptTable:
    tokenizer = open_clip.get_tokenizer(resolve_model_name(config.network.arch))
    return PromptTable(classes, tokenizer).to(device)


def loader_from_config(config: RunConfig, model: ActionCLIP, dist: Dist, mode: str, shards: str, *, epoch: int = 0,
                       batch_size: int | None = None, num_clips: int = 1, num_crops: int = 1):
    """A DALI (or baseline) loader of the `data` section whose crop size and normalisation match the model's
    image tower, in the engine's precision."""
    data = config.data
    if model.image_size[0] != data.image_size:
        raise ConfigError(f"'data.input_size' is {data.image_size} but {config.network.arch} takes "
                          f"{model.image_size[0]} px images; set data.input_size: {model.image_size[0]}")
    return build_loader(shards, mode, data, batch_size=batch_size or data.batch_size, mean=model.image_mean,
                        std=model.image_std, rank=dist.rank, world_size=dist.world_size, seed=config.seed,
                        epoch=epoch, dtype=config.deepspeed.precision, num_clips=num_clips, num_crops=num_crops)
