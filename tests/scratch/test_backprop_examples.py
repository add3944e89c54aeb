"""Lecture 4's worked backpropagation examples, by hand with small gates, checked against
finite differences and torch autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from striate.scratch import numeric_gradient, relative_error


class AddGate:
    """q = x + y: passes the upstream gradient to both inputs (a gradient distributor)."""

    def forward(self, x, y):
        return x + y

    def backward(self, dq):
        return dq, dq


class MultiplyGate:
    """f = q z: each input's gradient is the upstream gradient times the other input (a swap)."""

    def forward(self, q, z):
        self.q, self.z = q, z
        return q * z

    def backward(self, df):
        return df * self.z, df * self.q


def test_add_then_multiply_circuit():
    # f(x, y, z) = (x + y) z at x = -2, y = 5, z = -4: q = 3, f = -12.
    x, y, z = -2.0, 5.0, -4.0
    add, mul = AddGate(), MultiplyGate()
    q = add.forward(x, y)
    f = mul.forward(q, z)
    assert (q, f) == (3.0, -12.0)
    dq, dz = mul.backward(1.0)
    dx, dy = add.backward(dq)
    assert (dx, dy, dz) == (-4.0, -4.0, 3.0)

    v = np.array([x, y, z])
    numeric = numeric_gradient(lambda v: (v[0] + v[1]) * v[2], v)
    np.testing.assert_allclose(numeric, [-4.0, -4.0, 3.0], rtol=1e-9)


def test_squared_norm_of_a_matrix_vector_product():
    # f(x, W) = ||W x||²; ∇_W f = 2 q xᵀ and ∇_x f = 2 Wᵀ q with q = W x. W is the lecture's;
    # x = (0.2, 0.4) is the slide's value (the text of the slides keeps only W): q = (0.22, 0.26),
    # f = 0.116.
    W = np.array([[0.1, 0.5], [-0.3, 0.8]])
    x = np.array([0.2, 0.4])
    q = W @ x
    f = q @ q
    np.testing.assert_allclose(q, [0.22, 0.26], rtol=1e-12)
    assert f == pytest.approx(0.116, rel=1e-12)

    grad_q = 2 * q
    grad_W = np.outer(grad_q, x)
    grad_x = W.T @ grad_q
    np.testing.assert_allclose(grad_W, [[0.088, 0.176], [0.104, 0.208]], rtol=1e-12)
    np.testing.assert_allclose(grad_x, [-0.112, 0.636], rtol=1e-12)

    def f_of(_):
        return np.sum((W @ x) ** 2)

    assert relative_error(grad_W, numeric_gradient(f_of, W)) < 1e-9
    assert relative_error(grad_x, numeric_gradient(f_of, x)) < 1e-9

    Wt = torch.tensor(W, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    (Wt @ xt).pow(2).sum().backward()
    np.testing.assert_allclose(grad_W, Wt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12)
