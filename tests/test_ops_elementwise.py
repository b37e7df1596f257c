"""Elementwise ops through check_op (NumPy oracle, PyTorch, every layout),
float64 gradcheck for each, and the promotion and error rules."""
import numpy as np
import pytest

import microgradbn as mg
from helpers import SIZES, check_op, gradcheck64, torch

BINARY = {
    "add": (lambda a, b: a + b, np.add, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, np.subtract, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, np.multiply, lambda a, b: a * b),
    "div": (lambda a, b: a / b, np.divide, lambda a, b: a / b),
}
BROADCAST = [((4, 3), (3,)), ((4, 1), (1, 5)), ((2, 3, 4), (3, 1)), ((1,), (7,)), ((5, 1, 3), (5, 4, 3))]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("n", SIZES)
def test_binary_same_shape(name, n):
    mg_fn, np_fn, t_fn = BINARY[name]
    check_op(mg_fn, np_fn, [(n,), (n,)], t_fn, low=0.5, high=2.0)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", BROADCAST)
def test_binary_broadcast(name, shapes):
    mg_fn, np_fn, t_fn = BINARY[name]
    check_op(mg_fn, np_fn, list(shapes), t_fn, low=0.5, high=2.0)


UNARY = {
    "exp": (mg.exp, np.exp, "exp", -5, 5),
    "log": (mg.log, np.log, "log", 0.1, 10),
    "sqrt": (mg.sqrt, np.sqrt, "sqrt", 0.1, 10),
    "tanh": (mg.tanh, np.tanh, "tanh", -4, 4),
    "sigmoid": (mg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "sigmoid", -6, 6),
    "relu": (mg.relu, lambda x: np.maximum(x, 0), "relu", -2, 2),
    "abs": (mg.abs, np.abs, "abs", -2, 2),
    "neg": (lambda x: -x, np.negative, "neg", -2, 2),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), None, -2, 2),
    "pow2": (lambda x: x ** 2, lambda x: x ** 2, None, -2, 2),
    "pow_tensor": (lambda x: x ** (x * 0.5), lambda x: x ** (x * 0.5), None, 0.5, 2),
    "rpow": (lambda x: 2 ** x, lambda x: 2 ** x, None, -2, 2),
}


def _torch_unary(name):
    if torch is None:
        return None
    return {"clamp": lambda x: x.clamp(-0.5, 0.7), "pow2": lambda x: x ** 2,
            "pow_tensor": lambda x: x ** (x * 0.5), "rpow": lambda x: 2 ** x}.get(
        name, lambda x: getattr(torch, UNARY[name][2])(x))


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", [(1,), (7,), (33,), (1000,), (4, 9)])
def test_unary(name, shape):
    mg_fn, np_fn, _, low, high = UNARY[name]
    check_op(mg_fn, np_fn, [shape], _torch_unary(name), low=low, high=high)


@pytest.mark.parametrize("fn,low", [
    (lambda a, b: a + b, -2), (lambda a, b: a - b, -2), (lambda a, b: a * b, -2),
    (lambda a, b: a / b, 0.5), (lambda a, b: a ** b, 0.5),
    (lambda a, b: mg.where(a > 0, a, b), -2)])
def test_binary_gradcheck(fn, low):
    gradcheck64(fn, [(3, 4), (4,)], low=low)


@pytest.mark.parametrize("name", UNARY)
def test_unary_gradcheck(name):
    mg_fn, _, _, low, high = UNARY[name]
    gradcheck64(mg_fn, [(2, 5)], low=low, high=high)


