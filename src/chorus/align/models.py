"""Trainable models whose outputs the aligners in :mod:`chorus.align` turn into alignments.

Three ways to learn what to align with, one class each; every ``forward`` takes
a Chorus batch dict and returns ``{"loss", ...}`` so the one Trainer trains them:

- :class:`FrameTagger` — per-frame digit/silence posteriors over log-mel frames,
  trained with frame labels (cross-entropy). Viterbi forced alignment
  (:func:`chorus.align.forced_align`) of the known transcript to its
  log-posteriors gives word boundaries; the posteriors are also the "learned
  features" (a posteriorgram, Hazen et al. 2009) for speaker-to-speaker DTW.
  Baseline: splitting the utterance uniformly among its words.
- :class:`FrameImageEmbedding` — a shared audio-frame / image space learnt
  contrastively (CLIP's InfoNCE, Radford et al. 2021) from isolated
  clip–image pairs: a clip's score for an image is the mean of its speech
  frames' cosines with it, so every frame is pulled toward the image of the
  digit it belongs to, as in DAVEnet's matchmaps (Harwath et al. 2018,
  "Jointly Discovering Visual Objects and Spoken Words from Raw Sensory
  Input", ECCV). No boundary is ever seen; DTW over the frame–image cost then
  aligns a video of digits to speech. Baseline: the diagonal
  (proportional-time) alignment.
- :class:`AttentionRecognizer` — recognises the digit string with one learnt
  query per output position cross-attending (Bahdanau et al. 2015) to
  contextualised frame states; the attention weights are an implicit
  alignment never supervised with time. Baseline: the peak at the centre of
  the k-th of L equal parts of the utterance.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.align.attention import CrossAttention
from chorus.encoders.base import out_dim
from chorus.encoders.masking import masked_mean
from chorus.errors import ConfigError, DataError

IGNORE = -100  # frame label of padding, skipped by the cross-entropy


def _encode_frames(encoder: nn.Module, audio: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Frame tokens [B, T', D] and their mask [B, T'] from an audio encoder (which must expose tokens)."""
    encoded = encoder(audio, mask)
    if encoded.tokens is None or encoded.mask is None:
        raise ConfigError(f"{type(encoder).__name__} returns no frame tokens; use an audio encoder with tokens")
    return encoded.tokens, encoded.mask


