"""VQA fusions on Sort-of-CLEVR: exact shared encoding, attention maps, short training, run folder and `chorus ask`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from chorus.bench.vqa import colour_blind_answer, reference_accuracy
from chorus.cli import main
from chorus.config import CONFIG_DIR
from chorus.data import BPETokenizer
from chorus.data.sort_of_clevr import ANSWERS, Question, SceneObject, SortOfCLEVR
from chorus.encoders import build_encoder
from chorus.errors import ConfigError
from chorus.experiment import load_experiment, load_run, train_experiment
from chorus.fusion.vqa import VQAModel


def _batch(ds: SortOfCLEVR, tok: BPETokenizer, rows: list[int]) -> dict:
    scene = [ds.records[i][0] for i in rows]
    ids, mask = tok([ds.records[i][1].text for i in rows], 24)
    image = torch.from_numpy(ds.images[scene]).permute(0, 3, 1, 2).float() / 127.5 - 1
    return {
        "image": image,
        "text": ids,
        "text_mask": mask,
        "label": torch.tensor([ds.labels[i] for i in rows]),
        "image_id": scene,
    }


def _model(fusion: str, tok: BPETokenizer, **hyper) -> VQAModel:
    image = build_encoder("cnn", "tiny", widths=(24, 24, 24, 24), image_size=75, first_stride=2)
    text = build_encoder("text_transformer", "tiny", vocab_size=tok.vocab_size, context_length=24)
    return VQAModel.build(image, text, fusion, len(ANSWERS), (3, 75, 75), **hyper)


@pytest.fixture(scope="module")
def small() -> tuple[SortOfCLEVR, BPETokenizer]:
    ds = SortOfCLEVR(split="train", train_images=6, seed=1)
    return ds, BPETokenizer.train(ds.texts(), vocab_size=400, min_frequency=1)


@pytest.mark.parametrize("fusion", ["early", "relation_network", "film", "question_attention"])
def test_encoding_shared_images_once_is_exact(small, fusion: str) -> None:
    ds, tok = small
    torch.manual_seed(0)
    model = _model(fusion, tok).eval()
    batch = _batch(ds, tok, list(range(0, 120, 3)))
    with torch.no_grad():
        shared = model.logits(batch["image"], batch["text"], batch["text_mask"], batch["image_id"])
        each = model.logits(batch["image"], batch["text"], batch["text_mask"])
    assert shared.shape == (40, len(ANSWERS))
    torch.testing.assert_close(shared, each, rtol=1e-4, atol=1e-5)
    out = model.train()(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(p.grad is not None for p in model.fusion.parameters())


def test_question_attention_keeps_a_distribution_over_cells(small) -> None:
    ds, tok = small
    model = _model("question_attention", tok, layers=2).eval()
    batch = _batch(ds, tok, [0, 15])
    with torch.no_grad():
        model.logits(batch["image"], batch["text"], batch["text_mask"])
    maps = model.fusion.attention
    assert len(maps) == 2 and maps[0].shape[:2] == (2, 4) and maps[0].shape[3] == 25
    torch.testing.assert_close(maps[-1].sum(-1), torch.ones(maps[-1].shape[:3]))


def test_short_training_beats_the_majority_answer(tmp_path) -> None:
    """CNN + MLP, 60 steps, non-relational questions about the red object: far above the majority answer.

    One colour keeps the run to seconds: with all six colours the model must first learn which object the
    question names, which takes over a thousand steps (see docs/vqa.md).
    """
    options = "data.options={train_images: 300, test_images: 40, relational: 0, colours: [red]}"
    cfg = load_experiment(
        CONFIG_DIR / "sort_of_clevr_vqa.yaml",
        [
            options,
            "model.fusion=early",
            "model.fusion_options={hidden: 256}",
            "train.max_steps=60",
            "train.batch_size=32",
            "train.shuffle=true",
            "train.lr=0.003",
            "train.warmup_steps=5",
            "train.progress=false",
            "train.tensorboard=false",
        ],
    )
    metrics = train_experiment(cfg, tmp_path / "run")
    test = SortOfCLEVR(split="test", test_images=40, relational=0, colours=["red"])
    assert metrics["eval/n"] == len(test) == 400
    majority = 0.0  # answer every question of a type with that type's most frequent answer in the test set
    for kind in ("shape", "horizontal", "vertical"):
        labels = [label for (_, q), label in zip(test.records, test.labels, strict=True) if q.question_type == kind]
        majority += max(labels.count(a) for a in set(labels))
    majority /= len(test)
    # a reader of the scene's shapes and halves that cannot find the red object: beating it shows the model can
    blind = reference_accuracy(test, colour_blind_answer)["accuracy_non_relational"]
    assert metrics["eval/accuracy_non_relational"] > max(majority + 0.2, blind + 0.1), (metrics, majority, blind)

    # the run folder answers questions without any data: `chorus ask`
    image = tmp_path / "scene.png"
    test[0]["image"].save(image)
    code = main(["ask", str(tmp_path / "run"), str(image), test[0]["text"], "--json"])
    assert code == 0


def test_colour_blind_reference_answers_from_the_scene_not_the_named_object() -> None:
    """Four squares, three objects on the left, two at the top: the same answers whichever colour is named."""
    layout = [("red", "square", 10, 10), ("green", "square", 20, 60), ("blue", "circle", 30, 60)]
    layout += [("orange", "square", 50, 10), ("grey", "circle", 60, 60), ("yellow", "square", 70, 60)]
    scene = [SceneObject(c, s, x, y) for c, s, x, y in layout]
    for colour in ("red", "blue"):
        answers = {
            kind: colour_blind_answer(scene, Question("", "", kind, colour))
            for kind in ("shape", "closest", "furthest", "count", "horizontal", "vertical")
        }
        assert answers == {
            "shape": "square",
            "closest": "square",
            "furthest": "square",
            "count": "4",
            "horizontal": "left",  # three of six: ties go left
            "vertical": "bottom",
        }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A question-attention run trained for two steps (what is tested is the plumbing, not accuracy)."""
    folder = tmp_path_factory.mktemp("vqa")
    cfg = load_experiment(
        CONFIG_DIR / "sort_of_clevr_vqa.yaml",
        [
            "data.options.train_images=4",
            "data.options.test_images=2",
            "model.fusion=question_attention",
            "model.fusion_options={}",
            "train.max_steps=2",
            "train.batch_size=40",
            "train.progress=false",
            "train.tensorboard=false",
        ],
    )
    train_experiment(cfg, folder / "run")
    SortOfCLEVR(split="test", test_images=1)[0]["image"].save(folder / "scene.png")
    return folder


