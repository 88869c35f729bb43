"""Shard lists as brace patterns (`k400-train-{000000..000099}.tar`), expanded as webdataset and open_clip do."""
from __future__ import annotations

import pytest
import torch

from pipelines import ShardError, build_loader, open_shards
from pipelines_fixtures import ramp_shards


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


def test_a_range_pattern_reads_like_the_manifest(shards):
    tars = sorted(shards.glob("synth-val-*.tar"))
    assert len(tars) == 2
    pattern = str(shards / "synth-val-{000000..000001}.tar")
    from_pattern, from_manifest = open_shards(pattern), open_shards(shards / "synth-val.manifest.json")
    assert from_pattern.tars == tuple(map(str, tars)) == from_manifest.tars
    assert from_pattern.keys == from_manifest.keys and from_pattern.classes is None
    (first,) = build_loader(pattern, "val", batch_size=7, num_frames=4, image_size=32)
    (second,) = build_loader(shards / "synth-val.manifest.json", "val", batch_size=7, num_frames=4, image_size=32)
    assert torch.equal(first["video"], second["video"]) and torch.equal(first["label"], second["label"])


def test_alternatives_keep_their_order(shards):
    tars = open_shards(str(shards / "synth-train-{000002,000000}.tar")).tars
    assert tars == (str(shards / "synth-train-000002.tar"), str(shards / "synth-train-000000.tar"))


@pytest.mark.parametrize("pattern, message", [
    ("synth-val-{000000..000005}.tar", r"synth-val-\{000000\.\.000005\}\.tar names 6 tars, but .*synth-val-000002\.tar "
                                       r"does not exist"),
    ("synth-val-{000000..000001.tar", r"Unbalanced braces.*write ranges as \{000000\.\.000099\}"),
    ("synth-val-{x}.tar", r"shard path .*synth-val-\{x\}\.tar does not exist"),  # nothing to expand: a plain path
])
def test_a_pattern_naming_missing_tars_is_refused_naming_the_first(shards, pattern, message):
    with pytest.raises(ShardError, match=message):
        open_shards(str(shards / pattern))
