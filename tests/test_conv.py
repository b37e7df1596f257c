"""conv2d: forward and backward against a plain-loop NumPy oracle, finite
differences and PyTorch; SIMD paths, thread counts, errors."""
import numpy as np
import pytest

import microgradbn as mg
from microgradbn._backend import cpu
from microgradbn.ops.conv import conv2d

# (N, C_in, H, W), (C_out, kH, kW), stride, padding
SHAPES = [
    ((2, 3, 7, 9), (4, 3, 3), 1, 1),
    ((1, 1, 5, 5), (1, 3, 3), 1, 0),
    ((3, 2, 8, 7), (5, 3, 2), (2, 1), (1, 0)),
    ((2, 4, 6, 6), (3, 1, 1), 1, 0),      # 1x1: the direct path
    ((2, 4, 6, 5), (3, 1, 1), 2, 0),
    ((1, 3, 11, 13), (6, 5, 5), 2, 2),
    ((1, 2, 3, 3), (2, 5, 5), 1, 2),      # kernel larger than the image
    ((4, 1, 28, 28), (16, 3, 3), 1, 1),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def reference_conv(x, w, b, stride, padding):
    """The definition, one output position at a time, in float64."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]        # (n, c, kh, kw)
            out[:, :, i, j] = np.tensordot(patch, w.astype(np.float64), axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        out += b[None, :, None, None]
    return out


def _inputs(xshape, wshape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n, c, h, w = xshape
    o, kh, kw = wshape
    return (rng.standard_normal((n, c, h, w)).astype(dtype), rng.standard_normal((o, c, kh, kw)).astype(dtype),
            rng.standard_normal(o).astype(dtype))


def _run(x, w, b, stride, padding, grad):
    """Forward and the three grads through microgradbn."""
    xt, wt = mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)
    bt = None if b is None else mg.tensor(b, requires_grad=True)
    out = conv2d(xt, wt, bt, stride=stride, padding=padding)
    out.backward(grad)
    return out.data, xt.grad.data, wt.grad.data, None if b is None else bt.grad.data


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xshape,wshape,stride,padding", SHAPES)
def test_forward_matches_loop_oracle(xshape, wshape, stride, padding, dtype):
    x, w, b = _inputs(xshape, wshape, dtype)
    out = conv2d(mg.tensor(x), mg.tensor(w), mg.tensor(b), stride=stride, padding=padding)
    assert out.dtype == dtype
    want = reference_conv(x.astype(np.float64), w, b.astype(np.float64), stride, padding)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.data, want, rtol=tol, atol=tol * np.abs(want).max())


def test_no_bias():
    x, w, _ = _inputs((2, 3, 6, 6), (2, 3, 3), np.float64)
    out = conv2d(mg.tensor(x), mg.tensor(w), padding=1)
    np.testing.assert_allclose(out.data, reference_conv(x, w, None, 1, 1), rtol=1e-12, atol=1e-12)


def _finite_difference(f, array, eps=1e-6):
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = f()
        flat[i] = keep - eps
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("xshape,wshape,stride,padding", [
    ((2, 2, 5, 4), (3, 3, 3), 1, 1),
    ((1, 3, 6, 7), (2, 2, 3), (2, 1), (0, 1)),
    ((2, 2, 3, 3), (2, 1, 1), 1, 0),
    ((1, 1, 4, 4), (1, 4, 4), 2, 2),
])
def test_gradients_match_finite_differences(xshape, wshape, stride, padding):
    x, w, b = _inputs(xshape, wshape, np.float64, seed=1)
    probe = np.random.default_rng(2).standard_normal(reference_conv(x, w, b, stride, padding).shape)

    def loss():   # a random linear function of the output: its gradient is probe
        return float(np.sum(reference_conv(x, w, b, stride, padding) * probe))

    _, dx, dw, db = _run(x, w, b, stride, padding, probe)
    for got, array in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(got, _finite_difference(loss, array), rtol=1e-6, atol=1e-7)


def test_only_some_grads_wanted():
    x, w, b = _inputs((2, 3, 5, 5), (4, 3, 3), np.float64)
    xt, wt, bt = mg.tensor(x), mg.tensor(w, requires_grad=True), mg.tensor(b)
    conv2d(xt, wt, bt, padding=1).sum().backward()
    assert xt.grad is None and bt.grad is None
    _, _, dw, _ = _run(x, w, b, 1, 1, np.ones((2, 4, 5, 5)))
    np.testing.assert_array_equal(wt.grad.data, dw)
    xt = mg.tensor(x, requires_grad=True)
    conv2d(xt, mg.tensor(w), None, padding=1).sum().backward()
    assert xt.grad.shape == x.shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xshape,wshape,stride,padding", SHAPES)
def test_matches_torch(xshape, wshape, stride, padding, dtype):
    torch = pytest.importorskip("torch")
    x, w, b = _inputs(xshape, wshape, dtype, seed=3)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    want = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding)
    grad = np.random.default_rng(4).standard_normal(tuple(want.shape)).astype(dtype)
    want.backward(torch.tensor(grad))
    out, dx, dw, db = _run(x, w, b, stride, padding, grad)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for got, ref in ((out, want), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        ref = ref.detach().numpy()
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


def _all_outputs(isa=None, threads=None):
    x, w, b = _inputs((8, 4, 16, 15), (8, 3, 3), np.float32, seed=5)
    grad = np.random.default_rng(6).standard_normal((8, 8, 8, 8)).astype(np.float32)
    previous = cpu.backend_info()
    try:
        if isa:
            cpu.set_isa(isa)
        if threads:
            cpu.set_num_threads(threads)
        return _run(x, w, b, 2, 1, grad)
    finally:
        cpu.set_isa(previous["isa"])
        cpu.set_num_threads(previous["threads"])


def test_thread_count_does_not_change_bits():
    first = _all_outputs(threads=1)
    for threads in (2, 3):
        for a, b in zip(first, _all_outputs(threads=threads)):
            np.testing.assert_array_equal(a, b)


def test_scalar_path_agrees_with_best_path():
    best = _all_outputs()
    scalar = _all_outputs(isa="scalar")
    for a, b in zip(best, scalar):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_batch_larger_than_chunk_count_and_many_bands():
    """More images than dweight partials (32), and an image wider than one im2col band."""
    for xshape, wshape in (((40, 2, 5, 5), (3, 3, 3)), ((1, 16, 70, 70), (2, 3, 3))):
        x, w, b = _inputs(xshape, wshape, np.float64, seed=7)
        grad = np.random.default_rng(8).standard_normal((xshape[0], wshape[0], xshape[2], xshape[3]))
        out, dx, dw, db = _run(x, w, b, 1, 1, grad)
        np.testing.assert_allclose(out, reference_conv(x, w, b, 1, 1), rtol=1e-12, atol=1e-11)
        torch = pytest.importorskip("torch")
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        torch.nn.functional.conv2d(xt, wt, padding=1).backward(torch.tensor(grad))
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(db, grad.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-10)


def test_errors():
    x = mg.zeros(2, 3, 5, 5)
    with pytest.raises(mg.ShapeError, match=r"input has 3 channels .* expects 4 input channels"):
        conv2d(x, mg.zeros(2, 4, 3, 3))
    with pytest.raises(mg.ShapeError, match=r"kernel size 8x8 is larger than the padded input 7x7"):
        conv2d(x, mg.zeros(2, 3, 8, 8), padding=1)
    with pytest.raises(mg.ShapeError, match=r"4-D input"):
        conv2d(mg.zeros(3, 5, 5), mg.zeros(2, 3, 3, 3))
    with pytest.raises(mg.ShapeError, match=r"weight must be a 4-D"):
        conv2d(x, mg.zeros(2, 3, 3))
    with pytest.raises(mg.ShapeError, match=r"bias must have shape \(2,\)"):
        conv2d(x, mg.zeros(2, 3, 3, 3), mg.zeros(3))
    with pytest.raises(mg.DTypeError, match="share one dtype"):
        conv2d(x, mg.zeros(2, 3, 3, 3, dtype=mg.float64))
    with pytest.raises(mg.DTypeError, match="float32 or float64"):
        conv2d(mg.zeros(2, 3, 5, 5, dtype=mg.int64), mg.zeros(2, 3, 3, 3))
    with pytest.raises(ValueError, match="stride must be positive"):
        conv2d(x, mg.zeros(2, 3, 3, 3), stride=0)
    with pytest.raises(ValueError, match="padding must be non-negative"):
        conv2d(x, mg.zeros(2, 3, 3, 3), padding=(1, -1))
    with pytest.raises(TypeError, match="stride must be an int or a pair"):
        conv2d(x, mg.zeros(2, 3, 3, 3), stride=(1, 2, 3))


def test_c_library_reports_errors_as_exceptions():
    x, w = np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(mg.ShapeError, match="mg_conv2d_forward: kernel 3x3 is larger than the padded input 2x2"):
        cpu.conv2d_forward(x, w, None, (1, 1), (0, 0))


def test_empty_batch():
    out = conv2d(mg.zeros(0, 2, 4, 4, requires_grad=True), mg.zeros(3, 2, 3, 3, requires_grad=True), padding=1)
    assert out.shape == (0, 3, 4, 4)


# ---- nn.Conv2d ---------------------------------------------------------------

def _nn():
    pytest.importorskip("microgradbn.nn.module")
    from microgradbn.nn.conv import Conv2d

    return Conv2d


def test_module_init_follows_pytorch():
    Conv2d = _nn()
    mg.manual_seed(0)
    layer = Conv2d(16, 32, 3, padding=1)
    bound = 1 / np.sqrt(16 * 9)   # kaiming_uniform(a=sqrt(5)) gives 1/sqrt(fan_in), as the bias
    assert layer.weight.shape == (32, 16, 3, 3) and layer.bias.shape == (32,)
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert abs(layer.weight.data.std() - bound / np.sqrt(3)) < 0.05 * bound   # the std of U(-b, b)
    mg.manual_seed(0)
    again = Conv2d(16, 32, 3, padding=1)
    np.testing.assert_array_equal(layer.weight.data, again.weight.data)
    np.testing.assert_array_equal(layer.bias.data, again.bias.data)
    assert [name for name, _ in Conv2d(1, 2, 3, bias=False).named_parameters()] == ["weight"]


def test_module_matches_torch_and_repr():
    Conv2d = _nn()
    torch = pytest.importorskip("torch")
    for args, kwargs in (((1, 16, 3), {"padding": 1}), ((3, 5, (3, 2)), {"stride": 2, "bias": False}),
                         ((4, 4, 1), {})):
        ours, theirs = Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs)
        assert repr(ours) == repr(theirs)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(ours.weight.data))
            if ours.bias is not None:
                theirs.bias.copy_(torch.from_numpy(ours.bias.data))
        x = np.random.default_rng(9).standard_normal((2, args[0], 9, 8)).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        want = theirs(xt)
        want.sum().backward()
        mx = mg.tensor(x, requires_grad=True)
        out = ours(mx)
        out.sum().backward()
        np.testing.assert_allclose(out.data, want.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mx.grad.data, xt.grad.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_module_argument_errors():
    Conv2d = _nn()
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        Conv2d(0, 3, 3)
    with pytest.raises(ValueError, match="must be positive"):
        Conv2d(1, 3, 3, stride=0)
    with pytest.raises(mg.ShapeError, match="input has 2 channels"):
        Conv2d(3, 4, 3)(mg.zeros(1, 2, 5, 5))
