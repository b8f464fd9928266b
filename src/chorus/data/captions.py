"""Turn a labelled dataset into an image–text (or audio–text) dataset by writing captions.

CLIP needs paired text. For a classification dataset the cheapest faithful text
is its class name inside a varied sentence ("a handwritten seven."); drawing the
template at random each time an item is read makes the text tower see many
wordings of one concept, which is what lets zero-shot prompts it never saw still
land near the right images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from chorus.data.base import Sample
from chorus.errors import ConfigError

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
"""Digit class names spelled out: a text tower reads "seven" far better than "7"."""


def class_words(classes: Sequence[str]) -> list[str]:
    """Class names as words for captions: single-digit names spelled out ("7" → "seven"), others unchanged."""
    return [DIGIT_WORDS[int(c)] if c.isdigit() and len(c) == 1 else c for c in classes]


def fill_template(template: str, name: str) -> str:
    """``template`` with ``{}`` (or ``{c}``) replaced by the class name."""
    if "{}" not in template and "{c}" not in template:
        raise ConfigError(f"template {template!r} has no '{{}}' or '{{c}}' placeholder for the class name")
    return template.format(name, c=name)


class PromptedDataset(Dataset):
    """Wraps a labelled dataset and adds ``"text"``: one of the item's class's ``prompts``, drawn at random per read.

    ``prompts[c]`` lists the texts of class ``c`` — its name in caption templates (:class:`CaptionedDataset`)
    or any per-class texts, such as visual descriptions, which differ from class to class. The prompt is
    drawn with torch's global RNG, so a Trainer checkpoint (which saves RNG state) resumes the exact caption
    sequence. ``None`` items (skipped bad data) pass through.
    """

    def __init__(self, dataset: Dataset, prompts: Sequence[Sequence[str]]) -> None:
        if not prompts or any(not p for p in prompts):
            raise ConfigError("PromptedDataset needs at least one prompt per class")
        self.dataset, self.prompts = dataset, [list(p) for p in prompts]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def captions(self) -> list[str]:
        """Every caption this dataset can produce (e.g. to train a tokenizer on), class by class."""
        return [text for prompts in self.prompts for text in prompts]

    def __getitem__(self, index: int) -> Sample | None:
        sample = self.dataset[index]
        if sample is None:
            return None
        prompts = self.prompts[sample["label"]]
        return {**sample, "text": prompts[int(torch.randint(len(prompts), ()))]}


class CaptionedDataset(PromptedDataset):
    """A :class:`PromptedDataset` whose prompts are the class name in each of ``templates``.

    ``class_names`` defaults to ``dataset.classes``.
    """

    def __init__(self, dataset: Dataset, templates: Sequence[str], class_names: Sequence[str] | None = None) -> None:
        if not templates:
            raise ConfigError("CaptionedDataset needs at least one template")
        self.templates = list(templates)
        self.class_names = list(class_names if class_names is not None else dataset.classes)  # type: ignore[attr-defined]
        for template in self.templates:
            fill_template(template, "x")
        super().__init__(dataset, [[fill_template(t, c) for t in self.templates] for c in self.class_names])
