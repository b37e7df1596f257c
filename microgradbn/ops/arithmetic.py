"""Elementwise arithmetic: + - * / ** and negation, with NumPy broadcasting.

Broadcasting happens inside the C kernel (strides of 0), never by
materialising the stretched operand; backward sums each gradient back to
its input's shape (autograd.unbroadcast).

Type promotion follows PyTorch: float32 with float64 gives float64; a
Python number takes the tensor's dtype (an int tensor with a float number
gives float32); a 0-d float tensor does not promote a float tensor with
dimensions.

Device: the backend (cpu or opencl) comes from the operands' storage
(_backend.backend_pair); a number becomes a 0-d array on the tensor's device.

Per-call cost: two tensors of one shape, one float dtype, both C-contiguous
(the common case) skip the general machinery: `_elementwise` calls the C
kernel with each tensor's cached storage pointer and wires the graph node
directly. Each op's `setup` records what its backward needs, for both paths.
"""
import numpy as np

from .. import _backend, autograd
from .._backend import ClArray, backend, backend_of, backend_pair, cpu, require
from ..autograd import Function, _state, unbroadcast
from ..errors import ShapeError
from ..tensor import Tensor, _to_array

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_CODES = cpu.DTYPE_CODES


def _operands(a, b):
    """Both operands as tensors; a Python number takes the other's dtype."""
    if not isinstance(a, Tensor):
        a = Tensor._wrap(_scalar_array(a, b))
    if not isinstance(b, Tensor):
        b = Tensor._wrap(_scalar_array(b, a))
    return a, b


def _scalar_array(value, like):
    if isinstance(value, (bool, int, float, np.number)):
        data = like.data
        dtype = data.dtype
        if isinstance(value, (float, np.floating)) and dtype not in _FLOATS:
            dtype = np.dtype(np.float32)
        if type(data) is ClArray:
            return _backend.scalar(value, dtype, data)
        return np.asarray(value, dtype=dtype)
    return _to_array(value)


def result_dtype(x, y):
    """The dtype of x op y for arrays x and y (PyTorch's promotion)."""
    if x.dtype == y.dtype:
        return x.dtype
    if x.dtype in _FLOATS and y.dtype in _FLOATS:
        if x.ndim == 0 and y.ndim > 0:
            return y.dtype
        if y.ndim == 0 and x.ndim > 0:
            return x.dtype
        return np.dtype(np.float64)
    if x.dtype in _FLOATS or y.dtype in _FLOATS:
        return x.dtype if x.dtype in _FLOATS else y.dtype
    return np.result_type(x.dtype, y.dtype)


def broadcast_shape(x, y, op_name):
    """NumPy's broadcast of two shapes, or ShapeError naming both."""
    sx, sy = x.shape, y.shape
    if sx == sy:
        return sx
    if len(sx) < len(sy):
        sx = (1,) * (len(sy) - len(sx)) + sx
    else:
        sy = (1,) * (len(sx) - len(sy)) + sy
    shape = []
    for m, n in zip(sx, sy):
        if m != n and m != 1 and n != 1:
            raise ShapeError(f"{op_name}: shapes {tuple(x.shape)} and {tuple(y.shape)} "
                             "cannot be broadcast together")
        shape.append(n if m == 1 else m)
    return tuple(shape)


def binary_forward(op_code, numpy_fn, x, y, op_name):
    """x op y with broadcasting and type promotion, on the backend's kernels for floats."""
    # backend_pair(x, y), inlined: this runs in every binary backward
    xp = cpu if type(x) is not ClArray and type(y) is not ClArray else backend_of(x, y)
    dtype = x.dtype
    if xp is cpu and dtype is y.dtype and dtype in _FLOATS and x.flags.c_contiguous:  # the common cases
        if y.ndim == 0:                                                              # array op number
            return cpu.binary_scalar(op_code, x, y)[0]
        if x.shape == y.shape and y.flags.c_contiguous:
            return cpu.binary(op_code, x, y, x.shape, dtype)
    shape = broadcast_shape(x, y, op_name)
    dtype = result_dtype(x, y)
    if dtype not in _FLOATS:
        return numpy_fn(x, y)
    return xp.binary(op_code, x.astype(dtype, copy=False), y.astype(dtype, copy=False), shape, dtype)


