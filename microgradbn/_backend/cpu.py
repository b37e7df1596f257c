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
