"""Where training metrics go: ``metrics.jsonl``, TensorBoard and a tqdm bar (rank 0 only).

``metrics.jsonl`` holds one JSON object per logged step (``step``, ``epoch``,
``loss``, ``lr``, ``samples_per_sec``, ``grad_norm``, the model's scalars) or
per evaluation (``step``, ``epoch``, ``eval/<name>``...). It is the
machine-readable record: plain text, appendable, readable with
``pandas.read_json(path, lines=True)``. When training starts (or resumes) at
step ``s`` the file is rewritten without records after ``s`` (and without a
line torn by a crash), and TensorBoard is opened with ``purge_step=s``, so the
curves of an interrupted and resumed run are exactly those of an uninterrupted
one.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from chorus.train.checkpoint import atomic_write

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a ``metrics.jsonl`` (a torn last line is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLogger:
    """Appends metric records to ``run_dir/metrics.jsonl`` and TensorBoard; inert when disabled.

    Records after ``start_step`` (left by a run that crashed later than its last
    checkpoint, or by an earlier run in the same directory) are dropped first.
    Use it as a context manager so the files are closed even when training fails.
    """

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, start_step: int) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS_FILE
        self._writer = None
        if not enabled:
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= start_step] if self.path.exists() else []
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR), purge_step=start_step)
        self._file = open(self.path, "a", encoding="utf-8")

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log(self, record: dict[str, Any]) -> None:
        """Write one record; ``record["step"]`` is the x-axis, other numbers become scalars."""
        if not self.enabled:
            return
        record = {k: _jsonable(v) for k, v in record.items()}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    tag = key if "/" in key else f"train/{key}"
                    self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._writer is not None:
                self._writer.close()


def _jsonable(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def progress_bar(total: int, initial: int, enabled: bool) -> tqdm:
    """A tqdm bar over optimizer steps, shown only if ``enabled`` and stderr is a terminal."""
    return tqdm(total=total, initial=initial, disable=not (enabled and sys.stderr.isatty()), unit="step")
