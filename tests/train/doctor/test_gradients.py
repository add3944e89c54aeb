"""The gradient check catches a wrong backward pass, and passes the right one."""

from __future__ import annotations

import torch
from torch import nn

from striate.train.doctor import doctor
from tests.train.doctor.helpers import FAST


class _BadTanh(torch.autograd.Function):
    """tanh whose backward forgets the square: d tanh/dx is 1 - y², not 1 - y."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y)


class _GoodTanh(_BadTanh):
    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class _Act(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn.apply(x)


def _mlp_with(fn) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), _Act(fn), nn.Linear(32, 10))


def test_a_wrong_backward_fails_the_gradient_check(digits):
    check = doctor(_mlp_with(_BadTanh), digits, checks=["gradcheck"], **FAST)["gradcheck"]
    assert check.status == "fail", check
    assert check.value > 1e-2
    # the same layer with the right derivative passes: the check is about the backward
    good = doctor(_mlp_with(_GoodTanh), digits, checks=["gradcheck"], **FAST)["gradcheck"]
    assert good.status == "pass", good
    assert good.value < 1e-6
