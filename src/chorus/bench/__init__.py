"""``chorus bench NAME``: reproducible benchmarks on real data, one driver module per benchmark.

Each module ``chorus.bench.<name>`` follows :mod:`chorus.bench.driver`: a frozen ``Config`` dataclass,
``PRESETS = {"full": ..., "quick": ...}`` and ``run(cfg, report)``, which composes library calls and
fills the report (results, tables, plots, method cards). Modules are imported only when their benchmark
is asked for, so heavy optional dependencies stay optional.
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
    "speech": "speech ↔ text on connected digit strings: CTC and attention recognisers, a synthesiser, the round trip",
    "precision": "training samples/s of a shipped config in fp32 vs bf16 on this machine (what precision: auto picks)",
    "vqa": "Sort-of-CLEVR visual question answering: CNN+MLP vs relation network, FiLM, question attention",
    "caption": "image captioning on COCO-mini with text-only pre-training, and Sort-of-CLEVR scene captions",
}


def load_benchmark(name: str) -> ModuleType:
    """The module implementing benchmark ``name`` (ConfigError listing the names if unknown)."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHMARKS))}")
    return importlib.import_module(f"chorus.bench.{name}")
