"""The CPU backend: NumPy arrays in, C kernels (through cffi) underneath.

Every function takes and returns NumPy arrays of float32 or float64 whose
shapes the caller has already checked; the C library checks again and any
failure becomes the matching exception (microgradbn.errors) with the C
message. Buffers of LARGE_BYTES or more come from the C library's 64-byte
aligned caching allocator; smaller ones from NumPy, whose own small-block
cache is faster than a trip through cffi.
"""
import numpy as np

from .._mgbn import ffi, lib
from ..errors import STATUS_EXCEPTIONS, DTypeError, ShapeError

LARGE_BYTES = 1 << 16
ISA_NAMES = ("scalar", "avx2", "avx512", "neon")


class _DtypeCodes(dict):
    """dtype -> the C library's code; any other dtype is a DTypeError."""

    def __missing__(self, dtype):
        raise DTypeError(f"expected float32 or float64 arrays, got {dtype}")


DTYPE_CODES = _DtypeCodes({np.dtype(np.float32): 0, np.dtype(np.float64): 1})
OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN = range(6)


def raise_status(status):
    """Raise the exception for a non-zero mg_status, with the C message."""
    message = ffi.string(lib.mg_last_error()).decode("utf-8", "replace")
    raise STATUS_EXCEPTIONS.get(status, RuntimeError)(message)


def init():
    status = lib.mg_init()
    if status:
        raise_status(status)


def empty(shape, dtype):
    """An uninitialised C-contiguous array; 64-byte aligned when large."""
    dtype = np.dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    nbytes = count * dtype.itemsize
    if nbytes < LARGE_BYTES:
        return np.empty(shape, dtype)
    if nbytes >= 1 << 62:  # more than any machine has, and more than a size_t may hold
        raise MemoryError(f"cannot allocate {nbytes} bytes for a tensor of shape {tuple(shape)}")
    out = ffi.new("void **")
    status = lib.mg_alloc(nbytes, out)
    if status:
        raise_status(status)
    owner = ffi.gc(out[0], lib.mg_free, size=nbytes)
    return np.frombuffer(ffi.buffer(owner, nbytes), dtype).reshape(shape)


def pointer(array):
    """A cffi pointer to the first element of array (any strides)."""
    return ffi.cast("void *", array.__array_interface__["data"][0])


def _fits(array, shape):
    """array broadcasts to shape: its axes, right-aligned, are 1 or equal to shape's."""
    pad = len(shape) - array.ndim
    return pad >= 0 and all(n == 1 or n == m for n, m in zip(array.shape, shape[pad:]))


def _same_layout(name, array, like):
    """The C kernel reads array as if it had like's shape and dtype: check it."""
    if array.shape != like.shape or array.dtype != like.dtype:
        raise ShapeError(f"{name}: expected a {like.dtype} array of shape {like.shape}, "
                          f"got {array.dtype} {array.shape}")


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


def sum_all(a):
    """The sum of every element, as a 0-d array of a's dtype."""
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    out = np.empty((), a.dtype)
    status = lib.mg_sum(DTYPE_CODES[a.dtype], ffi.from_buffer(a), a.size, ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def backend_info():
    info = ffi.new("mg_backend_info_t *")
    status = lib.mg_get_backend_info(info)
    if status:
        raise_status(status)
    return {
        "isa": ISA_NAMES[info.active_isa],
        "available_isas": [n for i, n in enumerate(ISA_NAMES) if info.available_isas >> i & 1],
        "compiled_isas": [n for i, n in enumerate(ISA_NAMES) if info.compiled_isas >> i & 1],
        "threads": info.num_threads,
        "version": ffi.string(lib.mg_version()).decode(),
    }


def set_isa(name):
    if name not in ISA_NAMES:
        raise ValueError(f"unknown SIMD path {name!r}; expected one of {', '.join(ISA_NAMES)}")
    status = lib.mg_set_isa(ISA_NAMES.index(name))
    if status:
        raise_status(status)


def set_num_threads(n):
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}")
    status = lib.mg_set_num_threads(n)
    if status:
        raise_status(status)


# ---- ops: elementwise fast path, unary maps, reductions over axes ----------

UNARY_EXP, UNARY_LOG, UNARY_SQRT, UNARY_TANH, UNARY_SIGMOID, UNARY_RELU, UNARY_ABS, UNARY_NEG = range(8)
GRAD_RELU, GRAD_SIGMOID, GRAD_TANH, GRAD_SQRT, GRAD_ABS = range(5)
REDUCE_SUM, REDUCE_MAX, REDUCE_MIN = range(3)


