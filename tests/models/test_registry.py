"""The model registry: names, option checking, spec round trip, and the init argument."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from torch import nn

from striate import models
from striate.errors import ConfigError, StriateError
from striate.models import registry


@pytest.fixture
def private_registry(monkeypatch):
    """A copy of the registry, so test models do not leak into other tests."""
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())


def test_available_lists_the_built_in_models_sorted():
    names = models.available()
    assert {"mlp", "convnet", "convnet_small", "alexnet_2012", "cifar_fast"} <= set(names)
    assert names == sorted(names)
    assert not [n for n in names if "-" in n]  # one spelling: torchvision's underscores


@pytest.mark.parametrize("old", ["convnet-small", "alexnet-2012", "cifar-fast", "wrn-16-4"])
def test_hyphens_are_read_as_underscores_everywhere_a_name_is_looked_up(old):
    new = old.replace("-", "_")
    assert models.describe(old) == models.describe(new)
    assert models.default_input(old) == models.default_input(new)
    with torch.device("meta"):
        built = models.create(old)
        again = models.from_spec({**built.spec, "name": old})  # a model.json saved before
    assert built.spec["name"] == again.spec["name"] == new  # recorded in the one spelling
    assert type(built) is type(again) is type(models.create(new, in_shape=built.spec["in_shape"]))


def test_a_name_is_registered_once_whatever_its_spelling(private_registry):
    @models.register("two-words")
    def two(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
        """Nothing."""
        return nn.Flatten()

    assert "two_words" in models.available() and "two-words" not in models.available()
    with pytest.raises(ConfigError, match="'two_words' is already registered"):
        models.register("two_words")(two)


def test_describe_is_the_first_docstring_line():
    from striate.models.mlp import mlp

    assert models.describe("mlp") == mlp.__doc__.strip().splitlines()[0]
    assert all(models.describe(n) for n in models.available())


@pytest.mark.parametrize("typo", ["convnet_smal", "convnet-smal", "convnetsmall"])
def test_unknown_name_lists_available_and_suggests(typo):
    with pytest.raises(ConfigError) as e:
        models.create(typo)
    msg = str(e.value)
    assert f"unknown model '{typo}'" in msg and "did you mean 'convnet_small'" in msg
    assert all(n in msg for n in models.available())
    with pytest.raises(ConfigError, match="the models are"):
        models.describe("resnet9000")
    assert isinstance(e.value, StriateError) and isinstance(e.value, ValueError)


def test_unknown_option_names_it_and_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        models.create("mlp", hiden=(50,))
    msg = str(e.value)
    assert "'hiden'" in msg and "did you mean 'hidden'" in msg
    for valid in ("hidden", "activation", "dropout", "batchnorm"):
        assert valid in msg
    with pytest.raises(ConfigError, match="'width'.*options are channels"):
        models.create("convnet", width=3)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (dict(dropout=1.5), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(hidden=(100, -3)), "hidden"),
        (dict(hidden="100"), "hidden"),
        (dict(activation="swishy"), "relu, leaky_relu, elu, gelu, tanh, sigmoid"),
        (dict(batchnorm="yes"), "batchnorm"),
    ],
)
def test_invalid_option_values(options, needle):
    with pytest.raises(ConfigError, match=needle):
        models.create("mlp", **options)


def test_option_that_is_not_json_is_refused():
    with pytest.raises(ConfigError, match="activation=.*JSON"):
        models.create("mlp", activation=nn.ReLU)


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.5, True, "10"])
def test_bad_num_classes(num_classes):
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 2"):
        models.create("mlp", num_classes=num_classes)


@pytest.mark.parametrize(
    "in_shape", [(28, 28), (1, 0, 28), (1, -2, 3), (1, 2, 3, 4), "1x8x8", (1.0, 8, 8)]
)
def test_bad_in_shape(in_shape):
    with pytest.raises(ConfigError, match=r"in_shape must be \(channels, height, width\)"):
        models.create("convnet", in_shape=in_shape)


def test_numpy_integers_are_accepted_and_stored_as_python_ints():
    m = models.create("mlp", np.int64(3), (np.int64(1), 8, 8), hidden=(np.int64(7),))
    assert m.spec["num_classes"] == 3 and m.spec["kwargs"]["hidden"] == [7]
    assert type(m.spec["kwargs"]["hidden"][0]) is int
    json.dumps(m.spec)


def test_spec_has_every_default_filled_in():
    m = models.create("mlp", num_classes=10, in_shape=(1, 28, 28))
    assert m.spec == {
        "name": "mlp",
        "num_classes": 10,
        "in_shape": [1, 28, 28],
        "kwargs": {"hidden": [100], "activation": "relu", "dropout": 0.0, "batchnorm": False},
        "init": "default",
        "init_std": 0.01,
    }
    assert set(models.create("convnet").spec["kwargs"]) == {
        "channels",
        "convs_per_stage",
        "pool",
        "kernel_size",
        "batchnorm",
        "norm",
        "norm_groups",
        "fc",
        "dropout",
        "activation",
        "global_pool",
    }


@pytest.mark.parametrize(
    ("name", "in_shape", "options"),
    [
        ("mlp", (1, 28, 28), dict(hidden=(64, 32), batchnorm=True, dropout=0.2)),
        ("convnet", (3, 32, 32), dict(channels=(8, 16, 16), pool="avg", fc=(24, 12))),
        ("convnet_small", (1, 8, 8), dict(global_pool=True, activation="gelu")),
    ],
)
def test_from_spec_round_trip_through_json(name, in_shape, options):
    torch.manual_seed(0)
    model = models.create(name, num_classes=7, in_shape=in_shape, init="kaiming", **options)
    spec = json.loads(json.dumps(model.spec))
    twin = models.from_spec(spec)
    assert twin.spec == model.spec
    a, b = model.state_dict(), twin.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    twin.load_state_dict(a)
    model.eval()
    twin.eval()
    x = torch.randn(5, *in_shape)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x), rtol=0, atol=0)


def test_from_spec_rejects_bad_specs():
    with pytest.raises(ConfigError, match="'name'"):
        models.from_spec({"num_classes": 10})
    with pytest.raises(ConfigError, match="'name'"):
        models.from_spec(["mlp"])
    with pytest.raises(ConfigError, match="'nmae'.*valid keys are name"):
        models.from_spec({"name": "mlp", "nmae": "x"})
    with pytest.raises(ConfigError, match="kwargs"):
        models.from_spec({"name": "mlp", "kwargs": [1]})
    with pytest.raises(ConfigError, match="no option 'depth'"):
        models.from_spec({"name": "mlp", "kwargs": {"depth": 3}})


def test_init_is_applied_and_recorded():
    torch.manual_seed(0)
    m = models.create("mlp", in_shape=(1, 28, 28), hidden=(400,), init="normal", init_std=0.05)
    assert m.spec["init"] == "normal" and m.spec["init_std"] == 0.05
    w = m[1].weight
    assert abs(w.std().item() - 0.05) < 0.05 * 0.02  # 313,600 draws: ~0.1% sampling error
    assert torch.all(m[1].bias == 0)
    twin = models.from_spec(json.loads(json.dumps(m.spec)))
    assert abs(twin[1].weight.std().item() - 0.05) < 0.05 * 0.02


def test_bad_init_arguments():
    with pytest.raises(ConfigError, match="unknown init 'he'.*default, normal, xavier, kaiming"):
        models.create("mlp", init="he")
    with pytest.raises(ConfigError, match="init_std must be a positive number"):
        models.create("mlp", init="normal", init_std=-1.0)


def test_register_custom_builder(private_registry):
    @models.register("tiny-linear")
    def tiny(num_classes: int, in_shape: tuple[int, int, int], bias: bool = True) -> nn.Module:
        """One Linear layer on the pixels."""
        c, h, w = in_shape
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes, bias=bias))

    assert "tiny_linear" in models.available()
    assert models.describe("tiny-linear") == "One Linear layer on the pixels."
    m = models.create("tiny-linear", 3, (1, 2, 2), bias=False)
    assert m(torch.zeros(1, 1, 2, 2)).shape == (1, 3)
    assert m.spec["kwargs"] == {"bias": False}
    assert models.from_spec(m.spec)[1].bias is None
    # without a declared input, a model is made for CIFAR's
    assert models.default_input("tiny_linear") == ((3, 32, 32), 10)
    assert models.create("tiny_linear")[1].weight.shape == (10, 3 * 32 * 32)


def test_register_declares_the_default_input(private_registry):
    @models.register("grey_pixels", in_shape=(1, 5, 7), num_classes=4)
    def grey(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
        """Pixels to scores."""
        return nn.Sequential(
            nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1] * in_shape[2], num_classes)
        )

    m = models.create("grey_pixels")
    assert m.spec["in_shape"] == [1, 5, 7] and m.spec["num_classes"] == 4
    assert m[1].weight.shape == (4, 35)
    assert models.create("grey_pixels", 3)[1].weight.shape == (3, 35)  # one of the two given
    with pytest.raises(ConfigError, match="in_shape must be"):
        models.register("bad_input", in_shape=(32, 32))
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 2"):
        models.register("bad_classes", num_classes=1)


def test_register_rejects_bad_builders(private_registry):
    with pytest.raises(ConfigError, match="already registered"):
        models.register("mlp")(lambda num_classes, in_shape: nn.Identity())
    with pytest.raises(ConfigError, match=r"\(num_classes, in_shape, \.\.\.\) first"):
        models.register("swapped")(lambda in_shape, num_classes: nn.Identity())
    with pytest.raises(ConfigError, match=r"\*\*kwargs"):
        models.register("loose")(lambda num_classes, in_shape, **kw: nn.Identity())
    with pytest.raises(ConfigError, match="'init' is an argument of create"):
        models.register("clash")(lambda num_classes, in_shape, init=0: nn.Identity())
    with pytest.raises(ConfigError, match="non-empty string"):
        models.register("")


def test_required_option_and_non_module_builder(private_registry):
    @models.register("needs-width")
    def needs(num_classes, in_shape, width):
        """Needs a width."""
        return nn.Linear(width, num_classes)

    with pytest.raises(ConfigError, match="needs the option.*width"):
        models.create("needs-width")
    assert models.create("needs-width", width=4).spec["kwargs"] == {"width": 4}

    @models.register("not-a-module")
    def bad(num_classes, in_shape):
        """Returns a number."""
        return 3

    with pytest.raises(ConfigError, match="returned int"):
        models.create("not-a-module")


def test_a_model_class_registers_with_its_constructor_options(private_registry):
    class Pixels(nn.Sequential):
        def __init__(self, scale: float, in_shape=(1, 2, 2), num_classes=3, *, bias=True):
            c, h, w = in_shape
            super().__init__(nn.Flatten(), nn.Linear(c * h * w, num_classes, bias=bias))
            self.scale = scale

    family = registry.builder_of("pixels", Pixels, "Pixels to scores.", defaults={"scale": 2.0})
    assert list(inspect.signature(family).parameters) == [
        "num_classes",
        "in_shape",
        "scale",
        "bias",
    ]
    m = family(4, (1, 3, 3), 5.0, False)  # positionally, as a hand-written builder
    assert (m.scale, m[1].weight.shape, m[1].bias) == (5.0, (4, 9), None)
    assert family(4, (1, 3, 3)).scale == 2.0

    bare = registry.register_variant("pixels_bare", family, "Without bias.", bias=False)
    assert list(inspect.signature(bare).parameters) == ["num_classes", "in_shape", "scale"]
    assert models.create("pixels_bare", 5, (1, 1, 2))[1].bias is None
    direct = registry.register_variant("pixels_any", Pixels, "Any scale.", in_shape=(1, 4, 4))
    assert models.describe("pixels_any") == "Any scale." and direct.__name__ == "pixels_any"
    with pytest.raises(ConfigError, match="needs the option.*scale"):
        models.create("pixels_any")
    assert models.create("pixels_any", scale=1.5).spec["kwargs"] == {"scale": 1.5, "bias": True}
    with pytest.raises(ConfigError, match=r"has no option \['width'\]"):
        registry.builder_of("pixels", Pixels, "", defaults={"width": 3})
    with pytest.raises(ConfigError, match="must take"):
        registry.builder_of("flat", nn.Flatten, "")
