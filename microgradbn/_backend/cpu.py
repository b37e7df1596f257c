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


# ---- batch normalization ----
# x is C-contiguous (N, C), (N, C, L) or (N, C, H, W), seen by the C kernels
# as (N, C, S) with S the spatial size. weight/bias are (C,) of x's dtype or
# None. The per-channel statistics (save_mean, save_rstd, batch_var) are
# float64 for both dtypes: the kernels accumulate in float64 and backward then
# sees the exact mean (this matters for inputs with a large offset).

from ..errors import ShapeError  # noqa: E402  (kept inside this section)

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
