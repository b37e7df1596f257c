"""The engine and the Tensor API: deep graphs, accumulation, freed saved
tensors, retain_graph, grad modes, in-place rules, creation functions."""
import numpy as np
import pytest

import microgradbn as mg


def test_chain_of_100000_ops_backpropagates_without_recursion():
    x = mg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.backward(np.ones(1, np.float32))
    assert x.grad.tolist() == [1.0]


def test_gradients_accumulate_across_paths_and_calls():
    x = mg.tensor([2.0, 3.0], requires_grad=True)
    y = x * x + x          # x used three times
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, 2 * x.data + 1)
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 2 * x.data + 4)


def test_second_backward_raises_unless_retain_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, 4 * x.data)
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
    node = y.grad_fn.next_functions[0][0]
    assert node.name() == "MulBackward" and node.saved_tensors == ()


def test_backward_of_non_scalar_needs_gradient():
    y = mg.ones(3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        y.backward()
    with pytest.raises(RuntimeError, match="shape"):
        y.backward(np.ones(4))
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.ones(3).sum().backward()


def test_graph_node_attributes():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0])
    y = (a * b).exp().sum()
    assert y.grad_fn.name() == "SumBackward"
    exp_node = y.grad_fn.next_functions[0][0]
    assert exp_node.name() == "ExpBackward" and exp_node.output_meta == ((2,), np.float32)
    mul_node = exp_node.next_functions[0][0]
    (acc, _), (none, _) = mul_node.next_functions
    assert acc.name() == "AccumulateGrad" and acc.variable is a and none is None
    assert mul_node.needs_input_grad == (True, False)
    assert len(mul_node.saved_tensors) == 2
    assert not y.is_leaf and a.is_leaf and y.requires_grad


def test_no_grad_and_enable_grad():
    x = mg.ones(2, requires_grad=True)
    with mg.no_grad():
        y = x * 2
        with mg.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad

    @mg.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad and mg.is_grad_enabled()
    with mg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert mg.is_grad_enabled()


def test_inplace_rules_like_pytorch():
    w = mg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.add_(1)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w.zero_()
    with mg.no_grad():
        w.sub_(mg.ones(3), alpha=0.5)
    np.testing.assert_array_equal(w.data, [0.5, 0.5, 0.5])
    plain = mg.zeros(2, 2)
    plain[0] = 3.0
    plain += 1
    assert plain.tolist() == [[4.0, 4.0], [1.0, 1.0]]


def test_requires_grad_on_integers_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        mg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        mg.arange(3).requires_grad_()


def test_tensor_api_basics():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = mg.from_numpy(a)
    assert t.numpy() is a and t.dtype == mg.float64 and t.shape == (2, 3) and t.ndim == 2
    assert t.device == "cpu" and t.is_leaf and t.grad is None
    assert mg.tensor(3.5).item() == 3.5 and t.tolist() == a.tolist()
    c = t.clone()
    assert c.data is not a and np.array_equal(c.data, a)
    assert t.T.contiguous().data.flags.c_contiguous
    r = mg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        r.numpy()
    assert r.detach().numpy() is r.data


def test_from_numpy_rejects_big_endian_with_a_clear_error():
    big = np.arange(3, dtype=">f4")
    with pytest.raises(TypeError, match="native"):
        mg.from_numpy(big)
    np.testing.assert_array_equal(mg.tensor(big).data, [0, 1, 2])


def test_creation_functions():
    mg.manual_seed(0)
    a = mg.randn(3, 4)
    mg.manual_seed(0)
    assert np.array_equal(a.data, mg.randn(3, 4).data) and a.dtype == mg.float32
    assert mg.zeros(2, 3).shape == (2, 3) and mg.ones((2,), dtype=mg.float64).dtype == mg.float64
    assert mg.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert mg.arange(5).dtype == mg.int64 and mg.arange(0, 1, 0.5).tolist() == [0.0, 0.5]
    assert 0 <= mg.rand(100).data.min() and mg.rand(100).data.max() < 1
    x = mg.ones(2, 3, dtype=mg.float64)
    for like in (mg.zeros_like, mg.ones_like, mg.randn_like, mg.rand_like):
        y = like(x)
        assert y.shape == x.shape and y.dtype == mg.float64
    assert mg.full_like(x, 2).data.sum() == 12


def test_hooks_and_retain_grad():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g * 10)
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad.data, 10 * 2 * y.data)   # after the hook, as PyTorch 2
    np.testing.assert_array_equal(x.grad.data, 2 * 10 * 2 * y.data)
