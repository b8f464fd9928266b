"""Image preprocessing with Pillow, NumPy and torch only (no torchvision).

Eval: resize the shorter side to ``resize`` (default ``size``; bicubic, the
longer side to ``int(resize * long / short)``) and centre-crop ``size``², the
standard CLIP/ImageNet evaluation view, computed exactly as CLIP's
preprocessing (``transformers``' ``CLIPImageProcessor``) computes it so that
imported checkpoints see the pixels they were trained on; ``crop_offset="round"``
places the crop as OpenCLIP's torchvision ``CenterCrop`` does (Python's
``round`` of half the margin instead of its floor: one pixel apart when the
margin is odd). Train:
random-resized crop (area fraction drawn from ``scale``, aspect ratio
log-uniform in ``ratio``; Szegedy et al., *Going deeper with convolutions*,
2015) plus an optional horizontal flip, which is the augmentation CLIP-style
training relies on. Flip must be off
for digits, where mirroring changes the class. Randomness comes from torch's
global RNG, so ``torch.manual_seed`` and DataLoader worker seeding control it.

Output: float32 [C, H, W] normalised per channel as ``(x/255 - mean) / std``;
the defaults ``mean = std = 0.5`` map pixels to [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from chorus.data.decode import decode_image
from chorus.errors import ConfigError, DataError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _per_channel(value: float | Sequence[float], channels: int, what: str) -> Tensor:
    values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != channels:
        raise ConfigError(f"ImageTransform {what} has {len(values)} values for {channels} channels")
    return torch.tensor(values, dtype=torch.float32).view(channels, 1, 1)


class ImageTransform:
    """PIL image (or encoded bytes) → normalised float tensor [channels, size, size]."""

    def __init__(
        self,
        size: int,
        channels: int = 3,
        train: bool = False,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
        flip: bool = True,
        scale: tuple[float, float] = (0.5, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        resize: int | None = None,
        crop_offset: Literal["floor", "round"] = "floor",
    ) -> None:
        if channels not in (1, 3):
            raise ConfigError(f"ImageTransform channels must be 1 or 3, got {channels}")
        if size <= 0:
            raise ConfigError(f"ImageTransform size must be positive, got {size}")
        if resize is not None and resize < size:
            raise ConfigError(f"ImageTransform resize ({resize}) must be at least the crop size ({size})")
        if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
            raise ConfigError(
                f"ImageTransform needs 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}"
            )
        self.size, self.channels, self.train, self.flip = size, channels, train, flip
        self.scale, self.ratio = scale, ratio
        self.resize = resize or size
        if crop_offset not in ("floor", "round"):
            raise ConfigError(f"ImageTransform crop_offset must be 'floor' or 'round', got {crop_offset!r}")
        self.crop_offset = crop_offset
        self.mean = _per_channel(mean, channels, "mean")
        self.std = _per_channel(std, channels, "std")
        if (self.std <= 0).any():
            raise ConfigError(f"ImageTransform std must be positive, got {std}")

    def _offset(self, margin: int) -> int:
        return (
            margin // 2 if self.crop_offset == "floor" else round(margin / 2)
        )  # Python rounds half to even, like torchvision

    def _eval_view(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        short, long = sorted((w, h))
        other = int(self.resize * long / short)
        new_w, new_h = (self.resize, other) if w <= h else (other, self.resize)
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (self._offset(margin) for margin in (new_w - self.size, new_h - self.size))
        return img.crop((left, top, left + self.size, top + self.size))

    def _random_box(self, w: int, h: int) -> tuple[int, int, int, int]:
        area = w * h
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * float(torch.empty(1).uniform_(*self.scale))
            aspect = math.exp(float(torch.empty(1).uniform_(log_lo, log_hi)))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                left = int(torch.randint(0, w - cw + 1, (1,)))
                top = int(torch.randint(0, h - ch + 1, (1,)))
                return left, top, left + cw, top + ch
        side = min(w, h)  # fall back to the central square
        return (w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side

    def __call__(self, image: Image.Image | bytes) -> Tensor:
        if isinstance(image, bytes):
            image = decode_image(image, "<bytes>")
        if not isinstance(image, Image.Image):
            raise DataError(f"ImageTransform expects a PIL image or bytes, got {type(image).__name__}")
        img = image.convert("RGB" if self.channels == 3 else "L")
        if self.train:
            box = self._random_box(*img.size)
            img = img.resize((self.size, self.size), Image.Resampling.BICUBIC, box=box)
            if self.flip and float(torch.rand(1)) < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            img = self._eval_view(img)
        pixels = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        pixels = pixels.unsqueeze(0) if self.channels == 1 else pixels.permute(2, 0, 1)
        return (pixels - self.mean) / self.std

    def __repr__(self) -> str:
        return f"ImageTransform(size={self.size}, channels={self.channels}, train={self.train}, flip={self.flip})"
