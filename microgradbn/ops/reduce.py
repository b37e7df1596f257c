"""Reductions: sum over all elements or over some axes."""
import numpy as np

from .._backend import cpu
from ..autograd import Function
from ..tensor import Tensor


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    axes = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-max(ndim, 1)}, {max(ndim, 1) - 1}], but got {d})")
        axes.append(d % max(ndim, 1))
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"dim {dims} appears multiple times in the list of dims")
    return tuple(sorted(axes)) if ndim else ()


def reduce_sum_array(x, axes):
    """x summed over axes (a tuple), float32 accumulated in float64."""
    if len(axes) == x.ndim and x.dtype in cpu.DTYPE_CODES:
        return cpu.sum_all(x)
    return cpu.sum_axes(x, axes)


class Sum(Function):
    def forward(self, x, axes, keepdim):
        self.in_shape, self.axes, self.keepdim = x.shape, axes, keepdim
        out = reduce_sum_array(x, axes)
        return np.expand_dims(out, axes) if keepdim else out

    def backward(self, grad):
        if not self.keepdim:
            grad = np.expand_dims(grad, self.axes)
        return np.broadcast_to(grad, self.in_shape)


def sum(x, dim=None, keepdim=False):
    if not isinstance(x, Tensor):
        raise TypeError(f"sum() expects a Tensor, got {type(x).__name__}")
    return Sum.apply(x, axes=_axes(dim, x.ndim), keepdim=keepdim)
