"""The C kernels behind the ops: float32 transcendental accuracy in ulps,
special values, and bitwise-equal results for every SIMD path and thread
count (unary maps and reductions over axes)."""
import subprocess
import sys

import numpy as np
import pytest

from microgradbn._backend import cpu

RNG = np.random.default_rng(1)
WIDE = np.concatenate([RNG.uniform(-100, 90, 300_000), RNG.uniform(-1, 1, 300_000),
                       RNG.standard_normal(100_000) * 1e-3]).astype(np.float32)


def _ulps(got, exact):
    """Largest |got - exact| in float32 ulps of the exact value (finite, non-zero results)."""
    with np.errstate(over="ignore"):
        ref = exact.astype(np.float32)
    keep = np.isfinite(ref) & (ref != 0)
    return np.max(np.abs(got[keep].astype(np.float64) - exact[keep]) / np.spacing(np.abs(ref[keep])))


@pytest.mark.parametrize("op,fn,domain,bound", [
    (cpu.UNARY_EXP, np.exp, WIDE, 1.5),
    (cpu.UNARY_LOG, np.log, np.abs(WIDE) + np.float32(1e-30), 1.0),
    (cpu.UNARY_TANH, np.tanh, WIDE, 1.5),
    (cpu.UNARY_SIGMOID, lambda x: 1 / (1 + np.exp(-x)), WIDE, 3.0),
    (cpu.UNARY_SQRT, np.sqrt, np.abs(WIDE), 0.5),
])
def test_float32_accuracy_in_ulps(op, fn, domain, bound):
    with np.errstate(all="ignore"):
        exact = fn(domain.astype(np.float64))
    assert _ulps(cpu.unary(op, domain), exact) <= bound


def _every_kind_of_float32():
    """Every 1021st float32 bit pattern (all magnitudes and signs, subnormals,
    infinities, NaNs with many payloads), plus every float32 in windows of
    20,000 around where the results overflow, turn subnormal and vanish."""
    patterns = np.arange(0, 1 << 32, 1021, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = np.array([88.72283, -87.33655, -103.97208, -88.72283, 0.0, 9.01, -9.01, 0.625, -0.625],
                     np.float32)
    windows = edges[:, None].view(np.int32) + np.arange(-10_000, 10_000, dtype=np.int32)
    return np.concatenate([patterns, windows.ravel().view(np.float32),
                           np.array([np.inf, -np.inf, 0.0, -0.0], np.float32)])


def _ulp_errors(got, exact):
    """|got - exact| in ulps of exact's float32 rounding (2^-149 at and below the
    subnormals); where that rounding overflows, 0 for inf and 1 for FLT_MAX."""
    with np.errstate(over="ignore"):
        ref = exact.astype(np.float32)
    with np.errstate(invalid="ignore"):
        err = np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(ref)).astype(np.float64)
    big = np.isinf(ref)
    err[big] = np.where(got[big] == ref[big], 0.0,
                        np.where(np.abs(got[big]) == np.finfo(np.float32).max, 1.0, np.inf))
    return err


@pytest.mark.parametrize("op,fn,bound", [
    (cpu.UNARY_EXP, np.exp, 1.5),
    (cpu.UNARY_TANH, np.tanh, 1.5),
    (cpu.UNARY_SIGMOID, lambda x: 1 / (1 + np.exp(-x)), 3.0),
])
def test_float32_bound_holds_over_the_whole_range(op, fn, bound):
    x = _every_kind_of_float32()
    with np.errstate(all="ignore"):
        exact = fn(x.astype(np.float64))
    got = cpu.unary(op, x)
    nan = np.isnan(x)
    assert np.isnan(got[nan]).all(), "a NaN input gave a number"
    assert not np.isnan(got[~nan]).any(), "a number gave NaN"
    err = _ulp_errors(got[~nan], exact[~nan])
    worst = np.argmax(err)
    assert err[worst] <= bound, f"{x[~nan][worst]!r}: got {got[~nan][worst]!r}, exact {exact[~nan][worst]!r}"
    assert (got[x == np.inf] == fn(np.inf)).all() and (got[x == -np.inf] == fn(-np.inf)).all()


