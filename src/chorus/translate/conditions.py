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

__all__ = ["ConditionedTargets", "nearest_image_prior"]


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
