"""The OpenCL kernels of views, casts, comparisons, where, pow, class indices,
conv2d and pooling (_backend/opencl/ core, elementwise, loss and nn) against
NumPy and the CPU backend, on whatever OpenCL device is present (PoCL's CPU
device in CI); skips without one. Tolerances as tests/test_opencl_backend.py:
float32 within 1e-5 and float64 within 1e-12 of the reference's largest
magnitude."""
import os
import subprocess
import sys

import numpy as np
import pytest

import microgradbn as mg
from microgradbn._backend import cpu
from microgradbn._backend import opencl as cl
from test_opencl_backend import DTYPES, check, needs_device, rand

pytestmark = needs_device
FP64 = cl.is_available() and cl.device_info(0)["fp64"]
STORAGE = [np.float32, np.float64, np.bool_, np.int64] if FP64 else [np.float32, np.bool_, np.int64]


def view_of(base, view):
    """(offset, strides) in elements of the NumPy view `view` of `base`."""
    item = base.itemsize
    offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
    return offset, tuple(s // item for s in view.strides)


# ---- strided copies and casts -------------------------------------------------------

VIEWS = [
    ("transpose", (7, 33), lambda a: a.T),
    ("permute", (3, 4, 5), lambda a: a.transpose(2, 0, 1)),
    ("step slice", (1000,), lambda a: a[3:997:7]),
    ("reversed", (33, 7), lambda a: a[::-1, ::-2]),
    ("expand", (1, 33), lambda a: np.broadcast_to(a, (7, 33))),
    ("expand middle", (4, 1, 5), lambda a: np.broadcast_to(a, (4, 3, 5)).transpose(1, 0, 2)),
    ("one element", (1,), lambda a: a[0:1]),
    ("0-d", (5,), lambda a: a[2:3].reshape(())),
    ("empty", (7, 3), lambda a: a[3:3]),
]


@DTYPES
@pytest.mark.parametrize("name, shape, make", VIEWS, ids=[v[0] for v in VIEWS])
def test_contiguous_of_views(dtype, name, shape, make):
    base = rand(shape, dtype)
    view = make(base)
    offset, strides = view_of(base, view)
    got = cl.contiguous(cl.to_device(base), offset, view.shape, strides)
    assert got.shape == view.shape and got.dtype == base.dtype
    np.testing.assert_array_equal(got.numpy(), np.ascontiguousarray(view))


@DTYPES
def test_copy_into_slices_is_cat_and_accumulate_is_the_slicing_backward(dtype):
    a, b = rand((7, 33), dtype, 1), rand((7, 5), dtype, 2)
    out = cl.zeros((7, 38), dtype)
    cl.copy_strided(out, 0, (38, 1), cl.to_device(a), 0, (33, 1), a.shape)
    cl.copy_strided(out, 33, (38, 1), cl.to_device(b), 0, (5, 1), b.shape)
    np.testing.assert_array_equal(out.numpy(), np.concatenate([a, b], axis=1))
    # the gradient of x[1::2, ::3] flows into a view of zeros, twice
    grad = rand((3, 11), dtype, 3)
    dx = cl.zeros((7, 33), dtype)
    g = cl.to_device(grad)
    for _ in range(2):
        cl.copy_strided(dx, 33, (66, 3), g, 0, (11, 1), grad.shape, accumulate=True)
    want = np.zeros((7, 33), dtype)
    want[1::2, ::3] += grad
    want[1::2, ::3] += grad
    np.testing.assert_array_equal(dx.numpy(), want)


@pytest.mark.parametrize("src", STORAGE, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dst", STORAGE, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_astype_matches_numpy(src, dst, n):
    values = np.random.default_rng(n).standard_normal(n) * 50
    values[::5] = 0
    x = values.astype(src)
    got = cl.astype(cl.to_device(x), dst)
    assert got.dtype == np.dtype(dst) and got.shape == x.shape
    np.testing.assert_array_equal(got.numpy(), x.astype(dst))


@pytest.mark.parametrize("dtype, value", [(np.bool_, True), (np.int64, 2**62 + 1), (np.float32, -1.5)])
@pytest.mark.parametrize("shape", [(), (7,), (3, 33), (0, 2)])
def test_full_of_every_dtype(dtype, value, shape):
    np.testing.assert_array_equal(cl.full(shape, value, dtype).numpy(), np.full(shape, value, dtype))


def test_astype_special_values():
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 2.9, -2.9, 1e30], np.float32)
    np.testing.assert_array_equal(cl.astype(cl.to_device(x), bool).numpy(), x.astype(bool))
    ints = cl.astype(cl.to_device(x), np.int64).numpy()
    big = np.iinfo(np.int64)
    np.testing.assert_array_equal(ints, [0, big.max, big.min, 0, 2, -2, big.max])   # saturated, NaN -> 0
    np.testing.assert_array_equal(cl.to_device(np.array([True, False])).numpy(), [True, False])


