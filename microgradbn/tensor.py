"""Tensor: an array with a place in the autograd graph.

A Tensor holds its storage (`data`: a NumPy array on the CPU, a ClArray
device buffer on OpenCL, see _backend/), whether it
`requires_grad`, its accumulated `grad` (a Tensor, for leaves) and, when an
op made it, that op's graph node `grad_fn`. Ops live in microgradbn/ops/;
the methods below only route to them.

The attributes have class-level defaults, so wrapping a fresh array (which
every op does) sets only what differs: per-op overhead matters for small
models.
"""
import weakref

import numpy as np

from . import _backend, autograd
from ._backend import cpu
from ._backend.opencl import ClArray

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

_FLOAT_DTYPES = (float32, float64)
_DTYPE_NAMES = {float32: "float32", float64: "float64", int64: "int64", bool_: "bool"}


def _as_dtype(dtype):
    if dtype is None:
        return None
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}; use mg.float32, mg.float64 or mg.int64") from None
    if dtype not in _DTYPE_NAMES:
        raise TypeError(f"unsupported dtype {dtype}; use mg.float32, mg.float64, mg.int64 or bool")
    return dtype


def _to_array(data, dtype=None, copy=True):
    """NumPy array of a supported dtype, native byte order (tensor() semantics)."""
    dtype = _as_dtype(dtype)
    if isinstance(data, Tensor):
        data = _backend.to_host(data.data)      # (a tensor on a device is copied from there)
    if isinstance(data, np.generic):   # a NumPy scalar keeps its dtype, as an array would
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        array = data
        if dtype is None:
            kind = array.dtype.kind
            if kind == "f":
                dtype = float64 if array.dtype.itemsize == 8 else float32
            elif kind in "iu":
                dtype = int64
            elif kind == "b":
                dtype = bool_
            else:
                raise TypeError(f"cannot make a tensor from an array of dtype {array.dtype}")
    else:
        array = np.asarray(data)
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise TypeError(f"cannot make a tensor from {type(data).__name__} data")
        if dtype is None:
            dtype = {"f": float32, "i": int64, "u": int64, "b": bool_}[array.dtype.kind]
    if (copy or array.dtype != dtype) and array.size * dtype.itemsize >= cpu.LARGE_BYTES:
        # a large copy goes into the C library's 64-byte aligned buffers, as every
        # op's output does: NumPy's are 16-byte aligned, and a vector load that
        # straddles two cache lines makes the kernels up to 1.4x slower
        return cpu.copy_of(array, dtype)
    # astype converts byte order and dtype (a big-endian array becomes native);
    # copy=False keeps the memory when it can.
    return array.astype(dtype, order="K", copy=copy) if copy or array.dtype != dtype else array


