"""The pre-LN Transformer shared by the ViT, the text and the audio encoders.

What it is: a stack of residual blocks ``x + attn(ln_1(x))`` then
``x + mlp(ln_2(x))`` (pre-LN, Xiong et al. 2020, "On Layer Normalization in the
Transformer Architecture"), with multi-head self-attention (Vaswani et al.
2017) computed by ``torch.nn.functional.scaled_dot_product_attention`` so that
PyTorch picks a fused kernel (flash / memory-efficient) where one applies.

Why this exact layout: parameter names and shapes follow OpenCLIP's
``ResidualAttentionBlock`` (``ln_1``, ``attn.in_proj_weight`` [3D, D] fused
q/k/v, ``attn.in_proj_bias``, ``attn.out_proj``, ``ln_2``, ``mlp.c_fc``,
``mlp.c_proj``), which is also ``torch.nn.MultiheadAttention``'s layout, so
OpenCLIP checkpoints load with unchanged keys and HF CLIP checkpoints load by
concatenating their separate q/k/v projections. Pre-LN trains stably without
learning-rate warm-up tricks, which matters for the small models trained here.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.errors import ConfigError

Activation = Literal["gelu", "quick_gelu"]


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the GELU approximation OpenAI's CLIP was trained with.

    Kept selectable because CLIP weights trained with it give wrong features
    under exact GELU (and vice versa).
    """

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_activation(act: Activation) -> nn.Module:
    """The MLP activation by name; a wrong name is a config error."""
    if act == "gelu":
        return nn.GELU()
    if act == "quick_gelu":
        return QuickGELU()
    raise ConfigError(f"unknown activation {act!r}; available: gelu, quick_gelu")


def attention_mask(mask: Tensor | None, length: int, causal: bool) -> Tensor | None:
    """The boolean SDPA mask [B, 1, L, L] (True = may attend), or None when nothing is masked.

    ``mask`` [B, L] marks real tokens (True) so padded keys are never attended
    to. The diagonal is always allowed: it changes nothing for real queries
    (they may attend to themselves anyway) but keeps padded query rows from
    being fully masked, which would make softmax return NaN.
    """
    if mask is None:
        return None  # the caller uses is_causal=True when causal: the fused kernels' fast path
    allowed = mask[:, None, None, :].expand(-1, 1, length, -1)
    if causal:
        allowed = allowed.tril()
    eye = torch.eye(length, dtype=torch.bool, device=mask.device)
    return allowed | eye


def local_window(length: int, window: int, causal: bool, device: torch.device) -> Tensor:
    """[L, L] True where query ``i`` may attend key ``j``: ``|i - j| <= window`` (and ``j <= i`` when causal)."""
    index = torch.arange(length, device=device)
    offset = index[:, None] - index[None, :]
    allowed = offset.abs() <= window
    return allowed & (offset >= 0) if causal else allowed


def _cpu_bf16_training(q: Tensor) -> bool:
    """Whether attention should bypass SDPA: bf16 on a CPU with a backward pass to come.

    Neither CPU SDPA backend suits this case. Flash attention's bf16 *backward*
    runs 10-20x slower than its fp32 one (torch 2.13 and 2.14, e.g. 39 ms vs
    1.8 ms for [32, 3, 17, 64]); the math backend adds a NaN-safe softmax (three
    extra passes over the [B, H, L, L] scores) and scales q and k separately.
    :func:`explicit_attention` runs forward + backward of [16, 6, 197, 64]
    2-3x faster than the math backend and ~2x faster than flash on one thread,
    with bf16 matmuls on the matrix units (AMX); training losses track fp32 as
    closely as with the math backend. The forward-only case keeps the flash
    kernel, whose bf16 forward is fast. Measured by
    ``benchmarks/attention_cpu_bf16.py`` and ``benchmarks/clip_throughput.py``.
    """
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.requires_grad


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, causal: bool) -> Tensor:
    """``softmax(q kᵀ / √d + mask) v`` written out, for CPU bf16 training (see :func:`_cpu_bf16_training`).

    No row is ever fully masked (:func:`attention_mask` always allows the
    diagonal), so the plain softmax cannot return NaN and needs no guard.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if attn_mask is None and causal:
        n = q.shape[-2]
        attn_mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(-1) @ v


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v input projection (``nn.MultiheadAttention`` layout)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """``x`` [B, L, D]; ``attn_mask`` from :func:`attention_mask` (it already holds causality)."""
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if _cpu_bf16_training(q):
            out = explicit_attention(q, k, v, attn_mask, causal)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal and attn_mask is None)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    """``c_proj(act(c_fc(x)))``: the position-wise feed-forward layer."""

    def __init__(self, width: int, hidden: int, act: Activation) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.act = make_activation(act)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """One pre-LN block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, act: Activation, ln_eps: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=ln_eps)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=ln_eps)
        self.mlp = MLP(width, round(width * mlp_ratio), act)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask, causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` (``resblocks``, as in OpenCLIP).

    Initialised as OpenCLIP initialises its towers (attention std ``D^-0.5``,
    output projections scaled down by ``(2 * layers)^-0.5`` so the residual
    stream's variance does not grow with depth).
    """

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        mlp_ratio: float = 4.0,
        act: Activation = "gelu",
        ln_eps: float = 1e-5,
        causal: bool = False,
        window: int = 0,
    ) -> None:
        super().__init__()
        self.width = width
        self.causal = causal
        self.window = window
        blocks = [ResidualAttentionBlock(width, heads, mlp_ratio, act, ln_eps) for _ in range(layers)]
        self.resblocks = nn.ModuleList(blocks)
        attn_std = width**-0.5
        proj_std = attn_std * (2 * max(layers, 1)) ** -0.5
        for block in blocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.out_proj.bias)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` [B, L, D]; ``mask`` [B, L] True = real token (padded keys are not attended to)."""
        attn_mask = attention_mask(mask, x.shape[1], self.causal)
        if self.window:
            band = local_window(x.shape[1], self.window, self.causal, x.device)
            attn_mask = band if attn_mask is None else attn_mask & band
        for block in self.resblocks:
            x = block(x, attn_mask, self.causal)
        return x
