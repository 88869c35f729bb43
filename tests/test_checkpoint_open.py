"""One entry point for checkpoint files: read once, typed, the right model built from it."""
from __future__ import annotations

import pytest
import torch

from actionclip import save_original_checkpoint
from actionclip.temporal import TemporalShiftBlock
from training import checkpoint, components
from training.config import ConfigError, RunConfig, with_values

TINY = {"network.arch": "ViT-Tiny-16", "network.pretrained": "none", "data.num_segments": 4,
        "data.input_size": 64, "network.sim_header": "Transf"}


def tiny_config(**values) -> RunConfig:
    return with_values(RunConfig(), {**TINY, **values}, "test")


@pytest.fixture
def loads(monkeypatch):
    """Every torch.load call, by path."""
    calls = []
    real = torch.load

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return calls


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    theirs = second.state_dict()
    return all(torch.equal(value.float(), theirs[name].float()) for name, value in first.state_dict().items())


def test_an_original_checkpoint_is_read_once_and_imported(tmp_path, loads):
    torch.manual_seed(0)
    trained = components.model_from_config(tiny_config(**{"network.quick_gelu": True}))
    path = tmp_path / "original.pt"
    save_original_checkpoint(trained, path)
    config, model, classes = components.model_for_evaluation(tiny_config(), str(path), torch.device("cpu"))
    assert loads == [str(path)] and classes is None and config.network.sim_header == "Transf"
    assert same_weights(trained, model)


def test_own_checkpoint_brings_its_network_and_is_read_once(tmp_path, loads):
    torch.manual_seed(1)
    saved_config = tiny_config(**{"network.sim_header": "meanP", "data.num_segments": 6, "network.tsm": True,
                                  "network.shift_div": 4})
    trained = components.model_from_config(saved_config)
    path = tmp_path / "best.pt"
    checkpoint.export_consolidated(path, trained.state_dict(), saved_config.as_dict(), ["a", "b"], 3, {})
    # The run config says Transf and 4 frames; the checkpoint's own network wins.
    config, model, classes = components.model_for_evaluation(tiny_config(), str(path), torch.device("cpu"))
    assert loads == [str(path)] and classes == ["a", "b"]
    assert (config.network.sim_header, config.data.num_frames, model.sim_header) == ("meanP", 6, "meanP")
    # Shift has no weights: the checkpoint's config alone says how many channels move.
    shifts = [module.fold_div for module in model.modules() if isinstance(module, TemporalShiftBlock)]
    assert config.network.shift_div == 4 and shifts and set(shifts) == {4}
    assert same_weights(trained, model)
    # As network.pretrained (fine-tuning from it) the same file is read once more, not peeked at first.
    loads.clear()
    tuned = components.model_from_config(tiny_config(**{"network.sim_header": "meanP", "data.num_segments": 6,
                                                        "network.tsm": True, "network.pretrained": str(path)}))
    assert loads == [str(path)] and same_weights(trained, tuned)


def test_a_file_of_neither_format_is_named(tmp_path):
    other = tmp_path / "weights.pt"
    torch.save({"visual.proj": torch.zeros(2)}, other)
    with pytest.raises(ConfigError, match=r"weights\.pt: neither a 'actionclip-trainer/1' file"):
        checkpoint.open_checkpoint(other)
    assert checkpoint.open_checkpoint(other, other_weights=True).weights.kind == "open_clip"
    with pytest.raises(ConfigError, match="absent.pt not found"):
        checkpoint.open_checkpoint(tmp_path / "absent.pt")
