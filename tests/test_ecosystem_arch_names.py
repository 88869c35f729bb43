"""`network.arch` in open_clip's, OpenAI's and the HF hub's spellings, resolved in one place (no network)."""
from __future__ import annotations

import json
import tempfile

import open_clip
import pytest
import torch

from actionclip import build_model, resolve_model_name
from actionclip.weights import SHIPPED_MODEL_CONFIGS
from ecosystem_fixtures import error_line, tiny_checkpoint
from media import write_video
from training_fixtures import launch

HUB_MEAN, HUB_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.mark.parametrize("spelled, name", [
    ("ViT-B/32", "ViT-B-32"),  # OpenAI's and the original ActionCLIP's spelling
    ("ViT-L/14@336px", "ViT-L-14-336"),
    ("vit-b-16", "ViT-B-16"),  # any case, named as open_clip lists it
    ("rn50", "RN50"),
    ("vit-tiny-16", "ViT-Tiny-16"),  # configs/models/
    ("ViT-B-32", "ViT-B-32"),
])
def test_spellings_resolve_to_the_name_open_clip_lists(spelled, name):
    assert resolve_model_name(spelled) == name


def test_an_unknown_name_suggests_the_nearest():
    with pytest.raises(ValueError, match=r"unknown model 'ViT-B/23': did you mean 'ViT-B-32'\?"):
        resolve_model_name("ViT-B/23")


def fake_hub_cache(root, repo_id: str) -> None:
    """huggingface_hub's cache layout holding an open_clip repository's config (ViT-Tiny-16, its own mean/std)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    model_config = json.loads((SHIPPED_MODEL_CONFIGS / "ViT-Tiny-16.json").read_text())
    (snapshot / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": model_config, "preprocess_cfg": {"mean": HUB_MEAN, "std": HUB_STD}}))


def test_a_hub_name_resolves_from_the_local_cache_with_its_preprocessing(tmp_path, monkeypatch):
    fake_hub_cache(tmp_path, "someone/tiny-clip")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    name = resolve_model_name("hf-hub:someone/tiny-clip", cache_dir=str(tmp_path))
    assert name == "someone--tiny-clip" and name in open_clip.list_models()
    assert not list(scratch.iterdir())  # the config file open_clip registered from is not left behind
    model = build_model(name, "none", num_frames=2)
    assert (model.embed_dim, model.image_size) == (64, (64, 64))
    assert model.image_mean == HUB_MEAN and model.image_std == HUB_STD
    assert model.encode_video(torch.zeros(1, 2, 3, 64, 64)).shape == (1, 64)


@pytest.mark.parametrize("repo_id, message", [
    ("someone/not-cached", r"hf-hub:someone/not-cached: its open_clip_config\.json is not in the local Hugging Face "
                           r"cache .*hf download someone/not-cached open_clip_config\.json"),
    ("no-organisation", r"expected hf-hub:org/name"),
])
def test_a_hub_name_without_a_cached_config_is_a_clear_error(tmp_path, repo_id, message):
    with pytest.raises(ValueError, match=message):
        resolve_model_name(f"hf-hub:{repo_id}", cache_dir=str(tmp_path))


def test_launch_reads_a_hub_arch_from_the_cache_hf_home_points_at(tmp_path, monkeypatch):
    """A checkpoint whose network.arch is a hub name: predict builds it from HF_HOME's cache, and names what is
    missing without one."""
    home = tmp_path / "hf-home"
    fake_hub_cache(home / "hub", "someone/tiny-clip")
    resolve_model_name("hf-hub:someone/tiny-clip", cache_dir=str(home / "hub"))  # so the checkpoint can be made here
    best = tiny_checkpoint(tmp_path / "best.pt", 5, **{"network.arch": "someone--tiny-clip"})
    saved = torch.load(best, weights_only=True)
    saved["config"]["network"]["arch"] = "hf-hub:someone/tiny-clip"  # what a run with that arch saves
    torch.save(saved, best)
    video = write_video(tmp_path / "clip.mp4", video_frames=24)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    found = launch("predict", "--checkpoint", best, "--classes", "archery,surfing", video)
    assert found.returncode == 0, found.stderr[-3000:]
    assert "archery" in found.stdout and "surfing" in found.stdout
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    missing = launch("predict", "--checkpoint", best, "--classes", "archery,surfing", video)
    assert "hf-hub:someone/tiny-clip: its open_clip_config.json is not in the local Hugging Face cache" in (
        error_line(missing))
