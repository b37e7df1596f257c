"""Reverse-mode automatic differentiation: graph nodes and the engine.

Every differentiable op is a subclass of `Function` with `forward` and
`backward` side by side (see microgradbn/ops/). Calling `Op.apply(*inputs)`
runs `forward` on the inputs' arrays and, when any input requires grad,
returns a Tensor whose `grad_fn` is the op instance: a node of the graph.

A node knows, as in PyTorch:
  - `name()`: e.g. "MulBackward";
  - `next_functions`: for each input, (the node that made it, 0), or
    (AccumulateGrad(leaf), 0) for a leaf that requires grad, or (None, 0);
  - `saved_tensors`: the arrays backward needs, freed once backward has run
    unless `retain_graph=True` (a later backward through the node raises);
  - `output_meta`: (shape, dtype) of the tensor it made.

`backward(tensor)` walks the graph in reverse topological order computed
with an explicit stack, so a chain of 100,000 ops needs no recursion.
"""
import contextlib
import threading

import numpy as np

from ._backend import backend, cpu

_new = object.__new__


class _GradState(threading.local):
    enabled = True


_state = _GradState()


def is_grad_enabled():
    return _state.enabled


class _GradMode(contextlib.ContextDecorator):
    """Context manager and decorator that sets grad mode inside and restores it after."""

    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        self.previous = _state.enabled
        _state.enabled = self.mode

    def __exit__(self, *exc):
        _state.enabled = self.previous
        return False


def no_grad(fn=None):
    """`with mg.no_grad():` or `@mg.no_grad()` (or `@mg.no_grad`): build no graph inside."""
    return _GradMode(False)(fn) if callable(fn) else _GradMode(False)


def enable_grad(fn=None):
    """`with mg.enable_grad():` turns graph building back on inside no_grad."""
    return _GradMode(True)(fn) if callable(fn) else _GradMode(True)


class set_grad_enabled(_GradMode):
    """`mg.set_grad_enabled(False)` switches grad mode now; used in a `with`
    statement it restores the previous mode on exit, as in PyTorch."""

    def __init__(self, mode):
        super().__init__(bool(mode))
        self.previous = _state.enabled
        _state.enabled = self.mode

    def __enter__(self):
        pass


class Node:
    """Common part of every graph node: its name, its edges, its saved arrays.

    The class-level defaults mean a node only stores what differs (most nodes
    have no hooks and retain nothing), and the engine reads them without
    getattr fallbacks: per-node cost matters for small models."""

    next_functions = ()
    saved_tensors = ()
    tensor_hooks = ()        # hooks on the gradient flowing into this node (Tensor.register_hook)
    retained = ()            # weak references to tensors that retain_grad() (non-leaves)
    _freed = False

    def name(self):
        return type(self).__name__ + "Backward"

    def __repr__(self):
        return f"<{self.name()} object at {id(self):#x}>"

    def add_tensor_hook(self, hook):
        if not self.tensor_hooks:
            self.tensor_hooks = []
        self.tensor_hooks.append(hook)
        return self.tensor_hooks

    def add_retained(self, ref):
        if not self.retained:
            self.retained = []
        self.retained.append(ref)


class AccumulateGrad(Node):
    """The node a leaf tensor that requires grad gets: it adds into `.grad`."""

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "AccumulateGrad"


_NO_EDGE = (None, 0)        # the edge of an input that needs no gradient


