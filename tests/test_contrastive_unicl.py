"""UniCL label-aware contrastive loss: reduces to InfoNCE, matches a numpy reference, fixes false negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from torch import nn

from chorus.contrastive import ContrastiveLoss, ContrastiveModel
from chorus.contrastive.unicl import LabelContrastiveModel, unicl_loss
from chorus.encoders.base import Encoded
from chorus.errors import ConfigError, DataError


def features(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1), F.normalize(torch.randn(n, d, generator=g), dim=1)


def numpy_unicl(a: np.ndarray, b: np.ndarray, labels: np.ndarray, scale: float) -> float:
    """The paper's form: −mean_i 1/|P(i)| Σ_{j∈P(i)} log softmax, both directions."""
    logits = scale * a @ b.T
    same = labels[:, None] == labels[None, :]
    rows = logits - logsumexp(logits, axis=1, keepdims=True)
    cols = logits - logsumexp(logits, axis=0, keepdims=True)
    row_loss = -(rows * same).sum(1) / same.sum(1)
    col_loss = -(cols * same).sum(0) / same.sum(0)
    return float((row_loss.mean() + col_loss.mean()) / 2)


def test_distinct_labels_give_plain_infonce() -> None:
    a, b = features(9, 6, seed=0)
    scale = torch.tensor(1 / 0.07)
    torch.testing.assert_close(unicl_loss(a, b, torch.arange(9), scale), ContrastiveLoss()(a, b, scale))


@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_repeated_labels_match_numpy(scale: float) -> None:
    a, b = features(10, 5, seed=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 3, 4, 1])
    got = unicl_loss(a, b, labels, torch.tensor(scale))
    assert got.item() == pytest.approx(
        numpy_unicl(a.double().numpy(), b.double().numpy(), labels.numpy(), scale), rel=1e-5
    )


def test_class_clustered_embeddings_are_stationary_only_for_unicl() -> None:
    # Images 0 and 1 share a class and score equally high against both of their captions
    # (b = I, so logits = scale · a). UniCL's target is exactly that softmax: zero gradient.
    # InfoNCE treats caption 1 as a negative of image 0 and pushes the two apart.
    labels = torch.tensor([0, 0, 1, 2])
    b = torch.eye(4)
    scale = torch.tensor(100.0)

    def grad(loss_fn) -> torch.Tensor:
        a = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], requires_grad=True)
        loss_fn(a).backward()
        return a.grad

    assert grad(lambda a: unicl_loss(a, b, labels, scale)).abs().max() < 1e-6
    assert grad(lambda a: ContrastiveLoss()(a, b, scale)).abs().max() > 10.0  # scale · ½ / 4 rows ≈ 12.5


