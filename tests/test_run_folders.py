"""What `chorus train`, `eval` and `serve` do with run folders: refuse to clobber, resume honestly,
skip broken runs, and tell a person what went wrong in one line."""

from __future__ import annotations

import logging
import shutil

from fastapi.testclient import TestClient
from test_serve_support import trained_run

from chorus import cli
from chorus.eval.report import metric_label, text_table
from chorus.serve import create_app

FAST = [
    "train.max_steps=2",
    "train.epochs=null",
    "train.progress=false",
    "train.tensorboard=false",
    "train.log_every=1",
]


def test_train_writes_curves_and_refuses_an_existing_run(tmp_path, real_data_root, capsys):
    run = tmp_path / "digits"
    argv = ["train", "digits_clip", *FAST, "--run-dir", str(run), "--data-root", str(real_data_root)]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert f"run folder: {run}" in captured.err and "training in" in captured.err
    assert "loss" in captured.out and "{" not in captured.out  # a table, not a dict
    assert (run / "curves.png").stat().st_size > 1000 and (run / "metrics.jsonl").is_file()

    assert cli.main(argv) == 2  # the folder holds a run now
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert cli.main([*argv, "--resume"]) == 2  # no checkpoint was written: say so, do not restart silently
    assert "no checkpoint to resume from" in capsys.readouterr().err
    before = (run / "model.safetensors").stat().st_mtime_ns
    assert cli.main([*argv, "--overwrite"]) == 0
    assert (run / "model.safetensors").stat().st_mtime_ns != before


def test_user_mistakes_named_in_the_docs_are_one_line(tmp_path, capsys):
    assert cli.main(["train", "configs/coco_clp.yaml"]) == 2
    assert "did you mean the shipped config 'coco_clip'" in capsys.readouterr().err
    assert cli.main(["train", "digits_clip", "train.lrr=1", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "override train.lrr: unknown key train.lrr" in err and ".yaml" not in err
    assert cli.main(["eval", str(tmp_path / "no-such-run")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serve_skips_unfinished_and_broken_runs(tmp_path_factory, real_data_root, tmp_path, caplog):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run(tmp_path_factory, "digits", real_data_root), runs / "good")
    (runs / "unfinished").mkdir()
    shutil.copy(runs / "good" / "experiment.yaml", runs / "unfinished")
    shutil.copytree(runs / "good", runs / "broken")
    (runs / "broken" / "model.safetensors").write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING), TestClient(create_app(runs)) as client:
        assert [r["name"] for r in client.get("/runs").json()["runs"]] == ["good"]
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping run")]
    assert len(skipped) == 2 and all("\n" not in m for m in skipped)
    assert any("model.safetensors is missing" in m for m in skipped)
    assert any("cannot be read" in m for m in skipped)


def test_metric_names_fit_the_modalities():
    assert metric_label("audio_to_text_R@5") == "audio→text R@5"
    assert metric_label("eval/text_to_image_R@1") == "text→image R@1"
    assert metric_label("zero_shot_top1") == "zero-shot top-1"
    table = text_table(["metric", "value"], [["accuracy", 0.5], ["n", 12]]).splitlines()
    assert table[2] == "accuracy  0.5000" and table[3] == "n             12"


def test_audio_retrieval_metrics_are_named_after_audio(tmp_path_factory, real_data_root):
    from torch.utils.data import Subset

    from chorus.contrastive.retrieval import dataset_retrieval
    from chorus.experiment import build_eval_dataset, load_run

    cfg, model, classes, tokenizer = load_run(trained_run(tmp_path_factory, "fsdd", real_data_root))
    clips = Subset(build_eval_dataset(cfg, str(real_data_root)), range(12))
    result = dataset_retrieval(
        model, clips, lambda t: tokenizer(t, cfg.data.context_length), "audio", classes, cfg.model.zero_shot_templates
    )
    n_texts = result["n_texts"]
    expected = {f"audio_to_text_R@{k}" for k in (1, 5, 10) if k < n_texts} | {
        "text_to_audio_R@1",
        "text_to_audio_R@5",
        "text_to_audio_R@10",
    }
    assert set(result["metrics"]) == expected
