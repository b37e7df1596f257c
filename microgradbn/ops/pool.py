"""2-D max and average pooling (as torch.nn.functional.max_pool2d, avg_pool2d).

Over x (N, C, H, W), each output (i, j) looks at the window of rows
[i*sh - ph, i*sh - ph + kH) and columns [j*sw - pw, j*sw - pw + kW):

    max_pool2d   out = the window's max (padding never wins; a NaN does)
                 dx  = dout routed to the window's first maximum (PyTorch's tie rule)
    avg_pool2d   out = window sum / (kH*kW)   (count_include_pad=True: padding counts as 0)
                 dx  = dout / (kH*kW) spread over the window

The stride defaults to the kernel size; padding is at most half the kernel.
Max pooling's backward finds the maxima again from x instead of storing
their indices.
"""
from .._backend import backend, require
from ..autograd import Function
from ..errors import ShapeError
from .conv import check_input, check_window_fits, pair


class MaxPool2d(Function):
    def forward(self, x, kernel, stride, padding):
        self.save_for_backward(x)
        self.window = kernel, stride, padding
        return require(backend(x), "max_pool2d_forward", "max_pool2d")(x, kernel, stride, padding)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return require(backend(x), "max_pool2d_backward", "max_pool2d")(x, grad, *self.window)


class AvgPool2d(Function):
    def forward(self, x, kernel, stride, padding):
        self.in_shape = x.shape
        self.window = kernel, stride, padding
        return require(backend(x), "avg_pool2d_forward", "avg_pool2d")(x, kernel, stride, padding)

    def backward(self, grad):
        return require(backend(grad), "avg_pool2d_backward", "avg_pool2d")(self.in_shape, grad, *self.window)


def _window(op_name, input, kernel_size, stride, padding):
    check_input(op_name, input)
    kernel = pair(kernel_size, "kernel_size", op_name)
    stride = kernel if stride is None or stride == () or stride == [] else pair(stride, "stride", op_name)
    padding = pair(padding, "padding", op_name)
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"{op_name}: kernel_size and stride must be positive, got {kernel} and {stride}")
    if min(padding) < 0 or any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{op_name}: pad should be at most half of effective kernel size, but got "
                         f"pad={padding} and kernel_size={kernel}")
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ShapeError(f"{op_name}: empty image in input of shape {tuple(input.shape)}")
    check_window_fits(op_name, input.shape[2:], kernel, padding)
    return {"kernel": kernel, "stride": stride, "padding": padding}


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """Max over kernel_size windows of input (N, C, H, W); stride defaults to kernel_size."""
    return MaxPool2d.apply(input, **_window("max_pool2d", input, kernel_size, stride, padding))


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    """Mean over kernel_size windows of input (N, C, H, W), padding counted as zeros."""
    return AvgPool2d.apply(input, **_window("avg_pool2d", input, kernel_size, stride, padding))
