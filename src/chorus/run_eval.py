"""Evaluate a trained contrastive run on any dataset: ``chorus zeroshot`` and ``chorus retrieve``.

Why here and not in :mod:`chorus.contrastive`: it rebuilds a run folder through
:mod:`chorus.experiment`, which sits above the method packages in the layer
order (``docs/architecture.md``).

What: :func:`zeroshot_run` rebuilds a run folder (``chorus.experiment.load_run``)
and classifies a labelled dataset from its class names (or the user's words
for them) written into prompt templates (top-1/top-5); :func:`zeroshot_files`
labels unlabelled image files with the user's class names; :func:`retrieve_run` embeds a captioned dataset's
images and captions and reports Recall@1/5/10 in both directions, every
caption of an image counting as a correct match (COCO's five).

Why a separate entry point from ``chorus eval``: zero-shot transfer is the
point of a contrastive model — it is evaluated on datasets and prompts it was
not trained on, so the dataset and templates are arguments, not the run's
config. Template defaults: the run's own ``model.zero_shot_templates`` when
the dataset is the one it was trained on, else ``DIGIT_TEMPLATES`` for digit
datasets, the run's own templates for a run without an image tower, and
``CLIP_TEMPLATES`` otherwise (prompt ensembling, Radford et al. 2021 §3.1.4).
A dataset may be a user's folder or manifest (``folder:PATH``, ``manifest:PATH``
or ``PATH``; see :mod:`chorus.data.userdata`).

Baseline: chance — 1/C top-1 for zero-shot; for retrieval k/N images
(text→image) and ≈ 1 − C(N−5, k)/C(N, k) captions (image→text, 5 per image).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from chorus.contrastive.model import ContrastiveModel
from chorus.contrastive.retrieval import dataset_retrieval
from chorus.contrastive.zeroshot import (
    CLIP_TEMPLATES,
    DIGIT_TEMPLATES,
    build_zero_shot_classifier,
    topk_below,
    zero_shot_accuracy,
    zero_shot_predict,
)
from chorus.data import Collate, build_dataset
from chorus.data.base import ChorusDataset
from chorus.data.decode import decode_image, read_bytes
from chorus.data.text import SubwordTokenizer
from chorus.data.userdata import IMAGE_SUFFIXES
from chorus.errors import ConfigError, DataError
from chorus.eval.report import markdown_table, write_json
from chorus.experiment import SampleFeatures, build_eval_dataset, load_run

__all__ = ["retrieve_run", "zeroshot_files", "zeroshot_run"]

DIGIT_DATASETS = frozenset({"digits", "mnist", "fsdd", "avdigits"})


def _contrastive(
    model: torch.nn.Module, tokenizer: SubwordTokenizer | None, run_dir: str | os.PathLike
) -> tuple[ContrastiveModel, SubwordTokenizer, str]:
    """The run's model and tokenizer when it is a contrastive run with a text tower, and its query modality.

    A fusion run has encoders (maybe a text one) too, but no shared space to rank class prompts in.
    """
    encoders = getattr(model, "encoders", {})
    if not isinstance(model, ContrastiveModel) or "text" not in encoders or tokenizer is None:
        raise ConfigError(f"{run_dir} is not a contrastive run with a text tower (encoders: {sorted(encoders)})")
    return model, tokenizer, next(m for m in encoders if m != "text")


def _dataset(
    cfg: Any, dataset: str, split: str | None, data_root: str | None, **options: Any
) -> tuple[ChorusDataset, str]:
    """The run's own eval set when ``dataset`` is its dataset (and no options), else ``dataset`` with its transforms."""
    if cfg.data.same_dataset(dataset) and not options:
        return build_eval_dataset(cfg, data_root, split), split or cfg.data.eval_split
    split = split or "test"
    root = data_root if data_root is not None else cfg.data.root
    return build_dataset(
        dataset, root=root, split=split, transform=SampleFeatures(cfg.data, train=False), **options
    ), split


def _default_templates(cfg: Any, dataset: str) -> Sequence[str]:
    """The run's own prompts on its own dataset; else digit prompts, the run's own prompts for a run that
    reads no images (photo prompts would describe the wrong thing), or generic photo prompts."""
    if cfg.data.same_dataset(dataset):
        return cfg.model.zero_shot_templates
    if dataset in DIGIT_DATASETS:
        return DIGIT_TEMPLATES
    return CLIP_TEMPLATES if "image" in cfg.model.encoders else cfg.model.zero_shot_templates


def _write(out: str | os.PathLike | None, name: str, result: dict[str, Any], title: str) -> None:
    if out is None:
        return
    out = Path(out)
    write_json(out / f"{name}.json", result)
    rows = [[k, f"{100 * v:.2f}"] for k, v in result["metrics"].items()]
    (out / f"{name}.md").write_text(
        f"# {title}\n\nrun: `{result['run_dir']}`, dataset: `{result['dataset']}` ({result['split']}, "
        f"n = {result['n']})\n\n" + markdown_table(["metric", "%"], rows)
    )


