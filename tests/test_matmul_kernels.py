"""The matmul kernels (src/cpu/matmul.c, src/api_matmul.c) through cpu.matmul.

Oracle: NumPy in float64. A float32 result may differ from the exact sum by
about k * 2^-24 * sum|a_ip b_pj|; the bound below is a small multiple of that.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import microgradbn
from microgradbn._backend import cpu
from microgradbn.errors import DTypeError, ShapeError

DTYPES = [np.float32, np.float64]


def expect_close(got, a, b, accumulated=None):
    """got == a @ b (+ accumulated) within the rounding bound of a k-term sum."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = np.matmul(a64, b64)
    scale = np.matmul(np.abs(a64), np.abs(b64))
    if accumulated is not None:
        want = want + accumulated
        scale = scale + np.abs(accumulated)
    k = a.shape[-1]
    eps = np.finfo(a.dtype).eps / 2
    assert got.shape == want.shape and got.dtype == a.dtype
    np.testing.assert_array_less(np.abs(got - want), 2 * (k + 2) * eps * scale + 1e-300)


def rand(rng, shape, dtype):
    return rng.uniform(-1, 1, shape).astype(dtype)


SHAPES = [  # (shape of a, shape of b)
    ((1, 1), (1, 1)), ((7, 33), (33, 1)), ((1, 1000), (1000, 7)), ((33, 7), (7, 1000)),
    ((5, 1000), (1000, 3)), ((1000, 3), (3, 5)), ((33, 33), (33, 33)), ((70, 260), (260, 150)),
    ((257, 300), (300, 130)), ((7,), (7,)), ((33,), (33, 5)), ((5, 33), (33,)), ((1000,), (1000, 1)),
    ((4, 7, 5), (5, 3)), ((7, 5), (4, 5, 3)), ((2, 1, 6, 9), (3, 9, 4)), ((3, 40, 50), (3, 50, 60)),
    ((7,), (3, 7, 2)), ((2, 3, 7), (7,)), ((6, 100, 64), (64, 70)), ((2, 40), (40, 700)),
    ((300, 500), (500,)), ((300, 500), (500, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape_a, shape_b", SHAPES)
def test_matches_numpy(shape_a, shape_b, dtype):
    rng = np.random.default_rng(len(shape_a) * 100 + shape_a[-1])
    a, b = rand(rng, shape_a, dtype), rand(rng, shape_b, dtype)
    got = cpu.matmul(a, b)
    assert got.shape == np.matmul(a, b).shape
    expect_close(got, a, b)


def layouts(x):
    """x, and views of the same values with other strides (no copy of x itself)."""
    f = np.asfortranarray(x)
    rev = np.ascontiguousarray(x[..., ::-1, ::-1])[..., ::-1, ::-1]   # both strides negative
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1] + 1,), x.dtype)
    wide[..., ::2][..., : x.shape[-1]] = x
    stepped = wide[..., ::2][..., : x.shape[-1]]                      # column stride 2
    return {"c": x, "fortran": f, "reversed": rev, "stepped": stepped}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", [(7, 33, 5), (40, 300, 70), (130, 70, 33)])
