"""``chorus.serve`` API through httpx (FastAPI's TestClient): answers checked against the library directly.

Every number the API returns is recomputed here without the serve code
(preprocessing built from the run's config, ``model.encode``, brute-force
numpy ranking, numpy DTW on a known shift), and every kind of bad input is
sent to check for a 4xx with a message and never a 5xx.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient
from PIL import Image
from test_serve_support import digit_images, served_folders

from chorus.contrastive import build_zero_shot_classifier
from chorus.data import ImageTransform, LogMel, build_dataset
from chorus.errors import ConfigError
from chorus.experiment import load_run
from chorus.serve import SearchIndex, build_index, create_app
from chorus.serve.index import make_faiss_index


@pytest.fixture(scope="module")
def folders(tmp_path_factory, real_data_root):
    return served_folders(tmp_path_factory, real_data_root)


@pytest.fixture(scope="module")
def client(folders, real_data_root):
    runs, index_dir = folders
    with TestClient(create_app(runs, index_dir)) as c:
        yield c


@pytest.fixture(scope="module")
def digits_run(folders, real_data_root):
    cfg, model, classes, tokenizer = load_run(folders[0][0])
    return cfg, model.eval(), classes, tokenizer


@pytest.fixture(scope="module")
def fsdd_run(folders, real_data_root):
    cfg, model, classes, tokenizer = load_run(folders[0][1])
    return cfg, model.eval(), classes, tokenizer


def wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, wave, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def fsdd_clip(real_data_root, index: int = 0) -> tuple[np.ndarray, int, int]:
    data = build_dataset("fsdd", root=str(real_data_root), split="test")
    sample = data[index]
    return sample["audio"].numpy(), sample["sample_rate"], sample["label"]


# ---------------------------------------------------------------------------- info


def test_health_and_runs_describe_what_was_loaded(client, digits_run):
    assert client.get("/health").json() == {"status": "ok", "runs": 2, "indexes": 2}
    catalogue = client.get("/runs").json()
    by_name = {r["name"]: r for r in catalogue["runs"]}
    assert by_name["digits"]["modalities"] == ["image", "text"]
    assert by_name["digits"]["classes"] == digits_run[2]
    assert by_name["fsdd"]["zero_shot"] == ["audio"]
    indexes = {i["name"]: i for i in catalogue["indexes"]}
    assert indexes["digits-images"]["count"] == len(build_dataset("digits", split="test"))
    assert indexes["fsdd-audio"] | {"count": 60, "modality": "audio", "run": "fsdd"} == indexes["fsdd-audio"]
    spec = client.get("/openapi.json").json()
    assert {"/embed", "/zeroshot", "/search", "/align", "/runs", "/health"} <= set(spec["paths"])


# ---------------------------------------------------------------------------- embed / zero-shot


def test_embed_image_and_text_equal_direct_model_outputs(client, digits_run):
    cfg, model, _, tokenizer = digits_run
    ((png, _),) = digit_images(1)
    got = client.post("/embed", files={"image": ("d.png", png, "image/png")}, data={"run": "digits"}).json()
    pixels = ImageTransform(cfg.data.image_size, channels=cfg.data.image_channels)(Image.open(io.BytesIO(png)))
    with torch.no_grad():
        want = model.encode("image", pixels[None])[0]
    assert got["dim"] == cfg.model.embed_dim == len(got["vector"])
    np.testing.assert_allclose(got["vector"], want.numpy(), atol=1e-5)

    got = client.post("/embed", data={"text": "a handwritten seven."}).json()
    ids, mask = tokenizer(["a handwritten seven."], cfg.data.context_length)
    with torch.no_grad():
        want = model.encode("text", ids, mask)[0]
    np.testing.assert_allclose(got["vector"], want.numpy(), atol=1e-5)
    assert abs(np.linalg.norm(got["vector"]) - 1) < 1e-5


def test_embed_audio_resamples_and_equals_direct_model_output(client, fsdd_run, real_data_root):
    cfg, model, _, _ = fsdd_run
    wave, rate, _ = fsdd_clip(real_data_root)
    got = client.post("/embed", files={"audio": ("a.wav", wav_bytes(wave, rate), "audio/wav")}).json()
    quantised = sf.read(io.BytesIO(wav_bytes(wave, rate)), dtype="float32")[0]  # what the server decodes
    mel = LogMel(sample_rate=cfg.data.sample_rate, n_mels=cfg.data.n_mels)(torch.from_numpy(quantised))
    with torch.no_grad():
        want = model.encode("audio", mel[None], torch.ones(1, mel.shape[-1], dtype=torch.bool))[0]
    assert got["run"] == "fsdd"
    np.testing.assert_allclose(got["vector"], want.numpy(), atol=1e-4)
    # The same clip sent at 16 kHz is resampled back to the run's 8 kHz: nearly the same vector.
    up = np.interp(np.arange(2 * len(wave)) / 2, np.arange(len(wave)), wave).astype(np.float32)
    other = client.post("/embed", files={"audio": ("a.wav", wav_bytes(up, 2 * rate), "audio/wav")}).json()
    assert float(np.dot(other["vector"], got["vector"])) > 0.9


def test_zeroshot_matches_library_and_beats_chance(client, digits_run):
    cfg, model, classes, tokenizer = digits_run
    weights = build_zero_shot_classifier(
        model, lambda t: tokenizer(t, cfg.data.context_length), classes, cfg.model.zero_shot_templates
    )
    transform = ImageTransform(cfg.data.image_size, channels=cfg.data.image_channels)
    correct, samples = 0, digit_images(40)
    for png, label in samples:
        got = client.post("/zeroshot", files={"image": ("d.png", png, "image/png")}).json()["labels"]
        with torch.no_grad():
            logits = (
                model.current_logit_scale()
                * model.encode("image", transform(Image.open(io.BytesIO(png)))[None])
                @ weights
            )
        probs = logits.softmax(-1)[0]
        assert [g["label"] for g in got] == [classes[i] for i in probs.argsort(descending=True)]
        np.testing.assert_allclose([g["score"] for g in got], probs.sort(descending=True).values.numpy(), atol=1e-5)
        correct += got[0]["label"] == classes[label]
    # 10 classes: chance is 4/40; a 60-step run reaches ~70 %, so 16/40 leaves a wide margin either way.
    assert correct >= 16, f"zero-shot top-1 {correct}/40"


def test_zeroshot_ranks_given_class_names_only(client):
    ((png, _),) = digit_images(1)
    got = client.post(
        "/zeroshot", files={"image": ("d.png", png, "image/png")}, data={"classes": "seven, zero,\nthree"}
    ).json()["labels"]
    assert sorted(g["label"] for g in got) == ["seven", "three", "zero"]
    scores = [g["score"] for g in got]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-5


def test_zeroshot_audio_uses_the_audio_run(client, fsdd_run, real_data_root):
    wave, rate, _ = fsdd_clip(real_data_root, 3)
    got = client.post("/zeroshot", files={"audio": ("a.wav", wav_bytes(wave, rate), "audio/wav")}).json()
    assert got["run"] == "fsdd" and sorted(g["label"] for g in got["labels"]) == sorted(fsdd_run[2])


# ---------------------------------------------------------------------------- search


def test_text_search_returns_images_of_the_named_digit(client, digits_run):
    cfg, model, _, tokenizer = digits_run
    got = client.post("/search", data={"text": "the number seven.", "index": "digits-images", "k": 10}).json()
    hits = got["hits"]
    assert got["query_modality"] == "text" and got["index_modality"] == "image" and len(hits) == 10
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # 36 of 360 test digits are sevens (chance precision 0.1); the trained run puts most of them first.
    assert sum(h["label"] == "seven" for h in hits) >= 5
    # Scores are cosines between the query and each item embedded independently here.
    data = build_dataset("digits", split="test")
    transform = ImageTransform(cfg.data.image_size, channels=cfg.data.image_channels)
    ids, mask = tokenizer(["the number seven."], cfg.data.context_length)
    with torch.no_grad():
        query = model.encode("text", ids, mask)[0]
        items = model.encode("image", torch.stack([transform(data[h["item"]]["image"]) for h in hits]))
    np.testing.assert_allclose([h["score"] for h in hits], (items @ query).numpy(), atol=1e-4)
    thumb = client.get(hits[0]["media_url"])
    assert thumb.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 64)  # 8×8 digits blown up ×8


def test_search_audio_index_equals_brute_force_ranking(client, fsdd_run, real_data_root):
    cfg, model, _, tokenizer = fsdd_run
    got = client.post("/search", data={"text": "someone saying four.", "index": "fsdd-audio", "k": 5}).json()
    data = build_dataset("fsdd", root=str(real_data_root), split="test")
    logmel = LogMel(sample_rate=cfg.data.sample_rate, n_mels=cfg.data.n_mels)
    with torch.no_grad():
        items = torch.cat([model.encode("audio", logmel(data[i]["audio"])[None]) for i in range(60)])
        ids, mask = tokenizer(["someone saying four."], cfg.data.context_length)
        scores = (items @ model.encode("text", ids, mask)[0]).numpy()
    assert [h["item"] for h in got["hits"]] == list(np.argsort(-scores)[:5])
    clip = client.get(got["hits"][0]["media_url"])
    assert clip.headers["content-type"] == "audio/wav"
    wave, rate = sf.read(io.BytesIO(clip.content))
    assert rate == 8000 and len(wave) == data[got["hits"][0]["item"]]["audio"].numel()


def test_approximate_indexes_recall_the_exact_neighbours(folders):
    # Cosine on unit vectors: random directions in 32-d, 4000 of them, 50 queries.
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:50] + 0.3 * rng.standard_normal((50, 32)).astype(np.float32)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    for kind, floor in (("flat", 1.0), ("hnsw", 0.9), ("ivf", 0.8)):
        index, used = make_faiss_index(vectors, kind)
        _, found = index.search(queries, 10)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        assert used == kind and recall >= floor, f"{kind}: recall@10 {recall:.3f}"


def test_index_reload_and_model_checksum(folders, tmp_path, real_data_root):
    runs, index_dir = folders
    meta = build_index(runs[0], "digits", tmp_path / "hnsw", kind="hnsw", max_items=100)
    assert meta["kind"] == "hnsw" and meta["count"] == 100
    flat = SearchIndex(index_dir / "digits-images")
    query = torch.from_numpy(flat.index.reconstruct(7))
    assert flat.search(query, 1)[0][0] == 7  # an item is its own nearest neighbour
    stale = tmp_path / "stale"
    shutil.copytree(index_dir / "digits-images", stale)
    meta = json.loads((stale / "index.json").read_text())
    (stale / "index.json").write_text(json.dumps(meta | {"model_sha256": "0" * 16}))
    with pytest.raises(ConfigError, match="rebuild"):
        create_app(runs[:1], stale)


# ---------------------------------------------------------------------------- align


def test_align_recovers_a_known_delay(client, real_data_root):
    wave, rate, _ = fsdd_clip(real_data_root, 1)
    delay = 0.25  # seconds of near-silence in front of clip B
    padded = np.concatenate([np.random.default_rng(0).normal(0, 1e-3, int(delay * rate)), wave]).astype(np.float32)
    got = client.post(
        "/align",
        files={
            "a": ("a.wav", wav_bytes(wave, rate), "audio/wav"),
            "b": ("b.wav", wav_bytes(padded, rate), "audio/wav"),
        },
    )
    assert got.status_code == 200, got.text
    body = got.json()
    path = np.array(body["path"])
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [body["frames"][0] - 1, body["frames"][1] - 1]
    assert (np.diff(path, axis=0) >= 0).all()
    # Past the first 50 ms, frame i of A should meet frame i + delay/hop of B (allow 2 frames of slack).
    shift = delay / body["frame_seconds"]
    steady = path[(path[:, 0] > 5) & (path[:, 0] < body["frames"][0] - 5)]
    assert np.median(np.abs(steady[:, 1] - steady[:, 0] - shift)) <= 2
    picture = body["picture"].split(",", 1)[1]
    assert Image.open(io.BytesIO(base64.b64decode(picture))).format == "PNG"
    same = client.post(
        "/align",
        files={"a": ("a.wav", wav_bytes(wave, rate), "audio/wav"), "b": ("b.wav", wav_bytes(wave, rate), "audio/wav")},
    ).json()
    assert all(i == j for i, j in same["path"])  # a clip against itself: the diagonal, at ~zero cost
    assert same["mean_cost"] < 1e-2 * body["mean_cost"]


# ---------------------------------------------------------------------------- bad input


def bomb_png(side: int = 60_000) -> bytes:
    """A valid-looking PNG header declaring side×side pixels with almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


