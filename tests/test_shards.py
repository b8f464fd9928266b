"""WebDataset shards: exact round trips from real data, exactly-once splitting over ranks × workers, bad shards.

Reference values come from the map-style datasets (and for pairings from the
partner dataset and an independent digit-word table). The torchrun test uses
this file as its per-rank script: ``python tests/test_shards.py SHARD_DIR OUT_JSON``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

pytest.importorskip("webdataset")

from chorus.data import Collate, ImageTransform, SampleTransform, build_dataset  # noqa: E402
from chorus.data.base import ChorusDataset  # noqa: E402
from chorus.data.shards import MANIFEST, ShardDataset, pack_dataset  # noqa: E402
from chorus.errors import ConfigError, DataError, DataNotFoundError  # noqa: E402

FSDD_IDX = list(range(0, 2000, 10))  # 200 clips
CALTECH_IDX = list(range(0, 3000, 30))  # 100 images, one per class for 100 classes
COCO_IDX = list(range(5, 945, 15))  # 63 train pairs, including the one greyscale photo (pair 755)
WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def by_key(samples):
    return {s["__key__"]: s for s in samples}


def same_image(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def manifest_keys(folder: Path) -> list[str]:
    return [k for s in json.loads((folder / MANIFEST).read_text())["shards"] for k in s["keys"]]


@pytest.fixture(scope="module")
def packed(tmp_path_factory, real_data_root):
    out = tmp_path_factory.mktemp("shards")
    kw = dict(root=real_data_root, progress=False)
    pack_dataset("fsdd", out / "fsdd", indices=FSDD_IDX, maxcount=50, **kw)
    pack_dataset("caltech101", out / "caltech", split="all", indices=CALTECH_IDX, maxcount=25, **kw)
    pack_dataset("coco_captions", out / "coco", indices=COCO_IDX, maxcount=16, **kw)
    pack_dataset("fsdd", out / "fsdd_mnist", pair="mnist", indices=FSDD_IDX[:100], maxcount=25, seed=3, **kw)
    pack_dataset("fsdd", out / "fsdd_text", pair="text", indices=FSDD_IDX[:40], maxcount=10, **kw)
    pack_dataset(
        "caltech101", out / "caltech_text", split="all", pair="text", indices=CALTECH_IDX[:20], maxcount=5, **kw
    )
    return out


@pytest.fixture(scope="module")
def digits_shards(tmp_path_factory):
    """400 embedded digits (no data root needed): 8 equal shards and 6 uneven ones (5 × 70 + 50)."""
    out = tmp_path_factory.mktemp("digits")
    pack_dataset("digits", out / "even", indices=range(400), maxcount=50, progress=False)
    pack_dataset("digits", out / "uneven", indices=range(400), maxcount=70, progress=False)
    return out


def test_fsdd_round_trip_is_exact_and_manifest_is_complete(packed, real_data_root):
    folder = packed / "fsdd"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["count"] == 200 and len(manifest["shards"]) == 4
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST] + [s["name"] for s in manifest["shards"]])
    source = build_dataset("fsdd", root=real_data_root, indices=FSDD_IDX)
    got = by_key(ShardDataset(folder))
    assert sorted(got) == sorted(manifest_keys(folder)) and len(got) == 200
    for i in range(len(source)):
        ref, out = source[i], got[f"fsdd-train-{i:06d}"]
        assert torch.equal(out["audio"], ref["audio"]) and out["audio"].dtype == torch.float32
        assert (out["sample_rate"], out["label"], out["speaker"], out["path"]) == (
            ref["sample_rate"],
            ref["label"],
            ref["speaker"],
            ref["path"],
        )
    raw = next(iter(ShardDataset(folder, decode=False)))
    assert "flac" in raw and "wav" not in raw  # int16-exact audio is stored as FLAC


def test_caltech_round_trip_keeps_original_jpeg_bytes(packed, real_data_root):
    source = build_dataset("caltech101", root=real_data_root, split="all", indices=CALTECH_IDX)
    got = by_key(ShardDataset(packed / "caltech"))
    raw = by_key(ShardDataset(packed / "caltech", decode=False))
    assert len(got) == 100
    for i in range(len(source)):
        ref, key = source[i], f"caltech101-all-{i:06d}"
        assert same_image(got[key]["image"], ref["image"])
        assert (got[key]["label"], got[key]["text"]) == (ref["label"], ref["text"])
        assert raw[key]["jpg"] == Path(ref["path"]).read_bytes()


def test_coco_round_trip_converted_greyscale_goes_to_png(packed, real_data_root):
    source = build_dataset("coco_captions", root=real_data_root, indices=COCO_IDX)
    got = by_key(ShardDataset(packed / "coco"))
    raw = by_key(ShardDataset(packed / "coco", decode=False))
    assert len(json.loads((packed / "coco" / MANIFEST).read_text())["shards"]) >= 4
    formats = Counter()
    for i in range(len(source)):
        ref, key = source[i], f"coco_captions-train-{i:06d}"
        assert same_image(got[key]["image"], ref["image"])
        assert (got[key]["text"], got[key]["image_id"]) == (ref["text"], ref["image_id"])
        is_jpeg = "jpg" in raw[key]
        formats[is_jpeg] += 1
        # Only the greyscale photo, converted to RGB by the loader, differs from its file.
        assert is_jpeg == (Image.open(ref["path"]).mode == "RGB")
    assert formats[False] == 1


def test_audio_image_pairs_match_digits_and_partner_pixels(packed, real_data_root):
    got = list(ShardDataset(packed / "fsdd_mnist"))
    fsdd = build_dataset("fsdd", root=real_data_root, indices=FSDD_IDX[:100])
    mnist = build_dataset("mnist", root=real_data_root, split="train")
    assert len(got) == 100
    partners = []
    for s in got:
        i = int(s["__key__"].rsplit("-", 1)[1])
        assert torch.equal(s["audio"], fsdd[i]["audio"]) and s["label"] == fsdd[i]["label"]
        ref = mnist[s["mnist_index"]]
        assert ref["label"] == s["label"] and same_image(s["image"], ref["image"])
        partners.append(s["mnist_index"])
    # Seeded and spread: 100 clips over 10 digits use 100 distinct images (pools hold ~800 per digit).
    assert len(set(partners)) == 100


def test_text_pairings_caption_the_class(packed, real_data_root):
    for s in ShardDataset(packed / "fsdd_text"):
        assert s["text"] == f"the spoken digit {WORDS[s['label']]}" and s["audio"].numel() > 0
    caltech = build_dataset("caltech101", root=real_data_root, split="all", indices=CALTECH_IDX[:20])
    got = by_key(ShardDataset(packed / "caltech_text"))
    for i in range(20):
        assert got[f"caltech101+text-all-{i:06d}"]["text"] == f"a photo of a {caltech[i]['text']}"


@pytest.mark.parametrize("layout", ["even", "uneven"])
def test_two_ranks_two_workers_see_every_sample_once(digits_shards, layout):
    folder = digits_shards / layout
    expected = manifest_keys(folder)
    for shuffle, epoch in ((0, 0), (64, 0), (64, 1)):
        per_rank = []
        for rank in range(2):
            ds = ShardDataset(folder, rank=rank, world_size=2, shuffle_buffer=shuffle, seed=5, decode=False)
            ds.set_epoch(epoch)
            per_rank.append([s["__key__"] for s in DataLoader(ds, batch_size=None, num_workers=2)])
        everything = per_rank[0] + per_rank[1]
        assert len(everything) == len(set(everything)) == 400 and set(everything) == set(expected)
        if layout == "even":
            assert len(per_rank[0]) == len(per_rank[1]) == 200
        if shuffle and epoch == 0:
            first_epoch = per_rank
        elif shuffle:
            assert per_rank != first_epoch  # set_epoch reshuffles (identical orders: ~impossible)
    assert ShardDataset(folder).epoch_size == 400


def test_same_epoch_same_order_and_decoded_digits_match(digits_shards):
    folder = digits_shards / "even"
    a = [s["__key__"] for s in ShardDataset(folder, shuffle_buffer=32, seed=1)]
    b = [s["__key__"] for s in ShardDataset(folder, shuffle_buffer=32, seed=1)]
    assert a == b and a != sorted(a)
    source = build_dataset("digits", indices=range(400))
    for s in ShardDataset(folder, transform=SampleTransform({"label": lambda y: y + 100})):
        i = int(s["__key__"].rsplit("-", 1)[1])
        assert s["label"] == source[i]["label"] + 100 and same_image(s["image"], source[i]["image"])
    # Straight into the project's batching: ImageTransform per sample, Collate per batch.
    loader = DataLoader(
        ShardDataset(folder, transform=SampleTransform({"image": ImageTransform(8, channels=1)})),
        batch_size=16,
        collate_fn=Collate(),
    )
    batch = next(iter(loader))
    assert batch["image"].shape == (16, 1, 8, 8) and batch["label"].dtype == torch.long
    assert batch["label"].tolist() == [source[int(k.rsplit("-", 1)[1])]["label"] for k in batch["__key__"]]


def test_packing_is_reproducible_and_atomic(tmp_path):
    first = pack_dataset("digits", tmp_path / "a", indices=range(60), maxcount=20, progress=False)
    second = pack_dataset("digits", tmp_path / "b", indices=range(60), maxcount=20, progress=False)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]

    class Breaks(ChorusDataset):
        name = "breaks"
        modalities = ("image",)

        def __init__(self) -> None:
            super().__init__(list(range(50)), [0] * 50, ["x"], None, "raise")

        def load(self, index: int):
            if index == 30:
                raise DataError("breaks: item 30 is corrupt")
            return {"image": Image.new("L", (4, 4), index), "label": 0}

    with pytest.raises(DataError, match="item 30"):
        pack_dataset(Breaks(), tmp_path / "a", maxcount=20, progress=False)
    # The old manifest is gone, the shard being written was discarded, finished ones stay.
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["breaks-train-000000.tar", *[p.name for p in first]]
    with pytest.raises(DataNotFoundError, match="no shard manifest"):
        ShardDataset(tmp_path / "a")


def test_float_audio_and_json_fields_round_trip(tmp_path):
    class Noise(ChorusDataset):
        name = "noise"
        modalities = ("audio",)

        def __init__(self) -> None:
            super().__init__(list(range(6)), [1] * 6, ["x"], None, "raise")

        def load(self, index: int):
            wave = torch.rand(100 + index, generator=torch.Generator().manual_seed(index)) * 2 - 1
            return {"audio": wave, "sample_rate": 16000, "label": 1, "tags": ["a", index], "score": 0.5 * index}

    pack_dataset(Noise(), tmp_path, split="x", maxcount=4, progress=False)
    got = by_key(ShardDataset(tmp_path))
    for i in range(6):
        ref, out = Noise()[i], got[f"noise-x-{i:06d}"]
        assert torch.equal(out["audio"], ref["audio"])
        assert (out["sample_rate"], out["tags"], out["score"], out["label"]) == (16000, ["a", i], 0.5 * i, 1)
    assert "wav" in next(iter(ShardDataset(tmp_path, decode=False)))  # not int16-exact → float WAV

    class Bad(Noise):
        def load(self, index: int):
            return {**super().load(index), "extra": object()}

    with pytest.raises(ConfigError, match="extra"):
        pack_dataset(Bad(), tmp_path / "bad", progress=False)


def test_transformed_samples_and_bad_arguments_are_refused(tmp_path, digits_shards):
    with pytest.raises(ConfigError, match="raw samples"):
        pack_dataset("digits", tmp_path, transform=SampleTransform({"image": np.asarray}), progress=False)
    with pytest.raises(ConfigError, match="no caption template"):
        pack_dataset("coco_captions", tmp_path, pair="text", progress=False)
    with pytest.raises(ConfigError, match="both datasets have modality"):
        pack_dataset("digits", tmp_path, pair="digits", progress=False)
    with pytest.raises(ConfigError, match="cannot feed 9 ranks"):
        list(ShardDataset(digits_shards / "even", rank=0, world_size=9))


def _corrupt_member(shard: Path, suffix: str) -> str:
    """Overwrite the data of the first ``*.suffix`` member with zeros in place (the tar stays valid)."""
    with tarfile.open(shard) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith(suffix))
    with open(shard, "r+b") as fh:
        fh.seek(member.offset_data)
        fh.write(b"\0" * member.size)
    return member.name.split(".")[0]


def test_corrupt_member_raises_or_is_skipped(packed, tmp_path):
    folder = tmp_path / "fsdd"
    shutil.copytree(packed / "fsdd", folder)
    shard = sorted(folder.glob("*.tar"))[1]
    key = _corrupt_member(shard, ".flac")
    with pytest.raises(DataError, match=f"{shard.name}: member {key}.flac: cannot decode audio"):
        list(ShardDataset(folder))
    ds = ShardDataset(folder, on_error="skip")
    keys = [s["__key__"] for s in ds]
    assert len(keys) == 199 and key not in keys and ds.skipped == 1


def test_truncated_shard_raises_or_loses_its_tail(packed, tmp_path):
    folder = tmp_path / "fsdd"
    shutil.copytree(packed / "fsdd", folder)
    shard = sorted(folder.glob("*.tar"))[2]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2 + 100])
    with pytest.raises(DataError, match=f"{shard.name}: corrupt shard"):
        list(ShardDataset(folder))
    ds = ShardDataset(folder, on_error="skip")
    keys = [s["__key__"] for s in ds]
    assert 150 < len(keys) < 200 and ds.skipped == 1  # other shards whole, this one cut mid-way
    shard.unlink()
    with pytest.raises(DataNotFoundError, match="shard not found"):
        list(ShardDataset(folder))


def test_torchrun_two_ranks_two_workers_gather_every_key_once(digits_shards, tmp_path):
    folder, result = digits_shards / "uneven", tmp_path / "keys.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        __file__,
        str(folder),
        str(result),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    per_rank = json.loads(result.read_text())
    everything = per_rank[0] + per_rank[1]
    assert len(everything) == len(set(everything)) == 400 and set(everything) == set(manifest_keys(folder))
    assert per_rank[0] and per_rank[1]


def _rank_main(folder: str, result: str) -> None:
    """Per-rank body under torchrun: rank and world size come from the process group."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    keys = [s["__key__"] for s in DataLoader(ShardDataset(folder, decode=False), batch_size=None, num_workers=2)]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, keys)
    if dist.get_rank() == 0:
        Path(result).write_text(json.dumps(gathered))
    dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(sys.argv[1], sys.argv[2])
