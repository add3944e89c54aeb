"""Generative adversarial networks (Goodfellow et al. 2014) as a Task that owns its optimisation.

    pair = GANPair(DCGANGenerator(channels=1, size=28), DCGANDiscriminator(channels=1, size=28))
    task = GAN(generator_loss="non_saturating", k=1)          # the discriminator's Adam inside
    Trainer(epochs=5, task=task, opt="adam", lr=2e-4, momentum=0.5).fit(pair, train)

Each Trainer step takes `k` discriminator steps (the task's own Adam, lr 2e-4 and β₁ 0.5 by
default, DCGAN's settings) and then one generator step through the Trainer's own optimiser and
`closure_step`, so precision, schedules, callbacks and divergence handling stay the engine's. The
discriminator is frozen during the generator step, so the Trainer's optimiser may hold the whole
pair: the discriminator's parameters get no gradient there and are left alone.

The Trainer's batch holds the k real minibatches of Goodfellow's Algorithm 1: it is cut into k
parts of m = B/k images, one per discriminator step (each with m fresh noise samples), and the
generator step draws m noise samples; an epoch shows each real image to the discriminator once.
So a loader of batch k·m gives the paper's minibatch m.

Images: the generator's output range (DCGAN: Tanh, [-1, 1]) must match the real batches', so the
loader must scale the data the same way (e.g. `x * 2 - 1` for pixels in [0, 1]).

The discriminator returns logits a = logit D(·); the losses are written on them with softplus,
using log σ(a) = −softplus(−a) and log(1 − σ(a)) = −softplus(a), which stay finite where
log(sigmoid(a)) underflows to −inf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import one_of, positive_int
from striate.engine import distributed
from striate.engine.divergence import TrainingDiverged, diagnose
from striate.engine.step import optimizer_step
from striate.engine.task import TASKS, Batch, Step, Task, stack_stats
from striate.errors import ConfigError, InputError

if TYPE_CHECKING:
    from striate.engine.trainer import Trainer

GENERATOR_LOSSES = ("non_saturating", "minimax")
ADAM_LR = 2e-4
ADAM_BETAS = (0.5, 0.999)  # Radford et al. 2016, section 4: β₁ = 0.9 oscillated, 0.5 was stable


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−[log D(x) + log(1 − D(G(z)))], each term averaged over its batch (Goodfellow et al.
    2014, Algorithm 1, negated to be minimised): softplus(−a_real) + softplus(a_fake)."""
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """log(1 − D(G(z))), the generator's side of the minimax game; its gradient vanishes when
    the discriminator confidently rejects the fakes (early in training)."""
    return -F.softplus(fake_logits.float()).mean()


