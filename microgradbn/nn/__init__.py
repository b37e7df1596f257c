"""Neural network layers, losses and the Module base class (as torch.nn)."""
from . import functional, init
from .activation import Dropout, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import Sequential
from .conv import Conv2d
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter
from .pooling import AvgPool2d, MaxPool2d

__all__ = [
    "Module", "Parameter", "Linear", "Flatten", "Sequential", "ReLU", "Tanh", "Sigmoid", "Dropout",
    "BatchNorm1d", "BatchNorm2d", "Conv2d", "MaxPool2d", "AvgPool2d",
    "CrossEntropyLoss", "MSELoss", "NLLLoss", "functional", "init",
]
