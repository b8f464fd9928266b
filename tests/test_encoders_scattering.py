"""The ``scattering`` encoder: fixed front end (no parameters, separable features), learned head, cached views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from chorus.data import build_dataset
from chorus.data.augment import BatchAugment, cached_views, preload_images
from chorus.encoders import build_encoder
from chorus.errors import ConfigError


def test_shapes_and_head_of_transform() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("scattering", "tiny", image_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    coefficients = encoder.transform(x)
    # J=2, L=8: 1 + 2·8 + 8²·1 = 81 maps per colour channel at 32 / 2² = 8 px.
    assert coefficients.shape == (2, 3 * 81, 8, 8) and torch.isfinite(coefficients).all()
    out = encoder(x)
    assert out.pooled.shape == (2, 64) and out.tokens.shape == (2, 4 * 4, 64)  # second width halves 8 → 4
    torch.testing.assert_close(out.pooled, encoder.head(coefficients).pooled)


def test_front_end_is_fixed_and_head_learns() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("scattering", "tiny", image_size=32).train()
    assert not list(encoder.transform.parameters())  # Morlet filters are buffers, nothing to train
    assert sum(p.numel() for p in encoder.parameters()) == sum(p.numel() for p in encoder.head.parameters())
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    encoder(x).pooled.square().sum().backward()
    assert encoder.head.stem[0].weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0  # the transform is differentiable end to end


def test_coefficients_are_linearly_separable_on_real_images(real_data_root: Path) -> None:
    """Why the front end is there: with 20 images per class a linear classifier on its (4x4-pooled)
    coefficients beats one on the pixels by a wide margin, with no learned or pretrained weights.

    Caltech-101 classes 10–19, 20 training / 10 test images each (chance 10 %). Measured: scattering
    64 %, 16x16 pixels 29 % (other 10-class groups: 68/49, 51/17, 70/37). Demand a 15-point lead.
    """
    dataset = build_dataset("caltech101", root=real_data_root, split="all")
    labels = np.array(dataset.labels)
    index = [i for c in range(10, 20) for i in np.flatnonzero(labels == c)[:30]]
    y = labels[index]
    x = BatchAugment(64).eval()(preload_images([dataset.load(i)["image"] for i in index], 64))
    transform = build_encoder("scattering", "small", image_size=64).transform
    features = {
        "scattering": F.adaptive_avg_pool2d(transform(x), 4).flatten(1).numpy(),
        "pixels": F.adaptive_avg_pool2d(x, 16).flatten(1).numpy(),
    }
    train = np.arange(len(index)) % 30 < 20
    accuracy = {}
    for name, f in features.items():
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
        accuracy[name] = classifier.fit(f[train], y[train]).score(f[~train], y[~train])
    assert accuracy["scattering"] > accuracy["pixels"] + 0.15 and accuracy["scattering"] > 0.45, accuracy


def test_cached_views_plain_mirror_and_random_crops() -> None:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 48, 48), dtype=torch.uint8)
    augment = BatchAugment(32)
    transform = build_encoder("scattering", "tiny", image_size=32).transform
    views = cached_views(transform, augment, images, 4, seed=0)
    assert views.shape == (5, 4, 3 * 81, 8, 8) and views.dtype == torch.float16
    plain = augment.eval()(images)
    torch.testing.assert_close(views[:, 0].float(), transform(plain), atol=2e-2, rtol=2e-3)
    torch.testing.assert_close(views[:, 1].float(), transform(plain.flip(-1)), atol=2e-2, rtol=2e-3)
    assert not torch.allclose(views[:, 2].float(), views[:, 0].float(), atol=0.1)  # random crops differ
    again = cached_views(transform, augment, images, 4, seed=0)
    torch.testing.assert_close(again, views)  # the views are drawn from the given seed
    with pytest.raises(ConfigError, match="views"):
        cached_views(transform, augment, images, 0, seed=0)
