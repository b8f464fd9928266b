"""Sort-of-CLEVR generator: answers agree with an independent computation, scenes are valid and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from chorus.data import build_dataset
from chorus.data.sort_of_clevr import (
    ANSWERS,
    COLOURS,
    IMAGE_SIZE,
    OBJECT_SIZE,
    SceneObject,
    ask_questions,
    generate_scene,
    render_scene,
    scene_rng,
)
from chorus.errors import ConfigError


def independent_answer(objects: tuple[SceneObject, ...], text: str) -> str:
    """Answer from the question *text* and the object list with numpy arrays (not the generator's code path)."""
    colour = next(c for c in COLOURS if f" {c} object" in text)
    xy = np.array([[o.x, o.y] for o in objects], dtype=float)
    shapes = np.array([o.shape for o in objects])
    k = [o.colour for o in objects].index(colour)
    dist = np.sqrt(((xy - xy[k]) ** 2).sum(axis=1))
    if text.startswith("what shape is the object closest"):
        dist[k] = np.inf
        return str(shapes[np.argmin(dist)])
    if text.startswith("what shape is the object furthest"):
        return str(shapes[np.argmax(dist)])
    if text.startswith("how many"):
        return str(int((shapes == shapes[k]).sum()))
    if "left or the right" in text:
        return "left" if 2 * xy[k, 0] < IMAGE_SIZE else "right"
    if "top or the bottom" in text:
        return "top" if 2 * xy[k, 1] < IMAGE_SIZE else "bottom"
    assert text.startswith("what shape is the")
    return str(shapes[k])


def test_answers_match_independent_computation_and_distances_are_unambiguous() -> None:
    for index in range(300):
        rng = scene_rng(3, "train", index)
        scene = generate_scene(rng)
        for q in ask_questions(scene, rng):
            assert q.answer == independent_answer(scene, q.text), (scene, q)
            if q.question_type in ("closest", "furthest"):
                k = [o.colour for o in scene].index(q.colour)
                d = sorted(np.hypot(o.x - scene[k].x, o.y - scene[k].y) for i, o in enumerate(scene) if i != k)
                assert (d[0] < d[1]) if q.question_type == "closest" else (d[-1] > d[-2])


def test_scene_is_valid_and_rendering_puts_each_colour_at_its_centre() -> None:
    for index in range(200):
        scene = generate_scene(scene_rng(0, "test", index))
        assert [o.colour for o in scene] == list(COLOURS)
        for i, a in enumerate(scene):
            for b in scene[i + 1 :]:  # bounding boxes disjoint: centres apart by more than one object size
                assert abs(a.x - b.x) > OBJECT_SIZE or abs(a.y - b.y) > OBJECT_SIZE
        image = render_scene(scene)
        assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and image.dtype == np.uint8
        for o in scene:
            assert tuple(image[o.y, o.x]) == COLOURS[o.colour]
            corner = tuple(image[o.y - OBJECT_SIZE // 2, o.x - OBJECT_SIZE // 2])  # squares fill corners, discs do not
            assert corner == (COLOURS[o.colour] if o.shape == "square" else (255, 255, 255))
        painted = (image != 255).any(axis=2).sum()
        assert 6 * 70 < painted <= 6 * OBJECT_SIZE**2  # six objects' worth of pixels, no more


def test_dataset_is_deterministic_and_shaped_like_the_paper() -> None:
    a = build_dataset("sort_of_clevr", split="train", train_images=20, seed=5)
    b = build_dataset("sort_of_clevr", split="train", train_images=20, seed=5)
    c = build_dataset("sort_of_clevr", split="train", train_images=20, seed=6)
    assert len(a) == 20 * 20 and a.labels == b.labels and np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    big = build_dataset("sort_of_clevr", split="train", train_images=40, seed=5)  # scene i does not depend on size
    assert np.array_equal(big.images[:20], a.images)
    sample = a[12]
    assert sample["image"].size == (75, 75) and sample["relational"] is True
    assert ANSWERS[sample["label"]] == independent_answer(sample["objects"], sample["text"])
    assert sum(s["relational"] for s in (a[i] for i in range(20))) == 10  # 10 non-relational, then 10 relational
    test = build_dataset("sort_of_clevr", split="test", test_images=5, seed=5)
    assert len(test) == 100 and not np.array_equal(test.images[:5], a.images[:5])


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        build_dataset("sort_of_clevr", split="valid")
    with pytest.raises(ConfigError):
        build_dataset("sort_of_clevr", train_images=-1)


def test_questions_about_one_colour_whose_distances_all_tie_fall_back_to_an_answerable_type() -> None:
    """Red at the centre, the other five at distance 25: closest and furthest about red are ambiguous, so
    relational questions about red alone can only be counts (asking about it used to loop for ever)."""
    ring = [(0, 25), (25, 0), (0, -25), (-25, 0), (15, 20)]
    others = [c for c in COLOURS if c != "red"]
    scene = (SceneObject("red", "square", 37, 37),) + tuple(
        SceneObject(c, "circle", 37 + dx, 37 + dy) for c, (dx, dy) in zip(others, ring, strict=True)
    )
    questions = ask_questions(scene, np.random.default_rng(0), non_relational=2, relational=10, colours=["red"])
    assert [q.question_type for q in questions[2:]] == ["count"] * 10
    assert all(q.answer == "1" for q in questions[2:])  # red is the only square
    # with all colours, the same scene still yields closest/furthest questions about the others
    kinds = {q.question_type for q in ask_questions(scene, np.random.default_rng(0), relational=30)}
    assert {"closest", "furthest"} <= kinds
