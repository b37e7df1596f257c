"""Tensor.register_hook and retain_grad, each scenario run on microgradbn and,
where installed, on PyTorch, and the two compared."""
import numpy as np
import pytest

import microgradbn as mg


def libraries():
    libs = [mg]
    try:
        import torch
        libs.append(torch)
    except ImportError:
        pass
    return libs


def values(t):
    """A tensor of either library as a float64 NumPy array."""
    return None if t is None else np.asarray(t.detach().numpy(), dtype=np.float64)


def run_everywhere(scenario):
    """scenario(lib) -> dict of results; equal on every library."""
    results = [scenario(lib) for lib in libraries()]
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key in results[0]:
            a, b = results[0][key], other[key]
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=key)
            else:
                assert a == b, key
    return results[0]


def leaf(lib, data):
    return lib.tensor(data, requires_grad=True)


def test_leaf_hook_sees_the_summed_gradient_once_and_may_replace_it():
    def scenario(lib):
        x = leaf(lib, [1.0, 2.0])
        seen = []
        x.register_hook(lambda g: seen.append(values(g)))
        ((x * x) + x * 3.0).sum().backward()
        x2 = leaf(lib, [1.0, 2.0])
        x2.register_hook(lambda g: g * 10.0)
        (x2 * x2).sum().backward()
        return {"calls": len(seen), "seen": seen[0], "grad": values(x.grad), "replaced": values(x2.grad)}

    r = run_everywhere(scenario)
    assert r["calls"] == 1
    np.testing.assert_allclose(r["seen"], [5.0, 7.0])
    np.testing.assert_allclose(r["replaced"], [20.0, 40.0])


def test_hook_gets_a_tensor_that_does_not_require_grad():
    x = leaf(mg, [1.0, 2.0])
    kinds = []
    x.register_hook(lambda g: kinds.append((type(g), g.requires_grad, g.shape)))
    (x * 2.0).sum().backward()
    assert kinds == [(mg.Tensor, False, (2,))]


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_non_leaf_hook_changes_what_flows_upstream_and_runs_once():
    def scenario(lib):
        a = leaf(lib, [1.0, -2.0, 3.0])
        h = a * 2.0
        calls = []

        def hook(g):
            calls.append(values(g))
            return g * 3.0

        h.register_hook(hook)
        (h * h + h).sum().backward()  # h is used twice: one call with the sum
        return {"calls": len(calls), "seen": calls[0], "a.grad": values(a.grad), "h.grad": h.grad is None}

    r = run_everywhere(scenario)
    assert r["calls"] == 1 and r["h.grad"]
    np.testing.assert_allclose(r["a.grad"], 3.0 * (2 * np.array([2.0, -4.0, 6.0]) + 1) * 2.0)


def test_hooks_run_in_registration_order_each_on_the_previous_result():
    def scenario(lib):
        x = leaf(lib, [1.0, 2.0])
        h = x * 1.0
        log = []
        h.register_hook(lambda g: log.append(("first", values(g))) or g + 1.0)
        h.register_hook(lambda g: log.append(("second", values(g))) or g * 10.0)
        h.register_hook(lambda g: log.append(("third", values(g))))
        h.sum().backward()
        return {"order": [name for name, _ in log], "second saw": log[1][1], "third saw": log[2][1],
                "x.grad": values(x.grad)}

    r = run_everywhere(scenario)
    assert r["order"] == ["first", "second", "third"]
    np.testing.assert_allclose(r["second saw"], [2.0, 2.0])
    np.testing.assert_allclose(r["x.grad"], [20.0, 20.0])


def test_removing_hooks():
    def scenario(lib):
        x = leaf(lib, [1.0, 2.0])
        h = x * 1.0
        keep = h.register_hook(lambda g: g * 2.0)
        gone = h.register_hook(lambda g: g * 100.0)
        gone.remove()
        gone.remove()  # a second remove does nothing
        h.sum().backward(retain_graph=True)
        first = values(x.grad)
        keep.remove()
        x.grad = None
        h.sum().backward()
        leaf_hook = x.register_hook(lambda g: g * 5.0)
        leaf_hook.remove()
        x.grad = None
        (x * 1.0).sum().backward()
        return {"first": first, "after removing all": values(x.grad)}

    r = run_everywhere(scenario)
    np.testing.assert_allclose(r["first"], [2.0, 2.0])
    np.testing.assert_allclose(r["after removing all"], [1.0, 1.0])


