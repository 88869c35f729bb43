"""EMA of the weights (solver.ema): the update against a hand computation, on a plain module and on a real
DeepSpeed engine of 2 CPU ranks whose fp32 master copy is partitioned (ZeRO 1) or whose parameters are (ZeRO 3)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from training.ema import WeightEma

CPU = torch.device("cpu")
DECAY = 0.7
STEPS = 4


def tiny_module() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))


def hand_ema(snapshots: list[dict]) -> dict:
    """EMA_0 = W_0, EMA_k = DECAY · EMA_(k-1) + (1 - DECAY) · W_k, in float64."""
    expected = {name: value.double() for name, value in snapshots[0].items() if value.is_floating_point()}
    for weights in snapshots[1:]:
        expected = {name: DECAY * value + (1 - DECAY) * weights[name].double() for name, value in expected.items()}
    return expected


def assert_matches(ema_weights: dict, expected: dict, last: dict) -> None:
    for name, value in ema_weights.items():
        if value.is_floating_point():
            torch.testing.assert_close(value.double(), expected[name], rtol=1e-6, atol=1e-6, msg=name)
        else:  # integer buffers (BatchNorm's batch count) follow the weights
            assert torch.equal(value, last[name]), name


def test_ema_of_a_module_is_the_hand_computed_average_and_round_trips():
    module = tiny_module()
    ema = WeightEma(module, DECAY, CPU)
    snapshots = [{name: value.clone() for name, value in module.state_dict().items()}]
    for step in range(STEPS):
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.add_(torch.randn_like(parameter))
        module.train()(torch.randn(5, 6))  # moves the BatchNorm statistics and its batch count
        ema.update(module)
        snapshots.append({name: value.clone() for name, value in module.state_dict().items()})
    assert ema.updates == STEPS and not ema.model.training
    assert_matches(ema.model.state_dict(), hand_ema(snapshots), snapshots[-1])

    restored = WeightEma(tiny_module(), DECAY, CPU)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == STEPS
    assert all(torch.equal(restored.model.state_dict()[name], value) for name, value in ema.model.state_dict().items())
    restored.start_from(module)
    assert restored.updates == 0
    assert all(torch.equal(restored.model.state_dict()[name], value) for name, value in module.state_dict().items())


def _engine_rank(rank: int, port: int, zero_stage: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), DS_ACCELERATOR="cpu")
    from training import checkpoint
    from training.config import RunConfig, with_values
    from training.engine import build_engine, deepspeed_config, init_distributed

    dist = init_distributed(rank)
    config = with_values(RunConfig(), {
        "deepspeed.zero_stage": zero_stage, "deepspeed.precision": "bf16", "data.batch_size": 4,
        "logging.tensorboard": False, "logging.csv": False, "solver.lr_warmup_step": 0, "solver.ema": DECAY}, "test")
    model = tiny_module()
    ema = WeightEma(model, config.solver.ema, dist.device)  # as the trainer: a copy before the engine takes it ...
    groups = [{"params": list(model.parameters()), "lr": 0.05, "weight_decay": 0.0}]
    engine, _ = build_engine(model, groups, config, deepspeed_config(config, STEPS, Path(out_dir)))
    ema.start_from(engine.module)  # ... started at the engine's own weights
    snapshots = [checkpoint.fp32_state_dict(engine)]
    generator = torch.Generator().manual_seed(rank)
    for _ in range(STEPS):
        output = engine(torch.randn(4, 6, generator=generator).bfloat16())
        engine.backward(output.float().pow(2).mean())
        engine.step()
        ema.update(engine.module)
        snapshots.append(checkpoint.fp32_state_dict(engine))
    low_precision = {name: value.detach().float() for name, value in engine.module.state_dict().items()}
    torch.save({"ema": ema.state_dict(), "snapshots": snapshots, "low_precision": low_precision},
               Path(out_dir) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("zero_stage", [1, 3])
def test_ema_on_a_two_rank_bf16_zero_engine_follows_the_fp32_master_weights(tmp_path, zero_stage):
    mp.spawn(_engine_rank, args=(_free_port(), zero_stage, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for result in ranks:  # every rank holds the whole EMA (BatchNorm statistics, as the model's, its own)
        assert result["ema"]["updates"] == STEPS
        assert_matches(result["ema"]["weights"], hand_ema(result["snapshots"]), result["snapshots"][-1])
    snapshots = ranks[0]["snapshots"]
    parameters = [name for name, _ in tiny_module().named_parameters()]
    assert all(torch.equal(ranks[0]["ema"]["weights"][name], ranks[1]["ema"]["weights"][name]) for name in parameters)
    # The weights moved, and the bf16 module copy is not what the EMA follows.
    weight = "2.weight"
    assert (snapshots[-1][weight] - snapshots[0][weight]).abs().max() > 1e-2
    if zero_stage == 1:
        assert (ranks[0]["low_precision"][weight] - snapshots[-1][weight]).abs().max() > 0


def test_the_recipe_keys_are_off_by_default_and_range_checked():
    from training.config import ConfigError, RunConfig, load_config

    solver, network = RunConfig().solver, RunConfig().network
    assert (solver.mixup, solver.cutmix, solver.label_smoothing, solver.ema, solver.mix_prob) == (0, 0, 0, 0, 1)
    assert (network.drop_path, network.emb_dropout) == (0, 0)
    for override, message in (("solver.ema=1", "'solver.ema' must be in [0, 1), got 1"),
                              ("network.drop_path=1.5", "'network.drop_path' must be in [0, 1), got 1.5"),
                              ("solver.mix_prob=2", "'solver.mix_prob' must be between 0 and 1, got 2"),
                              ("solver.cutmix=-1", "'solver.cutmix' must be >= 0, got -1")):
        with pytest.raises(ConfigError) as error:
            load_config(None, [override])
        assert str(error.value) == f"--set {override}: {message}"
