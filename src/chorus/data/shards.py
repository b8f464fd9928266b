"""Streaming WebDataset shards: pack any Chorus dataset (or a cross-dataset pairing) into tar shards and stream them back.

Why shards: a map-style dataset opens one small file per item, which is slow
on network file systems and object stores and cannot feed many GPUs. Packing
samples into a few large tar files (the WebDataset format, A. Aizman, G.
Maltby, T. Breuel, *High Performance I/O For Large Scale Deep Learning*, IEEE
BigData 2019) turns training input into sequential reads; the baseline it
should beat is per-file ``DataLoader`` reading of the map-style datasets.

Shard layout (WebDataset conventions, readable by the ``webdataset`` library
and by ``tar``): every sample is a group of members sharing a ``__key__``
(``{name}-{split}-{index:06d}``, the index into the packed dataset):
``KEY.png`` / ``KEY.jpg`` (image; a JPEG source file is stored as its original
bytes when they decode to exactly the sample's pixels, anything else as
lossless PNG), ``KEY.flac`` / ``KEY.wav`` (audio with its sample rate in the
header: FLAC 16-bit when every sample is an exact int16 value, as for FSDD,
otherwise 32-bit float WAV, so both are lossless), ``KEY.txt`` (text, UTF-8),
``KEY.cls`` (label, decimal) and ``KEY.json`` (every other field). Shards are
written to a temporary name and renamed, and ``manifest.json`` (shards, counts,
keys per shard, source) is written last, so a reader never sees a half-written
shard and a directory with a manifest is complete.

Splitting policy of :class:`ShardDataset`: the shard list of an epoch (the
manifest order, or a permutation seeded by ``seed + epoch`` when shuffling) is
identical on every process; the ``world_size × num_workers`` reader slots take
shards round-robin (slot ``rank * num_workers + worker`` reads shards
``slot, slot + S, slot + 2S, ...``). Every shard thus goes to exactly one slot
and every sample is read exactly once per epoch, whatever the shard count.
Ranks get equal sample counts only when the shard count is a multiple of
``world_size × num_workers`` and shards are equally full; otherwise some ranks
read one shard more (see ``docs/shards.md``).

A paired dataset (:func:`chorus.data.pairing.build_pairing`: FSDD audio × MNIST
image of the same digit, or class-name captions) is packed like any other.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.distributed as dist
import webdataset as wds
from braceexpand import braceexpand
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from tqdm.auto import tqdm

from chorus.data.base import ChorusDataset, OnError, Sample
from chorus.data.decode import decode_audio, decode_image, read_bytes
from chorus.data.pairing import build_pairing
from chorus.data.registry import build_dataset
from chorus.errors import ConfigError, DataError, DataNotFoundError

__all__ = ["ShardDataset", "pack_dataset", "MANIFEST"]

logger = logging.getLogger("chorus.data")

MANIFEST = "manifest.json"
FORMAT = "chorus-shards/1"
PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
IMAGE_EXTS, AUDIO_EXTS = ("png", "jpg", "jpeg"), ("flac", "wav")


# --------------------------------------------------------------------------- encoding


def _encode_image(image: Any, source: Any, where: str) -> tuple[str, bytes]:
    if not isinstance(image, Image.Image):
        raise ConfigError(
            f"{where}: 'image' is {type(image).__name__}, not a PIL image; pack raw samples (no transform)"
        )
    if isinstance(source, str) and Path(source).suffix.lower() in (".jpg", ".jpeg") and Path(source).is_file():
        data = read_bytes(source)
        original = decode_image(data, source)
        same = original.mode == image.mode and original.size == image.size
        if same and np.array_equal(np.asarray(original), np.asarray(image)):
            return "jpg", data
    if image.mode not in PNG_MODES:
        raise DataError(
            f"{where}: image mode {image.mode!r} cannot be stored losslessly as PNG (modes {sorted(PNG_MODES)})"
        )
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "png", buf.getvalue()


def _encode_audio(audio: Any, sample_rate: Any, where: str) -> tuple[str, bytes]:
    if not (isinstance(audio, torch.Tensor) and audio.dim() == 1 and audio.is_floating_point()):
        raise ConfigError(
            f"{where}: 'audio' must be a float waveform [T] (raw sample, no transform), got {audio!r:.60}"
        )
    if not isinstance(sample_rate, int):
        raise ConfigError(f"{where}: 'audio' needs an int 'sample_rate' field, got {sample_rate!r}")
    wave = audio.detach().cpu().numpy()
    scaled = wave.astype(np.float64) * 32768.0
    buf = io.BytesIO()
    if np.array_equal(scaled, np.round(scaled)) and scaled.min() >= -32768 and scaled.max() <= 32767:
        sf.write(buf, scaled.astype(np.int16), sample_rate, format="FLAC", subtype="PCM_16")
        return "flac", buf.getvalue()
    sf.write(buf, wave.astype(np.float32), sample_rate, format="WAV", subtype="FLOAT")
    return "wav", buf.getvalue()


def encode_sample(sample: Sample, key: str) -> dict[str, Any]:
    """A raw sample dict → WebDataset members ``{"__key__", ext: bytes}`` (see the module docstring)."""
    rest = dict(sample)
    out: dict[str, Any] = {"__key__": key}
    if "image" in rest:
        ext, out_bytes = _encode_image(rest.pop("image"), rest.get("path"), key)
        out[ext] = out_bytes
    if "audio" in rest:
        ext, out_bytes = _encode_audio(rest.pop("audio"), rest.pop("sample_rate", None), key)
        out[ext] = out_bytes
    if "text" in rest:
        text = rest.pop("text")
        if not isinstance(text, str):
            raise ConfigError(f"{key}: 'text' is {type(text).__name__}, not str; pack raw samples (no tokenizer)")
        out["txt"] = text.encode("utf-8")
    if "label" in rest:
        label = rest.pop("label")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ConfigError(f"{key}: 'label' must be an int, got {label!r}")
        out["cls"] = str(int(label)).encode()
    if rest:
        try:
            out["json"] = json.dumps(rest, ensure_ascii=False, sort_keys=True).encode("utf-8")
        except TypeError as err:
            raise ConfigError(f"{key}: fields {sorted(rest)} are not all JSON-able ({err})") from err
    return out


def decode_sample(raw: dict[str, Any], name: str) -> Sample:
    """WebDataset members → the sample dict the map-style datasets return, plus ``"__key__"``.

    ``name`` (shard url) appears in DataError messages. Unknown members are kept
    as bytes under their extension.
    """
    key = raw["__key__"]
    sample: Sample = {"__key__": key}
    for ext, data in raw.items():
        if ext.startswith("__"):
            continue
        where = f"{name}: member {key}.{ext}"
        if ext in IMAGE_EXTS:
            sample["image"] = decode_image(data, where)
        elif ext in AUDIO_EXTS:
            sample["audio"], sample["sample_rate"] = decode_audio(data, where)
        elif ext == "txt":
            try:
                sample["text"] = data.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{where}: not UTF-8 text ({err})") from err
        elif ext == "cls":
            try:
                sample["label"] = int(data)
            except ValueError as err:
                raise DataError(f"{where}: label is not an integer ({data[:20]!r})") from err
        elif ext == "json":
            try:
                fields = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataError(f"{where}: invalid JSON ({err})") from err
            if not isinstance(fields, dict):
                raise DataError(f"{where}: JSON is {type(fields).__name__}, expected an object")
            sample.update(fields)
        else:
            sample[ext] = data
    return sample


# --------------------------------------------------------------------------- packing


def _safe(name: str) -> str:
    """Dots end a WebDataset key and slashes make folders: keep names to ``[A-Za-z0-9_+-]``."""
    return re.sub(r"[^A-Za-z0-9_+-]", "_", name)


class _ShardSink:
    """Writes samples into numbered shards, each to a temp file renamed into place when full."""

    def __init__(self, out_dir: Path, prefix: str, maxcount: int, maxsize: int) -> None:
        self.out_dir, self.prefix, self.maxcount, self.maxsize = out_dir, prefix, maxcount, maxsize
        self.shards: list[dict[str, Any]] = []
        self._file: Any = None
        self._writer: wds.TarWriter | None = None
        self._tmp: Path | None = None

    def write(self, members: dict[str, Any]) -> None:
        size = sum(len(v) for k, v in members.items() if not k.startswith("__"))
        current = self.shards[-1] if self._writer is not None else None
        if current is not None and (current["count"] >= self.maxcount or current["bytes"] + size > self.maxsize):
            self.close()
            current = None
        if current is None:
            name = f"{self.prefix}-{len(self.shards):06d}.tar"
            self._tmp = self.out_dir / f".{name}.tmp"
            self._file = open(self._tmp, "wb")
            self._writer = wds.TarWriter(self._file, encoder=False, mtime=0)  # mtime 0: reproducible bytes
            current = {"name": name, "count": 0, "bytes": 0, "keys": []}
            self.shards.append(current)
        assert self._writer is not None
        self._writer.write(members)
        current["count"] += 1
        current["bytes"] += size
        current["keys"].append(members["__key__"])

    def close(self) -> None:
        """Finish the open shard: flush, fsync, then rename it to its final name."""
        if self._writer is None:
            return
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.out_dir / self.shards[-1]["name"]
        os.replace(self._tmp, final)  # type: ignore[arg-type]
        self.shards[-1]["bytes"] = final.stat().st_size
        self._writer = self._file = self._tmp = None

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()  # the tar stream must end before its file closes
            self._file.close()
            Path(self._tmp).unlink(missing_ok=True)  # type: ignore[arg-type]
            self._writer = self._file = self._tmp = None


def pack_dataset(
    dataset_or_name: ChorusDataset | str,
    out_dir: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    maxcount: int = 1000,
    maxsize: int = 1 << 30,
    pair: str | None = None,
    seed: int = 0,
    progress: bool = True,
    **dataset_kw: Any,
) -> list[Path]:
    """Write ``dataset_or_name`` as WebDataset shards ``out_dir/{name}-{split}-%06d.tar``; return their paths.

    A name is built with :func:`~chorus.data.build_dataset` (``root``,
    ``split`` and ``dataset_kw`` such as ``indices=`` go to it); with
    ``pair="mnist"`` (any labelled dataset of another modality) or
    ``pair="text"`` the name is first paired by :func:`~chorus.data.pairing.build_pairing` (seeded by
    ``seed``) and the shards are named ``{name}+{pair}-{split}``. A dataset
    instance is packed as is (its ``split`` is only used in the file names); it
    must return raw samples (no transform). A shard closes at ``maxcount``
    samples or before exceeding ``maxsize`` bytes of member data. Items the
    dataset skips (``on_error="skip"``) are left out and counted in the
    manifest. Any previous ``manifest.json`` in ``out_dir`` is removed first
    and the new one written last.
    """
    if maxcount < 1 or maxsize < 1:
        raise ConfigError(f"maxcount and maxsize must be positive, got {maxcount} and {maxsize}")
    if isinstance(dataset_or_name, str):
        if pair is not None:
            dataset: ChorusDataset = build_pairing(
                dataset_or_name, pair, root=root, split=split, seed=seed, **dataset_kw
            )
        else:
            dataset = build_dataset(dataset_or_name, root=root, split=split, **dataset_kw)
        if dataset.transform is not None:
            raise ConfigError(
                "pack_dataset stores raw samples: do not pass transform=; apply it when reading (ShardDataset)"
            )
    elif pair is not None or dataset_kw:
        raise ConfigError("pair= and dataset keywords apply only when the dataset is given by name")
    else:
        dataset = dataset_or_name
    name = _safe(getattr(dataset, "name", type(dataset).__name__.lower()))
    prefix = f"{name}-{_safe(split)}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    sink = _ShardSink(out, prefix, maxcount, maxsize)
    skipped = 0
    try:
        for index in tqdm(range(len(dataset)), desc=f"pack {prefix}", unit="sample", disable=not progress):
            sample = dataset[index]
            if sample is None:
                skipped += 1
                continue
            sink.write(encode_sample(sample, f"{prefix}-{index:06d}"))
        sink.close()
    except BaseException:
        sink.abort()
        raise
    if not sink.shards:
        raise DataError(f"{prefix}: nothing to pack ({len(dataset)} items, {skipped} skipped)")
    manifest = {
        "format": FORMAT,
        "source": {
            "dataset": name,
            "split": split,
            "pair": pair,
            "seed": seed if pair else None,
            "dataset_kw": {k: list(v) if isinstance(v, (range, tuple)) else v for k, v in dataset_kw.items()},
        },
        "count": sum(s["count"] for s in sink.shards),
        "skipped": skipped,
        "shards": sink.shards,
    }
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, default=str), encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
    return [out / s["name"] for s in sink.shards]


# --------------------------------------------------------------------------- reading


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a ``manifest.json`` (a directory means the manifest inside it)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: no shard manifest (packing unfinished?); pack with chorus.data.shards.pack_dataset "
            "or pass the shard urls explicitly"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: invalid JSON ({err})") from err
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("shards"), list)
    ):
        raise DataError(f"{path}: not a {FORMAT} manifest")
    return manifest


def _reader_position(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world size): explicit, else torch.distributed, else torchrun's env vars, else (0, 1).

    The env vars matter in DataLoader workers started with ``spawn``, where the
    process group of the parent is not initialised but the environment is.
    """
    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            found = dist.get_rank(), dist.get_world_size()
        else:
            found = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        rank = found[0] if rank is None else rank
        world_size = found[1] if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} outside world of size {world_size}")
    return rank, world_size


