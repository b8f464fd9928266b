"""``caltech_zeroshot`` pieces: class descriptions, the class-level validation protocol, prompt sets,
test-time augmentation / max-vs-mean scoring, and the on-disk view cache. Runs in seconds
(the full benchmark is exercised in ``test_bench_clip.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from chorus.bench import caltech_zeroshot as cz
from chorus.data.augment import BatchAugment, cached_views
from chorus.data.caltech101 import Caltech101
from chorus.data.captions import PromptedDataset
from chorus.errors import ConfigError


def _class_names(root: Path) -> list[str]:
    return [line.split("\t")[2] for line in (root / "caltech101" / "classes.txt").read_text().splitlines()]


def test_descriptions_cover_every_class_uniformly(real_data_root: Path) -> None:
    descriptions = cz.load_descriptions()
    assert set(descriptions) == set(_class_names(real_data_root)) and len(descriptions) == 101
    for name, texts in descriptions.items():
        assert len(texts) == 4 and len(set(texts)) == 4, name
        # One style for all: each description names its class first (as CuPL's generated prompts do).
        assert all(t.strip() and t.lower().startswith(f"{name}:") for t in texts), name


def test_val_unseen_classes_follow_the_written_rule_and_are_disjoint() -> None:
    split = cz.load_split()
    seen = sorted(split["seen"])
    assert sorted(np.random.default_rng(202).permutation(seen)[:20].tolist()) == sorted(split["val_unseen"])
    assert not set(split["val_unseen"]) & set(split["unseen"]) and len(split["val_unseen"]) == 20


@pytest.mark.parametrize("mode", ["select", "select_unseen"])
def test_validation_modes_never_read_test_images(
    mode: str, real_data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither unseen-class images nor seen held-out images are decoded when choosing settings."""
    read: list[str] = []

    def load(self: Caltech101, index: int) -> dict:
        read.append(self.records[index]["path"])
        return {"image": Image.new("RGB", (8, 8)), "label": self.labels[index]}

    monkeypatch.setattr(Caltech101, "load", load)
    split = cz.load_split()
    data = cz.load_caltech(str(real_data_root), split, 8, mode)
    folders = {
        line.split("\t")[1]: line.split("\t")[2]
        for line in (real_data_root / "caltech101" / "classes.txt").read_text().splitlines()
    }
    names = [folders[Path(p).parent.name] for p in read]
    assert not set(names) & set(split["unseen"])
    assert not any(cz._image_number(p) in split["seen"][n]["heldout"] for p, n in zip(read, names))
    held = set(split["val_unseen"]) if mode == "select_unseen" else set()
    assert set(data["seen_names"]) == set(split["seen"]) - held
    assert set(data["unseen_names"]) == held and not held & set(data["seen_names"])
    # 20 training and 4 validation images per trained class; 24 per validation-unseen class.
    n_seen = len(data["seen_names"])
    assert len(data["train"][2]) == 20 * n_seen and len(data["eval_seen"][2]) == 4 * n_seen
    assert ("unseen" in data) == bool(held) and (not held or len(data["unseen"][2]) == 24 * len(held))
    # Every part indexes the one pool of 24 non-held-out images per seen class, without overlap.
    assert set(data["images"]) == {"pool"} and len(data["images"]["pool"]) == 24 * 81
    used = torch.cat([data[part][1] for part in ("train", "eval_seen", "unseen") if part in data])
    assert len(used.unique()) == len(used) == 24 * 81


def test_class_prompts_modes() -> None:
    descriptions = {"cup": ["cup: a mug.", "cup: a teacup."], "ant": ["ant: an insect.", "ant: a bug."]}
    templates = ["a photo of a {}.", "{}"]
    assert cz.class_prompts(["cup"], "names", templates, descriptions) == [["a photo of a cup.", "cup"]]
    assert cz.class_prompts(["ant"], "descriptions", templates, descriptions) == [["ant: an insect.", "ant: a bug."]]
    assert cz.class_prompts(["cup", "ant"], "both", templates, descriptions)[1] == [
        "a photo of a ant.",
        "ant",
        "ant: an insect.",
        "ant: a bug.",
    ]
    with pytest.raises(ConfigError, match="no descriptions"):
        cz.class_prompts(["okapi"], "descriptions", templates, descriptions)


