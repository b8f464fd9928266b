"""``cnn``: a small plain convolutional image encoder.

What: a stack of 3x3 conv → BatchNorm → ReLU blocks (the first keeps the
resolution unless ``first_stride`` is 2, each later one halves it with stride
2), then global average pooling. ``first_stride=2`` with four 24-channel blocks
is the image encoder of Santoro et al. 2017 (75×75 → 5×5 cells). Reference: the VGG-style plain CNN (Simonyan & Zisserman 2015) with
BatchNorm (Ioffe & Szegedy 2015).

Why: it is the cheapest encoder that learns translation-tolerant local
features, so it is the baseline every image encoder here must beat (and beats
a linear model on raw pixels, e.g. ~92% on MNIST). Use it for small
greyscale/low-resolution images and quick experiments; use ``resnet`` when
depth is needed and ``vit`` for CLIP.
"""

from __future__ import annotations

from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.feature_map import encode_feature_map
from chorus.encoders.inputs import check_image


def conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3x3 conv (no bias: BatchNorm's shift replaces it) → BatchNorm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@ENCODERS.register("cnn")
class CNNEncoder(nn.Module):
    """Plain CNN; ``out_dim = widths[-1]``; tokens are the final feature map's cells."""

    modality = "image"
    sizes = {
        "tiny": {"widths": (16, 32, 64)},
        "small": {"widths": (32, 64, 128)},
        "base": {"widths": (64, 128, 256, 512)},
    }

    def __init__(
        self, widths: tuple[int, ...], in_channels: int = 3, image_size: int = 32, first_stride: int = 1
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.image_size = image_size
        channels = (in_channels, *widths)
        self.blocks = nn.Sequential(
            *(conv_bn_relu(channels[i], channels[i + 1], first_stride if i == 0 else 2) for i in range(len(widths)))
        )
        self.out_dim = widths[-1]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        check_image(x, mask, self.in_channels, self.image_size, "cnn")
        return encode_feature_map(self.blocks(x))
