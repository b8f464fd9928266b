"""The estimators with a scikit-learn interface pass scikit-learn's own estimator checks.

``parametrize_with_checks`` runs every applicable API check (cloning, ``get_params``/``set_params``,
fitted-state errors, input validation, ``n_features_in_``, sample-order invariance, pickling, …) on
``LinearProbe``, ``MultipleKernelClassifier`` and ``BayesianProductFusion``. None is excluded here;
scikit-learn itself skips its array-API input checks unless ``SCIPY_ARRAY_API=1`` (these estimators are
NumPy-only by design).

``HMMClassifier`` reads a list of [T, F] sequences, not an [N, F] matrix, so the checks that fit on
scikit-learn's generated matrices do not apply to it; the constructor and parameter checks, which need
no data, do. ``CombinedKernelSVC`` is the internal SVM of ``MultipleKernelClassifier`` (its parameters
are fitted kernel blocks and weights), so it is covered through the classifier.
"""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    parametrize_with_checks,
)

from chorus.eval.probe import LinearProbe
from chorus.fusion import BayesianProductFusion, MultipleKernelClassifier

ESTIMATORS = [
    LinearProbe(Cs=(1.0,), max_iter=100),
    MultipleKernelClassifier(probability=False),
    BayesianProductFusion([("all", LogisticRegression(max_iter=200), slice(0, None))], calibration=None),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)


@pytest.mark.parametrize(
    "check",
    [
        check_parameters_default_constructible,
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
    ],
)
def test_hmm_classifier_parameter_checks(check) -> None:
    pytest.importorskip("hmmlearn")
    from chorus.fusion import HMMClassifier

    check("HMMClassifier", HMMClassifier(n_states=2, n_iter=3))
