"""Batch Normalization (Ioffe & Szegedy, 2015) as one fused op.

For an input of shape (N, C, *) every channel c is normalised over its
n = N * prod(*) values:

    training:  mean, var = batch mean and biased variance of channel c
               y = (x - mean) * rstd * weight + bias,  rstd = 1 / sqrt(var + eps)
    eval:      y = (x - running_mean) / sqrt(running_var + eps) * weight + bias

Both passes run in the kernels of the input's backend (src/cpu/batchnorm.c,
or src/opencl/kernels.cl for a tensor on an OpenCL device, where the running
statistics are updated on the device too). The backward pass is
the closed form derived from the paper's chain rule in docs/bn_backward.md:

    dx = (1/n) * rstd * (n*g - sum(g) - xhat * sum(g * xhat)),  g = dy * weight
    dweight = sum(dy * xhat),  dbias = sum(dy)

and in eval mode, where mean and var are constants, dx = dy * weight * rstd.
The running statistics are updated in place during the training forward
pass, with the unbiased variance var * n / (n - 1), as PyTorch does.
"""
import numpy as np

from .. import _backend
from .._backend import ClArray, backend, backend_of, cpu
from ..autograd import Function


def _as_kernel_layout(x):
    """x viewed as (N, C, S), the layout the kernels take (S = 1 for (N, C))."""
    n, c = x.shape[0], x.shape[1]
    if type(x) is not ClArray:      # (a ClArray is always contiguous)
        x = np.ascontiguousarray(x)
    return x.reshape(n, c, -1) if x.ndim != 2 else x


def _update_running(running, batch, momentum, weight):
    """running = (1 - momentum) * running + weight * batch, in place (batch: a
    per-channel statistic, float64 on the CPU; weight: momentum, times n/(n-1)
    for the variance)."""
    if type(running) is not ClArray:
        running *= 1.0 - momentum
        running += weight * batch
        return
    xp, dtype = _backend.opencl, running.dtype
    xp.binary(cpu.OP_MUL, running, _backend.scalar(1.0 - momentum, dtype, running), running.shape, dtype,
              out=running)
    step = _backend.scale(batch.astype(dtype, copy=False), weight)
    xp.binary(cpu.OP_ADD, running, step, running.shape, dtype, out=running)


def _rstd(var, eps):
    """1 / sqrt(var + eps), elementwise, in var's dtype."""
    xp, dtype = backend(var), var.dtype
    root = xp.unary(cpu.UNARY_SQRT, xp.binary(cpu.OP_ADD, var, _backend.scalar(eps, dtype, var), var.shape, dtype))
    return xp.binary(cpu.OP_DIV, _backend.scalar(1, dtype, var), root, var.shape, dtype)


def _statistics_dtype(x):
    """The dtype of the backend's per-channel statistics (float64 on the CPU)."""
    return _backend.opencl.statistics_dtype(x.device) if type(x) is ClArray else np.dtype(np.float64)


class BatchNorm(Function):
    """The fused node: inputs (x, weight, bias); weight and bias may be None."""

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        self.in_shape, self.training, self.eps = x.shape, training, eps
        self.has_weight, self.has_bias = weight is not None, bias is not None
        xp = backend_of(x, weight, bias, running_mean, running_var)
        x3 = _as_kernel_layout(x)
        if training:
            # mean, rstd and batch_var are (C,) of the statistics dtype (float64 on the CPU)
            y, mean, rstd, batch_var = xp.batch_norm_train_forward(x3, weight, bias, eps)
            if running_mean is not None:
                n = x.size // x.shape[1]
                _update_running(running_mean, mean, momentum, momentum)
                _update_running(running_var, batch_var, momentum, momentum * n / (n - 1))
            self.save_for_backward(x3, weight, mean, rstd)
        else:
            y = xp.batch_norm_eval_forward(x3, running_mean, running_var, weight, bias, eps)
            # copies: the running statistics may change before backward runs
            stat = _statistics_dtype(x)
            mean = running_mean.astype(stat)
            var = running_var.astype(stat)
            self.save_for_backward(x3, weight, mean, _rstd(var, eps), running_var.copy())
        return y.reshape(x.shape)

    def backward(self, grad):
        x3, weight, mean, rstd = self.saved_tensors[:4]
        need_dx, need_dweight, need_dbias = self.needs_input_grad
        xp = backend(x3)
        dy = (grad if type(grad) is ClArray else np.ascontiguousarray(grad)).reshape(x3.shape)
        if self.training:
            dx, dweight, dbias = xp.batch_norm_backward(
                dy, x3, mean, rstd, weight, need_dx, need_dweight, need_dbias)
        else:
            # mean and rstd are constants here: dweight and dbias are the same
            # sums as in training, and dx is only the scale dy * weight * rstd.
            _, dweight, dbias = xp.batch_norm_backward(
                dy, x3, mean, rstd, weight, False, need_dweight, need_dbias)
            running_var = self.saved_tensors[4]
            dx = xp.batch_norm_eval_backward(dy, running_var, weight, self.eps) if need_dx else None
        return (None if dx is None else dx.reshape(self.in_shape)), dweight, dbias

    def name(self):
        return "BatchNormBackward"


