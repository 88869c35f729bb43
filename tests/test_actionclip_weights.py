"""Where CLIP weights come from: open_clip tags (offline fail-fast), local files, random init; model configs."""
import json
import shutil
import time

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU

from actionclip import build_model, resolve_model_name
from actionclip.weights import SHIPPED_MODEL_CONFIGS, resolve_weights

MODEL = resolve_model_name("ViT-Tiny-16")


def tiny_clip(seed: int, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model(MODEL, **kwargs)


def assert_same_clip_weights(model, clip):
    expected = clip.state_dict()
    for key, value in model.clip.state_dict().items():
        torch.testing.assert_close(value.reshape(expected[key].shape), expected[key], msg=key)


@pytest.mark.parametrize("offline_env", [
    {"HF_ENDPOINT": "http://127.0.0.1:9"},  # nothing listens there: the reachability probe fails at once
    {"HF_HUB_OFFLINE": "1"},
])
def test_pretrained_tag_without_network_or_cache_fails_fast_naming_the_tag(monkeypatch, tmp_path, offline_env):
    for name, value in offline_env.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"pretrained tag 'openai' for model 'ViT-B-32' is not in the local "
                                           r"cache.*pretrained=/path/to/weights.*pretrained=none"):
        build_model("ViT-B-32", "openai", num_frames=8, cache_dir=str(tmp_path))
    assert time.monotonic() - start < 10


def test_pretrained_tag_already_in_the_hub_cache_resolves_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--timm--vit_base_patch32_clip_224.openai"  # huggingface_hub's cache layout
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"cached weights")
    source = resolve_weights("ViT-B-32", "openai", cache_dir=str(tmp_path))
    assert source.kind == "open_clip" and source.path == str(snapshot / "open_clip_pytorch_model.bin")
    assert source.quick_gelu is True and source.preprocess["mean"] == open_clip.OPENAI_DATASET_MEAN


@pytest.mark.parametrize("nested", [False, True])
def test_open_clip_state_dict_file_loads(tmp_path, nested):
    clip = tiny_clip(1)
    state = clip.state_dict()
    if nested:  # what DataParallel training scripts save
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(state, tmp_path / "weights.pt")
    assert_same_clip_weights(build_model(MODEL, str(tmp_path / "weights.pt"), num_frames=2), clip)


def openai_archive(path, seed: int) -> torch.nn.Module:
    """A tiny CLIP saved at `path` as OpenAI releases CLIP: a TorchScript archive (QuickGELU); returns the CLIP."""
    clip = tiny_clip(seed, quick_gelu=True).eval()
    clip.register_buffer("input_resolution", torch.tensor(64))  # OpenAI archives carry this next to weights
    traced = torch.jit.trace_module(clip, {"encode_image": (torch.randn(1, 3, 64, 64),)}, check_trace=False)
    torch.jit.save(traced, path)
    return clip


