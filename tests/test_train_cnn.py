"""A CNN (Conv2d, BatchNorm2d, MaxPool2d) trained side by side with PyTorch, and `--model cnn`."""
import re

import numpy as np
import pytest

import microgradbn as mg
from microgradbn import train
from microgradbn.datasets import load_mnist

from nn_helpers import train_side_by_side


def _cnn(backend):
    """conv 1->4 3x3 pad 1, BN2d, ReLU, maxpool 2, conv 4->6 3x3 stride 2, BN2d, ReLU, flatten, linear.
    The second block (stride 2, no padding, 14x14 -> 6x6) exercises the other conv and BN paths."""
    return backend.Sequential(
        backend.Conv2d(1, 4, 3, padding=1, bias=False), backend.BatchNorm2d(4), backend.ReLU(),
        backend.MaxPool2d(2),
        backend.Conv2d(4, 6, 3, stride=2), backend.BatchNorm2d(6), backend.ReLU(),
        backend.Flatten(), backend.Linear(6 * 6 * 6, 10))


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=2e-3, weight_decay=1e-4)),
])
def test_cnn_training_matches_torch(name, kwargs):
    pytest.importorskip("torch")
    x, y = load_mnist("train", dtype=np.float64, flatten=False)
    x_test = load_mnist("test", dtype=np.float64, flatten=False)[0][:50]
    losses = train_side_by_side(_cnn, name, kwargs, x, y, x_test, batch_size=16, seed=1)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns, so the comparison means something


def test_main_cnn_short_run_learns(tmp_path, capsys):
    path = tmp_path / "cnn.npz"
    argv = ["--model", "cnn", "--epochs", "1", "--train-size", "640", "--batch-size", "32",
            "--threads", "1", "--no-progress", "--save", str(path)]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "Conv2d(1, 16, kernel_size=(3, 3)" in out and "BatchNorm2d(16" in out and "MaxPool2d" in out
    match = re.search(r"final test accuracy ([\d.]+)%  \|  20 steps in", out)
    assert match and float(match.group(1)) > 50  # 20 steps of 32 images: far above chance (10%)
    model = train.build_cnn(True)
    model.load_state_dict(mg.load(path))
