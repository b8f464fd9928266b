"""Nearest-neighbour index over a dataset embedded by a run: what ``POST /search`` queries.

What: :func:`build_index` embeds one modality of a dataset split with a
trained run (e.g. the images of MNIST with an image–text CLIP), stores the
unit-norm vectors in a FAISS index (Johnson, Douze & Jégou, "Billion-scale
similarity search with GPUs", 2019), and keeps a small preview of every item
(PNG thumbnail, WAV clip or the text itself) so a search result can be shown.
:class:`SearchIndex` reloads the folder; a query embedded in *any* modality of
the same run (text, audio, image) is searched against it, because a
contrastive run puts all its modalities in one space.

Why these FAISS index types: vectors are L2-normalised, so inner product is
cosine similarity. Up to ``EXACT_LIMIT`` items an exact ``IndexFlatIP`` scan
is both exact and fast (a few ms for 50k × 64 floats); beyond it, HNSW
(Malkov & Yashunin 2018) answers in logarithmic time at recall close to 1,
or IVF (inverted lists over k-means cells) when memory matters more. The
baseline every approximate index must be compared with is the exact scan;
``tests/test_serve_api.py`` measures HNSW and IVF recall@10 against it.

Folder layout (``out_dir``): ``index.json`` (run, dataset, split, modality,
kind, model checksum, items), ``vectors.faiss``, ``media/NNNNNN.{png,wav}``.
The model checksum stops a server from answering with an index built by a
different model than the one it loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import soundfile as sf
import torch
from PIL import Image

from chorus.data import Collate, build_dataset
from chorus.data.audio import resample
from chorus.errors import ConfigError, DataError
from chorus.serve.runs import LoadedRun

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]
EXACT_LIMIT = 50_000
THUMB_MIN, THUMB_MAX = 64, 128
MEDIA_TYPES = {".png": "image/png", ".wav": "audio/wav"}


def model_checksum(run_dir: str | os.PathLike[str]) -> str:
    """SHA-256 of a run's ``model.safetensors`` (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(Path(run_dir) / "model.safetensors", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def make_faiss_index(vectors: np.ndarray, kind: IndexKind = "auto", seed: int = 0) -> tuple[faiss.Index, str]:
    """A FAISS inner-product index holding ``vectors`` [N, D] (float32, unit rows); returns (index, kind used)."""
    n, d = vectors.shape
    if kind == "auto":
        kind = "flat" if n <= EXACT_LIMIT else "hnsw"
    index: faiss.Index
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        index = hnsw
    elif kind == "ivf":
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # FAISS wants >= 39 training points per cell
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = seed
        ivf.train(vectors)
        index = ivf
    else:
        raise ConfigError(f"index kind {kind!r}: valid kinds are auto, flat, hnsw, ivf")
    index.add(vectors)
    tune(index)
    return index, kind


