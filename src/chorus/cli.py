"""``chorus`` command line: thin wrappers that parse arguments and call the library.

Subcommands: ``demo``, ``train``, ``eval``, ``ask``, ``zeroshot``, ``retrieve``, ``predict``, ``import``,
``transcribe``, ``speak``, ``data info|download|pack``, ``bench NAME``, ``serve`` and ``index build``. Every
user error (bad config, missing data, corrupt file, a missing optional extra) is a
``ChorusError`` and is reported as one line on stderr with exit code 2, never a
traceback. The extras a command needs (:data:`COMMAND_EXTRAS`) are checked before
it does any work; those an experiment's encoders need are checked when its config
or run folder is read, before any data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chorus.errors import ChorusError

COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("serve",),
    "index build": ("serve",),
    "data pack": ("shards",),
}
"""Subcommand → the optional extras it always needs (``chorus.extras.EXTRAS``); checked before any work.
``bench NAME`` needs ``chorus.extras.BENCHMARK_EXTRAS[NAME]``; train, eval, zeroshot, retrieve and predict
need what the experiment's encoders need (``text`` for MiniLM), checked when the config or run is read."""


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, default=str))


def _print_metrics(result: dict[str, Any], facts: tuple[str, ...] = ("run_dir", "dataset", "split")) -> None:
    """``facts`` on one line, then every numeric metric as an aligned table with readable names."""
    from chorus.eval.report import metric_label, text_table

    shown = [f"{k.removesuffix('_dir')}: {result[k]}" for k in facts if result.get(k) is not None]
    if shown:
        print("  ".join(shown))
    metrics = result.get("metrics", result)
    rows = [
        [metric_label(k), v]
        for k, v in metrics.items()
        if k not in facts and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if metrics is not result:  # counts and chance beside the nested metrics
        rows += [
            [metric_label(k), v]
            for k, v in result.items()
            if k not in facts and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
    print(text_table(["metric", "value"], rows))


def cmd_demo(args: argparse.Namespace) -> None:
    from chorus.demo import format_table, run_demo

    metrics = run_demo(args.run_dir, seed=args.seed, epochs=args.epochs, progress=not args.json)
    if args.json:
        _print_json(metrics)
    else:
        print(format_table(metrics))
        print(f"\nrun folder: {args.run_dir} (metrics.json, similarity.png, embeddings.png)")


def cmd_train(args: argparse.Namespace) -> None:
    from chorus.experiment import find_experiment, load_experiment, train_experiment
    from chorus.translate.speech_runs import is_speech_config

    path = find_experiment(args.config)
    if is_speech_config(path):  # speech ↔ text experiments (model.task recognize / synthesize)
        _train_speech(args, path)
        return
    from chorus.train import distributed

    cfg = load_experiment(path, args.overrides)
    run_dir = Path(args.run_dir or f"runs/{cfg.name}")  # the Trainer prints it when training starts
    metrics = train_experiment(cfg, run_dir, resume=args.resume, overwrite=args.overwrite, data_root=args.data_root)
    main_process = distributed.is_main()
    distributed.barrier()  # under torchrun: every rank is done before the process group goes
    distributed.cleanup()
    if main_process:
        _print_json(metrics) if args.json else _print_metrics(metrics, facts=())
        print(
            f"saved: {run_dir} (model.safetensors, metrics.jsonl, curves.png); "
            f"next: chorus eval {run_dir}, chorus predict {run_dir} FILE...",
            file=sys.stderr,
        )


# ---- speech ↔ text: `chorus train` of speech configs, `chorus transcribe`, `chorus speak`


def _train_speech(args: argparse.Namespace, path: str | Path) -> None:
    from chorus.errors import ConfigError
    from chorus.translate.speech_runs import load_speech_config, train_speech

    cfg = load_speech_config(path, args.overrides)
    if args.resume:
        raise ConfigError("speech runs train in minutes and do not resume; start again without --resume")
    metrics = train_speech(cfg, args.run_dir or f"runs/{cfg.name}", data_root=args.data_root)
    _print_json(metrics) if args.json else _print_metrics(metrics, facts=())


def cmd_transcribe(args: argparse.Namespace) -> None:
    from chorus.translate.speaker_adapt import AdaptConfig
    from chorus.translate.speech_runs import transcribe_files

    adapt = AdaptConfig() if args.adapt else None
    for path, text in zip(args.files, transcribe_files(args.run_dir, args.files, adapt)):
        print(f"{path}\t{text}")


def cmd_speak(args: argparse.Namespace) -> None:
    import soundfile as sf

    from chorus.translate.speech_runs import speak

    wave, sample_rate = speak(args.run_dir, args.text, seed=args.seed)
    sf.write(args.out, wave.numpy(), sample_rate, subtype="PCM_16")
    print(f"wrote {args.out} ({wave.numel() / sample_rate:.2f} s at {sample_rate} Hz)")


def command(sub: Any, name: str, what: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line ``what`` is both its entry in the parent's help and its own ``--help``."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=what, description=what)
    return parser


def add_speech_commands(sub: Any) -> None:
    p = sub.add_parser(
        "transcribe",
        help="print the transcript of audio files with a speech recogniser run",
        description="Print the transcript of audio files with a speech recogniser run.",
    )
    p.add_argument("run_dir", help="run folder of `chorus train speech_ctc` (or speech_attention)")
    p.add_argument("files", nargs="+", help="audio files (any rate; resampled to 8 kHz mono)")
    p.add_argument(
        "--adapt",
        action="store_true",
        help="first adapt a CTC recogniser to the files' speaker, without transcripts (all files one speaker; "
        "docs/speech.md, 'Speaker adaptation')",
    )
    p.set_defaults(func=cmd_transcribe)
    p = sub.add_parser(
        "speak",
        help="synthesise a spoken digit string with a text-to-speech run",
        description="Synthesise a spoken digit string with a text-to-speech run.",
    )
    p.add_argument("run_dir", help="run folder of `chorus train speech_tts`")
    p.add_argument("text", help='digit words, e.g. "four two seven"')
    p.add_argument("--out", required=True, help="WAV file to write (16-bit PCM, 8 kHz)")
    p.add_argument("--seed", type=int, default=0, help="Griffin-Lim's initial random phase")
    p.set_defaults(func=cmd_speak)


# ---- end of speech ↔ text


def cmd_eval(args: argparse.Namespace) -> None:
    from chorus.experiment import evaluate_run

    metrics = evaluate_run(args.run_dir, data_root=args.data_root, split=args.split)
    _print_json(metrics) if args.json else _print_metrics(metrics)


def _class_names(value: str | None) -> list[str] | None:
    """``--classes``: a file with one name per line, or comma-separated names."""
    if value is None:
        return None
    lines = Path(value).read_text(encoding="utf-8").splitlines() if Path(value).is_file() else value.split(",")
    return [name.strip() for name in lines if name.strip()]


def cmd_ask(args: argparse.Namespace) -> None:
    from chorus.ask import VQAPredictor
    from chorus.errors import DataNotFoundError

    image = Path(args.image)
    if not image.is_file():
        raise DataNotFoundError(f"{image}: no such image file")
    answer = VQAPredictor.from_run(args.run_dir).ask(image.read_bytes(), args.question)
    if args.json:
        _print_json(answer.to_dict())
        return
    print(answer.answer)
    _print_metrics(dict(list(answer.probabilities.items())[: args.top]), facts=())


def cmd_zeroshot(args: argparse.Namespace) -> None:
    from chorus.errors import ConfigError
    from chorus.run_eval import zeroshot_files, zeroshot_run
    from chorus.run_import import as_run

    if (args.dataset is None) == (args.images is None):
        raise ConfigError("zeroshot needs either --dataset NAME (labelled: accuracy) or --images PATH... (labels)")
    classes, templates = _class_names(args.classes), args.template
    with as_run(args.run_dir) as run_dir:
        if args.images is not None:
            for row in zeroshot_files(run_dir, args.images, classes, templates=templates, top_k=args.top_k):
                if args.json:
                    _print_json(row)
                else:
                    print(row["path"], "  ".join(f"{c} {p:.3f}" for c, p in zip(row["classes"], row["probs"])))
            return
        metrics = zeroshot_run(
            run_dir,
            args.dataset,
            split=args.split,
            templates=templates,
            classes=classes,
            data_root=args.data_root,
            out=args.out,
            columns=_columns(args.columns),
        )
    _print_json(metrics) if args.json else _print_metrics(metrics)


def cmd_retrieve(args: argparse.Namespace) -> None:
    from chorus.run_eval import retrieve_run
    from chorus.run_import import as_run

    with as_run(args.run_dir) as run_dir:
        metrics = retrieve_run(
            run_dir,
            args.dataset,
            split=args.split,
            data_root=args.data_root,
            out=args.out,
            columns=_columns(args.columns),
        )
    _print_json(metrics) if args.json else _print_metrics(metrics)


def cmd_predict(args: argparse.Namespace) -> None:
    from chorus.predict import format_table, predict, to_csv, to_json
    from chorus.serve.runs import LoadedRun

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    run = LoadedRun(args.run_dir, device=args.device)
    found = predict(run, args.inputs, args.text, classes=classes, top_k=args.top_k, embed=args.embed)
    print(to_json(found) if args.json else to_csv(found).rstrip("\n") if args.csv else format_table(found))


def cmd_import(args: argparse.Namespace) -> None:
    from chorus.run_import import import_clip

    summary = import_clip(
        args.source,
        args.run_dir,
        format=args.format,
        tokenizer=args.tokenizer,
        model_config=args.model_config,
        classes=_class_names(args.classes),
    )
    _print_json(summary) if args.json else _print_metrics(summary, facts=())


def cmd_serve(args: argparse.Namespace) -> None:
    from chorus.serve.main import serve_main

    serve_main(args.host, args.port, args.runs, args.index_dir, device=args.device, max_body_mb=args.max_body_mb)


def cmd_index_build(args: argparse.Namespace) -> None:
    from chorus.serve.main import index_main

    columns = _columns(args.columns)
    info = index_main(
        args.run_dir,
        args.dataset,
        args.out,
        split=args.split,
        modality=args.modality,
        kind=args.kind,
        max_items=args.max_items,
        data_root=args.data_root,
        options={"columns": columns} if columns else None,
    )
    print(json.dumps(info, indent=2, default=str))


def cmd_bench(args: argparse.Namespace) -> None:
    from chorus.bench import load_benchmark
    from chorus.bench.driver import run_driver

    run_driver(args.name, load_benchmark(args.name), args.bench_args)


def cmd_caption(args: argparse.Namespace) -> None:
    from chorus.data.decode import decode_image, read_bytes
    from chorus.translate.caption_run import LoadedCaptioner

    run = LoadedCaptioner(args.run_dir, device=args.device)
    images = [decode_image(read_bytes(path), path, mode="RGB") for path in args.images]
    captions = run.caption(images, beam=args.beam, max_tokens=args.max_tokens)
    if args.json:
        _print_json([{"image": path, "caption": text} for path, text in zip(args.images, captions)])
    else:
        for path, text in zip(args.images, captions):
            print(f"{path}\t{text}")


def cmd_data_info(args: argparse.Namespace) -> None:
    from chorus.data import dataset_info, format_info

    columns = _columns(args.columns)
    info = dataset_info(args.name, args.data_root, **({"columns": columns} if columns else {}))
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))


# ---------------------------------------------------------------------------- a user's files as datasets

DATASET_HELP = (
    "a dataset name (see `chorus data info`), or a user's files: folder:PATH, manifest:PATH "
    "(a .csv/.jsonl), or just PATH"
)


def _columns(text: str | None) -> dict[str, str]:
    """``--columns image=file_name,text=caption`` → {"image": "file_name", "text": "caption"}."""
    from chorus.errors import ConfigError

    if not text:
        return {}
    pairs = [part.partition("=") for part in text.split(",")]
    if any(not sep or not k.strip() or not v.strip() for k, sep, v in pairs):
        raise ConfigError(
            f"--columns {text!r}: expected ROLE=COLUMN[,ROLE=COLUMN...], e.g. image=file_name,text=caption"
        )
    return {k.strip(): v.strip() for k, _, v in pairs}


def cmd_data_download(args: argparse.Namespace) -> None:
    from chorus.data import download

    print(f"{args.name}: ready under {download(args.name, args.data_root)}")


def cmd_data_pack(args: argparse.Namespace) -> None:
    from chorus.data.shards import pack_dataset

    shards = pack_dataset(
        args.name, args.out_dir, root=args.data_root, split=args.split, maxcount=args.maxcount, pair=args.pair
    )
    print(f"wrote {len(shards)} shard(s) to {args.out_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chorus", description="Chorus: multimodal machine learning toolkit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    def columns_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--columns",
            default=None,
            help="for a user's manifest: which column holds what, e.g. image=file_name,text=caption "
            "(default: the run's own columns for its own data, else the usual names)",
        )

    def data_root_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-root", default=None, help="dataset directory (default: $CHORUS_DATA, else ~/.cache/chorus/data)"
        )

    p = command(sub, "demo", "train a small CLIP on scikit-learn digits offline and evaluate it zero-shot")
    p.add_argument("--run-dir", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    p.set_defaults(func=cmd_demo)

    p = command(sub, "train", "train an experiment from a YAML config")
    p.add_argument("config", help="experiment YAML, or the name of a shipped one (e.g. coco_clip; see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.lr=3e-4")
    p.add_argument("--run-dir", default=None, help="output folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in the run folder")
    p.add_argument("--json", action="store_true")
    data_root_arg(p)
    p.set_defaults(func=cmd_train)

    p = command(sub, "eval", "evaluate a finished run on its eval split")
    p.add_argument("run_dir")
    p.add_argument("--split", default=None, help="evaluate on this split instead")
    p.add_argument("--json", action="store_true")
    data_root_arg(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "ask",
        help="answer a question about an image with a trained VQA run",
        description="Answer a question about an image with a trained VQA run.",
    )
    p.add_argument("run_dir")
    p.add_argument("image", help="image file (PNG, JPEG, ...)")
    p.add_argument("question", help='e.g. "what shape is the object closest to the red object?"')
    p.add_argument("--top", type=int, default=5, help="how many answers to list with their probabilities")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    for name, func, what, files in (
        ("zeroshot", cmd_zeroshot, "zero-shot accuracy on a labelled dataset, or labels for your images", "zeroshot"),
        ("retrieve", cmd_retrieve, "retrieval Recall@1/5/10 of a run on a paired dataset", "retrieval"),
    ):
        p = command(sub, name, what)
        p.add_argument("run_dir", help="a run folder, or a CLIP checkpoint (imported on the fly, see `chorus import`)")
        p.add_argument("--dataset", required=name == "retrieve", default=None, help=DATASET_HELP)
        columns_arg(p)
        p.add_argument("--split", default=None)
        p.add_argument("--out", default=None, help=f"folder to write {files}.json and {files}.md into")
        p.add_argument("--json", action="store_true")
        data_root_arg(p)
        p.set_defaults(func=func)
    p = sub.choices["zeroshot"]
    p.add_argument("--images", nargs="+", default=None, help="image files or folders to label (instead of --dataset)")
    p.add_argument(
        "--classes",
        default=None,
        help="class names: comma-separated, or a file with one per line (default: the run's/dataset's)",
    )
    p.add_argument(
        "--template",
        action="append",
        default=None,
        help="prompt with {} for the class name; repeat to ensemble (default: the run's/CLIP's)",
    )
    p.add_argument("--top-k", type=int, default=5, help="labels shown per image (with --images)")

    p = sub.add_parser(
        "import",
        help="turn an OpenCLIP or Hugging Face CLIP checkpoint into a Chorus run folder",
        description="Turn an OpenCLIP or Hugging Face CLIP checkpoint on disk into a Chorus run folder.",
    )
    p.add_argument("source", help="transformers CLIP directory, OpenCLIP directory, or OpenCLIP weights file")
    p.add_argument("run_dir", help="the run folder to write")
    p.add_argument("--format", choices=["hf", "open_clip"], default=None, help="default: detected from the files")
    p.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer.json, a directory with tokenizer.json or "
        "vocab.json + merges.txt, or OpenCLIP's bpe_simple_vocab_16e6.txt.gz (default: the checkpoint's)",
    )
    p.add_argument("--model-config", default=None, help="OpenCLIP model config JSON for a bare weights file")
    p.add_argument(
        "--classes", default=None, help="default class names to store in the run (comma-separated or a file)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_import)

    p = command(sub, "predict", "labels with probabilities, or embeddings, for your images, audio or texts")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="*", help="image or audio files, or folders of them (searched recursively)")
    p.add_argument("--text", action="append", default=[], help="a text to embed (repeat for several)")
    p.add_argument(
        "--classes", default=None, help="comma-separated class names to rank (contrastive runs; default: the run's own)"
    )
    p.add_argument("--top-k", type=int, default=5, help="labels shown per input (default 5)")
    p.add_argument("--embed", action="store_true", help="embeddings instead of labels")
    p.add_argument("--device", default=None)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="a JSON list, one object per input")
    output.add_argument("--csv", action="store_true", help="CSV: one row per (input, rank), or per embedding")
    p.set_defaults(func=cmd_predict)

    p = command(sub, "serve", "HTTP API and web explorer for trained runs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--runs", default="runs", help="a run folder or a folder of runs (default: runs)")
    p.add_argument("--index-dir", default=None, help="folder of indexes made by `chorus index build`")
    p.add_argument("--device", default=None)
    p.add_argument("--max-body-mb", type=float, default=10.0, help="largest accepted upload")
    p.set_defaults(func=cmd_serve)

    index = command(sub, "index", "search indexes").add_subparsers(dest="index_command", required=True)
    p = command(index, "build", "embed a dataset with a run and save a FAISS index")
    p.add_argument("run_dir")
    p.add_argument("--dataset", required=True, help=DATASET_HELP)
    columns_arg(p)
    p.add_argument("--out", default=None, help="output folder (default: indexes/<run>-<dataset>)")
    p.add_argument("--split", default="test")
    p.add_argument("--modality", default=None, help="which modality of the dataset to index")
    p.add_argument(
        "--kind",
        default="auto",
        choices=["auto", "flat", "hnsw", "ivf"],
        help="exact (flat) for small collections, HNSW or IVF for large (auto chooses by size)",
    )
    p.add_argument("--max-items", type=int, default=None)
    data_root_arg(p)
    p.set_defaults(func=cmd_index_build)

    add_speech_commands(sub)

    from chorus.bench import BENCHMARKS

    p = sub.add_parser(
        "bench",
        help="run a benchmark: " + ", ".join(sorted(BENCHMARKS)),
        description="\n".join(f"{k}: {v}" for k, v in sorted(BENCHMARKS.items())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="benchmark name; `chorus bench NAME --help` lists its options")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "caption",
        help="describe images in words with a captioner run folder",
        description="Describe images in words with a captioner run folder.",
    )
    p.add_argument("run_dir", help="captioner run folder (captioner.json, tokenizer.json, model.safetensors)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--beam", type=int, default=None, help="beam width (default: the run's; 1 = greedy)")
    p.add_argument("--max-tokens", type=int, default=None, help="longest caption in tokens (default: the run's)")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print [{image, caption}, ...] as JSON")
    p.set_defaults(func=cmd_caption)

    data = command(sub, "data", "dataset utilities").add_subparsers(dest="data_command", required=True)
    p = command(data, "info", "summary of a dataset or a user's folder/manifest: items, classes, formats, problems")
    p.add_argument("name", help=DATASET_HELP)
    columns_arg(p)
    p.add_argument("--json", action="store_true", help="print the full record as JSON")
    data_root_arg(p)
    p.set_defaults(func=cmd_data_info)
    p = command(data, "download", "download and prepare a dataset under the data root")
    p.add_argument("name")
    data_root_arg(p)
    p.set_defaults(func=cmd_data_download)
    p = command(data, "pack", "write WebDataset tar shards from a dataset")
    p.add_argument("name")
    p.add_argument("out_dir")
    p.add_argument("--split", default="train")
    p.add_argument("--maxcount", type=int, default=1000, help="samples per shard")
    p.add_argument("--pair", default=None, help="partner modality: 'text' (captions) or a dataset, e.g. mnist")
    data_root_arg(p)
    p.set_defaults(func=cmd_data_pack)
    return parser


def _require_extras(args: argparse.Namespace) -> None:
    """Stop with one line naming the extra before a command that lacks it starts any work."""
    from chorus.extras import BENCHMARK_EXTRAS, require

    command = " ".join(
        filter(None, (args.command, getattr(args, "index_command", None), getattr(args, "data_command", None)))
    )
    extras = COMMAND_EXTRAS.get(command, ())
    if command == "bench":
        command, extras = f"bench {args.name}", BENCHMARK_EXTRAS.get(args.name, ())
    require(extras, f"chorus {command}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may follow options (`chorus train C --resume lr=1e-3`), which argparse leaves over.
    if extra and args.command == "bench":
        args.bench_args += extra
    elif (
        extra
        and getattr(args, "overrides", None) is not None
        and all("=" in e and not e.startswith("-") for e in extra)
    ):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        _require_extras(args)
        args.func(args)
    except ChorusError as err:
        print(f"chorus: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `chorus data info fsdd | head`
        sys.stderr.close()
    except KeyboardInterrupt:
        print("chorus: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
