"""Graphical-model fusion of a frame sequence and a feature vector: class HMMs + a logistic model, product rule.

What: the sequence modality (e.g. log-mel audio frames) is modelled by one Gaussian HMM per class
(:class:`~chorus.fusion.HMMClassifier`); its per-frame class log-likelihoods become that modality's
features. The vector modality (e.g. image features) gets a logistic model. The two experts are fused by
the calibrated product rule (:class:`~chorus.fusion.BayesianProductFusion`, sigmoid calibration):
log p(c | x_a, x_b) = log p(c | x_a) + log p(c | x_b) − log p(c) + const, assuming the modalities are
conditionally independent given the class (Kittler et al., TPAMI 1998).

Why: the HMMs model the temporal order of the frames (Rabiner 1989), which a pooled vector loses; the
product rule lets a confident expert outvote an uncertain one, and a missing modality is simply left out
of the product.

Baseline to beat: the better of the two experts alone (the unimodal models on the same data).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from chorus.fusion.bayes_product import BayesianProductFusion
from chorus.fusion.hmm_classifier import HMMClassifier

__all__ = ["HMMProductFusion"]


class HMMProductFusion:
    """Class HMMs on a sequence modality + a logistic model on a vector modality, fused by the product rule.

    ``fit(sequences, features, y)``: ``sequences`` are [T_i, F] frame arrays (standardised per feature with
    statistics of the training frames), ``features`` [N, D]. The HMMs' class log-likelihoods are divided by
    the sequence length (so long sequences are not over-confident) and centred per sample before the
    product fusion calibrates each expert (sigmoid, 3-fold).
    """

    def __init__(self, n_states: int = 4, n_iter: int = 15, random_state: int = 0) -> None:
        self.hmm = HMMClassifier(n_states=n_states, covariance_type="diag", n_iter=n_iter, random_state=random_state)

    def fit(self, sequences: Sequence[np.ndarray], features: np.ndarray, y: np.ndarray) -> HMMProductFusion:
        frames = np.concatenate(list(sequences))
        self.mean_, self.std_ = frames.mean(0), frames.std(0) + 1e-6
        self.hmm.fit(self._standardise(sequences), y)
        x = self.matrix(sequences, features)
        d = features.shape[1]
        self.product_ = BayesianProductFusion(
            [
                ("vector", LogisticRegression(max_iter=2000), slice(0, d)),
                ("sequence", LogisticRegression(max_iter=2000), slice(d, x.shape[1])),
            ]
        ).fit(x, y)
        return self

    def _standardise(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [(s - self.mean_) / self.std_ for s in sequences]

    def matrix(self, sequences: Sequence[np.ndarray], features: np.ndarray, missing: str | None = None) -> np.ndarray:
        """[N, D + classes]: the vector features and the length-normalised, centred HMM class log-likelihoods;
        ``missing`` (``"vector"`` or ``"sequence"``) marks that block absent (NaN) for every sample."""
        seqs = self._standardise(sequences)
        audio = self.hmm.class_log_likelihood(seqs) / np.array([len(s) for s in seqs])[:, None]
        audio = audio - audio.mean(1, keepdims=True)
        x = np.concatenate([features, audio], 1)
        if missing == "vector":
            x[:, : features.shape[1]] = np.nan
        elif missing == "sequence":
            x[:, features.shape[1] :] = np.nan
        return x

    def predict(self, sequences: Sequence[np.ndarray], features: np.ndarray, missing: str | None = None) -> np.ndarray:
        return self.product_.predict(self.matrix(sequences, features, missing))

    def num_parameters(self) -> int:
        """HMM parameters (start, transition, means, covariances) plus the calibrated experts' weights."""
        hmm = sum(m.startprob_.size + m.transmat_.size + m.means_.size + m.covars_.size for m in self.hmm.models_)
        experts = sum(
            sum(c.estimator.coef_.size + c.estimator.intercept_.size for c in est.calibrated_classifiers_)
            for est in self.product_.estimators_.values()
        )
        return int(hmm + experts)
