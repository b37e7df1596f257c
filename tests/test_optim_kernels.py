"""The fused optimizer steps of the C library (cpu/optim.c, api_optim.c):
bit for bit the NumPy formulas below (torch.optim's order of operations,
each hyper-parameter rounded to the dtype), on every SIMD path and thread
count, and clear errors for bad arguments. tests/test_optim.py holds the
optimizers equal to torch.optim."""
import itertools

import numpy as np
import pytest

from microgradbn import DTypeError, ShapeError
from microgradbn._backend import cpu

SIZES = (1, 7, 33, 1000, 100_003)   # the last is above the size that goes to the thread pool


def sgd_reference(p, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """torch.optim.SGD's step in NumPy (arrays and scalars in p's dtype), in place."""
    g = grad + p * p.dtype.type(weight_decay) if weight_decay != 0 else grad.copy()
    if momentum != 0:
        if first_step:
            buf[...] = g
        else:
            buf *= p.dtype.type(momentum)
            buf += g if dampening == 0 else p.dtype.type(1 - dampening) * g
        g = g + p.dtype.type(momentum) * buf if nesterov else buf
    p -= g * p.dtype.type(lr)


def adam_reference(p, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    """torch.optim.Adam's (AdamW's when decoupled) step in NumPy, in place."""
    real = p.dtype.type
    g = grad
    if weight_decay != 0:
        if decoupled:
            p *= real(1 - lr * weight_decay)
        else:
            g = grad + p * real(weight_decay)
    m += (g - m) * real(1 - beta1)
    v *= real(beta2)
    v += (g * g) * real(1 - beta2)
    denom = np.sqrt(v) / real(np.sqrt(1 - beta2 ** step)) + real(eps)
    p -= (m / denom) * real(lr / (1 - beta1 ** step))


def _state(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p, grad, buf = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = np.abs(rng.standard_normal(n)).astype(dtype)
    return p, grad, buf, v


SGD_CASES = [dict(lr=0.1, momentum=m, dampening=d, weight_decay=wd, nesterov=nest, first_step=first)
             for m, d, wd, nest, first in itertools.product((0.0, 0.9), (0.0, 0.3), (0.0, 1e-2),
                                                            (False, True), (False, True))
             if not (nest and (m == 0 or d != 0))]
ADAM_CASES = [dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=wd, step=step, decoupled=dec)
              for wd, step, dec in itertools.product((0.0, 1e-2), (1, 7), (False, True))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_sgd_step_is_the_reference_bit_for_bit(n, dtype):
    for case in SGD_CASES:
        p, grad, buf, _ = _state(n, dtype)
        p_ref, buf_ref = p.copy(), buf.copy()
        cpu.sgd_step(p, grad, buf if case["momentum"] else None, **case)
        sgd_reference(p_ref, grad, buf_ref, **case)
        np.testing.assert_array_equal(p, p_ref, err_msg=str(case))
        if case["momentum"]:
            np.testing.assert_array_equal(buf, buf_ref, err_msg=str(case))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_adam_step_is_the_reference_bit_for_bit(n, dtype):
    for case in ADAM_CASES:
        p, grad, m, v = _state(n, dtype)
        p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
        cpu.adam_step(p, grad, m, v, **case)
        adam_reference(p_ref, grad, m_ref, v_ref, **case)
        for got, want in ((p, p_ref), (m, m_ref), (v, v_ref)):
            np.testing.assert_array_equal(got, want, err_msg=str(case))


def test_same_bits_on_every_isa_and_thread_count():
    info = cpu.backend_info()
    results = {}
    try:
        for isa, threads in itertools.product(info["available_isas"], (1, 2, 3)):
            cpu.set_isa(isa)
            cpu.set_num_threads(threads)
            p, grad, m, v = _state(100_003, np.float32, seed=1)
            cpu.adam_step(p, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, 1e-2, 3, True)
            cpu.sgd_step(p, grad, m, 0.1, 0.9, 0.0, 1e-4, True, False)
            results[isa, threads] = p.tobytes() + m.tobytes() + v.tobytes()
    finally:
        cpu.set_isa(info["isa"])
        cpu.set_num_threads(info["threads"])
    assert len(set(results.values())) == 1, f"results differ between {sorted(results)}"


def test_bad_arguments_raise_clearly():
    p, grad, buf, v = _state(8, np.float32)
    with pytest.raises(ShapeError, match="grad: expected a C-contiguous float32 array of shape"):
        cpu.sgd_step(p, grad[:4], None, 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(ShapeError, match="exp_avg"):
        cpu.adam_step(p, grad, buf.astype(np.float64), v, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1, False)
    with pytest.raises(ShapeError, match="momentum_buffer"):
        cpu.sgd_step(p, grad, np.zeros((2, 4), np.float32), 0.1, 0.9, 0.0, 0.0, False, False)
    with pytest.raises(DTypeError):
        cpu.sgd_step(p.astype(np.int64), grad.astype(np.int64), None, 0.1, 0.0, 0.0, 0.0, False, False)
    with pytest.raises(ValueError, match="mg_sgd_step: momentum_buffer is NULL"):
        cpu.sgd_step(p, grad, None, 0.1, 0.9, 0.0, 0.0, False, False)
    with pytest.raises(ValueError, match="mg_sgd_step: lr must be finite"):
        cpu.sgd_step(p, grad, None, float("nan"), 0.0, 0.0, 0.0, False, False)
    with pytest.raises(ValueError, match="mg_adam_step: step must be >= 1"):
        cpu.adam_step(p, grad, buf, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0, False)
    with pytest.raises(ValueError, match=r"betas must be in \[0, 1\)"):
        cpu.adam_step(p, grad, buf, v, 1e-3, 1.0, 0.999, 1e-8, 0.0, 1, False)
    readonly = p.copy()
    readonly.flags.writeable = False
    with pytest.raises((TypeError, ValueError, BufferError)):
        cpu.sgd_step(readonly, grad, None, 0.1, 0.0, 0.0, 0.0, False, False)
