"""Batch norm, modules, optimizers and training on the OpenCL device against
the CPU path: F.batch_norm and its running statistics, the BatchNorm
modules, Module.to, parameter init, save/load, every optimizer, and the
train CLI's --device (tensors and ops: test_opencl_tensor.py).

Runs on whatever OpenCL device is present (PoCL's CPU device in CI) and
skips without one. Tolerances: opencl_helpers.py.
"""
import numpy as np
import pytest

import microgradbn as mg
from microgradbn import nn, optim
from microgradbn._backend import opencl as cl
from microgradbn.nn import functional as F
from opencl_helpers import close, dtypes, needs_device, rand, same_on_both


# ---- batch normalization --------------------------------------------------------------

BN_SHAPES = [(3, 1), (7, 33), (33, 7, 5), (4, 3, 5, 7)]


@needs_device
@dtypes
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_forward_and_grads_match_cpu(shape, training, affine, dtype):
    x, c = rand(*shape) * 3 + 2, shape[1]

    def bn(x, *weight_bias):
        running = [mg.tensor(rand(c, seed=7), dtype=dtype, device=x.device),
                   mg.tensor(rand(c, seed=8, low=0.5), dtype=dtype, device=x.device)]
        return F.batch_norm(x, *running, *weight_bias, training=training)
    same_on_both(bn, [x, rand(c, seed=1), rand(c, seed=2)] if affine else [x], dtype)


@needs_device
@dtypes
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_updates_running_stats_on_device(shape, dtype):
    x, c = rand(*shape) * 3 + 2, shape[1]
    stats = {}
    for device in ("cpu", "opencl"):
        running_mean = mg.tensor(rand(c, seed=7), dtype=dtype, device=device)
        running_var = mg.tensor(rand(c, seed=8, low=0.5), dtype=dtype, device=device)
        for step in range(2):
            F.batch_norm(mg.tensor(x + step, dtype=dtype, device=device), running_mean, running_var,
                         training=True, momentum=0.3)
        assert running_mean.device == running_var.device == ("cpu" if device == "cpu" else "opencl:0")
        stats[device] = running_mean.numpy(), running_var.numpy()
    close(stats["opencl"][0], stats["cpu"][0], dtype)
    close(stats["opencl"][1], stats["cpu"][1], dtype)


@needs_device
@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (16, 5)), (nn.BatchNorm1d, (8, 5, 3)),
                                        (nn.BatchNorm2d, (4, 5, 3, 3))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_modules_on_device(cls, shape, momentum):
    x = rand(*shape).astype(np.float32) * 2 + 1
    results = {}
    for device in ("cpu", "opencl"):
        bn = cls(5, momentum=momentum).to(device)
        for _ in range(3):
            y = bn(mg.tensor(x, device=device))
        bn.eval()
        results[device] = [y.detach().numpy(), bn(mg.tensor(x, device=device)).detach().numpy(),
                           bn.running_mean.numpy(), bn.running_var.numpy()]
    for a, b in zip(results["opencl"], results["cpu"]):
        close(a, b, np.float32)


# ---- modules, optimizers ------------------------------------------------------------

def make_mlp(bn=True):
    mg.manual_seed(0)
    layers = [nn.Linear(20, 33, bias=not bn)] + ([nn.BatchNorm1d(33)] if bn else []) + [nn.ReLU(), nn.Linear(33, 5)]
    return nn.Sequential(*layers)


@needs_device
def test_module_to_moves_parameters_and_buffers_in_place():
    model = make_mlp()
    params = list(model.parameters())
    opt = optim.SGD(model.parameters(), lr=0.1)       # made before the move, as PyTorch allows
    x = mg.randn(8, 20)
    F.cross_entropy(model(x), mg.tensor(np.arange(8) % 5)).backward()
    assert model.to("opencl") is model
    assert list(model.parameters()) == params and all(p.device == "opencl:0" for p in params)
    assert all(p.grad.device == "opencl:0" for p in params)
    bn = model[1]
    assert bn.running_mean.device == bn.running_var.device == "opencl:0"
    assert bn.num_batches_tracked.device == "cpu"       # int64 stays on the CPU
    opt.step()
    model(x.to("opencl"))
    assert int(bn.num_batches_tracked.item()) == 2
    state = model.state_dict()
    assert all(isinstance(v.numpy(), np.ndarray) for v in state.values())
    model.to("cpu")
    assert all(p.device == "cpu" and p.grad.device == "cpu" for p in params) and bn.running_var.device == "cpu"
    other = make_mlp().to("opencl")
    other.load_state_dict(state)
    for (k, mine), theirs in zip(other.state_dict().items(), state.values()):
        assert np.array_equal(mine.numpy(), theirs.numpy()), k
    model.to("opencl").zero_grad(set_to_none=False)
    assert all(np.array_equal(p.grad.numpy(), np.zeros(p.shape)) for p in params)


