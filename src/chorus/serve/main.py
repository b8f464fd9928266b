"""Entry points the CLI wires up: ``chorus serve`` (:func:`serve_main`) and ``chorus index build`` (:func:`index_main`).

One uvicorn process with one event loop: the models are loaded once and
shared by the request thread pool (see :mod:`chorus.serve.app`). Several
worker processes would each load every model, which is rarely worth it for
these small models; put a reverse proxy in front for TLS or more hosts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chorus.serve.uploads import Limits


def serve_main(
    host: str = "127.0.0.1",
    port: int = 8000,
    runs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = "runs",
    index_dir: str | os.PathLike[str] | None = None,
    *,
    device: str | None = None,
    max_body_mb: float = 10.0,
    log_level: str = "info",
) -> None:
    """Load the runs and indexes, then serve the API and the page until interrupted."""
    import uvicorn

    from chorus.serve.app import create_app

    app = create_app(runs, index_dir, device=device, limits=Limits(max_body_bytes=int(max_body_mb * 1024 * 1024)))
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def index_main(run_dir: str, dataset: str, out_dir: str | None = None, **kw: Any) -> dict[str, Any]:
    """``chorus index build RUN_DIR --dataset NAME [--out DIR]``: default folder ``indexes/<run>-<dataset>``
    (for a user's ``folder:PATH`` the last part of the path names the dataset)."""
    from chorus.data import parse_spec
    from chorus.serve.index import build_index

    name, implied = parse_spec(dataset)
    label = f"{name}-{Path(implied['path']).resolve().stem}" if "path" in implied else name
    out = out_dir or str(Path("indexes") / f"{Path(run_dir).resolve().name}-{label}")
    return build_index(run_dir, dataset, out, **kw) | {"out_dir": out}