def test_strided_inputs(m, k, n, dtype):
    rng = np.random.default_rng(m + k + n)
    a, b = rand(rng, (m, k), dtype), rand(rng, (k, n), dtype)
    for va in layouts(a).values():
        for vb in layouts(b).values():
            expect_close(cpu.matmul(va, vb), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_helpers_and_accumulate(dtype):
    rng = np.random.default_rng(3)
    x, dy, w = rand(rng, (50, 30), dtype), rand(rng, (50, 20), dtype), rand(rng, (30, 20), dtype)
    expect_close(cpu.matmul_tn(x, dy), x.T, dy)          # dW = x^T dy
    expect_close(cpu.matmul_nt(dy, w), dy, w.T)          # dx = dy W^T
    grad = rand(rng, (30, 20), dtype)
    before = grad.astype(np.float64)
    out = cpu.matmul_tn(x, dy, out=grad, accumulate=True)
    assert out is grad
    expect_close(grad, x.T, dy, accumulated=before)
    out = cpu.matmul(x.T, dy, out=grad)                  # overwrite
    expect_close(out, x.T, dy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_broadcasting_and_odd_batch_strides(dtype):
    rng = np.random.default_rng(5)
    base = rand(rng, (3, 4, 6, 9), dtype)
    a = base[:, :3]                      # batch axes (3, 3) with strides that do not flatten
    b = rand(rng, (3, 1, 9, 5), dtype)
    expect_close(cpu.matmul(a, b), a, b)
    expect_close(cpu.matmul(base[:, ::2], b), base[:, ::2], b)
    expect_close(cpu.matmul(base[::-1], b[0, 0]), base[::-1], b[0, 0])
    expect_close(cpu.matmul(b[0, 0].T, base.swapaxes(-1, -2)), b[0, 0].T, base.swapaxes(-1, -2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_zero_k(dtype):
    a, b = np.ones((3, 0), dtype), np.ones((0, 4), dtype)
    assert np.array_equal(cpu.matmul(a, b), np.zeros((3, 4), dtype))
    out = np.full((3, 4), 2.0, dtype)
    cpu.matmul(a, b, out=out, accumulate=True)
    assert np.all(out == 2.0)
    assert cpu.matmul(np.ones((0, 5), dtype), np.ones((5, 4), dtype)).shape == (0, 4)
    assert cpu.matmul(np.ones((2, 0, 5), dtype), np.ones((5, 4), dtype)).shape == (2, 0, 4)


def test_float32_long_sums():
    rng = np.random.default_rng(7)
    a, b = rand(rng, (3, 100_000), np.float32), rand(rng, (100_000, 2), np.float32)
    expect_close(cpu.matmul(a, b), a, b)


def test_errors_name_the_shapes():
    with pytest.raises(ShapeError, match=r"\(3, 4\).*\(5, 2\)"):
        cpu.matmul(np.ones((3, 4)), np.ones((5, 2)))
    with pytest.raises(ShapeError, match="batch"):
        cpu.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 2)))
    with pytest.raises(ShapeError, match="dimension"):
        cpu.matmul(np.ones(()), np.ones((3,)))
    with pytest.raises(ShapeError, match="out"):
        cpu.matmul(np.ones((3, 4)), np.ones((4, 2)), out=np.ones((2, 3)))
    with pytest.raises(ValueError, match="accumulate"):
        cpu.matmul(np.ones((3, 4)), np.ones((4, 2)), accumulate=True)
    with pytest.raises(DTypeError):
        cpu.matmul(np.ones((3, 4), np.float32), np.ones((4, 2)))
    with pytest.raises(DTypeError):
        cpu.matmul(np.ones((3, 4), np.int64), np.ones((4, 2), np.int64))


def test_c_library_checks_its_arguments():
    c = np.zeros((2, 2), np.float32)
    p = cpu.ffi.from_buffer(c)
    assert cpu.lib.mg_matmul(5, 1, 2, 2, 2, p, 0, 2, 1, p, 0, 2, 1, p, 0, 2, 0) == 3   # MG_ERR_DTYPE
    assert cpu.lib.mg_matmul(0, 1, 2, 2, -1, p, 0, 2, 1, p, 0, 2, 1, p, 0, 2, 0) == 2  # MG_ERR_SHAPE
    assert cpu.lib.mg_matmul(0, 1, 2, 2, 2, cpu.ffi.NULL, 0, 2, 1, p, 0, 2, 1, p, 0, 2, 0) == 1
    assert b"mg_matmul" in cpu.ffi.string(cpu.lib.mg_last_error())


# Shapes that reach each path of the driver: the direct small kernel (batched
# and alone), one large product with the pool inside it (several row blocks;
# a few rows and many columns), and a batch of medium products, one per task.
DRIVER_CASES = [((64, 20, 30), (64, 30, 25)), ((200, 300), (300, 170)), ((5, 600), (600, 900)),
                ((6, 70, 90), (6, 90, 80)), ((3, 300), (300, 4)), ((3500, 20), (20, 24))]


@pytest.mark.parametrize("shape_a, shape_b", DRIVER_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_for_any_thread_count_on_every_path(shape_a, shape_b, dtype):
    rng = np.random.default_rng(11)
    a, b = rand(rng, shape_a, dtype), rand(rng, shape_b, dtype)
    info = cpu.backend_info()
    try:
        for isa in info["available_isas"]:
            cpu.set_isa(isa)
            results = []
            for threads in (1, 2, 3):
                cpu.set_num_threads(threads)
                results.append(cpu.matmul(a, b))
            expect_close(results[0], a, b)
            for r in results[1:]:
                assert np.array_equal(r, results[0]), f"{isa}: bits depend on the thread count"
    finally:
        cpu.set_isa(info["isa"])
        cpu.set_num_threads(info["threads"])


# Small products whose B has strided columns (x @ w.T) take the direct path
# on a copy of B: the same bits as with B contiguous, alone, batched over
# threads, and accumulating; m = 1..9 covers whole and partial groups of rows.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 3, 4, 9])
def test_direct_path_with_transposed_b_is_exact(m, dtype):
    rng = np.random.default_rng(m)
    info = cpu.backend_info()
    try:
        for threads in (1, 2):
            cpu.set_num_threads(threads)
            x, w = rand(rng, (5, m, 40), dtype), rand(rng, (5, 33, 40), dtype)
            wt = np.swapaxes(w, -1, -2)
            want = cpu.matmul(x, np.ascontiguousarray(wt))
            assert np.array_equal(cpu.matmul(x, wt), want)
            assert np.array_equal(cpu.matmul(x[0], wt[0]), want[0])
            out, out_contiguous = want[1].copy(), want[1].copy()
            cpu.matmul(x[1], wt[1], out=out, accumulate=True)
            cpu.matmul(x[1], np.ascontiguousarray(wt[1]), out=out_contiguous, accumulate=True)
            assert np.array_equal(out, out_contiguous)
            expect_close(want[2], x[2], wt[2])
    finally:
        cpu.set_num_threads(info["threads"])


# Packing copies B into the same panels whatever its layout (a column-major
# B in 8 x 8 transposed blocks on x86 for float32): the same bits as with B
# row-major, for panels with whole and partial slivers and k not a multiple
# of 8, and for a reversed B (negative strides, the element-by-element path).
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", [(64, 300, 70), (33, 1000, 48), (130, 37, 16), (7, 784, 256)])
def test_packed_path_gives_the_same_bits_for_any_layout_of_b(m, k, n, dtype):
    rng = np.random.default_rng(k)
    x, w = rand(rng, (m, k), dtype), rand(rng, (n, k), dtype)
    b = np.ascontiguousarray(w.T)
    want = cpu.matmul(x, b)
    expect_close(want, x, b)
    assert np.array_equal(cpu.matmul(x, w.T), want)
    reversed_b = np.ascontiguousarray(b[::-1, ::-1])[::-1, ::-1]
    assert np.array_equal(cpu.matmul(x, reversed_b), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_path_agrees_with_best_path(dtype):
    info = cpu.backend_info()
    if info["isa"] == "scalar":
        pytest.skip("only the scalar path runs here")
    rng = np.random.default_rng(13)
    for shape_a, shape_b in DRIVER_CASES + [((33, 7), (7, 1000)), ((1, 1), (1, 1))]:
        a, b = rand(rng, shape_a, dtype), rand(rng, shape_b, dtype)
        best = cpu.matmul(a, b)
        try:
            cpu.set_isa("scalar")
            scalar = cpu.matmul(a, b)
        finally:
            cpu.set_isa(info["isa"])
        expect_close(best, a, b)
        expect_close(scalar, a, b)


def test_forced_scalar_path_in_a_fresh_process():
    code = ("import numpy as np; from microgradbn._backend import cpu; "
            "assert cpu.backend_info()['isa'] == 'scalar'; "
            "a = np.arange(12.).reshape(3, 4); print(cpu.matmul(a, a.T).sum())")
    # the subprocess must import the same microgradbn as this one (installed or checkout)
    package_parent = os.path.dirname(os.path.dirname(microgradbn.__file__))
    env = dict(os.environ, MGBN_SIMD="scalar", PYTHONPATH=package_parent)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    a = np.arange(12.0).reshape(3, 4)
    assert float(out.stdout) == (a @ a.T).sum()


hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(m=st.integers(1, 20), k=st.integers(0, 20), n=st.integers(1, 20),
                  batch=st.sampled_from([(), (1,), (3,), (2, 1)]), broadcast_b=st.booleans(),
                  trans_a=st.booleans(), trans_b=st.booleans(), f32=st.booleans(), seed=st.integers(0, 99))
def test_random_shapes(m, k, n, batch, broadcast_b, trans_a, trans_b, f32, seed):
    dtype = np.float32 if f32 else np.float64
    rng = np.random.default_rng(seed)
    a = rand(rng, batch + (k, m), dtype).swapaxes(-1, -2) if trans_a else rand(rng, batch + (m, k), dtype)
    b_batch = () if broadcast_b else batch
    b = rand(rng, b_batch + (n, k), dtype).swapaxes(-1, -2) if trans_b else rand(rng, b_batch + (k, n), dtype)
    expect_close(cpu.matmul(a, b), a, b)

