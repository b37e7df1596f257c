"""2-D convolution (cross-correlation, as torch.nn.functional.conv2d).

    out[n,o,i,j] = bias[o] + sum_{c,p,q} weight[o,c,p,q] * x[n, c, i*sh - ph + p, j*sw - pw + q]

x (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None,
zero padding, groups = 1, dilation = 1. The C library runs it as im2col +
GEMM (src/api_conv.c); backward gives

    dx      = col2im(weight^T . dout)       (each input gets the weights that read it, times dout)
    dweight = sum over n of dout[n] . im2col(x[n])^T
    dbias   = dout summed over N, OH, OW
"""
import numbers

from .._backend import backend, backend_of, require
from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor, float32, float64

_FLOATS = (float32, float64)


def pair(value, name, op_name):
    """An int or a pair of ints as a (height, width) tuple."""
    if isinstance(value, numbers.Integral):
        value = (value, value)
    values = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{op_name}: {name} must be an int or a pair of ints, got {value!r}")
    return int(values[0]), int(values[1])


def check_input(op_name, input, what="(N, C, H, W)"):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op_name}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim != 4:
        raise ShapeError(f"{op_name}: expected a 4-D input {what}, got shape {tuple(input.shape)}")
    if input.dtype not in _FLOATS:
        raise DTypeError(f"{op_name}: input must be float32 or float64, got {input.dtype}")


def check_window_fits(op_name, size, kernel, padding):
    """The kernel must fit in the padded input, as PyTorch requires."""
    padded = tuple(n + 2 * p for n, p in zip(size, padding))
    if any(k > n for k, n in zip(kernel, padded)):
        raise ShapeError(f"{op_name}: kernel size {kernel[0]}x{kernel[1]} is larger than the padded input "
                         f"{padded[0]}x{padded[1]} (input {size[0]}x{size[1]}, padding {padding[0]}x{padding[1]})")


class Conv2d(Function):
    def forward(self, x, weight, bias, stride, padding):
        self.save_for_backward(x, weight)
        self.stride, self.padding = stride, padding
        return require(backend_of(x, weight, bias), "conv2d_forward", "conv2d")(x, weight, bias, stride, padding)

    def backward(self, grad):
        x, weight = self.saved_tensors
        want_x, want_weight, want_bias = self.needs_input_grad
        return require(backend(x), "conv2d_backward", "conv2d")(x, weight, grad, self.stride, self.padding,
                                                                want_x, want_weight, want_bias)


def conv2d(input, weight, bias=None, stride=1, padding=0):
    """2-D convolution of input (N, C_in, H, W) with weight (C_out, C_in, kH, kW),
    plus bias (C_out,); stride and zero padding are an int or an (h, w) pair."""
    check_input("conv2d", input, "(N, C_in, H, W)")
    stride, padding = pair(stride, "stride", "conv2d"), pair(padding, "padding", "conv2d")
    if min(stride) < 1:
        raise ValueError(f"conv2d: stride must be positive, got {stride}")
    if min(padding) < 0:
        raise ValueError(f"conv2d: padding must be non-negative, got {padding}")
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ShapeError("conv2d: weight must be a 4-D tensor (C_out, C_in, kH, kW), got "
                         + (f"shape {tuple(weight.shape)}" if isinstance(weight, Tensor) else type(weight).__name__))
    if input.shape[1] != weight.shape[1]:
        raise ShapeError(f"conv2d: input has {input.shape[1]} channels (shape {tuple(input.shape)}) but weight "
                         f"of shape {tuple(weight.shape)} expects {weight.shape[1]} input channels")
    if bias is not None and (not isinstance(bias, Tensor) or bias.shape != (weight.shape[0],)):
        raise ShapeError(f"conv2d: bias must have shape ({weight.shape[0]},), got "
                         + (f"{tuple(bias.shape)}" if isinstance(bias, Tensor) else type(bias).__name__))
    if weight.dtype != input.dtype or (bias is not None and bias.dtype != input.dtype):
        raise DTypeError("conv2d: input, weight and bias must share one dtype, got "
                         + ", ".join(str(t.dtype) for t in (input, weight, bias) if t is not None))
    check_window_fits("conv2d", input.shape[2:], weight.shape[2:], padding)
    return Conv2d.apply(input, weight, bias, stride=stride, padding=padding)
