"""Independent judges of generated digits, and a diversity measure.

Judges: a :class:`~chorus.classifier.Classifier` (``cnn`` on images,
``audio_cnn`` on log-mels) trained on data disjoint from every generator's
training data (see :mod:`chorus.translate.digits`). A translation counts as
correct when the judge recognises the intended digit — the classifier-based
evaluation of conditional generators (e.g. the "classification accuracy
score" family; Ravuri & Vinyals, NeurIPS 2019), here used in its simplest
form. Each judge's own held-out accuracy is reported, since it bounds what a
generator can score.

Diversity: mean pairwise L2 distance between generated images of the same
digit divided by the same quantity for real test images of that digit — 1 is
as varied as real handwriting, 0 is a collapsed generator (one image per
digit). It needs no pretrained perceptual network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from chorus.classifier import Classifier
from chorus.data import Collate
from chorus.encoders import build_encoder
from chorus.encoders.speaker_robust import SPEECH_TOWER
from chorus.eval.mode import evaluating
from chorus.train import TrainConfig, Trainer, seed_everything

__all__ = ["LabelledInputs", "train_judge", "judge_predictions", "diversity"]

Inputs = Tensor | Sequence[Tensor]
"""Judge inputs: a stacked tensor [N, ...] (images) or one tensor per item (log-mels of varying length)."""


class LabelledInputs(Dataset):
    """``{key: inputs[i], "label": labels[i]}`` items over in-memory tensors (what a judge trains on)."""

    def __init__(self, key: str, inputs: Inputs, labels: Tensor) -> None:
        self.key, self.inputs, self.labels = key, inputs, labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {self.key: self.inputs[index], "label": self.labels[index]}


def train_judge(
    modality: str,
    inputs: Inputs,
    labels: Tensor,
    steps: int,
    run_dir: str | os.PathLike,
    seed: int = 0,
    size: str = "tiny",
    batch_size: int = 64,
    lr: float = 3e-3,
) -> Classifier:
    """A 10-way ``cnn`` (``"image"``, inputs [1, 28, 28]) or ``audio_cnn`` (``"audio"``, log-mels) classifier.

    The audio judge is the same speaker-robust tower as every speech tower (:data:`SPEECH_TOWER`).
    """
    seed_everything(seed)
    if modality == "image":
        encoder = build_encoder("cnn", size, in_channels=1, image_size=inputs[0].shape[-1])
    else:
        encoder = build_encoder("audio_cnn", size, n_mels=inputs[0].shape[0], **SPEECH_TOWER)
    model = Classifier(encoder, 10, modality, dropout=0.1)
    cfg = TrainConfig(
        max_steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=min(20, steps // 5),
        precision="auto",
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=steps,
    )
    Trainer(model, LabelledInputs(modality, inputs, labels), cfg, run_dir, collate_fn=Collate()).fit()
    return model.eval()


@torch.no_grad()
def judge_predictions(judge: Classifier, inputs: Inputs, batch_size: int = 256) -> Tensor:
    """Predicted digits [N] for images [N, 1, 28, 28] or a list of log-mels (padded and masked per batch)."""
    preds = []
    with evaluating(judge):
        for i in range(0, len(inputs), batch_size):
            chunk = inputs[i : i + batch_size]
            if judge.modality == "image":
                assert isinstance(chunk, Tensor), "image judges take a stacked tensor [N, 1, 28, 28]"
                preds.append(judge.logits(chunk).argmax(-1))
            else:
                batch = Collate()([{"audio": m} for m in chunk])
                assert batch is not None  # no sample was skipped
                preds.append(judge.logits(batch["audio"], batch["audio_mask"]).argmax(-1))
    return torch.cat(preds)


def _mean_pairwise(x: Tensor) -> float:
    flat = x.flatten(1).float()
    d = torch.cdist(flat, flat)
    n = len(flat)
    return float(d.sum() / (n * (n - 1)))


def diversity(generated: Tensor, generated_labels: Tensor, real: Tensor, real_labels: Tensor) -> float:
    """Mean over digits of (mean pairwise L2 among generated) / (mean pairwise L2 among real) images."""
    ratios = []
    for digit in generated_labels.unique().tolist():
        gen, ref = generated[generated_labels == digit], real[real_labels == digit]
        if len(gen) > 1 and len(ref) > 1:
            ratios.append(_mean_pairwise(gen) / _mean_pairwise(ref))
    return float(sum(ratios) / len(ratios))
