"""Evaluate a trained contrastive run on any dataset: ``chorus zeroshot`` and ``chorus retrieve``.

What: :func:`zeroshot_run` rebuilds a run folder (``chorus.experiment.load_run``)
and classifies a labelled dataset from its class names written into prompt
templates (top-1/top-5); :func:`retrieve_run` embeds a captioned dataset's
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
from torch.utils.data import DataLoader, Dataset

from chorus.contrastive.retrieval import dataset_retrieval
from chorus.contrastive.zeroshot import CLIP_TEMPLATES, DIGIT_TEMPLATES, build_zero_shot_classifier, zero_shot_accuracy
from chorus.data import Collate, build_dataset
from chorus.data.registry import canonical_spec
from chorus.errors import ConfigError, DataError
from chorus.eval.report import markdown_table, write_json
from chorus.experiment import SampleFeatures, load_run

__all__ = ["zeroshot_run", "retrieve_run"]

DIGIT_DATASETS = frozenset({"digits", "mnist", "fsdd", "avdigits"})


def _query_modality(model: torch.nn.Module, run_dir: str | os.PathLike) -> str:
    encoders = getattr(model, "encoders", {})
    if "text" not in encoders:
        raise ConfigError(f"{run_dir} is not a contrastive run with a text tower (encoders: {sorted(encoders)})")
    return next(m for m in encoders if m != "text")


def _dataset(cfg: Any, evaluation: Dataset, dataset: str, split: str | None, data_root: str | None,
             **options: Any) -> tuple[Dataset, str]:
    """The run's own eval set when ``dataset`` is its dataset (and no options), else ``dataset`` with its transforms."""
    if cfg.data.same_dataset(dataset) and not options:
        return evaluation, cfg.data.eval_split
    split = split or "test"
    root = data_root if data_root is not None else cfg.data.root
    return build_dataset(dataset, root=root, split=split, transform=SampleFeatures(cfg.data, train=False), **options), split


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
    data_root: str | None = None,
    out: str | os.PathLike | None = None,
    columns: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Zero-shot top-1/top-5 of a contrastive run on a labelled dataset; writes ``zeroshot.json``/``.md`` to ``out``.

    ``columns`` name the roles of a user's manifest columns (see :mod:`chorus.data.userdata`)."""
    cfg, model, evaluation, classes, tokenizer = load_run(run_dir, data_root, split if _own(run_dir, dataset) else None)
    query = _query_modality(model, run_dir)
    data, used_split = _dataset(cfg, evaluation, dataset, split, data_root, **({"columns": columns} if columns else {}))
    if not cfg.data.same_dataset(dataset):
        classes = list(data.classes)
    if not classes:
        raise DataError(f"dataset {dataset!r} has no class names to write prompts from")
    templates = _default_templates(cfg, dataset) if templates is None else templates
    context = cfg.data.context_length
    classifier = build_zero_shot_classifier(model, lambda texts: tokenizer(texts, context), classes, list(templates))
    loader = DataLoader(data, batch_size=256, collate_fn=Collate())
    metrics = zero_shot_accuracy(model, loader, classifier, modality=query)
    result = {"run_dir": str(run_dir), "dataset": dataset, "split": used_split, "n": len(data),
              "classes": len(classes), "templates": list(templates), "chance_top1": 1 / len(classes),
              "metrics": metrics}
    _write(out, "zeroshot", result, f"Zero-shot classification ({len(classes)} classes)")
    return result


def _own(run_dir: str | os.PathLike, dataset: str) -> bool:
    """Whether ``dataset`` is the one the run was trained on (read cheaply from its experiment.yaml)."""
    import yaml

    path = Path(run_dir) / "experiment.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a finished Chorus run: experiment.yaml is missing")
    data = (yaml.safe_load(path.read_text()) or {}).get("data", {})
    own = f"{data.get('name')}:{data['path']}" if data.get("path") else data.get("name")
    return canonical_spec(dataset) == own


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
    cfg, model, evaluation, classes, tokenizer = load_run(run_dir, data_root, split if _own(run_dir, dataset) else None)
    query = _query_modality(model, run_dir)
    options = {"mode": "images"} if dataset == "coco_captions" else {"columns": columns} if columns else {}
    data, used_split = _dataset(cfg, evaluation, dataset, split, data_root, **options)
    if len(data) == 0:
        raise DataError(f"dataset {dataset!r} split {used_split!r} is empty")
    if not cfg.data.same_dataset(dataset):
        classes = list(getattr(data, "classes", []))
    context = cfg.data.context_length
    scores = dataset_retrieval(model, data, lambda texts: tokenizer(texts, context), query, classes,
                               _default_templates(cfg, dataset))
    result = {"run_dir": str(run_dir), "dataset": dataset, "split": used_split} | scores
    _write(out, "retrieval", result, "Image–text retrieval (Recall@K)")
    return result
