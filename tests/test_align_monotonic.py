"""Viterbi forced alignment and CTC helpers against exhaustive enumeration and known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from chorus.align import ctc_forced_align, ctc_greedy_decode, ctc_loss, forced_align
from chorus.errors import DataError


def random_log_probs(frames: int, classes: int, seed: int, batch: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (frames, classes) if batch is None else (batch, frames, classes)
    return torch.randn(*shape, generator=g, dtype=torch.float64).log_softmax(-1)


def brute_force_segmentation(log_probs: np.ndarray, targets: list[int], blank: int | None) -> tuple[float, list[int]]:
    """Best frame -> token-index assignment (-1 = blank) by enumerating every assignment."""
    frames, n_tokens = log_probs.shape[0], len(targets)
    choices = range(-1 if blank is not None else 0, n_tokens)
    best = (-np.inf, [])
    for assign in itertools.product(choices, repeat=frames):
        tokens = [a for a in assign if a >= 0]
        runs = [k for k, _ in itertools.groupby(tokens)]
        if runs != list(range(n_tokens)):  # every token, in order, each one contiguous run ...
            continue
        spans_ok = all(  # ... with no blank inside a token's run
            -1 not in assign[assign.index(k) : len(assign) - assign[::-1].index(k)] for k in range(n_tokens)
        )
        if not spans_ok:
            continue
        score = sum(log_probs[t, blank if a < 0 else targets[a]] for t, a in enumerate(assign))
        if score > best[0]:
            best = (score, list(assign))
    return best


@pytest.mark.parametrize("blank", [None, 0])
@pytest.mark.parametrize("targets", [[1, 2, 3], [2, 2, 1], [3]])
def test_forced_align_matches_brute_force(blank: int | None, targets: list[int]) -> None:
    log_probs = random_log_probs(6, 4, seed=len(targets) + (blank or 7))
    result = forced_align(log_probs, torch.tensor(targets), blank=blank)
    score, assign = brute_force_segmentation(log_probs.numpy(), targets, blank)
    assert result.score.item() == pytest.approx(score, rel=1e-12)
    ours = result.frame_tokens.tolist()
    # equal neighbouring tokens can split their frames either way at the same score: compare labels
    assert [targets[a] if a >= 0 else -1 for a in ours] == [targets[a] if a >= 0 else -1 for a in assign]
    for k in range(len(targets)):
        frames = [t for t, a in enumerate(ours) if a == k]
        assert (result.starts[k].item(), result.ends[k].item()) == (frames[0], frames[-1] + 1)


def collapse(path: tuple[int, ...], blank: int) -> list[int]:
    return [label for label, _ in itertools.groupby(path) if label != blank]


@pytest.mark.parametrize("targets", [[1, 2], [1, 1], [2, 1, 2]])
def test_ctc_alignment_and_loss_match_enumeration_of_all_paths(targets: list[int]) -> None:
    frames, classes = 5, 3
    log_probs = random_log_probs(frames, classes, seed=sum(targets))
    scores = {
        path: sum(log_probs[t, c].item() for t, c in enumerate(path))
        for path in itertools.product(range(classes), repeat=frames)
        if collapse(path, 0) == targets
    }
    best_path = max(scores, key=scores.get)
    result = ctc_forced_align(log_probs, torch.tensor(targets), blank=0)
    assert result.score.item() == pytest.approx(scores[best_path], rel=1e-12)
    labels = [targets[k] if k >= 0 else 0 for k in result.frame_tokens.tolist()]
    assert tuple(labels) == best_path
    nll = -np.logaddexp.reduce(list(scores.values()))
    loss = ctc_loss(log_probs[None], torch.tensor([targets]), reduction="none")
    assert loss.item() == pytest.approx(nll, rel=1e-9)


def test_ctc_loss_mean_reduction_and_masks() -> None:
    log_probs = random_log_probs(12, 5, seed=3, batch=3)
    targets = torch.tensor([[1, 2, 3], [4, 4, 0], [2, 0, 0]])
    target_mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    frame_mask = torch.arange(12)[None] < torch.tensor([12, 9, 5])[:, None]
    per_item = ctc_loss(log_probs, targets, frame_mask, target_mask, reduction="none")
    for b, (t_len, f_len) in enumerate([(3, 12), (2, 9), (1, 5)]):
        alone = ctc_loss(log_probs[b : b + 1, :f_len], targets[b : b + 1, :t_len], reduction="none")
        assert per_item[b].item() == pytest.approx(alone.item(), rel=1e-10)
    mean = ctc_loss(log_probs, targets, frame_mask, target_mask)
    assert mean.item() == pytest.approx((per_item / torch.tensor([3.0, 2.0, 1.0])).mean().item(), rel=1e-10)


def test_greedy_decode_matches_groupby_reference() -> None:
    log_probs = random_log_probs(30, 4, seed=4, batch=5)
    frame_mask = torch.arange(30)[None] < torch.tensor([30, 20, 10, 1, 7])[:, None]
    decoded = ctc_greedy_decode(log_probs, frame_mask, blank=0)
    for b, n in enumerate([30, 20, 10, 1, 7]):
        best = log_probs[b, :n].argmax(-1).tolist()
        assert decoded[b] == collapse(tuple(best), 0)


def synthetic(
    durations: list[int], labels: list[int], classes: int, blank_gap: int, seed: int
) -> tuple[torch.Tensor, list[int]]:
    """Noisy frame posteriors for a known segmentation; returns log-probs and true token starts."""
    g = torch.Generator().manual_seed(seed)
    frame_labels, starts, t = [], [], blank_gap
    frame_labels += [0] * blank_gap
    for duration, label in zip(durations, labels, strict=True):
        starts.append(t)
        frame_labels += [label] * duration + [0] * blank_gap
        t += duration + blank_gap
    logits = 4.0 * torch.nn.functional.one_hot(torch.tensor(frame_labels), classes).double()
    logits += 0.5 * torch.randn(logits.shape, generator=g, dtype=torch.float64)
    return logits.log_softmax(-1), starts


def test_forced_align_recovers_known_segmentation_in_a_padded_batch() -> None:
    cases = [([3, 5, 2, 6], [1, 2, 3, 4]), ([4, 4], [2, 2]), ([7, 1, 3], [4, 1, 3])]
    items = [synthetic(d, lab, 5, blank_gap=2, seed=i) for i, (d, lab) in enumerate(cases)]
    frames = max(lp.shape[0] for lp, _ in items)
    log_probs = torch.zeros(3, frames, 5, dtype=torch.float64)
    frame_mask = torch.zeros(3, frames, dtype=torch.bool)
    targets = torch.zeros(3, 4, dtype=torch.long)
    target_mask = torch.zeros(3, 4, dtype=torch.bool)
    for b, ((lp, _), (_, lab)) in enumerate(zip(items, cases, strict=True)):
        log_probs[b, : lp.shape[0]] = lp
        frame_mask[b, : lp.shape[0]] = True
        targets[b, : len(lab)] = torch.tensor(lab)
        target_mask[b, : len(lab)] = True
    for align in (forced_align, ctc_forced_align):
        result = align(log_probs, targets, 0, frame_mask, target_mask)
        for b, ((_, starts), (durations, _)) in enumerate(zip(items, cases, strict=True)):
            n = len(durations)
            assert result.starts[b, :n].tolist() == starts
            assert (result.ends[b, :n] - result.starts[b, :n]).tolist() == durations
            assert (result.starts[b, n:] == -1).all()
            assert (result.frame_tokens[b, ~frame_mask[b]] == -1).all()


def test_too_few_frames_is_a_data_error() -> None:
    log_probs = random_log_probs(3, 4, seed=5)
    with pytest.raises(DataError, match="too few frames"):
        forced_align(log_probs, torch.tensor([1, 2, 3, 1]))
    with pytest.raises(DataError, match="too few frames"):  # CTC needs a blank between the two 2s
        ctc_forced_align(log_probs, torch.tensor([1, 2, 2]))
