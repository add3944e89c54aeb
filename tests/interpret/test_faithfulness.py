"""Deletion and insertion curves (Petsiuk et al. 2018) against a pixel-by-pixel loop written here,
a model whose evidence lies in known pixels, numpy's trapezoid rule and scipy's Gaussian filter.

float32 throughout; curves built two ways agree to 1e-6 (the same model on the same copies, in
batches of different sizes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from striate import models
from striate.errors import ConfigError, InputError
from striate.interpret.faithfulness import auc, blur, deletion_curve, insertion_curve

SIZE = 12


class KnownPixels(nn.Module):
    """Two classes; class 0's logit is 0.2 · Σ x over a known set of pixels (all channels) − 4.5,
    class 1's is 0: only those pixels matter, and the more of them are kept, the surer class 0."""

    def __init__(self, where: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("where", where.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = 0.2 * (x * self.where).sum((1, 2, 3)) - 4.5
        return torch.stack([logit, torch.zeros_like(logit)], 1)


@pytest.fixture(scope="module")
def known() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model, two images with values in [0.5, 1], and the oracle map (1 on the known pixels)."""
    g = torch.Generator().manual_seed(0)
    where = torch.zeros(SIZE * SIZE)
    where[torch.randperm(SIZE * SIZE, generator=g)[:20]] = 1
    where = where.view(1, SIZE, SIZE)
    x = 0.5 + 0.5 * torch.rand(2, 3, SIZE, SIZE, generator=g)
    return KnownPixels(where), x, where.expand(2, 1, SIZE, SIZE).clone()


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    torch.manual_seed(0)
    net = models.create("convnet_small", num_classes=10, in_shape=(3, SIZE, SIZE))
    with torch.no_grad():  # running statistics that are not 0 and 1, so eval mode shows
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2)
    return net


def reference_curve(model, x, attributions, baseline, steps, insert, reduce="sum"):
    """The curve pixel by pixel: numpy's stable argsort of −score, one copy per step, one image
    per forward pass, the target the class predicted for the full image."""
    model.eval()
    probs = []
    for i in range(len(x)):
        a = attributions[i].numpy()
        score = (
            a[0] if a.shape[0] == 1 else (np.abs(a).sum(0) if reduce == "sum" else np.abs(a).max(0))
        )
        order = np.argsort(-score.ravel(), kind="stable")
        with torch.no_grad():
            t = int(model(x[i : i + 1]).argmax())
        row = []
        for k in range(steps + 1):
            count = round(k * SIZE * SIZE / steps)
            chosen = np.zeros(SIZE * SIZE, bool)
            chosen[order[:count]] = True
            chosen = torch.from_numpy(chosen.reshape(SIZE, SIZE))
            image = x[i].clone() if not insert else baseline[i].clone()
            source = baseline[i] if not insert else x[i]
            image[:, chosen] = source[:, chosen]
            with torch.no_grad():
                row.append(float(model(image[None]).softmax(1)[0, t]))
        probs.append(row)
    return torch.tensor(probs)


# --------------------------------------------------------------------------- the curves


@pytest.mark.parametrize("insert", [False, True], ids=["deletion", "insertion"])
@pytest.mark.parametrize("reduce", ["sum", "max"])
def test_curve_matches_a_pixel_by_pixel_loop(cnn, insert, reduce):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, SIZE, SIZE, generator=g)
    maps = torch.randn(2, 3, SIZE, SIZE, generator=g)
    base = blur(x) if insert else torch.zeros_like(x)
    curve = insertion_curve if insert else deletion_curve
    cnn.train()
    fractions, probs = curve(
        cnn,
        x,
        maps,
        steps=7,
        reduce=reduce,
        baseline="blur" if insert else "zeros",
        internal_batch_size=5,
    )
    assert cnn.training, "the model's mode must be restored"
    expected = reference_curve(cnn, x, maps, base, 7, insert, reduce)
    cnn.train()
    assert probs.shape == (2, 8)
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    counts = torch.tensor([round(k * SIZE * SIZE / 7) for k in range(8)])
    torch.testing.assert_close(fractions, counts / (SIZE * SIZE))


def test_one_channel_map_ranks_by_its_signed_values(cnn):
    """A map N×1×H×W is used as it is: negative values come last, not by their size."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, SIZE, SIZE, generator=g)
    maps = torch.randn(1, 1, SIZE, SIZE, generator=g)
    _, probs = deletion_curve(cnn, x, maps, steps=6)
    torch.testing.assert_close(
        probs, reference_curve(cnn, x, maps, torch.zeros_like(x), 6, False), rtol=0, atol=1e-6
    )
    _, by_size = deletion_curve(cnn, x, maps.abs(), steps=6)
    assert not torch.allclose(probs, by_size)


@pytest.mark.parametrize("baseline", ["zeros", "blur", 0.5, "tensor"])
def test_curves_run_from_the_image_to_the_baseline(cnn, baseline):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, SIZE, SIZE, generator=g)
    maps = torch.rand(3, 1, SIZE, SIZE, generator=g)
    if baseline == "tensor":
        baseline = torch.rand(1, 3, 1, 1, generator=g)  # one colour, broadcast
        base = baseline.expand_as(x)
    else:
        base = {"zeros": torch.zeros_like(x), "blur": blur(x), 0.5: torch.full_like(x, 0.5)}[
            baseline
        ]
    cnn.eval()
    with torch.no_grad():
        t = cnn(x).argmax(1, keepdim=True)
        p_image = cnn(x).softmax(1).gather(1, t)[:, 0]
        p_base = cnn(base).softmax(1).gather(1, t)[:, 0]
    for curve, first, last in (
        (deletion_curve, p_image, p_base),
        (insertion_curve, p_base, p_image),
    ):
        fractions, probs = curve(cnn, x, maps, steps=4, baseline=baseline)
        assert fractions[0] == 0 and fractions[-1] == 1
        torch.testing.assert_close(probs[:, 0], first, rtol=0, atol=1e-6)
        torch.testing.assert_close(probs[:, -1], last, rtol=0, atol=1e-6)


def test_target_is_followed(cnn):
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    maps = torch.rand(2, 1, SIZE, SIZE)
    _, probs = deletion_curve(cnn, x, maps, target=[3, 7], steps=2)
    cnn.eval()
    with torch.no_grad():
        full = cnn(x).softmax(1)
    torch.testing.assert_close(probs[:, 0], full[[0, 1], [3, 7]], rtol=0, atol=1e-6)


def test_internal_batch_size_does_not_change_the_curve(cnn):
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    maps = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    one = insertion_curve(cnn, x, maps, steps=5, internal_batch_size=1)[1]
    many = insertion_curve(cnn, x, maps, steps=5, internal_batch_size=64)[1]
    torch.testing.assert_close(one, many, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- what they measure


def test_oracle_map_beats_a_random_map(known):
    """The map that names the pixels the model uses: lower deletion AUC, higher insertion AUC
    than random maps (and than the reversed oracle)."""
    model, x, oracle = known
    g = torch.Generator().manual_seed(7)
    random_maps = [torch.rand(2, 1, SIZE, SIZE, generator=g) for _ in range(5)]

    def aucs(maps):
        d = auc(*deletion_curve(model, x, maps, target=0, steps=16))
        i = auc(*insertion_curve(model, x, maps, target=0, steps=16, baseline="zeros"))
        return d, i

    d_oracle, i_oracle = aucs(oracle)
    for maps in random_maps:
        d, i = aucs(maps)
        assert (d_oracle < d - 0.2).all(), (d_oracle, d)
        assert (i_oracle > i + 0.2).all(), (i_oracle, i)
    d_worst, i_worst = aucs(-oracle)
    assert (d_oracle < d_worst).all() and (i_oracle > i_worst).all()
    # the oracle's deletion curve reaches the baseline's probability once its 20 pixels are gone
    fractions, probs = deletion_curve(model, x, oracle, target=0, steps=16)
    gone = fractions >= 20 / SIZE**2
    torch.testing.assert_close(
        probs[:, gone], probs[:, -1:].expand(-1, int(gone.sum())), rtol=0, atol=1e-6
    )


def test_auc_is_the_trapezoid_rule():
    fractions = torch.tensor([0.0, 0.1, 0.25, 0.7, 1.0])
    probs = torch.tensor([[0.9, 0.8, 0.3, 0.2, 0.1], [0.1, 0.1, 0.5, 0.9, 1.0]])
    expected = [np.trapezoid(p, fractions.numpy()) for p in probs.numpy()]
    torch.testing.assert_close(auc(fractions, probs), torch.tensor(expected), rtol=1e-6, atol=0)
    torch.testing.assert_close(auc(fractions, probs[0]), torch.tensor(expected[0]))


@pytest.mark.parametrize("sigma", [5.0, 2.0, 1.5])
def test_blur_is_scipys_gaussian_filter(sigma):
    x = torch.rand(2, 3, 20, 17, generator=torch.Generator().manual_seed(8))
    radius = int(np.ceil(sigma))
    expected = ndimage.gaussian_filter(
        x.double().numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=radius / sigma
    )
    torch.testing.assert_close(
        blur(x, sigma), torch.from_numpy(expected).float(), rtol=0, atol=1e-6
    )


def test_efficientnet_grad_cam_beats_a_random_map(shared_data):
    """On a photograph, the pretrained network's Grad-CAM map deletes the evidence faster and
    inserts it faster than a random map does (Petsiuk et al. report the same ordering)."""
    from PIL import Image

    from striate.interpret.cam import grad_cam

    classifier = models.pretrained("efficientnet_lite0")
    image = np.asarray(Image.open(shared_data / "images" / "dog.jpg").convert("RGB"))
    x = classifier.prepare([image])
    cam = grad_cam(classifier, x)
    noise = torch.rand(1, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    steps = dict(steps=8, internal_batch_size=9)
    d_cam = auc(*deletion_curve(classifier, x, cam, **steps))
    d_random = auc(*deletion_curve(classifier, x, noise, **steps))
    i_cam = auc(*insertion_curve(classifier, x, cam, **steps))
    i_random = auc(*insertion_curve(classifier, x, noise, **steps))
    assert d_cam < d_random and i_cam > i_random, (d_cam, d_random, i_cam, i_random)


# --------------------------------------------------------------------------- mistakes


def test_mistakes_get_one_line(cnn):
    x = torch.rand(2, 3, SIZE, SIZE)
    maps = torch.rand(2, 3, SIZE, SIZE)
    cases = [
        (InputError, "attributions must have the inputs' shape", dict(attributions=maps[:1])),
        (InputError, "upsample", dict(attributions=torch.rand(2, 1, 3, 3))),
        (InputError, "attributions must be a tensor", dict(attributions=maps.numpy())),
        (ConfigError, "steps must be a positive integer", dict(steps=0)),
        (ConfigError, "baseline must be one of zeros, blur", dict(baseline="blurred")),
        (ConfigError, "baseline must be", dict(baseline=[0.5])),
        (
            InputError,
            "baseline must be a number or a tensor broadcastable",
            dict(baseline=torch.zeros(5)),
        ),
        (ConfigError, "reduce must be one of sum, max", dict(reduce="mean")),
        (
            ConfigError,
            "internal_batch_size must be a positive integer",
            dict(internal_batch_size=0),
        ),
    ]
    for curve in (deletion_curve, insertion_curve):
        for error, words, options in cases:
            options = {"attributions": maps, **options}
            with pytest.raises(error, match=words) as info:
                curve(cnn, x, options.pop("attributions"), **options)
            assert "\n" not in str(info.value)
            assert str(info.value).startswith(curve.__name__)
    with pytest.raises(InputError, match="auc: fractions must be 1-D"):
        auc(torch.tensor([0.0, 1.0]), torch.zeros(2, 3))
