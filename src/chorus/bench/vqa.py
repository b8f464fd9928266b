"""Visual question answering on Sort-of-CLEVR: CNN+MLP vs relation network, FiLM and question attention.

Reproduces the comparison of Santoro et al. 2017 ("A simple neural network
module for relational reasoning", NeurIPS, Sort-of-CLEVR): every model is the
shipped experiment ``configs/sort_of_clevr_vqa.yaml`` with ``model.fusion``
swapped, trained by ``chorus.experiment.train_experiment`` (the one Trainer)
into a run folder that ``chorus ask`` can load. Reported per model over seeds
(mean ± std): accuracy on non-relational and relational test questions and per
question type, against the majority answer of each question type (a model that
reads the question but not the image) and the paper's figures.

With ``curriculum`` stages (the ``curriculum`` preset) each model is trained
stage by stage, each stage asking about more colours and starting from the
weights of the one before (``model.init_from``); every stage is its own run
folder, reused when it already holds that finished stage.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chorus.ask import VQAPredictor
from chorus.bench.driver import Report
from chorus.config import CONFIG_DIR, to_dict
from chorus.data.sort_of_clevr import ANSWERS, QUESTION_TYPES, Question, SceneObject, SortOfCLEVR
from chorus.errors import ConfigError
from chorus.eval.report import MethodCard, fmt_mean_std, mean_std, write_json
from chorus.experiment import load_experiment, train_experiment

MODELS = {
    "early": "CNN + MLP (early fusion)",
    "relation_network": "CNN + relation network",
    "film": "CNN + FiLM",
    "question_attention": "CNN + question attention",
}
FUSION_OPTIONS: dict[str, dict[str, Any]] = {
    "early": {"hidden": 256},
    "relation_network": {"hidden": 64},
    "film": {},
    "question_attention": {},
}


CURRICULUM_COLOURS = ("red", "blue", "green", "orange", "grey", "yellow")
"""The order in which a colour curriculum adds the colours asked about (its last stage asks about all six)."""


@dataclass(frozen=True)
class Config:
    train_images: int = 800  # paper: 9,800; 800 is what `steps` × 8 scenes reads once (the CPU budget)
    test_images: int = 200
    steps: int = 100  # of the last stage, which asks about all six colours and is scored
    # earlier stages, each (how many of CURRICULUM_COLOURS are asked about, steps), each starting from the
    # weights of the one before; stages of six colours restart the cosine schedule
    curriculum: tuple[tuple[int, int], ...] = ()
    text_encoder: str = "text_transformer"
    tokenizer: str = "bpe"  # minilm: one fixed vocabulary across curriculum stages
    batch_size: int = 160  # questions per step: 8 scenes × their 20 questions (see the shipped config)
    lr: float = 0.002
    seeds: tuple[int, ...] = (0, 1, 2)
    models: tuple[str, ...] = tuple(MODELS)
    data_seed: int = 0
    attention_examples: int = 4


PRESETS = {
    "full": Config(),
    "quick": Config(train_images=300, test_images=50, steps=60, seeds=(0,), attention_examples=2),
    # the paper's 9,800 scenes, colours introduced one at a time to a bag-of-words question tower (docs/vqa.md)
    "curriculum": Config(
        train_images=9800,
        curriculum=((1, 500), (2, 1000), (3, 1000), (4, 1000), (5, 1000), (6, 3000), (6, 8000)),
        steps=6000,
        text_encoder="bag_of_words",
        tokenizer="minilm",
        models=("relation_network", "early"),
    ),
}


def _overrides(cfg: Config, model: str, seed: int, colours: int, steps: int, init_from: Path | None) -> list[str]:
    """The overrides of the shipped config for one stage of ``model``."""
    overrides = [
        f"data.options.train_images={cfg.train_images}",
        f"data.options.test_images={cfg.test_images}",
        f"data.options.seed={cfg.data_seed}",
        f"data.tokenizer={cfg.tokenizer}",
        f"model.encoders.text={json.dumps({'name': cfg.text_encoder, 'size': 'tiny'})}",
        f"model.fusion={model}",
        f"train.max_steps={steps}",
        f"train.batch_size={cfg.batch_size}",
        f"train.lr={cfg.lr}",
        f"train.seed={seed}",
        "train.progress=false",
        "train.tensorboard=false",
        f"train.log_every={max(1, steps // 10)}",
        f"model.fusion_options={json.dumps(FUSION_OPTIONS[model])}",
    ]
    if not 1 <= colours <= len(CURRICULUM_COLOURS):
        raise ConfigError(f"curriculum: a stage asks about 1 to {len(CURRICULUM_COLOURS)} colours, not {colours}")
    if colours < len(CURRICULUM_COLOURS):  # all six: the dataset's own order, as in the shipped config
        overrides.append(f"data.options.colours={json.dumps(list(CURRICULUM_COLOURS[:colours]))}")
    if init_from is not None:
        overrides.append(f"model.init_from={init_from}")
    return overrides


def _train_stage(overrides: list[str], run_dir: Path) -> dict[str, float]:
    """Eval scores of one stage, trained into ``run_dir`` — or read back from it when it already holds this
    finished stage, so a benchmark stopped after hours restarts at the stage it was in."""
    stamp = run_dir / "bench_stage.json"
    if (run_dir / "metrics.json").is_file() and stamp.is_file():
        done = json.loads(stamp.read_text())
        if done["overrides"] == overrides:
            print(f"vqa: reusing the finished stage in {run_dir}", flush=True)
            return dict(done["scores"])
    start = time.perf_counter()
    cfg = load_experiment(CONFIG_DIR / "sort_of_clevr_vqa.yaml", overrides)
    metrics = train_experiment(cfg, run_dir, overwrite=True)
    scores = {k.removeprefix("eval/"): float(v) for k, v in metrics.items() if k.startswith("eval/")}
    scores["seconds"] = time.perf_counter() - start
    write_json(stamp, {"overrides": overrides, "scores": scores})
    return scores


def train_model(cfg: Config, model: str, seed: int, folder: Path) -> list[dict[str, float]]:
    """Train ``model`` through the curriculum's stages and the last one; the eval scores of each stage.

    Without a curriculum the one stage is trained in ``folder``; with one, stage ``k`` in ``folder/stageK``.
    """
    stages = (*cfg.curriculum, (len(CURRICULUM_COLOURS), cfg.steps))
    scores: list[dict[str, float]] = []
    previous: Path | None = None
    for index, (colours, steps) in enumerate(stages, start=1):
        run_dir = stage_dir(cfg, folder, index)
        scores.append(_train_stage(_overrides(cfg, model, seed, colours, steps, previous), run_dir))
        previous = run_dir
    return scores


def stage_dir(cfg: Config, folder: Path, index: int | None = None) -> Path:
    """The run folder of stage ``index`` (1-based; default the last, the one scored) of a model trained in ``folder``."""
    if not cfg.curriculum:
        return folder
    return folder / f"stage{len(cfg.curriculum) + 1 if index is None else index}"


Answerer = Callable[[Sequence[SceneObject], Question], str]
"""A rule that answers a question from the scene's object list (a reference, not a model)."""


