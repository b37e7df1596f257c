"""Batch Normalization, five ways that must agree (forward and every gradient):

  1. the fused C kernel            mg.nn.functional.batch_norm
  2. the paper's equations         microgradbn.reference.bn_paper (NumPy, float64, literal)
  3. the paper's graph             mg.nn.functional.batch_norm_primitives (primitive autograd ops)
  4. float64 finite differences    tests/nn_helpers.gradcheck
  5. PyTorch                       torch.nn.functional.batch_norm (when installed)

for every layout ((N,C), (N,C,L), (N,C,H,W)), affine on and off, train and
eval, float32 and float64, and several steps of running statistics; then the
modules' semantics and errors.
"""
import numpy as np
import pytest

import microgradbn as mg
import microgradbn.nn.functional as F
from microgradbn.reference import bn_paper
from nn_helpers import gradcheck

SHAPES = [(7, 3), (33, 1), (2, 5), (4, 3, 7), (3, 2, 1), (2, 3, 5, 5), (1, 4, 3, 3)]
EPS = 1e-5


def make(shape, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape) * 2.0 + offset
    dy = rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 1.5, c)
    beta = rng.standard_normal(c)
    running_mean = rng.standard_normal(c) * 0.1
    running_var = rng.uniform(0.5, 2.0, c)
    return x, dy, gamma, beta, running_mean, running_var


def run(bn, x, dy, gamma, beta, running_mean, running_var, training, dtype):
    """y and the gradients (dx, dgamma, dbeta) of one BN implementation of ours,
    plus the running statistics after the call."""
    tx = mg.tensor(x.astype(dtype), requires_grad=True)
    tw = None if gamma is None else mg.tensor(gamma.astype(dtype), requires_grad=True)
    tb = None if beta is None else mg.tensor(beta.astype(dtype), requires_grad=True)
    rm, rv = mg.tensor(running_mean.astype(dtype)), mg.tensor(running_var.astype(dtype))
    y = bn(tx, rm, rv, tw, tb, training=training, momentum=0.1, eps=EPS)
    y.backward(dy.astype(dtype))
    grads = [tx.grad.data] + [None if t is None else t.grad.data for t in (tw, tb)]
    return y.data, grads, rm.data, rv.data


def reference(x, dy, gamma, beta, running_mean, running_var, training):
    if training:
        y = bn_paper.paper_forward(x, gamma, beta, EPS)
        grads = list(bn_paper.paper_backward(dy, x, gamma, EPS))
        rm, rv, _ = bn_paper.update_running_stats(running_mean, running_var, x, momentum=0.1)
    else:
        y = bn_paper.eval_forward(x, running_mean, running_var, gamma, beta, EPS)
        grads = list(bn_paper.eval_backward(dy, x, running_mean, running_var, gamma, EPS))
        rm, rv = running_mean, running_var
    if gamma is None:
        grads[1] = grads[2] = None
    return y, grads, rm, rv


def assert_all_close(got, want, rtol, atol):
    y, grads, rm, rv = got
    want_y, want_grads, want_rm, want_rv = want
    np.testing.assert_allclose(y, want_y, rtol=rtol, atol=atol)
    for g, w in zip(grads, want_grads):
        assert (g is None) == (w is None)
        if g is not None:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    np.testing.assert_allclose(rm, want_rm, rtol=rtol, atol=atol)
    np.testing.assert_allclose(rv, want_rv, rtol=rtol, atol=atol)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("bn", [F.batch_norm, F.batch_norm_primitives], ids=["fused", "primitives"])
def test_matches_the_papers_equations(shape, affine, training, bn):
    x, dy, gamma, beta, rm, rv = make(shape)
    if not affine:
        gamma = beta = None
    want = reference(x, dy, gamma, beta, rm, rv, training)
    assert_all_close(run(bn, x, dy, gamma, beta, rm, rv, training, np.float64), want, 1e-10, 1e-10)
    assert_all_close(run(bn, x, dy, gamma, beta, rm, rv, training, np.float32), want, 2e-4, 2e-4)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 2, 3, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_finite_differences(shape, training):
    x, _, gamma, beta, rm, rv = make(shape, seed=1)
    running_mean, running_var = mg.tensor(rm), mg.tensor(rv)

    def bn(x, gamma, beta):
        # momentum 0 keeps the running statistics fixed while differences are taken
        return F.batch_norm(x, running_mean, running_var, gamma, beta, training=training,
                            momentum=0.0, eps=EPS)

    gradcheck(bn, x, gamma, beta)


@pytest.mark.parametrize("shape", [(64, 16), (8, 4, 10), (4, 3, 6, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_pytorch_over_several_steps(shape, dtype, affine):
    torch = pytest.importorskip("torch")
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    module = {2: mg.nn.BatchNorm1d, 3: mg.nn.BatchNorm1d, 4: mg.nn.BatchNorm2d}[len(shape)]
    torch_module = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}[len(shape)]
    ours = module(shape[1], affine=affine, momentum=0.3, dtype=dtype)
    theirs = torch_module(shape[1], affine=affine, momentum=0.3, dtype=getattr(torch, np.dtype(dtype).name))
    if affine:
        _, _, gamma, beta, _, _ = make(shape, seed=7)
        for m in (ours.weight, ours.bias):
            m.data[...] = gamma if m is ours.weight else beta
        theirs.weight.data = torch.tensor(gamma.astype(dtype))
        theirs.bias.data = torch.tensor(beta.astype(dtype))
    for step in range(4):
        training = step < 3
        ours.train(training), theirs.train(training)
        x, dy, *_ = make(shape, seed=10 + step, offset=3.0)
        tx = mg.tensor(x.astype(dtype), requires_grad=True)
        rx = torch.tensor(x.astype(dtype), requires_grad=True)
        y, ry = ours(tx), theirs(rx)
        y.backward(dy.astype(dtype))
        ry.backward(torch.tensor(dy.astype(dtype)))
        np.testing.assert_allclose(y.data, ry.detach().numpy(), **tol)
        np.testing.assert_allclose(tx.grad.data, rx.grad.numpy(), **tol)
        if affine:
            np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), **tol)
            np.testing.assert_allclose(ours.bias.grad.data, theirs.bias.grad.numpy(), **tol)
            ours.weight.grad = ours.bias.grad = None
            theirs.weight.grad = theirs.bias.grad = None
        np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), **tol)
        np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), **tol)
        assert int(ours.num_batches_tracked.item()) == int(theirs.num_batches_tracked)


