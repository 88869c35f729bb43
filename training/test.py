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


def label_set(config: RunConfig, shards: str, zero_shot: bool, trained_classes: list[str] | None,
              checkpoint_path: str | None) -> tuple[list[str], str]:
    """(classes, how errors name them). zero-shot: test.labels, else the shards' own classes. test: the
    checkpoint's classes, which a given test.labels must equal (it is never silently ignored)."""
    test = config.test
    if zero_shot or not trained_classes:
        labels, key = (test.labels, "test.labels") if zero_shot or test.labels else (config.data.labels, "data.labels")
        return components.class_names(labels, shards, key), components.labels_named(labels, key, "the shards' classes")
    named = f"the classes of {checkpoint_path}"
    if test.labels:
        components.same_classes(components.class_names(test.labels, shards, "test.labels"),
                                components.labels_named(test.labels, "test.labels", ""), trained_classes, named,
                                "leave 'test.labels' unset to test on the trained classes, or use mode zero-shot")
    return trained_classes, named


def run_test(config: RunConfig, dist: Dist, *, zero_shot: bool, checkpoint_path: str | None) -> dict:
    test = config.test
    if not (test.shards or config.data.val_shards):
        raise ConfigError("no shards to test on: set 'test.shards' (or 'data.val_shards')")
    shards = components.require_shards(test.shards or config.data.val_shards, "test.shards")
    if checkpoint_path is None and not zero_shot:
        checkpoint_path = str(Path(config.logging.exp_dir) / "checkpoints" / "best.pt")
    config, model, trained_classes = components.model_for_evaluation(config, checkpoint_path, dist.device)
    classes, named = label_set(config, shards, zero_shot, trained_classes, checkpoint_path)
    model = model.to(torch_dtype(config.deepspeed.precision))
    loader = components.loader_from_config(config, model, dist, "test", shards, batch_size=test.batch_size,
                                           num_clips=test.num_clips, num_crops=test.num_crops)
    fix = ("'test.labels' must be the class list the shards were built with, in the same order" if zero_shot else
           "test on shards of the classes the model was trained on, or use mode zero-shot with 'test.labels'")
    components.check_label_set(classes, named, loader.shards, fix)
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

