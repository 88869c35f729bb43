"""Original ActionCLIP checkpoints: import (documented keys/shapes, fp16, `.net`, `module.`) and export."""
import open_clip
import pytest
import torch
import torch.nn.functional as F

from actionclip import (build_model, export_original_checkpoint, import_original_checkpoint, resolve_model_name,
                        save_original_checkpoint)

MODEL = resolve_model_name("ViT-Tiny-16")  # also registers the shipped configs with open_clip
D, T, CONTEXT = 64, 4, 77


def openai_clip_state(seed: int) -> dict:
    """A CLIP state dict in OpenAI key names (open_clip's CLIP shares them), stored fp16 like the original."""
    torch.manual_seed(seed)
    clip = open_clip.create_model(MODEL, quick_gelu=True)
    return {k: v.half() for k, v in clip.state_dict().items()}


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


def transf_fusion_state(seed: int) -> dict:
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


def reference_transf(frames: torch.Tensor, state: dict) -> torch.Tensor:
    """The original `Transf` head written out: positions, 6 pre-norm blocks (LN eps 1e-12, QuickGELU), residual, mean."""
    w = {k.removeprefix("module."): v.float() for k, v in state.items()}
    x = (frames + w["frame_position_embeddings.weight"][:frames.shape[1]]).transpose(0, 1)  # LND
    for n in range(6):
        p = f"transformer.resblocks.{n}."
        h = F.layer_norm(x, (D,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps=1e-12)
        attention, _ = F.multi_head_attention_forward(
            h, h, h, D, max(1, D // 64), w[p + "attn.in_proj_weight"], w[p + "attn.in_proj_bias"],
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

    reference_clip = open_clip.create_model(MODEL, quick_gelu=True).eval()
    reference_clip.load_state_dict({k: v.float() for k, v in clip_state.items()})
    video = torch.randn(2, T, 3, 64, 64)
    tokens = open_clip.get_tokenizer(MODEL)(["a photo of action abseiling", "The man is cartwheel"])
    with torch.no_grad():
        frames = reference_clip.encode_image(video.flatten(0, 1)).view(2, T, D)
        torch.testing.assert_close(model.encode_video(video), reference_transf(frames, fusion_state))
        torch.testing.assert_close(model.encode_text(tokens), reference_clip.encode_text(tokens))


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


@pytest.mark.parametrize("case", ["Transf", "LSTM", "Shift", "Joint"])
def test_export_round_trips_the_original_layout(tmp_path, case):
    clip_state = openai_clip_state(3)
    options = {"sim_header": case if case in ("Transf", "LSTM") else "meanP",
               "tsm": case == "Shift", "joint": case == "Joint"}
    fusion_state = {"Transf": transf_fusion_state, "LSTM": lstm_fusion_state}.get(case, lambda seed: {})(4)
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
            if not (case == "LSTM" and key == "module.frame_position_embeddings.weight"):  # unused by LSTM
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
