"""The recurrent attention model (RAM; Mnih, Heess, Graves & Kavukcuoglu 2014, "Recurrent Models
of Visual Attention", sec. 3): an RNN that classifies an image from a few glimpses, choosing where
to look next with a Gaussian location policy trained by REINFORCE.

    model = RecurrentAttention(RAMConfig(in_shape=(1, 60, 60)))
    out = model(images)                    # out.logits N×K, out.locations N×T×2 (in [-1, 1])
    hybrid_loss(out, labels)               # striate.rl.attention_training

Parts, as in the paper's Figure 1:
  * `GlimpseSensor` ρ(x, l): `scales` square patches centred on l, of side g, 2g, 4g, …, each
    average-pooled down to g×g (zeros outside the image), concatenated;
  * `GlimpseNetwork` f_g: h_g = ReLU(W ρ), h_l = ReLU(W l), g = ReLU(W h_g + W h_l);
  * the core f_h: h_t = ReLU(W h_{t−1} + W g_t) (an Elman RNN cell with ReLU);
  * `LocationPolicy` f_l: l_t ~ N(μ_t, σ²I), μ_t = tanh(W h_t), σ fixed; the sample is detached,
    so only REINFORCE trains μ (the glimpse's pixels are not differentiable in l anyway), and
    the network sees it clamped to [−1, 1]. By default the policy reads a detached h_t, so
    REINFORCE trains the location layer only and the core learns from the classification loss
    (as some re-implementations do): the paper trains all of θ with both, but on 60×60
    cluttered MNIST the policy's noisy gradient, 1/σ² ≈ 21 times (l − μ), swamped the core's —
    the mean NLL over steps 501–600 was 2.28 jointly and 1.95 detached (benchmarks/ram.py's data,
    5,000 images, batch 64, Adam 1e-3; about 2.30 at the start).
    `RAMConfig(policy_trains_core=True)` restores the paper's joint gradient;
  * the action network f_a: class logits from the last state, and a baseline b_t = W h_t (on a
    detached h_t, so that fitting it does not shape the core) to reduce REINFORCE's variance.

Locations are (x, y) in [−1, 1]²: (−1, −1) is the image's top-left corner, (1, 1) its
bottom-right, (0, 0) its centre. The first location l_0 comes from the policy on h_0 = 0, i.e. a
learned starting point. Everything is vectorised over the batch; the loop is over glimpses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import boolean, int_sequence, integer, positive_int, positive_number
from striate.errors import ConfigError, InputError

__all__ = [
    "GlimpseNetwork",
    "GlimpseSensor",
    "LocationPolicy",
    "RAMConfig",
    "RAMOutput",
    "RecurrentAttention",
    "gaussian_log_prob",
]


@dataclass
class RAMConfig:
    """The paper's settings for 60×60 cluttered MNIST (sec. 4.1, Table 2): 12×12 glimpses at 3
    scales, 8 glimpses, h_g = h_l = 128, g = 256, a 256-unit ReLU core. The location std is not
    in the paper's text we could check; 0.22 is within the range of public re-implementations.
    `policy_trains_core`: let REINFORCE's gradient reach the core through μ (see the module)."""

    in_shape: tuple[int, int, int] = (1, 60, 60)
    num_classes: int = 10
    glimpse: int = 12
    scales: int = 3
    glimpses: int = 8
    glimpse_hidden: int = 128
    location_hidden: int = 128
    glimpse_features: int = 256
    hidden: int = 256
    std: float = 0.22
    policy_trains_core: bool = False

    def __post_init__(self) -> None:
        owner = "RAMConfig"
        shape = int_sequence(owner, "in_shape", self.in_shape, min_len=3, low=1)
        if len(shape) != 3:
            raise ConfigError(f"{owner}: in_shape must be (channels, height, width), got {shape}")
        self.in_shape = shape
        self.num_classes = integer(owner, "num_classes", self.num_classes, low=2)
        for name in (
            "glimpse",
            "scales",
            "glimpses",
            "glimpse_hidden",
            "location_hidden",
            "glimpse_features",
            "hidden",
        ):
            setattr(self, name, positive_int(owner, name, getattr(self, name)))
        self.std = positive_number(owner, "std", self.std)
        self.policy_trains_core = boolean(owner, "policy_trains_core", self.policy_trains_core)
        if min(shape[1:]) < self.glimpse:
            raise ConfigError(
                f"{owner}: a {shape[1]}×{shape[2]} image is smaller than the {self.glimpse}×"
                f"{self.glimpse} glimpse; use a smaller glimpse or a larger image"
            )