@needs_device
def test_parameters_init_and_copies_of_device_tensors():
    d = mg.tensor([1.0, 2.0], device="opencl")
    p = nn.Parameter(d)
    assert p.data is d.data and p.requires_grad and p.device == "opencl:0"   # shares the storage
    copy = mg.tensor(d)
    assert copy.device == "cpu" and copy.tolist() == [1.0, 2.0]
    layer = nn.Linear(4, 3).to("opencl")
    nn.init.zeros_(layer.bias)
    nn.init.constant_(layer.weight, 0.5)
    assert np.array_equal(layer.bias.detach().numpy(), np.zeros(3)) and layer.bias.device == "opencl:0"
    assert np.array_equal(layer.weight.detach().numpy(), np.full((3, 4), 0.5, np.float32))
    host = nn.Linear(4, 3)
    for weight in (layer.weight, host.weight):      # the same draws on either device
        mg.manual_seed(1)
        nn.init.kaiming_uniform_(weight)
    assert np.array_equal(layer.weight.detach().numpy(), host.weight.detach().numpy())
    bn = nn.BatchNorm1d(3).to("opencl")
    bn(mg.randn(4, 3, device="opencl"))
    bn.reset_running_stats()
    assert np.array_equal(bn.running_mean.numpy(), np.zeros(3)) and np.array_equal(bn.running_var.numpy(), np.ones(3))
    assert bn.num_batches_tracked.item() == 0


@needs_device
def test_save_and_load_from_device(tmp_path):
    model = make_mlp().to("opencl")
    mg.save(model.state_dict(), tmp_path / "m.npz")
    loaded = mg.load(tmp_path / "m.npz")
    fresh = make_mlp()
    fresh.load_state_dict(loaded)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy()), k


OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "sgd_nesterov": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: optim.Adam(p, lr=1e-2, weight_decay=1e-3),
    "adamw": lambda p: optim.AdamW(p, lr=1e-2),
}


def train_steps(device, make_optimizer, bn=True, steps=4):
    model = make_mlp(bn).to(device)
    opt = make_optimizer(model.parameters())
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x = mg.from_numpy(rng.standard_normal((16, 20)).astype(np.float32)).to(device)
        loss = F.cross_entropy(model(x), mg.from_numpy(rng.integers(0, 5, 16)).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with mg.no_grad():
        out = model(mg.from_numpy(rng.standard_normal((5, 20)).astype(np.float32)).to(device))
    return np.array(losses, np.float32), out.numpy(), [t.numpy() for t in model.state_dict().values()]


@needs_device
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_mlp_with_bn_trains_the_same_on_device(name):
    cpu_run, device_run = (train_steps(d, OPTIMIZERS[name]) for d in ("cpu", "opencl"))
    close(device_run[0], cpu_run[0], np.float32, tol=1e-5)
    close(device_run[1], cpu_run[1], np.float32, tol=1e-5)
    for a, b in zip(device_run[2], cpu_run[2]):
        if a.dtype == np.float32:
            close(a, b, np.float32, tol=1e-5)
        else:
            assert np.array_equal(a, b)                       # num_batches_tracked


@needs_device
def test_optimizer_state_dict_round_trip_on_device():
    model = make_mlp(bn=False).to("opencl")
    opt = optim.Adam(model.parameters(), lr=1e-2)
    F.cross_entropy(model(mg.randn(4, 20, device="opencl")), mg.tensor([0, 1, 2, 3], device="opencl")).backward()
    opt.step()
    saved = opt.state_dict()
    again = optim.Adam(model.parameters(), lr=1e-2)
    again.load_state_dict(saved)
    for key, state in again.state.items():
        assert isinstance(state["exp_avg"], cl.ClArray) and state["step"] == 1
        assert np.array_equal(state["exp_avg"].numpy(), opt.state[key]["exp_avg"].numpy())


# ---- the train CLI -------------------------------------------------------------------

@needs_device
def test_train_cli_on_device(capsys):
    from microgradbn import train
    args = ["--epochs", "1", "--train-size", "256", "--batch-size", "64", "--no-progress", "--seed", "0"]
    assert train.main(args + ["--device", "opencl"]) == 0
    on_device = capsys.readouterr().out
    assert "mlp with BN on opencl" in on_device and "final test accuracy" in on_device
    train.main(args)
    on_cpu = capsys.readouterr().out
    # the same training on either device: the epoch line's four figures agree (to printing precision)
    epoch = [line for line in on_device.splitlines() if line.startswith("epoch")]
    assert epoch == [line for line in on_cpu.splitlines() if line.startswith("epoch")]


@needs_device
def test_train_cli_cnn_on_device(capsys):
    from microgradbn import train
    args = ["--model", "cnn", "--epochs", "1", "--train-size", "64", "--batch-size", "32", "--no-progress"]
    assert train.main(args + ["--device", "opencl"]) == 0
    on_device = capsys.readouterr().out
    train.main(args)
    on_cpu = capsys.readouterr().out
    assert "cnn with BN on opencl" in on_device
    epoch = [line for line in on_device.splitlines() if line.startswith("epoch")]
    assert epoch == [line for line in on_cpu.splitlines() if line.startswith("epoch")]
