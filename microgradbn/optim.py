"""Optimizers: SGD (momentum, Nesterov), Adam and AdamW, step for step as torch.optim.

Each update works in place on the parameter storage (p.data) and builds no
graph. It is one fused kernel per parameter, of the backend holding it
(cpu.sgd_step / adam_step: src/cpu/optim.c; opencl.sgd_step / adam_step:
src/opencl/kernels.cl): one pass over p, grad and the state, in PyTorch's
order of operations with each hyper-parameter rounded to the dtype, so the
results are torch.optim's to the bit on the CPU. The state lives on the
parameter's device.
"""
import numpy as np

from ._backend import ClArray, backend_of, full, opencl
from .tensor import Tensor


class Optimizer:
    """Holds param_groups (lists of parameters with their hyper-parameters) and
    per-parameter state (keyed by id(param)); subclasses define _update(group, backend, p, grad, state)."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = {}
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
                xp = backend_of(p, grad)    # the RuntimeError naming both devices when they differ
                if xp is opencl:
                    self._update(group, xp, p, grad, state)
                elif p.flags.c_contiguous:  # the kernels walk p, grad and the state in memory order
                    self._update(group, xp, p, np.ascontiguousarray(grad), state)
                else:
                    work = np.ascontiguousarray(p)
                    self._update(group, xp, work, np.ascontiguousarray(grad), state)
                    p[...] = work

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

    def _update(self, group, xp, p, grad, state):
        momentum = group["momentum"]
        buf = state.get("momentum_buffer")
        first = buf is None
        if momentum != 0 and first:     # the kernel sets it to the gradient on the first step
            buf = state["momentum_buffer"] = full(p.shape, 0, p.dtype, p)
        xp.sgd_step(p, grad, buf if momentum != 0 else None,
                    group["lr"], momentum, group["dampening"], group["weight_decay"], group["nesterov"], first)


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

    def _update(self, group, xp, p, grad, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = full(p.shape, 0, p.dtype, p)
            state["exp_avg_sq"] = full(p.shape, 0, p.dtype, p)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        xp.adam_step(p, grad, state["exp_avg"],
                     state["exp_avg_sq"], group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                     state["step"], self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch.optim.AdamW:
    p = p (1 - lr * weight_decay) before the Adam step, whose g is the plain gradient."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
