"""Does a trained Sort-of-CLEVR model find the object its question names? Diagnostics of VQA run folders.

``python benchmarks/vqa_diagnostics.py RUN [RUN ...] --out benchmarks/results/vqa/diagnostics``

For each run folder (``chorus train configs/sort_of_clevr_vqa.yaml ... --run-dir RUN``, trained with
``train.eval_every``) it writes to ``OUT.json`` / ``OUT.md``:

- the test accuracy per question type at each evaluation of training (from ``metrics.jsonl``), beside the
  majority answer and the colour-blind reference of ``chorus bench vqa`` on the run's own test questions (:func:`chorus.bench.vqa.colour_blind_answer`:
  the scene's more common shape, its count and the fuller half — what a model gets without finding the object
  named);
- whether the question tower tells the colours apart: the mean cosine similarity of the pooled embeddings of the
  six questions of one type that differ only in the colour word (1.0: the colour is gone);
- whether the image tower keeps colour where the objects are: the 3-fold accuracy of a logistic-regression probe
  that names an object's colour from the features of the CNN cell nearest its centre, after each conv layer, for
  the trained encoder and for the same architecture at initialisation (chance: 1/6);
- for a run trained with ``train.checkpoint_every`` (its ``checkpoints/step_*`` folders): the test accuracy per
  question type of each checkpoint as saved, and after recomputing its BatchNorm statistics on 50 training
  batches (:func:`chorus.train.batchnorm.recompute_batchnorm`) — whether an evaluation made mid-training
  measures the weights or the lag of BatchNorm's running averages;
- whether the answers go beyond the colour-blind reference: the test accuracy per question type on the questions
  that reference answers wrongly (a model that only reads the scene's statistics scores 0 % there, one that finds
  the objects scores as on the rest), and for closest and furthest the accuracy by how much nearer (further) the
  answer's object is than the runner-up (if the cells were too coarse to compare distances, small margins would
  fail first).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from torch.utils.data import DataLoader

from chorus.ask import VQAPredictor
from chorus.bench.vqa import colour_blind_answer, majority_answer, reference_accuracy
from chorus.data.collate import Collate
from chorus.data.sort_of_clevr import OBJECT_COLOURS, QUESTION_TYPES, SortOfCLEVR, question_text
from chorus.errors import ChorusError
from chorus.eval.mode import evaluating
from chorus.eval.report import markdown_table, write_json
from chorus.experiment import build_datasets, load_experiment
from chorus.fusion.vqa import vqa_accuracy
from chorus.train.batchnorm import recompute_batchnorm

PROBE_SCENES = 60  # test scenes whose 360 objects the colour probe reads
PROBED_TYPES = ("shape", "horizontal", "count")  # question types whose colour variants are compared
STATISTICS_BATCHES = 50  # training batches whose BatchNorm statistics replace a checkpoint's running averages
MARGIN_BINS = (0, 3, 6, 10, 15, 100)  # pixels between the answer object's distance and the runner-up's


def eval_curve(run: Path) -> list[dict[str, float]]:
    """Each evaluation logged during training: step and test accuracy per question type."""
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise SystemExit(
            f"{run} has no metrics.jsonl: train it with `chorus train sort_of_clevr_vqa ... --run-dir {run}`"
        )
    rows = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if "eval/accuracy" in record:
            rows.append({"step": record["step"]} | {k[5:]: v for k, v in record.items() if k.startswith("eval/")})
    return rows


def question_similarity(predictor: VQAPredictor) -> dict[str, float]:
    """Mean off-diagonal cosine similarity of pooled question embeddings across the six colours, per type."""
    out = {}
    for kind in PROBED_TYPES:
        questions = [question_text(kind, colour) for colour in OBJECT_COLOURS]
        ids, mask = predictor.tokenizer(questions, predictor.context_length)
        with torch.no_grad():
            pooled = predictor.model.text_encoder(ids, mask=mask).pooled.float()
        unit = torch.nn.functional.normalize(pooled, dim=-1)
        sims = unit @ unit.T
        n = len(OBJECT_COLOURS)
        out[kind] = float((sims.sum() - sims.diagonal().sum()) / (n * n - n))
    return out


def colour_probe(encoder: Any, images: torch.Tensor, scenes: list[Any]) -> list[float]:
    """Probe accuracy of an object's colour from its nearest cell, after each conv block of the CNN."""
    objects = [(i, o) for i, scene in enumerate(scenes) for o in scene]
    colours = [o.colour for _, o in objects]
    scores, x = [], images
    with torch.no_grad():
        for block in encoder.blocks:
            x = block(x)
            stride = images.shape[-1] / x.shape[-1]
            features = np.stack(
                [
                    x[i, :, min(x.shape[2] - 1, round(o.y / stride)), min(x.shape[3] - 1, round(o.x / stride))].numpy()
                    for i, o in objects
                ]
            )
            probe = LogisticRegression(max_iter=3000)
            scores.append(float(cross_val_score(probe, features, colours, cv=3).mean()))
    return scores