def non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """−log D(G(z)): the slides' "gradient ascent on log D(G(z))" (Goodfellow et al. 2014,
    section 3), strong gradients where the minimax loss is flat."""
    return F.softplus(-fake_logits.float()).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator loss named `kind` ("non_saturating" or "minimax")."""
    kind = one_of("generator_loss", "kind", kind, GENERATOR_LOSSES)
    if kind == "minimax":
        return minimax_generator_loss(fake_logits)
    return non_saturating_generator_loss(fake_logits)


class GANPair(nn.Module):
    """The model the Trainer trains: a generator (with a `latent_dim` attribute, mapping
    N×latent_dim noise to samples) and a discriminator (samples to N logits), so checkpoints
    and model files hold both. Calling it samples: `pair(z)` is `generator(z)`."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        latent = getattr(generator, "latent_dim", None)
        if not isinstance(latent, int) or latent < 1:
            raise ConfigError(
                "GANPair: the generator must have an integer attribute latent_dim (the size of "
                f"its noise input), got {latent!r}; set it on the module"
            )
        self.generator, self.discriminator = generator, discriminator

    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def noise(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """n standard normal latents (the prior p(z) of both papers' experiments)."""
        return torch.randn(n, self.latent_dim, device=device)


def _pair(model: nn.Module) -> GANPair:
    model = getattr(model, "module", model)  # a DDP wrapper holds the pair as .module
    if not isinstance(model, GANPair):
        raise ConfigError(
            f"GAN: the model must be a GANPair(generator, discriminator), got "
            f"{type(model).__name__}; wrap the two networks in GANPair"
        )
    return model


def _logits(discriminator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = discriminator(x)
    if out.numel() != len(x):
        raise ConfigError(
            f"GAN: the discriminator must return one logit per sample ({len(x)}), got shape "
            f"{tuple(out.shape)}"
        )
    return out.reshape(len(x)).float()


class GAN(Task):
    """Adversarial training; see the module docstring. Running statistics: the discriminator
    loss, the generator loss, d_real = mean D(x) and d_fake = mean D(G(z)) (probabilities)."""

    name = "gan"
    running_stats = ("d_loss", "g_loss", "d_real", "d_fake", "n")
    metrics = ("d_loss", "g_loss", "d_real", "d_fake")
    monitor = "val_g_loss"  # a GAN's losses say little about its samples; keep-best is nominal

    def __init__(
        self,
        generator_loss: str = "non_saturating",
        k: int = 1,
        d_lr: float = ADAM_LR,
        d_betas: tuple[float, float] = ADAM_BETAS,
    ) -> None:
        self.generator_loss = one_of("GAN", "generator_loss", generator_loss, GENERATOR_LOSSES)
        self.k = positive_int("GAN", "k", k)
        if not (isinstance(d_lr, (int, float)) and math.isfinite(d_lr) and d_lr > 0):
            raise ConfigError(f"GAN: d_lr must be a positive number, got {d_lr!r}")
        self.d_lr, self.d_betas = float(d_lr), tuple(float(b) for b in d_betas)
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.d_steps = 0  # discriminator steps taken (k per generator step)
        self._d_stats: torch.Tensor | None = None  # (d_loss, d_real) sums of the last D step

    def setup(self, model: nn.Module, trainer: Trainer) -> None:
        """Check the model and make the discriminator's Adam."""
        pair = _pair(model)
        if distributed.is_distributed():
            raise ConfigError(
                "GAN: training under torchrun is not supported yet (the discriminator's "
                "gradients would not be averaged across processes); run it in one process"
            )
        self.d_optimizer = torch.optim.Adam(
            pair.discriminator.parameters(), lr=self.d_lr, betas=self.d_betas
        )
        self.d_steps = 0

    def _fakes(self, pair: GANPair, n: int, device: torch.device) -> torch.Tensor:
        return pair.generator(pair.noise(n, device))

    def discriminator_step(self, trainer: Trainer, batch: Batch) -> float:
        """One step of the discriminator's Adam on −[log D(x) + log(1 − D(G(z)))]."""
        if self.d_optimizer is None:
            raise ConfigError("GAN: setup has not run; train the task through Trainer.fit")
        pair = _pair(trainer.model)
        x = batch[0]
        n = len(x)
        sums: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            self.d_optimizer.zero_grad(set_to_none=True)
            with trainer.precision.autocast():
                with torch.no_grad():
                    fake = self._fakes(pair, n, x.device)
                real_logits = _logits(pair.discriminator, x)
                fake_logits = _logits(pair.discriminator, fake)
            loss = discriminator_loss(real_logits, fake_logits)
            scaler = trainer.scaler
            (scaler.scale(loss) if scaler is not None else loss).backward()
            d_real = torch.sigmoid(real_logits.detach()).sum()
            sums["stats"] = stack_stats(loss.detach() * n, d_real)
            return loss

        value = optimizer_step(self.d_optimizer, closure, scaler=trainer.scaler)
        if not math.isfinite(value):
            raise TrainingDiverged(diagnose(trainer, value))
        self.d_steps += 1
        self._d_stats = sums["stats"]
        return value

    def train_step(self, trainer: Trainer, batch: Batch) -> float:
        """k discriminator steps, each on its own part of the batch, then one generator step by
        the Trainer's optimiser with as many noise samples as the last part."""
        parts = self.real_minibatches(batch)
        for part in parts:
            self.discriminator_step(trainer, part)
        try:
            return trainer.closure_step([parts[-1]])
        finally:
            self._d_stats = None

    def real_minibatches(self, batch: Batch) -> list[Batch]:
        """The batch's images cut into k parts of (nearly) equal size, in order."""
        x = batch[0]
        if len(x) < self.k:
            raise ConfigError(
                f"GAN: a batch of {len(x)} images cannot give each of the k={self.k} "
                "discriminator steps its own real minibatch; use batches of at least k (k × m)"
            )
        return [(part,) for part in x.tensor_split(self.k)]

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        """The generator step's loss, with the discriminator frozen (no gradient reaches it)."""
        pair = _pair(model)
        x = batch[0]
        n = len(x)
        d_params = [p for p in pair.discriminator.parameters() if p.requires_grad]
        for p in d_params:
            p.requires_grad_(False)
        try:
            fake_logits = _logits(pair.discriminator, self._fakes(pair, n, x.device))
        finally:
            for p in d_params:
                p.requires_grad_(True)
        loss = generator_loss(fake_logits, self.generator_loss)
        d_stats = self._d_stats
        if d_stats is None:  # called outside train_step: score the discriminator here
            with torch.no_grad():
                real_logits = _logits(pair.discriminator, x)
                d_loss = discriminator_loss(real_logits, fake_logits.detach())
                d_stats = stack_stats(d_loss * n, torch.sigmoid(real_logits).sum())
        d_fake = torch.sigmoid(fake_logits.detach()).sum()
        stats = stack_stats(d_stats[0], loss.detach() * n, d_stats[1], d_fake, n)
        return Step(loss, stats)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """The discriminator's probability that each sample in `x` is real."""
        return torch.sigmoid(_logits(_pair(model).discriminator, x))

    def state_dict(self) -> dict[str, Any]:
        """The discriminator optimiser's state and the count of its steps."""
        state: dict[str, Any] = {"d_steps": self.d_steps}
        if self.d_optimizer is not None:
            state["d_optimizer"] = self.d_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_steps = int(state.get("d_steps", 0))
        if "d_optimizer" in state:
            if self.d_optimizer is None:
                raise ConfigError("GAN: load_state_dict needs setup first (Trainer.fit does it)")
            self.d_optimizer.load_state_dict(state["d_optimizer"])


TASKS.add("gan", GAN)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents) between two latents
    for each t in `t`; linear where the two are (anti)parallel."""
    a, b = z0.flatten().double(), z1.flatten().double()
    cos = (a @ b / (a.norm() * b.norm()).clamp_min(1e-12)).clamp(-1, 1)
    omega = torch.arccos(cos)
    t = t.double()[:, None]
    if torch.sin(omega).abs() < 1e-6:
        out = (1 - t) * a + t * b
    else:
        out = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return out.to(z0.dtype).reshape(len(t), *z0.shape)


def interpolate_latents(
    z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str = "linear"
) -> torch.Tensor:
    """`steps` latents from z0 to z1 (both included), shaped steps × z0.shape."""
    steps = positive_int("interpolate", "steps", steps, error=InputError)
    method = one_of("interpolate", "method", method, ("linear", "spherical"), error=InputError)
    if z0.shape != z1.shape:
        raise InputError(
            f"interpolate: z0 and z1 must have the same shape, got {tuple(z0.shape)} and "
            f"{tuple(z1.shape)}"
        )
    t = torch.linspace(0, 1, steps, device=z0.device)
    if method == "spherical":
        return slerp(z0, z1, t)
    t = t.reshape(steps, *([1] * z0.dim())).to(z0.dtype)
    return (1 - t) * z0 + t * z1


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The generator's samples for latents `z`, in eval mode (batch norm's running statistics),
    its training mode restored after."""
    was = generator.training
    generator.eval()
    try:
        return generator(z)
    finally:
        generator.train(was)


def latent_arithmetic(
    z_groups: Sequence[torch.Tensor], coefficients: Sequence[float] = (1.0, -1.0, 1.0)
) -> torch.Tensor:
    """Σ cᵢ · mean(groupᵢ): vector arithmetic on averaged latents (Radford et al. 2016, section
    6.3: "smiling woman − neutral woman + neutral man", each concept averaged over three samples
    because single latents were unstable). Each group is N × latent_dim; returns one latent."""
    if len(z_groups) == 0 or len(z_groups) != len(coefficients):
        raise InputError(
            f"latent_arithmetic: give one coefficient per group, got {len(z_groups)} groups and "
            f"{len(coefficients)} coefficients"
        )
    shape = z_groups[0].shape[1:]
    for g in z_groups:
        if g.dim() < 2 or len(g) == 0 or g.shape[1:] != shape:
            raise InputError(
                "latent_arithmetic: each group must be a non-empty N × latent tensor of one "
                f"latent shape, got shapes {[tuple(x.shape) for x in z_groups]}"
            )
    return sum(c * g.mean(0) for c, g in zip(coefficients, z_groups, strict=True))
