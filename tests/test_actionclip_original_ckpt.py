"""Original ActionCLIP checkpoints: import (documented keys/shapes, fp16, `.net`, `module.`) and export."""
import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from actionclip import (build_model, export_original_checkpoint, import_original_checkpoint, resolve_model_name,
                        save_original_checkpoint)

MODEL = resolve_model_name("ViT-Tiny-16")  # also registers the shipped configs with open_clip
D, T, CONTEXT = 64, 4, 77


def openai_clip_state(seed: int, model: str = MODEL) -> dict:
    """A CLIP state dict in OpenAI key names (open_clip's CLIP shares them), stored fp16 like the original."""
    torch.manual_seed(seed)
    clip = open_clip.create_model(model, quick_gelu=True)
    return {k: v.half() for k, v in clip.state_dict().items()}


def original_frames(clip_state: dict, video: torch.Tensor, model: str = MODEL) -> tuple[torch.Tensor, torch.nn.Module]:
    """`video`'s (B, T, D) frame embeddings by OpenAI CLIP (QuickGELU, as the original) from `clip_state`; the CLIP."""
    clip = open_clip.create_model(model, quick_gelu=True).eval()
    clip.load_state_dict({k: v.float() for k, v in clip_state.items()})
    with torch.no_grad():
        return clip.encode_image(video.flatten(0, 1)).view(*video.shape[:2], -1), clip


def with_shift_level(state: dict) -> dict:
    """Insert the `.net` level Shift adds to visual blocks: visual.transformer.resblocks.N.net.<rest>."""
    renamed = {}
    for key, value in state.items():
        prefix = "visual.transformer.resblocks."
        if key.startswith(prefix):
            block, rest = key[len(prefix):].split(".", 1)
            key = f"{prefix}{block}.net.{rest}"
        renamed[key] = value
    return renamed


