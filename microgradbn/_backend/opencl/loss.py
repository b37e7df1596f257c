"""The OpenCL backend's softmax and class-index losses: softmax and
log_softmax over the last axis with their backward, gathering and
scattering by class index, cross entropy and nll. (The CPU does these in
NumPy: ops/softmax.py, nn/functional.py.)
"""
import numpy as np

from ..._mgbn import ffi, lib
from ...errors import ShapeError
from ..cpu.elementwise import UNARY_NEG
from .core import ClArray, _check, _dtype_code, _like, _same_device
from .elementwise import unary


# ---- softmax over the last axis ----------------------------------------------------------

def _rows_cols(x, name):
    if x.ndim == 0:
        raise ShapeError(f"{name}: expected at least one axis, got a 0-d array")
    cols = x.shape[-1]
    return (x.size // cols if cols else 0), cols


def softmax(x, log=False):
    """softmax (or log_softmax) of x over its last axis."""
    rows, cols = _rows_cols(x, "softmax")
    out = _like(x)
    _check(lib.mg_cl_softmax(_dtype_code(x.dtype), rows, cols, x.buffer, int(log), out.buffer))
    return out


def softmax_backward(y, grad, log=False):
    """dx from the forward's result y and the gradient (last axis)."""
    rows, cols = _rows_cols(y, "softmax_backward")
    out = _like(y)
    _check(lib.mg_cl_softmax_backward(_dtype_code(y.dtype), rows, cols, y.buffer, grad.buffer, int(log),
                                      out.buffer))
    return out


# ---- class indices: cross entropy and nll ---------------------------------------------

# gather_classes(x, index) -> (N,): x[i, index[i]] for x (N, C), index int64
#     (N,); NaN where an index is out of range (check with bad_class_index).
# scatter_classes(values, index, classes) -> (N, classes): values[i] at
#     [i, index[i]], 0 elsewhere; values (N,) or one value (shape () or (1,)).
# bad_class_index(index, classes) -> the first index value outside
#     [0, classes), or None. Waits for the device (the only call here that does).
# cross_entropy_forward(x, index) -> (losses (N,), log_probs (N, C)): losses =
#     logsumexp(x_i) - x_i[t_i]; cross_entropy_backward(log_probs, index,
#     row_grad) -> dx = (softmax(x) - onehot(t)) * row_grad, row_grad (N,) or
#     one value (grad/N for 'mean'); nll_forward(x, index) -> -x_i[t_i] and
#     nll_backward(row_grad, index, classes) -> dx (N, C). The reductions
#     ('mean', 'sum') are sum_all and binary() on these, on the device.


def _rows_and_index(name, x_shape, index):
    if len(x_shape) != 2 or index.dtype != np.int64 or index.shape != (x_shape[0],):
        raise ShapeError(f"{name}: expected x (N, C) and an int64 index (N,), got x {tuple(x_shape)} "
                         f"and index {index.dtype} {index.shape}")
    return x_shape


def gather_classes(x, index):
    """out[i] = x[i, index[i]] (NaN where index[i] is outside [0, C))."""
    rows, classes = _rows_and_index("gather_classes", x.shape, index)
    out = ClArray((rows,), x.dtype, _same_device("gather_classes", x, index))
    _check(lib.mg_cl_gather_classes(_dtype_code(x.dtype), rows, classes, x.buffer, index.buffer, out.buffer))
    return out


def scatter_classes(values, index, classes):
    """dx (N, classes): values[i] (or the one value) at [i, index[i]], 0 elsewhere."""
    if index.ndim != 1:
        raise ShapeError(f"scatter_classes: expected an int64 index (N,), got {index.dtype} {index.shape}")
    rows, classes = _rows_and_index("scatter_classes", (index.shape[0], classes), index)
    if values.size == 1 and values.ndim <= 1:
        stride = 0
    elif values.shape == (rows,):
        stride = 1
    else:
        raise ShapeError(f"scatter_classes: values must be ({rows},) or one value, got {values.shape}")
    dx = ClArray((rows, classes), values.dtype, _same_device("scatter_classes", values, index))
    _check(lib.mg_cl_scatter_classes(_dtype_code(values.dtype), rows, classes, values.buffer, stride,
                                     index.buffer, dx.buffer))
    return dx


def bad_class_index(index, classes):
    """The first value of index outside [0, classes), or None (waits for the device)."""
    if index.dtype != np.int64 or index.ndim != 1:
        raise ShapeError(f"bad_class_index: expected an int64 index (N,), got {index.dtype} {index.shape}")
    first = ffi.new("int64_t *")
    _check(lib.mg_cl_bad_class_index(index.shape[0], classes, index.buffer, first))
    if first[0] < 0:
        return None
    value = np.empty(1, np.int64)
    _check(lib.mg_cl_read(index.buffer, first[0] * 8, ffi.from_buffer(value), 8))
    return int(value[0])


def cross_entropy_forward(x, index):
    """(losses, log_probs): losses[i] = logsumexp(x[i]) - x[i, index[i]], x (N, C)."""
    log_probs = softmax(x, log=True)
    return unary(UNARY_NEG, gather_classes(log_probs, index)), log_probs


def cross_entropy_backward(log_probs, index, row_grad):
    """dx = (softmax - onehot(index)) * row_grad: the log_softmax backward of
    g = -row_grad at the targets (dx = g - exp(log_probs) * sum(g))."""
    g = scatter_classes(unary(UNARY_NEG, row_grad), index, log_probs.shape[1])
    return softmax_backward(log_probs, g, log=True)


def nll_forward(x, index):
    """losses[i] = -x[i, index[i]] for log-probabilities x (N, C)."""
    return unary(UNARY_NEG, gather_classes(x, index))


def nll_backward(row_grad, index, classes):
    """dx (N, classes) = -row_grad at [i, index[i]], 0 elsewhere."""
    return scatter_classes(unary(UNARY_NEG, row_grad), index, classes)
