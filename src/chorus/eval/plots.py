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

__all__ = ["figure"]


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