def _check_batch_norm_args(input, running_mean, running_var, weight, bias, training, momentum, eps):
    from ..tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, *), got {input.ndim}-D input "
                         f"of shape {tuple(input.shape)}")
    if input.dtype not in cpu.DTYPE_CODES:
        raise TypeError(f"batch_norm: input must be float32 or float64, not {input.dtype}")
    channels = input.shape[1]
    for label, t in (("running_mean", running_mean), ("running_var", running_var),
                     ("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"batch_norm: {label} must be a Tensor or None, got {type(t).__name__}")
        if t.shape != (channels,):
            raise ValueError(f"batch_norm: {label} should contain {channels} elements (the input's "
                             f"channels, dim 1 of shape {tuple(input.shape)}), not shape {tuple(t.shape)}")
        if t.dtype != input.dtype:
            raise TypeError(f"batch_norm: {label} is {t.dtype} but the input is {input.dtype}")
        backend_of(input.data, t.data)
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError("batch_norm: running_mean and running_var must be defined in evaluation mode")
    if input.numel() == 0:
        raise ValueError(f"batch_norm: empty input of shape {tuple(input.shape)}")
    if training and input.numel() // channels <= 1:
        raise ValueError("Expected more than 1 value per channel when training, got input size "
                         f"{tuple(input.shape)}")
    if momentum is None:
        raise ValueError("batch_norm: momentum=None (a cumulative average) is computed by the "
                         "BatchNorm modules from num_batches_tracked; pass a number here")
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps >= 0):
        raise ValueError(f"batch_norm: eps must be a finite number >= 0, got {eps!r}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch Normalization over dim 1 of an (N, C, *) input, as
    torch.nn.functional.batch_norm (same argument order and semantics).

    In training mode the batch statistics normalise the input and, when
    running_mean/running_var are given, update them in place:
    running = (1 - momentum) * running + momentum * batch (unbiased variance).
    In eval mode the running statistics normalise the input."""
    _check_batch_norm_args(input, running_mean, running_var, weight, bias, training, momentum, eps)
    return BatchNorm.apply(
        input, weight, bias,
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        training=bool(training), momentum=float(momentum), eps=float(eps))


def batch_norm_primitives(input, running_mean, running_var, weight=None, bias=None, training=False,
                          momentum=0.1, eps=1e-5):
    """The same Batch Normalization built from primitive autograd ops, step by
    step as the paper's Algorithm 1, for studying its graph (slower than
    batch_norm, same results):

        mu    = mean(x)                     # mini-batch mean
        var   = mean((x - mu) ** 2)         # mini-batch variance
        xhat  = (x - mu) / sqrt(var + eps)  # normalize
        y     = gamma * xhat + beta         # scale and shift
    """
    from ..autograd import no_grad

    _check_batch_norm_args(input, running_mean, running_var, weight, bias, training, momentum, eps)
    axes = (0,) + tuple(range(2, input.ndim))
    stat_shape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    if training:
        mu = input.mean(dim=axes, keepdim=True)
        centered = input - mu
        var = (centered * centered).mean(dim=axes, keepdim=True)
        if running_mean is not None:
            n = input.numel() // input.shape[1]
            with no_grad():
                running_mean.copy_(running_mean * (1 - momentum) + mu.reshape(-1) * momentum)
                running_var.copy_(running_var * (1 - momentum) + var.reshape(-1) * (momentum * n / (n - 1)))
    else:
        mu, var = running_mean.reshape(stat_shape), running_var.reshape(stat_shape)
        centered = input - mu
    xhat = centered / (var + eps).sqrt()
    y = xhat if weight is None else xhat * weight.reshape(stat_shape)
    return y if bias is None else y + bias.reshape(stat_shape)
