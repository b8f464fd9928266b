"""Unit tests of chorus.colearn on synthetic data: each check compares with an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from chorus.classifier import Classifier
from chorus.colearn import (
    Distiller,
    Relabelled,
    bind_to_pivot,
    confident_per_class,
    distillation_loss,
    few_labels,
    normalise_image,
)
from chorus.contrastive import ContrastiveModel
from chorus.encoders.base import Encoded
from chorus.errors import ConfigError, DataError


class Linear(nn.Module):
    """A minimal encoder: flatten → linear (pooled only)."""

    def __init__(self, in_dim: int, out_dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Encoded:
        return Encoded(self.proj(x.flatten(1).float()), None, None)


def test_distillation_loss_matches_hand_written_kl() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    temperature = 3.0
    p = torch.softmax(t / temperature, -1)
    expected = (p * (p.log() - torch.log_softmax(s / temperature, -1))).sum(-1).mean() * temperature**2
    assert torch.allclose(distillation_loss(s, t, temperature), expected, atol=1e-6)
    assert distillation_loss(t, t, temperature).abs() < 1e-6  # KL(p ‖ p) = 0
    assert distillation_loss(s, t, temperature) > 0


def test_distiller_trains_student_only_and_ignores_labels_when_unweighted() -> None:
    torch.manual_seed(0)
    teacher = Classifier(Linear(6), 3, "image")
    student = Classifier(Linear(6), 3, "audio")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = Distiller(student, teacher, temperature=2.0)
    image = torch.randn(32, 6)
    rotation = torch.linalg.qr(torch.randn(6, 6))[0]  # the paired view: same content, other coordinates
    batch = {"image": image, "audio": image @ rotation}
    out = model(batch)  # no "label" key: must not be needed
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert not teacher.training and model.train().teacher.training is False
    optim = torch.optim.Adam(student.parameters(), lr=0.05)
    for _ in range(150):
        optim.zero_grad()
        model(batch)["loss"].backward()
        optim.step()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert model(batch)["agree"] > 0.9  # the student learned to imitate the teacher on the batch


def test_distiller_mixes_cross_entropy_with_label_weight() -> None:
    torch.manual_seed(0)
    teacher, student = Classifier(Linear(4), 3, "audio"), Classifier(Linear(4), 3, "audio")
    batch = {"audio": torch.randn(8, 4), "label": torch.randint(0, 3, (8,))}
    out = Distiller(student, teacher, temperature=2.0, label_weight=0.25)(batch)
    assert torch.allclose(out["loss"], 0.75 * out["kd"] + 0.25 * out["ce"], atol=1e-6)
    with pytest.raises(DataError, match="label"):
        Distiller(student, teacher, label_weight=0.25)({"audio": batch["audio"]})
    with pytest.raises(ConfigError):
        Distiller(student, teacher, label_weight=1.0)


def test_confident_per_class_matches_brute_force() -> None:
    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(60, 4) * 2, -1)
    positions, labels = confident_per_class(probs, k=3)
    expected = []
    for c in range(4):
        rows = [i for i in range(60) if probs[i].argmax() == c]
        expected += [(i, c) for i in sorted(rows, key=lambda i: -probs[i, c])[:3]]
    assert sorted(zip(positions.tolist(), labels.tolist())) == sorted(expected)


def test_few_labels_is_stratified_disjoint_and_seeded() -> None:
    labels = np.repeat(np.arange(5), 20)
    labelled, unlabelled = few_labels(labels, per_class=3, seed=0)
    assert np.bincount(labels[labelled]).tolist() == [3] * 5
    assert sorted(labelled + unlabelled) == list(range(100))
    assert few_labels(labels, 3, seed=0)[0] == labelled and few_labels(labels, 3, seed=1)[0] != labelled
    with pytest.raises(ConfigError, match="class"):
        few_labels(labels, per_class=21, seed=0)


def test_relabelled_overrides_labels_only() -> None:
    base = [{"x": i, "label": i % 2} for i in range(6)]
    data = Relabelled(base, [4, 1], [7, 8])
    assert len(data) == 2 and data[0] == {"x": 4, "label": 7} and data[1] == {"x": 1, "label": 8}
    assert normalise_image({"image": torch.tensor([0.0, 1.0])})["image"].tolist() == [-1.0, 1.0]


def test_bind_to_pivot_freezes_the_pivot_and_aligns_the_new_modality() -> None:
    """Audio is bound through images only, yet lands next to the text of its class."""
    torch.manual_seed(0)
    n_classes, dim = 4, 6
    centres = torch.randn(n_classes, dim) * 3
    pivot = ContrastiveModel({"image": Linear(dim), "text": Linear(n_classes)}, embed_dim=8)
    y = torch.arange(n_classes).repeat(16)
    image, text = centres[y] + 0.3 * torch.randn(len(y), dim), nn.functional.one_hot(y, n_classes).float()
    optim = torch.optim.Adam(pivot.parameters(), lr=0.02)
    for _ in range(150):  # image–text pretraining of the pivot
        optim.zero_grad()
        pivot({"image": image, "text": text})["loss"].backward()
        optim.step()
    snapshot = {k: v.clone() for k, v in pivot.state_dict().items()}

    audio_centres = torch.randn(n_classes, 5) * 3  # an unrelated feature space
    bound = bind_to_pivot(pivot, Linear(5), "audio")
    assert bound.pairs == [("image", "audio")]
    trainable = {n for n, p in bound.named_parameters() if p.requires_grad}
    assert trainable == {
        "encoders.audio.proj.weight",
        "encoders.audio.proj.bias",
        "projections.audio.weight",
        "logit_scale",
    }
    optim = torch.optim.Adam([p for p in bound.parameters() if p.requires_grad], lr=0.02)
    for _ in range(200):  # audio–image pairs only
        yb = torch.randint(0, n_classes, (64,))
        batch = {
            "image": centres[yb] + 0.3 * torch.randn(64, dim),
            "audio": audio_centres[yb] + 0.3 * torch.randn(64, 5),
        }
        optim.zero_grad()
        bound(batch)["loss"].backward()
        optim.step()
    assert all(torch.equal(v, pivot.state_dict()[k]) for k, v in snapshot.items())  # original untouched
    for name in ("image", "text"):
        for key, value in pivot.encoders[name].state_dict().items():
            assert torch.equal(value, bound.encoders[name].state_dict()[key])
    with torch.no_grad():  # zero-shot audio → text, never trained on that pair
        z_text = bound.encode("text", torch.eye(n_classes))
        yt = torch.arange(n_classes).repeat(10)
        z_audio = bound.encode("audio", audio_centres[yt] + 0.3 * torch.randn(len(yt), 5))
        acc = ((z_audio @ z_text.T).argmax(-1) == yt).float().mean()
    assert acc > 0.9, f"emergent audio→text accuracy {acc:.2f} (chance {1 / n_classes:.2f})"
    with pytest.raises(ConfigError, match="already"):
        bind_to_pivot(pivot, Linear(3), "text")
