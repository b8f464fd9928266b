"""Label-aware contrastive training (UniCL): every in-batch pair with the same class label is a positive.

What: :func:`unicl_loss` is CLIP's symmetric InfoNCE with the one-hot
"row i matches column i" target replaced by a uniform distribution over all
columns whose label equals row i's (Yang et al. 2022, "Unified Contrastive
Learning in Image-Text-Label Space", eq. 2–3). :class:`LabelContrastiveModel`
trains a two-tower :class:`~chorus.contrastive.ContrastiveModel` with it, reading
``batch["label"]``; the wrapped model keeps its encoders, projections and
temperature, so evaluation code uses it unchanged.

Why: when captions are class prompts ("a photo of a llama."), a batch of 128
images over 81 classes holds on average ~50 pairs of images of one class.
Plain InfoNCE then pushes each image *away* from the caption of its same-class
neighbour — a false negative that fights the very grouping zero-shot
classification needs. With label-aware targets those pairs are pulled together
instead. Without repeated labels in a batch the loss equals InfoNCE exactly
(tested), so it is a strict generalisation.

Limit: single process — the targets need the labels of every column, and
this loss does not gather features across processes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.contrastive.model import ContrastiveModel
from chorus.errors import ConfigError, DataError

__all__ = ["LabelContrastiveModel", "unicl_loss"]


def unicl_loss(a: Tensor, b: Tensor, labels: Tensor, logit_scale: Tensor) -> Tensor:
    """Mean of the a→b and b→a cross-entropies against same-label targets.

    ``a``, ``b``: normalised features [B, D], row i of each from example i;
    ``labels`` [B]; ``logit_scale``: the positive multiplier of the cosines.
    Computed in float32 outside autocast, for the reason given in ``loss.py``.
    """
    with torch.autocast(device_type=a.device.type, enabled=False):
        a, b, scale = a.float(), b.float(), logit_scale.float()
        logits = scale * a @ b.T
        same = (labels[:, None] == labels[None, :]).float()
        # The mask is symmetric, so one normalised matrix is the target of both directions.
        target = same / same.sum(1, keepdim=True)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class LabelContrastiveModel(nn.Module):
    """``forward(batch)`` → ``{"loss", "logit_scale", f"acc_{a}_{b}"}`` with :func:`unicl_loss` on one modality pair.

    ``acc_{a}_{b}`` is the fraction of rows of ``a`` whose most similar ``b`` row
    has the same label (the label-aware analogue of the in-batch matching accuracy).
    """

    def __init__(self, model: ContrastiveModel, pair: tuple[str, str] = ("image", "text")) -> None:
        super().__init__()
        missing = sorted(set(pair) - set(model.encoders))
        if missing or pair[0] == pair[1]:
            raise ConfigError(f"pair {pair!r} must name two different encoders among {sorted(model.encoders)}")
        self.model, self.pair = model, pair

    def forward(self, batch: Mapping[str, object]) -> dict[str, Tensor]:
        labels = batch.get("label")
        if not isinstance(labels, Tensor):
            raise DataError("LabelContrastiveModel needs batch['label'] as a tensor of class ids")
        a, b = (self.model.encode(m, batch[m], batch.get(f"{m}_mask")) for m in self.pair)
        scale = self.model.current_logit_scale()
        with torch.no_grad():
            nearest = (a @ b.T).argmax(1)
            accuracy = (labels[nearest] == labels).float().mean()
        return {"loss": unicl_loss(a, b, labels, scale), "logit_scale": scale.detach(),
                f"acc_{self.pair[0]}_{self.pair[1]}": accuracy}
