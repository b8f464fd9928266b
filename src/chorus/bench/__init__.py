"""``chorus bench NAME``: reproducible benchmarks on real data, one module per benchmark.

Each module ``chorus.bench.<name>`` defines ``configure(parser)`` (its options)
and ``run(args) -> dict`` (runs everything side by side with its baseline and
writes JSON, a Markdown table, plots and a method card under ``--out``).
Modules are imported only when their benchmark is asked for, so heavy optional
dependencies stay optional.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from chorus.errors import ConfigError

BENCHMARKS: dict[str, str] = {
    "caltech_zeroshot": "Caltech-101 zero-shot to unseen classes with a frozen MiniLM text tower (LiT)",
    "coco_retrieval": "COCO-mini image↔text retrieval Recall@1/5/10",
    "fusion": "every fusion family on AV-Digits, clean and hard, with robustness curves",
    "align": "forced, unsupervised and implicit alignment against ground-truth boundaries",
    "colearn": "co-learning: pivot binding, cross-modal distillation, co-training",
    "translate": "retrieval and generative translation between image, speech and text",
    "caption": "image captioning on COCO-mini with text-only pre-training, and Sort-of-CLEVR scene captions",
}


def load_benchmark(name: str) -> ModuleType:
    """The module implementing benchmark ``name`` (ConfigError listing the names if unknown)."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHMARKS))}")
    return importlib.import_module(f"chorus.bench.{name}")
