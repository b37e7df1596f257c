"""NaN hunting: anomaly detection mode, as torch.autograd.detect_anomaly.

    with mg.autograd.detect_anomaly():
        loss = model(x)
        loss.backward()

While the mode is on, every op records where it was called (the innermost
frame outside the microgradbn package: the user's file and line, and a
short traceback), and

  - backward: the first node whose backward returns a NaN or an infinity
    raises RuntimeError("Function 'LogBackward' returned nan values in its
    0th output. ... created at model.py:12 ...");
  - forward (check_forward=True, the default): the first op whose forward
    makes a NaN or an infinity out of finite inputs raises the same way
    ("Function 'Log' (forward of LogBackward) produced inf values ...").
    An op fed a NaN is not blamed for passing it on: the op that made it
    was. PyTorch checks only the backward pass; check_forward=False gives
    its behaviour. We check the forward pass too because the first
    non-finite value in a training run is most often made there (exp of a
    large logit, log of zero), and the backward check would only name a
    later victim.

check_nan=False records the creation sites but checks nothing.

Cost: with the mode off the engine reads one module global per op and per
backward node (`autograd._anomaly is None`); nothing is recorded. With it
on, each op walks the Python stack once and each result is scanned for
non-finite values, so use it to find a bug, not to train.

The mode is process-wide (all threads), like PyTorch's.
"""
import contextlib
import linecache
import os
import sys

import numpy as np

from . import autograd

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TRACEBACK_FRAMES = 5


def _is_package_file(filename):
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


def _record_site(node):
    """Store on node the calling frames outside this package, innermost first:
    a list of (filename, lineno, function name)."""
    frame = sys._getframe(1)
    while frame is not None and _is_package_file(frame.f_code.co_filename):
        frame = frame.f_back
    frames = []
    while frame is not None and len(frames) < _TRACEBACK_FRAMES:
        frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    node.anomaly_site = frames


def creation_site(node):
    """'file:line' where node's op was called in anomaly mode, or None."""
    frames = getattr(node, "anomaly_site", None)
    if not frames:
        return None
    filename, lineno, _ = frames[0]
    return f"{filename}:{lineno}"


def _describe_site(node):
    frames = getattr(node, "anomaly_site", None)
    if not frames:
        return "Its creation site was not recorded (the op was made outside anomaly mode)."
    lines = [f"It was created at {creation_site(node)}. Traceback of the forward call "
             "(most recent call last):"]
    for filename, lineno, function in reversed(frames):
        lines.append(f'  File "{filename}", line {lineno}, in {function}')
        source = linecache.getline(filename, lineno).strip()
        if source:
            lines.append(f"    {source}")
    return "\n".join(lines)


def _non_finite(array):
    """'nan' or 'inf' if a float array holds one (NaN first), else None."""
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or np.isfinite(array).all():
        return None
    return "nan" if np.isnan(array).any() else "inf"


class _Checker:
    """What the engine calls while the mode is on (autograd._anomaly)."""

    def __init__(self, check_nan, check_forward):
        self.check_nan, self.check_forward = check_nan, check_forward

    def forward(self, node, inputs, out):
        """After node.forward(*inputs) made out (Function.apply)."""
        _record_site(node)
        if not (self.check_nan and self.check_forward):
            return
        kind = _non_finite(out)
        if kind is None:
            return
        for t in inputs:
            if t is not None and _non_finite(t.data) is not None:
                return  # it only passed on a value that was already there
        raise RuntimeError(f"Function '{type(node).__name__}' (forward of {node.name()}) produced "
                           f"{kind} values in its output from finite inputs. {_describe_site(node)}")

    def backward(self, node, input_grads):
        """After node's backward returned input_grads (run_backward)."""
        if not self.check_nan:
            return
        for i, grad in enumerate(input_grads):
            kind = _non_finite(grad)
            if kind is not None:
                raise RuntimeError(f"Function '{node.name()}' returned {kind} values in its {i}th "
                                   f"output. {_describe_site(node)}")


def is_anomaly_enabled():
    return autograd._anomaly is not None


def is_anomaly_check_nan_enabled():
    return autograd._anomaly is not None and autograd._anomaly.check_nan


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager (and decorator) turning anomaly detection on inside."""

    def __init__(self, check_nan=True, check_forward=True):
        self.checker = _Checker(bool(check_nan), bool(check_forward))

    def __enter__(self):
        self.previous = autograd._anomaly
        autograd._anomaly = self.checker
        return self

    def __exit__(self, *exc):
        autograd._anomaly = self.previous
        return False


class set_detect_anomaly(detect_anomaly):
    """`mg.autograd.set_detect_anomaly(True)` switches the mode now; used in a
    `with` statement it restores the previous mode on exit."""

    def __init__(self, mode, check_nan=True, check_forward=True):
        super().__init__(check_nan, check_forward)
        self.previous = autograd._anomaly
        autograd._anomaly = self.checker if mode else None

    def __enter__(self):
        return self
