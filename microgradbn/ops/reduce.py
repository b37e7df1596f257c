"""Reductions over `dim` (an int, a tuple, or None for all) with `keepdim`:
sum, mean, var (with Bessel's `correction`), amax, amin.

Forward is one C reduction (src/api_reduce.c: any axes, any strides,
float32 summed in float64). Backward of sum/mean is the incoming gradient
broadcast back (a zero-copy view); amax/amin share the gradient evenly
among the elements equal to the extreme, as PyTorch does.
"""
from collections import namedtuple

import numpy as np

from .. import _backend
from .._backend import ClArray, backend, cpu
from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from .compare import compare_arrays, where_arrays

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
    if type(x) is not ClArray and len(axes) == x.ndim and x.flags.c_contiguous:
        return cpu.sum_all(x)
    return backend(x).reduce(cpu.REDUCE_SUM, x, axes)


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def kept_shape(shape, axes):
    """shape with the reduced axes kept as size 1 (the keepdim shape)."""
    if len(axes) == len(shape):
        return (1,) * len(shape)
    return tuple([1 if d in axes else n for d, n in enumerate(shape)])


def broadcast_back(grad, kept, shape):
    """grad, which has the reduced shape, as a read-only view of shape: each
    value repeated along the reduced axes (stride 0), nothing copied.
    np.broadcast_to(grad.reshape(kept), shape) gives the same view, through
    several times more per-call work; this is on every sum's backward."""
    g = grad.reshape(kept)
    if type(g) is ClArray:
        return _backend.broadcast_to(g, shape)
    if not g.flags.c_contiguous:
        return np.broadcast_to(g, shape)
    strides = tuple([0 if k == 1 else s for k, s in zip(kept, g.strides)])
    view = np.ndarray(shape, g.dtype, g, 0, strides)
    view.flags.writeable = False
    return view


class Sum(Function):
    def forward(self, x, axes, keepdim):
        self.in_shape, self.kept = x.shape, kept_shape(x.shape, axes)
        out = reduce_sum_array(x, axes)
        return out.reshape(self.kept) if keepdim else out

    def backward(self, grad):
        return broadcast_back(grad, self.kept, self.in_shape)


class Mean(Function):
    def forward(self, x, axes, keepdim):
        if x.dtype not in _FLOATS:
            raise DTypeError(f"mean(): input dtype must be floating point, got {x.dtype}")
        self.in_shape, self.kept = x.shape, kept_shape(x.shape, axes)
        self.n = _count(x.shape, axes)
        out = _backend.divide(reduce_sum_array(x, axes), self.n)     # the mean of nothing is NaN
        return out.reshape(self.kept) if keepdim else out

    def backward(self, grad):
        return broadcast_back(_backend.divide(grad, self.n), self.kept, self.in_shape)


class Var(Function):
    """sum((x - mean)^2) / (n - correction); d/dx = 2 (x - mean) / (n - correction)."""

    def forward(self, x, axes, correction, keepdim):
        if x.dtype not in _FLOATS:
            raise DTypeError(f"var(): input dtype must be floating point, got {x.dtype}")
        self.kept = kept_shape(x.shape, axes)
        n = _count(x.shape, axes)
        xp = backend(x)
        mean = _backend.divide(reduce_sum_array(x, axes), n if n > 1 else 1).reshape(self.kept)
        centred = xp.binary(cpu.OP_SUB, x, mean, x.shape, x.dtype)
        self.save_for_backward(centred)
        self.denominator = n - correction if n > correction else 0
        squares = xp.binary(cpu.OP_MUL, centred, centred, x.shape, x.dtype)
        out = _backend.divide(reduce_sum_array(squares, axes), self.denominator)   # x/0: inf or NaN
        return out.reshape(self.kept) if keepdim else out

    def backward(self, grad):
        centred, = self.saved_tensors
        scale = _backend.divide(_backend.scale(grad.reshape(self.kept), 2), self.denominator)
        return backend(centred).binary(cpu.OP_MUL, centred, scale.astype(centred.dtype, copy=False),
                                       centred.shape, centred.dtype)


