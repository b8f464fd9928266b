"""Where a Chorus CLIP training step spends its time, by kind of operator (fp32 or bf16, CPU or GPU).

Run: ``python benchmarks/clip_step_profile.py [--config tiny64 base224] [--precision fp32]
[--steps N] [--threads T]``. Writes ``benchmarks/results/clip_step_profile.{json,md}``.

The step is the one ``clip_throughput.py`` times for its ``chorus`` variant
(same model, synthetic batches, fused AdamW with open_clip_train's settings,
channels-last images). ``torch.profiler`` records ``--steps`` steps after two
warm-up steps; every operator's *self* time is put in one bucket — matmuls
(linear layers, attention's fused kernels, the patch convolution), the
optimizer, the token embedding's backward, layer norms, activations, softmax
and the loss, copies and layout changes, elementwise arithmetic, other — so the
share of the step that is not matmul, and what it is made of, can be read off.
Two ceilings follow: the step's MFU (as in ``clip_throughput.py``: analytic
FLOPs over the unprofiled step time, against the square-matmul peak measured
in the same run), and the MFU its matmuls reach on their own (the same FLOPs
over the matmul bucket's time) — what the step would reach if everything else
took no time.
Profiling adds per-operator overhead, so the wall time per step of an
unprofiled run of the same steps is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from _clip_train_worker import BETAS, EPS, LR, build_chorus, param_groups
from clip_throughput import (
    CONFIGS,
    RESULTS,
    hardware,
    matmul_peak,
    synthetic_batches,
    train_flops_per_sample,
)
from torch.profiler import ProfilerActivity, profile

# First matching substring of the aten operator name decides the bucket.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    (
        "matmul",
        (
            "mm",
            "addmm",
            "addbmm",
            "matmul",
            "linear",
            "bmm",
            "baddbmm",
            "flash_attention",
            "efficient_attention",
            "convolution",
            "mkldnn_conv",
            "_scaled_dot_product",
        ),
    ),
    ("optimizer", ("fused_adam", "_foreach_", "adamw", "lerp", "addcdiv", "addcmul")),
    ("embedding", ("embedding",)),
    ("norm", ("layer_norm",)),
    ("activation", ("gelu", "silu", "relu")),
    ("softmax+loss", ("softmax", "nll_loss", "cross_entropy", "logsumexp")),
    (
        "copy/layout",
        (
            "copy_",
            "clone",
            "contiguous",
            "_to_copy",
            "cat",
            "index",
            "fill_",
            "zero_",
            "empty",
            "transpose",
            "permute",
            "view",
            "reshape",
            "select",
            "slice",
            "expand",
            "as_strided",
            "unsqueeze",
            "t",
            "split",
            "unbind",
            "detach",
        ),
    ),
    (
        "elementwise",
        ("add", "mul", "div", "sub", "sum", "mean", "exp", "clamp", "norm", "sqrt", "neg", "where", "masked", "pow"),
    ),
]


def bucket_of(op: str) -> str:
    name = op.removeprefix("aten::")
    for bucket, keys in BUCKETS:
        if any(name == k or name.startswith(k) or f"_{k}" in name for k in keys) and not (
            bucket == "elementwise" and name.endswith("mm")
        ):
            return bucket
    return "other"


def profile_config(name: str, precision: str, steps: int, device: torch.device, peak: float) -> dict[str, Any]:
    cfg = {"name": name, **CONFIGS[name]}
    torch.manual_seed(0)
    model = build_chorus(cfg)[0].to(device).to(memory_format=torch.channels_last)
    batches = [
        {k: v.to(device) for k, v in b.items()} for b in synthetic_batches(cfg, torch.Generator().manual_seed(1))
    ]
    for b in batches:
        b["image"] = b["image"].contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(param_groups(model), lr=LR, betas=BETAS, eps=EPS, fused=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(batches[i % len(batches)])["loss"]
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(2):
        step(i)
    sync()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    sync()
    wall = (time.perf_counter() - start) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(steps):
            step(i)
        sync()
    by_bucket: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        us = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        if event.key.startswith("aten::") or device.type == "cuda":
            by_bucket[bucket_of(event.key)] += us / 1e6 / steps
            by_op[event.key] += us / 1e6 / steps
    total = sum(by_bucket.values())
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:15]
    flops = train_flops_per_sample(cfg) * cfg["batch"]
    return {
        "config": name,
        "precision": precision,
        "steps": steps,
        "batch": cfg["batch"],
        "step_seconds_unprofiled": wall,
        "profiled_op_seconds_per_step": total,
        "train_gflops_per_step": flops / 1e9,
        "mfu": flops / wall / peak,
        "matmul_only_mfu": flops / by_bucket["matmul"] / peak,
        "buckets": {k: {"seconds": v, "share": v / total} for k, v in sorted(by_bucket.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": k, "seconds": v, "share": v / total, "bucket": bucket_of(k)} for k, v in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=RESULTS / "clip_step_profile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    load_start = os.getloadavg()[0]
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {p: matmul_peak(dtypes[p], device) for p in args.precision}
    runs = [profile_config(c, p, args.steps, device, peaks[p]) for c in args.config for p in args.precision]
    meta = {
        "command": "python benchmarks/clip_step_profile.py " + " ".join(sys.argv[1:]),
        "hardware": hardware(),
        "threads": args.threads,
        "torch": torch.__version__,
        "matmul_peak_tflops": {p: v / 1e12 for p, v in peaks.items()},
        "load_average_start_end": [load_start, os.getloadavg()[0]],
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.with_suffix(".json").write_text(json.dumps({**meta, "runs": runs}, indent=2) + "\n")
    buckets = list(dict.fromkeys(b for r in runs for b in r["buckets"]))
    lines = [
        "# Where a Chorus CLIP training step spends its time",
        "",
        (
            f"Share of profiled operator self time per step. Hardware: {meta['hardware']['label']}; "
            f"{args.threads} threads; torch {torch.__version__}; {args.steps} profiled steps after 2 warm-up steps; matmul peak "
            f"{', '.join(f'{p} {v / 1e12:.3f} TFLOP/s' for p, v in peaks.items())}; "
            f"1-min load average {load_start:.2f} / {meta['load_average_start_end'][1]:.2f} at start / end; "
            f"finished {meta['finished_utc']}."
        ),
        "",
        "| config | precision | step s (unprofiled) | MFU | MFU of the matmuls alone | " + " | ".join(buckets) + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(buckets),
    ]
    for r in runs:
        cells = [f"{100 * r['buckets'].get(b, {'share': 0})['share']:.1f}%" for b in buckets]
        lines.append(
            f"| {r['config']} | {r['precision']} | {r['step_seconds_unprofiled']:.3f} | {100 * r['mfu']:.1f}% | "
            f"{100 * r['matmul_only_mfu']:.1f}% | " + " | ".join(cells) + " |"
        )
    for r in runs:
        lines += [
            "",
            f"Top operators, {r['config']} {r['precision']} (self time per step):",
            "",
            "| operator | bucket | ms | share |",
            "|---|---|---:|---:|",
        ]
        lines += [
            f"| `{o['op']}` | {o['bucket']} | {1e3 * o['seconds']:.1f} | {100 * o['share']:.1f}% |"
            for o in r["top_ops"]
        ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