def reference_accuracy(test: SortOfCLEVR, answer: Answerer) -> dict[str, float]:
    """Accuracy on ``test`` overall, per question type and relational / not of ``answer(scene objects, question)``."""
    hits: dict[str, list[bool]] = {}
    for (scene, q), label in zip(test.records, test.labels, strict=True):
        ok = ANSWERS.index(answer(test.scenes[scene], q)) == label
        for key in (
            "accuracy",
            f"accuracy_{q.question_type}",
            f"accuracy_{'relational' if q.relational else 'non_relational'}",
        ):
            hits.setdefault(key, []).append(ok)
    return {k: float(np.mean(v)) for k, v in hits.items()}


def majority_answer(train: SortOfCLEVR) -> Answerer:
    """Answers each question with the most frequent training answer of its type (reads no image)."""
    prior = {
        t: Counter(q.answer for _, q in train.records if q.question_type == t).most_common(1)[0][0]
        for t in QUESTION_TYPES
    }
    return lambda _objects, q: prior[q.question_type]


def colour_blind_answer(objects: Sequence[SceneObject], question: Question) -> str:
    """The answer of a reader that sees the scene's shapes and positions but not which object the question names.

    Shape, closest and furthest: the scene's more common shape; count: how many objects have it; left/right
    and top/bottom: the half holding more objects (ties: square, left, top). A model that has not yet bound the
    question's colour word to an object can reach this, well above the majority answer, so a model's accuracy
    at this level is no evidence that it finds the object the question names.
    """
    shapes = Counter(o.shape for o in objects)
    common = "square" if shapes["square"] >= shapes["circle"] else "circle"
    left = sum(o.horizontal == "left" for o in objects)
    top = sum(o.vertical == "top" for o in objects)
    return {
        "count": str(shapes[common]),
        "horizontal": "left" if 2 * left >= len(objects) else "right",
        "vertical": "top" if 2 * top >= len(objects) else "bottom",
    }.get(question.question_type, common)