def handle(array):
    """A cffi pointer to a C-contiguous array's data; it keeps the array
    alive, so a Tensor can cache it for as long as it holds that array."""
    return ffi.from_buffer(array)


def empty_like(x):
    """empty(x.shape, x.dtype), with a shortcut for small arrays."""
    return np.empty(x.shape, x.dtype) if x.nbytes < LARGE_BYTES else empty(x.shape, x.dtype)


def binary_same(op, x, x_handle, y_handle):
    """x op y for C-contiguous x and y of one shape and float dtype, given
    their cached handles; returns the result and its handle."""
    if len(x_handle) < x.nbytes or len(y_handle) < x.nbytes:
        raise ValueError(f"binary_same: handles of {len(x_handle)} and {len(y_handle)} bytes "
                         f"for an array of {x.nbytes}")
    out = empty_like(x)
    out_handle = ffi.from_buffer(out)
    status = lib.mg_binary_contig(op, DTYPE_CODES[x.dtype], x.size, x_handle, y_handle, out_handle)
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
    if len(x_handle) < x.nbytes:
        raise ValueError(f"unary_same: a handle of {len(x_handle)} bytes for an array of {x.nbytes}")
    out = empty_like(x)
    out_handle = ffi.from_buffer(out)
    status = lib.mg_unary(op, DTYPE_CODES[x.dtype], x.size, x_handle, out_handle)
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


# ---- matmul ----


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
        out = _output(out, (a.shape[0], b.shape[1]), a.dtype, accumulate)
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
    if x.flags.aligned and (x.flags.c_contiguous or all(s % x.itemsize == 0 for s in x.strides)):
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
# ---- batch normalization ----
# x is C-contiguous (N, C), (N, C, L) or (N, C, H, W), seen by the C kernels
# as (N, C, S) with S the spatial size. weight/bias are (C,) of x's dtype or
# None. The per-channel statistics (save_mean, save_rstd, batch_var) are
# float64 for both dtypes: the kernels accumulate in float64 and backward then
# sees the exact mean (this matters for inputs with a large offset).

def _bn_input(x):
    if x.ndim not in (2, 3, 4):
        raise ShapeError(f"batch_norm: expected a 2-D, 3-D or 4-D input (N, C, ...), got shape {x.shape}")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def _bn_ncs(x):
    s = 1
    for n in x.shape[2:]:
        s *= n
    return x.shape[0], x.shape[1], s


def _bn_param(p, x):
    """A cffi pointer to an optional per-channel parameter of x's dtype, or NULL."""
    if p is None:
        return ffi.NULL
    if p.shape != (x.shape[1],) or p.dtype != x.dtype:
        raise ShapeError(f"batch_norm: expected a ({x.shape[1]},) {x.dtype} parameter, "
                         f"got {p.shape} {p.dtype}")
    return ffi.from_buffer(np.ascontiguousarray(p))


def batch_norm_train_forward(x, weight, bias, eps):
    """Training forward; returns (y, save_mean, save_rstd, batch_var), the last three
    float64 (C,): the batch mean, 1/sqrt(var + eps) and the biased variance."""
    x = _bn_input(x)
    n, c, s = _bn_ncs(x)
    y = empty(x.shape, x.dtype)
    mean, rstd, var = np.empty(c), np.empty(c), np.empty(c)
    status = lib.mg_batch_norm_train_forward(
        DTYPE_CODES[x.dtype], n, c, s, ffi.from_buffer(x), _bn_param(weight, x), _bn_param(bias, x),
        eps, ffi.from_buffer(y), ffi.from_buffer("double[]", mean), ffi.from_buffer("double[]", rstd),
        ffi.from_buffer("double[]", var))
    if status:
        raise_status(status)
    return y, mean, rstd, var


def batch_norm_eval_forward(x, running_mean, running_var, weight, bias, eps):
    """y = x*scale + shift with scale = weight/sqrt(running_var + eps),
    shift = bias - running_mean*scale."""
    x = _bn_input(x)
    n, c, s = _bn_ncs(x)
    y = empty(x.shape, x.dtype)
    status = lib.mg_batch_norm_eval_forward(
        DTYPE_CODES[x.dtype], n, c, s, ffi.from_buffer(x), _bn_param(running_mean, x),
        _bn_param(running_var, x), _bn_param(weight, x), _bn_param(bias, x), eps, ffi.from_buffer(y))
    if status:
        raise_status(status)
    return y


