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


def element_strides(array, shape):
    """array's strides in elements, right-aligned to shape; 0 on broadcast axes."""
    item = array.itemsize
    pad = len(shape) - array.ndim
    return [0] * pad + [0 if n == 1 else s // item for n, s in zip(array.shape, array.strides)]


def binary(op, a, b, shape, dtype):
    """a op b broadcast to shape, in dtype (a and b already have it)."""
    out = empty(shape, dtype)
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


def sum_axes(a, axes):
    """a summed over the given axes (float32 accumulated in float64)."""
    return np.add.reduce(a, axis=axes, dtype=np.float64).astype(a.dtype, copy=False)


# ---- convolution and pooling ----
# Arrays are NCHW; kernel, stride and padding are (height, width) pairs the
# caller has checked (microgradbn/ops/conv.py and pool.py).

def _window(kernel, stride, padding):
    return ffi.new("mg_window2d_t *", (kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]))


def pooled_size(size, kernel, stride, padding):
    """Output (height, width) of a window sliding over an input of (height, width)."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


def _buffer(array):
    return ffi.from_buffer(np.ascontiguousarray(array))


def conv2d_forward(x, weight, bias, stride, padding):
    """out (N, C_out, OH, OW) = x (N, C_in, H, W) cross-correlated with
    weight (C_out, C_in, kH, kW), plus bias (C_out,) or None."""
    n, c_in, h, w = x.shape
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
    c_out, _, kh, kw = weight.shape
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
    dx = empty(shape, grad.dtype)
    status = lib.mg_avg_pool2d_backward(DTYPE_CODES[grad.dtype], n, c, h, w, _window(kernel, stride, padding),
                                        _buffer(grad), ffi.from_buffer(dx))
    if status:
        raise_status(status)
    return dx
