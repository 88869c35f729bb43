"""`test`, `zero-shot` and `base-to-novel`: evaluate a checkpoint (or pretrained CLIP) on shards, single- or
multi-view, under the protocol the mode names (training.protocols); each writes `results-<mode>.json`."""
from __future__ import annotations

import json
import os
from pathlib import Path

from rich.table import Table

from pipelines import ShardSet
from pipelines.batch import torch_dtype
from training import components, protocols
from training.config import ConfigError, RunConfig
from training.engine import Dist
from training.evaluate import SCORES, evaluate
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


def shard_paths(config: RunConfig) -> list[str]:
    """The shard sets to evaluate: `test.shards` (one or a list), else data.val_shards."""
    value = config.test.shards or config.data.val_shards
    if not value:
        raise ConfigError("no shards to test on: set 'test.shards' (or 'data.val_shards')")
    return [components.require_shards(path, "test.shards") for path in ([value] if isinstance(value, str) else value)]


def run_test(config: RunConfig, dist: Dist, *, mode: str, checkpoint_path: str | None) -> dict:
    """Evaluate as `mode` ("test", "zero-shot" or "base-to-novel") says; writes `results-<mode>.json` and prints a
    table."""
    test = config.test
    paths = shard_paths(config)
    if mode != "zero-shot" and len(paths) > 1:
        raise ConfigError(f"'test.shards' lists {len(paths)} shard sets; {mode} scores one (zero-shot scores each)")
    if mode != "zero-shot" and test.class_draws is not None:
        raise ConfigError(f"'test.class_draws' is a zero-shot protocol: unset it for {mode}, or use mode zero-shot")
    if checkpoint_path is None and mode != "zero-shot":
        checkpoint_path = str(Path(config.logging.exp_dir) / "checkpoints" / "best.pt")
    config, model, trained_classes = components.model_for_evaluation(config, checkpoint_path, dist.device)
    model = model.to(torch_dtype(config.deepspeed.precision))
    evaluations = [evaluation for path in paths
                   for evaluation in planned(config, mode, path, trained_classes, checkpoint_path)]
    scored = []
    with progress_bar(dist.is_main) as progress:
        for entry, shards, classes in evaluations:
            loader = components.loader_from_config(config, model, dist, "test", shards, batch_size=test.batch_size,
                                                   num_clips=test.num_clips, num_crops=test.num_crops)
            prompts = components.prompt_table(config, classes, dist.device)
            scored.append({**entry, "classes": classes, **evaluate(model, loader, prompts, progress)})
    results = {"mode": mode, "checkpoint": checkpoint_path, "arch": config.network.arch,
               "frames": config.data.num_frames, "views": f"{test.num_clips} clip(s) x {test.num_crops} crop(s)"}
    if mode == "zero-shot":
        summary = {key: protocols.mean_std([entry[key] for entry in scored]) for key in SCORES if key in scored[0]}
        results.update(class_draws=test.class_draws, class_fraction=test.class_fraction if test.class_draws else None,
                       evaluations=scored, summary=summary)
    elif mode == "base-to-novel":
        base, novel = scored
        results.update(shards=paths[0], base_classes=config.data.base_classes, base=base, novel=novel,
                       harmonic_mean=protocols.harmonic_mean(base["top1"], novel["top1"]))
    else:
        results.update(shards=paths[0], **scored[0])
    if dist.is_main:
        out = Path(config.logging.exp_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"results-{mode}.json"
        path.write_text(json.dumps(results, indent=1))
        console.print(TABLES[mode](results))
        console.print(f"results: {path}")
    return results


def planned(config: RunConfig, mode: str, path: str, trained_classes: list[str] | None,
            checkpoint_path: str | None) -> list[tuple[dict, ShardSet, list[str]]]:
    """The evaluations of one shard set as (what the results call it, shard set, the class names scored), the
    shard set checked against its label set first: test one; zero-shot one, or one per class draw; base-to-novel
    its base and its novel side."""
    zero_shot = mode == "zero-shot"
    classes, named = label_set(config, path, zero_shot, None if mode == "base-to-novel" else trained_classes,
                               checkpoint_path)
    fix = ("test on shards of the classes the model was trained on, or use mode zero-shot with 'test.labels' "
           "(base-to-novel for a model trained on 'data.base_classes')" if mode == "test" else
           f"{named} must be the class list the shards were built with, in the same order")
    shards = components.checked_shards(path, "test.shards", classes, named, fix)
    if mode == "base-to-novel":
        return base_and_novel(config, shards, classes, named, trained_classes, checkpoint_path)
    if not zero_shot:
        return [({}, shards, classes)]
    draws = config.test.class_draws
    if draws is None:
        return [({"shards": path, "draw": None}, shards, classes)]
    planned_draws = []
    for draw in range(1, draws + 1):
        ids = protocols.class_draw(len(classes), config.test.class_fraction, config.seed, protocols.DRAW_STREAM, draw)
        planned_draws.append(({"shards": path, "draw": draw}, protocols.of_classes(shards, ids, "test.class_draws"),
                              [classes[class_id] for class_id in ids]))
    return planned_draws


def base_and_novel(config: RunConfig, shards: ShardSet, classes: list[str], named: str,
                   trained_classes: list[str] | None, checkpoint_path: str | None) -> list[tuple[dict, ShardSet, list]]:
    """The two evaluations of base-to-novel: base videos against the base names, novel videos against the novel
    names. The base classes are those the checkpoint was trained on; `data.base_classes`, when set, must draw
    the same (it is needed for weights without a class list, e.g. CLIP itself)."""
    drawn = None
    if config.data.base_classes is not None:
        drawn = protocols.base_class_ids(config.data.base_classes, classes, config.seed, named)
    if trained_classes is None:
        if drawn is None:
            raise ConfigError("base-to-novel needs 'data.base_classes' (half, a CSV or a list of class names) for "
                              "weights that do not record their classes")
        base = drawn
    else:
        lookup = {name: class_id for class_id, name in enumerate(classes)}
        outside = [name for name in trained_classes if name not in lookup]
        if outside:
            raise ConfigError(f"{checkpoint_path} was trained on {outside[0]!r}, which is not a class of {named}: "
                              "base-to-novel scores a model on shards of the classes it was trained on and others")
        base = sorted(lookup[name] for name in trained_classes)
        if len(base) == len(classes):
            raise ConfigError(f"{checkpoint_path} was trained on all {len(classes)} classes of {named}, so none is "
                              "novel: base-to-novel scores a model trained with 'data.base_classes'")
        if drawn is not None:
            components.same_classes([classes[class_id] for class_id in drawn], "'data.base_classes'",
                                    trained_classes, f"the classes of {checkpoint_path}",
                                    "use the training run's 'seed' and 'data.base_classes', or leave it unset")
    novel = [class_id for class_id in range(len(classes)) if class_id not in base]
    return [({"split": split}, protocols.of_classes(shards, ids, "data.base_classes"),
             [classes[class_id] for class_id in ids]) for split, ids in (("base", base), ("novel", novel))]


def _test_table(results: dict) -> Table:
    return results_table(f"test on {results['shards']} ({results['views']})", results)


def _zero_shot_table(results: dict) -> Table:
    """One row per split (and class draw), then mean ± std over them. The shard sets are named relative to the
    folder they share, without `.manifest.json` (split manifests often differ in their folder only)."""
    paths = [os.path.abspath(entry["shards"]) for entry in results["evaluations"]]
    common = os.path.commonpath([os.path.dirname(path) for path in paths])
    table = Table(title=f"zero-shot on {common} ({results['views']})")
    table.add_column("shards", overflow="fold")
    for column in ("draw", "classes", "videos", "top-1", "top-5"):
        table.add_column(column, justify="right")
    for entry, path in zip(results["evaluations"], paths):
        draw = "all" if entry["draw"] is None else str(entry["draw"])
        table.add_row(os.path.relpath(path, common).removesuffix(".manifest.json"), draw, str(len(entry["classes"])), str(entry["videos"]),
                      f"{entry['top1']:.2f}", f"{entry['top5']:.2f}")
    summary = results["summary"]
    table.add_row(f"mean ± std ({summary['top1']['n']})", "", "", "", protocols.format_mean_std(summary["top1"]),
                  protocols.format_mean_std(summary["top5"]))
    return table


def _base_to_novel_table(results: dict) -> Table:
    table = Table(title=f"base-to-novel on {results['shards']} ({results['views']})")
    for column in ("", "classes", "videos", "top-1", "top-5"):
        table.add_column(column, justify="right")
    for split in ("base", "novel"):
        entry = results[split]
        table.add_row(split, str(len(entry["classes"])), str(entry["videos"]), f"{entry['top1']:.2f}",
                      f"{entry['top5']:.2f}")
    table.add_row("harmonic mean", "", "", f"{results['harmonic_mean']:.2f}", "")
    return table


TABLES = {"test": _test_table, "zero-shot": _zero_shot_table, "base-to-novel": _base_to_novel_table}
