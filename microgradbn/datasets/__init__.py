"""Real datasets shipped with microgradbn, and a mini-batch iterator.

    from microgradbn.datasets import load_mnist, DataLoader
    x, y = load_mnist("train")                     # float32 (4000, 784) in [0, 1], int64 (4000,)
    for xb, yb in DataLoader(x, y, 64, shuffle=True, seed=0):
        ...

Provenance, licences and checksums: data/README.md in this folder.
"""
from .dataloader import DataLoader
from .loaders import load_digits, load_mnist

__all__ = ["DataLoader", "load_digits", "load_mnist"]
