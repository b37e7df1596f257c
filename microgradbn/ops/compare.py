"""Comparisons (no gradient, bool results) and `where` (differentiable in
both branches: each gets the gradient where it was chosen).

On the CPU these are NumPy's; on an OpenCL device the backend's compare and
where kernels (float operands; a bool ClArray mask)."""
import numpy as np

from .. import _backend
from .._backend import ClArray, backend_of, backend_pair, cpu, require
from ..autograd import Function, unbroadcast
from ..tensor import Tensor
from .arithmetic import _operands, broadcast_shape, result_dtype

_CMP_CODES = {"eq": 0, "ne": 1, "lt": 2, "le": 3, "gt": 4, "ge": 5}     # the backend's CMP_* codes


def compare_arrays(name, x, y):
    """x name y (eq, ne, lt, le, gt, ge) broadcast, a bool array on their device."""
    shape = broadcast_shape(x, y, name)
    xp = backend_pair(x, y)
    if xp is cpu:
        return _UFUNCS[name](x, y)
    dtype = result_dtype(x, y)
    return require(xp, "compare", name)(_CMP_CODES[name], x.astype(dtype, copy=False),
                                         y.astype(dtype, copy=False), shape)


_UFUNCS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal}


def _compare(name):
    def compare(a, b):
        a, b = _operands(a, b)
        return Tensor._wrap(compare_arrays(name, a.data, b.data))

    compare.__name__ = name
    compare.__doc__ = f"Elementwise {name} with broadcasting (a bool tensor, no gradient)."
    return compare


eq = _compare("eq")
ne = _compare("ne")
lt = _compare("lt")
le = _compare("le")
gt = _compare("gt")
ge = _compare("ge")


def where_arrays(condition, x, y, shape):
    """x where condition else y, broadcast to shape, on their device (x and y of one dtype)."""
    xp = backend_of(condition, x, y)
    if xp is cpu:
        return np.where(condition, x, y)
    return require(xp, "where", "where")(condition, x, y, tuple(shape))


class Where(Function):
    def forward(self, condition, x, y):
        shape = broadcast_shape(condition, _Shape(broadcast_shape(x, y, "where")), "where")
        self.condition, self.shape = condition, shape
        if type(condition) is not ClArray:
            self.condition = np.broadcast_to(condition, shape)
        self.x_shape, self.y_shape = x.shape, y.shape
        dtype = result_dtype(x, y)
        return where_arrays(condition, x.astype(dtype, copy=False), y.astype(dtype, copy=False), shape)

    def backward(self, grad):
        zero = _backend.scalar(0, grad.dtype, grad)
        gx = unbroadcast(where_arrays(self.condition, grad, zero, self.shape), self.x_shape) \
            if self.needs_input_grad[1] else None
        gy = unbroadcast(where_arrays(self.condition, zero, grad, self.shape), self.y_shape) \
            if self.needs_input_grad[2] else None
        return None, gx, gy


class _Shape:
    """Stands for an array of this shape in broadcast_shape."""

    def __init__(self, shape):
        self.shape = shape


def where(condition, x, y):
    """x where condition is true, else y (broadcast together)."""
    if not isinstance(condition, Tensor):
        condition = Tensor._wrap(np.asarray(condition, dtype=bool))
    elif condition.dtype != np.bool_:
        condition = Tensor._wrap(condition.data.astype(bool))
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor._wrap(np.asarray(x, dtype=np.float32))
    x, y = _operands(x, y)
    return Where.apply(condition, x, y)
