"""The batch normalization kernels (src/cpu/batchnorm.c) through the CPU backend.

Oracles: the forward in float64 NumPy, and the backward as the paper's four
chain-rule lines written out literally (Ioffe & Szegedy 2015, Alg. 1 and the
equations after it), also in float64. The C kernel computes the closed form
(docs/bn_backward.md), so agreement checks the derivation as well as the code.
"""
import numpy as np
import pytest

from microgradbn._backend import cpu
from microgradbn.errors import ShapeError

# (N, C), (N, C, L), (N, C, H, W) with 1, 7, 33 and 1000 channels or rows.
SHAPES = [(7, 1), (2, 33), (1000, 7), (33, 1000), (5, 7, 33), (3, 1, 1000),
          (2, 33, 3, 3), (4, 7, 5, 7), (1, 3, 2, 1)]
DTYPES = [np.float32, np.float64]
EPS = 1e-5


def channel_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def per_channel(v, x):
    """A (C,) array shaped to broadcast against x."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def oracle_forward(x, w, b, eps):
    x = x.astype(np.float64)
    mean, var = x.mean(axis=channel_axes(x)), x.var(axis=channel_axes(x))
    xhat = (x - per_channel(mean, x)) / np.sqrt(per_channel(var, x) + eps)
    return xhat * per_channel(w, x) + per_channel(b, x), mean, var


def oracle_backward(dy, x, w, eps):
    """The paper's chain rule, line by line: dxhat, dvar, dmean, dx, dgamma, dbeta."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = channel_axes(x)
    m = x.size // x.shape[1]
    mu = per_channel(x.mean(axis=axes), x)
    var = per_channel(x.var(axis=axes), x)
    xhat = (x - mu) / np.sqrt(var + eps)
    dxhat = dy * per_channel(w, x)
    dvar = np.sum(dxhat * (x - mu), axis=axes, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmean = (np.sum(dxhat * -1.0 / np.sqrt(var + eps), axis=axes, keepdims=True)
             + dvar * np.sum(-2.0 * (x - mu), axis=axes, keepdims=True) / m)
    dx = dxhat / np.sqrt(var + eps) + dvar * 2.0 * (x - mu) / m + dmean / m
    return dx, np.sum(dy * xhat, axis=axes), np.sum(dy, axis=axes)


def make(shape, dtype, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2.0 + offset).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    return x, dy, w, b


def assert_close(got, want, dtype, scale=None):
    """Agreement to a few units of dtype's precision, relative to the data's scale."""
    scale = max(np.max(np.abs(want)), 1.0) if scale is None else scale
    tol = 2e-5 if dtype == np.float32 else 1e-12
    err = np.max(np.abs(got.astype(np.float64) - want)) / scale
    assert err < tol, f"relative error {err:.3g} >= {tol}"


@pytest.fixture
def isa():
    """Lets a test switch the SIMD path; puts the best one back afterwards."""
    best = cpu.backend_info()["isa"]
    yield cpu.set_isa
    cpu.set_isa(best)


# ---- against the float64 oracles -------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["weight and bias", "weight", "bias", None])   # the C API takes either alone
def test_train_forward_and_backward_match_oracle(shape, dtype, affine):
    if shape[0] * int(np.prod(shape[2:])) < 2:
        pytest.skip("one value per channel cannot be trained on")
    x, dy, w, b = make(shape, dtype)
    has_w, has_b = affine in ("weight and bias", "weight"), affine in ("weight and bias", "bias")
    w_arg, b_arg = w if has_w else None, b if has_b else None
    w64 = w.astype(np.float64) if has_w else np.ones(shape[1])
    b64 = b.astype(np.float64) if has_b else np.zeros(shape[1])

    y, mean, rstd, var = cpu.batch_norm_train_forward(x, w_arg, b_arg, EPS)
    want_y, want_mean, want_var = oracle_forward(x, w64, b64, EPS)
    assert y.dtype == dtype and y.shape == x.shape
    assert mean.dtype == rstd.dtype == var.dtype == np.float64
    assert_close(y, want_y, dtype)
    # float32 statistics add x - k in float32, 8 terms at a time, then in float64
    mean_tol, var_tol = (1e-6, 1e-6) if dtype == np.float32 else (1e-12, 1e-10)
    np.testing.assert_allclose(mean, want_mean, rtol=0, atol=mean_tol * max(np.sqrt(want_var).max(), 1.0))
    np.testing.assert_allclose(var, want_var, rtol=var_tol, atol=1e-12)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(want_var + EPS), rtol=var_tol)

    dx, dw, db = cpu.batch_norm_backward(dy, x, mean, rstd, w_arg, True, True, True)
    want_dx, want_dw, want_db = oracle_backward(dy, x, w64, EPS)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    assert_close(dx, want_dx, dtype)
    assert_close(dw, want_dw, dtype, scale=max(np.sqrt(x.size), 1.0))
    assert_close(db, want_db, dtype, scale=max(np.sqrt(x.size), 1.0))


