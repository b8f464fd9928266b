"""Batched inference helpers shared by the co-learning methods: logits of a classifier over a dataset.

Why one helper: co-training selects pseudo-labels from predicted
probabilities, and every experiment reports accuracy on a held-out split; both
need the same eval-mode, no-grad, padded-batch loop, written once here.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from chorus.classifier import Classifier
from chorus.data.collate import Collate
from chorus.eval.mode import evaluating

__all__ = ["accuracy", "classifier_logits"]


def classifier_logits(model: Classifier, dataset: Dataset, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """(logits float32 [N, C], labels [N]) of ``model`` on every item of ``dataset``, in order, on CPU."""
    device = next(model.parameters()).device
    logits, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=Collate())
    with evaluating(model):
        for batch in loader:
            mask = batch.get(f"{model.modality}_mask")
            x = batch[model.modality].to(device)
            logits.append(model.logits(x, None if mask is None else mask.to(device)).float().cpu())
            labels.append(torch.as_tensor(batch["label"]))
    return torch.cat(logits), torch.cat(labels)


def accuracy(model: Classifier, dataset: Dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``dataset``'s labels."""
    logits, labels = classifier_logits(model, dataset, batch_size)
    return float((logits.argmax(-1) == labels).float().mean())
