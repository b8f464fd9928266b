"""``scattering_descriptors``: wavelet scattering maps fused with classical image descriptors, then a learned head.

What: the fixed front end is the ``scattering`` encoder's transform plus a
vector of hand-designed descriptors of the whole image, all computed by
``scikit-image``:

- HOG, histograms of oriented gradients (Dalal & Triggs, CVPR 2005) of the
  grey image at two cell sizes (12 orientations, 2 × 2-cell blocks, L2-Hys):
  the layout of edges, coarse and fine;
- uniform local binary patterns (Ojala, Pietikäinen & Mäenpää, TPAMI 2002;
  8 neighbours at radius 1) histogrammed over a 4 × 4 grid: micro-texture;
- an HSV colour histogram (8 hue × 4 saturation × 4 value bins) over a
  2 × 2 grid: colour, which the other two ignore.

Histograms are L1-normalised and square-rooted (the Hellinger map, so that
a dot product compares distributions). The learned head runs the scattering
head's convolutions on the maps and an MLP (standardising BatchNorm → Linear → BN →
ReLU → Linear) on the descriptor vector, and *adds* the MLP's output to every
cell of the final feature map: tokens stay image regions, and the pooled
vector is their mean, i.e. the conv features plus the descriptor embedding.

Why: with ~20 images per class no single fixed representation carries all
the cues: on Caltech-101's validation split a linear classifier on scattering,
HOG, colour and LBP together beat each of them alone
(``docs/benchmarks/caltech_zeroshot.md``) — combining complementary
kernels/features beats each (Gehler & Nowozin, "On feature combination for
multiclass object classification", ICCV 2009). The scattering maps keep their spatial layout for
the conv head (Oyallon et al., ICCV 2017); the descriptors are already
spatially pooled histograms, so an MLP suffices for them.

Inputs: images normalised per channel as ``(x - mean) / std`` (pass the
``mean``/``std`` the pipeline used; colour histograms need the true colours
back). ``scattering_size`` < ``image_size`` resizes (antialiased) before the
scattering transform only, so the descriptors can read a finer image than the
scattering head is sized for. The descriptor part runs in NumPy on the CPU,
image by image, and is not differentiable — callers cache the whole
transform (``chorus.data.augment.cached_views``), so its cost is paid
once. Its output is one flat vector per image (the scattering maps flattened,
then the descriptors), so that it caches like any single tensor; the head
splits it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.feature_map import encode_feature_map
from chorus.encoders.inputs import check_image
from chorus.encoders.scattering import ScatteringHead, ScatteringTransform
from chorus.errors import ConfigError


def _skimage():
    """scikit-image, imported only when descriptors are computed (it is the ``vision`` extra)."""
    try:
        import skimage.color
        import skimage.feature
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError("the scattering_descriptors encoder needs scikit-image: pip install 'chorus[vision]'") from e
    return skimage


def _grid_histograms(values: np.ndarray, bins: int, grid: int) -> np.ndarray:
    """Integer codes [H, W] in [0, bins) → square-rooted L1-normalised histograms of each grid cell, concatenated."""
    h, w = values.shape
    out = []
    for i in range(grid):
        for j in range(grid):
            cell = values[i * h // grid : (i + 1) * h // grid, j * w // grid : (j + 1) * w // grid]
            counts = np.bincount(cell.ravel(), minlength=bins).astype(np.float32)
            out.append(np.sqrt(counts / max(counts.sum(), 1.0)))
    return np.concatenate(out)


class DescriptorTransform(nn.Module):
    """Fixed: normalised images [B, 3, S, S] → descriptor vectors [B, out_dim] (HOG, LBP, HSV colour).

    No parameters; deterministic; float32 on the input's device.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        hog_cells: Sequence[int] = (8, 16),
        hog_orientations: int = 12,
        lbp_grid: int = 4,
        colour_grid: int = 2,
        colour_bins: tuple[int, int, int] = (8, 4, 4),
    ) -> None:
        super().__init__()
        if any(2 * c > image_size for c in hog_cells) or image_size < max(lbp_grid, colour_grid):
            raise ConfigError(f"descriptors: image_size {image_size} is too small for HOG cells {tuple(hog_cells)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.hog_cells, self.hog_orientations = tuple(hog_cells), hog_orientations
        self.lbp_grid, self.colour_grid, self.colour_bins = lbp_grid, colour_grid, colour_bins
        self.out_dim = len(self.describe(np.zeros((image_size, image_size, 3), np.float32)))

    def describe(self, rgb: np.ndarray) -> np.ndarray:
        """One RGB image [S, S, 3] in [0, 1] → its descriptor vector (float32)."""
        skimage = _skimage()
        grey = skimage.color.rgb2gray(rgb)
        hogs = [
            skimage.feature.hog(
                grey,
                orientations=self.hog_orientations,
                pixels_per_cell=(c, c),
                cells_per_block=(2, 2),
                block_norm="L2-Hys",
                feature_vector=True,
            )
            for c in self.hog_cells
        ]
        lbp = skimage.feature.local_binary_pattern(np.round(grey * 255).astype(np.uint8), 8, 1, "uniform")
        hsv = skimage.color.rgb2hsv(rgb)
        nh, ns, nv = self.colour_bins
        quantised = [np.minimum((hsv[..., k] * n).astype(np.int64), n - 1) for k, n in enumerate(self.colour_bins)]
        colour = (quantised[0] * ns + quantised[1]) * nv + quantised[2]
        return np.concatenate(
            hogs
            + [
                _grid_histograms(lbp.astype(np.int64), 10, self.lbp_grid),
                _grid_histograms(colour, nh * ns * nv, self.colour_grid),
            ]
        ).astype(np.float32)

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            rgb = (x.float() * self.std + self.mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return torch.from_numpy(np.stack([self.describe(image) for image in rgb])).to(x.device)


class ScatteringDescriptorTransform(nn.Module):
    """Fixed: images [B, 3, S, S] → flat [B, map_numel + descriptor_dim]: scattering maps, then descriptors."""

    def __init__(
        self,
        J: int,
        orientations: int,
        image_size: int,
        scattering_size: int,
        in_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.scattering = ScatteringTransform(J, orientations, scattering_size, in_channels)
        self.descriptors = DescriptorTransform(image_size, mean, std)
        self.map_shape = (self.scattering.out_channels, self.scattering.out_size, self.scattering.out_size)
        self.map_numel = int(np.prod(self.map_shape))
        self.out_dim = self.map_numel + self.descriptors.out_dim
        self.image_size, self.scattering_size = image_size, scattering_size
        self.key = (
            f"{self.scattering.key} of {image_size} px + HOG {self.descriptors.hog_cells} "
            f"LBP {self.descriptors.lbp_grid} colour {self.descriptors.colour_grid}x{self.descriptors.colour_bins}"
            f" mean {tuple(self.descriptors.mean.flatten().tolist())} std "
            f"{tuple(self.descriptors.std.flatten().tolist())}"
        )

    def forward(self, x: Tensor) -> Tensor:
        small = (
            x
            if self.scattering_size == self.image_size
            else F.interpolate(
                x.float(), size=(self.scattering_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        )
        return torch.cat([self.scattering(small).flatten(1), self.descriptors(x)], dim=1)


class ScatteringDescriptorHead(nn.Module):
    """Learned: flat front-end output → scattering conv head's feature map + MLP(descriptors) on every cell."""

    def __init__(
        self,
        map_shape: tuple[int, int, int],
        descriptor_dim: int,
        widths: tuple[int, ...],
        mlp_width: int,
        dropout: float = 0.0,
        descriptor_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.map_shape = map_shape
        self.maps = ScatteringHead(map_shape[0], widths, dropout)
        # The input norm only standardises (affine=False): a learned shift or scale there would be absorbed by the
        # bias-free Linear and the BatchNorm after it.
        self.mlp = nn.Sequential(
            nn.BatchNorm1d(descriptor_dim, affine=False),
            nn.Dropout(descriptor_dropout),
            nn.Linear(descriptor_dim, mlp_width, bias=False),
            nn.BatchNorm1d(mlp_width),
            nn.ReLU(inplace=True),
            nn.Linear(mlp_width, widths[-1]),
        )
        self.out_dim = widths[-1]

    def forward(self, s: Tensor, mask: Tensor | None = None) -> Encoded:
        s = s.float()  # cached outputs may be stored as float16
        numel = int(np.prod(self.map_shape))
        fmap = self.maps.features(s[:, :numel].reshape(-1, *self.map_shape))
        return encode_feature_map(fmap + self.mlp(s[:, numel:])[:, :, None, None])


@ENCODERS.register("scattering_descriptors")
class ScatteringDescriptorEncoder(nn.Module):
    """``head(transform(x))``; ``out_dim = widths[-1]``; tokens are the head's final feature map cells."""

    modality = "image"
    sizes = {
        "tiny": {"J": 2, "widths": (32, 64), "mlp_width": 64},
        "small": {"J": 2, "widths": (64, 128), "mlp_width": 256},
        "base": {"J": 2, "widths": (128, 256), "mlp_width": 512},
    }

    def __init__(
        self,
        J: int,
        widths: tuple[int, ...],
        mlp_width: int,
        orientations: int = 8,
        in_channels: int = 3,
        image_size: int = 32,
        scattering_size: int | None = None,
        dropout: float = 0.0,
        descriptor_dropout: float = 0.0,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ) -> None:
        super().__init__()
        if in_channels != 3:
            raise ConfigError("scattering_descriptors: colour descriptors need RGB images (in_channels=3)")
        self.in_channels, self.image_size = in_channels, image_size
        self.transform = ScatteringDescriptorTransform(
            J, orientations, image_size, scattering_size or image_size, in_channels, mean, std
        )
        self.head = ScatteringDescriptorHead(
            self.transform.map_shape, self.transform.descriptors.out_dim, widths, mlp_width, dropout, descriptor_dropout
        )
        self.out_dim = self.head.out_dim

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        check_image(x, mask, self.in_channels, self.image_size, "scattering_descriptors")
        return self.head(self.transform(x))
