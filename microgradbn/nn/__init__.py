"""Neural network layers, losses and the Module base class (as torch.nn)."""
from . import functional, init
from .activation import Dropout, ReLU, Sigmoid, Tanh
from .container import Sequential
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter

try:  # BatchNorm1d/2d arrive with branch bn; this guard goes once it is merged
    from .batchnorm import BatchNorm1d, BatchNorm2d
except ModuleNotFoundError as error:
    if error.name != __name__ + ".batchnorm":
        raise

__all__ = [
    "Module", "Parameter", "Linear", "Flatten", "Sequential", "ReLU", "Tanh", "Sigmoid", "Dropout",
    "CrossEntropyLoss", "MSELoss", "NLLLoss", "functional", "init",
]
