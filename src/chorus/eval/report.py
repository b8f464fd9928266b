"""Benchmark reports: JSON, Markdown tables, mean ± std over seeds, and method cards.

Every benchmark writes the same four things so results are comparable and
reviewable: ``results.json`` (all raw numbers), ``results.md`` (the table),
PNG plots, and ``method_card.md`` answering the questions users ask of every
method (what, why it works, backbone, baseline, result vs baseline, published
reference and the gap).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def fmt_mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """``"85.3 ± 1.2"`` (scaled, e.g. accuracies as percent)."""
    mean, std = mean_std(values)
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def summary_percent(summary: Mapping[str, Mapping[str, tuple[float, float]]], method: str, key: str) -> str:
    """``"85.3 ± 1.2 %"`` from a ``{method: {metric: (mean, std)}}`` summary, ``"n/a"`` if the method did not run."""
    if method not in summary:
        return "n/a"
    mean, std = summary[method][key]
    return f"{100 * mean:.1f} ± {100 * std:.1f} %"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned plain-text table for a terminal: numbers right-aligned, floats with 4 decimals."""

    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    cells = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def metric_label(key: str) -> str:
    """A metric key as a person reads it: ``text_to_audio_R@5`` → ``text→audio R@5``, ``zero_shot_top1`` →
    ``zero-shot top-1``, ``eval/accuracy`` → ``accuracy``."""
    key = key.removeprefix("eval/")
    for modality in ("image", "audio", "text"):
        for other in ("image", "audio", "text"):
            key = key.replace(f"{modality}_to_{other}_", f"{modality}→{other} ")
    key = key.replace("zero_shot_", "zero-shot ")
    for k in (1, 5, 10):
        key = key.replace(f"top{k}", f"top-{k}")
    return key.replace("_", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats shown with 4 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    """Where a result was measured (recorded in every results.json)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def invocation() -> str:
    """The command line that started this process (e.g. ``chorus bench fusion seeds=[0]``), for results.json."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def write_json(path: str | os.PathLike, obj: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    return path


@dataclass
class MethodCard:
    """The questions users ask of every method, answered in a few lines each."""

    method: str
    why: str
    backbone: str
    baseline: str
    result: str
    reference: str

    def markdown(self) -> str:
        return (
            f"# Method card: {self.method}\n\n"
            f"- **Method:** {self.method}\n- **Why it works:** {self.why}\n- **Backbone:** {self.backbone}\n"
            f"- **Baseline:** {self.baseline}\n- **Result vs baseline:** {self.result}\n"
            f"- **Published reference and gap:** {self.reference}\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown())
        return path