def test_copy_errors():
    x = cl.to_device(np.arange(12, dtype=np.float32))
    y = cl.zeros((12,), np.float32)
    with pytest.raises(ValueError, match="more than once"):
        cl.copy_strided(y, 0, (0, 1), x, 0, (3, 1), (4, 3))
    with pytest.raises(ValueError, match="overlap"):
        cl.copy_strided(x, 1, (1,), x, 0, (1,), (6,))
    with pytest.raises(mg.ShapeError, match="too few"):
        cl.copy_strided(y, 0, (1,), x, 1, (1,), (12,))
    with pytest.raises(mg.ShapeError, match="before its first"):
        cl.copy_strided(y, 0, (1,), x, 0, (-1,), (12,))
    with pytest.raises(mg.ShapeError, match="2 strides"):
        cl.copy_strided(y, 0, (1, 1), x, 0, (1,), (12,))
    with pytest.raises(mg.DTypeError, match="accumulate"):
        cl.copy_strided(cl.zeros((12,), np.float32), 0, (1,), cl.astype(x, np.int64), 0, (1,), (12,), True)
    with pytest.raises(mg.DTypeError, match="int32"):
        cl.ClArray((2,), np.int32)
    with pytest.raises(mg.DTypeError, match="float32 or float64"):
        cl.unary(cl.UNARY_EXP, cl.astype(x, bool))


# ---- comparisons and where ------------------------------------------------------------

COMPARISONS = [(cl.CMP_EQ, np.equal), (cl.CMP_NE, np.not_equal), (cl.CMP_LT, np.less),
               (cl.CMP_LE, np.less_equal), (cl.CMP_GT, np.greater), (cl.CMP_GE, np.greater_equal)]
BROADCASTS = [((1000,), (1000,)), ((7, 33), (33,)), ((3, 1, 5), (4, 5)), ((1,), ()), ((7, 1), (1, 7))]


@DTYPES
@pytest.mark.parametrize("shape_a, shape_b", BROADCASTS)
def test_compare_matches_numpy(dtype, shape_a, shape_b):
    a, b = np.round(rand(shape_a, dtype, 4)), np.round(rand(shape_b, dtype, 5))   # rounded: many ties
    if a.size > 2:
        a.flat[1] = np.nan
    shape = np.broadcast_shapes(shape_a, shape_b)
    for op, ufunc in COMPARISONS:
        got = cl.compare(op, cl.to_device(a), cl.to_device(b), shape)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), ufunc(a, b))


@DTYPES
@pytest.mark.parametrize("shape_c, shape_a, shape_b", [((1000,), (1000,), (1000,)), ((7, 33), (33,), (7, 1)),
                                                       ((4, 1), (3,), ()), ((), (2, 3), (2, 3))])
def test_where_matches_numpy(dtype, shape_c, shape_a, shape_b):
    cond = rand(shape_c, np.float64, 6) > 0
    a, b = rand(shape_a, dtype, 7), rand(shape_b, dtype, 8)
    shape = np.broadcast_shapes(shape_c, shape_a, shape_b)
    got = cl.where(cl.to_device(cond), cl.to_device(a), cl.to_device(b), shape)
    np.testing.assert_array_equal(got.numpy(), np.where(cond, a, b))
    zero = cl.zeros((), dtype)   # the backward of where: the gradient where each side was chosen
    g = cl.to_device(rand(shape, dtype, 9))
    np.testing.assert_array_equal(cl.where(cl.to_device(cond), g, zero, shape).numpy(),
                                  np.where(cond, g.numpy(), 0))


