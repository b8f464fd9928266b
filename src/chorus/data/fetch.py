"""Downloading with checksums and atomic writes, plus safe archive extraction.

:func:`fetch` streams a URL (``https://``, ``http://`` or ``file://`` — the last
is how the tests exercise it offline) into a temporary file next to the
destination while hashing it, verifies the md5/sha256, and only then renames
it into place (``os.replace`` is atomic on one filesystem). An interrupted or
corrupted download therefore never leaves a half-written file that a loader
would later trust. A destination that already exists with the right checksum
is not downloaded again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from chorus.errors import ConfigError, DataError

CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str], algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _expected(md5: str | None, sha256: str | None) -> tuple[str, str] | None:
    if md5 and sha256:
        raise ConfigError("give fetch() md5 or sha256, not both")
    if md5:
        return "md5", md5.lower()
    if sha256:
        return "sha256", sha256.lower()
    return None


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying the checksum if given; returns ``dest``."""
    dest = Path(dest)
    check = _expected(md5, sha256)
    if dest.is_file() and check is not None and file_digest(dest, check[0]) == check[1]:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.new(check[0]) if check else None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    if hasher is not None:
                        hasher.update(block)
                    bar.update(len(block))
        if check is not None and hasher is not None and hasher.hexdigest() != check[1]:
            raise DataError(
                f"{url}: {check[0]} mismatch, expected {check[1]}, got {hasher.hexdigest()} (file discarded)"
            )
        os.replace(tmp, dest)
    except DataError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DataError(f"could not download {url} to {dest}: {err}. Download it by hand to {dest} and retry.") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def extract(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a .zip or .tar(.gz/.bz2/.xz) into ``dest``, refusing members that escape it."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                root = dest.resolve()
                for member in zf.namelist():
                    if not (dest / member).resolve().is_relative_to(root):
                        raise DataError(f"{archive}: member {member!r} would extract outside {dest}")
                zf.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")  # the "data" filter blocks links/paths outside dest
        else:
            raise DataError(f"{archive}: neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: cannot extract ({err})") from err
    return dest


def publish_dir(staging: Path, final: Path) -> Path:
    """Move a fully prepared ``staging`` directory to ``final``, replacing an old copy.

    Preparing in a sibling staging directory and renaming at the end means a
    loader never sees a half-prepared dataset folder.
    """
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    return final
