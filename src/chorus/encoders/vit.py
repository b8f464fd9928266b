"""``vit``: a Vision Transformer laid out exactly like CLIP's vision tower.

What: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", in the variant
of Radford et al. 2021 (CLIP): non-overlapping patches embedded by a bias-free
conv, a learned class token, learned positional embeddings, ``ln_pre``, the
shared pre-LN :class:`~chorus.encoders.transformer.Transformer`, ``ln_post``
and an optional bias-free projection ``proj`` [width, output_dim] (``x @ proj``).

Why this layout: parameter names and shapes are OpenCLIP's ``VisionTransformer``
(``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre``,
``transformer.resblocks.*``, ``ln_post``, ``proj``), and HF CLIP's vision tower
maps onto it one-to-one (q/k/v concatenated into ``in_proj_weight``,
``visual_projection.weight`` transposed into ``proj``), so pretrained CLIP
weights reproduce their features exactly; ``act="quick_gelu"`` for OpenAI's
original weights, ``ln_eps`` for checkpoints with another epsilon.

Outputs: ``pooled = ln_post(class token) @ proj`` (CLIP's image embedding);
``tokens = ln_post(patch tokens) @ proj`` [B, (image_size/patch_size)^2, out_dim]
— OpenCLIP also applies ``ln_post`` to every token, and projecting them too
puts tokens in the same space as ``pooled`` (one ``out_dim``).

When: for CLIP (from scratch or pretrained) and whenever images are large
enough that global attention pays off; from scratch on small data it needs
more data/augmentation than ``resnet`` to beat it (Dosovitskiy et al.).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.inputs import check_image
from chorus.encoders.masking import mask_or_all_real
from chorus.encoders.transformer import Activation, Transformer
from chorus.errors import ConfigError


@ENCODERS.register("vit")
class VisionTransformer(nn.Module):
    """CLIP-style ViT; ``out_dim = output_dim`` if set, else ``width``."""

    modality = "image"
    sizes = {
        "tiny": {"patch_size": 4, "width": 64, "layers": 2, "heads": 2},
        "small": {"patch_size": 4, "width": 192, "layers": 6, "heads": 3},
        "base": {"patch_size": 16, "width": 768, "layers": 12, "heads": 12, "image_size": 224, "output_dim": 512},
    }

    def __init__(
        self,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        in_channels: int = 3,
        image_size: int = 32,
        mlp_ratio: float = 4.0,
        act: Activation = "gelu",
        output_dim: int | None = None,
        ln_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ConfigError(f"vit: image_size {image_size} is not divisible by patch_size {patch_size}")
        self.in_channels = in_channels
        self.image_size = image_size
        grid = image_size // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(in_channels, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width, eps=ln_eps)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act, ln_eps, causal=False)
        self.ln_post = nn.LayerNorm(width, eps=ln_eps)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim)) if output_dim else None
        self.out_dim = output_dim or width

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        check_image(x, mask, self.in_channels, self.image_size, "vit")
        patches = self.conv1(x).flatten(2).transpose(1, 2)  # [B, grid^2, width]
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        h = torch.cat([cls, patches], dim=1) + self.positional_embedding.to(patches.dtype)
        h = self.ln_post(self.transformer(self.ln_pre(h)))
        if self.proj is not None:
            h = h @ self.proj
        return Encoded(pooled=h[:, 0], tokens=h[:, 1:], mask=mask_or_all_real(None, h[:, 1:]))