def test_compare_and_where_errors():
    a, b = cl.zeros((3,), np.float32), cl.zeros((4,), np.float32)
    with pytest.raises(mg.ShapeError, match="broadcast"):
        cl.compare(cl.CMP_EQ, a, b, (3,))
    with pytest.raises(ValueError, match="unknown comparison"):
        cl.compare(9, a, a, (3,))
    with pytest.raises(mg.DTypeError, match="bool"):
        cl.where(a, a, a, (3,))
    if FP64:
        with pytest.raises(mg.DTypeError, match="one dtype"):
            cl.compare(cl.CMP_EQ, a, cl.zeros((3,), np.float64), (3,))


# ---- pow -----------------------------------------------------------------------------

EXPONENTS = [0.0, 1.0, 2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 1.7, -2.3]


@DTYPES
@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_pow_matches_the_cpu_backend(dtype, n):
    x, g = rand((n,), dtype, 10, low=0.1), rand((n,), dtype, 11)
    for p in EXPONENTS:
        check(cl.pow_scalar(cl.to_device(x), p), cpu.pow_scalar(x, p), dtype)
        check(cl.pow_scalar_backward(cl.to_device(x), cl.to_device(g), p), cpu.pow_scalar_backward(x, g, p), dtype)
    y = rand((n,), dtype, 12)
    check(cl.pow(cl.to_device(x), cl.to_device(y)), cpu.pow(x, y), dtype)
    with pytest.raises(mg.ShapeError):
        cl.pow(cl.to_device(x), cl.to_device(y[:0]))


# ---- class indices: cross entropy and nll ---------------------------------------------

@DTYPES
@pytest.mark.parametrize("rows, classes", [(1, 1), (7, 10), (33, 3), (1000, 7)])
def test_cross_entropy_and_nll_match_the_cpu_path(dtype, rows, classes):
    from microgradbn.nn import functional as F
    x = rand((rows, classes), dtype, 13) * 3
    target = np.random.default_rng(14).integers(0, classes, rows)
    xt = mg.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, target, reduction="none")
    row_grad = rand((rows,), dtype, 15)
    loss.backward(mg.tensor(row_grad))
    t = cl.to_device(target)
    losses, log_probs = cl.cross_entropy_forward(cl.to_device(x), t)
    check(losses, loss.detach().numpy(), dtype)
    check(cl.cross_entropy_backward(log_probs, t, cl.to_device(row_grad)), xt.grad.numpy(), dtype)
    # 'mean': one gradient, 1/N, for every row
    xm = mg.tensor(x, requires_grad=True)
    F.cross_entropy(xm, target).backward()
    mean_grad = np.array(1.0 / rows, dtype)
    check(cl.cross_entropy_backward(log_probs, t, cl.to_device(mean_grad)), xm.grad.numpy(), dtype)
    xn = mg.tensor(x, requires_grad=True)
    F.nll_loss(xn, target, reduction="none").backward(mg.tensor(row_grad))
    check(cl.nll_forward(cl.to_device(x), t), -x[np.arange(rows), target], dtype)
    check(cl.nll_backward(cl.to_device(row_grad), t, classes), xn.grad.numpy(), dtype)


def test_class_index_checks():
    x = cl.to_device(rand((3, 4), np.float32, 16))
    good, bad = cl.to_device(np.array([0, 3, 1])), cl.to_device(np.array([0, 4, -1]))
    assert cl.bad_class_index(good, 4) is None
    assert cl.bad_class_index(bad, 4) == 4
    assert cl.bad_class_index(cl.to_device(np.zeros(0, np.int64)), 4) is None
    gathered = cl.gather_classes(x, bad).numpy()
    assert gathered[0] == x.numpy()[0, 0] and np.isnan(gathered[1:]).all()
    with pytest.raises(mg.ShapeError, match="int64 index"):
        cl.gather_classes(x, cl.to_device(np.array([0.0, 1.0, 2.0], np.float32)))
    with pytest.raises(mg.ShapeError, match="values"):
        cl.scatter_classes(cl.zeros((2,), np.float32), good, 4)


