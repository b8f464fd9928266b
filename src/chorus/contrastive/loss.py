"""Contrastive losses for paired embeddings: CLIP's symmetric InfoNCE and SigLIP's sigmoid loss.

What: given L2-normalised embeddings ``a`` [B, D] and ``b`` [B, D] where row i
of each comes from the same example, :class:`ContrastiveLoss` is the mean of
the cross-entropies a→b and b→a over the similarity matrix scaled by a learned
``logit_scale`` (Radford et al. 2021, "Learning Transferable Visual Models From
Natural Language Supervision"); :class:`SigmoidLoss` treats every (i, j) cell
as an independent binary "is this a pair?" problem with a learned bias (Zhai et
al. 2023, "Sigmoid Loss for Language Image Pre-Training").

Why it works: the other rows of the batch are the negatives, so the batch
should be as large as possible; under data parallelism each process gathers
the features of every other process (``torch.distributed.nn.functional.
all_gather``, which carries gradients back to the process that owns each
feature). With ``local_loss=True`` a process only scores its own rows against
all columns, so memory is O(local_B × global_B) instead of O(global_B²), as in
OpenCLIP (Cherti et al. 2023). Baseline to beat: the same loss without
gathering (negatives from the local batch only), which is weaker the more
processes there are.

Gradient convention (data parallel): a process's loss is the mean over *its*
rows (``local_loss=True``) or the global mean (``local_loss=False``); either
way the mean of the per-process losses is the single-process loss on the
concatenated batch, and after DDP averages the gradients (the all_gather
backward sums the gradient flowing to each feature from every process) every
parameter gets exactly the single-process gradient. Per-process batches must
have equal size (use ``drop_last=True``). Both losses compute the logits in at
least float32 with autocast disabled: with a logit scale of up to 100, bf16
rounding of the logits (~0.4 at 100) would swamp the differences the loss
learns from.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.train.distributed import is_distributed, rank, world_size

__all__ = ["ContrastiveLoss", "SigmoidLoss", "gather_features"]


def gather_features(x: Tensor, with_grad: bool = True) -> Tensor:
    """Concatenate ``x`` [B, D] from every process in rank order → [world·B, D].

    ``with_grad=True`` back-propagates into every process's features (exact
    gradients); ``with_grad=False`` only keeps the gradient of the local slice
    (OpenCLIP's cheaper default), which drops the gradient a feature receives
    from serving as a negative on other processes — an approximation.
    Without an initialised process group it returns ``x`` unchanged.
    """
    if not is_distributed():
        return x
    if with_grad:
        with warnings.catch_warnings():
            # Deprecated in favour of a private module; it is the public,
            # autograd-aware all_gather available across every torch 2.x we support.
            warnings.filterwarnings("ignore", message=r".*all_gather is deprecated", category=FutureWarning)
            parts = list(dist_nn.all_gather(x))
    else:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.detach().contiguous())
        parts[rank()] = x
    return torch.cat(parts)


def _loss_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE (CLIP) with negatives gathered from all processes.

    ``forward(a, b, logit_scale)`` takes normalised features [B, D] and the
    positive scale (``exp`` of the model's log-parameter) and returns a scalar.
    ``gather=False`` uses only local negatives even in a distributed run.
    ``local_loss=False`` builds the full global logit matrix on every process
    (same value and gradient, more memory).
    """

    def __init__(self, gather: bool = True, local_loss: bool = True, gather_with_grad: bool = True) -> None:
        super().__init__()
        self.gather = gather
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad

    def forward(self, a: Tensor, b: Tensor, logit_scale: Tensor) -> Tensor:
        with torch.autocast(device_type=a.device.type, enabled=False):
            dtype = _loss_dtype(a)
            a, b, logit_scale = a.to(dtype), b.to(dtype), logit_scale.to(dtype)
            local_b = a.shape[0]
            offset = 0
            if self.gather and is_distributed():
                all_a = gather_features(a, self.gather_with_grad)
                all_b = gather_features(b, self.gather_with_grad)
                if self.local_loss:
                    offset = rank() * local_b
                else:
                    a, b = all_a, all_b
            else:
                all_a, all_b = a, b
            labels = torch.arange(a.shape[0], device=a.device) + offset
            logits_ab = logit_scale * a @ all_b.T
            logits_ba = logit_scale * b @ all_a.T
            return (F.cross_entropy(logits_ab, labels) + F.cross_entropy(logits_ba, labels)) / 2


class SigmoidLoss(nn.Module):
    """SigLIP: binary log-loss on every cell of ``logit_scale · a bᵀ + logit_bias``.

    The diagonal cells are positives (+1), all others negatives (−1); the sum
    is divided by the number of local rows, as in the paper. Each process
    scores its rows against all gathered ``b`` columns (all_gather with
    gradient — simpler than the paper's ring of neighbour exchanges, at the
    cost of holding all ``b`` features at once; the value and gradients are
    the same). Because no softmax couples the cells, the bias (init −10) lets
    training start near the true, heavily negative-skewed prior.
    """

    def __init__(self, gather: bool = True) -> None:
        super().__init__()
        self.gather = gather

    def forward(self, a: Tensor, b: Tensor, logit_scale: Tensor, logit_bias: Tensor) -> Tensor:
        with torch.autocast(device_type=a.device.type, enabled=False):
            dtype = _loss_dtype(a)
            a, b = a.to(dtype), b.to(dtype)
            offset = 0
            if self.gather and is_distributed():
                offset = rank() * a.shape[0]
                b = gather_features(b, with_grad=True)
            logits = logit_scale.to(dtype) * a @ b.T + logit_bias.to(dtype)
            rows = torch.arange(a.shape[0], device=a.device)
            signs = -torch.ones_like(logits)
            signs[rows, rows + offset] = 1.0
            return -F.logsigmoid(signs * logits).sum() / a.shape[0]
