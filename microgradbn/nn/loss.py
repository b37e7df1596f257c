"""Losses as modules: CrossEntropyLoss, NLLLoss, MSELoss (see functional.py)."""
from . import functional as F
from .module import Module


class _Loss(Module):
    function = None

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{reduction!r} is not a valid value for reduction (use 'mean', 'sum' or 'none')")
        self.reduction = reduction

    def forward(self, input, target):
        return type(self).function(input, target, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross entropy of logits (N, C) against int64 class indices (N,)."""
    function = staticmethod(F.cross_entropy)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) at int64 class indices (N,)."""
    function = staticmethod(F.nll_loss)


class MSELoss(_Loss):
    """Mean squared error between input and target of one shape."""
    function = staticmethod(F.mse_loss)
