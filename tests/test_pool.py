"""max_pool2d and avg_pool2d: against a plain-loop NumPy oracle, finite
differences and PyTorch; tie and NaN rules, SIMD paths, thread counts, errors."""
import numpy as np
import pytest

import microgradbn as mg
from microgradbn._backend import cpu
from microgradbn.ops.pool import avg_pool2d, max_pool2d

# (N, C, H, W), kernel, stride, padding
SHAPES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((1, 2, 7, 9), 3, 2, 1),
    ((3, 1, 5, 6), (3, 2), 1, 1),
    ((1, 1, 1, 1), 1, None, 0),
    ((2, 4, 33, 31), 2, 2, 0),
    ((2, 4, 13, 11), (3, 3), (3, 2), (1, 0)),
    ((1, 2, 6, 6), 4, 1, 2),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference_pool(kind, x, kernel, stride, padding, grad):
    """out and dx by the definitions, one window at a time (first maximum wins)."""
    (kh, kw), (ph, pw) = _pair(kernel), _pair(padding)
    sh, sw = _pair(kernel if stride is None else stride)
    n, c, h, w = x.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out, dx = np.zeros((n, c, oh, ow)), np.zeros(x.shape)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    y0, x0 = i * sh - ph, j * sw - pw
                    cells = [(y, xx) for y in range(max(y0, 0), min(y0 + kh, h))
                             for xx in range(max(x0, 0), min(x0 + kw, w))]
                    values = [x[b, ch, y, xx] for y, xx in cells]
                    if kind == "max":
                        arg = int(np.argmax(values))       # the first maximum
                        out[b, ch, i, j] = values[arg]
                        dx[(b, ch) + cells[arg]] += grad[b, ch, i, j]
                    else:
                        out[b, ch, i, j] = sum(values) / (kh * kw)
                        for cell in cells:
                            dx[(b, ch) + cell] += grad[b, ch, i, j] / (kh * kw)
    return out, dx


POOLS = {"max": max_pool2d, "avg": avg_pool2d}


def _run(kind, x, kernel, stride, padding, grad):
    xt = mg.tensor(x, requires_grad=True)
    out = POOLS[kind](xt, kernel, stride, padding)
    out.backward(grad)
    return out.data, xt.grad.data


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    x.reshape(-1)[::5] = np.round(x.reshape(-1)[::5])   # ties
    return x.astype(dtype)


def _out_shape(x, kernel, stride, padding):
    return x.shape[:2] + cpu.pooled_size(x.shape[2:], _pair(kernel), _pair(kernel if stride is None else stride),
                                         _pair(padding))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,kernel,stride,padding", SHAPES)
def test_matches_loop_oracle(kind, shape, kernel, stride, padding, dtype):
    x = _data(shape, dtype)
    grad = np.random.default_rng(1).standard_normal(_out_shape(x, kernel, stride, padding)).astype(dtype)
    out, dx = _run(kind, x, kernel, stride, padding, grad)
    want_out, want_dx = reference_pool(kind, x.astype(np.float64), kernel, stride, padding, grad.astype(np.float64))
    assert out.dtype == dx.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, want_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,kernel,stride,padding", [((1, 2, 5, 6), 3, 2, 1), ((2, 1, 4, 4), 2, None, 0)])
def test_gradients_match_finite_differences(kind, shape, kernel, stride, padding):
    x = np.random.default_rng(2).permutation(np.prod(shape)).reshape(shape) / 7.0   # no ties
    probe = np.random.default_rng(3).standard_normal(_out_shape(x, kernel, stride, padding))
    _, dx = _run(kind, x, kernel, stride, padding, probe)
    numeric = np.zeros_like(x)
    eps = 1e-6
    for i in range(x.size):
        for sign in (1, -1):
            shifted = x.copy()
            shifted.reshape(-1)[i] += sign * eps
            out = POOLS[kind](mg.tensor(shifted), kernel, stride, padding).data
            numeric.reshape(-1)[i] += sign * np.sum(out * probe) / (2 * eps)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,kernel,stride,padding", SHAPES)
def test_matches_torch(kind, shape, kernel, stride, padding, dtype):
    torch = pytest.importorskip("torch")
    x = _data(shape, dtype, seed=4)
    xt = torch.tensor(x, requires_grad=True)
    fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    want = fn(xt, kernel, stride, padding)
    grad = np.random.default_rng(5).standard_normal(tuple(want.shape)).astype(dtype)
    want.backward(torch.tensor(grad))
    out, dx = _run(kind, x, kernel, stride, padding, grad)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)


