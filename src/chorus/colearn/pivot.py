"""Pivot binding (hybrid co-learning): bind a new modality to a frozen image–text space through images alone.

What: given a trained image–text :class:`~chorus.contrastive.ContrastiveModel`,
:func:`bind_to_pivot` returns a copy in which the image and text towers (and
their projections) are frozen and a new ``audio`` tower + projection is added,
trained with InfoNCE on the single pair (image, audio). No audio–text pair is
ever seen, yet afterwards audio can be classified zero-shot from text prompts:
the audio embedding of a spoken "seven" is pulled next to images of sevens,
which the frozen image–text training already placed next to the text "seven".

Why it works: the frozen pivot space is fixed, so aligning audio to images is
aligning it to everything already aligned to images — alignment is
transitive through the pivot ("emergent" zero-shot). Freezing is what makes
it transitive: if the image tower moved, it would drift away from the text.

Reference: Girdhar et al., *ImageBind: One Embedding Space To Bind Them All*,
CVPR 2023 (images as the pivot binding audio, depth, thermal, IMU to text).
Baseline: a supervised audio classifier trained on the audio labels that
binding never uses (``chorus.classifier.Classifier``); the target is ≥ 85 %
of its accuracy on speakers never heard in training.
"""

from __future__ import annotations

import copy

from torch import nn

from chorus.contrastive import ContrastiveModel
from chorus.errors import ConfigError

__all__ = ["bind_to_pivot"]


def bind_to_pivot(
    pivot: ContrastiveModel,
    encoder: nn.Module,
    modality: str,
    pivot_modality: str = "image",
    init_temperature: float = 0.07,
) -> ContrastiveModel:
    """A new model: ``pivot``'s towers (copied, frozen, projections too) plus ``encoder`` for ``modality``.

    Its loss covers only the pair (``pivot_modality``, ``modality``); train it
    with :class:`~chorus.train.Trainer` on batches holding those two
    modalities. ``pivot`` itself is left untouched.
    """
    if modality in pivot.encoders:
        raise ConfigError(f"bind_to_pivot: the pivot model already has a {modality!r} tower")
    if pivot_modality not in pivot.encoders:
        raise ConfigError(f"bind_to_pivot: pivot modality {pivot_modality!r} not among {sorted(pivot.encoders)}")
    towers = {name: copy.deepcopy(tower) for name, tower in pivot.encoders.items()}
    bound = ContrastiveModel(
        {**towers, modality: encoder},
        pivot.embed_dim,
        init_temperature=init_temperature,
        frozen=tuple(towers),
        freeze_projection=True,
        pairs=[(pivot_modality, modality)],
    )
    for name in towers:
        bound.projections[name].load_state_dict(pivot.projections[name].state_dict())
    return bound
