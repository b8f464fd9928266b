"""Tests of the neural fusion families on synthetic two-modality tasks.

Task "factorial": label = 2·a + b where bit a is only visible in modality A and
bit b only in B, so the best possible single-modality accuracy is 0.5 (chance
0.25) while a fusion can reach ~1. Task "xor": label = a xor b, which each
modality alone predicts at chance (0.5) and which additive late fusion cannot
represent at all.
"""

from __future__ import annotations

import pytest
import torch

from chorus.errors import ConfigError, DataError
from chorus.fusion import (
    FUSIONS,
    Fusion,
    GatedFusion,
    LowRankTensorFusion,
    ModalityDropout,
    MultimodalAutoencoder,
    build_fusion,
    outer_product,
)
from chorus.fusion.vqa import VQA_FUSIONS

DIMS = {"a": 8, "b": 6}
MAX_LEN = {"a": 4, "b": 6}
ALL = [
    "early",
    "late_average",
    "late_learned",
    "late_product",
    "hybrid",
    "tensor",
    "low_rank_tensor",
    "gated",
    "cross_transformer",
    "autoencoder",
]
LATE = {"late_average", "late_learned", "late_product"}
# Training budget per family, kept small for a shared CPU. Late experts get more data because they
# overfit small sets (overconfident experts hurt posterior averaging; see LateFusion's docstring).
HYPER = {"cross_transformer": {"d_model": 16, "heads": 2, "hidden": 32, "dropout": 0.0}}
TRAIN_SIZE = {"cross_transformer": 256}
LATE_FACTORIAL_SIZE = 4096
STEPS = {"cross_transformer": 100}


def make_task(n: int, task: str, seed: int) -> dict:
    """Noisy token sequences per modality (padded with large garbage) and their masked means."""
    centers = torch.Generator().manual_seed(0)
    gen = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (n, 2), generator=gen)
    tokens, masks, pooled = {}, {}, {}
    for i, (m, d) in enumerate(DIMS.items()):
        center = torch.randn(d, generator=centers)
        center = 2.5 * center / center.norm()
        sign = (2 * bits[:, i] - 1).float()[:, None, None]
        x = sign * center + torch.randn(n, MAX_LEN[m], d, generator=gen)
        lengths = torch.randint(1, MAX_LEN[m] + 1, (n,), generator=gen)
        mask = torch.arange(MAX_LEN[m])[None] < lengths[:, None]
        x = torch.where(mask[..., None], x, 10 * torch.randn(x.shape, generator=gen))
        tokens[m], masks[m] = x, mask
        pooled[m] = (x * mask[..., None]).sum(1) / lengths[:, None]
    label = 2 * bits[:, 0] + bits[:, 1] if task == "factorial" else bits[:, 0] ^ bits[:, 1]
    return {"tokens": tokens, "masks": masks, "pooled": pooled, "label": label}


def run(model: Fusion, data: dict, present=None) -> torch.Tensor:
    if model.accepts_tokens:
        return model(data["tokens"], present, masks=data["masks"])
    return model(data["pooled"], present)


