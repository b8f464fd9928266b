"""Unsupervised speaker adaptation of a CTC recogniser from one speaker's untranscribed utterances.

Why: trained on five voices, the recogniser's errors on a sixth are mostly substitutions, and for some voices
they are systematic — every "two" of one held-out FSDD speaker is heard as "zero" far more often than as "two".
Such a confusion is visible without transcripts: over the speaker's frames the posteriors of the two words
overlap. **Minimum class confusion** (Jin et al. 2020, "Minimum Class Confusion for Versatile Domain
Adaptation") penalises exactly that overlap, and entropy minimisation on the same frames (SUTA: Lin et al. 2022,
"Listen, Adapt, Better WER: Source-free Single-utterance Test-time Adaptation for ASR") makes each frame commit.
Only the encoder's LayerNorm gains and biases move (Tent: Wang et al. 2021), a few hundred numbers, so a few
hundred frames of a voice cannot rewrite what the model learned from thousands.

The blank stays the unadapted model's. Adapting it as well (the objective over all eleven classes, as SUTA does)
trades deletions for insertions without a stable point on this task, because the confusion term also pushes
blank and words apart; so the word frames are chosen by the source model and the objective sees only their
ten-way word posteriors. Decoding then combines the source model's ``P(blank)`` with the adapted model's
``P(word | not blank)``: where the words are is the source model's decision, which word each one is becomes the
adapted model's. Settings were chosen on one held-out speaker (``jackson``) and never on ``theo``
(``docs/speech.md``, "Speaker adaptation").
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from chorus.data.collate import pad_time
from chorus.errors import ConfigError, DataError
from chorus.translate.recognizer import CTCRecognizer, decode_digits

__all__ = ["AdaptConfig", "SpeakerAdaptedCTC", "adapt_to_speaker", "class_confusion", "word_frame_objective"]

log = logging.getLogger(__name__)

FEW_UTTERANCES = 100
"""Adapting to fewer utterances warns: measured with 200 of a speaker's, the gain shrank with 50 and mostly
vanished with 20 (``docs/speech.md``, "Speaker adaptation")."""


@dataclass(frozen=True)
class AdaptConfig:
    """``steps`` updates of AdamW at ``lr`` on batches of ``batch_size`` utterances (reshuffled each pass over
    them, ``seed``); the objective is ``entropy_weight``·entropy + (1 − ``entropy_weight``)·class confusion of the
    word posteriors at ``temperature`` (SUTA's 0.3 and 2.5)."""

    steps: int = 130
    lr: float = 1e-2
    batch_size: int = 16
    entropy_weight: float = 0.3
    temperature: float = 2.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr < 0 or self.batch_size < 1 or self.temperature <= 0:
            raise ConfigError(f"bad speaker adaptation settings: {self}")
        if not 0.0 <= self.entropy_weight <= 1.0:
            raise ConfigError(f"entropy_weight must lie in [0, 1], got {self.entropy_weight}")


def class_confusion(probs: Tensor) -> Tensor:
    """Minimum-class-confusion loss of class posteriors ``probs`` [N, C] (rows sum to 1).

    The class-correlation matrix ``Pᵀ W P`` (frames weighted by ``1 + exp(−entropy)``, so confident frames count
    more), each row normalised to sum to 1, and the mean over classes of its off-diagonal mass: 0 when every frame
    is certain, ``(C − 1) / C`` when every frame is uniform.
    """
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    weight = 1 + torch.exp(-entropy.detach())
    weight = len(weight) * weight / weight.sum()
    correlation = probs.t() @ (probs * weight[:, None])
    correlation = correlation / correlation.sum(1, keepdim=True).clamp_min(1e-12)
    return (correlation.sum() - correlation.trace()) / correlation.shape[0]


def word_frame_objective(word_logits: Tensor, entropy_weight: float, temperature: float) -> Tensor:
    """The adaptation objective on word frames' unnormalised word scores [N, 10]: entropy and class confusion of
    their softmax at ``temperature``."""
    log_probs = (word_logits / temperature).log_softmax(-1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1).mean()
    return entropy_weight * entropy + (1 - entropy_weight) * class_confusion(probs)


class SpeakerAdaptedCTC(nn.Module):
    """A CTC recogniser adapted to one speaker: the blank from ``source``, the word given "not blank" from
    ``adapted`` (the same architecture). Decodes as :meth:`CTCRecognizer.decode`."""

    def __init__(self, source: CTCRecognizer, adapted: CTCRecognizer) -> None:
        super().__init__()
        self.source, self.adapted = source, adapted

    def log_probs(self, mel: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(log_probs [B, T', 11], frame_mask)``: ``log P(blank)`` of the source and
        ``log(1 − P(blank)) + log P(word | not blank)`` of the adapted model."""
        source, frame_mask = self.source.log_probs(mel, mask)
        adapted, _ = self.adapted.log_probs(mel, mask)
        blank = source[..., :1]
        not_blank = torch.log1p(-blank.exp().clamp(max=1 - 1e-7))
        return torch.cat([blank, not_blank + adapted[..., 1:].log_softmax(-1)], dim=-1), frame_mask

    @torch.no_grad()
    def decode(
        self,
        mel: Tensor,
        mask: Tensor | None = None,
        beam: int = 0,
        digits: tuple[int, int] = (1, 7),
        blank_penalty: float = 0.0,
    ) -> list[list[int]]:
        """Digit ids per utterance, with the decoding options of :meth:`CTCRecognizer.decode`."""
        return decode_digits(*self.log_probs(mel, mask), beam=beam, digits=digits, blank_penalty=blank_penalty)


def adapt_to_speaker(model: CTCRecognizer, mels: list[Tensor], cfg: AdaptConfig | None = None) -> SpeakerAdaptedCTC:
    """Adapt a copy of ``model`` to the speaker of ``mels`` (log-mels [n_mels, T], no transcripts); ``model`` is
    left as it was. Every utterance should be the one speaker's: the adaptation learns that voice."""
    cfg = cfg or AdaptConfig()
    if not isinstance(model, CTCRecognizer):
        raise ConfigError(f"speaker adaptation needs a CTC recogniser, got {type(model).__name__}")
    if not mels:
        raise DataError("speaker adaptation needs at least one utterance of the speaker")
    bad = [i for i, mel in enumerate(mels) if mel.dim() != 2 or not bool(torch.isfinite(mel).all())]
    if bad:
        raise DataError(f"speaker adaptation: utterances {bad[:5]} are not finite log-mels [n_mels, T]")
    if len(mels) < FEW_UTTERANCES:
        log.warning(
            "adapting to %d utterances of the speaker: the gain measured with 200 shrank with 50 and mostly vanished "
            "with 20 (docs/speech.md, 'Speaker adaptation')",
            len(mels),
        )
    source = copy.deepcopy(model).eval().requires_grad_(False)
    adapted = copy.deepcopy(model).eval().requires_grad_(False)  # eval: no SpecAugment, no dropout
    params = [p for m in adapted.encoder.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed)
    order: list[int] = []
    for step in range(cfg.steps):
        if not order:
            order = torch.randperm(len(mels), generator=generator).tolist()
        batch, order = order[: cfg.batch_size], order[cfg.batch_size :]
        audio, mask = pad_time([mels[i] for i in batch], "audio")
        with torch.no_grad():
            source_log_probs, frame_mask = source.log_probs(audio, mask)
        words = frame_mask & (source_log_probs.argmax(-1) != 0)
        if not bool(words.any()):
            continue
        log_probs, _ = adapted.log_probs(audio, mask)
        loss = word_frame_objective(log_probs[words][:, 1:], cfg.entropy_weight, cfg.temperature)
        if not bool(torch.isfinite(loss)):
            raise DataError(f"speaker adaptation: the objective is not finite at step {step} (lower AdaptConfig.lr)")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return SpeakerAdaptedCTC(source, adapted.requires_grad_(False)).eval()