def test_momentum_none_is_a_cumulative_average():
    bn = mg.nn.BatchNorm1d(3, momentum=None, dtype=np.float64)
    rm, rv, count = np.zeros(3), np.ones(3), 0
    for step in range(5):
        x, *_ = make((6, 3), seed=step)
        bn(mg.tensor(x))
        rm, rv, count = bn_paper.update_running_stats(rm, rv, x, momentum=None, num_batches_tracked=count)
    np.testing.assert_allclose(bn.running_mean.data, rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, rv, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 5


def test_track_running_stats_false_uses_batch_statistics_in_eval():
    bn = mg.nn.BatchNorm1d(3, track_running_stats=False, dtype=np.float64).eval()
    assert bn.running_mean is None and "running_mean" not in bn.state_dict()
    x, *_ = make((9, 3), seed=3)
    np.testing.assert_allclose(bn(mg.tensor(x)).data, bn_paper.paper_forward(x, np.ones(3), np.zeros(3), EPS),
                               rtol=1e-10, atol=1e-12)


def test_state_dict_and_repr():
    bn = mg.nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.num_batches_tracked.dtype == mg.int64
    assert repr(bn) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert [n for n, _ in mg.nn.BatchNorm1d(2, affine=False).named_parameters()] == []


def test_large_offset_stays_accurate_in_float32():
    x, *_ = make((256, 8), seed=5)
    x = (x / 2.0 + 1e4).astype(np.float32)  # mean 1e4, std 1
    y = F.batch_norm(mg.tensor(x), None, None, training=True).data
    want = bn_paper.paper_forward(x.astype(np.float64), None, None, EPS)
    assert np.max(np.abs(y - want)) / np.max(np.abs(want)) < 1e-4


def test_constant_channel_gives_exactly_beta():
    x = np.full((10, 2), 3.25, np.float32)
    bias = mg.tensor(np.array([0.5, -2.0], np.float32))
    y = F.batch_norm(mg.tensor(x), None, None, mg.ones(2), bias, training=True).data
    assert np.array_equal(y, np.broadcast_to(bias.data, y.shape))


def test_nan_propagates_to_its_channel_only():
    x = np.random.default_rng(0).standard_normal((8, 3))
    x[2, 1] = np.nan
    y = F.batch_norm(mg.tensor(x), None, None, training=True).data
    assert np.isnan(y[:, 1]).all() and not np.isnan(y[:, [0, 2]]).any()


def test_linear_without_bias_before_bn_as_the_paper_advises():
    mg.manual_seed(0)
    model = mg.nn.Sequential(mg.nn.Linear(10, 6, bias=False), mg.nn.BatchNorm1d(6), mg.nn.ReLU())
    out = model(mg.randn(16, 10))
    assert out.shape == (16, 6) and (out.data >= 0).all()
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "1.weight", "1.bias"]


@pytest.mark.parametrize("bad, message", [
    (lambda: mg.nn.BatchNorm1d(3)(mg.randn(4, 5)), r"expected 3 channels.*\(4, 5\)"),
    (lambda: mg.nn.BatchNorm1d(3)(mg.randn(4, 3, 2, 2)), r"expected 2D or 3D input \(got 4D"),
    (lambda: mg.nn.BatchNorm2d(3)(mg.randn(4, 3)), r"expected 4D input \(got 2D"),
    (lambda: mg.nn.BatchNorm1d(3)(mg.randn(1, 3)), "more than 1 value per channel"),
    (lambda: mg.nn.BatchNorm2d(3)(mg.randn(1, 3, 1, 1)), "more than 1 value per channel"),
    (lambda: mg.nn.BatchNorm1d(3)(mg.zeros(0, 3)), "empty input"),
    (lambda: F.batch_norm(mg.randn(4, 3), None, None, training=False), "must be defined in evaluation mode"),
    (lambda: F.batch_norm(mg.randn(4, 3), mg.zeros(2), mg.ones(2), training=True),
     r"running_mean should contain 3 elements.*\(4, 3\).*\(2,\)"),
    (lambda: F.batch_norm(mg.randn(4, 3), None, None, training=True, eps=-1.0), "eps"),
    (lambda: mg.nn.BatchNorm1d(0), "num_features"),
])
def test_errors_are_value_errors_naming_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


def test_dtype_mismatch_is_a_type_error():
    with pytest.raises(TypeError, match="float64 but the input is float32"):
        F.batch_norm(mg.randn(4, 3), mg.zeros(3, dtype=mg.float64), mg.ones(3, dtype=mg.float64))


def test_one_value_per_channel_is_fine_in_eval():
    bn = mg.nn.BatchNorm1d(3).eval()
    assert bn(mg.randn(1, 3)).shape == (1, 3)
