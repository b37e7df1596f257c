"""Shared by the tests of tensors on the OpenCL device (test_opencl_tensor.py,
test_opencl_nn.py): the device marks and dtypes, and same_on_both, which runs
a function on tensors on the CPU and on the device and compares the results
and the input gradients.

Tolerances against the CPU path: float32 within 1e-5 relative, float64
within 1e-12 (relative to the largest magnitude of the CPU result, so values
that cancel pass the size of their terms).
"""
import numpy as np
import pytest

import microgradbn as mg
from microgradbn._backend import opencl as cl

HAVE_DEVICE = cl.is_available()
needs_device = pytest.mark.skipif(not HAVE_DEVICE, reason="no OpenCL device: " + cl.unavailable_reason())
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
DTYPES = [np.float32] + ([np.float64] if HAVE_DEVICE and cl.device_info(0)["fp64"] else [])
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def close(got, want, dtype, tol=None):
    """got equals want (both host arrays) within tol of want's largest magnitude."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype == np.dtype(dtype)
    tol = TOL[np.dtype(dtype)] if tol is None else tol
    scale = float(np.abs(want.astype(np.float64)).max(initial=0.0)) or 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def same_on_both(fn, arrays, dtype, grad=True, tol=None, seed=1):
    """fn on tensors of arrays on the CPU and on the device: equal forward
    results and, for a random upstream gradient, equal input gradients."""
    results = {}
    for device in ("cpu", "opencl"):
        inputs = [mg.tensor(a, dtype=dtype, device=device, requires_grad=grad) for a in arrays]
        out = fn(*inputs)
        assert out.device == ("cpu" if device == "cpu" else "opencl:0")
        if grad:
            g = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
            out.backward(mg.tensor(g, device=device))
            for t in inputs:
                assert t.grad.device == t.device
        results[device] = [out.detach().numpy()] + ([t.grad.numpy() for t in inputs] if grad else [])
    for cpu_value, device_value in zip(results["cpu"], results["opencl"]):
        close(device_value, cpu_value, dtype, tol)


def rand(*shape, seed=0, low=None):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.abs(x) + low if low is not None else x
