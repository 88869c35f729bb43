"""The papers' data protocols on shard sets: few-shot training, base-to-novel classes, zero-shot class draws.

Every selection is a pure function of (seed, shard set, class list): each rank and a resumed run draw the same
videos and classes, and evaluation draws the base classes a training run drew. Selections are ShardSet
subsets (`ShardSet.subset`, `ShardSet.of_classes`), which both loaders read like a whole split.

- few-shot (`data.shots: K`): K training videos per class, each class's drawn from its own stream, so the
  K-shot set of a seed holds its (K-1)-shot set.
- base-to-novel (`data.base_classes`): training and validation see the base classes' videos only, labelled
  by their place in the base list; `launch.py base-to-novel` scores base videos against base names and novel
  videos against novel names.
- zero-shot class draws (`test.class_draws`, `test.class_fraction`): each draw scores the videos of a seeded
  fraction of the classes against those names only.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from pipelines import ShardSet
from shard_tools.inputs import AnnotationError, class_lookup, normalise_class_name, read_csv_rows
from training import components
from training.config import ConfigError, RunConfig
from training.logs import console

HALF = "half"  # data.base_classes: a seeded half of the classes
# Random streams below the run's seed, one per protocol, so that one draw never shifts another.
SHOTS_STREAM, BASE_STREAM, DRAW_STREAM = 1, 2, 3


def class_draw(num_classes: int, fraction: float, seed: int, stream: int, draw: int = 0) -> list[int]:
    """Ascending ids of round(fraction * num_classes) classes (at least one), drawn from (seed, stream, draw)."""
    count = max(1, round(fraction * num_classes))
    return sorted(np.random.default_rng([seed, stream, draw]).choice(num_classes, count, replace=False).tolist())


def base_class_ids(base: str | list[str], classes: Sequence[str], seed: int, named: str) -> list[int]:
    """Ascending ids of the base classes `data.base_classes` names in `classes` (`named` says whose list): 'half'
    (a seeded half), a CSV file with a `name` column, or a list of names (matched loosely, as build-shards
    does). Every class left out is novel, so at least one must be."""
    if base == HALF:
        ids = class_draw(len(classes), 0.5, seed, BASE_STREAM)
    else:
        lookup, ids = class_lookup(list(classes)), []
        for name in base if isinstance(base, list) else _names_in(base):
            class_id = lookup.get(normalise_class_name(name))
            if class_id is None:
                raise ConfigError(f"'data.base_classes': {name!r} is not one of the {len(classes)} classes of {named}")
            if class_id in ids:
                raise ConfigError(f"'data.base_classes' names {classes[class_id]!r} twice")
            ids.append(class_id)
        ids.sort()
    if len(ids) == len(classes):
        raise ConfigError(f"'data.base_classes' takes all {len(classes)} classes of {named}, leaving no novel class")
    return ids


def _names_in(path: str) -> list[str]:
    if not Path(path).is_file():
        raise ConfigError(f"'data.base_classes' is {path!r}: not '{HALF}' and no such file; give '{HALF}', a CSV "
                          "with a `name` column, or a list of class names")
    try:
        return [row["name"] for _, row in read_csv_rows(Path(path), ("name",))]
    except AnnotationError as error:
        raise ConfigError(f"'data.base_classes': {error}") from error


def of_classes(shards: ShardSet, class_ids: Sequence[int], key: str) -> ShardSet:
    """`shards.of_classes(class_ids)`; a split it cannot cut (multi-label, or no video of those classes) is a
    ConfigError naming `key`."""
    try:
        return shards.of_classes(class_ids)
    except ValueError as error:
        raise ConfigError(f"'{key}' on {components.shards_name(shards)}: {error}") from error


def few_shot_positions(shards: ShardSet, shots: int, seed: int, classes: Sequence[str]) -> np.ndarray:
    """Reading-order positions of `shots` videos of every class of `classes`, drawn per class from (seed, class)."""
    if shards.label_sets is not None:
        raise ConfigError(f"'data.shots' needs single-label shards; {components.shards_name(shards)} is multi-label")
    labels = shards.labels
    members = [np.flatnonzero(labels == class_id) for class_id in range(len(classes))]
    short = [class_id for class_id, positions in enumerate(members) if positions.size < shots]
    if short:
        first = short[0]
        others = f" (and {len(short) - 1} more classes)" if len(short) > 1 else ""
        raise ConfigError(f"'data.shots' is {shots} but class {classes[first]!r} has {members[first].size} training "
                          f"videos in {components.shards_name(shards)}{others}: lower data.shots")
    picked = [np.random.default_rng([seed, SHOTS_STREAM, class_id]).permutation(positions)[:shots]
              for class_id, positions in enumerate(members)]
    return np.sort(np.concatenate(picked))


def training_sets(config: RunConfig, classes: list[str],
                  announce: bool) -> tuple[ShardSet, ShardSet | None, list[str]]:
    """(training shard set, validation shard set or None, the classes they are labelled with, which the prompts
    name) under the run's protocol; each split checked against `classes` first. `announce` prints what the
    protocol chose (the main rank)."""
    data = config.data
    named = components.labels_named(data.labels, "data.labels", "the training shards' classes")
    fix = "'data.labels' must be the class list the shards were built with, in the same order"
    train = components.checked_shards(data.train_shards, "data.train_shards", classes, named, fix)
    val = None
    if data.val_shards:
        val = components.checked_shards(data.val_shards, "data.val_shards", classes, named, fix)
    notes = []
    if data.base_classes is not None:
        ids = base_class_ids(data.base_classes, classes, config.seed, named)
        novel = [name for class_id, name in enumerate(classes) if class_id not in ids]
        videos = train.num_samples
        train = of_classes(train, ids, "data.base_classes")
        if val is not None:
            val = of_classes(val, ids, "data.base_classes")
        notes.append(f"base-to-novel: training on {len(ids)} base classes of {len(classes)} ({train.num_samples} of "
                     f"{videos} training videos); novel: {', '.join(novel)}")
        classes = [classes[class_id] for class_id in ids]
    if data.shots is not None:
        videos = train.num_samples
        train = train.subset(few_shot_positions(train, data.shots, config.seed, classes))
        notes.append(f"few-shot: {data.shots} videos per class x {len(classes)} classes = {train.num_samples} of "
                     f"{videos} training videos (seed {config.seed})")
    for note in notes if announce else ():
        console.print(note, highlight=False)
    return train, val, classes


def harmonic_mean(base: float, novel: float) -> float:
    """Base-to-novel's HM of the two top-1 accuracies (0 when both are 0)."""
    return 0.0 if base + novel == 0 else 2 * base * novel / (base + novel)


def mean_std(values: Sequence[float]) -> dict:
    """{mean, std, n}: std is the sample standard deviation (n - 1), 0 for a single value."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def format_mean_std(summary: dict, digits: int = 2) -> str:
    """`mean ± std` as tables print it; a single value without ± 0."""
    text = f"{summary['mean']:.{digits}f}"
    return text if summary["n"] == 1 else f"{text} ± {summary['std']:.{digits}f}"
