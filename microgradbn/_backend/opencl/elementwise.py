"""The OpenCL backend's elementwise ops and reductions: binary ops with
broadcasting, unary maps and their backwards, clamp, pow, comparisons and
where, and reductions over axes; the names, arguments and results of the
CPU backend's (compare and where are the device's own: the CPU does them in
NumPy).
"""
import numpy as np

from ..._mgbn import lib
from ...errors import DTypeError, ShapeError
from ..cpu.core import _same_layout  # the same check as the CPU backend's
from ..cpu.elementwise import OP_ADD, REDUCE_SUM
from .core import ClArray, _check, _dtype_code, _like, _same_device, _strides


# ---- elementwise -------------------------------------------------------------------

def _output(out, shape, dtype, device, name):
    if out is None:
        return ClArray(shape, dtype, device)
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"{name}: out must be a {np.dtype(dtype)} ClArray of shape {tuple(shape)}")
    return out


def binary(op, a, b, shape, dtype, out=None):
    """a op b broadcast to shape, in dtype (a and b already have it), into
    out (a ClArray) or a new array."""
    shape = tuple(shape)
    out = _output(out, shape, dtype, a.device, "binary")

    def strides(x):
        pad = len(shape) - x.ndim
        return [0] * pad + [0 if n == 1 else s for n, s in zip(x.shape, _strides(x.shape))]
    _check(lib.mg_cl_binary(op, _dtype_code(out.dtype), len(shape), list(shape), a.buffer, 0, strides(a),
                            b.buffer, 0, strides(b), out.buffer))
    return out


def add(a, b):
    """a + b for arrays of one shape and dtype (gradient accumulation)."""
    return binary(OP_ADD, a, b, a.shape, a.dtype)


def handle(array):
    """What binary_same takes for array: on this backend the ClArray itself."""
    return array


def binary_same(op, x, x_handle, y_handle):
    """x op y for arrays of one shape and dtype; returns the result and its handle."""
    out = binary(op, x_handle, y_handle, x.shape, x.dtype)
    return out, out


def unary(op, x, out=None):
    """f(x) elementwise (a UNARY_* op) into out (x's shape and dtype) or a new array."""
    out = _output(out, x.shape, x.dtype, x.device, "unary")
    _check(lib.mg_cl_unary(op, _dtype_code(x.dtype), x.size, x.buffer, out.buffer))
    return out


def unary_backward(op, saved, grad):
    """The backward of a unary op (a GRAD_* op) from the saved array and the gradient."""
    out = _like(saved)
    _check(lib.mg_cl_unary_backward(op, _dtype_code(saved.dtype), saved.size, saved.buffer, grad.buffer,
                                    out.buffer))
    return out


def clamp(x, lo, hi):
    """min(max(x, lo), hi); lo = -inf or hi = inf for no bound."""
    out = _like(x)
    _check(lib.mg_cl_clamp(_dtype_code(x.dtype), x.size, x.buffer, lo, hi, out.buffer))
    return out


def clamp_backward(x, grad, lo, hi):
    """grad where lo <= x <= hi, else 0."""
    out = _like(x)
    _check(lib.mg_cl_clamp_backward(_dtype_code(x.dtype), x.size, x.buffer, grad.buffer, lo, hi, out.buffer))
    return out


# ---- pow (PyTorch's shortcut exponents; pow(x, y) needs one shape) ------------------------

def pow_scalar(x, p):
    """x ** p for a float exponent p (shortcuts for 0, +-0.5, +-1, +-2, 3)."""
    out = _like(x)
    _check(lib.mg_cl_pow_scalar(_dtype_code(x.dtype), x.size, x.buffer, p, out.buffer))
    return out


def pow_scalar_backward(x, grad, p):
    """grad * (p * x ** (p - 1)); zero when p == 0."""
    _same_layout("pow_scalar_backward: grad", grad, x)
    out = _like(x)
    _check(lib.mg_cl_pow_scalar_backward(_dtype_code(x.dtype), x.size, x.buffer, grad.buffer, p, out.buffer))
    return out


