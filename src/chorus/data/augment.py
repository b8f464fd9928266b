"""Image augmentation and preloading for training from in-memory tensors.

- :func:`preload_images`: decode every image once into a uint8 tensor, so an epoch costs no JPEG
  decoding (on a small CPU most of a PIL pipeline's time goes there).
- :class:`BatchAugment`: augmentation as a batched torch module on the model's device — random resized
  crop + horizontal flip in one ``grid_sample`` (Szegedy et al. 2015's crop, as used by CLIP/SimCLR),
  brightness/contrast/saturation jitter; at eval time a plain antialiased resize. As the first layer of
  an image tower (:class:`chorus.encoders.AugmentedEncoder`) it keeps the data pipeline a tensor lookup
  and makes train/eval switch with ``model.train()``.
- :func:`cached_views`: a fixed (weight-free) front end such as the scattering transform applied once to
  several augmented views of every image, optionally cached on disk.
- :class:`TensorImages`: a map-style dataset over the preloaded tensor (or over cached views, serving a
  random one per access).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset

from chorus.errors import ConfigError
from chorus.train.checkpoint import atomic_write

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "BatchAugment", "TensorImages", "cached_views", "preload_images"]

# Per-channel statistics of ImageNet: a fixed, dataset-independent normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preload_images(images: Sequence[Image.Image], size: int) -> Tensor:
    """uint8 [N, 3, size, size]: each RGB image's shorter side resized to ``size`` (bicubic), centre-cropped."""
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    for i, img in enumerate(images):
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.convert("RGB").resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
        out[i] = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    return out


class BatchAugment(nn.Module):
    """uint8/float images [B, 3, H, W] → normalised float [B, 3, size, size]; random only in training mode.

    Training: a crop covering ``scale`` of the area with aspect ratio in
    ``ratio`` (log-uniform), flipped with probability ½, resampled bilinearly
    to ``size``; then brightness, contrast and saturation each scaled by a
    factor in [1 − ``jitter``, 1 + ``jitter``]. Eval: antialiased resize of the
    whole image. ``scale=(1, 1)``, ``flip=False``, ``jitter=0`` is the plain resize.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.35, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
        jitter: float = 0.3,
    ) -> None:
        super().__init__()
        self.size, self.scale, self.ratio, self.flip, self.jitter = size, scale, ratio, flip, jitter
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _crop(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        area = torch.empty(b, device=x.device).uniform_(*self.scale)
        log_r = torch.empty(b, device=x.device).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]))
        # Half-widths in normalised [-1, 1] coordinates, clipped to the image.
        sx = (area * log_r.exp()).sqrt().clamp(max=1.0)
        sy = (area / log_r.exp()).sqrt().clamp(max=1.0)
        cx = (torch.rand(b, device=x.device) * 2 - 1) * (1 - sx)
        cy = (torch.rand(b, device=x.device) * 2 - 1) * (1 - sy)
        if self.flip:
            sx = sx * torch.where(torch.rand(b, device=x.device) < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
        grid = F.affine_grid(theta, [b, 3, self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _jitter(self, x: Tensor) -> Tensor:
        b = x.shape[0]

        def factor() -> Tensor:
            return 1 + (torch.rand(b, 1, 1, 1, device=x.device) * 2 - 1) * self.jitter

        x = x * factor()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor() + mean
        grey = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return ((x - grey) * factor() + grey).clamp(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            if self.training:
                x = self._crop(x)
                if self.jitter > 0:
                    x = self._jitter(x)
            elif x.shape[-2:] != (self.size, self.size):
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
            return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def cached_views(
    transform: nn.Module,
    augment: BatchAugment,
    images: Tensor,
    views: int,
    seed: int,
    batch_size: int = 128,
    cache_dir: str | Path | None = None,
    key: str = "",
) -> Tensor:
    """``transform`` (a fixed front end, e.g. a scattering transform) of ``views`` versions of every image,
    computed once: [N, views, *out] float16.

    View 0 is the plain resized image, view 1 its mirror image, the rest are
    :class:`BatchAugment` training crops (drawn from ``seed``). A front end
    with no learned weights gives the same output every epoch, so caching a
    fixed set of augmented views replaces recomputing it per step at a
    fraction of the cost (one thread: the 64 px scattering of 128 images
    takes ~1.2 s, ~8× a training step of the learned head on them).

    ``cache_dir``: also keep the result on disk, named by a digest of the
    images, ``key`` (the caller's description of ``transform``: it cannot be
    read off an arbitrary module), the augmentation settings, ``views`` and
    ``seed``, and load it from there when it exists — the whole computation
    (minutes for the Caltech training set) is then paid once across runs
    that differ only in what is trained on top.
    """
    if views < 1:
        raise ConfigError(f"cached_views: views must be >= 1, got {views}")
    path = None
    if cache_dir is not None:
        digest = hashlib.sha1(images.contiguous().numpy().tobytes())
        digest.update(
            repr(
                (
                    key,
                    augment.size,
                    augment.scale,
                    augment.ratio,
                    augment.flip,
                    augment.jitter,
                    views,
                    seed,
                    tuple(images.shape),
                    str(images.dtype),
                )
            ).encode()
        )
        path = Path(cache_dir) / f"views_{digest.hexdigest()[:20]}.pt"
        if path.is_file():
            return torch.load(path)
    out = _compute_views(transform, augment, images, views, seed, batch_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: torch.save(out, tmp))  # a killed run never leaves a truncated cache behind
    return out


def _compute_views(
    transform: nn.Module, augment: BatchAugment, images: Tensor, views: int, seed: int, batch_size: int
) -> Tensor:
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            plain = augment.eval()(x)
            batch = [plain, plain.flip(-1)] + [augment.train()(x) for _ in range(views - 2)]
            out.append(torch.stack([transform(v.contiguous()).half() for v in batch[:views]], dim=1))
    augment.eval()
    torch.random.set_rng_state(generator_state)
    return torch.cat(out)


class TensorImages(Dataset):
    """Items ``{"image": images[i], **extra(i)}`` over a preloaded tensor.

    ``views=True``: ``images`` is [N, V, ...] (precomputed augmented views,
    :func:`cached_views`) and each access serves one view drawn at random.
    """

    def __init__(
        self, images: Tensor, extra: Callable[[int], dict[str, Any]], classes: Sequence[str] = (), views: bool = False
    ) -> None:
        self.images, self.extra, self.classes, self.views = images, extra, list(classes), views

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.images[index]
        if self.views:
            image = image[int(torch.randint(image.shape[0], ()))]
        return {"image": image, **self.extra(index)}
