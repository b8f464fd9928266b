"""Sort-of-CLEVR: seeded synthetic scenes of coloured squares and circles with questions about them.

What it is: the relational-reasoning dataset of Santoro et al., *A simple
neural network module for relational reasoning* (NeurIPS 2017). Each scene is
a 75×75 RGB image on a white background holding six objects, one of each
colour in :data:`OBJECT_COLOURS`, each a square or a circle (:data:`SHAPES`)
of side/diameter :data:`OBJECT_SIZE` pixels at random non-overlapping
positions. Each scene gets questions of six types (:data:`QUESTION_TYPES`):

- non-relational — the shape of the X object; is it on the left or the right;
  is it at the top or the bottom;
- relational — the shape of the object closest to the X object; the shape of
  the object furthest from it; how many objects have the X object's shape
  (the X object included, so the answer is 1–6).

The paper encoded questions as one-hot vectors; here they are natural-language
text (:func:`question_text`) so they go through Chorus's text towers. Answers
are the classes of :data:`ANSWERS`.

Geometry: an object's centre ``(x, y)`` is an integer pixel with ``x`` the
column and ``y`` the row (``y`` grows downwards, so "top" is ``y`` smaller than
the image centre). "Left" means ``x < 37.5``, "top" means ``y < 37.5``; with
integer centres there is no tie. Distances are Euclidean between centres.
Two objects never overlap: their centres differ by more than
:data:`OBJECT_SIZE` in x or in y (their bounding boxes are disjoint with at
least one background pixel between them). Closest/furthest questions whose
answer object is tied in distance are never asked (the colour is redrawn), so
every question has exactly one correct answer.

Determinism: scene ``i`` of a split and its questions come from a generator
seeded with ``(seed, split, i)``, so a scene does not depend on the dataset
size, subsetting or worker sharding.

Public API for other tasks (scene captions reuse it): :class:`SceneObject`,
:func:`generate_scene`, :func:`render_scene`, :class:`Question`,
:func:`question_text`, :func:`answer_question`, :func:`ask_questions`,
:func:`scene_rng`, and the dataset :class:`SortOfCLEVR` (``sort_of_clevr``).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from chorus.data.base import ChorusDataset, OnError, Sample, check_choice
from chorus.data.registry import DATASETS
from chorus.errors import ConfigError

IMAGE_SIZE = 75
OBJECT_SIZE = 10  # side of a square, diameter of a circle, in pixels
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 200, 0),
    "blue": (0, 0, 255),
    "orange": (255, 140, 0),
    "grey": (128, 128, 128),
    "yellow": (255, 230, 0),
}
OBJECT_COLOURS: tuple[str, ...] = tuple(COLOURS)
SHAPES: tuple[str, ...] = ("square", "circle")
BACKGROUND = (255, 255, 255)
NON_RELATIONAL = ("shape", "horizontal", "vertical")
RELATIONAL = ("closest", "furthest", "count")
QUESTION_TYPES: tuple[str, ...] = NON_RELATIONAL + RELATIONAL
ANSWERS: tuple[str, ...] = ("square", "circle", "left", "right", "top", "bottom", "1", "2", "3", "4", "5", "6")
SPLIT_CODES = {"train": 0, "test": 1}
_TEMPLATES = {
    "shape": "what shape is the {} object?",
    "horizontal": "is the {} object on the left or the right?",
    "vertical": "is the {} object at the top or the bottom?",
    "closest": "what shape is the object closest to the {} object?",
    "furthest": "what shape is the object furthest from the {} object?",
    "count": "how many objects have the same shape as the {} object?",
}


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: colour and shape names, centre pixel (x = column, y = row)."""

    colour: str
    shape: str
    x: int
    y: int

    @property
    def horizontal(self) -> str:
        """``"left"`` or ``"right"`` half of the image."""
        return "left" if self.x < IMAGE_SIZE / 2 else "right"

    @property
    def vertical(self) -> str:
        """``"top"`` or ``"bottom"`` half of the image."""
        return "top" if self.y < IMAGE_SIZE / 2 else "bottom"

    @property
    def quadrant(self) -> str:
        """E.g. ``"top left"``."""
        return f"{self.vertical} {self.horizontal}"


