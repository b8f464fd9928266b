"""The one interface every neural fusion implements, its registry and its input checks.

Convention (all families): ``Fusion(dims, out_dim, **hyper)`` maps per-modality
features to **class logits** [B, out_dim]; the classification head is part of
the module, so every fusion is a drop-in classifier trained with
``cross_entropy(fusion(features, present), label)``. Late-fusion variants return
log-probabilities, which are valid logits for the same loss.

Training: ``fusion.loss(features, label, present)`` returns a dict whose
``"loss"`` is what to minimise — cross-entropy of the logits, plus whatever the
family needs (per-modality expert losses for late fusion, reconstruction for the
autoencoder), so a model wrapping any fusion trains it the same way.

Missing modalities: ``present[m]`` [B] (bool) says per sample whether modality
``m`` is available; a modality absent from ``features`` altogether counts as
missing for the whole batch. ``Fusion.prepare`` replaces missing features by
zeros *before* any layer sees them, and each family then neutralises the zeros
in its own way (learned "missing" token, renormalised weights, the constant 1
of a tensor product, masked attention), so a missing modality's values can never
influence the output.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.errors import ConfigError, DataError
from chorus.registry import Registry


class Fusion(nn.Module):
    """Base class: stores ``dims``/``out_dim`` and validates/cleans inputs."""

    accepts_tokens: ClassVar[bool] = False
    """True for fusions that take token sequences [B, T_m, d_m] instead of pooled [B, d_m]."""

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__()
        if not dims:
            raise ConfigError("fusion needs at least one modality in `dims`")
        for name, dim in dims.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ConfigError(f"modality name {name!r} must be a non-empty string without '.'")
            if not isinstance(dim, int) or dim <= 0:
                raise ConfigError(f"dims[{name!r}] = {dim!r}; expected a positive int")
        if not isinstance(out_dim, int) or out_dim <= 0:
            raise ConfigError(f"out_dim = {out_dim!r}; expected a positive int")
        self.dims = dict(dims)
        self.out_dim = out_dim
        self.modalities = tuple(dims)

    def loss(
        self, features: Mapping[str, Tensor], label: Tensor, present: Mapping[str, Tensor] | None = None, **inputs
    ) -> dict[str, Tensor]:
        """Training objective ``{"loss": ...}`` plus named terms to log; ``inputs`` go to ``forward`` (e.g. masks)."""
        ce = F.cross_entropy(self(features, present, **inputs).float(), label)
        return {"loss": ce, "ce": ce.detach()}

    def prepare(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Check shapes and return (features with missing entries zeroed, present masks [B]).

        Every modality of ``dims`` is in both returned dicts. Raises
        ``DataError`` naming the modality and shape at fault.
        """
        unknown = sorted(set(features) - set(self.dims))
        if unknown:
            raise DataError(f"features for unknown modalities {unknown}; fusion expects {list(self.dims)}")
        given = [m for m in self.modalities if m in features]
        if not given:
            raise DataError(f"no features given; fusion expects some of {list(self.dims)}")
        ref = features[given[0]]
        batch = ref.shape[0]
        present = dict(present or {})
        unknown = sorted(set(present) - set(self.dims))
        if unknown:
            raise DataError(f"present masks for unknown modalities {unknown}; fusion expects {list(self.dims)}")
        xs: dict[str, Tensor] = {}
        ps: dict[str, Tensor] = {}
        for m in self.modalities:
            if m in features:
                x = self._check_shape(m, features[m], batch)
                p = present.get(m)
                if p is None:
                    p = torch.ones(batch, dtype=torch.bool, device=x.device)
            else:
                x = ref.new_zeros((batch, 1, self.dims[m]) if self.accepts_tokens else (batch, self.dims[m]))
                p = present.get(m)
                if p is not None and bool(p.any()):
                    raise DataError(f"present[{m!r}] is True for some samples but features[{m!r}] is not given")
                p = torch.zeros(batch, dtype=torch.bool, device=x.device)
            if p.dtype != torch.bool or tuple(p.shape) != (batch,):
                raise DataError(
                    f"present[{m!r}] has dtype {p.dtype} and shape {tuple(p.shape)}; expected bool [{batch}]"
                )
            xs[m] = torch.where(p.view(batch, *[1] * (x.dim() - 1)), x, 0.0)
            ps[m] = p
        none = ~torch.stack(list(ps.values()), 1).any(1)
        if bool(none.any()):
            rows = none.nonzero().flatten()[:5].tolist()
            raise DataError(f"samples {rows} have no modality present; every sample needs at least one")
        return xs, ps

    def _check_shape(self, m: str, x: Tensor, batch: int) -> Tensor:
        if self.accepts_tokens and x.dim() == 2:
            x = x.unsqueeze(1)
        ndim = 3 if self.accepts_tokens else 2
        expected = f"[{batch}, T, {self.dims[m]}]" if self.accepts_tokens else f"[{batch}, {self.dims[m]}]"
        if x.dim() != ndim or x.shape[0] != batch or x.shape[-1] != self.dims[m]:
            raise DataError(f"features[{m!r}] has shape {tuple(x.shape)}; expected {expected}")
        return x


FUSIONS: Registry[Fusion] = Registry("fusion")


def build_fusion(name: str, dims: Mapping[str, int], out_dim: int, **hyper) -> Fusion:
    """Build the fusion registered as ``name``; unknown hyper-parameters raise ``ConfigError``."""
    factory = FUSIONS.get(name)
    accepted = set(inspect.signature(factory).parameters) - {"dims", "out_dim"}
    bad = sorted(set(hyper) - accepted)
    if bad:
        raise ConfigError(f"fusion {name!r} got unknown hyper-parameters {bad}; valid: {sorted(accepted)}")
    return factory(dims=dims, out_dim=out_dim, **hyper)
