"""Crash-safe checkpoints: weights as safetensors, training state as ``state.pt``.

Layout inside a run directory::

    checkpoints/step_000100/model.safetensors   # model weights (shared tensors deduplicated)
    checkpoints/step_000100/state.pt             # optimizer, scheduler, RNG, data position, config
    checkpoints/latest                           # text: "step_000100"

Every file is written atomically — to a temporary file in the same directory,
flushed and ``fsync``-ed, then ``os.replace``-d over its final name — and the
``latest`` pointer is replaced last. A process killed at any instant therefore
leaves ``latest`` naming a complete checkpoint (at worst the previous one),
which is what makes preemptible training safe.

Weights use safetensors (no pickle, loadable without Chorus); ``state.pt`` holds
only tensors and plain Python data, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from chorus.errors import TrainingError

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
WEIGHTS = "model.safetensors"
STATE = "state.pt"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` for a temp file next to ``path``, fsync it, then rename it to ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX; a no-op where dirs cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, state: dict[str, Any], keep: int) -> Path:
    """Write weights and ``state`` for ``step``, point ``latest`` at them, keep the newest ``keep``."""
    root = Path(run_dir) / CHECKPOINT_DIR
    target = root / step_dir_name(step)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write(target / WEIGHTS, lambda tmp: save_model(model, str(tmp)))
    atomic_write(target / STATE, lambda tmp: torch.save(state, tmp))
    atomic_write(root / LATEST, lambda tmp: tmp.write_text(target.name + "\n", encoding="utf-8"))
    _prune(root, keep, current=target.name)
    return target


def _prune(root: Path, keep: int, current: str) -> None:
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[: max(0, len(steps) - keep)]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint directory ``latest`` points to, or None when there is none yet."""
    pointer = Path(run_dir) / CHECKPOINT_DIR / LATEST
    if not pointer.is_file():
        return None
    target = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    if not (target / WEIGHTS).is_file() or not (target / STATE).is_file():
        raise TrainingError(f"{pointer} points to {target}, which lacks {WEIGHTS} or {STATE}")
    return target


def load_checkpoint(checkpoint: Path, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """Load weights into ``model`` (strict) and return the training state dict."""
    missing, unexpected = load_model(model, str(checkpoint / WEIGHTS), strict=False, device=str(device))
    if missing or unexpected:
        raise TrainingError(
            f"{checkpoint / WEIGHTS} does not match the model: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}"
        )
    return torch.load(checkpoint / STATE, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch-CPU and (if present) current-CUDA-device RNG states."""
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # the legacy MT19937 global generator always gives the tuple form
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
