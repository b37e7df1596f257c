"""The OpenCL backend's basics: PoCL's kernel cache, status checks, the
devices, the dtype codes, ClArray (a C-contiguous array in a device buffer),
allocation, and views, copies and casts on the device.

ClArray dtypes: float32, float64 (needs cl_khr_fp64), bool (one byte, 0 or
1, on the device; .numpy() gives np.bool_) and int64 (class indices).
Offsets and strides count ELEMENTS; a view is (array, offset, shape, strides).
"""
import os
import tempfile

import numpy as np

from ..._mgbn import ffi, lib
from ...errors import DTypeError, ShapeError
from ..cpu.core import DTYPE_CODES, raise_status


def _default_pocl_cache_dir():
    """PoCL shows no device at all when it cannot write its kernel cache, so
    give it one under the user's cache directory (or the temp directory)
    unless POCL_CACHE_DIR is set. Runs at import, before libOpenCL loads."""
    if os.environ.get("POCL_CACHE_DIR"):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    user = os.getuid() if hasattr(os, "getuid") else "user"
    for path in (os.path.join(base, "microgradbn", "pocl"),
                 os.path.join(tempfile.gettempdir(), f"microgradbn-pocl-{user}")):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            os.environ["POCL_CACHE_DIR"] = path
            return


_default_pocl_cache_dir()


def _check(status):
    if status:
        raise_status(status)


# ---- devices ------------------------------------------------------------------

def is_available():
    """True if an OpenCL runtime loads and shows at least one device."""
    return lib.mg_cl_init() == 0


def unavailable_reason():
    """Why is_available() is False ("" when it is True)."""
    if lib.mg_cl_init() == 0:
        return ""
    return ffi.string(lib.mg_last_error()).decode("utf-8", "replace")


def init():
    """Loads the runtime; BackendError naming what to install if there is none."""
    _check(lib.mg_cl_init())


def device_count():
    out = ffi.new("int *")
    _check(lib.mg_cl_device_count(out))
    return out[0]


def device_info(index=0):
    info = ffi.new("mg_cl_device_info_t *")
    _check(lib.mg_cl_device_info(index, info))
    return {
        "name": ffi.string(info.name).decode("utf-8", "replace"),
        "vendor": ffi.string(info.vendor).decode("utf-8", "replace"),
        "version": ffi.string(info.version).decode("utf-8", "replace"),
        "global_mem_bytes": info.global_mem_bytes,
        "max_alloc_bytes": info.max_alloc_bytes,
        "max_work_group_size": info.max_work_group_size,
        "compute_units": info.compute_units,
        "fp64": bool(info.fp64),
        "is_gpu": bool(info.is_gpu),
    }


def devices():
    """One dict per device (name, vendor, global_mem_bytes, fp64, ...); [] without OpenCL."""
    if not is_available():
        return []
    return [device_info(i) for i in range(device_count())]


_statistics_dtypes = {}


def statistics_dtype(device=0):
    """The dtype of BN statistics and of float32 sums on device."""
    dtype = _statistics_dtypes.get(device)
    if dtype is None:
        dtype = _statistics_dtypes[device] = np.dtype(np.float64 if device_info(device)["fp64"] else np.float32)
    return dtype


def finish(device=0):
    """Waits until everything enqueued on device has run."""
    _check(lib.mg_cl_finish(device))


# ---- device arrays --------------------------------------------------------------

def _dtype_code(dtype):
    """The code of a float dtype, the only ones arithmetic kernels take."""
    code = DTYPE_CODES.get(np.dtype(dtype))
    if code is None:
        raise DTypeError(f"OpenCL arithmetic takes float32 or float64 arrays, got {np.dtype(dtype)}")
    return code


# Element types a ClArray may hold (mg.h: mg_dtype and mg_cl_dtype): bool
# masks are one byte, 0 or 1, as NumPy's np.bool_; int64 holds class indices.
STORAGE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.bool_): 2,
                 np.dtype(np.int64): 3}


def _storage_code(dtype):
    code = STORAGE_CODES.get(np.dtype(dtype))
    if code is None:
        raise DTypeError(f"OpenCL arrays are float32, float64, bool or int64, got {np.dtype(dtype)}")
    return code