@dataclass(frozen=True)
class Question:
    """A question about a scene: its text, answer class name, type and the colour it asks about."""

    text: str
    answer: str
    question_type: str
    colour: str

    @property
    def relational(self) -> bool:
        return self.question_type in RELATIONAL


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws scene ``index`` of ``split`` and its questions."""
    check_choice("Sort-of-CLEVR split", split, tuple(SPLIT_CODES))
    return np.random.default_rng([seed, SPLIT_CODES[split], index])


def generate_scene(rng: np.random.Generator) -> tuple[SceneObject, ...]:
    """Six objects, one per colour in :data:`OBJECT_COLOURS` order, random shapes, non-overlapping centres."""
    half = OBJECT_SIZE // 2
    objects: list[SceneObject] = []
    for colour in OBJECT_COLOURS:
        while True:  # rejection sampling; six 10-px objects in 75² rarely need more than a few draws
            x, y = (int(v) for v in rng.integers(half, IMAGE_SIZE - half, size=2))
            if all(max(abs(x - o.x), abs(y - o.y)) > OBJECT_SIZE for o in objects):
                break
        objects.append(SceneObject(colour, SHAPES[int(rng.integers(len(SHAPES)))], x, y))
    return tuple(objects)


def render_scene(objects: Sequence[SceneObject]) -> np.ndarray:
    """Draw the scene → uint8 array [75, 75, 3]; squares fill their box, circles are disc masks (no anti-aliasing)."""
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    half = OBJECT_SIZE // 2
    offsets = np.arange(-half, half) + 0.5  # pixel centres of a box of OBJECT_SIZE pixels around the centre
    disc = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= half**2
    for obj in objects:
        if obj.colour not in COLOURS or obj.shape not in SHAPES:
            raise ConfigError(f"unknown object {obj}; colours {list(OBJECT_COLOURS)}, shapes {list(SHAPES)}")
        box = image[obj.y - half : obj.y + half, obj.x - half : obj.x + half]
        mask = disc if obj.shape == "circle" else np.ones_like(disc)
        box[mask] = COLOURS[obj.colour]
    return image


def question_text(question_type: str, colour: str) -> str:
    """The natural-language question of a type about the object of ``colour``."""
    check_choice("question type", question_type, QUESTION_TYPES)
    check_choice("colour", colour, OBJECT_COLOURS)
    return _TEMPLATES[question_type].format(colour)


def _distances(objects: Sequence[SceneObject], subject: SceneObject) -> list[tuple[float, SceneObject]]:
    return [(math.hypot(o.x - subject.x, o.y - subject.y), o) for o in objects if o is not subject]


def answer_question(objects: Sequence[SceneObject], question_type: str, colour: str) -> str | None:
    """The answer class name, or ``None`` when a closest/furthest question is ambiguous (tied distances)."""
    check_choice("question type", question_type, QUESTION_TYPES)
    subject = next((o for o in objects if o.colour == colour), None)
    if subject is None:
        raise ConfigError(f"scene has no {colour} object")
    if question_type == "shape":
        return subject.shape
    if question_type == "horizontal":
        return subject.horizontal
    if question_type == "vertical":
        return subject.vertical
    if question_type == "count":
        return str(sum(o.shape == subject.shape for o in objects))
    ranked = sorted(_distances(objects, subject), key=lambda pair: pair[0], reverse=question_type == "furthest")
    if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
        return None
    return ranked[0][1].shape


def ask_questions(
    objects: Sequence[SceneObject],
    rng: np.random.Generator,
    non_relational: int = 10,
    relational: int = 10,
    colours: Sequence[str] = OBJECT_COLOURS,
) -> list[Question]:
    """``non_relational`` then ``relational`` questions, each of a uniformly drawn type about a random colour.

    ``colours`` restricts which objects are asked about (all six by default).
    """
    if not colours:
        raise ConfigError("ask_questions needs at least one colour to ask about")
    for colour in colours:
        check_choice("colour", colour, OBJECT_COLOURS)
    questions: list[Question] = []
    for kinds, count in ((NON_RELATIONAL, non_relational), (RELATIONAL, relational)):
        for _ in range(count):
            question_type, colour, answer = _draw_question(objects, rng, kinds, colours)
            questions.append(Question(question_text(question_type, colour), answer, question_type, colour))
    return questions


def _draw_question(
    objects: Sequence[SceneObject], rng: np.random.Generator, kinds: Sequence[str], colours: Sequence[str]
) -> tuple[str, str, str]:
    """A random type of ``kinds`` and colour of ``colours`` whose answer is unambiguous, with that answer.

    Colours are redrawn until the answer is defined; only when every colour ties for the drawn type (possible
    when few colours are asked about) is the type redrawn — count and the non-relational types never tie.
    """
    while True:
        question_type = kinds[int(rng.integers(len(kinds)))]
        tied: set[str] = set()
        while len(tied) < len(set(colours)):
            colour = colours[int(rng.integers(len(colours)))]
            answer = answer_question(objects, question_type, colour)
            if answer is not None:
                return question_type, colour, answer
            tied.add(colour)


@functools.lru_cache(maxsize=4)
def _generate(
    seed: int, split: str, count: int, non_relational: int, relational: int, colours: tuple[str, ...]
) -> tuple[list[tuple[SceneObject, ...]], list[tuple[int, Question]], np.ndarray]:
    """Scenes, (scene, question) records and read-only images [count, 75, 75, 3] of one split.

    Cached because a benchmark builds the same split for every model and seed
    (9,800 scenes take seconds); the result is a pure function of the arguments.
    """
    scenes, records = [], []
    for index in range(count):
        rng = scene_rng(seed, split, index)
        scene = generate_scene(rng)
        records += [(index, q) for q in ask_questions(scene, rng, non_relational, relational, colours)]
        scenes.append(scene)
    images = (
        np.stack([render_scene(s) for s in scenes]) if scenes else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    )
    images.flags.writeable = False
    return scenes, records, images


class SortOfCLEVR(ChorusDataset):
    """Yields one question about one scene: ``{"image": PIL RGB 75×75, "text": question, "label": answer index,
    "question_type": str, "relational": bool, "image_id": int (scene number; the questions of one scene are
    consecutive items and share it), "objects": tuple[SceneObject, ...]}``.

    ``classes`` are :data:`ANSWERS`. ``train_images``/``test_images`` scenes per
    split (paper: 9,800 / 200) with ``non_relational`` + ``relational``
    questions each (paper: 10 + 10), asked about the objects of ``colours``
    (all six by default; with one colour the question need not pick the
    object, a much easier task). Scenes are generated and rendered once,
    at construction (0.1 ms each); ``images`` holds them as uint8 [N, 75, 75, 3]
    so a trainer can batch pixels without going through PIL. ``root`` is
    accepted for a uniform API and ignored.
    """

    name = "sort_of_clevr"
    modalities = ("image", "text")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        train_images: int = 9800,
        test_images: int = 200,
        non_relational: int = 10,
        relational: int = 10,
        seed: int = 0,
        colours: Sequence[str] = OBJECT_COLOURS,
        indices: Sequence[int] | None = None,
    ) -> None:
        check_choice(f"{self.name} split", split, ("train", "test", "all"))
        if min(train_images, test_images, non_relational, relational) < 0:
            raise ConfigError(
                f"{self.name} sizes must be >= 0, got {train_images}, {test_images}, {non_relational}, {relational}"
            )
        sizes = {"train": train_images, "test": test_images}
        self.scenes: list[tuple[SceneObject, ...]] = []
        records: list[tuple[int, Question]] = []
        images = []
        for part in tuple(SPLIT_CODES) if split == "all" else (split,):
            scenes, questions, pixels = _generate(seed, part, sizes[part], non_relational, relational, tuple(colours))
            records += [(len(self.scenes) + scene, q) for scene, q in questions]
            self.scenes += scenes
            images.append(pixels)
        self.images = np.concatenate(images)
        labels = [ANSWERS.index(q.answer) for _, q in records]
        super().__init__(records, labels, list(ANSWERS), transform, on_error, indices)

    def load(self, index: int) -> Sample:
        scene, question = self.records[index]
        return {
            "image": Image.fromarray(self.images[scene]),
            "text": question.text,
            "label": self.labels[index],
            "question_type": question.question_type,
            "relational": question.relational,
            "image_id": scene,
            "objects": self.scenes[scene],
        }

    def texts(self) -> list[str]:
        """Every question's text, in item order, without rendering anything (a tokenizer's training corpus)."""
        return [q.text for _, q in self.records]

    def stats(self) -> dict[str, float]:
        relational = sum(q.relational for _, q in self.records)
        return {
            "height": float(IMAGE_SIZE),
            "width": float(IMAGE_SIZE),
            "scenes": float(len(self.scenes)),
            "relational_questions": float(relational),
            "non_relational_questions": float(len(self.records) - relational),
        }


DATASETS.register("sort_of_clevr")(SortOfCLEVR)
