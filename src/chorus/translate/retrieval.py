"""Class-level cross-modal retrieval through the shared space, with its exact chance level.

What: a query from one modality (a spoken "7", the caption "a drawing of the
number seven.") ranks a gallery from another (MNIST test images) by cosine
similarity; a hit at k is any gallery item of the query's digit in the top k.
Recall@K is computed by :func:`chorus.contrastive.retrieval_metrics` with
every same-digit item as a positive.

Why chance must be computed, not assumed: with ~10 % of the gallery relevant
to each query, random ranking already scores R@10 ≈ 65 %. The exact chance is
hypergeometric, ``1 − C(N−P, k) / C(N, k)`` for a gallery of N with P
positives, averaged over queries; a model is only credited for the gap above
it. The second baseline is the same towers at random initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln
from torch import Tensor

from chorus.contrastive import retrieval_metrics

__all__ = ["class_retrieval", "chance_recall"]


def class_retrieval(
    queries: Tensor, query_labels: Tensor, gallery: Tensor, gallery_labels: Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """``{"R@k": ...}``: fraction of queries with a same-label gallery item in their top k."""
    positives = [(gallery_labels == y).nonzero().flatten().tolist() for y in query_labels.tolist()]
    return retrieval_metrics(queries, gallery, positives, ks)


def chance_recall(query_labels: Tensor, gallery_labels: Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Expected R@k of a uniformly random ranking (hypergeometric, averaged over queries)."""
    n = len(gallery_labels)
    counts = np.bincount(gallery_labels.numpy(), minlength=int(query_labels.max()) + 1)
    negatives = n - counts[query_labels.numpy()].astype(float)
    out = {}
    for k in ks:  # P(no positive in the top k) = C(N-P, k) / C(N, k)
        log_miss = gammaln(negatives + 1) - gammaln(negatives - k + 1) - gammaln(n + 1) + gammaln(n - k + 1)
        miss = np.where(negatives >= k, np.exp(np.minimum(log_miss, 0.0)), 0.0)
        out[f"R@{k}"] = float((1.0 - miss).mean())
    return out
