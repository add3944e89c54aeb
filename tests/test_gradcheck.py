"""striate.gradcheck against functions whose gradients are known in closed form."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from striate.errors import InputError
from striate.gradcheck import GradcheckResult, gradcheck, numerical_gradient, relative_error


def cubic(x):
    """f(x) = Σ x³ + Σ sin(x); ∇f = 3x² + cos(x)."""
    return (x**3).sum() + np.sin(x).sum() if isinstance(x, np.ndarray) else (x**3 + x.sin()).sum()


def cubic_grad(x):
    return 3 * x**2 + (np.cos(x) if isinstance(x, np.ndarray) else x.cos())


def test_relative_error_formula():
    err = relative_error(np.array([1.0, 0.0, -2.0, 1e-3]), np.array([1.1, 0.0, 2.0, 1e-3]))
    np.testing.assert_allclose(err, [0.1 / 2.1, 0.0, 1.0, 0.0])
    # tensors and arrays mix; the result is a float64 array
    assert relative_error(torch.tensor([2.0]), np.array([1.0])).dtype == np.float64


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_numerical_gradient_matches_closed_form(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    if kind == "torch":
        x = torch.from_numpy(x)
    before = x.copy() if kind == "numpy" else x.clone()
    num = numerical_gradient(cubic, x)
    assert type(num) is type(x) and num.shape == x.shape and num.dtype == x.dtype
    np.testing.assert_allclose(np.asarray(num), np.asarray(cubic_grad(x)), rtol=1e-8, atol=1e-9)
    assert (np.asarray(x) == np.asarray(before)).all()  # the caller's x is untouched


def test_numerical_gradient_of_quadratic_form():
    """f(x) = xᵀAx with A not symmetric: ∇f = (A + Aᵀ)x."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5))
    x = rng.normal(size=5)
    num = numerical_gradient(lambda v: v @ A @ v, x)
    np.testing.assert_allclose(num, (A + A.T) @ x, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_gradcheck_accepts_a_correct_gradient(kind):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 7))
    if kind == "torch":
        x = torch.from_numpy(x)
    result = gradcheck(cubic, x, cubic_grad(x), num_checks=12, seed=3)
    assert isinstance(result, GradcheckResult)
    assert len(result.indices) == 12 and len(set(result.indices)) == 12
    assert all(len(i) == 2 and 0 <= i[0] < 6 and 0 <= i[1] < 7 for i in result.indices)
    assert result.max_rel_error < 1e-7 and result.passed()
    # the reported analytic values are the entries at the reported indices
    analytic = np.asarray(cubic_grad(x))
    np.testing.assert_array_equal(result.analytic, [analytic[i] for i in result.indices])
    assert "max relative error" in str(result)


def test_gradcheck_flags_a_wrong_gradient():
    """The classic mistakes: a dropped term and a transposed matrix."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 4))
    dropped = gradcheck(cubic, x, 3 * x**2)  # forgot the cos(x) term
    assert dropped.max_rel_error > 1e-2 and not dropped.passed(1e-4)

    A = rng.normal(size=(4, 4))

    def f(M):
        return (A * M).sum() + 0.5 * (M**2).sum()  # ∇ = A + M

    right = gradcheck(f, x, A + x, num_checks=16)
    wrong = gradcheck(f, x, A.T + x, num_checks=16)
    assert right.max_rel_error < 1e-8
    assert wrong.max_rel_error > 1e-2


def test_gradcheck_on_a_kinked_function_away_from_the_kinks():
    x = torch.tensor([-2.0, -0.5, 0.3, 1.7], dtype=torch.float64)
    result = gradcheck(lambda v: v.abs().sum() + v.clamp(min=0).sum(), x, x.sign() + (x > 0))
    assert result.max_rel_error < 1e-9


def test_rounding_residue_where_the_gradient_is_zero_is_not_an_error():
    """f(x) = x₀² + x₁·0: the analytic ∂f/∂x₁ is a rounding residue 1e-17, the numeric one 0."""
    x = np.array([0.7, 0.3])
    analytic = np.array([1.4, 1e-17])
    result = gradcheck(lambda v: v[0] ** 2 + v[1] * 0.0, x, analytic)
    assert result.passed(1e-7)
    assert 0 < result.tiny < 1e-8  # 64·eps·|f| / h
    strict = gradcheck(lambda v: v[0] ** 2 + v[1] * 0.0, x, analytic, tiny=1e-300)
    assert strict.max_rel_error == 1.0  # CS231n's bare formula
    # a real error at a zero of the gradient still shows: 1e-6 is far above the noise
    wrong = gradcheck(lambda v: v[0] ** 2 + v[1] * 0.0, x, np.array([1.4, 1e-6]))
    assert wrong.max_rel_error > 1e-2


def test_one_ulp_of_f_where_the_gradient_is_zero_is_not_an_error():
    """The centred difference at a zero of the gradient can be one ulp of f over 2h (8.9e-10 for
    f ≈ 10, h = 1e-6), depending on how the machine's BLAS sums f: that is rounding, not an
    error (it failed the 1e-4 threshold on one CPU before the slack)."""
    x = np.array([0.7, 0.3])
    ulp = np.spacing(10.49)

    def f(v):  # true ∂f/∂v₁ = 0, but f(x + h·e₁) rounds one ulp above f(x - h·e₁)
        return 10.0 + v[0] ** 2 + (ulp if v[1] > 0.3 else 0.0)

    result = gradcheck(f, x, np.array([1.4, 0.0]), h=1e-6)
    assert result.numeric[1] == pytest.approx(ulp / 2e-6)
    assert result.passed(1e-4), str(result)
    assert relative_error(np.array([0.0]), result.numeric[1:], result.tiny)[0] > 1e-3  # no slack


def test_gradcheck_sampling_and_callables():
    x = np.linspace(-1, 1, 5)
    every = gradcheck(cubic, x, cubic_grad, num_checks=50)  # more checks than entries: all of them
    assert sorted(every.indices) == [(i,) for i in range(5)]
    a = gradcheck(cubic, np.ones((10, 10)), cubic_grad, num_checks=5, seed=7)
    b = gradcheck(cubic, np.ones((10, 10)), cubic_grad, num_checks=5, seed=7)
    c = gradcheck(cubic, np.ones((10, 10)), cubic_grad, num_checks=5, seed=8)
    assert a.indices == b.indices != c.indices

    def loss_and_grad(v):  # a function returning (loss, grad) can be passed as is
        return cubic(v), cubic_grad(v)

    assert gradcheck(loss_and_grad, x, loss_and_grad(x)[1]).passed()


def test_float32_warns_and_bad_input_raises():
    x32 = torch.randn(3, dtype=torch.float32)
    with pytest.warns(UserWarning, match="float64"):
        gradcheck(cubic, x32, cubic_grad(x32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradcheck(cubic, x32.double(), cubic_grad(x32.double()))  # float64: no warning
    with pytest.raises(InputError, match="floating-point"):
        numerical_gradient(lambda v: v.sum(), np.arange(3))
    with pytest.raises(InputError, match="shape"):
        gradcheck(cubic, np.ones(3), np.ones(4))
    with pytest.raises(InputError, match="scalar"):
        numerical_gradient(lambda v: v * 2, np.ones(3))
    with pytest.raises(InputError, match="h must be"):
        numerical_gradient(cubic, np.ones(3), h=0.0)
    with pytest.raises(InputError, match="num_checks"):
        gradcheck(cubic, np.ones(3), np.ones(3), num_checks=0)
    with pytest.raises(InputError, match="NumPy array or a torch tensor"):
        numerical_gradient(cubic, [1.0, 2.0])
