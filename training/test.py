"""`test` and `zero-shot`: evaluate a checkpoint (or pretrained CLIP) on shards, single- or multi-view."""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.batch import torch_dtype
from training import components
from training.config import ConfigError, RunConfig
from training.engine import Dist
from training.evaluate import evaluate
from training.logs import console, progress_bar, results_table


def run_test(config: RunConfig, dist: Dist, *, zero_shot: bool, checkpoint_path: str | None) -> dict:
    test = config.test
    shards = test.shards or config.data.val_shards
    if not shards:
        raise ConfigError("no shards to test on: set 'test.shards' (or 'data.val_shards')")
    if not Path(shards).exists():
        raise ConfigError(f"'test.shards': {shards} does not exist; build it with `shard_tools build-shards`")
    if checkpoint_path is None and not zero_shot:
        checkpoint_path = str(Path(config.logging.exp_dir) / "checkpoints" / "best.pt")
    config, model, trained_classes = components.model_for_evaluation(config, checkpoint_path, dist.device)
    if zero_shot:
        classes = components.class_names(test.labels, shards, "test.labels")
    else:
        classes = trained_classes or components.class_names(test.labels or config.data.labels, shards,
                                                            "test.labels")
    model = model.to(torch_dtype(config.deepspeed.precision))
    loader = components.loader_from_config(config, model, dist, "test", shards, batch_size=test.batch_size,
                                           num_clips=test.num_clips, num_crops=test.num_crops)
    if loader.shards.num_classes != len(classes):
        hint = "use mode zero-shot with 'test.labels' for another label set" if not zero_shot else \
            "'test.labels' must be the class list the shards were built with"
        raise ConfigError(f"{shards} has {loader.shards.num_classes} classes but the label set has {len(classes)}: "
                          f"{hint}")
    prompts = components.prompt_table(config, classes, dist.device)
    with progress_bar(dist.is_main) as progress:
        metrics = evaluate(model, loader, prompts, progress)
    views = f"{test.num_clips} clip(s) x {test.num_crops} crop(s)"
    results = {"mode": "zero-shot" if zero_shot else "test", "checkpoint": checkpoint_path, "shards": str(shards),
               "views": views, "classes": classes, **metrics}
    if dist.is_main:
        out = Path(config.logging.exp_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"results-{results['mode']}.json"
        path.write_text(json.dumps(results, indent=1))
        console.print(results_table(f"{results['mode']} on {shards} ({views})", metrics))
        console.print(f"results: {path}")
    return results

