"""Scene captions of Sort-of-CLEVR images, the parser back into objects, and their attribute accuracy.

What: a scene of :mod:`chorus.data.sort_of_clevr` (six objects, one per
colour) is described in words as "a red square at the top left, a green circle
at the bottom right, …" — one clause per object, in the generator's fixed
colour order. :func:`parse_scene_caption` reads such text back into
(colour, shape, quadrant) triples, so a generated caption can be scored by what
it *says* rather than by n-gram overlap: :func:`attribute_accuracy` is the
fraction of the scene's objects whose colour is mentioned with the right shape
and the right quadrant.

Why this task: unlike COCO, the correct caption is known exactly, so a
captioner's grounding (does it see colour, shape and position?) is measured
without the ambiguity of human references; the position clause also tests that
the image prefix keeps the layout (the ``"grid"`` prefix of
:class:`~chorus.translate.caption.PrefixMapper`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from chorus.data.sort_of_clevr import (
    OBJECT_COLOURS,
    SHAPES,
    SceneObject,
    generate_scene,
    render_scene,
    scene_rng,
)

_CLAUSE = re.compile(
    r"\b(?P<colour>[a-z]+) (?P<shape>[a-z]+) at the (?P<vertical>top|bottom) (?P<horizontal>left|right)\b"
)


@dataclass(frozen=True)
class Described:
    """One object as a caption states it."""

    colour: str
    shape: str
    quadrant: str


def scene_caption(objects: Sequence[SceneObject]) -> str:
    """ "a red square at the top left, …" ("an orange …"): one clause per object, in :data:`OBJECT_COLOURS` order."""
    ordered = sorted(objects, key=lambda o: OBJECT_COLOURS.index(o.colour))
    return ", ".join(
        f"{'an' if o.colour[0] in 'aeiou' else 'a'} {o.colour} {o.shape} at the {o.quadrant}" for o in ordered
    )


def parse_scene_caption(text: str) -> list[Described]:
    """Every "COLOUR SHAPE at the VERTICAL HORIZONTAL" clause of ``text`` (unknown words kept as written)."""
    return [
        Described(m["colour"], m["shape"], f"{m['vertical']} {m['horizontal']}") for m in _CLAUSE.finditer(text.lower())
    ]


def attribute_accuracy(captions: Sequence[str], scenes: Sequence[Sequence[SceneObject]]) -> dict[str, float]:
    """Fraction of objects described with the right shape and quadrant (first clause naming their colour),
    and of captions that state every object right; also shape and quadrant accuracy alone.

    An object whose colour no clause names counts as wrong on every attribute.
    """
    if len(captions) != len(scenes):
        raise ValueError(f"{len(captions)} captions for {len(scenes)} scenes")
    objects = both = shape = quadrant = exact = 0
    for text, scene in zip(captions, scenes):
        said: dict[str, Described] = {}
        for clause in parse_scene_caption(text):
            said.setdefault(clause.colour, clause)
        right_here = 0
        for obj in scene:
            told = said.get(obj.colour)
            shape_ok = told is not None and told.shape == obj.shape
            quadrant_ok = told is not None and told.quadrant == obj.quadrant
            shape += shape_ok
            quadrant += quadrant_ok
            right_here += shape_ok and quadrant_ok
            objects += 1
        both += right_here
        exact += right_here == len(scene)
    n = max(objects, 1)
    return {
        "object_accuracy": both / n,
        "shape_accuracy": shape / n,
        "quadrant_accuracy": quadrant / n,
        "caption_exact": exact / max(len(scenes), 1),
    }


def chance_object_accuracy() -> float:
    """Object accuracy of a caption that names every colour with a uniformly random shape and quadrant."""
    return 1 / (len(SHAPES) * 4)


def scene_caption_data(
    count: int, split: str = "train", seed: int = 0
) -> tuple[Tensor, list[str], list[tuple[SceneObject, ...]]]:
    """``count`` Sort-of-CLEVR scenes: uint8 images [N, 3, 75, 75], their captions and their objects."""
    scenes = [generate_scene(scene_rng(seed, split, i)) for i in range(count)]
    images = (
        torch.stack([torch.from_numpy(render_scene(s)).permute(2, 0, 1) for s in scenes])
        if scenes
        else torch.zeros(0, 3, 75, 75, dtype=torch.uint8)
    )
    return images, [scene_caption(s) for s in scenes], scenes
