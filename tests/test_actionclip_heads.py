"""Fusion heads (sim_header) on their own and inside the model."""
import pytest
import torch

from actionclip import SIM_HEADERS, build_fusion_head, build_model

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
