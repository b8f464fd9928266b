"""Free Spoken Digit Dataset (FSDD): 3,000 8 kHz recordings of spoken digits 0–9 by 6 speakers.

Layout under the data root (what :func:`download_fsdd` produces)::

    fsdd/metadata.csv    path,digit,speaker,index,split,num_samples
    fsdd/speakers.csv    speaker,gender,accent,language
    fsdd/recordings/{digit}_{speaker}_{index}.wav   (mono int16 PCM, 8 kHz)

Protocols: ``"official"`` (the FSDD README's rule: repetitions 0–4 are test,
5–49 train → 300/2,700) measures within-speaker generalisation;
``"speaker"`` holds out whole speakers (default ``("theo",)``: 500 test /
2,500 train), the harder cross-speaker test. ``classes`` are ``"0"``..``"9"``.

Each WAV is checked against the sample count in ``metadata.csv`` and the
expected sample rate, so truncated or resampled files are caught as DataError.
Source: Z. Jackson et al., https://github.com/Jakobovski/free-spoken-digit-dataset
(CC BY-SA 4.0).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import soundfile as sf

from chorus.data.base import ChorusDataset, OnError, Sample, check_choice, read_csv, require_file
from chorus.data.decode import decode_audio, read_bytes
from chorus.data.fetch import extract, fetch, publish_dir
from chorus.data.root import data_root
from chorus.errors import ConfigError, DataError

FOLDER = "fsdd"
COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{COMMIT}.tar.gz"
# GitHub re-creates archives on the fly, so their bytes (and md5) are not stable;
# instead we pin the *content*: sha256 over sorted "name:sha256(file)" lines of the WAVs.
RECORDINGS_SHA256 = "c9f9e92a2d0d94e8ac9ea19c7545f66f54ee52307a1121208bca6abac1765f50"
SPEAKERS = {  # from the repository's metadata.py (all speakers are male)
    "jackson": ("male", "USA/neutral", "english"),
    "nicolas": ("male", "BEL/French", "english"),
    "theo": ("male", "USA/neutral", "english"),
    "yweweler": ("male", "DEU/German", "english"),
    "george": ("male", "GRC/Greek", "english"),
    "lucas": ("male", "DEU/German", "english"),
}
CLASSES = [str(d) for d in range(10)]


class FSDD(ChorusDataset):
    """Yields ``{"audio": float32 [T], "sample_rate": int, "label": int, "speaker": str, "path": str}``."""

    name = "fsdd"
    modalities = ("audio",)

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        protocol: str = "official",
        test_speakers: Sequence[str] = ("theo",),
        sample_rate: int = 8000,
        indices: Sequence[int] | None = None,
    ) -> None:
        check_choice("fsdd split", split, ("train", "test", "all"))
        check_choice("fsdd protocol", protocol, ("official", "speaker"))
        self.root = data_root(root)
        self.folder = self.root / FOLDER
        rows = read_csv(
            require_file(self.folder / "metadata.csv", self.name, self.root),
            ("path", "digit", "speaker", "index", "split", "num_samples"),
        )
        if protocol == "speaker":
            known = {r["speaker"] for r in rows}
            unknown = sorted(set(test_speakers) - known)
            if unknown:
                raise ConfigError(f"fsdd test_speakers {unknown} not in {sorted(known)}")
        if split != "all":
            rows = [r for r in rows if self._split_of(r, protocol, test_speakers) == split]
        self.sample_rate = sample_rate
        self.protocol = protocol
        try:
            labels = [int(r["digit"]) for r in rows]
        except ValueError as err:
            raise DataError(f"{self.folder / 'metadata.csv'}: non-integer digit ({err})") from err
        super().__init__(rows, labels, list(CLASSES), transform, on_error, indices)

    @staticmethod
    def _split_of(row: dict[str, str], protocol: str, test_speakers: Sequence[str]) -> str:
        if protocol == "speaker":
            return "test" if row["speaker"] in test_speakers else "train"
        return row["split"]

    def load(self, index: int) -> Sample:
        row = self.records[index]
        path = self.folder / row["path"]
        wave, sr = decode_audio(read_bytes(path), str(path), expected_sr=self.sample_rate)
        expected = int(row["num_samples"])
        if wave.numel() != expected:
            raise DataError(
                f"{path}: has {wave.numel()} samples, metadata.csv says {expected} (truncated or replaced file)"
            )
        return {
            "audio": wave,
            "sample_rate": sr,
            "label": self.labels[index],
            "speaker": row["speaker"],
            "path": str(path),
        }

    def stats(self) -> dict[str, float]:
        seconds = [int(r["num_samples"]) / self.sample_rate for r in self.records]
        return {
            "duration_s_min": min(seconds),
            "duration_s_mean": sum(seconds) / len(seconds),
            "duration_s_max": max(seconds),
        }


def recordings_digest(wavs: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(wavs, key=lambda p: p.name):
        h.update(f"{p.name}:{hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def prepare_fsdd(recordings: Sequence[Path], out: Path, content_sha256: str | None = RECORDINGS_SHA256) -> Path:
    """Copy FSDD WAVs into ``out/recordings`` and write metadata.csv/speakers.csv (official split)."""
    if content_sha256 is not None and (got := recordings_digest(recordings)) != content_sha256:
        raise DataError(
            f"FSDD recordings content sha256 is {got}, expected {content_sha256} (wrong or damaged archive)"
        )
    (out / "recordings").mkdir(parents=True, exist_ok=True)
    rows = []
    for src in sorted(recordings, key=lambda p: p.name):
        parts = src.stem.split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            raise DataError(f"{src}: name is not {{digit}}_{{speaker}}_{{index}}.wav")
        shutil.copyfile(src, out / "recordings" / src.name)
        digit, speaker, idx = int(parts[0]), parts[1], int(parts[2])
        rows.append(
            [f"recordings/{src.name}", digit, speaker, idx, "test" if idx <= 4 else "train", sf.info(str(src)).frames]
        )
    rows.sort(key=lambda r: (r[1], r[2], r[3]))
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "digit", "speaker", "index", "split", "num_samples"])
        writer.writerows(rows)
    with open(out / "speakers.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["speaker", "gender", "accent", "language"])
        writer.writerows([name, *info] for name, info in SPEAKERS.items())
    return out


def download_fsdd(
    root: str | os.PathLike[str] | None = None, url: str = URL, content_sha256: str | None = RECORDINGS_SHA256
) -> Path:
    """Download the pinned FSDD commit archive from GitHub and build ``<root>/fsdd``."""
    root = data_root(root)
    root.mkdir(parents=True, exist_ok=True)
    archive = fetch(url, root / "_downloads" / f"fsdd-{COMMIT[:7]}.tar.gz")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        extract(archive, Path(tmp) / "src")
        wavs = sorted(Path(tmp, "src").glob("*/recordings/*.wav"))
        if not wavs:
            raise DataError(f"{archive}: no */recordings/*.wav inside")
        staging = prepare_fsdd(wavs, Path(tmp) / "out", content_sha256)
        return publish_dir(staging, root / FOLDER)