@pytest.mark.parametrize("op", [cpu.UNARY_EXP, cpu.UNARY_TANH, cpu.UNARY_SIGMOID, cpu.UNARY_LOG])
def test_float32_result_does_not_depend_on_position(op):     # vector body and padded tail agree
    x = np.abs(RNG.standard_normal(200)).astype(np.float32) * 9
    whole = cpu.unary(op, x)
    for start in (0, 1, 3):
        for n in range(1, 40):
            np.testing.assert_array_equal(cpu.unary(op, x[start:start + n].copy()), whole[start:start + n])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bits_do_not_depend_on_the_outputs_alignment(dtype):
    # Whole vectors go out from the output's first vector-aligned address and
    # the elements before it one at a time (simd.h, MG_STORE_RUN): those must
    # get the vector's bits, for every map and binary op.
    x = (RNG.standard_normal(1000) * 5).astype(dtype)
    y = (RNG.standard_normal(1000) * 5).astype(dtype)
    positive = np.abs(x) + dtype(0.01)
    buffer = np.empty(1000 + 16, dtype)
    calls = [lambda out, op=op: cpu.unary(op, positive if op in (cpu.UNARY_LOG, cpu.UNARY_SQRT) else x, out)
             for op in range(8)]
    calls += [lambda out, op=op: cpu.binary(op, x, y, x.shape, x.dtype, out) for op in range(6)]
    for call in calls:
        first = call(buffer[:1000]).copy()
        for shift in range(1, 16):      # every offset within a 64-byte vector
            np.testing.assert_array_equal(call(buffer[shift:shift + 1000]), first)


@pytest.mark.parametrize("op", [cpu.UNARY_EXP, cpu.UNARY_TANH, cpu.UNARY_SIGMOID])
def test_float32_value_near_the_limits_leaves_its_neighbours_bits(op):
    # exp scales by 2^k in the exponent bits unless some lane of its vector
    # has |x| > 86.5 or NaN; then the whole vector takes the clamped path
    inner = RNG.uniform(-86.5, 86.5, 1000).astype(np.float32)
    outer = np.array([-95.0, 88.9, np.nan, -86.6, 86.6, -200.0, np.inf], np.float32)
    mixed = inner.copy()
    mixed[::13] = np.resize(outer, mixed[::13].size)
    got, alone_inner = cpu.unary(op, mixed), cpu.unary(op, inner)
    keep = np.ones(mixed.size, bool)
    keep[::13] = False
    np.testing.assert_array_equal(got[keep], alone_inner[keep])
    np.testing.assert_array_equal(got[~keep], [cpu.unary(op, v.reshape(1))[0] for v in mixed[~keep]])


def test_float64_maps_match_numpy():            # the C library's, within 2 ulp of NumPy's
    x = RNG.uniform(-20, 20, 10_001)
    np.testing.assert_allclose(cpu.unary(cpu.UNARY_EXP, x), np.exp(x), rtol=4.5e-16)
    np.testing.assert_allclose(cpu.unary(cpu.UNARY_LOG, np.abs(x)), np.log(np.abs(x)), rtol=4.5e-16)
    np.testing.assert_allclose(cpu.unary(cpu.UNARY_TANH, x), np.tanh(x), rtol=4.5e-16)
    np.testing.assert_allclose(cpu.unary(cpu.UNARY_SIGMOID, x), 1 / (1 + np.exp(-x)), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1e30, 1e-45, 89.0, -104.0], dtype)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(cpu.unary(cpu.UNARY_EXP, x)[[0, 1, 2, 3, 4, 5]], np.exp(x)[[0, 1, 2, 3, 4, 5]])
        np.testing.assert_array_equal(cpu.unary(cpu.UNARY_LOG, x)[:6], np.log(x)[:6])
        np.testing.assert_array_equal(cpu.unary(cpu.UNARY_SIGMOID, x)[[2, 3, 4, 5]], [1, 0, np.nan, 0])
        np.testing.assert_array_equal(cpu.unary(cpu.UNARY_TANH, x)[[0, 2, 3, 4]], [0, 1, -1, np.nan])
    assert np.isnan(cpu.unary(cpu.UNARY_RELU, x)[4]) and cpu.unary(cpu.UNARY_RELU, x)[3] == 0
    np.testing.assert_array_equal(cpu.clamp(x, -1.0, 1.0)[[2, 3, 5]], [1, -1, -1])
    assert np.isnan(cpu.clamp(x, -1.0, 1.0)[4])