def test_openai_torchscript_archive_loads_with_quickgelu(tmp_path):
    clip = openai_archive(tmp_path / "ViT-Tiny-16.pt", 2)
    model = build_model(MODEL, str(tmp_path / "ViT-Tiny-16.pt"), num_frames=2)
    assert isinstance(model.clip.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert_same_clip_weights(model, clip)


def test_weights_of_another_architecture_are_rejected_naming_the_file(tmp_path):
    torch.save(open_clip.create_model(resolve_model_name("RN-Tiny")).state_dict(), tmp_path / "rn.pt")
    with pytest.raises(ValueError, match=r"rn.pt: weights do not fit model 'ViT-Tiny-16'"):
        build_model(MODEL, str(tmp_path / "rn.pt"), num_frames=2)


def test_file_needing_pickled_objects_is_rejected(tmp_path):
    torch.save({"cfg": open_clip.CLIPVisionCfg(), "state": {}}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match=r"pickled.pt: not a weights-only checkpoint.*state dict"):
        build_model(MODEL, str(tmp_path / "pickled.pt"), num_frames=2)


def test_unknown_pretrained_value_lists_the_known_tags():
    with pytest.raises(ValueError, match=r"'openia' is neither an open_clip tag for 'ViT-B-32' \(known tags: .*openai"):
        build_model("ViT-B-32", "openia", num_frames=8)


@pytest.mark.parametrize("pretrained", [None, "none"])
def test_no_pretrained_means_random_init(pretrained):
    torch.manual_seed(3)
    first = build_model(MODEL, pretrained, num_frames=2)
    second = build_model(MODEL, pretrained, num_frames=2)
    assert not torch.equal(first.clip.visual.conv1.weight, second.clip.visual.conv1.weight)


def test_model_config_json_path_is_registered_and_shipped_configs_exist(tmp_path):
    assert {"ViT-Tiny-16", "RN-Tiny"} <= {p.stem for p in SHIPPED_MODEL_CONFIGS.glob("*.json")}
    config = tmp_path / "My-Tiny.json"
    shutil.copy(SHIPPED_MODEL_CONFIGS / "ViT-Tiny-16.json", config)
    model = build_model(str(config), "none", num_frames=2)
    assert "My-Tiny" in open_clip.list_models()
    assert model.image_size == (64, 64) and model.embed_dim == 64
    assert model.image_mean == open_clip.OPENAI_DATASET_MEAN and model.image_std == open_clip.OPENAI_DATASET_STD
    with pytest.raises(ValueError, match="unknown model 'ViT-Nope'"):
        build_model("ViT-Nope", "none", num_frames=2)


def test_resnet_residual_branches_start_closed_unless_asked_open():
    def last_bn_scales(model):
        return torch.cat([p.flatten() for n, p in model.named_parameters() if ".layer" in n and n.endswith("bn3.weight")])

    assert last_bn_scales(build_model("RN-Tiny", "none", num_frames=2)).abs().max() == 0  # open_clip's init
    opened = last_bn_scales(build_model("RN-Tiny", "none", num_frames=2, zero_init_residual=False))
    assert opened.numel() == 4 * 16 * (1 + 2 + 4 + 8) and torch.all(opened == 1)  # 4 stages, 4 x planes each


def test_open_residual_branches_is_refused_for_vit_towers_and_loaded_weights(tmp_path):
    with pytest.raises(ValueError, match="applies to ModifiedResNet.*VisionTransformer"):
        build_model(MODEL, "none", num_frames=2, zero_init_residual=False)
    torch.save(open_clip.create_model(resolve_model_name("RN-Tiny")).state_dict(), tmp_path / "rn.pt")
    with pytest.raises(ValueError, match=r"changes a random init, but weights are loaded from .*rn.pt"):
        build_model("RN-Tiny", str(tmp_path / "rn.pt"), num_frames=2, zero_init_residual=False)


def test_the_model_tells_its_activation_chosen_by_the_option_the_weights_or_the_model_config(tmp_path):
    quick_config = tmp_path / "ViT-Tiny-16-quickgelu.json"
    quick_config.write_text(json.dumps({**json.loads((SHIPPED_MODEL_CONFIGS / "ViT-Tiny-16.json").read_text()),
                                        "quick_gelu": True}))
    openai_archive(tmp_path / "openai.pt", 3)
    assert not build_model(MODEL, "none", num_frames=2).quick_gelu  # ViT-Tiny-16's config: GELU
    assert build_model(str(quick_config), "none", num_frames=2).quick_gelu
    assert build_model(MODEL, str(tmp_path / "openai.pt"), num_frames=2).quick_gelu  # the weights' activation
    assert not build_model(MODEL, str(tmp_path / "openai.pt"), num_frames=2, quick_gelu=False).quick_gelu
    assert build_model(MODEL, "none", num_frames=2, quick_gelu=True).quick_gelu
