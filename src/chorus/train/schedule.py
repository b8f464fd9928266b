"""Learning-rate schedules: linear warmup, then cosine decay or constant.

Warmup keeps the first AdamW steps small while its second-moment estimates are
still noisy; cosine decay to ``min_lr_ratio * lr`` (Loshchilov & Hutter, SGDR,
2017) is the usual default for transformer and CLIP training. The schedule is a
small callable object (not a lambda) so ``LambdaLR.state_dict`` stores its
settings and a resumed run checks it is continuing the same schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass
class WarmupSchedule:
    """lr multiplier at optimizer step ``step`` (0-based).

    Warmup: ``(step + 1) / warmup_steps`` so the very first step already moves.
    Cosine: ``min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * p)) / 2`` with
    ``p`` the fraction of post-warmup steps done, clamped to 1 after the end.
    """

    kind: Literal["cosine", "constant"]
    warmup_steps: int
    total_steps: int
    min_lr_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: Optimizer,
    kind: Literal["cosine", "constant"],
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` scaling every param group's own lr by :class:`WarmupSchedule`."""
    return LambdaLR(optimizer, WarmupSchedule(kind, warmup_steps, total_steps, min_lr_ratio))