# ---- convolution ------------------------------------------------------------------------

# (N, C_in, H, W), (C_out, kH, kW), stride, padding
CONV = [
    ((1, 1, 1, 1), (1, 1, 1), (1, 1), (0, 0)),
    ((2, 3, 7, 9), (4, 3, 3), (1, 1), (1, 1)),
    ((3, 2, 8, 7), (5, 3, 2), (2, 1), (1, 0)),
    ((2, 4, 6, 6), (3, 1, 1), (1, 1), (0, 0)),      # 1x1: x multiplied directly
    ((2, 4, 6, 5), (3, 1, 1), (2, 2), (0, 0)),
    ((1, 3, 11, 13), (6, 5, 5), (2, 2), (2, 2)),
    ((1, 2, 3, 3), (2, 5, 5), (1, 1), (2, 2)),      # kernel larger than the image
    ((7, 33, 5, 5), (7, 3, 3), (1, 1), (1, 1)),
]


def conv_inputs(dtype, x_shape, w_shape, seed=20):
    x = rand(x_shape, dtype, seed)
    w = rand((w_shape[0], x_shape[1]) + w_shape[1:], dtype, seed + 1)
    b = rand(w_shape[:1], dtype, seed + 2)
    return x, w, b


@DTYPES
@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV)
def test_conv2d_matches_the_cpu_backend(dtype, x_shape, w_shape, stride, padding):
    x, w, b = conv_inputs(dtype, x_shape, w_shape)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    want = cpu.conv2d_forward(x64, w64, b64, stride, padding)
    d = cl.to_device
    out = cl.conv2d_forward(d(x), d(w), d(b), stride, padding)
    check(out, want, dtype)
    check(cl.conv2d_forward(d(x), d(w), None, stride, padding), want - b64[:, None, None], dtype,
          scale=np.abs(want).max())
    grad = rand(want.shape, dtype, 30)
    wants = cpu.conv2d_backward(x64, w64, grad.astype(np.float64), stride, padding, True, True, True)
    got = cl.conv2d_backward(d(x), d(w), d(grad), stride, padding, True, True, True)
    for g, wnt in zip(got, wants):
        check(g, wnt, dtype)
    only_bias = cl.conv2d_backward(d(x), d(w), d(grad), stride, padding, False, False, True)
    assert only_bias[0] is None and only_bias[1] is None
    np.testing.assert_array_equal(only_bias[2].numpy(), got[2].numpy())


def test_conv2d_in_several_chunks_is_deterministic():
    """30 images of 16x64x64 with a 3x3 kernel: im2col needs ~70 MB, more than
    one 64 MB chunk, so the batch is cut in two."""
    x, w, b = conv_inputs(np.float32, (30, 16, 64, 64), (4, 3, 3), seed=40)
    d = cl.to_device
    out = cl.conv2d_forward(d(x), d(w), d(b), (1, 1), (1, 1))
    check(out, cpu.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), (1, 1), (1, 1)),
          np.float32)
    grad = rand(out.shape, np.float32, 41)
    first = [a.numpy() for a in cl.conv2d_backward(d(x), d(w), d(grad), (1, 1), (1, 1), True, True, True)]
    again = [a.numpy() for a in cl.conv2d_backward(d(x), d(w), d(grad), (1, 1), (1, 1), True, True, True)]
    for a, b_ in zip(first, again):
        np.testing.assert_array_equal(a, b_)
    wants = cpu.conv2d_backward(x.astype(np.float64), w.astype(np.float64), grad.astype(np.float64), (1, 1), (1, 1),
                                True, True, True)
    for g, wnt in zip(first, wants):
        np.testing.assert_allclose(g, wnt, rtol=1e-5, atol=1e-5 * np.abs(wnt).max())


