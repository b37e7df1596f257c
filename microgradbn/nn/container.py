"""Sequential: modules applied one after another."""
from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """Sequential(m0, m1, ...) or Sequential(OrderedDict(name=module, ...)):
    forward(x) = ...m1(m0(x)). Indexing gives a module; a slice gives a Sequential."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of length {len(items)}")
        return items[index][1]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self
