"""Linear probe: logistic regression on frozen features, its regularisation tuned on a validation split.

What: the standard measure of representation quality (Radford et al. 2021,
§3.2; Kornblith et al. 2019): freeze the encoder, extract features, fit an
L2-regularised multinomial logistic regression. ``LinearProbe`` is a
scikit-learn classifier that picks the inverse regularisation ``C`` from a
log grid by accuracy on a stratified hold-out split of the training data,
then refits on all of it with the chosen ``C``.

Why: the best ``C`` varies by orders of magnitude with the feature dimension
and the number of examples, and an untuned probe under-reports good features.
Features are standardised first so one grid fits features of any scale and
L-BFGS converges quickly.

Baseline to beat: the probe on raw inputs (e.g. pixels) and on a randomly
initialised encoder; a good encoder's features should beat both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.errors import ConfigError, DataError
from chorus.eval.mode import evaluating

__all__ = ["LinearProbe", "extract_features"]


class LinearProbe(ClassifierMixin, BaseEstimator):
    """Standardise + logistic regression with ``C`` chosen from ``Cs`` on a stratified validation split.

    After ``fit``: ``C_`` (the chosen value), ``val_scores_`` (validation
    accuracy per C, in grid order), ``classes_`` and ``pipeline_`` (the
    refitted standardiser + regression). Among equally good values the
    smallest C (strongest regularisation) wins.
    """

    def __init__(
        self,
        Cs: Sequence[float] = tuple(np.logspace(-4, 2, 7)),
        val_fraction: float = 0.2,
        max_iter: int = 1000,
        random_state: int | None = 0,
    ) -> None:
        self.Cs = Cs
        self.val_fraction = val_fraction
        self.max_iter = max_iter
        self.random_state = random_state

    def _pipeline(self, C: float) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=self.max_iter))

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearProbe:
        X, y = check_X_y(X, y)
        check_classification_targets(y)
        if len(self.Cs) == 0:
            raise ConfigError("LinearProbe.Cs is empty: give at least one regularisation value")
        X_fit, X_val, y_fit, y_val = train_test_split(
            X, y, test_size=self.val_fraction, stratify=y, random_state=self.random_state
        )
        self.val_scores_ = np.array([self._pipeline(C).fit(X_fit, y_fit).score(X_val, y_val) for C in self.Cs])
        order = np.argsort(self.Cs, kind="stable")
        self.C_ = float(self.Cs[order[np.argmax(self.val_scores_[order])]])
        self.pipeline_ = self._pipeline(self.C_).fit(X, y)
        self.n_iter_ = self.pipeline_[-1].n_iter_  # the refitted regression's solver iterations
        self.classes_ = self.pipeline_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.pipeline_.predict(check_array(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        return self.pipeline_.predict_proba(check_array(X))


FeatureFn = Callable[[Tensor, Tensor | None], Tensor | Encoded]


def extract_features(
    model_or_fn: nn.Module | FeatureFn,
    loader: Iterable[Mapping[str, Any]],
    modality: str,
    label_key: str = "label",
) -> tuple[np.ndarray, np.ndarray]:
    """``(features [N, D] float32, labels [N] int64)`` as numpy arrays, over the whole loader.

    ``model_or_fn`` is a model with ``encode(modality, x, mask)`` (e.g.
    ContrastiveModel) or any callable ``fn(x, mask) -> Tensor | Encoded``
    (every Chorus encoder is one; its ``pooled`` output is used). Modules run
    in eval mode without gradients on their own device.
    """
    module = model_or_fn if isinstance(model_or_fn, nn.Module) else None
    parameter = next(module.parameters(), None) if module is not None else None
    device = parameter.device if parameter is not None else None
    encode = getattr(model_or_fn, "encode", None)
    features, labels = [], []
    with evaluating(module) if module is not None else torch.no_grad():
        for i, batch in enumerate(loader):
            if modality not in batch or label_key not in batch:
                raise DataError(f"batch {i} lacks {modality!r} or {label_key!r}; keys: {sorted(batch)}")
            x, mask = batch[modality], batch.get(f"{modality}_mask")
            if device is not None:
                x, mask = x.to(device), None if mask is None else mask.to(device)
            out = encode(modality, x, mask) if encode is not None else model_or_fn(x, mask)
            if isinstance(out, Encoded):
                out = out.pooled
            features.append(out.float().cpu().numpy())
            labels.append(torch.as_tensor(batch[label_key]).cpu().numpy().astype(np.int64))
    if not features:
        raise DataError("the loader yielded no batches")
    return np.concatenate(features), np.concatenate(labels)