class FrameTagger(nn.Module):
    """Audio encoder tokens → per-frame log-posteriors over ``num_classes`` (class 0 = silence by convention).

    Trains with ``batch["frame_labels"]`` [B, T'] (class per encoder frame,
    ``IGNORE`` on padding), reading ``batch["audio"]`` [B, n_mels, T] and
    ``batch["audio_mask"]``. Frame labels rather than CTC: CTC's posteriors are
    peaky (a word is one spike among blanks), so its spans say where a word is
    recognised, not where it starts and ends.
    """

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(out_dim(encoder), num_classes)

    def log_probs(self, audio: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(log_probs [B, T', C] in float32, frame_mask [B, T'])``."""
        tokens, frame_mask = _encode_frames(self.encoder, audio, mask)
        return self.head(tokens).float().log_softmax(dim=-1), frame_mask

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        log_probs, frame_mask = self.log_probs(batch["audio"], batch.get("audio_mask"))
        labels = batch["frame_labels"]
        if labels.shape != frame_mask.shape:
            raise DataError(
                f"frame_labels {tuple(labels.shape)} must match the encoder frames {tuple(frame_mask.shape)}"
            )
        labels = labels.masked_fill(~frame_mask, IGNORE)
        loss = F.cross_entropy(log_probs.transpose(1, 2), labels, ignore_index=IGNORE)
        real = labels != IGNORE
        accuracy = (log_probs.argmax(-1) == labels)[real].float().mean()
        return {"loss": loss, "frame_acc": accuracy.detach()}


class FrameImageEmbedding(nn.Module):
    """Shared space for audio frames and images, learnt from (clip, image) pairs by symmetric InfoNCE.

    ``forward`` reads ``batch["audio"]`` [B, n_mels, T], ``batch["audio_mask"]``,
    ``batch["image"]`` [B, C, H, W] and optionally ``batch["speech_mask"]``
    [B, T'] (frames that carry speech, e.g. from an energy trim; default: all
    real frames). The clip–image logit is the scaled mean over speech frames of
    the frame–image cosines (DAVEnet's "SISA" pooling) rather than the cosine
    of a mean-pooled clip embedding: with a pooled embedding only the *mean*
    must point at the image, and single frames — what alignment uses — stay
    weak (one seed, 600 steps: 35 % vs 38 % of held-out speakers' speech
    frames nearest to the right digit's image). :meth:`audio_frames` and :meth:`images` give
    L2-normalised embeddings for alignment.
    """

    def __init__(
        self, audio_encoder: nn.Module, image_encoder: nn.Module, dim: int = 64, init_temperature: float = 0.07
    ) -> None:
        super().__init__()
        self.audio_encoder, self.image_encoder = audio_encoder, image_encoder
        self.audio_proj = nn.Linear(out_dim(audio_encoder), dim)
        self.image_proj = nn.Linear(out_dim(image_encoder), dim)
        self.logit_scale = nn.Parameter(torch.tensor(1.0 / init_temperature).log())

    def audio_frames(self, audio: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(unit-norm frame embeddings [B, T', dim], frame_mask [B, T'])``."""
        tokens, frame_mask = _encode_frames(self.audio_encoder, audio, mask)
        return F.normalize(self.audio_proj(tokens).float(), dim=-1), frame_mask

    def images(self, image: Tensor) -> Tensor:
        """Unit-norm image embeddings [B, dim]."""
        return F.normalize(self.image_proj(self.image_encoder(image).pooled).float(), dim=-1)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        frames, frame_mask = self.audio_frames(batch["audio"], batch.get("audio_mask"))
        speech = batch.get("speech_mask")
        if speech is not None:
            if speech.shape != frame_mask.shape:
                raise DataError(
                    f"speech_mask {tuple(speech.shape)} must match the encoder frames {tuple(frame_mask.shape)}"
                )
            frame_mask = frame_mask & speech
        image = self.images(batch["image"])
        scale = self.logit_scale.exp().clamp(max=100.0)
        cosines = torch.einsum("btd,cd->btc", frames, image)  # [B audio, T', B images]
        similarity = masked_mean(cosines, frame_mask)  # [B, B]: mean over each clip's speech frames
        logits = scale * similarity
        target = torch.arange(len(image), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        accuracy = (similarity.argmax(dim=1) == target).float().mean()
        return {"loss": loss, "retrieval_acc": accuracy.detach(), "temperature": (1.0 / scale).detach()}


class AttentionRecognizer(nn.Module):
    """Digit-string recogniser: query k attends over the frames and names the k-th digit (or "none").

    ``encoder`` should contextualise its frames (e.g. ``audio_transformer``,
    whose self-attention with positions lets a frame know how many words
    precede it — the cue a position query needs). ``forward`` reads
    ``batch["audio"]``, ``batch["audio_mask"]``, ``batch["targets"]`` [B, L]
    (digit ids) and ``batch["target_mask"]``; positions past the end are class
    ``num_labels`` ("none"). :meth:`attend` returns the logits and the weights.
    """

    def __init__(self, encoder: nn.Module, num_labels: int = 10, max_len: int = 7, heads: int = 1) -> None:
        super().__init__()
        dim = out_dim(encoder)
        self.encoder, self.num_labels, self.max_len = encoder, num_labels, max_len
        self.queries = nn.Parameter(torch.randn(max_len, dim) * dim**-0.5)
        self.attention = CrossAttention(dim, dim, dim, heads)
        self.head = nn.Linear(dim, num_labels + 1)

    def attend(self, audio: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(logits [B, max_len, num_labels + 1], weights [B, heads, max_len, T'], frame_mask [B, T'])``."""
        tokens, frame_mask = _encode_frames(self.encoder, audio, mask)
        queries = self.queries.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        mixed, weights = self.attention(queries, tokens, frame_mask)
        return self.head(mixed).float(), weights, frame_mask

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        logits, _, _ = self.attend(batch["audio"], batch.get("audio_mask"))
        targets, target_mask = batch["targets"], batch["target_mask"]
        if targets.shape[1] > self.max_len:
            raise DataError(f"targets have {targets.shape[1]} positions, the recogniser only {self.max_len}")
        padded = torch.full(logits.shape[:2], self.num_labels, dtype=torch.long, device=logits.device)
        padded[:, : targets.shape[1]] = targets.masked_fill(~target_mask, self.num_labels)
        loss = F.cross_entropy(logits.transpose(1, 2), padded)
        string_acc = (logits.argmax(-1) == padded).all(dim=1).float().mean()
        return {"loss": loss, "string_acc": string_acc.detach()}
