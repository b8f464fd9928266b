"""``chorus`` command line: thin wrappers that parse arguments and call the library.

Subcommands: ``demo``, ``train``, ``eval``, ``zeroshot``, ``retrieve``,
``data info|download|pack``, ``bench NAME``, ``serve`` and ``index build``. Every
user error (bad config, missing data, corrupt file) is a ``ChorusError`` and is
reported as one line on stderr with exit code 2, never a traceback.
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


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, default=str))


def _print_table(metrics: dict[str, Any]) -> None:
    width = max(map(len, metrics), default=0)
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")


def cmd_demo(args: argparse.Namespace) -> None:
    from chorus.demo import format_table, run_demo

    metrics = run_demo(args.run_dir, seed=args.seed, epochs=args.epochs, progress=not args.json)
    if args.json:
        _print_json(metrics)
    else:
        print(format_table(metrics))
        print(f"\nrun folder: {args.run_dir} (metrics.json, similarity.png, embeddings.png)")


def cmd_train(args: argparse.Namespace) -> None:
    from chorus.config import CONFIG_DIR
    from chorus.experiment import load_experiment, train_experiment

    shipped = CONFIG_DIR / f"{args.config}.yaml"
    path = shipped if not Path(args.config).exists() and shipped.is_file() else args.config
    cfg = load_experiment(path, args.overrides)
    run_dir = args.run_dir or f"runs/{cfg.name}"
    from chorus.train import distributed

    metrics = train_experiment(cfg, run_dir, resume=args.resume, data_root=args.data_root)
    main_process = distributed.is_main()
    distributed.barrier()  # under torchrun: every rank is done before the process group goes
    distributed.cleanup()
    if main_process:
        _print_json(metrics) if args.json else _print_table(metrics)


def cmd_eval(args: argparse.Namespace) -> None:
    from chorus.experiment import evaluate_run

    metrics = evaluate_run(args.run_dir, data_root=args.data_root, split=args.split)
    _print_json(metrics) if args.json else _print_table(metrics)


def cmd_zeroshot(args: argparse.Namespace) -> None:
    from chorus.contrastive.evaluate import zeroshot_run

    metrics = zeroshot_run(args.run_dir, args.dataset, split=args.split, data_root=args.data_root, out=args.out)
    _print_json(metrics) if args.json else _print_table(metrics)


def cmd_retrieve(args: argparse.Namespace) -> None:
    from chorus.contrastive.evaluate import retrieve_run

    metrics = retrieve_run(args.run_dir, args.dataset, split=args.split, data_root=args.data_root, out=args.out)
    _print_json(metrics) if args.json else _print_table(metrics)


def cmd_serve(args: argparse.Namespace) -> None:
    from chorus.serve.main import serve_main

    serve_main(args.host, args.port, args.runs, args.index_dir, data_root=args.data_root, device=args.device,
               max_body_mb=args.max_body_mb)


def cmd_index_build(args: argparse.Namespace) -> None:
    from chorus.serve.main import index_main

    info = index_main(args.run_dir, args.dataset, args.out, split=args.split, modality=args.modality,
                      kind=args.kind, max_items=args.max_items, data_root=args.data_root)
    print(json.dumps(info, indent=2, default=str))


def cmd_bench(args: argparse.Namespace) -> None:
    from chorus.bench import load_benchmark
    from chorus.bench.driver import is_driver, run_driver

    module = load_benchmark(args.name)
    if is_driver(module):
        run_driver(args.name, module, args.bench_args)
        return
    parser = argparse.ArgumentParser(prog=f"chorus bench {args.name}", description=(module.__doc__ or "").strip())
    module.configure(parser)
    module.run(parser.parse_args(args.bench_args))


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
    from chorus.data import dataset_info

    print(json.dumps(dataset_info(args.name, args.data_root), indent=2, default=str))


def cmd_data_download(args: argparse.Namespace) -> None:
    from chorus.data import download

    print(f"{args.name}: ready under {download(args.name, args.data_root)}")


def cmd_data_pack(args: argparse.Namespace) -> None:
    from chorus.data.shards import pack_dataset

    shards = pack_dataset(args.name, args.out_dir, root=args.data_root, split=args.split,
                          maxcount=args.maxcount, pair=args.pair)
    print(f"wrote {len(shards)} shard(s) to {args.out_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chorus", description="Chorus: multimodal machine learning toolkit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_root_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", default=None,
                       help="dataset directory (default: $CHORUS_DATA, else ~/.cache/chorus/data)")

    p = sub.add_parser("demo", help="train a small CLIP on scikit-learn digits offline and evaluate it zero-shot")
    p.add_argument("--run-dir", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train an experiment from a YAML config")
    p.add_argument("config", help="experiment YAML, or the name of a shipped one (e.g. coco_clip; see configs/)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.lr=3e-4")
    p.add_argument("--run-dir", default=None, help="output folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--json", action="store_true")
    data_root_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a finished run on its eval split")
    p.add_argument("run_dir")
    p.add_argument("--split", default=None, help="evaluate on this split instead")
    p.add_argument("--json", action="store_true")
    data_root_arg(p)
    p.set_defaults(func=cmd_eval)

    for name, func, what in (("zeroshot", cmd_zeroshot, "zero-shot top-1/top-5 of a run on a labelled dataset"),
                             ("retrieve", cmd_retrieve, "retrieval Recall@1/5/10 of a run on a paired dataset")):
        p = sub.add_parser(name, help=what)
        p.add_argument("run_dir")
        p.add_argument("--dataset", required=True, help="dataset name (see `chorus data info`)")
        p.add_argument("--split", default=None)
        p.add_argument("--out", default=None, help="folder for results.json and results.md")
        p.add_argument("--json", action="store_true")
        data_root_arg(p)
        p.set_defaults(func=func)

    p = sub.add_parser("serve", help="HTTP API and web explorer for trained runs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--runs", default="runs", help="a run folder or a folder of runs (default: runs)")
    p.add_argument("--index-dir", default=None, help="folder of indexes made by `chorus index build`")
    p.add_argument("--device", default=None)
    p.add_argument("--max-body-mb", type=float, default=10.0, help="largest accepted upload")
    data_root_arg(p)
    p.set_defaults(func=cmd_serve)

    index = sub.add_parser("index", help="search indexes").add_subparsers(dest="index_command", required=True)
    p = index.add_parser("build", help="embed a dataset with a run and save a FAISS index")
    p.add_argument("run_dir")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", default=None, help="output folder (default: indexes/<run>-<dataset>)")
    p.add_argument("--split", default="test")
    p.add_argument("--modality", default=None, help="which modality of the dataset to index")
    p.add_argument("--kind", default="auto", choices=["auto", "flat", "hnsw", "ivf"],
                   help="exact (flat) for small collections, HNSW or IVF for large (auto chooses by size)")
    p.add_argument("--max-items", type=int, default=None)
    data_root_arg(p)
    p.set_defaults(func=cmd_index_build)

    from chorus.bench import BENCHMARKS

    p = sub.add_parser("bench", help="run a benchmark: " + ", ".join(sorted(BENCHMARKS)),
                       description="\n".join(f"{k}: {v}" for k, v in sorted(BENCHMARKS.items())),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="benchmark name; `chorus bench NAME --help` lists its options")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("caption", help="describe images in words with a captioner run folder",
                       description="Describe images in words with a captioner run folder.")
    p.add_argument("run_dir", help="captioner run folder (captioner.json, tokenizer.json, model.safetensors)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--beam", type=int, default=None, help="beam width (default: the run's; 1 = greedy)")
    p.add_argument("--max-tokens", type=int, default=None, help="longest caption in tokens (default: the run's)")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print [{image, caption}, ...] as JSON")
    p.set_defaults(func=cmd_caption)

    data = sub.add_parser("data", help="dataset utilities").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("info", help="counts, classes and sample shapes of a dataset")
    p.add_argument("name")
    data_root_arg(p)
    p.set_defaults(func=cmd_data_info)
    p = data.add_parser("download", help="download and prepare a dataset under the data root")
    p.add_argument("name")
    data_root_arg(p)
    p.set_defaults(func=cmd_data_download)
    p = data.add_parser("pack", help="write WebDataset tar shards from a dataset")
    p.add_argument("name")
    p.add_argument("out_dir")
    p.add_argument("--split", default="train")
    p.add_argument("--maxcount", type=int, default=1000, help="samples per shard")
    p.add_argument("--pair", default=None, help="partner modality: 'text' (captions) or a dataset, e.g. mnist")
    data_root_arg(p)
    p.set_defaults(func=cmd_data_pack)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may follow options (`chorus train C --resume lr=1e-3`), which argparse leaves over.
    if extra and args.command == "bench":
        args.bench_args += extra
    elif extra and getattr(args, "overrides", None) is not None and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
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
