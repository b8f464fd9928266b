"""Serving trained runs: an HTTP API (FastAPI), a FAISS search index and a one-page web explorer.

See ``docs/serve.md``. Needs the ``serve`` extra (fastapi, uvicorn,
python-multipart, faiss-cpu).
"""

from chorus.serve.app import create_app
from chorus.serve.index import SearchIndex, build_index
from chorus.serve.main import index_main, serve_main
from chorus.serve.uploads import Limits

__all__ = ["Limits", "SearchIndex", "build_index", "create_app", "index_main", "serve_main"]
