"""Speech → text for connected digit strings: a CTC recogniser and a joint CTC-attention encoder-decoder.

Both read raw log-mels [B, n_mels, T] and share one encoder (:class:`SpeechEncoder`): the speaker-robust
front end of every Chorus speech tower (:mod:`chorus.encoders.speaker_robust`: a floor ``top_db`` under
each utterance's peak, per-band mean removal, SpecAugment in training), a conv stem whose second block
reduces the frame rate to 40 ms, sinusoidal positions and a pre-LN Transformer — the conv-then-attention
layout of Whisper's and Conformer-style encoders, at a size a CPU trains in minutes.

- :class:`CTCRecognizer` — a linear layer over the encoder frames gives per-frame posteriors over the ten
  digit words plus a blank, trained with CTC (Graves et al. 2006), which needs the transcript but never
  the word boundaries. Decoded greedily or by prefix beam search with a digit-string length prior
  (:func:`chorus.align.ctc_beam_decode`).
- :class:`JointCTCAttention` — the same encoder with an autoregressive Transformer decoder whose
  cross-attention to the frames is an implicit alignment. Trained with teacher forcing, label smoothing
  and the CTC loss on the encoder as an auxiliary objective: Watanabe et al. 2017 ("Hybrid CTC/attention
  architecture for end-to-end speech recognition", IEEE JSTSP) show the CTC term's monotonic alignment makes
  the attention converge quickly and stay on the diagonal, which a decoder with position queries alone
  does not learn from a few hundred utterances (``docs/align.md``). Decoded greedily or by joint CTC-attention
  decoding, which rescores the decoder's beam with the CTC head (:meth:`JointCTCAttention.decode`).

Labels: CTC class 0 is the blank and digit ``d`` is class ``d + 1``; the decoder's vocabulary is the ten
digits, ``<eos>`` = 10 and ``<sos>`` = 11 (input only).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.align.attention import CrossAttention
from chorus.align.ctc import ctc_beam_decode, ctc_greedy_decode, ctc_loss
from chorus.encoders.audio_transformer import sinusoidal_positions
from chorus.encoders.frames import MaskedConvBlock
from chorus.encoders.speaker_robust import (
    MelAugment,
    floor_dynamic_range,
    utterance_cmn,
)
from chorus.encoders.transformer import MLP, SelfAttention, Transformer
from chorus.errors import ConfigError, DataError

__all__ = ["CTCRecognizer", "JointCTCAttention", "SpeechEncoder", "decode_digits", "length_prior"]

NUM_DIGITS = 10
EOS, SOS = NUM_DIGITS, NUM_DIGITS + 1


def length_prior(min_digits: int, max_digits: int) -> Any:
    """Log-prior of a transcript length: uniform over ``min_digits..max_digits`` (how the strings are drawn), −inf
    elsewhere — so beam search never returns an empty or over-long digit string when a legal one is in the beam."""

    def prior(n: int) -> float:
        return -math.log(max_digits - min_digits + 1) if min_digits <= n <= max_digits else float("-inf")

    return prior


def decode_digits(
    log_probs: Tensor,
    frame_mask: Tensor,
    beam: int = 0,
    digits: tuple[int, int] = (1, 7),
    blank_penalty: float = 0.0,
) -> list[list[int]]:
    """Digit ids per utterance from CTC log-posteriors [B, T', 11] (class 0 the blank): greedy best path (``beam``
    0) or prefix beam search rescored by the uniform length prior over ``digits``."""
    if beam > 0:
        paths = ctc_beam_decode(
            log_probs, frame_mask, beam=beam, length_prior=length_prior(*digits), blank_penalty=blank_penalty
        )
    else:
        paths = ctc_greedy_decode(log_probs, frame_mask, blank_penalty=blank_penalty)
    return [[label - 1 for label in path] for path in paths]


class SpeechEncoder(nn.Module):
    """Log-mel [B, n_mels, T] → frames [B, ceil(T / subsample), width] and their mask (``subsample`` = product
    of the two conv ``strides``; the default 4 gives 40 ms frames, ≥ 5 per spoken digit).

    ``time_fraction``: SpecAugment's largest time mask as a share of the utterance — smaller than the
    isolated-word towers' 10 %, because a mask over a whole word of a string would contradict its transcript.
    ``dropout``: applied to the frames entering and leaving the Transformer during training (0: none).
    ``window``: each frame attends only to frames at most this many away (0: the whole utterance).
    """

    def __init__(
        self,
        n_mels: int = 40,
        width: int = 96,
        layers: int = 2,
        heads: int = 4,
        top_db: float = 40.0,
        augment: bool = True,
        time_fraction: float = 0.03,
        strides: tuple[int, int] = (2, 2),
        dropout: float = 0.0,
        window: int = 0,
    ) -> None:
        super().__init__()
        self.top_db, self.out_dim, self.subsample = top_db, width, strides[0] * strides[1]
        self.dropout = nn.Dropout(dropout)
        self.augment = MelAugment(time_fraction=time_fraction) if augment else None
        self.stem = nn.ModuleList(
            [
                MaskedConvBlock(n_mels, width, 5, strides[0], norm=True),
                MaskedConvBlock(width, width, 5, strides[1], norm=True),
            ]
        )
        self.transformer = Transformer(width, layers, heads, window=window)
        self.ln_post = nn.LayerNorm(width)

    def forward(self, mel: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mel.dim() != 3:
            raise DataError(f"SpeechEncoder expects log-mels [B, n_mels, T], got {tuple(mel.shape)}")
        if mask is None:
            mask = torch.ones(mel.shape[0], mel.shape[2], dtype=torch.bool, device=mel.device)
        x = utterance_cmn(floor_dynamic_range(mel.float(), mask, self.top_db), mask)
        if self.augment is not None:
            x = self.augment(x, mask)
        for block in self.stem:
            x, mask = block(x, mask)
        h = x.transpose(1, 2)
        h = self.dropout(h + sinusoidal_positions(h.shape[1], h.shape[2], h.device).to(h.dtype))
        return self.dropout(self.ln_post(self.transformer(h, mask))), mask


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: float) -> Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.weight * grad, None


class CTCRecognizer(nn.Module):
    """Encoder frames → log-posteriors over blank + ten digits; ``forward(batch)`` returns the CTC loss.

    ``speaker_adversary`` > 0 adds speaker-adversarial training (Meng et al. 2018, "Speaker-invariant training
    via adversarial learning", ICASSP): a classifier names the training speaker of every encoder frame
    (``batch["speakers"]``, indices below ``num_speakers``) while a gradient-reversal layer makes the encoder
    work against it with that weight, so the frames keep what names the word and lose what names the voice —
    the part of a new speaker's error that more training on five voices does not remove. The classifier is
    used in training only; decoding never reads it. Off by default: on FSDD's held-out voice it did not lower
    the WER (``docs/speech.md``, "What stands in the way").
    """

    def __init__(self, encoder: SpeechEncoder, speaker_adversary: float = 0.0, num_speakers: int = 0) -> None:
        super().__init__()
        if speaker_adversary < 0 or (speaker_adversary > 0 and num_speakers < 2):
            raise ConfigError(
                f"speaker_adversary must be >= 0 with >= 2 speakers, got {speaker_adversary} and {num_speakers}"
            )
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, NUM_DIGITS + 1)
        self.speaker_adversary = speaker_adversary
        self.speaker_head = (
            nn.Sequential(
                nn.Linear(encoder.out_dim, encoder.out_dim), nn.GELU(), nn.Linear(encoder.out_dim, num_speakers)
            )
            if speaker_adversary > 0
            else None
        )

    def log_probs(self, mel: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(log_probs [B, T', 11] float32, frame_mask [B, T'])``; class 0 is the blank."""
        frames, frame_mask = self.encoder(mel, mask)
        return self.head(frames).float().log_softmax(-1), frame_mask

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        frames, frame_mask = self.encoder(batch["audio"], batch.get("audio_mask"))
        log_probs = self.head(frames).float().log_softmax(-1)
        loss = ctc_loss(log_probs, batch["targets"] + 1, frame_mask, batch["target_mask"], zero_infinity=True)
        if self.speaker_head is None:
            return {"loss": loss}
        if "speakers" not in batch or bool((batch["speakers"] < 0).any()):
            raise DataError("speaker-adversarial training needs every utterance's speaker index in batch['speakers']")
        logits = self.speaker_head(_ReverseGradient.apply(frames[frame_mask], self.speaker_adversary)).float()
        speakers = batch["speakers"][:, None].expand_as(frame_mask)[frame_mask]
        speaker_ce = F.cross_entropy(logits, speakers)
        return {"loss": loss + speaker_ce, "ctc": loss.detach(), "speaker_ce": speaker_ce.detach()}

    @torch.no_grad()
    def decode(
        self,
        mel: Tensor,
        mask: Tensor | None = None,
        beam: int = 0,
        digits: tuple[int, int] = (1, 7),
        blank_penalty: float = 0.0,
    ) -> list[list[int]]:
        """Digit ids per utterance: greedy best path (``beam`` 0) or prefix beam search with the length prior;
        ``blank_penalty`` lowers the blank's log-probability per frame against deletions
        (:func:`chorus.align.ctc.penalise_blank`)."""
        return decode_digits(*self.log_probs(mel, mask), beam=beam, digits=digits, blank_penalty=blank_penalty)


class DecoderLayer(nn.Module):
    """Pre-LN decoder block: causal self-attention, cross-attention to the encoder frames (weights returned), MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2, self.ln_3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attn = SelfAttention(width, heads)
        nn.init.normal_(self.self_attn.in_proj_weight, std=width**-0.5)
        self.cross = CrossAttention(width, width, width, heads)
        self.mlp = MLP(width, 4 * width, "gelu")

    def forward(self, x: Tensor, frames: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        x = x + self.self_attn(self.ln_1(x), causal=True)
        mixed, weights = self.cross(self.ln_2(x), frames, frame_mask)
        x = x + mixed
        return x + self.mlp(self.ln_3(x)), weights


class JointCTCAttention(nn.Module):
    """Attention encoder-decoder with a CTC auxiliary loss: ``loss = w·CTC + (1 − w)·label-smoothed CE``."""

    def __init__(
        self,
        encoder: SpeechEncoder,
        layers: int = 2,
        heads: int = 4,
        max_len: int = 8,
        ctc_weight: float = 0.3,
        label_smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        width = encoder.out_dim
        self.encoder, self.max_len = encoder, max_len
        self.ctc_weight, self.label_smoothing = ctc_weight, label_smoothing
        self.ctc_head = nn.Linear(width, NUM_DIGITS + 1)
        self.embed = nn.Embedding(NUM_DIGITS + 2, width)
        self.positions = nn.Parameter(torch.randn(max_len + 1, width) * width**-0.5)
        self.layers = nn.ModuleList(DecoderLayer(width, heads) for _ in range(layers))
        self.ln_out = nn.LayerNorm(width)
        self.out = nn.Linear(width, NUM_DIGITS + 1)

    def decode_step(self, tokens: Tensor, frames: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder over ``tokens`` [B, N] (``<sos>`` first) → (logits [B, N, 11], last layer's weights [B, H, N, T'])."""
        if tokens.shape[1] > self.max_len + 1:
            raise DataError(f"the decoder reads at most {self.max_len + 1} tokens, got {tokens.shape[1]}")
        x = self.embed(tokens) + self.positions[: tokens.shape[1]].to(frames.dtype)
        weights = frames.new_zeros(0)
        for layer in self.layers:
            x, weights = layer(x, frames, frame_mask)
        return self.out(self.ln_out(x)).float(), weights

    @staticmethod
    def teacher_inputs(targets: Tensor, target_mask: Tensor) -> tuple[Tensor, Tensor]:
        """(decoder inputs ``<sos> d1 … dL`` [B, L + 1], outputs ``d1 … dL <eos>`` with −100 after it)."""
        batch = targets.shape[0]
        lengths = target_mask.sum(1)
        inputs = torch.cat([targets.new_full((batch, 1), SOS), targets.masked_fill(~target_mask, EOS)], dim=1)
        outputs = torch.cat([targets.masked_fill(~target_mask, -100), targets.new_full((batch, 1), -100)], dim=1)
        outputs[torch.arange(batch), lengths] = EOS
        return inputs, outputs

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        frames, frame_mask = self.encoder(batch["audio"], batch.get("audio_mask"))
        targets, target_mask = batch["targets"], batch["target_mask"]
        ctc = ctc_loss(
            self.ctc_head(frames).float().log_softmax(-1), targets + 1, frame_mask, target_mask, zero_infinity=True
        )
        inputs, outputs = self.teacher_inputs(targets, target_mask)
        logits, _ = self.decode_step(inputs, frames, frame_mask)
        attention = F.cross_entropy(logits.transpose(1, 2), outputs, label_smoothing=self.label_smoothing)
        loss = self.ctc_weight * ctc + (1 - self.ctc_weight) * attention
        return {"loss": loss, "ctc": ctc.detach(), "attention": attention.detach()}

    @torch.no_grad()
    def teacher_forced_weights(
        self, mel: Tensor, mask: Tensor | None, targets: Tensor, target_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Cross-attention of the true transcript (last layer, heads averaged) [B, L + 1, T'] and the frame mask:
        row ``k`` is the query that emits word ``k`` (row ``L`` emits ``<eos>``)."""
        frames, frame_mask = self.encoder(mel, mask)
        inputs, _ = self.teacher_inputs(targets, target_mask)
        _, weights = self.decode_step(inputs, frames, frame_mask)
        return weights.mean(1), frame_mask

    @torch.no_grad()
    def decode(
        self,
        mel: Tensor,
        mask: Tensor | None = None,
        beam: int = 0,
        ctc_weight: float = 0.5,
        digits: tuple[int, int] = (1, 7),
    ) -> list[list[int]]:
        """Digit ids per utterance: greedy autoregressive decoding until ``<eos>`` (``beam`` 0), or joint
        CTC-attention decoding (``beam`` > 0).

        Joint decoding (Watanabe et al. 2017, §III-C) scores each hypothesis ``y`` by
        ``ctc_weight · log P_CTC(y | x) + (1 − ctc_weight) · log P_att(y <eos> | x)``, both from this one model. It
        is done as N-best rescoring: the candidates are the attention decoder's beam and the CTC head's best prefix
        beam path, each ``digits[0]..digits[1]`` long. Why: the decoder alone drops or repeats words when its
        attention slips off the diagonal, which the CTC term, monotonic by construction, scores low; and the CTC
        head alone cannot use the decoder's view of the whole string."""
        if beam < 0 or not 0.0 <= ctc_weight <= 1.0:
            raise ConfigError(f"decode needs beam >= 0 and 0 <= ctc_weight <= 1, got {beam} and {ctc_weight}")
        frames, frame_mask = self.encoder(mel, mask)
        if beam == 0:
            return self._greedy(frames, frame_mask)
        ctc_log_probs = self.ctc_head(frames).float().log_softmax(-1)
        ctc_best = ctc_beam_decode(ctc_log_probs, frame_mask, beam=beam, length_prior=length_prior(*digits))
        out: list[list[int]] = []
        for b, ctc_path in enumerate(ctc_best):
            one, one_mask = frames[b : b + 1], frame_mask[b : b + 1]
            hyps = self._beam_search(one, one_mask, beam) | {tuple(label - 1 for label in ctc_path)}
            legal = sorted(h for h in hyps if digits[0] <= len(h) <= digits[1]) or sorted(h for h in hyps if h)
            if not legal:
                out.append([])
                continue
            ctc_score, att_score = self.hypothesis_log_probs(one, one_mask, ctc_log_probs[b : b + 1], legal)
            out.append(list(legal[int(torch.argmax(ctc_weight * ctc_score + (1 - ctc_weight) * att_score))]))
        return out

    def _greedy(self, frames: Tensor, frame_mask: Tensor) -> list[list[int]]:
        batch = frames.shape[0]
        tokens = torch.full((batch, 1), SOS, dtype=torch.long, device=frames.device)
        done = torch.zeros(batch, dtype=torch.bool, device=frames.device)
        for _ in range(self.max_len):
            logits, _ = self.decode_step(tokens, frames, frame_mask)
            step = logits[:, -1].argmax(-1).masked_fill(done, EOS)
            tokens = torch.cat([tokens, step[:, None]], dim=1)
            done |= step == EOS
            if bool(done.all()):
                break
        return [row[1:] for row in _until_eos(tokens)]

    def _beam_search(self, frames: Tensor, frame_mask: Tensor, beam: int) -> set[tuple[int, ...]]:
        """Digit strings of the decoder's ``beam`` best hypotheses for one utterance (frames [1, T', width]):
        those that ended with ``<eos>`` among the best ``beam`` extensions of a step, and the survivors at ``max_len``."""
        alive: list[tuple[list[int], float]] = [([SOS], 0.0)]
        finished: set[tuple[int, ...]] = set()
        for _ in range(self.max_len):
            tokens = torch.tensor([t for t, _ in alive], device=frames.device)
            logits, _ = self.decode_step(tokens, frames.expand(len(alive), -1, -1), frame_mask.expand(len(alive), -1))
            log_probs = logits[:, -1].log_softmax(-1)
            extended = sorted(
                (
                    (t + [k], s + float(log_probs[i, k]))
                    for i, (t, s) in enumerate(alive)
                    for k in range(NUM_DIGITS + 1)
                ),
                key=lambda c: -c[1],
            )[:beam]
            finished |= {tuple(t[1:-1]) for t, _ in extended if t[-1] == EOS}
            alive = [(t, s) for t, s in extended if t[-1] != EOS]
            if not alive:
                break
        return finished | {tuple(t[1:]) for t, _ in alive}

    def hypothesis_log_probs(
        self, frames: Tensor, frame_mask: Tensor, ctc_log_probs: Tensor, hyps: list[tuple[int, ...]]
    ) -> tuple[Tensor, Tensor]:
        """(log P_CTC(y | x), log P_att(y <eos> | x)) [N] of N non-empty digit strings of one utterance
        (frames [1, T', width], its CTC log-posteriors [1, T', 11])."""
        n, longest = len(hyps), max(len(h) for h in hyps)
        targets = torch.zeros(n, longest, dtype=torch.long, device=frames.device)
        target_mask = torch.zeros(n, longest, dtype=torch.bool, device=frames.device)
        for i, h in enumerate(hyps):
            targets[i, : len(h)] = torch.tensor(h, device=frames.device)
            target_mask[i, : len(h)] = True
        ctc = -ctc_loss(
            ctc_log_probs.expand(n, -1, -1), targets + 1, frame_mask.expand(n, -1), target_mask, reduction="none"
        )
        inputs, outputs = self.teacher_inputs(targets, target_mask)
        logits, _ = self.decode_step(inputs, frames.expand(n, -1, -1), frame_mask.expand(n, -1))
        attention = -F.cross_entropy(logits.transpose(1, 2), outputs, reduction="none").sum(1)
        return ctc, attention


def _until_eos(tokens: Tensor) -> list[list[int]]:
    """Each row of decoded tokens up to (not including) its first ``<eos>``, ``<sos>`` kept first."""
    rows = []
    for row in tokens.tolist():
        end = row.index(EOS, 1) if EOS in row[1:] else len(row)
        rows.append(row[:end])
    return rows
