"""Training the recurrent attention model with the hybrid loss of Mnih et al. 2014 (sec. 3.2), and
a CNN given the whole image as the comparison.

    model = RecurrentAttention(RAMConfig(in_shape=(1, 60, 60)))
    history = fit(model, images, labels, FitConfig(steps=2000))
    accuracy(model, test_images, test_labels)
    fit(whole_image_cnn((1, 60, 60)), images, labels, FitConfig(steps=2000))   # the comparison

The hybrid loss: the classifier learns by cross-entropy (supervised, as the paper does for the
action network); the location policy by REINFORCE with the reward R = 1 when the class after the
last glimpse is right, 0 otherwise (the same return for every glimpse: there is no reward before
the end and no discount), minus a learned baseline b_t fitted to R by squared error:
    loss = NLL − Σ_t (R − b_t) log π(l_t | h_t) + Σ_t (R − b_t)²,
averaged over the batch. The REINFORCE term trains the location layer (and the core too with
`RAMConfig(policy_trains_core=True)`, as in the paper). The paper trains with momentum SGD; here
Adam, constant learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import positive_int, positive_number
from striate.errors import InputError
from striate.models.stn import MnistCNN
from striate.progress import progress_bar
from striate.rl.attention_model import RAMOutput, RecurrentAttention

__all__ = [
    "FitConfig",
    "accuracy",
    "baseline_loss",
    "fit",
    "hybrid_loss",
    "predict",
    "reinforce_loss",
    "reward",
    "whole_image_cnn",
]


@dataclass
class FitConfig:
    """Minibatch training: `steps` updates of `batch` images drawn without replacement per epoch
    (seeded), Adam at `lr`; `baseline_weight` scales the baseline's squared error."""

    steps: int = 1000
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    baseline_weight: float = 1.0

    def __post_init__(self) -> None:
        owner = "FitConfig"
        self.steps = positive_int(owner, "steps", self.steps)
        self.batch = positive_int(owner, "batch", self.batch)
        self.lr = positive_number(owner, "lr", self.lr)
        self.baseline_weight = positive_number(owner, "baseline_weight", self.baseline_weight)


def reward(out: RAMOutput, labels: torch.Tensor) -> torch.Tensor:
    """R: 1 where the class after the last glimpse is right, else 0 (N, no gradient)."""
    return (out.logits.detach().argmax(1) == labels).float()


def reinforce_loss(out: RAMOutput, rewards: torch.Tensor) -> torch.Tensor:
    """−Σ_t (R − b_t) log π(l_t | h_t), batch mean (Williams 1992; the baseline held fixed):
    its gradient in μ_t is −(R − b_t)(l_t − μ_t)/σ² per image."""
    advantage = rewards[:, None] - out.baselines.detach()
    return -(advantage * out.log_probs).sum(1).mean()


def baseline_loss(out: RAMOutput, rewards: torch.Tensor) -> torch.Tensor:
    """Σ_t (R − b_t)², batch mean: fits b_t to the expected reward."""
    return ((rewards[:, None] - out.baselines) ** 2).sum(1).mean()


def hybrid_loss(
    out: RAMOutput, labels: torch.Tensor, baseline_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """NLL + REINFORCE + baseline_weight · baseline error, and its parts (floats): ``nll``,
    ``reinforce``, ``baseline``, ``reward`` (the batch's accuracy with sampled glimpses)."""
    rewards = reward(out, labels)
    nll = F.cross_entropy(out.logits, labels)
    reinforce = reinforce_loss(out, rewards)
    baseline = baseline_loss(out, rewards)
    loss = nll + reinforce + baseline_weight * baseline
    parts = {
        "nll": float(nll.detach()),
        "reinforce": float(reinforce.detach()),
        "baseline": float(baseline.detach()),
        "reward": float(rewards.mean()),
    }
    return loss, parts


def whole_image_cnn(
    in_shape: tuple[int, int, int] = (1, 60, 60), num_classes: int = 10
) -> nn.Module:
    """The comparison: a CNN that sees the whole image (the STN paper's baseline CNN, conv 9×9
    (32) - pool - conv 7×7 (32) - pool - FC; Mnih et al.'s own 'Convolutional, 2 layers' is not
    specified closely enough to rebuild)."""
    return MnistCNN(in_shape, num_classes)


def _check_data(images: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise InputError(
            f"fit: images must be a tensor N×C×H×W, got {tuple(getattr(images, 'shape', ()))}"
        )
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),):
        raise InputError(
            f"fit: labels must be a 1-D tensor of {len(images)} class indices, got "
            f"{tuple(getattr(labels, 'shape', ()))}"
        )


def _as_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    if isinstance(model, RecurrentAttention):
        return images  # checks and scales uint8 itself
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: FitConfig | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train `model` (a RecurrentAttention with the hybrid loss, anything else with
    cross-entropy) in place; one row per step: ``step``, ``loss``, ``acc`` (the batch's) and, for
    RAM, the hybrid loss's parts."""
    cfg = cfg or FitConfig()
    _check_data(images, labels)
    labels = labels.long()
    device = next(model.parameters()).device
    torch.manual_seed(cfg.seed)
    order = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ram = isinstance(model, RecurrentAttention)
    model.train()
    history: list[dict[str, float]] = []
    perm, at = torch.randperm(len(images), generator=order), 0
    label = "RAM" if ram else type(model).__name__
    with progress_bar(f"training {label}", cfg.steps, "steps", enabled=progress) as advance:
        for step in range(1, cfg.steps + 1):
            if at + cfg.batch > len(perm):
                perm, at = torch.randperm(len(images), generator=order), 0
            idx = perm[at : at + cfg.batch]
            at += cfg.batch
            x, y = _as_input(model, images[idx]).to(device), labels[idx].to(device)
            if ram:
                out = model(x, sample=True)
                loss, parts = hybrid_loss(out, y, cfg.baseline_weight)
                logits = out.logits
            else:
                logits = model(x)
                loss, parts = F.cross_entropy(logits, y), {}
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc = float((logits.detach().argmax(1) == y).float().mean())
            history.append({"step": step, "loss": float(loss.detach()), "acc": acc, **parts})
            advance(1)
    return history


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Class indices for `images`; RAM looks at its policy's mean locations (no sampling)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch):
        x = _as_input(model, images[start : start + batch]).to(device)
        logits = (
            model(x, sample=False).logits if isinstance(model, RecurrentAttention) else model(x)
        )
        out.append(logits.argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of `images` classified as `labels` (see `predict`)."""
    _check_data(images, labels)
    return float((predict(model, images) == labels.long()).float().mean())
