"""Run configs: shipped files load, overrides are validated, the DeepSpeed JSON follows the config."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from training.config import ConfigError, load_config
from training.engine import deepspeed_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")))
def test_every_shipped_config_loads(path):
    config = load_config(REPO / path)
    assert config.data.num_frames in (4, 8, 16, 32)


def test_overrides_parse_values_and_name_bad_keys(tmp_path):
    config = load_config(REPO / "configs/k400.yaml", ["solver.lr=1e-5", "data.scales=[1.0, 0.5]",
                                                       "network.tsm=true", "deepspeed.config.zero_optimization.stage=2"])
    assert config.solver.lr == 1e-5 and config.data.scales == [1.0, 0.5] and config.network.tsm
    with pytest.raises(ConfigError, match=r"unknown key 'network.sim_headr'; did you mean 'network.sim_header'"):
        load_config(REPO / "configs/k400.yaml", ["network.sim_headr=meanP"])
    with pytest.raises(ConfigError, match=r"'network.sim_header' must be one of"):
        load_config(None, ["network.sim_header=Transformer"])
    with pytest.raises(ConfigError, match=r"'solver.epochs' must be int"):
        load_config(None, ["solver.epochs=ten"])
    typo_file = tmp_path / "typo.yaml"
    typo_file.write_text("data:\n  num_segment: 8\n")
    with pytest.raises(ConfigError, match=rf"{typo_file}: unknown key 'data.num_segment'; did you mean 'data.num_segments'"):
        load_config(typo_file)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_deepspeed_json_is_generated_from_the_config(tmp_path):
    config = load_config(REPO / "configs/k400.yaml", [
        "deepspeed.zero_stage=2", "deepspeed.precision=fp16", "solver.grad_accumulation_steps=2",
        "deepspeed.config.fp16.initial_scale_power=12", "deepspeed.config.zero_optimization.overlap_comm=true"])
    generated = deepspeed_config(config, steps_per_epoch=100, exp_dir=tmp_path)
    assert generated["train_micro_batch_size_per_gpu"] == 32
    assert generated["gradient_accumulation_steps"] == 2 and generated["gradient_clipping"] == 20.0
    assert generated["zero_optimization"] == {"stage": 2, "overlap_comm": True}
    assert generated["fp16"] == {"enabled": True, "initial_scale_power": 12} and not generated["bf16"]["enabled"]
    schedule = generated["scheduler"]["params"]
    assert schedule["total_num_steps"] == 50 * 50 and schedule["warmup_num_steps"] == 5 * 50


@pytest.mark.parametrize("override, message", [
    ("data.num_segments=0", "'data.num_segments' must be >= 1, got 0"),
    ("data.batch_size=-3", "'data.batch_size' must be >= 1, got -3"),
    ("solver.lr=-1e-5", "'solver.lr' must be >= 0"),
    ("data.grayscale_prob=1.5", "'data.grayscale_prob' must be between 0 and 1"),
    ("deepspeed.zero_stage=4", "'deepspeed.zero_stage' must be between 0 and 3"),
    ("solver.betas=[0.9, 1.0]", "'solver.betas' must be two numbers in [0, 1)"),
    ("solver.betas=[0.9]", "'solver.betas' must be two numbers in [0, 1)"),
    ("data.frame_interval=0", "'data.frame_interval' must be >= 1"),
    ("data.batch_size=[1", "not valid YAML (line 1, column 3)"),
])
def test_values_out_of_range_or_malformed_are_named(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("configs/demo.yaml", [override])


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  batch_size: 8\n  flip: [true\n")
    with pytest.raises(ConfigError, match=re.escape(f"{broken}: not valid YAML (line 4")):
        load_config(broken)


def test_the_saved_config_loads_back_as_the_same_tree(tmp_path):
    import yaml

    config = load_config(REPO / "configs/k400.yaml", ["data.num_segments=16", "deepspeed.config.fp16.loss_scale=0"])
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(config.as_dict(), sort_keys=False))
    assert load_config(saved) == config
    assert "num_segments" in config.as_dict()["data"] and config.data.num_frames == 16
