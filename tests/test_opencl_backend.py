"""The OpenCL backend (microgradbn/_backend/opencl/, src/opencl/) against
NumPy and the paper's BN written out in float64 (microgradbn.reference).

Runs on whatever OpenCL device is present (PoCL's CPU device in CI) and skips
without one; the no-runtime behaviour is tested in a subprocess with
MGBN_OPENCL_LIBRARY pointing at a missing file, which needs no device.
Tolerances: float32 within 1e-5 and float64 within 1e-12 of the largest
magnitude of the float64 reference.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import microgradbn as mg
from microgradbn._backend import opencl as cl
from microgradbn.reference import bn_paper

needs_device = pytest.mark.skipif(not cl.is_available(), reason="no OpenCL device: " + cl.unavailable_reason())
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _dtypes():
    if cl.is_available() and not cl.device_info(0)["fp64"]:
        return [np.float32]
    return [np.float32, np.float64]


DTYPES = pytest.mark.parametrize("dtype", _dtypes(), ids=lambda d: np.dtype(d).name)


def check(got, want, dtype, tol=None, scale=None):
    """got (a ClArray) equals want (float64 NumPy) within tol of scale, by
    default want's largest magnitude (results that cancel pass the size of
    their terms)."""
    assert isinstance(got, cl.ClArray)
    got = got.numpy()
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape and got.dtype == np.dtype(dtype)
    tol = TOL[np.dtype(dtype)] if tol is None else tol
    if scale is None:
        scale = float(np.abs(want).max(initial=0.0)) or 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def rand(shape, dtype, seed=0, low=None):
    x = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:
        x = np.abs(x) + low
    return x.astype(dtype)


# ---- no runtime ------------------------------------------------------------------

NO_RUNTIME = r"""
import microgradbn as mg
from microgradbn._backend import opencl as cl
assert mg.opencl.is_available() is False
reason = mg.opencl.unavailable_reason()
assert "pocl-opencl-icd" in reason and "/no/such/libOpenCL.so.1" in reason, reason
assert mg.opencl.devices() == [] and mg.opencl.device_count() == 0
try:
    cl.init()
except RuntimeError as e:
    assert isinstance(e, mg.BackendError) and "install an OpenCL runtime" in str(e), e
else:
    raise AssertionError("init() without a runtime did not raise")
try:
    cl.ClArray((3,), "float32")
except mg.BackendError as e:
    assert "mg_cl_alloc" in str(e), e
else:
    raise AssertionError("a ClArray without a runtime did not raise")
assert mg.backend_info()["opencl_available"] is False
x = mg.tensor([1.0, 2.0])
assert (x + x).numpy().tolist() == [2.0, 4.0]
print("ok")
"""


def test_without_runtime_is_unavailable_and_cpu_still_works():
    env = dict(os.environ, MGBN_OPENCL_LIBRARY="/no/such/libOpenCL.so.1")
    run = subprocess.run([sys.executable, "-c", NO_RUNTIME], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_runtime_without_devices_is_unavailable(tmp_path):
    """ocl-icd with an empty vendor directory: the library loads, no platform shows."""
    env = dict(os.environ, OCL_ICD_VENDORS=str(tmp_path))
    code = "import microgradbn as mg; print(mg.opencl.is_available()); print(mg.opencl.unavailable_reason())"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    available, reason = run.stdout.strip().split("\n", 1)
    if available == "True":
        pytest.skip("this OpenCL loader ignores OCL_ICD_VENDORS")
    assert ("cannot load" in reason or "reports no usable device" in reason) and "pocl-opencl-icd" in reason


def test_pocl_cache_dir_gets_a_writable_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "POCL_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    code = "import os, microgradbn; print(os.environ['POCL_CACHE_DIR'])"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "microgradbn" / "pocl")


NO_FP64 = r"""
import numpy as np
import microgradbn as mg
from microgradbn._backend import opencl as cl
from microgradbn.reference import bn_paper
assert cl.device_info(0)["fp64"] is False and cl.statistics_dtype(0) == np.float32
try:
    cl.unary(cl.UNARY_EXP, cl.to_device(np.ones(3)))
