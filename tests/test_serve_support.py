"""Shared pieces of the ``test_serve*`` files (this module holds no tests).

The runs are trained once per pytest session (into the session's base temp
folder) and reused by every serve test file: a digits image–text CLIP long
enough to beat chance clearly, and an FSDD audio–text CLIP of a few steps,
used only where the tests check mechanics against an independent computation.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from chorus.data import build_dataset
from chorus.experiment import load_experiment, train_experiment
from chorus.serve import build_index

REPO = Path(__file__).resolve().parents[1]
QUIET = ["train.progress=false", "train.tensorboard=false"]
RUNS = {
    "digits": ("digits_clip.yaml", ["train.max_steps=60", "train.warmup_steps=10", "train.lr=0.003"]),
    "fsdd": ("fsdd_clip.yaml", ["train.max_steps=4", "train.batch_size=16", "train.warmup_steps=0"]),
}


def trained_run(factory: pytest.TempPathFactory, name: str, data_root: Path) -> Path:
    """Train ``RUNS[name]`` once per session; later calls return the same folder."""
    run_dir = factory.getbasetemp() / "serve-runs" / name
    if not (run_dir / "model.safetensors").is_file():
        config, overrides = RUNS[name]
        cfg = load_experiment(REPO / "configs" / config, overrides + QUIET)
        train_experiment(cfg, run_dir, data_root=str(data_root))
    return run_dir


def served_folders(factory: pytest.TempPathFactory, data_root: Path) -> tuple[list[Path], Path]:
    """(run folders, folder of indexes): digits images and 60 FSDD test clips, built once per session."""
    runs = [trained_run(factory, "digits", data_root), trained_run(factory, "fsdd", data_root)]
    index_dir = factory.getbasetemp() / "serve-indexes"
    if not (index_dir / "fsdd-audio" / "index.json").is_file():
        build_index(runs[0], "digits", index_dir / "digits-images", data_root=str(data_root))
        build_index(runs[1], "fsdd", index_dir / "fsdd-audio", data_root=str(data_root), max_items=60)
    return runs, index_dir


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def digit_images(n: int) -> list[tuple[bytes, int]]:
    """The first ``n`` real scikit-learn digits of the test split as (PNG bytes, label)."""
    data = build_dataset("digits", split="test")
    return [(png_bytes(data[i]["image"]), data[i]["label"]) for i in range(n)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def loopback_server(app, timeout: float = 60.0) -> Iterator[str]:  # noqa: ANN001 (an ASGI app)
    """Run ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL; stop it afterwards."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
