"""Serving trained runs: an HTTP API (FastAPI), a FAISS search index and a one-page web explorer.

See ``docs/serve.md``. The app, the index and the entry points need the ``serve`` extra (fastapi,
uvicorn, python-multipart, faiss-cpu); :mod:`chorus.serve.runs` (a run loaded for inference, also
what ``chorus predict`` uses) does not, so the names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "create_app": "app",
    "SearchIndex": "index",
    "build_index": "index",
    "index_main": "main",
    "serve_main": "main",
    "Limits": "uploads",
}

__all__ = ["Limits", "SearchIndex", "build_index", "create_app", "index_main", "serve_main"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'chorus.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f"chorus.serve.{_HOMES[name]}"), name)
