"""Everything a run needs, built from the config in one place: class names, model, tokenizer, loaders."""
from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from actionclip import ActionCLIP, PromptTable, build_model, resolve_model_name
from pipelines import build_loader, open_shards
from shard_tools.inputs import read_labels_csv
from training import checkpoint
from training.config import ConfigError
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


def require_shards(config: dict, key: str) -> str:
    section, name = key.split(".")
    value = config[section][name]
    if not value:
        raise ConfigError(f"'{key}' is not set: point it at a shard folder or manifest built by shard_tools")
    if not Path(value).exists():
        raise ConfigError(f"'{key}': {value} does not exist; build it with `shard_tools build-shards`")
    return value


def model_from_config(config: dict, pretrained: str | None = None) -> ActionCLIP:
    """The configured model; `pretrained` (default network.pretrained) may also be this trainer's own
    consolidated checkpoint (best.pt / last.pt), e.g. to fine-tune a K400 model on UCF101."""
    network = config["network"]
    source = network["pretrained"] if pretrained is None else pretrained
    own = checkpoint.read_checkpoint(source) if checkpoint.is_consolidated(source) else None
    try:
        model = build_model(
            network["arch"], pretrained="none" if own else source, num_frames=config["data"]["num_segments"],
            sim_header=network["sim_header"], tsm=network["tsm"], joint=network["joint"],
            grad_checkpointing=network["grad_checkpointing"], fix_text=network["fix_text"],
            fix_img=network["fix_img"], zero_init_residual=network["zero_init_residual"])
    except ValueError as error:  # a weights file or option the model refuses: the message says which and why
        raise ConfigError(f"network: {error}") from error
    if own:
        checkpoint.load_weights(model, own, source)
    return model


def prompt_table(config: dict, classes: list[str], device: torch.device) -> PromptTable:
    tokenizer = open_clip.get_tokenizer(resolve_model_name(config["network"]["arch"]))
    return PromptTable(classes, tokenizer).to(device)


def loader_from_config(config: dict, model: ActionCLIP, dist: Dist, mode: str, shards: str, *, epoch: int = 0,
                       batch_size: int | None = None, num_clips: int = 1, num_crops: int = 1):
    """A DALI (or baseline) loader whose crop size and normalisation match the model's image tower."""
    data = config["data"]
    if model.image_size[0] != data["input_size"]:
        raise ConfigError(f"'data.input_size' is {data['input_size']} but {config['network']['arch']} takes "
                          f"{model.image_size[0]} px images; set data.input_size: {model.image_size[0]}")
    randaug = data["randaug"]
    return build_loader(
        shards, mode, batch_size=batch_size or data["batch_size"], num_frames=data["num_segments"],
        image_size=data["input_size"], mean=model.image_mean, std=model.image_std, rank=dist.rank,
        world_size=dist.world_size, seed=config["seed"], epoch=epoch, decode_device=data["decode_device"],
        num_threads=data["workers"], prefetch=data["prefetch"],
        dtype=config["deepspeed"]["precision"], hflip=data["flip"], num_clips=num_clips,
        num_crops=num_crops, frame_interval=data["frame_interval"],
        rand_augment=(randaug["N"], randaug["M"]) if randaug.get("N") else None, scales=data["scales"],
        color_jitter_prob=data["color_jitter_prob"], grayscale_prob=data["grayscale_prob"],
        shuffle_buffer=data["shuffle_buffer"], sparse_decode=data["sparse_decode"], backend=data["backend"])