@pytest.mark.parametrize("shape", [(7, 1), (33, 1000), (256, 1024), (3, 70_001), (5, 7, 33), (2, 33, 3, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_eval_forward_and_backward(shape, dtype):
    x, dy, w, b = make(shape, dtype)
    rng = np.random.default_rng(1)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2.0, shape[1]).astype(dtype)
    scale = w.astype(np.float64) / np.sqrt(rv.astype(np.float64) + EPS)
    shift = b - rm.astype(np.float64) * scale
    y = cpu.batch_norm_eval_forward(x, rm, rv, w, b, EPS)
    assert_close(y, x * per_channel(scale, x) + per_channel(shift, x), dtype)
    y_plain = cpu.batch_norm_eval_forward(x, rm, rv, None, None, EPS)
    assert_close(y_plain, (x - per_channel(rm, x)) / np.sqrt(per_channel(rv, x) + EPS), dtype)
    dx = cpu.batch_norm_eval_backward(dy, rv, w, EPS)
    assert_close(dx, dy * per_channel(scale, x), dtype)


def test_backward_returns_only_what_is_asked():
    x, dy, w, _ = make((6, 5, 4), np.float64)
    _, mean, rstd, _ = cpu.batch_norm_train_forward(x, w, None, EPS)
    full = cpu.batch_norm_backward(dy, x, mean, rstd, w, True, True, True)
    for need in [(True, False, False), (False, True, False), (False, False, True), (False, True, True)]:
        got = cpu.batch_norm_backward(dy, x, mean, rstd, w, *need)
        for g, f, wanted in zip(got, full, need):
            if wanted:
                np.testing.assert_array_equal(g, f)
            else:
                assert g is None


def test_non_contiguous_input():
    x, dy, w, b = make((8, 6, 5), np.float64)
    xt = np.ascontiguousarray(x.transpose(2, 1, 0)).transpose(2, 1, 0)   # same values, F-order
    assert not xt.flags.c_contiguous
    np.testing.assert_array_equal(cpu.batch_norm_train_forward(xt, w, b, EPS)[0],
                                  cpu.batch_norm_train_forward(x, w, b, EPS)[0])


# ---- numerical robustness ----------------------------------------------------

@pytest.mark.parametrize("shape", [(4096, 3), (16, 3, 8, 8), (64, 5, 33)])
def test_large_offset_is_stable_in_float32(shape):
    """Mean 1e4, std 1: y keeps a relative error below 1e-4 in float32."""
    x, dy, w, b = make(shape, np.float32, offset=1e4)
    x = (1e4 + (x - 1e4) / 2.0).astype(np.float32)   # std 1
    y, mean, rstd, var = cpu.batch_norm_train_forward(x, w, b, EPS)
    want_y, want_mean, want_var = oracle_forward(x, w.astype(np.float64), b.astype(np.float64), EPS)
    assert np.max(np.abs(y - want_y)) / np.max(np.abs(want_y)) < 1e-4
    np.testing.assert_allclose(var, want_var, rtol=1e-6)
    dx, dw, _ = cpu.batch_norm_backward(dy, x, mean, rstd, w, True, True, False)
    want_dx, want_dw, _ = oracle_backward(dy, x, w.astype(np.float64), EPS)
    assert np.max(np.abs(dx - want_dx)) / np.max(np.abs(want_dx)) < 1e-4
    assert np.max(np.abs(dw - want_dw)) / np.max(np.abs(want_dw)) < 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 4), (3, 4, 17)])
