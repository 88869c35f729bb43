"""Recipe options end to end (issue #15): Mixup + CutMix, label smoothing, EMA, drop path and embedding dropout
in one launch.py run on small shards; the EMA's val rows and checkpoints, `test` on best_ema.pt, resume."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from test_training import shards  # noqa: F401  (the module's fixture: small motion shards)
from training_fixtures import launch, records, settings

pytestmark = pytest.mark.slow
RECIPE = {"solver.mixup": 0.8, "solver.cutmix": 1.0, "solver.label_smoothing": 0.1, "solver.ema": 0.9,
          "network.drop_path": 0.2, "network.emb_dropout": 0.1}


@pytest.fixture(scope="module")
def recipe(shards, tmp_path_factory) -> Path:
    exp_dir = tmp_path_factory.mktemp("run") / "recipe"
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir, **RECIPE))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '"best_ema_top1"' in result.stdout and "epoch 2 val_ema" in result.stdout
    return exp_dir


def client_state(exp_dir: Path, tag: str) -> dict:
    return torch.load(exp_dir / "checkpoints" / "deepspeed" / tag / "mp_rank_00_model_states.pt", weights_only=True)


def test_the_ema_is_scored_saved_and_kept_for_resuming(recipe):
    steps = records(recipe, "train")[-1]["step"]
    assert len(records(recipe, "val")) == len(records(recipe, "val_ema")) == 2
    folder = recipe / "checkpoints"
    last, last_ema = (torch.load(folder / name, weights_only=True) for name in ("last.pt", "last_ema.pt"))
    best_ema = torch.load(folder / "best_ema.pt", weights_only=True)
    assert last_ema["format"] == last["format"] and last_ema["classes"] == last["classes"]
    assert last_ema["state_dict"].keys() == last["state_dict"].keys()
    assert best_ema["metrics"]["top1"] == max(row["top1"] for row in records(recipe, "val_ema"))
    assert last_ema["config"]["network"]["drop_path"] == 0.2 and last_ema["config"]["solver"]["ema"] == 0.9
    moved = [name for name, value in last["state_dict"].items() if value.is_floating_point()
             and not torch.allclose(value, last_ema["state_dict"][name], atol=1e-4)]
    assert len(moved) > len(last["state_dict"]) // 2  # the average lags the weights
    saved = client_state(recipe, "epoch0002")["ema"]
    assert saved["updates"] == steps
    assert all(torch.equal(value, last_ema["state_dict"][name]) for name, value in saved["weights"].items())


def test_best_ema_pt_loads_and_tests_as_its_val_ema_row_scored(recipe, shards):
    checkpoint = recipe / "checkpoints" / "best_ema.pt"
    result = launch("test", "--config", "configs/demo.yaml", *settings(shards, recipe, **RECIPE),
                    "--checkpoint", checkpoint)
    assert result.returncode == 0, result.stderr[-3000:]
    scored = json.loads((recipe / "results-test.json").read_text())
    saved = torch.load(checkpoint, weights_only=True)
    row = next(row for row in records(recipe, "val_ema") if row["top1"] == saved["metrics"]["top1"])
    for key in ("top1", "top5", "mean_class_accuracy"):
        assert scored[key] == pytest.approx(row[key], abs=1e-6)


def test_a_resumed_run_repeats_the_mixing_and_continues_the_ema(recipe, shards, tmp_path):
    exp_dir = Path(shutil.copytree(recipe, tmp_path / "resumed"))
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir, **RECIPE),
                    "--resume", exp_dir / "checkpoints" / "deepspeed" / "epoch0001")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "resumed from" in result.stdout and "holds no EMA" not in result.stdout
    uninterrupted = {row["step"]: row for row in records(recipe, "train") if row["epoch"] == 2}
    again = {row["step"]: row for row in records(exp_dir, "train")[len(records(recipe, "train")):]}
    assert again.keys() == uninterrupted.keys()
    for step, row in again.items():  # the same clips, mixes, drops and prompts: the same losses
        assert row["loss"] == pytest.approx(uninterrupted[step]["loss"], rel=1e-3, abs=1e-4)
    resumed, reference = (torch.load(path / "checkpoints" / "last_ema.pt", weights_only=True)["state_dict"]
                          for path in (exp_dir, recipe))
    for name, value in reference.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-3, atol=1e-5, msg=name)


def test_resuming_a_checkpoint_without_ema_starts_the_ema_from_its_weights(recipe, shards, tmp_path):
    exp_dir = Path(shutil.copytree(recipe, tmp_path / "no-ema"))
    states = exp_dir / "checkpoints" / "deepspeed" / "epoch0001" / "mp_rank_00_model_states.pt"
    saved = torch.load(states, weights_only=True)
    del saved["ema"]
    torch.save(saved, states)
    result = launch("--config", "configs/demo.yaml", *settings(shards, exp_dir, **RECIPE),
                    "--resume", states.parent, "--max-steps", records(recipe, "train")[-1]["step"] // 2 + 1)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "holds no EMA (saved without solver.ema); the EMA starts from its weights" in result.stdout