def batch_norm_backward(dy, x, save_mean, save_rstd, weight, need_dx, need_dweight, need_dbias):
    """Training backward; returns (dx, dweight, dbias), None where not needed."""
    x = _bn_input(x)
    dy = _bn_input(dy)
    if dy.shape != x.shape or dy.dtype != x.dtype:
        raise ShapeError(f"batch_norm_backward: dy {dy.shape} {dy.dtype} does not match x {x.shape} {x.dtype}")
    n, c, s = _bn_ncs(x)
    save_mean = np.ascontiguousarray(save_mean, np.float64)
    save_rstd = np.ascontiguousarray(save_rstd, np.float64)
    if save_mean.shape != (c,) or save_rstd.shape != (c,):
        raise ShapeError(f"batch_norm_backward: expected ({c},) statistics, got {save_mean.shape} and {save_rstd.shape}")
    dx = empty(x.shape, x.dtype) if need_dx else None
    dweight = np.empty(c, x.dtype) if need_dweight else None
    dbias = np.empty(c, x.dtype) if need_dbias else None
    status = lib.mg_batch_norm_backward(
        DTYPE_CODES[x.dtype], n, c, s, ffi.from_buffer(dy), ffi.from_buffer(x),
        ffi.from_buffer("double[]", save_mean), ffi.from_buffer("double[]", save_rstd),
        _bn_param(weight, x), ffi.NULL if dx is None else ffi.from_buffer(dx),
        ffi.NULL if dweight is None else ffi.from_buffer(dweight),
        ffi.NULL if dbias is None else ffi.from_buffer(dbias))
    if status:
        raise_status(status)
    return dx, dweight, dbias


def batch_norm_eval_backward(dy, running_var, weight, eps):
    """dx = dy*weight/sqrt(running_var + eps)."""
    dy = _bn_input(dy)
    n, c, s = _bn_ncs(dy)
    dx = empty(dy.shape, dy.dtype)
    status = lib.mg_batch_norm_eval_backward(
        DTYPE_CODES[dy.dtype], n, c, s, ffi.from_buffer(dy), _bn_param(running_var, dy),
        _bn_param(weight, dy), eps, ffi.from_buffer(dx))
    if status:
        raise_status(status)
    return dx


# ---- convolution and pooling ----
# Arrays are NCHW; kernel, stride and padding are (height, width) pairs the
# caller has checked (microgradbn/ops/conv.py and pool.py).

def _window(kernel, stride, padding):
    return ffi.new("mg_window2d_t *", (kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]))


def pooled_size(size, kernel, stride, padding):
    """Output (height, width) of a window sliding over an input of (height, width)."""
    if min(stride) < 1:
        raise ValueError(f"stride must be positive, got {tuple(stride)}")
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


def _check_conv(x, weight, bias):
    """weight (C_out, C_in, kH, kW) and bias (C_out,) or None must fit x (N, C_in, H, W)."""
    if (weight.ndim != 4 or weight.shape[1] != x.shape[1] or weight.dtype != x.dtype
            or bias is not None and (bias.shape != weight.shape[:1] or bias.dtype != x.dtype)):
        raise ShapeError(f"conv2d: weight {weight.shape} {weight.dtype} and bias "
                          f"{None if bias is None else (bias.shape, bias.dtype)} do not fit "
                          f"input {x.shape} {x.dtype}")


def _check_grad(name, grad, shape, dtype):
    if grad.shape != tuple(shape) or grad.dtype != dtype:
        raise ShapeError(f"{name}: expected grad {tuple(shape)} {dtype}, got {grad.shape} {grad.dtype}")


def _buffer(array):
    return ffi.from_buffer(np.ascontiguousarray(array))


