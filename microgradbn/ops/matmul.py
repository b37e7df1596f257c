"""matmul (`@`): 2-D, vector and batched operands with NumPy's rules, on
the C GEMM (cpu.matmul, src/cpu/matmul.c).

    forward:  out = x @ y
    backward: dx = g @ y^T,  dy = x^T @ g   (summed over broadcast batch axes)
A 1-D x is a row and a 1-D y a column, and that axis is dropped from the
result, so backward first puts it back on g. The transposes are read in
place (cpu.matmul_nt / matmul_tn): nothing is copied. When y is a matrix
and x a batch (a Linear layer on (B, T, k) input), dy is one GEMM over the
flattened batch instead of a batch of products summed afterwards.
"""
import numpy as np

from .._backend import ClArray, backend, backend_pair, cpu
from ..autograd import Function, unbroadcast
from ..errors import ShapeError
from ..tensor import Tensor
from .arithmetic import _operands, result_dtype


class MatMul(Function):
    def forward(self, x, y):
        if x.ndim == 0 or y.ndim == 0:
            raise ShapeError(f"matmul: both arguments need at least 1 dimension, got shapes "
                             f"{x.shape} and {y.shape}")
        if x.dtype is not y.dtype:
            dtype = result_dtype(x, y)
            x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        xp = cpu if type(x) is not ClArray and type(y) is not ClArray else backend_pair(x, y)   # (inlined)
        self.save_for_backward(x, y)
        if x.dtype not in cpu.DTYPE_CODES:
            return np.matmul(x, y)
        return xp.matmul(x, y)

    def backward(self, grad):
        x, y = self.saved_tensors
        xp = backend(x)
        x2 = x.reshape((1,) + x.shape) if x.ndim == 1 else x
        y2 = y.reshape(y.shape + (1,)) if y.ndim == 1 else y
        g = grad
        if y.ndim == 1:                # the column axis first: a 0-d g (vector @ vector) gets one
            g = g.reshape(g.shape + (1,))
        if x.ndim == 1:
            g = g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
        gx = gy = None
        if self.needs_input_grad[0]:
            gx = unbroadcast(xp.matmul_nt(g, y2), x2.shape).reshape(x.shape)
        if self.needs_input_grad[1]:
            if y2.ndim == 2 and x2.ndim > 2:
                k, n = x2.shape[-1], g.shape[-1]
                gy = xp.matmul_tn(x2.reshape(-1, k), g.reshape(-1, n))
            else:
                gy = unbroadcast(xp.matmul_tn(x2, g), y2.shape)
            gy = gy.reshape(y.shape)
        return gx, gy


def matmul(a, b):
    """a @ b with NumPy's (and PyTorch's) rules for 1-D and batched operands."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("matmul expects at least one Tensor")
    a, b = _operands(a, b)
    return MatMul.apply(a, b)
