"""Shared fixtures: the real data root (``../shared/data`` beside the repo or ``CHORUS_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    env = os.environ.get("CHORUS_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    for candidate in (REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """The directory holding fsdd/, mnist_test/, caltech101/, coco_captions_mini/."""
    root = _shared_data()
    if root is None:
        pytest.fail("real data not found: set CHORUS_DATA or place shared/data beside the repo")
    return root