def test_constant_channel_gives_exactly_beta(dtype, shape):
    x, _, w, b = make(shape, dtype)
    x[:, 2] = dtype(12345.678)
    y = cpu.batch_norm_train_forward(x, w, b, EPS)[0]
    assert np.all(y[:, 2] == b[2])


@pytest.mark.parametrize("shape", [(6, 3), (6, 3, 20)])
def test_nan_propagates_to_its_channel_only(shape):
    x, dy, w, b = make(shape, np.float32)
    x[1, 1] = np.nan
    y, mean, rstd, var = cpu.batch_norm_train_forward(x, w, b, EPS)
    assert np.isnan(mean[1]) and np.all(np.isnan(y[:, 1]))
    assert np.all(np.isfinite(y[:, [0, 2]]))
    dx, dw, db = cpu.batch_norm_backward(dy, x, mean, rstd, w, True, True, True)
    assert np.all(np.isnan(dx[:, 1])) and np.isnan(dw[1])
    assert np.all(np.isfinite(dx[:, [0, 2]]))


# ---- same bits on every path ----------------------------------------------------

def run_all(x, dy, w, b):
    """Every output of every entry point, for bitwise comparison."""
    y, mean, rstd, var = cpu.batch_norm_train_forward(x, w, b, EPS)
    dx, dw, db = cpu.batch_norm_backward(dy, x, mean, rstd, w, True, True, True)
    ye = cpu.batch_norm_eval_forward(x, b, np.abs(w), w, b, EPS)
    dxe = cpu.batch_norm_eval_backward(dy, np.abs(w), w, EPS)
    return [y, mean, rstd, var, dx, dw, db, ye, dxe]


# Big enough for several blocks and the thread pool: (N, C) with two row
# blocks, and with three channel groups (the last one 76 wide) by two row
# blocks, each taken whole by one task at 1 and 3 threads but swept block by
# block at 2; planes with several blocks per channel (3 channels: split
# blocks) and with many small channels (whole-channel tasks).
BIG_SHAPES = [(300, 300), (200, 1100), (37, 33), (4, 3, 40000), (8, 16, 9001), (3, 1000, 5, 5)]

# Outputs of 6 MiB or more are written with streaming stores (cpu/kernels.h,
# mg_stream_min_bytes), which need aligned addresses: rows of 1001 channels
# and planes of 923 values start at every alignment, so the kernels' aligning
# first values and their streamed vectors both run.
STREAMED_SHAPES = [(2000, 1001), (300, 7, 13, 71)]


@pytest.mark.parametrize("shape", STREAMED_SHAPES)
def test_streamed_outputs_match_oracle(shape):
    x, dy, w, b = make(shape, np.float32, offset=3.0)
    y, mean, rstd, _ = cpu.batch_norm_train_forward(x, w, b, EPS)
    assert_close(y, oracle_forward(x, w.astype(np.float64), b.astype(np.float64), EPS)[0], np.float32)
    dx, _, _ = cpu.batch_norm_backward(dy, x, mean, rstd, w, True, False, False)
    assert_close(dx, oracle_backward(dy, x, w.astype(np.float64), EPS)[0], np.float32)
    rm, rv = b, np.abs(w) + np.float32(0.5)
    scale = w.astype(np.float64) / np.sqrt(rv.astype(np.float64) + EPS)
    ye = cpu.batch_norm_eval_forward(x, rm, rv, w, b, EPS)
    assert_close(ye, x * per_channel(scale, x) + per_channel(b - rm * scale, x), np.float32)
    dxe = cpu.batch_norm_eval_backward(dy, rv, w, EPS)
    assert_close(dxe, dy * per_channel(scale, x), np.float32)


