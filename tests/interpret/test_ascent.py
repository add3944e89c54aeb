"""Class and unit visualisation by gradient ascent, and DeepDream (striate.interpret.ascent).

References: the class score and layer activations recomputed here, scipy's Gaussian filter for
the blur, the roll of a linear model's weights for the jitter, argsort for the pixel clipping.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from striate import models
from striate.errors import ConfigError, InputError
from striate.interpret.ascent import class_visualization, deep_dream, unit_visualization
from tests.interpret.conftest import synthetic


def start(model: nn.Module, **kw) -> torch.Tensor:
    """The image the ascent starts from: no step, no blur, no jitter."""
    return class_visualization(
        model, 0, steps=1, lr=0, blur_every=0, jitter=0, progress=False, **kw
    )


def linear(c: int = 1, h: int = 8, w: int = 8, k: int = 3) -> nn.Module:
    """A linear classifier on the pixels: its score's gradient is the class's weight map."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k)).double()


# --- class visualisation ---------------------------------------------------------------------


@pytest.mark.parametrize("target", [0, 1, 2, 3])
def test_class_visualization_raises_the_target_score_most(trained, target):
    x0 = start(trained)
    x = class_visualization(trained, target, steps=30, lr=0.02, progress=False)
    with torch.no_grad():
        gain = (trained(x) - trained(x0))[0]
    others = torch.cat([gain[:target], gain[target + 1 :]])
    assert gain[target] > 10  # the scores start near 0 (measured gains 17–55)
    assert gain[target] > others.max() + 1
    assert x.shape == (1, 3, 32, 32) and x.min() >= 0 and x.max() <= 1


def test_class_visualization_by_name_and_one_image_per_class(trained):
    one = class_visualization(trained, "vertical", steps=5, progress=False)
    both = class_visualization(trained, ["vertical", 0], steps=5, progress=False)
    assert both.shape == (2, 3, 32, 32)
    torch.testing.assert_close(both[:1], one)  # the images of a batch do not interact
    assert not torch.equal(both[0], both[1])