def _grad_for(grad, shape, dtype):
    """grad summed back to an input's shape, in its dtype."""
    return unbroadcast(grad, shape).astype(dtype, copy=False)


def _mul(x, y):
    return binary_forward(cpu.OP_MUL, np.multiply, x, y, "mul")


def _div(x, y):
    return binary_forward(cpu.OP_DIV, np.true_divide, x, y, "div")


class _Binary(Function):
    """x op y; setup keeps what backward needs (shapes, or the arrays)."""

    op_code = numpy_fn = None

    def forward(self, x, y):
        self.setup(x, y)
        return binary_forward(self.op_code, self.numpy_fn, x, y, type(self).__name__.lower())

    def setup(self, x, y):
        self.x_shape, self.x_dtype, self.y_shape, self.y_dtype = x.shape, x.dtype, y.shape, y.dtype


class Add(_Binary):
    op_code, numpy_fn = cpu.OP_ADD, staticmethod(np.add)

    def backward(self, grad):
        return _grad_for(grad, self.x_shape, self.x_dtype), _grad_for(grad, self.y_shape, self.y_dtype)


class Sub(_Binary):
    op_code, numpy_fn = cpu.OP_SUB, staticmethod(np.subtract)

    def backward(self, grad):
        gy = _grad_for(backend(grad).unary(cpu.UNARY_NEG, grad), self.y_shape, self.y_dtype) \
            if self.needs_input_grad[1] else None
        return _grad_for(grad, self.x_shape, self.x_dtype), gy


class Mul(_Binary):
    op_code, numpy_fn = cpu.OP_MUL, staticmethod(np.multiply)

    def setup(self, x, y):
        self.save_for_backward(x, y)

    def backward(self, grad):
        x, y = self.saved_tensors
        gx = _grad_for(_mul(grad, y), x.shape, x.dtype) if self.needs_input_grad[0] else None
        gy = _grad_for(_mul(grad, x), y.shape, y.dtype) if self.needs_input_grad[1] else None
        return gx, gy


class Div(_Binary):
    op_code, numpy_fn = cpu.OP_DIV, staticmethod(np.true_divide)

    def setup(self, x, y):
        self.save_for_backward(x, y)

    def backward(self, grad):
        x, y = self.saved_tensors
        g_over_y = _div(grad, y)
        gx = _grad_for(g_over_y, x.shape, x.dtype) if self.needs_input_grad[0] else None
        # d(x/y)/dy = -x / y^2 = -(g / y) * (x / y)
        gy = _grad_for(backend(grad).unary(cpu.UNARY_NEG, _mul(g_over_y, _div(x, y))), y.shape, y.dtype) \
            if self.needs_input_grad[1] else None
        return gx, gy


class PowScalar(Function):
    """x ** p for a number p, on the C kernel (PyTorch's shortcuts: x*x for
    p = 2, sqrt for 0.5, 1/x for -1, ...): d/dx = p x^(p-1)."""

    def forward(self, x, p):
        if x.dtype not in _FLOATS:
            if not isinstance(p, (float, np.floating)):
                return np.power(x, p)           # integer ** integer stays integer
            x = x.astype(np.float32)
        self.p = float(p)
        self.save_for_backward(x)
        return require(backend(x), "pow_scalar", "pow")(x, self.p)

    def backward(self, grad):
        x, = self.saved_tensors
        return require(backend(x), "pow_scalar_backward", "pow")(x, grad.astype(x.dtype, copy=False), self.p)


def _broadcast_pair(x, y, shape, dtype):
    """x and y in dtype, as C-contiguous arrays of the broadcast shape."""
    def one(a):
        if a.shape == shape and a.dtype == dtype and (type(a) is ClArray or a.flags.c_contiguous):
            return a
        b = _backend.broadcast_to(a.astype(dtype, copy=False), shape)
        return b if type(b) is ClArray else np.ascontiguousarray(b)
    return one(x), one(y)