class GlimpseSensor(nn.Module):
    """ρ(x, l): for each scale s = 0 … scales−1, the (g·2^s)² patch centred on l (rounded to
    the pixel grid; zeros outside the image) average-pooled by 2^s to g×g. Returns
    N × scales × C × g × g. One gather per scale for the whole batch."""

    def __init__(self, glimpse: int = 12, scales: int = 3) -> None:
        super().__init__()
        self.glimpse = positive_int("GlimpseSensor", "glimpse", glimpse)
        self.scales = positive_int("GlimpseSensor", "scales", scales)

    @property
    def sizes(self) -> list[int]:
        """The side of each scale's patch, in image pixels."""
        return [self.glimpse * 2**s for s in range(self.scales)]

    def top_left(self, locations: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
        """N×2 integer (x, y) of the top-left pixel of the `size`² patch centred on `locations`
        (may be outside the image)."""
        extent = torch.tensor([width, height], dtype=locations.dtype, device=locations.device)
        centre = (locations.clamp(-1, 1) + 1) / 2 * extent  # pixel i spans [i, i+1)
        return torch.floor(centre - size / 2 + 0.5).long()

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """`images` with a zero border wide enough for the largest patch at any location."""
        border = self.sizes[-1] // 2 + 1
        return F.pad(images, (border, border, border, border))

    def forward(self, images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        return self.read(self.pad(images), locations)

    def read(self, padded: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """The glimpses from images already `pad`ded (pad once, read every glimpse)."""
        n = len(padded)
        border = self.sizes[-1] // 2 + 1
        h, w = padded.shape[2] - 2 * border, padded.shape[3] - 2 * border
        if locations.shape != (n, 2):
            raise InputError(
                f"GlimpseSensor: locations must be N×2 (x, y) for the {n} images, "
                f"got {tuple(locations.shape)}"
            )
        c, width = padded.shape[1], padded.shape[3]
        flat = padded.reshape(n, c, -1)
        out = []
        for size in self.sizes:
            corner = self.top_left(locations, h, w, size) + border
            span = torch.arange(size, device=padded.device)
            rows = (corner[:, 1, None] + span)[:, :, None]  # N×size×1
            cols = (corner[:, 0, None] + span)[:, None, :]  # N×1×size
            index = (rows * width + cols).reshape(n, 1, -1).expand(n, c, -1)
            patch = flat.gather(2, index).reshape(n, c, size, size)
            factor = size // self.glimpse
            out.append(F.avg_pool2d(patch, factor) if factor > 1 else patch)
        return torch.stack(out, 1)


class GlimpseNetwork(nn.Module):
    """f_g(x, l) = ReLU(W₁ h_g + W₂ h_l), h_g = ReLU(W ρ(x, l)), h_l = ReLU(W l) (sec. 4)."""

    def __init__(self, cfg: RAMConfig) -> None:
        super().__init__()
        self.sensor = GlimpseSensor(cfg.glimpse, cfg.scales)
        size = cfg.in_shape[0] * cfg.scales * cfg.glimpse**2
        self.what = nn.Linear(size, cfg.glimpse_hidden)
        self.where = nn.Linear(2, cfg.location_hidden)
        self.join_what = nn.Linear(cfg.glimpse_hidden, cfg.glimpse_features)
        self.join_where = nn.Linear(cfg.location_hidden, cfg.glimpse_features)

    def forward(self, padded: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """g_t from images padded by `sensor.pad` and locations N×2."""
        patches = self.sensor.read(padded, locations).flatten(1)
        h_g = F.relu(self.what(patches))
        h_l = F.relu(self.where(locations))
        return F.relu(self.join_what(h_g) + self.join_where(h_l))


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; mean, std² I), summed over the last dimension."""
    var = std * std
    return (-((x - mean) ** 2) / (2 * var) - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


class LocationPolicy(nn.Module):
    """π(l | h) = N(tanh(W h), σ² I): the mean, a sample (detached: REINFORCE's gradient reaches
    μ through the log-probability only, never through l), and its log-probability. The sample
    is not clamped (the sensor clamps where it looks), so log π is the Gaussian's exactly."""

    def __init__(self, hidden: int, std: float) -> None:
        super().__init__()
        self.mean = nn.Linear(hidden, 2)
        self.std = std

    def forward(
        self, h: torch.Tensor, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = torch.tanh(self.mean(h))
        if not sample:
            return mean, mean.detach(), torch.zeros(len(h), device=h.device)
        drawn = (mean + self.std * torch.randn_like(mean)).detach()
        return mean, drawn, gaussian_log_prob(drawn, mean, self.std)


@dataclass
class RAMOutput:
    """One pass over a batch: class `logits` (N×K, after the last glimpse), the glimpse
    `locations` l_t drawn (N×T×2; the glimpses see them clamped to [−1, 1]), the policy's `means`
    μ_t (N×T×2), the `log_probs` log π(l_t | h_t) (N×T) and the `baselines` b_t (N×T)."""

    logits: torch.Tensor
    locations: torch.Tensor
    means: torch.Tensor
    log_probs: torch.Tensor
    baselines: torch.Tensor


class RecurrentAttention(nn.Module):
    """RAM (Mnih et al. 2014): `forward(images, sample)` runs `cfg.glimpses` glimpses; with
    `sample=False` the policy's means are used (evaluation)."""

    def __init__(self, cfg: RAMConfig | None = None, **overrides) -> None:
        super().__init__()
        if cfg is None:
            cfg = RAMConfig(**overrides)
        elif overrides:
            raise ConfigError("RecurrentAttention: give a RAMConfig or keyword settings, not both")
        self.cfg = cfg
        self.glimpse = GlimpseNetwork(cfg)
        self.core = nn.RNNCell(cfg.glimpse_features, cfg.hidden, nonlinearity="relu")
        self.locator = LocationPolicy(cfg.hidden, cfg.std)
        self.classifier = nn.Linear(cfg.hidden, cfg.num_classes)
        self.baseline = nn.Linear(cfg.hidden, 1)

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """`images` as float N×C×H×W of the configured shape (uint8 scaled to [0, 1])."""
        c, h, w = self.cfg.in_shape
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise InputError(
                f"RecurrentAttention: images must be a tensor N×{c}×{h}×{w}, got "
                f"{tuple(getattr(images, 'shape', ())) or type(images).__name__}"
            )
        if images.shape[1] != c:
            raise InputError(
                f"RecurrentAttention: images have {images.shape[1]} channels, the model takes "
                f"{c}; convert them or build the model with in_shape=({images.shape[1]}, {h}, {w})"
            )
        if min(images.shape[2:]) < self.cfg.glimpse:
            raise InputError(
                f"RecurrentAttention: {images.shape[2]}×{images.shape[3]} images are smaller than "
                f"the {self.cfg.glimpse}×{self.cfg.glimpse} glimpse; pad them or use a smaller "
                "glimpse"
            )
        return images.float() / 255 if images.dtype == torch.uint8 else images.float()

    def forward(self, images: torch.Tensor, sample: bool = True) -> RAMOutput:
        x = self.check_images(images)
        padded = self.glimpse.sensor.pad(x)
        h = x.new_zeros(len(x), self.cfg.hidden)
        means, locations, log_probs, baselines = [], [], [], []
        for _ in range(self.cfg.glimpses):
            state = h if self.cfg.policy_trains_core else h.detach()
            mean, location, log_prob = self.locator(state, sample)
            baselines.append(self.baseline(h.detach()).squeeze(1))
            h = self.core(self.glimpse(padded, location.clamp(-1, 1)), h)
            means.append(mean)
            locations.append(location)
            log_probs.append(log_prob)
        return RAMOutput(
            logits=self.classifier(h),
            locations=torch.stack(locations, 1),
            means=torch.stack(means, 1),
            log_probs=torch.stack(log_probs, 1),
            baselines=torch.stack(baselines, 1),
        )
