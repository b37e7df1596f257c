import csv
import json

import pytest

from microgradbn.experiments import figure1



def test_tiny_figure1_writes_data_and_plot_or_says_why(tmp_path, capsys):
    assert figure1.main(["--steps", "12", "--eval-every", "5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
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
