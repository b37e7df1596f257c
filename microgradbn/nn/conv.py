"""2-D convolution layer (as torch.nn.Conv2d)."""
import numpy as np

from ..ops.conv import conv2d, pair
from ..tensor import _as_dtype, float32
from . import init
from .module import Module, Parameter


class Conv2d(Module):
    """y = conv2d(x, weight, bias, stride, padding) over x (N, in_channels, H, W),
    weight of shape (out_channels, in_channels, kH, kW), zero padding.

    Initialised as PyTorch does: weight ~ kaiming_uniform(a=sqrt(5)), that
    is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), fan_in = in_channels * kH * kW; the draws come from the
    generator mg.manual_seed seeds.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, dtype=None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {value!r}")
        dtype = _as_dtype(dtype) or float32
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"Conv2d: kernel_size {self.kernel_size} and stride {self.stride} must be positive, "
                             f"padding {self.padding} non-negative")
        self.weight = Parameter(np.empty((out_channels, in_channels) + self.kernel_size, dtype))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.layer_defaults_(self.weight, self.bias)

    def forward(self, input):
        return conv2d(input, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text
