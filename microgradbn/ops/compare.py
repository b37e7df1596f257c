"""Comparisons (no gradient, bool results) and `where` (differentiable in
both branches: each gets the gradient where it was chosen)."""
import numpy as np

from .. import _backend
from ..autograd import Function, unbroadcast
from ..tensor import Tensor
from .arithmetic import _operands, broadcast_shape, result_dtype


def _compare(ufunc, name):
    def compare(a, b):
        a, b = _operands(a, b)
        if _backend.backend_pair(a.data, b.data) is not _backend.cpu:
            raise _backend.not_supported(name)
        broadcast_shape(a.data, b.data, name)
        return Tensor._wrap(ufunc(a.data, b.data))

    compare.__name__ = name
    compare.__doc__ = f"Elementwise {name} with broadcasting (a bool tensor, no gradient)."
    return compare


eq = _compare(np.equal, "eq")
ne = _compare(np.not_equal, "ne")
lt = _compare(np.less, "lt")
le = _compare(np.less_equal, "le")
gt = _compare(np.greater, "gt")
ge = _compare(np.greater_equal, "ge")


class Where(Function):
    def forward(self, condition, x, y):
        shape = broadcast_shape(condition, np.empty(broadcast_shape(x, y, "where")), "where")
        self.condition = np.broadcast_to(condition, shape)
        self.x_shape, self.y_shape = x.shape, y.shape
        dtype = result_dtype(x, y)
        return np.where(condition, x.astype(dtype, copy=False), y.astype(dtype, copy=False))

    def backward(self, grad):
        zero = grad.dtype.type(0)
        gx = unbroadcast(np.where(self.condition, grad, zero), self.x_shape) \
            if self.needs_input_grad[1] else None
        gy = unbroadcast(np.where(self.condition, zero, grad), self.y_shape) \
            if self.needs_input_grad[2] else None
        return None, gx, gy


def where(condition, x, y):
    """x where condition is true, else y (broadcast together)."""
    if any(isinstance(t, Tensor) and t.is_opencl for t in (condition, x, y)):
        raise _backend.not_supported("where")
    if not isinstance(condition, Tensor):
        condition = Tensor._wrap(np.asarray(condition, dtype=bool))
    elif condition.dtype != np.bool_:
        condition = Tensor._wrap(condition.data.astype(bool))
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor._wrap(np.asarray(x, dtype=np.float32))
    x, y = _operands(x, y)
    return Where.apply(condition, x, y)