def run(cfg: Config, report: Report) -> None:
    runs: dict[str, list[dict[str, float]]] = {}
    stages: dict[str, dict[str, list[dict[str, float]]]] = {}  # model → "seed<k>" → each stage's scores
    for seed in cfg.seeds:  # seed-major: every model's first seed is done before any second seed starts
        for model in cfg.models:
            history = train_model(cfg, model, seed, report.out / "runs" / f"{model}_seed{seed}")
            scores = {**history[-1], "seconds": sum(stage["seconds"] for stage in history)}
            runs.setdefault(model, []).append(scores)
            stages.setdefault(model, {})[f"seed{seed}"] = [{"stage": k, **h} for k, h in enumerate(history, start=1)]
            write_json(report.out / "runs_so_far.json", {"config": to_dict(cfg), "runs": runs})
            print(
                f"vqa {model} seed {seed}: relational {scores['accuracy_relational']:.3f} "
                f"non-relational {scores['accuracy_non_relational']:.3f} ({scores['seconds']:.0f} s)",
                flush=True,
            )
    train = SortOfCLEVR(split="train", train_images=cfg.train_images, seed=cfg.data_seed)
    test = SortOfCLEVR(split="test", test_images=cfg.test_images, seed=cfg.data_seed)
    majority = reference_accuracy(test, majority_answer(train))
    colour_blind = reference_accuracy(test, colour_blind_answer)
    summary = {m: {k: mean_std([r[k] for r in rs]) for k in rs[0]} for m, rs in runs.items()}
    report.results.update(
        runs=runs,
        summary=summary,
        majority=majority,
        colour_blind=colour_blind,
        paper={"early": {"relational": 0.63}, "relation_network": {"relational": 0.94, "non_relational": 0.94}},
    )
    if cfg.curriculum:
        report.results["stages"] = stages

    def cell(model: str, key: str) -> str:
        return fmt_mean_std([r[key] for r in runs[model]])

    headers = ["model", "non-relational %", "relational %", "all %", "train s/run"]
    rows = [
        [
            MODELS[m],
            cell(m, "accuracy_non_relational"),
            cell(m, "accuracy_relational"),
            cell(m, "accuracy"),
            f"{summary[m]['seconds'][0]:.0f}",
        ]
        for m in runs
    ]
    references = {
        "majority answer per question type": majority,
        "colour-blind: the scene's shapes, not the object named": colour_blind,
    }
    for name, ref in references.items():
        rows.append(
            [
                name,
                *(f"{100 * ref[f'accuracy{k}']:.1f}" for k in ("_non_relational", "_relational", "")),
                "0",
            ]
        )
    rows.append(["paper: CNN + MLP (Santoro et al. 2017)", "> 94", "63", "", ""])
    rows.append(["paper: CNN + RN (Santoro et al. 2017)", "> 94", "> 94", "", ""])
    report.table(
        f"Sort-of-CLEVR test accuracy, mean ± std over seeds {list(cfg.seeds)}",
        headers,
        rows,
        note=f"{cfg.train_images} training / {cfg.test_images} test images, 10 + 10 questions each; "
        f"{_schedule(cfg)} of batch {cfg.batch_size} per run.",
    )
    report.table(
        "Accuracy per question type (%)",
        ["model", *QUESTION_TYPES],
        [[MODELS[m], *(cell(m, f"accuracy_{t}") for t in QUESTION_TYPES)] for m in runs]
        + [[name, *(f"{100 * ref[f'accuracy_{t}']:.1f}" for t in QUESTION_TYPES)] for name, ref in references.items()],
    )
    with report.figure("accuracy_per_type", figsize=(9, 3.6)) as (_fig, ax):
        width = 0.8 / len(runs)
        for k, model in enumerate(runs):
            stats = [summary[model][f"accuracy_{t}"] for t in QUESTION_TYPES]
            ax.bar(
                np.arange(len(QUESTION_TYPES)) + k * width,
                [100 * s[0] for s in stats],
                width,
                yerr=[100 * s[1] for s in stats],
                label=MODELS[model],
                capsize=2,
            )
        for (name, ref), marker in zip(references.items(), ("_", "x"), strict=True):
            ax.scatter(
                np.arange(len(QUESTION_TYPES)) + 0.4 - width / 2,
                [100 * ref[f"accuracy_{t}"] for t in QUESTION_TYPES],
                marker=marker,
                s=400 if marker == "_" else 40,
                color="k",
                label=name.split(":")[0],
                zorder=3,
            )
        ax.set_xticks(np.arange(len(QUESTION_TYPES)) + 0.4 - width / 2, QUESTION_TYPES)
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, loc="lower left")
    if cfg.curriculum:
        _stage_report(cfg, report, stages, colour_blind)
    if "question_attention" in runs and cfg.attention_examples:
        _attention_figure(cfg, report, stage_dir(cfg, report.out / "runs" / f"question_attention_seed{cfg.seeds[0]}"))
    _cards(cfg, report, runs, majority, colour_blind)


