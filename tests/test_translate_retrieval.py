"""Class-level retrieval, its exact chance level (checked by simulation), and the nearest-image prior."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chorus.errors import DataError
from chorus.translate.conditions import nearest_image_prior
from chorus.translate.retrieval import chance_recall, class_retrieval


def test_chance_recall_matches_random_rankings():
    g = torch.Generator().manual_seed(0)
    gallery_y = torch.tensor([0] * 30 + [1] * 10 + [2] * 60)  # imbalanced on purpose
    query_y = torch.randint(3, (200,), generator=g)
    runs = [
        class_retrieval(
            F.normalize(torch.randn(200, 8, generator=g), dim=-1),
            query_y,
            F.normalize(torch.randn(100, 8, generator=g), dim=-1),
            gallery_y,
        )
        for _ in range(20)
    ]
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


def test_nearest_image_prior_moves_a_shifted_condition_onto_its_image_cluster():
    """Speech-like queries sit off the image clusters (a constant modality-gap shift plus noise): the prior
    returns a point on the right digit's image cluster, far closer to it than the query was."""
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(10, 32, generator=g), dim=-1)
    labels = torch.arange(10).repeat_interleave(40)
    images = torch.nn.functional.normalize(centres[labels] + 0.1 * torch.randn(400, 32, generator=g), dim=-1)
    gap = 0.6 * torch.nn.functional.normalize(torch.randn(32, generator=g), dim=0)
    queries = torch.nn.functional.normalize(centres + gap + 0.1 * torch.randn(10, 32, generator=g), dim=-1)
    mapped = nearest_image_prior(queries, images, k=10)
    assert torch.equal((mapped @ centres.T).argmax(1), torch.arange(10))
    assert ((mapped - centres).norm(dim=1) < 0.5 * (queries - centres).norm(dim=1)).all()
    torch.testing.assert_close(mapped.norm(dim=1), torch.ones(10))
    with pytest.raises(DataError):
        nearest_image_prior(queries, images, k=401)
