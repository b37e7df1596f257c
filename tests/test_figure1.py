import csv
import json
import re

import pytest

import microgradbn as mg
from microgradbn.datasets import load_mnist
from microgradbn.experiments import figure1



def test_tiny_figure1_writes_data_and_plot_or_says_why(tmp_path, capsys):
    assert figure1.main(["--steps", "12", "--eval-every", "5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for bn in ("without", "with"):
        assert re.search(rf"^{bn} BN: 90% test accuracy (first at step \d+|not reached), \d\.\d{{4}} after 12 "
                         r"steps; sigmoid input: the median moved over \d+\.\d\d \(max - min\), the 15th-85th "
                         r"percentile spread went from \d+\.\d\d to \d+\.\d\d$", out, re.M)
    with open(tmp_path / "figure1.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["bn"], int(r["step"])) for r in rows] == [(bn, s) for bn in ("False", "True") for s in (0, 5, 10, 12)]
    for r in rows:
        assert float(r["p15"]) <= float(r["p50"]) <= float(r["p85"])
        assert 0.0 <= float(r["test_acc"]) <= 1.0
    data = json.loads((tmp_path / "figure1.json").read_text())
    assert data["config"]["batch_size"] == 60 and len(data["rows"]) == 8
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "figure1.png").stat().st_size > 0
    except ImportError:
        assert "pip install matplotlib" in out


def test_figure1_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        figure1.main(["--unit", "100"])
    assert "--unit must be in [0, 99]" in capsys.readouterr().err


def test_bn_sigmoid_input_is_measured_with_batch_statistics_leaving_running_stats_alone():
    mg.manual_seed(0)
    model = figure1.build(True, init_std=0.1)
    x, y = load_mnist("test")
    _, (p15, p50, p85) = figure1.measure(model, x[:500], y[:500], unit=3)
    # gamma = 1, beta = 0: the batch-normalised input has mean 0 and variance 1 (normal: 15-85 spread 2.07);
    # the running averages (mean 0, variance 1) would pass the raw, much narrower input through
    assert p15 < 0 < p85 and 1.5 < p85 - p15 < 2.6
    for bn in (m for m in model if isinstance(m, mg.nn.BatchNorm1d)):
        assert int(bn.num_batches_tracked.data) == 0 and not bn.running_mean.data.any()
    assert model.training
