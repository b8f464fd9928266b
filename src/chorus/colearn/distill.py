"""Knowledge distillation, within a modality (big → small) or across modalities (image → audio).

What: a frozen ``teacher`` classifier reads one modality of each batch and a
``student`` classifier reads another (or the same) modality of the same
batch; the student is trained to match the teacher's temperature-softened
class distribution, ``T² · KL(softmax(t/T) ‖ softmax(s/T))``, optionally mixed
with cross-entropy on true labels (``label_weight``).

Why it works: the teacher's soft outputs carry more information per example
than a one-hot label (which digits this one resembles), and the T² factor
keeps the soft-target gradients on the scale of the hard ones (Hinton et al.,
*Distilling the Knowledge in a Neural Network*, 2015). Across modalities, the
teacher sees the image of a paired (image, recording) example and the student
the recording: the pairing transfers the teacher's supervision, so the audio
student needs **no audio labels** at all (Gupta, Hoffman & Malik, *Cross
Modal Distillation for Supervision Transfer*, CVPR 2016; Aytar, Vondrick &
Torralba, *SoundNet*, NeurIPS 2016, vision → sound).

Baselines: the same student trained supervised on the audio labels (the upper
reference cross-modal distillation tries to reach without them), and for
big → small, the small model trained on labels alone (the gain distillation
should add).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.classifier import Classifier
from chorus.errors import ConfigError, DataError

__all__ = ["Distiller", "distillation_loss"]


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, averaged over the batch (float32)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=-1),
        F.log_softmax(teacher_logits.float() / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)


class Distiller(nn.Module):
    """Trains ``student`` towards a frozen ``teacher``; ``forward(batch)`` returns ``{"loss", "kd", "agree", ...}``.

    ``teacher`` reads ``batch[teacher.modality]``, ``student`` reads
    ``batch[student.modality]``. With ``label_weight = 0`` labels are never
    read (cross-modal distillation without student-modality labels); with
    ``label_weight = a > 0`` the loss is ``(1 - a)·KD + a·CE`` (Hinton et al.)
    and ``"ce"`` is logged too. ``agree`` is the fraction of the batch where the
    student's top class equals the teacher's.
    """

    def __init__(
        self, student: Classifier, teacher: Classifier, temperature: float = 4.0, label_weight: float = 0.0
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"Distiller temperature must be positive, got {temperature}")
        if not 0.0 <= label_weight < 1.0:
            raise ConfigError(f"Distiller label_weight must be in [0, 1), got {label_weight}")
        self.student, self.teacher = student, teacher
        self.temperature, self.label_weight = temperature, label_weight
        self.teacher.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> Distiller:
        """Set the student's mode; the teacher always stays in eval mode (no dropout, fixed norms)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        for name, model in (("teacher", self.teacher), ("student", self.student)):
            if model.modality not in batch:
                raise DataError(f"Distiller: {name} reads {model.modality!r}, batch keys are {sorted(batch)}")
        with torch.no_grad():
            t_mod = self.teacher.modality
            teacher = self.teacher.logits(batch[t_mod], batch.get(f"{t_mod}_mask"))
        s_mod = self.student.modality
        student = self.student.logits(batch[s_mod], batch.get(f"{s_mod}_mask"))
        kd = distillation_loss(student, teacher, self.temperature)
        out = {"kd": kd.detach(), "agree": (student.argmax(-1) == teacher.argmax(-1)).float().mean()}
        if self.label_weight == 0.0:
            return out | {"loss": kd}
        if "label" not in batch:
            raise DataError(f"Distiller: label_weight={self.label_weight} needs batch['label']; keys {sorted(batch)}")
        ce = F.cross_entropy(student.float(), batch["label"])
        return out | {"loss": (1 - self.label_weight) * kd + self.label_weight * ce, "ce": ce.detach()}