def _check_not_empty(x, axes, name):
    if x.size == 0 and _count(x.shape, axes) == 0:
        raise ShapeError(f"{name}(): expected a non-empty reduction, got shape "
                         f"{x.shape} reduced over dims {axes}")


class _Extreme(Function):
    """amax / amin: the gradient goes to the elements equal to the result,
    split evenly among ties."""

    reduce_op = name_ = None

    def forward(self, x, axes, keepdim):
        _check_not_empty(x, axes, self.name_)
        if x.dtype in _FLOATS:
            out = backend(x).reduce(self.reduce_op, x, axes)
        else:
            out = (np.amax if self.reduce_op == cpu.REDUCE_MAX else np.amin)(x, axis=axes)
        self.axes, self.kept = axes, kept_shape(x.shape, axes)
        self.save_for_backward(x, out)
        return out.reshape(self.kept) if keepdim else out

    def backward(self, grad):
        x, out = self.saved_tensors
        if type(x) is ClArray:
            xp, kept = backend(x), self.kept
            mask = compare_arrays("eq", x, out.reshape(kept))
            count = xp.reduce(cpu.REDUCE_SUM, mask.astype(x.dtype), self.axes).reshape(kept)
            share = xp.binary(cpu.OP_DIV, grad.reshape(kept), count, kept, x.dtype)
            return where_arrays(mask, share, _backend.scalar(0, x.dtype, x), x.shape)
        mask = x == out.reshape(self.kept)
        count = np.sum(mask, axis=self.axes, keepdims=True)
        share = grad.reshape(self.kept) / count.astype(grad.dtype)
        return np.where(mask, share, grad.dtype.type(0))


class Amax(_Extreme):
    reduce_op, name_ = cpu.REDUCE_MAX, "amax"


class Amin(_Extreme):
    reduce_op, name_ = cpu.REDUCE_MIN, "amin"


class TakeAlong(Function):
    """x's elements at index (int64, x's shape with size 1 along axis), as
    np.take_along_axis; the gradient goes back to those elements only."""

    def forward(self, x, index, axis, keepdim):
        self.in_shape, self.index, self.axis = x.shape, index, axis
        out = np.take_along_axis(x, index, axis)
        return out if keepdim else out.reshape(index.shape[:axis] + index.shape[axis + 1:])

    def backward(self, grad):
        gx = np.zeros(self.in_shape, grad.dtype)
        np.put_along_axis(gx, self.index, grad.reshape(self.index.shape), self.axis)
        return gx


values_indices = {name: namedtuple(name, ("values", "indices")) for name in ("max", "min")}


def max_min_along(x, dim, keepdim, name):
    """x.max(dim) / x.min(dim): (values, indices) along one dim, as PyTorch:
    the index of the first extreme (of the first NaN, if any), and the
    gradient flows to that element only."""
    x = _tensor(x, name)
    _backend.unsupported(x.data, f"{name}(dim)")
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{name}(): dim must be an int, got {dim!r}")
    axis, = normalize_dims(dim, x.ndim) or (0,)
    data = x.data if x.ndim else x.data.reshape(1)
    _check_not_empty(data, (axis,), name)
    index = (np.argmax if name == "max" else np.argmin)(data, axis=axis, keepdims=True)
    values = TakeAlong.apply(x if x.ndim else x.reshape(1), index=index, axis=axis, keepdim=keepdim)
    indices = index if keepdim else index.reshape(values.shape)
    if x.ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    return values_indices[name](values, Tensor._wrap(indices.astype(np.int64, copy=False)))


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
    _backend.unsupported(x, "argmax")
    return Tensor._wrap(np.asarray(np.argmax(x, axis=dim, keepdims=keepdim), dtype=np.int64))


def argmin(x, dim=None, keepdim=False):
    x = _tensor(x, "argmin").data
    _backend.unsupported(x, "argmin")
    return Tensor._wrap(np.asarray(np.argmin(x, axis=dim, keepdims=keepdim), dtype=np.int64))