except TypeError as e:
    assert isinstance(e, mg.DTypeError) and "has no float64 (cl_khr_fp64)" in str(e), e
else:
    raise AssertionError("float64 ran on a device without cl_khr_fp64")
rng = np.random.default_rng(0)
def close(got, want, tol=1e-4):   # float sums (no float64 to accumulate in)
    got, want = got.numpy(), np.asarray(want)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= tol * max(np.abs(want).max(), 1.0), (got, want)
for shape in [(100, 7), (16, 3, 40)]:
    x = (rng.standard_normal(shape) * 2 + 50).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y, mean, rstd, var = cl.batch_norm_train_forward(cl.to_device(x), None, None, 1e-5)
    assert mean.dtype == np.float32
    close(y, bn_paper.paper_forward(x))
    dx, dw, db = cl.batch_norm_backward(cl.to_device(dy), cl.to_device(x), mean, rstd, None, True, True, True)
    want = bn_paper.paper_backward(dy, x)
    close(dx, want[0]); close(dw, want[1]); close(db, want[2])
x = rng.standard_normal((30, 1000)).astype(np.float32)
close(cl.sum_axes(cl.to_device(x), (1,)), x.astype(np.float64).sum(1))
close(cl.reduce(cl.REDUCE_MAX, cl.to_device(x), (0,)), x.max(0))
e = np.exp(x - x.max(-1, keepdims=True))
close(cl.softmax(cl.to_device(x)), e / e.sum(-1, keepdims=True))
print("ok")
"""


@needs_device
def test_device_without_fp64():
    """MGBN_OPENCL_FP64=0 runs the path of devices without cl_khr_fp64 (float
    sums, float32 statistics, float64 refused)."""
    env = dict(os.environ, MGBN_OPENCL_FP64="0")
    run = subprocess.run([sys.executable, "-c", NO_FP64], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


# ---- devices and arrays --------------------------------------------------------------

@needs_device
def test_devices():
    devices = mg.opencl.devices()
    assert devices and len(devices) == mg.opencl.device_count()
    for d in devices:
        assert d["name"] and d["global_mem_bytes"] > 0 and isinstance(d["fp64"], bool)
    assert mg.backend_info()["opencl_available"] is True
    assert cl.statistics_dtype(0) == (np.float64 if devices[0]["fp64"] else np.float32)
    with pytest.raises(ValueError, match="no OpenCL device 99"):
        cl.device_info(99)


@needs_device
@DTYPES
@pytest.mark.parametrize("shape", [(), (1,), (7,), (33, 5), (0, 3)])
def test_round_trip_copy_reshape_fill(dtype, shape):
    x = rand(shape, dtype)
    a = cl.ClArray.from_numpy(x)
    assert a.shape == shape and a.dtype == dtype and a.size == x.size and a.device == 0
    np.testing.assert_array_equal(a.numpy(), x)
    b = a.copy()
    np.testing.assert_array_equal(b.reshape(-1).numpy(), x.reshape(-1))
    np.testing.assert_array_equal(cl.full(shape, 2.5, dtype).numpy(), np.full(shape, 2.5, dtype))
    np.testing.assert_array_equal(cl.zeros(shape, dtype).numpy(), np.zeros(shape, dtype))
    with pytest.raises(mg.ShapeError):
        a.reshape(x.size + 1)


@needs_device
def test_arrays_are_freed_and_dtypes_checked():
    for _ in range(300):   # 300 x 4 MB: leaks would run out of device memory
        cl.empty((1 << 20,), np.float32)
    with pytest.raises(mg.DTypeError):
        cl.ClArray((2,), np.int32)


# ---- elementwise ---------------------------------------------------------------------

BINARY = [np.add, np.subtract, np.multiply, np.divide, np.maximum, np.minimum]


@needs_device
@DTYPES
@pytest.mark.parametrize("shape_a, shape_b", [((1000,), (1000,)), ((7, 33), (33,)), ((3, 1, 5), (4, 5)),
                                              ((), (7,)), ((2, 3, 4), (2, 1, 4)), ((1,), (1,))])
def test_binary_broadcasting(dtype, shape_a, shape_b):
    a, b = rand(shape_a, dtype, 1), rand(shape_b, dtype, 2, low=0.5)
    shape = np.broadcast_shapes(shape_a, shape_b)
    for op, fn in enumerate(BINARY):
        got = cl.binary(op, cl.to_device(a), cl.to_device(b), shape, dtype)
        check(got, fn(a.astype(np.float64), b.astype(np.float64)), dtype)


@needs_device
def test_binary_max_min_keep_nan_and_same_shape_helpers():
    a = np.array([np.nan, 1.0, 2.0], np.float32)
    b = np.array([0.0, np.nan, 1.0], np.float32)
    A, B = cl.to_device(a), cl.to_device(b)
    np.testing.assert_array_equal(cl.binary(4, A, B, (3,), np.float32).numpy(), [np.nan, np.nan, 2.0])
    np.testing.assert_array_equal(cl.binary(5, A, B, (3,), np.float32).numpy(), [np.nan, np.nan, 1.0])
    out, handle = cl.binary_same(2, A, cl.handle(A), cl.handle(B))
    assert handle is out
    np.testing.assert_array_equal(out.numpy(), a * b)
    np.testing.assert_array_equal(cl.add(A, B).numpy(), a + b)
    out = cl.empty((3,), np.float32)
    assert cl.binary(0, A, B, (3,), np.float32, out=out) is out
    assert cl.unary(cl.UNARY_NEG, B, out=out) is out
    np.testing.assert_array_equal(out.numpy(), -b)
    with pytest.raises(ValueError, match="out must be"):
        cl.unary(cl.UNARY_NEG, B, out=cl.empty((2,), np.float32))


UNARY = [np.exp, np.log, np.sqrt, np.tanh, lambda v: 1 / (1 + np.exp(-v)), lambda v: np.maximum(v, 0),
         np.abs, np.negative]


@needs_device
@DTYPES
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_unary_and_backward(dtype, n):
    x = rand((n,), dtype, 3) * 3
    positive = np.abs(x) + dtype(0.1)
    for op, fn in enumerate(UNARY):
        src = positive if op in (cl.UNARY_LOG, cl.UNARY_SQRT) else x
        check(cl.unary(op, cl.to_device(src)), fn(src.astype(np.float64)), dtype)
    g = rand((n,), dtype, 4)
    y = {cl.GRAD_RELU: np.maximum(x, 0), cl.GRAD_SIGMOID: 1 / (1 + np.exp(-x)), cl.GRAD_TANH: np.tanh(x),
         cl.GRAD_SQRT: np.sqrt(positive), cl.GRAD_ABS: x}
    want = {cl.GRAD_RELU: lambda y: g * (y > 0), cl.GRAD_SIGMOID: lambda y: g * y * (1 - y),
            cl.GRAD_TANH: lambda y: g * (1 - y * y), cl.GRAD_SQRT: lambda y: g / (2 * y),
            cl.GRAD_ABS: lambda y: g * np.sign(y)}
    for op, saved in y.items():
        saved = saved.astype(dtype)
        got = cl.unary_backward(op, cl.to_device(saved), cl.to_device(g))
        check(got, want[op](saved.astype(np.float64)), dtype)


@needs_device
@DTYPES
def test_clamp(dtype):
    x, g = rand((33,), dtype, 5), rand((33,), dtype, 6)
    check(cl.clamp(cl.to_device(x), -0.5, 0.25), np.clip(x, -0.5, 0.25), dtype)
    check(cl.clamp(cl.to_device(x), -np.inf, 0.0), np.minimum(x, 0), dtype)
    check(cl.clamp_backward(cl.to_device(x), cl.to_device(g), -0.5, 0.25),
          np.where((x >= -0.5) & (x <= 0.25), g, 0), dtype)
    with pytest.raises(ValueError, match="mg_cl_clamp"):
        cl.clamp(cl.to_device(x), 1.0, -1.0)


# ---- reductions and softmax ------------------------------------------------------------

@needs_device
@DTYPES
@pytest.mark.parametrize("shape, axes", [((7,), (0,)), ((33, 1000), (1,)), ((33, 1000), (0,)),
                                         ((2, 3, 4, 5), (1, 3)), ((2, 3, 4, 5), ()), ((5, 4), (0, 1)),
                                         ((300000,), (0,)), ((3, 70000), (1,)), ((1, 1, 7), (0, 1))])
def test_reduce(dtype, shape, axes):
    x = rand(shape, dtype, 7)
    x64 = x.astype(np.float64)
    check(cl.reduce(cl.REDUCE_SUM, cl.to_device(x), axes), x64.sum(axis=axes), dtype)
    check(cl.reduce(cl.REDUCE_MAX, cl.to_device(x), axes), x64.max(axis=axes) if x.size else x64, dtype)
    check(cl.reduce(cl.REDUCE_MIN, cl.to_device(x), axes), x64.min(axis=axes), dtype)
    check(cl.sum_axes(cl.to_device(x), list(axes)), x64.sum(axis=axes), dtype)


@needs_device
def test_reduce_is_deterministic_and_handles_edges():
    x = cl.to_device(rand((5, 200001), np.float32, 8))
    first = cl.sum_axes(x, (1,)).numpy()
    for _ in range(3):
        np.testing.assert_array_equal(cl.sum_axes(x, (1,)).numpy(), first)
    check(cl.sum_all(cl.to_device(np.ones((3, 4), np.float32))), np.array(12.0), np.float32)
    empty = cl.to_device(np.zeros((3, 0), np.float32))
    check(cl.sum_axes(empty, (1,)), np.zeros(3), np.float32)
    with pytest.raises(mg.ShapeError, match="empty axis"):
        cl.reduce(cl.REDUCE_MAX, empty, (1,))
    np.testing.assert_array_equal(cl.reduce(cl.REDUCE_MAX, cl.to_device(np.array([1, np.nan, 3], np.float32)),
                                            (0,)).numpy(), np.nan)


@needs_device
@DTYPES
@pytest.mark.parametrize("shape", [(1,), (7, 10), (3, 4, 1000), (2, 1)])
def test_softmax_and_log_softmax(dtype, shape):
    x, g = rand(shape, dtype, 9) * 4, rand(shape, dtype, 10)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    e = np.exp(x64 - x64.max(-1, keepdims=True))
    y = e / e.sum(-1, keepdims=True)
    log_y = np.log(y)
    check(cl.softmax(cl.to_device(x)), y, dtype)
    check(cl.softmax(cl.to_device(x), log=True), log_y, dtype)
    y_d, log_y_d = y.astype(dtype), log_y.astype(dtype)
    check(cl.softmax_backward(cl.to_device(y_d), cl.to_device(g)),
          y_d * (g64 - (g64 * y_d).sum(-1, keepdims=True)), dtype)
    check(cl.softmax_backward(cl.to_device(log_y_d), cl.to_device(g), log=True),
          g64 - np.exp(log_y_d.astype(np.float64)) * g64.sum(-1, keepdims=True), dtype)


# ---- matmul ---------------------------------------------------------------------------------

@needs_device
@DTYPES
@pytest.mark.parametrize("shape_a, shape_b", [((1, 1), (1, 1)), ((7, 33), (33, 5)), ((65, 130), (130, 97)),
                                              ((33,), (33, 7)), ((7, 33), (33,)), ((33,), (33,)),
                                              ((4, 7, 9), (9, 5)), ((2, 1, 7, 9), (3, 9, 5)),
                                              ((3, 0), (0, 4))])
def test_matmul(dtype, shape_a, shape_b):
    a, b = rand(shape_a, dtype, 11), rand(shape_b, dtype, 12)
    want = a.astype(np.float64) @ b.astype(np.float64)
    check(cl.matmul(cl.to_device(a), cl.to_device(b)), want, dtype)


@needs_device
@DTYPES
def test_matmul_transposes_out_and_accumulate(dtype):
    a, b = rand((2, 33, 17), dtype, 13), rand((2, 33, 9), dtype, 14)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    check(cl.matmul_tn(cl.to_device(a), cl.to_device(b)), np.swapaxes(a64, -1, -2) @ b64, dtype)
    c = rand((2, 9, 17), dtype, 15)
    check(cl.matmul_nt(cl.to_device(c), cl.to_device(a)), c.astype(np.float64) @ np.swapaxes(a64, -1, -2), dtype)
    out = cl.to_device(np.ones((2, 17, 9), dtype))
    assert cl.matmul_tn(cl.to_device(a), cl.to_device(b), out=out, accumulate=True) is out
    check(out, 1 + np.swapaxes(a64, -1, -2) @ b64, dtype)
    with pytest.raises(mg.ShapeError, match="do not fit"):
        cl.matmul(cl.to_device(a), cl.to_device(a))
    with pytest.raises(ValueError, match="accumulate"):
        cl.matmul_tn(cl.to_device(a), cl.to_device(b), accumulate=True)


# ---- batch normalization ----------------------------------------------------------------------

BN_SHAPES = [(2, 3), (64, 7), (1000, 33), (5, 3, 2, 2), (16, 4, 40), (3, 2, 33, 33), (2, 5, 1)]


@needs_device
@DTYPES
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_train_forward_and_backward(dtype, shape, affine):
    x, dy = rand(shape, dtype, 16) * 2 + 3, rand(shape, dtype, 17)
    c = shape[1]
    w, b = (rand((c,), dtype, 18), rand((c,), dtype, 19)) if affine else (None, None)
    X = cl.to_device(x)
    W, B = (cl.to_device(w), cl.to_device(b)) if affine else (None, None)
    y, mean, rstd, var = cl.batch_norm_train_forward(X, W, B, 1e-5)
    want_mean, want_var, want_rstd = bn_paper.batch_statistics(x, 1e-5)
    stat = cl.statistics_dtype()
    check(y, bn_paper.paper_forward(x, w, b, 1e-5), dtype)
    check(mean, want_mean, stat, TOL[np.dtype(stat)] * 10)
    check(var, want_var, stat, TOL[np.dtype(stat)] * 10)
    check(rstd, want_rstd, stat, TOL[np.dtype(stat)] * 10)
    dx, dw, db = cl.batch_norm_backward(cl.to_device(dy), X, mean, rstd, W, True, True, True)
    want_dx, want_dw, want_db = bn_paper.paper_backward(dy, x, w, 1e-5)
    # dx cancels (for n = 2 it is 0 up to rounding): compare at the size of its terms, g*rstd
    terms = np.abs(dy).max() * (np.abs(w).max() if affine else 1.0) * want_rstd.max()
    check(dx, want_dx, dtype, scale=terms)
    check(dw, want_dw, dtype)
    check(db, want_db, dtype)
    only_dx = cl.batch_norm_backward(cl.to_device(dy), X, mean, rstd, W, True, False, False)
    assert only_dx[1] is None and only_dx[2] is None
    np.testing.assert_array_equal(only_dx[0].numpy(), dx.numpy())


@needs_device
@DTYPES
def test_batch_norm_large_offset_and_constant_channel(dtype):
    x = rand((64, 3, 50), dtype, 20) + dtype(1e4)
    x[:, 1] = dtype(7.0)   # a constant channel normalises to exactly beta
    b = np.array([0.5, -2.0, 1.0], dtype)
    y, mean, _, var = cl.batch_norm_train_forward(cl.to_device(x), None, cl.to_device(b), 1e-5)
    want = bn_paper.paper_forward(x, None, b, 1e-5)
    check(y, want, dtype, 1e-4 if dtype == np.float32 else 1e-10)   # x itself is rounded at 1e4
    np.testing.assert_array_equal(y.numpy()[:, 1], -2.0)
    assert mean.numpy()[1] == 7.0 and var.numpy()[1] == 0.0


@needs_device
@DTYPES
@pytest.mark.parametrize("shape", [(7, 3), (4, 5, 6, 7)])
def test_batch_norm_eval(dtype, shape):
    c = shape[1]
    x, dy = rand(shape, dtype, 21), rand(shape, dtype, 22)
    rm, rv = rand((c,), dtype, 23), rand((c,), dtype, 24, low=0.5)
    w, b = rand((c,), dtype, 25), rand((c,), dtype, 26)
    got = cl.batch_norm_eval_forward(cl.to_device(x), cl.to_device(rm), cl.to_device(rv), cl.to_device(w),
                                     cl.to_device(b), 1e-5)
    check(got, bn_paper.eval_forward(x, rm, rv, w, b, 1e-5), dtype)
    got = cl.batch_norm_eval_forward(cl.to_device(x), cl.to_device(rm), cl.to_device(rv), None, None, 1e-5)
    check(got, bn_paper.eval_forward(x, rm, rv, None, None, 1e-5), dtype)
    dx = cl.batch_norm_eval_backward(cl.to_device(dy), cl.to_device(rv), cl.to_device(w), 1e-5)
    check(dx, bn_paper.eval_backward(dy, x, rm, rv, w, 1e-5)[0], dtype)


@needs_device
def test_batch_norm_errors():
    x = cl.to_device(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        cl.batch_norm_train_forward(x, None, None, 1e-5)
    x = cl.to_device(np.ones((4, 3), np.float32))
    with pytest.raises(mg.ShapeError, match="weight"):
        cl.batch_norm_train_forward(x, cl.to_device(np.ones(2, np.float32)), None, 1e-5)
    with pytest.raises(ValueError, match="eps"):
        cl.batch_norm_train_forward(x, None, None, -1.0)
    with pytest.raises(mg.ShapeError, match="2-D, 3-D or 4-D"):
        cl.batch_norm_train_forward(cl.to_device(np.ones(4, np.float32)), None, None, 1e-5)


# ---- optimizers -------------------------------------------------------------------------------

def sgd_reference(p, g, buf, lr, momentum, dampening, wd, nesterov, first):
    """torch.optim.SGD's step in float64 (as microgradbn/optim.py)."""
    g = g + wd * p
    if momentum:
        buf = g.copy() if first else buf * momentum + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def adam_reference(p, g, m, v, lr, b1, b2, eps, wd, step, decoupled):
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = m + (1 - b1) * (g - m)
    v = v * b2 + (1 - b2) * g * g
    return p - lr / (1 - b1 ** step) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** step) + eps), m, v