def conv2d_forward(x, weight, bias, stride, padding):
    """out (N, C_out, OH, OW) = x (N, C_in, H, W) cross-correlated with
    weight (C_out, C_in, kH, kW), plus bias (C_out,) or None."""
    n, c_in, h, w = x.shape
    _check_conv(x, weight, bias)
    c_out, _, kh, kw = weight.shape
    out = empty((n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype)
    status = lib.mg_conv2d_forward(DTYPE_CODES[x.dtype], n, c_in, h, w, c_out, _window((kh, kw), stride, padding),
                                   _buffer(x), _buffer(weight), ffi.NULL if bias is None else _buffer(bias),
                                   ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def conv2d_backward(x, weight, grad, stride, padding, want_x, want_weight, want_bias):
    """(dx, dweight, dbias) of conv2d_forward given grad = dout; None where not wanted."""
    n, c_in, h, w = x.shape
    _check_conv(x, weight, None)
    c_out, _, kh, kw = weight.shape
    _check_grad("conv2d_backward", grad, (n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype)
    dx = empty(x.shape, x.dtype) if want_x else None
    dweight = empty(weight.shape, x.dtype) if want_weight else None
    dbias = empty((c_out,), x.dtype) if want_bias else None
    outputs = [ffi.NULL if a is None else ffi.from_buffer(a) for a in (dx, dweight, dbias)]
    status = lib.mg_conv2d_backward(DTYPE_CODES[x.dtype], n, c_in, h, w, c_out,
                                    _window((kh, kw), stride, padding), _buffer(x), _buffer(weight),
                                    _buffer(grad), *outputs)
    if status:
        raise_status(status)
    return dx, dweight, dbias


def _pool_forward(c_function, x, kernel, stride, padding):
    n, c, h, w = x.shape
    out = empty((n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype)
    status = c_function(DTYPE_CODES[x.dtype], n, c, h, w, _window(kernel, stride, padding), _buffer(x),
                        ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def max_pool2d_forward(x, kernel, stride, padding):
    """The max of each window (a NaN wins), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_max_pool2d_forward, x, kernel, stride, padding)


def max_pool2d_backward(x, grad, kernel, stride, padding):
    """dx: grad routed to each window's first maximum in x."""
    n, c, h, w = x.shape
    _check_grad("max_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype)
    dx = empty(x.shape, x.dtype)
    status = lib.mg_max_pool2d_backward(DTYPE_CODES[x.dtype], n, c, h, w, _window(kernel, stride, padding),
                                        _buffer(x), _buffer(grad), ffi.from_buffer(dx))
    if status:
        raise_status(status)
    return dx


def avg_pool2d_forward(x, kernel, stride, padding):
    """The window sums divided by kH*kW (padding counts as zeros), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_avg_pool2d_forward, x, kernel, stride, padding)


def avg_pool2d_backward(shape, grad, kernel, stride, padding):
    """dx of the given input shape: grad / (kH*kW) spread over each window."""
    n, c, h, w = shape
    _check_grad("avg_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding),
                grad.dtype)
    dx = empty(shape, grad.dtype)
    status = lib.mg_avg_pool2d_backward(DTYPE_CODES[grad.dtype], n, c, h, w, _window(kernel, stride, padding),
                                        _buffer(grad), ffi.from_buffer(dx))
    if status:
        raise_status(status)
    return dx


# ---- optimizer steps (in place; the names and arguments of opencl.py's) -----

def _state_array(name, array, param):
    """The C step updates array in place as if it had param's layout: check it."""
    if array.shape != param.shape or array.dtype != param.dtype or not array.flags.c_contiguous:
        raise ShapeError(f"{name}: expected a C-contiguous {param.dtype} array of shape {param.shape}, "
                          f"got {array.dtype} {array.shape}")
    return ffi.from_buffer(array, require_writable=name != "grad")


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """One SGD step on param (and momentum_buffer, which may be None when momentum == 0)."""
    buf = ffi.NULL if momentum_buffer is None else _state_array("momentum_buffer", momentum_buffer, param)
    status = lib.mg_sgd_step(DTYPE_CODES[param.dtype], param.size, _state_array("param", param, param),
                             _state_array("grad", grad, param), buf, lr, momentum, dampening,
                             weight_decay, int(nesterov), int(first_step))
    if status:
        raise_status(status)


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    """One Adam step (AdamW when decoupled) on param, exp_avg and exp_avg_sq; step counts from 1."""
    status = lib.mg_adam_step(DTYPE_CODES[param.dtype], param.size, _state_array("param", param, param),
                              _state_array("grad", grad, param), _state_array("exp_avg", exp_avg, param),
                              _state_array("exp_avg_sq", exp_avg_sq, param), lr, beta1, beta2, eps,
                              weight_decay, step, int(decoupled))
    if status:
        raise_status(status)
