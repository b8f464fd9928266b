"""Evaluation utilities: classification metrics, an eval-mode context and a linear probe.

``chorus.eval.metrics`` (top-k accuracy, confusion matrix) and
``chorus.eval.mode.evaluating`` are light; the scikit-learn linear probe lives
in ``chorus.eval.probe`` and is imported from there so that importing the
metrics does not pull in scikit-learn.
"""

from chorus.eval.metrics import confusion_matrix, topk_accuracy
from chorus.eval.mode import evaluating

__all__ = ["confusion_matrix", "evaluating", "topk_accuracy"]
