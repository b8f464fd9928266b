"""The CLIP benchmarks (``caltech_zeroshot``, ``coco_retrieval``) in ``--quick`` mode on the real data.

Quick mode is small (the encoder's tiny size at 32 px, a few epochs, one seed), so the margins are
against chance, not against the full benchmark's numbers: Caltech seen-class
81-way zero-shot top-1 (chance 1.2 %) and COCO text→image Recall@10 on the
50-image gallery (chance 20 %). Both runs must write every report file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chorus.bench import load_benchmark
from chorus.bench.driver import run_driver

REPORTS = ("results.json", "results.md")


def _run(name: str, out: Path, data_root: Path, *overrides: str) -> dict:
    """The quick preset with ``key=value`` overrides; returns the benchmark's results (``results.json``'s)."""
    argv = ["--quick", "--out", str(out), f"data_root={data_root}", *overrides]
    return run_driver(name, load_benchmark(name), argv, progress=lambda _: None)["results"]


def _has_method_card(out: Path) -> bool:
    return any(out.glob("method_card_*.md"))


def test_caltech_zeroshot_quick(tmp_path: Path, real_data_root: Path) -> None:
    results = _run("caltech_zeroshot", tmp_path, real_data_root, "methods=[lit]")
    lit = results["summary"]["lit"]
    # 81-way seen-class zero-shot from class-name prompts on held-out images: chance 1.2 %,
    # demand 5× that (measured 16.2 % for seed 0 with the tiny scattering_descriptors encoder at 32 px,
    # 15.8 % with scattering alone). Quick mode (4 epochs on 12 images/class) is too short for a
    # reliable unseen-class margin (measured
    # 12.2 % top-1 vs 5 % chance here, 6.5 % with the earlier 32 px CNN), so the unseen numbers are
    # only checked to be valid accuracies.
    assert lit["seen_top1"][0] > 5 / 81
    assert 0.0 <= lit["unseen_top1"][0] <= lit["unseen_top5"][0] <= 1.0
    # Every unseen class has 30 images, so the per-class accuracies average to the overall top-1.
    per_class = [mean for key, (mean, _) in lit.items() if key.startswith("unseen_top1/")]
    assert len(per_class) == 20 and np.mean(per_class) == pytest.approx(lit["unseen_top1"][0])
    for name in REPORTS + ("caltech_zeroshot.png",):
        assert (tmp_path / name).is_file(), name
    assert _has_method_card(tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["results"]["per_seed"]) == {"lit"} and saved["environment"]["torch"]


def test_caltech_select_never_scores_unseen_classes(tmp_path: Path, real_data_root: Path) -> None:
    results = _run(
        "caltech_zeroshot", tmp_path, real_data_root, "methods=[lit]", "select=true", "epochs=1", "ensemble=2"
    )
    lit = results["summary"]["lit"]
    assert np.isnan(lit["unseen_top1"][0]) and not any(k.startswith(("unseen_top1/", "grid/unseen")) for k in lit)
    assert results["seen_eval"] == "val (4/class)" and 0.0 <= lit["seen_top1"][0] <= 1.0
    # Validation runs score every evaluation variant of the same models: 3 prompt sets × mean/max × plain/TTA;
    # the configured one (descriptions, mean, TTA) is the headline number; the ensemble reports its first member.
    assert len([k for k in lit if k.startswith("grid/seen/") and k.endswith("/top1")]) == 12
    assert lit["grid/seen/descriptions/mean/tta/top1"][0] == lit["seen_top1"][0] and "seen_top1_member0" in lit


def test_coco_retrieval_quick(tmp_path: Path, real_data_root: Path) -> None:
    results = _run("coco_retrieval", tmp_path, real_data_root, "methods=[lit]")
    lit = results["summary"]["lit"]
    assert results["chance"]["text_to_image_R@10"] == pytest.approx(10 / 50)
    # Text→image recall over 250 caption queries on 50 test images after 15 epochs on 189 photos
    # (measured seed 0: R@5 23.6 %, R@10 36.8 %; chance 10 % and 20 %).
    assert lit["text_to_image_R@5"][0] > 0.10 + 0.06
    assert lit["text_to_image_R@10"][0] > 0.20 + 0.08
    for name in REPORTS + ("coco_retrieval.png",):
        assert (tmp_path / name).is_file(), name
    assert _has_method_card(tmp_path)


def test_batch_augment_identity_and_eval_resize() -> None:
    import torch
    import torch.nn.functional as F

    from chorus.data.augment import IMAGENET_MEAN as MEAN
    from chorus.data.augment import IMAGENET_STD as STD
    from chorus.data.augment import BatchAugment

    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    # Full-area crop, no flip, no jitter at the same size: grid_sample reproduces every pixel.
    plain = BatchAugment(24, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, jitter=0.0).train()
    torch.testing.assert_close(plain(x), (x.float() / 255 - mean) / std, atol=1e-5, rtol=0)
    # Eval mode is a deterministic antialiased resize.
    small = BatchAugment(12).eval()
    expected = F.interpolate(x.float() / 255, size=(12, 12), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(small(x), (expected - mean) / std)
    # Training mode is random: two calls differ, and values stay those of [0, 1] images.
    rand = BatchAugment(12).train()
    a, b = rand(x), rand(x)
    assert not torch.allclose(a, b)
    assert a.min() >= ((0 - mean) / std).min() - 1e-5 and a.max() <= ((1 - mean) / std).max() + 1e-5
