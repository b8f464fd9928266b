"""``zeroshot_run`` / ``retrieve_run`` on a small CLIP run trained in seconds (configs/digits_clip.yaml).

The run is real: digits images against a from-scratch text tower on captions
written from the class names. Assertions compare with chance (1/10 for
10-way zero-shot and for class-level retrieval) with stated margins, and check
that the JSON/Markdown reports hold the same numbers that were returned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chorus import run_eval
from chorus.errors import ConfigError
from chorus.experiment import load_experiment, load_run, train_experiment
from chorus.fusion.classifier import FusionClassifier
from chorus.run_eval import retrieve_run, zeroshot_run

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits_clip.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_experiment(CONFIG, ["train.epochs=3", "train.progress=false", "train.tensorboard=false"])
    out = tmp_path_factory.mktemp("digits_clip")
    train_experiment(cfg, out)
    return out


def test_zeroshot_run_beats_chance_and_writes_reports(run_dir: Path, tmp_path: Path) -> None:
    result = zeroshot_run(run_dir, "digits", out=tmp_path)
    assert result["classes"] == 10 and result["n"] > 100
    # Chance is 10 % top-1; a CLIP trained 3 epochs on digits captions should be far above it.
    assert result["metrics"]["top1"] > 0.10 + 0.25
    assert result["metrics"]["top5"] >= result["metrics"]["top1"]
    saved = json.loads((tmp_path / "zeroshot.json").read_text())
    assert saved["metrics"] == pytest.approx(result["metrics"])
    assert f"{100 * result['metrics']['top1']:.2f}" in (tmp_path / "zeroshot.md").read_text()


def test_zeroshot_run_uses_given_templates(run_dir: Path) -> None:
    result = zeroshot_run(run_dir, "digits", templates=["{}"])
    assert result["templates"] == ["{}"]
    assert result["metrics"]["top1"] > 0.10  # class names alone still beat chance (10 %)


def test_retrieve_run_class_level_beats_chance(run_dir: Path, tmp_path: Path) -> None:
    result = retrieve_run(run_dir, "digits", out=tmp_path)
    metrics = result["metrics"]
    # Gallery: one prompt per (class, template); text→image R@1 hits when the top image has
    # the text's class (chance 10 %); image→text R@1 likewise.
    assert metrics["text_to_image_R@1"] > 0.10 + 0.25
    assert metrics["image_to_text_R@1"] > 0.10 + 0.25
    for direction in ("image_to_text", "text_to_image"):
        assert metrics[f"{direction}_R@1"] <= metrics[f"{direction}_R@5"] <= metrics[f"{direction}_R@10"]
    assert json.loads((tmp_path / "retrieval.json").read_text())["metrics"] == pytest.approx(metrics)
    assert (tmp_path / "retrieval.md").is_file()


def test_not_a_run_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="experiment.yaml"):
        zeroshot_run(tmp_path, "digits")


def test_a_fusion_run_with_a_text_tower_cannot_zero_shot(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fusion run has encoders, a text one included, but no shared space to rank class prompts in.
    cfg, model, classes, tokenizer = load_run(run_dir)
    fusion = FusionClassifier.build(dict(model.encoders), "early", len(classes))
    monkeypatch.setattr(run_eval, "load_run", lambda _: (cfg, fusion, classes, tokenizer))
    for evaluate in (zeroshot_run, retrieve_run):
        with pytest.raises(ConfigError, match="not a contrastive run with a text tower"):
            evaluate(run_dir, "digits")


def test_cached_text_encoder_matches_the_encoder_it_caches() -> None:
    import torch

    from chorus.contrastive.text_cache import CachedTextEncoder
    from chorus.data import BPETokenizer
    from chorus.encoders import build_encoder

    texts = ["a photo of a cat.", "a photo of a dog.", "a drawing of a dog."]
    tokenizer = BPETokenizer.train(texts * 3, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    encoder = build_encoder("text_transformer", "tiny", vocab_size=tokenizer.vocab_size, context_length=16).eval()
    cache = CachedTextEncoder.build(encoder, tokenizer, texts + texts[:1], context_length=16)
    assert cache.table.shape == (3, encoder.out_dim)  # duplicates are stored once
    rows, mask = cache.tokenizer([texts[2], texts[0]])
    with torch.no_grad():
        expected = encoder(*tokenizer([texts[2], texts[0]], 16)).pooled
    torch.testing.assert_close(cache(rows, mask).pooled, expected)
    with pytest.raises(ConfigError, match="a photo of a bird"):
        cache.tokenizer(["a photo of a bird."])
