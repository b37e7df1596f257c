"""The OpenCL backend's layer kernels: batch normalization (training and
eval, forward and backward), conv2d and 2-D max/avg pooling, and the
optimizer steps; the names, arguments and results of the CPU backend's
nn.py (stride, padding, kernel as (height, width) pairs).
"""
from ..._mgbn import ffi, lib
from ...errors import ShapeError
from ..cpu.nn import _check_conv, _check_grad, _window, pooled_size  # shared with the CPU backend
from .core import ClArray, _check, _dtype_code, _like, _same_device, statistics_dtype


# ---- batch normalization -------------------------------------------------------------------
# x is a ClArray (N, C), (N, C, L) or (N, C, H, W), seen by the kernels as
# (N, C, S). weight/bias are (C,) of x's dtype or None. The per-channel
# statistics are (C,) ClArrays of statistics_dtype(x.device).

def _bn_ncs(x):
    if x.ndim not in (2, 3, 4):
        raise ShapeError(f"batch_norm: expected a 2-D, 3-D or 4-D input (N, C, ...), got shape {x.shape}")
    s = 1
    for n in x.shape[2:]:
        s *= n
    return x.shape[0], x.shape[1], s


def _bn_param(p, x, name="parameter", dtype=None):
    """The buffer of an optional (C,) parameter of x's dtype (or dtype), or NULL."""
    if p is None:
        return ffi.NULL
    dtype = x.dtype if dtype is None else dtype
    if p.shape != (x.shape[1],) or p.dtype != dtype:
        raise ShapeError(f"batch_norm: expected a ({x.shape[1]},) {dtype} {name}, got {p.shape} {p.dtype}")
    return p.buffer


def batch_norm_train_forward(x, weight, bias, eps):
    """Training forward; returns (y, save_mean, save_rstd, batch_var): the
    batch mean, 1/sqrt(var + eps) and the biased variance, (C,) each."""
    n, c, s = _bn_ncs(x)
    stat = statistics_dtype(x.device)
    y = _like(x)
    mean, rstd, var = (ClArray((c,), stat, x.device) for _ in range(3))
    _check(lib.mg_cl_batch_norm_train_forward(
        _dtype_code(x.dtype), n, c, s, x.buffer, _bn_param(weight, x, "weight"), _bn_param(bias, x, "bias"),
        eps, y.buffer, mean.buffer, rstd.buffer, var.buffer))
    return y, mean, rstd, var


def batch_norm_eval_forward(x, running_mean, running_var, weight, bias, eps):
    """y = x*scale + shift, scale = weight/sqrt(running_var + eps),
    shift = bias - running_mean*scale."""
    n, c, s = _bn_ncs(x)
    y = _like(x)
    _check(lib.mg_cl_batch_norm_eval_forward(
        _dtype_code(x.dtype), n, c, s, x.buffer, _bn_param(running_mean, x, "running_mean"),
        _bn_param(running_var, x, "running_var"), _bn_param(weight, x, "weight"), _bn_param(bias, x, "bias"),
        eps, y.buffer))
    return y


def batch_norm_backward(dy, x, save_mean, save_rstd, weight, need_dx, need_dweight, need_dbias):
    """Training backward; returns (dx, dweight, dbias), None where not needed."""
    n, c, s = _bn_ncs(x)
    if dy.shape != x.shape or dy.dtype != x.dtype:
        raise ShapeError(f"batch_norm_backward: dy {dy.shape} {dy.dtype} does not match x {x.shape} {x.dtype}")
    stat = statistics_dtype(x.device)
    dx = _like(x) if need_dx else None
    dweight = ClArray((c,), x.dtype, x.device) if need_dweight else None
    dbias = ClArray((c,), x.dtype, x.device) if need_dbias else None
    _check(lib.mg_cl_batch_norm_backward(
        _dtype_code(x.dtype), n, c, s, dy.buffer, x.buffer, _bn_param(save_mean, x, "save_mean", stat),
        _bn_param(save_rstd, x, "save_rstd", stat), _bn_param(weight, x, "weight"),
        ffi.NULL if dx is None else dx.buffer, ffi.NULL if dweight is None else dweight.buffer,
        ffi.NULL if dbias is None else dbias.buffer))
    return dx, dweight, dbias


def batch_norm_eval_backward(dy, running_var, weight, eps):
    """dx = dy*weight/sqrt(running_var + eps)."""
    n, c, s = _bn_ncs(dy)
    dx = _like(dy)
    _check(lib.mg_cl_batch_norm_eval_backward(
        _dtype_code(dy.dtype), n, c, s, dy.buffer, _bn_param(running_var, dy, "running_var"),
        _bn_param(weight, dy, "weight"), eps, dx.buffer))
    return dx