def pow(x, y):
    """x ** y elementwise for arrays of one shape and float dtype."""
    _same_layout("pow: y", y, x)
    out = _like(x)
    _check(lib.mg_cl_pow(_dtype_code(x.dtype), x.size, x.buffer, y.buffer, out.buffer))
    return out


# ---- comparisons and where ------------------------------------------------------------------
# compare(op, a, b, shape) -> bool ClArray of shape; op one of CMP_EQ, CMP_NE,
#     CMP_LT, CMP_LE, CMP_GT, CMP_GE; a and b float of one dtype, each
#     broadcasting to shape (right-aligned, as binary()). NaN: IEEE.
# where(cond, a, b, shape) -> a where cond else b, broadcast to shape; cond a
#     bool ClArray, a and b float of one dtype (the result's). The backward
#     of where is where(cond, grad, zeros(()), ...) and its mirror.

CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE = range(6)


def _broadcast_strides(name, x, shape):
    """x's C strides right-aligned to shape, 0 on broadcast axes."""
    pad = len(shape) - x.ndim
    if pad < 0 or any(n != 1 and n != m for n, m in zip(x.shape, shape[pad:])):
        raise ShapeError(f"{name}: shape {x.shape} does not broadcast to {tuple(shape)}")
    return [0] * pad + [0 if n == 1 else s for n, s in zip(x.shape, _strides(x.shape))]


def _float_pair(name, a, b):
    if a.dtype != b.dtype:
        raise DTypeError(f"{name}: operands must have one dtype, got {a.dtype} and {b.dtype}")
    return _dtype_code(a.dtype)


def compare(op, a, b, shape):
    """a op b (a CMP_* op) broadcast to shape, as a bool array."""
    shape = tuple(shape)
    code = _float_pair("compare", a, b)
    out = ClArray(shape, np.bool_, _same_device("compare", a, b))
    _check(lib.mg_cl_compare(op, code, len(shape), list(shape), a.buffer, 0, _broadcast_strides("compare", a, shape),
                             b.buffer, 0, _broadcast_strides("compare", b, shape), out.buffer))
    return out


def where(cond, a, b, shape):
    """a where cond else b, all broadcast to shape; cond a bool array."""
    shape = tuple(shape)
    if cond.dtype != np.bool_:
        raise DTypeError(f"where: the condition must be a bool array, got {cond.dtype}")
    code = _float_pair("where", a, b)
    out = ClArray(shape, a.dtype, _same_device("where", cond, a, b))
    _check(lib.mg_cl_where(code, len(shape), list(shape), cond.buffer, 0, _broadcast_strides("where", cond, shape),
                           a.buffer, 0, _broadcast_strides("where", a, shape), b.buffer, 0,
                           _broadcast_strides("where", b, shape), out.buffer))
    return out


# ---- reductions ----------------------------------------------------------------------

def reduce(op, x, axes):
    """x reduced (REDUCE_SUM, _MAX or _MIN) over axes, a tuple of distinct
    non-negative axes; the result has the other axes, in order. float32 sums
    accumulate in statistics_dtype."""
    mask = 0
    for axis in axes:
        mask |= 1 << axis
    out = _like(x, tuple(n for d, n in enumerate(x.shape) if not mask >> d & 1))
    _check(lib.mg_cl_reduce(op, _dtype_code(x.dtype), x.ndim, list(x.shape), x.buffer, 0, _strides(x.shape),
                            mask, out.buffer))
    return out


def sum_axes(a, axes):
    """a summed over the given axes."""
    return reduce(REDUCE_SUM, a, tuple(axes))


def sum_all(a):
    """The sum of every element, as a 0-d ClArray of a's dtype."""
    return reduce(REDUCE_SUM, a, tuple(range(a.ndim)))
