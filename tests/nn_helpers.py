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


def train_side_by_side(build, optimizer, kwargs, x, y, x_test, *, batch_size, seed, steps=20):
    """Trains build(mg.nn) and build(torch.nn) in float64 from the same weights on the same
    batches of (x, y) with optimizer `optimizer` (a name in both optim modules): every step's
    loss, the eval-mode outputs on x_test and the final state_dict agree to 1e-6.
    Returns microgradbn's losses."""
    import torch

    mg.manual_seed(seed)
    mine = build(mg.nn).double()
    theirs = build(torch.nn).double()
    theirs.load_state_dict({k: torch.from_numpy(v.data.copy()) for k, v in mine.state_dict().items()})
    opt = getattr(mg.optim, optimizer)(mine.parameters(), **kwargs)
    ref = getattr(torch.optim, optimizer)(theirs.parameters(), **kwargs)
    order = np.random.default_rng(seed).permutation(len(y))
    losses = []
    for step in range(steps):
        rows = order[step * batch_size:(step + 1) * batch_size]
        loss = mg.nn.functional.cross_entropy(mine(mg.tensor(x[rows])), mg.tensor(y[rows]))
        ref_loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x[rows])),
                                                     torch.from_numpy(y[rows]))
        for o, l in ((opt, loss), (ref, ref_loss)):
            o.zero_grad()
            l.backward()
            o.step()
        np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-6)
        losses.append(loss.item())
    mine.eval()
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x_test)).numpy()
    np.testing.assert_allclose(mine(mg.tensor(x_test)).data, expected, rtol=1e-6, atol=1e-9)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(mine.state_dict()[key].data, value.numpy(), rtol=1e-6, atol=1e-9)
    return losses
