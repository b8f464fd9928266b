"""Cross-attention (implicit alignment) against torch's SDPA, and the alignment metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score

from chorus.align import (
    CrossAttention,
    attention_peaks,
    boundary_errors,
    dtw,
    frame_accuracy,
    path_to_frame_labels,
    peak_hit_rate,
)
from chorus.errors import DataError


def test_cross_attention_matches_scaled_dot_product_attention_with_padding() -> None:
    torch.manual_seed(0)
    module = CrossAttention(query_dim=6, key_dim=10, dim=8, heads=2).double()
    queries, keys = torch.randn(3, 4, 6, dtype=torch.float64), torch.randn(3, 7, 10, dtype=torch.float64)
    key_mask = torch.arange(7)[None] < torch.tensor([7, 3, 5])[:, None]
    out, weights = module(queries, keys, key_mask)
    assert weights.shape == (3, 2, 4, 7) and out.shape == (3, 4, 8)
    q = module._split(module.to_q(queries))
    k, v = module._split(module.to_k(keys)), module._split(module.to_v(keys))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
    ref = module.to_out(ref.transpose(1, 2).reshape(3, 4, 8))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 4, dtype=torch.float64))
    assert (weights[1, :, :, 3:] == 0).all()
    noisy = keys.clone()
    noisy[1, 3:] = 1e3  # padded keys must not matter
    torch.testing.assert_close(module(queries, noisy, key_mask)[0], out)
    with pytest.raises(DataError, match="no real key"):
        module(queries, keys, torch.zeros(3, 7, dtype=torch.bool))


def test_cross_attention_under_bf16_autocast() -> None:
    module = CrossAttention(4, 4, 8, heads=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, weights = module(torch.randn(2, 3, 4), torch.randn(2, 5, 4))
    assert torch.isfinite(out.float()).all()
    torch.testing.assert_close(weights.float().sum(-1), torch.ones(2, 4, 3), atol=2e-2, rtol=0)


def test_attention_learns_to_align_tokens_to_their_segments() -> None:
    """Keys = frames carrying their token's embedding plus noise; queries = token embeddings.

    After a few dozen steps of a contrastive "find your frames" objective the
    peaks must fall inside the true segments far above the chance level.
    """
    torch.manual_seed(1)
    vocab, dim, n_tokens = 12, 16, 5
    embed = torch.randn(vocab, dim)
    module = CrossAttention(dim, dim, dim, heads=1)
    optimiser = torch.optim.Adam(module.parameters(), lr=3e-2)

    def batch(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = torch.stack([torch.randperm(vocab)[:n_tokens] for _ in range(size)])
        durations = torch.randint(2, 7, (size, n_tokens))
        frames = int(durations.sum(1).max())
        keys = 0.3 * torch.randn(size, frames, dim)
        starts, ends = torch.zeros(size, n_tokens, dtype=torch.long), torch.zeros(size, n_tokens, dtype=torch.long)
        mask = torch.zeros(size, frames, dtype=torch.bool)
        for b in range(size):
            t = 0
            for k in range(n_tokens):
                d = int(durations[b, k])
                keys[b, t : t + d] += embed[tokens[b, k]]
                starts[b, k], ends[b, k] = t, t + d
                t += d
            mask[b, :t] = True
        return embed[tokens], keys, mask, starts, ends

    queries, keys, mask, starts, ends = batch(64)
    before = peak_hit_rate(attention_peaks(module(queries, keys, mask)[1]), starts, ends)
    for _ in range(40):
        q, k, m, s, e = batch(16)
        weights = module(q, k, m)[1][:, 0]
        in_segment = (torch.arange(k.shape[1])[None, None] >= s[..., None]) & (
            torch.arange(k.shape[1])[None, None] < e[..., None]
        )
        loss = -(weights * in_segment).sum(-1).clamp_min(1e-6).log().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = peak_hit_rate(attention_peaks(module(queries, keys, mask)[1]), starts, ends)
    chance = ((ends - starts).float().mean() / mask.sum(1).float().mean()).item()  # about 0.2
    assert after > 0.9 > chance + 0.5
    assert after > before


def test_attention_peaks_average_heads() -> None:
    weights = torch.rand(2, 3, 4, 6).softmax(-1)
    np.testing.assert_array_equal(attention_peaks(weights), weights.mean(1).argmax(-1))
    np.testing.assert_array_equal(attention_peaks(weights, average_heads=False), weights.argmax(-1))


def test_boundary_errors_and_frame_accuracy() -> None:
    rng = np.random.default_rng(2)
    pred, true = rng.integers(0, 100, 20), rng.integers(0, 100, 20)
    errors = boundary_errors(torch.from_numpy(pred), true, hop_seconds=0.01)
    for p, t, e in zip(pred, true, errors, strict=True):
        assert e == pytest.approx(abs(int(p) - int(t)) * 10.0)  # 10 ms per frame
    labels_true, labels_pred = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert frame_accuracy(labels_pred, labels_true) == pytest.approx(accuracy_score(labels_true, labels_pred))
    keep = labels_true != 0
    assert frame_accuracy(labels_pred, labels_true, ignore=0) == pytest.approx(
        accuracy_score(labels_true[keep], labels_pred[keep])
    )
    with pytest.raises(DataError, match="shape"):
        boundary_errors(pred, true[:5], 0.01)


def test_dtw_path_to_frame_labels_recovers_segment_labels() -> None:
    """Align a time-stretched noisy copy to a labelled reference and read off frame labels."""
    g = torch.Generator().manual_seed(3)
    reference = torch.randn(8, 4, generator=g)
    ref_labels = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    repeats = torch.randint(1, 5, (8,), generator=g)
    query = reference.repeat_interleave(repeats, dim=0) + 0.05 * torch.randn(int(repeats.sum()), 4, generator=g)
    path = dtw(query, reference, return_path=True).paths[0]
    predicted = path_to_frame_labels(path, ref_labels)
    truth = np.repeat(ref_labels, repeats.numpy())
    assert frame_accuracy(predicted, truth) == 1.0
    np.testing.assert_array_equal(path_to_frame_labels(path), np.repeat(np.arange(8), repeats.numpy()))
    with pytest.raises(DataError, match="every row"):
        path_to_frame_labels(np.array([[0, 0], [2, 1]]))