class ShardDataset(IterableDataset):
    """Streams packed shards back as sample dicts, split across ranks and DataLoader workers.

    ``urls_or_dir``: a directory or ``manifest.json`` written by
    :func:`pack_dataset`, a brace pattern (``"dir/fsdd-train-{000000..000007}.tar"``)
    or a list of urls/paths. With ``decode=True`` samples are the map-style
    datasets' dicts (PIL image, float32 audio [T] + ``sample_rate``, ``text``
    str, ``label`` int, JSON fields) plus ``"__key__"``; with ``decode=False``
    the raw ``{"__key__", "__url__", ext: bytes}`` members. ``transform`` is
    applied last. ``shuffle_buffer > 0`` turns shuffling on: the shard order is
    permuted per epoch (seed ``seed + epoch``, identical on all ranks) and
    samples pass through a buffer of that size seeded by (seed, epoch, slot).
    Call ``set_epoch(e)`` before each epoch; with ``persistent_workers=True``
    the workers keep the epoch they started with. ``rank``/``world_size``
    override the process group (see :func:`_reader_position`). ``on_error``
    follows :mod:`chorus.data.base`: ``"raise"`` a DataError naming the shard
    and member, or ``"skip"`` with a warning (a corrupt sample is dropped; a
    corrupt tar loses the rest of that shard), counted in ``skipped``.
    """

    def __init__(
        self,
        urls_or_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        shuffle_buffer: int = 0,
        seed: int = 0,
        transform: Callable[[Sample], Sample] | None = None,
        decode: bool = True,
        on_error: OnError = "raise",
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if shuffle_buffer < 0:
            raise ConfigError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        self.manifest: dict[str, Any] | None = None
        if isinstance(urls_or_dir, (str, os.PathLike)) and (
            Path(urls_or_dir).is_dir() or str(urls_or_dir).endswith(".json")
        ):
            self.manifest = read_manifest(urls_or_dir)
            base = Path(urls_or_dir) if Path(urls_or_dir).is_dir() else Path(urls_or_dir).parent
            self.urls = [str(base / s["name"]) for s in self.manifest["shards"]]
        elif isinstance(urls_or_dir, (str, os.PathLike)):
            self.urls = list(braceexpand(str(urls_or_dir)))
        else:
            self.urls = [str(u) for u in urls_or_dir]
        if not self.urls:
            raise ConfigError(f"no shards in {urls_or_dir!r}")
        self.shuffle_buffer, self.seed, self.transform = shuffle_buffer, seed, transform
        self.decode, self.on_error = decode, on_error
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skipped = 0

    @property
    def epoch_size(self) -> int | None:
        """Samples in one epoch over all ranks (from the manifest; None for bare urls)."""
        return int(self.manifest["count"]) if self.manifest is not None else None

    def set_epoch(self, epoch: int) -> None:
        """Select epoch ``epoch``'s shard order and shuffle seeds (call before iterating)."""
        self.epoch = epoch

    def shard_order(self) -> list[str]:
        """This epoch's shard list, the same on every rank and worker."""
        if self.shuffle_buffer == 0:
            return list(self.urls)
        order = list(self.urls)
        random.Random(self.seed + self.epoch).shuffle(order)
        return order

    def slot_shards(self, rank: int, world_size: int, worker: int, num_workers: int) -> list[str]:
        """Shards read by reader slot ``rank * num_workers + worker`` this epoch (round-robin)."""
        if len(self.urls) < world_size:
            raise ConfigError(f"{len(self.urls)} shards cannot feed {world_size} ranks; pack with a smaller maxcount")
        slots = world_size * num_workers
        return self.shard_order()[rank * num_workers + worker :: slots]

    def _fail(self, err: Exception, what: str) -> None:
        if self.on_error == "raise":
            raise err
        self.skipped += 1
        logger.warning("shards: skipping %s: %s", what, err)

    def _raw(self, urls: list[str]) -> Iterator[dict[str, Any]]:
        for url in urls:
            try:
                yield from wds.tarfile_to_samples(handler=wds.reraise_exception)(iter([{"url": url}]))
            except Exception as err:  # tarfile / gopen / grouping errors of every type
                if isinstance(err, FileNotFoundError):
                    error: DataError = DataNotFoundError(f"{url}: shard not found")
                else:
                    error = DataError(
                        f"{url}: corrupt shard ({type(err).__name__}: {err.args[0] if err.args else err})"
                    )
                self._fail(error, f"rest of shard {url}")

    def __iter__(self) -> Iterator[Sample]:
        rank, world_size = _reader_position(self.rank, self.world_size)
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        samples: Iterator[dict[str, Any]] = self._raw(self.slot_shards(rank, world_size, worker, num_workers))
        if self.shuffle_buffer:
            slot_seed = f"{self.seed}-{self.epoch}-{rank * num_workers + worker}"
            samples = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=random.Random(slot_seed))(
                samples
            )
        for raw in samples:
            if not self.decode:
                yield self.transform(raw) if self.transform is not None else raw
                continue
            try:
                sample = decode_sample(raw, raw.get("__url__", "?"))
            except DataError as err:
                self._fail(err, f"sample {raw['__key__']}")
                continue
            yield self.transform(sample) if self.transform is not None else sample
