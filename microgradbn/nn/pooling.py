"""2-D max and average pooling layers (as torch.nn.MaxPool2d, AvgPool2d)."""
from ..ops.pool import avg_pool2d, max_pool2d
from .module import Module


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The max of each kernel_size window of x (N, C, H, W); stride defaults to
    kernel_size, padding (at most half the kernel) never wins. Backward routes
    each gradient to the window's first maximum, as PyTorch."""

    def forward(self, input):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """The mean of each kernel_size window of x (N, C, H, W), padding counted as
    zeros (count_include_pad=True); stride defaults to kernel_size."""

    def forward(self, input):
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding)
