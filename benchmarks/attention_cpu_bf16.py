"""Why Chorus writes attention out for CPU bf16 training: speed, exactness and training-loss tracking.

Run: ``python benchmarks/attention_cpu_bf16.py [--threads 1] [--steps 80]``
(project venv). Writes ``benchmarks/results/attention_cpu_bf16.{json,md}``.

Compares, for bf16 inputs on the CPU, ``chorus.encoders.transformer.explicit_attention``
(bf16 ``q kᵀ`` → softmax → ``@ v``) with SDPA's math and flash backends:

1. forward + backward time of one ViT-base224 attention ([16, 6, 197, 64]),
   backends alternated over ``--rounds`` rounds, median;
2. relative error of one attention output against the exact (fp64) result on
   the same bf16-rounded inputs, for scores of std 1 and 3;
3. the tiny64 CLIP of ``clip_throughput.py`` trained ``--steps`` steps on its
   synthetic batches in fp32, in bf16 with the explicit path and in bf16 with
   the math backend: mean |loss − fp32 loss| over the last 20 steps.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

import chorus.encoders.transformer as transformer

sys.path.insert(0, str(Path(__file__).parent))
import _clip_train_worker as worker  # noqa: E402
import clip_throughput  # noqa: E402

Attention = Callable[[Tensor, Tensor, Tensor, Tensor | None, bool], Tensor]
RESULTS = Path(__file__).parent / "results"


def sdpa(backend: SDPBackend) -> Attention:
    def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)

    return attend


PATHS: dict[str, Attention] = {
    "explicit": transformer.explicit_attention,
    "math": sdpa(SDPBackend.MATH),
    "flash": sdpa(SDPBackend.FLASH_ATTENTION),
}


def timing(rounds: int, reps: int = 5) -> dict[str, float]:
    """Median ms of forward + backward per path, paths alternated round by round."""
    q, k, v = (torch.randn(16, 6, 197, 64, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn(16, 6, 197, 64, dtype=torch.bfloat16)
    times: dict[str, list[float]] = {name: [] for name in PATHS}
    for attend in PATHS.values():  # warm-up
        attend(q, k, v, None, False).backward(grad)
    for _ in range(rounds):
        for name, attend in PATHS.items():
            start = time.perf_counter()
            for _ in range(reps):
                attend(q, k, v, None, False).backward(grad)
            times[name].append((time.perf_counter() - start) / reps * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def exactness(score_std: float) -> dict[str, float]:
    """Relative L2 error of each path's bf16 output vs fp64 attention on the same rounded inputs."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(4, 6, 197, 64, dtype=torch.float64, generator=gen) for _ in range(3))
    q = q * score_std  # q·k/√d then has std ≈ score_std for unit-variance q, k
    q, k, v = (t.bfloat16() for t in (q, k, v))
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    return {
        name: float((attend(q, k, v, None, False).double() - exact).norm() / exact.norm())
        for name, attend in PATHS.items()
    }


def loss_tracking(steps: int) -> dict[str, float]:
    """Mean |loss − fp32 loss| over the last 20 of ``steps`` tiny64 CLIP steps, per bf16 attention path."""
    cfg = clip_throughput.CONFIGS["tiny64"]
    torch.manual_seed(0)
    initial, loss_of = worker.build_chorus(cfg)
    batches = clip_throughput.synthetic_batches(cfg, torch.Generator().manual_seed(0))

    def train(bf16: bool) -> Tensor:
        model = copy.deepcopy(initial)
        optimizer = torch.optim.AdamW(
            worker.param_groups(model), lr=worker.LR, betas=worker.BETAS, eps=worker.EPS, fused=True
        )
        losses = []
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_of(model, batches[step % len(batches)])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return torch.tensor(losses)

    reference = train(bf16=False)
    out = {"fp32_final": float(reference[-1])}
    explicit = transformer.explicit_attention
    try:
        for name in ("explicit", "math"):
            transformer.explicit_attention = PATHS[name]  # what SelfAttention calls for CPU bf16 training
            losses = train(bf16=True)
            out[f"{name}_final"] = float(losses[-1])
            out[f"{name}_mean_abs_diff_last20"] = float((losses[-20:] - reference[-20:]).abs().mean())
    finally:
        transformer.explicit_attention = explicit
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "ms_forward_backward": timing(args.rounds),
        "relative_error": {f"score_std_{s:g}": exactness(s) for s in (1.0, 3.0)},
        "loss_tracking": loss_tracking(args.steps),
        "threads": args.threads,
        "torch": torch.__version__,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attention_cpu_bf16.json").write_text(json.dumps(result, indent=2))
    ms, err, track = result["ms_forward_backward"], result["relative_error"], result["loss_tracking"]
    lines = [
        "# CPU bf16 attention paths (one ViT-base224 attention, [16, 6, 197, 64])",
        "",
        "| path | fwd+bwd ms (median) | rel. error, scores std 1 | rel. error, scores std 3 |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {ms[name]:.1f} | {err['score_std_1'][name]:.4f} | {err['score_std_3'][name]:.4f} |"
        for name in PATHS
    ]
    lines += [
        "",
        f"tiny64 CLIP, {args.steps} steps: mean |loss − fp32 loss| over the last 20 steps — explicit "
        f"{track['explicit_mean_abs_diff_last20']:.2e}, math {track['math_mean_abs_diff_last20']:.2e} "
        f"(final losses: fp32 {track['fp32_final']:.4f}, explicit {track['explicit_final']:.4f}, "
        f"math {track['math_final']:.4f}). Threads: {args.threads}; torch {torch.__version__}.",
        "",
    ]
    (RESULTS / "attention_cpu_bf16.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
