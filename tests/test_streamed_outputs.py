"""Outputs of MG_STREAM_MIN_BYTES (6 MiB) or more are written around the
caches: elementwise loops through an L1 staging buffer and streaming stores
(src/stream.c), batch norm's sweeps with streaming stores directly (those
are tested in test_batchnorm_kernels.py). The values must be exactly those
of the ordinary path, for any alignment of the output and any thread count.
Oracle: the same op on the two halves, each below the threshold."""
import numpy as np
import pytest

from microgradbn._backend import cpu

STREAM_MIN_BYTES = 6 << 20
DTYPES = [np.float32, np.float64]


def halves(fn, *arrays):
    """fn over the first and the second half of every array, joined."""
    cut = arrays[0].size // 2 // 64 * 64
    return np.concatenate([fn(*(a[:cut] for a in arrays)), fn(*(a[cut:] for a in arrays))])


def big(dtype, seed=0, extra=37):
    """A 1-D array just over the threshold, with a length no vector divides."""
    n = STREAM_MIN_BYTES // np.dtype(dtype).itemsize + extra
    return np.random.default_rng(seed).standard_normal(n).astype(dtype) * 3


def misaligned_out(like, shift):
    """An output array of like's shape and dtype starting shift elements into a buffer."""
    buffer = np.empty(like.size + shift, like.dtype)
    return buffer[shift:]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [cpu.OP_ADD, cpu.OP_MUL, cpu.OP_DIV, cpu.OP_MAX])
@pytest.mark.parametrize("shift", [0, 1, 3])
def test_binary_streamed_is_exact(dtype, op, shift):
    a, b = big(dtype, 0), big(dtype, 1)
    want = halves(lambda x, y: cpu.binary(op, x, y, x.shape, dtype), a, b)
    out = misaligned_out(a, shift)
    cpu.binary(op, a, b, a.shape, dtype, out=out)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(cpu.binary(op, a, b, a.shape, dtype), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [cpu.UNARY_EXP, cpu.UNARY_TANH, cpu.UNARY_RELU, cpu.UNARY_NEG])
@pytest.mark.parametrize("shift", [0, 5])
def test_unary_streamed_is_exact(dtype, op, shift):
    x = big(dtype)
    want = halves(lambda v: cpu.unary(op, v), x)
    out = misaligned_out(x, shift)
    cpu.unary(op, x, out=out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_backward_and_clamp_streamed_are_exact(dtype):
    x, g = big(dtype, 0), big(dtype, 1)
    np.testing.assert_array_equal(cpu.unary_backward(cpu.GRAD_TANH, x, g),
                                  halves(lambda s, d: cpu.unary_backward(cpu.GRAD_TANH, s, d), x, g))
    np.testing.assert_array_equal(cpu.clamp(x, -1.0, 2.0), halves(lambda v: cpu.clamp(v, -1.0, 2.0), x))


def test_in_place_streamed_is_exact():
    x = big(np.float32)
    want = cpu.unary(cpu.UNARY_EXP, x)
    cpu.unary(cpu.UNARY_EXP, x, out=x)
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_thread_count_does_not_change_streamed_bits(count, threads):
    a, b = big(np.float32, 0), big(np.float32, 1)
    threads(1)
    want = cpu.binary(cpu.OP_ADD, a, b, a.shape, np.float32), cpu.unary(cpu.UNARY_EXP, a)
    threads(count)
    np.testing.assert_array_equal(cpu.binary(cpu.OP_ADD, a, b, a.shape, np.float32), want[0])
    np.testing.assert_array_equal(cpu.unary(cpu.UNARY_EXP, a), want[1])
