"""The ``scattering_descriptors`` encoder: fixed scattering + HOG/LBP/colour front end, learned head, cache keys."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2gray
from skimage.feature import hog

from chorus.data.augment import IMAGENET_MEAN as MEAN
from chorus.data.augment import IMAGENET_STD as STD
from chorus.data.augment import BatchAugment, cached_views
from chorus.encoders import build_encoder
from chorus.errors import ConfigError


def _encoder(size: str = "tiny", **options):
    return build_encoder("scattering_descriptors", size, image_size=32, mean=MEAN, std=STD, **options)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB images (so that HOG and LBP see structure, not pixel noise), ImageNet-normalised."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=32, mode="bilinear", align_corners=False)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_shapes_and_descriptor_layout() -> None:
    torch.manual_seed(0)
    encoder = _encoder().eval()
    x = _images(3)
    flat = encoder.transform(x)
    # 32 px: HOG 8 px cells = 4x4 cells → 3x3 blocks of 2x2 cells x 12 orientations; 16 px cells → 1 block;
    # LBP: 4x4 grid x 10 uniform codes; colour: 2x2 grid x (8 x 4 x 4) HSV bins.
    descriptor_dim = 9 * 4 * 12 + 1 * 4 * 12 + 16 * 10 + 4 * 128
    assert flat.shape == (3, 3 * 81 * 8 * 8 + descriptor_dim) and torch.isfinite(flat).all()
    # The maps are exactly the scattering transform; the first descriptor block is skimage's HOG of the grey image.
    torch.testing.assert_close(flat[:, : 3 * 81 * 64], encoder.transform.scattering(x).flatten(1))
    rgb = (x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)).permute(0, 2, 3, 1).numpy()
    reference = hog(rgb2gray(rgb[1]), orientations=12, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    np.testing.assert_allclose(flat[1, 3 * 81 * 64 : 3 * 81 * 64 + 432].numpy(), reference, atol=1e-5)
    out = encoder(x)
    assert out.pooled.shape == (3, 64) and out.tokens.shape == (3, 4 * 4, 64)  # second width halves 8 → 4
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))  # the descriptor embedding is added to every cell
    with pytest.raises(ConfigError, match="too small"):
        build_encoder("scattering_descriptors", "tiny", image_size=16)


def test_front_end_is_fixed_and_deterministic() -> None:
    encoder = _encoder()
    assert not list(encoder.transform.parameters())
    assert sum(p.numel() for p in encoder.parameters()) == sum(p.numel() for p in encoder.head.parameters())
    x = _images(2)
    torch.testing.assert_close(encoder.transform(x), encoder.transform(x.clone()), rtol=0, atol=0)
    # Colour reaches the descriptors: swapping red and blue changes the colour histograms, not the maps' shape.
    swapped = encoder.transform(x[:, [2, 1, 0]])
    assert not torch.allclose(swapped[:, -512:], encoder.transform(x)[:, -512:])


def test_cache_key_differs_between_front_ends(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8)
    augment = BatchAugment(32)
    scattering = build_encoder("scattering", "tiny", image_size=32).transform
    fused = _encoder().transform
    assert scattering.key != fused.key
    a = cached_views(scattering, augment, images, 2, seed=0, cache_dir=tmp_path, key=scattering.key)
    b = cached_views(fused, augment, images, 2, seed=0, cache_dir=tmp_path, key=fused.key)
    assert len(list(tmp_path.glob("views_*.pt"))) == 2  # two front ends, two cache files
    assert a.shape == (3, 2, 3 * 81, 8, 8) and b.shape == (3, 2, fused.out_dim)
    # The second call loads the fused front end's own file.
    torch.testing.assert_close(cached_views(fused, augment, images, 2, seed=0, cache_dir=tmp_path, key=fused.key), b)


def test_head_trains_on_a_tiny_batch() -> None:
    torch.manual_seed(0)
    encoder = _encoder(descriptor_dropout=0.1)
    x, y = _images(8, seed=1), torch.arange(8) % 4
    features = encoder.transform(x)  # computed once, as the benchmark caches it
    readout = torch.nn.Linear(encoder.out_dim, 4)
    optimiser = torch.optim.Adam([*encoder.head.parameters(), *readout.parameters()], lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(readout(encoder.head(features).pooled), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert encoder.head.mlp[2].weight.grad.abs().sum() > 0  # the descriptor branch is trained too


def test_missing_scikit_image_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage.feature", None)  # as if scikit-image were not installed
    with pytest.raises(ConfigError, match=r"chorus\[vision\]"):
        _encoder()
