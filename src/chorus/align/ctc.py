"""CTC helpers: the loss, greedy decoding and forced alignment, with Chorus batch conventions.

Connectionist Temporal Classification (Graves et al. 2006, "Connectionist
Temporal Classification: Labelling Unsegmented Sequence Data with Recurrent
Neural Networks", ICML) trains a frame classifier from unsegmented transcripts
by summing over every frame labelling that collapses (merge repeats, drop
blanks) to the transcript. It beats the baseline of training on uniformly
segmented frames because it never needs the segmentation.

Conventions here (differing from ``torch.nn.functional.ctc_loss``): inputs are
batch-first ``log_probs`` [B, T, C] (already log-softmaxed), ``targets`` [B, L]
right-padded, and lengths come as Chorus masks (``frame_mask`` [B, T],
``target_mask`` [B, L], True = real). ``reduction="mean"`` is torch's: each
item's loss divided by its target length, then averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from chorus.align.lattice import lengths_from_mask
from chorus.align.monotonic import ForcedAlignment, forced_align
from chorus.errors import DataError

NEG_INF = float("-inf")


def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    frame_mask: Tensor | None = None,
    target_mask: Tensor | None = None,
    blank: int = 0,
    reduction: Literal["mean", "sum", "none"] = "mean",
    zero_infinity: bool = False,
) -> Tensor:
    """CTC negative log-likelihood of ``targets`` [B, L] under ``log_probs`` [B, T, C].

    A thin wrapper of :func:`torch.nn.functional.ctc_loss` (see the module
    docstring for the conventions). ``zero_infinity`` zeroes the loss of items
    whose transcript cannot fit in their frames instead of returning inf.
    """
    if log_probs.dim() != 3 or targets.dim() != 2 or targets.shape[0] != log_probs.shape[0]:
        raise DataError(
            f"expected log_probs [B, T, C] and targets [B, L], got {tuple(log_probs.shape)} and {tuple(targets.shape)}"
        )
    batch, frames, _ = log_probs.shape
    frame_lengths = lengths_from_mask(frame_mask, frames, batch, log_probs.device, "frame_mask")
    target_lengths = lengths_from_mask(target_mask, targets.shape[1], batch, log_probs.device, "target_mask")
    return F.ctc_loss(
        log_probs.transpose(0, 1),
        targets.long(),
        frame_lengths,
        target_lengths,
        blank=blank,
        reduction=reduction,
        zero_infinity=zero_infinity,
    )


def penalise_blank(log_probs: Tensor, blank: int = 0, penalty: float = 0.0) -> Tensor:
    """``log_probs`` with ``penalty`` subtracted from the blank's log-probability on every frame (a copy; the
    input itself when ``penalty`` is 0).

    Why: a CTC model that hears an unfamiliar voice is less sure of the words than of the blank, so blank wins
    frames that belong to a word and the word is deleted. Lowering the blank by a constant per frame is the
    blank penalty of CTC decoders (equivalently a word-insertion bonus, as in HMM decoders' word penalty);
    it trades deletions for insertions, so it is picked on held-out data
    (:func:`chorus.translate.speech_runs.tune_blank_penalty`)."""
    if penalty == 0.0:
        return log_probs
    out = log_probs.clone()
    out[..., blank] -= penalty
    return out


def ctc_greedy_decode(
    log_probs: Tensor, frame_mask: Tensor | None = None, blank: int = 0, blank_penalty: float = 0.0
) -> list[list[int]]:
    """Best-path decoding: per-frame argmax, merge repeats, drop blanks -> one id list per item.

    Exact for the most likely *frame labelling*, not the most likely transcript
    (that needs beam search); the standard cheap decoder for CTC models.
    ``blank_penalty`` is subtracted from the blank's log-probability first (:func:`penalise_blank`).
    """
    if log_probs.dim() != 3:
        raise DataError(f"expected log_probs [B, T, C], got {tuple(log_probs.shape)}")
    log_probs = penalise_blank(log_probs, blank, blank_penalty)
    batch, frames, _ = log_probs.shape
    lengths = lengths_from_mask(frame_mask, frames, batch, log_probs.device, "frame_mask").tolist()
    best = log_probs.argmax(dim=2)
    new = torch.ones_like(best, dtype=torch.bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = (new & (best != blank)).cpu()
    best = best.cpu()
    return [best[b, :n][keep[b, :n]].tolist() for b, n in enumerate(lengths)]


def ctc_forced_align(
    log_probs: Tensor,
    targets: Tensor,
    blank: int = 0,
    frame_mask: Tensor | None = None,
    target_mask: Tensor | None = None,
) -> ForcedAlignment:
    """Most likely CTC path that collapses to ``targets``, as per-token frame spans.

    Viterbi over the CTC topology (blanks anywhere, a blank required between two
    equal consecutive labels). A token's span covers its frames only; blank
    frames belong to no token. Shapes as :func:`chorus.align.monotonic.forced_align`.
    """
    return forced_align(log_probs, targets, blank, frame_mask, target_mask, ctc=True)


def ctc_beam_decode(
    log_probs: Tensor,
    frame_mask: Tensor | None = None,
    blank: int = 0,
    beam: int = 8,
    length_prior: Callable[[int], float] | None = None,
    blank_penalty: float = 0.0,
) -> list[list[int]]:
    """CTC prefix beam search (Hannun et al. 2014, "First-pass large vocabulary continuous speech recognition
    using bi-directional recurrent DNNs"), optionally rescored by a label-sequence length prior.

    Unlike :func:`ctc_greedy_decode` it sums the probability of every frame labelling of a prefix (blank- and
    non-blank-ending paths kept apart), so a transcript spread over many weak paths can win. ``length_prior(n)``
    is a log-probability added to each finished hypothesis of ``n`` labels (``-inf`` rules a length out);
    it is applied when the beam ends, so it changes which complete transcript wins, not the search.
    ``blank_penalty`` is subtracted from the blank's log-probability on every frame (:func:`penalise_blank`).
    """
    if log_probs.dim() != 3:
        raise DataError(f"expected log_probs [B, T, C], got {tuple(log_probs.shape)}")
    log_probs = penalise_blank(log_probs, blank, blank_penalty)
    batch, frames, _ = log_probs.shape
    lengths = lengths_from_mask(frame_mask, frames, batch, log_probs.device, "frame_mask").tolist()
    scores = log_probs.detach().float().cpu().numpy()
    return [_prefix_beam(scores[b, :n], blank, beam, length_prior) for b, n in enumerate(lengths)]


def _prefix_beam(lp: np.ndarray, blank: int, beam: int, length_prior: Callable[[int], float] | None) -> list[int]:
    """Prefix beam search over one item's log-probabilities [T, C]."""
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # prefix → (log p blank-end, non-blank)
    for frame in lp:
        candidates = np.argsort(frame)[::-1][: beam + 1]  # only the likeliest labels can extend a top prefix
        grown: dict[tuple[int, ...], list[float]] = {}

        def add(
            prefix: tuple[int, ...],
            blank_end: float,
            label_end: float,
            grown: dict[tuple[int, ...], list[float]] = grown,
        ) -> None:
            slot = grown.setdefault(prefix, [NEG_INF, NEG_INF])
            slot[0], slot[1] = np.logaddexp(slot[0], blank_end), np.logaddexp(slot[1], label_end)

        for prefix, (p_b, p_nb) in beams.items():
            total = np.logaddexp(p_b, p_nb)
            for c in candidates:
                p = float(frame[c])
                if c == blank:
                    add(prefix, total + p, NEG_INF)
                elif prefix and prefix[-1] == c:
                    add(prefix, NEG_INF, p_nb + p)  # the same label continues
                    add(prefix + (int(c),), NEG_INF, p_b + p)  # a repeat needs a blank in between
                else:
                    add(prefix + (int(c),), NEG_INF, total + p)
        ranked = sorted(grown.items(), key=lambda kv: -np.logaddexp(kv[1][0], kv[1][1]))[:beam]
        beams = {prefix: (slot[0], slot[1]) for prefix, slot in ranked}

    def final(item: tuple[tuple[int, ...], tuple[float, float]]) -> float:
        prefix, (p_b, p_nb) = item
        return float(np.logaddexp(p_b, p_nb)) + (length_prior(len(prefix)) if length_prior else 0.0)

    return list(max(beams.items(), key=final)[0])
