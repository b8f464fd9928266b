"""Tests of the classical (scikit-learn API) fusions: MKL, HMM classifier, Bayesian product."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import check_estimator

from chorus.errors import ConfigError, DataError
from chorus.fusion import BayesianProductFusion, HMMClassifier, MultipleKernelClassifier, product_of_posteriors
from chorus.fusion.kernel_learning import _centered, alignment_weights


def factorial_blocks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns 0-4 show bit a, 5-8 bit b, 9-14 are noise; label = 2a + b (one block alone: ≤ 0.5)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    ca, cb = centers.normal(size=5), centers.normal(size=4)
    xa = (2 * a - 1)[:, None] * 1.5 * ca / np.linalg.norm(ca) + 0.5 * rng.normal(size=(n, 5))
    xb = (2 * b - 1)[:, None] * 1.5 * cb / np.linalg.norm(cb) + 0.5 * rng.normal(size=(n, 4))
    return np.hstack([xa, xb, rng.normal(size=(n, 6))]), 2 * a + b


BLOCKS = [slice(0, 5), slice(5, 9), slice(9, 15)]


def test_mkl_fuses_complementary_blocks_and_downweights_noise() -> None:
    X, y = factorial_blocks(240, seed=1)
    X_test, y_test = factorial_blocks(400, seed=2)
    clf = MultipleKernelClassifier(blocks=BLOCKS).fit(X, y)
    assert clf.score(X_test, y_test) > 0.85  # chance 0.25, any single block ≤ 0.5
    w = clf.kernel_weights_
    assert np.all(w >= 0) and np.isclose(w.sum(), 1.0)
    assert w[2] < 0.5 * min(w[0], w[1])  # the pure-noise kernel is down-weighted
    proba = clf.predict_proba(X_test)
    assert proba.shape == (400, 4) and np.allclose(proba.sum(1), 1.0)
    assert (proba.argmax(1) == y_test).mean() > 0.85


def test_alignf_weights_maximise_centered_alignment() -> None:
    """Against a brute-force search over the simplex (alignment is scale-invariant)."""
    X, y = factorial_blocks(80, seed=3)
    noise_rbf = np.exp(-0.1 * ((X[:, None, 9:] - X[None, :, 9:]) ** 2).sum(-1))
    kernels = [X[:, s] @ X[:, s].T for s in BLOCKS[:2]] + [noise_rbf]
    target = np.eye(4)[y] @ np.eye(4)[y].T

    def alignment(mu: np.ndarray) -> float:
        k = _centered(sum(m * kk for m, kk in zip(mu, kernels)))
        return float(np.sum(k * target) / np.linalg.norm(k) / np.linalg.norm(_centered(target)))

    grid = [np.array([i, j, 40 - i - j]) / 40 for i in range(41) for j in range(41 - i)]
    best = max(alignment(mu) for mu in grid)
    mu = alignment_weights(kernels, y)
    assert alignment(mu) >= best - 1e-9


def test_mkl_passes_scikit_learn_estimator_checks() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(MultipleKernelClassifier())


def test_mkl_rejects_bad_configuration() -> None:
    X, y = factorial_blocks(30, seed=4)
    with pytest.raises(ConfigError, match="blocks\\[1\\]"):
        MultipleKernelClassifier(blocks=[slice(0, 5), [3, 99]]).fit(X, y)
    with pytest.raises(ConfigError, match="kernel"):
        MultipleKernelClassifier(blocks=BLOCKS, kernel=["rbf", "poly", "rbf"]).fit(X, y)


def ordered_sequences(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Class 0 goes low → high, class 1 high → low: same frames overall, opposite order."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sequences = []
    for label in y:
        length = int(rng.integers(20, 31))
        switch = int(rng.integers(int(0.3 * length), int(0.7 * length)))
        levels = np.where(np.arange(length) < switch, -1.0, 1.0)
        if label == 1:
            levels = -levels
        sequences.append(levels[:, None] + 0.5 * rng.normal(size=(length, 2)))
    return sequences, y


def test_hmm_classifier_uses_temporal_order() -> None:
    pytest.importorskip("hmmlearn")
    train, y = ordered_sequences(60, seed=1)
    test, y_test = ordered_sequences(100, seed=2)
    clf = HMMClassifier(n_states=2, n_iter=15, random_state=0).fit(train, y)
    assert clf.score(test, y_test) > 0.9  # chance 0.5
    bag = LogisticRegression().fit([s.mean(0) for s in train], y)  # frame average ignores order
    assert bag.score([s.mean(0) for s in test], y_test) < 0.75


def test_hmm_posteriors_are_bayes_rule_over_class_likelihoods() -> None:
    pytest.importorskip("hmmlearn")
    train, y = ordered_sequences(40, seed=3)
    y_labels = np.array(["down", "up"])[y]
    clf = HMMClassifier(n_states=2, n_iter=10, random_state=0).fit(train, y_labels)
    test, _ = ordered_sequences(5, seed=4)
    log_lik = np.array([[model.score(s) for model in clf.models_] for s in test])
    prior = np.bincount(y) / len(y)
    joint = np.exp(log_lik - log_lik.max(1, keepdims=True)) * prior
    np.testing.assert_allclose(clf.predict_proba(test), joint / joint.sum(1, keepdims=True), rtol=1e-6)
    assert set(clf.predict(test)) <= {"down", "up"}
    with pytest.raises(DataError, match="sequence 1"):
        clf.predict([test[0], np.zeros((4, 3))])


def test_product_of_posteriors_matches_hand_computation() -> None:
    """p(y) = [1/4, 3/4], p(y|x1) = [1/2, 1/2], p(y|x2) = [1/5, 4/5]:
    Π p(y|x_m) / p(y) = [0.1/0.25, 0.4/0.75] = [2/5, 8/15] → normalised [3/7, 4/7]."""
    posts = np.log(np.array([[[0.5, 0.5]], [[0.2, 0.8]]]))
    prior = np.log(np.array([0.25, 0.75]))
    out = product_of_posteriors(posts, prior, np.ones((2, 1), dtype=bool))
    np.testing.assert_allclose(np.exp(out), [[3 / 7, 4 / 7]])
    only_second = product_of_posteriors(posts, prior, np.array([[False], [True]]))
    np.testing.assert_allclose(np.exp(only_second), [[0.2, 0.8]])  # a missing modality's factor is dropped
    with pytest.raises(DataError):
        product_of_posteriors(posts, prior, np.zeros((2, 1), dtype=bool))


def noisy_views(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two conditionally independent noisy views (3 columns each) of a 3-class label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    views = [np.eye(3)[y] + 0.9 * rng.normal(size=(n, 3)) for _ in range(2)]
    return np.hstack(views), y


def test_bayesian_product_beats_each_modality_and_handles_missing() -> None:
    X, y = noisy_views(900, seed=1)
    X_test, y_test = noisy_views(3000, seed=2)
    modalities = [("a", LogisticRegression(), [0, 1, 2]), ("b", LogisticRegression(), [3, 4, 5])]
    fused = BayesianProductFusion(modalities).fit(X, y)
    singles = [BayesianProductFusion([m]).fit(X, y).score(X_test, y_test) for m in modalities]
    assert fused.score(X_test, y_test) > max(singles) + 0.05  # SE of each accuracy ≈ 0.009
    missing_b = X_test.copy()
    missing_b[:10, 3:] = np.nan
    np.testing.assert_allclose(
        fused.predict_proba(missing_b)[:10], fused.estimators_["a"].predict_proba(X_test[:10, :3]), rtol=1e-6
    )
    partly = X_test[:3].copy()
    partly[0, 4] = np.nan
    with pytest.raises(DataError, match="'b'.*\\[0\\]"):
        fused.predict(partly)
