"""mg.save / mg.load: state dicts as NumPy .npz files, never pickle.

Nested dicts (and lists or tuples) are flattened with dotted keys, so

    {"model": {"0.weight": w}, "epoch": 3}   is stored as   "model.0.weight", "epoch"

and mg.load gives that flat dict back: arrays as Tensors, strings as str.
A module's state_dict is flat already, so model.load_state_dict(mg.load(path))
restores what mg.save(model.state_dict(), path) wrote.
"""
import numbers
import os

import numpy as np

from ._backend import to_host
from .tensor import Tensor


def _flatten(obj, prefix, out):
    if isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, (list, tuple)) and not all(isinstance(v, numbers.Number) for v in obj):
        for index, value in enumerate(obj):
            _flatten(value, f"{prefix}.{index}" if prefix else str(index), out)
    else:
        if not prefix:
            raise TypeError("mg.save: the object to save must be a dict (e.g. a state_dict)")
        if prefix in out:
            raise ValueError(f"mg.save: two entries flatten to the same key {prefix!r}")
        out[prefix] = _array(obj, prefix)


def _array(value, key):
    if isinstance(value, Tensor):
        return to_host(value.data)        # a device tensor is saved from a copy on the CPU
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufU":
        return value
    if isinstance(value, (numbers.Number, str, list, tuple)) and not isinstance(value, complex):
        return np.asarray(value)
    raise TypeError(f"mg.save: cannot store {type(value).__name__} at key {key!r} "
                    "(Tensors, arrays, numbers, strings and dicts/lists of them can be saved)")


def save(obj, path):
    """Write obj (a dict of tensors, arrays, numbers, strings; nested dicts and
    lists are flattened to dotted keys) to path as an uncompressed .npz."""
    flat = {}
    _flatten(obj, "", flat)
    with open(os.fspath(path), "wb") as f:  # a file object: numpy does not append ".npz"
        np.savez(f, **flat)


def load(path):
    """The flat dict save() wrote: key -> Tensor (str for strings)."""
    with np.load(os.fspath(path), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return {key: str(a) if a.dtype.kind == "U" else Tensor._wrap(a) for key, a in arrays.items()}
