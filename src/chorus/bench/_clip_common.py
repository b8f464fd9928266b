"""Driver code the two CLIP benchmarks (``caltech_zeroshot``, ``coco_retrieval``) share: not a benchmark itself.

:func:`fit` (one Trainer run with their common settings), :func:`run_seeds` (every seed × text tower),
:data:`METHODS`, :func:`method_table` (the comparison table) and :func:`summarize`. The reusable parts
live in the library: :mod:`chorus.data.augment`, :class:`chorus.encoders.AugmentedEncoder`,
:meth:`chorus.contrastive.text_cache.CachedTextEncoder.minilm`.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from chorus.contrastive.text_cache import CachedTextEncoder
from chorus.eval.report import fmt_mean_std, mean_std
from chorus.train import TrainConfig, Trainer

METHODS = {"lit": "LiT: frozen MiniLM text (ours)", "scratch": "baseline: BPE text tower from scratch"}
"""The two text towers both CLIP benchmarks compare, by ``methods`` name."""


def fit(
    model: nn.Module,
    data: Dataset,
    collate: Callable,
    run_dir: Path,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    bf16: bool,
) -> dict[str, Any]:
    """Train with the one Trainer: AdamW, cosine schedule with a 5 % warm-up, no progress bar or TensorBoard."""
    steps = epochs * math.ceil(len(data) / batch_size)  # type: ignore[arg-type]
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        warmup_steps=max(1, steps // 20),
        precision="auto" if bf16 else "fp32",  # auto: bf16 only where the hardware runs it fast
        channels_last=True,
        progress=False,
        tensorboard=False,
        log_every=max(1, steps // 10),
    )
    return Trainer(model, data, cfg, run_dir, collate_fn=collate).fit()


def run_seeds(
    cfg: Any, data: Any, cache: CachedTextEncoder | None, run_one: Callable[..., dict[str, float]], name: str
) -> dict[str, dict[str, list[float]]]:
    """``{method: {metric: [one value per seed]}}``: ``run_one(cfg, data, method, seed, cache, run_dir)``
    for every seed × method of ``cfg``, each in a scratch run folder."""
    per_seed: dict[str, dict[str, list[float]]] = {m: {} for m in cfg.methods}
    with tempfile.TemporaryDirectory(prefix=f"{name}_") as tmp:
        for seed in cfg.seeds:
            for method in cfg.methods:
                scores = run_one(cfg, data, method, seed, cache, Path(tmp) / f"{method}_{seed}")
                for key, value in scores.items():
                    per_seed[method].setdefault(key, []).append(value)
                print(f"seed {seed} {method}: " + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()), flush=True)
    return per_seed


def summarize(per_seed: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {metric: (mean, std over seeds)}}``."""
    return {m: {k: mean_std(v) for k, v in metrics.items()} for m, metrics in per_seed.items()}


def method_table(
    first: str,
    per_seed: dict[str, dict[str, list[float]]],
    methods: Sequence[str],
    rows: Sequence[tuple[str, str, float]],
) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: a row per ``(label, metric key, chance)``, a column per method (mean ± std over seeds,
    %), chance."""
    body = [
        [label] + [fmt_mean_std(per_seed[m][key]) for m in methods] + [f"{100 * chance:.1f}"]
        for label, key, chance in rows
    ]
    return [first] + [METHODS[m] for m in methods] + ["chance"], body
