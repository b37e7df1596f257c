import numpy as np
import pytest

import microgradbn as mg
from microgradbn import nn


def test_round_trip_module_state_dict(tmp_path):
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2, dtype=mg.float64))
    path = tmp_path / "model.npz"
    mg.save(model.state_dict(), path)
    loaded = mg.load(path)
    assert list(loaded) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key].data, value.data)
    other = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2, dtype=mg.float64))
    other.load_state_dict(loaded)
    x = mg.randn(3, 5)
    np.testing.assert_array_equal(other[:2](x).data, model[:2](x).data)


def test_nested_dicts_flatten_to_dotted_keys(tmp_path):
    path = tmp_path / "ckpt.npz"
    mg.save({"model": {"w": mg.ones(2)}, "epoch": 3, "name": "mlp", "betas": (0.9, 0.999),
             "groups": [{"lr": 0.1}]}, str(path))
    loaded = mg.load(path)
    assert sorted(loaded) == ["betas", "epoch", "groups.0.lr", "model.w", "name"]
    assert loaded["name"] == "mlp" and loaded["epoch"].item() == 3
    np.testing.assert_array_equal(loaded["betas"].data, [0.9, 0.999])
    # the file is a plain .npz that numpy reads without pickle
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["model.w"], [1.0, 1.0])


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="must be a dict"):
        mg.save(mg.ones(2), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="cannot store NoneType at key 'a.b'"):
        mg.save({"a": {"b": None}}, tmp_path / "x.npz")
    with pytest.raises(ValueError, match="same key 'a.b'"):
        mg.save({"a.b": 1, "a": {"b": 2}}, tmp_path / "x.npz")
