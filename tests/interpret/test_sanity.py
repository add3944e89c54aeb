"""The model-randomisation check (Adebayo et al. 2018) against scipy's Spearman correlation, a
randomisation written out by hand, and a method that ignores the model (an edge detector)."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from scipy import stats
from torch import nn

from striate import models
from striate.errors import ConfigError, InputError
from striate.interpret.gradients import saliency
from striate.interpret.sanity import randomization_check, randomization_units, ranks, spearman
from striate.models.io import ImageClassifier

SIZE = 16


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    torch.manual_seed(0)
    return models.create("convnet_small", num_classes=10, in_shape=(3, SIZE, SIZE))


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def edges(model: nn.Module, inputs: torch.Tensor, target=None) -> torch.Tensor:
    """The image's gradient magnitude per channel: a map that never looks at the model."""
    dy = torch.zeros_like(inputs)
    dx = torch.zeros_like(inputs)
    dy[..., 1:, :] = inputs[..., 1:, :] - inputs[..., :-1, :]
    dx[..., :, 1:] = inputs[..., :, 1:] - inputs[..., :, :-1]
    return (dx.square() + dy.square()).sqrt()


# --------------------------------------------------------------------------- Spearman


def test_spearman_is_scipys():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 300, generator=g)
    b = a + 2 * torch.randn(4, 300, generator=g)
    a[1] = a[1].round()  # ties in one row, in both in another
    a[2], b[2] = (4 * a[2]).round(), (4 * b[2]).round()
    ours = spearman(a, b)
    theirs = [stats.spearmanr(a[i], b[i]).statistic for i in range(4)]
    torch.testing.assert_close(ours, torch.tensor(theirs, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        ranks(a), torch.from_numpy(stats.rankdata(a.numpy(), axis=1)), rtol=0, atol=0
    )
    # maps N×C×H×W: one value per image, over all their entries
    maps = torch.rand(2, 3, 5, 5, generator=g)
    other = maps + torch.rand(2, 3, 5, 5, generator=g)
    expected = [stats.spearmanr(maps[i].ravel(), other[i].ravel()).statistic for i in range(2)]
    torch.testing.assert_close(spearman(maps, other), torch.tensor(expected, dtype=torch.float64))
    assert spearman(torch.ones(1, 9), torch.rand(1, 9)).isnan().all()


# --------------------------------------------------------------------------- the check


def test_user_model_is_left_as_it_was(cnn, x):
    cnn.train()
    before = copy.deepcopy(cnn.state_dict())
    rng = torch.get_rng_state()
    for cascade in (True, False):
        randomization_check(cnn, x, saliency, cascade=cascade)
    after = cnn.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert cnn.training and all(m.training for m in cnn.modules())
    assert torch.equal(torch.get_rng_state(), rng), "torch's global random state moved"


def test_gradient_map_changes_when_the_layers_are_random(cnn, x):
    results = randomization_check(cnn, x, saliency, cascade=True)
    assert [r.layer for r in results] == [
        "classifier.2",
        "classifier.0",
        "features.4+features.5",
        "features.0+features.1",
    ]
    # the map against itself would be 1; with random weights it is far from the trained one
    for r in results:
        assert r.spearman_abs.shape == (3,)
        assert (r.spearman_abs < 0.6).all(), r


def test_maps_given_are_the_maps_computed(cnn, x):
    t = torch.tensor([1, 2, 3])
    given = randomization_check(cnn, x, saliency, t, attributions=saliency(cnn, x, t))
    computed = randomization_check(cnn, x, saliency, t)
    for a, b in zip(given, computed, strict=True):
        torch.testing.assert_close(a.spearman_abs, b.spearman_abs, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="attributions must be one map per input"):
        randomization_check(cnn, x, saliency, t, attributions=saliency(cnn, x[:1], 1))


def test_a_method_that_ignores_the_model_passes_unchanged(cnn, x):
    """The paper's point: an edge detector correlates 1 with itself whatever the weights."""
    for cascade in (True, False):
        for r in randomization_check(cnn, x, edges, cascade=cascade):
            torch.testing.assert_close(r.spearman_abs, torch.ones(3, dtype=torch.float64))
            torch.testing.assert_close(r.spearman_signed, torch.ones(3, dtype=torch.float64))


def test_the_check_is_a_randomisation_written_out(cnn, x):
    """Cascade by hand: reset_parameters of each unit from seed + k, the original's predicted
    class as target, Spearman by scipy on Σ_c|a| and Σ_c a."""
    method = functools.partial(saliency, abs=False)
    results = randomization_check(cnn, x, method, seed=5)
    cnn.eval()
    with torch.no_grad():
        t = cnn(x).argmax(1)
    original = method(cnn, x, t)
    work = copy.deepcopy(cnn)
    layers = {
        "classifier.2": [work.classifier[2]],
        "classifier.0": [work.classifier[0]],
        "features.4+features.5": [work.features[4], work.features[5]],
        "features.0+features.1": [work.features[0], work.features[1]],
    }
    for k, (name, modules) in enumerate(layers.items()):
        torch.manual_seed(5 + k)
        for m in modules:
            m.reset_parameters()
        maps = method(work, x, t)
        for i in range(3):
            for j, f in enumerate((lambda a: a.abs().sum(0), lambda a: a.sum(0))):
                expected = stats.spearmanr(f(original[i]).ravel(), f(maps[i]).ravel()).statistic
                got = results[k][1 + j][i].item()
                assert got == pytest.approx(expected, abs=1e-9), (name, i, j)
        assert results[k].layer == name


def test_independent_randomisation_draws_each_unit_alone(cnn, x):
    """Each copy has one unit re-drawn (BatchNorm's statistics reset too), the rest as trained."""
    seen: list[nn.Module] = []

    def spy(model, inputs, target):
        seen.append(copy.deepcopy(model))
        return edges(model, inputs)

    net = copy.deepcopy(cnn)
    with torch.no_grad():  # BatchNorm as if trained: none of its values is its initial one
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                for v in (m.weight, m.bias, m.running_mean, m.running_var):
                    v.uniform_(0.5, 1.5)
    cascade = randomization_check(net, x, saliency, cascade=True)
    independent = randomization_check(net, x, saliency, cascade=False)
    torch.testing.assert_close(cascade[0].spearman_abs, independent[0].spearman_abs)
    assert not torch.allclose(cascade[-1].spearman_abs, independent[-1].spearman_abs)

    randomization_check(net, x, spy, cascade=False)
    original = net.state_dict()
    units = list(randomization_units(net).values())
    for copy_, names in zip(seen[1:], units, strict=True):  # seen[0]: the trained model's map
        state = copy_.state_dict()
        for key in original:
            redrawn = any(key.startswith(name + ".") for name in names)
            if key.endswith("num_batches_tracked"):
                continue
            if redrawn:
                assert not torch.equal(state[key], original[key]), key
            elif not redrawn:
                assert torch.equal(state[key], original[key]), key
        if "features.1" in names:
            assert torch.equal(copy_.features[1].running_mean, torch.zeros(32))
            assert torch.equal(copy_.features[1].running_var, torch.ones(32))


def test_units_of_a_wrapped_efficientnet():
    net = models.create("efficientnet_lite0")
    wrapped = ImageClassifier(net, [str(k) for k in range(1000)], (3, 224, 224))
    units = randomization_units(wrapped)
    assert list(units)[0] == "_fc"
    assert list(units)[1] == "_conv_head+_bn1"
    assert list(units)[-1] == "_conv_stem+_bn0"
    assert list(units)[2:-1] == [f"_blocks.{k}" for k in range(15, -1, -1)]


def test_layers_given_as_groups(cnn, x):
    results = randomization_check(
        cnn, x, edges, layers={"head": ["classifier.0", "classifier.2"], "body": "features"}
    )
    assert [r.layer for r in results] == ["head", "body"]
    results = randomization_check(
        cnn, x, edges, layers=["classifier", ("features.0", "features.1")]
    )
    assert [r.layer for r in results] == ["classifier", "features.0+features.1"]


def test_mistakes_get_one_line(cnn, x):
    cases = [
        (
            ConfigError,
            "no layer 'classifer'.*did you mean 'classifier'",
            dict(layers=["classifer"]),
        ),
        (ConfigError, "layers must be a non-empty list", dict(layers=[])),
        (ConfigError, "layers must be a list", dict(layers="classifier")),
        (ConfigError, "method must be an attribution function", dict(method="saliency")),
        (
            ConfigError,
            "method must return one map per input",
            dict(method=lambda m, i, t: edges(m, i)[:1]),
        ),
        (ConfigError, "cascade must be True or False", dict(cascade="yes")),
        (InputError, "inputs must be a float tensor N×C×H×W", dict(inputs=x[0])),
    ]
    for error, words, options in cases:
        options = {"method": saliency, "inputs": x, **options}
        with pytest.raises(error, match=words) as info:
            randomization_check(cnn, options.pop("inputs"), options.pop("method"), **options)
        assert "\n" not in str(info.value)


def test_no_reset_parameters_is_an_error(x):
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(1))

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return v * self.gain

    net = nn.Sequential(nn.Flatten(), Scale(), nn.Linear(3 * SIZE * SIZE, 2))
    with pytest.raises(ConfigError, match="Scale in '1' has parameters but no reset_parameters"):
        randomization_check(net, x, edges)
    assert randomization_check(net, x, edges, layers=["2"])[0].spearman_abs.isfinite().all()