def _schedule(cfg: Config) -> str:
    if not cfg.curriculum:
        return f"{cfg.steps} steps"

    def named(colours: int) -> str:
        return "all six" if colours == len(CURRICULUM_COLOURS) else f"{colours} colour{'s' if colours > 1 else ''}"

    stages = " + ".join(f"{steps} ({named(colours)})" for colours, steps in cfg.curriculum)
    total = cfg.steps + sum(steps for _, steps in cfg.curriculum)
    return f"a colour curriculum of {stages} + {cfg.steps} (all six) = {total} steps"


def _per_seed(values: list[float]) -> str:
    """``mean ± std (seed values)`` in percent."""
    return f"{fmt_mean_std(values)} ({' / '.join(f'{100 * v:.1f}' for v in values)})"


def _stage_report(
    cfg: Config, report: Report, stages: dict[str, dict[str, list[dict[str, float]]]], colour_blind: dict[str, float]
) -> None:
    """Each curriculum stage's test accuracy (on the colours asked about so far) and a plot of it against steps."""
    schedule = [*cfg.curriculum, (len(CURRICULUM_COLOURS), cfg.steps)]
    ends = np.cumsum([steps for _, steps in schedule])
    rows = []
    for model, by_seed in stages.items():
        seeds = list(by_seed.values())
        for k, (colours, steps) in enumerate(schedule):
            rows.append(
                [
                    MODELS[model],
                    k + 1,
                    ", ".join(CURRICULUM_COLOURS[:colours]) if colours < len(CURRICULUM_COLOURS) else "all six",
                    steps,
                    int(ends[k]),
                    *(
                        _per_seed([run[k][f"accuracy_{kind}"] for run in seeds])
                        for kind in ("non_relational", "relational")
                    ),
                ]
            )
    report.table(
        "Curriculum stages: test accuracy on the colours asked about so far (%)",
        [
            "model",
            "stage",
            "colours asked about",
            "steps",
            "steps so far",
            f"non-relational % (seeds {' / '.join(s.removeprefix('seed') for s in next(iter(stages.values())))})",
            "relational % (per seed)",
        ],
        rows,
        note="Each stage starts from the weights of the one before; the last row of each model is the score above.",
    )
    with report.figure("curriculum", ncols=2, figsize=(9, 3.4), sharey=True) as (_fig, axes):
        for ax, kind in zip(axes, ("non_relational", "relational"), strict=True):
            for (model, by_seed), colour in zip(stages.items(), ("C0", "C1", "C2", "C3"), strict=False):
                for n, (seed, run) in enumerate(by_seed.items()):
                    ax.plot(
                        ends,
                        [100 * stage[f"accuracy_{kind}"] for stage in run],
                        marker="o",
                        markersize=3,
                        color=colour,
                        alpha=0.8,
                        linestyle=("-", "--", ":", "-.")[n % 4],
                        label=f"{MODELS[model]}, {seed}",
                    )
            ax.axhline(
                100 * colour_blind[f"accuracy_{kind}"],
                color="k",
                linestyle="--",
                linewidth=1,
                label="colour-blind reference (six colours)",
            )
            ax.set_title(kind.replace("_", "-"))
            ax.set_xlabel("training steps at the end of each stage")
        axes[0].set_ylabel("test accuracy (%)")
        axes[0].set_ylim(0, 100)
        axes[0].legend(fontsize=7, loc="lower right")


