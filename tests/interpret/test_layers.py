"""The shared part of striate.interpret: layers by name, targets, penultimate features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.errors import ConfigError
from striate.interpret.layers import (
    capture,
    conv_layers,
    features_at,
    find_layer,
    last_conv,
    last_linear,
    resolve_targets,
)
from striate.models.io import ImageClassifier


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 5, 3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3),
    )  # fmt: skip


def test_layers_of_a_wrapped_network_are_found_by_its_own_names_once():
    net = small_cnn()
    wrapped = ImageClassifier(net, ["a", "b", "c"], (3, 8, 8))
    assert find_layer(wrapped, "2") is net[2] and find_layer(wrapped, "net.2") is net[2]
    assert conv_layers(wrapped) == ["0", "2"] and last_conv(wrapped) == "2"
    assert last_linear(wrapped) == "8"
    with pytest.raises(ConfigError, match=r"no layer 'net\.9'.*did you mean"):
        find_layer(wrapped, "net.9")


def test_a_model_without_convolution_says_so():
    with pytest.raises(ConfigError, match="needs a convolutional layer"):
        last_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), "grad_cam")


def test_capture_records_the_output_and_leaves_no_hook():
    net = small_cnn()
    x = torch.rand(2, 3, 8, 8)
    with capture(net, "2") as seen:
        net(x)
    torch.testing.assert_close(seen[0], net[2](net[1](net[0](x))))
    assert not net[2]._forward_hooks


def test_targets_by_index_name_or_prediction_and_out_of_range():
    scores = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    assert resolve_targets(None, scores).tolist() == [1, 0]
    assert resolve_targets(2, scores).tolist() == [2, 2]
    assert resolve_targets(["c", "a"], scores, ["a", "b", "c"]).tolist() == [2, 0]
    assert resolve_targets("1", scores).tolist() == [1, 1]
    with pytest.raises(
        ConfigError, match=r"target class 3 is out of range: the model has 3 classes \(0–2\)"
    ):
        resolve_targets(3, scores)
    with pytest.raises(ConfigError, match="unknown class 'dog'"):
        resolve_targets("dog", scores, ["a", "b", "c"])
    with pytest.raises(ConfigError, match="one per image"):
        resolve_targets([0, 1, 2], scores)


def test_penultimate_features_are_what_the_classifier_reads():
    net = small_cnn().train()
    x = torch.rand(5, 3, 8, 8)
    feats = features_at(net, x, batch_size=2)
    assert net.training  # the mode is restored
    torch.testing.assert_close(feats, net.eval()[:8](x))
    torch.testing.assert_close(features_at(net, x, "2"), net[:3](x).flatten(1))
