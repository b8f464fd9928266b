"""Classification metrics on tensors: top-k accuracy and the confusion matrix.

Both work on any device and batch size and return plain Python numbers or a
tensor on the input's device, so they serve zero-shot evaluation, linear
probes and training logs alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from chorus.errors import DataError

__all__ = ["topk_accuracy", "confusion_matrix"]


def topk_accuracy(logits: Tensor, targets: Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``{"top1": ..., "top5": ...}``: fraction of rows whose target is among the k highest logits.

    k larger than the number of classes counts every row as correct. Among
    tied logits ``torch.topk`` picks in an unspecified order, so exact ties
    may count either way.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise DataError(f"need logits [N, C] and targets [N], got {tuple(logits.shape)} and {tuple(targets.shape)}")
    if logits.shape[0] == 0:
        raise DataError("cannot compute accuracy of zero examples")
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top == targets.to(top.device).view(-1, 1)
    return {f"top{k}": hits[:, : min(k, kmax)].any(dim=1).float().mean().item() for k in ks}


def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Counts [num_classes, num_classes]: row = true class, column = predicted class.

    ``predictions`` are class indices [N] or logits [N, C] (argmax is taken).
    """
    if predictions.ndim == 2:
        predictions = predictions.argmax(dim=1)
    if predictions.shape != targets.shape or predictions.ndim != 1:
        raise DataError(
            f"need predictions [N] (or logits [N, C]) and targets [N], got "
            f"{tuple(predictions.shape)} and {tuple(targets.shape)}"
        )
    targets = targets.to(predictions.device).long()
    predictions = predictions.long()
    for name, t in (("targets", targets), ("predictions", predictions)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise DataError(f"{name} must lie in [0, {num_classes}), got range [{t.min()}, {t.max()}]")
    flat = torch.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes)
