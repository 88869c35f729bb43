"""Fusion heads (sim_header) on their own and inside the model."""
import open_clip
import pytest
import torch
import torch.nn.functional as F

from actionclip import SIM_HEADERS, ActionCLIP, build_fusion_head, build_model, resolve_model_name

resolve_model_name("ViT-Tiny-16")  # registers the shipped configs, so the open_clip model list below has them

D, T, B = 64, 5, 3


def frames(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sim_header", SIM_HEADERS)
def test_every_head_maps_frames_to_one_embedding_per_video(sim_header):
    head = build_fusion_head(sim_header, D, T).eval()
    out = head(frames())
    assert out.shape == (B, D)
    assert torch.isfinite(out).all()


def test_meanP_is_the_frame_mean():
    x = frames()
    torch.testing.assert_close(build_fusion_head("meanP", D, T)(x), x.mean(dim=1))


def test_conv1d_at_initialisation_is_identity_plus_documented_channel_shift():
    x = frames()
    shifted = torch.zeros_like(x)
    quarter, half = D // 4, D // 2
    for t in range(T):
        if t >= 1:  # first quarter looks one frame back
            shifted[:, t, :quarter] = x[:, t - 1, :quarter]
        shifted[:, t, quarter:quarter + half] = x[:, t, quarter:quarter + half]
        if t + 1 < T:  # last quarter looks one frame ahead
            shifted[:, t, quarter + half:] = x[:, t + 1, quarter + half:]
    expected = (x + shifted).mean(dim=1)
    torch.testing.assert_close(build_fusion_head("Conv_1D", D, T)(x), expected)


@pytest.mark.parametrize("sim_header", ["Conv_1D", "LSTM", "Transf", "Transf_cls"])
def test_temporal_heads_depend_on_frame_order(sim_header):
    head = build_fusion_head(sim_header, D, T).eval()
    x = frames()
    with torch.no_grad():
        forward, backward = head(x), head(x.flip(dims=[1]))
    assert (forward - backward).abs().max() > 1e-4


def test_meanP_does_not_depend_on_frame_order():
    x = frames()
    head = build_fusion_head("meanP", D, T)
    torch.testing.assert_close(head(x), head(x.flip(dims=[1])))


def test_unknown_head_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match="meanP, Conv_1D, LSTM, Transf, Transf_cls"):
        build_fusion_head("mean", D, T)


def test_transf_cls_requires_the_frame_count_it_was_built_for():
    head = build_fusion_head("Transf_cls", D, T)
    with pytest.raises(ValueError, match="built for 5 frames, got 4"):
        head(torch.randn(B, 4, D))


@pytest.mark.parametrize("model_name", ["ViT-Tiny-16", "RN-Tiny"])
def test_model_video_embedding_with_meanP_is_mean_of_per_frame_image_embeddings(model_name):
    torch.manual_seed(0)
    model = build_model(model_name, "none", num_frames=T, sim_header="meanP").eval()
    video = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        per_frame = model.clip.encode_image(video.flatten(0, 1)).view(2, T, -1)
        torch.testing.assert_close(model.encode_video(video), per_frame.mean(dim=1))
        video_embedding, text_embedding, scale = model(video, torch.randint(0, 49408, (4, 77)))
    assert video_embedding.shape == (2, 64) and text_embedding.shape == (4, 64)
    torch.testing.assert_close(video_embedding.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(scale, model.clip.logit_scale.exp())


@pytest.mark.parametrize("sim_header", SIM_HEADERS)
def test_model_builds_and_runs_every_head(sim_header):
    model = build_model("ViT-Tiny-16", "none", num_frames=T, sim_header=sim_header)
    video_embedding, _, _ = model(torch.randn(2, T, 3, 64, 64), torch.randint(0, 49408, (2, 77)))
    assert video_embedding.shape == (2, 64)
    video_embedding.sum().backward()
    assert all(p.grad is not None for p in model.fusion.parameters())


def test_model_rejects_video_of_the_wrong_shape_with_the_expected_one():
    model = build_model("ViT-Tiny-16", "none", num_frames=T)
    with pytest.raises(ValueError, match=r"\(batch, 5, 3, 64, 64\).*got \(2, 5, 3, 32, 32\)"):
        model.encode_video(torch.randn(2, T, 3, 32, 32))


def test_conv1d_original_layout_computes_the_original_view_not_a_transpose():
    x = frames()
    original = build_fusion_head("Conv_1D", D, T, conv1d_layout="original")
    transpose = build_fusion_head("Conv_1D", D, T)
    weight = torch.randn(D, 1, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        original.shift.weight.copy_(weight)
        transpose.shift.weight.copy_(weight)
        # The original head: x.view(-1, c, t) of the (b, t, c) frames, its conv, permuted back, residual, mean.
        conv = F.conv1d(x.contiguous().view(-1, D, T), weight, padding=1, groups=D)
        expected = (conv.permute(0, 2, 1) + x).mean(dim=1)
        torch.testing.assert_close(original(x), expected)
        assert (transpose(x) - expected).abs().max() > 1e-3  # this trainer's own conv runs over time per channel


def test_conv1d_layout_original_is_refused_for_other_heads():
    with pytest.raises(ValueError, match="conv1d_layout 'original' is a layout of the Conv_1D head"):
        build_model("ViT-Tiny-16", "none", num_frames=T, sim_header="Transf", conv1d_layout="original")


def _openai_layout(name: str) -> bool:
    """Whether open_clip builds `name` as its OpenAI-layout `CLIP` (the class the original's models share)."""
    config = open_clip.get_model_config(name)
    return not (config.get("custom_text") or "multimodal_cfg" in config or "hf_model_name" in config["text_cfg"])


@pytest.mark.parametrize("name", [name for name in open_clip.list_models() if _openai_layout(name)])
def test_transf_head_is_sized_like_the_original_for_every_openai_layout_model(name):
    """Width D, 6 layers and one attention head per 64 channels of the text transformer's width, which the original
    reads from `ln_final` (RN50: D 1024, text width 512 -> 8 heads, not 16)."""
    with torch.device("meta"):
        clip = open_clip.create_model(name, device="meta")
        embed_dim = open_clip.get_model_config(name)["embed_dim"]
        head = ActionCLIP(clip, embed_dim, num_frames=8, sim_header="Transf").fusion
    assert isinstance(clip, open_clip.CLIP)
    blocks = head.transformer.resblocks
    assert len(blocks) == 6 and head.transformer.width == embed_dim
    assert all(block.attn.num_heads == max(1, clip.ln_final.weight.shape[0] // 64) for block in blocks)
