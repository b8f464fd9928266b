"""Training: the one :class:`Trainer`, its :class:`TrainConfig`, and torchrun helpers.

See ``docs/training.md`` for the features, checkpoint format, resume and
distributed use.
"""

from chorus.train.trainer import TrainConfig, Trainer, seed_everything

__all__ = ["Trainer", "TrainConfig", "seed_everything"]
