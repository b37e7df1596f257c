"""The CPU backend's layer kernels: batch normalization (training and eval,
forward and backward), conv2d and 2-D max/avg pooling, and the optimizer
steps, each forward next to its backward.
"""
import numpy as np

from ..._mgbn import ffi, lib
from ...errors import ShapeError
from .core import DTYPE_CODES, _same_layout, empty, raise_status


# ---- batch normalization ----
# x is C-contiguous (N, C), (N, C, L) or (N, C, H, W), seen by the C kernels
# as (N, C, S) with S the spatial size. weight/bias are (C,) of x's dtype or
# None. The per-channel statistics (save_mean, save_rstd, batch_var) are
# float64 for both dtypes: the kernels accumulate in float64 and backward then
# sees the exact mean (this matters for inputs with a large offset).

def _bn_input(x):
    if x.ndim not in (2, 3, 4):
        raise ShapeError(f"batch_norm: expected a 2-D, 3-D or 4-D input (N, C, ...), got shape {x.shape}")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def _bn_ncs(x):
    s = 1
    for n in x.shape[2:]:
        s *= n
    return x.shape[0], x.shape[1], s


def _bn_param(p, x):
    """A cffi pointer to an optional per-channel parameter of x's dtype, or NULL."""
    if p is None:
        return ffi.NULL
    if p.shape != (x.shape[1],) or p.dtype != x.dtype:
        raise ShapeError(f"batch_norm: expected a ({x.shape[1]},) {x.dtype} parameter, "
                         f"got {p.shape} {p.dtype}")
    return ffi.from_buffer(np.ascontiguousarray(p))


def batch_norm_train_forward(x, weight, bias, eps):
    """Training forward; returns (y, save_mean, save_rstd, batch_var), the last three
    float64 (C,): the batch mean, 1/sqrt(var + eps) and the biased variance."""
    x = _bn_input(x)
    n, c, s = _bn_ncs(x)
    y = empty(x.shape, x.dtype)
    mean, rstd, var = np.empty(c), np.empty(c), np.empty(c)
    status = lib.mg_batch_norm_train_forward(
        DTYPE_CODES[x.dtype], n, c, s, ffi.from_buffer(x), _bn_param(weight, x), _bn_param(bias, x),
        eps, ffi.from_buffer(y), ffi.from_buffer("double[]", mean), ffi.from_buffer("double[]", rstd),
        ffi.from_buffer("double[]", var))
    if status:
        raise_status(status)
    return y, mean, rstd, var


def batch_norm_eval_forward(x, running_mean, running_var, weight, bias, eps):
    """y = x*scale + shift with scale = weight/sqrt(running_var + eps),
    shift = bias - running_mean*scale."""
    x = _bn_input(x)
    n, c, s = _bn_ncs(x)
    y = empty(x.shape, x.dtype)
    status = lib.mg_batch_norm_eval_forward(
        DTYPE_CODES[x.dtype], n, c, s, ffi.from_buffer(x), _bn_param(running_mean, x),
        _bn_param(running_var, x), _bn_param(weight, x), _bn_param(bias, x), eps, ffi.from_buffer(y))
    if status:
        raise_status(status)
    return y


def batch_norm_backward(dy, x, save_mean, save_rstd, weight, need_dx, need_dweight, need_dbias):
    """Training backward; returns (dx, dweight, dbias), None where not needed."""
    x = _bn_input(x)
    dy = _bn_input(dy)
    if dy.shape != x.shape or dy.dtype != x.dtype:
        raise ShapeError(f"batch_norm_backward: dy {dy.shape} {dy.dtype} does not match x {x.shape} {x.dtype}")
    n, c, s = _bn_ncs(x)
    save_mean = np.ascontiguousarray(save_mean, np.float64)
    save_rstd = np.ascontiguousarray(save_rstd, np.float64)
    if save_mean.shape != (c,) or save_rstd.shape != (c,):
        raise ShapeError(f"batch_norm_backward: expected ({c},) statistics, got {save_mean.shape} and {save_rstd.shape}")
    dx = empty(x.shape, x.dtype) if need_dx else None
    dweight = np.empty(c, x.dtype) if need_dweight else None
    dbias = np.empty(c, x.dtype) if need_dbias else None
    status = lib.mg_batch_norm_backward(
        DTYPE_CODES[x.dtype], n, c, s, ffi.from_buffer(dy), ffi.from_buffer(x),
        ffi.from_buffer("double[]", save_mean), ffi.from_buffer("double[]", save_rstd),
        _bn_param(weight, x), ffi.NULL if dx is None else ffi.from_buffer(dx),
        ffi.NULL if dweight is None else ffi.from_buffer(dweight),
        ffi.NULL if dbias is None else ffi.from_buffer(dbias))
    if status:
        raise_status(status)
    return dx, dweight, dbias


def batch_norm_eval_backward(dy, running_var, weight, eps):
    """dx = dy*weight/sqrt(running_var + eps)."""
    dy = _bn_input(dy)
    n, c, s = _bn_ncs(dy)
    dx = empty(dy.shape, dy.dtype)
    status = lib.mg_batch_norm_eval_backward(
        DTYPE_CODES[dy.dtype], n, c, s, ffi.from_buffer(dy), _bn_param(running_var, dy),
        _bn_param(weight, dy), eps, ffi.from_buffer(dx))
    if status:
        raise_status(status)
    return dx


# ---- convolution and pooling ----
# Arrays are NCHW; kernel, stride and padding are (height, width) pairs the
# caller has checked (microgradbn/ops/conv.py and pool.py).

def _window(kernel, stride, padding):
    return ffi.new("mg_window2d_t *", (kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1]))


