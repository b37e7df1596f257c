"""The NumPy oracle of microgradbn/reference/bn_paper.py: the paper's backward lines, the
kernel's closed form, float64 finite differences of the paper's forward, and PyTorch agree."""
import numpy as np
import pytest

from microgradbn.reference.bn_paper import (
    batch_statistics, closed_form_backward, eval_backward, eval_forward, paper_backward,
    paper_forward, update_running_stats)

# (N, C), (N, C, L), (N, C, H, W) with odd sizes; m = values per channel
SHAPES = [(7, 3), (33, 1), (2, 5), (1, 4), (1, 2, 7), (3, 2, 5), (2, 3, 4, 5), (1, 1, 3, 3), (5, 2, 1, 1)]


def make(shape, seed, affine):
    """x with a different offset and scale per channel, dy, and (gamma, beta) or (None, None)."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    per_channel = (1, c) + (1,) * (len(shape) - 2)
    x = rng.normal(size=shape) * rng.uniform(0.5, 3.0, c).reshape(per_channel) \
        + rng.uniform(-5.0, 5.0, c).reshape(per_channel)
    dy = rng.normal(size=shape)
    if not affine:
        return x, dy, None, None
    return x, dy, rng.uniform(-2.0, 2.0, c), rng.normal(size=c)


def numerical_gradient(f, v, h=1e-6):
    """Central differences of the scalar f() with respect to every element of v (changed in place)."""
    grad = np.empty_like(v)
    for i in np.ndindex(v.shape):
        keep = v[i]
        v[i] = keep + h
        up = f()
        v[i] = keep - h
        down = f()
        v[i] = keep
        grad[i] = (up - down) / (2 * h)
    return grad


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_paper_equals_closed_form_equals_finite_differences(shape, affine):
    eps = 1e-3 if len(shape) == 3 else 1e-5
    x, dy, gamma, beta = make(shape, seed=sum(shape), affine=affine)
    dx, dgamma, dbeta = paper_backward(dy, x, gamma, eps)
    dx_c, dgamma_c, dbeta_c = closed_form_backward(dy, x, gamma, eps)
    np.testing.assert_allclose(dx_c, dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma_c, dgamma, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dbeta_c, dbeta, rtol=0, atol=0)

    one = np.ones(shape[1])
    g = one.copy() if gamma is None else gamma.copy()
    b = np.zeros(shape[1]) if beta is None else beta.copy()
    loss = lambda: np.sum(dy * paper_forward(x, g, b, eps))  # noqa: E731  l = sum dy * y
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dgamma, numerical_gradient(loss, g), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dbeta, numerical_gradient(loss, b), rtol=1e-6, atol=1e-6)
    if gamma is None:  # affine off is gamma = 1, beta = 0
        np.testing.assert_array_equal(paper_forward(x, None, None, eps), paper_forward(x, one, 0 * one, eps))


def test_statistics_and_normalised_output():
    x, _, gamma, beta = make((6, 3, 4, 5), seed=1, affine=True)
    mean, var, rstd = batch_statistics(x, eps=1e-5)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x.var(axis=(0, 2, 3)) + 1e-5), rtol=1e-12)
    y = paper_forward(x, gamma, beta, eps=0.0)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), np.abs(gamma), rtol=1e-12)


def test_eval_backward_equals_finite_differences():
    x, dy, gamma, beta = make((5, 3, 7), seed=2, affine=True)
    running_mean, running_var = np.array([0.5, -1.0, 2.0]), np.array([0.7, 1.3, 4.0])
    dx, dgamma, dbeta = eval_backward(dy, x, running_mean, running_var, gamma, eps=1e-5)
    np.testing.assert_allclose(dx, dy * (gamma / np.sqrt(running_var + 1e-5))[None, :, None], rtol=1e-14)
    loss = lambda: np.sum(dy * eval_forward(x, running_mean, running_var, gamma, beta))  # noqa: E731
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, numerical_gradient(loss, gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, numerical_gradient(loss, beta), rtol=1e-6, atol=1e-7)


def test_bad_arguments_raise_value_error():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="got shape"):
        paper_forward(np.ones(5))
    with pytest.raises(ValueError, match="got shape"):
        paper_backward(np.ones((1, 2, 3, 4, 5)), np.ones((1, 2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        paper_forward(x, gamma=np.ones(4))
    with pytest.raises(ValueError, match="dy has shape"):
        closed_form_backward(np.ones((4, 2)), x)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        update_running_stats(np.zeros(3), np.ones(3), np.ones((1, 3)))


# ---- PyTorch, where installed: float64, training and eval mode, running statistics ----

@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("shape", [s for s in SHAPES if s[0] > 1 or len(s) > 2], ids=str)
def test_training_forward_backward_match_torch(shape, affine):
    torch = pytest.importorskip("torch")
    x, dy, gamma, beta = make(shape, seed=3 + sum(shape), affine=affine)
    xt = torch.tensor(x, requires_grad=True)
    wt = None if gamma is None else torch.tensor(gamma, requires_grad=True)
    bt = None if beta is None else torch.tensor(beta, requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-5)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(paper_forward(x, gamma, beta, 1e-5), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    for backward in (paper_backward, closed_form_backward):
        dx, dgamma, dbeta = backward(dy, x, gamma, 1e-5)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
        if affine:
            np.testing.assert_allclose(dgamma, wt.grad.numpy(), rtol=1e-10, atol=1e-11)
            np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 3, 4)], ids=str)
def test_eval_mode_matches_torch(shape):
    torch = pytest.importorskip("torch")
    x, dy, gamma, beta = make(shape, seed=4, affine=True)
    running_mean, running_var = np.array([0.5, -1.0, 2.0]), np.array([0.7, 1.3, 4.0])
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    yt = torch.nn.functional.batch_norm(xt, torch.tensor(running_mean), torch.tensor(running_var),
                                        wt, bt, training=False, eps=1e-5)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(eval_forward(x, running_mean, running_var, gamma, beta), yt.detach().numpy(),
                               rtol=1e-13, atol=1e-13)
    dx, dgamma, dbeta = eval_backward(dy, x, running_mean, running_var, gamma)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dgamma, wt.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("momentum", [0.1, 0.7, None], ids=["0.1", "0.7", "cumulative"])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 7), (2, 3, 2, 3)], ids=str)
def test_running_statistics_match_torch(shape, momentum):
    torch = pytest.importorskip("torch")
    module = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}[len(shape)]
    bn = module(3, momentum=momentum, dtype=torch.float64).train()
    running_mean, running_var, tracked = np.zeros(3), np.ones(3), 0
    for step in range(4):
        x, _, _, _ = make(shape, seed=10 + step, affine=False)
        bn(torch.tensor(x))
        running_mean, running_var, tracked = update_running_stats(running_mean, running_var, x, momentum, tracked)
        np.testing.assert_allclose(running_mean, bn.running_mean.numpy(), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(running_var, bn.running_var.numpy(), rtol=1e-13, atol=1e-14)
        assert tracked == bn.num_batches_tracked.item() == step + 1
