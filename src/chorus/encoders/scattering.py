"""``scattering``: a fixed wavelet scattering front end with a small learned convolutional head.

What: the 2-D scattering transform (Mallat 2012; Bruna & Mallat 2013) —
cascades of Morlet wavelet convolutions, complex moduli and a Gaussian
low-pass, ``J`` octaves × ``orientations`` directions, up to second order — of
each colour channel, computed by ``kymatio`` (Andreux et al. 2020). Its
coefficients (``1 + J·L + L²·J(J−1)/2`` maps per channel at ``image_size / 2^J``
resolution) pass through BatchNorm and a short ResNet-style head (a 3x3 conv,
then one basic block per width, each later width halving the resolution),
then global average pooling: the "hybrid" network of Oyallon, Belilovsky &
Zagoruyko, "Scaling the scattering transform: deep hybrid networks" (ICCV 2017).

Why: the transform has no learned weights — its filters are fixed
mathematical functions, so the encoder is still trained from scratch and sees
no outside data — yet it is stable to small deformations and translations by
construction. What a CNN's first layers must otherwise learn from the training
images is given for free, which is what wins in the limited-sample regime
(Oyallon et al. 2017; on Caltech-101 with 30 images per class, scattering +
linear SVM reaches ~80 %, Oyallon & Mallat, CVPR 2015). First- and
second-order coefficients are moduli, so they enter as ``log(S + eps)``
(scattering coefficients are roughly log-normal; the log also turns the
multiplicative effect of contrast into an additive one); the zeroth order is a
signed local average and stays linear.

The transform is a pure function of the image, so callers that see the same
images many times (``chorus bench caltech_zeroshot``) compute
``encoder.transform(images)`` once and train ``encoder.head`` on the cached
coefficients; ``encoder(images)`` is ``head(transform(images))``.

Note: ``kymatio.torch`` also imports its 3-D solid-harmonic scattering, which
needs ``scipy.special.sph_harm`` (removed in SciPy 1.17), so the 2-D frontend
is imported from its own module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.feature_map import encode_feature_map
from chorus.encoders.inputs import check_image
from chorus.encoders.resnet import he_init, residual_stages
from chorus.errors import ConfigError


class ScatteringTransform(nn.Module):
    """Fixed: images [B, C, H, W] → [B, C·K, H/2^J, W/2^J] coefficients (order 0 linear, orders 1–2 logged).

    No parameters (the Morlet filters are buffers); runs in float32 even under
    autocast, since the FFTs need it.
    """

    def __init__(self, J: int, orientations: int, image_size: int, in_channels: int, eps: float = 1e-4) -> None:
        super().__init__()
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

        if image_size % 2**J:
            raise ConfigError(f"scattering: image_size {image_size} must be divisible by 2^J = {2**J}")
        self.scattering = ScatteringTorch2D(J=J, shape=(image_size, image_size), L=orientations)
        self.per_channel = 1 + J * orientations + orientations**2 * J * (J - 1) // 2
        self.out_channels = in_channels * self.per_channel
        self.out_size = image_size // 2**J
        self.eps = eps
        self.key = f"scattering J={J} L={orientations} {image_size} px"
        """What a cache of this transform's outputs must be keyed by (a module's settings cannot be read off it)."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            s = self.scattering(x.float().contiguous())  # [B, C, K, h, w]
            # Moduli are >= 0, but the FFT low-pass leaves round-off negatives of ~1e-4.
            s = torch.cat([s[:, :, :1], torch.log(s[:, :, 1:].clamp(min=0) + self.eps)], dim=2)
        return s.flatten(1, 2)


class ScatteringHead(nn.Module):
    """Learned: coefficients [B, C·K, h, w] → BatchNorm → 3x3 conv-BN-ReLU → basic blocks → :class:`Encoded`."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        if not widths:
            raise ConfigError("scattering: widths must name at least one stage")
        self.norm = nn.BatchNorm2d(in_channels)
        self.dropout = nn.Dropout2d(dropout)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.blocks = residual_stages(widths[0], widths, (1,) * len(widths))
        he_init(self)
        self.out_dim = widths[-1]

    def features(self, s: Tensor) -> Tensor:
        """Coefficients → the final feature map [B, widths[-1], h', w'] (before pooling)."""
        return self.blocks(self.stem(self.dropout(self.norm(s.float()))))  # cached coefficients may be float16

    def forward(self, s: Tensor, mask: Tensor | None = None) -> Encoded:
        return encode_feature_map(self.features(s))


@ENCODERS.register("scattering")
class ScatteringEncoder(nn.Module):
    """``head(transform(x))``; ``out_dim = widths[-1]``; tokens are the head's final feature map cells."""

    modality = "image"
    sizes = {
        "tiny": {"J": 2, "widths": (32, 64)},
        "small": {"J": 2, "widths": (64, 128)},
        "base": {"J": 2, "widths": (128, 256)},
    }

    def __init__(
        self,
        J: int,
        widths: tuple[int, ...],
        orientations: int = 8,
        in_channels: int = 3,
        image_size: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.image_size = in_channels, image_size
        self.transform = ScatteringTransform(J, orientations, image_size, in_channels)
        self.head = ScatteringHead(self.transform.out_channels, widths, dropout)
        self.out_dim = self.head.out_dim

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        check_image(x, mask, self.in_channels, self.image_size, "scattering")
        return self.head(self.transform(x))