def pooled_size(size, kernel, stride, padding):
    """Output (height, width) of a window sliding over an input of (height, width)."""
    if min(stride) < 1:
        raise ValueError(f"stride must be positive, got {tuple(stride)}")
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


def _check_conv(x, weight, bias):
    """weight (C_out, C_in, kH, kW) and bias (C_out,) or None must fit x (N, C_in, H, W)."""
    if (weight.ndim != 4 or weight.shape[1] != x.shape[1] or weight.dtype != x.dtype
            or bias is not None and (bias.shape != weight.shape[:1] or bias.dtype != x.dtype)):
        raise ShapeError(f"conv2d: weight {weight.shape} {weight.dtype} and bias "
                          f"{None if bias is None else (bias.shape, bias.dtype)} do not fit "
                          f"input {x.shape} {x.dtype}")


def _check_grad(name, grad, shape, dtype):
    if grad.shape != tuple(shape) or grad.dtype != dtype:
        raise ShapeError(f"{name}: expected grad {tuple(shape)} {dtype}, got {grad.shape} {grad.dtype}")


def _buffer(array):
    return ffi.from_buffer(np.ascontiguousarray(array))


def conv2d_forward(x, weight, bias, stride, padding):
    """out (N, C_out, OH, OW) = x (N, C_in, H, W) cross-correlated with
    weight (C_out, C_in, kH, kW), plus bias (C_out,) or None."""
    n, c_in, h, w = x.shape
    _check_conv(x, weight, bias)
    c_out, _, kh, kw = weight.shape
    out = empty((n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype)
    status = lib.mg_conv2d_forward(DTYPE_CODES[x.dtype], n, c_in, h, w, c_out, _window((kh, kw), stride, padding),
                                   _buffer(x), _buffer(weight), ffi.NULL if bias is None else _buffer(bias),
                                   ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def conv2d_backward(x, weight, grad, stride, padding, want_x, want_weight, want_bias):
    """(dx, dweight, dbias) of conv2d_forward given grad = dout; None where not wanted."""
    n, c_in, h, w = x.shape
    _check_conv(x, weight, None)
    c_out, _, kh, kw = weight.shape
    _check_grad("conv2d_backward", grad, (n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype)
    dx = empty(x.shape, x.dtype) if want_x else None
    dweight = empty(weight.shape, x.dtype) if want_weight else None
    dbias = empty((c_out,), x.dtype) if want_bias else None
    outputs = [ffi.NULL if a is None else ffi.from_buffer(a) for a in (dx, dweight, dbias)]
    status = lib.mg_conv2d_backward(DTYPE_CODES[x.dtype], n, c_in, h, w, c_out,
                                    _window((kh, kw), stride, padding), _buffer(x), _buffer(weight),
                                    _buffer(grad), *outputs)
    if status:
        raise_status(status)
    return dx, dweight, dbias


def _pool_forward(c_function, x, kernel, stride, padding):
    n, c, h, w = x.shape
    out = empty((n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype)
    status = c_function(DTYPE_CODES[x.dtype], n, c, h, w, _window(kernel, stride, padding), _buffer(x),
                        ffi.from_buffer(out))
    if status:
        raise_status(status)
    return out


def max_pool2d_forward(x, kernel, stride, padding):
    """The max of each window (a NaN wins), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_max_pool2d_forward, x, kernel, stride, padding)


def max_pool2d_backward(x, grad, kernel, stride, padding):
    """dx: grad routed to each window's first maximum in x."""
    n, c, h, w = x.shape
    _check_grad("max_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype)
    dx = empty(x.shape, x.dtype)
    status = lib.mg_max_pool2d_backward(DTYPE_CODES[x.dtype], n, c, h, w, _window(kernel, stride, padding),
                                        _buffer(x), _buffer(grad), ffi.from_buffer(dx))
    if status:
        raise_status(status)
    return dx


def avg_pool2d_forward(x, kernel, stride, padding):
    """The window sums divided by kH*kW (padding counts as zeros), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_avg_pool2d_forward, x, kernel, stride, padding)


def avg_pool2d_backward(shape, grad, kernel, stride, padding):
    """dx of the given input shape: grad / (kH*kW) spread over each window."""
    n, c, h, w = shape
    _check_grad("avg_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding),
                grad.dtype)
    dx = empty(shape, grad.dtype)
    status = lib.mg_avg_pool2d_backward(DTYPE_CODES[grad.dtype], n, c, h, w, _window(kernel, stride, padding),
                                        _buffer(grad), ffi.from_buffer(dx))
    if status:
        raise_status(status)
    return dx


# ---- optimizer steps (in place; the names and arguments of the OpenCL backend's) -----

def _state_array(name, array, param):
    """The C step updates array in place as if it had param's layout: check it."""
    _same_layout(name, array, param, c_contiguous=True)
    return ffi.from_buffer(array, require_writable=name != "grad")


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """One SGD step on param (and momentum_buffer, which may be None when momentum == 0)."""
    buf = ffi.NULL if momentum_buffer is None else _state_array("momentum_buffer", momentum_buffer, param)
    status = lib.mg_sgd_step(DTYPE_CODES[param.dtype], param.size, _state_array("param", param, param),
                             _state_array("grad", grad, param), buf, lr, momentum, dampening,
                             weight_decay, int(nesterov), int(first_step))
    if status:
        raise_status(status)


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    """One Adam step (AdamW when decoupled) on param, exp_avg and exp_avg_sq; step counts from 1."""
    status = lib.mg_adam_step(DTYPE_CODES[param.dtype], param.size, _state_array("param", param, param),
                              _state_array("grad", grad, param), _state_array("exp_avg", exp_avg, param),
                              _state_array("exp_avg_sq", exp_avg_sq, param), lr, beta1, beta2, eps,
                              weight_decay, step, int(decoupled))
    if status:
        raise_status(status)
