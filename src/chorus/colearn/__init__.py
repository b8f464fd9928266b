"""Co-learning: one modality's knowledge helps learn another (see ``docs/colearn.md``).

The three kinds, by what data link the modalities (Baltrušaitis, Ahuja &
Morency, *Multimodal Machine Learning: A Survey and Taxonomy*, 2019, §7):

- **parallel** — the same examples in both modalities: cross-modal
  distillation (:class:`Distiller`) and co-training (:class:`CoTrainer`);
- **non-parallel** — no shared examples, only shared concepts: reusing a
  frozen pretrained text tower for unseen classes (LiT zero-shot,
  ``chorus bench caltech_zeroshot``);
- **hybrid** — modalities linked only through a pivot: audio bound to a frozen
  image–text space through images (:func:`bind_to_pivot`, ImageBind).

``chorus bench colearn`` runs every method against its baseline on real data.
"""

from chorus.colearn.cotrain import CoTrainer, confident_per_class
from chorus.colearn.data import N_MELS, Relabelled, few_labels, normalise_image, paired_digits
from chorus.colearn.distill import Distiller, distillation_loss
from chorus.colearn.pivot import bind_to_pivot
from chorus.colearn.predict import accuracy, classifier_logits

__all__ = [
    "N_MELS",
    "CoTrainer",
    "Distiller",
    "Relabelled",
    "accuracy",
    "bind_to_pivot",
    "classifier_logits",
    "confident_per_class",
    "distillation_loss",
    "few_labels",
    "normalise_image",
    "paired_digits",
]