BAD = [
    ("no input", "/embed", {}, {}, 422, "exactly one"),
    ("two inputs", "/embed", {"text": "hi"}, {"image": ("d.png", b"x", "image/png")}, 422, "exactly one"),
    ("empty file", "/embed", {}, {"image": ("d.png", b"", "image/png")}, 422, "empty"),
    ("garbage image", "/embed", {}, {"image": ("d.png", b"not an image", "image/png")}, 422, "image"),
    ("wrong type", "/embed", {}, {"image": ("d.txt", b"hello", "text/plain")}, 415, "text/plain"),
    ("bomb", "/zeroshot", {}, {"image": ("b.png", bomb_png(), "image/png")}, 413, "bomb"),
    ("garbage audio", "/zeroshot", {}, {"audio": ("a.wav", b"RIFF1234WAVEjunk", "audio/wav")}, 422, "audio"),
    (
        "long audio",
        "/embed",
        {},
        {"audio": ("a.wav", wav_bytes(np.zeros(8000 * 31, np.float32), 8000), "audio/wav")},
        413,
        "30 s",
    ),
    ("blank text", "/embed", {"text": "   "}, {}, 422, "empty"),
    ("long text", "/embed", {"text": "x" * 1001}, {}, 413, "1000"),
    ("unknown run", "/embed", {"text": "hi", "run": "../../etc"}, {}, 404, "unknown run"),
    ("one class", "/zeroshot", {"classes": "cat"}, {"image": ("d.png", None, "image/png")}, 422, "two class"),
    ("repeated classes", "/zeroshot", {"classes": "a,b,a"}, {"image": ("d.png", None, "image/png")}, 422, "repeat"),
    ("text zero-shot", "/zeroshot", {"text": "seven"}, {}, 422, "exactly one"),
    ("unknown index", "/search", {"text": "hi", "index": "/etc/passwd"}, {}, 404, "unknown index"),
    ("k zero", "/search", {"text": "hi", "k": "0"}, {}, 422, "k"),
    ("k not a number", "/search", {"text": "hi", "k": "many"}, {}, 422, "k"),
    (
        "image to text-only search",
        "/align",
        {},
        {"a": ("a.png", None, "image/png"), "b": ("b.png", None, "image/png")},
        415,
        "audio",
    ),
]


@pytest.mark.parametrize("name,path,data,files,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx(client, name, path, data, files, status, message):
    ((png, _),) = digit_images(1)
    files = {k: (f, png if body is None else body, t) for k, (f, body, t) in files.items()}
    response = client.post(path, data=data, files=files or None)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert message.lower() in json.dumps(detail).lower()


def test_oversized_bodies_and_paths_never_reach_the_disk(client):
    big = client.post("/embed", files={"image": ("big.png", b"\0" * (10 * 1024 * 1024 + 1), "image/png")})
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    chunked = client.post(
        "/embed", content=iter([b"x" * (1 << 20)] * 11), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert chunked.status_code == 413
    assert client.post("/embed", json={"text": "hi"}).status_code == 422
    for url in (
        "/static/../../../etc/passwd",
        "/static/%2e%2e%2fapp.py",
        "/media/digits-images/-1",
        "/media/digits-images/100000",
        "/media/..%2f..%2fetc/1",
        "/media/digits-images/1.png",
    ):
        assert client.get(url).status_code in (404, 422), url
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert "Drop an image" in client.get("/").text
