"""This trainer's checkpoints rebuild the network they were trained with, also what a state dict does not hold:
the activation (network.quick_gelu) and the Conv_1D layout (network.conv1d_layout)."""
from __future__ import annotations

import pytest
import torch
from test_actionclip_original_ckpt import conv1d_fusion_state, openai_clip_state, save_checkpoint
from test_actionclip_weights import openai_archive

from actionclip import ActionCLIP, export_original_checkpoint
from training import checkpoint, components
from training.config import ConfigError, RunConfig, with_values

T = 4
TINY = {"network.arch": "ViT-Tiny-16", "network.pretrained": "none", "data.num_segments": T,
        "data.input_size": 64}
CPU = torch.device("cpu")


def tiny_config(**values) -> RunConfig:
    return with_values(RunConfig(), {**TINY, **values}, "test")


def save(path, model: ActionCLIP, saved: dict) -> str:
    checkpoint.export_consolidated(path, model.state_dict(), saved, ["a", "b"], 1, {})
    return str(path)


def assert_same_outputs(first: ActionCLIP, second: ActionCLIP) -> None:
    video = torch.randn(2, T, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(first.eval().encode_video(video), second.eval().encode_video(video))


def test_a_model_trained_from_openai_weights_is_evaluated_and_fine_tuned_with_quickgelu(tmp_path):
    openai_archive(tmp_path / "openai.pt", 0)
    run = tiny_config(**{"network.pretrained": str(tmp_path / "openai.pt")})
    trained = components.model_from_config(run)
    saved = components.resolved_config(run, trained)
    assert run.network.quick_gelu is None and trained.quick_gelu and saved.network.quick_gelu is True
    path = save(tmp_path / "best.pt", trained, saved.as_dict())

    config, evaluated, _ = components.model_for_evaluation(tiny_config(), path, CPU)
    assert config.network.quick_gelu is True and evaluated.quick_gelu
    assert_same_outputs(trained, evaluated)
    tuned = components.model_from_config(tiny_config(**{"network.pretrained": path}))  # quick_gelu unset
    assert tuned.quick_gelu
    assert_same_outputs(trained, tuned)


def test_network_quick_gelu_forces_the_activation(tmp_path):
    openai_archive(tmp_path / "openai.pt", 1)
    run = tiny_config(**{"network.pretrained": str(tmp_path / "openai.pt"), "network.quick_gelu": False})
    model = components.model_from_config(run)
    assert not model.quick_gelu and components.resolved_config(run, model).network.quick_gelu is False
    assert components.model_from_config(tiny_config(**{"network.quick_gelu": True})).quick_gelu

    original = save_checkpoint(tmp_path / "k400.pt", openai_clip_state(2), {})
    with pytest.raises(ConfigError, match=r"network: .*k400.pt: original ActionCLIP checkpoints .*QuickGELU"):
        components.model_from_config(tiny_config(**{"network.pretrained": original, "network.quick_gelu": False,
                                                    "network.sim_header": "meanP"}))


def test_an_original_conv1d_checkpoint_keeps_its_layout_through_this_trainers_checkpoints(tmp_path):
    original = save_checkpoint(tmp_path / "k400_conv1d.pt", openai_clip_state(3), conv1d_fusion_state(4))
    run = tiny_config(**{"network.pretrained": original, "network.sim_header": "Conv_1D"})
    trained = components.model_from_config(run)
    saved = components.resolved_config(run, trained)
    assert run.network.conv1d_layout == "transpose" and saved.network.conv1d_layout == "original"
    path = save(tmp_path / "best.pt", trained, saved.as_dict())

    config, evaluated, _ = components.model_for_evaluation(tiny_config(), path, CPU)
    assert config.network.conv1d_layout == "original" and evaluated.conv1d_layout == "original"
    assert_same_outputs(trained, evaluated)
    export_original_checkpoint(evaluated)  # the original layout: exportable
    tuned = components.model_from_config(tiny_config(**{"network.pretrained": path, "network.sim_header": "Conv_1D"}))
    assert tuned.conv1d_layout == "original"
    assert_same_outputs(trained, tuned)


def test_a_checkpoint_saved_before_the_keys_existed_loads_with_their_defaults(tmp_path):
    run = tiny_config(**{"network.sim_header": "Conv_1D"})
    trained = components.model_from_config(run)
    saved = run.as_dict()
    del saved["network"]["quick_gelu"], saved["network"]["conv1d_layout"]
    path = save(tmp_path / "old.pt", trained, saved)
    # The run's own values do not stand in for the missing keys: the checkpoint was built without them.
    forcing = tiny_config(**{"network.quick_gelu": True, "network.conv1d_layout": "original",
                             "network.sim_header": "Conv_1D"})
    config, evaluated, _ = components.model_for_evaluation(forcing, path, CPU)
    assert (config.network.quick_gelu, config.network.conv1d_layout) == (None, "transpose")
    assert not evaluated.quick_gelu and evaluated.conv1d_layout == "transpose"
    assert_same_outputs(trained, evaluated)
