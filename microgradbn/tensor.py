"""Tensor: an array with a place in the autograd graph.

A Tensor holds its storage (`data`, a NumPy array on the CPU), whether it
`requires_grad`, its accumulated `grad` (a Tensor, for leaves) and, when an
op made it, that op's graph node `grad_fn`. Ops live in microgradbn/ops/;
the operators below only route to them.
"""
import numpy as np

from . import autograd

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
        data = data.data
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
    # astype converts byte order and dtype; copy=False keeps the memory when it can.
    return array.astype(dtype, order="K", copy=copy) if copy or array.dtype != dtype else array


class Tensor:
    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "name", "_accumulator",
                 "_hooks", "_retains_grad", "__weakref__")

    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__

    def __init__(self, data, dtype=None, requires_grad=False, name=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        self.grad_fn = None
        self.name = name
        self._accumulator = None
        self._hooks = None
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, requires_grad=False):
        """A tensor around an array an op just made (no checks, no copy)."""
        t = cls.__new__(cls)
        t.data = array
        t.requires_grad = requires_grad
        t.grad = t.grad_fn = t.name = t._accumulator = t._hooks = None
        t._retains_grad = False
        return t

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
        return "cpu"

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype not in (float32, int64, bool_):
            extra += f", dtype=mg.{_DTYPE_NAMES[self.data.dtype]}"
        if self.grad_fn is not None:
            extra += f", grad_fn=<{self.grad_fn.name()}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---- to Python and NumPy ---------------------------------------------

    def numpy(self):
        """The storage itself (zero-copy), as torch.Tensor.numpy()."""
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self.data.reshape(()).item())

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

    def backward(self, gradient=None, retain_graph=False):
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            gradient = np.ones_like(self.data)
        else:
            gradient = _to_array(gradient, self.data.dtype, copy=False)
            if gradient.shape != self.data.shape:
                raise RuntimeError(f"mismatch in shape: grad_output has shape {gradient.shape} "
                                   f"and output has shape {self.data.shape}")
        autograd.run_backward(self, gradient, retain_graph=retain_graph)

    def register_hook(self, hook):
        """hook(grad) runs when this tensor's gradient is computed; it may return a new one."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        wrapped = _GradHook(hook)
        node = self._grad_node()
        if not hasattr(node, "tensor_hooks"):
            node.tensor_hooks = []
        node.tensor_hooks.append(wrapped)
        return _RemovableHandle(node.tensor_hooks, wrapped)

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.is_leaf or self._retains_grad:
            return
        import weakref

        self._retains_grad = True
        node = self.grad_fn
        if not hasattr(node, "retained"):
            node.retained = []
        node.retained.append(weakref.ref(self))

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
            self.grad = Tensor._wrap(np.array(grad, dtype=self.data.dtype, copy=True))
        else:
            self.grad = Tensor._wrap(self.grad.data + grad)

    def _set_retained_grad(self, grad):
        self._accumulate_grad(grad)

    # ---- operators (the ops themselves are in microgradbn/ops/) ----------

    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def sum(self, dim=None, keepdim=False):
        return _ops.sum(self, dim, keepdim)

    # ---- in place on storage (no graph) ----------------------------------

    def _check_inplace(self):
        if self.requires_grad and self.is_leaf and autograd.is_grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")

    def zero_(self):
        self._check_inplace()
        self.data[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace()
        self.data[...] = value
        return self

    def copy_(self, src):
        self._check_inplace()
        src = src.data if isinstance(src, Tensor) else np.asarray(src)
        np.copyto(self.data, np.broadcast_to(src, self.data.shape), casting="same_kind")
        return self


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