@pytest.mark.parametrize("shape", BIG_SHAPES + STREAMED_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_path_gives_the_same_bits(shape, dtype, isa):
    x, dy, w, b = make(shape, dtype, offset=3.0)
    best = run_all(x, dy, w, b)
    isa("scalar")
    scalar = run_all(x, dy, w, b)
    for got, want in zip(scalar, best):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", BIG_SHAPES + STREAMED_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_does_not_change_bits(shape, dtype, threads):
    x, dy, w, b = make(shape, dtype, offset=3.0)
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(run_all(x, dy, w, b))
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


# ---- against PyTorch ---------------------------------------------------------------

@pytest.mark.parametrize("shape", [(16, 7), (4, 7, 33), (2, 33, 3, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(shape, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, dy, w, b = make(shape, dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.batch_norm(tx, None, None, tw, tb, training=True, eps=EPS)
    ty.backward(torch.tensor(dy))
    y, mean, rstd, var = cpu.batch_norm_train_forward(x, w, b, EPS)
    dx, dw, db = cpu.batch_norm_backward(dy, x, mean, rstd, w, True, True, True)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for got, want in [(y, ty), (dx, tx.grad), (dw, tw.grad), (db, tb.grad)]:
        np.testing.assert_allclose(got, want.detach().numpy(), **tol)
    rm, rv = torch.zeros(shape[1], dtype=tx.dtype), torch.ones(shape[1], dtype=tx.dtype)
    F.batch_norm(tx.detach(), rm, rv, None, None, training=True, momentum=1.0, eps=EPS)
    ye = cpu.batch_norm_eval_forward(x, rm.numpy(), rv.numpy(), w, b, EPS)
    want = F.batch_norm(tx.detach(), rm, rv, tw.detach(), tb.detach(), training=False, eps=EPS)
    np.testing.assert_allclose(ye, want.numpy(), **tol)
    n = x.size // shape[1]
    np.testing.assert_allclose(rv.numpy(), var * n / (n - 1), rtol=1e-5)   # unbiased running_var


# ---- errors ------------------------------------------------------------------------

def test_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        cpu.batch_norm_train_forward(np.ones((1, 4), np.float32), None, None, EPS)
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        cpu.batch_norm_train_forward(np.ones((1, 4, 1, 1), np.float64), None, None, EPS)
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        cpu.batch_norm_train_forward(np.ones((0, 4), np.float32), None, None, EPS)


@pytest.mark.parametrize("eps", [-1e-5, float("nan"), float("inf")])
def test_bad_eps(eps):
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        cpu.batch_norm_train_forward(x, None, None, eps)
    with pytest.raises(ValueError, match="eps must be finite and >= 0"):
        cpu.batch_norm_eval_forward(x, np.zeros(3, np.float32), np.ones(3, np.float32), None, None, eps)


def test_bad_shapes_and_dtypes():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ShapeError, match="2-D, 3-D or 4-D"):
        cpu.batch_norm_train_forward(np.ones(5, np.float32), None, None, EPS)
    with pytest.raises(ShapeError, match=r"\(3,\) float32 parameter"):
        cpu.batch_norm_train_forward(x, np.ones(4, np.float32), None, EPS)
    with pytest.raises(ShapeError, match=r"\(3,\) float32 parameter"):
        cpu.batch_norm_train_forward(x, None, np.ones(3, np.float64), EPS)
    with pytest.raises(ShapeError, match="does not match"):
        cpu.batch_norm_backward(np.ones((4, 4), np.float32), x, np.zeros(3), np.ones(3), None,
                                True, True, True)
    with pytest.raises(ShapeError, match=r"\(3,\) statistics"):
        cpu.batch_norm_backward(x, x, np.zeros(4), np.ones(3), None, True, True, True)


def test_empty_batch_in_eval_is_fine():
    y = cpu.batch_norm_eval_forward(np.ones((0, 3), np.float32), np.zeros(3, np.float32),
                                    np.ones(3, np.float32), None, None, EPS)
    assert y.shape == (0, 3)
