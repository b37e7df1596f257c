"""Shipped datasets (microgradbn/datasets/data/*.npz) and the DataLoader."""
import hashlib
import re
from importlib import resources

import numpy as np
import pytest

from microgradbn.datasets import DataLoader, load_digits, load_mnist
from microgradbn.datasets.loaders import _read_npz

LOADERS = {"digits": load_digits, "mnist": load_mnist}
SIDE = {"digits": 8, "mnist": 28}
MAX_VALUE = {"digits": 16, "mnist": 255}
SIZES = {"digits": (1438, 359), "mnist": (4000, 1000)}

# sha256 of each stored array's raw bytes: the data and its split are fixed forever.
ARRAY_SHA256 = {
    "digits": {
        "x_train": "8afa9ee324da87f8497872cbea7b25a89b8005aefa81921ac8eb66ab741dfbdf",
        "y_train": "c4ff18985dd58a8d21cebf478f024376fc68e54a5f5a552bfac7c22abe303081",
        "x_test": "2b2acd83ce5451dd477c2c37165cb950cc1a3c4178b0b4cbb095869c73dc56f9",
        "y_test": "5e727dc33b4763f2ca39499631382f2429decdc7dac25aedc2be3de789593e7e",
        "index_train": "618f3f37e36664541c08b83231540727dcf837102a69c0337c0865a4b93b24a8",
        "index_test": "a513792ba731ff72eaa80d5d301e48d6ac3e1ce9573aca598839fd591ad47b8c",
    },
    "mnist": {
        "x_train": "86634c70fd7e3bc7ee590f28874fca567f714c500aecd99fd85cc82538f9792c",
        "y_train": "ee7f5163fd137b193fa5f6162c9c5d0f1a5aed5dbac1af6937ba05d5c075f198",
        "x_test": "2afc9b2dc1df3639142377423f3a85dfab9e0003eb87ce05f69c9a9289bd703c",
        "y_test": "0dc2491d062841e1cda0eb8cc266852512f95a70343de8a5ef19ba6f1e8c71b1",
        "index_train": "dbd384c8267625d2fe70c0d7a5ecdf8e9df51a584f7667204d7000a8a7cfe5cb",
        "index_test": "5fb19ed3a17342e1406115b7a1df424e1ee1f1d7403f1872485fbcc2b844e308",
    },
}

DATASETS = sorted(LOADERS)


# ---- the stored files ---------------------------------------------------------------

@pytest.mark.parametrize("name", DATASETS)
def test_stored_arrays_have_fixed_hashes(name):
    arrays = _read_npz(name + ".npz")
    assert set(arrays) == set(ARRAY_SHA256[name])
    for key, digest in ARRAY_SHA256[name].items():
        assert hashlib.sha256(arrays[key].tobytes()).hexdigest() == digest, key


@pytest.mark.parametrize("name", DATASETS)
def test_readme_lists_the_file_sha256(name):
    data = resources.files("microgradbn.datasets").joinpath("data")
    blob = data.joinpath(name + ".npz").read_bytes()
    readme = data.joinpath("README.md").read_text()
    row = re.search(rf"\| {name}\.npz \| (\d+) \| `([0-9a-f]{{64}})` \|", readme)
    assert row is not None
    assert int(row.group(1)) == len(blob)
    assert row.group(2) == hashlib.sha256(blob).hexdigest()


@pytest.mark.parametrize("name", DATASETS)
def test_split_is_disjoint_stratified_and_covers_the_source(name):
    arrays = _read_npz(name + ".npz")
    train, test = arrays["index_train"], arrays["index_test"]
    assert np.intersect1d(train, test).size == 0
    everything = np.sort(np.concatenate([train, test]))
    np.testing.assert_array_equal(everything, np.arange(sum(SIZES[name])))
    # about 20 % of every class is in the test part
    train_counts = np.bincount(arrays["y_train"], minlength=10)
    test_counts = np.bincount(arrays["y_test"], minlength=10)
    fraction = test_counts / (train_counts + test_counts)
    assert np.all(np.abs(fraction - 0.2) < 0.01)
    # no test image has the same pixels as a training image
    rows = {r.tobytes() for r in arrays["x_train"]}
    assert not any(r.tobytes() in rows for r in arrays["x_test"])


def test_mnist_has_500_images_per_digit():
    arrays = _read_npz("mnist.npz")
    labels = np.concatenate([arrays["y_train"], arrays["y_test"]])
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 500))
    np.testing.assert_array_equal(np.bincount(arrays["y_test"]), np.full(10, 100))


def test_stored_order_interleaves_classes():
    # an unshuffled loader over the stored order must not see one class per batch
    for name in DATASETS:
        y = _read_npz(name + ".npz")["y_train"]
        assert len(np.unique(y[:64])) == 10


# ---- load_digits / load_mnist ----------------------------------------------------------

