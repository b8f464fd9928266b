"""Loss parity: does Chorus's faster training step reach the same loss as OpenCLIP's?

Run: ``$CHORUS_OPENCLIP_PYTHON benchmarks/clip_loss_parity.py [--config tiny64] [--precision bf16 fp32]
[--steps 200] [--seeds 0 1 2] [--threads 1]`` (every variant under one Python with torch,
open_clip and Chorus, as in ``clip_throughput.py``). Writes
``benchmarks/results/clip_loss_parity.{json,md,png}``.

``clip_throughput.py`` compares the loss after its few timed steps from one
initialisation; in bf16 that single number moves by ~0.01 with any change in
rounding order, so it cannot say whether one library trains worse. Here each
seed draws its own initial weights and its own stream of ``--batches``
distinct synthetic batches, Chorus and OpenCLIP (open_clip_train's default
step) both train ``--steps`` steps from them, and the result is the per-seed
difference of the mean loss over the last ``--tail`` steps. In bf16 two
steps that compute the same function in a different rounding order end at
different losses, so the yardstick is ``openclip+tricks`` — OpenCLIP itself
with fused AdamW, channels-last images and SDPA's math backend: its
difference from OpenCLIP's default is pure rounding noise. Chorus is "equal"
when its difference is of that size, "better" when it is below 0. The same
timing workers as the throughput benchmark run the steps, so the arithmetic
compared is exactly the arithmetic timed there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from _clip_train_worker import build_chorus
from clip_throughput import CONFIGS, OPENCLIP_PYTHON, RESULTS, VARIANTS, Worker, synthetic_batches

from chorus.contrastive.interop import export_open_clip

REFERENCE = "openclip"  # OpenCLIP's default step; every other variant is compared with it


def run_seed(
    cfg: dict[str, Any], precision: str, seed: int, args: argparse.Namespace, tmp: Path
) -> dict[str, list[float]]:
    """Both variants' per-step losses from the seed's initial weights and batches."""
    torch.manual_seed(seed)
    model = build_chorus(cfg)[0]
    paths = {"chorus": tmp / f"{seed}_chorus.pt", "openclip": tmp / f"{seed}_openclip"}
    torch.save(model.state_dict(), paths["chorus"])
    export_open_clip(model, paths["openclip"])
    data_path = tmp / f"{seed}_data.pt"
    torch.save(synthetic_batches(cfg, torch.Generator().manual_seed(1000 + seed), args.batches), data_path)
    losses = {}
    for variant, framework, fused, channels_last, _, math_sdpa in VARIANTS:
        spec = {
            "framework": framework,
            "config": cfg,
            "precision": precision,
            "steps": args.steps,
            "fused_adamw": fused,
            "channels_last": channels_last,
            "compile": False,
            "math_sdpa": math_sdpa,
            "threads": args.threads,
            "device": "cpu",
            "init_path": str(paths[framework]),
            "data_path": str(data_path),
        }
        worker = Worker(args.python, spec)
        try:
            losses[variant] = worker.round()["losses"]
        finally:
            worker.close()
        print(
            f"[{cfg['name']} {precision} seed {seed}] {variant}: loss {losses[variant][0]:.4f} -> "
            f"{statistics.fmean(losses[variant][-args.tail :]):.4f} (mean of last {args.tail})",
            flush=True,
        )
    return losses


def summarise(runs: dict[str, dict[int, dict[str, list[float]]]], tail: int) -> list[dict[str, Any]]:
    """Per precision and variant: final losses per seed and their differences from OpenCLIP's default."""
    rows = []
    for precision, seeds in runs.items():
        tails = {v[0]: [statistics.fmean(seeds[s][v[0]][-tail:]) for s in seeds] for v in VARIANTS}
        for variant, finals in tails.items():
            diffs = [f - o for f, o in zip(finals, tails[REFERENCE])]
            rows.append(
                {
                    "precision": precision,
                    "variant": variant,
                    "seeds": list(seeds),
                    "final": finals,
                    "minus_openclip": diffs,
                    "diff_mean": statistics.fmean(diffs),
                    "diff_std": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
                    "diff_abs_mean": statistics.fmean(abs(d) for d in diffs),
                }
            )
    return rows


def write_outputs(rows: list[dict[str, Any]], runs: dict[str, Any], meta: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "clip_loss_parity.json").write_text(json.dumps({**meta, "rows": rows, "losses": runs}, indent=2) + "\n")
    lines = [
        f"# CLIP loss parity: Chorus vs OpenCLIP default step ({meta['config']}, {meta['steps']} steps)",
        "",
        f"Mean loss over the last {meta['tail']} steps, per seed (own initial weights and "
        f"{meta['batches']} synthetic batches per seed).",
        "",
        "| precision | variant | final loss per seed | − OpenCLIP default, per seed | mean ± std | mean abs |",
        "|---|---|---|---|---:|---:|",
    ]
    for r in rows:
        finals = " / ".join(f"{f:.3f}" for f in r["final"])
        diffs = " / ".join(f"{d:+.3f}" for d in r["minus_openclip"])
        lines.append(
            f"| {r['precision']} | {r['variant']} | {finals} | {diffs} | "
            f"{r['diff_mean']:+.3f} ± {r['diff_std']:.3f} | {r['diff_abs_mean']:.3f} |"
        )
    lines += ["", f"Seeds {rows[0]['seeds']}; {meta['threads']} thread(s); torch {meta['torch']} (Chorus)."]
    (RESULTS / "clip_loss_parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(runs, RESULTS / "clip_loss_parity.png")


def plot(runs: dict[str, dict[int, dict[str, list[float]]]], path: Path) -> None:
    """Loss curves, one panel per precision, one line per (variant, seed)."""
    from chorus.eval.plots import figure

    with figure(path, ncols=len(runs), figsize=(4.5 * len(runs), 3.4), squeeze=False) as (_, axes):
        for ax, (precision, seeds) in zip(axes[0], runs.items()):
            for seed, losses in seeds.items():
                for (variant, *_), colour in zip(VARIANTS, ("tab:blue", "tab:gray", "tab:orange")):
                    ax.plot(
                        losses[variant], color=colour, lw=0.8, alpha=0.8, label=variant if seed == min(seeds) else None
                    )
            ax.set_title(precision, fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel("training loss")
            ax.legend(fontsize=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="tiny64")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "fp32-medium", "bf16"], default=["bf16", "fp32"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tail", type=int, default=20, help="final loss = mean over this many last steps")
    parser.add_argument("--batches", type=int, default=50, help="distinct synthetic batches per seed, cycled")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--python",
        default=OPENCLIP_PYTHON,
        help="Python with torch, torchvision, open_clip and Chorus (default: $CHORUS_OPENCLIP_PYTHON)",
    )
    args = parser.parse_args()
    if not 0 < args.tail <= args.steps:
        parser.error("--tail must be in [1, --steps]")
    cfg = {"name": args.config, **CONFIGS[args.config]}
    runs: dict[str, dict[int, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precision:
            runs[precision] = {seed: run_seed(cfg, precision, seed, args, Path(tmp)) for seed in args.seeds}
    meta = {
        "config": args.config,
        "steps": args.steps,
        "tail": args.tail,
        "batches": args.batches,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    write_outputs(summarise(runs, args.tail), runs, meta)


if __name__ == "__main__":
    main()