class Linear(nn.Module):
    def __init__(self, d_in: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim, self.net = out_dim, nn.Linear(d_in, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Encoded:
        return Encoded(self.net(x))


def test_wrapper_trains_the_wrapped_model_and_keeps_lit_freezing() -> None:
    torch.manual_seed(0)
    model = ContrastiveModel({"image": Linear(6, 8), "text": Linear(5, 8)}, embed_dim=8, frozen=("text",))
    trained = LabelContrastiveModel(model).train()
    assert not model.encoders["text"].training and model.encoders["image"].training
    batch = {"image": torch.randn(12, 6), "text": torch.randn(12, 5), "label": torch.arange(12) % 4}
    out = trained(batch)
    with torch.no_grad():
        a, b = model.encode("image", batch["image"]), model.encode("text", batch["text"])
    torch.testing.assert_close(out["loss"], unicl_loss(a, b, batch["label"], model.current_logit_scale()))
    assert 0.0 <= out["acc_image_text"].item() <= 1.0
    out["loss"].backward()
    assert model.encoders["image"].net.weight.grad.abs().sum() > 0
    assert model.encoders["text"].net.weight.grad is None
    with pytest.raises(DataError, match="label"):
        trained({"image": batch["image"], "text": batch["text"]})
    with pytest.raises(ConfigError, match="pair"):
        LabelContrastiveModel(model, pair=("image", "audio"))


def test_class_prompt_mode_is_cross_entropy_against_one_random_prompt_per_class() -> None:
    torch.manual_seed(1)
    model = ContrastiveModel({"image": Linear(6, 8), "text": Linear(5, 8)}, embed_dim=8, frozen=("text",))
    prompts = torch.randn(3 * 2, 5)  # 3 classes × 2 prompts, class-major
    trained = LabelContrastiveModel(
        model, class_prompts=(prompts, torch.ones(6, 1, dtype=torch.bool)), prompts_per_class=2
    ).eval()
    batch = {"image": torch.randn(7, 6), "text": torch.randn(7, 5), "label": torch.tensor([0, 1, 2, 2, 1, 0, 0])}
    torch.manual_seed(5)
    out = trained(batch)
    torch.manual_seed(5)
    rows = torch.arange(3) * 2 + torch.randint(2, (3,))  # the draw the step made
    with torch.no_grad():
        logits = (
            model.current_logit_scale() * model.encode("image", batch["image"]) @ model.encode("text", prompts[rows]).T
        )
    torch.testing.assert_close(out["loss"], F.cross_entropy(logits, batch["label"]))
    assert out["acc_image_text"].item() == pytest.approx((logits.argmax(1) == batch["label"]).float().mean().item())
    # Another draw, another classifier: the loss changes between steps on one batch.
    losses = {round(trained(batch)["loss"].item(), 5) for _ in range(20)}
    assert len(losses) > 1
    out["loss"].backward()  # the text projection learns through the class embeddings
    assert model.projections["text"].weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="multiple"):
        LabelContrastiveModel(model, class_prompts=(prompts, torch.ones(6, 1)), prompts_per_class=4)


def numpy_soft_unicl(a: np.ndarray, b: np.ndarray, affinity: np.ndarray, scale: float, smoothing: float) -> float:
    """Cross-entropy against each direction's normalised affinity, label-smoothed, averaged over both directions."""
    logits = scale * a @ b.T
    n = len(a)

    def direction(logits: np.ndarray, affinity: np.ndarray) -> float:
        target = (1 - smoothing) * affinity / affinity.sum(1, keepdims=True) + smoothing / n
        return float(-(target * (logits - logsumexp(logits, axis=1, keepdims=True))).sum(1).mean())

    return (direction(logits, affinity) + direction(logits.T, affinity.T)) / 2


@pytest.mark.parametrize("smoothing,lam", [(0.1, 1.0), (0.0, 0.7), (0.2, 0.35)])
def test_smoothed_and_mixed_targets_match_numpy(smoothing: float, lam: float) -> None:
    a, b = features(8, 5, seed=2)
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 3, 2])
    partner = labels[torch.tensor([3, 0, 5, 1, 7, 2, 4, 6])]
    same = labels.numpy()[:, None] == labels.numpy()[None, :]
    affinity = lam * same + (1 - lam) * (partner.numpy()[:, None] == labels.numpy()[None, :])
    got = unicl_loss(a, b, labels, torch.tensor(10.0), smoothing, partner if lam < 1 else None, lam)
    want = numpy_soft_unicl(a.double().numpy(), b.double().numpy(), affinity, 10.0, smoothing)
    assert got.item() == pytest.approx(want, rel=1e-5)
    # Mixed with a same-label partner the targets are the unmixed ones (the test can fail: the partner matters).
    torch.testing.assert_close(
        unicl_loss(a, b, labels, torch.tensor(10.0), mixed_with=labels, lam=0.3),
        unicl_loss(a, b, labels, torch.tensor(10.0)),
    )
    assert not torch.allclose(
        unicl_loss(a, b, labels, torch.tensor(10.0), mixed_with=partner, lam=0.3),
        unicl_loss(a, b, labels, torch.tensor(10.0)),
    )


def test_wrapper_mixes_inputs_and_targets_only_in_training() -> None:
    torch.manual_seed(0)
    model = ContrastiveModel({"image": Linear(6, 8), "text": Linear(5, 8)}, embed_dim=8, frozen=("text",))
    trained = LabelContrastiveModel(model, mixup=0.4, smoothing=0.1)
    batch = {"image": torch.randn(10, 6), "text": torch.randn(10, 5), "label": torch.arange(10) % 3}
    scale = model.current_logit_scale()
    with torch.no_grad():
        b = model.encode("text", batch["text"])
        plain = unicl_loss(model.encode("image", batch["image"]), b, batch["label"], scale, 0.1)
        torch.testing.assert_close(trained.eval()(batch)["loss"], plain)  # evaluation: no mixing
        trained.train()
        torch.manual_seed(3)
        got = trained(batch)["loss"]
        torch.manual_seed(3)  # the draws the step made: λ, then the permutation
        lam = float(torch.distributions.Beta(0.4, 0.4).sample())
        perm = torch.randperm(10)
        mixed = model.encode("image", lam * batch["image"] + (1 - lam) * batch["image"][perm])
        torch.testing.assert_close(got, unicl_loss(mixed, b, batch["label"], scale, 0.1, batch["label"][perm], lam))
        assert not torch.allclose(got, plain)
    with pytest.raises(ConfigError, match="smoothing"):
        LabelContrastiveModel(model, smoothing=1.0)
