"""Recompute BatchNorm statistics at the current weights ("PreciseBN", Wu & Johnson 2021).

A BatchNorm layer evaluates with running statistics: an exponential moving
average (momentum 0.1, about the last ten batches) of the batch statistics it
saw in training. While the weights move fast — a high learning rate early in
training — that average lags behind the statistics the current weights
produce, and a model that is fine in training mode can score far below chance
in evaluation mode. Wu & Johnson ("Rethinking 'Batch' in BatchNorm", 2021)
call the remedy PreciseBN: freeze the weights, run some training batches and
take the plain average of their statistics. At the end of a run whose learning
rate decays to zero the two agree, so this matters for evaluations made
mid-training and for checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def recompute_batchnorm(model: nn.Module, forward: Callable[[Any], object], batches: Iterable[Any]) -> int:
    """Replace every tracking BatchNorm layer's running mean and variance by their average over ``batches``.

    ``forward(batch)`` runs the model on one batch; it is called without autograd, with the BatchNorm
    layers normalising by batch statistics and every other module (dropout) in eval mode. Each batch
    weighs the same (``momentum=None``: a cumulative average). Momenta and the train/eval mode of every
    module are restored. Returns the number of layers updated (0: the model has none, nothing is run).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    seen = 0
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch)
                seen += 1
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        for module, training in modes.items():
            module.training = training
    if not seen:
        raise ValueError("recompute_batchnorm needs at least one batch")
    return len(norms)
