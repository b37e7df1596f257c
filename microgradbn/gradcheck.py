"""gradcheck: compare the gradients backward computes with central finite
differences, in float64 (as torch.autograd.gradcheck).

    mg.autograd.gradcheck(lambda x, w: (x @ w).tanh(), (x, w))

For every output element the graph is backpropagated with a one-hot
gradient (the analytical Jacobian row by row); every input element is
nudged by +-eps (the numerical Jacobian column by column). They must agree
within atol + rtol * |numerical|. Meant for small inputs: the cost is one
backward per output element and two forwards per input element.
"""
import numpy as np

from . import autograd
from .tensor import Tensor, float64


class GradcheckError(RuntimeError):
    """Analytical and numerical gradients disagree."""


def _outputs(result):
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    return [o for o in outputs if isinstance(o, Tensor)]


def _numerical(fn, inputs, index, eps, n_out):
    """d outputs / d inputs[index], one column per element of that input."""
    data = inputs[index].data
    flat = data.reshape(-1)          # a view: data is contiguous (checked)
    columns = []
    with autograd.no_grad():
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = np.concatenate([o.data.reshape(-1) for o in _outputs(fn(*inputs))]) if n_out else []
            flat[j] = original - eps
            minus = np.concatenate([o.data.reshape(-1) for o in _outputs(fn(*inputs))]) if n_out else []
            flat[j] = original
            columns.append((np.asarray(plus, np.float64) - np.asarray(minus, np.float64)) / (2 * eps))
    return np.stack(columns, axis=1) if columns else np.zeros((n_out, 0))


def _analytical(outputs, inputs, index):
    """d outputs / d inputs[index], one row per output element."""
    target = inputs[index]
    rows = []
    for out in outputs:
        for k in range(out.data.size):
            if not out.requires_grad:
                rows.append(np.zeros(target.data.size))
                continue
            saved = [t.grad for t in inputs]
            for t in inputs:
                t.grad = None
            onehot = np.zeros(out.data.size, out.data.dtype)
            onehot[k] = 1
            out.backward(onehot.reshape(out.data.shape), retain_graph=True)
            grad = target.grad
            rows.append(np.zeros(target.data.size) if grad is None else grad.data.reshape(-1).copy())
            for t, g in zip(inputs, saved):
                t.grad = g
    return np.array(rows).reshape(-1, target.data.size)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """True if backward matches finite differences for every input that
    requires grad; otherwise raises GradcheckError (or returns False)."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input tensor has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 inputs "
                            "(float32 finite differences are too coarse to judge)")
        if not inputs[i].data.flags.c_contiguous:
            inputs[i].data = np.ascontiguousarray(inputs[i].data)
    leaves = [inputs[i] for i in checked]
    outputs = _outputs(fn(*inputs))
    n_out = sum(o.data.size for o in outputs)
    for position, i in enumerate(checked):
        analytical = _analytical(outputs, leaves, position)
        numerical = _numerical(fn, inputs, i, eps, n_out)
        bad = np.abs(analytical - numerical) > atol + rtol * np.abs(numerical)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            message = (f"gradcheck: Jacobian mismatch for input {i} (shape {tuple(inputs[i].shape)}) at "
                       f"output element {r}, input element {c}: analytical {analytical[r, c]!r}, "
                       f"numerical {numerical[r, c]!r}; {int(bad.sum())} of {bad.size} entries differ\n"
                       f"analytical:\n{analytical}\nnumerical:\n{numerical}")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True