@needs_device
@DTYPES
@pytest.mark.parametrize("momentum, dampening, wd, nesterov", [(0.0, 0.0, 0.0, False), (0.9, 0.0, 1e-2, True),
                                                                (0.5, 0.3, 0.0, False)])
def test_sgd_step(dtype, momentum, dampening, wd, nesterov):
    p, buf = rand((1000,), dtype, 27), None
    P = cl.to_device(p)
    BUF = cl.zeros((1000,), dtype) if momentum else None
    want = p.astype(np.float64)
    for step in range(3):
        g = rand((1000,), dtype, 28 + step)
        cl.sgd_step(P, cl.to_device(g), BUF, 0.1, momentum, dampening, wd, nesterov, step == 0)
        want, buf = sgd_reference(want, g.astype(np.float64), buf, 0.1, momentum, dampening, wd, nesterov,
                                  step == 0)
    check(P, want, dtype, TOL[np.dtype(dtype)] * 10)


@needs_device
@DTYPES
@pytest.mark.parametrize("wd, decoupled", [(0.0, False), (0.1, False), (0.1, True)])
def test_adam_step(dtype, wd, decoupled):
    p = rand((777,), dtype, 31)
    P, M, V = cl.to_device(p), cl.zeros((777,), dtype), cl.zeros((777,), dtype)
    want, m, v = p.astype(np.float64), 0.0, 0.0
    for step in range(1, 4):
        g = rand((777,), dtype, 32 + step)
        cl.adam_step(P, cl.to_device(g), M, V, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled)
        want, m, v = adam_reference(want, g.astype(np.float64), m, v, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled)
    check(P, want, dtype, TOL[np.dtype(dtype)] * 10)
    check(M, m, dtype, TOL[np.dtype(dtype)] * 10)
    with pytest.raises(ValueError, match="step"):
        cl.adam_step(P, cl.to_device(g), M, V, 1e-2, 0.9, 0.999, 1e-8, wd, 0, decoupled)


