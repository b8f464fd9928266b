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


def fill_template(template: str, name: str) -> str:
    """``template`` with ``{}`` (or ``{c}``) replaced by the class name."""
    if "{}" not in template and "{c}" not in template:
        raise ConfigError(f"template {template!r} has no '{{}}' or '{{c}}' placeholder for the class name")
    return template.format(name, c=name)


class CaptionedDataset(Dataset):
    """Wraps a dataset with a ``"label"`` and adds ``"text"``: a random template filled with the class name.

    ``class_names`` defaults to ``dataset.classes``. The template is drawn with
    torch's global RNG, so a Trainer checkpoint (which saves RNG state) resumes
    the exact caption sequence. ``None`` items (skipped bad data) pass through.
    """

    def __init__(
        self, dataset: Dataset, templates: Sequence[str], class_names: Sequence[str] | None = None
    ) -> None:
        if not templates:
            raise ConfigError("CaptionedDataset needs at least one template")
        self.dataset = dataset
        self.templates = list(templates)
        self.class_names = list(class_names if class_names is not None else dataset.classes)
        for template in self.templates:
            fill_template(template, "x")

    def __len__(self) -> int:
        return len(self.dataset)

    def captions(self) -> list[str]:
        """Every caption this dataset can produce (e.g. to train a tokenizer on)."""
        return [fill_template(t, c) for c in self.class_names for t in self.templates]

    def __getitem__(self, index: int) -> Sample | None:
        sample = self.dataset[index]
        if sample is None:
            return None
        template = self.templates[int(torch.randint(len(self.templates), ()))]
        return {**sample, "text": fill_template(template, self.class_names[sample["label"]])}