def tune(index: faiss.Index) -> None:
    """Search-time knobs (not saved by FAISS): HNSW beam width, IVF cells probed."""
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = 128
    elif isinstance(index, faiss.IndexIVF):
        index.nprobe = max(1, index.nlist // 4)


# ---------------------------------------------------------------------------- building


def _thumbnail(image: Image.Image) -> bytes:
    img = image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode)
    side = max(img.size)
    if side < THUMB_MIN:  # tiny digits: blow up with hard pixel edges
        factor = -(-THUMB_MIN // side)
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    else:
        img.thumbnail((THUMB_MAX, THUMB_MAX), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _wav(wave: torch.Tensor, sample_rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, wave.numpy(), sample_rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _pick_modality(run: LoadedRun, available: Sequence[str], modality: str | None, dataset: str) -> str:
    shared = [m for m in available if m in run.modalities]
    if modality is not None:
        if modality not in shared:
            raise ConfigError(
                f"modality {modality!r}: dataset {dataset!r} has {list(available)}, "
                f"run {run.name!r} encodes {run.modalities}; pick one in both"
            )
        return modality
    non_text = [m for m in shared if m != "text"]
    if len(non_text) == 1 or (not non_text and shared):
        return (non_text or shared)[0]
    raise ConfigError(f"dataset {dataset!r} and run {run.name!r} share modalities {shared}: choose one with modality=")


def _batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_index(
    run_dir: str | os.PathLike[str],
    dataset: str,
    out_dir: str | os.PathLike[str],
    *,
    split: str = "test",
    modality: str | None = None,
    kind: IndexKind = "auto",
    data_root: str | None = None,
    options: dict[str, Any] | None = None,
    max_items: int | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Embed ``modality`` of ``dataset``/``split`` with the run, save a FAISS index + previews to ``out_dir``.

    ``options`` go to the dataset (default: the run's own ``data.options`` when
    it is the run's dataset, path and columns included). ``dataset`` may be a user's folder/manifest spec
    (``folder:PATH``). ``max_items`` keeps the first N items. Returns
    the saved ``index.json`` content (without the per-item list).
    """
    run = LoadedRun(run_dir)
    own = run.cfg.data.same_dataset(dataset)
    if options is None:
        options = run.cfg.data.dataset_options(train=True) if own else {}
    data = build_dataset(dataset, root=data_root, split=split, **options)
    modality = _pick_modality(run, data.modalities, modality, dataset)
    ids = list(range(len(data) if max_items is None else min(len(data), max_items)))
    if not ids:
        raise DataError(f"dataset {dataset!r} split {split!r} is empty: nothing to index")

    out = Path(out_dir)
    (out / "media").mkdir(parents=True, exist_ok=True)
    collate = Collate(run.tokenizer, run.cfg.data.context_length)
    classes = list(getattr(data, "classes", []) or [])
    names = run.classes if own and len(run.classes) == len(classes) else classes
    vectors, items = [], []
    for chunk in _batches(ids, batch_size):
        samples, raws = [], []
        for i in chunk:
            raw = data[i]
            assert raw is not None  # the dataset is built with on_error="raise", so no item is skipped
            if modality == "audio":
                wave = resample(raw["audio"], raw.get("sample_rate", run.sample_rate), run.sample_rate)
                raw = raw | {"audio": wave}
                sample = {"audio": wave, "sample_rate": run.sample_rate}
            else:
                sample = {modality: raw[modality]}
            samples.append(run.transform(sample))
            raws.append(raw)
        collated = collate(samples)
        assert collated is not None  # Collate gives None only when every sample was skipped
        batch = {k: v.to(run.device) if isinstance(v, torch.Tensor) else v for k, v in collated.items()}
        vectors.append(run.embed_batch(modality, batch).cpu().numpy())
        for i, raw in zip(chunk, raws):
            item: dict[str, Any] = {"id": i}
            if "label" in raw and names:
                item["label"] = names[int(raw["label"])]
            if modality == "image":
                item["media"] = f"{i:06d}.png"
                (out / "media" / item["media"]).write_bytes(_thumbnail(raw["image"]))
            elif modality == "audio":
                item["media"] = f"{i:06d}.wav"
                (out / "media" / item["media"]).write_bytes(_wav(raw["audio"], run.sample_rate))
            else:
                item["text"] = raw["text"]
            items.append(item)
    matrix = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)
    index, used = make_faiss_index(matrix, kind)
    faiss.write_index(index, str(out / "vectors.faiss"))
    meta = {
        "run_dir": str(run.run_dir),
        "run": run.name,
        "model_sha256": model_checksum(run.run_dir),
        "dataset": dataset,
        "split": split,
        "modality": modality,
        "kind": used,
        "count": len(items),
        "dim": int(matrix.shape[1]),
    }
    (out / "index.json").write_text(json.dumps(meta | {"items": items}, indent=1) + "\n")
    return meta


# ---------------------------------------------------------------------------- loading


class SearchIndex:
    """A saved index folder, loaded once: ``search(vector, k)`` → [(item, cosine)], ``media(i)`` → bytes."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).resolve()
        self.name = self.folder.name
        meta_path = self.folder / "index.json"
        if not meta_path.is_file() or not (self.folder / "vectors.faiss").is_file():
            raise ConfigError(
                f"{self.folder} is not a Chorus index: index.json or vectors.faiss is missing "
                f"(make one with `chorus index build RUN_DIR --dataset NAME`)"
            )
        meta = json.loads(meta_path.read_text())
        self.items: list[dict[str, Any]] = meta.pop("items")
        self.meta = meta
        self.index = faiss.read_index(str(self.folder / "vectors.faiss"))
        tune(self.index)
        if self.index.ntotal != len(self.items):
            raise ConfigError(
                f"{self.folder}: vectors.faiss holds {self.index.ntotal} vectors, "
                f"index.json lists {len(self.items)} items"
            )
        # Preview files are listed once here; requests only ever pick from this table by integer position.
        self._media = {
            pos: self.folder / "media" / item["media"] for pos, item in enumerate(self.items) if "media" in item
        }

    @property
    def modality(self) -> str:
        return self.meta["modality"]

    def check_model(self, run: LoadedRun) -> None:
        if self.meta["model_sha256"] != model_checksum(run.run_dir):
            raise ConfigError(
                f"index {self.name!r} was built with another version of run {run.name!r} "
                f"(model checksum differs): rebuild it"
            )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name} | {k: v for k, v in self.meta.items() if k != "run_dir"}

    def search(self, vector: torch.Tensor, k: int) -> list[tuple[int, float]]:
        query = np.ascontiguousarray(vector.detach().float().cpu().numpy().reshape(1, -1))
        scores, ids = self.index.search(query, min(k, len(self.items)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def media(self, position: int) -> tuple[bytes, str] | None:
        path = self._media.get(position)
        if path is None:
            return None
        return path.read_bytes(), MEDIA_TYPES[path.suffix]
