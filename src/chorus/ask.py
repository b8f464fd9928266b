"""Ask a trained VQA run a question about an image: what ``chorus ask`` and the web explorer's ``/ask`` call.

The run folder alone is enough (:func:`chorus.experiment.load_run`): the
image goes through the run's evaluation image transform, the question through
its tokenizer, and the answer classes come from its ``experiment.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from chorus.data import ImageTransform
from chorus.data.text import SubwordTokenizer
from chorus.errors import ConfigError, DataError
from chorus.experiment import ExperimentConfig, load_run
from chorus.fusion.vqa import QuestionAttention, VQAModel
from chorus.train.precision import resolve_precision


@dataclass
class Answer:
    """The most probable answer, every answer's probability (descending) and, for attention models,
    the last layer's attention of the question's end token over the image cells [cells] (mean over heads)."""

    answer: str
    probabilities: dict[str, float]
    attention: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "probabilities": self.probabilities, "attention": self.attention}


class VQAPredictor:
    """A VQA model with its run's preprocessing; ``predictor.ask(image, question)`` → :class:`Answer`.

    ``VQAPredictor.from_run(run_dir)`` loads a run folder; the constructor takes
    an already loaded run (as the web server holds it).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        model: nn.Module,
        classes: list[str],
        tokenizer: SubwordTokenizer | None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, VQAModel) or tokenizer is None:
            raise ConfigError(f"a {cfg.model.task!r} run cannot answer questions; `ask` needs a run of task 'vqa'")
        self.device = torch.device(device or "cpu")
        self.model, self.classes, self.tokenizer = model.to(self.device).eval(), classes, tokenizer
        self.context_length = cfg.data.context_length
        # answer under the precision the run was trained and scored in (``auto`` resolved as evaluation does)
        self.bf16 = resolve_precision(cfg.train.precision, self.device, warn=False)[0] == "bf16"
        self.transform = ImageTransform(cfg.data.image_size, channels=cfg.data.image_channels, train=False)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, device: str | None = None) -> VQAPredictor:
        """Load a VQA run folder (no dataset needed)."""
        return cls(*load_run(run_dir), device=device)

    def ask(self, image: Image.Image | bytes, question: str) -> Answer:
        """Answer one question about one image (PIL image or encoded bytes)."""
        if not isinstance(question, str) or not question.strip():
            raise DataError("the question is empty")
        pixels = self.transform(image).unsqueeze(0).to(self.device)
        ids, mask = self.tokenizer([question.strip()], self.context_length)
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            probs = self.model.logits(pixels, ids.to(self.device), mask.to(self.device)).float().softmax(-1)[0].cpu()
        order = probs.argsort(descending=True).tolist()
        attention = None
        if isinstance(self.model.fusion, QuestionAttention) and self.model.fusion.attention:
            last = int(mask[0].sum()) - 1
            attention = self.model.fusion.attention[-1][0, :, last].float().mean(0).cpu().tolist()
        return Answer(self.classes[order[0]], {self.classes[i]: float(probs[i]) for i in order}, attention)
