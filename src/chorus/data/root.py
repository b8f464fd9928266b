"""Where datasets live on disk.

Resolution order: an explicit path (the CLI's ``--data-root``), then the
``CHORUS_DATA`` environment variable, then a per-user cache directory
(``$XDG_CACHE_HOME/chorus/data`` or ``~/.cache/chorus/data``), where the
``download_*`` functions put files.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Return the data root directory (not required to exist yet)."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get("CHORUS_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "chorus" / "data"
