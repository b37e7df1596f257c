"""Shared checks for the nn tests: float64 finite differences and PyTorch comparison."""
import numpy as np

import microgradbn as mg


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """fn(*tensors) -> Tensor. Compares autograd's gradient of sum(out * w), w random,
    with central differences on every element of every float64 input."""
    tensors = [mg.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(weights)

    def objective():
        with mg.no_grad():
            return float(np.sum(fn(*tensors).data * weights))

    for t in tensors:
        numeric = np.zeros_like(t.data)
        for i in np.ndindex(t.shape):
            keep = t.data[i]
            t.data[i] = keep + eps
            up = objective()
            t.data[i] = keep - eps
            down = objective()
            t.data[i] = keep
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(t.grad.data, numeric, rtol=rtol, atol=atol)


def compare_with_torch(mg_fn, torch_fn, *arrays, rtol=1e-10, atol=1e-12, seed=0):
    """Same inputs through microgradbn and PyTorch (float64): outputs and input grads agree."""
    import torch

    mine = [mg.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out, ref = mg_fn(*mine), torch_fn(*theirs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=rtol, atol=atol)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(weights)
    ref.backward(torch.tensor(weights))
    for m, t in zip(mine, theirs):
        np.testing.assert_allclose(m.grad.data, t.grad.numpy(), rtol=rtol, atol=atol)
