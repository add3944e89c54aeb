"""PixelCNN against independent references: the masks written out by hand, causality by gradients
and by perturbing the input, the NLL against torch.distributions, sampling against a model whose
conditionals force a pattern, and training on binarised MNIST with the Trainer."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical

from striate.data import BatchLoader, load_dataset
from striate.engine import Trainer
from striate.engine.task import TASKS
from striate.errors import ConfigError, InputError
from striate.generative.pixelcnn import MaskedConv2d, PixelCNN, PixelModelling, causal_mask

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


def _randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def test_the_masks_are_the_paper_s_written_out():
    a = causal_mask(1, 1, 3, "A")[0, 0]
    b = causal_mask(1, 1, 3, "B")[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    # RGB: the centre tap connects input colour g to output colour g' when g < g' (A), g ≤ g' (B)
    ca = causal_mask(3, 3, 5, "A", colors=3)[:, :, 2, 2]
    cb = causal_mask(3, 3, 5, "B", colors=3)[:, :, 2, 2]
    assert ca.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert cb.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    # six feature maps form contiguous groups RR GG BB; off-centre taps ignore colour
    m = causal_mask(6, 3, 3, "B", colors=3)
    assert m[:, :, 2 // 2, 2 // 2].tolist() == [[1, 0, 0]] * 2 + [[1, 1, 0]] * 2 + [[1, 1, 1]] * 2
    assert (m[:, :, 0] == 1).all() and (m[:, :, 2] == 0).all() and (m[:, :, 1, 2] == 0).all()


def test_the_mask_is_applied_in_forward_so_a_weight_update_cannot_leak():
    conv = MaskedConv2d(3, 6, 3, "A", colors=3)
    with torch.no_grad():
        conv.weight.fill_(1.0)  # as if an optimiser step had moved the masked weights
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    expected = F.conv2d(x, conv.weight * causal_mask(6, 3, 3, "A", 3), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    assert not torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))


def _net_output_colour(model, k):
    """The colour whose conditional net output channel k feeds (forward's reshape)."""
    return k if model.binary else k // model.levels


@pytest.mark.parametrize(
    ("channels", "levels", "stack"),
    [(1, 2, "A"), (3, 4, "A"), (1, 2, "net"), (3, 4, "net")],
)
def test_output_at_a_pixel_depends_on_no_later_pixel_nor_later_colour(channels, levels, stack):
    """∂ logits(c, i, j) / ∂ input is exactly zero at pixels ≥ (i, j) in raster order, except
    at (i, j) itself for earlier colours; the left and upper neighbours do matter."""
    torch.manual_seed(0)
    if stack == "A":  # a type-A layer followed by type-B layers
        net = torch.nn.Sequential(
            MaskedConv2d(channels, 6, 3, "A", channels),
            torch.nn.Tanh(),
            MaskedConv2d(6, 6, 3, "B", channels),
            torch.nn.Tanh(),
            MaskedConv2d(6, channels, 3, "B", channels),
        )
        colour = lambda k: k  # noqa: E731
    else:
        model = PixelCNN(channels, levels, width=12, blocks=2)
        net = model.net
        colour = lambda k: _net_output_colour(model, k)  # noqa: E731
    _randomize(net)
    h = w = 5
    x = torch.randn(1, channels, h, w, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    out = net(x)
    seen = ([], [], [])  # left neighbour, upper neighbour, earlier colour of the same pixel
    for k in range(out.shape[1]):
        c = colour(k)
        for i in range(h):
            for j in range(w):
                (g,) = torch.autograd.grad(out[0, k, i, j], x, retain_graph=True)
                g = g[0].abs()
                later = torch.zeros(channels, h, w, dtype=torch.bool)
                later.view(channels, -1)[:, i * w + j :] = True
                later[:c, i, j] = False  # earlier colours of the same pixel are visible
                assert (g[later] == 0).all(), (k, i, j)
                if j > 0:
                    seen[0].append(bool(g[:, i, j - 1].sum() > 0))
                if i > 0:
                    seen[1].append(bool(g[:, i - 1, j].sum() > 0))
                if c > 0:
                    seen[2].append(bool(g[c - 1, i, j] > 0))
    # the allowed neighbours are seen (all of them through tanh; ReLUs may cut a few paths)
    for kind in seen:
        assert kind == [] or sum(kind) >= (len(kind) if stack == "A" else 0.7 * len(kind))


@pytest.mark.parametrize(("channels", "levels"), [(1, 2), (3, 256)])
def test_changing_a_pixel_changes_no_earlier_conditional(channels, levels):
    model = _randomize(PixelCNN(channels, levels, width=12, blocks=1)).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, 4, 4, generator=g)
    base = model(x)
    if model.binary:
        base = base.unsqueeze(1)
    for c, i, j in [(0, 1, 2), (channels - 1, 2, 1), (0, 3, 2)]:
        y = x.clone()
        y[0, c, i, j] = 1.0 - y[0, c, i, j]
        out = model(y)
        out = out.unsqueeze(1) if model.binary else out
        flat_b, flat_o = base.flatten(3), out.flatten(3)  # N×L×C×(HW)
        p = i * 4 + j
        assert torch.equal(flat_b[..., :p], flat_o[..., :p])
        assert torch.equal(flat_b[:, :, : c + 1, p], flat_o[:, :, : c + 1, p])
        assert not torch.equal(flat_b[..., p + 1 :], flat_o[..., p + 1 :])


def test_nll_is_the_summed_cross_entropy_and_bits_per_dim_divides_by_d_ln2():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 4, 5, generator=g)
    model = PixelCNN(3, 256, width=12, blocks=1)
    logits = model(x)
    assert logits.shape == (3, 256, 3, 4, 5)
    q = (x * 255).round().long()
    expected = -Categorical(logits=logits.permute(0, 2, 3, 4, 1)).log_prob(q).flatten(1).sum(1)
    torch.testing.assert_close(model.nll(x), expected)
    torch.testing.assert_close(model.bits_per_dim(x), expected / (60 * math.log(2)))
    # binarised: one Bernoulli logit per pixel, thresholded at 0.5
    binary = PixelCNN(1, 2, width=8, blocks=1)
    xb = torch.rand(3, 1, 6, 6, generator=g)
    lb = binary(xb)
    assert lb.shape == (3, 1, 6, 6)
    bern = -Bernoulli(logits=lb).log_prob((xb >= 0.5).float()).flatten(1).sum(1)
    torch.testing.assert_close(binary.nll(xb), bern)
    torch.testing.assert_close(binary.bits_per_dim(xb), bern / (36 * math.log(2)))


