"""Batch Normalization exactly as Ioffe & Szegedy (2015) write it, in NumPy float64.

The oracle for the tests: `paper_forward` is Algorithm 1 and `paper_backward` is the
paper's backpropagation, one NumPy line per equation, named as in the paper (m is the
number of values each statistic is taken over). `closed_form_backward` is the formula
the C kernel computes (derived in docs/bn_backward.md and tools/derive_bn_backward.py):

    dx = (1/m) * rstd * (m*g - sum(g) - xhat * sum(g*xhat)),  g = dy*gamma,  rstd = 1/sqrt(var + eps)

Layouts: x is (N, C), (N, C, L) or (N, C, H, W); each channel c (axis 1) has its own
statistics over every other axis, so m = N, N*L or N*H*W. gamma and beta are (C,);
None means affine off (gamma = 1, beta = 0). Every result is float64.
"""
import numpy as np


def _reduce_axes(x):
    """All axes but the channel axis 1, for an (N, C), (N, C, L) or (N, C, H, W) array."""
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"batch norm expects (N, C), (N, C, L) or (N, C, H, W), got shape {x.shape}")
    return (0,) + tuple(range(2, x.ndim))


def _channel(v, x):
    """A per-channel (C,) vector as (1, C, 1, ...), so that it broadcasts against x."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (x.shape[1],):
        raise ValueError(f"expected a per-channel vector of shape ({x.shape[1]},), got {v.shape}")
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def _gamma(gamma, x):
    return np.float64(1.0) if gamma is None else _channel(gamma, x)


def _beta(beta, x):
    return np.float64(0.0) if beta is None else _channel(beta, x)


def _dy_and_x(dy, x):
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if dy.shape != x.shape:
        raise ValueError(f"dy has shape {dy.shape}, x has shape {x.shape}")
    return dy, x


def batch_statistics(x, eps=1e-5):
    """Per-channel mean, biased variance and rstd = 1/sqrt(var + eps), each (C,): what the
    training forward computes and saves (mean and rstd) for the backward."""
    x = np.asarray(x, dtype=np.float64)
    axes = _reduce_axes(x)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return mean.reshape(-1), var.reshape(-1), 1.0 / np.sqrt(var.reshape(-1) + eps)


def paper_forward(x, gamma=None, beta=None, eps=1e-5):
    """Algorithm 1 (training mode): normalise with the batch's own statistics. Returns y."""
    x = np.asarray(x, dtype=np.float64)
    axes = _reduce_axes(x)
    gamma, beta = _gamma(gamma, x), _beta(beta, x)
    m = x.size // x.shape[1]
    mu = np.sum(x, axis=axes, keepdims=True) / m                   # mu_B = 1/m sum_i x_i
    var = np.sum((x - mu) ** 2, axis=axes, keepdims=True) / m      # sigma2_B = 1/m sum_i (x_i - mu_B)^2
    xhat = (x - mu) / np.sqrt(var + eps)                           # xhat_i = (x_i - mu_B) / sqrt(sigma2_B + eps)
    y = gamma * xhat + beta                                        # y_i = gamma xhat_i + beta
    return y


