"""Instance norm against torch's layer, conditional instance norm against per-style instance norms
and the convex combination of γ, β; gradients against finite differences in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.errors import ConfigError, InputError
from striate.synthesis.normalization import ConditionalInstanceNorm2d, InstanceNorm2d


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _input(n=3, c=4, h=5, w=7, dtype=torch.float32, seed=1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, h, w, generator=g) * 3 + 2).to(dtype)


def test_instance_norm_equals_torch_in_forward_and_gradient():
    ours = _randomize(InstanceNorm2d(4))
    theirs = nn.InstanceNorm2d(4, affine=True)
    theirs.load_state_dict(ours.state_dict())
    x1 = _input().requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = ours(x1), theirs(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    up = _input(seed=2)
    (y1 * up).sum().backward()
    (y2 * up).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_instance_norm_without_affine_equals_torch():
    x = _input()
    torch.testing.assert_close(
        InstanceNorm2d(4, affine=False)(x), nn.InstanceNorm2d(4)(x), rtol=1e-5, atol=1e-5
    )


def test_instance_norm_gradcheck():
    norm = _randomize(InstanceNorm2d(3)).double()
    x = _input(2, 3, 4, 5, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, g, b: _with(norm, g, b)(x), (x, *_params(norm)))


def _params(m: nn.Module) -> tuple[torch.Tensor, ...]:
    return tuple(p.detach().clone().requires_grad_(True) for p in (m.weight, m.bias))


def _with(norm, gamma, beta):
    """`norm` with its γ, β replaced by tensors gradcheck differentiates."""

    def run(x, *style):
        saved = norm.weight, norm.bias
        del norm.weight, norm.bias
        norm.weight, norm.bias = gamma, beta
        try:
            return norm(x, *style)
        finally:
            del norm.weight, norm.bias
            norm.weight, norm.bias = saved

    return run


@pytest.mark.parametrize("style", [0, 2])
def test_conditional_one_hot_equals_that_style_instance_norm(style):
    cin = _randomize(ConditionalInstanceNorm2d(4, styles=3))
    single = InstanceNorm2d(4)
    single.load_state_dict({"weight": cin.weight[style], "bias": cin.bias[style]})
    x = _input()
    want = single(x)
    one_hot = torch.zeros(len(x), 3)
    one_hot[:, style] = 1
    for given in (style, torch.full((len(x),), style), one_hot, one_hot[0]):
        torch.testing.assert_close(cin(x, given), want, rtol=1e-6, atol=1e-6)


def test_conditional_indices_pick_each_image_its_style():
    cin = _randomize(ConditionalInstanceNorm2d(4, styles=3))
    x = _input()
    styles = torch.tensor([2, 0, 1])
    y = cin(x, styles)
    for i, s in enumerate(styles.tolist()):
        torch.testing.assert_close(y[i : i + 1], cin(x[i : i + 1], s))


def test_mixing_weights_give_the_convex_combination_of_gamma_and_beta():
    cin = _randomize(ConditionalInstanceNorm2d(4, styles=3)).double()
    x = _input(dtype=torch.float64)
    w = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.25, 0.75]], dtype=torch.float64)
    gamma = (w[:, :, None] * cin.weight[None]).sum(1)  # Σ_s w_s γ_s, N×C
    beta = (w[:, :, None] * cin.bias[None]).sum(1)
    mean = x.mean((2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean((2, 3), keepdim=True)
    want = (x - mean) / torch.sqrt(var + cin.eps) * gamma[..., None, None] + beta[..., None, None]
    torch.testing.assert_close(cin(x, w), want)
    torch.testing.assert_close(cin(x, w * 4), want)  # weights are made to sum to 1


def test_conditional_gradcheck_with_indices_and_mixing_weights():
    cin = _randomize(ConditionalInstanceNorm2d(3, styles=2)).double()
    x = _input(2, 3, 4, 5, torch.float64).requires_grad_(True)
    g, b = _params(cin)
    run = _with(cin, g, b)
    assert torch.autograd.gradcheck(lambda x, g, b: run(x, torch.tensor([1, 0])), (x, g, b))
    w = torch.tensor([[0.3, 0.7], [0.6, 0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, g, b, w: run(x, w), (x, g, b, w))


@pytest.mark.parametrize(
    ("style", "match"),
    [
        (None, "renders 3 styles"),
        (3, "index must be in 0–2"),
        (-1, "index must be in 0–2"),
        (torch.tensor([0, 5, 1]), "indices must be in 0–2"),
        (torch.tensor([0, 1]), "1-D tensor of 3"),
        (torch.ones(3, 2), "mixing weights must be 3×3"),
        (torch.tensor([0.5, -0.5, 1.0]), "non-negative"),
        (torch.zeros(3), "non-negative and not all zero"),
        ("starry", "give an int index"),
    ],
)
def test_bad_styles_are_one_line_errors(style, match):
    cin = ConditionalInstanceNorm2d(4, styles=3)
    with pytest.raises(InputError, match=match):
        cin(_input(), style)


def test_bad_construction_and_input():
    with pytest.raises(ConfigError, match="channels must be"):
        InstanceNorm2d(0)
    with pytest.raises(ConfigError, match="styles must be"):
        ConditionalInstanceNorm2d(4, styles=0)
    with pytest.raises(InputError, match=r"N×4×H×W"):
        InstanceNorm2d(4)(torch.zeros(2, 3, 5, 5))
