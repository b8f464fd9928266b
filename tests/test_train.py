"""Trainer unit tests (in-process, CPU, tiny models): schedule, sampler, AdamW
groups, accumulation, clipping, logging, eval, non-finite policies, bf16 and
channels_last, checkpoints and in-process resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from chorus.errors import ConfigError, TrainingError
from chorus.train import TrainConfig, Trainer
from chorus.train.checkpoint import latest_checkpoint, load_checkpoint
from chorus.train.logging import read_metrics
from chorus.train.sampler import ResumableBatchSampler
from chorus.train.schedule import WarmupSchedule


class Regression(Dataset):
    """y = x @ w + noise; items carry their index so tests can see the sample order."""

    def __init__(self, n: int = 96, dim: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.randn(dim, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i], "idx": torch.tensor(i)}


class StreamRegression(IterableDataset):
    def __init__(self) -> None:
        self.data = Regression()

    def __iter__(self):
        return (self.data[i] for i in range(len(self.data)))


class LinearModel(nn.Module):
    """Mean-squared error of a linear layer; records what it sees."""

    def __init__(self, dim: int = 4, crash_at: int | None = None, nan_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(dim, 1)
        self.crash_at, self.nan_at = crash_at, nan_at
        self.calls = 0
        self.seen: list[list[int]] = []
        self.snapshots: list[torch.Tensor] = []

    def forward(self, batch: dict) -> dict:
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt("simulated crash")
        self.seen.append(batch["idx"].tolist())
        self.snapshots.append(torch.cat([p.detach().flatten().clone() for p in self.parameters()]))
        loss = ((self.lin(batch["x"]) - batch["y"]) ** 2).mean()
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mae": (self.lin(batch["x"]) - batch["y"]).abs().mean().detach()}


def cfg(**kw) -> TrainConfig:
    base = dict(max_steps=6, batch_size=8, lr=0.05, log_every=1, tensorboard=False, progress=False)
    return TrainConfig(**{**base, **kw})


# ------------------------------------------------------------------ schedule


def test_cosine_schedule_matches_torch_cosine_annealing_after_warmup():
    warmup, total, ratio = 5, 30, 0.1
    sched = WarmupSchedule("cosine", warmup, total, ratio)
    assert [sched(s) for s in range(warmup)] == pytest.approx([(s + 1) / warmup for s in range(warmup)])
    # Independent reference: torch's CosineAnnealingLR over the post-warmup steps.
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=ratio)
    expected = []
    for _ in range(total - warmup + 1):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert [sched(s) for s in range(warmup, total + 1)] == pytest.approx(expected, abs=1e-9)
    assert sched(total + 50) == pytest.approx(ratio)
    assert WarmupSchedule("constant", 2, 10)(7) == 1.0


# ------------------------------------------------------------------ sampler


def test_sampler_epochs_are_seeded_permutations_and_skip_resumes():
    s = ResumableBatchSampler(50, 8, seed=3)
    s.set_epoch(0)
    e0 = [i for b in s for i in b]
    assert sorted(e0) == list(range(50)) and e0 != list(range(50))
    s.set_epoch(1)
    assert [i for b in s for i in b] != e0
    again = ResumableBatchSampler(50, 8, seed=3)
    again.set_epoch(0, skip_batches=4)
    s.set_epoch(0)
    assert list(again) == list(s)[4:]
    assert len(s) == 7 and len(ResumableBatchSampler(50, 8, drop_last=True)) == 6


@pytest.mark.parametrize("n,world", [(48, 2), (50, 3)])
def test_sampler_shards_form_the_global_batches(n, world):
    batch = 4
    shards = [ResumableBatchSampler(n, batch, seed=1, rank=r, world_size=world) for r in range(world)]
    single = ResumableBatchSampler(n, batch * world, seed=1)
    for s in (*shards, single):
        s.set_epoch(2)
    per_rank = [list(s) for s in shards]
    assert len({len(p) for p in per_rank}) == 1  # every rank takes the same number of steps
    order = single.epoch_indices()
    padded = order + order[: (-n) % world]  # DistributedSampler-style wrap-around padding
    step = batch * world
    for b in range(len(per_rank[0])):
        union = sorted(i for r in range(world) for i in per_rank[r][b])
        assert union == sorted(padded[b * step : (b + 1) * step])
    if n % world == 0:  # no padding: the ranks' batches are exactly the one-process global batches
        assert [sorted(g) for g in single] == [
            sorted(i for r in range(world) for i in per_rank[r][b]) for b in range(len(per_rank[0]))
        ]


# ------------------------------------------------------------------ optimizer


def test_weight_decay_skips_biases_norms_embeddings_and_named_params(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.norm = nn.LayerNorm(4)
            self.proj = nn.Linear(4, 4)
            self.logit_scale = nn.Parameter(torch.ones(2, 2))

    net = Net()
    trainer = Trainer(net, Regression(), cfg(weight_decay=0.3), tmp_path)
    decay = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] == 0.3 for p in g["params"]}
    no_decay = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decay == {id(net.proj.weight)}
    assert no_decay == {id(p) for p in net.parameters()} - decay


def test_param_groups_keep_their_lr_and_are_scheduled(tmp_path):
    model = LinearModel()
    groups = [{"params": [model.lin.weight], "lr": 0.2}, {"params": [model.lin.bias], "lr": 0.01}]
    trainer = Trainer(model, Regression(), cfg(warmup_steps=4, schedule="constant"), tmp_path, param_groups=groups)
    lrs = {round(g["lr"], 6) for g in trainer.optimizer.param_groups}
    assert lrs == {0.05, 0.0025}  # first warmup step: 1/4 of each group's own lr


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    finals = []
    for batch_size, accum in [(16, 1), (8, 2), (4, 4)]:
        model = LinearModel()
        Trainer(model, Regression(), cfg(batch_size=batch_size, grad_accum=accum), tmp_path / str(accum)).fit()
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.allclose(finals[0], LinearModel().lin.weight.new_zeros(5))
    torch.testing.assert_close(finals[1], finals[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(finals[2], finals[0], atol=1e-6, rtol=0)


def test_logged_grad_norm_is_the_true_norm_and_clipping_bounds_it(tmp_path):
    data = Regression()
    reference = LinearModel()
    first = ResumableBatchSampler(len(data), 8, seed=0)
    first.set_epoch(0)
    idx = next(iter(first))
    loss = ((reference.lin(data.x[idx]) - data.y[idx]) ** 2).mean()
    loss.backward()
    true_norm = torch.cat([p.grad.flatten() for p in reference.parameters()]).norm().item()

    norms_at_step = {}
    for clip in (None, true_norm / 4):
        model = LinearModel()
        trainer = Trainer(model, data, cfg(max_steps=1, clip_grad_norm=clip), tmp_path / str(clip))
        trainer.optimizer.register_step_pre_hook(
            lambda opt, *_, clip=clip: norms_at_step.__setitem__(
                clip, torch.cat([p.grad.flatten() for g in opt.param_groups for p in g["params"]]).norm().item()
            )
        )
        trainer.fit()
        assert read_metrics(tmp_path / str(clip) / "metrics.jsonl")[0]["grad_norm"] == pytest.approx(
            true_norm, rel=1e-5
        )
    assert norms_at_step[None] == pytest.approx(true_norm, rel=1e-5)
    assert norms_at_step[true_norm / 4] == pytest.approx(true_norm / 4, rel=1e-4)


# ------------------------------------------------------------------ logging and eval


def test_metrics_eval_and_tensorboard(tmp_path):
    calls = []

    def eval_fn(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"mse": ((model.lin(Regression().x) - Regression().y) ** 2).mean().item()}

    config = cfg(max_steps=7, eval_every=3, log_every=2, warmup_steps=2, tensorboard=True)
    final = Trainer(LinearModel(), Regression(), config, tmp_path, eval_fn=eval_fn).fit()
    assert calls == [(False, False)] * 3
    records = read_metrics(tmp_path / "metrics.jsonl")
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval/mse" in r]
    assert [r["step"] for r in train] == [2, 4, 6, 7]
    assert [r["step"] for r in evals] == [3, 6, 7]
    sched = WarmupSchedule("cosine", 2, 7)
    assert [r["lr"] for r in train] == pytest.approx([0.05 * sched(s - 1) for s in (2, 4, 6, 7)])
    assert all({"epoch", "samples_per_sec", "grad_norm", "mae"} <= set(r) for r in train)
    assert final["eval/mse"] == evals[-1]["eval/mse"] and final["step"] == 7
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "config.yaml").is_file()


# ------------------------------------------------------------------ non-finite loss


def test_nonfinite_stop_raises_and_keeps_last_good_checkpoint(tmp_path):
    model = LinearModel(nan_at=5)
    trainer = Trainer(model, Regression(), cfg(max_steps=8, checkpoint_every=2, keep_checkpoints=5), tmp_path)
    with pytest.raises(TrainingError, match=r"non-finite loss nan .*step 5.*lower lr"):
        trainer.fit()
    good = latest_checkpoint(tmp_path)
    assert good.name == "step_000004"
    assert sorted(p.name for p in good.parent.glob("step_*")) == ["step_000002", "step_000004"]
    fresh = LinearModel()
    state = load_checkpoint(good, fresh, torch.device("cpu"))
    assert state["step"] == 4
    torch.testing.assert_close(torch.cat([p.flatten() for p in fresh.parameters()]), model.snapshots[4])


def test_nonfinite_skip_leaves_parameters_unchanged_and_counts(tmp_path):
    model = LinearModel(nan_at=3)
    final = Trainer(model, Regression(), cfg(max_steps=6, nonfinite="skip"), tmp_path).fit()
    snaps = model.snapshots
    assert torch.equal(snaps[3], snaps[2])  # the NaN step (3rd forward) did not update
    assert all(not torch.equal(snaps[i + 1], snaps[i]) for i in (0, 1, 3, 4))
    assert final["skipped_steps"] == 1
    counts = [r["skipped_steps"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert counts == [0, 0, 1, 1, 1, 1]


# ------------------------------------------------------------------ precision and memory format


def test_bf16_autocast_and_channels_last(tmp_path):
    class TinyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.head = nn.Linear(8, 2)
            self.seen = []

        def forward(self, batch):
            x = batch["image"]
            h = self.conv(x)
            self.seen.append((x.is_contiguous(memory_format=torch.channels_last), h.dtype))
            logits = self.head(h.mean((2, 3)))
            return {"loss": nn.functional.cross_entropy(logits, batch["label"])}

    class Images(Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"image": torch.randn(3, 8, 8, generator=g), "label": torch.tensor(i % 2), "path": f"img{i}.png"}

    model = TinyCNN()
    config = cfg(max_steps=2, batch_size=4, precision="bf16", channels_last=True)
    final = Trainer(model, Images(), config, tmp_path).fit()
    assert model.seen == [(True, torch.bfloat16)] * 2
    assert model.conv.weight.dtype == torch.float32
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert math.isfinite(final["loss"])


def test_matmul_precision_is_applied_and_stays_close_to_fp32(tmp_path):
    """ "medium" is a process-wide switch: the Trainer sets it from its config (so a later
    default Trainer restores full fp32), and training under it tracks full-fp32 training."""
    finals = {}
    try:
        for precision in ("medium", "highest"):
            finals[precision] = Trainer(
                LinearModel(), Regression(), cfg(matmul_precision=precision), tmp_path / precision
            ).fit()["loss"]
            assert torch.get_float32_matmul_precision() == precision
    finally:
        torch.set_float32_matmul_precision("highest")
    assert finals["medium"] == pytest.approx(finals["highest"], rel=2e-2)


# ------------------------------------------------------------------ checkpoints and resume


def test_checkpoints_are_pruned_and_loadable(tmp_path):
    Trainer(LinearModel(), Regression(), cfg(max_steps=7, checkpoint_every=2, keep_checkpoints=2), tmp_path).fit()
    dirs = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert dirs == ["step_000006", "step_000007"]  # the final step is always saved
    assert latest_checkpoint(tmp_path).name == "step_000007"
    state = torch.load(tmp_path / "checkpoints/step_000007/state.pt", weights_only=True)
    assert state["step"] == 7 and state["config"]["max_steps"] == 7 and len(state["rng"]) == 1
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))


@pytest.mark.parametrize("iterable", [False, True])
def test_resume_after_crash_replays_the_same_batches_and_losses(tmp_path, iterable):
    def data():
        return StreamRegression() if iterable else Regression()

    config = cfg(max_steps=20, checkpoint_every=4, schedule="cosine", warmup_steps=3)
    reference = LinearModel()
    Trainer(reference, data(), config, tmp_path / "ref").fit()

    crashed = LinearModel(crash_at=11)
    with pytest.raises(KeyboardInterrupt):
        Trainer(crashed, data(), config, tmp_path / "run").fit()
    resumed = LinearModel()
    Trainer(resumed, data(), config, tmp_path / "run", resume=True).fit()

    assert reference.seen[8:] == resumed.seen  # steps 9.. replayed from the step-8 checkpoint
    assert len(reference.seen) == 20  # 12 batches per epoch: the crash and resume span two epochs
    assert (reference.seen[12] == reference.seen[0]) == iterable  # streams replay, map-style reshuffles
    ref_losses = [r["loss"] for r in read_metrics(tmp_path / "ref/metrics.jsonl")]
    run_losses = [r["loss"] for r in read_metrics(tmp_path / "run/metrics.jsonl")]
    assert run_losses == ref_losses
    for p, q in zip(reference.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    again = LinearModel()  # rerunning a finished run loads its final weights and trains no further
    before = (tmp_path / "run/metrics.jsonl").read_text()
    assert Trainer(again, data(), config, tmp_path / "run", resume=True).fit()["step"] == 20
    assert again.calls == 0 and (tmp_path / "run/metrics.jsonl").read_text() == before
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), reference.parameters()))


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    final = Trainer(LinearModel(), Regression(), cfg(max_steps=3), tmp_path, resume=True).fit()
    assert final["step"] == 3


# ------------------------------------------------------------------ errors


def test_user_errors_are_chorus_errors(tmp_path):
    with pytest.raises(ConfigError, match="max_steps or epochs"):
        TrainConfig()
    with pytest.raises(ConfigError, match="grad_accum"):
        TrainConfig(max_steps=1, grad_accum=0)
    with pytest.raises(ConfigError, match="matmul_precision"):
        TrainConfig(max_steps=1, matmul_precision="low")
    with pytest.raises(ConfigError, match="IterableDataset"):
        Trainer(LinearModel(), StreamRegression(), cfg(max_steps=None, epochs=1), tmp_path)

    class NoLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1)

        def forward(self, batch):
            return {"out": self.lin(batch["x"])}

    with pytest.raises(TrainingError, match="'loss'.*got \\['out'\\]"):
        Trainer(NoLoss(), Regression(), cfg(), tmp_path).fit()


def test_epochs_define_the_length(tmp_path):
    final = Trainer(LinearModel(), Regression(), cfg(max_steps=None, epochs=2, batch_size=10), tmp_path).fit()
    assert final["step"] == 20 and final["epoch"] == pytest.approx(2.0)  # 96 samples -> 10 batches/epoch


def test_recompute_batchnorm_averages_the_batch_statistics_and_restores_modes():
    """PreciseBN: running mean / variance become the plain average over the batches of each batch's mean and
    unbiased variance of the layer's input, computed here by hand; dropout stays off while they are gathered,
    momenta and modes come back, and stale statistics (which the test first plants) are gone."""
    from chorus.train.batchnorm import recompute_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.9), nn.BatchNorm1d(4))
    model[2].running_mean.fill_(50.0)  # stale statistics, as after fast-moving weights
    batches = [torch.randn(8, 3) * (k + 1) + k for k in range(3)]
    model.train()
    assert recompute_batchnorm(model, model, batches) == 1
    with torch.no_grad():
        inputs = [model[0](b) for b in batches]
    torch.testing.assert_close(model[2].running_mean, torch.stack([x.mean(0) for x in inputs]).mean(0))
    torch.testing.assert_close(model[2].running_var, torch.stack([x.var(0) for x in inputs]).mean(0))
    assert model.training and model[1].training and model[2].momentum == 0.1
    assert recompute_batchnorm(nn.Linear(3, 4), lambda b: None, batches) == 0
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_batchnorm(model, model, [])


class BatchNormRegression(nn.Module):
    """Linear → BatchNorm → linear; records the indices of the batches it trains on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.norm, self.head = nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)
        self.seen: list[list[int]] = []

    def forward(self, batch: dict) -> dict:
        if torch.is_grad_enabled():
            self.seen.append(batch["idx"].tolist())
        return {"loss": ((self.head(self.norm(self.lin(batch["x"]))) - batch["y"]) ** 2).mean()}