def test_ties_route_to_first_maximum_and_nan_wins():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, np.nan, 5.0],
                    [-np.inf, -np.inf, 0.0, -0.0],
                    [-np.inf, -np.inf, -0.0, 0.0]]]])
    for kernel, stride in ((2, 2), (3, 1)):
        out, dx = _run("max", x, kernel, stride, 0, np.ones(_out_shape(x, kernel, stride, 0)))
        torch = pytest.importorskip("torch")
        xt = torch.tensor(x, requires_grad=True)
        want = torch.nn.functional.max_pool2d(xt, kernel, stride)
        want.sum().backward()
        np.testing.assert_array_equal(out, want.detach().numpy())
        np.testing.assert_array_equal(np.signbit(out), np.signbit(want.detach().numpy()))
        np.testing.assert_array_equal(dx, xt.grad.numpy())
    out, dx = _run("max", x, 2, 2, 0, np.ones((1, 1, 2, 2)))
    assert out[0, 0, 0, 0] == 3.0 and dx[0, 0, 0, 1] == 1.0 and dx[0, 0, 1, 0] == 0.0
    assert np.isnan(out[0, 0, 0, 1]) and dx[0, 0, 1, 2] == 1.0
    assert out[0, 0, 1, 0] == -np.inf and dx[0, 0, 2, 0] == 1.0


def _all_outputs(kind, isa=None, threads=None):
    x = _data((8, 16, 30, 30), np.float32, seed=6)
    grad = np.random.default_rng(7).standard_normal((8, 16, 15, 15)).astype(np.float32)
    previous = cpu.backend_info()
    try:
        if isa:
            cpu.set_isa(isa)
        if threads:
            cpu.set_num_threads(threads)
        return _run(kind, x, 2, 2, 0, grad) + _run(kind, x, 3, 2, 1, grad)
    finally:
        cpu.set_isa(previous["isa"])
        cpu.set_num_threads(previous["threads"])


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_same_bits_for_every_thread_count_and_simd_path(kind):
    first = _all_outputs(kind, isa="scalar", threads=1)
    for options in ({"threads": 2}, {"threads": 3}, {}):
        for a, b in zip(first, _all_outputs(kind, **options)):
            np.testing.assert_array_equal(a, b)


def test_errors():
    x = mg.zeros(2, 3, 5, 5)
    with pytest.raises(mg.ShapeError, match="4-D input"):
        max_pool2d(mg.zeros(3, 5, 5), 2)
    with pytest.raises(ValueError, match="pad should be at most half"):
        avg_pool2d(x, 2, padding=2)
    with pytest.raises(mg.ShapeError, match="kernel size 6x6 is larger than the padded input 5x5"):
        max_pool2d(x, 6)
    with pytest.raises(ValueError, match="must be positive"):
        max_pool2d(x, 2, stride=0)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        avg_pool2d(x, 2.5)
    with pytest.raises(mg.DTypeError, match="float32 or float64"):
        max_pool2d(mg.zeros(1, 1, 4, 4, dtype=mg.int64), 2)
    with pytest.raises(mg.ShapeError, match="empty image"):
        max_pool2d(mg.zeros(1, 1, 0, 4), 2, padding=1)


def test_c_library_reports_errors_as_exceptions():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="mg_max_pool2d_forward: padding 2x0 is more than half the kernel 2x2"):
        cpu.max_pool2d_forward(x, (2, 2), (2, 2), (2, 0))


# ---- nn.MaxPool2d, nn.AvgPool2d -----------------------------------------------

def test_modules():
    pytest.importorskip("microgradbn.nn.module")
    from microgradbn.nn.pooling import AvgPool2d, MaxPool2d

    x = _data((2, 3, 9, 8), np.float64, seed=8)
    for cls, fn in ((MaxPool2d, max_pool2d), (AvgPool2d, avg_pool2d)):
        layer = cls(3, stride=2, padding=1)
        assert repr(layer) == f"{cls.__name__}(kernel_size=3, stride=2, padding=1)"
        assert list(layer.parameters()) == []
        np.testing.assert_array_equal(layer(mg.tensor(x)).data, fn(mg.tensor(x), 3, 2, 1).data)
    assert repr(MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    assert MaxPool2d((2, 3)).stride == (2, 3)
