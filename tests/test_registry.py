"""The one registry shape: names to objects with a summary, generated help, did-you-mean."""

from __future__ import annotations

import pytest

from striate.errors import ConfigError
from striate.registry import Registry


def make() -> Registry:
    reg: Registry = Registry("schedule")

    @reg.register("cosine")
    def cosine():
        """Half a cosine from lr to 0."""

    reg.add("step", object(), "divide by 10 at fixed epochs", every=30)
    return reg


def test_lookup_listing_and_help():
    reg = make()
    assert reg.names() == ["cosine", "step"] and list(reg) == ["cosine", "step"] and len(reg) == 2
    assert "cosine" in reg and "linear" not in reg
    assert reg.entry("step").meta == {"every": 30}
    assert reg.entry("cosine").summary == "Half a cosine from lr to 0"  # the docstring's line
    assert reg.help() == "cosine: Half a cosine from lr to 0; step: divide by 10 at fixed epochs"


def test_unknown_names_list_the_known_and_suggest():
    with pytest.raises(ConfigError) as e:
        make().get("cosin")
    assert str(e.value) == (
        "unknown schedule 'cosin'; the schedules are cosine, step (did you mean 'cosine'?)"
    )
    with pytest.raises(ConfigError, match="unknown schedule 3"):
        make().get(3)
    with pytest.raises(ValueError, match="registered twice"):
        make().add("step", None)


def test_normalize_and_copy():
    reg: Registry = Registry("model", normalize=lambda s: s.replace("-", "_"))
    reg.add("convnet-small", 1, "a small net")
    assert reg.names() == ["convnet_small"]
    assert reg.get("convnet-small") == reg.get("convnet_small") == 1 and "convnet-small" in reg
    with pytest.raises(ConfigError, match=r"unknown model 'convnet-smal'.*'convnet_small'"):
        reg.get("convnet-smal")
    other = reg.copy()
    other.add("mlp", 2)
    assert "mlp" in other and "mlp" not in reg and other.normalize is reg.normalize


def test_a_registry_reads_as_a_mapping():
    reg = make()
    assert list(reg.keys()) == ["cosine", "step"] and reg["step"] is reg.get("step")
    assert dict(reg.items())["step"] is reg.get("step") and len(list(reg.values())) == 2
    with pytest.raises(KeyError):
        reg["linear"]
    assert reg.get("linear", None) is None
    assert reg != make() and len({reg, make()}) == 2  # identity, not contents
