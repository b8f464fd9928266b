"""Bayesian product fusion of per-modality posteriors (naive-Bayes combination of experts).

Model: the modalities x_1 … x_M are conditionally independent given the class y,
p(x_1, …, x_M | y) = Π_m p(x_m | y). Bayes' rule on each factor,
p(x_m | y) = p(y | x_m) p(x_m) / p(y), gives

    p(y | x_1, …, x_M) ∝ Π_m p(y | x_m) / p(y)^(M − 1),

so calibrated unimodal posteriors can be multiplied, dividing out the prior
counted M − 1 times too often. A missing modality simply drops its factor (and
one prior division): the formula is then the same rule over the present ones,
exact under the model. Assumptions: conditional independence (violated when
modalities share nuisance factors, which makes the product over-confident) and
*calibrated* posteriors — hence each expert is wrapped in
``CalibratedClassifierCV`` by default.

Reference: Kittler, Hatef, Duin & Matas, "On Combining Classifiers", TPAMI 1998
(product rule); Baltrušaitis et al., TPAMI 2019 (model-agnostic late fusion).
Baseline to beat: the best single-modality classifier and averaging posteriors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from chorus.errors import ConfigError, DataError


def product_of_posteriors(log_posteriors: np.ndarray, log_prior: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Normalised log p(y | present x_m) [N, K] from per-modality log p(y | x_m).

    ``log_posteriors`` [M, N, K], ``log_prior`` [K], ``present`` [M, N] bool
    (every sample needs ≥ 1 present modality). Absent modalities' rows are ignored.
    """
    present = np.asarray(present, dtype=bool)
    if not present.any(0).all():
        raise DataError("some samples have no modality present; the posterior is undefined")
    evidence = np.where(present[..., None], log_posteriors, 0.0).sum(0)
    joint = evidence - (present.sum(0)[:, None] - 1) * log_prior
    return joint - logsumexp(joint, axis=1, keepdims=True)


class BayesianProductFusion(ClassifierMixin, BaseEstimator):
    """Product-rule fusion of per-modality classifiers over column blocks of X.

    Parameters
    ----------
    modalities : ``[(name, estimator, columns), ...]``; ``columns`` is a list of
        column indices or a slice. A row whose block is all-NaN has that modality
        missing (its factor is dropped); a partly NaN block is an error.
    calibration : "sigmoid" or "isotonic" to wrap each estimator in
        ``CalibratedClassifierCV``; ``None`` to trust its ``predict_proba`` as is.
    cv : folds for the calibration.
    """

    def __init__(
        self,
        modalities: Sequence[tuple[str, BaseEstimator, Sequence[int] | slice]],
        calibration: str | None = "sigmoid",
        cv: int = 3,
    ) -> None:
        self.modalities = modalities
        self.calibration = calibration
        self.cv = cv

    def fit(self, X, y) -> BayesianProductFusion:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X = self._matrix(X)
        y = column_or_1d(y, warn=True)  # a column vector [N, 1] is accepted with a warning, as in scikit-learn
        if y.shape != (X.shape[0],):
            raise DataError(f"y has shape {y.shape}; expected ({X.shape[0]},)")
        check_classification_targets(y)
        if not self.modalities:
            raise ConfigError("BayesianProductFusion needs at least one (name, estimator, columns) modality")
        self.n_features_in_ = X.shape[1]
        self.classes_, y_index = np.unique(y, return_inverse=True)
        self.class_log_prior_ = np.log(np.bincount(y_index) / len(y_index))
        self.estimators_ = {}
        for name, estimator, columns in self.modalities:
            block, available = self._block(X, name, columns)
            seen = np.unique(y_index[available])
            if len(seen) != len(self.classes_):
                raise DataError(f"modality {name!r} has no training rows of some classes; cannot estimate p(y | x)")
            model = clone(estimator)
            if self.calibration is not None:
                model = CalibratedClassifierCV(model, method=self.calibration, cv=self.cv)
            self.estimators_[name] = model.fit(block[available], y_index[available])
        return self

    def predict_log_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = self._matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        n, k = X.shape[0], len(self.classes_)
        log_posteriors = np.zeros((len(self.modalities), n, k))
        present = np.zeros((len(self.modalities), n), dtype=bool)
        for i, (name, _, columns) in enumerate(self.modalities):
            block, available = self._block(X, name, columns)
            present[i] = available
            if available.any():
                proba = self.estimators_[name].predict_proba(block[available])
                log_posteriors[i, available] = np.log(np.clip(proba, 1e-12, None))
        return product_of_posteriors(log_posteriors, self.class_log_prior_, present)

    def predict_proba(self, X) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        log_proba = self.predict_log_proba(X)  # checks fitted first
        return self.classes_[np.argmax(log_proba, axis=1)]

    @staticmethod
    def _matrix(X) -> np.ndarray:
        """X as a dense float matrix; NaN marks a missing modality, so it is allowed (sparse input is not)."""
        X = np.asarray(X, dtype=float) if not hasattr(X, "toarray") else X
        if getattr(X, "ndim", 2) != 2 or X.shape[0] == 0:
            raise DataError(
                f"X has shape {X.shape}; expected [n_samples > 0, n_features] (NaN = missing). "
                "Reshape your data: a single sample is X.reshape(1, -1)"
            )
        return check_array(X, dtype=float, ensure_all_finite="allow-nan")

    @staticmethod
    def _block(X: np.ndarray, name: str, columns) -> tuple[np.ndarray, np.ndarray]:
        """The modality's columns and which rows have it (all finite); partly NaN rows are errors."""
        try:
            block = X[:, columns]
        except IndexError as exc:
            raise ConfigError(f"modality {name!r}: columns {columns!r} do not index X of shape {X.shape}") from exc
        finite = np.isfinite(block)
        partial = finite.any(1) & ~finite.all(1)
        if partial.any():
            raise DataError(f"modality {name!r}: rows {np.flatnonzero(partial)[:5].tolist()} are partly NaN")
        return block, finite.all(1)
