"""check_op: the one helper every op test goes through (as tinygrad's helper_test_op).

    check_op(lambda x, y: x * y, lambda x, y: x * y, [(33,), (1,)])

For each dtype (float32, float64) and each memory layout of the inputs
(contiguous, transposed, strided, negatively strided, Fortran-ordered,
big-endian), with the same logical values every time, it checks
  - forward against the NumPy oracle evaluated in float64;
  - backward against the NumPy oracle too: for a random upstream gradient g
    and random directions v, <dL/dx, v> must equal the central difference
    (f(x + h v) - f(x - h v)) . g / 2h computed in float64;
  - forward and backward against PyTorch, when it is installed;
  - on the OpenCL device, when there is one (OPENCL below): forward against
    the same oracle and the gradients against the CPU's (float32 within
    1e-5, float64 within 1e-12 of their largest magnitude). Device storage
    is contiguous, so one layout covers it. An op without a device kernel
    yet must raise the clear NotImplementedError (float64 on a device without
    cl_khr_fp64: DTypeError), and then the rest of its device check is
    skipped (it starts to run when the kernel comes).
"""
import numpy as np
import pytest

import microgradbn as mg
from microgradbn._backend import opencl as _cl

try:
    import torch
except ImportError:  # the PyTorch comparison is skipped, the rest still runs
    torch = None

DTYPES = (np.float32, np.float64)
SIZES = (1, 7, 33, 1000)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}
GRAD_TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}
DIRECTIONAL_RTOL = {np.float32: 1e-4, np.float64: 1e-6}
DEVICE_TOL = {np.float32: 1e-5, np.float64: 1e-12}
# the OpenCL device's dtypes, () without a device
OPENCL = () if not _cl.is_available() else (np.float32,) + ((np.float64,) if _cl.device_info(0)["fp64"] else ())


def _strided(a):
    if a.ndim == 0:
        return a
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _negative(a):
    return a[::-1].copy()[::-1] if a.ndim else a


def _transposed(a):
    return np.ascontiguousarray(a.T).T


LAYOUTS = {
    "contiguous": lambda a: a,
    "transposed": _transposed,
    "strided": _strided,
    "negative": _negative,
    "fortran": np.asfortranarray,
    "bigendian": lambda a: a.astype(a.dtype.newbyteorder(">")),
}


def _make(array, layout, requires_grad):
    """A tensor with these values in this layout (zero-copy for native layouts)."""
    laid = LAYOUTS[layout](array)
    if laid.dtype.isnative:
        t = mg.from_numpy(laid)
        assert t.data.strides == laid.strides
    else:
        t = mg.tensor(laid)            # big-endian input is converted to native order
        assert t.dtype.isnative and np.array_equal(t.data, array)
    return t.requires_grad_(requires_grad)


def check_op(mg_fn, np_fn, shapes, torch_fn=None, *, dtypes=DTYPES, layouts=tuple(LAYOUTS),
             low=-2.0, high=2.0, grad=True, seed=0, directions=2, tol=None):
    """tol: {dtype: dict(rtol=, atol=)} to widen the forward tolerance, e.g. for
    float32 sums of many products (GEMM accumulates in float32)."""
    rng = np.random.default_rng(seed)
    base = [rng.uniform(low, high, s) for s in shapes]
    for dtype in dtypes:
        values = [b.astype(dtype) for b in base]
        exact64 = [v.astype(np.float64) for v in values]
        expected = np.asarray(np_fn(*exact64))
        upstream = rng.standard_normal(expected.shape)
        cpu_grads = None
        for layout in layouts:
            inputs = [_make(v, layout, grad) for v in values]
            out = mg_fn(*inputs)
            where = f"dtype={np.dtype(dtype).name}, layout={layout}, shapes={shapes}"
            assert out.dtype == dtype, where
            assert out.shape == expected.shape, where
            np.testing.assert_allclose(out.data, expected, **(tol or TOL)[dtype], err_msg=where)
            if not grad:
                continue
            out.backward(upstream.astype(dtype))
            for i, t in enumerate(inputs):
                assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == dtype, where
            _check_directional(np_fn, exact64, upstream, [t.grad.data for t in inputs], rng,
                               directions, DIRECTIONAL_RTOL[dtype], where)
            cpu_grads = cpu_grads or [t.grad.numpy() for t in inputs]
            if torch is not None and torch_fn is not None and layout == "contiguous":
                _check_torch(torch_fn, values, upstream.astype(dtype), out, inputs, dtype, where)
        if dtype in OPENCL:
            _check_device(mg_fn, values, expected, upstream.astype(dtype), cpu_grads, dtype, grad,
                          (tol or TOL)[dtype], f"opencl, dtype={np.dtype(dtype).name}, shapes={shapes}")


