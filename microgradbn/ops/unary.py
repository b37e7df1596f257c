"""Elementwise maps: exp log sqrt tanh sigmoid relu abs clamp.

Forward runs the C map (src/cpu/unary.c); backward runs a fused C kernel
from the saved output (relu, sigmoid, tanh, sqrt) or input (abs, clamp),
or one C multiply/divide (exp, log). Integer input to a transcendental is
computed in float32, as in PyTorch; relu/abs/clamp keep integers.
"""
import math

import numpy as np

from .._backend import cpu
from ..autograd import Function
from ..errors import DTypeError
from ..tensor import Tensor

_FLOATS = cpu.DTYPE_CODES


def _float(x):
    return x if x.dtype in _FLOATS else x.astype(np.float32)


class Exp(Function):
    def forward(self, x):
        y = cpu.unary(cpu.UNARY_EXP, _float(x))
        self.save_for_backward(y)
        return y

    def backward(self, grad):                       # d exp(x) = exp(x)
        y, = self.saved_tensors
        return cpu.binary(cpu.OP_MUL, grad, y, y.shape, y.dtype)


class Log(Function):
    def forward(self, x):
        x = _float(x)
        self.save_for_backward(x)
        return cpu.unary(cpu.UNARY_LOG, x)

    def backward(self, grad):                       # d log(x) = 1 / x
        x, = self.saved_tensors
        return cpu.binary(cpu.OP_DIV, grad, x, x.shape, x.dtype)


class _SavedOutput(Function):
    """y = f(x) whose backward needs only y (a fused C kernel)."""

    unary_op = grad_op = None

    def forward(self, x):
        y = cpu.unary(self.unary_op, _float(x))
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        y, = self.saved_tensors
        return cpu.unary_backward(self.grad_op, y, grad.astype(y.dtype, copy=False))


class Sqrt(_SavedOutput):                           # d sqrt(x) = 1 / (2 sqrt(x))
    unary_op, grad_op = cpu.UNARY_SQRT, cpu.GRAD_SQRT


class Tanh(_SavedOutput):                           # d tanh(x) = 1 - tanh(x)^2
    unary_op, grad_op = cpu.UNARY_TANH, cpu.GRAD_TANH


class Sigmoid(_SavedOutput):                        # d s(x) = s(x) (1 - s(x))
    unary_op, grad_op = cpu.UNARY_SIGMOID, cpu.GRAD_SIGMOID


class Relu(_SavedOutput):                           # d relu(x) = [x > 0]
    unary_op, grad_op = cpu.UNARY_RELU, cpu.GRAD_RELU

    def forward(self, x):
        if x.dtype not in _FLOATS:
            return np.maximum(x, 0)
        return super().forward(x)


class Abs(Function):                                # d |x| = sign(x), 0 at 0
    def forward(self, x):
        if x.dtype not in _FLOATS:
            return np.abs(x)
        self.save_for_backward(x)
        return cpu.unary(cpu.UNARY_ABS, x)

    def backward(self, grad):
        x, = self.saved_tensors
        return cpu.unary_backward(cpu.GRAD_ABS, x, grad.astype(x.dtype, copy=False))


class Clamp(Function):                              # d clamp(x) = [lo <= x <= hi]
    def forward(self, x, lo, hi):
        if x.dtype not in _FLOATS:
            return np.clip(x, lo, hi)
        self.save_for_backward(x)
        self.lo, self.hi = lo, hi
        return cpu.clamp(x, lo, hi)

    def backward(self, grad):
        x, = self.saved_tensors
        return cpu.clamp_backward(x, grad.astype(x.dtype, copy=False), self.lo, self.hi)


def _tensor(x, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}() expects a Tensor, got {type(x).__name__}")
    return x


def exp(x):
    return Exp.apply(_tensor(x, "exp"))


def log(x):
    return Log.apply(_tensor(x, "log"))


def sqrt(x):
    return Sqrt.apply(_tensor(x, "sqrt"))


def tanh(x):
    return Tanh.apply(_tensor(x, "tanh"))


def sigmoid(x):
    return Sigmoid.apply(_tensor(x, "sigmoid"))


def relu(x):
    return Relu.apply(_tensor(x, "relu"))


def abs(x):
    return Abs.apply(_tensor(x, "abs"))


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
