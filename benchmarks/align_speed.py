"""Time batched DTW (64 pairs of 100 x 13 sequences) in Chorus vs tslearn and dtaidistance.

Run: ``python benchmarks/align_speed.py``. All three run single-threaded on the
same float64 data in one process (repeats interleaved, median reported), after
a warm-up call that pays numba / first-call costs; the distances are checked to
agree before timing. Writes ``benchmarks/results/align_speed.{json,md}``.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import dtaidistance
import numpy as np
import torch
import tslearn
from dtaidistance import dtw_ndim
from tslearn.metrics import dtw as tslearn_dtw

from chorus.align import dtw

BATCH, LENGTH, DIM, REPEATS = 64, 100, 13, 15
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    torch.set_num_threads(1)  # the references are single-threaded loops: compare like with like
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(BATCH, LENGTH, DIM)), rng.normal(size=(BATCH, LENGTH, DIM))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    runners: dict[str, Callable[[], np.ndarray]] = {
        "chorus (torch wavefront, batched)": lambda: dtw(xt, yt).distance.sqrt().numpy(),
        "tslearn.metrics.dtw (loop)": lambda: np.array([tslearn_dtw(x[b], y[b]) for b in range(BATCH)]),
        "dtaidistance dtw_ndim.distance (C, loop)": lambda: np.array(
            [dtw_ndim.distance(x[b], y[b], use_c=True) for b in range(BATCH)]
        ),
    }
    outputs = {name: run() for name, run in runners.items()}  # warm-up and agreement check
    reference = outputs["tslearn.metrics.dtw (loop)"]
    for name, out in outputs.items():
        np.testing.assert_allclose(out, reference, rtol=1e-9, err_msg=name)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(REPEATS):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    median_ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    chorus = median_ms["chorus (torch wavefront, batched)"]
    rows = [
        {"method": name, "median_ms": round(ms, 2), "speedup_of_chorus": round(ms / chorus, 2)}
        for name, ms in median_ms.items()
    ]
    meta = {
        "task": f"DTW distance, {BATCH} pairs, {LENGTH}x{LENGTH} steps, {DIM} dims, float64, 1 thread",
        "repeats": REPEATS,
        "versions": {
            "torch": torch.__version__,
            "tslearn": tslearn.__version__,
            "dtaidistance": dtaidistance.__version__,
        },
        "machine": platform.processor() or platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "align_speed.json").write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    lines = [f"# Align speed: {meta['task']}", "", "| method | median ms | chorus speed-up |", "|---|---:|---:|"]
    lines += [f"| {r['method']} | {r['median_ms']} | {r['speedup_of_chorus']}x |" for r in rows]
    lines += ["", f"Median of {REPEATS} interleaved repeats; versions: {meta['versions']}."]
    (RESULTS / "align_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
