"""The CLIP engine: a contrastive model over any set of modalities, its losses and evaluations.

- ``ContrastiveModel`` (``model.py``): encoders + projections + learnable temperature.
- ``ContrastiveLoss`` / ``SigmoidLoss`` (``loss.py``): CLIP's InfoNCE and SigLIP, distributed-aware.
- ``build_zero_shot_classifier`` / ``zero_shot_accuracy`` (``zeroshot.py``): prompts → classifier;
  ``conse_embed`` re-expresses an image through seen classes' texts (ConSE) for unseen ones.
- ``retrieval_metrics`` / ``image_text_retrieval`` (``retrieval.py``): Recall@K in memory-bounded blocks.

See ``docs/clip.md`` for the design choices and their references.
"""

from chorus.contrastive.loss import ContrastiveLoss, SigmoidLoss, gather_features
from chorus.contrastive.model import ContrastiveModel
from chorus.contrastive.retrieval import image_text_retrieval, retrieval_metrics
from chorus.contrastive.zeroshot import (
    CLIP_TEMPLATES,
    DIGIT_TEMPLATES,
    build_zero_shot_classifier,
    conse_embed,
    zero_shot_accuracy,
    zero_shot_predict,
)

__all__ = [
    "CLIP_TEMPLATES",
    "DIGIT_TEMPLATES",
    "ContrastiveLoss",
    "ContrastiveModel",
    "SigmoidLoss",
    "build_zero_shot_classifier",
    "conse_embed",
    "gather_features",
    "image_text_retrieval",
    "retrieval_metrics",
    "zero_shot_accuracy",
    "zero_shot_predict",
]
