"""Conditioning data for the generators: targets paired with shared-space embeddings of the same digit.

Why a bank of embeddings per digit rather than one per target: a generator
must be steerable by *any* modality's embedding of a digit (a caption, a
recording). Drawing, each time an item is read, a random embedding of the
target's digit from a bank that mixes modalities (label captions and
train-speaker recordings) teaches the generator the region of the space a
digit occupies rather than one point, and the modality gap between text and
speech embeddings is covered by training on both. Test-time conditions come
from unseen caption templates and the held-out speaker.

:func:`nearest_image_prior` is the simplest *prior* in the sense of DALL·E 2
(Ramesh et al. 2022, which learns a map from text to image embeddings): a
source embedding is replaced by the mean of its nearest image embeddings, so
a condition from a modality the generator never trained on (speech) is moved
onto the image side of the modality gap, where the generator's conditions lie.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from chorus.errors import DataError
from chorus.translate.digits import DigitData
from chorus.translate.space import SharedSpace

__all__ = ["ConditionedTargets", "condition_bank", "generator_bank", "nearest_image_prior"]


def nearest_image_prior(queries: Tensor, images: Tensor, k: int = 10) -> Tensor:
    """Each query [N, D] replaced by the unit-normalised mean of its ``k`` most cosine-similar ``images`` [M, D]."""
    if not 0 < k <= len(images):
        raise DataError(f"nearest_image_prior: k={k} needs 1..{len(images)} image embeddings")
    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    g = torch.nn.functional.normalize(images.float(), dim=-1)
    top = (q @ g.T).topk(k, dim=-1).indices
    return torch.nn.functional.normalize(g[top].mean(1), dim=-1)


class ConditionedTargets(Dataset):
    """Items ``{"target": targets[i], "cond": a random bank embedding of labels[i], "label": labels[i]}``.

    ``bank`` [M, D] holds condition embeddings with digits ``bank_labels`` [M];
    the draw uses torch's global RNG (so a seeded Trainer reproduces it).
    """

    def __init__(self, targets: Tensor, labels: Tensor, bank: Tensor, bank_labels: Tensor) -> None:
        self.targets, self.labels, self.bank = targets, labels, bank
        self.by_label = {int(y): (bank_labels == y).nonzero().flatten() for y in labels.unique()}
        missing = [y for y, rows in self.by_label.items() if len(rows) == 0]
        if missing:
            raise DataError(f"ConditionedTargets: the condition bank has no embedding for digits {missing}")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rows = self.by_label[int(self.labels[index])]
        pick = rows[int(torch.randint(len(rows), ()))]
        return {"target": self.targets[index], "cond": self.bank[pick], "label": self.labels[index]}


def condition_bank(
    space: SharedSpace, data: DigitData, train_templates: list[str], images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training conditions: embeddings of the training captions and ``images`` (the generators' own MNIST images).

    Both are clean digit evidence (image→text R@1 ≈ 94 % in the space), and between them they cover the
    text side and the image side of the modality gap; speech is bound onto the image side, so held-out
    recordings land among the image conditions. Train-speaker recordings are left out: their embeddings
    are the noisiest (speech→image R@1 ≈ 50 %), and a generator trained on conditions that often point
    at the wrong digit learns to ignore the condition.
    """
    text = space.embed_texts(space.prompts(train_templates, range(10)))
    text_y = torch.arange(10).repeat(len(train_templates))
    # each modality drawn equally often: 60 caption rows against 4,000 image rows would leave the text side
    # of the gap (where test captions land) almost unseen in training
    copies = max(1, len(images) // len(text))
    return (
        torch.cat([text.repeat(copies, 1), images]),
        torch.cat([text_y.repeat(copies), data.digit_of_image[data.generator_images]]),
    )


def generator_bank(
    space: SharedSpace, data: DigitData, train_templates: list[str]
) -> tuple[torch.Tensor, ConditionedTargets, torch.Tensor, torch.Tensor]:
    """The generators' training set: their MNIST images paired with standardised :func:`condition_bank` rows.

    Returns the images' embeddings (computed once: the bank and the speech prior both use them), the
    :class:`ConditionedTargets`, and the bank's mean and std, with which every test condition is standardised
    too — a briefly trained space keeps digits at cosine ≈ 0.9 of each other, and raw differences that small
    were ignored by the generators in the recorded quick run.
    """
    generator_images = space.embed_images(data.pixels[data.generator_images])
    bank_emb, bank_y = condition_bank(space, data, train_templates, generator_images)
    mu, sigma = bank_emb.mean(0), bank_emb.std(0).clamp_min(1e-6)
    bank = ConditionedTargets(
        data.pixels[data.generator_images], data.digit_of_image[data.generator_images], (bank_emb - mu) / sigma, bank_y
    )
    return generator_images, bank, mu, sigma
