"""Late fusion: one classifier per modality, their class posteriors combined.

Three combination rules over the *present* modalities only:

* ``late_average`` — mean of the posteriors (Snoek et al. 2005's late fusion);
* ``late_learned`` — weighted mean with learned per-modality weights, softmax-
  normalised over the modalities present in each sample, so a missing modality's
  weight is redistributed to the others;
* ``late_product`` — product of experts (Hinton 2002): sum of log-softmaxes,
  i.e. each modality contributes independent log-evidence; a missing modality
  simply contributes none.

Why it works: each expert is trained on what its modality shows; combining
posteriors is robust to a missing or noisy modality. Its limit is that the
combination is additive (in probability or log-probability), so it cannot
model interactions such as "label = A xor B" — early/tensor/attention fusion can.

Output: log-probabilities [B, out_dim] (valid logits for cross-entropy).
Reference: Snoek et al., ACM MM 2005; Baltrušaitis et al., TPAMI 2019 (§ model-agnostic fusion).
Baseline to beat: the best unimodal model and early fusion.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.errors import ConfigError
from chorus.fusion.base import FUSIONS, Fusion
from chorus.fusion.layers import mlp

RULES = ("average", "learned", "product")


def mixture_log_probs(log_probs: Tensor, present: Tensor, weight_logits: Tensor) -> Tensor:
    """log Σ_e w_e p_e over present experts, w = softmax of ``weight_logits`` restricted to present.

    ``log_probs`` [B, E, K], ``present`` [B, E] bool (≥1 True per row),
    ``weight_logits`` [E]. Computed in log space (logsumexp) for stability.
    """
    masked = weight_logits.to(log_probs.dtype).expand_as(present).masked_fill(~present, float("-inf"))
    log_w = F.log_softmax(masked, dim=1)
    return torch.logsumexp(log_probs + log_w.unsqueeze(-1), dim=1)


def expert_cross_entropy(log_probs: Tensor, present: Tensor, label: Tensor) -> Tensor:
    """Mean of each expert's own cross-entropy [B, E, K] over the (sample, expert) pairs that are present."""
    index = label.view(-1, 1, 1).expand(-1, log_probs.shape[1], 1)
    nll = -log_probs.gather(2, index).squeeze(-1)
    weight = present.to(nll.dtype)
    return torch.where(present, nll, 0.0).sum() / weight.sum().clamp_min(1.0)


class LateFusion(Fusion):
    """Per-modality MLP experts whose posteriors are combined by ``rule``.

    Training (``loss``): as in classic late fusion, each expert learns its own
    modality's posterior (mean per-expert cross-entropy over present
    modalities). Training the averaged mixture end to end instead lets one
    expert take over and the others degrade (the mixture-of-experts collapse),
    which is why it is not done. ``late_learned`` additionally fits its weights
    on the combined output with the experts' posteriors held fixed (a second
    stage, as in Snoek et al.). ``late_product`` is trained as a product of
    experts: cross-entropy of the combined output, which trains the experts jointly.
    """

    def __init__(
        self, dims: Mapping[str, int], out_dim: int, rule: str, hidden: int = 64, dropout: float = 0.1
    ) -> None:
        super().__init__(dims, out_dim)
        if rule not in RULES:
            raise ConfigError(f"late fusion rule {rule!r}; valid: {list(RULES)}")
        self.rule = rule
        self.experts = nn.ModuleDict({m: mlp(d, hidden, out_dim, dropout) for m, d in self.dims.items()})
        if rule == "learned":
            self.weight_logits = nn.Parameter(torch.zeros(len(self.dims)))

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        return self._combine(*self._experts(features, present))

    def loss(  # type: ignore[override]  # pooled fusion: no extra forward inputs
        self, features: Mapping[str, Tensor], label: Tensor, present: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        log_probs, mask = self._experts(features, present)
        if self.rule == "product":
            ce = F.cross_entropy(self._combine(log_probs, mask), label)
            return {"loss": ce, "ce": ce.detach()}
        expert_ce = expert_cross_entropy(log_probs, mask, label)
        ce = F.cross_entropy(self._combine(log_probs.detach(), mask), label)
        loss = expert_ce + ce if self.rule == "learned" else expert_ce
        return {"loss": loss, "ce": ce.detach(), "expert_ce": expert_ce.detach()}

    def _experts(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None) -> tuple[Tensor, Tensor]:
        """Each modality's own log-posterior [B, M, K] and the present mask [B, M]."""
        xs, ps = self.prepare(features, present)
        log_probs = torch.stack([F.log_softmax(self.experts[m](xs[m]).float(), -1) for m in self.modalities], 1)
        return log_probs, torch.stack([ps[m] for m in self.modalities], 1)

    def _combine(self, log_probs: Tensor, mask: Tensor) -> Tensor:
        if self.rule == "product":
            return torch.where(mask.unsqueeze(-1), log_probs, 0.0).sum(1)
        logits = self.weight_logits if self.rule == "learned" else log_probs.new_zeros(len(self.modalities))
        return mixture_log_probs(log_probs, mask, logits)


for _rule in RULES:
    FUSIONS.register(f"late_{_rule}")(partial(LateFusion, rule=_rule))
