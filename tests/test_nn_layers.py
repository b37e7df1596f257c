import math

import numpy as np
import pytest

import microgradbn as mg
import microgradbn.nn.functional as F
from microgradbn import nn
from nn_helpers import compare_with_torch, gradcheck

rng = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (2, 3, 33, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(shape, bias):
    *batch, n_in, n_out = shape
    x, w, b = rng.standard_normal((*batch, n_in)), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    if bias:
        gradcheck(F.linear, x, w, b)
    else:
        gradcheck(lambda x, w: F.linear(x, w), x, w)


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    x, w, b = rng.standard_normal((33, 7)), rng.standard_normal((5, 7)), rng.standard_normal(5)
    compare_with_torch(F.linear, torch.nn.functional.linear, x, w, b)


def test_linear_module_matches_torch_through_state_dict():
    torch = pytest.importorskip("torch")
    mine, ref = nn.Linear(20, 6, dtype=mg.float64), torch.nn.Linear(20, 6).double()
    mine.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((9, 20))
    np.testing.assert_allclose(mine(mg.tensor(x)).data, ref(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_linear_init_is_pytorch_default_and_seeded():
    mg.manual_seed(3)
    a = nn.Linear(400, 300)
    mg.manual_seed(3)
    b = nn.Linear(400, 300)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    bound = 1 / math.sqrt(400)
    for p in (a.weight.data, a.bias.data):
        assert p.dtype == np.float32 and np.abs(p).max() <= bound
    # U(-bound, bound) has standard deviation bound / sqrt(3)
    assert abs(a.weight.data.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert abs(a.weight.data.mean()) < 0.01 * bound
    assert a.bias.data.std() > 0.5 * bound / math.sqrt(3)
    assert nn.Linear(4, 2, bias=False).bias is None


def test_linear_rejects_bad_shapes_and_dtypes():
    with pytest.raises(mg.ShapeError, match="weight of shape"):
        F.linear(mg.zeros(2, 3), mg.zeros(4, 5))
    with pytest.raises(mg.DTypeError, match="float dtype"):
        F.linear(mg.zeros(2, 3), mg.zeros(4, 3, dtype=mg.float64))


def test_linear_float32_matches_float64():
    x, w, b = (rng.standard_normal(s) for s in ((16, 33), (7, 33), (7,)))
    out64 = F.linear(mg.tensor(x), mg.tensor(w), mg.tensor(b))
    out32 = F.linear(*(mg.tensor(a, dtype=mg.float32) for a in (x, w, b)))
    assert out32.dtype == mg.float32
    np.testing.assert_allclose(out32.data, out64.data, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activation_gradcheck_and_torch(name):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((7, 33)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # relu is not differentiable at 0
    fn = getattr(F, name)
    gradcheck(fn, x)
    compare_with_torch(fn, getattr(torch, name), x)


def test_sigmoid_saturates_without_overflow():
    x = mg.tensor([-1000.0, 0.0, 1000.0], dtype=mg.float64)
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(F.sigmoid(x).data, [0.0, 0.5, 1.0])


@pytest.mark.parametrize("module, fn", [(nn.ReLU, F.relu), (nn.Tanh, F.tanh), (nn.Sigmoid, F.sigmoid)])
def test_activation_modules(module, fn):
    x = mg.randn(4, 5)
    np.testing.assert_array_equal(module()(x).data, fn(x).data)
    assert repr(module()) == module.__name__ + "()"


def test_flatten_matches_torch_and_gradcheck():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 4, 5))
    gradcheck(lambda t: nn.Flatten()(t), x)
    compare_with_torch(nn.Flatten(), torch.nn.Flatten(), x)
    compare_with_torch(nn.Flatten(0, 2), torch.nn.Flatten(0, 2), x)
    assert nn.Flatten()(mg.zeros(2, 3, 4)).shape == (2, 12)
    with pytest.raises(ValueError, match="start_dim"):
        F.flatten(mg.zeros(2, 3, 4), 2, 1)


def test_dropout_train_eval_and_seed():
    layer = nn.Dropout(0.25)
    x = mg.ones(200, 100, dtype=mg.float64, requires_grad=True)
    mg.manual_seed(1)
    y = layer(x)
    mg.manual_seed(1)
    np.testing.assert_array_equal(layer(x).data, y.data)
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)       # the same mask scales the gradient
    assert layer.eval()(x) is x
    assert nn.Dropout(1.0)(x).data.max() == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def test_dropout_gradcheck_with_fixed_mask():
    x = rng.standard_normal((5, 7))

    def fixed(t):
        mg.manual_seed(4)  # the same mask on every call
        return F.dropout(t, 0.3)

    gradcheck(fixed, x)


def test_sequential_indexing_slicing_and_append():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    seq.append(nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [seq[0], seq[1]]
    x = mg.randn(5, 3)
    np.testing.assert_array_equal(seq(x).data, seq[2](head(x)).data)
    with pytest.raises(IndexError):
        seq[3]