def test_conv2d_errors():
    x, w = cl.zeros((2, 3, 5, 5), np.float32), cl.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(mg.ShapeError, match="do not fit"):
        cl.conv2d_forward(x, cl.zeros((4, 2, 3, 3), np.float32), None, (1, 1), (0, 0))
    with pytest.raises(ValueError, match="stride"):
        cl.conv2d_forward(x, w, None, (0, 1), (0, 0))
    with pytest.raises(mg.ShapeError, match="larger than the padded input"):
        cl.conv2d_forward(x, cl.zeros((4, 3, 7, 7), np.float32), None, (1, 1), (0, 0))
    with pytest.raises(mg.ShapeError, match="expected grad"):
        cl.conv2d_backward(x, w, cl.zeros((2, 4, 4, 4), np.float32), (1, 1), (0, 0), True, True, True)
    with pytest.raises(mg.ShapeError, match="4-D"):
        cl.conv2d_forward(cl.zeros((3, 5, 5), np.float32), w, None, (1, 1), (0, 0))


# ---- pooling --------------------------------------------------------------------------------

# (N, C, H, W), kernel, stride, padding
POOL = [
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1)),
    ((1, 2, 33, 7), (3, 2), (1, 2), (1, 1)),
    ((3, 1, 5, 5), (5, 5), (1, 1), (2, 2)),
    ((1, 7, 10, 12), (2, 3), (3, 1), (0, 1)),
]


@DTYPES
@pytest.mark.parametrize("shape, kernel, stride, padding", POOL)
def test_pools_match_the_cpu_backend(dtype, shape, kernel, stride, padding):
    x = np.round(rand(shape, dtype, 50) * 2) / 2   # ties: the first maximum must win
    if x.size > 3:
        x.flat[3] = np.nan
    d = cl.to_device
    out = cpu.max_pool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(cl.max_pool2d_forward(d(x), kernel, stride, padding).numpy(), out)
    grad = rand(out.shape, dtype, 51)
    np.testing.assert_array_equal(cl.max_pool2d_backward(d(x), d(grad), kernel, stride, padding).numpy(),
                                  cpu.max_pool2d_backward(x, grad, kernel, stride, padding))
    x = rand(shape, dtype, 52)
    check(cl.avg_pool2d_forward(d(x), kernel, stride, padding), cpu.avg_pool2d_forward(x, kernel, stride, padding),
          dtype)
    check(cl.avg_pool2d_backward(shape, d(grad), kernel, stride, padding),
          cpu.avg_pool2d_backward(shape, grad, kernel, stride, padding), dtype)


def test_pool_errors():
    x = cl.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="half the kernel"):
        cl.max_pool2d_forward(x, (2, 2), (1, 1), (2, 0))
    with pytest.raises(mg.ShapeError, match="expected grad"):
        cl.max_pool2d_backward(x, cl.zeros((1, 1, 3, 3), np.float32), (2, 2), (2, 2), (0, 0))
    with pytest.raises(mg.ShapeError, match="expected grad"):
        cl.avg_pool2d_backward((1, 1, 4, 4), cl.zeros((1, 1, 3, 3), np.float32), (2, 2), (2, 2), (0, 0))


NO_FP64 = r"""
import numpy as np
import microgradbn as mg
from microgradbn._backend import opencl as cl
x = cl.to_device(np.arange(4, dtype=np.float32))
try:
    cl.astype(x, np.float64)
except mg.DTypeError as e:
    assert "cl_khr_fp64" in str(e), e
else:
    raise AssertionError("a float64 cast on a device without cl_khr_fp64 did not raise")
assert cl.astype(cl.astype(x, bool), np.int64).numpy().tolist() == [0, 1, 1, 1]
print("ok")
"""


def test_casts_without_fp64():
    env = dict(os.environ, MGBN_OPENCL_FP64="0")
    run = subprocess.run([sys.executable, "-c", NO_FP64], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