class Tensor:
    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__
    __hash__ = object.__hash__  # == is elementwise, identity stays the hash

    requires_grad = False
    grad = None
    grad_fn = None
    name = None
    _accumulator = None
    _retains_grad = False
    _handle = None           # backend pointer to `data`, valid while _handle_of is data
    _handle_of = None

    def __init__(self, data, dtype=None, requires_grad=False, name=None):
        self.data = _to_array(data, dtype)
        self.name = name
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """A tensor around an array an op just made (no checks, no copy)."""
        t = object.__new__(cls)
        t.data = array
        if requires_grad:
            t.requires_grad = True
        return t

    def _storage_handle(self):
        """The backend pointer to `data`, made once per array, or None when the
        C kernels cannot take it whole (not C-contiguous float32/float64).
        Ops check `t._handle_of is t.data` first, inline: a hit is one compare."""
        data = self.data
        if self._handle_of is not data:
            usable = (isinstance(data, np.ndarray) and data.dtype in _FLOAT_DTYPES
                      and data.flags.c_contiguous)
            self._handle, self._handle_of = cpu.handle(data) if usable else None, data
        return self._handle

    # ---- what it is ------------------------------------------------------

    @property
    def shape(self):
        return self.data.shape

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    @property
    def ndim(self):
        return self.data.ndim

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        """"cpu", or "opencl:<index>" for a tensor on an OpenCL device."""
        data = self.data
        return f"opencl:{data.device}" if type(data) is ClArray else "cpu"

    @property
    def is_opencl(self):
        return type(self.data) is ClArray

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def is_floating_point(self):
        return self.data.dtype in _FLOAT_DTYPES

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __repr__(self):
        body = np.array2string(_backend.to_host(self.data), separator=", ", prefix="tensor(")
        extra = ""
        if type(self.data) is ClArray:
            extra += f", device='{self.device}'"
        if self.data.dtype not in (float32, int64, bool_):
            extra += f", dtype=mg.{_DTYPE_NAMES[self.data.dtype]}"
        if self.grad_fn is not None:
            extra += f", grad_fn=<{self.grad_fn.name()}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---- to Python and NumPy ---------------------------------------------

    def numpy(self):
        """The storage itself (zero-copy) on the CPU, as torch.Tensor.numpy();
        a copy from an OpenCL device (it waits for the kernels writing it)."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return _backend.to_host(self.data)

    def __array__(self, dtype=None, copy=None):
        data = _backend.to_host(self.data)
        return data if dtype is None else data.astype(dtype)

    def cpu(self):
        """This tensor on the CPU (itself when it is there), as torch.Tensor.cpu()."""
        return self.to("cpu")

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """The storage as a DLPack capsule, zero-copy (np.from_dlpack,
        torch.from_dlpack, ...): NumPy's own export of `data`."""
        if self.requires_grad:
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        if type(self.data) is ClArray:
            raise BufferError(f"DLPack export of a tensor on {self.device} is not supported; use .cpu() first")
        options = {"max_version": max_version, "dl_device": dl_device, "copy": copy}
        # NumPy before 2.1 knows only `stream`: pass the others only when given
        return self.data.__dlpack__(stream=stream, **{k: v for k, v in options.items() if v is not None})

    def __dlpack_device__(self):
        if type(self.data) is ClArray:
            raise BufferError(f"DLPack export of a tensor on {self.device} is not supported; use .cpu() first")
        return self.data.__dlpack_device__()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return _backend.to_host(self.data).reshape(()).item()

    def tolist(self):
        return _backend.to_host(self.data).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype != int64 or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.item())

    # ---- autograd --------------------------------------------------------

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype not in _FLOAT_DTYPES:
            raise RuntimeError("only Tensors of floating point dtype can require gradients "
                               f"(this one is {_DTYPE_NAMES[self.data.dtype]})")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """The same storage, cut from the graph."""
        return Tensor._wrap(self.data)

    def detach_(self):
        self.grad_fn = None
        self.requires_grad = False
        return self

    def backward(self, gradient=None, retain_graph=False):
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        data = self.data
        if gradient is None:
            if data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            gradient = np.array(1, data.dtype).reshape(data.shape) if type(data) is not ClArray else \
                _backend.full(data.shape, 1, data.dtype, data)       # (np.full costs more per call)
        elif type(data) is ClArray or isinstance(gradient, Tensor) and type(gradient.data) is ClArray:
            gradient = gradient.data if isinstance(gradient, Tensor) else _backend.to_device(
                _to_array(gradient, data.dtype, copy=False), data.device)
            _backend.backend_of(data, gradient)
            gradient = gradient.astype(data.dtype, copy=False)
        else:
            gradient = _to_array(gradient, data.dtype, copy=False)
        if gradient.shape != data.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output has a shape of {gradient.shape} "
                               f"and output has a shape of {data.shape}")
        autograd.run_backward(self, gradient, retain_graph=retain_graph)

    def register_hook(self, hook):
        """hook(grad) runs when this tensor's gradient is computed; it may return a new one."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        wrapped = _GradHook(hook)
        return _RemovableHandle(self._grad_node().add_tensor_hook(wrapped), wrapped)

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.is_leaf or self._retains_grad:
            return
        self._retains_grad = True
        self.grad_fn.add_retained(weakref.ref(self))

    @property
    def retains_grad(self):
        return self._retains_grad

    def _grad_node(self):
        """The node gradients for this tensor flow into (None: no grad)."""
        if self.grad_fn is not None:
            return self.grad_fn
        if not self.requires_grad:
            return None
        if self._accumulator is None:
            self._accumulator = autograd.AccumulateGrad(self)
        return self._accumulator

    def _accumulate_grad(self, grad):
        if self.grad is None:
            if type(grad) is ClArray:    # gradients live on their tensor's device
                self.grad = Tensor._wrap(grad.astype(self.data.dtype, copy=True))
            else:
                self.grad = Tensor._wrap(cpu.copy_of(grad, self.data.dtype))
        else:
            self.grad = Tensor._wrap(autograd.accumulate(self.grad.data, grad))

    def _set_retained_grad(self, grad):
        self._accumulate_grad(grad)

    # ---- in place on storage (no graph) ----------------------------------

    def _check_inplace(self):
        if self.requires_grad and autograd.is_grad_enabled():
            if self.is_leaf:
                raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                                   "operation.")
            raise RuntimeError("in-place operations on tensors that are part of an autograd graph "
                               "are not supported; use the out-of-place op")

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        self._check_inplace()
        if type(self.data) is ClArray:
            self.data.fill_(value)
        else:
            self.data[...] = value
        return self

    def copy_(self, src):
        """Copy src's values (broadcast to this shape) into this storage; src
        may be on another device (the copy moves it)."""
        self._check_inplace()
        data = self.data
        if type(data) is ClArray:
            src = src.data if isinstance(src, Tensor) else np.asarray(src, dtype=data.dtype)
            src = _backend.to_device(src, data.device).astype(data.dtype, copy=False)
            _backend.opencl.binary(cpu.OP_MUL, src, _backend.scalar(1, data.dtype, data), data.shape,
                                   data.dtype, out=data)
            return self
        src = _backend.to_host(src.data) if isinstance(src, Tensor) else np.asarray(src)
        np.copyto(data, np.broadcast_to(src, data.shape), casting="same_kind")
        return self

    def _inplace(self, ufunc, other):
        self._check_inplace()
        other = other.data if isinstance(other, Tensor) else other
        data = self.data
        if type(data) is ClArray or type(other) is ClArray:
            if type(other) is not ClArray and np.ndim(other) == 0:   # a number goes to the device
                other = _backend.full((), other, data.dtype, data)
            xp = _backend.backend_of(data, other)
            xp.binary(_INPLACE_OPS[ufunc], data, other.astype(data.dtype, copy=False), data.shape, data.dtype,
                      out=data)
            return self
        ufunc(data, other, out=data, casting="same_kind")
        return self

    def add_(self, other, alpha=1):
        return self._inplace(np.add, _times(other, alpha))

    def sub_(self, other, alpha=1):
        return self._inplace(np.subtract, _times(other, alpha))

    def mul_(self, other):
        return self._inplace(np.multiply, other)

    def div_(self, other):
        return self._inplace(np.true_divide, other)

    def clamp_(self, min=None, max=None):
        self._check_inplace()
        return self.copy_(_ops.clamp(self.detach(), min, max))

    def __setitem__(self, index, value):
        self._check_inplace()
        value = value.data if isinstance(value, Tensor) else value
        if type(self.data) is ClArray:
            _ops.shape.assign(self.data, _ops.shape.plain_index(index), value)
            return
        self.data[_ops.shape.plain_index(index)] = value

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_


def _times(other, alpha):
    """other * alpha for add_/sub_ (other a tensor or a number)."""
    if alpha == 1:
        return other
    return _ops.mul(other, alpha).data if isinstance(other, Tensor) else other * alpha


_INPLACE_OPS = {np.add: cpu.OP_ADD, np.subtract: cpu.OP_SUB, np.multiply: cpu.OP_MUL, np.true_divide: cpu.OP_DIV}


class _GradHook:
    """A user hook on a tensor's gradient: array in, array (or None) out."""

    def __init__(self, hook):
        self.hook = hook

    def __call__(self, grad):
        result = self.hook(Tensor._wrap(grad))
        if result is None:
            return None
        new = result.data if isinstance(result, Tensor) else np.asarray(result, dtype=grad.dtype)
        name = getattr(self.hook, "__name__", type(self.hook).__name__)
        if new.shape != grad.shape:
            raise RuntimeError(f"hook '{name}' has changed the size of value "
                               f"(was {grad.shape}, got {new.shape})")
        if new.dtype != grad.dtype:
            raise RuntimeError(f"hook '{name}' has changed the type of value "
                               f"(was {grad.dtype}, got {new.dtype})")
        return new


class _RemovableHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


from . import ops as _ops  # noqa: E402  (ops import Tensor from this module)

_ops.install_methods(Tensor)
