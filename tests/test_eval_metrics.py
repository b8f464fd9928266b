"""topk_accuracy and confusion_matrix vs brute-force numpy / scikit-learn references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from chorus.errors import DataError
from chorus.eval import confusion_matrix, topk_accuracy


def test_topk_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((200, 12))
    targets = rng.integers(0, 12, 200)
    logits[np.arange(100), targets[:100]] += 2.0  # half the rows lean towards the truth
    got = topk_accuracy(torch.from_numpy(logits), torch.from_numpy(targets), ks=(1, 3, 5, 20))
    order = np.argsort(-logits, axis=1)
    for k in (1, 3, 5):
        assert got[f"top{k}"] == pytest.approx(np.mean([t in row[:k] for t, row in zip(targets, order)]))
    assert got["top20"] == 1.0  # k beyond the number of classes
    assert 0.1 < got["top1"] < got["top3"] < got["top5"] < 1


def test_confusion_matrix_matches_sklearn_for_labels_and_logits() -> None:
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 5, 300)
    preds = np.where(rng.random(300) < 0.6, targets, rng.integers(0, 5, 300))
    expected = sk_confusion_matrix(targets, preds, labels=range(6))
    got = confusion_matrix(torch.from_numpy(preds), torch.from_numpy(targets), num_classes=6)
    np.testing.assert_array_equal(got.numpy(), expected)
    logits = torch.nn.functional.one_hot(torch.from_numpy(preds), 6).float() + 0.01 * torch.randn(300, 6)
    np.testing.assert_array_equal(confusion_matrix(logits, torch.from_numpy(targets), 6).numpy(), expected)


def test_bad_shapes_and_labels_are_data_errors() -> None:
    with pytest.raises(DataError, match="logits"):
        topk_accuracy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), num_classes=3)
