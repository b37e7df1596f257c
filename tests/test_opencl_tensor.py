"""Tensors on the OpenCL device: creation and moves, device errors, ops and
their gradients against the CPU path, in-place ops (batch norm, modules,
optimizers and training: test_opencl_nn.py).

Runs on whatever OpenCL device is present (PoCL's CPU device in CI) and
skips without one; the no-runtime and no-fp64 behaviour is tested in
subprocesses, which need no device. Tolerances: opencl_helpers.py.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import microgradbn as mg
from microgradbn import nn
from microgradbn._backend import opencl as cl
from microgradbn.nn import functional as F
from opencl_helpers import DTYPES, dtypes, needs_device, rand, same_on_both


# ---- creation and moves ---------------------------------------------------------

@needs_device
@dtypes
def test_tensor_on_device_and_back(dtype):
    a = rand(7, 33).astype(dtype)
    for name in ("opencl", "opencl:0"):
        t = mg.tensor(a, device=name)
        assert t.device == "opencl:0" and t.dtype == dtype and t.shape == (7, 33)
        assert isinstance(t.data, cl.ClArray)
        host = t.numpy()
        assert isinstance(host, np.ndarray) and np.array_equal(host, a)
        host[0, 0] = 123                         # a copy: the device keeps its values
        assert t.numpy()[0, 0] == a[0, 0]
        back = t.to("cpu")
        assert back.device == "cpu" and np.array_equal(back.numpy(), a)
        assert np.array_equal(t.cpu().numpy(), a) and t.to("opencl") is t
    assert mg.tensor([[1.5, 2.5]], device="opencl").tolist() == [[1.5, 2.5]]
    assert mg.tensor(3.25, device="opencl").item() == 3.25
    assert float(mg.tensor([2.0], device="opencl")) == 2.0
    assert "device='opencl:0'" in repr(mg.tensor([1.0], device="opencl"))
    assert np.array_equal(np.asarray(mg.tensor(a, device="opencl")), a)


def test_cpu_numpy_stays_zero_copy():
    a = np.ones(4, np.float32)
    t = mg.from_numpy(a)
    assert t.device == "cpu" and t.numpy() is a and t.cpu() is t and t.to("cpu") is t


@needs_device
def test_creation_functions_take_device():
    for t in (mg.zeros(3, 5, device="opencl"), mg.ones(3, 5, device="opencl"), mg.empty(3, 5, device="opencl"),
              mg.full((3, 5), 2.5, device="opencl"), mg.randn(3, 5, device="opencl"),
              mg.rand(3, 5, device="opencl")):
        assert t.device == "opencl:0" and t.shape == (3, 5) and t.dtype == mg.float32
    assert np.array_equal(mg.full((2, 3), 2.5, device="opencl").numpy(), np.full((2, 3), 2.5, np.float32))
    assert np.array_equal(mg.ones(2, device="opencl").numpy(), [1, 1])
    assert np.array_equal(mg.arange(5, dtype=mg.float32, device="opencl").numpy(), np.arange(5))
    mg.manual_seed(3)
    host = mg.randn(4, 4)
    mg.manual_seed(3)
    assert np.array_equal(mg.randn(4, 4, device="opencl").numpy(), host.numpy())   # same draws
    like = mg.zeros_like(mg.ones(2, device="opencl"))
    assert like.device == "opencl:0" and np.array_equal(like.numpy(), [0, 0])
    leaf = mg.ones(3, device="opencl", requires_grad=True)
    assert leaf.requires_grad and leaf.is_leaf


@needs_device
def test_move_is_differentiable():
    x = mg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = (x.to("opencl") * 2.0).to("cpu").sum()
    y.backward()
    assert x.grad.device == "cpu" and np.array_equal(x.grad.numpy(), [2, 2, 2])
    d = mg.tensor([1.0, 2.0], device="opencl", requires_grad=True)
    (d.cpu() * d.cpu()).sum().backward()
    assert d.grad.device == "opencl:0" and np.array_equal(d.grad.numpy(), [2, 4])


@needs_device
def test_to_with_dtype_casts_on_the_cpu_side():
    a = np.arange(6.0).reshape(2, 3)
    t = mg.tensor(a).to("opencl", mg.float32)
    assert t.device == "opencl:0" and t.dtype == mg.float32
    back = t.to("cpu", mg.float64)
    assert back.device == "cpu" and back.dtype == mg.float64 and np.array_equal(back.numpy(), a)


@needs_device
def test_device_names_and_dtypes_fail_clearly():
    with pytest.raises(RuntimeError, match="Expected one of cpu, opencl device type at start of device string: cuda"):
        mg.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="'opencl:7' does not exist: this machine has"):
        mg.zeros(2, device="opencl:7")
    for values in ([1, -2, 3], [True, False]):      # int64 and bool live there too
        t = mg.tensor(values).to("opencl")
        assert t.device == "opencl:0" and t.tolist() == values and t.dtype == mg.tensor(values).dtype
    with pytest.raises(RuntimeError, match="requires grad"):
        mg.ones(2, device="opencl", requires_grad=True).numpy()
    with pytest.raises(BufferError, match="use .cpu"):
        np.from_dlpack(mg.ones(2, device="opencl"))


@needs_device
def test_mixing_devices_is_an_error():
    a, b = mg.ones(3), mg.ones(3, device="opencl")
    message = "Expected all tensors to be on the same device, but found at least two devices, "
    for fn in (lambda: a + b, lambda: b * a, lambda: b - a, lambda: a / b):
        with pytest.raises(RuntimeError, match=message + r"(cpu and opencl:0|opencl:0 and cpu)!"):
            fn()
    with pytest.raises(RuntimeError, match=message):
        mg.ones(2, 3) @ mg.ones(3, 2, device="opencl")
    with pytest.raises(RuntimeError, match=message):
        F.linear(mg.ones(2, 3, device="opencl"), mg.ones(4, 3))
    with pytest.raises(RuntimeError, match=message):
        F.batch_norm(mg.ones(4, 3, device="opencl"), mg.zeros(3), mg.ones(3), training=True)
    with pytest.raises(RuntimeError, match=message):
        F.mse_loss(mg.ones(3, device="opencl"), mg.ones(3))
    with pytest.raises(RuntimeError, match=message):
        b.add_(a)


@needs_device
def test_ops_without_a_device_kernel_say_so():
    x = mg.ones(3, 4, device="opencl", requires_grad=True)
    cases = {
        "indexing with arrays or masks": lambda: x[[0, 2]],
        "index assignment with arrays or masks": lambda: x.detach().__setitem__([0, 1], 1.0),
        "argmax": lambda: x.argmax(), "argmin": lambda: x.argmin(1), "max\\(dim\\)": lambda: x.max(1),
    }
    for name, fn in cases.items():
        with pytest.raises(NotImplementedError, match=f"{name} is not supported on device opencl yet"):
            fn()


@needs_device
@dtypes
def test_dropout_draws_the_cpu_mask_for_the_same_seed(dtype):
    def dropped(x):
        mg.manual_seed(7)
        return F.dropout(x, p=0.3) * 2 + nn.Dropout(0.5)(x)
    same_on_both(dropped, [rand(33, 7) + 3], dtype)
    y = F.dropout(mg.ones(1000, dtype=dtype, device="opencl"), p=0.3).numpy()
    assert 0.2 < np.mean(y == 0) < 0.4
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)


# ---- ops against the CPU path ------------------------------------------------------

BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b}
SHAPE_PAIRS = [((1,), (1,)), ((7,), (7,)), ((33, 7), (7,)), ((1000,), (1,)), ((4, 1, 5), (3, 1)), ((), (5, 2))]


@needs_device
@dtypes
@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_binary_ops_match_cpu(name, shapes, dtype):
    a, b = rand(*shapes[0]), rand(*shapes[1], seed=1, low=0.5)
    same_on_both(BINARY[name], [a, b], dtype)


@needs_device
@dtypes
def test_numbers_and_scalar_forms_match_cpu(dtype):
    a = rand(33, 7)
    same_on_both(lambda x: (2.0 - x) * 3 + x / 4 - 1.5 / (x * x + 1), [a], dtype)
    same_on_both(lambda x: -x + x.neg(), [a], dtype)


UNARY = {
    "exp": lambda x: x.exp(), "log": lambda x: (x.abs() + 0.5).log(), "sqrt": lambda x: (x.abs() + 0.1).sqrt(),
    "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(), "relu": lambda x: x.relu(),
    "abs": lambda x: x.abs(), "clamp": lambda x: x.clamp(-0.5, 0.7), "clamp_min": lambda x: x.clamp(min=0.1),
    "F.relu": F.relu,
}


@needs_device
@dtypes
@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("size", [1, 7, 33, 1000])
def test_unary_ops_match_cpu(name, size, dtype):
    same_on_both(UNARY[name], [rand(size)], dtype)


REDUCE = {
    "sum": lambda x: x.sum(), "sum0": lambda x: x.sum(0), "sum12k": lambda x: x.sum((1, 2), keepdim=True),
    "mean": lambda x: x.mean(), "mean1": lambda x: x.mean(1), "var": lambda x: x.var(),
    "var0b": lambda x: x.var(0, correction=0), "amax": lambda x: x.amax((0, 2)), "amin": lambda x: x.amin(),
    "softmax": lambda x: x.softmax(2), "softmax0": lambda x: x.softmax(0),
    "log_softmax": lambda x: x.log_softmax(-1), "log_softmax1": lambda x: x.log_softmax(1),
}


@needs_device
@dtypes
@pytest.mark.parametrize("name", list(REDUCE))
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 33), (2, 1000, 1)], ids=str)
def test_reductions_and_softmax_match_cpu(name, shape, dtype):
    grad = not name.startswith("am")               # amax/amin backward needs comparisons on the device
    same_on_both(REDUCE[name], [rand(*shape)], dtype, grad=grad)


MATMUL_SHAPES = [((1, 1), (1, 1)), ((7, 33), (33, 5)), ((33,), (33, 7)), ((7, 33), (33,)), ((33,), (33,)),
                 ((2, 3, 7, 5), (5, 4)), ((3, 1, 4, 5), (2, 5, 6)), ((64, 100), (100, 65))]


@needs_device
@dtypes
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_matches_cpu(shapes, dtype):
    a, b = rand(*shapes[0]), rand(*shapes[1], seed=1)
    same_on_both(lambda x, y: x @ y, [a, b], dtype, tol=1e-5 if dtype == np.float32 else 1e-12)


@needs_device
@dtypes
def test_shape_ops_match_cpu(dtype):
    a = rand(3, 4, 5)
    same_on_both(lambda x: x.reshape(12, 5).view(5, 12).flatten() * 2.0, [a], dtype)
    same_on_both(lambda x: x.unsqueeze(1).squeeze(1).expand(2, 3, 4, 5) * 1.5, [a], dtype)
    same_on_both(lambda x: x.contiguous().clone() + x, [a], dtype)
    same_on_both(lambda x: F.flatten(x, 1) * 3.0, [a], dtype)


@needs_device
@dtypes
def test_non_contiguous_cpu_input_moves_as_its_values(dtype):
    base = rand(9, 8).astype(dtype)
    for view in (base.T, base[:, ::2], base[::-1]):
        t = mg.from_numpy(view).to("opencl")
        assert np.array_equal(t.numpy(), view)
        same_on_both(lambda x: (x * x).sum(0), [view], dtype)


@needs_device
@dtypes
@pytest.mark.parametrize("bias", [True, False])
def test_linear_and_losses_match_cpu(bias, dtype):
    x, w, b = rand(33, 7), rand(5, 7, seed=1), rand(5, seed=2)
    target = np.random.default_rng(3).integers(0, 5, 33)
    if bias:
        same_on_both(lambda x, w, b: F.linear(x, w, b), [x, w, b], dtype)
    else:
        same_on_both(lambda x, w: F.linear(x, w), [x, w], dtype)
    for reduction in ("mean", "sum", "none"):
        same_on_both(lambda x, w: F.cross_entropy(F.linear(x, w), mg.tensor(target, device=x.device),
                                                  reduction=reduction), [x, w], dtype)
        same_on_both(lambda x: F.nll_loss(x.log_softmax(1), mg.tensor(target, device=x.device), reduction=reduction),
                     [x], dtype)
        same_on_both(lambda x, y: F.mse_loss(x, y, reduction=reduction), [x, rand(33, 7, seed=5)], dtype)


@needs_device
@dtypes
def test_views_indexing_cat_stack_match_cpu(dtype):
    a, b = rand(4, 5, 6), rand(4, 5, 6, seed=1)
    same_on_both(lambda x: x.T * 2.0, [a], dtype)
    same_on_both(lambda x: x.permute(2, 0, 1).transpose(0, 1) @ mg.ones(5, 3, dtype=dtype, device=x.device), [a], dtype)
    same_on_both(lambda x: x[1:, ::2, -1] + x[0, :3, 1:4], [a], dtype)
    same_on_both(lambda x: x[::-1, None, ..., 2] * 1.5, [a], dtype)
    same_on_both(lambda x: x[3, 4, 5] * x[0], [a], dtype)
    same_on_both(lambda x, y: mg.cat([x, y * 2.0, x[:, :1]], 1), [a, b], dtype)
    same_on_both(lambda x, y: mg.stack([x, y], 2) * 2.0 + mg.stack([y, x], -2), [a, b], dtype)
    if np.float64 in DTYPES:                        # a cast there and back (float64 needs cl_khr_fp64)
        other = mg.float64 if dtype == np.float32 else mg.float32
        same_on_both(lambda x: x.to(other).to(dtype) * 2.0, [a], dtype)


@needs_device
@dtypes
def test_comparisons_where_pow_match_cpu(dtype):
    a, b = rand(33, 7), rand(7, seed=1)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        got = getattr(mg, name)(mg.tensor(a, dtype=dtype, device="opencl"), mg.tensor(b, dtype=dtype, device="opencl"))
        want = getattr(mg, name)(mg.tensor(a, dtype=dtype), mg.tensor(b, dtype=dtype))
        assert got.device == "opencl:0" and got.dtype == mg.bool_ and np.array_equal(got.numpy(), want.numpy())
    same_on_both(lambda x, y: mg.where(x > y, x * 2.0, y), [a, b], dtype)
    same_on_both(lambda x: mg.where(x >= 0, x, 0.5), [a], dtype)
    same_on_both(lambda x, y: x.abs() ** y + x ** 2 + (x.abs() + 1) ** -0.5, [a, b], dtype)
    same_on_both(lambda x: x.amax(1) + x.amin(0).sum(), [np.round(a)], dtype)    # ties share the gradient


@needs_device
def test_index_assignment_on_device():
    t = mg.zeros(3, 4, device="opencl")
    t[0] = 1.0
    t[1:, ::2] = mg.tensor([[2.0, 3.0]], device="opencl")
    t[2, 3] = np.float32(7)
    t[..., 1] = mg.tensor([4.0, 5.0, 6.0])          # from the CPU
    want = np.zeros((3, 4), np.float32)
    want[0] = 1
    want[1:, ::2] = [[2, 3]]
    want[2, 3] = 7
    want[..., 1] = [4, 5, 6]
    assert np.array_equal(t.numpy(), want)
    with pytest.raises(ValueError, match="could not broadcast"):
        t[0] = mg.ones(3, device="opencl")


@needs_device
@dtypes
@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1)])
def test_conv_and_pooling_match_cpu(stride, padding, dtype):
    x, w, b = rand(2, 3, 9, 7), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)
    tol = 2e-5 if dtype == np.float32 else 1e-12       # float32 im2col GEMM sums in float32
    same_on_both(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), [x, w, b], dtype, tol=tol)
    same_on_both(lambda x: F.max_pool2d(x, 3, stride=stride, padding=padding), [x], dtype)
    same_on_both(lambda x: F.avg_pool2d(x, 2, stride=stride, padding=padding // 2 + 0), [x], dtype)


@needs_device
def test_classification_targets_on_the_device():
    logits = mg.randn(4, 3, device="opencl", requires_grad=True)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        F.cross_entropy(logits, mg.tensor([0, 1, 2, 0]))
    with pytest.raises(IndexError, match="target 3 is out of bounds"):
        F.cross_entropy(logits, mg.tensor([0, 1, 3, 0], device="opencl"))
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        F.nll_loss(logits, mg.tensor([0, -1, 2, 0], device="opencl"))


# ---- in place ----------------------------------------------------------------------

@needs_device
def test_in_place_ops_on_device():
    t = mg.tensor([1.0, 2.0, 3.0], device="opencl")
    t.add_(1.0).mul_(mg.tensor([2.0, 2.0, 0.5], device="opencl")).sub_(1.0, alpha=2).div_(2.0)
    assert np.allclose(t.numpy(), [1.0, 2.0, 0.0])
    t.copy_(mg.tensor([5.0, 6.0, 7.0]))                # from the CPU
    assert np.array_equal(t.numpy(), [5, 6, 7])
    t.copy_(mg.tensor(9.0, device="opencl"))           # broadcast
    assert np.array_equal(t.numpy(), [9, 9, 9])
    t.fill_(4.0)
    assert np.array_equal(t.numpy(), [4, 4, 4])
    t.zero_()
    assert np.array_equal(t.numpy(), [0, 0, 0])
    t.copy_(mg.tensor([-1.0, 0.5, 2.0]))
    t.clamp_(0.0, 1.0)
    assert np.array_equal(t.numpy(), [0, 0.5, 1])


# ---- without a runtime, without float64 ----------------------------------------------------

NO_RUNTIME = r"""
import numpy as np, pytest
import microgradbn as mg
assert not mg.opencl.is_available()
for make in (lambda: mg.tensor([1.0], device="opencl"), lambda: mg.zeros(2, device="opencl:0"),
             lambda: mg.ones(2).to("opencl"), lambda: mg.nn.Linear(2, 3).to("opencl")):
    with pytest.raises(RuntimeError) as info:
        make()
    text = str(info.value)
    assert "pocl-opencl-icd" in text or "OpenCL" in text, text
x = mg.tensor([1.0, 2.0], requires_grad=True)
(x * x).sum().backward()
assert x.device == "cpu" and x.grad.tolist() == [2.0, 4.0]
print("ok")
"""


def test_missing_runtime_is_a_clear_error_and_cpu_still_works(tmp_path):
    env = dict(os.environ, MGBN_OPENCL_LIBRARY=str(tmp_path / "no-such-libOpenCL.so"))
    done = subprocess.run([sys.executable, "-c", NO_RUNTIME], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


NO_FP64 = r"""
import pytest
import microgradbn as mg
with pytest.raises(TypeError, match="has no float64 .cl_khr_fp64.; use float32 there"):
    mg.tensor([1.0], dtype=mg.float64, device="opencl")
with pytest.raises(TypeError, match="has no float64"):
    mg.nn.Linear(2, 3, dtype=mg.float64).to("opencl")
t = mg.tensor([1.0, 2.0], device="opencl")
assert (t * 2.0).tolist() == [2.0, 4.0]
print("ok")
"""


@needs_device
def test_float64_without_fp64_is_a_type_error():
    env = dict(os.environ, MGBN_OPENCL_FP64="0")
    done = subprocess.run([sys.executable, "-c", NO_FP64], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
