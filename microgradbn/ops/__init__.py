"""The differentiable ops, one module per family. Each op is a Function
subclass (autograd.py) with forward and backward side by side, plus the
function users call (`mg.add`, `Tensor.__add__`, ...)."""
from .arithmetic import add, div, mul, neg, sub
from .reduce import reduce_sum_array, sum

__all__ = ["add", "sub", "mul", "div", "neg", "sum", "reduce_sum_array"]