@pytest.mark.parametrize("fast", [True, False])
def test_predictor_answers_in_the_precision_auto_resolved_to(tiny_run: Path, monkeypatch, fast: bool) -> None:
    """A run trained under ``precision: auto`` answers in bf16 exactly where training and evaluation used it."""
    from chorus import ask
    from chorus.train import precision

    monkeypatch.setattr(precision, "fast_bf16", lambda device, flags=None: (fast, "stubbed CPU flags"))
    assert load_experiment(tiny_run / "run" / "experiment.yaml").train.precision == "auto"
    assert ask.VQAPredictor.from_run(tiny_run / "run").bf16 is fast


def test_ask_prints_answer_and_probabilities(tiny_run: Path, capsys) -> None:
    tmp_path = tiny_run
    assert (
        main(
            [
                "ask",
                str(tmp_path / "run"),
                str(tmp_path / "scene.png"),
                "what shape is the object closest to the red object?",
                "--json",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"] in ANSWERS and next(iter(answer["probabilities"])) == answer["answer"]
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert len(answer["attention"]) == 25 and sum(answer["attention"]) == pytest.approx(1.0, abs=1e-3)  # bf16 attention
    assert main(["ask", str(tmp_path / "run"), str(tmp_path / "missing.png"), "what?"]) == 2
    assert main(["ask", str(tmp_path), str(tmp_path / "scene.png"), "what?"]) == 2  # not a run folder
    with pytest.raises(ConfigError, match="image and a text"):
        load_experiment(CONFIG_DIR / "sort_of_clevr_vqa.yaml", ["model.encoders={image: {name: cnn}}"])


def test_ask_endpoint_answers_like_the_library(tiny_run: Path) -> None:
    from fastapi.testclient import TestClient

    from chorus.ask import VQAPredictor
    from chorus.serve import create_app

    question = "is the blue object at the top or the bottom?"
    png = (tiny_run / "scene.png").read_bytes()
    expected = VQAPredictor.from_run(tiny_run / "run").ask(png, question)
    with TestClient(create_app(tiny_run / "run")) as client:
        (run,) = client.get("/runs").json()["runs"]
        assert run["task"] == "vqa" and run["zero_shot"] == [] and run["classes"] == list(ANSWERS)
        reply = client.post("/ask", files={"image": ("scene.png", png, "image/png")}, data={"question": question})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["answer"] == expected.answer and body["run"] == "run"
        assert [a["label"] for a in body["answers"]] == list(expected.probabilities)
        assert [a["score"] for a in body["answers"]] == pytest.approx(list(expected.probabilities.values()), abs=1e-5)
        missing = client.post("/ask", files={"image": ("scene.png", png, "image/png")}, data={"question": "  "})
        assert missing.status_code == 422 and "question" in missing.json()["detail"]
        embed = client.post("/embed", files={"image": ("scene.png", png, "image/png")})
        assert embed.status_code == 422 and "no loaded run" in embed.json()["detail"]


def test_bench_writes_tables_plots_cards_and_loadable_runs(tmp_path) -> None:
    from chorus.bench import load_benchmark
    from chorus.bench.driver import is_driver, run_driver

    module = load_benchmark("vqa")
    assert is_driver(module)
    record = run_driver(
        "vqa",
        module,
        [
            "--quick",
            "--out",
            str(tmp_path),
            "steps=2",
            "train_images=3",
            "test_images=2",
            "models=[early,question_attention]",
            "attention_examples=1",
        ],
        progress=lambda _: None,
    )
    runs = record["results"]["runs"]
    assert set(runs) == {"early", "question_attention"} and 0.0 <= runs["early"][0]["accuracy_relational"] <= 1.0
    md = (tmp_path / "results.md").read_text()
    assert "majority answer per question type" in md and "Relation network" not in md  # cards only for models run
    for name in ("accuracy_per_type.png", "attention.png"):
        assert (tmp_path / name).stat().st_size > 1000
    _, model, classes, _ = load_run(tmp_path / "runs" / "early_seed0")  # the saved run loads from its folder alone
    assert isinstance(model, VQAModel) and classes == list(ANSWERS)


def test_bench_curriculum_chains_stages_and_reuses_finished_ones(tmp_path) -> None:
    """Each stage asks about its colours and starts from the stage before; a rerun trains only what changed."""
    from chorus.bench import load_benchmark
    from chorus.bench.driver import run_driver

    module = load_benchmark("vqa")
    args = ["--preset", "curriculum", "--out", str(tmp_path), "train_images=3", "test_images=2"]
    args += ["curriculum=[[1,2],[2,2]]", "models=[early]", "seeds=[0]"]
    record = run_driver("vqa", module, [*args, "steps=2"], progress=lambda _: None)
    # the attention maps are drawn from the last stage, the model scored
    attention = ["models=[question_attention]", "attention_examples=1", "steps=2"]
    run_driver("vqa", module, [*args, *attention, "--out", str(tmp_path / "attention")], progress=lambda _: None)
    assert (tmp_path / "attention" / "attention.png").is_file()
    folder = tmp_path / "runs" / "early_seed0"
    stages = [load_experiment(folder / f"stage{k}" / "experiment.yaml") for k in (1, 2, 3)]
    assert [cfg.data.options.get("colours") for cfg in stages] == [["red"], ["red", "blue"], None]  # None: all six
    assert [cfg.model.init_from for cfg in stages] == [None, str(folder / "stage1"), str(folder / "stage2")]
    assert {cfg.model.encoders["text"].name for cfg in stages} == {"bag_of_words"}
    history = record["results"]["stages"]["early"]["seed0"]
    assert [stage["stage"] for stage in history] == [1, 2, 3]
    assert len(history) == 3 and history[-1]["accuracy"] == record["results"]["runs"]["early"][0]["accuracy"]
    assert "Curriculum stages" in (tmp_path / "results.md").read_text() and (tmp_path / "curriculum.png").is_file()

    weights = [(folder / f"stage{k}" / "model.safetensors").stat().st_mtime_ns for k in (1, 2, 3)]
    again = run_driver("vqa", module, [*args, "steps=2"], progress=lambda _: None)
    assert again["results"]["stages"] == record["results"]["stages"]
    assert [(folder / f"stage{k}" / "model.safetensors").stat().st_mtime_ns for k in (1, 2, 3)] == weights
    longer = run_driver("vqa", module, [*args, "steps=3"], progress=lambda _: None)  # only the last stage changed
    assert longer["results"]["stages"]["early"]["seed0"][:2] == history[:2]
    assert [(folder / f"stage{k}" / "model.safetensors").stat().st_mtime_ns for k in (1, 2)] == weights[:2]
    assert load_experiment(folder / "stage3" / "experiment.yaml").train.max_steps == 3
    with pytest.raises(ConfigError, match="1 to 6 colours"):
        run_driver("vqa", module, [*args, "curriculum=[[7,2]]"], progress=lambda _: None)


BENCHMARKS_DIR = Path(__file__).parents[1] / "benchmarks"


def _script(name: str) -> Any:
    """``benchmarks/<name>.py`` as a module (a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCHMARKS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diagnostics_split_answers_by_the_colour_blind_reference(tiny_run: Path) -> None:
    """``vqa_diagnostics.beyond_reference`` partitions every test question once, by the reference's own answer,
    and once by the colour it names."""
    from chorus.ask import VQAPredictor

    diagnostics = _script("vqa_diagnostics")

    run = tiny_run / "run"
    result = diagnostics.beyond_reference(run, VQAPredictor.from_run(run))
    test = SortOfCLEVR(split="test", test_images=2)
    wrong = Counter(q.question_type for s, q in test.records if colour_blind_answer(test.scenes[s], q) != q.answer)
    assert {t: v["questions"] for t, v in result["reference wrong"].items()} == dict(wrong)
    total = sum(v["questions"] for side in ("reference wrong", "reference right") for v in result[side].values())
    assert total == len(test.records)
    for kind in ("closest", "furthest"):
        asked = sum(q.question_type == kind for _, q in test.records)
        assert sum(b["questions"] for b in result["by_distance_margin"][kind].values()) == asked
    asked_about = Counter((q.colour, "relational" if q.relational else "non_relational") for _, q in test.records)
    by_colour = result["by_colour"]
    assert {(c, k): v["questions"] for c, kinds in by_colour.items() for k, v in kinds.items()} == dict(asked_about)
    right = sum(
        v["accuracy"] * v["questions"] for side in ("reference wrong", "reference right") for v in result[side].values()
    )
    assert sum(v["accuracy"] * v["questions"] for kinds in by_colour.values() for v in kinds.values()) == pytest.approx(
        right
    )


def test_diagnostics_report_renders_its_committed_results() -> None:
    """The committed diagnostics reports are exactly what ``render`` writes from the committed JSON beside them."""
    folder = BENCHMARKS_DIR / "results" / "vqa"
    for name in ("diagnostics_distance", "diagnostics_film"):
        results = json.loads((folder / f"{name}.json").read_text())
        assert _script("vqa_diagnostics").render(results) == (folder / f"{name}.md").read_text()


@pytest.mark.parametrize("positions", ["exact", "cell"])
def test_state_probe_encodes_each_scene_and_its_questions(positions: str) -> None:
    """The probe's object tokens and question codes say what the generator drew, and its answers are the dataset's."""
    from chorus.data.sort_of_clevr import (
        OBJECT_COLOURS,
        QUESTION_TYPES,
        SHAPES,
        ask_questions,
        generate_scene,
        scene_rng,
    )

    probe = _script("vqa_state_probe")
    objects, codes, answers, types = probe.encode("test", 3, 0, positions)
    for s in range(3):
        rng = scene_rng(0, "test", s)
        scene = generate_scene(rng)
        questions = ask_questions(scene, rng)
        assert [ANSWERS[a] for a in answers[s]] == [q.answer for q in questions]
        assert list(types[s]) == [q.question_type for q in questions]
        for q, question in zip(codes[s], questions, strict=True):
            assert q.nonzero().flatten().tolist() == [
                OBJECT_COLOURS.index(question.colour),
                len(OBJECT_COLOURS) + QUESTION_TYPES.index(question.question_type),
            ]
        assert objects[s, len(scene) :].abs().sum() == 0  # the padding tokens are empty
        for token, obj in zip(objects[s], scene, strict=False):
            assert token[: len(OBJECT_COLOURS)].argmax() == OBJECT_COLOURS.index(obj.colour)
            assert token[len(OBJECT_COLOURS) : -2].argmax() == SHAPES.index(obj.shape)
            pixel = (token[-2:] + 1) * 75 / 2
            if positions == "exact":
                assert torch.allclose(pixel, torch.tensor([obj.x, obj.y], dtype=torch.float32), atol=1e-4)
            else:  # the centre of the 15-px cell that holds the object's centre
                assert torch.allclose(pixel, torch.tensor([obj.x // 15 * 15 + 7.5, obj.y // 15 * 15 + 7.5]), atol=1e-4)


def test_state_probe_report_renders_its_committed_results() -> None:
    """The committed state-probe reports are exactly what ``render`` writes from the JSON beside them."""
    probe = _script("vqa_state_probe")
    for name in ("vqa_state_probe", "vqa_state_probe_long", "vqa_state_probe_distance"):
        folder = BENCHMARKS_DIR / "results" / "vqa"
        results = json.loads((folder / f"{name}.json").read_text())
        assert probe.render(results) == (folder / f"{name}.md").read_text()