def objective(model: Fusion, data: dict, present=None) -> torch.Tensor:
    if model.accepts_tokens:
        return model.loss(data["tokens"], data["label"], present, masks=data["masks"])["loss"]
    return model.loss(data["pooled"], data["label"], present)["loss"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The test machine's cores are shared; one thread per test process is kinder and no slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_and_score(name: str, task: str, dims=DIMS, n_train: int | None = None) -> float:
    """Full-batch Adam on a fresh training set, accuracy on an independent test set."""
    torch.manual_seed(0)
    n_train = n_train or TRAIN_SIZE.get(name, 512)
    train, test = make_task(n_train, task, seed=1), make_task(512, task, seed=2)
    n_classes = 4 if task == "factorial" else 2
    if set(dims) != set(DIMS):  # unimodal baseline: keep only the listed modalities
        for data in (train, test):
            for key in ("tokens", "masks", "pooled"):
                data[key] = {m: data[key][m] for m in dims}
    model = build_fusion(name, dims, n_classes, **HYPER.get(name, {}))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(STEPS.get(name, 150)):
        opt.zero_grad()
        objective(model, train).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return (run(model, test).argmax(-1) == test["label"]).float().mean().item()


def mixed_present(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Each sample has A, B or both (never neither)."""
    kind = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(seed))
    return {"a": kind != 1, "b": kind != 0}


def test_registry_has_every_family_and_rejects_bad_names() -> None:
    assert FUSIONS.names() == sorted(ALL + list(VQA_FUSIONS))  # the VQA fusions are tested in test_vqa.py
    with pytest.raises(ConfigError, match="late_average"):
        build_fusion("nope", DIMS, 3)
    with pytest.raises(ConfigError, match="widht"):
        build_fusion("early", DIMS, 3, widht=5)
    with pytest.raises(ConfigError, match="dims"):
        build_fusion("early", {"a": 0}, 3)


def test_single_modality_is_at_most_half_right_on_factorial_task() -> None:
    """The task is honest: modality A alone cannot beat its 0.5 ceiling (margin for sampling noise)."""
    assert train_and_score("early", "factorial", dims={"a": DIMS["a"]}) < 0.6


@pytest.mark.parametrize("name", ALL)
def test_fusion_learns_factorial_task_far_above_single_modality(name: str) -> None:
    n_train = LATE_FACTORIAL_SIZE if name in LATE else None
    assert train_and_score(name, "factorial", n_train=n_train) > 0.85  # single-modality ceiling 0.5, chance 0.25


@pytest.mark.parametrize("name", sorted(set(ALL) - LATE))
def test_interaction_fusions_learn_xor(name: str) -> None:
    assert train_and_score(name, "xor") > 0.85  # each modality alone: 0.5


@pytest.mark.parametrize("name", sorted(LATE))
def test_late_fusion_cannot_represent_xor(name: str) -> None:
    """Late fusion is additive over modalities, so xor stays near chance — a documented limit."""
    assert train_and_score(name, "xor") < 0.65


@pytest.mark.parametrize("name", ALL)
def test_missing_modality_features_do_not_change_output(name: str) -> None:
    torch.manual_seed(0)
    model = build_fusion(name, DIMS, 3).eval()
    data = make_task(16, "factorial", seed=3)
    present = mixed_present(16, seed=4)
    other = make_task(16, "factorial", seed=5)
    changed = {key: dict(data[key]) for key in ("tokens", "masks", "pooled")}
    for key in changed:  # new values for B wherever B is missing; also different padding of A and B
        keep = present["b"].view(-1, *[1] * (other[key]["b"].dim() - 1))
        changed[key]["b"] = torch.where(keep, data[key]["b"], other[key]["b"])
    changed["tokens"]["a"] = torch.where(data["masks"]["a"][..., None], data["tokens"]["a"], 99.0)
    with torch.no_grad():
        out = run(model, data, present)
        out_changed = run(model, changed, present)
        out_b_moved = run(model, other, present)  # B (and A) really changed: rows with B present must move
    torch.testing.assert_close(out_changed, out)
    assert (out_b_moved - out).abs()[present["b"]].amax(-1).min() > 1e-4


@pytest.mark.parametrize("name", ALL)
def test_absent_feature_key_means_missing_for_whole_batch(name: str) -> None:
    torch.manual_seed(0)
    model = build_fusion(name, DIMS, 3).eval()
    data = make_task(8, "factorial", seed=3)
    only_a = {key: {"a": data[key]["a"]} for key in ("tokens", "masks", "pooled")}
    with torch.no_grad():
        expected = run(model, data, {"b": torch.zeros(8, dtype=torch.bool)})
        torch.testing.assert_close(run(model, only_a), expected)


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_is_registered_and_gets_a_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = build_fusion(name, DIMS, 4)
    data = make_task(32, "factorial", seed=3)
    objective(model, data, mixed_present(32, seed=4)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {pname} got no gradient"


@pytest.mark.parametrize("name", ALL)
def test_forward_under_bf16_autocast(name: str) -> None:
    model = build_fusion(name, DIMS, 4)
    data = make_task(8, "factorial", seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(model, data, mixed_present(8, seed=4))
    assert out.shape == (8, 4) and torch.isfinite(out).all()


def test_low_rank_factors_are_parameters_with_gradients() -> None:
    model = LowRankTensorFusion({"a": 5, "b": 4, "c": 3}, 2, rank=3)
    registered = {id(p) for p in model.parameters()}
    owned = [*model.factors.values(), model.fusion_weights, model.bias]
    assert len(model.factors) == 3 and all(id(p) in registered for p in owned)
    feats = {"a": torch.randn(6, 5), "b": torch.randn(6, 4), "c": torch.randn(6, 3)}
    model(feats).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in owned)


def test_outer_product_matches_kronecker() -> None:
    vs = [torch.randn(3, 2), torch.randn(3, 4), torch.randn(3, 3)]
    expected = torch.stack([torch.kron(torch.kron(vs[0][i], vs[1][i]), vs[2][i]) for i in range(3)])
    torch.testing.assert_close(outer_product(vs), expected)


def test_low_rank_fusion_equals_full_tensor_fusion_with_composed_weight() -> None:
    torch.manual_seed(0)
    dims = {"a": 5, "b": 4, "c": 3}
    model = LowRankTensorFusion(dims, 2, rank=3, factor_dim=4).eval()
    feats = {m: torch.randn(7, d) for m, d in dims.items()}
    present = {"c": torch.tensor([True, False, True, True, False, True, True])}
    with torch.no_grad():
        zs = model.project(*model.prepare(feats, present))
        explicit = outer_product(zs) @ model.full_weight() + model.bias
        torch.testing.assert_close(model(feats, present), explicit, rtol=1e-4, atol=1e-5)


def test_gated_unit_is_the_bimodal_gmu_formula() -> None:
    """For two modalities the softmax gate must equal z = σ(g_a − g_b), h = z·tanh(W_a a) + (1−z)·tanh(W_b b)."""
    torch.manual_seed(0)
    model = GatedFusion(DIMS, 3, hidden=5).eval()
    feats = {m: torch.randn(4, d) for m, d in DIMS.items()}
    captured = {}
    model.head.register_forward_hook(lambda mod, inp, out: captured.setdefault("h", inp[0]))
    with torch.no_grad():
        model(feats)
        g = model.gate(torch.cat([feats["a"], feats["b"], torch.ones(4, 2)], -1)).view(4, 2, 5)
        z = torch.sigmoid(g[:, 0] - g[:, 1])
        h = z * torch.tanh(model.values["a"](feats["a"])) + (1 - z) * torch.tanh(model.values["b"](feats["b"]))
    torch.testing.assert_close(captured["h"], h)


def test_autoencoder_reconstructs_a_correlated_modality_from_the_other_alone() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(7)
    mixing = torch.randn(8, 6, generator=gen) / 8**0.5
    a = torch.randn(600, 8, generator=gen)
    b = a @ mixing + 0.1 * torch.randn(600, 6, generator=gen)
    train, test = {"a": a[:400], "b": b[:400]}, {"a": a[400:], "b": b[400:]}
    model = MultimodalAutoencoder(DIMS, 2, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        model.losses(train)["loss"].backward()
        opt.step()
    with torch.no_grad():
        code = model.encode(test, {"b": torch.zeros(200, dtype=torch.bool)})
        error = (model.decoders["b"](code) - test["b"]).pow(2).mean()
    baseline = (test["b"] - train["b"].mean(0)).pow(2).mean()  # predicting B's mean without looking at A
    assert error < 0.3 * baseline
    assert set(model.losses(test)) == {"recon", "cross_recon", "loss"}


def test_modality_dropout_rates_and_never_drops_everything() -> None:
    torch.manual_seed(0)
    n = 20000
    feats = {"a": torch.zeros(n, 1), "b": torch.zeros(n, 1)}
    dropout = ModalityDropout(0.3)
    kept = dropout(feats)
    assert torch.stack(list(kept.values()), 1).any(1).all()
    # P(keep) = 0.7 + P(both dropped) · P(chosen as the rescued one) = 0.7 + 0.09 · 0.5
    for m in kept:
        assert abs(kept[m].float().mean().item() - 0.745) < 0.02
    present = {"a": torch.rand(n) < 0.5}
    present["b"] = ~present["a"] | (torch.rand(n) < 0.5)
    kept = dropout(feats, present)
    for m in kept:
        assert not (kept[m] & ~present[m]).any()  # never resurrects a missing modality
    assert torch.stack(list(kept.values()), 1).any(1).all()
    dropout.eval()
    assert all(torch.equal(dropout(feats, present)[m], present[m]) for m in present)
    with pytest.raises(ConfigError):
        ModalityDropout(1.0)


def test_bad_inputs_raise_data_errors_naming_the_modality() -> None:
    model = build_fusion("early", DIMS, 3)
    good = {"a": torch.randn(4, 8), "b": torch.randn(4, 6)}
    with pytest.raises(DataError, match="'b'.*\\(4, 5\\)"):
        model({"a": good["a"], "b": torch.randn(4, 5)})
    with pytest.raises(DataError, match="unknown"):
        model({**good, "c": torch.randn(4, 2)})
    with pytest.raises(DataError, match="present\\['a'\\]"):
        model(good, {"a": torch.ones(4)})
    with pytest.raises(DataError, match="no modality present"):
        model(good, {"a": torch.zeros(4, dtype=torch.bool), "b": torch.zeros(4, dtype=torch.bool)})
    transformer = build_fusion("cross_transformer", DIMS, 3)
    with pytest.raises(DataError, match="masks\\['a'\\]"):
        feats = {"a": torch.randn(4, 3, 8), "b": torch.randn(4, 2, 6)}
        transformer(feats, masks={"a": torch.ones(4, 2, dtype=torch.bool)})
    with pytest.raises(ConfigError):
        build_fusion("cross_transformer", {"a": 8}, 3)


def test_fusion_classifier_trains_encoders_and_fusion_end_to_end_and_refuses_token_fusions():
    from chorus.encoders import build_encoder
    from chorus.fusion import FusionClassifier

    torch.manual_seed(0)
    encoders = {
        "image": build_encoder("cnn", "tiny", image_size=16),
        "audio": build_encoder("audio_cnn", "tiny", n_mels=40),
    }
    model = FusionClassifier.build(encoders, "early", num_classes=3)
    batch = {"image": torch.randn(4, 3, 16, 16), "audio": torch.randn(4, 40, 30), "label": torch.tensor([0, 1, 2, 0])}
    out = model(batch)
    assert out["logits"].shape == (4, 3) and out["loss"].ndim == 0 and 0.0 <= float(out["acc"]) <= 1.0
    out["loss"].backward()  # the gradient reaches both encoders, not only the fusion head
    assert all(p.grad is not None for e in model.encoders.values() for p in e.parameters() if p.requires_grad)
    with pytest.raises(ConfigError, match="token sequences"):
        FusionClassifier.build(encoders, "cross_transformer", num_classes=3)
    assert model({"image": batch["image"]})["logits"].shape == (4, 3)  # audio missing for all: still an answer
    with pytest.raises(DataError, match="none of the modalities"):
        model({"text": batch["image"]})
