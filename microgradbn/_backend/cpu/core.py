"""The CPU backend's basics: the C library's dtype codes and status codes
(a non-zero mg_status becomes the matching microgradbn.errors exception with
the C message), allocation, the layout check the kernels' callers share, and
the SIMD path and thread count.

Buffers of LARGE_BYTES or more come from the C library's 64-byte aligned
caching allocator; smaller ones from NumPy, whose own small-block cache is
faster than a trip through cffi.
"""
import math

import numpy as np

from ..._mgbn import ffi, lib
from ...errors import STATUS_EXCEPTIONS, DTypeError, ShapeError

LARGE_BYTES = 1 << 16
# ffi.new over the C allocator, without cffi's zero fill: one call gives a
# buffer that hands itself back to mg_free when the last array using it goes.
_new_uninitialised = ffi.new_allocator(lib.mg_alloc_or_null, lib.mg_free, should_clear_after_alloc=False)
ISA_NAMES = ("scalar", "avx2", "avx512", "neon")


class _DtypeCodes(dict):
    """dtype -> the C library's code; any other dtype is a DTypeError."""

    def __missing__(self, dtype):
        raise DTypeError(f"expected float32 or float64 arrays, got {dtype}")


DTYPE_CODES = _DtypeCodes({np.dtype(np.float32): 0, np.dtype(np.float64): 1})


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
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < LARGE_BYTES:
        return np.empty(shape, dtype)
    if nbytes >= 1 << 62:  # more than any machine has, and more than a size_t may hold
        raise MemoryError(f"cannot allocate {nbytes} bytes for a tensor of shape {tuple(shape)}")
    try:
        buffer = _new_uninitialised("char[]", nbytes)
    except MemoryError:   # cffi's message is "alloc() returned NULL"; the C library says why
        raise MemoryError(ffi.string(lib.mg_last_error()).decode()) from None
    return np.ndarray(shape, dtype, ffi.buffer(buffer))


def empty_like(x):
    """empty(x.shape, x.dtype), with a shortcut for small arrays."""
    return np.empty(x.shape, x.dtype) if x.nbytes < LARGE_BYTES else empty(x.shape, x.dtype)


def copy_of(array, dtype=None):
    """A C-contiguous copy of array, converted to dtype (and to native byte
    order), in empty()'s buffers. A large one is then 64-byte aligned and at
    the page offset of the kernels' outputs: memcpy from such an output into
    a NumPy array 16 bytes after it modulo 4 KiB stalls on 4K aliasing
    (memory.c), 90 us for 256x256 float32 against 8 us (AMD EPYC Zen 3). A
    small one is NumPy's own copy, as empty() gives NumPy's small arrays:
    1.1-1.8 us less than empty() and copyto for a (256,) gradient."""
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    if array.size * dtype.itemsize < LARGE_BYTES:
        return np.array(array, dtype=dtype, order="C", copy=True)
    out = empty(array.shape, dtype)
    np.copyto(out, array, casting="unsafe")
    return out


def handle(array):
    """A cffi pointer to a C-contiguous array's data; it keeps the array
    alive, so a Tensor can cache it for as long as it holds that array."""
    return ffi.from_buffer(array)


def pointer(array):
    """A cffi pointer to the first element of array (any strides)."""
    return ffi.cast("void *", array.__array_interface__["data"][0])


def _same_layout(name, array, like, c_contiguous=False):
    """The C kernel reads array as if it had like's shape and dtype (and,
    with c_contiguous, as one dense C-order block): check it."""
    if (array.shape != like.shape or array.dtype != like.dtype
            or c_contiguous and not array.flags.c_contiguous):
        layout = "C-contiguous " if c_contiguous else ""
        raise ShapeError(f"{name}: expected a {layout}{like.dtype} array of shape {like.shape}, "
                         f"got {array.dtype} {array.shape}")


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
        "stream_min_bytes": info.stream_min_bytes,
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