def batchnorm_check(run: Path, predictor: VQAPredictor) -> list[dict[str, Any]]:
    """Each checkpoint's test accuracy as saved and after recomputing BatchNorm statistics (none: no checkpoints)."""
    checkpoints = sorted((run / "checkpoints").glob("step_*"))
    if not checkpoints:
        return []
    cfg = load_experiment(run / "experiment.yaml")
    train, test, _ = build_datasets(cfg)
    collate = Collate(predictor.tokenizer, cfg.data.context_length)
    model = predictor.model
    final = {k: v.clone() for k, v in model.state_dict().items()}

    def forward(batch: dict[str, Any]) -> None:
        model.logits(batch["image"], batch["text"], batch["text_mask"], batch.get("image_id"))

    rows = []
    for checkpoint in checkpoints:
        model.load_state_dict(load_file(str(checkpoint / "model.safetensors")))
        saved = vqa_accuracy(model, DataLoader(test, cfg.train.batch_size, collate_fn=collate))
        batches = itertools.islice(DataLoader(train, cfg.train.batch_size, collate_fn=collate), STATISTICS_BATCHES)
        recompute_batchnorm(model, forward, batches)
        recomputed = vqa_accuracy(model, DataLoader(test, cfg.train.batch_size, collate_fn=collate))
        rows.append({"step": int(checkpoint.name.split("_")[-1]), "saved": saved, "recomputed": recomputed})
    model.load_state_dict(final)
    return rows


def beyond_reference(run: Path, predictor: VQAPredictor) -> dict[str, Any]:
    """Test accuracy per question type where the colour-blind reference is wrong / right, for closest and
    furthest by the distance margin between the answer's object and the runner-up (pixels), and on
    non-relational / relational questions by the colour they name (a model that has bound some colours to
    their objects and not others shows it here)."""
    cfg = load_experiment(run / "experiment.yaml")
    _, test, _ = build_datasets(cfg)
    model = predictor.model
    predicted: list[int] = []
    with evaluating(model):
        for batch in DataLoader(
            test, cfg.train.batch_size, collate_fn=Collate(predictor.tokenizer, cfg.data.context_length)
        ):
            logits = model.logits(batch["image"], batch["text"], batch["text_mask"], batch.get("image_id"))
            predicted += logits.argmax(-1).tolist()
    split: dict[str, dict[str, list[int]]] = {"reference wrong": {}, "reference right": {}}
    margins: dict[str, list[tuple[float, int]]] = {"closest": [], "furthest": []}
    colours: dict[str, dict[str, list[int]]] = {c: {"non_relational": [], "relational": []} for c in OBJECT_COLOURS}
    for (scene, question), label, guess in zip(test.records, test.labels, predicted, strict=True):
        objects = test.scenes[scene]
        ok = int(guess == label)
        side = "reference right" if colour_blind_answer(objects, question) == question.answer else "reference wrong"
        split[side].setdefault(question.question_type, []).append(ok)
        colours[question.colour]["relational" if question.relational else "non_relational"].append(ok)
        if question.question_type in margins:
            subject = next(o for o in objects if o.colour == question.colour)
            distances = sorted(float(np.hypot(o.x - subject.x, o.y - subject.y)) for o in objects if o is not subject)
            ends = distances[:2] if question.question_type == "closest" else distances[-2:]
            margins[question.question_type].append((abs(ends[1] - ends[0]), ok))
    by_margin = {
        kind: {
            f"{low}-{high} px": {"accuracy": float(np.mean(hits)) if hits else float("nan"), "questions": len(hits)}
            for low, high in itertools.pairwise(MARGIN_BINS)
            for hits in [[ok for margin, ok in rows if low <= margin < high]]
        }
        for kind, rows in margins.items()
    }
    return {
        side: {t: {"accuracy": float(np.mean(v)), "questions": len(v)} for t, v in sorted(per_type.items())}
        for side, per_type in split.items()
    } | {
        "by_distance_margin": by_margin,
        "by_colour": {
            colour: {kind: {"accuracy": float(np.mean(v)), "questions": len(v)} for kind, v in kinds.items() if v}
            for colour, kinds in colours.items()
        },
    }


def references(run: Path) -> dict[str, dict[str, float]]:
    """The majority answer and the colour-blind reference on the run's own test questions."""
    options = load_experiment(run / "experiment.yaml").data.options
    train, test = SortOfCLEVR(split="train", **options), SortOfCLEVR(split="test", **options)
    return {
        "majority answer": reference_accuracy(test, majority_answer(train)),
        "colour-blind reference": reference_accuracy(test, colour_blind_answer),
    }


