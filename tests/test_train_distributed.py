"""DDP on CPU (gloo) via ``torchrun --standalone --nproc_per_node=2``.

Two ranks with per-rank batch 8 and ``grad_accum=2`` (so the ``no_sync``
micro-step is exercised) must end with identical parameters, equal within 1e-5
to a single process training on the global batch of 16 — the loss is a mean
over the batch, so averaging the ranks' gradients gives the global gradient.
This file is also the per-rank script: ``python tests/test_train_distributed.py RUN_DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

STEPS = 5


class Data(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 6, generator=g)
        self.y = torch.sin(self.x.sum(1, keepdim=True))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, batch: dict) -> dict:
        return {"loss": ((self.net(batch["x"]) - batch["y"]) ** 2).mean()}


def train(run_dir: Path, batch_size: int) -> nn.Module:
    from chorus.train import TrainConfig, Trainer, seed_everything

    seed_everything(0)
    model = MLP()
    config = TrainConfig(
        max_steps=STEPS,
        batch_size=batch_size,
        grad_accum=2,
        lr=1e-2,
        warmup_steps=2,
        log_every=1,
        checkpoint_every=STEPS,
        tensorboard=False,
        progress=False,
        seed=3,
    )  # 64 samples / 16 per step: the 5 steps cross an epoch boundary
    Trainer(model, Data(), config, run_dir).fit()
    return model


def test_ddp_two_ranks_match_one_process_on_the_global_batch(tmp_path):
    from chorus.train import seed_everything
    from chorus.train.logging import read_metrics

    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        __file__,
        str(ddp_dir),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]

    rank0 = torch.load(ddp_dir / "params_rank0.pt", weights_only=True)
    rank1 = torch.load(ddp_dir / "params_rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    single = train(single_dir, batch_size=16).state_dict()
    seed_everything(0)
    initial = MLP().state_dict()  # initialised like the runs: training must have moved every tensor
    assert all(not torch.allclose(single[k], initial[k]) for k in single)
    for k in single:
        torch.testing.assert_close(rank0[k], single[k], atol=1e-5, rtol=0)

    ddp_losses = [r["loss"] for r in read_metrics(ddp_dir / "metrics.jsonl")]
    single_losses = [r["loss"] for r in read_metrics(single_dir / "metrics.jsonl")]
    assert len(ddp_losses) == STEPS
    torch.testing.assert_close(torch.tensor(ddp_losses), torch.tensor(single_losses), atol=1e-5, rtol=0)

    state = torch.load(ddp_dir / f"checkpoints/step_{STEPS:06d}/state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # ranks seeded apart


if __name__ == "__main__":
    from chorus.train import distributed

    run_dir = Path(sys.argv[1])
    model = train(run_dir, batch_size=8)
    torch.save(model.state_dict(), run_dir / f"params_rank{distributed.rank()}.pt")
    distributed.cleanup()
