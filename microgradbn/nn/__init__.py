"""Neural network layers, losses and the Module base class (as torch.nn)."""
from . import functional, init
from .batchnorm import BatchNorm1d, BatchNorm2d
from .activation import Dropout, ReLU, Sigmoid, Tanh
from .container import Sequential
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter

__all__ = [
    "Module", "Parameter", "Linear", "BatchNorm1d", "BatchNorm2d", "Flatten", "Sequential", "ReLU", "Tanh", "Sigmoid", "Dropout",
    "CrossEntropyLoss", "MSELoss", "NLLLoss", "functional", "init",
]
from .conv import Conv2d  # noqa: E402
from .pooling import AvgPool2d, MaxPool2d  # noqa: E402
__all__ += ["Conv2d", "MaxPool2d", "AvgPool2d"]