class _Forced(PixelCNN):
    """Conditionals that force a pattern: binary — each pixel is the opposite of its left
    neighbour (first column free, p = ½); RGB — R uniform, G = R, B = 255 − R."""

    def forward(self, x):
        q = self.quantize(x)
        n, _, h, w = q.shape
        if self.binary:
            left = F.pad(q[:, :, :, :-1], (1, 0)).float()
            logits = 30.0 * (1 - 2 * left)
            logits[:, :, :, 0] = 0.0
            return logits
        logits = torch.zeros(n, self.levels, 3, h, w)
        r = q[:, 0]
        logits[:, :, 1] = -30 + 60 * F.one_hot(r, self.levels).permute(0, 3, 1, 2).float()
        logits[:, :, 2] = -30 + 60 * F.one_hot(255 - r, self.levels).permute(0, 3, 1, 2).float()
        return logits


def test_sampling_follows_the_model_s_conditionals_pixel_by_pixel_and_colour_by_colour():
    binary = _Forced(1, 2, width=2, blocks=1)
    s = binary.sample(200, (3, 4), generator=torch.Generator().manual_seed(0))
    assert s.shape == (200, 1, 3, 4)
    assert torch.equal(s[..., 1:], 1 - s[..., :-1])
    assert 0.35 < s[..., 0].mean() < 0.65
    rgb = _Forced(3, 256, width=6, blocks=1)
    s = rgb.sample(300, (2, 2), generator=torch.Generator().manual_seed(0))
    q = (s * 255).round().long()
    assert torch.equal(q[:, 1], q[:, 0]) and torch.equal(q[:, 2], 255 - q[:, 0])
    assert 100 < q[:, 0].float().mean() < 155 and q[:, 0].unique().numel() > 200


