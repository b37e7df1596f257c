from collections import OrderedDict

import numpy as np
import pytest

import microgradbn as mg
from microgradbn import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        self.head = nn.Linear(3, 2, bias=False)
        self.scale = nn.Parameter(mg.ones(2))
        self.register_buffer("count", mg.zeros(1, dtype=mg.int64))
        self.register_buffer("scratch", mg.zeros(2), persistent=False)

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


def test_parameters_buffers_children_in_registration_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["scale", "body.0.weight", "body.0.bias", "head.weight"]
    assert [p.shape for p in net.parameters()] == [(2,), (3, 4), (3,), (2, 3)]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_buffers()] == ["count", "scratch"]
    assert len(list(net.buffers())) == 2
    assert [n for n, _ in net.named_children()] == ["body", "head"]
    assert list(net.children()) == [net.body, net.head]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "head"]
    assert len(list(net.modules())) == 5
    assert all(p.requires_grad and isinstance(p, nn.Parameter) for p in net.parameters())


def test_shared_parameter_listed_once():
    layer = nn.Linear(2, 2)
    seq = nn.Sequential(layer, layer)
    assert len(list(seq.parameters())) == 2


def test_train_eval_and_zero_grad():
    net = Net()
    assert net.training and net.body[1].training
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError):
        net.train("yes")
    net(mg.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_and_sharing():
    net = Net()
    state = net.state_dict()
    assert list(state) == ["scale", "count", "body.0.weight", "body.0.bias", "head.weight"]
    assert not state["head.weight"].requires_grad
    assert np.shares_memory(state["head.weight"].data, net.head.weight.data)
    other = Net()
    result = other.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = mg.randn(3, 4)
    np.testing.assert_array_equal(other(x).data, net(x).data)
    # values are copied in place: the Parameter objects an optimizer holds stay the same
    weight = other.head.weight
    other.load_state_dict({k: v.data * 2 for k, v in state.items()})
    assert other.head.weight is weight
    np.testing.assert_array_equal(weight.data, net.head.weight.data * 2)


def test_load_state_dict_errors_name_the_keys():
    net = Net()
    state = net.state_dict()
    del state["head.weight"]
    state["extra"] = mg.zeros(1)
    with pytest.raises(RuntimeError, match='Missing key.*"head.weight"') as info:
        net.load_state_dict(state)
    assert '"extra"' in str(info.value)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["head.weight"] and result.unexpected_keys == ["extra"]
    state = net.state_dict()
    state["body.0.weight"] = mg.zeros(4, 3)
    with pytest.raises(RuntimeError, match=r"size mismatch for body.0.weight.*\(4, 3\).*\(3, 4\)"):
        net.load_state_dict(state)


def test_to_float_double():
    net = Net()
    weight = net.head.weight
    assert net.double() is net
    assert all(p.dtype == mg.float64 for p in net.parameters()) and net.head.weight is weight
    assert net.count.dtype == mg.int64
    assert net(mg.randn(2, 4, dtype=mg.float64)).dtype == mg.float64
    net.float()
    assert all(p.dtype == mg.float32 for p in net.parameters())
    assert net.to("cpu") is net and net.to(mg.float64).head.weight.dtype == mg.float64
    with pytest.raises(RuntimeError, match="Expected one of cpu, opencl device type .*: cuda"):
        net.to("cuda")
    with pytest.raises(TypeError, match="floating point"):
        net.to(mg.int64)


def test_registration_rules():
    module = nn.Module()
    module.register_parameter("w", None)
    assert list(module.named_parameters()) == []
    module.w = nn.Parameter(mg.zeros(2))
    assert [n for n, _ in module.named_parameters()] == ["w"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        module.w = mg.zeros(2)
    with pytest.raises(KeyError, match="contain"):
        module.register_buffer("a.b", mg.zeros(1))
    with pytest.raises(TypeError, match="Tensor or None"):
        module.register_buffer("b", np.zeros(1))
    module.child = nn.ReLU()
    del module.child
    assert list(module.children()) == []
    del module.w
    assert list(module.parameters()) == []
    with pytest.raises(NotImplementedError, match="forward"):
        module(1)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(mg.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_parameter_shares_storage():
    array = np.zeros(3, np.float32)
    p = nn.Parameter(mg.from_numpy(array))
    assert p.requires_grad and np.shares_memory(p.data, array)
    assert not nn.Parameter(mg.zeros(1), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")


def test_repr_matches_pytorch():
    torch = pytest.importorskip("torch")
    mine = nn.Sequential(OrderedDict(
        fc=nn.Linear(784, 256, bias=False), act=nn.ReLU(),
        inner=nn.Sequential(nn.Linear(256, 10), nn.Dropout(0.2), nn.Flatten()), loss=nn.CrossEntropyLoss()))
    ref = torch.nn.Sequential(OrderedDict(
        fc=torch.nn.Linear(784, 256, bias=False), act=torch.nn.ReLU(),
        inner=torch.nn.Sequential(torch.nn.Linear(256, 10), torch.nn.Dropout(0.2), torch.nn.Flatten()),
        loss=torch.nn.CrossEntropyLoss()))
    assert repr(mine) == repr(ref)
