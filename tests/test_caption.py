"""Image captioning: metrics against reference values, search consistency, the text-only corpus, scene captions,
a short training run that must learn, and the captioner run folder behind ``chorus caption``."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import Counter

import pytest
import torch
from PIL import Image

from chorus.cli import main
from chorus.data import BPETokenizer
from chorus.data.root import data_root
from chorus.errors import ConfigError
from chorus.eval.caption_metrics import caption_scores, consensus_index, tokenize
from chorus.translate import caption as cap
from chorus.translate.caption_run import (
    CaptionerSpec,
    ImageSpec,
    LoadedCaptioner,
    build_captioner,
    save_captioner,
)
from chorus.translate.decoding import strip
from chorus.translate.scene_captions import (
    attribute_accuracy,
    chance_object_accuracy,
    parse_scene_caption,
    scene_caption_data,
)

HYPS = {
    1: "A man riding a wave on top of a surfboard.",
    2: "a cat sitting on a laptop keyboard",
    3: "Two dogs are playing with a frisbee in the park",
}
REFS = {
    1: [
        "A surfer riding a large wave on a surfboard.",
        "a man riding a wave on a surf board",
        "Man on top of a surfboard riding a wave.",
        "A person surfing a big wave in the ocean.",
        "A man is riding a wave on his surfboard",
    ],
    2: [
        "A cat is sitting on a laptop.",
        "a cat laying on the keyboard of a laptop",
        "A grey cat sitting on top of a laptop keyboard.",
        "The cat is on the computer keyboard.",
        "a kitten sitting on an open laptop computer",
    ],
    3: [
        "Two dogs playing with a frisbee in a park.",
        "A pair of dogs chase a frisbee on the grass.",
        "two dogs are running after a frisbee",
        "Dogs play with a frisbee in a green park.",
        "Two dogs fight over a frisbee in the park.",
    ],
}


def test_tokenize_lowercases_and_drops_punctuation() -> None:
    assert tokenize("  A man, riding -- a WAVE!  ") == "a man riding a wave"
    assert tokenize("The dog's toy.") == "the dog's toy"


def test_bleu_matches_sacrebleu_on_the_same_tokens() -> None:
    sacrebleu = pytest.importorskip("sacrebleu")
    ours = caption_scores(HYPS, REFS)
    keys = sorted(HYPS)
    refs = [[tokenize(REFS[k][j]) for k in keys] for j in range(5)]
    theirs = sacrebleu.corpus_bleu([tokenize(HYPS[k]) for k in keys], refs, tokenize="none", smooth_method="none")
    assert ours["BLEU-4"] * 100 == pytest.approx(theirs.score, abs=1e-6)
    assert ours["BLEU-1"] == pytest.approx(theirs.precisions[0] / 100 * theirs.bp, abs=1e-9)


def _cider_d(hyps: dict, refs: dict, n: int = 4, sigma: float = 6.0) -> float:
    """CIDEr-D written out from Vedantam et al. 2015 (as in the COCO evaluation code), independently of it."""

    def grams(text: str, k: int) -> Counter:
        words = tokenize(text).split()
        return Counter(tuple(words[i : i + k]) for i in range(len(words) - k + 1))

    df = {
        k: Counter(g for key in refs for g in set().union(*(grams(r, k) for r in refs[key]))) for k in range(1, n + 1)
    }
    log_n = math.log(len(refs))

    def vec(text: str, k: int) -> dict:
        return {g: c * (log_n - math.log(max(1.0, df[k][g]))) for g, c in grams(text, k).items()}

    total = 0.0
    for key, hyp in hyps.items():
        per_n = []
        for k in range(1, n + 1):
            h = vec(hyp, k)
            value = 0.0
            for ref in refs[key]:
                r = vec(ref, k)
                dot = sum(min(v, r.get(g, 0.0)) * r.get(g, 0.0) for g, v in h.items())
                norms = math.sqrt(sum(v * v for v in h.values())) * math.sqrt(sum(v * v for v in r.values()))
                delta = len(tokenize(hyp).split()) - len(tokenize(ref).split())
                value += (dot / norms if norms else 0.0) * math.exp(-(delta**2) / (2 * sigma**2))
            per_n.append(value / len(refs[key]))
        total += 10 * sum(per_n) / n
    return total / len(hyps)


def test_cider_matches_the_definition() -> None:
    assert caption_scores(HYPS, REFS)["CIDEr"] == pytest.approx(_cider_d(HYPS, REFS), rel=1e-9)
    perfect = caption_scores({k: v[0] for k, v in REFS.items()}, REFS)
    assert perfect["CIDEr"] > caption_scores(HYPS, REFS)["CIDEr"]


def test_consensus_picks_the_caption_most_like_the_rest() -> None:
    candidates = ["a dog on a beach", "a dog running on the beach", "a red car", "a dog playing on a beach"]
    assert consensus_index(candidates) in (0, 3)
    assert candidates[consensus_index(candidates)] != "a red car"


def test_missing_extra_is_a_one_line_config_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pycocoevalcap.bleu.bleu", None)
    with pytest.raises(ConfigError, match=r"pip install 'chorus\[caption\]'"):
        caption_scores(HYPS, REFS)


def test_text_only_corpus_excludes_every_caption_of_an_image_with_pixels() -> None:
    from chorus.data.coco_text import text_only_captions

    folder = data_root(None) / "coco_captions_mini"
    if not (folder / "captions_val2017.json").is_file():
        pytest.skip("coco_captions_mini not under the data root")
    annotations = json.loads((folder / "captions_val2017.json").read_text())["annotations"]
    with open(folder / "images.csv", newline="") as fh:  # a different file than the one the corpus reads
        with_pixels = {int(r["image_id"]) for r in csv.DictReader(fh)}
    assert len(with_pixels) == 239
    pixel_captions = [a["caption"].strip() for a in annotations if a["image_id"] in with_pixels]
    other_captions = Counter(a["caption"].strip() for a in annotations if a["image_id"] not in with_pixels)
    corpus = text_only_captions()
    assert len(annotations) == 25014 and len(pixel_captions) == 795 and len(corpus) == 25014 - 795
    counts = Counter(corpus)
    assert counts == other_captions
    # A caption of an image with pixels can occur only as an identical caption written for another image.
    with open(folder / "captions.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            assert counts[row["caption"].strip()] == other_captions[row["caption"].strip()]


def _tiny_captioner(vocab: int, feature_dim: int = 8) -> cap.Captioner:
    torch.manual_seed(0)
    decoder = cap.CaptionDecoder(cap.DecoderConfig(vocab, width=32, layers=2, heads=2, max_length=24))
    return cap.Captioner(decoder, cap.PrefixMapper(cap.PrefixConfig("mlp", feature_dim, prefix_length=2), 32))


def _sequence_log_prob(model: cap.Captioner, features: torch.Tensor, ids: torch.Tensor, end_id: int) -> torch.Tensor:
    """Teacher-forced log-probability of each row of ``ids`` up to and including its first end token."""
    with torch.no_grad():
        logp = model.decoder.logits(ids, None, model.prefix(features)).float().log_softmax(-1)[:, :-1]
    token_logp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    ended = (ids[:, 1:] == end_id).int().cumsum(1)
    keep = (ended == 0) | ((ended == 1) & (ids[:, 1:] == end_id))
    return (token_logp * keep).sum(1)


def test_beam_one_is_greedy_and_wider_beams_score_at_least_as_high() -> None:
    model = _tiny_captioner(vocab=12)
    features = torch.randn(16, 8)
    greedy = model.generate(features, start_id=1, end_id=2, max_tokens=12, beam=1)
    from chorus.translate.decoding import beam_search

    def step(rows, ids):
        return model.decoder.logits(ids, None, model.prefix(features)[rows])[:, -1].float().log_softmax(-1)

    for penalty in (0.0, 1.0):
        beam1 = beam_search(step, 16, 1, 2, 12, width=1, length_penalty=penalty)
        assert strip(beam1.ids, 1, 2) == strip(greedy.ids, 1, 2)
        assert torch.allclose(beam1.log_prob, greedy.log_prob, atol=1e-5)
        beam4 = model.generate(features, start_id=1, end_id=2, max_tokens=12, beam=4, length_penalty=penalty)

        def score(out, penalty=penalty):
            return out.log_prob / out.length.float() ** penalty

        assert (score(beam4) >= score(greedy) - 1e-5).all()
        assert (score(beam4) > score(greedy) + 1e-4).any()  # the search space is large enough to matter
        # The reported scores are the model's own log-probabilities of the returned sequences, and their lengths.
        for out in (greedy, beam4):
            assert torch.allclose(_sequence_log_prob(model, features, out.ids, 2), out.log_prob, atol=1e-4)
            assert out.length.tolist() == [min(len(s) + 1, 12) for s in strip(out.ids, 1, 2)]


def test_scene_captions_round_trip_and_score() -> None:
    _, captions, scenes = scene_caption_data(5, "test")
    assert captions[0].startswith(("a red ", "a red")) and ", a green " in captions[0] and "an orange" in captions[0]
    parsed = parse_scene_caption(captions[0])
    assert [(p.colour, p.shape, p.quadrant) for p in parsed] == [(o.colour, o.shape, o.quadrant) for o in scenes[0]]
    assert attribute_accuracy(captions, scenes)["caption_exact"] == 1.0
    wrong = captions[0].replace("square", "triangle").replace("circle", "triangle")
    scores = attribute_accuracy([wrong], scenes[:1])
    assert scores["shape_accuracy"] == 0.0 and scores["quadrant_accuracy"] == 1.0
    assert attribute_accuracy(["nothing useful"], scenes[:1])["object_accuracy"] == 0.0
    assert chance_object_accuracy() == 1 / 8


PHRASES = ["a red square at the top", "a blue circle on the left", "two green circles", "a yellow square below"]


def test_short_training_learns_to_caption_from_the_prefix(tmp_path) -> None:
    """Features name one of four scenes (plus noise); chance of the exact caption is 25 %, the captioner must
    reach >= 90 % on fresh noisy features after 60 tiny steps."""
    torch.manual_seed(0)
    tokenizer = BPETokenizer.train(PHRASES * 20, vocab_size=300, min_frequency=1)
    centres = torch.randn(4, 8) * 2

    def draw(n: int) -> tuple[torch.Tensor, list[int]]:
        labels = torch.randint(4, (n,))
        return centres[labels] + 0.3 * torch.randn(n, 8), labels.tolist()

    features, labels = draw(256)
    model = _tiny_captioner(tokenizer.vocab_size)
    data = cap.CaptionPairs(features, [[PHRASES[y]] for y in labels])
    cap.fit(model, data, tokenizer, 12, tmp_path, steps=60, batch_size=32, lr=5e-3, seed=0, bf16=False)
    test, truth = draw(64)
    said = model.caption(test, tokenizer, max_tokens=10)
    accuracy = sum(s == PHRASES[y] for s, y in zip(said, truth)) / len(truth)
    assert accuracy >= 0.9, (accuracy, said[:4])


def _spec(vocab: int) -> CaptionerSpec:
    return CaptionerSpec(
        ImageSpec("cnn", "tiny", 32, "embedding", (0.5,) * 3, (0.5,) * 3, {}, 16),
        cap.PrefixConfig("mlp", 16, prefix_length=2),
        cap.DecoderConfig(vocab, width=32, layers=1, heads=2, max_length=20),
        context_length=12,
        max_tokens=8,
        beam=2,
    )


def test_captioner_run_folder_and_cli(tmp_path, capsys) -> None:
    tokenizer = BPETokenizer.train(PHRASES * 5, vocab_size=300, min_frequency=1)
    spec = _spec(tokenizer.vocab_size)
    torch.manual_seed(0)
    model = build_captioner(spec).eval()
    run = save_captioner(tmp_path / "run", model, tokenizer, spec)
    image = Image.fromarray((torch.rand(40, 56, 3) * 255).to(torch.uint8).numpy())
    image.save(tmp_path / "a.png")
    loaded = LoadedCaptioner(run, device="cpu")
    pixels = loaded._transform(image)[None]  # the run's evaluation view: shorter side → 32 px, centre crop
    expected = model.caption(pixels, tokenizer, max_tokens=8, beam=2)
    assert loaded.caption([image]) == expected
    assert main(["caption", str(run), str(tmp_path / "a.png"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == [{"image": str(tmp_path / "a.png"), "caption": expected[0]}]
    assert main(["caption", str(tmp_path), str(tmp_path / "a.png")]) == 2
    assert "not a captioner run" in capsys.readouterr().err
    assert main(["caption", str(run), str(tmp_path / "missing.png")]) == 2


def test_bench_caption_follows_the_driver_pattern() -> None:
    from chorus.bench import load_benchmark
    from chorus.bench.driver import is_driver, resolve_config

    module = load_benchmark("caption")
    assert is_driver(module)
    quick = resolve_config(module, "quick", ["seeds=[3]"])
    assert quick.seeds == (3,) and quick.caption_steps < module.PRESETS["full"].caption_steps
    assert resolve_config(module, "full").seeds == (0, 1, 2)


def test_serve_captions_an_uploaded_image(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from chorus.serve import create_app

    tokenizer = BPETokenizer.train(PHRASES * 5, vocab_size=300, min_frequency=1)
    spec = _spec(tokenizer.vocab_size)
    torch.manual_seed(1)
    run = save_captioner(tmp_path / "runs" / "captioner", build_captioner(spec).eval(), tokenizer, spec)
    image = Image.fromarray((torch.rand(48, 48, 3) * 255).to(torch.uint8).numpy())
    png = tmp_path / "b.png"
    image.save(png)
    expected = LoadedCaptioner(run, device="cpu").caption([Image.open(png)])[0]
    with TestClient(create_app(tmp_path / "runs", device="cpu")) as client:
        assert client.get("/runs").json()["captioners"] == ["captioner"]
        answer = client.post("/caption", files={"image": ("b.png", png.read_bytes(), "image/png")})
        assert answer.status_code == 200 and answer.json() == {"run": "captioner", "caption": expected}
        unknown = client.post(
            "/caption", files={"image": ("b.png", png.read_bytes(), "image/png")}, data={"run": "nope"}
        )
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        garbage = client.post("/caption", files={"image": ("b.png", b"not an image", "image/png")})
        assert garbage.status_code == 422
        assert client.post("/caption").status_code == 422


def test_prefix_mappers_shapes_and_errors() -> None:
    from chorus.errors import DataError

    grid = cap.PrefixMapper(cap.PrefixConfig("grid", 6, grid=2), 16)
    assert grid(torch.randn(3, 25, 6)).shape == (3, 4, 16)  # a 5×5 map pooled to 2×2 cells
    with pytest.raises(DataError, match="square feature map"):
        grid(torch.randn(3, 24, 6))
    mlp = cap.PrefixMapper(cap.PrefixConfig("mlp", 6, prefix_length=3), 16)
    assert mlp(torch.randn(2, 6)).shape == (2, 3, 16) and mlp.length == 3 and grid.length == 4
    with pytest.raises(DataError, match="pooled features"):
        mlp(torch.randn(2, 4, 6))
    with pytest.raises(ConfigError, match="prefix width"):
        cap.Captioner(cap.CaptionDecoder(cap.DecoderConfig(50, width=32, layers=1, heads=2)), mlp)
