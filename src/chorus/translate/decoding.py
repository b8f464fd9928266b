"""Greedy and beam search over a prefix-conditioned autoregressive decoder.

What: both searches extend a batch of sequences that start with the start
token, one token per step, until every sequence has produced the end token or
``max_tokens`` new tokens exist. ``step(ids) -> log-probabilities [N, V]`` of
the next token is all they need, so any decoder (a captioner reading an image
prefix, a language model reading nothing) can be searched.

Greedy takes the arg-max at every step. Beam search (e.g. Sutskever et al.
2014; the decoder of Show-and-Tell, Vinyals et al. 2015, and ClipCap, Mokady
et al. 2021) keeps the ``width`` partial sequences with the best score; a
finished sequence is carried along unchanged at no cost, so finished and
unfinished hypotheses compete on one score. The score is the summed
log-probability divided by ``length ** length_penalty`` (generated tokens,
end token included): ``0`` ranks by probability, which favours stopping early
(an empty caption is often the single most probable one); ``1`` ranks by the
mean log-probability per token, as ClipCap's beam search does. Width 1 is
greedy search exactly. Beam search usually, though not provably, finds a
sequence scoring at least as high as greedy's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from chorus.errors import ConfigError

Step = Callable[[Tensor, Tensor], Tensor]
"""``step(rows, ids)``: log-probabilities [N, V] of the next token of sequences ``ids`` [N, t], whose
inputs (e.g. image prefixes) are row ``rows`` [N] of the batch being decoded."""


@dataclass
class Decoded:
    """``ids`` [B, T] (start token first; after the end token only end tokens), the summed ``log_prob`` [B]
    and ``length`` [B] (generated tokens up to and including the first end token)."""

    ids: Tensor
    log_prob: Tensor
    length: Tensor


def _check(max_tokens: int, width: int = 1) -> None:
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
    if width < 1:
        raise ConfigError(f"beam width must be >= 1, got {width}")


@torch.no_grad()
def greedy_search(
    step: Step, batch_size: int, start_id: int, end_id: int, max_tokens: int, device: torch.device | str = "cpu"
) -> Decoded:
    """The arg-max token at every step, for ``batch_size`` sequences at once."""
    _check(max_tokens)
    rows = torch.arange(batch_size, device=device)
    ids = torch.full((batch_size, 1), start_id, dtype=torch.long, device=device)
    log_prob = torch.zeros(batch_size, device=device)
    length = torch.zeros(batch_size, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(max_tokens):
        logp = step(rows, ids).float()
        best, token = logp.max(-1)
        token = torch.where(done, torch.full_like(token, end_id), token)
        log_prob = log_prob + torch.where(done, torch.zeros_like(best), best)
        length = length + (~done).long()
        ids = torch.cat([ids, token[:, None]], 1)
        done = done | (token == end_id)
        if bool(done.all()):
            break
    return Decoded(ids, log_prob, length)


@torch.no_grad()
def beam_search(
    step: Step,
    batch_size: int,
    start_id: int,
    end_id: int,
    max_tokens: int,
    width: int = 3,
    length_penalty: float = 0.0,
    device: torch.device | str = "cpu",
) -> Decoded:
    """The best of ``width`` beams per sequence: summed log-probability / length ** ``length_penalty``."""
    _check(max_tokens, width)
    rows = torch.arange(batch_size, device=device).repeat_interleave(width)
    ids = torch.full((batch_size * width, 1), start_id, dtype=torch.long, device=device)
    log_prob = torch.full((batch_size * width,), float("-inf"), device=device)
    log_prob[::width] = 0.0  # all beams start identical: only one may expand, or the top-k would hold copies
    length = torch.zeros(batch_size * width, dtype=torch.long, device=device)
    done = torch.zeros(batch_size * width, dtype=torch.bool, device=device)
    for _ in range(max_tokens):
        logp = step(rows, ids).float()
        vocab = logp.shape[-1]
        # A finished beam continues with the end token at no cost and with nothing else.
        logp = torch.where(done[:, None], torch.full_like(logp, float("-inf")), logp)
        logp[done, end_id] = 0.0
        total = log_prob[:, None] + logp  # [B·W, V]
        new_length = (length + (~done).long()).clamp(min=1)
        ranked = (total / new_length[:, None].float() ** length_penalty).view(batch_size, width * vocab)
        flat = ranked.topk(width, dim=-1).indices
        source = (torch.arange(batch_size, device=device)[:, None] * width + flat // vocab).reshape(-1)
        token = (flat % vocab).reshape(-1)
        log_prob = total.view(batch_size, width * vocab).gather(1, flat).reshape(-1)
        length = new_length[source]
        ids = torch.cat([ids[source], token[:, None]], 1)
        done = done[source] | (token == end_id)
        if bool(done.all()):
            break
    final = (log_prob / length.clamp(min=1).float() ** length_penalty).view(batch_size, width)
    pick = torch.arange(batch_size, device=device) * width + final.argmax(-1)
    return Decoded(ids[pick], log_prob[pick], length[pick])


def strip(ids: Tensor, start_id: int, end_id: int) -> list[list[int]]:
    """Content tokens of each row: after the start token, up to (not including) the first end token."""
    out = []
    for row in ids.tolist():
        seq = row[1:] if row and row[0] == start_id else row
        out.append(seq[: seq.index(end_id)] if end_id in seq else seq)
    return out
