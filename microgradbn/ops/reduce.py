"""Reductions over `dim` (an int, a tuple, or None for all) with `keepdim`:
sum, mean, var (with Bessel's `correction`), amax, amin.

Forward is one C reduction (src/api_reduce.c: any axes, any strides,
float32 summed in float64). Backward of sum/mean is the incoming gradient
broadcast back (a zero-copy view); amax/amin share the gradient evenly
among the elements equal to the extreme, as PyTorch does.
"""
import numpy as np

from .._backend import cpu
from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor

_FLOATS = cpu.DTYPE_CODES


def normalize_dims(dim, ndim):
    """dim (None, int or sequence) as a sorted tuple of axes in [0, ndim)."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    bound = max(ndim, 1)
    axes = []
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError(f"dim must be an int or a tuple of ints, got {dim!r}")
        if not -bound <= d < bound:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-bound}, {bound - 1}], but got {d})")
        axes.append(int(d) % bound)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"dim {dims} appears multiple times in the list of dims")
    return tuple(sorted(axes)) if ndim else ()


def reduce_sum_array(x, axes):
    """x summed over axes (a tuple), float32 accumulated in float64."""
    if x.dtype not in _FLOATS:
        return np.sum(x, axis=axes)
    if len(axes) == x.ndim and x.flags.c_contiguous:
        return cpu.sum_all(x)
    return cpu.reduce(cpu.REDUCE_SUM, x, axes)


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def _expand(grad, axes, keepdim):
    """grad with the reduced axes back as size 1."""
    return grad if keepdim else np.expand_dims(grad, axes)


class Sum(Function):
    def forward(self, x, axes, keepdim):
        self.in_shape, self.axes, self.keepdim = x.shape, axes, keepdim
        out = reduce_sum_array(x, axes)
        return np.expand_dims(out, axes) if keepdim else out

    def backward(self, grad):
        return np.broadcast_to(_expand(grad, self.axes, self.keepdim), self.in_shape)


class Mean(Function):
    def forward(self, x, axes, keepdim):
        if x.dtype not in _FLOATS:
            raise DTypeError(f"mean(): input dtype must be floating point, got {x.dtype}")
        self.in_shape, self.axes, self.keepdim = x.shape, axes, keepdim
        self.n = _count(x.shape, axes)
        out = reduce_sum_array(x, axes)
        out = np.true_divide(out, x.dtype.type(self.n), dtype=x.dtype) if self.n else out * np.nan
        return np.expand_dims(out, axes) if keepdim else out

    def backward(self, grad):
        scaled = np.true_divide(grad, grad.dtype.type(self.n), dtype=grad.dtype)
        return np.broadcast_to(_expand(scaled, self.axes, self.keepdim), self.in_shape)


class Var(Function):
    """sum((x - mean)^2) / (n - correction); d/dx = 2 (x - mean) / (n - correction)."""

    def forward(self, x, axes, correction, keepdim):
        if x.dtype not in _FLOATS:
            raise DTypeError(f"var(): input dtype must be floating point, got {x.dtype}")
        self.axes, self.keepdim = axes, keepdim
        n = _count(x.shape, axes)
        mean = np.expand_dims(reduce_sum_array(x, axes), axes) / x.dtype.type(max(n, 1))
        centred = cpu.binary(cpu.OP_SUB, x, mean, x.shape, x.dtype)
        self.save_for_backward(centred)
        self.denominator = x.dtype.type(max(n - correction, 0))
        squares = cpu.binary(cpu.OP_MUL, centred, centred, x.shape, x.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = reduce_sum_array(squares, axes) / self.denominator
        return np.expand_dims(out, axes) if keepdim else out

    def backward(self, grad):
        centred, = self.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = _expand(grad, self.axes, self.keepdim) * (2 / self.denominator)
        return cpu.binary(cpu.OP_MUL, centred, scale.astype(centred.dtype, copy=False),
                          centred.shape, centred.dtype)


class _Extreme(Function):
    """amax / amin: the gradient goes to the elements equal to the result,
    split evenly among ties."""

    reduce_op = name_ = None

    def forward(self, x, axes, keepdim):
        if x.size == 0 and _count(x.shape, axes) == 0:
            raise ShapeError(f"{self.name_}(): expected a non-empty reduction, got shape "
                             f"{x.shape} reduced over dims {axes}")
        if x.dtype in _FLOATS:
            out = cpu.reduce(self.reduce_op, x, axes)
        else:
            out = (np.amax if self.reduce_op == cpu.REDUCE_MAX else np.amin)(x, axis=axes)
        self.axes, self.keepdim = axes, keepdim
        self.save_for_backward(x, out)
        return np.expand_dims(out, axes) if keepdim else out

    def backward(self, grad):
        x, out = self.saved_tensors
        mask = x == np.expand_dims(out, self.axes)
        count = np.sum(mask, axis=self.axes, keepdims=True)
        share = _expand(grad, self.axes, self.keepdim) / count.astype(grad.dtype)
        return np.where(mask, share, grad.dtype.type(0))


class Amax(_Extreme):
    reduce_op, name_ = cpu.REDUCE_MAX, "amax"


class Amin(_Extreme):
    reduce_op, name_ = cpu.REDUCE_MIN, "amin"


def _tensor(x, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}() expects a Tensor, got {type(x).__name__}")
    return x


def sum(x, dim=None, keepdim=False):
    return Sum.apply(_tensor(x, "sum"), axes=normalize_dims(dim, x.ndim), keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    return Mean.apply(_tensor(x, "mean"), axes=normalize_dims(dim, x.ndim), keepdim=keepdim)


def var(x, dim=None, correction=1, keepdim=False, unbiased=None):
    """Variance over dim; correction=1 (default) is Bessel's, 0 the biased one."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Var.apply(_tensor(x, "var"), axes=normalize_dims(dim, x.ndim), correction=correction,
                     keepdim=keepdim)


def amax(x, dim=(), keepdim=False):
    """The maximum over dim (all axes when dim is () or None)."""
    dims = None if dim == () else dim
    return Amax.apply(_tensor(x, "amax"), axes=normalize_dims(dims, x.ndim), keepdim=keepdim)


def amin(x, dim=(), keepdim=False):
    dims = None if dim == () else dim
    return Amin.apply(_tensor(x, "amin"), axes=normalize_dims(dims, x.ndim), keepdim=keepdim)


def argmax(x, dim=None, keepdim=False):
    """Index of the maximum (no gradient), as torch.argmax."""
    x = _tensor(x, "argmax").data
    return Tensor._wrap(np.asarray(np.argmax(x, axis=dim, keepdims=keepdim), dtype=np.int64))


def argmin(x, dim=None, keepdim=False):
    x = _tensor(x, "argmin").data
    return Tensor._wrap(np.asarray(np.argmin(x, axis=dim, keepdims=keepdim), dtype=np.int64))
