"""Functional forms of the layers and losses (`import microgradbn.nn.functional as F`).

Each op here is one fused Function (forward and backward side by side, on
NumPy arrays), so a layer costs one graph node, not a chain of primitives:

    linear         y = x W^T + b                      (one GEMM each way)
    relu/tanh/sigmoid (the C maps of ops/unary.py), dropout, flatten
    cross_entropy  log-softmax and NLL in one node;   backward: softmax - onehot
    nll_loss, mse_loss
    batch_norm     the fused BN node (microgradbn/ops/batchnorm.py); and
    batch_norm_primitives, the same BN as the paper's graph of primitive ops

Names and argument orders follow torch.nn.functional. Each runs on the
backend of its input's storage (cpu or opencl); see each op for what the
OpenCL device does not have yet.
"""
import numpy as np

from .. import _backend, creation
from .._backend import ClArray, backend, backend_of, cpu, require
from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..ops import reduce_sum_array, unary
from ..ops.batchnorm import batch_norm, batch_norm_primitives  # noqa: F401  (public here)
from ..tensor import Tensor, _to_array, float32, float64

_FLOATS = (float32, float64)
_REDUCTIONS = ("mean", "sum", "none")


# ---- linear ---------------------------------------------------------------

class Linear(Function):
    """y = x W^T + b.   x: (*, in)   W: (out, in)   b: (out,) or absent   y: (*, out)

    backward (x2 = x as (n, in), g2 = grad as (n, out)):
        dx = g2 W          dW = g2^T x2          db = sum over rows of g2
    """

    def forward(self, x, weight, bias=None):
        xp = backend_of(x, weight, bias)
        self.save_for_backward(x, weight)
        x2 = x.reshape(-1, x.shape[-1])
        out = xp.matmul_nt(x2, weight)           # W^T read in place: no copy
        if bias is not None:
            xp.binary(cpu.OP_ADD, out, bias, out.shape, out.dtype, out=out)
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, grad):
        x, weight = self.saved_tensors
        xp = backend(x)
        g2 = grad.reshape(-1, weight.shape[0])
        dx = xp.matmul(g2, weight).reshape(x.shape) if self.needs_input_grad[0] else None
        dw = xp.matmul_tn(g2, x.reshape(-1, x.shape[-1])) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return dx, dw
        db = reduce_sum_array(g2, (0,)) if self.needs_input_grad[2] else None
        return dx, dw, db


