"""``resnet``: a ResNet image encoder built from basic residual blocks.

What: He et al. 2016, "Deep Residual Learning for Image Recognition" — stages of
basic blocks (3x3 conv-BN-ReLU-3x3 conv-BN plus an identity or 1x1-conv
shortcut), each stage after the first halving the resolution, then global
average pooling. ``base`` is ResNet-18's layout (widths 64-512, two blocks per
stage). The stem is a single 3x3 conv with stride ``stem_stride`` (1 keeps
small images such as 28-96 px intact, as in the paper's CIFAR variant; use 2
or more for large images).

Why: residual shortcuts let depth add capacity without hurting optimisation, so
it should beat the plain ``cnn`` of similar width on anything harder than MNIST
(e.g. Caltech-101). The last BN of each block starts at zero (Goyal et al.
2017) so every block starts as the identity, which speeds up early training.
"""

from __future__ import annotations

from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.feature_map import encode_feature_map
from chorus.encoders.inputs import check_image
from chorus.errors import ConfigError


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        nn.init.zeros_(self.bn2.weight)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def residual_stages(c_in: int, widths: tuple[int, ...], depths: tuple[int, ...]) -> nn.Sequential:
    """``depths[i]`` basic blocks of width ``widths[i]`` per stage, each stage after the first halving the resolution."""
    blocks: list[nn.Module] = []
    for stage, (width, depth) in enumerate(zip(widths, depths)):
        for i in range(depth):
            blocks.append(BasicBlock(c_in, width, 2 if stage > 0 and i == 0 else 1))
            c_in = width
    return nn.Sequential(*blocks)


def he_init(module: nn.Module) -> None:
    """He (fan-out) initialisation of every convolution in ``module``, as in the ResNet paper."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


@ENCODERS.register("resnet")
class ResNetEncoder(nn.Module):
    """ResNet with basic blocks; ``out_dim = widths[-1]``; tokens are the final feature map's cells."""

    modality = "image"
    sizes = {
        "tiny": {"widths": (16, 32, 64), "depths": (1, 1, 1)},
        "small": {"widths": (32, 64, 128, 256), "depths": (1, 1, 1, 1)},
        "base": {"widths": (64, 128, 256, 512), "depths": (2, 2, 2, 2)},
    }

    def __init__(
        self,
        widths: tuple[int, ...],
        depths: tuple[int, ...],
        in_channels: int = 3,
        image_size: int = 32,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or min(depths, default=0) < 1:
            raise ConfigError(f"resnet: widths {widths} and depths {depths} need equal length, depths >= 1")
        self.in_channels = in_channels
        self.image_size = image_size
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.stages = residual_stages(widths[0], widths, depths)
        he_init(self)
        self.out_dim = widths[-1]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        check_image(x, mask, self.in_channels, self.image_size, "resnet")
        return encode_feature_map(self.stages(self.stem(x)))
