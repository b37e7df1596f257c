"""The CPU backend's matrix products: matmul with NumPy's rules (1-D
operands, broadcast batch axes) and its transposed forms for the backward,
each operand read in place through its strides (the C library's packed
Goto/BLIS GEMM, src/cpu/matmul.c, underneath).
"""
import numpy as np

from ..._mgbn import ffi, lib
from ...errors import DTypeError, ShapeError
from .core import DTYPE_CODES, empty, pointer, raise_status


def matmul(a, b, out=None, accumulate=False):
    """a @ b with NumPy's rules, a and b float32 or float64 of one dtype.

    1-D operands become a row (a) or a column (b) and that axis is dropped
    from the result; leading (batch) axes broadcast. Transposed, strided and
    negatively strided inputs are read in place through their strides. With
    out (C-contiguous, the result's shape and dtype) the result is written
    there, or added to it when accumulate is true (out += a @ b), and out is
    returned. Raises ShapeError naming both shapes when they do not fit.
    """
    if a.dtype != b.dtype or a.dtype not in DTYPE_CODES:
        raise DTypeError(f"matmul: operands must both be float32 or both float64, got {a.dtype} and {b.dtype}")
    if a.ndim == 2 and b.ndim == 2:   # the common case first: per-call cost matters for small models
        if a.shape[1] != b.shape[0]:
            _mismatch(a.shape, b.shape)
        out = empty((a.shape[0], b.shape[1]), a.dtype) if out is None and not accumulate else \
            _output(out, (a.shape[0], b.shape[1]), a.dtype, accumulate)
        if out.size:
            _mg_matmul(_usable(a), _usable(b), out, 1, 0, 0, accumulate)
        return out
    shape_a, shape_b = a.shape, b.shape
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: operands must have at least one dimension, got shapes {shape_a} and {shape_b}")
    if a.ndim == 1:
        a = a[None, :]
    if b.ndim == 1:
        b = b[:, None]
    if a.shape[-1] != b.shape[-2]:
        _mismatch(shape_a, shape_b)
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"matmul: the batch axes of shapes {shape_a} and {shape_b} do not broadcast") from None
    result_shape = batch_shape + (a.shape[-2], b.shape[-1])
    # the shape NumPy gives: without the axes that 1-D operands gained
    final_shape = batch_shape + shape_a[-2:-1] + shape_b[-1:] if len(shape_b) > 1 else batch_shape + shape_a[-2:-1]
    out = _output(out, final_shape, a.dtype, accumulate)
    if out.size:
        _matmul_batched(_usable(a), _usable(b), out.reshape(result_shape), batch_shape, accumulate)
    return out


def matmul_tn(a, b, out=None, accumulate=False):
    """a^T @ b (the last two axes of a swapped), read in place: no copy."""
    return matmul(np.swapaxes(a, -1, -2), b, out, accumulate)


def matmul_nt(a, b, out=None, accumulate=False):
    """a @ b^T (the last two axes of b swapped), read in place: no copy."""
    return matmul(a, np.swapaxes(b, -1, -2), out, accumulate)


def _mismatch(shape_a, shape_b):
    raise ShapeError(f"matmul: shapes {shape_a} and {shape_b} do not fit: "
                     f"{shape_a[-1]} (last axis of a) != {shape_b[-2 if len(shape_b) > 1 else 0]} (rows of b)")


def _output(out, shape, dtype, accumulate):
    if out is None:
        if accumulate:
            raise ValueError("matmul: accumulate=True needs out")
        return empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ShapeError(f"matmul: out must be C-contiguous of shape {shape} and dtype {dtype}, "
                         f"got shape {out.shape}, dtype {out.dtype}")
    return out


def _usable(x):
    """x itself when its strides are whole elements and its data aligned, else a copy."""
    flags = x.flags
    if flags.aligned and (flags.c_contiguous or flags.f_contiguous or all(s % x.itemsize == 0 for s in x.strides)):
        return x
    return np.ascontiguousarray(x)


def _data(x):
    """A cffi pointer to x's first element; cheapest for C- or F-contiguous x."""
    if x.flags.c_contiguous:
        return ffi.from_buffer(x)
    if x.flags.f_contiguous:
        return ffi.from_buffer(x.T)
    return pointer(x)


def _mg_matmul(a, b, out, batch, a_batch_stride, b_batch_stride, accumulate):
    """One mg_matmul call: out[t] (+)= a[t] @ b[t] for t < batch, strides in elements."""
    item = a.itemsize
    m, k = a.shape[-2:]
    n = b.shape[-1]
    status = lib.mg_matmul(
        DTYPE_CODES[a.dtype], batch, m, n, k,
        _data(a), a_batch_stride, a.strides[-2] // item, a.strides[-1] // item,
        _data(b), b_batch_stride, b.strides[-2] // item, b.strides[-1] // item,
        ffi.from_buffer(out), m * n, n, 1 if accumulate else 0)
    if status:
        raise_status(status)


def _flat_stride(strides, shape):
    """The one stride s that walks the axes of shape in C order as a flat index
    (strides[d] == s * prod(shape[d+1:]) on every axis longer than 1), or None."""
    flat, inner = None, 1
    for stride, size in zip(reversed(strides), reversed(shape)):
        if size != 1:
            if flat is None:
                if stride % inner:
                    return None
                flat = stride // inner
            elif stride != flat * inner:
                return None
        inner *= size
    return 0 if flat is None else flat


def _batch_strides(x, batch_shape):
    """x's strides in elements over batch_shape: 0 on broadcast (missing or size-1) axes."""
    item = x.itemsize
    lead = x.shape[:-2]
    return [0] * (len(batch_shape) - len(lead)) + [0 if size == 1 else s // item
                                                   for size, s in zip(lead, x.strides[:-2])]


def _matmul_batched(a, b, out, batch_shape, accumulate):
    """out[...] (+)= a[...] @ b[...] over batch_shape, in as few C calls as the strides allow."""
    sa = _flat_stride(_batch_strides(a, batch_shape), batch_shape)
    sb = _flat_stride(_batch_strides(b, batch_shape), batch_shape)
    if sa is None or sb is None:   # not one flat batch: split off the first batch axis
        a = np.broadcast_to(a, batch_shape + a.shape[-2:])
        b = np.broadcast_to(b, batch_shape + b.shape[-2:])
        for i in range(batch_shape[0]):
            _matmul_batched(a[i], b[i], out[i], batch_shape[1:], accumulate)
        return
    batch = 1
    for size in batch_shape:
        batch *= size
    _mg_matmul(a, b, out, batch, sa, sb, accumulate)