def test_class_visualization_is_seeded(trained):
    a = class_visualization(trained, 2, steps=5, seed=3, progress=False)
    b = class_visualization(trained, 2, steps=5, seed=3, progress=False)
    c = class_visualization(trained, 2, steps=5, seed=4, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_l2_keeps_the_image_near_the_centre(trained):
    loose = class_visualization(trained, 1, steps=30, lr=0.02, l2=0, progress=False)
    tight = class_visualization(trained, 1, steps=30, lr=0.02, l2=1.0, progress=False)
    mean = trained.mean
    assert (tight - mean).norm() < 0.5 * (loose - mean).norm()


def test_jitter_is_undone_after_each_step(trained):
    still = start(trained)
    jittered = class_visualization(
        trained, 0, steps=5, lr=0, blur_every=0, jitter=8, progress=False
    )
    assert torch.equal(jittered, still)


def test_jitter_moves_the_gradient_with_the_pixels():
    """One step on a linear model adds the class's weight map rolled back by the jitter's shift:
    W_c / mean|W_c| without jitter, roll(W_c, −s) / mean|W_c| for some |s| ≤ J with it."""
    model = linear()
    weights = model[1].weight[2].detach().reshape(1, 1, 8, 8)
    options = {
        "shape": (1, 8, 8),
        "steps": 1,
        "lr": 1.0,
        "l2": 0,
        "blur_every": 0,
        "pixel_range": None,
        "progress": False,
        "seed": 5,
    }
    x0 = class_visualization(model, 2, jitter=0, **{**options, "lr": 0})
    step = class_visualization(model, 2, jitter=0, **options) - x0
    torch.testing.assert_close(step, weights / weights.abs().mean())
    moved = class_visualization(model, 2, jitter=3, **options) - x0
    shifts = [
        (dy, dx)
        for dy in range(-3, 4)
        for dx in range(-3, 4)
        if torch.allclose(moved, weights.roll((-dy, -dx), (2, 3)) / weights.abs().mean())
    ]
    assert len(shifts) == 1 and shifts[0] != (0, 0)


def test_blur_is_a_gaussian_filter_and_removes_high_frequencies(trained):
    x0 = start(trained)
    blurred = class_visualization(
        trained, 0, steps=1, lr=0, blur_every=1, blur_sigma=1.0, jitter=0, progress=False
    )
    reference = ndimage.gaussian_filter(
        x0.double().numpy(), sigma=(0, 0, 1.0, 1.0), mode="nearest", truncate=3.0
    )
    np.testing.assert_allclose(blurred.numpy(), reference, atol=1e-6)

    def high_frequency_energy(x: torch.Tensor) -> float:
        spectrum = torch.fft.fftshift(torch.fft.fft2(x - x.mean()), dim=(-2, -1)).abs() ** 2
        keep = torch.ones(32, 32, dtype=torch.bool)
        keep[8:24, 8:24] = False  # the outer band: frequencies above a quarter of the sampling
        return spectrum[..., keep].sum().item()

    assert high_frequency_energy(blurred) < 0.1 * high_frequency_energy(x0)


def test_blur_every_n_steps_only(trained):
    kw = {"lr": 0, "jitter": 0, "blur_sigma": 1.0, "progress": False}
    x0 = start(trained)
    assert torch.equal(class_visualization(trained, 0, steps=2, blur_every=3, **kw), x0)
    assert not torch.equal(class_visualization(trained, 0, steps=3, blur_every=3, **kw), x0)


def test_clip_small_pixels_resets_the_pixels_of_smallest_norm(trained):
    x0 = start(trained)
    x = class_visualization(
        trained, 0, steps=1, lr=0, blur_every=0, jitter=0, clip_small_pixels=0.25, progress=False
    )
    norms = (x0 - trained.mean).norm(dim=1).flatten()
    smallest = norms.argsort()[: 32 * 32 // 4]
    reset = (x == trained.mean.expand_as(x)).all(1).flatten()
    assert reset.sum() == len(smallest) and reset[smallest].all()
    assert torch.equal(x.flatten(2)[..., ~reset], x0.flatten(2)[..., ~reset])


def test_clip_small_contributions_uses_pixel_times_gradient():
    """Yosinski et al.'s contribution |Σ_c x_c ∂S/∂x_c|: for a linear model, |x · W_c|."""
    model = linear(c=2)
    x0 = class_visualization(
        model,
        1,
        shape=(2, 8, 8),
        steps=1,
        lr=0,
        blur_every=0,
        jitter=0,
        pixel_range=None,
        progress=False,
    )
    x = class_visualization(
        model,
        1,
        shape=(2, 8, 8),
        steps=1,
        lr=0,
        blur_every=0,
        jitter=0,
        pixel_range=None,
        clip_small_contributions=0.5,
        progress=False,
    )
    w = model[1].weight[1].detach().reshape(1, 2, 8, 8)
    contribution = (x0 * w).sum(1).abs().flatten()
    smallest = contribution.argsort()[:32]
    reset = (x == 0).all(1).flatten()
    assert reset.sum() == 32 and reset[smallest].all()


# --- unit visualisation ----------------------------------------------------------------------


def test_unit_visualization_raises_its_own_channel(trained):
    """Each image made for a channel activates that channel more than the start image does, and
    more than the images made for the other channels do (channels 0, 5, 11 of the last ReLU)."""

    def channels(x: torch.Tensor) -> torch.Tensor:
        out = []
        hook = trained.net.features[6].register_forward_hook(lambda m, i, o: out.append(o))
        with torch.no_grad():
            trained(x)
        hook.remove()
        return out[0].mean((0, 2, 3))

    chosen = [0, 5, 11]
    x0 = channels(start(trained))[chosen]
    made = torch.stack(
        [
            channels(
                unit_visualization(trained, "features.6", c, steps=20, lr=0.02, progress=False)
            )[chosen]
            for c in chosen
        ]
    )
    assert (made.diagonal() > x0 + 0.3).all(), (made, x0)
    assert (made.argmax(0) == torch.arange(3)).all(), made


def test_unit_visualization_stops_at_the_layer():
    """The classifier of convnet_small takes 32×32 only; the layer before it takes any size."""
    net = models.create("convnet_small", num_classes=10, in_shape=(3, 32, 32))
    x = unit_visualization(net, "features.2", 3, shape=(3, 20, 24), steps=2, progress=False)
    assert x.shape == (1, 3, 20, 24)


# --- DeepDream -------------------------------------------------------------------------------


def test_deep_dream_amplifies_the_layer_and_keeps_pixels_in_range(trained):
    x, _ = synthetic(2, torch.Generator().manual_seed(3))

    def energy(images: torch.Tensor) -> torch.Tensor:
        out = []
        hook = trained.net.features[2].register_forward_hook(lambda m, i, o: out.append(o))
        with torch.no_grad():
            trained(images)
        hook.remove()
        return out[0].square().sum((1, 2, 3))

    dream = deep_dream(
        trained, x, "features.2", octaves=3, steps=5, step_size=2, jitter=4, progress=False
    )
    assert dream.shape == x.shape
    assert dream.min() >= 0 and dream.max() <= 1
    assert (energy(dream) > 1.5 * energy(x)).all(), (energy(dream), energy(x))
    again = deep_dream(
        trained, x, "features.2", octaves=3, steps=5, step_size=2, jitter=4, progress=False
    )
    assert torch.equal(dream, again)


def test_deep_dream_step_is_the_slides_make_step():
    """One step, one octave, no jitter, on a linear 'layer' a = Wx: the gradient of ‖a‖²/2 is
    WᵀWx, and the step is step_size/255 · g / mean|g| (unbounded: one input unit per 255)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False).double()
    model = nn.Sequential(conv, nn.Flatten())
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    out = deep_dream(
        model, x, "0", octaves=1, steps=1, step_size=1.5, jitter=0, pixel_range=None, progress=False
    )
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(0.5 * conv(xr).square().sum(), xr)
    torch.testing.assert_close(out, x + 1.5 / 255 * g / g.abs().mean())


# --- the model is left as it was -------------------------------------------------------------


def test_the_model_is_left_as_it_was():
    torch.manual_seed(0)
    net = models.create("convnet_small", num_classes=10, in_shape=(3, 32, 32))
    net.train()
    net.classifier[0].requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 32, 32)
    class_visualization(net, 1, steps=2, progress=False)
    unit_visualization(net, "features.4", 1, steps=2, progress=False)
    deep_dream(net, x, "features.4", octaves=2, steps=2, progress=False)
    assert net.training and all(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    assert [p.requires_grad for p in net.parameters()] == [
        not n.startswith("classifier.0") for n, _ in net.named_parameters()
    ]
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm's running statistics included
    assert not any(m._forward_hooks for m in net.modules())


def test_runs_inside_no_grad(trained):
    with torch.no_grad():
        x = class_visualization(trained, 0, steps=2, progress=False)
    assert x.shape == (1, 3, 32, 32)


# --- mistakes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: unit_visualization(m, "features.66", 0), "did you mean 'features.6'"),
        (lambda m: deep_dream(m, torch.rand(1, 3, 32, 32), "featurs.2"), "did you mean"),
        (lambda m: class_visualization(m, 4), "target class 4 is out of range"),
        (lambda m: class_visualization(m, "blue"), "unknown class 'blue'"),
        (lambda m: unit_visualization(m, "features.6", 16), "has 16 channels"),
        (lambda m: class_visualization(m, 0, steps=0), "steps must be a positive integer"),
        (lambda m: deep_dream(m, torch.rand(1, 3, 8, 8), "features.2", steps=-1), "steps must"),
        (lambda m: class_visualization(m, 0, lr=-1), "lr must be a non-negative number"),
        (lambda m: class_visualization(m, 0, clip_small_pixels=1), "clip_small_pixels must"),
        (lambda m: class_visualization(m, 0, pixel_range=(1, 0)), "pixel_range must"),
        (lambda m: class_visualization(nn.Linear(3, 2), 0), "shape=(C, H, W)"),
        (lambda m: deep_dream(m, torch.rand(3, 32, 32), "features.2"), "x[None]"),
    ],
)
def test_mistakes_are_one_clear_line(trained, call, message):
    with pytest.raises((ConfigError, InputError)) as e:
        call(trained)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