# ---- convolution and pooling (NCHW; kernel, stride, padding as (height, width) pairs) ----

def _nchw(name, x):
    if x.ndim != 4:
        raise ShapeError(f"{name}: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
    return x.shape


def conv2d_forward(x, weight, bias, stride, padding):
    """out (N, C_out, OH, OW) = x (N, C_in, H, W) cross-correlated with
    weight (C_out, C_in, kH, kW), plus bias (C_out,) or None."""
    n, c_in, h, w = _nchw("conv2d", x)
    _check_conv(x, weight, bias)
    c_out, _, kh, kw = weight.shape
    out = ClArray((n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype,
                  _same_device("conv2d", x, weight, *([] if bias is None else [bias])))
    _check(lib.mg_cl_conv2d_forward(_dtype_code(x.dtype), n, c_in, h, w, c_out, _window((kh, kw), stride, padding),
                                    x.buffer, weight.buffer, ffi.NULL if bias is None else bias.buffer, out.buffer))
    return out


def conv2d_backward(x, weight, grad, stride, padding, want_x, want_weight, want_bias):
    """(dx, dweight, dbias) of conv2d_forward given grad = dout; None where not wanted."""
    n, c_in, h, w = _nchw("conv2d_backward", x)
    _check_conv(x, weight, None)
    c_out, _, kh, kw = weight.shape
    _check_grad("conv2d_backward", grad, (n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype)
    device = _same_device("conv2d_backward", x, weight, grad)
    dx = ClArray(x.shape, x.dtype, device) if want_x else None
    dweight = ClArray(weight.shape, x.dtype, device) if want_weight else None
    dbias = ClArray((c_out,), x.dtype, device) if want_bias else None
    _check(lib.mg_cl_conv2d_backward(_dtype_code(x.dtype), n, c_in, h, w, c_out, _window((kh, kw), stride, padding),
                                     x.buffer, weight.buffer, grad.buffer,
                                     *[ffi.NULL if a is None else a.buffer for a in (dx, dweight, dbias)]))
    return dx, dweight, dbias


def _pool_forward(c_function, x, kernel, stride, padding):
    n, c, h, w = _nchw("pool2d", x)
    out = ClArray((n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype, x.device)
    _check(c_function(_dtype_code(x.dtype), n, c, h, w, _window(kernel, stride, padding), x.buffer, out.buffer))
    return out


def max_pool2d_forward(x, kernel, stride, padding):
    """The max of each window (a NaN wins), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_cl_max_pool2d_forward, x, kernel, stride, padding)


def max_pool2d_backward(x, grad, kernel, stride, padding):
    """dx: grad routed to each window's first maximum in x."""
    n, c, h, w = _nchw("max_pool2d_backward", x)
    _check_grad("max_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype)
    dx = ClArray(x.shape, x.dtype, _same_device("max_pool2d_backward", x, grad))
    _check(lib.mg_cl_max_pool2d_backward(_dtype_code(x.dtype), n, c, h, w, _window(kernel, stride, padding),
                                         x.buffer, grad.buffer, dx.buffer))
    return dx


def avg_pool2d_forward(x, kernel, stride, padding):
    """The window sums divided by kH*kW (padding counts as zeros), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_cl_avg_pool2d_forward, x, kernel, stride, padding)


def avg_pool2d_backward(shape, grad, kernel, stride, padding):
    """dx of the given input shape: grad / (kH*kW) spread over each window."""
    n, c, h, w = shape
    _check_grad("avg_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding), grad.dtype)
    dx = ClArray(shape, grad.dtype, grad.device)
    _check(lib.mg_cl_avg_pool2d_backward(_dtype_code(grad.dtype), n, c, h, w, _window(kernel, stride, padding),
                                         grad.buffer, dx.buffer))
    return dx


# ---- optimizer steps (in place, torch.optim's order of operations, see optim.py) ----------

def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """One SGD step on param (and momentum_buffer, which may be None when momentum == 0)."""
    _check(lib.mg_cl_sgd_step(
        _dtype_code(param.dtype), param.size, param.buffer, grad.buffer,
        ffi.NULL if momentum_buffer is None else momentum_buffer.buffer, lr, momentum, dampening,
        weight_decay, int(nesterov), int(first_step)))


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    """One Adam step (AdamW when decoupled) on param, exp_avg and exp_avg_sq; step counts from 1."""
    _check(lib.mg_cl_adam_step(
        _dtype_code(param.dtype), param.size, param.buffer, grad.buffer, exp_avg.buffer, exp_avg_sq.buffer,
        lr, beta1, beta2, eps, weight_decay, step, int(decoupled)))
