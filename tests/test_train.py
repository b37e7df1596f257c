"""The main job end to end, and training side by side with PyTorch."""
import re

import numpy as np
import pytest

import microgradbn as mg
from microgradbn import train
from microgradbn.datasets import load_mnist

from nn_helpers import train_side_by_side


def test_main_short_run_prints_progress_and_saves(tmp_path, capsys):
    path = tmp_path / "mlp.npz"
    argv = ["--epochs", "1", "--train-size", "512", "--batch-size", "32", "--threads", "1",
            "--save", str(path)]
    assert train.main(argv) == 0
    out, err = capsys.readouterr()
    assert re.search(r"epoch   1  train loss \d\.\d{4}  acc \d\.\d{4}  \|  test loss \d\.\d{4}  acc \d\.\d{4}", out)
    match = re.search(r"final test accuracy ([\d.]+)%  \|  16 steps in [\d.]+ s of training \(\d+ steps/s\)", out)
    assert match and float(match.group(1)) > 20  # 16 steps already beat chance (10%)
    assert "epoch 1/1" in err  # the progress bar (tqdm's or the built-in one) was drawn
    model = train.build_mlp(True)
    model.load_state_dict(mg.load(path))  # strict: every key and shape of the saved file fits


def test_main_options_fail_clearly(capsys):
    with pytest.raises(SystemExit) as info:
        train.main(["--device", "cuda"])
    assert info.value.code == 2
    assert "--device cuda: Expected one of cpu, opencl device type" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--epochs", "0"])
    assert "--epochs must be at least 1" in capsys.readouterr().err


def test_text_bar(capsys):
    import io

    stream = io.StringIO()
    bar = train.TextBar(4, "epoch 1/1", file=stream, width=8)
    bar.set_postfix_str("loss=1.0")
    for _ in range(4):
        bar.update()
    bar.close()
    assert stream.getvalue().rstrip().endswith("epoch 1/1 [########] 4/4 loss=1.0")


# ---- training side by side with PyTorch (float64, same weights, same batches) ----

def _mlp(bn, backend):
    """784-32-[BN]-ReLU-16-[BN]-ReLU-10 in microgradbn (backend=nn) or torch.nn."""
    layers = []
    for n_in, n_out in ((784, 32), (32, 16)):
        layers.append(backend.Linear(n_in, n_out, bias=not bn))
        if bn:
            layers.append(backend.BatchNorm1d(n_out))
        layers.append(backend.ReLU())
    layers.append(backend.Linear(16, 10))
    return backend.Sequential(*layers)


@pytest.mark.parametrize("bn", [True, False])
@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-3, weight_decay=1e-4)),
])
def test_training_matches_torch(bn, name, kwargs):
    pytest.importorskip("torch")
    x, y = load_mnist("train", dtype=np.float64)
    x_test = load_mnist("test", dtype=np.float64)[0][:100]
    train_side_by_side(lambda backend: _mlp(bn, backend), name, kwargs, x, y, x_test,
                       batch_size=32, seed=0)