def test_precise_bn_recomputes_statistics_before_each_evaluation_without_moving_the_sampler(tmp_path):
    data = Regression()
    checked = []

    def eval_fn(model):  # statistics of the first 3 stored-order batches at the weights being evaluated
        with torch.no_grad():
            inputs = [model.lin(data.x[8 * k : 8 * (k + 1)]) for k in range(3)]
        torch.testing.assert_close(model.norm.running_mean, torch.stack([h.mean(0) for h in inputs]).mean(0))
        torch.testing.assert_close(model.norm.running_var, torch.stack([h.var(0) for h in inputs]).mean(0))
        checked.append(model.norm.momentum)
        return {}

    plain, precise = BatchNormRegression(), BatchNormRegression()
    Trainer(plain, data, cfg(max_steps=6, eval_every=2), tmp_path / "plain", eval_fn=lambda m: {}).fit()
    config = cfg(max_steps=6, eval_every=2, precise_bn_batches=3)
    Trainer(precise, data, config, tmp_path / "precise", eval_fn=eval_fn).fit()
    assert checked == [0.1] * 3 and precise.seen == plain.seen  # the training batches are not disturbed
    assert not torch.equal(plain.norm.running_mean, precise.norm.running_mean)
    with pytest.raises(ConfigError, match="precise_bn_batches"):
        cfg(precise_bn_batches=-1)
