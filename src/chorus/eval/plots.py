"""One way to make a plot file: a headless Matplotlib figure saved and closed on exit.

Why a helper: every benchmark and report saves PNGs from processes that have no display; selecting the
``Agg`` backend in one place, saving with one DPI and always closing the figure (so long runs do not
accumulate open figures) keeps that out of every caller.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CURVE_KEYS = ("loss",)
"""Training scalars drawn by :func:`plot_metrics` beside every ``eval/*`` metric."""

__all__ = ["figure", "plot_metrics"]


@contextmanager
def figure(path: str | os.PathLike, dpi: int = 120, **subplots: Any) -> Iterator[Any]:
    """``with figure("a.png", ncols=2, figsize=(8, 3)) as (fig, axes): ...`` writes ``a.png`` on exit.

    Keyword arguments go to ``plt.subplots``; the parent folder is created.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def plot_metrics(records: list[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Training loss and every ``eval/<name>`` metric against the step, one panel each (``None`` if nothing to draw).

    ``records`` are ``metrics.jsonl``'s (:func:`chorus.train.logging.read_metrics`); a run writes the
    picture as ``curves.png`` beside that file, so a person sees how training went without TensorBoard.
    """
    keys = [k for k in CURVE_KEYS if any(k in r for r in records)]
    keys += sorted({k for r in records for k in r if k.startswith("eval/") and isinstance(r[k], (int, float))})
    if not keys:
        return None
    with figure(path, ncols=len(keys), figsize=(4 * len(keys), 3), squeeze=False) as (_, axes):
        for ax, key in zip(axes[0], keys):
            points = [(r["step"], r[key]) for r in records if key in r and "step" in r]
            ax.plot(*zip(*points), marker="o" if len(points) < 20 else None)
            ax.set_xlabel("step")
            ax.set_title(key)
            ax.grid(alpha=0.3)
    return Path(path)
