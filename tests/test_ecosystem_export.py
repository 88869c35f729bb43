"""`launch.py export`: a trained checkpoint as open_clip towers (+ model config) or as an original checkpoint."""
from __future__ import annotations

import json

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import load_file

from actionclip import import_original_checkpoint
from ecosystem_fixtures import error_line, tiny_checkpoint
from training import components
from training.config import RunConfig
from training_fixtures import launch


def own_model(path) -> torch.nn.Module:
    """The ActionCLIP model of a checkpoint, built as test mode builds it."""
    return components.model_for_evaluation(RunConfig(), str(path), torch.device("cpu"))[1].eval()


def embeddings(image_tower, text_tower, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(3, 3, 64, 64, generator=generator)
    tokens = open_clip.get_tokenizer("ViT-Tiny-16")(["a video of archery", "surfing", "juggling balls"])
    with torch.no_grad():
        return image_tower(images), text_tower(tokens)


@pytest.mark.parametrize("suffix, quick_gelu", [(".safetensors", True), (".pt", False)])
def test_open_clip_loads_the_exported_towers(tmp_path, suffix, quick_gelu):
    best = tiny_checkpoint(tmp_path / "best.pt", 7, **{"network.quick_gelu": quick_gelu})
    out = tmp_path / "exported" / f"tiny-towers{suffix}"
    result = launch("export", "--checkpoint", best, "--format", "open_clip", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"open_clip.create_model('tiny-towers', pretrained='{out}')" in result.stdout
    model_config = json.loads(out.with_suffix(".json").read_text())
    assert model_config["quick_gelu"] is quick_gelu and model_config["embed_dim"] == 64
    open_clip.add_model_config(out.with_suffix(".json"))
    by_name = open_clip.create_model("tiny-towers", pretrained=str(out)).eval()
    assert any(isinstance(module, QuickGELU) for module in by_name.modules()) is quick_gelu
    plain = open_clip.create_model("tiny-towers").eval()
    state = load_file(out) if suffix == ".safetensors" else torch.load(out, weights_only=True)
    assert state["logit_scale"].shape == plain.logit_scale.shape == ()
    plain.load_state_dict(state, strict=True)
    model = own_model(best)
    expected = embeddings(model.clip.encode_image, model.encode_text, 0)
    for clip in (by_name, plain):
        for got, want in zip(embeddings(clip.encode_image, clip.encode_text, 0), expected):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert torch.allclose(by_name.logit_scale.exp(), model.logit_scale.exp())


def test_the_original_layout_is_written_for_a_quickgelu_model_and_refused_for_gelu(tmp_path):
    best = tiny_checkpoint(tmp_path / "best.pt", 8, **{"network.quick_gelu": True})
    out = tmp_path / "actionclip.pt"
    result = launch("export", "--checkpoint", best, "--format", "original", out)
    assert result.returncode == 0, result.stderr[-3000:]
    exported = torch.load(out, weights_only=True)
    assert set(exported) == {"epoch", "model_state_dict", "fusion_model_state_dict", "optimizer_state_dict"}
    model, reloaded = own_model(best), own_model(best)
    for parameter in reloaded.parameters():
        parameter.data.zero_()
    import_original_checkpoint(reloaded, exported, source=str(out))
    trained = model.state_dict()
    assert all(torch.equal(value, trained[name]) for name, value in reloaded.state_dict().items())
    gelu = tiny_checkpoint(tmp_path / "gelu.pt", 8, **{"network.quick_gelu": False})
    refused = error_line(launch("export", "--checkpoint", gelu, "--format", "original", tmp_path / "gelu-out.pt"))
    assert "export --format original: this model uses GELU" in refused and "would predict differently" in refused
    assert not (tmp_path / "gelu-out.pt").exists()


@pytest.mark.parametrize("arguments, message", [
    (("--format", "open_clip", "towers.onnx"), "the weights file must end with .safetensors / .pt / .bin"),
    (("--format", "timm", "towers.pt"), "export needs --format original or open_clip, got 'timm'"),
    (("towers.pt",), "export needs --format original or open_clip, got None"),
])
def test_bad_export_arguments_are_named(tmp_path, arguments, message):
    best = tiny_checkpoint(tmp_path / "best.pt", 9)
    assert message in error_line(launch("export", "--checkpoint", best, *arguments))


def test_towers_open_clip_cannot_run_are_refused_and_outputs_are_kept(tmp_path):
    shifted = tiny_checkpoint(tmp_path / "tsm.pt", 10, **{"network.tsm": True})
    out = tmp_path / "towers.safetensors"
    refused = error_line(launch("export", "--checkpoint", shifted, "--format", "open_clip", out))
    assert "trained with Shift (tsm)" in refused and "--format original" in refused
    assert not out.exists() and not out.with_suffix(".json").exists()
    out.with_suffix(".json").write_text("{}")
    best = tiny_checkpoint(tmp_path / "best.pt", 10)
    kept = error_line(launch("export", "--checkpoint", best, "--format", "open_clip", out))
    assert f"{out.with_suffix('.json')} already exists: pass --overwrite" in kept
    assert launch("export", "--checkpoint", best, "--format", "open_clip", out, "--overwrite").returncode == 0
