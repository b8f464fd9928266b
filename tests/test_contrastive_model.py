"""ContrastiveModel: projections, temperature, pair averaging, LiT freezing, errors, a training smoke test."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy.special import log_expit, logsumexp
from torch import nn

from chorus.contrastive import ContrastiveLoss, ContrastiveModel, SigmoidLoss
from chorus.encoders.base import Encoded
from chorus.errors import ConfigError, DataError


class MLPEncoder(nn.Module):
    """A small encoder with dropout (so train/eval mode matters); records the last mask it saw."""

    def __init__(self, d_in: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(nn.Linear(d_in, 16), nn.Dropout(0.1), nn.GELU(), nn.Linear(16, out_dim))
        self.last_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Encoded:
        self.last_mask = mask
        return Encoded(self.net(x))


def model3(**kw) -> ContrastiveModel:
    torch.manual_seed(0)
    encoders = {"image": MLPEncoder(6, 8), "text": MLPEncoder(5, 8), "audio": MLPEncoder(3, 10)}
    return ContrastiveModel(encoders, embed_dim=8, **kw)


def batch3(n: int = 10) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(n, 6, generator=g),
        "text": torch.randn(n, 5, generator=g),
        "audio": torch.randn(n, 3, generator=g),
    }


def infonce(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    logits = scale * a @ b.T
    d = np.diag(logits)
    return float(((logsumexp(logits, 1) - d).mean() + (logsumexp(logits, 0) - d).mean()) / 2)


def embeddings(model: ContrastiveModel, batch: dict) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {m: model.encode(m, x).double().numpy() for m, x in batch.items()}


def test_every_modality_gets_a_projection_even_at_embed_dim() -> None:
    model = model3()
    assert set(model.projections) == {"image", "text", "audio"}
    assert model.projections["image"].in_features == 8 == model.embed_dim
    assert model.projections["audio"].in_features == 10


def test_encode_is_normalised_and_has_embed_dim() -> None:
    model = model3().eval()
    x = batch3()["audio"]
    z = model.encode("audio", x)
    assert z.shape == (10, 8)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(10))
    raw = model.encode("audio", x, normalize=False)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(10))
    torch.testing.assert_close(raw / raw.norm(dim=1, keepdim=True), z)


def test_temperature_init_and_clamp() -> None:
    model = model3()
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    out = model(batch3())
    assert out["logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    assert model(batch3())["logit_scale"].item() == pytest.approx(100.0, rel=1e-6)


def test_loss_is_the_mean_over_all_pairs_by_default() -> None:
    model = model3().eval()
    batch = batch3()
    z = embeddings(model, batch)
    scale = 1 / 0.07
    pairs = [("image", "text"), ("image", "audio"), ("text", "audio")]
    expected = np.mean([infonce(z[a], z[b], scale) for a, b in pairs])
    out = model(batch)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    for a, b in pairs:
        assert out[f"loss_{a}_{b}"].item() == pytest.approx(infonce(z[a], z[b], scale), rel=1e-5)


def test_anchor_pairs_and_partial_batches() -> None:
    model = model3(pairs=[("image", "text"), ("image", "audio")]).eval()
    batch = batch3()
    z = embeddings(model, batch)
    scale = 1 / 0.07
    expected = (infonce(z["image"], z["text"], scale) + infonce(z["image"], z["audio"], scale)) / 2
    assert model(batch)["loss"].item() == pytest.approx(expected, rel=1e-5)
    # a batch serving only one pair (e.g. an image–text dataset) trains that pair alone
    partial = {k: batch[k] for k in ("image", "text")}
    out = model(partial)
    assert out["loss"].item() == pytest.approx(infonce(z["image"], z["text"], scale), rel=1e-5)
    assert "acc_image_audio" not in out
    with pytest.raises(DataError, match="cover none"):
        model({"text": batch["text"], "audio": batch["audio"]})


def test_masks_reach_the_encoder() -> None:
    model = model3()
    batch = batch3() | {"text_mask": torch.ones(10, 4, dtype=torch.bool)}
    model(batch)
    assert model.encoders["text"].last_mask is batch["text_mask"]
    assert model.encoders["image"].last_mask is None


def test_accuracy_is_in_batch_top1_matching() -> None:
    torch.manual_seed(0)
    tower = MLPEncoder(4, 6)
    model = ContrastiveModel({"a": tower, "b": copy.deepcopy(tower)}, embed_dim=5).eval()
    model.projections["b"].load_state_dict(model.projections["a"].state_dict())
    x = torch.randn(12, 4)
    out = model({"a": x, "b": x})  # identical towers and inputs: every row matches itself
    assert out["acc_a_b"].item() == 1.0 and out["acc_b_a"].item() == 1.0
    shifted = model({"a": x, "b": x.roll(1, dims=0)})  # every row's partner is another row's
    assert shifted["acc_a_b"].item() == 0.0 and shifted["acc_b_a"].item() == 0.0


def test_lit_freezing_keeps_tower_fixed_and_in_eval_mode() -> None:
    model = model3(frozen=("text",))
    model.train()
    assert not model.encoders["text"].training
    assert model.encoders["image"].training
    assert all(not p.requires_grad for p in model.encoders["text"].parameters())
    model(batch3())["loss"].backward()
    assert all(p.grad is None for p in model.encoders["text"].parameters())
    assert model.projections["text"].weight.grad.abs().sum() > 0  # projection adapts the frozen tower
    assert model.encoders["image"].net[0].weight.grad.abs().sum() > 0

    frozen_proj = model3(frozen=("text",), freeze_projection=True)
    frozen_proj(batch3())["loss"].backward()
    assert frozen_proj.projections["text"].weight.grad is None
    assert frozen_proj.projections["image"].weight.grad is not None


def test_siglip_model_uses_bias_and_matches_reference() -> None:
    model = model3(init_temperature=0.1, bias=-10.0, pairs=[("image", "text")]).eval()
    assert isinstance(model.loss, SigmoidLoss)
    batch = batch3()
    z = embeddings(model, batch)
    logits = 10.0 * z["image"] @ z["text"].T - 10.0
    expected = -log_expit((2 * np.eye(10) - 1) * logits).sum() / 10
    out = model(batch)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert out["logit_bias"].item() == -10.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pairs": [("image", "video")]}, "pair"),
        ({"pairs": [("image", "image")]}, "pair"),
        ({"frozen": ("video",)}, "frozen"),
        ({"bias": -10.0, "loss": ContrastiveLoss()}, "bias"),
        ({"loss": SigmoidLoss()}, "bias"),
        ({"init_temperature": 0.001}, "init_temperature"),
    ],
)
def test_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        model3(**kwargs)


def test_encoder_without_out_dim_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="out_dim"):
        ContrastiveModel({"a": nn.Linear(2, 2), "b": MLPEncoder(2, 2)}, embed_dim=4)


def test_mismatched_batch_sizes_are_a_data_error() -> None:
    batch = batch3()
    batch["text"] = batch["text"][:5]
    with pytest.raises(DataError, match="batch sizes"):
        model3()(batch)


def test_bf16_autocast_forward_backward() -> None:
    model = model3()
    batch = batch3()
    reference = model.eval()(batch)["loss"].item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(batch)["loss"]
    loss.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference, rel=0.05)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_training_aligns_two_views_of_the_same_latent() -> None:
    """Two modalities are different noisy linear views of one latent; training must match them."""
    torch.manual_seed(0)
    latent_dim, n = 8, 64
    mix_a, mix_b = torch.randn(latent_dim, 12), torch.randn(latent_dim, 10)
    model = ContrastiveModel({"a": MLPEncoder(12, 16), "b": MLPEncoder(10, 16)}, embed_dim=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        z = torch.randn(n, latent_dim)
        out = model({"a": z @ mix_a + 0.05 * torch.randn(n, 12), "b": z @ mix_b + 0.05 * torch.randn(n, 10)})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    model.eval()
    z = torch.randn(n, latent_dim)
    with torch.no_grad():
        out = model({"a": z @ mix_a, "b": z @ mix_b})
    # chance in-batch top-1 is 1/64; the untrained model sits there with a loss of ~7
    assert out["acc_a_b"].item() > 0.5
    assert out["loss"].item() < 1.5
