"""Crash-resume end to end: SIGKILL a training subprocess, resume it, and get
the uninterrupted run's loss curve and weights exactly.

The run is a dropout MLP on scikit-learn's digits with shuffling and
``grad_accum=2`` (so model RNG, data order and mid-accumulation state all
matter), fp32 and deterministic mode. This file is also the training script:
``python tests/test_train_resume.py RUN_DIR [--slow] [--resume]``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

MAX_STEPS = 40


class Digits(torch.utils.data.Dataset):
    def __init__(self) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        self.y = torch.tensor(digits.target)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "label": self.y[i]}


class DropoutMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10))

    def forward(self, batch: dict) -> dict:
        logits = self.net(batch["x"])
        loss = nn.functional.cross_entropy(logits, batch["label"])
        return {"loss": loss, "acc": (logits.argmax(1) == batch["label"]).float().mean()}


def main(run_dir: str, slow: bool, resume: bool) -> None:
    from torch.utils.data import default_collate

    from chorus.train import TrainConfig, Trainer, seed_everything

    def collate(items):
        if slow:  # pace the run so the test can kill it between checkpoints
            time.sleep(0.03)
        return default_collate(items)

    seed_everything(0)
    model = DropoutMLP()
    config = TrainConfig(
        max_steps=MAX_STEPS,
        batch_size=32,
        grad_accum=2,
        lr=3e-3,
        warmup_steps=5,
        checkpoint_every=5,
        log_every=1,
        deterministic=True,
        tensorboard=False,
        progress=False,
        seed=7,
    )  # 1797 samples / 32 = 57 batches = 28 steps per epoch: the run crosses an epoch boundary
    trainer = Trainer(model, Digits(), config, run_dir, collate_fn=collate, resume=resume)
    print(f"start step {trainer.step}", flush=True)
    trainer.fit()


def _run(run_dir: Path, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, __file__, str(run_dir), *flags]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_sigkill_and_resume_reproduces_the_uninterrupted_run(tmp_path):
    from safetensors.torch import load_file

    from chorus.train.logging import read_metrics

    reference, run = tmp_path / "reference", tmp_path / "run"
    ref_proc = _run(reference)

    victim = _run(run, "--slow")
    latest = run / "checkpoints" / "latest"
    deadline = time.monotonic() + 90
    while not (latest.exists() and latest.read_text().strip() >= "step_000015"):
        assert victim.poll() is None, victim.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in read_metrics(run / "metrics.jsonl"))
    assert killed_at < MAX_STEPS, "the run finished before it could be killed"

    resumed_output = _finish(_run(run, "--resume"))
    _finish(ref_proc)

    start = int(resumed_output.split("start step ")[1].split()[0])
    assert 15 <= start <= killed_at and start % 5 == 0  # it continued from a checkpoint, not from scratch

    expected = read_metrics(reference / "metrics.jsonl")
    merged = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in merged] == list(range(1, MAX_STEPS + 1))
    assert [r["loss"] for r in merged] == [r["loss"] for r in expected]
    assert [r["acc"] for r in merged] == [r["acc"] for r in expected]
    final = f"checkpoints/step_{MAX_STEPS:06d}/model.safetensors"
    ref_weights, run_weights = load_file(reference / final), load_file(run / final)
    assert ref_weights.keys() == run_weights.keys()
    assert all(torch.equal(ref_weights[k], run_weights[k]) for k in ref_weights)


if __name__ == "__main__":
    main(sys.argv[1], slow="--slow" in sys.argv, resume="--resume" in sys.argv)