def paper_backward(dy, x, gamma=None, eps=1e-5):
    """The paper's backpropagation through Algorithm 1, line by line.
    Returns (dx, dgamma, dbeta); dgamma and dbeta, shape (C,), are returned even when
    gamma is None (they are then the gradients gamma = 1 and beta = 0 would receive)."""
    dy, x = _dy_and_x(dy, x)
    axes = _reduce_axes(x)
    gamma = _gamma(gamma, x)
    m = x.size // x.shape[1]
    # the forward pass again, for the values the backward lines use
    mu = np.sum(x, axis=axes, keepdims=True) / m
    var = np.sum((x - mu) ** 2, axis=axes, keepdims=True) / m
    xhat = (x - mu) / np.sqrt(var + eps)
    # dl/dxhat_i = dl/dy_i * gamma
    dxhat = dy * gamma
    # dl/dsigma2 = sum_i dl/dxhat_i (x_i - mu_B) * (-1/2) (sigma2_B + eps)^(-3/2)
    dvar = np.sum(dxhat * (x - mu), axis=axes, keepdims=True) * -0.5 * (var + eps) ** -1.5
    # dl/dmu = (sum_i dl/dxhat_i * -1/sqrt(sigma2_B + eps)) + dl/dsigma2 * (sum_i -2 (x_i - mu_B)) / m
    dmu = (np.sum(dxhat * -1.0 / np.sqrt(var + eps), axis=axes, keepdims=True)
           + dvar * np.sum(-2.0 * (x - mu), axis=axes, keepdims=True) / m)
    # dl/dx_i = dl/dxhat_i / sqrt(sigma2_B + eps) + dl/dsigma2 * 2 (x_i - mu_B) / m + dl/dmu / m
    dx = dxhat / np.sqrt(var + eps) + dvar * 2.0 * (x - mu) / m + dmu / m
    # dl/dgamma = sum_i dl/dy_i xhat_i;  dl/dbeta = sum_i dl/dy_i
    dgamma = np.sum(dy * xhat, axis=axes)
    dbeta = np.sum(dy, axis=axes)
    return dx, dgamma, dbeta


def closed_form_backward(dy, x, gamma=None, eps=1e-5):
    """The kernel's formula, from the saved per-channel mean and rstd. Same results as
    `paper_backward` (up to rounding): (dx, dgamma, dbeta)."""
    dy, x = _dy_and_x(dy, x)
    axes = _reduce_axes(x)
    m = x.size // x.shape[1]
    mean, _, rstd = batch_statistics(x, eps)
    mean, rstd = _channel(mean, x), _channel(rstd, x)
    xhat = (x - mean) * rstd
    g = dy * _gamma(gamma, x)
    # sweep 1: two sums per channel; sweep 2: dx
    sum_g = np.sum(g, axis=axes, keepdims=True)
    sum_g_xhat = np.sum(g * xhat, axis=axes, keepdims=True)
    dx = (1.0 / m) * rstd * (m * g - sum_g - xhat * sum_g_xhat)
    return dx, np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes)


def eval_forward(x, running_mean, running_var, gamma=None, beta=None, eps=1e-5):
    """Eval mode: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta."""
    x = np.asarray(x, dtype=np.float64)
    _reduce_axes(x)
    mean, var = _channel(running_mean, x), _channel(running_var, x)
    return _gamma(gamma, x) * (x - mean) / np.sqrt(var + eps) + _beta(beta, x)


def eval_backward(dy, x, running_mean, running_var, gamma=None, eps=1e-5):
    """Eval mode backward: the statistics are constants, so dx = dy * gamma / sqrt(running_var + eps).
    Returns (dx, dgamma, dbeta)."""
    dy, x = _dy_and_x(dy, x)
    axes = _reduce_axes(x)
    mean, var = _channel(running_mean, x), _channel(running_var, x)
    xhat = (x - mean) / np.sqrt(var + eps)
    dx = dy * _gamma(gamma, x) / np.sqrt(var + eps)
    return dx, np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes)


def update_running_stats(running_mean, running_var, x, momentum=0.1, num_batches_tracked=0):
    """One training step's update of the running statistics (PyTorch semantics):
    running = (1 - momentum) running + momentum batch, with the unbiased variance
    var * m / (m - 1); momentum None is a cumulative average, factor 1/num_batches_tracked
    counted after this batch. Returns (running_mean, running_var, num_batches_tracked)."""
    x = np.asarray(x, dtype=np.float64)
    mean, var, _ = batch_statistics(x)
    m = x.size // x.shape[1]
    if m < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got input shape {x.shape}")
    num_batches_tracked += 1
    factor = 1.0 / num_batches_tracked if momentum is None else momentum
    new_mean = (1.0 - factor) * np.asarray(running_mean, dtype=np.float64) + factor * mean
    new_var = (1.0 - factor) * np.asarray(running_var, dtype=np.float64) + factor * var * m / (m - 1)
    return new_mean, new_var, num_batches_tracked