class Pow(Function):
    """x ** y for tensors, broadcast, on the C pow (the gradients as PyTorch
    defines them where the derivative does not exist):
        dx = g y x^(y-1), 0 where y = 0;   dy = g x^y log x, 0 where x = 0 and y >= 0."""

    def forward(self, x, y):
        xp = backend_pair(x, y)
        shape = broadcast_shape(x, y, "pow")
        dtype = result_dtype(x, y)
        if dtype not in _FLOATS:
            return np.power(x.astype(dtype, copy=False), y.astype(dtype, copy=False))
        pow_fn = require(xp, "pow", "pow")
        xb, yb = _broadcast_pair(x, y, shape, dtype)
        out = pow_fn(xb, yb)
        self.save_for_backward(xb, yb, out)
        self.x_meta, self.y_meta = (x.shape, x.dtype), (y.shape, y.dtype)
        return out

    def backward(self, grad):
        x, y, out = self.saved_tensors
        xp, shape = backend(x), x.shape
        gx = gy = None
        zero, one = _backend.scalar(0, x.dtype, x), _backend.scalar(1, x.dtype, x)
        if self.needs_input_grad[0]:
            power = xp.pow(x, xp.binary(cpu.OP_SUB, y, one, shape, y.dtype))
            gx = where_arrays(compare_arrays("eq", y, zero), zero, _mul(grad, _mul(y, power)), shape)
            gx = _grad_for(gx, *self.x_meta)
        if self.needs_input_grad[1]:
            gy = _mul(grad, _mul(out, xp.unary(cpu.UNARY_LOG, x)))
            gy = where_arrays(compare_arrays("eq", x, zero), where_arrays(compare_arrays("ge", y, zero), zero, gy, shape),
                              gy, shape)                # 0 where x == 0 and y >= 0
            gy = _grad_for(gy, *self.y_meta)
        return gx, gy


def _elementwise(cls, a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        a, b = _operands(a, b)
    x, y = a.data, b.data
    # Tensor._storage_handle, inlined: a cached pointer, or None when the
    # array is not a C-contiguous float array (then take the general path).
    x_handle = a._handle if a._handle_of is x else a._storage_handle()
    y_handle = b._handle if b._handle_of is y else b._storage_handle()
    if x_handle is None or y_handle is None or x.dtype is not y.dtype or autograd._anomaly is not None:
        return cls.apply(a, b)
    if x.shape == y.shape:
        out, handle = cpu.binary_same(cls.op_code, x, x_handle, y_handle)
    elif y.ndim == 0:                      # tensor op number
        out, handle = cpu.binary_scalar(cls.op_code, x, y, x_handle=x_handle)
    elif x.ndim == 0:                      # number op tensor
        out, handle = cpu.binary_scalar(cls.op_code, y, x, scalar_first=True, x_handle=y_handle)
    else:
        return cls.apply(a, b)
    result = _new(Tensor)                  # Tensor._wrap, inlined, keeping out's handle
    result.data, result._handle, result._handle_of = out, handle, out
    if (a.requires_grad or b.requires_grad) and _state.enabled:
        node = cls()
        node.setup(x, y)
        node.connect_pair(a, b, result)
    return result


_new = object.__new__


def add_op(a, b):
    """a + b (Tensor.__add__; `add` also takes alpha)."""
    return _elementwise(Add, a, b)


def mul_op(a, b):
    """a * b (Tensor.__mul__)."""
    return _elementwise(Mul, a, b)


def add(a, b, alpha=1):
    return _elementwise(Add, a, b if alpha == 1 else mul(b, alpha))


def sub(a, b, alpha=1):
    return _elementwise(Sub, a, b if alpha == 1 else mul(b, alpha))


def mul(a, b):
    return _elementwise(Mul, a, b)


def div(a, b):
    return _elementwise(Div, a, b)


def pow(a, b):
    """a ** b: a tensor to a number's power on PowScalar, else elementwise Pow."""
    if isinstance(a, Tensor) and isinstance(b, (int, float, np.number)):
        return PowScalar.apply(a, p=b)
    a, b = _operands(a, b)
    return Pow.apply(a, b)


def rsub(a, b):
    return sub(b, a)


def rdiv(a, b):
    return div(b, a)


def rpow(a, b):
    return pow(b, a)


from .compare import compare_arrays, where_arrays  # noqa: E402  (compare.py imports this module)
