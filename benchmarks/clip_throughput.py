"""CLIP training throughput: Chorus vs OpenCLIP, same torch build, architecture, batch and init.

Run: ``$CHORUS_OPENCLIP_PYTHON benchmarks/clip_throughput.py [--config tiny64|base224|all]
[--steps N] [--rounds R] [--precision fp32 fp32-medium bf16] [--compile] [--threads T] [--out STEM]``.
Every variant runs under one Python (``--python``, default ``$CHORUS_OPENCLIP_PYTHON``, else the
interpreter running this script): an environment with torch, torchvision and open_clip installed
beside Chorus, so both libraries use the same torch build. The workers report their torch versions
and the run refuses to compare different builds unless ``--allow-torch-mismatch`` is given, which
marks every row of the table. Writes ``STEM.{json,md,png}`` (default
``benchmarks/results/clip_throughput``); each row is labelled with the hardware it ran on (CPU model
and its AMX / AVX512-BF16 / AVX2 flags, or the GPU name).

What is compared, per config and precision (fp32; bf16 autocast — CPU
autocast's dtype, which is what OpenCLIP's default ``--precision amp`` gives
on a CPU; and, when asked for, ``fp32-medium``: fp32 training under
``torch.set_float32_matmul_precision("medium")``, i.e. bf16 matmuls with fp32
accumulation on a CPU with AMX, the CPU analogue of the TF32 matmuls that
OpenCLIP enables on NVIDIA GPUs — set in every variant's process):

- ``chorus``: ``ContrastiveModel`` with ``vit`` + ``text_transformer`` built to
  OpenCLIP's exact shapes (parameter counts are printed and must agree), fused
  AdamW, channels-last images (+ ``torch.compile`` with ``--compile``);
- ``openclip``: ``open_clip.create_model`` from the same config with
  ``open_clip.loss.ClipLoss`` and the training step of ``open_clip_train`` at
  its defaults (plain ``torch.optim.AdamW``, contiguous images, eager);
- ``openclip+tricks``: OpenCLIP with the same step-level tricks as Chorus
  (fused AdamW, channels-last, ``--compile`` when given, and for CPU bf16 the
  SDPA math backend instead of CPU flash attention, whose bf16 backward is
  slow), so the part of the speed-up that is not Chorus's model code is
  visible. Chorus's own attention goes further for CPU bf16 training (an
  explicit ``softmax(q kᵀ) v``, see ``chorus.encoders.transformer``), which
  ``nn.MultiheadAttention`` has no switch for.

How: the driver builds the Chorus model from a fixed seed, exports it to
OpenCLIP's format (``chorus.contrastive.interop.export_open_clip``), draws the
synthetic batches (Gaussian images; token ids with CLIP's layout: random
lengths, end-of-text = the largest id last, zero padding) and hands both to one
worker process per variant (``_clip_train_worker.py``, identical timing code in
either venv). After an untimed warm-up round, ``--rounds`` rounds alternate the
variants (order rotated each round); every round restarts from the shared
initial weights with a fresh optimizer and trains ``--steps`` steps, so every
round of every variant ends at a comparable "final loss after the same steps".
Throughput is the median over rounds; ratios between variants of one run are
the result (the absolute numbers depend on what else the machine is doing).

FLOPs (documented in ``docs/benchmarks.md``): per sample, forward matmul FLOPs
are, for a transformer of width ``d``, ``L`` layers and ``n`` tokens,
``L · (24 n d² + 4 n² d)`` (q/k/v 6nd², output 2nd², MLP 16nd², QKᵀ and AV
2n²d each; the causal text mask is not discounted), plus the patch conv
``2 · n_patches · 3p² · d``, the two projections ``2 d E`` and the loss logits
``2 · 2 · B · E`` per sample; training is 3× forward (backward = 2× forward).
MFU = training FLOPs per second / the matmul peak measured at the start of the
run (best of square matmuls of several sizes on the same threads), measured only
in the dtypes the asked-for precisions need (a bf16 peak takes minutes on a CPU
without AMX).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _clip_train_worker import build_chorus  # this folder is on sys.path when run as a script

from chorus.contrastive.interop import export_open_clip

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORKER = HERE / "_clip_train_worker.py"
# The Python of the environment with torch + torchvision + open_clip + Chorus (see docs/benchmarks.md).
OPENCLIP_PYTHON = os.environ.get("CHORUS_OPENCLIP_PYTHON") or sys.executable
N_BATCHES = 4  # distinct synthetic batches, cycled
# Which measured matmul peak a precision's MFU is relative to ("medium" multiplies in bf16).
PEAK_DTYPE = {"fp32": "fp32", "fp32-medium": "bf16", "bf16": "bf16"}

CONFIGS: dict[str, dict[str, Any]] = {
    # A small CLIP at 64 px: CLIP's real vocabulary, so the token embedding is
    # most of the parameters (as in small real CLIPs) and the optimizer matters.
    "tiny64": {
        "batch": 32,
        "embed_dim": 256,
        "steps": 10,
        "vision": {"image_size": 64, "patch_size": 16, "width": 192, "layers": 6, "heads": 3},
        "text": {"context_length": 32, "vocab_size": 49408, "width": 128, "layers": 4, "heads": 2},
    },
    # ViT-B/16's depth, patching and resolution at ViT-S width (384, 6 heads):
    # ViT-B/16 proper (~105 GFLOP per training sample) is too slow for a 2-core
    # machine; this keeps its 197-token sequences at a quarter of the FLOPs.
    "base224": {
        "batch": 16,
        "embed_dim": 384,
        "steps": 2,
        "vision": {"image_size": 224, "patch_size": 16, "width": 384, "layers": 12, "heads": 6},
        "text": {"context_length": 77, "vocab_size": 49408, "width": 256, "layers": 6, "heads": 4},
    },
}

# (name, framework, fused AdamW, channels-last, compile when --compile, math SDPA for CPU bf16)
VARIANTS = [
    ("chorus", "chorus", True, True, True, False),  # Chorus's attention chooses the backend itself
    ("openclip", "openclip", False, False, False, False),
    ("openclip+tricks", "openclip", True, True, True, True),
]


def synthetic_batches(
    cfg: dict[str, Any], generator: torch.Generator, n: int = N_BATCHES
) -> list[dict[str, torch.Tensor]]:
    """``n`` batches of Gaussian images and CLIP-layout token ids (EOT = largest id, last; zero padding)."""
    v, t = cfg["vision"], cfg["text"]
    b, ctx, vocab = cfg["batch"], t["context_length"], t["vocab_size"]
    batches = []
    for _ in range(n):
        lengths = torch.randint(max(2, ctx // 4), ctx + 1, (b,), generator=generator)
        mask = torch.arange(ctx)[None] < lengths[:, None]
        ids = torch.randint(1, vocab - 1, (b, ctx), generator=generator) * mask
        ids[torch.arange(b), lengths - 1] = vocab - 1
        images = torch.randn(b, 3, v["image_size"], v["image_size"], generator=generator)
        batches.append({"image": images, "text": ids, "text_mask": mask})
    return batches


def train_flops_per_sample(cfg: dict[str, Any]) -> float:
    """Analytic training FLOPs per sample: 3 × forward matmul FLOPs (see the module docstring)."""
    v, t, e = cfg["vision"], cfg["text"], cfg["embed_dim"]

    def transformer(n: int, d: int, layers: int) -> float:
        return layers * (24 * n * d * d + 4 * n * n * d)

    patches = (v["image_size"] // v["patch_size"]) ** 2
    vision = 2 * patches * 3 * v["patch_size"] ** 2 * v["width"] + transformer(patches + 1, v["width"], v["layers"])
    text = transformer(t["context_length"], t["width"], t["layers"])
    heads = 2 * v["width"] * e + 2 * t["width"] * e + 2 * 2 * cfg["batch"] * e
    return 3.0 * (vision + text + heads)


def matmul_peak(dtype: torch.dtype, device: torch.device) -> float:
    """Best measured FLOP/s of square matmuls (1024–4096) in ``dtype`` on this device and thread count."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b  # warm-up: kernel selection, first-touch allocation
        for _ in range(3):
            _sync(device)
            start = time.perf_counter()
            a @ b
            _sync(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


# x86 flags that decide which CPU kernels torch uses for fp32 / bf16 training.
CPU_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16", "avx512f": "AVX512", "avx2": "AVX2"}


def hardware() -> dict[str, Any]:
    """What the run's numbers depend on: the GPU, or the CPU model, its relevant flags and torch's CPU path."""
    if torch.cuda.is_available():
        return {
            "device": "cuda",
            "model": torch.cuda.get_device_name(),
            "flags": [],
            "label": torch.cuda.get_device_name(),
        }
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:  # not Linux: the model alone
        import platform

        model = platform.processor() or model
    present = [name for flag, name in CPU_FLAGS.items() if flag in flags]
    return {
        "device": "cpu",
        "model": model,
        "flags": present,
        "cpu_count": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "label": f"{model} ({', '.join(present) or 'no AVX2'})",
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Worker:
    """One variant's training process (see ``_clip_train_worker.py`` for the protocol)."""

    def __init__(self, python: str, spec: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [python, str(WORKER), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError(f"worker {self.proc.args[:2]} exited with {self.proc.wait()} (see its stderr above)")
        return json.loads(line)

    def round(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run_config(
    name: str,
    precision: str,
    steps: int,
    rounds: int,
    compile_: bool,
    device: torch.device,
    threads: int,
    python: str,
    workdir: Path,
    variants: list[str],
) -> dict[str, Any]:
    """All variants of one config at one precision, alternated; one result row per variant."""
    cfg = {"name": name, **CONFIGS[name]}
    torch.manual_seed(0)
    chorus_model = build_chorus(cfg)[0]
    paths = {"chorus": workdir / f"{name}_chorus.pt", "openclip": workdir / f"{name}_openclip"}
    torch.save(chorus_model.state_dict(), paths["chorus"])
    export_open_clip(chorus_model, paths["openclip"])  # EOT is the largest id: OpenCLIP's argmax pooling
    data_path = workdir / f"{name}_data.pt"
    torch.save(synthetic_batches(cfg, torch.Generator().manual_seed(1)), data_path)

    workers: dict[str, Worker] = {}
    try:
        for variant, framework, fused, channels_last, compiles, math_sdpa in VARIANTS:
            if variant not in variants:
                continue
            spec = {
                "framework": framework,
                "config": cfg,
                "precision": precision,
                "steps": steps,
                "fused_adamw": fused,
                "channels_last": channels_last,
                "compile": compiles and compile_,
                "math_sdpa": math_sdpa,
                "threads": threads,
                "device": str(device),
                "init_path": str(paths[framework]),
                "data_path": str(data_path),
            }
            workers[variant] = Worker(python, spec)
        counts = {v: w.info["params"] for v, w in workers.items()}
        print(f"[{name} {precision}] parameters: {counts}", flush=True)
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"architectures differ: parameter counts {counts}")
        for worker in workers.values():
            worker.round()  # warm-up (first-call allocation, kernel selection, compilation)
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in workers}
        order = list(workers)
        for r in range(rounds):
            for variant in order[r % len(order) :] + order[: r % len(order)]:
                results[variant].append(workers[variant].round())
                print(
                    f"[{name} {precision}] round {r + 1} {variant}: "
                    f"{steps / results[variant][-1]['seconds']:.3f} steps/s",
                    flush=True,
                )
    finally:
        for worker in workers.values():
            worker.close()

    flops = train_flops_per_sample(cfg) * cfg["batch"]
    rows = []
    for variant, runs in results.items():
        steps_per_s = statistics.median(steps / run["seconds"] for run in runs)
        rows.append(
            {
                "config": name,
                "precision": precision,
                "variant": variant,
                "params": counts[variant],
                "torch": workers[variant].info["torch"],
                "version": workers[variant].info["framework_version"],
                "steps_per_s": steps_per_s,
                "samples_per_s": steps_per_s * cfg["batch"],
                "achieved_tflops": steps_per_s * flops / 1e12,
                "peak_train_mib": max(run["peak_bytes"] - run["baseline_bytes"] for run in runs) / 2**20,
                "initial_loss": runs[0]["losses"][0],
                "final_loss": runs[0]["losses"][-1],
                "final_loss_spread": max(run["losses"][-1] for run in runs) - min(run["losses"][-1] for run in runs),
                "round_seconds": [run["seconds"] for run in runs],
                "losses": runs[0]["losses"],
            }
        )
    return {"config": cfg, "train_gflops_per_step": flops / 1e9, "rows": rows}


def summarise(groups: list[dict[str, Any]], peaks: dict[str, float]) -> list[dict[str, Any]]:
    """Add MFU and Chorus's speed-ups over both OpenCLIP variants to every row."""
    rows = []
    for group in groups:
        by_variant = {row["variant"]: row for row in group["rows"]}
        chorus = by_variant["chorus"]
        for row in group["rows"]:
            row["mfu"] = row["achieved_tflops"] * 1e12 / peaks[PEAK_DTYPE[row["precision"]]]
            row["chorus_speedup"] = chorus["steps_per_s"] / row["steps_per_s"]
            row["chorus_loss_minus_this"] = chorus["final_loss"] - row["final_loss"]
            rows.append(row)
    return rows


def write_outputs(rows: list[dict[str, Any]], meta: dict[str, Any], stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    mismatch = " **torch builds differ**" if meta["torch_mismatch"] else ""
    header = (
        "| hardware | torch | config | precision | variant | steps/s | samples/s | chorus speed-up | MFU "
        "| peak train MiB | loss @1 | loss @N |"
    )
    title = f"OpenCLIP {meta['openclip_version']}" if meta["openclip_version"] != "not run" else "(OpenCLIP not run)"
    lines = [
        f"# CLIP training throughput: Chorus vs {title}",
        "",
        header,
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {meta['hardware']['label']} | {r['torch']}{mismatch} | {r['config']} | {r['precision']} | "
            f"{r['variant']} | {r['steps_per_s']:.3f} | {r['samples_per_s']:.1f} | {r['chorus_speedup']:.2f}x | "
            f"{100 * r['mfu']:.1f}% | {r['peak_train_mib']:.0f} | {r['initial_loss']:.4f} | {r['final_loss']:.4f} |"
        )
    peaks = ", ".join(f"{k} {v:.3f} TFLOP/s" for k, v in meta["matmul_peak_tflops"].items())
    load = ", ".join(f"{x:.2f}" for x in meta["load_average_start_end"])
    lines += [
        "",
        (
            f"Median of {meta['rounds']} alternating rounds of N steps per variant (N: {meta['steps']}), after one "
            f"warm-up round; every round starts from the same initial weights. Matmul peak measured in the run: "
            f"{peaks}. {meta['threads']} threads; torch {', '.join(meta['torch_versions'])} for every variant. "
            f"compile: {meta['compile']}. 1-min load average at start / end: {load} on {meta['cpu_count']} CPUs; "
            f"finished {meta['finished_utc']}. {meta['note']}"
        ),
    ]
    if meta["torch_mismatch"]:
        lines.insert(1, "\n**WARNING: the variants ran on different torch builds; the ratios compare builds too.**")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, stem.with_suffix(".png"))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: samples/s of every variant, one group per (config, precision)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["config"], r["precision"]) for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.6), squeeze=False)
    for ax, (config, precision) in zip(axes[0], groups):
        values = [
            next(
                r["samples_per_s"]
                for r in rows
                if (r["config"], r["precision"], r["variant"]) == (config, precision, v)
            )
            for v in variants
        ]
        bars = ax.bar(range(len(variants)), values, color=["tab:blue", "tab:gray", "tab:orange"][: len(variants)])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(range(len(variants)), variants, rotation=20, fontsize=8)
        ax.set_title(f"{config} {precision}", fontsize=9)
        ax.set_ylabel("training samples/s")
    fig.suptitle("CLIP training throughput (higher is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--steps", type=int, help="training steps per round (default: per config)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", nargs="+", choices=list(PEAK_DTYPE), default=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile Chorus and openclip+tricks")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--python",
        default=OPENCLIP_PYTHON,
        help="Python with torch, torchvision, open_clip and Chorus that runs every variant "
        "(default: $CHORUS_OPENCLIP_PYTHON, else this interpreter)",
    )
    parser.add_argument(
        "--allow-torch-mismatch",
        action="store_true",
        help="compare even if the variants report different torch builds (marked in the table)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=[v[0] for v in VARIANTS],
        default=[v[0] for v in VARIANTS],
        help="which variants to run (chorus is always one: the speed-ups are relative to it); "
        "'--variants chorus' measures Chorus's throughput and MFU where open_clip is absent",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "clip_throughput", help="output stem: writes STEM.json, STEM.md, STEM.png"
    )
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    args = parser.parse_args()
    if "chorus" not in args.variants:
        parser.error("--variants must include chorus")

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    machine = hardware()
    print(f"hardware: {machine['label']}", flush=True)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {k: matmul_peak(dtypes[k], device) for k in dict.fromkeys(PEAK_DTYPE[p] for p in args.precision)}
    print(f"matmul peak TFLOP/s: { {k: round(v / 1e12, 3) for k, v in peaks.items()} }", flush=True)
    names = list(CONFIGS) if args.config == "all" else [args.config]
    start, load_at_start = time.perf_counter(), os.getloadavg()
    groups = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for precision in args.precision:
                groups.append(
                    run_config(
                        name,
                        precision,
                        args.steps or CONFIGS[name]["steps"],
                        args.rounds,
                        args.compile,
                        device,
                        args.threads,
                        args.python,
                        Path(tmp),
                        args.variants,
                    )
                )
                versions = sorted({row["torch"] for row in groups[-1]["rows"]})
                if len(versions) > 1 and not args.allow_torch_mismatch:
                    parser.error(
                        f"the variants ran on different torch builds ({', '.join(versions)}); "
                        "run every variant under one --python, or pass --allow-torch-mismatch"
                    )
    rows = summarise(groups, peaks)
    openclip_version = next((r["version"] for r in rows if r["variant"] != "chorus"), "not run")
    versions = sorted({row["torch"] for row in rows})
    meta = {
        "task": "CLIP training step (forward, loss, backward, AdamW) on synthetic batches",
        "command": " ".join(["python", *sys.argv]),
        "configs": {g["config"]["name"]: g["config"] for g in groups},
        "train_gflops_per_step": {g["config"]["name"]: g["train_gflops_per_step"] for g in groups},
        "steps": {g["config"]["name"]: args.steps or g["config"]["steps"] for g in groups},
        "rounds": args.rounds,
        "compile": args.compile,
        "threads": args.threads,
        "hardware": machine,
        "cpu_count": os.cpu_count(),
        "load_average_start_end": [load_at_start[0], os.getloadavg()[0]],
        "matmul_peak_tflops": {k: v / 1e12 for k, v in peaks.items()},
        "torch_versions": versions,
        "torch_mismatch": len(versions) > 1,
        "openclip_version": openclip_version,
        "wall_seconds": time.perf_counter() - start,
        "finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": args.note,
    }
    write_outputs(rows, meta, args.out)


if __name__ == "__main__":
    main()
