"""Mini-batches of NumPy arrays, in order or shuffled reproducibly."""
import numbers

import numpy as np


class DataLoader:
    """Iterate over (x, y) in mini-batches of `batch_size` rows.

    Each pass (`for xb, yb in loader`) is one epoch and visits every row exactly once
    (the last, smaller batch is dropped if `drop_last`). With `shuffle`, each epoch uses a
    new permutation drawn from one numpy Generator seeded once with `seed`, so two loaders
    made with the same seed give the same sequence of epochs. Batches are NumPy arrays:
    copies when shuffling, views of x and y otherwise.
    """

    def __init__(self, x, y, batch_size, shuffle=False, seed=None, drop_last=False):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError("DataLoader: x and y must have at least one dimension "
                             f"(got x.ndim={x.ndim}, y.ndim={y.ndim})")
        if len(x) != len(y):
            raise ValueError(f"DataLoader: x has {len(x)} rows but y has {len(y)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"DataLoader: batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"DataLoader: seed must be an int or None, got {seed!r}")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        """Batches per epoch."""
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n, size = len(self.y), self.batch_size
        order = self._rng.permutation(n) if self.shuffle else None
        for start in range(0, len(self) * size, size):
            if order is None:
                yield self.x[start:start + size], self.y[start:start + size]
            else:
                rows = order[start:start + size]
                yield self.x[rows], self.y[rows]