def test_hooks_on_the_output_and_on_a_leaf_that_is_the_output():
    def scenario(lib):
        a = leaf(lib, [1.0, 2.0])
        y = (a * 2.0).sum()
        y.register_hook(lambda g: g * 5.0)
        y.backward()
        x = lib.tensor(2.0, requires_grad=True)
        x.register_hook(lambda g: g * 10.0)
        x.backward()
        return {"a.grad": values(a.grad), "x.grad": values(x.grad)}

    r = run_everywhere(scenario)
    np.testing.assert_allclose(r["a.grad"], [10.0, 10.0])
    assert r["x.grad"] == 10.0


def test_leaf_hooks_stay_across_graphs_and_unreached_hooks_do_not_run():
    def scenario(lib):
        x = leaf(lib, [1.0, 2.0])
        calls = []
        x.register_hook(lambda g: calls.append(1))
        for _ in range(3):
            (x * 3.0).sum().backward()
        unused = x * 7.0
        unused_calls = []
        unused.register_hook(lambda g: unused_calls.append(1))
        (x * 1.0).sum().backward()
        return {"leaf calls": len(calls), "unused calls": len(unused_calls), "x.grad": values(x.grad)}

    r = run_everywhere(scenario)
    assert r["leaf calls"] == 4 and r["unused calls"] == 0
    np.testing.assert_allclose(r["x.grad"], [10.0, 10.0])


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_retain_grad_on_non_leaves_accumulates_and_leaves_are_unaffected():
    def scenario(lib):
        a = leaf(lib, [1.0, 2.0])
        h = a * 2.0
        g = h * 1.0
        flags = (h.retains_grad, a.retains_grad)
        h.retain_grad()
        h.retain_grad()  # twice is once
        a.retain_grad()  # a leaf keeps its grad anyway: nothing changes
        y = (h * h).sum()
        y.backward(retain_graph=True)
        once = values(h.grad)
        y.backward()
        return {"flags before": flags, "flags after": (h.retains_grad, a.retains_grad),
                "once": once, "twice": values(h.grad), "g.grad is None": g.grad is None,
                "a.grad": values(a.grad)}

    r = run_everywhere(scenario)
    assert r["flags before"] == (False, False) and r["flags after"] == (True, False)
    np.testing.assert_allclose(r["once"], [4.0, 8.0])
    np.testing.assert_allclose(r["twice"], [8.0, 16.0])
    assert r["g.grad is None"]


@pytest.mark.parametrize("retain_first", [True, False])
def test_retained_grad_is_the_hooked_gradient_whatever_the_order(retain_first):
    def scenario(lib):
        a = leaf(lib, [1.0, 2.0])
        h = a * 2.0
        if retain_first:
            h.retain_grad()
        h.register_hook(lambda g: g * 100.0)
        if not retain_first:
            h.retain_grad()
        (h * h).sum().backward()
        return {"h.grad": values(h.grad), "a.grad": values(a.grad)}

    r = run_everywhere(scenario)
    np.testing.assert_allclose(r["h.grad"], [400.0, 800.0])
    np.testing.assert_allclose(r["a.grad"], [800.0, 1600.0])


def test_retain_grad_on_the_output_itself():
    def scenario(lib):
        a = leaf(lib, [1.0, 2.0])
        y = (a * 3.0).sum()
        y.retain_grad()
        y.backward()
        return {"y.grad": values(y.grad)}

    assert run_everywhere(scenario)["y.grad"] == 1.0


def test_hook_and_retain_grad_errors():
    c = mg.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        c.register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        c.retain_grad()
    x = leaf(mg, [1.0, 2.0])
    h = x * 1.0
    h.register_hook(lambda g: mg.ones(3))
    with pytest.raises(RuntimeError, match="changed the size"):
        h.sum().backward()
    x = leaf(mg, [1.0, 2.0])
    h = x * 1.0
    h.register_hook(lambda g: mg.tensor(g.data, dtype=mg.float64))
    with pytest.raises(RuntimeError, match="changed the type"):
        h.sum().backward()
