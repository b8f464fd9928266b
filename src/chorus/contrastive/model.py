"""A CLIP-style model: one encoder per modality projected into a shared, normalised space.

What: ``ContrastiveModel({"image": vit, "text": transformer}, embed_dim=512)``
maps each modality through its encoder's pooled output and a linear projection
onto the unit sphere of ``embed_dim`` dimensions, and trains by pulling paired
rows together with :class:`~chorus.contrastive.loss.ContrastiveLoss` (CLIP,
Radford et al. 2021) or :class:`~chorus.contrastive.loss.SigmoidLoss` (SigLIP,
Zhai et al. 2023, chosen by passing ``bias``).

Why this shape:
- Every modality gets a projection, even when ``encoder.out_dim == embed_dim``:
  the encoder's feature space is shaped by its own pretraining, and the
  projection is the cheap learnable map that aligns it to the others (it is
  also what LiT trains on top of a frozen tower).
- The temperature is learned as ``log(1/τ)`` (init τ = 0.07) and clamped at
  ``log(100)`` in the forward pass, as in CLIP: the log-parameterisation keeps
  the scale positive and its updates multiplicative; the clamp stops the
  scale from running away, which destabilises training.
- With more than two modalities the loss is the mean over modality ``pairs``
  (default: all pairs). Binding every modality to one pivot, as ImageBind
  does (Girdhar et al. 2023), is ``pairs=[("image", "text"), ("image", "audio")]``.
  A batch only needs the modalities of some pairs; the pairs it can serve
  are averaged, so datasets with different modality pairs can alternate.
- ``frozen=("text",)`` is LiT (Zhai et al. 2022): the named towers get
  ``requires_grad=False``, stay in eval mode (no dropout, frozen norm
  statistics) and run without building a graph. Their projections stay
  trainable — that is what adapts a frozen tower to the shared space — unless
  ``freeze_projection=True``.

Baseline to beat: the same encoders with untrained projections, which score
chance at zero-shot classification (1/C) and retrieval (k/N); a linear probe
on the same features is the upper reference on small data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.contrastive.loss import ContrastiveLoss, SigmoidLoss
from chorus.errors import ConfigError, DataError

__all__ = ["ContrastiveModel"]


class ContrastiveModel(nn.Module):
    """Encoders + projections + learnable temperature (and SigLIP bias) + loss.

    ``forward(batch)`` reads ``batch[m]`` and optional ``batch[f"{m}_mask"]``
    for each modality ``m`` and returns ``{"loss", "logit_scale",
    f"acc_{a}_{b}", f"acc_{b}_{a}", ...}`` (accuracy of in-batch top-1
    matching a→b on the local batch; plus ``f"loss_{a}_{b}"`` per pair when
    there are several pairs, and ``"logit_bias"`` for SigLIP).
    ``loss`` overrides the default loss module (e.g.
    ``ContrastiveLoss(local_loss=False)``).
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        embed_dim: int,
        init_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        bias: float | None = None,
        frozen: Iterable[str] = (),
        freeze_projection: bool = False,
        pairs: Sequence[tuple[str, str]] | None = None,
        loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if len(encoders) < 2:
            raise ConfigError(f"ContrastiveModel needs at least two encoders, got {list(encoders)}")
        if embed_dim <= 0:
            raise ConfigError(f"embed_dim must be positive, got {embed_dim}")
        if not 0 < 1 / init_temperature <= max_logit_scale:
            raise ConfigError(
                f"init_temperature={init_temperature} gives logit scale {1 / init_temperature:.3g}, "
                f"outside (0, max_logit_scale={max_logit_scale}]"
            )
        self.encoders = nn.ModuleDict(dict(encoders))
        self.projections = nn.ModuleDict()
        for name, encoder in self.encoders.items():
            out_dim = getattr(encoder, "out_dim", None)
            if not isinstance(out_dim, int):
                raise ConfigError(f"encoder {name!r} ({type(encoder).__name__}) has no integer out_dim")
            projection = nn.Linear(out_dim, embed_dim, bias=False)
            nn.init.normal_(projection.weight, std=out_dim**-0.5)  # CLIP's init: unit-scale outputs
            self.projections[name] = projection
        self.embed_dim = embed_dim
        self.pairs = self._check_pairs(pairs)

        self.frozen = tuple(frozen)
        unknown = sorted(set(self.frozen) - set(self.encoders))
        if unknown:
            raise ConfigError(f"frozen names {unknown} are not encoders; available: {sorted(self.encoders)}")
        for name in self.frozen:
            modules = [self.encoders[name]] + ([self.projections[name]] if freeze_projection else [])
            for module in modules:
                module.requires_grad_(False)

        self.max_log_scale = math.log(max_logit_scale)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))
        self.logit_bias = None if bias is None else nn.Parameter(torch.tensor(float(bias)))
        if loss is None:
            loss = ContrastiveLoss() if bias is None else SigmoidLoss()
        if isinstance(loss, SigmoidLoss) and bias is None:
            raise ConfigError("SigmoidLoss needs a learnable bias: pass bias=-10.0 (SigLIP's init)")
        if isinstance(loss, ContrastiveLoss) and bias is not None:
            raise ConfigError("bias is only used by SigmoidLoss; drop bias or pass loss=SigmoidLoss()")
        self.loss = loss
        self.train()

    def _check_pairs(self, pairs: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
        if pairs is None:
            return list(itertools.combinations(self.encoders, 2))
        checked = []
        for pair in pairs:
            if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(self.encoders):
                raise ConfigError(f"pair {pair!r} must name two different encoders among {sorted(self.encoders)}")
            checked.append((pair[0], pair[1]))
        if not checked:
            raise ConfigError("pairs is empty")
        return checked

    def train(self, mode: bool = True) -> ContrastiveModel:
        """Set train/eval mode; frozen towers always stay in eval mode."""
        super().train(mode)
        for name in self.frozen:
            self.encoders[name].eval()
        return self

    def current_logit_scale(self) -> Tensor:
        """``exp`` of the clamped log-scale: the multiplier of the cosine similarities."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def encode(self, modality: str, x: Tensor, mask: Tensor | None = None, normalize: bool = True) -> Tensor:
        """Embed one modality's batch → [B, embed_dim] (unit-norm when ``normalize``)."""
        if modality not in self.encoders:
            raise ConfigError(f"unknown modality {modality!r}; available: {sorted(self.encoders)}")
        encoder = self.encoders[modality]
        with torch.set_grad_enabled(torch.is_grad_enabled() and modality not in self.frozen):
            pooled = encoder(x, mask=mask).pooled
        z = self.projections[modality](pooled)
        return F.normalize(z, dim=-1) if normalize else z

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        pairs = [(a, b) for a, b in self.pairs if a in batch and b in batch]
        if not pairs:
            raise DataError(f"batch keys {sorted(batch)} cover none of the modality pairs {self.pairs}")
        embeddings = {}
        for modality in dict.fromkeys(m for pair in pairs for m in pair):
            x = batch[modality]
            if not isinstance(x, Tensor):
                raise DataError(f"batch[{modality!r}] must be a tensor, got {type(x).__name__}")
            embeddings[modality] = self.encode(modality, x, batch.get(f"{modality}_mask"))
        sizes = {m: z.shape[0] for m, z in embeddings.items()}
        if len(set(sizes.values())) != 1:
            raise DataError(f"modalities have different batch sizes: {sizes}")

        scale = self.current_logit_scale()
        extra = () if self.logit_bias is None else (self.logit_bias,)
        out: dict[str, Tensor] = {}
        losses = []
        for a, b in pairs:
            pair_loss = self.loss(embeddings[a], embeddings[b], scale, *extra)
            losses.append(pair_loss)
            if len(pairs) > 1:
                out[f"loss_{a}_{b}"] = pair_loss.detach()
            with torch.no_grad():
                sim = embeddings[a] @ embeddings[b].T
                target = torch.arange(sim.shape[0], device=sim.device)
                out[f"acc_{a}_{b}"] = (sim.argmax(1) == target).float().mean()
                out[f"acc_{b}_{a}"] = (sim.argmax(0) == target).float().mean()
        out["loss"] = torch.stack(losses).mean()
        out["logit_scale"] = scale.detach()
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias.detach()
        return out
