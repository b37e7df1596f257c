"""Outputs of 6 MiB or more (less on a machine with a small cache: the
threshold test below) are written around the caches with streaming
stores, straight from the vector loops (+ - * /, the
float32 exp, tanh, sigmoid, relu, abs and fused backwards; batch norm's
sweeps are tested in test_batchnorm_kernels.py). The values must be exactly
those of the ordinary path, for any alignment of the output and any thread
count. Oracles: NumPy, where it computes the same IEEE operation (+ - * /,
relu, abs), and the same op on pieces below the smallest threshold."""
import glob
import os

import numpy as np
import pytest

from microgradbn._backend import cpu

STREAM_MIN_BYTES = 6 << 20   # the largest threshold: arrays this big are streamed everywhere
DTYPES = [np.float32, np.float64]


def test_threshold_is_six_mib_or_half_the_last_level_cache():
    """The threshold the library uses: min(6 MiB, half the largest cache
    Linux lists), never below 1 MiB; 6 MiB where sysfs lists no cache."""
    got = cpu.backend_info()["stream_min_bytes"]
    sizes = []
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            with open(os.path.join(index, "level")) as f:
                level = int(f.read())
            with open(os.path.join(index, "size")) as f:
                text = f.read().strip()
        except OSError:
            continue
        if level >= 2:
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
            sizes.append(int(text.rstrip("KM")) * scale)
    want = STREAM_MIN_BYTES if not sizes else max(1 << 20, min(STREAM_MIN_BYTES, max(sizes) // 2))
    assert got == want


def pieces(fn, *arrays):
    """fn over consecutive pieces of 512 KiB of every array, joined: each
    piece is below the smallest threshold (1 MiB), so not streamed."""
    step = (512 << 10) // arrays[0].itemsize
    return np.concatenate([fn(*(a[i:i + step] for a in arrays)) for i in range(0, arrays[0].size, step)])


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
    want = pieces(lambda x, y: cpu.binary(op, x, y, x.shape, dtype), a, b)
    out = misaligned_out(a, shift)
    cpu.binary(op, a, b, a.shape, dtype, out=out)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(cpu.binary(op, a, b, a.shape, dtype), want)


NUMPY_BINARY = {cpu.OP_ADD: np.add, cpu.OP_SUB: np.subtract, cpu.OP_MUL: np.multiply,
                cpu.OP_DIV: np.divide}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(NUMPY_BINARY))
@pytest.mark.parametrize("shift", [0, 1])
def test_binary_streamed_matches_numpy(dtype, op, shift):
    a, b = big(dtype, 0), big(dtype, 1)
    out = misaligned_out(a, shift)
    cpu.binary(op, a, b, a.shape, dtype, out=out)
    np.testing.assert_array_equal(out, NUMPY_BINARY[op](a, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(NUMPY_BINARY))
def test_broadcast_streamed_matches_numpy(dtype, op):
    """A scalar on either side (one long row, cut into pieces for the pool)
    and a row vector over the rows of a matrix (an odd row length: every row
    starts at a different alignment)."""
    a = big(dtype, 0)
    s = np.array(1.75, dtype)
    shape = a.shape
    np.testing.assert_array_equal(cpu.binary(op, a, s, shape, dtype), NUMPY_BINARY[op](a, s))
    np.testing.assert_array_equal(cpu.binary(op, s, a, shape, dtype), NUMPY_BINARY[op](s, a))
    m = a[: a.size // 1001 * 1001].reshape(-1, 1001)
    row = big(dtype, 2)[:1001]
    np.testing.assert_array_equal(cpu.binary(op, m, row, m.shape, dtype), NUMPY_BINARY[op](m, row))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [0, 3])
def test_relu_abs_streamed_match_numpy(dtype, shift):
    x = big(dtype)
    x[:8] = [np.nan, -0.0, 0.0, -np.inf, np.inf, -1.0, 1.0, -np.nan]
    out = misaligned_out(x, shift)
    cpu.unary(cpu.UNARY_RELU, x, out=out)
    want = np.where(x < 0, np.zeros_like(x), x)          # keeps -0.0 and NaN, as torch.relu
    np.testing.assert_array_equal(out.view(np.uint8), want.view(np.uint8))
    cpu.unary(cpu.UNARY_ABS, x, out=out)
    np.testing.assert_array_equal(out.view(np.uint8), np.abs(x).view(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [cpu.UNARY_EXP, cpu.UNARY_TANH, cpu.UNARY_SIGMOID, cpu.UNARY_RELU,
                                cpu.UNARY_NEG])
@pytest.mark.parametrize("shift", [0, 5])
def test_unary_streamed_is_exact(dtype, op, shift):
    x = big(dtype)
    want = pieces(lambda v: cpu.unary(op, v), x)
    out = misaligned_out(x, shift)
    cpu.unary(op, x, out=out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad", [cpu.GRAD_RELU, cpu.GRAD_SIGMOID, cpu.GRAD_TANH, cpu.GRAD_SQRT,
                                  cpu.GRAD_ABS])
def test_fused_backward_streamed_is_exact(dtype, grad):
    y, g = np.abs(big(dtype, 0)) * 0.25, big(dtype, 1)    # y: an output of relu, sigmoid, sqrt, ...
    y[:3] = [0.0, np.nan, -0.0]
    got = cpu.unary_backward(grad, y, g)
    np.testing.assert_array_equal(got, pieces(lambda s, d: cpu.unary_backward(grad, s, d), y, g))
    with np.errstate(divide="ignore", invalid="ignore"):
        numpy_forms = {cpu.GRAD_RELU: lambda: np.where(y > 0, g, 0).astype(dtype),
                       cpu.GRAD_SIGMOID: lambda: g * (y * (1 - y)),
                       cpu.GRAD_TANH: lambda: g * (1 - y * y),
                       cpu.GRAD_SQRT: lambda: g / (y + y)}
        if grad in numpy_forms:
            np.testing.assert_array_equal(got, numpy_forms[grad]())


@pytest.mark.parametrize("dtype", DTYPES)
def test_clamp_streamed_is_exact(dtype):
    x = big(dtype, 0)
    np.testing.assert_array_equal(cpu.clamp(x, -1.0, 2.0), pieces(lambda v: cpu.clamp(v, -1.0, 2.0), x))


def test_in_place_streamed_is_exact():
    x = big(np.float32)
    want = cpu.unary(cpu.UNARY_EXP, x)
    cpu.unary(cpu.UNARY_EXP, x, out=x)
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_thread_count_does_not_change_streamed_bits(count, threads):
    a, b = big(np.float32, 0), big(np.float32, 1)
    s = np.array(3.0, np.float32)
    m, row = a[: a.size // 1001 * 1001].reshape(-1, 1001), b[:1001]
    ops = [lambda: cpu.binary(cpu.OP_ADD, a, b, a.shape, np.float32),
           lambda: cpu.binary(cpu.OP_MUL, a, s, a.shape, np.float32),     # one long row, in pieces
           lambda: cpu.binary(cpu.OP_SUB, m, row, m.shape, np.float32),   # rows
           lambda: cpu.unary(cpu.UNARY_EXP, a)]
    threads(1)
    want = [op() for op in ops]
    threads(count)
    for op, expected in zip(ops, want):
        np.testing.assert_array_equal(op(), expected)
