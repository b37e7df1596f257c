"""The CPU backend's elementwise ops and reductions: binary ops with
broadcasting (read through element strides, 0 on a broadcast axis), the
fast paths for C-contiguous operands with cached handles, unary maps and
their fused backwards, clamp, pow, and reductions over axes.

Every function takes and returns NumPy arrays of float32 or float64 whose
shapes the caller has already checked; the C library checks again.
"""
import numpy as np

from ..._mgbn import ffi, lib
from ...errors import DTypeError, ShapeError
from .core import DTYPE_CODES, _same_layout, empty, empty_like, pointer, raise_status

OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN = range(6)
UNARY_EXP, UNARY_LOG, UNARY_SQRT, UNARY_TANH, UNARY_SIGMOID, UNARY_RELU, UNARY_ABS, UNARY_NEG = range(8)
GRAD_RELU, GRAD_SIGMOID, GRAD_TANH, GRAD_SQRT, GRAD_ABS = range(5)
REDUCE_SUM, REDUCE_MAX, REDUCE_MIN = range(3)


def _fits(array, shape):
    """array broadcasts to shape: its axes, right-aligned, are 1 or equal to shape's."""
    pad = len(shape) - array.ndim
    return pad >= 0 and all(n == 1 or n == m for n, m in zip(array.shape, shape[pad:]))