def test_fused_backward_kernels():
    x = RNG.standard_normal(1001)
    g = RNG.standard_normal(1001)
    y = cpu.unary(cpu.UNARY_SIGMOID, x)
    np.testing.assert_allclose(cpu.unary_backward(cpu.GRAD_SIGMOID, y, g), g * y * (1 - y), rtol=1e-15)
    t = np.tanh(x)
    np.testing.assert_allclose(cpu.unary_backward(cpu.GRAD_TANH, t, g), g * (1 - t * t), rtol=1e-15)
    r = np.maximum(x, 0)
    np.testing.assert_array_equal(cpu.unary_backward(cpu.GRAD_RELU, r, g), np.where(x > 0, g, 0))
    np.testing.assert_array_equal(cpu.unary_backward(cpu.GRAD_ABS, x, g), g * np.sign(x))
    np.testing.assert_array_equal(cpu.clamp_backward(x, g, -0.5, 0.5), np.where(np.abs(x) <= 0.5, g, 0))


def test_errors_are_clear():
    with pytest.raises(ValueError, match="mg_clamp: a bound is NaN"):
        cpu.clamp(np.ones(3), np.nan, 1.0)
    with pytest.raises(ValueError, match="mg_unary: unknown op 99"):
        cpu.unary(99, np.ones(3))


REDUCE_CASES = [((300, 257), (0,)), ((300, 257), (1,)), ((5, 7, 300, 9), (0, 2)), ((2, 3, 4), (0, 1, 2)),
                ((70000,), (0,)), ((1, 70001), (0, 1)), ((129, 1, 513), (2,))]


@pytest.mark.parametrize("shape,axes", REDUCE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_matches_numpy_for_any_layout(shape, axes, dtype):
    x = RNG.standard_normal(shape).astype(dtype) + 100
    for view, view_axes in ((x, axes), (x.T, tuple(sorted(x.ndim - 1 - a for a in axes))),
                            (x[..., ::-1], axes), (np.asfortranarray(x), axes)):
        exact = np.sum(view.astype(np.float64), axis=view_axes)
        np.testing.assert_allclose(cpu.reduce(cpu.REDUCE_SUM, view, view_axes), exact,
                                   rtol=1e-7 if dtype == np.float32 else 1e-13)
        np.testing.assert_array_equal(cpu.reduce(cpu.REDUCE_MAX, view, view_axes), np.max(view, axis=view_axes))
        np.testing.assert_array_equal(cpu.reduce(cpu.REDUCE_MIN, view, view_axes), np.min(view, axis=view_axes))


def test_reduce_nan_and_broadcast_input():
    x = np.ones((4, 5))
    x[2, 3] = np.nan
    assert np.isnan(cpu.reduce(cpu.REDUCE_MAX, x, (1,))[2]) and cpu.reduce(cpu.REDUCE_MAX, x, (1,))[1] == 1
    b = np.broadcast_to(np.arange(3.0), (1000, 3))            # stride 0 along axis 0
    np.testing.assert_array_equal(cpu.reduce(cpu.REDUCE_SUM, b, (0,)), [0, 1000, 2000])


_BITS_SCRIPT = """
import sys, numpy as np, hashlib
from microgradbn._backend import cpu
cpu.init()
if sys.argv[1] != "default":
    cpu.set_isa(sys.argv[1])
for threads in (1, 2, 3):
    cpu.set_num_threads(threads)
    rng = np.random.default_rng(5)
    h = hashlib.sha256()
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((257, 1031)).astype(dtype)
        for op in range(8):
            h.update(cpu.unary(op, x * 3).tobytes())
        for axes in ((0,), (1,), (0, 1)):
            for op in range(3):
                h.update(cpu.reduce(op, x, axes).tobytes())
                h.update(cpu.reduce(op, x.T, axes).tobytes())
    print(threads, h.hexdigest())
"""


def test_bits_identical_for_every_isa_and_thread_count():
    isas = ["scalar"] + [i for i in cpu.backend_info()["available_isas"] if i != "scalar"]
    outputs = {}
    for isa in isas:
        run = subprocess.run([sys.executable, "-c", _BITS_SCRIPT, isa], capture_output=True, text=True,
                             check=True)
        lines = run.stdout.split()
        outputs[isa] = set(lines[1::2])
        assert len(outputs[isa]) == 1, f"{isa}: results differ between 1, 2 and 3 threads"
    assert len(set.union(*outputs.values())) == 1, f"SIMD paths differ: {outputs}"
