"""softmax and log_softmax along one dim, computed stably: the maximum
along dim is subtracted first, so exp never overflows.

    softmax:      y = exp(x - m) / s,        s = sum exp(x - m)
                  dx = y * (g - sum(g * y))
    log_softmax:  y = x - m - log(s)
                  dx = g - exp(y) * sum(g)
Every step is a kernel (reduce, broadcasting binary, exp, log) of the
backend holding x (cpu or opencl). On an OpenCL device, softmax over the
last axis is the device's fused kernel (one work-group per row) each way.
"""
from .._backend import ClArray, backend, cpu, opencl
from ..autograd import Function
from ..errors import DTypeError
from ..tensor import Tensor
from .arithmetic import broadcast_shape
from .reduce import normalize_dims


def _binary(op, a, b):
    return backend(a).binary(op, a, b, broadcast_shape(a, b, "softmax"), a.dtype)


def _keep(reduced, axis):
    shape = list(reduced.shape)
    shape.insert(axis, 1)
    return reduced.reshape(shape)


def _shifted(x, axis):
    """x - max(x along axis) and the sum of its exp along axis (kept as size 1)."""
    xp = backend(x)
    if x.shape[axis] == 0:                  # nothing to shift; exp of an empty array
        return x, xp.unary(cpu.UNARY_EXP, x)
    m = _keep(xp.reduce(cpu.REDUCE_MAX, x, (axis,)), axis)
    shifted = _binary(cpu.OP_SUB, x, m)
    return shifted, xp.unary(cpu.UNARY_EXP, shifted)


def _fused(x, axis):
    """The device's fused last-axis softmax applies (it has no other axis)."""
    return type(x) is ClArray and axis == x.ndim - 1 and x.size > 0


class Softmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        if _fused(x, axis):
            y = opencl.softmax(x)
            self.save_for_backward(y)
            return y
        _, e = _shifted(x, axis)
        y = _binary(cpu.OP_DIV, e, _keep(backend(e).reduce(cpu.REDUCE_SUM, e, (axis,)), axis))
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        y, = self.saved_tensors
        if _fused(y, self.axis):
            return opencl.softmax_backward(y, grad)
        gy = _binary(cpu.OP_MUL, grad, y)
        inner = _keep(backend(gy).reduce(cpu.REDUCE_SUM, gy, (self.axis,)), self.axis)
        return _binary(cpu.OP_MUL, y, _binary(cpu.OP_SUB, grad, inner))


class LogSoftmax(Function):
    def forward(self, x, axis):
        self.axis = axis
        if _fused(x, axis):
            y = opencl.softmax(x, log=True)
            self.save_for_backward(y)
            return y
        shifted, e = _shifted(x, axis)
        xp = backend(x)
        log_s = xp.unary(cpu.UNARY_LOG, _keep(xp.reduce(cpu.REDUCE_SUM, e, (axis,)), axis))
        y = _binary(cpu.OP_SUB, shifted, log_s)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        y, = self.saved_tensors
        if _fused(y, self.axis):
            return opencl.softmax_backward(y, grad, log=True)
        xp = backend(y)
        total = _keep(xp.reduce(cpu.REDUCE_SUM, grad, (self.axis,)), self.axis)
        return _binary(cpu.OP_SUB, grad, _binary(cpu.OP_MUL, xp.unary(cpu.UNARY_EXP, y), total))


def _checked(x, dim, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}() expects a Tensor, got {type(x).__name__}")
    if x.dtype not in cpu.DTYPE_CODES:
        raise DTypeError(f"{name}(): expected a float32 or float64 tensor, got {x.dtype}")
    if dim is None:
        raise TypeError(f"{name}() needs dim (PyTorch's implicit choice is deprecated)")
    axes = normalize_dims(dim, x.ndim)
    if x.ndim == 0:
        raise ValueError(f"{name}() of a 0-d tensor: add a dimension first")
    return axes[0]


def softmax(x, dim=None):
    return Softmax.apply(x, axis=_checked(x, dim, "softmax"))


def log_softmax(x, dim=None):
    return LogSoftmax.apply(x, axis=_checked(x, dim, "log_softmax"))
