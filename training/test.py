"""`test` and `zero-shot`: evaluate a checkpoint (or pretrained CLIP) on shards, single- or multi-view."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from pipelines.batch import torch_dtype
from training import checkpoint, components
from training.config import ConfigError, merge
from training.engine import Dist
from training.evaluate import evaluate
from training.logs import console, progress_bar, results_table

# Settings a checkpoint carries that define its network; a test run takes them from the checkpoint.
NETWORK_KEYS = ("arch", "sim_header", "tsm", "joint")


def network_config(config: dict, saved: dict | None) -> dict:
    """The run config with the checkpoint's own network, frames and input size (test settings stay the run's)."""
    if saved is None:
        return config
    network = {key: saved["network"][key] for key in NETWORK_KEYS}
    data = {key: saved["data"][key] for key in ("num_segments", "input_size")}
    # Built with a random init that the checkpoint's weights then replace, so the init option is moot.
    network.update(pretrained="none", zero_init_residual=True)
    return merge(config, {"network": network, "data": data}, "checkpoint config")


def load_model(config: dict, checkpoint_path: str | None, dist: Dist):
    """(config to evaluate with, model with weights, training classes or None) for a checkpoint or no checkpoint."""
    if checkpoint_path is None:
        return config, components.model_from_config(config).to(dist.device), None
    saved = checkpoint.read_checkpoint(checkpoint_path)
    if saved.get("format") == checkpoint.FORMAT:
        config = network_config(config, saved["config"])
        model = components.model_from_config(config)
        checkpoint.load_weights(model, saved, checkpoint_path)
        return config, model.to(dist.device), saved["classes"]
    # An original ActionCLIP checkpoint: the run config names its network, build_model imports the weights.
    model = components.model_from_config(config, pretrained=checkpoint_path)
    return config, model.to(dist.device), None


def run_test(config: dict, dist: Dist, *, zero_shot: bool, checkpoint_path: str | None) -> dict:
    test = config["test"]
    shards = test["shards"] or config["data"]["val_shards"]
    if not shards:
        raise ConfigError("no shards to test on: set 'test.shards' (or 'data.val_shards')")
    if not Path(shards).exists():
        raise ConfigError(f"'test.shards': {shards} does not exist; build it with `shard_tools build-shards`")
    if checkpoint_path is None and not zero_shot:
        checkpoint_path = str(Path(config["logging"]["exp_dir"]) / "checkpoints" / "best.pt")
    config, model, trained_classes = load_model(config, checkpoint_path, dist)
    if zero_shot:
        classes = components.class_names(test["labels"], shards, "test.labels")
    else:
        classes = trained_classes or components.class_names(test["labels"] or config["data"]["labels"], shards,
                                                            "test.labels")
    model = model.to(torch_dtype(config["deepspeed"]["precision"]))
    loader = components.loader_from_config(config, model, dist, "test", shards, batch_size=test["batch_size"],
                                           num_clips=test["num_clips"], num_crops=test["num_crops"])
    if loader.shards.num_classes != len(classes):
        hint = "use mode zero-shot with 'test.labels' for another label set" if not zero_shot else \
            "'test.labels' must be the class list the shards were built with"
        raise ConfigError(f"{shards} has {loader.shards.num_classes} classes but the label set has {len(classes)}: {hint}")
    prompts = components.prompt_table(config, classes, dist.device)
    with progress_bar(dist.is_main) as progress:
        metrics = evaluate(model, loader, prompts, progress)
    views = f"{test['num_clips']} clip(s) x {test['num_crops']} crop(s)"
    results = {"mode": "zero-shot" if zero_shot else "test", "checkpoint": checkpoint_path, "shards": str(shards),
               "views": views, "classes": classes, **metrics}
    if dist.is_main:
        out = Path(config["logging"]["exp_dir"])
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"results-{results['mode']}.json"
        path.write_text(json.dumps(results, indent=1))
        console.print(results_table(f"{results['mode']} on {shards} ({views})", metrics))
        console.print(f"results: {path}")
    return results

