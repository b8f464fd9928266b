"""``evaluating(model)``: run a block in eval mode without gradients, then restore the model's mode.

Evaluation helpers (zero-shot, feature extraction, retrieval embedding) are
often called in the middle of training; switching the model to eval mode
(dropout off, norm statistics frozen) and back by hand is easy to forget, and
forgetting it silently changes either the metric or the training run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["evaluating"]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
