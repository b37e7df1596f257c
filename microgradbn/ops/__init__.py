"""The differentiable ops, one module per family. Each op is a Function
subclass (autograd.py) with forward and backward side by side, plus the
function users call (`mg.add`, `mg.exp`, ...). `install_methods` makes them
Tensor methods and operators (`x.exp()`, `x + y`), as in PyTorch."""
from . import arithmetic, reduce, shape
from .arithmetic import add, div, mul, pow, sub
from .compare import eq, ge, gt, le, lt, ne, where
from .matmul import matmul
from .reduce import amax, amin, argmax, argmin, mean, reduce_sum_array, sum, var
from .shape import (cat, clone, contiguous, expand, flatten, permute, reshape, squeeze, stack,
                    transpose, unsqueeze, view)
from .softmax import log_softmax, softmax
from .unary import abs, clamp, exp, log, neg, relu, sigmoid, sqrt, tanh

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "eq", "ne", "lt", "le", "gt", "ge", "where",
    "sum", "mean", "var", "amax", "amin", "max", "min", "argmax", "argmin", "reduce_sum_array",
    "reshape", "view", "transpose", "permute", "unsqueeze", "squeeze", "flatten", "expand",
    "contiguous", "clone", "cat", "stack", "softmax", "log_softmax",
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "clamp",
]


def max(x, dim=None, keepdim=False):
    """x.max(): the largest element (amax over all); x.max(dim, keepdim):
    (values, indices) along dim, a named tuple as in PyTorch."""
    return amax(x) if dim is None else reduce.max_min_along(x, dim, keepdim, "max")


def min(x, dim=None, keepdim=False):
    """x.min(): the smallest element; x.min(dim, keepdim): (values, indices)."""
    return amin(x) if dim is None else reduce.max_min_along(x, dim, keepdim, "min")


_METHODS = {
    # operators
    "__add__": arithmetic.add_op, "__radd__": lambda a, b: add(b, a), "__sub__": sub,
    "__rsub__": arithmetic.rsub, "__mul__": arithmetic.mul_op, "__rmul__": lambda a, b: mul(b, a),
    "__truediv__": div,
    "__rtruediv__": arithmetic.rdiv, "__pow__": pow, "__rpow__": arithmetic.rpow, "__neg__": neg,
    "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
    "__getitem__": shape.getitem, "__matmul__": matmul, "__rmatmul__": lambda a, b: matmul(b, a),
    # arithmetic and maps
    "add": add, "sub": sub, "mul": mul, "div": div, "neg": neg, "pow": pow, "matmul": matmul,
    "exp": exp, "log": log, "sqrt": sqrt, "tanh": tanh, "sigmoid": sigmoid, "relu": relu,
    "abs": abs, "clamp": clamp, "clip": clamp,
    "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge,
    # reductions
    "sum": sum, "mean": mean, "var": var, "amax": amax, "amin": amin, "max": max, "min": min,
    "argmax": argmax, "argmin": argmin, "softmax": softmax, "log_softmax": log_softmax,
    # shapes
    "reshape": reshape, "view": view, "transpose": transpose, "permute": permute,
    "unsqueeze": unsqueeze, "squeeze": squeeze, "flatten": flatten, "expand": expand,
    "expand_as": shape.expand_as, "contiguous": contiguous, "clone": clone, "t": shape.t,
    "to": shape.to,
}


def install_methods(tensor_class):
    for name, fn in _METHODS.items():
        setattr(tensor_class, name, fn)
    tensor_class.T = property(shape.reverse_dims)
    tensor_class.float = lambda x: shape.to(x, dtype="float32")
    tensor_class.double = lambda x: shape.to(x, dtype="float64")
    tensor_class.long = lambda x: shape.to(x, dtype="int64")
