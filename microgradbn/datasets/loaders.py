"""Loaders for the real data shipped in microgradbn/datasets/data/ (no network, ever).

Each .npz holds uint8 images and labels with a fixed train/test split made once by
tools/make_datasets.py; data/README.md gives provenance, licences and checksums.
"""
import functools
from importlib import resources

import numpy as np

SPLITS = ("train", "test")


@functools.lru_cache(maxsize=None)
def _read_npz(filename):
    """All arrays of one shipped .npz, read once per process and marked read-only."""
    source = resources.files(__package__).joinpath("data", filename)
    with source.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    for array in arrays.values():
        array.flags.writeable = False
    return arrays


def _load(filename, max_value, split, dtype, normalize, flatten):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating-point type (float32, float64), got {dtype}")
    arrays = _read_npz(filename)
    images, labels = arrays["x_" + split], arrays["y_" + split]
    x = images.astype(dtype)                       # always a fresh, writable array
    if normalize:
        x /= dtype.type(max_value)
    n, height, width = images.shape
    x = x.reshape(n, height * width) if flatten else x.reshape(n, 1, height, width)
    return x, labels.astype(np.int64)


def load_digits(split="train", dtype=np.float32, normalize=True, flatten=True):
    """The UCI 8x8 handwritten digits (1,797 images; 1,438 train / 359 test).

    Returns (x, y): x of `dtype`, shape (n, 64) if `flatten` else (n, 1, 8, 8), with pixel
    values 0..16, divided by 16 into [0, 1] if `normalize`; y int64 labels 0..9, shape (n,).
    """
    return _load("digits.npz", 16, split, dtype, normalize, flatten)


def load_mnist(split="train", dtype=np.float32, normalize=True, flatten=True):
    """A 5,000-image MNIST subset (500 per digit; 4,000 train / 1,000 test).

    Returns (x, y): x of `dtype`, shape (n, 784) if `flatten` else (n, 1, 28, 28), with
    pixel values 0..255, divided by 255 into [0, 1] if `normalize`; y int64 labels 0..9.
    """
    return _load("mnist.npz", 255, split, dtype, normalize, flatten)