def _attention_figure(cfg: Config, report: Report, run_dir: Path) -> None:
    """The question-attention model's last-layer attention over the cells for a few relational test questions."""
    predictor = VQAPredictor.from_run(run_dir)
    test = SortOfCLEVR(split="test", test_images=cfg.test_images, seed=cfg.data_seed)
    picks = [i for i, (_, q) in enumerate(test.records) if q.question_type in ("closest", "furthest", "count")]
    picks = picks[:: max(1, len(picks) // cfg.attention_examples)][: cfg.attention_examples]
    with report.figure("attention", nrows=2, ncols=len(picks), figsize=(2.6 * len(picks), 5.6), squeeze=False) as (
        fig,
        axes,
    ):
        for column, index in enumerate(picks):
            sample = test.load(index)
            answer = predictor.ask(sample["image"], sample["text"])
            attention = np.asarray(answer.attention)
            side = round(attention.size**0.5)
            top, bottom = axes[0, column], axes[1, column]
            top.imshow(sample["image"])
            bottom.imshow(attention.reshape(side, side), cmap="viridis", extent=(0, 75, 75, 0))
            for ax in (top, bottom):
                for obj, style in _referenced(sample["objects"], test.records[index][1]):
                    ax.add_patch(_ring(obj.x, obj.y, style))
                ax.axis("off")
            top.set_title(
                f"{sample['text']}\npredicted {answer.answer}, true {test.classes[sample['label']]}", fontsize=6
            )
        fig.suptitle(
            "image (top); end-of-question token's attention over the 5×5 cells, last layer (bottom); "
            "solid ring: object asked about, dashed: objects the answer depends on",
            fontsize=6,
        )


def _referenced(objects: Any, question: Any) -> list[tuple[Any, str]]:
    """The object asked about (solid ring) and the objects the answer depends on (dashed rings)."""
    subject = next(o for o in objects if o.colour == question.colour)
    others = [o for o in objects if o is not subject]
    if question.question_type == "count":
        related = [o for o in others if o.shape == subject.shape]
    else:
        dist = [np.hypot(o.x - subject.x, o.y - subject.y) for o in others]
        related = [others[int(np.argmin(dist) if question.question_type == "closest" else np.argmax(dist))]]
    return [(subject, "-"), *((o, "--") for o in related)]


def _ring(x: float, y: float, style: str) -> Any:
    from matplotlib.patches import Circle

    return Circle((x - 0.5, y - 0.5), 8, fill=False, edgecolor="magenta", linestyle=style, linewidth=1.5)


def _cards(
    cfg: Config,
    report: Report,
    runs: dict[str, list[dict[str, float]]],
    majority: dict[str, float],
    colour_blind: dict[str, float],
) -> None:
    def both(model: str) -> str:
        if model not in runs:
            return "not in this report: trained in a separate run (docs/vqa.md)"
        rs = runs[model]
        return (
            f"relational {fmt_mean_std([r['accuracy_relational'] for r in rs])} %, non-relational "
            f"{fmt_mean_std([r['accuracy_non_relational'] for r in rs])} % over seeds {list(cfg.seeds)}"
        )

    tower = {
        "text_transformer": "a 2-layer text transformer (width 64)",
        "bag_of_words": "a bag of learned word embeddings (width 64)",
    }.get(cfg.text_encoder, f"the {cfg.text_encoder} text encoder")
    tokens = {"bpe": "BPE tokens", "minilm": "MiniLM's WordPiece tokens"}.get(cfg.tokenizer, f"{cfg.tokenizer} tokens")
    backbone = (
        f"the paper's image encoder (4 conv layers, 24 channels, stride 2, BatchNorm: 75×75 → 5×5 cells) "
        f"and {tower} over {tokens} of the question text — the paper fed "
        f"one-hot question codes; here questions are natural language. Trained from scratch with AdamW "
        f"(lr {cfg.lr}, cosine) for {_schedule(cfg)} of batch {cfg.batch_size} on {cfg.train_images} "
        f"images × 20 questions (paper: 9,800 images)"
    )
    base = (
        f"CNN + MLP on the concatenated flattened feature map and question vector (paper's baseline), "
        f"{both('early')}; majority answer per question type: relational "
        f"{100 * majority['accuracy_relational']:.1f} %, non-relational {100 * majority['accuracy_non_relational']:.1f} %; "
        f"colour-blind reference (the scene's shapes and halves, not the object named): relational "
        f"{100 * colour_blind['accuracy_relational']:.1f} %, non-relational "
        f"{100 * colour_blind['accuracy_non_relational']:.1f} %"
    )
    cards = {
        "relation_network": MethodCard(
            "Relation network (CNN + RN)",
            "g(o_i, o_j, q) scores every pair of cells together with the question and the sum feeds f, so "
            "comparisons between objects (closest, furthest, same shape) are built into the architecture instead "
            "of being learned from positions in a flat vector.",
            backbone
            + "; g: 3 layers of width 64 over the 625 ordered pairs of cells (+ their coordinates), batch-normalised mean over pairs, f: 3 layers",
            base,
            both("relation_network"),
            "Santoro et al. 2017 (NeurIPS), Sort-of-CLEVR: CNN+RN > 94 % on relational and non-relational questions, "
            "CNN+MLP 63 % relational; the gap to the paper is in the results table.",
        ),
        "film": MethodCard(
            "FiLM (question-conditioned feature maps)",
            "the question predicts a per-channel scale and shift for each residual block's normalised feature "
            "maps, selecting the colours/shapes it is about; later convolutions and the max-pool relate them.",
            backbone + "; 3 FiLM'd residual blocks of 64 channels on the 5×5 cells (+ coordinate maps), 1×1 conv, "
            "max-pool, MLP",
            base,
            both("film"),
            "Perez et al. 2018 (AAAI), FiLM: 97.7 % on CLEVR; not published on Sort-of-CLEVR, so the comparison "
            "is with the relation network trained with the same settings (docs/vqa.md).",
        ),
        "question_attention": MethodCard(
            "Question attention (cross-modal transformer)",
            "each question token attends over the image cells (queries from the question, keys/values from the "
            "cells with their coordinates), twice, with question self-attention between; the end-of-question token "
            "is classified. The attention map shows which cells the answer was read from.",
            backbone + "; 2 × (cross-attention + self-attention) blocks, width 64, 4 heads",
            base,
            both("question_attention"),
            "Attention over image regions for VQA: Yang et al. 2016 (Stacked Attention Networks, CVPR); not "
            "published on Sort-of-CLEVR, so the comparison is with the relation network trained with the same "
            "settings (docs/vqa.md).",
        ),
        "early": MethodCard(
            "CNN + MLP (early fusion baseline)",
            "an MLP on the concatenation can in principle represent any function of image and question, but it "
            "must learn every pairwise comparison from flat positions, which is why it lags on relational questions.",
            backbone + "; MLP of width 256 on the flattened 5×5×24 map and the question vector",
            f"majority answer per question type (relational {100 * majority['accuracy_relational']:.1f} %, "
            f"non-relational {100 * majority['accuracy_non_relational']:.1f} %)",
            both("early"),
            "Santoro et al. 2017: CNN+MLP 63 % relational and about 94 % non-relational on Sort-of-CLEVR.",
        ),
    }
    for model in runs:
        report.card(cards[model])
