import tracemalloc

import numpy as np
import pytest

import microgradbn as mg
from microgradbn import nn, optim

rng = np.random.default_rng(0)
SHAPES = [(7, 5), (33,), (1,)]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=1e-3, nesterov=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, betas=(0.5, 0.9), weight_decay=0.3)),
]


def _run_both(name, kwargs, steps=6):
    torch = pytest.importorskip("torch")
    start = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    mine = [nn.Parameter(mg.tensor(a.copy())) for a in start]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in start]
    opt, ref = getattr(optim, name)(mine, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    for step_grads in grads:
        for p, t, g in zip(mine, theirs, step_grads):
            p.grad, t.grad = mg.tensor(g), torch.tensor(g)
        opt.step()
        ref.step()
    return mine, theirs, opt, ref


@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_update_matches_torch(name, kwargs):
    mine, theirs, _, _ = _run_both(name, kwargs)
    for p, t in zip(mine, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-13, atol=1e-14)


def test_state_dict_layout_and_resume_matches_torch():
    torch = pytest.importorskip("torch")
    mine, theirs, opt, ref = _run_both("Adam", dict(lr=1e-2, weight_decay=0.01), steps=3)
    state, ref_state = opt.state_dict(), ref.state_dict()
    assert state["param_groups"][0]["params"] == ref_state["param_groups"][0]["params"] == [0, 1, 2]
    assert state["state"][1]["step"] == 3
    np.testing.assert_allclose(state["state"][1]["exp_avg_sq"], ref_state["state"][1]["exp_avg_sq"].numpy(),
                               rtol=1e-13)
    # a fresh optimizer loaded from the saved state continues exactly where the first one was
    fresh = optim.Adam(mine, lr=0.5)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 1e-2
    g = [rng.standard_normal(s) for s in SHAPES]
    for p, t, gi in zip(mine, theirs, g):
        p.grad, t.grad = mg.tensor(gi), torch.tensor(gi)
    fresh.step()
    ref.step()
    for p, t in zip(mine, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-13, atol=1e-14)


def test_state_dict_through_save_load(tmp_path):
    params = [nn.Parameter(mg.tensor(rng.standard_normal(s))) for s in SHAPES]
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = mg.ones_like(p)
    opt.step()
    mg.save({"state": opt.state_dict()["state"]}, tmp_path / "opt.npz")
    loaded = mg.load(tmp_path / "opt.npz")
    np.testing.assert_array_equal(loaded["state.0.momentum_buffer"].data, np.ones(SHAPES[0]))


def test_param_groups_have_their_own_hyperparameters():
    a, b = nn.Parameter(mg.zeros(2)), nn.Parameter(mg.zeros(2))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 1.0}], lr=0.1)
    a.grad = b.grad = mg.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, -0.1)
    np.testing.assert_allclose(b.data, -1.0)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_zero_grad_and_skipping_params_without_grad():
    a, b = nn.Parameter(mg.ones(3)), nn.Parameter(mg.ones(3))
    opt = optim.Adam([a, b])
    a.grad = mg.ones(3)
    opt.step()
    np.testing.assert_array_equal(b.data, 1.0)
    assert not np.all(a.data == 1.0)
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not a.grad.data.any()
    opt.zero_grad()
    assert a.grad is None


def test_updates_in_place_without_graph():
    layer = nn.Linear(4, 3)
    weight = layer.weight.data
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    layer(mg.randn(2, 4)).sum().backward()
    opt.step()
    assert layer.weight.data is weight and layer.weight.grad_fn is None


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-1), "learning rate"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), "momentum"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "beta"),
    (lambda p: optim.Adam(p, eps=-1), "epsilon"),
    (lambda p: optim.AdamW(p, weight_decay=-1), "weight_decay"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
])
def test_bad_hyperparameters(make, message):
    with pytest.raises(ValueError, match=message):
        make([nn.Parameter(mg.zeros(1))])


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
    ("Adam", dict(lr=1e-3, weight_decay=1e-3)),
    ("AdamW", dict(lr=1e-3)),
])
def test_step_allocates_no_parameter_sized_temporaries(name, kwargs):
    params = [nn.Parameter(mg.zeros(100_000, dtype=mg.float64)), nn.Parameter(mg.zeros(3, 7))]
    for p in params:
        p.grad = mg.ones_like(p)
    opt = getattr(optim, name)(params, **kwargs)
    opt.step()  # the state and the scratch buffer are made here
    tracemalloc.start()
    try:
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000 * 8 // 4, f"{name}.step() allocated {peak} bytes at its peak"


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
    lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=1e-2),
    lambda ps: optim.AdamW(ps, lr=1e-2),
])
def test_a_non_contiguous_parameter_steps_as_a_contiguous_one(make):
    rng = np.random.default_rng(3)
    values = rng.standard_normal((7, 5)).astype(np.float32).T       # Fortran-ordered (5, 7)
    strided = mg.tensor(values, requires_grad=True)
    plain = mg.tensor(np.ascontiguousarray(values), requires_grad=True)
    storage = strided.data
    assert not storage.flags.c_contiguous
    opts = make([strided]), make([plain])
    for _ in range(3):
        grad = rng.standard_normal((5, 7)).astype(np.float32)
        for param, opt in zip((strided, plain), opts):
            param.grad = mg.tensor(grad)
            opt.step()
    np.testing.assert_array_equal(strided.data, plain.data)
    assert strided.data is storage                    # updated in place
