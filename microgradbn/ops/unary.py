"""Elementwise maps: exp log sqrt tanh sigmoid relu abs neg clamp.

Forward runs the C map (src/cpu/unary.c); backward runs a fused C kernel
from the saved output (relu, sigmoid, tanh, sqrt) or input (abs, clamp),
or one C multiply/divide (exp, log). Integer input to a transcendental is
computed in float32, as in PyTorch; relu/abs/neg/clamp keep integers.

Each map class names its C op and, in `setup(x, y)`, saves what its
backward reads. `_map` is what users call: for a C-contiguous float tensor
(the common case) it runs the kernel on the tensor's cached storage pointer
and wires the graph node directly; anything else goes through
`Function.apply` and `forward`, on the backend of the tensor's storage
(cpu or opencl: the same function names).
"""
import math

import numpy as np

from .. import autograd
from .._backend import backend, cpu
from ..autograd import Function, _state
from ..errors import DTypeError
from ..tensor import Tensor

_FLOATS = cpu.DTYPE_CODES


def _float(x):
    return x if x.dtype in _FLOATS else x.astype(np.float32)


class _Map(Function):
    """y = f(x) on the C map `unary_op`; `numpy_fn` for integer input when the
    map keeps integers (None: integers are computed in float32)."""

    unary_op = numpy_fn = None

    def forward(self, x):
        if self.numpy_fn is not None and x.dtype not in _FLOATS:
            return self.numpy_fn(x)
        x = _float(x)
        y = backend(x).unary(self.unary_op, x)
        self.setup(x, y)
        return y

    def setup(self, x, y):
        """Keep what backward reads (called by forward and by _map)."""


class Exp(_Map):                                     # d exp(x) = exp(x)
    unary_op = cpu.UNARY_EXP

    def setup(self, x, y):
        self.save_for_backward(y)

    def backward(self, grad):
        y, = self.saved_tensors
        return backend(y).binary(cpu.OP_MUL, grad, y, y.shape, y.dtype)


class Log(_Map):                                     # d log(x) = 1 / x
    unary_op = cpu.UNARY_LOG

    def setup(self, x, y):
        self.save_for_backward(x)

    def backward(self, grad):
        x, = self.saved_tensors
        return backend(x).binary(cpu.OP_DIV, grad, x, x.shape, x.dtype)


class _SavedOutput(_Map):
    """y = f(x) whose backward needs only y (a fused C kernel `grad_op`)."""

    grad_op = None

    def setup(self, x, y):
        self.save_for_backward(y)

    def backward(self, grad):
        y, = self.saved_tensors
        return backend(y).unary_backward(self.grad_op, y, grad.astype(y.dtype, copy=False))


class Sqrt(_SavedOutput):                           # d sqrt(x) = 1 / (2 sqrt(x))
    unary_op, grad_op = cpu.UNARY_SQRT, cpu.GRAD_SQRT


class Tanh(_SavedOutput):                           # d tanh(x) = 1 - tanh(x)^2
    unary_op, grad_op = cpu.UNARY_TANH, cpu.GRAD_TANH


class Sigmoid(_SavedOutput):                        # d s(x) = s(x) (1 - s(x))
    unary_op, grad_op = cpu.UNARY_SIGMOID, cpu.GRAD_SIGMOID


class Relu(_SavedOutput):                           # d relu(x) = [x > 0]
    unary_op, grad_op = cpu.UNARY_RELU, cpu.GRAD_RELU
    numpy_fn = staticmethod(lambda x: np.maximum(x, 0))


class Abs(_Map):                                    # d |x| = sign(x), 0 at 0
    unary_op, numpy_fn = cpu.UNARY_ABS, staticmethod(np.abs)

    def setup(self, x, y):
        self.save_for_backward(x)

    def backward(self, grad):
        x, = self.saved_tensors
        return backend(x).unary_backward(cpu.GRAD_ABS, x, grad.astype(x.dtype, copy=False))


class Neg(_Map):                                    # d (-x) = -1
    unary_op, numpy_fn = cpu.UNARY_NEG, staticmethod(np.negative)

    def backward(self, grad):
        return backend(grad).unary(cpu.UNARY_NEG, grad)


def _tensor(x, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}() expects a Tensor, got {type(x).__name__}")
    return x


def _map(cls, x, name):
    """cls (a _Map) applied to tensor x; the fast path inlines Function.apply."""
    data = _tensor(x, name).data
    handle = x._handle if x._handle_of is data else x._storage_handle()
    if handle is None or autograd._anomaly is not None:   # not a C-contiguous float array,
        return cls.apply(x)                                  # or anomaly mode (it hooks apply)
    out, out_handle = cpu.unary_same(cls.unary_op, data, handle)
    result = _new(Tensor)
    result.data, result._handle, result._handle_of = out, out_handle, out
    if x.requires_grad and _state.enabled:
        node = cls()
        node.setup(data, out)
        node.connect((x,), result)
    return result


_new = object.__new__


class Clamp(Function):                              # d clamp(x) = [lo <= x <= hi]
    def forward(self, x, lo, hi):
        if x.dtype not in _FLOATS:
            return np.clip(x, lo, hi)
        self.save_for_backward(x)
        self.lo, self.hi = lo, hi
        return backend(x).clamp(x, lo, hi)

    def backward(self, grad):
        x, = self.saved_tensors
        return backend(x).clamp_backward(x, grad.astype(x.dtype, copy=False), self.lo, self.hi)


def exp(x):
    return _map(Exp, x, "exp")


def log(x):
    return _map(Log, x, "log")


def sqrt(x):
    return _map(Sqrt, x, "sqrt")


def tanh(x):
    return _map(Tanh, x, "tanh")


def sigmoid(x):
    return _map(Sigmoid, x, "sigmoid")


def relu(x):
    return _map(Relu, x, "relu")


def abs(x):
    return _map(Abs, x, "abs")


def neg(x):
    return _map(Neg, x, "neg")


def _bound(value, name):
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.item()
    if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
        raise TypeError(f"clamp: {name} must be a number, got {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"clamp: {name} is NaN")
    return value


def clamp(x, min=None, max=None):
    """min(max(x, min), max); at least one bound (PyTorch semantics)."""
    _tensor(x, "clamp")
    lo, hi = _bound(min, "min"), _bound(max, "max")
    if lo is None and hi is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    if x.dtype in _FLOATS:
        lo = -math.inf if lo is None else float(lo)
        hi = math.inf if hi is None else float(hi)
    elif isinstance(lo, float) or isinstance(hi, float):
        raise DTypeError("clamp: float bounds on an integer tensor; convert it with .float() first")
    return Clamp.apply(x, lo=lo, hi=hi)
