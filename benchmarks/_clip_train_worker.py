"""One framework's CLIP training loop, in its own process, driven by ``clip_throughput.py``.

Run by the benchmark, never by hand: ``python _clip_train_worker.py SPEC_JSON``
under the one environment that has torch, open_clip and Chorus (``--python`` of
the driver). Only torch plus the spec's framework is imported, and both sides
are timed by identical code.

Why a process per variant: each gets its own allocator and its own peak-memory
reading, and nothing one variant warmed up (caches, thread pools, compiled
kernels) helps another, while the driver alternates them round by round so that
drifts in machine load hit all alike.

Protocol (one JSON object per line): after building the model, loading the
shared initial weights (a Chorus state dict, or the OpenCLIP export
directory of the same weights) and the synthetic batches, the worker prints
``{"params": N, ...}``; then each ``round`` line on stdin makes it reset the
weights to the initial state, build a fresh optimizer, train ``steps`` steps
and print ``{"seconds", "losses", "peak_bytes", "baseline_bytes"}``; ``quit``
ends it. The training step is the one ``open_clip_train`` runs (zero grads,
forward under the precision's autocast, loss, backward, AdamW step, and for
OpenCLIP its in-place ``logit_scale`` clamp), with a constant learning rate so
that a short run moves the loss measurably.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

# open_clip_train's defaults for ViT CLIP models (its params.py), used by both sides.
LR, BETAS, EPS, WEIGHT_DECAY = 5e-4, (0.9, 0.98), 1e-6, 0.2


LossFn = Callable[[nn.Module, dict[str, Tensor]], Tensor]  # (the module to call, batch) -> loss


def build_chorus(cfg: dict[str, Any]) -> tuple[nn.Module, LossFn]:
    """``ContrastiveModel`` over ``vit`` + ``text_transformer``, shaped like OpenCLIP's ``CLIP``.

    The encoders have no projection of their own (``output_dim=None``): the
    model's per-modality bias-free projections play OpenCLIP's ``visual.proj``
    and ``text_projection``, so the parameter sets correspond one to one.
    """
    from chorus.contrastive import ContrastiveModel
    from chorus.encoders.text_transformer import TextTransformer
    from chorus.encoders.vit import VisionTransformer

    v, t = cfg["vision"], cfg["text"]
    model = ContrastiveModel(
        {
            "image": VisionTransformer(
                v["patch_size"], v["width"], v["layers"], v["heads"], image_size=v["image_size"]
            ),
            "text": TextTransformer(
                t["width"], t["layers"], t["heads"], vocab_size=t["vocab_size"], context_length=t["context_length"]
            ),
        },
        embed_dim=cfg["embed_dim"],
    )

    def loss_of(module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return module(batch)["loss"]

    return model, loss_of


def build_openclip(export_dir: str) -> tuple[nn.Module, LossFn]:
    """``open_clip.create_model`` of the Chorus model exported to ``export_dir``, with ``ClipLoss``.

    ``chorus.contrastive.interop.export_open_clip`` wrote OpenCLIP's own
    ``open_clip_config.json`` + weights there, so the architecture and every
    default not named in that config are OpenCLIP's, and the weights are the
    Chorus initialisation.
    """
    import open_clip
    from open_clip.loss import ClipLoss

    model = open_clip.create_model(f"local-dir:{export_dir}", output_dict=True)
    clip_loss = ClipLoss()

    def loss_of(module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return sum(clip_loss(**module(batch["image"], batch["text"]), output_dict=True).values())

    return model, loss_of


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """open_clip_train's split: no weight decay on gains, biases, 1-D params and the logit scale."""

    def exempt(name: str, p: Tensor) -> bool:
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if exempt(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exempt(n, p)], "weight_decay": WEIGHT_DECAY},
    ]


def rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/statm``."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory while the block runs: CUDA's allocator peak, or on CPU the sampled RSS peak.

    On CPU there is no allocator counter to reset between rounds and
    ``ru_maxrss`` never goes down, so a daemon thread samples the RSS every
    ``interval`` seconds (torch ops release the GIL, so it runs during them).
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device, self.interval, self.peak = device, interval, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak = rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_bytes())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    # "fp32-medium": fp32 training with bf16 matmuls (fp32 accumulation) — TF32's CPU analogue.
    torch.set_float32_matmul_precision("medium" if spec["precision"] == "fp32-medium" else "highest")
    device = torch.device(spec["device"])
    baseline = torch.cuda.memory_allocated(device) if device.type == "cuda" else rss_bytes()
    framework = spec["framework"]
    if framework == "chorus":
        model, loss_of = build_chorus(spec["config"])
        model.load_state_dict(torch.load(spec["init_path"], map_location="cpu"))  # strict
    else:
        model, loss_of = build_openclip(spec["init_path"])
    model.to(device)
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}  # restored before every round
    if spec["channels_last"]:
        model.to(memory_format=torch.channels_last)
    batches = [{k: v.to(device) for k, v in b.items()} for b in torch.load(spec["data_path"], map_location="cpu")]
    if spec["channels_last"]:
        for b in batches:
            b["image"] = b["image"].contiguous(memory_format=torch.channels_last)
    if framework == "openclip":
        batches = [{"image": b["image"], "text": b["text"]} for b in batches]  # argmax-of-ids pooling, no mask
    step_model = torch.compile(model) if spec["compile"] else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if spec["precision"] == "bf16" else nullcontext()
    # Chorus's attention avoids CPU flash attention itself for bf16 training (its backward is
    # slow there); "math_sdpa" gives OpenCLIP's nn.MultiheadAttention SDPA's math backend instead.
    math_sdpa = spec["math_sdpa"] and device.type == "cpu" and spec["precision"] == "bf16"

    def backend() -> AbstractContextManager:  # sdpa_kernel's context managers are single-use
        return sdpa_kernel(SDPBackend.MATH) if math_sdpa else nullcontext()

    clamp = framework == "openclip"  # open_clip_train clamps after each step; Chorus clamps in forward
    print(
        json.dumps(
            {
                "params": sum(p.numel() for p in model.parameters()),
                "torch": torch.__version__,
                "framework_version": _version(framework),
            }
        ),
        flush=True,
    )

    for line in sys.stdin:
        if line.strip() == "quit":
            break
        with torch.no_grad():
            for name, p in model.state_dict().items():
                p.copy_(init[name])
        optimizer = torch.optim.AdamW(
            param_groups(model), lr=LR, betas=BETAS, eps=EPS, fused=spec["fused_adamw"] or None
        )
        losses = []
        synchronize(device)
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            for step in range(spec["steps"]):
                optimizer.zero_grad(set_to_none=True)
                with autocast, backend():
                    loss = loss_of(step_model, batches[step % len(batches)])
                loss.backward()
                optimizer.step()
                if clamp:
                    with torch.no_grad():
                        model.logit_scale.clamp_(0, math.log(100))
                losses.append(loss.detach())
            synchronize(device)
            seconds = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "losses": torch.stack(losses).float().tolist(),
                    "peak_bytes": memory.peak,
                    "baseline_bytes": baseline,
                }
            ),
            flush=True,
        )


def _version(framework: str) -> str:
    if framework == "chorus":
        import chorus

        return getattr(chorus, "__version__", "dev")
    import open_clip

    return open_clip.__version__


if __name__ == "__main__":
    main()