# ---- parity with the CPU backend (same names, argument orders, results) ---------------------

@needs_device
@DTYPES
def test_same_calls_as_the_cpu_backend(dtype):
    from microgradbn._backend import cpu
    x, y = rand((6, 4, 5), dtype, 40), rand((4, 5), dtype, 41)
    w, b = rand((4,), dtype, 42), rand((4,), dtype, 43)
    calls = [
        ("binary", lambda m, d: m.binary(m.OP_MUL, d(x), d(y), (6, 4, 5), dtype)),
        ("unary", lambda m, d: m.unary(m.UNARY_TANH, d(x))),
        ("unary_backward", lambda m, d: m.unary_backward(m.GRAD_SIGMOID, d(x), d(x))),
        ("clamp", lambda m, d: m.clamp(d(x), -0.5, 0.5)),
        ("reduce", lambda m, d: m.reduce(m.REDUCE_MAX, d(x), (0, 2))),
        ("sum_axes", lambda m, d: m.sum_axes(d(x), (1,))),
        ("sum_all", lambda m, d: m.sum_all(d(x))),
        ("matmul", lambda m, d: m.matmul(d(x), d(y.T.copy()))),
        ("matmul_tn", lambda m, d: m.matmul_tn(d(x), d(x))),
        ("batch_norm_train_forward", lambda m, d: m.batch_norm_train_forward(d(x), d(w), d(b), 1e-5)[0]),
        ("batch_norm_eval_forward", lambda m, d: m.batch_norm_eval_forward(d(x), d(w), d(np.abs(b) + 1), d(w),
                                                                           d(b), 1e-5)),
        ("batch_norm_eval_backward", lambda m, d: m.batch_norm_eval_backward(d(x), d(np.abs(b) + 1), d(w), 1e-5)),
    ]
    for name, call in calls:
        want = call(cpu, lambda a: a)
        got = call(cl, cl.to_device)
        check(got, want, dtype, TOL[np.dtype(dtype)] * 10)
    _, mean, rstd, _ = cpu.batch_norm_train_forward(x, w, b, 1e-5)
    _, mean_d, rstd_d, _ = cl.batch_norm_train_forward(cl.to_device(x), cl.to_device(w), cl.to_device(b), 1e-5)
    dy = rand(x.shape, dtype, 44)
    want = cpu.batch_norm_backward(dy, x, mean, rstd, w, True, True, True)
    got = cl.batch_norm_backward(cl.to_device(dy), cl.to_device(x), mean_d, rstd_d, cl.to_device(w), True, True, True)
    for g, wnt in zip(got, want):
        check(g, wnt, dtype, TOL[np.dtype(dtype)] * 10, scale=np.abs(dy).max() * np.abs(w).max() * rstd.max())
