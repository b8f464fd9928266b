"""Relation networks on Sort-of-CLEVR's object lists instead of pixels: what limits the distance questions.

The image relation network answers closest/furthest well below the paper's
> 94 % (docs/vqa.md). This probe takes the CNN out: each scene is its six
objects' true states — colour and shape one-hot, centre ``(x, y)`` in
[-1, 1] — the question a one-hot code of its colour and type (the paper's
encoding), and the benchmark's own :class:`~chorus.fusion.vqa.RelationNetwork`
(mean over pairs, BatchNorm, ``f``) answers. Varying ``g``'s width and how
precisely the positions are given separates the suspects: the relational
module's capacity, the precision with which the objects are located, and
whether ``g`` can form a pair's distance from its inputs.

- ``--widths``: ``g``'s width (the benchmark's 64; the paper's 256).
- ``--positions exact`` gives the centres to the pixel; ``cell`` rounds them
  to the centre of their cell of the image model's 5×5 grid — all the
  position a cell's coordinates carry, before what its features add.
- ``--pair-distance`` gives ``g`` the distance between the pair's two centres
  (:class:`DistanceRelationNetwork`; not in the paper).

The six objects sit on a 3×3 token grid padded with three zero tokens (the
fusion appends the grid's coordinates; here they only tell the tokens apart),
and each scene's 20 questions share a step, as in the benchmark's batches.

    python benchmarks/vqa_state_probe.py --out benchmarks/results/vqa/vqa_state_probe
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chorus.data.sort_of_clevr import (
    ANSWERS,
    IMAGE_SIZE,
    OBJECT_COLOURS,
    QUESTION_TYPES,
    SHAPES,
    ask_questions,
    generate_scene,
    scene_rng,
)
from chorus.eval.report import fmt_mean_std, mean_std, write_json
from chorus.fusion.vqa import RelationNetwork

TOKENS = 9  # six objects + three empty tokens: a 3×3 grid for the fusion's coordinates
CELLS = 5  # the image model's grid: 75 px / 15 px per cell
STATE = len(OBJECT_COLOURS) + len(SHAPES) + 2
QUESTION = len(OBJECT_COLOURS) + len(QUESTION_TYPES)


def _position(v: int, positions: str) -> float:
    """A centre coordinate in [-1, 1], exact or at the centre of its 5×5 cell."""
    pixel = float(v)
    if positions == "cell":
        cell = min(v * CELLS // IMAGE_SIZE, CELLS - 1)
        pixel = (cell + 0.5) * IMAGE_SIZE / CELLS
    return 2.0 * pixel / IMAGE_SIZE - 1.0


Encoded = tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]
"""What :func:`encode` returns: object tokens, question codes, answers, question types."""


def encode(split: str, scenes: int, seed: int, positions: str) -> Encoded:
    """(object tokens [S, 9, STATE], question codes [S, 20, QUESTION], answers [S, 20], types [S, 20])."""
    objects = torch.zeros(scenes, TOKENS, STATE)
    codes = torch.zeros(scenes, 20, QUESTION)
    answers = torch.zeros(scenes, 20, dtype=torch.long)
    types = np.empty((scenes, 20), dtype=object)
    for s in range(scenes):
        rng = scene_rng(seed, split, s)
        scene = generate_scene(rng)
        for k, obj in enumerate(scene):
            objects[s, k, OBJECT_COLOURS.index(obj.colour)] = 1.0
            objects[s, k, len(OBJECT_COLOURS) + SHAPES.index(obj.shape)] = 1.0
            objects[s, k, -2:] = torch.tensor([_position(obj.x, positions), _position(obj.y, positions)])
        for q, question in enumerate(ask_questions(scene, rng)):
            codes[s, q, OBJECT_COLOURS.index(question.colour)] = 1.0
            codes[s, q, len(OBJECT_COLOURS) + QUESTION_TYPES.index(question.question_type)] = 1.0
            answers[s, q] = ANSWERS.index(question.answer)
            types[s, q] = question.question_type
    return objects, codes, answers, types


class DistanceRelationNetwork(RelationNetwork):
    """The relation network with one more input to ``g``: the distance between the two objects' centres.

    ``g``'s first layer is linear in the two centres, so it can form their
    offset but not its length; "closest" and "furthest" otherwise wait for
    ``g``'s later ReLU layers to build a norm before they can compare one.
    """

    def __init__(self, dims: dict[str, int], out_dim: int, hidden: int) -> None:
        super().__init__(dims, out_dim, hidden=hidden)
        self.g_distance = nn.Linear(1, hidden, bias=False)

    def forward(
        self,
        features: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
        masks: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        objects, _, _, question = self.inputs(features, masks)
        centres = features["image"][..., -2:]
        first = self.g_first(objects) + self.g_question(question).unsqueeze(1)
        pairs = first.unsqueeze(2) + self.g_second(objects).unsqueeze(1)
        pairs = F.relu(pairs + self.g_distance(torch.cdist(centres, centres).unsqueeze(-1)))
        return cast(torch.Tensor, self.f(self.norm(self.g_rest(pairs).mean(dim=(1, 2)))))


def _logits(model: RelationNetwork, objects: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Answer logits for every question [S·20, answers]: each scene's objects repeated for its questions."""
    per_scene = codes.shape[1]
    cells = objects.repeat_interleave(per_scene, dim=0)
    return model({"image": cells, "text": codes.reshape(-1, 1, QUESTION)})


