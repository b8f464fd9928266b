"""The one training loop of Chorus.

``Trainer(model, train_data, config, run_dir).fit()`` trains any module whose
``forward(batch: dict) -> dict`` returns a scalar ``"loss"`` (plus any other
scalars to log). The loop is written to be read top to bottom, in the spirit of
nanoGPT: sample a batch, forward under autocast, backward (accumulating over
``grad_accum`` micro-batches, DDP gradient sync only on the last), clip, check
for a non-finite loss, AdamW step, schedule step, then log / evaluate /
checkpoint every N steps.

What it guarantees, and why:

* **Exact resume.** Sample order comes from :class:`ResumableBatchSampler` (a
  pure function of seed and epoch), the DataLoader gets its own seeded
  generator (so creating an iterator never consumes global RNG), and a
  checkpoint stores optimizer, scheduler, every rank's RNG states and the data
  position (epoch, batches consumed). In fp32 with ``deterministic=True`` a run
  that is killed and resumed reproduces the uninterrupted loss curve bit for
  bit (tested by SIGKILL-ing a subprocess).
* **Data parallelism.** Under ``torchrun`` the model is wrapped in DDP and the
  sampler shards each epoch across ranks; ``batch_size`` is per process, so the
  global batch is ``batch_size * grad_accum * world_size``.
* **AdamW done right** (Loshchilov & Hutter, 2019): no weight decay on biases,
  norms, embeddings or anything else with ``ndim < 2`` or a name in
  ``no_decay``; fused kernels on CPU and CUDA (one kernel for all tensors —
  on CPU this beat OpenCLIP's per-tensor default, see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset

from chorus.config import save_config, to_dict
from chorus.errors import ConfigError, TrainingError
from chorus.train import distributed as dist
from chorus.train.batchnorm import recompute_batchnorm
from chorus.train.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from chorus.train.logging import MetricsLogger, progress_bar
from chorus.train.precision import resolve_precision
from chorus.train.sampler import ResumableBatchSampler
from chorus.train.schedule import build_scheduler

log = logging.getLogger(__name__)

# Module types whose parameters never get weight decay, whatever their shape.
NO_DECAY_MODULES = (nn.Embedding, nn.EmbeddingBag, nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


@dataclass
class TrainConfig:
    """How to train (not what): every knob of :class:`Trainer`.

    Training length is ``max_steps`` optimizer steps or ``epochs`` passes over
    the data (whichever ends first when both are set). ``batch_size`` is per
    process and per micro-step.

    ``matmul_precision`` is passed to ``torch.set_float32_matmul_precision``
    (a process-wide setting) for ``precision="fp32"`` runs: ``"high"`` lets
    NVIDIA GPUs use TF32 (what OpenCLIP enables by default there), ``"medium"``
    lets CPUs with AMX multiply fp32 matrices as bf16 with fp32 accumulation
    (2.8x faster matmuls on the development machine, relative error ~2e-3)
    while weights, optimizer state and every other op stay fp32. The default
    keeps full fp32 matmuls.

    ``precision="auto"`` trains in bf16 autocast only where the device runs bf16
    fast, else in fp32 (see :mod:`chorus.train.precision`); the choice is
    printed when training starts and kept in :attr:`Trainer.precision`.

    ``precise_bn_batches`` > 0 recomputes every BatchNorm layer's statistics
    before each evaluation from that many batches of the training data
    (PreciseBN, :mod:`chorus.train.batchnorm`): evaluations made while the
    learning rate is still high then measure the weights, not the lag of
    BatchNorm's running averages. The saved model keeps the recomputed
    statistics.
    """

    max_steps: int | None = None
    epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    no_decay: tuple[str, ...] = ("bias", "norm", "embed", "logit_scale")
    warmup_steps: int = 0
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    grad_accum: int = 1
    clip_grad_norm: float | None = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    matmul_precision: Literal["highest", "high", "medium"] = "highest"
    seed: int = 0
    deterministic: bool = False
    shuffle: bool = True
    drop_last: bool = False
    num_workers: int = 0
    device: str | None = None
    eval_every: int | None = None
    log_every: int = 10
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    nonfinite: Literal["stop", "skip"] = "stop"
    progress: bool = True
    tensorboard: bool = True
    channels_last: bool = False
    compile: bool = False
    precise_bn_batches: int = 0

    def __post_init__(self) -> None:
        if self.max_steps is None and self.epochs is None:
            raise ConfigError("set max_steps or epochs (training length)")
        positive = {
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "log_every": self.log_every,
            "keep_checkpoints": self.keep_checkpoints,
            "max_steps": self.max_steps,
            "epochs": self.epochs,
            "eval_every": self.eval_every,
            "checkpoint_every": self.checkpoint_every,
        }
        for key, value in positive.items():
            if value is not None and value <= 0:
                raise ConfigError(f"{key} must be positive, got {value}")
        if self.matmul_precision not in ("highest", "high", "medium"):
            raise ConfigError(f"matmul_precision must be highest, high or medium, got {self.matmul_precision!r}")
        if self.warmup_steps < 0 or self.num_workers < 0 or self.precise_bn_batches < 0:
            raise ConfigError("warmup_steps, num_workers and precise_bn_batches must be >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices). Call before building the model."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``model`` on ``train_data`` according to ``config``, writing into ``run_dir``.

    ``train_data`` is a map-style ``Dataset`` (shuffled and sharded by a
    resumable sampler) or an ``IterableDataset`` (read in order; under DDP it
    must shard itself; requires ``max_steps``). ``eval_fn(model) -> dict`` runs
    on rank 0 every ``eval_every`` steps and at the end, with the unwrapped
    model in eval mode under ``torch.no_grad`` and the training autocast.
    ``param_groups`` (optimizer-style dicts with ``"params"`` and optional
    ``"lr"``/``"weight_decay"``) replace the default single group; each is still
    split into decay / no-decay parts. ``resume=True`` continues from
    ``run_dir/checkpoints/latest`` when it exists and starts fresh otherwise.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Dataset | Sequence[Any],
        config: TrainConfig,
        run_dir: str | os.PathLike,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        resume: bool = False,
    ) -> None:
        self.cfg = cfg = config
        self.run_dir = Path(run_dir)
        self.eval_fn = eval_fn
        dist.init_distributed()
        self.rank, self.world = dist.rank(), dist.world_size()
        self.device = torch.device(cfg.device) if cfg.device else dist.default_device()
        self.precision, self._precision_reason = resolve_precision(cfg.precision, self.device, warn=dist.is_main())
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        torch.set_float32_matmul_precision(cfg.matmul_precision)
        # Different ranks must draw different dropout masks / augmentations.
        seed_everything(cfg.seed + self.rank)

        # Data: our own sampler (map-style) so the position can be saved and restored.
        self.iterable = isinstance(train_data, IterableDataset)
        if self.iterable and cfg.max_steps is None:
            raise ConfigError("an IterableDataset has no known length: set max_steps instead of epochs")
        self.sampler = None
        self.loader_generator = torch.Generator()
        loader_args: dict[str, Any] = dict(
            collate_fn=collate_fn,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=self.loader_generator,
        )
        # A map-style train_data is a Dataset with __len__ or a plain sequence (DataLoader only indexes it).
        dataset = cast(Dataset, train_data)
        self.train_data, self.collate_fn = dataset, collate_fn
        if self.iterable:
            self.loader = DataLoader(dataset, batch_size=cfg.batch_size, drop_last=cfg.drop_last, **loader_args)
        else:
            size = len(cast(Sized, train_data))
            self.sampler = ResumableBatchSampler(
                size,
                cfg.batch_size,
                shuffle=cfg.shuffle,
                seed=cfg.seed,
                rank=self.rank,
                world_size=self.world,
                drop_last=cfg.drop_last,
            )
            if len(self.sampler) == 0:
                raise ConfigError(f"batch_size {cfg.batch_size} with drop_last leaves no batch of {size}")
            self.loader = DataLoader(dataset, batch_sampler=self.sampler, **loader_args)
        self.total_steps = self._total_steps()

        # Model, optimizer, schedule.
        self.raw_model = model.to(self.device)
        if cfg.channels_last:
            # Module.to accepts memory_format at runtime; torch's overload stubs omit it.
            self.raw_model = self.raw_model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.optimizer = self._build_optimizer(param_groups)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.schedule, cfg.warmup_steps, self.total_steps, cfg.min_lr_ratio
        )
        self.step = 0  # optimizer steps done
        self.epoch = 0  # current pass over the data
        self.batch_in_epoch = 0  # micro-batches of this epoch already consumed
        self.skipped_steps = 0
        if resume:
            self._resume()
        self.model: nn.Module = self.raw_model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.raw_model, device_ids=ids)
        if cfg.compile:
            self.model = cast(nn.Module, torch.compile(self.model))  # an OptimizedModule; stubs say Callable

        self.is_main = dist.is_main()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")

    # ------------------------------------------------------------------ setup helpers

    def _total_steps(self) -> int:
        cfg = self.cfg
        steps = []
        if cfg.max_steps is not None:
            steps.append(cfg.max_steps)
        if cfg.epochs is not None and self.sampler is not None:
            steps.append(cfg.epochs * len(self.sampler) // cfg.grad_accum)
        total = min(steps)
        if total <= 0:
            assert self.sampler is not None  # max_steps is positive, so only the epochs term can be <= 0
            raise ConfigError(
                f"{cfg.epochs} epochs of {len(self.sampler)} batches make no step of grad_accum {cfg.grad_accum}"
            )
        return total

    def _build_optimizer(self, param_groups: list[dict[str, Any]] | None) -> torch.optim.AdamW:
        """AdamW with each group split into decay and no-decay parts."""
        cfg = self.cfg
        names = {id(p): n for n, p in self.raw_model.named_parameters()}
        exempt = {
            id(p)
            for module in self.raw_model.modules()
            if isinstance(module, NO_DECAY_MODULES)
            for p in module.parameters(recurse=False)
        }

        def decays(p: nn.Parameter) -> bool:
            name = names.get(id(p), "").lower()
            return p.ndim >= 2 and id(p) not in exempt and not any(k in name for k in cfg.no_decay)

        groups = param_groups if param_groups is not None else [{"params": list(self.raw_model.parameters())}]
        split: list[dict[str, Any]] = []
        for group in groups:
            params = [p for p in group["params"] if p.requires_grad]
            extra = {k: v for k, v in group.items() if k != "params"}
            wd = extra.pop("weight_decay", cfg.weight_decay)
            split.append({**extra, "params": [p for p in params if decays(p)], "weight_decay": wd})
            split.append({**extra, "params": [p for p in params if not decays(p)], "weight_decay": 0.0})
        split = [g for g in split if g["params"]]
        if not split:
            raise ConfigError("the model has no trainable parameters")
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in split for p in g["params"])
        return torch.optim.AdamW(
            split,
            lr=cfg.lr,
            betas=cfg.betas,
            weight_decay=cfg.weight_decay,
            fused=fused or None,
            foreach=None if fused else True,
        )

    def _resume(self) -> None:
        """Load the latest checkpoint if there is one."""
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            log.warning("resume requested but %s has no checkpoint: starting from step 0", self.run_dir)
            return
        state = load_checkpoint(checkpoint, self.raw_model, self.device)
        changed = {k for k, v in to_dict(self.cfg).items() if state["config"].get(k) != v}
        if changed:
            log.warning("resuming %s with changed config keys: %s", checkpoint, ", ".join(sorted(changed)))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch, self.skipped_steps = state["batch_in_epoch"], state["skipped_steps"]
        rngs = state["rng"]
        if len(rngs) == self.world:
            set_rng_state(rngs[self.rank])
        else:
            log.warning("checkpoint has RNG states of %d ranks, running on %d: RNG reseeded", len(rngs), self.world)
        log.info("resumed from %s at step %d", checkpoint, self.step)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train until ``total_steps``; return the last logged metrics (and final eval)."""
        cfg = self.cfg
        if self.step >= self.total_steps:  # resumed a finished run: rerunning it is a no-op
            log.info("%s is already trained to step %d", self.run_dir, self.step)
            return {"step": self.step, "epoch": self._epoch_progress()}
        if self.is_main:
            print(
                f"training in {self.precision} on {self.device} ({self._precision_reason}); run folder: {self.run_dir}",
                file=sys.stderr,
            )
        self.model.train()
        batches = self._batches()
        logger = MetricsLogger(self.run_dir, enabled=self.is_main, tensorboard=cfg.tensorboard, start_step=self.step)
        bar = progress_bar(self.total_steps, self.step, cfg.progress and self.is_main)
        last: dict[str, Any] = {}
        t0, steps_since_log = time.perf_counter(), 0
        with logger as self.logger, bar:
            while self.step < self.total_steps:
                loss, grad_norm, scalars = self._forward_backward(batches)
                lr = self.optimizer.param_groups[0]["lr"]
                if self._all_finite(loss, grad_norm):
                    self.optimizer.step()
                elif cfg.nonfinite == "stop":
                    raise TrainingError(
                        f"non-finite loss {loss} (grad norm {grad_norm}) at step {self.step + 1}: "
                        f"try a lower lr (now {lr:.3g}) or more warmup, and check the data for NaN/inf; "
                        f"the last good checkpoint in {self.run_dir} is untouched"
                    )
                else:
                    self.skipped_steps += 1
                    log.warning("step %d: non-finite loss %s, update skipped", self.step + 1, loss)
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                self.step += 1
                steps_since_log += 1
                bar.update(1)

                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    throughput = cfg.batch_size * cfg.grad_accum * self.world * steps_since_log
                    record = {
                        "step": self.step,
                        "epoch": self._epoch_progress(),
                        "loss": loss,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "samples_per_sec": throughput / (time.perf_counter() - t0),
                        "skipped_steps": self.skipped_steps,
                    }
                    # Mean over ranks (a collective: every rank logs at the same steps).
                    for k, v in {"loss": torch.tensor(loss, device=self.device), **scalars}.items():
                        record[k] = dist.all_reduce_mean(v).item()
                    self.logger.log(record)
                    bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{lr:.3g}")
                    last.update(record)
                    t0, steps_since_log = time.perf_counter(), 0
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step != self.total_steps:
                    self._evaluate()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
            last.update(self._evaluate())
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every != 0:
                self.save_checkpoint()
        return last

    def _forward_backward(self, batches: Iterator[Any]) -> tuple[float, float, dict[str, torch.Tensor]]:
        """Accumulate gradients over ``grad_accum`` micro-batches and clip them.

        Returns the mean micro-batch loss, the pre-clip gradient norm (one host
        sync for both) and the model's other scalars averaged over micro-batches.
        Under DDP, gradients are all-reduced only on the last micro-batch.
        """
        cfg, model = self.cfg, self.model
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        loss_sum = torch.zeros((), device=self.device)
        scalars: dict[str, torch.Tensor] = {}
        for micro in range(cfg.grad_accum):
            batch = self._to_device(self._next_batch(batches))
            sync = micro == cfg.grad_accum - 1 or not isinstance(model, DistributedDataParallel)
            with contextlib.nullcontext() if sync else cast(DistributedDataParallel, model).no_sync():
                with autocast:
                    out = model(batch)
                loss = self._check_output(out)
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach().float()
            for k, v in out.items():
                if k != "loss" and _is_scalar(v):
                    value = torch.as_tensor(v, device=self.device).detach().float().reshape(()) / cfg.grad_accum
                    scalars[k] = scalars.get(k, 0.0) + value
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm or math.inf, foreach=True)
        loss_value, norm_value = torch.stack([loss_sum / cfg.grad_accum, grad_norm.float()]).tolist()
        return loss_value, norm_value, scalars

    def _all_finite(self, loss: float, grad_norm: float) -> bool:
        """Whether this step can be applied; the same answer on every rank."""
        finite = math.isfinite(loss) and math.isfinite(grad_norm)
        if self.world > 1:
            finite = dist.all_reduce_mean(torch.tensor(float(finite), device=self.device)).item() == 1.0
        return finite

    # ------------------------------------------------------------------ loop helpers

    def _batches(self) -> Iterator[Any]:
        """Endless stream of batches across epochs, starting at the saved data position."""
        while True:
            self.loader_generator.manual_seed(self.cfg.seed * 1_000_003 + self.epoch * 1009 + self.rank)
            if self.sampler is not None:
                self.sampler.set_epoch(self.epoch, skip_batches=self.batch_in_epoch)
                yield from self.loader
            else:
                set_epoch = getattr(self.loader.dataset, "set_epoch", None)
                if callable(set_epoch):  # e.g. ShardDataset reshuffles its shard order per epoch
                    set_epoch(self.epoch)
                iterator = iter(self.loader)
                for _ in range(self.batch_in_epoch):  # an IterableDataset can only skip by reading
                    next(iterator, None)
                yield from iterator
            if self.batch_in_epoch == 0:
                raise TrainingError("the training data yielded no batch in a whole epoch")
            self.epoch += 1
            self.batch_in_epoch = 0

    def _next_batch(self, batches: Iterator[Any]) -> Any:
        """The next batch, passing over batches whose samples were all skipped as bad data (``None``)."""
        while True:
            batch = next(batches)
            self.batch_in_epoch += 1
            if batch is not None:
                return batch
            log.warning("epoch %d batch %d: every sample was skipped as bad data", self.epoch, self.batch_in_epoch)

    def _to_device(self, batch: Any) -> dict[str, Any]:
        if not isinstance(batch, dict):
            raise TrainingError(f"a batch must be a dict (see the batch conventions), got {type(batch).__name__}")
        moved = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if self.cfg.channels_last and value.ndim == 4 and value.is_floating_point():
                    value = value.contiguous(memory_format=torch.channels_last)
            moved[key] = value
        return moved

    def _check_output(self, out: Any) -> torch.Tensor:
        if not isinstance(out, dict) or "loss" not in out:
            got = sorted(out) if isinstance(out, dict) else type(out).__name__
            raise TrainingError(f"model(batch) must return a dict with a 'loss' entry, got {got}")
        loss = out["loss"]
        if not (isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.requires_grad):
            raise TrainingError(f"model(batch)['loss'] must be a scalar tensor with grad, got {loss!r:.80}")
        return loss

    def _epoch_progress(self) -> float:
        if self.sampler is None:
            return float(self.epoch)
        return self.epoch + self.batch_in_epoch / len(self.sampler)

    def _evaluate(self) -> dict[str, Any]:
        results: dict[str, Any] = {}
        if self.eval_fn is not None and self.is_main:
            if self.cfg.precise_bn_batches:
                self._recompute_batchnorm()
            self.raw_model.eval()
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
            with torch.no_grad(), autocast:
                metrics = self.eval_fn(self.raw_model)
            self.raw_model.train()
            results = {f"eval/{k}": float(v) for k, v in metrics.items()}
            self.logger.log({"step": self.step, "epoch": self._epoch_progress(), **results})
        dist.barrier()
        return results

    def _recompute_batchnorm(self) -> None:
        """PreciseBN from the first ``precise_bn_batches`` batches of the training data in stored order, read by a
        loader of their own (with its own generator) so the training sampler's position and RNG are untouched."""
        loader = DataLoader(
            self.train_data, batch_size=self.cfg.batch_size, collate_fn=self.collate_fn, generator=torch.Generator()
        )
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with autocast:
            recompute_batchnorm(
                self.raw_model,
                lambda batch: self.raw_model(self._to_device(batch)),
                itertools.islice(loader, self.cfg.precise_bn_batches),
            )

    def save_checkpoint(self) -> Path | None:
        """Checkpoint now (weights, optimizer, scheduler, RNG of every rank, data position)."""
        rngs = dist.all_gather_object(rng_state())
        path = None
        if self.is_main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rngs,
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "skipped_steps": self.skipped_steps,
                "world_size": self.world,
                "config": to_dict(self.cfg),
            }
            path = save_checkpoint(self.run_dir, self.step, self.raw_model, state, self.cfg.keep_checkpoints)
        dist.barrier()
        return path


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)
