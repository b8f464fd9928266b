"""Generative sequence classifier: one Gaussian HMM per class on audio frame sequences.

Rabiner, "A Tutorial on Hidden Markov Models and Selected Applications in
Speech Recognition", Proc. IEEE 1989. Each class c gets a Gaussian-emission HMM
trained by Baum–Welch on that class's sequences; a sequence x is classified by
Bayes' rule, log p(c | x) = log p(x | HMM_c) + log p(c) − log Σ_c' (…), with
p(x | HMM_c) from the forward algorithm. Fitting uses ``hmmlearn`` (optional
dependency: ``pip install 'chorus[fusion]'``).

Why it works: the hidden states model the temporal structure (e.g. the phone
sequence of a spoken digit), so sequences whose individual frames look alike
but come in a different order are still told apart — which a bag-of-frames
classifier cannot do. Works on variable-length sequences without padding.

Input: a sequence of 2-D arrays [T_i, n_features] (frames × features; for a
Chorus audio batch, ``audio[i][:, audio_mask[i]].T``) or a 3-D array [N, T, F].
Baseline to beat: a classifier on time-averaged frames (chance: 1 / n_classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from chorus.errors import DataError


def _as_sequences(X, n_features: int | None) -> list[np.ndarray]:
    sequences = [np.asarray(x, dtype=float) for x in X]
    if not sequences:
        raise DataError("HMMClassifier got no sequences")
    for i, x in enumerate(sequences):
        if x.ndim != 2 or x.shape[0] == 0:
            raise DataError(f"sequence {i} has shape {x.shape}; expected [T > 0, n_features]")
        if n_features is not None and x.shape[1] != n_features:
            raise DataError(f"sequence {i} has {x.shape[1]} features; the classifier was fit with {n_features}")
        if not np.isfinite(x).all():
            raise DataError(f"sequence {i} contains NaN or inf")
    return sequences


class HMMClassifier(ClassifierMixin, BaseEstimator):
    """Per-class ``hmmlearn.hmm.GaussianHMM`` with Bayes-rule posteriors (scikit-learn API)."""

    def __init__(
        self,
        n_states: int = 3,
        covariance_type: str = "diag",
        n_iter: int = 20,
        tol: float = 1e-2,
        random_state: int | None = None,
    ) -> None:
        self.n_states = n_states
        self.covariance_type = covariance_type
        self.n_iter = n_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X: Sequence[np.ndarray], y) -> HMMClassifier:
        try:
            from hmmlearn.hmm import GaussianHMM
        except ImportError as exc:
            raise ModuleNotFoundError("HMMClassifier needs hmmlearn: pip install 'chorus[fusion]'") from exc
        sequences = _as_sequences(X, None)
        self.n_features_in_ = sequences[0].shape[1]
        sequences = _as_sequences(sequences, self.n_features_in_)
        y = np.asarray(y)
        if y.shape != (len(sequences),):
            raise DataError(f"y has shape {y.shape}; expected ({len(sequences)},), one label per sequence")
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        self.class_log_prior_ = np.log(np.bincount(y_index) / len(y_index))
        self.models_ = []
        for c in range(len(self.classes_)):
            members = [s for s, k in zip(sequences, y_index) if k == c]
            model = GaussianHMM(
                n_components=self.n_states,
                covariance_type=self.covariance_type,
                n_iter=self.n_iter,
                tol=self.tol,
                random_state=self.random_state,
            )
            model.fit(np.concatenate(members), lengths=[len(s) for s in members])
            self.models_.append(model)
        return self

    def class_log_likelihood(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """log p(x_i | class c) [N, n_classes] from each class HMM's forward algorithm."""
        check_is_fitted(self)
        sequences = _as_sequences(X, self.n_features_in_)
        return np.array([[model.score(s) for model in self.models_] for s in sequences])

    def predict_log_proba(self, X: Sequence[np.ndarray]) -> np.ndarray:
        joint = self.class_log_likelihood(X) + self.class_log_prior_
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def predict_proba(self, X: Sequence[np.ndarray]) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Sequence[np.ndarray]) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_log_proba(X), axis=1)]
