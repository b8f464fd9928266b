"""Which float precision a run trains in: ``auto`` picks bf16 only where the hardware makes it fast.

Why: bf16 autocast halves memory traffic and, on hardware with bf16 matrix units,
roughly doubles matmul throughput — but a CPU without them (e.g. an AVX2-only AMD
EPYC) emulates bf16 matmuls and trains several times *slower* than in fp32. So
``precision: auto`` (the shipped configs' default) means:

- CUDA: bf16 when ``torch.cuda.is_bf16_supported()`` (Ampere and later), else fp32;
- CPU: bf16 when the CPU reports AMX-BF16 (``amx_bf16``) or AVX512-BF16
  (``avx512_bf16``) in ``/proc/cpuinfo``, else fp32;
- anything else (MPS, unknown): fp32.

A forced ``bf16`` on hardware without fast bf16 still runs (it is correct, only
slow) and logs one warning line saying so.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch

__all__ = ["BF16_CPU_FLAGS", "Precision", "cpu_flags", "cpu_model", "fast_bf16", "resolve_precision"]

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""``/proc/cpuinfo`` flags of x86 CPUs that multiply bf16 matrices in hardware."""


def _cpuinfo_field(keys: tuple[str, ...], cpuinfo: str | Path) -> str | None:
    """The value of the first line of ``cpuinfo`` whose key is in ``keys`` (``None`` if absent or unreadable)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (empty where the file does not exist, e.g. macOS)."""
    return frozenset((_cpuinfo_field(("flags", "Features"), cpuinfo) or "").split())  # x86, ARM


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's name from ``cpuinfo`` (else what ``platform`` knows), to label throughput figures."""
    return _cpuinfo_field(("model name",), cpuinfo) or platform.processor() or platform.machine()


def fast_bf16(device: torch.device | str, flags: Iterable[str] | None = None) -> tuple[bool, str]:
    """(whether ``device`` runs bf16 matmuls fast, the reason in words). ``flags`` overrides the CPU's own."""
    device = torch.device(device)
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"CUDA device {'supports' if ok else 'does not support'} bf16"
    if device.type == "cpu":
        found = sorted(BF16_CPU_FLAGS & frozenset(cpu_flags() if flags is None else flags))
        if found:
            return True, f"CPU has {', '.join(found)}"
        return False, "CPU has neither amx_bf16 nor avx512_bf16"
    return False, f"{device.type} device: bf16 speed unknown"


def resolve_precision(
    requested: str, device: torch.device | str, flags: Iterable[str] | None = None, warn: bool = True
) -> tuple[Literal["fp32", "bf16"], str]:
    """The precision to train in and why: ``auto`` → bf16 where fast, else fp32; ``fp32``/``bf16`` as asked.

    A forced ``bf16`` on hardware without fast bf16 logs one warning (unless ``warn=False``).
    """
    if requested == "fp32":
        return "fp32", "requested"
    fast, why = fast_bf16(device, flags)
    if requested == "auto":
        return ("bf16" if fast else "fp32"), f"auto: {why}"
    if requested != "bf16":
        raise ValueError(f"precision must be auto, fp32 or bf16, got {requested!r}")
    if not fast and warn:
        log.warning("precision bf16 forced, but %s: training will be slower than fp32 (use precision: auto)", why)
    return "bf16", "requested" + ("" if fast else f" ({why})")