def test_where_and_comparisons():
    a = mg.tensor([[1.0, -2.0, 3.0]], requires_grad=True)
    b = mg.tensor([[0.5], [4.0]], requires_grad=True)
    out = mg.where(a > b, a, b)
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out.data, np.where(a.data > b.data, a.data, b.data))
    out.sum().backward()
    np.testing.assert_array_equal(a.grad.data, [[1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(b.grad.data, [[1.0], [3.0]])
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        r = getattr(a, op)(b)
        assert r.dtype == np.bool_ and not r.requires_grad
        np.testing.assert_array_equal(r.data, getattr(a.data, op)(b.data))


def test_type_promotion():
    f32 = mg.ones(3)
    f64 = mg.ones(3, dtype=mg.float64)
    assert (f32 + f64).dtype == mg.float64
    assert (f32 * 2.5).dtype == mg.float32           # a Python scalar does not promote
    assert (2 * f64).dtype == mg.float64
    assert (f32 + mg.tensor(1.0, dtype=mg.float64)).dtype == mg.float32   # nor does a 0-d tensor
    ints = mg.tensor([1, 2, 3])
    assert ints.dtype == mg.int64
    assert (ints + 1).dtype == mg.int64
    assert (ints * 0.5).dtype == mg.float32
    assert (ints + f64).dtype == mg.float64
    assert mg.tensor(np.arange(3, dtype=np.float64)).dtype == mg.float64
    assert mg.tensor([1.0, 2.0]).dtype == mg.float32
    a = mg.ones(3, requires_grad=True)
    b = mg.ones(3, dtype=mg.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == mg.float32 and b.grad.dtype == mg.float64


def test_shape_mismatch_message_names_both_shapes():
    with pytest.raises(mg.ShapeError, match=r"\(3, 4\).*\(5,\)"):
        mg.ones(3, 4) + mg.ones(5)
    with pytest.raises(ValueError):           # ShapeError is a ValueError
        mg.ones(2) * mg.ones(3)


def test_clamp_errors_and_integers():
    with pytest.raises(ValueError, match="at least one"):
        mg.ones(3).clamp()
    assert mg.tensor([-3, 0, 5]).clamp(0, 2).tolist() == [0, 0, 2]
    assert mg.tensor([-3, 0, 5]).relu().tolist() == [0, 0, 5]
    assert mg.tensor([1, 2]).exp().dtype == mg.float32


def test_special_values_follow_numpy():
    x = mg.tensor([0.0, -0.0, np.inf, -np.inf, np.nan, -100.0, 1e-40], dtype=mg.float32)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(x.exp().data, np.exp(x.data))
        np.testing.assert_array_equal(x.log().data, np.log(x.data))
        np.testing.assert_array_equal(x.sqrt().data, np.sqrt(x.data))
        np.testing.assert_array_equal(x.tanh().data, np.tanh(x.data))
        np.testing.assert_array_equal(x.relu().data, np.where(x.data < 0, 0, x.data))


# ---- pow: a number exponent (C kernel with PyTorch's shortcuts) and tensor ** tensor

POW_EXPONENTS = [0, 1, 2, 3, 0.5, -0.5, -1, -2, 2.5, -1.3]


@pytest.mark.parametrize("p", POW_EXPONENTS)
@pytest.mark.parametrize("n", SIZES)
def test_pow_scalar(p, n):
    low = -2.0 if p in (0, 1, 2, 3) else 0.5      # fractional or negative powers: x > 0
    check_op(lambda x: x ** p, lambda x: x ** p, [(n,)], (lambda x: x ** p) if torch else None,
             low=low, high=2.0)


@pytest.mark.parametrize("p", POW_EXPONENTS)
def test_pow_scalar_gradcheck(p):
    gradcheck64(lambda x: x ** p, [(3, 4)], low=0.5)


ARITHMETIC_POWERS = (0, 1, 2, 3, -1, -2)        # products and quotients: IEEE rounding fixes the bits


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_shortcuts_follow_pytorch(dtype):
    """PyTorch's shortcuts: the same bits where the power is arithmetic (x*x,
    1/x, ...; the gradient of x^p needs x^(p-1)), within 2 ulp elsewhere
    (sqrt, rsqrt and pow: ours are sqrtf, 1/sqrtf and the C library's pow;
    PyTorch's CPU float32 sqrt, for one, is not correctly rounded)."""
    x = np.random.default_rng(3).uniform(0.1, 3.0, 1000).astype(dtype)
    x[:4] = [0.0, 1.0, np.inf, np.nan]
    g = np.random.default_rng(4).standard_normal(1000).astype(dtype)
    for p in (0, 1, 2, 3, 0.5, -0.5, -1, -2):
        ours, theirs = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours ** p, theirs ** p
        y.backward(g)
        ty.backward(torch.tensor(g))
        for got, want, power in [(y.data, ty.detach().numpy(), p), (ours.grad.data, theirs.grad.numpy(), p - 1)]:
            if power in ARITHMETIC_POWERS:
                np.testing.assert_array_equal(got, want, err_msg=f"p={p}")
            else:
                np.testing.assert_array_max_ulp(got[4:], want[4:], maxulp=2)
    np.testing.assert_array_equal((mg.tensor(x) ** 0.5).data, np.sqrt(x))


@pytest.mark.parametrize("shapes", [[(7,), (7,)], [(33,), (1,)], [(1000,), (1000,)], [(1,), (1,)],
                                    [(4, 3), (3,)], [(4, 1), (1, 5)]])
def test_pow_tensor_exponent(shapes):
    check_op(lambda x, y: x ** y, lambda x, y: x ** y, shapes, (lambda x, y: x ** y) if torch else None,
             low=0.5, high=2.0)


def test_pow_tensor_gradient_where_the_derivative_does_not_exist():
    x = mg.tensor([0.0, 0.0, 0.0, 2.0, -2.0], dtype=mg.float64, requires_grad=True)
    y = mg.tensor([0.0, 2.0, -1.0, 0.0, 0.5], dtype=mg.float64, requires_grad=True)
    (x ** y).sum().backward()
    # dx: 0 where y = 0; dy: 0 where x = 0 and y >= 0; NaN for log of a negative base
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, -np.inf, 0.0, np.nan])
    np.testing.assert_array_equal(y.grad.data, [0.0, 0.0, -np.inf, np.log(2.0), np.nan])
    if torch is not None:
        tx, ty = (torch.tensor(t.data, requires_grad=True) for t in (x, y))
        (tx ** ty).sum().backward()
        np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())
        np.testing.assert_array_equal(y.grad.data, ty.grad.numpy())


def test_pow_dtypes():
    ints = mg.tensor([1, 2, 3])
    assert (ints ** 2).dtype == mg.int64 and (ints ** 2).tolist() == [1, 4, 9]
    assert (ints ** 0.5).dtype == mg.float32
    assert (mg.ones(3, dtype=mg.float64) ** 2).dtype == mg.float64
    assert (2 ** mg.tensor([1.0, 3.0])).tolist() == [2.0, 8.0]
    assert (mg.tensor([4.0]) ** mg.tensor(0.5, dtype=mg.float64)).dtype == mg.float32
    with pytest.raises(ValueError, match="negative integer powers"):
        ints ** -1
