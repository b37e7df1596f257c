"""Device backends. Each package offers the same functions over its own
storage, in files cut the same way (core, elementwise, gemm, nn); nothing
above this package knows about C, nothing below it knows about autograd.

    cpu/     NumPy arrays (device "cpu")
    opencl/  ClArray device buffers (device "opencl:<index>")

An op picks the module from its inputs' storage with `backend_of`, then calls
the function of the same name there. The helpers below are the few things
the ops need that differ by storage type but are not kernels.
"""
import numpy as np

from ..errors import DTypeError
from . import cpu, opencl

ClArray = opencl.ClArray


def backend(array):
    """The backend module holding array: opencl for a ClArray, else cpu."""
    return opencl if type(array) is ClArray else cpu


def backend_of(*arrays):
    """The one backend of several storages (None entries are skipped); a
    RuntimeError naming both devices when they differ, as PyTorch's."""
    device = None
    for a in arrays:
        if a is None:
            continue
        here = a.device if type(a) is ClArray else "cpu"
        if device is None:
            device = here
        elif here != device:
            names = [f"opencl:{d}" if d != "cpu" else d for d in (device, here)]
            raise RuntimeError("Expected all tensors to be on the same device, but found at least two "
                               f"devices, {names[0]} and {names[1]}!")
    return cpu if device is None or device == "cpu" else opencl


def backend_pair(x, y):
    """backend_of(x, y), quicker for the common case of two CPU arrays."""
    if type(x) is not ClArray and type(y) is not ClArray:
        return cpu
    return backend_of(x, y)


def not_supported(op_name):
    """The error of an op that has no kernel on the device yet: raised, never
    a silent detour through the host."""
    return NotImplementedError(f"{op_name} is not supported on device opencl yet")


def require(xp, name, op_name):
    """xp's function name, or not_supported(op_name) when that backend has none yet."""
    fn = getattr(xp, name, None)
    if fn is None:
        raise not_supported(op_name)
    return fn


def unsupported(array, op_name):
    """Raise not_supported(op_name) if array is on a device."""
    if type(array) is ClArray:
        raise not_supported(op_name)


def full(shape, value, dtype, like):
    """A new array of shape filled with value, in dtype, on like's device."""
    if type(like) is ClArray:
        return opencl.full(shape, value, dtype, like.device)
    return np.full(shape, value, dtype)


def scalar(value, dtype, like):
    """A 0-d array of value in dtype on like's device (a broadcast operand)."""
    return full((), value, dtype, like)


def c_strides(shape):
    """The element strides of a C-contiguous array of shape (every ClArray's)."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def broadcast_to(x, shape):
    """x broadcast to shape: a stride-0 view on the CPU, written out on a
    device (a ClArray is always contiguous)."""
    if type(x) is not ClArray:
        return np.broadcast_to(x, shape)
    pad = len(shape) - x.ndim
    strides = (0,) * pad + tuple(0 if n == 1 else s for n, s in zip(x.shape, c_strides(x.shape)))
    return require(opencl, "contiguous", "expand")(x, 0, tuple(shape), strides)


def permuted(x, dims):
    """x with its axes in the order dims: a view on the CPU, a copy on a device."""
    if type(x) is not ClArray:
        return x.transpose(dims)
    strides = c_strides(x.shape)
    return require(opencl, "contiguous", "permute/transpose")(
        x, 0, tuple(x.shape[d] for d in dims), tuple(strides[d] for d in dims))


def view_of(shape, index):
    """(offset, shape, strides) in elements of the view that the basic index
    (ints, slices, None, Ellipsis) makes of a C-contiguous array of shape:
    NumPy works it out on a one-byte stand-in that is never read."""
    stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape, c_strides(shape))
    view = stand_in[index]
    if not isinstance(view, np.ndarray):                 # every axis taken by an int: a 0-d view
        view = stand_in[(index if isinstance(index, tuple) else (index,)) + (Ellipsis,)]
    offset = view.__array_interface__["data"][0] - stand_in.__array_interface__["data"][0]
    return offset, view.shape, view.strides


def scale(x, factor):
    """x * factor for a float array and a number, in x's dtype."""
    return backend(x).binary(cpu.OP_MUL, x, scalar(factor, x.dtype, x), x.shape, x.dtype)


def divide(x, divisor):
    """x / divisor for a float array and a number, in x's dtype (0/0 is NaN)."""
    return backend(x).binary(cpu.OP_DIV, x, scalar(divisor, x.dtype, x), x.shape, x.dtype)


# ---- devices by name --------------------------------------------------------

def parse_device(device):
    """"cpu" -> None; "opencl" or "opencl:<i>" -> the index i (0 by default),
    after checking that the device exists. Other names are a RuntimeError."""
    if device is None or device == "cpu":
        return None
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'opencl:0', got {type(device).__name__}")
    kind, _, index = device.partition(":")
    if kind != "opencl" or (index and not index.isdigit()):
        if kind == "cpu" and index in ("", "0"):
            return None
        raise RuntimeError(f"Expected one of cpu, opencl device type at start of device string: {device}")
    opencl.init()        # a BackendError (a RuntimeError) naming what to install without OpenCL
    index = int(index) if index else 0
    count = opencl.device_count()
    if index >= count:
        raise RuntimeError(f"device {device!r} does not exist: this machine has {count} OpenCL device"
                           f"{'s' if count != 1 else ''} (opencl:0{f'..opencl:{count - 1}' if count > 1 else ''})")
    return index


_fp64 = {}
_DEVICE_DTYPES = tuple(opencl.STORAGE_CODES)      # what a ClArray may hold


def to_device(array, index):
    """A copy of a NumPy array (or of a ClArray on another device, through
    the host) on opencl device index. float64 needs cl_khr_fp64; dtypes
    other than float32/float64/bool/int64 cannot live there (DTypeError)."""
    if type(array) is ClArray:
        if array.device == index:
            return array
        array = array.numpy()
    dtype = array.dtype
    if dtype not in _DEVICE_DTYPES:
        raise DTypeError(f"{dtype} tensors cannot be moved to device opencl:{index}: "
                         f"OpenCL tensors are {', '.join(map(str, _DEVICE_DTYPES))}")
    if dtype == np.float64:
        if index not in _fp64:
            _fp64[index] = opencl.device_info(index)["fp64"]
        if not _fp64[index]:
            raise DTypeError(f"device opencl:{index} ({opencl.device_info(index)['name']}) has no float64 "
                             "(cl_khr_fp64); use float32 there")
    return ClArray.from_numpy(array, index)


def to_host(array):
    """array as a NumPy array: itself on the CPU, a copy from a device."""
    return array.numpy() if type(array) is ClArray else array