def zeroshot_run(
    run_dir: str | os.PathLike,
    dataset: str,
    *,
    split: str | None = None,
    templates: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    data_root: str | None = None,
    out: str | os.PathLike | None = None,
    columns: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Zero-shot top-1/top-5 of a contrastive run on a labelled dataset; writes ``zeroshot.json``/``.md`` to ``out``.

    ``classes`` replaces the dataset's class names in the prompts (one word or phrase per label, in label order):
    how a folder of your images with terse folder names is scored with the words you would say. ``columns`` name
    the roles of a user's manifest columns (see :mod:`chorus.data.userdata`).
    """
    names = classes
    cfg, loaded, classes, loaded_tokenizer = load_run(run_dir)
    model, tokenizer, query = _contrastive(loaded, loaded_tokenizer, run_dir)
    data, used_split = _dataset(cfg, dataset, split, data_root, **({"columns": columns} if columns else {}))
    if not cfg.data.same_dataset(dataset):
        classes = list(data.classes)
    if names is not None:
        if len(names) != len(classes):
            raise ConfigError(f"{len(names)} class names given, dataset {dataset!r} has {len(classes)} classes")
        classes = list(names)
    if not classes:
        raise DataError(f"dataset {dataset!r} has no class names to write prompts from")
    templates = _default_templates(cfg, dataset) if templates is None else templates
    context = cfg.data.context_length
    classifier = build_zero_shot_classifier(model, lambda texts: tokenizer(texts, context), classes, list(templates))
    loader = DataLoader(data, batch_size=256, collate_fn=Collate())
    metrics = zero_shot_accuracy(model, loader, classifier, modality=query, ks=topk_below(len(classes)))
    result = {
        "run_dir": str(run_dir),
        "dataset": dataset,
        "split": used_split,
        "n": len(data),
        "classes": len(classes),
        "templates": list(templates),
        "chance_top1": 1 / len(classes),
        "metrics": metrics,
    }
    _write(out, "zeroshot", result, f"Zero-shot classification ({len(classes)} classes)")
    return result


def image_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, folders expanded to the image files under them (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def zeroshot_files(
    run_dir: str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    classes: Sequence[str] | None = None,
    *,
    templates: Sequence[str] | None = None,
    top_k: int = 5,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """Label image files zero-shot: per file, the ``top_k`` likeliest of ``classes`` with their probabilities.

    ``paths``: image files and/or folders of them. ``classes``: your label names (default: the run's own);
    ``templates``: prompts (default: the run's ``model.zero_shot_templates``). Probabilities are CLIP's:
    softmax of ``logit_scale`` × cosine over the given classes.
    """
    cfg, loaded, run_classes, loaded_tokenizer = load_run(run_dir)
    classes = list(classes or run_classes)
    if not classes:
        raise ConfigError(f"{run_dir} stores no class names: give the class names to choose between")
    model, tokenizer, query = _contrastive(loaded, loaded_tokenizer, run_dir)
    if query != "image" or "image" not in cfg.model.encoders:
        raise ConfigError(f"{run_dir} has no image tower to label images with")
    files = image_files(paths)
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(map(str, paths))}")
    context = cfg.data.context_length
    classifier = build_zero_shot_classifier(
        model, lambda texts: tokenizer(texts, context), classes, list(templates or cfg.model.zero_shot_templates)
    )
    transform = SampleFeatures(cfg.data, train=False)
    rows = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        pixels = torch.stack([transform({"image": decode_image(read_bytes(f), str(f))})["image"] for f in chunk])
        probs = zero_shot_predict(model, [{"image": pixels}], classifier).softmax(-1).cpu()
        top = probs.topk(min(top_k, len(classes)), dim=-1)
        rows += [
            {"path": str(f), "classes": [classes[i] for i in index.tolist()], "probs": p.tolist()}
            for f, p, index in zip(chunk, top.values, top.indices)
        ]
    return rows


def retrieve_run(
    run_dir: str | os.PathLike,
    dataset: str,
    *,
    split: str | None = None,
    data_root: str | None = None,
    out: str | os.PathLike | None = None,
    columns: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Image↔text Recall@1/5/10 of a contrastive run; writes ``retrieval.json``/``.md`` to ``out``.

    Each image's texts are its ``"captions"`` (COCO, read with ``mode="images"``
    for ``coco_captions``), else its ``"text"``, else its class name in the
    zero-shot templates (class-level retrieval on a labelled dataset).
    Identical strings are one gallery text whose correct images are all images
    carrying it, so every query may have several correct matches both ways.
    """
    cfg, loaded, classes, loaded_tokenizer = load_run(run_dir)
    model, tokenizer, query = _contrastive(loaded, loaded_tokenizer, run_dir)
    options = {"mode": "images"} if dataset == "coco_captions" else {"columns": columns} if columns else {}
    data, used_split = _dataset(cfg, dataset, split, data_root, **options)
    if len(data) == 0:
        raise DataError(f"dataset {dataset!r} split {used_split!r} is empty")
    if not cfg.data.same_dataset(dataset):
        classes = list(getattr(data, "classes", []))
    context = cfg.data.context_length
    scores = dataset_retrieval(
        model, data, lambda texts: tokenizer(texts, context), query, classes, _default_templates(cfg, dataset)
    )
    result = {"run_dir": str(run_dir), "dataset": dataset, "split": used_split} | scores
    _write(out, "retrieval", result, "Image–text retrieval (Recall@K)")
    return result
