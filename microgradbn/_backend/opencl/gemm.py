"""The OpenCL backend's matrix products: matmul with NumPy's rules (1-D
operands, broadcast batch axes) and its transposed forms for the backward,
as the CPU backend's gemm.py.
"""
import numpy as np

from ..._mgbn import lib
from ...errors import DTypeError, ShapeError
from ..cpu.gemm import _flat_stride  # batched matmul splits batches the same way on both devices
from .core import ClArray, _check, _dtype_code, _strides


# ---- matmul ----------------------------------------------------------------------------
# An operand is read through a view (array, offset, shape, strides), all in
# elements, so transposed operands (matmul_tn, matmul_nt) cost no copy.

def matmul(a, b, out=None, accumulate=False):
    """a @ b with NumPy's rules (1-D operands, broadcast batch axes), as
    cpu.matmul; with out (a ClArray of the result's shape and dtype) the
    result is written there, or added to it when accumulate is true."""
    return _matmul(_view(a), _view(b), out, accumulate)


def matmul_tn(a, b, out=None, accumulate=False):
    """a^T @ b (the last two axes of a swapped), read in place: no copy."""
    return _matmul(_swapped(_view(a)), _view(b), out, accumulate)


def matmul_nt(a, b, out=None, accumulate=False):
    """a @ b^T (the last two axes of b swapped), read in place: no copy."""
    return _matmul(_view(a), _swapped(_view(b)), out, accumulate)


def _view(x):
    return x, 0, x.shape, tuple(_strides(x.shape))


def _swapped(view):
    x, offset, shape, strides = view
    if len(shape) < 2:
        raise ShapeError(f"matmul: cannot transpose an operand of shape {shape}")
    return x, offset, shape[:-2] + (shape[-1], shape[-2]), strides[:-2] + (strides[-1], strides[-2])


def _matmul(av, bv, out, accumulate):
    a, b = av[0], bv[0]
    shape_a, shape_b = av[2], bv[2]
    if a.dtype != b.dtype:
        raise DTypeError(f"matmul: operands must both be float32 or both float64, got {a.dtype} and {b.dtype}")
    if not shape_a or not shape_b:
        raise ShapeError(f"matmul: operands must have at least one dimension, got shapes {shape_a} and {shape_b}")
    if len(shape_a) == 1:
        av = (a, av[1], (1,) + shape_a, (0,) + av[3])
    if len(shape_b) == 1:
        bv = (b, bv[1], shape_b + (1,), bv[3] + (0,))
    (m, k), (k_b, n) = av[2][-2:], bv[2][-2:]
    if k != k_b:
        raise ShapeError(f"matmul: shapes {shape_a} and {shape_b} do not fit: "
                         f"{k} (last axis of a) != {k_b} (axis -2 of b)")
    try:
        batch_shape = tuple(np.broadcast_shapes(av[2][:-2], bv[2][:-2]))
    except ValueError:
        raise ShapeError(f"matmul: the batch axes of shapes {shape_a} and {shape_b} do not broadcast") from None
    final_shape = batch_shape + shape_a[-2:-1] + (shape_b[-1:] if len(shape_b) > 1 else ())
    if out is None:
        if accumulate:
            raise ValueError("matmul: accumulate=True needs out")
        out = ClArray(final_shape, a.dtype, a.device)
    elif out.shape != final_shape or out.dtype != a.dtype:
        raise ShapeError(f"matmul: out must have shape {final_shape} and dtype {a.dtype}, "
                         f"got shape {out.shape}, dtype {out.dtype}")
    if out.size:
        c_strides = tuple(_strides(batch_shape + (m, n)))
        _matmul_batched(a.dtype, m, n, k, _batch_view(av, batch_shape), _batch_view(bv, batch_shape),
                        (out, 0, batch_shape, c_strides), accumulate)
    return out


def _batch_view(view, batch_shape):
    """view with its batch strides right-aligned to batch_shape (0 where broadcast)."""
    x, offset, shape, strides = view
    lead, lead_strides = shape[:-2], strides[:-2]
    pad = len(batch_shape) - len(lead)
    batch_strides = (0,) * pad + tuple(0 if size == 1 else s for size, s in zip(lead, lead_strides))
    return x, offset, batch_shape, batch_strides + strides[-2:]


def _matmul_batched(dtype, m, n, k, av, bv, cv, accumulate):
    """c[...] (+)= a[...] @ b[...] over the batch axes, in as few calls as the
    strides allow (one when each operand's batch axes are one flat axis)."""
    batch_shape = cv[2]
    nb = len(batch_shape)
    sa = _flat_stride(av[3][:nb], batch_shape)
    sb = _flat_stride(bv[3][:nb], batch_shape)
    if sa is None or sb is None:   # split the first batch axis
        for i in range(batch_shape[0]):
            def step(v):
                x, offset, shape, strides = v
                return x, offset + i * strides[0], shape[1:], strides[1:]
            _matmul_batched(dtype, m, n, k, step(av), step(bv), step(cv), accumulate)
        return
    batch = int(np.prod(batch_shape, dtype=np.int64))
    a, a_off, _, a_st = av
    b, b_off, _, b_st = bv
    c, c_off, _, c_st = cv
    _check(lib.mg_cl_matmul(_dtype_code(dtype), batch, m, n, k,
                            a.buffer, a_off, sa, a_st[-2], a_st[-1],
                            b.buffer, b_off, sb, b_st[-2], b_st[-1],
                            c.buffer, c_off, m * n if nb else 0, n, 1 if accumulate else 0))
