import numpy as np
import pytest

import microgradbn as mg
import microgradbn.nn.functional as F
from microgradbn import nn
from nn_helpers import compare_with_torch, gradcheck

rng = np.random.default_rng(0)
REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n, c", [(1, 1), (7, 10), (33, 3)])
def test_cross_entropy_gradcheck_and_torch(reduction, n, c):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((n, c)) * 3
    t = rng.integers(0, c, n)
    gradcheck(lambda x: F.cross_entropy(x, mg.tensor(t), reduction=reduction), x)
    compare_with_torch(lambda x: F.cross_entropy(x, mg.tensor(t), reduction=reduction),
                       lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(t), reduction=reduction), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_gradcheck_and_torch(reduction):
    torch = pytest.importorskip("torch")
    x, t = rng.standard_normal((9, 4)), rng.integers(0, 4, 9)
    gradcheck(lambda x: F.nll_loss(x, mg.tensor(t), reduction=reduction), x)
    compare_with_torch(lambda x: F.nll_loss(x, mg.tensor(t), reduction=reduction),
                       lambda x: torch.nn.functional.nll_loss(x, torch.tensor(t), reduction=reduction), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_gradcheck_and_torch(reduction):
    torch = pytest.importorskip("torch")
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    gradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), x, y)
    compare_with_torch(lambda x, y: F.mse_loss(x, y, reduction=reduction),
                       lambda x, y: torch.nn.functional.mse_loss(x, y, reduction=reduction), x, y)


def test_cross_entropy_large_logits_float32():
    x = mg.tensor([[1000.0, 0.0], [0.0, -1000.0]], requires_grad=True)
    loss = F.cross_entropy(x, mg.tensor([1, 0]), reduction="none")
    np.testing.assert_allclose(loss.data, [1000.0, 0.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.data, [[1.0, -1.0], [0.0, 0.0]])


def test_loss_modules():
    x, t = mg.randn(5, 3, requires_grad=True), mg.tensor([0, 1, 2, 1, 0])
    np.testing.assert_array_equal(nn.CrossEntropyLoss()(x, t).data, F.cross_entropy(x, t).data)
    np.testing.assert_array_equal(nn.NLLLoss(reduction="sum")(x, t).data, F.nll_loss(x, t, "sum").data)
    np.testing.assert_array_equal(nn.MSELoss(reduction="none")(x, x * 2).data, (x * x).data)
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_bad_targets_raise_clear_errors(fn):
    x = mg.randn(3, 4)
    with pytest.raises(IndexError, match="target 4 is out of bounds.*\\[0, 3\\]"):
        fn(x, mg.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        fn(x, mg.tensor([0, -1, 1]))
    with pytest.raises(TypeError, match="int64 class indices, got dtype float32"):
        fn(x, mg.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"input \(N, C\) and target \(N,\)"):
        fn(x, mg.tensor([0, 1]))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        fn(x, mg.tensor([0, 1, 2]), reduction="avg")


def test_mse_loss_errors():
    with pytest.raises(ValueError, match="same shape"):
        F.mse_loss(mg.zeros(2, 3), mg.zeros(3, 2))
    with pytest.raises(TypeError, match="float dtype"):
        F.mse_loss(mg.zeros(2), mg.zeros(2, dtype=mg.float64))