def test_prompted_images_draw_only_their_own_class_prompts() -> None:
    base = [{"image": torch.zeros(1), "label": i % 2} for i in range(10)]
    data = PromptedDataset(base, [["a", "b"], ["c"]])
    torch.manual_seed(0)
    texts = [[data[i]["text"] for i in range(10)] for _ in range(20)]
    assert {t for run in texts for t in run[0::2]} == {"a", "b"} and {t for run in texts for t in run[1::2]} == {"c"}


def test_tta_and_max_scoring_change_predictions_as_intended() -> None:
    e = torch.eye(3)
    # The plain view leans to class 1 (e2), its mirror image sits on class 0 (e0): averaged, class 0 wins.
    one_prompt = torch.stack([e[:1], e[2:]])
    images = torch.stack([F.normalize(torch.stack([e[2] + 0.5 * e[0], e[0]]), dim=-1)])
    assert cz.zero_shot_logits(images, one_prompt, tta=False, reduce="mean").argmax(1).item() == 1
    assert cz.zero_shot_logits(images, one_prompt, tta=True, reduce="mean").argmax(1).item() == 0
    # Class 0's prompts are e0 and e1: their mean is only cos 0.71 to e0, its best prompt matches exactly.
    two_prompts = torch.stack([torch.stack([e[0], e[1]]), torch.stack([e[2], e[2]])])
    mirror = images[:, 1:]
    mean = cz.zero_shot_logits(mirror, two_prompts, tta=False, reduce="mean")
    best = cz.zero_shot_logits(mirror, two_prompts, tta=False, reduce="max")
    assert mean[0, 0].item() == pytest.approx(2**-0.5, abs=1e-6) and best[0, 0].item() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="reduce"):
        cz.zero_shot_logits(images, one_prompt, tta=False, reduce="median")


def test_conse_scoring_goes_through_the_likeliest_seen_class() -> None:
    e = torch.eye(4)
    # Seen classes at e0 and e1; unseen class A's text is near seen class 0 (e0 + e2), B's is e3 + small e1.
    seen = torch.stack([e[:1], e[1:2]])
    unseen = F.normalize(torch.stack([(e[0] + e[2])[None], (e[3] + 0.3 * e[1])[None]]), dim=-1)
    # The image resembles seen class 0 most, but has a stray e3 component: direct cosine picks B, ConSE picks A.
    image = F.normalize(e[0] + 0.2 * e[1] + 1.0 * e[3], dim=-1)[None, None]
    assert cz.zero_shot_logits(image, unseen, tta=False, reduce="mean").argmax(1).item() == 1
    assert (
        cz.zero_shot_logits(image, unseen, tta=False, reduce="conse", seen=seen, logit_scale=20.0).argmax(1).item() == 0
    )
    with pytest.raises(ConfigError, match="seen"):
        cz.zero_shot_logits(image, unseen, tta=False, reduce="conse")


class _CountingTransform(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return F.avg_pool2d(x, 4)


def test_cached_views_disk_cache_is_keyed_by_images_and_settings(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8)
    transform, augment = _CountingTransform(), BatchAugment(16)
    first = cached_views(transform, augment, images, 3, seed=0, cache_dir=tmp_path, key="pool4")
    calls = transform.calls
    again = cached_views(transform, augment, images, 3, seed=0, cache_dir=tmp_path, key="pool4")
    assert transform.calls == calls and torch.equal(first, again)  # served from disk, not recomputed
    assert len(list(tmp_path.glob("views_*.pt"))) == 1
    cached_views(transform, augment, images, 3, seed=0, cache_dir=tmp_path, key="other front end")
    cached_views(transform, augment, images[:5], 3, seed=0, cache_dir=tmp_path, key="pool4")
    cached_views(transform, augment, images, 3, seed=1, cache_dir=tmp_path, key="pool4")
    assert transform.calls == 4 * calls and len(list(tmp_path.glob("views_*.pt"))) == 4
