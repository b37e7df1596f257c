"""Making tensors: from data, filled, ranges and random (seeded by manual_seed)."""
import numpy as np

from . import _backend
from .tensor import Tensor, _as_dtype, _to_array, float32

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seeds every random draw of microgradbn (randn, rand, layer initialisation, dropout)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator():
    return _generator


def _on(device, array, requires_grad=False):
    """A tensor of array (made on the CPU, where the values come from) on device."""
    index = _backend.parse_device(device)
    data = array if index is None else _backend.to_device(array, index)
    return Tensor._wrap(data).requires_grad_(requires_grad) if requires_grad else Tensor._wrap(data)


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"sizes must be ints, got {size!r}")
        if n < 0:
            raise ValueError(f"negative dimension {n} in size {size!r}")
    return tuple(int(n) for n in size)


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor holding a copy of data (NumPy floats keep their dtype,
    Python floats give float32, ints give int64)."""
    if device is None or device == "cpu":
        return Tensor(data, dtype=dtype, requires_grad=requires_grad)
    return _on(device, _to_array(data, dtype), requires_grad)


def from_numpy(array):
    """A tensor sharing array's memory (float32/float64/int64 only)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    if array.dtype not in (np.float32, np.float64, np.int64, np.bool_) or not array.dtype.isnative:
        raise TypeError(f"can't convert np.ndarray of type {array.dtype}; "
                        "supported: native float32, float64, int64 and bool")
    return Tensor._wrap(array)


def from_dlpack(obj):
    """A tensor sharing the memory of obj, any CPU object with the DLPack
    protocol (__dlpack__ and __dlpack_device__): a NumPy array, a torch
    tensor, another framework's array. Zero-copy: writes show on both sides."""
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__, got {type(obj).__name__}")
    return from_numpy(np.from_dlpack(obj))


def _filled(fill, size, dtype, requires_grad, device):
    dtype = _as_dtype(dtype) or float32
    index = _backend.parse_device(device)
    if index is None:
        return Tensor(np.full(_shape(size), fill, dtype=dtype), requires_grad=requires_grad)
    if dtype not in _backend.cpu.DTYPE_CODES:       # the device's checks and message
        _backend.to_device(np.empty((0,), dtype), index)
    t = Tensor._wrap(_backend.opencl.full(_shape(size), fill, dtype, index))   # filled on the device
    return t.requires_grad_(requires_grad) if requires_grad else t


def empty(*size, dtype=None, requires_grad=False, device=None):
    return _filled(0, size, dtype, requires_grad, device)


def zeros(*size, dtype=None, requires_grad=False, device=None):
    return _filled(0, size, dtype, requires_grad, device)


def ones(*size, dtype=None, requires_grad=False, device=None):
    return _filled(1, size, dtype, requires_grad, device)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    return _filled(fill_value, size if isinstance(size, (tuple, list)) else (size,), dtype,
                   requires_grad, device)


def zeros_like(t, dtype=None, requires_grad=False, device=None):
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def ones_like(t, dtype=None, requires_grad=False, device=None):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def full_like(t, fill_value, dtype=None, requires_grad=False, device=None):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad,
                device=device or t.device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    values = np.arange(start, end, step)
    if dtype is None:
        dtype = np.int64 if values.dtype.kind in "iu" else float32
    return _on(device, _to_array(values, dtype), requires_grad)


def randn(*size, dtype=None, requires_grad=False, device=None):
    """Standard normal draws (made on the CPU from the seeded generator, then
    moved: the same seed gives the same values on every device)."""
    dtype = _as_dtype(dtype) or float32
    return _on(device, _generator.standard_normal(_shape(size)).astype(dtype), requires_grad)


def rand(*size, dtype=None, requires_grad=False, device=None):
    dtype = _as_dtype(dtype) or float32
    return _on(device, _generator.random(_shape(size)).astype(dtype), requires_grad)


def randn_like(t, dtype=None, requires_grad=False, device=None):
    return randn(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)


def rand_like(t, dtype=None, requires_grad=False, device=None):
    return rand(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=device or t.device)
