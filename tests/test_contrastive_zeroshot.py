"""Zero-shot classifier construction and prediction with a toy bag-of-words text tower."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chorus.contrastive import (
    CLIP_TEMPLATES,
    DIGIT_TEMPLATES,
    ContrastiveModel,
    build_zero_shot_classifier,
    conse_embed,
    zero_shot_accuracy,
    zero_shot_predict,
)
from chorus.encoders.base import Encoded
from chorus.errors import ConfigError, DataError
from chorus.eval import topk_accuracy

CLASSES = ["cat", "dog", "car side", "faces easy", "airplane", "piano", "ant"]


class WordTokenizer:
    """Whitespace tokenizer with a growing vocabulary; pads with id 0 and returns a mask."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {"<pad>": 0}

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [[self.vocab.setdefault(w, len(self.vocab)) for w in t.lower().split()] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0


class BagOfWords(nn.Module):
    """Masked mean of word embeddings."""

    out_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(200, self.out_dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> Encoded:
        m = mask.unsqueeze(-1).float()
        return Encoded((self.embedding(ids) * m).sum(1) / m.sum(1))


def toy_model() -> ContrastiveModel:
    """An 'image' tower that is an exact copy of the text tower: images are captions in disguise."""
    torch.manual_seed(0)
    text = BagOfWords()
    model = ContrastiveModel({"image": copy.deepcopy(text), "text": text}, embed_dim=12)
    model.projections["image"].load_state_dict(model.projections["text"].state_dict())
    return model


def test_classifier_is_the_renormalised_mean_of_normalised_prompt_embeddings() -> None:
    model = toy_model()
    tokenize = WordTokenizer()
    templates = ["a photo of a {}.", "a drawing of the {c}", "{} again"]
    classifier = build_zero_shot_classifier(model, tokenize, CLASSES, templates, batch_size=4)
    assert classifier.shape == (12, len(CLASSES))
    torch.testing.assert_close(classifier.norm(dim=0), torch.ones(len(CLASSES)))
    model.eval()
    with torch.no_grad():
        for j, name in enumerate(CLASSES):
            prompts = [f"a photo of a {name}.", f"a drawing of the {name}", f"{name} again"]
            per_prompt = torch.cat([model.encode("text", *tokenize([p])) for p in prompts])
            expected = F.normalize(F.normalize(per_prompt, dim=1).mean(0), dim=0)
            torch.testing.assert_close(classifier[:, j], expected)


def test_zero_shot_prediction_and_accuracy() -> None:
    model = toy_model().train()
    tokenize = WordTokenizer()
    classifier = build_zero_shot_classifier(model, tokenize, CLASSES, CLIP_TEMPLATES)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 2, 0])
    loader = []
    for chunk in labels.split(4):
        ids, mask = tokenize([f"a photo of a {CLASSES[i]}." for i in chunk])
        loader.append({"image": ids, "image_mask": mask, "label": chunk})
    logits = zero_shot_predict(model, loader, classifier)
    assert model.training  # the mode is restored
    assert logits.shape == (len(labels), len(CLASSES))
    with torch.no_grad():
        model.eval()
        expected = torch.cat([model.encode("image", b["image"], b["image_mask"]) for b in loader]) @ classifier
    torch.testing.assert_close(logits, expected * (1 / 0.07))
    acc = zero_shot_accuracy(model, loader, classifier, ks=(1, 3))
    assert acc == topk_accuracy(expected, labels, ks=(1, 3))
    assert acc["top1"] > 0.5  # chance: 1/7; each "image" is one of its class's own prompts


def test_template_sets_have_placeholders() -> None:
    assert 5 <= len(CLIP_TEMPLATES) <= 10 and len(DIGIT_TEMPLATES) >= 3
    assert all("{}" in t for t in CLIP_TEMPLATES + DIGIT_TEMPLATES)


def test_errors() -> None:
    model, tokenize = toy_model(), WordTokenizer()
    with pytest.raises(ConfigError, match="placeholder"):
        build_zero_shot_classifier(model, tokenize, CLASSES, ["a photo"])
    with pytest.raises(ConfigError, match="at least one"):
        build_zero_shot_classifier(model, tokenize, [], CLIP_TEMPLATES)
    classifier = build_zero_shot_classifier(model, tokenize, CLASSES, CLIP_TEMPLATES)
    ids, mask = tokenize(["a cat"])
    with pytest.raises(DataError, match="'label'"):
        zero_shot_accuracy(model, [{"image": ids, "image_mask": mask}], classifier)


def test_conse_top1_is_the_nearest_seen_class_and_output_is_normalised() -> None:
    seen = F.normalize(torch.randn(6, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    images = F.normalize(seen[[3, 1]] + 0.1 * torch.randn(2, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    assert torch.allclose(conse_embed(images, seen, logit_scale=100.0, top_k=1), seen[[3, 1]])
    mixed = conse_embed(images, seen, logit_scale=1.0, top_k=6)
    assert torch.allclose(mixed.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(mixed, seen[[3, 1]], atol=1e-2)  # a soft posterior mixes several classes
    with pytest.raises(ConfigError, match="top_k"):
        conse_embed(images, seen, 10.0, top_k=0)
    with pytest.raises(ConfigError, match=r"\[N, D\]"):
        conse_embed(images[:, :8], seen, 10.0)


def test_conse_is_a_convex_combination_of_the_top_k_seen_texts() -> None:
    seen = F.normalize(torch.randn(10, 8, generator=torch.Generator().manual_seed(2)), dim=-1)
    images = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(3)), dim=-1)
    out = conse_embed(images, seen, logit_scale=5.0, top_k=3)
    top = (images @ seen.T).topk(3, dim=1).indices
    for z, idx in zip(out, top):
        # least squares on the 3 chosen texts reproduces it with positive weights: in their cone, no other class
        w = torch.linalg.lstsq(seen[idx].T, z.unsqueeze(1)).solution.squeeze(1)
        assert torch.allclose(seen[idx].T @ w, z, atol=1e-5) and (w > 0).all()
