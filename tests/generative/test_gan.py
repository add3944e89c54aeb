"""GAN losses against their formulas, the saturation argument, DCGAN's guidelines, the GAN task
(k discriminator steps, checkpoints) and a tiny GAN that covers all eight modes of a ring."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate.engine import Callback
from striate.engine.task import TASKS
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, InputError
from striate.generative.dcgan import ADAM, DCGANDiscriminator, DCGANGenerator
from striate.generative.gan import (
    GAN,
    GANPair,
    discriminator_loss,
    interpolate_latents,
    latent_arithmetic,
    minimax_generator_loss,
    non_saturating_generator_loss,
)


class MLPGenerator(nn.Module):
    def __init__(self, latent: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent
        self.net = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def mlp_discriminator(hidden: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, 1),
    )


def trainer(**kw) -> Trainer:
    base = dict(
        opt="adam",
        lr=1e-3,
        momentum=0.5,
        device="cpu",
        precision="fp32",
        progress=False,
        tensorboard=False,
    )
    return Trainer(**{**base, **kw})


RING = torch.stack(
    [
        torch.tensor([2 * math.cos(2 * math.pi * i / 8), 2 * math.sin(2 * math.pi * i / 8)])
        for i in range(8)
    ]
)


def ring_batches(seed: int, n_batches: int = 16, size: int = 256, std: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(8, (n_batches * size,), generator=g)
    x = RING[idx] + std * torch.randn(n_batches * size, 2, generator=g)
    return [(b,) for b in x.split(size)]


# ---------------------------------------------------------------- losses


def test_losses_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, generator=g) * 3, torch.randn(64, generator=g) * 3
    d_real, d_fake = torch.sigmoid(a), torch.sigmoid(b)
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    torch.testing.assert_close(discriminator_loss(a, b), expected_d)
    torch.testing.assert_close(minimax_generator_loss(b), torch.log(1 - d_fake).mean())
    torch.testing.assert_close(non_saturating_generator_loss(b), -torch.log(d_fake).mean())


def test_losses_are_stable_at_large_logits():
    real, fake = torch.tensor([-200.0]), torch.tensor([200.0])  # D exactly wrong on both
    naive = -(torch.log(torch.sigmoid(real)) + torch.log(1 - torch.sigmoid(fake)))
    assert torch.isinf(naive).all()  # what the formula written with log(sigmoid) gives
    assert discriminator_loss(real, fake).item() == pytest.approx(400.0)
    assert minimax_generator_loss(fake).item() == pytest.approx(-200.0)
    assert non_saturating_generator_loss(-fake).item() == pytest.approx(200.0)
    assert discriminator_loss(-real, -fake).item() == pytest.approx(0.0, abs=1e-30)


def test_minimax_gradient_vanishes_when_d_rejects_fakes_non_saturating_does_not():
    b = torch.full((8,), -10.0, requires_grad=True)  # D(G(z)) = σ(-10) ≈ 4.5e-5: rejected
    (g_mm,) = torch.autograd.grad(minimax_generator_loss(b), b)
    (g_ns,) = torch.autograd.grad(non_saturating_generator_loss(b), b)
    # d/db log(1 - σ(b)) = -σ(b);  d/db -log σ(b) = -σ(-b) = -(1 - σ(b))
    torch.testing.assert_close(g_mm, -torch.sigmoid(b.detach()) / 8)
    torch.testing.assert_close(g_ns, -torch.sigmoid(-b.detach()) / 8)
    assert g_mm.abs().max() < 1e-5 and g_ns.abs().min() > 0.12
    # and through a generator: the minimax loss barely moves its weights
    torch.manual_seed(0)
    gen, disc = MLPGenerator(), mlp_discriminator()
    with torch.no_grad():
        disc[-1].bias.fill_(-12.0)  # a discriminator that rejects everything
    logits = disc(gen(torch.randn(32, 4))).squeeze(1)
    norms = []
    for loss in (minimax_generator_loss(logits), non_saturating_generator_loss(logits)):
        grads = torch.autograd.grad(loss, list(gen.parameters()), retain_graph=True)
        norms.append(torch.sqrt(sum((g**2).sum() for g in grads)))
    assert norms[0] < 1e-4 * norms[1]


# ---------------------------------------------------------------- DCGAN


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=16, channels=channels, size=size, width=8)
    d = DCGANDiscriminator(channels=channels, size=size, width=8)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, channels, size, size)
    assert x.abs().max() <= 1.0  # Tanh output
    assert d(x).shape == (3,)


def _layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if not isinstance(m, nn.Sequential) and m is not net]


def test_dcgan_follows_the_guidelines():
    torch.manual_seed(0)
    g, d = DCGANGenerator(size=32, channels=3), DCGANDiscriminator(size=32, channels=3)
    pools = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    for net in (g, d):
        kinds = _layers(net)
        assert not any(isinstance(m, (*pools, nn.Linear, nn.Sigmoid)) for m in kinds)
    gl, dl = _layers(g), _layers(d)
    # G: transposed convs (stride 2 after the projection), BN + ReLU after each but the last,
    # which is followed by Tanh
    convs = [i for i, m in enumerate(gl) if isinstance(m, nn.ConvTranspose2d)]
    assert [gl[i].stride for i in convs] == [(1, 1)] + [(2, 2)] * (len(convs) - 1)
    for i in convs[:-1]:
        assert isinstance(gl[i + 1], nn.BatchNorm2d) and isinstance(gl[i + 2], nn.ReLU)
    assert isinstance(gl[convs[-1] + 1], nn.Tanh) and len(gl) == convs[-1] + 2
    # D: strided convs; no BN after the input layer, BN after the others; LeakyReLU 0.2
    convs = [i for i, m in enumerate(dl) if isinstance(m, nn.Conv2d)]
    assert all(dl[i].stride == (2, 2) for i in convs[:-1])
    assert isinstance(dl[convs[0] + 1], nn.LeakyReLU)
    for i in convs[1:-1]:
        assert isinstance(dl[i + 1], nn.BatchNorm2d) and isinstance(dl[i + 2], nn.LeakyReLU)
    assert {m.negative_slope for m in dl if isinstance(m, nn.LeakyReLU)} == {0.2}
    assert not any(isinstance(m, nn.ReLU) for m in dl)
    assert convs[-1] == len(dl) - 1  # the last layer is the logit
    # N(0, 0.02) weights
    for net in (g, d):
        w = torch.cat(
            [
                m.weight.flatten()
                for m in net.modules()
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
            ]
        )
        assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert ADAM == {"lr": 2e-4, "betas": (0.5, 0.999)}


def test_dcgan_rejects_images_of_the_wrong_size():
    with pytest.raises(InputError, match="1×28×28"):
        DCGANDiscriminator(channels=1, size=28, width=8)(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ConfigError, match="size"):
        DCGANGenerator(size=64)


# ---------------------------------------------------------------- the task


def test_registered_and_checks_its_model():
    assert TASKS.get("gan") is GAN
    with pytest.raises(ConfigError, match="GANPair"):
        trainer(steps=1, task=GAN()).fit(nn.Linear(2, 2), ring_batches(0, 1, 8))
    with pytest.raises(ConfigError, match="latent_dim"):
        GANPair(nn.Linear(2, 2), mlp_discriminator())
    with pytest.raises(ConfigError, match="generator_loss"):
        GAN(generator_loss="minmax")


@pytest.mark.parametrize("k", [1, 3])
def test_k_discriminator_steps_per_generator_step(k):
    torch.manual_seed(0)
    pair = GANPair(MLPGenerator(hidden=8), mlp_discriminator(8))
    task = GAN(k=k)
    t = trainer(steps=5, task=task)
    t.fit(pair, ring_batches(0, 5, 16))
    assert task.d_steps == 5 * k
    d_state = task.d_optimizer.state_dict()["state"]
    assert {int(s["step"]) for s in d_state.values()} == {5 * k}
    g_state = t.optimizer.state
    assert {int(g_state[p]["step"]) for p in pair.generator.parameters()} == {5}
    # the Trainer's optimiser holds the discriminator too, yet never stepped it
    assert not any(p in g_state for p in pair.discriminator.parameters())
    assert all(p.requires_grad for p in pair.discriminator.parameters())
    m = t.history[-1]
    assert 0 < m["train_d_real"] < 1 and 0 < m["train_d_fake"] < 1
    assert m["train_d_loss"] > 0


def test_each_discriminator_step_gets_its_own_real_minibatch(monkeypatch):
    """Algorithm 1 of Goodfellow et al. 2014: k real minibatches of m per generator step, which
    the task cuts from one batch of k·m; the generator step draws m noise samples."""
    torch.manual_seed(0)
    task = GAN(k=3)
    seen, generator_sizes = [], []
    step = task.discriminator_step
    monkeypatch.setattr(task, "discriminator_step", lambda t, b: (seen.append(b[0]), step(t, b))[1])
    pair = GANPair(MLPGenerator(hidden=8), mlp_discriminator(8))
    noise = pair.noise
    monkeypatch.setattr(pair, "noise", lambda n, d: (generator_sizes.append(n), noise(n, d))[1])
    batches = ring_batches(0, 2, 12)
    trainer(steps=2, task=task).fit(pair, batches)
    assert [len(x) for x in seen] == [4] * 6
    for i, (x, *_) in enumerate(batches):
        assert torch.equal(torch.cat(seen[3 * i : 3 * i + 3]), x)  # disjoint parts, all of it
    assert generator_sizes == [4] * 8  # per step: 3 discriminator steps, then the generator's
    with pytest.raises(ConfigError, match="batch of 2 images cannot give each of the k=3"):
        task.real_minibatches((torch.zeros(2, 2),))


def test_discriminator_step_lowers_its_loss_generator_step_leaves_d_alone():
    torch.manual_seed(0)
    pair = GANPair(MLPGenerator(hidden=8), mlp_discriminator(8))
    task = GAN(k=1)
    t = trainer(steps=1, task=task)
    t.fit(pair, ring_batches(0, 1, 64))
    d_before = [p.detach().clone() for p in pair.discriminator.parameters()]
    g_before = [p.detach().clone() for p in pair.generator.parameters()]
    t.closure_step(ring_batches(1, 1, 64))  # a generator step alone
    assert all(
        torch.equal(a, b) for a, b in zip(d_before, pair.discriminator.parameters(), strict=True)
    )
    assert not all(
        torch.equal(a, b) for a, b in zip(g_before, pair.generator.parameters(), strict=True)
    )


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    data = ring_batches(0, 4, 32)

    class StopAfterOneEpoch(Callback):
        def on_epoch_end(self, trainer, metrics):
            trainer.should_stop = True

    def run(out=None, resume=None, callbacks=()):
        torch.manual_seed(0)
        pair = GANPair(MLPGenerator(hidden=8), mlp_discriminator(8))
        task = GAN(k=2)
        t = trainer(steps=8, task=task, out=out, seed=0, callbacks=callbacks)
        t.fit(pair, data, resume=resume)
        return pair, task

    whole, whole_task = run()
    _, half = run(out=tmp_path, callbacks=[StopAfterOneEpoch()])
    assert half.d_steps == 8
    resumed, task = run(resume=tmp_path / "checkpoints" / "last.safetensors")
    assert task.d_steps == whole_task.d_steps == 16
    a, b = task.d_optimizer.state_dict(), whole_task.d_optimizer.state_dict()
    for key in a["state"]:
        for name, value in a["state"][key].items():
            torch.testing.assert_close(value, b["state"][key][name])
    for p, q in zip(resumed.state_dict().values(), whole.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q)


def test_state_dict_round_trip_and_its_misuse():
    pair = GANPair(MLPGenerator(hidden=8), mlp_discriminator(8))
    task = GAN()
    task.setup(pair, None)
    loss = sum(p.sum() for p in pair.discriminator.parameters())
    loss.backward()
    task.d_optimizer.step()
    other = GAN()
    with pytest.raises(ConfigError, match="setup"):
        other.load_state_dict(task.state_dict())
    other.setup(GANPair(MLPGenerator(hidden=8), mlp_discriminator(8)), None)
    other.load_state_dict(task.state_dict())
    assert int(next(iter(other.d_optimizer.state_dict()["state"].values()))["step"]) == 1


def test_evaluation_scores_both_players():
    torch.manual_seed(0)
    pair = GANPair(MLPGenerator(hidden=8), mlp_discriminator(8))
    t = trainer(steps=2, task=GAN())
    t.fit(pair, ring_batches(0, 2, 32))
    metrics = t.evaluate(pair, ring_batches(1, 2, 32))
    assert set(metrics) >= {"d_loss", "g_loss", "d_real", "d_fake"}
    x = ring_batches(1, 1, 32)[0][0]
    with torch.no_grad():
        real = pair.discriminator(x).squeeze(1)
    assert metrics["d_real"] == pytest.approx(torch.sigmoid(real).mean().item(), rel=0.2)


def test_gan_covers_every_mode_of_a_ring():
    """Eight Gaussians on a circle (the usual mode-collapse check): every mode gets samples."""
    torch.manual_seed(0)
    pair = GANPair(MLPGenerator(), mlp_discriminator())

    def coverage() -> tuple[float, torch.Tensor]:
        with torch.no_grad():
            s = pair(torch.randn(2000, 4))
        near, which = torch.cdist(s, RING).min(1)
        good = near < 0.25
        return good.float().mean().item(), torch.bincount(which[good], minlength=8)

    before, counts = coverage()
    assert before < 0.05 and (counts < 20).any()  # an untrained generator fails the check
    trainer(steps=1000, task=GAN(d_lr=1e-3), seed=0).fit(pair, ring_batches(0))
    after, counts = coverage()
    assert after > 0.3, after
    assert (counts >= 20).all(), counts.tolist()  # ≥ 1 % of the samples within 5σ of each mode


# ---------------------------------------------------------------- latents


def test_interpolation_linear_and_spherical():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, generator=g), torch.randn(6, generator=g)
    lin = interpolate_latents(z0, z1, 5)
    torch.testing.assert_close(lin[0], z0)
    torch.testing.assert_close(lin[-1], z1)
    torch.testing.assert_close(lin[2], (z0 + z1) / 2)
    z1 = z1 * z0.norm() / z1.norm()  # equal norms: slerp stays on the sphere, equal angles
    sph = interpolate_latents(z0, z1, 5, "spherical")
    torch.testing.assert_close(sph[0], z0)
    torch.testing.assert_close(sph[-1], z1)
    torch.testing.assert_close(sph.norm(dim=1), z0.norm().expand(5))
    cos = torch.nn.functional.cosine_similarity(sph[:-1], sph[1:], dim=1)
    torch.testing.assert_close(cos, cos[:1].expand(4))
    with pytest.raises(InputError, match="method"):
        interpolate_latents(z0, z1, 5, "cubic")
    with pytest.raises(InputError, match="same shape"):
        interpolate_latents(z0, z1[:3], 5)


def test_latent_arithmetic_combines_group_means():
    g = torch.Generator().manual_seed(0)
    glasses_man, man, woman = (torch.randn(3, 5, generator=g) for _ in range(3))
    z = latent_arithmetic([glasses_man, man, woman])
    torch.testing.assert_close(z, glasses_man.mean(0) - man.mean(0) + woman.mean(0))
    torch.testing.assert_close(
        latent_arithmetic([man, woman], [0.5, 0.5]), (man.mean(0) + woman.mean(0)) / 2
    )
    with pytest.raises(InputError, match="coefficient"):
        latent_arithmetic([man, woman])
    with pytest.raises(InputError, match="latent shape"):
        latent_arithmetic([man, woman[:, :3]], [1, 1])
