"""Evaluation metrics: single-label accuracy, and multi-label top-k hits, mean class accuracy and mAP."""
from __future__ import annotations

import pytest
import torch

from training.evaluate import accuracy, average_precision, multi_label_accuracy


def test_average_precision_is_the_mean_precision_at_each_positive():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    # Ranked: pos, neg, pos, neg, pos -> precisions 1/1, 2/3, 3/5.
    assert average_precision(scores, torch.tensor([1, 0, 1, 0, 1]).bool()) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert average_precision(scores.flip(0), torch.tensor([1, 0, 1, 0, 1]).bool()) == pytest.approx(
        (1 / 1 + 2 / 3 + 3 / 5) / 3)  # symmetric pattern, same value
    assert average_precision(scores, torch.tensor([0, 0, 0, 0, 1]).bool()) == pytest.approx(1 / 5)


def test_multi_label_hits_count_any_class_of_the_set():
    scores = torch.tensor([[0.9, 0.1, 0.0],   # top-1 class 0, in {0}
                           [0.7, 0.2, 0.1],   # top-1 class 0, not in {1, 2}
                           [0.3, 0.3, 0.4],   # top-1 class 2, in {0, 2}
                           [0.1, 0.7, 0.2]])  # top-1 class 1, not in {2}
    sets = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1]]).bool()
    metrics = multi_label_accuracy(scores, sets)
    assert metrics["top1"] == pytest.approx(50.0) and metrics["videos"] == 4
    # Class 0: videos 0, 2 both hit; class 1: video 1 misses; class 2: videos 1, 3 miss, 2 hits.
    assert metrics["mean_class_accuracy"] == pytest.approx(100 * (1 + 0 + 1 / 3) / 3)
    expected = [average_precision(scores[:, c], sets[:, c]) for c in range(3)]
    assert metrics["mAP"] == pytest.approx(100 * sum(expected) / 3)
    assert metrics["label_sets"] == [[0], [1, 2], [0, 2], [2]]


def test_single_label_accuracy_is_multi_label_with_one_class_each():
    scores = torch.rand(20, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 6, (20,), generator=torch.Generator().manual_seed(1))
    single = accuracy(scores, labels)
    multi = multi_label_accuracy(scores, torch.nn.functional.one_hot(labels, 6).bool())
    for key in ("top1", "top5", "mean_class_accuracy", "predictions"):
        assert single[key] == multi[key]
    assert single["top1"] == pytest.approx(100 * (scores.argmax(1) == labels).float().mean().item())
