"""Monotonic forced alignment: the best segmentation of frames into a known token sequence.

Given per-frame class log-probabilities (from any acoustic / visual classifier)
and the transcript, Viterbi decoding (Viterbi 1967; Rabiner 1989, "A tutorial on
hidden Markov models") over a left-to-right state chain finds the segmentation
of maximal total log-probability: every token occupies >= 1 consecutive frame,
tokens keep their order, and an optional blank / silence class may fill frames
before, between and after tokens. This is exact (not greedy) and beats the
baseline of splitting frames uniformly among tokens whenever durations vary.

The same decoder with the CTC rule -- two equal consecutive labels must be
separated by a blank -- is CTC forced alignment (Graves et al. 2006,
"Connectionist Temporal Classification", ICML); see :mod:`chorus.align.ctc`.
The recursion is batched over items and vectorised over states, looping over
frames; backtracking runs in numpy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from chorus.align.lattice import lengths_from_mask
from chorus.errors import DataError

NEG_INF = float("-inf")


class ForcedAlignment(NamedTuple):
    """Best monotone segmentation of each item (unbatched inputs give unbatched fields).

    ``frame_tokens`` [B, T]: transcript index (0..L-1) occupying each frame, -1
    for blank frames and padding. ``starts`` / ``ends`` [B, L]: first frame and
    one-past-last frame of each token, -1 for padded tokens. ``score`` [B]: total
    log-probability of the best path.
    """

    frame_tokens: Tensor
    starts: Tensor
    ends: Tensor
    score: Tensor


def _viterbi(
    emissions: Tensor, skip_ok: Tensor, n_start: int, frame_lengths: Tensor, end_states: Tensor
) -> tuple[np.ndarray, Tensor]:
    """Best left-to-right state path: moves stay, +1, or +2 where ``skip_ok`` [B, S] allows it.

    ``emissions`` [B, T, S]; paths start in states < ``n_start`` and end in one of
    ``end_states`` [B, E]. Returns states [B, T] (numpy, -1 past each length) and scores [B].
    """
    batch, frames, states = emissions.shape
    score = torch.full((batch, states), NEG_INF, dtype=emissions.dtype, device=emissions.device)
    score[:, :n_start] = emissions[:, 0, :n_start]
    pad = torch.full((batch, 2), NEG_INF, dtype=emissions.dtype, device=emissions.device)
    moves = []
    for t in range(1, frames):
        shifted = torch.cat([pad, score], dim=1)
        skip = shifted[:, :-2].masked_fill(~skip_ok, NEG_INF)
        best, move = torch.stack([score, shifted[:, 1:-1], skip]).max(dim=0)
        running = (t < frame_lengths)[:, None]
        score = torch.where(running, best + emissions[:, t], score)
        moves.append(move.to(torch.int8))
    final, which = score.gather(1, end_states).max(dim=1)
    state = end_states.gather(1, which[:, None])[:, 0].cpu().numpy()
    move_np = torch.stack(moves, dim=1).cpu().numpy() if moves else np.zeros((batch, 0, states), np.int8)
    lengths = frame_lengths.cpu().numpy()
    rows = np.arange(batch)
    path = np.full((batch, frames), -1, dtype=np.int64)
    for t in range(frames - 1, -1, -1):
        active = t < lengths
        path[active, t] = state[active]
        if t > 0:
            state = np.where(active, state - move_np[rows, t - 1, state], state)
    return path, final


def forced_align(
    log_probs: Tensor,
    targets: Tensor,
    blank: int | None = None,
    frame_mask: Tensor | None = None,
    target_mask: Tensor | None = None,
    ctc: bool = False,
) -> ForcedAlignment:
    """Forced alignment of ``targets`` [B, L] (or [L]) to ``log_probs`` [B, T, C] (or [T, C]).

    ``blank``: class id of the blank / silence class that may take any number of
    frames around and between tokens (None: every frame belongs to a token).
    ``ctc``: forbid going straight from a token to an equal next token (the CTC
    topology; requires ``blank``). Masks mark real frames / tokens (right padding).
    Raises :class:`DataError` when an item has too few frames for its transcript.
    """
    unbatched = log_probs.dim() == 2
    if unbatched:
        log_probs, targets = log_probs.unsqueeze(0), targets.unsqueeze(0)
        frame_mask = None if frame_mask is None else frame_mask.unsqueeze(0)
        target_mask = None if target_mask is None else target_mask.unsqueeze(0)
    if log_probs.dim() != 3 or targets.dim() != 2 or targets.shape[0] != log_probs.shape[0]:
        raise DataError(
            f"expected log_probs [B, T, C] and targets [B, L], got {tuple(log_probs.shape)} and {tuple(targets.shape)}"
        )
    if ctc and blank is None:
        raise DataError("the CTC topology needs a blank class id")
    batch, frames, classes = log_probs.shape
    length = targets.shape[1]
    device = log_probs.device
    frame_lengths = lengths_from_mask(frame_mask, frames, batch, device, "frame_mask")
    target_lengths = lengths_from_mask(target_mask, length, batch, device, "target_mask")
    targets = targets.long().where(torch.arange(length, device=device) < target_lengths[:, None], 0)
    if bool(((targets < 0) | (targets >= classes)).any()):
        raise DataError(f"targets must be class ids in [0, {classes}), got values outside")
    log_probs = log_probs.to(torch.promote_types(log_probs.dtype, torch.float32))

    if blank is None:  # states = tokens
        labels, n_start = targets, 1
        skip_ok = torch.zeros_like(targets, dtype=torch.bool)
        end_states = (target_lengths - 1)[:, None]
    else:  # states = blank, t0, blank, t1, ..., blank (2L + 1)
        labels = torch.full((batch, 2 * length + 1), blank, dtype=torch.long, device=device)
        labels[:, 1::2] = targets
        skip_ok = torch.zeros_like(labels, dtype=torch.bool)
        skip_ok[:, 3::2] = (targets[:, 1:] != targets[:, :-1]) if ctc else True
        n_start = 2
        end_states = torch.stack([2 * target_lengths - 1, 2 * target_lengths], dim=1)
    emissions = log_probs.gather(2, labels[:, None, :].expand(batch, frames, labels.shape[1]))
    with torch.no_grad():
        states, score = _viterbi(emissions, skip_ok, n_start, frame_lengths, end_states)
    bad = torch.nonzero(~torch.isfinite(score)).flatten().tolist()
    if bad:
        raise DataError(
            f"items {bad} have too few frames for their transcripts (frame lengths "
            f"{frame_lengths[bad].tolist()}, target lengths {target_lengths[bad].tolist()})"
        )

    if blank is None:
        frame_tokens = states
    else:
        frame_tokens = np.where(states % 2 == 1, (states - 1) // 2, -1)
    starts_np = np.full((batch, length), -1, dtype=np.int64)
    ends_np = np.full((batch, length), -1, dtype=np.int64)
    for b, n_tokens in enumerate(target_lengths.tolist()):
        frame_index = np.flatnonzero(frame_tokens[b] >= 0)
        token = frame_tokens[b, frame_index]  # non-decreasing: tokens keep their order
        ids = np.arange(n_tokens)
        starts_np[b, :n_tokens] = frame_index[np.searchsorted(token, ids, side="left")]
        ends_np[b, :n_tokens] = frame_index[np.searchsorted(token, ids, side="right") - 1] + 1
    result = ForcedAlignment(
        torch.from_numpy(frame_tokens).to(device),
        torch.from_numpy(starts_np).to(device),
        torch.from_numpy(ends_np).to(device),
        score,
    )
    if unbatched:
        return ForcedAlignment(*(field[0] for field in result))
    return result
