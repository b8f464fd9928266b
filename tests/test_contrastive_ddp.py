"""Data-parallel contrastive losses equal the single-process loss on the whole batch.

The test launches this very file under ``torchrun --standalone --nproc_per_node=2``
(gloo on CPU; torchrun picks a free port). Each rank wraps the same small
ContrastiveModel (two or three linear towers) in DDP, feeds it its half of a
fixed float64 batch and back-propagates; DDP averages the gradients. Rank 0
saves the mean loss, every rank's own loss and the averaged gradients, which
pytest compares with one process on the concatenated batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from chorus.contrastive import ContrastiveLoss, ContrastiveModel
from chorus.encoders.base import Encoded

GLOBAL_BATCH = 8
INPUT_DIMS = {"image": 6, "text": 5, "audio": 3}


class LinearEncoder(nn.Module):
    def __init__(self, d_in: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.linear = nn.Linear(d_in, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Encoded:
        return Encoded(torch.tanh(self.linear(x)))


def make_model(config: str) -> ContrastiveModel:
    torch.manual_seed(0)
    modalities = ["image", "text", "audio"] if config == "clip_three" else ["image", "text"]
    encoders = {m: LinearEncoder(INPUT_DIMS[m], 7) for m in modalities}
    if config == "siglip":
        return ContrastiveModel(encoders, 4, init_temperature=0.1, bias=-10.0).double()
    loss = {
        "clip_local": ContrastiveLoss(local_loss=True),
        "clip_global": ContrastiveLoss(local_loss=False),
        "clip_no_grad_gather": ContrastiveLoss(local_loss=True, gather_with_grad=False),
        "clip_three": ContrastiveLoss(local_loss=True),
    }[config]
    pairs = [("image", "text"), ("image", "audio")] if config == "clip_three" else None
    return ContrastiveModel(encoders, 4, pairs=pairs, loss=loss).double()


CONFIGS = ["clip_local", "clip_global", "clip_no_grad_gather", "clip_three", "siglip"]


def make_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {m: torch.randn(GLOBAL_BATCH, d, generator=g, dtype=torch.float64) for m, d in INPUT_DIMS.items()}


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n.removeprefix("module."): p.grad.detach().clone() for n, p in model.named_parameters()}


def _worker(out_path: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}
    for config in CONFIGS:
        model = DistributedDataParallel(make_model(config))
        local = {m: x.chunk(world)[rank] for m, x in make_batch().items()}
        loss = model(local)["loss"]
        loss.backward()
        rank_losses = [torch.zeros((), dtype=torch.float64) for _ in range(world)]
        dist.all_gather(rank_losses, loss.detach())
        results[config] = {"rank_losses": torch.stack(rank_losses), "grads": grads(model)}
        # Free the DDP reducer while the process group is alive: destroyed at interpreter exit, it
        # joins gloo's worker thread while holding the GIL that thread waits for (a deadlock).
        del model, loss
    if rank == 0:
        torch.save(results, out_path)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("ddp") / "results.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return torch.load(out)


def single_process(config: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model = make_model(config)
    loss = model(make_batch())["loss"]
    loss.backward()
    return loss.detach(), grads(model)


@pytest.mark.parametrize("config", ["clip_local", "clip_global", "clip_three", "siglip"])
def test_ddp_loss_and_gradients_equal_single_process(ddp_results: dict, config: str) -> None:
    loss, expected = single_process(config)
    got = ddp_results[config]
    torch.testing.assert_close(got["rank_losses"].mean(), loss, atol=1e-5, rtol=0)
    assert expected.keys() == got["grads"].keys()
    for name, grad in expected.items():
        assert grad.abs().max() > 1e-6, f"{name} gets no gradient, the comparison would be vacuous"
        torch.testing.assert_close(got["grads"][name], grad, atol=1e-5, rtol=0, msg=f"gradient of {name}")


def test_global_loss_is_the_same_on_every_rank_local_loss_is_not(ddp_results: dict) -> None:
    loss, _ = single_process("clip_global")
    torch.testing.assert_close(ddp_results["clip_global"]["rank_losses"], loss.expand(2), atol=1e-5, rtol=0)
    local = ddp_results["clip_local"]["rank_losses"]
    assert (local[0] - local[1]).abs() > 1e-3


def test_gather_without_grad_keeps_the_loss_but_drops_cross_rank_gradients(ddp_results: dict) -> None:
    loss, expected = single_process("clip_no_grad_gather")
    got = ddp_results["clip_no_grad_gather"]
    torch.testing.assert_close(got["rank_losses"].mean(), loss, atol=1e-5, rtol=0)
    weight = "projections.image.weight"
    assert (got["grads"][weight] - expected[weight]).abs().max() > 1e-4


if __name__ == "__main__":
    _worker(sys.argv[1])