def transf_fusion_state(seed: int, D: int = D) -> dict:
    """The documented `Transf` fusion keys and shapes for D, DataParallel `module.` prefix, fp16."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, mean=0.0):
        return (mean + 0.05 * torch.randn(*shape, generator=g)).half()

    state = {"module.frame_position_embeddings.weight": rand(CONTEXT, D)}
    for n in range(6):
        p = f"module.transformer.resblocks.{n}."
        state.update({
            p + "attn.in_proj_weight": rand(3 * D, D), p + "attn.in_proj_bias": rand(3 * D),
            p + "attn.out_proj.weight": rand(D, D), p + "attn.out_proj.bias": rand(D),
            p + "ln_1.weight": rand(D, mean=1.0), p + "ln_1.bias": rand(D),
            p + "mlp.c_fc.weight": rand(4 * D, D), p + "mlp.c_fc.bias": rand(4 * D),
            p + "mlp.c_proj.weight": rand(D, 4 * D), p + "mlp.c_proj.bias": rand(D),
            p + "ln_2.weight": rand(D, mean=1.0), p + "ln_2.bias": rand(D),
        })
    return state


def lstm_fusion_state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {"module.frame_position_embeddings.weight": torch.randn(CONTEXT, D, generator=g).half()}
    for name, shape in [("weight_ih_l0", (4 * D, D)), ("weight_hh_l0", (4 * D, D)),
                        ("bias_ih_l0", (4 * D,)), ("bias_hh_l0", (4 * D,))]:
        state[f"module.lstm_visual.{name}"] = (0.1 * torch.randn(*shape, generator=g)).half()
    return state


def save_checkpoint(path, clip_state: dict, fusion_state: dict) -> str:
    torch.save({"epoch": 7, "model_state_dict": clip_state, "fusion_model_state_dict": fusion_state,
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 5e-6, "params": [0, 1]}]}}, path)
    return str(path)


def conv1d_fusion_state(seed: int) -> dict:
    """The original `Conv_1D` fusion keys: its (unused) frame position table and the depthwise conv, fp16."""
    g = torch.Generator().manual_seed(seed)
    return {"module.frame_position_embeddings.weight": torch.randn(CONTEXT, D, generator=g).half(),
            "module.shift.weight": (0.5 * torch.randn(D, 1, 3, generator=g)).half()}


def reference_conv1d(frames: torch.Tensor, state: dict) -> torch.Tensor:
    """The original `Conv_1D` head written out: the (b, t, c) frames viewed as (b, c, t) (not transposed),
    depthwise conv, permuted back to (b, t, c), residual, mean."""
    b, t, c = frames.shape
    x = frames.contiguous().view(-1, c, t)
    x = F.conv1d(x, state["module.shift.weight"].float(), padding=1, groups=c)
    return (x.permute(0, 2, 1) + frames).mean(dim=1)


def reference_transf(frames: torch.Tensor, state: dict, heads: int = 1) -> torch.Tensor:
    """The original `Transf` head written out: positions, 6 pre-norm blocks (LN eps 1e-12, QuickGELU), residual, mean."""
    D = frames.shape[-1]
    w = {k.removeprefix("module."): v.float() for k, v in state.items()}
    x = (frames + w["frame_position_embeddings.weight"][:frames.shape[1]]).transpose(0, 1)  # LND
    for n in range(6):
        p = f"transformer.resblocks.{n}."
        h = F.layer_norm(x, (D,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps=1e-12)
        attention, _ = F.multi_head_attention_forward(
            h, h, h, D, heads, w[p + "attn.in_proj_weight"], w[p + "attn.in_proj_bias"],
            None, None, False, 0.0, w[p + "attn.out_proj.weight"], w[p + "attn.out_proj.bias"],
            training=False, need_weights=False)
        x = x + attention
        h = F.layer_norm(x, (D,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps=1e-12)
        h = F.linear(h, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"])
    return (x.transpose(0, 1) + frames).mean(dim=1)


def test_transf_checkpoint_imports_and_computes_like_the_original(tmp_path):
    clip_state, fusion_state = openai_clip_state(0), transf_fusion_state(1)
    path = save_checkpoint(tmp_path / "k400_transf.pt", clip_state, fusion_state)
    model = build_model(MODEL, path, num_frames=T, sim_header="Transf").eval()
    assert model.fusion.transformer.resblocks[0].ln_1.eps == 1e-12  # the original's TF-style LayerNorm

    video = torch.randn(2, T, 3, 64, 64)
    frames, reference_clip = original_frames(clip_state, video)
    tokens = open_clip.get_tokenizer(MODEL)(["a photo of action abseiling", "The man is cartwheel"])
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(video), reference_transf(frames, fusion_state))
        torch.testing.assert_close(model.encode_text(tokens), reference_clip.encode_text(tokens))


def test_transf_heads_follow_the_text_width_as_in_the_original(tmp_path):
    # RN50's proportions: D = 1024 from a text transformer of width 512, where the original runs 512 // 64 = 8
    # heads (not 1024 // 64 = 16). Here D = 128 from width 64: one head.
    config = tmp_path / "Tiny-Wide-Embed.json"
    config.write_text(json.dumps({"embed_dim": 128,
                                  "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16},
                                  "text_cfg": {"context_length": CONTEXT, "vocab_size": 49408, "width": 64,
                                               "heads": 1, "layers": 1}}))
    name = resolve_model_name(str(config))
    clip_state, fusion_state = openai_clip_state(10, name), transf_fusion_state(11, D=128)
    path = save_checkpoint(tmp_path / "wide.pt", clip_state, fusion_state)
    model = build_model(name, path, num_frames=T, sim_header="Transf").eval()
    assert model.fusion.transformer.resblocks[0].attn.num_heads == 1

    video = torch.randn(2, T, 3, 64, 64)
    frames, _ = original_frames(clip_state, video, name)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(video), reference_transf(frames, fusion_state, heads=1))


def test_conv1d_checkpoint_runs_with_the_original_layout_and_computes_like_the_original(tmp_path):
    clip_state, fusion_state = openai_clip_state(8), conv1d_fusion_state(9)
    path = save_checkpoint(tmp_path / "k400_conv1d.pt", clip_state, fusion_state)
    model = build_model(MODEL, path, num_frames=T, sim_header="Conv_1D").eval()
    assert model.conv1d_layout == "original"

    video = torch.randn(2, T, 3, 64, 64)
    frames, _ = original_frames(clip_state, video)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(video), reference_conv1d(frames, fusion_state))


def test_export_of_a_conv1d_head_with_the_transposing_layout_is_refused():
    model = build_model(MODEL, "none", num_frames=T, sim_header="Conv_1D", quick_gelu=True)
    with pytest.raises(ValueError, match=r"conv1d_layout 'transpose'.*predict differently.*network.conv1d_layout: "
                                         r"original"):
        export_original_checkpoint(model)


def test_import_into_a_gelu_model_is_refused_naming_the_file_and_the_fix(tmp_path):
    path = save_checkpoint(tmp_path / "k400_vit.pt", openai_clip_state(12), {})
    gelu = build_model(MODEL, "none", num_frames=T)
    assert not gelu.quick_gelu
    refusal = r"k400_vit.pt: original ActionCLIP checkpoints .* run QuickGELU.*built with GELU.*quick_gelu=True"
    with pytest.raises(ValueError, match=refusal):
        import_original_checkpoint(gelu, path)
    with pytest.raises(ValueError, match=refusal):
        build_model(MODEL, path, num_frames=T, quick_gelu=False)
    assert build_model(MODEL, path, num_frames=T).quick_gelu  # unset: the checkpoint's QuickGELU


def test_shift_checkpoint_with_net_level_imports_into_a_shift_model(tmp_path):
    plain_state = openai_clip_state(2)
    path = save_checkpoint(tmp_path / "tsm.pt", with_shift_level(plain_state), {})
    model = build_model(MODEL, path, num_frames=T, tsm=True).eval()
    imported = model.clip.state_dict()
    for key, value in with_shift_level(plain_state).items():
        torch.testing.assert_close(imported[key].reshape(value.shape), value.float())

    torch.save({k: v.float() for k, v in plain_state.items()}, tmp_path / "clip.pt")
    same_weights = build_model(MODEL, str(tmp_path / "clip.pt"), num_frames=T, tsm=True, quick_gelu=True).eval()
    video = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(video), same_weights.encode_video(video))

    with pytest.raises(ValueError, match=r"trained with Shift \(tsm\) on.*built with it off"):
        build_model(MODEL, path, num_frames=T, tsm=False)


@pytest.mark.parametrize("case", ["Transf", "LSTM", "Conv_1D", "Shift", "Joint"])
def test_export_round_trips_the_original_layout(tmp_path, case):
    clip_state = openai_clip_state(3)
    fusion_states = {"Transf": transf_fusion_state, "LSTM": lstm_fusion_state, "Conv_1D": conv1d_fusion_state}
    options = {"sim_header": case if case in fusion_states else "meanP",
               "tsm": case == "Shift", "joint": case == "Joint"}
    fusion_state = fusion_states.get(case, lambda seed: {})(4)
    if case == "Shift":
        clip_state = with_shift_level(clip_state)
    if case == "Joint":
        clip_state["visual.time_embedding"] = torch.randn(T, 128).half()
    original = save_checkpoint(tmp_path / "original.pt", clip_state, fusion_state)
    model = build_model(MODEL, original, num_frames=T, **options).eval()

    exported = export_original_checkpoint(model, epoch=7)
    assert set(exported) == {"epoch", "model_state_dict", "fusion_model_state_dict", "optimizer_state_dict"}
    assert exported["epoch"] == 7
    for part, state in (("model_state_dict", clip_state), ("fusion_model_state_dict", fusion_state)):
        assert set(exported[part]) == set(state)
        for key, value in state.items():
            assert exported[part][key].shape == value.shape, key
            if not (case in ("LSTM", "Conv_1D") and key == "module.frame_position_embeddings.weight"):  # unused
                torch.testing.assert_close(exported[part][key], value.float())

    save_original_checkpoint(model, tmp_path / "exported.pt", epoch=7)
    torch.manual_seed(99)
    reloaded = build_model(MODEL, str(tmp_path / "exported.pt"), num_frames=T, **options).eval()
    video = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.encode_video(video), model.encode_video(video))


def test_import_into_a_model_with_another_head_names_the_checkpoint_head(tmp_path):
    path = save_checkpoint(tmp_path / "transf.pt", openai_clip_state(5), transf_fusion_state(6))
    with pytest.raises(ValueError, match="fusion head is Transf, the model's is meanP.*sim_header='Transf'"):
        build_model(MODEL, path, num_frames=T, sim_header="meanP")


def test_import_rejects_checkpoints_that_need_pickled_objects(tmp_path):
    model = build_model(MODEL, "none", num_frames=T)
    path = tmp_path / "pickled.pt"
    torch.save({"model_state_dict": {}, "fusion_model_state_dict": {}, "config": open_clip.CLIPVisionCfg()}, path)
    with pytest.raises(ValueError, match="pickled.pt: not a weights-only checkpoint: torch.load\\(weights_only=True\\)"):
        import_original_checkpoint(model, path)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not an original ActionCLIP checkpoint"):
        import_original_checkpoint(model, tmp_path / "other.pt")
