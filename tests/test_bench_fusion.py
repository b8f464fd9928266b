"""``chorus bench fusion`` on a reduced configuration of real AV-Digits data (one seed, stratified subsets).

Chance is 10 % (ten balanced digits). Margins: on the hard level the unimodal
models score ~55-80 % with the full data; on the quick subset (600 train / 200
test items, 6 epochs) they are weaker, so every method is required to reach
≥ 25 % — 2.5× chance, more than 5 binomial standard deviations (σ ≈ 2.1 points
at p = 0.1, n = 200) above it.
"""

from __future__ import annotations

import json

import pytest

from chorus.bench import load_benchmark
from chorus.bench.driver import run_driver
from chorus.bench.fusion import CARD_TEXT, CLASSICAL, NEURAL, UNIMODAL
from chorus.errors import ConfigError
from chorus.fusion import FUSIONS
from chorus.fusion.vqa import VQA_FUSIONS

pytest.importorskip("hmmlearn")

CHANCE = 0.10
MARGIN = 0.15


def run(*argv: str) -> dict:
    """``chorus bench fusion ARGV``; returns the benchmark's results (``results.json``'s)."""
    return run_driver("fusion", load_benchmark("fusion"), list(argv), progress=lambda _: None)["results"]


def test_every_fusion_family_is_benchmarked() -> None:
    assert set(NEURAL) == set(FUSIONS.names()) - set(VQA_FUSIONS)  # VQA fusions: chorus bench vqa
    assert set(CARD_TEXT) == set(NEURAL + CLASSICAL)


def test_unknown_level_is_a_config_error(tmp_path, real_data_root) -> None:
    with pytest.raises(ConfigError, match="nightmare"):
        run("--quick", "levels=[nightmare]", "--out", str(tmp_path), f"data_root={real_data_root}")


def test_quick_hard_level_every_method_beats_chance(tmp_path, real_data_root) -> None:
    results = run("--quick", "levels=[hard]", "--out", str(tmp_path), f"data_root={real_data_root}")
    seed = results["levels"]["hard"]["seeds"]["0"]
    methods = set(UNIMODAL) | set(NEURAL) | set(CLASSICAL)
    assert methods <= set(seed["acc"])
    for method, acc in seed["acc"].items():
        assert acc >= CHANCE + MARGIN, f"{method}: {acc:.3f} not above chance {CHANCE} + {MARGIN}"
    # Modality-dropout-trained fusions must still work with either modality missing at test time:
    # each stays ≥ 2× chance (the cross-modal transformer is the weakest here, ~0.2 with audio
    # missing), and the best of them loses ≤ 2 points against the unimodal model of the
    # remaining modality (the target, checked here on the reduced configuration).
    for missing, remaining in (("image", "audio_only"), ("audio", "image_only")):
        dropped = {m: a for m, a in seed[f"acc_{missing}_missing"].items() if m.endswith("+moddrop")}
        assert dropped, f"no modality-dropout rows for {missing} missing"
        for method, acc in dropped.items():
            assert acc >= 2 * CHANCE, f"{method} with {missing} missing: {acc:.3f}"
        assert max(dropped.values()) >= seed["acc"][remaining] - 0.02, (missing, dropped, seed["acc"][remaining])
    # The outputs the docs embed exist and are consistent with the returned numbers.
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["levels"]["hard"]["seeds"]["0"]["acc"] == pytest.approx(seed["acc"])
    for name in ("results.md", "method_card_hmm_bayes.md", "missing_modality.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {m} |" in table for m in methods)