def test_sampling_draws_bernoulli_at_the_tempered_probability():
    model = PixelCNN(1, 2, width=4, blocks=1)
    with torch.no_grad():
        last = model.net[-1]
        last.weight.zero_()
        last.bias.fill_(1.0)  # every pixel p = σ(1 / T)
    for t in (1.0, 0.5):
        s = model.sample(2000, (2, 2), generator=torch.Generator().manual_seed(0), temperature=t)
        p = torch.sigmoid(torch.tensor(1.0 / t))
        se = (p * (1 - p) / s.numel()) ** 0.5
        assert abs(s.mean() - p) < 4 * se, (t, s.mean(), p)


def test_sampling_with_a_fixed_generator_is_reproducible():
    model = _randomize(PixelCNN(3, 256, width=6, blocks=1), seed=3)
    a = model.sample(3, (3, 3), generator=torch.Generator().manual_seed(7))
    b = model.sample(3, (3, 3), generator=torch.Generator().manual_seed(7))
    c = model.sample(3, (3, 3), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 3, 3, 3) and a.min() >= 0 and a.max() <= 1
    assert torch.equal((a * 255).round() / 255, a)


def test_the_task_s_loss_is_the_mean_nll_per_dimension():
    assert TASKS.get("pixelcnn") is PixelModelling
    model = PixelCNN(1, 2, width=8, blocks=1)
    x = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    step = PixelModelling().training_step(model, (x,))
    nll = model.nll(x)
    torch.testing.assert_close(step.loss, nll.mean() / 25)
    sums = [nll.sum() / 25, nll.sum() / 25 / math.log(2), torch.tensor(4.0)]
    torch.testing.assert_close(step.stats, torch.stack(sums))
    summary = PixelModelling().summarize(step.stats)
    bpd = float(model.bits_per_dim(x).detach().mean())
    assert summary["bits_per_dim"] == pytest.approx(bpd, rel=1e-5)


def test_bad_input_says_what_is_wrong_in_one_line():
    with pytest.raises(InputError, match=r"PixelCNN: images must be N×1×H×W, got 2×3×4×4"):
        PixelCNN(1, 2, width=4, blocks=1)(torch.rand(2, 3, 4, 4))
    with pytest.raises(ConfigError, match="mask_type must be one of A, B"):
        MaskedConv2d(1, 4, 3, "C")
    with pytest.raises(ConfigError, match="kernel_size must be odd"):
        MaskedConv2d(1, 4, 4, "A")
    with pytest.raises(ConfigError, match="multiple of 2·channels"):
        PixelCNN(3, 256, width=8)
    with pytest.raises(ConfigError, match="levels must be an integer >= 2, got 1"):
        PixelCNN(1, 1)
    with pytest.raises(ConfigError, match="channels must be one of"):
        PixelCNN(2)
    with pytest.raises(ConfigError, match="temperature"):
        PixelCNN(1, 2, width=4, blocks=1).sample(1, (2, 2), temperature=0)
    with pytest.raises(ConfigError, match="must be a PixelCNN"):
        PixelModelling().setup(torch.nn.Linear(2, 2), None)


def test_the_task_lowers_the_loss_on_binarised_mnist_with_the_trainer(shared_data):
    images = load_dataset("mnist", "train", root=shared_data)[:256]
    torch.manual_seed(0)
    model = PixelCNN(1, 2, width=16, blocks=2)
    trainer = Trainer(epochs=4, task=PixelModelling(), opt="adam", lr=3e-3, **QUIET)
    val = BatchLoader(images, 256, shuffle=False, device="cpu")
    before = trainer.evaluate(model, val)
    history = trainer.fit(model, BatchLoader(images, 32, device="cpu", seed=0), val)
    assert set(history[-1]) >= {"train_loss", "train_bits_per_dim", "val_loss", "val_bits_per_dim"}
    # untrained: ≈ ln 2 nats per pixel; 32 Adam steps more than halve it
    assert 0.5 < before["loss"] < 0.9
    assert history[-1]["val_loss"] < 0.5 * before["loss"], (before, history[-1])
    # and beats the entropy of one Bernoulli for all pixels (≈ 0.39 nats): it uses the context
    ink = (images.images.float() / 255 >= 0.5).float().mean()
    marginal = float(-(ink * ink.log() + (1 - ink) * (1 - ink).log()))
    assert history[-1]["val_loss"] < marginal - 0.05, (marginal, history[-1])
    assert history[-1]["val_bits_per_dim"] == pytest.approx(history[-1]["val_loss"] / math.log(2))
    bpd = trainer.predict(model, images.images[:4].float() / 255)
    assert bpd.shape == (4,)
