"""Grad-CAM against its formula written out here, with the layer's activations and gradients
obtained by running the network in two halves (no hooks), in float64 (tolerance 1e-10)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import ConfigError, InputError
from striate.interpret.cam import grad_cam
from striate.models.io import ImageClassifier

D64 = torch.float64


def small_cnn() -> nn.Sequential:
    """Two convolutions, each followed by batch norm and an in-place ReLU, then a head."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(8 * 5 * 5, 4),
    ).to(D64)
    net[1].running_mean.uniform_(-0.3, 0.3)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 10, 10, generator=torch.Generator().manual_seed(1), dtype=D64)


def reference(net: nn.Sequential, cut: int, x: torch.Tensor, t: list[int], relu: bool = True):
    """Selvaraju et al. eq. 1–2: A = net[:cut](x); α_k = mean_ij ∂y_c/∂A_kij;
    L = ReLU(Σ_k α_k A_k), N×1×h×w."""
    with torch.no_grad():
        acts = net[:cut](x)
    a = acts.clone().requires_grad_(True)
    rest = nn.Sequential(*[copy_of(m) for m in net[cut:]])  # in-place ReLU must not touch `a`
    scores = rest(a)
    (grads,) = torch.autograd.grad(scores[range(len(t)), t].sum(), a)
    n, c = acts.shape[:2]
    alpha = grads.reshape(n, c, -1).mean(2)
    cam = torch.einsum("nc,nchw->nhw", alpha, acts)[:, None]
    return cam.clamp(min=0) if relu else cam


def copy_of(m: nn.Module) -> nn.Module:
    if isinstance(m, nn.ReLU):
        return nn.ReLU()  # out of place
    return m


def test_grad_cam_is_the_papers_formula():
    net, x, t = small_cnn(), images(), [0, 3, 1]
    # layer "4" is followed by an in-place ReLU: Grad-CAM must see its output before the ReLU
    ours = grad_cam(net, x, t, layer="4", upsample=False)
    torch.testing.assert_close(ours, reference(net, 5, x, t), rtol=1e-10, atol=1e-12)
    raw = grad_cam(net, x, t, layer="4", upsample=False, relu=False)
    ref = reference(net, 5, x, t, relu=False)
    torch.testing.assert_close(raw, ref, rtol=1e-10, atol=1e-12)
    assert (ref < 0).any() and (ref > 0).any()  # so the ReLU above was tested
    # an earlier layer, given as the module itself
    ours = grad_cam(net, x, t, layer=net[2], upsample=False)
    torch.testing.assert_close(ours, reference(net, 3, x, t), rtol=1e-10, atol=1e-12)


def test_grad_cam_upsamples_bilinearly_to_the_input_and_defaults_to_the_last_conv():
    net, x = small_cnn(), images()
    with torch.no_grad():
        t = net(x).argmax(1).tolist()
    small = reference(net, 5, x, t)
    big = grad_cam(net, x)  # target None: the predicted class; layer None: the last conv, "4"
    assert big.shape == (3, 1, 10, 10)
    ref = F.interpolate(small, size=(10, 10), mode="bilinear", align_corners=False)
    torch.testing.assert_close(big, ref, rtol=1e-10, atol=1e-12)
    assert not big.requires_grad


def test_grad_cam_on_a_wrapped_model_with_class_names():
    net = small_cnn()
    model = ImageClassifier(net, ("a", "b", "c", "d"), (3, 10, 10)).eval()
    x = images(2)
    ours = grad_cam(model, x, "d", layer="4", upsample=False)  # the wrapped network's name
    torch.testing.assert_close(ours, reference(net, 5, x, [3, 3]), rtol=1e-10, atol=1e-12)


def test_grad_cam_errors():
    net, x = small_cnn(), images(2)
    with pytest.raises(ConfigError, match=r"no layer '5x'.*did you mean '5'"):
        grad_cam(net, x, layer="5x")
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(300, 4), nn.ReLU(), nn.Linear(4, 2)).to(D64)
    with pytest.raises(ConfigError, match="Grad-CAM needs a convolutional layer"):
        grad_cam(mlp, x)
    with pytest.raises(ConfigError, match=r"layer '7' must give a feature map N×C×H×W"):
        grad_cam(net, x, layer="7")
    with pytest.raises(ConfigError, match=r"target class 4 is out of range"):
        grad_cam(net, x, 4)
    with pytest.raises(InputError, match="N×C×H×W"):
        grad_cam(net, x[0])
    with pytest.raises(ConfigError, match="relu must be True or False"):
        grad_cam(net, x, relu="yes")

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(300, 2)

        def forward(self, v):
            return self.fc(self.conv(self.conv(v)).flatten(1))

    with pytest.raises(ConfigError, match=r"layer 'conv' ran 2 times"):
        grad_cam(Twice().to(D64), x)
    assert all(not m._forward_hooks for m in net.modules())


def test_grad_cam_leaves_the_model_as_it_found_it():
    net, x = small_cnn(), images(2)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grad_cam(net, x, 1)
    assert net.training and all(m.training for m in net.modules())
    assert all(not (m._forward_hooks or m._backward_hooks) for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