def linear(input, weight, bias=None):
    """input (*, in) times weight (out, in) transposed, plus bias (out,)."""
    if input.ndim < 1 or weight.ndim != 2 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input of shape {tuple(input.shape)} does not fit weight of shape "
                         f"{tuple(weight.shape)} (need input.shape[-1] == weight.shape[1])")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ShapeError(f"linear: bias of shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    dtype = input.dtype
    if dtype not in _FLOATS or weight.dtype != dtype or (bias is not None and bias.dtype != dtype):
        raise DTypeError("linear: input, weight and bias must share one float dtype, got "
                         + ", ".join(str(t.dtype) for t in (input, weight, bias) if t is not None))
    return Linear.apply(input, weight) if bias is None else Linear.apply(input, weight, bias)


# ---- activations ------------------------------------------------------------
# The C maps of microgradbn/ops/unary.py, whose backward is one fused C kernel
# from the saved output (a NumPy np.maximum plus grad * (y > 0) costs 2-4x more:
# temporaries, and fresh pages for each of them at conv sizes).

class ReLU(unary.Relu):
    """y = max(x, 0);  dx = grad where y > 0, else 0. (The ops' Relu under
    torch.nn's name: its graph node is ReLUBackward.)"""


def relu(input):
    return unary._map(ReLU, input, "relu")


tanh = unary.tanh          # y = tanh(x);          dx = grad (1 - y^2)
sigmoid = unary.sigmoid    # y = 1 / (1 + e^-x);   dx = grad y (1 - y)


# ---- dropout and flatten ----------------------------------------------------

class Dropout(Function):
    """y = x * mask / (1 - p), mask[i] = 1 with probability 1 - p (drawn from the
    generator mg.manual_seed seeds);  dx = grad * mask / (1 - p). On a device
    the mask is drawn the same way on the host and written there once: the
    same seed gives the same mask on every device."""

    def forward(self, x, p):
        keep = creation.generator().random(x.shape) >= p
        scale = np.multiply(keep, 1.0 / (1.0 - p) if p < 1 else 0.0, dtype=x.dtype)
        if type(x) is ClArray:
            scale = _backend.to_device(scale, x.device)
        self.save_for_backward(scale)
        return self._scaled(x, scale)

    def backward(self, grad):
        (scale,) = self.saved_tensors
        return self._scaled(grad, scale)

    @staticmethod
    def _scaled(a, scale):
        if type(scale) is ClArray:
            return backend_of(a, scale).binary(cpu.OP_MUL, a, scale, scale.shape, scale.dtype)
        return a * scale


def dropout(input, p=0.5, training=True):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    return Dropout.apply(input, p=float(p))


class Reshape(Function):
    """A new shape over the same elements in the same order; dx = grad reshaped back."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.in_shape)


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim (inclusive) into one, as torch.flatten."""
    shape = input.shape
    ndim = max(len(shape), 1)
    start, end = start_dim % ndim, end_dim % ndim
    if start > end:
        raise ValueError(f"flatten() has invalid args: start_dim {start_dim} cannot come after end_dim {end_dim}")
    if len(shape) == 0:
        return Reshape.apply(input, shape=(1,))
    merged = int(np.prod(shape[start:end + 1]))
    return Reshape.apply(input, shape=shape[:start] + (merged,) + shape[end + 1:])


# ---- losses ---------------------------------------------------------------

def _reduce(losses, reduction):
    """Per-sample losses (n,) -> the requested reduction, as an array."""
    if reduction == "none":
        return losses
    total = reduce_sum_array(losses, (0,))
    if reduction == "mean":
        total = _backend.divide(total, losses.shape[0])   # the mean of no samples is nan, as in PyTorch
    return total


def _scale_per_row(grad, reduction, n):
    """The upstream grad as a per-row factor: (n, 1) for 'none', a scalar otherwise."""
    if reduction == "none":
        return grad.reshape(n, 1)
    return _backend.divide(grad, n) if reduction == "mean" else grad


def _row_grad(grad, reduction, n):
    """The upstream grad of a classification loss as one factor per row:
    (n,) for 'none', one value otherwise (grad / n for 'mean')."""
    return _backend.divide(grad, n) if reduction == "mean" else grad


def _check_classification(name, input, target, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction (use 'mean', 'sum' or 'none')")
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype not in _FLOATS:
        raise DTypeError(f"{name}: input must be float32 or float64, got {input.dtype}")
    target = target.data if isinstance(target, Tensor) else _to_array(target, copy=False)
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{name}: target must hold int64 class indices, got dtype {target.dtype} "
                         "(class probabilities are not supported)")
    if input.ndim != 2 or target.shape != (input.shape[0],):
        raise ShapeError(f"{name}: expected input (N, C) and target (N,), got input "
                         f"{tuple(input.shape)} and target {tuple(target.shape)}")
    classes = input.shape[1]
    index = target.astype(np.int64, copy=False)
    backend_of(input.data, index)
    if type(index) is ClArray:        # (the one check here that waits for the device)
        bad = require(backend(index), "bad_class_index", name)(index, classes)
    else:
        # Seen as unsigned, a negative index is huge: one max finds both kinds of bad index.
        bad = target[(target < 0) | (target >= classes)][0] \
            if index.size and index.view(np.uint64).max() >= classes else None
    if bad is not None:
        raise IndexError(f"{name}: target {bad} is out of bounds: class indices must be in "
                         f"[0, {classes - 1}] for input with {classes} classes")
    return index


class CrossEntropy(Function):
    """loss_i = -log softmax(x_i)[t_i] = logsumexp(x_i) - x_i[t_i].   x: (N, C), t: (N,)

    backward: dx_i = (softmax(x_i) - onehot(t_i)) * grad_i   (grad_i = grad / N for 'mean')
    """

    def forward(self, x, target, reduction):
        self.reduction = reduction
        if type(x) is ClArray:
            return self._device_forward(x, target, reduction)
        self.rows = np.arange(len(x))
        shifted = x - x.max(axis=1, keepdims=True)   # the max row entry becomes 0: no overflow
        probs = np.exp(shifted)
        sums = probs.sum(axis=1, keepdims=True)
        losses = np.log(sums.reshape(-1))
        losses -= shifted[self.rows, target]
        probs /= sums
        self.save_for_backward(probs, target)
        return np.asarray(_reduce(losses, reduction), dtype=x.dtype)

    def backward(self, grad):
        probs, target = self.saved_tensors
        if type(probs) is ClArray:
            return self._device_backward(grad, probs, target), None
        dx = probs.copy()   # not in place: with retain_graph=True backward may run again
        dx[self.rows, target] -= 1
        dx *= _scale_per_row(grad, self.reduction, len(dx))
        return dx, None

    # On a device: the backend's fused kernels (log-softmax, a gather at the targets, and back).
    def _device_forward(self, x, target, reduction):
        losses, log_probs = backend(x).cross_entropy_forward(x, target)
        self.save_for_backward(log_probs, target)
        return _reduce(losses, reduction)

    def _device_backward(self, grad, log_probs, target):
        row_grad = _row_grad(grad, self.reduction, log_probs.shape[0])
        return backend(log_probs).cross_entropy_backward(log_probs, target, row_grad)


class NLLLoss(Function):
    """loss_i = -x_i[t_i] (x: log-probabilities (N, C));  dx[i, t_i] = -grad_i."""

    def forward(self, x, target, reduction):
        self.shape, self.target, self.reduction = x.shape, target, reduction
        if type(x) is ClArray:          # a gather at the targets on the device
            return _reduce(backend(x).nll_forward(x, target), reduction)
        return np.asarray(_reduce(-x[np.arange(len(x)), target], reduction), dtype=x.dtype)

    def backward(self, grad):
        if type(grad) is ClArray:
            row_grad = _row_grad(grad, self.reduction, self.shape[0])
            return backend(grad).nll_backward(row_grad, self.target, self.shape[1]), None
        dx = np.zeros(self.shape, grad.dtype)
        dx[np.arange(len(dx)), self.target] = -_scale_per_row(grad, self.reduction, len(dx)).reshape(-1)
        return dx, None


def cross_entropy(input, target, reduction="mean"):
    """Softmax cross entropy of logits input (N, C) against class indices target (N,).
    Bad targets: float dtype -> DTypeError (a TypeError); negative or >= C -> IndexError."""
    target = _check_classification("cross_entropy", input, target, reduction)
    return CrossEntropy.apply(input, Tensor._wrap(target), reduction=reduction)


def nll_loss(input, target, reduction="mean"):
    """Negative log-likelihood of log-probabilities input (N, C) at class indices target (N,)."""
    target = _check_classification("nll_loss", input, target, reduction)
    return NLLLoss.apply(input, Tensor._wrap(target), reduction=reduction)


class MSELoss(Function):
    """loss = sum((x - y)^2) [/ n];  dx = 2 (x - y) grad [/ n],  dy = -dx."""

    def forward(self, x, y, reduction):
        xp = backend_of(x, y)
        diff = xp.binary(cpu.OP_SUB, x, y, x.shape, x.dtype)
        self.save_for_backward(diff)
        self.reduction = reduction
        squares = xp.binary(cpu.OP_MUL, diff, diff, x.shape, x.dtype)
        if reduction == "none":
            return squares
        total = reduce_sum_array(squares, tuple(range(squares.ndim)))
        return _backend.divide(total, squares.size) if reduction == "mean" else total

    def backward(self, grad):
        (diff,) = self.saved_tensors
        xp = backend(diff)
        scale = _backend.scale(grad, 2.0 / diff.size if self.reduction == "mean" else 2.0)
        dx = xp.binary(cpu.OP_MUL, diff, scale.astype(diff.dtype, copy=False), diff.shape, diff.dtype)
        return (dx if self.needs_input_grad[0] else None,
                xp.unary(cpu.UNARY_NEG, dx) if self.needs_input_grad[1] else None)


def mse_loss(input, target, reduction="mean"):
    """Mean (or summed, or elementwise) squared error between two tensors of one shape."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction (use 'mean', 'sum' or 'none')")
    if not isinstance(target, Tensor):
        target = Tensor._wrap(_to_array(target, input.dtype, copy=False))
    if input.shape != target.shape:
        raise ShapeError(f"mse_loss: input {tuple(input.shape)} and target {tuple(target.shape)} "
                         "must have the same shape")
    if input.dtype != target.dtype or input.dtype not in _FLOATS:
        raise DTypeError(f"mse_loss: input and target must share one float dtype, got "
                         f"{input.dtype} and {target.dtype}")
    return MSELoss.apply(input, target, reduction=reduction)


from ..ops.conv import conv2d  # noqa: E402
from ..ops.pool import avg_pool2d, max_pool2d  # noqa: E402