def diagnose(run: Path) -> dict[str, Any]:
    predictor = VQAPredictor.from_run(run)
    test = SortOfCLEVR(split="test", test_images=PROBE_SCENES, seed=0)
    images = torch.stack([predictor.transform(Image.fromarray(test.images[i])) for i in range(PROBE_SCENES)])
    trained = predictor.model.image_encoder.eval()
    fresh = copy.deepcopy(trained)
    torch.manual_seed(0)
    for module in fresh.modules():
        for reset in ("reset_parameters", "reset_running_stats"):
            if hasattr(module, reset):
                getattr(module, reset)()
    with torch.no_grad():  # BatchNorm statistics of the untrained encoder from the probe images themselves
        fresh.train()(images)
    fresh.eval()
    return {
        "references": references(run),
        "curve": eval_curve(run),
        "question_cosine_across_colours": question_similarity(predictor),
        "colour_probe_by_layer": {
            "trained": colour_probe(trained, images, test.scenes),
            "untrained": colour_probe(fresh, images, test.scenes),
        },
        "batchnorm_statistics": batchnorm_check(run, predictor),
        "beyond_reference": beyond_reference(run, predictor),
    }


def run_names(runs: list[Path]) -> dict[str, Path]:
    """Each run by its folder name, or with its parent's where names repeat (a benchmark's ``<model>_seed<k>/stage<n>``)."""
    short = [run.name for run in runs]
    return {
        (name if short.count(name) == 1 else f"{run.parent.name}/{name}"): run
        for name, run in zip(short, runs, strict=True)
    }


def render(results: dict[str, Any]) -> str:
    """The Markdown report of :func:`diagnose`'s results, one table per diagnostic."""

    def percent(acc: dict[str, float]) -> list[str]:
        return [f"{100 * acc[f'accuracy_{t}']:.1f}" for t in QUESTION_TYPES]

    curves = []
    for name, result in results.items():
        curves += [[f"{name}: {ref}", "", *percent(acc)] for ref, acc in result["references"].items()]
        curves += [[name, int(point["step"]), *percent(point)] for point in result["curve"]]
    towers = [
        [
            name,
            " / ".join(f"{v:.3f}" for v in result["question_cosine_across_colours"].values()),
            " / ".join(f"{100 * v:.0f}" for v in result["colour_probe_by_layer"]["trained"]) + " %",
            " / ".join(f"{100 * v:.0f}" for v in result["colour_probe_by_layer"]["untrained"]) + " %",
        ]
        for name, result in results.items()
    ]
    sections = [
        "# Sort-of-CLEVR diagnostics\n\nThe commands that train these runs and write this file are in docs/vqa.md.\n",
        "Test accuracy (%) per question type during training, against the references:\n",
        markdown_table(["run", "step", *QUESTION_TYPES], curves),
        markdown_table(
            [
                "run",
                "question cosine across colours (shape / left-right / count)",
                "colour probe by conv layer, trained",
                "untrained",
            ],
            towers,
        ),
    ]
    checked = [
        [name, point["step"], kind, *percent(point[kind])]
        for name, result in results.items()
        for point in result["batchnorm_statistics"]
        for kind in ("saved", "recomputed")
    ]
    if checked:
        sections += [
            f"Checkpoints evaluated with their BatchNorm running averages as saved, and after recomputing the "
            f"statistics on {STATISTICS_BATCHES} training batches at the same weights (test accuracy %):\n",
            markdown_table(["run", "step", "statistics", *QUESTION_TYPES], checked),
        ]
    sides = [
        [name, side, *(f"{100 * by_type[t]['accuracy']:.1f}" if t in by_type else "–" for t in QUESTION_TYPES)]
        for name, result in results.items()
        for side, by_type in result["beyond_reference"].items()
        if side not in ("by_distance_margin", "by_colour")
    ]
    bins = [f"{low}-{high} px" for low, high in itertools.pairwise(MARGIN_BINS)]
    margins = [
        [name, kind, *(f"{100 * rows[b]['accuracy']:.1f} ({rows[b]['questions']})" for b in bins)]
        for name, result in results.items()
        for kind, rows in result["beyond_reference"]["by_distance_margin"].items()
    ]
    sections += [
        "Test accuracy (%) on the questions the colour-blind reference answers wrongly (right), and for closest /\n"
        "furthest by how much nearer / further the answer's object is than the runner-up:\n",
        markdown_table(["run", "questions", *QUESTION_TYPES], sides),
        markdown_table(["run", "question", *bins], margins),
    ]
    by_colour = [
        [
            name,
            kind.replace("_", "-"),
            *(f"{100 * rows[c][kind]['accuracy']:.1f}" if kind in rows[c] else "–" for c in OBJECT_COLOURS),
        ]
        for name, result in results.items()
        if "by_colour" in result["beyond_reference"]
        for rows in [result["beyond_reference"]["by_colour"]]
        for kind in ("non_relational", "relational")
    ]
    if by_colour:
        sections += [
            "Test accuracy (%) by the colour the question names:\n",
            markdown_table(["run", "questions", *OBJECT_COLOURS], by_colour),
        ]
    return "\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/vqa/diagnostics"))
    args = parser.parse_args()
    try:
        results = {name: diagnose(run) for name, run in run_names(args.runs).items()}
    except ChorusError as err:  # not a finished VQA run folder: one line, nothing written
        raise SystemExit(f"error: {err}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), results)

    text = render(results)
    args.out.with_suffix(".md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
