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

``class_prompts`` switches to the image–label view of UniCL taken to its end:
each image is scored against *every* class, with a cross-entropy on the label,
each class embedded by one of its prompts drawn at random per step (as the
captions are drawn per image). Every class is then a negative at every step,
not only those that happen to be in the batch, and the batch size no longer
sets the number of negatives. One prompt per class, not the mean over all
templates, keeps a trained text tower's step cost at ``C`` prompts instead of
``C × T`` (81 vs 972 for Caltech: ~3× the image tower's step on the CPU).

Limit: single process — the targets need the labels of every column, and
this loss does not gather features across processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.contrastive.model import ContrastiveModel
from chorus.errors import ConfigError, DataError

__all__ = ["LabelContrastiveModel", "unicl_loss"]


def unicl_loss(
    a: Tensor,
    b: Tensor,
    labels: Tensor,
    logit_scale: Tensor,
    smoothing: float = 0.0,
    mixed_with: Tensor | None = None,
    lam: float = 1.0,
) -> Tensor:
    """Mean of the a→b and b→a cross-entropies against same-label targets.

    ``a``, ``b``: normalised features [B, D], row i of each from example i;
    ``labels`` [B]; ``logit_scale``: the positive multiplier of the cosines.
    ``smoothing``: label smoothing of both targets (Szegedy et al. 2016).
    ``mixed_with`` [B]: row i of ``a`` comes from a mixup ``lam · x_i + (1 − lam) · x_j``
    (Zhang et al. 2018) and ``mixed_with[i]`` is the label of its partner j:
    pair (i, k) is then a positive with weight ``lam · [y_k = y_i] + (1 − lam) · [y_k = y_j]``,
    each direction's targets that affinity normalised along its own axis.
    Computed in float32 outside autocast, for the reason given in ``loss.py``.
    """
    with torch.autocast(device_type=a.device.type, enabled=False):
        a, b, scale = a.float(), b.float(), logit_scale.float()
        logits = scale * a @ b.T
        affinity = (labels[:, None] == labels[None, :]).float()
        if mixed_with is not None:
            affinity = lam * affinity + (1 - lam) * (mixed_with[:, None] == labels[None, :]).float()
        rows, cols = affinity / affinity.sum(1, keepdim=True), affinity.T / affinity.T.sum(1, keepdim=True)
        return (
            F.cross_entropy(logits, rows, label_smoothing=smoothing)
            + F.cross_entropy(logits.T, cols, label_smoothing=smoothing)
        ) / 2


class LabelContrastiveModel(nn.Module):
    """``forward(batch)`` → ``{"loss", "logit_scale", f"acc_{a}_{b}"}`` with label-aware targets on one modality pair.

    Default: :func:`unicl_loss` between ``batch[a]`` and ``batch[b]``;
    ``acc_{a}_{b}`` is the fraction of ``a`` rows whose most similar ``b`` row
    has the same label. With ``class_prompts=(ids, mask)`` — the ``b``
    inputs of ``C × prompts_per_class`` prompts, class-major — the loss is
    the cross-entropy of each ``a`` row against all ``C`` classes, each embedded by
    one of its prompts drawn with torch's global RNG (``batch[b]`` is not
    used), and ``acc_{a}_{b}`` is that classifier's accuracy.

    Regularisers of the soft targets (both off by default): ``smoothing``, label
    smoothing; ``mixup`` = α > 0: in training mode each batch's ``a`` inputs
    (images, or a fixed front end's cached features) are mixed with a random
    permutation of themselves by λ ~ Beta(α, α), and the targets by the same λ.
    """

    def __init__(
        self,
        model: ContrastiveModel,
        pair: tuple[str, str] = ("image", "text"),
        class_prompts: tuple[Tensor, Tensor] | None = None,
        prompts_per_class: int = 1,
        smoothing: float = 0.0,
        mixup: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= smoothing < 1.0 or mixup < 0.0:
            raise ConfigError(f"smoothing must lie in [0, 1) and mixup be >= 0, got {smoothing}, {mixup}")
        self.smoothing, self.mixup = smoothing, mixup
        missing = sorted(set(pair) - set(model.encoders))
        if missing or pair[0] == pair[1]:
            raise ConfigError(f"pair {pair!r} must name two different encoders among {sorted(model.encoders)}")
        if class_prompts is not None and class_prompts[0].shape[0] % prompts_per_class:
            raise ConfigError(
                f"{class_prompts[0].shape[0]} class prompts are not a multiple of prompts_per_class={prompts_per_class}"
            )
        self.model, self.pair, self.prompts_per_class = model, pair, prompts_per_class
        self.class_prompts = class_prompts

    def _class_embeddings(self, device: torch.device) -> Tensor:
        assert self.class_prompts is not None  # forward calls this only when prompts were given
        ids, mask = self.class_prompts
        n_classes = ids.shape[0] // self.prompts_per_class
        rows = torch.arange(n_classes) * self.prompts_per_class + torch.randint(self.prompts_per_class, (n_classes,))
        return self.model.encode(self.pair[1], ids[rows].to(device), mask[rows].to(device))

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        labels = batch.get("label")
        if not isinstance(labels, Tensor):
            raise DataError("LabelContrastiveModel needs batch['label'] as a tensor of class ids")
        first, second = self.pair
        inputs, partner, lam = batch[first], None, 1.0
        if self.training and self.mixup > 0:
            lam = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
            perm = torch.randperm(labels.shape[0], device=labels.device)
            inputs, partner = lam * inputs + (1 - lam) * inputs[perm], labels[perm]
        a = self.model.encode(first, inputs, batch.get(f"{first}_mask"))
        scale = self.model.current_logit_scale()
        if self.class_prompts is None:
            b = self.model.encode(second, batch[second], batch.get(f"{second}_mask"))
            loss = unicl_loss(a, b, labels, scale, self.smoothing, partner, lam)
            with torch.no_grad():
                correct = labels[(a @ b.T).argmax(1)] == labels
        else:
            classes = self._class_embeddings(a.device)
            with torch.autocast(device_type=a.device.type, enabled=False):
                logits = scale.float() * a.float() @ classes.float().T
                loss = F.cross_entropy(logits, labels, label_smoothing=self.smoothing)
                if partner is not None:
                    loss = lam * loss + (1 - lam) * F.cross_entropy(logits, partner, label_smoothing=self.smoothing)
            correct = logits.detach().argmax(1) == labels
        return {"loss": loss, "logit_scale": scale.detach(), f"acc_{first}_{second}": correct.float().mean()}
