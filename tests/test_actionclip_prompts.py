"""Prompt table (16 templates x classes), random template per training sample, eval template averaging."""
import numpy as np
import open_clip
import pytest
import torch

from actionclip import ACTIONCLIP_TEMPLATES, PromptTable, build_model, encode_prompt_table, score_videos

CLASSES = ["abseiling", "air drumming", "brush hair", "ApplyEyeMakeup", "cartwheel"]


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer("ViT-B-32")


def test_table_holds_every_template_for_every_class(tokenizer):
    table = PromptTable(CLASSES, tokenizer)
    assert len(ACTIONCLIP_TEMPLATES) == 16
    assert table.tokens.shape == (16, len(CLASSES), 77)
    for t in (0, 7, 11, 15):
        for c in (0, 3):
            expected = tokenizer([ACTIONCLIP_TEMPLATES[t].format(CLASSES[c])])[0]
            assert torch.equal(table.tokens[t, c], expected)
    assert len({tuple(row.tolist()) for row in table.tokens[:, 2]}) == 16  # 16 distinct prompts per class


def test_training_samples_pick_an_independent_random_template_per_sample(tokenizer):
    table = PromptTable(CLASSES, tokenizer)
    labels = torch.tensor([1] * 400 + [4] * 400)
    tokens = table.sample(labels, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (800, 77)
    prompts_of = {c: {tuple(row.tolist()): t for t, row in enumerate(table.tokens[:, c])} for c in (1, 4)}
    picked = [prompts_of[int(label)][tuple(row.tolist())] for label, row in zip(labels, tokens)]
    counts = np.bincount(picked, minlength=16)
    assert (counts > 20).all()  # every template is drawn, roughly uniformly (800 draws, 50 expected each)
    again = table.sample(labels, generator=torch.Generator().manual_seed(0))
    other = table.sample(labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tokens, again) and not torch.equal(tokens, other)


def test_sampling_rejects_labels_outside_the_label_set(tokenizer):
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        PromptTable(CLASSES, tokenizer).sample(torch.tensor([0, 5]))


def test_eval_scores_average_per_template_softmax_over_classes():
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(3, 8, generator=generator)
    text = torch.nn.functional.normalize(torch.randn(16, 5, 8, generator=generator), dim=-1)
    scores = score_videos(video, text)

    v = video.numpy() / np.linalg.norm(video.numpy(), axis=1, keepdims=True)
    expected = np.zeros((3, 5))
    for b in range(3):
        for t in range(16):
            logits = 100.0 * text[t].numpy() @ v[b]
            expected[b] += np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum() / 16
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(3))


def test_class_text_embeddings_match_the_models_text_encoder(tokenizer):
    model = build_model("ViT-Tiny-16", "none", num_frames=2).eval()
    table = PromptTable(CLASSES, tokenizer)
    embeddings = encode_prompt_table(model, table, chunk_size=7)
    assert embeddings.shape == (16, len(CLASSES), 64)
    with torch.no_grad():
        direct = model.encode_text(table.tokens[9, 3][None], normalize=True)[0]
    torch.testing.assert_close(embeddings[9, 3], direct)
    video = torch.randn(2, 2, 3, 64, 64)
    with torch.no_grad():
        scores = score_videos(model.encode_video(video), embeddings)
    assert scores.shape == (2, len(CLASSES))