def train_and_score(
    width: int, seed: int, steps: int, train: Encoded, test: Encoded, pair_distance: bool = False
) -> dict[str, float]:
    """Test accuracy per question type (and relational / non-relational) of one relation network trained on
    ``train`` (encoded scenes) and scored on ``test``."""
    torch.manual_seed(seed)
    train_scenes, test_scenes = len(train[0]), len(test[0])
    kind = DistanceRelationNetwork if pair_distance else RelationNetwork
    model = kind({"image": STATE, "text": QUESTION}, len(ANSWERS), hidden=width)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
    )
    scenes_per_step = 8  # the benchmark's 8 scenes × 20 questions
    order = torch.randperm(train_scenes, generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for step in range(steps):
        idx = order[(step * scenes_per_step + torch.arange(scenes_per_step)) % train_scenes]
        loss = F.cross_entropy(_logits(model, train[0][idx], train[1][idx]), train[2][idx].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        predicted = _logits(model, test[0], test[1]).argmax(-1).reshape(test_scenes, -1)
    right = (predicted == test[2]).numpy()
    types = test[3]
    scores = {t: float(right[types == t].mean()) for t in QUESTION_TYPES}
    relational = np.isin(types, ["closest", "furthest", "count"])
    scores["relational"] = float(right[relational].mean())
    scores["non_relational"] = float(right[~relational].mean())
    scores["seconds"] = time.perf_counter() - start
    return scores


def render(results: dict[str, Any]) -> str:
    """The Markdown report of a probe's results (its JSON: ``config`` and ``runs``)."""
    cfg, runs = results["config"], results["runs"]
    cols = ["non_relational", "relational", *QUESTION_TYPES]
    lines = [
        "# Relation network on object states: test accuracy (%)",
        "",
        f"`python benchmarks/vqa_state_probe.py` — {cfg['steps']} steps of 8 scenes × 20 questions, "
        f"{cfg['train_scenes']} training and {cfg['test_scenes']} test scenes, seeds {cfg['seeds']}, mean ± std.",
        "",
        f"`g`'s input: each pair's objects and the question{', and the distance between the two centres' if cfg.get('pair_distance') else ''}.",
        "",
        "| g width | positions | " + " | ".join(c.replace("_", "-") for c in cols) + " | s/run |",
        "|" + "---|" * (len(cols) + 3),
    ]
    for name, scores in runs.items():
        width, positions = name.split("/")
        cells = [fmt_mean_std([s[c] for s in scores]) for c in cols]
        seconds = mean_std([s["seconds"] for s in scores])[0]
        lines.append(f"| {width} | {positions} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64])
    parser.add_argument("--positions", nargs="+", default=["exact", "cell"], choices=["exact", "cell"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--train-scenes", type=int, default=9800)
    parser.add_argument("--test-scenes", type=int, default=200)
    parser.add_argument("--pair-distance", action="store_true", help="give g each pair's distance as an input")
    parser.add_argument(
        "--out", type=Path, required=True, help="results path without suffix: writes OUT.json and OUT.md"
    )
    args = parser.parse_args(argv)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    runs: dict[str, list[dict[str, float]]] = {}
    for positions in args.positions:
        train = encode("train", args.train_scenes, 0, positions)  # the same scenes for every width and seed
        test = encode("test", args.test_scenes, 0, positions)
        for width in args.widths:
            name = f"{width}/{positions}"
            for seed in args.seeds:
                scores = train_and_score(width, seed, args.steps, train, test, args.pair_distance)
                runs.setdefault(name, []).append(scores)
                print(name, seed, {k: round(v, 3) for k, v in scores.items()}, flush=True)
    results = {"config": config, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), results)
    args.out.with_suffix(".md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