@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_shapes_dtypes_and_ranges(name, split):
    n = SIZES[name][split == "test"]
    side = SIDE[name]
    x, y = LOADERS[name](split)
    assert x.shape == (n, side * side) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))

    x4, y4 = LOADERS[name](split, dtype=np.float64, normalize=False, flatten=False)
    assert x4.shape == (n, 1, side, side) and x4.dtype == np.float64
    assert x4.max() == MAX_VALUE[name] and np.array_equal(x4, np.round(x4))
    np.testing.assert_array_equal(y4, y)
    np.testing.assert_allclose(x4.reshape(n, -1) / MAX_VALUE[name], x, rtol=1e-7)


@pytest.mark.parametrize("name", DATASETS)
def test_label_balance(name):
    _, y = LOADERS[name]("train")
    counts = np.bincount(y, minlength=10)
    assert counts.min() >= 0.9 * counts.mean() and counts.max() <= 1.1 * counts.mean()


def test_loaders_return_fresh_writable_arrays():
    x1, y1 = load_digits()
    x1[:] = -1.0
    y1[:] = -1
    x2, y2 = load_digits()
    assert x2.min() == 0.0 and y2.min() == 0


@pytest.mark.parametrize("loader", [load_digits, load_mnist])
def test_loader_argument_errors(loader):
    with pytest.raises(ValueError, match="split"):
        loader("validation")
    with pytest.raises(TypeError, match="dtype"):
        loader("train", dtype=np.int32)


def test_mnist_labels_align_with_images():
    # softmax regression by full-batch gradient descent: real digits with the right labels
    # reach ~90 % on the held-out 1,000 images; shuffled labels would give ~10 %.
    x, y = load_mnist("train")
    x_test, y_test = load_mnist("test")
    w = np.zeros((x.shape[1], 10), np.float32)
    b = np.zeros(10, np.float32)
    onehot = np.eye(10, dtype=np.float32)[y]
    for _ in range(100):
        z = x @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        g = (p / p.sum(axis=1, keepdims=True) - onehot) / len(y)
        w -= x.T @ g
        b -= g.sum(axis=0)
    accuracy = np.mean(np.argmax(x_test @ w + b, axis=1) == y_test)
    assert accuracy > 0.85


# ---- DataLoader ----------------------------------------------------------------------

def _data(n=103):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    return x, np.arange(n)


@pytest.mark.parametrize("n, batch_size", [(1, 1), (7, 3), (33, 33), (1000, 64), (5, 8)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_once_per_epoch(n, batch_size, shuffle):
    x, y = _data(n)
    loader = DataLoader(x, y, batch_size, shuffle=shuffle, seed=1)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == -(-n // batch_size)
        assert all(len(yb) == batch_size for _, yb in batches[:-1])
        seen = np.concatenate([yb for _, yb in batches])
        np.testing.assert_array_equal(np.sort(seen), y)
        for xb, yb in batches:
            np.testing.assert_array_equal(xb, x[yb])        # rows stay paired


def test_unshuffled_order_is_the_data_order():
    x, y = _data(10)
    seen = np.concatenate([yb for _, yb in DataLoader(x, y, 4)])
    np.testing.assert_array_equal(seen, y)


def test_shuffle_is_reproducible_and_changes_each_epoch():
    x, y = _data()
    a = DataLoader(x, y, 10, shuffle=True, seed=123)
    b = DataLoader(x, y, 10, shuffle=True, seed=123)
    epochs_a = [np.concatenate([yb for _, yb in a]) for _ in range(3)]
    epochs_b = [np.concatenate([yb for _, yb in b]) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(epochs_a[0], epochs_a[1])
    assert not np.array_equal(epochs_a[0], y)
    other = np.concatenate([yb for _, yb in DataLoader(x, y, 10, shuffle=True, seed=124)])
    assert not np.array_equal(other, epochs_a[0])


@pytest.mark.parametrize("shuffle", [False, True])
def test_drop_last(shuffle):
    x, y = _data(103)
    loader = DataLoader(x, y, 10, shuffle=shuffle, seed=0, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 10
    assert all(xb.shape == (10, 3) and yb.shape == (10,) for xb, yb in batches)
    seen = np.concatenate([yb for _, yb in batches])
    assert len(np.unique(seen)) == 100
    assert len(DataLoader(x[:9], y[:9], 10, drop_last=True)) == 0
    assert list(DataLoader(x[:9], y[:9], 10, drop_last=True)) == []
    assert len(DataLoader(x[:100], y[:100], 10, drop_last=True)) == 10


def test_batches_keep_dtype_and_trailing_shape():
    x, y = load_digits("test", flatten=False)
    xb, yb = next(iter(DataLoader(x, y, 32, shuffle=True, seed=0)))
    assert xb.shape == (32, 1, 8, 8) and xb.dtype == np.float32 and yb.dtype == np.int64


def test_dataloader_errors():
    x, y = _data(10)
    with pytest.raises(ValueError, match="10 rows but y has 9"):
        DataLoader(x, y[:9], 2)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(x, y, bad)
    for bad in (2.0, "2", True, None):
        with pytest.raises(TypeError, match="batch_size"):
            DataLoader(x, y, bad)
    with pytest.raises(TypeError, match="seed"):
        DataLoader(x, y, 2, shuffle=True, seed=1.5)
    with pytest.raises(ValueError, match="dimension"):
        DataLoader(np.float32(1.0), y, 2)
