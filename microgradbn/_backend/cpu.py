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
from ..errors import STATUS_EXCEPTIONS

LARGE_BYTES = 1 << 16
ISA_NAMES = ("scalar", "avx2", "avx512", "neon")
DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}
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
    out = ffi.new("void **")
    status = lib.mg_alloc(nbytes, out)
    if status:
        raise_status(status)
    owner = ffi.gc(out[0], lib.mg_free, size=nbytes)
    return np.frombuffer(ffi.buffer(owner, nbytes), dtype).reshape(shape)


def pointer(array):
    """A cffi pointer to the first element of array (any strides)."""
    return ffi.cast("void *", array.__array_interface__["data"][0])


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
    if a.shape == b.shape == tuple(shape) and a.flags.c_contiguous and b.flags.c_contiguous:
        status = lib.mg_binary_contig(op, code, out.size, ffi.from_buffer(a), ffi.from_buffer(b),
                                      ffi.from_buffer(out))
    else:
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


def binary_same(op, x, x_handle, y_handle):
    """x op y for C-contiguous x and y of one shape and float dtype, given
    their cached handles; returns the result and its handle."""
    out = np.empty(x.shape, x.dtype) if x.nbytes < LARGE_BYTES else empty(x.shape, x.dtype)
    out_handle = ffi.from_buffer(out)
    status = lib.mg_binary_contig(op, DTYPE_CODES[x.dtype], x.size, x_handle, y_handle, out_handle)
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
        out = empty(x.shape, x.dtype)
    elif out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"unary: out must be C-contiguous {x.dtype} of shape {x.shape}")
    status = lib.mg_unary(op, DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x), ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def unary_backward(op, saved, grad):
    """The fused backward (a GRAD_* op) from the saved array and the incoming gradient."""
    saved, grad = _contiguous(saved), _contiguous(grad)
    out = empty(saved.shape, saved.dtype)
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
    out = empty(x.shape, x.dtype)
    status = lib.mg_clamp_backward(DTYPE_CODES[x.dtype], x.size, ffi.from_buffer(x),
                                   ffi.from_buffer(grad), lo, hi, ffi.from_buffer(out))
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
