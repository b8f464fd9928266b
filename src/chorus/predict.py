"""``chorus predict RUN FILE...``: what a trained run says about a person's own images, recordings and texts.

What: :func:`predict` loads nothing but the run folder (:class:`~chorus.serve.runs.LoadedRun`, the
same preprocessing and inference the server uses, so the CLI and the web page give the same answer),
expands folders into the image and audio files inside them, and returns one :class:`Prediction` per
input: the run's class names ranked with probabilities (zero-shot over the class names for a
contrastive run, the classifier head for a classifier), or the input's unit-norm embedding (texts,
runs that cannot classify that modality, or ``embed=True``). :func:`format_table`, :func:`to_json` and
:func:`to_csv` write the three output formats.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from chorus.data.decode import decode_audio, decode_image
from chorus.data.userdata import IMAGE_SUFFIXES
from chorus.errors import DataError
from chorus.serve.runs import LoadedRun

__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "Prediction",
    "expand_inputs",
    "format_table",
    "predict",
    "to_csv",
    "to_json",
]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg"})


@dataclass
class Prediction:
    """One input's answer: ``labels`` ((name, probability), most likely first) or ``embedding``."""

    input: str
    modality: str
    run: str
    labels: list[tuple[str, float]] | None = None
    embedding: list[float] | None = None


def _modality(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None


def expand_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """(file, modality) for each path; a folder gives its image and audio files (recursively, sorted)."""
    found: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = [(p, m) for p in sorted(path.rglob("*")) if p.is_file() and (m := _modality(p))]
            if not inside:
                raise DataError(
                    f"{path}: no image ({', '.join(sorted(IMAGE_SUFFIXES))}) or audio "
                    f"({', '.join(sorted(AUDIO_SUFFIXES))}) files in this folder"
                )
            found += inside
        elif path.is_file():
            modality = _modality(path)
            if modality is None:
                raise DataError(
                    f"{path}: not an image or audio file by its extension "
                    f"(images: {', '.join(sorted(IMAGE_SUFFIXES))}; audio: {', '.join(sorted(AUDIO_SUFFIXES))})"
                )
            found.append((path, modality))
        else:
            raise DataError(f"{path}: no such file or folder")
    return found


def predict(
    run: LoadedRun,
    paths: Sequence[str | os.PathLike[str]] = (),
    texts: Sequence[str] = (),
    *,
    classes: Sequence[str] | None = None,
    top_k: int = 5,
    embed: bool = False,
) -> list[Prediction]:
    """Labels (top ``top_k``, over ``classes`` or the run's own) or embeddings for files, folders and texts."""
    inputs = expand_inputs(paths)
    if not inputs and not texts:
        raise DataError("nothing to predict: give image or audio files, folders, or --text")
    for _, modality in inputs:
        run.require(modality)
    if texts:
        run.require("text")
    out = []
    for path, modality in inputs:
        data = path.read_bytes()
        raw = decode_image(data, str(path)) if modality == "image" else decode_audio(data, str(path))
        if embed or not run.can_zero_shot(modality):
            out.append(Prediction(str(path), modality, run.name, embedding=run.embed(modality, raw).cpu().tolist()))
        else:
            ranked = run.classify(modality, raw, list(classes) if classes is not None else None)
            out.append(Prediction(str(path), modality, run.name, labels=ranked[:top_k]))
    for text in texts:
        out.append(Prediction(text, "text", run.name, embedding=run.embed("text", text).cpu().tolist()))
    return out


def format_table(predictions: Sequence[Prediction], shown_dims: int = 4) -> str:
    """An aligned text table: input, modality, then the top labels with percentages (or the embedding's start)."""
    rows = [["input", "modality", "prediction"]]
    for p in predictions:
        if p.labels is not None:
            answer = ", ".join(f"{name} {100 * prob:.1f}%" for name, prob in p.labels)
        else:
            vector = p.embedding or []
            head = " ".join(f"{v:+.3f}" for v in vector[:shown_dims])
            answer = f"embedding[{len(vector)}] {head}{' …' if len(vector) > shown_dims else ''}"
        rows.append([p.input, p.modality, answer])
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    run = {p.run for p in predictions}
    return "\n".join(lines) + (f"\n(run: {', '.join(sorted(run))})" if run else "")


def to_json(predictions: Sequence[Prediction]) -> str:
    """A JSON list, one object per input (labels as ``{"label", "probability"}`` objects)."""
    records = []
    for p in predictions:
        record = {k: v for k, v in asdict(p).items() if v is not None}
        if p.labels is not None:
            record["labels"] = [{"label": name, "probability": prob} for name, prob in p.labels]
        records.append(record)
    return json.dumps(records)


def to_csv(predictions: Sequence[Prediction]) -> str:
    """Long CSV: one row per (input, rank) for labels; one row per input with a space-separated embedding."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["input", "modality", "run", "rank", "label", "probability", "embedding"])
    for p in predictions:
        if p.labels is not None:
            for rank, (name, prob) in enumerate(p.labels, start=1):
                writer.writerow([p.input, p.modality, p.run, rank, name, f"{prob:.6f}", ""])
        else:
            writer.writerow([p.input, p.modality, p.run, "", "", "", " ".join(f"{v:.6f}" for v in p.embedding or [])])
    return out.getvalue()
