"""LinearProbe on real MNIST pixels, its C selection, and extract_features."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from chorus.contrastive import ContrastiveModel
from chorus.encoders.base import Encoded
from chorus.errors import ConfigError, DataError
from chorus.eval.probe import LinearProbe, extract_features


@pytest.fixture(autouse=True)
def single_blas_thread():
    # The test machine is shared and oversubscribed; spinning BLAS threads make L-BFGS ~30× slower.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def mnist(real_data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = real_data_root / "mnist_test"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    assert images.shape == (10_000, 784) and labels.shape == (10_000,)
    return images.astype(np.float32) / 255, labels


def test_probe_on_mnist_pixels(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = mnist
    probe = LinearProbe().fit(X[:3000], y[:3000])
    # chance is 0.10; linear models on raw MNIST pixels reach ~0.88–0.92 with a few thousand examples
    assert probe.score(X[-3000:], y[-3000:]) > 0.85
    assert probe.C_ in probe.Cs
    assert probe.val_scores_[list(probe.Cs).index(probe.C_)] == probe.val_scores_.max()
    proba = probe.predict_proba(X[-50:])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(probe.classes_[proba.argmax(1)], probe.predict(X[-50:]))


def test_selection_and_refit_match_independent_fits(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = mnist[0][:600], mnist[1][:600]
    Cs = (1e-1, 1e-4, 1e-2)  # unsorted on purpose
    probe = LinearProbe(Cs=Cs, random_state=3).fit(X, y)

    def pipeline(C: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))

    X_fit, X_val, y_fit, y_val = train_test_split(X, y, test_size=0.2, stratify=y, random_state=3)
    scores = [pipeline(C).fit(X_fit, y_fit).score(X_val, y_val) for C in Cs]
    np.testing.assert_allclose(probe.val_scores_, scores)
    assert probe.C_ == min(C for C, s in zip(Cs, scores) if s == max(scores))  # ties → stronger regularisation
    assert max(scores) - min(scores) > 0.1  # the grid matters on this data: 1e-4 underfits
    refit = pipeline(probe.C_).fit(X, y)  # the final model is refitted on all the training data
    np.testing.assert_array_equal(probe.predict(mnist[0][-500:]), refit.predict(mnist[0][-500:]))


def test_empty_grid_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Cs"):
        LinearProbe(Cs=()).fit(np.zeros((10, 2)), np.arange(10) % 2)


class Pixels(nn.Module):
    out_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Encoded:
        return Encoded(self.linear(x))


def loader(n_batches: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.randn(5, 4, generator=g), "label": torch.arange(5) + i} for i in range(n_batches)]


def test_extract_features_from_an_encoder_and_a_contrastive_model() -> None:
    torch.manual_seed(0)
    encoder = Pixels()
    batches = loader()
    X, y = extract_features(encoder, batches, "image")
    assert X.dtype == np.float32 and X.shape == (15, 3)
    np.testing.assert_array_equal(y, np.concatenate([np.arange(5) + i for i in range(3)]))
    with torch.no_grad():
        expected = torch.cat([encoder.linear(b["image"]) for b in batches]).numpy()
    np.testing.assert_allclose(X, expected, rtol=1e-6)

    model = ContrastiveModel({"image": encoder, "text": Pixels()}, embed_dim=6).train()
    Z, _ = extract_features(model, batches, "image")
    assert Z.shape == (15, 6)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    assert model.training  # the mode is restored


def test_extract_features_missing_key_is_a_data_error() -> None:
    with pytest.raises(DataError, match="'audio'"):
        extract_features(Pixels(), loader(), "audio")
