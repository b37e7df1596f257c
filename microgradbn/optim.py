"""Optimizers: SGD (momentum, Nesterov), Adam and AdamW, step for step as torch.optim.

Each update works in place on the parameter storage (p.data) and builds no
graph. The arithmetic is NumPy ufuncs in PyTorch's order of operations, so
the results match torch.optim to rounding, written in place (`+=`, out=)
into the state or into one scratch buffer per optimizer that every update
reuses: the usual paths allocate nothing per step (a fresh array of a large
parameter's size costs page faults on top of the arithmetic). Why NumPy and
not the C kernels: each line is one memory-bound pass, which a NumPy ufunc
already runs at memory speed; what would pay is one fused kernel per update
(one pass over p, grad and the state instead of four to eight).

A parameter on an OpenCL device is updated there by the device's fused step
(opencl.sgd_step / adam_step: the same order of operations, one kernel), its
state on the same device.
"""
import math

import numpy as np

from ._backend import ClArray, opencl
from .tensor import Tensor


class Optimizer:
    """Holds param_groups (lists of parameters with their hyper-parameters) and
    per-parameter state (keyed by id(param)); subclasses define _update(group, param, grad, state)."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = {}
        self._scratch = {}  # dtype -> flat work array, grown to the largest need
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for param in group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group):
        if group["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        if group.get("weight_decay", 0.0) < 0.0:
            raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.zero_()

    def step(self):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                p, grad, state = param.data, param.grad.data, self.state.setdefault(id(param), {})
                if type(p) is ClArray:
                    if type(grad) is not ClArray or grad.device != p.device:
                        raise RuntimeError(f"the gradient of a parameter on {param.device} is on "
                                           f"{param.grad.device}")
                    self._device_update(group, p, grad, state)
                else:
                    self._update(group, p, grad, state)

    def _work(self, p, count):
        """count scratch arrays of p's shape and dtype: views of one reused buffer."""
        n = p.size
        flat = self._scratch.get(p.dtype)
        if flat is None or flat.size < count * n:
            flat = self._scratch[p.dtype] = np.empty(count * n, p.dtype)
        return [flat[i * n:(i + 1) * n].reshape(p.shape) for i in range(count)]

    # ---- saving and restoring ----------------------------------------------

    def state_dict(self):
        """{'state': {index: {name: array or number}}, 'param_groups': [{..., 'params': [index]}]},
        parameters numbered in order over all groups, as torch.optim."""
        index = {}
        groups = []
        for group in self.param_groups:
            for param in group["params"]:
                index.setdefault(id(param), len(index))
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = [index[id(p)] for p in group["params"]]
            groups.append(saved)
        state = {index[key]: {k: (v.copy() if isinstance(v, (np.ndarray, ClArray)) else v) for k, v in s.items()}
                 for key, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        params = []
        for mine, saved in zip(self.param_groups, groups):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match "
                                 "the size of optimizer's group")
            params.extend(zip(saved["params"], mine["params"]))
        self.state = {}
        for saved_index, param in params:
            saved_state = state_dict["state"].get(saved_index)
            if saved_state is not None:
                self.state[id(param)] = {k: _state_value(v, param) for k, v in saved_state.items()}
        for mine, saved in zip(self.param_groups, groups):
            mine.update({k: v for k, v in saved.items() if k != "params"})

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        return "\n".join(lines) + "\n)"


def _state_value(value, param):
    """A loaded state entry: arrays as fresh arrays of the parameter's dtype on
    its device, 0-d ones (a step count from mg.load) as Python numbers."""
    if isinstance(value, Tensor):
        value = value.data
    if type(value) is ClArray:
        value = value.numpy()
    if not isinstance(value, np.ndarray):
        return value
    if value.ndim == 0:
        return value.item()
    array = np.array(value, dtype=param.dtype)
    return opencl.ClArray.from_numpy(array, param.data.device) if type(param.data) is ClArray else array


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD:
        g = grad + weight_decay * p
        buf = g (first step), else buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov), else g = buf          (when momentum != 0)
        p = p - lr * g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, group, p, grad, state):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        (work,) = self._work(p, 1)
        if wd != 0:
            grad = np.add(grad, np.multiply(p, wd, out=work), out=work)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, copy=True)
            else:
                buf *= momentum
                dampening = group["dampening"]
                buf += grad if dampening == 0 else (1 - dampening) * grad
            grad = np.add(grad, momentum * buf, out=work) if group["nesterov"] else buf
        p -= np.multiply(grad, lr, out=work)

    def _device_update(self, group, p, grad, state):
        momentum = group["momentum"]
        buf = state.get("momentum_buffer")
        first = buf is None
        if momentum != 0 and first:     # the kernel sets it to the gradient on the first step
            buf = state["momentum_buffer"] = opencl.empty(p.shape, p.dtype, p.device)
        opencl.sgd_step(p, grad, buf if momentum != 0 else None, group["lr"], momentum, group["dampening"],
                        group["weight_decay"], group["nesterov"], first)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam:
        g = grad + weight_decay * p                                  (L2 penalty)
        m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, group, p, grad, state):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        work, tmp = self._work(p, 2)
        if wd != 0:
            if self.decoupled:
                p *= 1 - lr * wd
            else:
                grad = np.add(grad, np.multiply(p, wd, out=work), out=work)
        delta = np.subtract(grad, m, out=tmp)
        delta *= 1 - beta1
        m += delta
        square = np.multiply(grad, grad, out=tmp)
        square *= 1 - beta2
        v *= beta2
        v += square
        step_size = lr / (1 - beta1 ** step)
        denom = np.sqrt(v, out=tmp)
        denom /= math.sqrt(1 - beta2 ** step)
        denom += eps
        update = np.divide(m, denom, out=tmp)
        update *= step_size
        p -= update

    def _device_update(self, group, p, grad, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = opencl.zeros(p.shape, p.dtype, p.device)
            state["exp_avg_sq"] = opencl.zeros(p.shape, p.dtype, p.device)
        state["step"] += 1
        (beta1, beta2) = group["betas"]
        opencl.adam_step(p, grad, state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1, beta2, group["eps"],
                         group["weight_decay"], state["step"], self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW:
    p = p (1 - lr * weight_decay) before the Adam step, whose g is the plain gradient."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