class Function(Node):
    """Base class of every op. Subclasses define

        forward(self, *arrays, **options) -> array       (NumPy in, NumPy out)
        backward(self, grad) -> array or tuple of arrays (one per input; None
                                                          where no grad is needed)

    An input may be None (an absent optional tensor, e.g. BN without
    affine): forward gets None for it and it has no edge in the graph.
    `self.needs_input_grad[i]` tells backward which input grads are wanted;
    `self.save_for_backward(...)` keeps the arrays backward reads (and only
    those count as saved: they are freed after backward).
    """

    needs_input_grad = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    @classmethod
    def apply(cls, *inputs, **options):
        node = cls()
        arrays = []
        for t in inputs:
            arrays.append(None if t is None else t.data)
        result = _new(_tensor.Tensor)      # Tensor._wrap, inlined: this runs once per op
        result.data = node.forward(*arrays, **options)
        if _anomaly is not None:
            _anomaly.forward(node, inputs, result.data)
        if _state.enabled:
            for t in inputs:
                if t is not None and t.requires_grad:
                    node.connect(inputs, result)
                    break
        return result

    def connect(self, inputs, result):
        """Make self the grad_fn of result, with an edge to each input."""
        needs, edges = [], []
        for t in inputs:
            if t is not None and t.requires_grad:
                needs.append(True)
                # a leaf's edge goes to its AccumulateGrad, made on first use
                edges.append((t.grad_fn or t._accumulator or t._grad_node(), 0))
            else:
                needs.append(False)
                edges.append(_NO_EDGE)
        self.needs_input_grad, self.next_functions = tuple(needs), tuple(edges)
        data = result.data
        self.output_meta = (data.shape, data.dtype)
        result.requires_grad = True
        result.grad_fn = self

    def connect_pair(self, a, b, result):
        """connect((a, b), result), written out for the two tensors of a
        binary op (it runs once per op of a training step)."""
        a_needs, b_needs = a.requires_grad, b.requires_grad
        self.needs_input_grad = (a_needs, b_needs)
        self.next_functions = ((a.grad_fn or a._accumulator or a._grad_node(), 0) if a_needs else _NO_EDGE,
                               (b.grad_fn or b._accumulator or b._grad_node(), 0) if b_needs else _NO_EDGE)
        data = result.data
        self.output_meta = (data.shape, data.dtype)
        result.requires_grad = True
        result.grad_fn = self

    def _release(self):
        self.saved_tensors = ()
        self._freed = True

    def _run_backward(self, grad):
        if self._freed:
            raise RuntimeError(
                f"Trying to backward through the graph a second time (at {self.name()}): its saved "
                "tensors were freed after the first backward. Specify retain_graph=True on the "
                "first backward() if you need to backward through the graph again."
            )
        grads = self.backward(grad)
        return grads if isinstance(grads, tuple) else (grads,)


def topological_order(root):
    """Nodes reachable from root, each before every node it points to.
    (Nodes hash by identity, so they are their own keys.)"""
    order, visited = [], {root}
    stack = [(root, iter(root.next_functions))]
    while stack:
        node, edges = stack[-1]
        for next_node, _ in edges:
            if next_node is not None and next_node not in visited:
                visited.add(next_node)
                stack.append((next_node, iter(next_node.next_functions)))
                break
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def accumulate(total, grad):
    """total + grad, on the backend's add when both are float arrays of one shape."""
    if total.shape == grad.shape and total.dtype == grad.dtype and total.dtype in cpu.DTYPE_CODES:
        return backend(total).add(total, grad)
    return total + grad


# While mg.graph.trace() records, the object it set here: the engine calls
# begin(order) once per backward, then run(node, grad) in place of node._run_backward.
_trace = None
# While mg.autograd.detect_anomaly() is on, the checker it set here (anomaly.py).
_anomaly = None


def run_backward(tensor, gradient, retain_graph=False):
    """Backpropagate `gradient` (an array shaped like tensor) from tensor."""
    root = tensor._grad_node()  # a leaf's AccumulateGrad: its hooks run too
    grads = {root: gradient}    # node -> the gradient summed so far for its output
    order = topological_order(root)
    if _trace is not None:
        _trace.begin(order)
    for node in order:
        grad = grads.pop(node, None)
        if grad is None:
            continue
        for hook in node.tensor_hooks:
            replaced = hook(grad)
            grad = grad if replaced is None else replaced
        if isinstance(node, AccumulateGrad):
            node.variable._accumulate_grad(grad)
            continue
        for ref in node.retained:
            kept = ref()
            if kept is not None:
                kept._set_retained_grad(grad)
        input_grads = node._run_backward(grad) if _trace is None else _trace.run(node, grad)
        if _anomaly is not None:
            _anomaly.backward(node, input_grads)
        if not retain_graph and node.saved_tensors:
            node._release()
        for (next_node, _), input_grad in zip(node.next_functions, input_grads):
            if next_node is None or input_grad is None:
                continue
            if next_node in grads:
                grads[next_node] = accumulate(grads[next_node], input_grad)
            else:
                grads[next_node] = input_grad


def unbroadcast(grad, shape):
    """Sum grad over the axes that broadcasting added or stretched, to get shape."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    if grad.dtype not in cpu.DTYPE_CODES:
        return np.sum(grad, axis=axes).reshape(shape)
    return backend(grad).reduce(cpu.REDUCE_SUM, grad, axes).reshape(shape)


from . import tensor as _tensor  # noqa: E402  (tensor.py imports this module first)

from .gradcheck import gradcheck  # noqa: E402,F401
from .anomaly import detect_anomaly, is_anomaly_enabled, set_detect_anomaly  # noqa: E402,F401
