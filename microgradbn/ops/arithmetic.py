"""Elementwise arithmetic: + - * / and negation, with NumPy broadcasting.

Broadcasting happens inside the C kernel (strides of 0), never by
materialising the stretched operand; backward sums each gradient back to
its input's shape (autograd.unbroadcast).
"""
import numpy as np

from .._backend import cpu
from ..autograd import Function, unbroadcast
from ..errors import ShapeError
from ..tensor import Tensor, _to_array

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _operands(a, b):
    """Both operands as tensors; a Python number takes the tensor's dtype
    (PyTorch: a scalar does not promote), float32 with float64 gives float64."""
    if not isinstance(a, Tensor):
        a = Tensor._wrap(_scalar_array(a, b))
    if not isinstance(b, Tensor):
        b = Tensor._wrap(_scalar_array(b, a))
    return a, b


def _scalar_array(value, like):
    if isinstance(value, (bool, int, float, np.number)):
        dtype = like.data.dtype
        if isinstance(value, float) and dtype not in _FLOATS:
            dtype = np.dtype(np.float32)
        return np.asarray(value, dtype=dtype)
    return _to_array(value)


def _result_dtype(x, y):
    if x.dtype == y.dtype:
        return x.dtype
    if x.dtype in _FLOATS or y.dtype in _FLOATS:
        return np.dtype(np.float64) if np.dtype(np.float64) in (x.dtype, y.dtype) else np.dtype(np.float32)
    return np.result_type(x.dtype, y.dtype)


def broadcast_shape(x, y, op_name):
    try:
        return np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ShapeError(f"{op_name}: shapes {tuple(x.shape)} and {tuple(y.shape)} "
                         "cannot be broadcast together") from None


def binary_forward(op_code, numpy_fn, x, y, op_name):
    """x op y with broadcasting and type promotion, on the C kernels for floats."""
    shape = broadcast_shape(x, y, op_name)
    dtype = _result_dtype(x, y)
    if dtype not in _FLOATS:
        return numpy_fn(x, y)
    return cpu.binary(op_code, x.astype(dtype, copy=False), y.astype(dtype, copy=False), shape, dtype)


def _grad_for(grad, x):
    """grad summed back to x's shape, in x's dtype."""
    return unbroadcast(grad, x.shape).astype(x.dtype, copy=False)


class Add(Function):
    def forward(self, x, y):
        self.x_meta, self.y_meta = _Meta(x), _Meta(y)
        return binary_forward(cpu.OP_ADD, np.add, x, y, "add")

    def backward(self, grad):
        return _grad_for(grad, self.x_meta), _grad_for(grad, self.y_meta)


class Sub(Function):
    def forward(self, x, y):
        self.x_meta, self.y_meta = _Meta(x), _Meta(y)
        return binary_forward(cpu.OP_SUB, np.subtract, x, y, "sub")

    def backward(self, grad):
        return _grad_for(grad, self.x_meta), _grad_for(-grad, self.y_meta)


class Mul(Function):
    def forward(self, x, y):
        self.save_for_backward(x, y)
        return binary_forward(cpu.OP_MUL, np.multiply, x, y, "mul")

    def backward(self, grad):
        x, y = self.saved_tensors
        gx = _grad_for(_mul(grad, y), x) if self.needs_input_grad[0] else None
        gy = _grad_for(_mul(grad, x), y) if self.needs_input_grad[1] else None
        return gx, gy


class Div(Function):
    def forward(self, x, y):
        self.save_for_backward(x, y)
        return binary_forward(cpu.OP_DIV, np.true_divide, x, y, "div")

    def backward(self, grad):
        x, y = self.saved_tensors
        gx = _grad_for(_div(grad, y), x) if self.needs_input_grad[0] else None
        # d(x/y)/dy = -x / y^2
        gy = _grad_for(-_div(_mul(grad, x), _mul(y, y)), y) if self.needs_input_grad[1] else None
        return gx, gy


class Neg(Function):
    def forward(self, x):
        return np.negative(x)

    def backward(self, grad):
        return np.negative(grad)


class _Meta:
    """Shape and dtype of an input, all that add/sub need for backward."""

    __slots__ = ("shape", "dtype")

    def __init__(self, array):
        self.shape, self.dtype = array.shape, array.dtype


def _mul(x, y):
    return binary_forward(cpu.OP_MUL, np.multiply, x, y, "mul")


def _div(x, y):
    return binary_forward(cpu.OP_DIV, np.true_divide, x, y, "div")


def add(a, b):
    return Add.apply(*_operands(a, b))


def sub(a, b):
    return Sub.apply(*_operands(a, b))


def mul(a, b):
    return Mul.apply(*_operands(a, b))


def div(a, b):
    return Div.apply(*_operands(a, b))


def neg(a):
    return Neg.apply(a)
