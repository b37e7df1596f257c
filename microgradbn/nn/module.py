"""Module and Parameter: the building blocks of networks, as in PyTorch.

A Module owns parameters (tensors the optimizer trains), buffers (state that
is saved but not trained, e.g. BatchNorm's running statistics) and child
modules, each registered under a name when it is assigned as an attribute:

    self.fc = Linear(4, 3)        # child "fc"; its parameters are "fc.weight", "fc.bias"

Registered values are kept both in the ordered registries (_parameters,
_buffers, _modules: names and order for parameters(), state_dict(), repr) and
in the instance __dict__, so `self.fc` in forward is a plain attribute read.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import _backend, autograd
from .._backend import ClArray
from ..tensor import Tensor, float32, float64

_FLOATS = (float32, float64)


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable: requires_grad defaults to True.
    Built from a Tensor or an array, it shares that storage (no copy)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        array = data.data if isinstance(data, Tensor) else data
        if array is None:
            array = np.empty((0,), float32)
        if type(array) is ClArray:      # a device tensor's storage, shared
            self.data = array
            self.requires_grad_(requires_grad)
            return
        Tensor.__init__(self, array, requires_grad=requires_grad)
        if isinstance(array, np.ndarray) and self.data.dtype == array.dtype:
            self.data = array  # share the storage, as torch.nn.Parameter does

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model. Subclasses set their parts in
    __init__ (after calling super().__init__()) and define forward()."""

    training = True

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"forward\" function")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- registration ------------------------------------------------------

    def _check_initialised(self):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parts before Module.__init__() call")

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent.discard(name)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._check_initialised()
            self._forget(name)
            self._modules[name] = value
            object.__setattr__(self, name, value)
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(torch.nn.Parameter or None expected)")
            self.register_parameter(name, None)
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(Tensor or None expected)")
            self._buffers[name] = value
            object.__setattr__(self, name, value)
        else:
            if name in self.__dict__.get("_modules", ()):
                self._modules.pop(name)
            object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if "_parameters" in self.__dict__:
            self._forget(name)
        object.__delattr__(self, name)

    def _check_name(self, name, kind):
        self._check_initialised()
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{kind} name can't be empty or contain \".\", got {name!r}")
        if name in self.__dict__ and name not in self._parameters and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name, param):
        """Register param (a Parameter, or None for an absent one) under name."""
        self._check_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(mg.nn.Parameter or None required)")
        self._forget(name)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Register a tensor that is state but not trained (saved by state_dict
        unless persistent=False)."""
        self._check_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(Tensor or None required)")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        self._check_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name)
        self._modules[name] = module
        object.__setattr__(self, name, module)

    # ---- walking the tree --------------------------------------------------

    def named_modules(self, memo=None, prefix=""):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, prefix + ("." if prefix else "") + name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry, recurse, prefix=""):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True):
        return self._named_members("_parameters", recurse, prefix)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", recurse, prefix)

    def buffers(self, recurse=True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    # ---- modes and gradients -----------------------------------------------

    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.zero_()

    # ---- state -------------------------------------------------------------

    def _local_state(self):
        for name, param in self._parameters.items():
            if param is not None:
                yield name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent:
                yield name, buffer

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Ordered name -> tensor of every parameter and persistent buffer.
        The tensors share storage with the module (detached unless keep_vars)."""
        destination = OrderedDict() if destination is None else destination
        for module_prefix, module in self.named_modules(prefix=prefix.rstrip(".")):
            for name, value in module._local_state():
                key = module_prefix + ("." if module_prefix else "") + name
                destination[key] = value if keep_vars else value.detach()
        return destination

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from state_dict (tensors or arrays) into this module's
        parameters and buffers, in place. strict: every key must match both ways.
        A shape mismatch is always an error. Returns (missing_keys, unexpected_keys)."""
        own = self.state_dict(keep_vars=True)
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        errors = []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        sources = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, Tensor) else np.asarray(value)
            if array.shape != tuple(target.data.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {array.shape} from "
                              f"checkpoint, the shape in current model is {target.data.shape}.")
            sources[key] = array
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with autograd.no_grad():
            for key, array in sources.items():
                target = own[key]
                if type(target.data) is ClArray:      # copied to the device, in its dtype
                    target.copy_(_backend.to_host(array).astype(target.dtype, copy=False))
                else:
                    np.copyto(target.data, _backend.to_host(array), casting="unsafe")
        return _IncompatibleKeys(missing, unexpected)

    # ---- device and dtype --------------------------------------------------

    def to(self, device=None, dtype=None):
        """module.to("opencl"), module.to("cpu"), module.to(mg.float64),
        module.to("opencl:0", mg.float32). In place, as PyTorch: every floating
        parameter and buffer (and grad) gets its new storage, the objects stay
        the same, so an optimizer made before still holds them. Integer
        buffers (BN's num_batches_tracked) stay on the CPU: the device holds
        float32/float64 only. A cast runs on the CPU side of a move."""
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype not in _FLOATS:
                raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        if device is None:
            return self._cast(dtype) if dtype is not None else self
        index = _backend.parse_device(device)
        if index is not None and dtype is not None:
            self._cast(dtype)
        self._move(index)
        if index is None and dtype is not None:
            self._cast(dtype)
        return self

    def cpu(self):
        return self.to("cpu")

    def _floating_tensors(self):
        """Every floating parameter and buffer of this module and its children."""
        for module in self.modules():
            for tensor in list(module._parameters.values()) + list(module._buffers.values()):
                if tensor is not None and tensor.data.dtype in _FLOATS:
                    yield tensor

    def _move(self, index):
        """Move storage (and grads) to OpenCL device index, or to the CPU for None."""
        def moved(array):
            return _backend.to_host(array) if index is None else _backend.to_device(array, index)
        for tensor in self._floating_tensors():
            tensor.data = moved(tensor.data)
            if tensor.grad is not None:
                tensor.grad.data = moved(tensor.grad.data)

    def float(self):
        return self._cast(float32)

    def double(self):
        return self._cast(float64)

    def _cast(self, dtype):
        """Change every floating parameter and buffer (and grad) to dtype, in place:
        the Parameter objects stay the same, so optimizers still hold them."""
        for tensor in self._floating_tensors():
            tensor.data = tensor.data.astype(dtype, copy=False)
            if tensor.grad is not None:
                tensor.grad.data = tensor.grad.data.astype(dtype, copy=False)
        return self

    # ---- printing ----------------------------------------------------------

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, child in self._modules.items():
            child_lines = repr(child).split("\n")
            lines.append(f"({name}): " + "\n  ".join(child_lines))
        if not lines:
            return type(self).__name__ + "()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"