class ClArray:
    """A C-contiguous float32/float64/bool/int64 array in an OpenCL buffer:
    the buffer (freed by the garbage collector), shape, dtype and device
    index. Views made by reshape share the buffer."""

    __slots__ = ("buffer", "shape", "dtype", "device", "size")

    def __init__(self, shape, dtype, device=0, buffer=None):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        _storage_code(self.dtype)
        self.device = device
        self.size = int(np.prod(self.shape, dtype=np.int64))
        if buffer is None:
            nbytes = max(self.size, 1) * self.dtype.itemsize
            out = ffi.new("mg_cl_buffer_t **")
            _check(lib.mg_cl_alloc(device, nbytes, out))
            buffer = ffi.gc(out[0], lib.mg_cl_free, size=nbytes)
        self.buffer = buffer

    @classmethod
    def from_numpy(cls, array, device=0):
        """A device copy of a float32, float64, bool or int64 NumPy array."""
        array = np.asarray(array)
        if not array.flags.c_contiguous:
            array = array.copy(order="C")   # (np.ascontiguousarray would make a 0-d array 1-d)
        out = cls(array.shape, array.dtype, device)
        if array.size:
            _check(lib.mg_cl_write(out.buffer, 0, ffi.from_buffer(array), array.nbytes))
        return out

    def numpy(self):
        """A NumPy copy (waits for the kernels that write this array)."""
        out = np.empty(self.shape, self.dtype)
        if self.size:
            _check(lib.mg_cl_read(self.buffer, 0, ffi.from_buffer(out), out.nbytes))
        return out

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if -1 in shape:
            known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
            shape = tuple(self.size // known if n == -1 and known else n for n in shape)
        if int(np.prod(shape, dtype=np.int64)) != self.size:
            raise ShapeError(f"cannot reshape a ClArray of shape {self.shape} into {shape}")
        return ClArray(shape, self.dtype, self.device, self.buffer)

    def copy(self):
        out = ClArray(self.shape, self.dtype, self.device)
        if self.size:
            _check(lib.mg_cl_copy(self.buffer, 0, out.buffer, 0, self.nbytes))
        return out

    def fill_(self, value):
        """Sets every element to value, in place (on the device)."""
        _check(lib.mg_cl_fill(_dtype_code(self.dtype), self.buffer, self.size, value))
        return self

    def astype(self, dtype, copy=True):
        """This array in dtype, as ndarray.astype: itself when it already has
        dtype and copy is false; a float32<->float64 cast runs on the device."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self.copy() if copy else self
        return astype(self, dtype)    # (the module's function, below)

    def __repr__(self):
        return f"ClArray(shape={self.shape}, dtype={self.dtype}, device={self.device})"


def _strides(shape):
    """C-contiguous element strides of shape."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


def to_device(array, device=0):
    return ClArray.from_numpy(array, device)


def to_numpy(x):
    return x.numpy()


def empty(shape, dtype, device=0):
    return ClArray(shape, dtype, device)


def full(shape, value, dtype, device=0):
    """An array of shape filled with value; bool and int64 ones are one value
    of the dtype broadcast (stride 0) by copy_strided, so every int64 is exact."""
    out = ClArray(shape, dtype, device)
    if out.dtype in DTYPE_CODES:
        _check(lib.mg_cl_fill(_dtype_code(out.dtype), out.buffer, out.size, value))
    elif out.size:
        one = ClArray.from_numpy(np.array(value, out.dtype), device)
        copy_strided(out, 0, _strides(out.shape), one, 0, [0] * out.ndim, out.shape)
    return out


def zeros(shape, dtype, device=0):
    return full(shape, 0.0, dtype, device)


def _like(x, shape=None, dtype=None):
    return ClArray(x.shape if shape is None else shape, x.dtype if dtype is None else dtype, x.device)


# ---- views, copies and casts ------------------------------------------------------------
# copy_strided(dst, dst_offset, dst_strides, src, src_offset, src_strides, shape, accumulate=False) -> dst
#     dst[view] = src[view] elementwise over shape (in place; returns dst), or
#     dst[view] += src[view] with accumulate (float dst of src's dtype only).
#     Different dtypes convert as astype. src strides may be 0 (broadcast) or
#     negative; dst must not write an element twice, nor overlap src in one
#     buffer. Uses: writing into slices (cat/stack, setitem), the backward of
#     indexing/slicing (accumulate into a view of zeros(...)), expand.
# contiguous(x, offset, shape, strides) -> a new C-contiguous ClArray holding
#     the view (transpose/permute/slice/expand made real).
# astype(x, dtype) -> a new ClArray (always a copy, as NumPy's astype): float
#     casts round to nearest; to bool, non-zero (NaN too) is True; float to
#     int64 rounds toward zero, saturating, NaN -> 0.


def _same_device(name, *arrays):
    device = arrays[0].device
    for a in arrays[1:]:
        if a.device != device:
            raise ValueError(f"{name}: arrays on OpenCL devices {device} and {a.device}")
    return device


def _axes(name, shape, *stride_lists):
    shape = tuple(int(n) for n in shape)
    for strides in stride_lists:
        if len(strides) != len(shape):
            raise ShapeError(f"{name}: {len(strides)} strides for a shape of {len(shape)} axes {shape}")
    return shape


def copy_strided(dst, dst_offset, dst_strides, src, src_offset, src_strides, shape, accumulate=False):
    """dst[view] = src[view] (or += with accumulate) over shape; returns dst."""
    shape = _axes("copy_strided", shape, dst_strides, src_strides)
    _same_device("copy_strided", dst, src)
    _check(lib.mg_cl_copy_strided(len(shape), list(shape), _storage_code(src.dtype), src.buffer, int(src_offset),
                                  [int(s) for s in src_strides], _storage_code(dst.dtype), dst.buffer,
                                  int(dst_offset), [int(s) for s in dst_strides], int(bool(accumulate))))
    return dst


def contiguous(x, offset, shape, strides):
    """A new C-contiguous array holding the view (x, offset, shape, strides)."""
    out = ClArray(shape, x.dtype, x.device)
    return copy_strided(out, 0, _strides(out.shape), x, offset, strides, out.shape)


def astype(x, dtype):
    """A copy of x converted to dtype (see the conversions above)."""
    out = ClArray(x.shape, dtype, x.device)
    return copy_strided(out, 0, _strides(x.shape), x, 0, _strides(x.shape), x.shape)
