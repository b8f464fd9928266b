"""Class-level retrieval and its exact chance level, checked by simulation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from chorus.translate.retrieval import chance_recall, class_retrieval


def test_chance_recall_matches_random_rankings():
    g = torch.Generator().manual_seed(0)
    gallery_y = torch.tensor([0] * 30 + [1] * 10 + [2] * 60)  # imbalanced on purpose
    query_y = torch.randint(3, (200,), generator=g)
    runs = [class_retrieval(F.normalize(torch.randn(200, 8, generator=g), dim=-1), query_y,
                            F.normalize(torch.randn(100, 8, generator=g), dim=-1), gallery_y) for _ in range(20)]
    exact = chance_recall(query_y, gallery_y)
    for k in ("R@1", "R@5", "R@10"):
        simulated = sum(r[k] for r in runs) / len(runs)
        assert abs(simulated - exact[k]) < 0.03, (k, simulated, exact[k])
    # R@1 chance is the average positive share: an independent closed form
    share = (torch.bincount(gallery_y)[query_y].double() / len(gallery_y)).mean()
    assert abs(exact["R@1"] - float(share)) < 1e-9


def test_class_retrieval_perfect_and_collapsed():
    labels = torch.arange(5).repeat(4)
    perfect = F.one_hot(labels, 5).float()
    assert class_retrieval(perfect, labels, perfect, labels)["R@1"] == 1.0
    collapsed = torch.ones(20, 5)
    assert class_retrieval(collapsed, labels, collapsed, labels)["R@1"] == 0.0  # ties count against the query
