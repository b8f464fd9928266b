"""Conditional image generators (CVAE, projection cGAN) on real MNIST digits, conditioned on a digit code.

A generator that ignored its condition would put each digit's samples nearest to one and the same class
mean (1 digit in 10 right); these assert that the condition steers the output to the intended digit.
"""

from __future__ import annotations

import pytest
import torch

from chorus.data.mnist import MNIST
from chorus.train import TrainConfig, Trainer
from chorus.translate.cgan import train_cgan
from chorus.translate.conditions import ConditionedTargets
from chorus.translate.cvae import ConditionalVAE


@pytest.fixture(scope="module")
def digits(real_data_root) -> tuple[torch.Tensor, torch.Tensor]:
    mnist = MNIST(real_data_root, split="train")
    n = 2000
    pixels = torch.from_numpy(mnist.images[mnist.records[:n]].copy()).float().div(255).mul(2).sub(1).unsqueeze(1)
    return pixels, torch.tensor(mnist.labels[:n])


def _bank(labels: torch.Tensor, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Per digit, 5 noisy codes around a random direction: continuous conditions like shared-space embeddings."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, dim, generator=g)
    bank_y = torch.arange(10).repeat(5)
    return centres[bank_y] + 0.3 * torch.randn(len(bank_y), dim, generator=g), bank_y


def _hits(samples: torch.Tensor, pixels: torch.Tensor, labels: torch.Tensor) -> int:
    """Digits whose mean generated image is nearest (L2) to the mean real image of the intended digit."""
    real = torch.stack([pixels[labels == d].mean(0) for d in range(10)]).flatten(1)
    fake = samples.view(10, -1, *samples.shape[1:]).mean(1).flatten(1)
    return int((torch.cdist(fake, real).argmin(1) == torch.arange(10)).sum())


def test_cvae_follows_its_condition(digits, tmp_path):
    pixels, labels = digits
    bank, bank_y = _bank(labels)
    torch.manual_seed(0)
    model = ConditionalVAE(bank.shape[1], latent_dim=8, hidden=256)
    cfg = TrainConfig(
        max_steps=300,
        batch_size=128,
        lr=2e-3,
        warmup_steps=20,
        seed=0,
        progress=False,
        tensorboard=False,
        log_every=300,
    )
    Trainer(model, ConditionedTargets(pixels, labels, bank, bank_y), cfg, tmp_path).fit()
    model.eval()
    cond = bank[:10].repeat_interleave(20, 0)  # the first code of every digit, 20 samples each
    samples = model.sample(cond, torch.Generator().manual_seed(1))
    assert samples.shape == (200, 1, 28, 28) and samples.min() >= -1 and samples.max() <= 1
    assert _hits(samples, pixels, labels) >= 9
    shuffled = model.sample(
        bank[torch.randperm(10, generator=torch.Generator().manual_seed(2))].repeat_interleave(20, 0)
    )
    assert _hits(shuffled, pixels, labels) <= 3
    # Temperature scales the latent draw: 0 gives the one deterministic decode per condition,
    # and lower temperatures give less varied samples.
    one = cond[::20]
    cold = [model.sample(one, torch.Generator().manual_seed(s), temperature=0.0) for s in (3, 4)]
    assert torch.equal(cold[0], cold[1])
    spread = {
        t: model.sample(cond, torch.Generator().manual_seed(5), temperature=t).view(10, 20, -1).std(1).mean()
        for t in (0.5, 1.0)
    }
    assert spread[0.5] < spread[1.0]
    with pytest.raises(ValueError, match="temperature"):
        model.sample(one, temperature=-1.0)


def test_cgan_follows_its_condition(digits):
    pixels, labels = digits
    bank, bank_y = _bank(labels)
    generator, losses = train_cgan(
        ConditionedTargets(pixels, labels, bank, bank_y), bank.shape[1], steps=800, seed=0, width=16, ema_half_life=100
    )  # samples from the weights' average
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    samples = generator.sample(bank[:10].repeat_interleave(20, 0), torch.Generator().manual_seed(1))
    assert samples.shape == (200, 1, 28, 28)
    assert _hits(samples, pixels, labels) >= 7


def test_ema_copy_averages_weights_and_batchnorm_statistics():
    """The moving average follows ``decay·avg + (1 − decay)·new`` on parameters *and* BatchNorm buffers."""
    from chorus.translate.cgan import Generator, ema_copy

    gen = Generator(cond_dim=4, noise_dim=2, width=2)
    ema = ema_copy(gen, decay=0.9)
    first = {k: v.clone() for k, v in gen.state_dict().items() if v.is_floating_point()}
    ema.update_parameters(gen)  # the first update copies
    with torch.no_grad():
        for v in gen.state_dict().values():
            if v.is_floating_point():
                v.add_(1.0)
    ema.update_parameters(gen)
    for k, v in ema.module.state_dict().items():
        if k in first:
            torch.testing.assert_close(v, first[k] + 0.1)