def _check_device(mg_fn, values, expected, upstream, cpu_grads, dtype, grad, tol, where):
    """mg_fn on the OpenCL device: forward against the oracle, grads against the CPU's."""
    inputs = [mg.tensor(v, device="opencl", requires_grad=grad) for v in values]
    try:
        out = mg_fn(*inputs)
        if grad:
            out.backward(mg.tensor(upstream, device="opencl"))
    except NotImplementedError as e:
        assert "is not supported on device opencl yet" in str(e), where
        return
    except mg.DTypeError as e:          # float64 on a device without it (an op casting to float64)
        assert "cl_khr_fp64" in str(e) and np.float64 not in OPENCL, where
        return
    assert out.device == "opencl:0" and out.dtype == dtype and out.shape == expected.shape, where
    np.testing.assert_allclose(out.detach().numpy(), expected, **tol, err_msg=where)
    for i, (t, want) in enumerate(zip(inputs, cpu_grads or ())):
        assert t.grad.device == "opencl:0", where
        got, scale = t.grad.numpy(), float(np.abs(want).max(initial=0.0)) or 1.0
        np.testing.assert_allclose(got, want, rtol=DEVICE_TOL[dtype], atol=DEVICE_TOL[dtype] * scale,
                                   err_msg=f"{where}: grad of input {i} vs the CPU")


def _check_directional(np_fn, exact64, upstream, grads, rng, directions, rtol, where):
    """<grad, v> against a float64 central difference along v, relative to
    |grad| |v| (the largest the inner product can be)."""
    h = 1e-6
    for i, (x, g) in enumerate(zip(exact64, grads)):
        g = g.astype(np.float64)
        for _ in range(directions):
            v = rng.standard_normal(x.shape)
            plus = [a + h * v if j == i else a for j, a in enumerate(exact64)]
            minus = [a - h * v if j == i else a for j, a in enumerate(exact64)]
            numeric = np.sum((np.asarray(np_fn(*plus)) - np.asarray(np_fn(*minus))) * upstream) / (2 * h)
            analytic = np.sum(g * v)
            scale = np.linalg.norm(g) * np.linalg.norm(v) + 1e-12
            assert abs(analytic - numeric) <= rtol * scale, \
                f"{where}: input {i}: <grad, v> = {analytic}, finite difference {numeric}"


def _check_torch(torch_fn, values, upstream, out, inputs, dtype, where):
    t_inputs = [torch.tensor(v, requires_grad=True) for v in values]
    t_out = torch_fn(*t_inputs)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), **GRAD_TOL[dtype],
                               err_msg=f"{where}: forward vs PyTorch")
    t_out.backward(torch.tensor(upstream))
    for i, (t, tt) in enumerate(zip(inputs, t_inputs)):
        np.testing.assert_allclose(t.grad.data, tt.grad.numpy(), **GRAD_TOL[dtype],
                                   err_msg=f"{where}: grad of input {i} vs PyTorch")


def gradcheck64(fn, shapes, low=-2.0, high=2.0, seed=0):
    """mg.autograd.gradcheck on random float64 inputs of these shapes."""
    rng = np.random.default_rng(seed)
    inputs = [mg.tensor(rng.uniform(low, high, s), dtype=mg.float64, requires_grad=True) for s in shapes]
    assert mg.autograd.gradcheck(fn, inputs)


needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
