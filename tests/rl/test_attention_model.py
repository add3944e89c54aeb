"""The recurrent attention model (Mnih et al. 2014): the glimpse sensor against slices of the padded
image, the Gaussian policy against torch.distributions, the REINFORCE gradient against the hand
formula, learning on a toy problem, the glimpse figure on real cluttered MNIST, and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch.distributions import Normal

from striate.errors import ConfigError, InputError
from striate.rl.attention_figures import glimpse_figure
from striate.rl.attention_model import (
    GlimpseSensor,
    LocationPolicy,
    RAMConfig,
    RecurrentAttention,
    gaussian_log_prob,
)
from striate.rl.attention_training import (
    FitConfig,
    accuracy,
    fit,
    hybrid_loss,
    reinforce_loss,
    reward,
)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _reference_glimpse(image: torch.Tensor, cx: int, cy: int, glimpse: int, scales: int):
    """Scale s: the (g·2^s)² patch with its centre at pixel edge (cx, cy), sliced from the image
    zero-padded by the largest side, then average-pooled by 2^s (the paper's retina)."""
    pad = glimpse * 2 ** (scales - 1)
    padded = F.pad(image, (pad, pad, pad, pad))
    out = []
    for s in range(scales):
        size = glimpse * 2**s
        top, left = cy - size // 2 + pad, cx - size // 2 + pad
        patch = padded[:, top : top + size, left : left + size]
        out.append(F.avg_pool2d(patch[None], 2**s)[0])
    return torch.stack(out)


def test_glimpse_sensor_reads_the_padded_crops_pooled_per_scale():
    torch.manual_seed(0)
    n, c, h, w, g, scales = 4, 2, 30, 40, 4, 3
    images = torch.rand(n, c, h, w)
    # centres on pixel edges (x, y): inside, at a corner (¾ of the patch outside), at the far edge
    centres = torch.tensor([[20, 15], [0, 0], [40, 30], [7, 26]])
    locations = 2 * centres.float() / torch.tensor([w, h]) - 1
    got = GlimpseSensor(g, scales)(images, locations)
    assert got.shape == (n, scales, c, g, g)
    for i, (cx, cy) in enumerate(centres.tolist()):
        torch.testing.assert_close(got[i], _reference_glimpse(images[i], cx, cy, g, scales))
    # the finest scale at the centre is the image's own pixels, untouched
    assert torch.equal(got[0, 0], images[0, :, 13:17, 18:22])
    # at the top-left corner three quarters of every scale lie outside: zeros
    assert torch.equal(got[1, 0, :, :2, :], torch.zeros(c, 2, g))
    assert torch.equal(got[1, 0, :, 2:, 2:], images[1, :, :2, :2])


def test_gaussian_log_prob_and_the_policy_match_torch_normal():
    torch.manual_seed(1)
    x, mean = torch.randn(5, 3, 2), torch.randn(5, 3, 2).tanh()
    for std in (0.1, 0.22, 1.0):
        expected = Normal(mean, std).log_prob(x).sum(-1)
        torch.testing.assert_close(gaussian_log_prob(x, mean, std), expected)
    policy = LocationPolicy(hidden=6, std=0.22)
    mu, sample, log_prob = policy(torch.randn(7, 6))
    assert not sample.requires_grad  # the sample carries no gradient into the core
    torch.testing.assert_close(log_prob, Normal(mu, 0.22).log_prob(sample).sum(-1))
    mu, sample, _ = policy(torch.randn(7, 6), sample=False)
    assert torch.equal(mu, sample)


def _tiny(**kw) -> RecurrentAttention:
    settings = dict(
        in_shape=(1, 16, 16),
        num_classes=3,
        glimpse=4,
        scales=2,
        glimpses=3,
        glimpse_hidden=8,
        location_hidden=8,
        glimpse_features=12,
        hidden=10,
        std=0.2,
    )
    return RecurrentAttention(RAMConfig(**{**settings, **kw}))


def test_reinforce_gradient_in_the_location_mean_is_the_hand_formula():
    torch.manual_seed(2)
    model = _tiny()
    means: list[torch.Tensor] = []

    def keep(module, inputs, output):
        output[0].retain_grad()
        means.append(output[0])

    model.locator.register_forward_hook(keep)
    x, y = torch.rand(6, 1, 16, 16), torch.randint(0, 3, (6,))
    out = model(x)
    assert not out.locations.requires_grad
    loss, _ = hybrid_loss(out, y)
    loss.backward()
    R, b, sigma2 = reward(out, y), out.baselines.detach(), 0.2**2
    mu = torch.stack([m.detach() for m in means], 1)
    # d(loss)/dμ_t = −(1/N)(R − b_t)(l_t − μ_t)/σ²: the classification and baseline terms add
    # nothing, as l_t is detached and b_t sees a detached state
    hand = -(R[:, None, None] - b[..., None]) * (out.locations - mu) / sigma2 / len(x)
    got = torch.stack([m.grad for m in means], 1)
    torch.testing.assert_close(got, hand)
    # summed over steps through tanh: the locator's bias
    bias_hand = (hand * (1 - mu**2)).sum((0, 1))
    torch.testing.assert_close(model.locator.mean.bias.grad, bias_hand)

    # the terms apart: NLL reaches the classifier and core, never the location policy;
    # REINFORCE never reaches the classifier, nor (by default) the core
    model.zero_grad(set_to_none=True)
    out = model(x)
    F.cross_entropy(out.logits, y).backward()
    assert model.locator.mean.weight.grad is None and model.baseline.weight.grad is None
    assert model.core.weight_hh.grad is not None
    for joint in (False, True):
        model = _tiny(policy_trains_core=joint)
        out = model(x)
        reinforce_loss(out, reward(out, y)).backward()
        assert model.classifier.weight.grad is None
        assert model.locator.mean.weight.grad.abs().sum() > 0
        assert (model.core.weight_ih.grad is not None) == joint


def _squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """24×24 black images with one bright square anywhere: class 0 is 2×2, class 1 is 4×4."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    side = 2 + 2 * labels
    corner = torch.randint(0, 24 - 4 + 1, (n, 2), generator=g)
    ys, xs = torch.arange(24)[None, :, None], torch.arange(24)[None, None, :]
    inside = (
        (ys >= corner[:, 1, None, None])
        & (ys < (corner[:, 1] + side)[:, None, None])
        & (xs >= corner[:, 0, None, None])
        & (xs < (corner[:, 0] + side)[:, None, None])
    )
    return (inside[:, None] * 255).to(torch.uint8), labels


def test_learns_the_size_of_a_square_from_glimpses():
    torch.manual_seed(0)
    train_x, train_y = _squares(512, seed=1)
    test_x, test_y = _squares(300, seed=2)
    model = _tiny(
        in_shape=(1, 24, 24),
        num_classes=2,
        glimpse=6,
        scales=3,
        glimpses=3,
        hidden=32,
        glimpse_hidden=32,
        location_hidden=16,
        glimpse_features=32,
    )
    before = accuracy(model, test_x, test_y)
    history = fit(model, train_x, train_y, FitConfig(steps=150, batch=32, lr=3e-3), progress=False)
    learned = accuracy(model, test_x, test_y)
    assert learned > 0.85 and learned > before + 0.2, (before, learned)
    assert {"nll", "reinforce", "baseline", "reward"} <= history[-1].keys()


def test_glimpse_figure_on_cluttered_mnist(shared_data):
    from striate import load_dataset
    from striate.spatial.cluttered import cluttered

    digits = load_dataset("mnist", "test", root=shared_data, progress=False)[:5]
    images, _ = cluttered(digits.images, seed=0, distractors=4, patch=8)
    model = RecurrentAttention(RAMConfig(glimpses=4))
    out = model(images, sample=False)
    fig = glimpse_figure(
        images,
        out.locations,
        model.glimpse.sensor.sizes,
        digits.labels,
        out.logits.argmax(1),
        columns=3,
        title="paths",
    )
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 6 and not axes[5].axison
    # per image: a square per glimpse and the two coarser scales of the last one
    assert sum(isinstance(p, Rectangle) for p in axes[0].patches) == 4 + 2
    path = axes[0].lines[0].get_xydata()
    expected = (out.locations[0].detach().clamp(-1, 1) + 1) / 2 * 60 - 0.5
    torch.testing.assert_close(torch.as_tensor(path, dtype=torch.float32), expected)


def test_bad_input_is_one_line():
    model = _tiny()
    cases = [
        (InputError, lambda: model(torch.rand(2, 1, 3, 3)), "smaller than the 4×4 glimpse"),
        (InputError, lambda: model(torch.rand(2, 3, 16, 16)), "3 channels, the model takes 1"),
        (InputError, lambda: model(torch.rand(16, 16)), "N×1×16×16"),
        (ConfigError, lambda: RAMConfig(in_shape=(1, 8, 8), glimpse=12), "smaller than the"),
        (ConfigError, lambda: RAMConfig(std=0), "std"),
        (InputError, lambda: fit(model, torch.rand(4, 1, 16, 16), torch.zeros(3)), "labels"),
    ]
    for error, call, words in cases:
        with pytest.raises(error) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value)