def element_strides(array, shape):
    """array's strides in elements, right-aligned to shape; 0 on broadcast axes."""
    item = array.itemsize
    pad = len(shape) - array.ndim
    return [0] * pad + [0 if n == 1 else s // item for n, s in zip(array.shape, array.strides)]


def binary(op, a, b, shape, dtype, out=None):
    """a op b broadcast to shape, in dtype (a and b already have it), into
    out (C-contiguous) or a new array."""
    if out is None:
        out = empty(shape, dtype)
    elif out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"binary: out must be C-contiguous {dtype} of shape {tuple(shape)}")
    code = DTYPE_CODES[out.dtype]
    if a.dtype != out.dtype or b.dtype != out.dtype:
        raise DTypeError(f"binary: operands {a.dtype} and {b.dtype} must both be {out.dtype}")
    if a.shape == b.shape == tuple(shape) and a.flags.c_contiguous and b.flags.c_contiguous:
        status = lib.mg_binary_contig(op, code, out.size, ffi.from_buffer(a), ffi.from_buffer(b),
                                      ffi.from_buffer(out))
    else:
        if not (_fits(a, out.shape) and _fits(b, out.shape)):
            raise ShapeError(f"binary: shapes {a.shape} and {b.shape} do not broadcast to {out.shape}")
        status = lib.mg_binary(op, code, len(shape), list(shape), pointer(a),
                               element_strides(a, shape), pointer(b),
                               element_strides(b, shape), ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def binary_same(op, x, x_handle, y_handle):
    """x op y for C-contiguous x and y of one shape and float dtype, given
    their cached handles; returns the result and its handle."""
    nbytes, dtype = x.nbytes, x.dtype          # (each attribute read once: this runs per op)
    if len(x_handle) < nbytes or len(y_handle) < nbytes:
        raise ValueError(f"binary_same: handles of {len(x_handle)} and {len(y_handle)} bytes "
                         f"for an array of {nbytes}")
    out = empty_like(x)
    out_handle = ffi.from_buffer(out)
    status = lib.mg_binary_contig(op, DTYPE_CODES[dtype], x.size, x_handle, y_handle, out_handle)
    if status:
        raise_status(status)
    return out, out_handle


def binary_scalar(op, x, s, scalar_first=False, x_handle=None):
    """x op s (or s op x) for a C-contiguous float x and a one-element array
    s of its dtype (read with stride 0); x_handle: x's cached handle, if any.
    Returns the result and its handle."""
    if s.size != 1 or s.dtype != x.dtype:
        raise ShapeError(f"binary_scalar: expected a one-element {x.dtype} array, got {s.dtype} {s.shape}")
    if x_handle is None:
        x_handle = ffi.from_buffer(x)
    elif len(x_handle) < x.nbytes:
        raise ValueError(f"binary_scalar: a handle of {len(x_handle)} bytes for an array of {x.nbytes}")
    out = empty_like(x)
    out_handle = ffi.from_buffer(out)
    s_handle = ffi.from_buffer(s)
    a, sa, b, sb = (s_handle, _ZERO, x_handle, _ONE) if scalar_first else (x_handle, _ONE, s_handle, _ZERO)
    status = lib.mg_binary(op, DTYPE_CODES[x.dtype], 1, [x.size], a, sa, b, sb, out_handle)
    if status:
        raise_status(status)
    return out, out_handle


_ZERO, _ONE = ffi.new("int64_t[1]", [0]), ffi.new("int64_t[1]", [1])


def unary_same(op, x, x_handle):
    """f(x) (an UNARY_* op) for a C-contiguous float x given its cached
    handle; returns the result and its handle."""
    nbytes, dtype = x.nbytes, x.dtype
    if len(x_handle) < nbytes:
        raise ValueError(f"unary_same: a handle of {len(x_handle)} bytes for an array of {nbytes}")
    out = empty_like(x)
    out_handle = ffi.from_buffer(out)
    status = lib.mg_unary(op, DTYPE_CODES[dtype], x.size, x_handle, out_handle)
    if status:
        raise_status(status)
    return out, out_handle


def add(a, b):
    """a + b for arrays of one shape and float dtype (gradient accumulation)."""
    return binary(OP_ADD, a, b, a.shape, a.dtype)


def _contiguous(x):
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def unary(op, x, out=None):
    """f(x) elementwise (an UNARY_* op) into out (C-contiguous, x's shape and
    dtype) or a new array."""
    x = _contiguous(x)
    if out is None:
        out = empty_like(x)
    elif out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"unary: out must be C-contiguous {x.dtype} of shape {x.shape}")
    status = lib.mg_unary(op, DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x), ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def unary_backward(op, saved, grad):
    """The fused backward (a GRAD_* op) from the saved array and the incoming gradient."""
    saved, grad = _contiguous(saved), _contiguous(grad)
    _same_layout("unary_backward: grad", grad, saved)
    out = empty_like(saved)
    status = lib.mg_unary_backward(op, DTYPE_CODES[saved.dtype], saved.size, ffi.from_buffer(saved),
                                   ffi.from_buffer(grad), ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def clamp(x, lo, hi):
    """min(max(x, lo), hi); lo = -inf or hi = inf for no bound."""
    x = _contiguous(x)
    out = empty(x.shape, x.dtype)
    status = lib.mg_clamp(DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x), lo, hi, ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def clamp_backward(x, grad, lo, hi):
    """grad where lo <= x <= hi, else 0."""
    x, grad = _contiguous(x), _contiguous(grad)
    _same_layout("clamp_backward: grad", grad, x)
    out = empty(x.shape, x.dtype)
    status = lib.mg_clamp_backward(DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x),
                                   ffi.from_buffer(grad), lo, hi, ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def pow_scalar(x, p):
    """x ** p for a float exponent p (shortcuts for 0, +-0.5, +-1, +-2, 3)."""
    x = _contiguous(x)
    out = empty_like(x)
    status = lib.mg_pow_scalar(DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x), p, ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def pow_scalar_backward(x, grad, p):
    """grad * (p * x ** (p - 1)); zero when p == 0."""
    x, grad = _contiguous(x), _contiguous(grad)
    _same_layout("pow_scalar_backward: grad", grad, x)
    out = empty_like(x)
    status = lib.mg_pow_scalar_backward(DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x),
                                        ffi.from_buffer(grad), p, ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def pow(x, y):
    """x ** y elementwise for arrays of one shape and float dtype."""
    x, y = _contiguous(x), _contiguous(y)
    _same_layout("pow: y", y, x)
    out = empty_like(x)
    status = lib.mg_pow(DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x), ffi.from_buffer(y),
                        ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def reduce(op, x, axes):
    """x reduced (REDUCE_SUM, _MAX or _MIN) over axes, a tuple of distinct
    non-negative axes; the result has the other axes, in order. Any strides,
    nothing is copied; float32 sums accumulate in float64."""
    mask = 0
    for axis in axes:
        mask |= 1 << axis
    out = empty(tuple(n for d, n in enumerate(x.shape) if not mask >> d & 1), x.dtype)
    item = x.itemsize
    status = lib.mg_reduce(op, DTYPE_CODES[x.dtype], x.ndim, x.shape, pointer(x),
                           [s // item for s in x.strides], mask, ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def sum_axes(a, axes):
    """a summed over the given axes (float32 accumulated in float64)."""
    return reduce(REDUCE_SUM, a, tuple(axes))


def sum_all(a):
    """The sum of every element, as a 0-d array of a's dtype."""
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    out = np.empty((), a.dtype)
    status = lib.mg_sum(DTYPE_CODES[a.dtype], ffi.from_buffer(a), a.size, ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out
