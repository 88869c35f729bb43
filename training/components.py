"""Everything a run needs, built from the config in one place: class names, model, tokenizer, loaders."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import open_clip
import torch

from actionclip import ActionCLIP, PromptTable, build_model, resolve_model_name
from pipelines import ShardSet, build_loader, open_shards
from shard_tools.inputs import AnnotationError, read_labels_csv
from training import checkpoint
from training.config import ConfigError, RunConfig, updated
from training.engine import Dist


def class_names(labels_csv: str | None, shards: str | None, key: str) -> list[str]:
    """The label set: the CSV when given, else the class names stored in the shard manifest."""
    if labels_csv:
        if not Path(labels_csv).exists():
            raise ConfigError(f"'{key}': labels file {labels_csv} not found")
        try:
            return read_labels_csv(Path(labels_csv))
        except AnnotationError as error:  # duplicate ids or names, a non-integer id: the message names the line
            raise ConfigError(f"'{key}': {error}") from error
    if not shards:
        raise ConfigError(f"no label set: set '{key}' (a CSV id,name) or the shards to read class names from")
    return list(open_shards(shards).classes)


def same_classes(ours: Sequence[str], ours_named: str, theirs: Sequence[str], theirs_named: str, fix: str) -> None:
    """Two label sets must agree id for id, not only in size: a reordered list would score a trained model
    at chance without a sign. The error names the first differing id."""
    if len(ours) != len(theirs):
        raise ConfigError(f"{theirs_named} has {len(theirs)} classes but {ours_named} has {len(ours)}: {fix}")
    differing = [index for index, (mine, other) in enumerate(zip(ours, theirs)) if mine != other]
    if differing:
        first = differing[0]
        raise ConfigError(f"{ours_named} does not match {theirs_named}: class id {first} is {ours[first]!r} in one "
                          f"and {theirs[first]!r} in the other ({len(differing)} of {len(ours)} ids differ): {fix}")


def check_label_set(classes: Sequence[str], named: str, shards: ShardSet, fix: str) -> None:
    """`classes` against the class names the shards were built with (their manifest), when it has them."""
    if shards.classes is not None:
        same_classes(classes, named, shards.classes, str(shards.manifest_path or "the shards"), fix)


def labels_named(labels_csv: str | None, key: str, fallback: str) -> str:
    """How an error names a label set: the CSV at `key`, else `fallback`."""
    return f"'{key}' ({labels_csv})" if labels_csv else fallback


def require_shards(value: str | None, key: str) -> str:
    """The shard path configured at `key`, which must exist (a brace pattern's tars are checked when opened)."""
    if not value:
        raise ConfigError(f"'{key}' is not set: point it at a shard folder or manifest built by shard_tools")
    if not (Path(value).exists() or "{" in value):
        raise ConfigError(f"'{key}': {value} does not exist; build it with `shard_tools build-shards`")
    return value


def checked_shards(value: str | None, key: str, classes: Sequence[str], named: str, fix: str) -> ShardSet:
    """The shard set configured at `key`, opened, its manifest's classes checked against `classes`."""
    shards = open_shards(require_shards(value, key))
    check_label_set(classes, named, shards, fix)
    return shards


def shards_name(shards: ShardSet) -> str:
    """How messages name a shard set: its manifest, else its first tar."""
    return shards.manifest_path or shards.tars[0]


def model_from_config(config: RunConfig, weights: checkpoint.Checkpoint | None = None) -> ActionCLIP:
    """The configured model with `weights` (a checkpoint already opened), else network.pretrained: an open_clip
    tag, a weights file, or this trainer's own best.pt / last.pt (e.g. to fine-tune a K400 model on UCF101)."""
    network = config.network
    if weights is None and network.pretrained and Path(network.pretrained).is_file():
        weights = checkpoint.open_checkpoint(network.pretrained, other_weights=True)
    own = weights is not None and weights.is_own
    source = weights.weights if weights is not None else network.pretrained
    quick_gelu, conv1d_layout = network.quick_gelu, network.conv1d_layout
    if own:  # a state dict holds neither the activation nor the Conv_1D layout; the checkpoint's config does
        saved = saved_network(weights)
        quick_gelu = saved["quick_gelu"] if quick_gelu is None else quick_gelu
        conv1d_layout = saved["conv1d_layout"]
    try:
        model = build_model(
            network.arch, pretrained="none" if own else source, num_frames=config.data.num_frames,
            sim_header=network.sim_header, tsm=network.tsm, shift_div=network.shift_div, joint=network.joint,
            grad_checkpointing=network.grad_checkpointing, fix_text=network.fix_text, fix_img=network.fix_img,
            quick_gelu=quick_gelu, zero_init_residual=network.zero_init_residual, conv1d_layout=conv1d_layout,
            drop_path=network.drop_path, emb_dropout=network.emb_dropout)
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
NETWORK_KEYS = ("arch", "sim_header", "tsm", "shift_div", "joint", "quick_gelu", "conv1d_layout")


def saved_network(opened: checkpoint.Checkpoint) -> dict:
    """The NETWORK_KEYS of one of this trainer's checkpoints; a key it was saved without has its default
    (quick_gelu None: the model config's activation, conv1d_layout 'transpose')."""
    defaults = RunConfig().as_dict()["network"]
    return {key: opened.config["network"].get(key, defaults[key]) for key in NETWORK_KEYS}


def checkpoint_network(config: RunConfig, opened: checkpoint.Checkpoint) -> RunConfig:
    """The run config with the checkpoint's own network, frames and input size (test settings stay the run's)."""
    saved = opened.config
    network = saved_network(opened)
    data = {key: saved["data"][key] for key in ("num_segments", "input_size")}
    # Built with a random init that the checkpoint's weights then replace, so the init option is moot; drop path
    # and embedding dropout act in training only, so an evaluation builds without them whatever the run config says.
    network.update(pretrained="none", zero_init_residual=True, drop_path=0.0, emb_dropout=0.0)
    return updated(config, {"network": network, "data": data}, f"{opened.path} (its saved config)")


def resolved_config(config: RunConfig, model: ActionCLIP) -> RunConfig:
    """`config` with what `model` resolved by itself: its activation (network.quick_gelu, from the weights or
    the model config when unset) and Conv_1D layout (an original checkpoint brings its own). A checkpoint saved
    with this config rebuilds the same network from a random init."""
    resolved = {"quick_gelu": model.quick_gelu, "conv1d_layout": model.conv1d_layout}
    return updated(config, {"network": resolved}, "the built model")


def prompt_table(config: RunConfig, classes: list[str], device: torch.device) -> PromptTable:
    tokenizer = open_clip.get_tokenizer(resolve_model_name(config.network.arch))
    return PromptTable(classes, tokenizer).to(device)


def loader_from_config(config: RunConfig, model: ActionCLIP, dist: Dist, mode: str, shards: ShardSet, *, epoch: int = 0,
                       batch_size: int | None = None, num_clips: int = 1, num_crops: int = 1):
    """A DALI (or baseline) loader of the `data` section whose crop size and normalisation match the model's
    image tower, in the engine's precision."""
    data = config.data
    if model.image_size[0] != data.image_size:
        raise ConfigError(f"'data.input_size' is {data.image_size} but {config.network.arch} takes "
                          f"{model.image_size[0]} px images; set data.input_size: {model.image_size[0]}")
    key = "test.batch_size" if batch_size else "data.batch_size"
    try:
        return build_loader(shards, mode, data, batch_size=batch_size or data.batch_size, mean=model.image_mean,
                            std=model.image_std, rank=dist.rank, world_size=dist.world_size, seed=config.seed,
                            epoch=epoch, dtype=config.deepspeed.precision, num_clips=num_clips, num_crops=num_crops)
    except ValueError as error:  # settings the shards cannot serve, e.g. a batch larger than a rank's share
        raise ConfigError(f"{shards_name(shards)}: {error} ('{key}')") from error
