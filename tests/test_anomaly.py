"""Anomaly detection (microgradbn/anomaly.py): the first op whose forward or
backward makes a NaN or an infinity is named, with where the user called it."""
import inspect
import os

import numpy as np
import pytest

import microgradbn as mg
import microgradbn.nn as nn
import microgradbn.nn.functional as F

HERE = os.path.abspath(__file__)


def line_of(marker):
    """The line number of the line of this file that holds marker (once)."""
    lines = [i + 1 for i, text in enumerate(inspect.getsource(inspect.getmodule(line_of)).splitlines())
             if marker in text and "line_of(" not in text]
    assert len(lines) == 1, lines
    return lines[0]


def test_backward_nan_names_the_node_and_the_line():
    x = mg.tensor([1.0, 0.0, 4.0], dtype=mg.float64, requires_grad=True)
    with mg.autograd.detect_anomaly(check_forward=False):
        y = x.sqrt()                                  # marker: sqrt-call
        z = (y * 0.0).sum()  # backward of sqrt at 0 gets 0 * inf = nan
        with pytest.raises(RuntimeError) as info:
            z.backward()
    message = str(info.value)
    assert message.startswith("Function 'SqrtBackward' returned nan values in its 0th output.")
    assert f"created at {HERE}:{line_of('marker: sqrt-call')}" in message
    assert "y = x.sqrt()" in message                  # the source line, from the short traceback
    assert x.grad is None                             # nothing reached the leaf


def test_backward_inf_of_log_at_zero():
    x = mg.tensor([[1.0, 0.0]], requires_grad=True)
    with mg.autograd.detect_anomaly(check_forward=False):
        loss = x.log().sum()                          # marker: log-call
        with pytest.raises(RuntimeError, match=r"^Function 'LogBackward' returned inf values in its "
                                               r"0th output\.") as info:
            loss.backward()
    assert f"{HERE}:{line_of('marker: log-call')}" in str(info.value)


def test_forward_check_names_the_first_op_that_made_a_non_finite_value():
    x = mg.tensor([1.0, 100.0], requires_grad=True)   # float32: exp(100) overflows
    with mg.autograd.detect_anomaly():
        h = x * 2.0
        with pytest.raises(RuntimeError) as info:
            h.exp()                                   # marker: exp-call
    message = str(info.value)
    assert message.startswith("Function 'Exp' (forward of ExpBackward) produced inf values in its "
                              "output from finite inputs.")
    assert f"created at {HERE}:{line_of('marker: exp-call')}" in message


def test_forward_check_does_not_blame_an_op_that_passes_a_nan_on():
    x = mg.tensor([1.0, float("nan")], requires_grad=True)
    with mg.autograd.detect_anomaly():
        y = (x * 2.0).exp().sum()                     # NaN in, NaN out: no op made it
    assert np.isnan(y.item())


def test_forward_check_on_the_fast_path_and_without_grad():
    a, b = mg.tensor([1.0, 0.0]), mg.tensor([0.0, 0.0])
    with mg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match=r"^Function 'Div' .* produced nan values"):
            a / b                                     # same shape, contiguous: the fast path
        with mg.no_grad(), pytest.raises(RuntimeError, match="Function 'Log'"):
            mg.log(b)


def test_batch_norm_with_eps_zero_on_a_constant_channel():
    x = mg.ones(4, 3, dtype=mg.float64, requires_grad=True)
    with mg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match=r"^Function 'BatchNorm' \(forward of BatchNormBackward\) "
                                               r"produced nan values"):
            F.batch_norm(x, None, None, training=True, eps=0.0)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2, dtype=mg.float64)

    def forward(self, x):
        return self.linear(x).log()                   # marker: inside-module


def test_creation_site_is_the_users_frame_not_the_librarys():
    mg.manual_seed(0)
    model = Model()
    x = mg.tensor(np.full((4, 3), -5.0))
    with mg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError) as info:
            model(x)    # a negative output of linear makes log produce nan in forward
    message = str(info.value)
    assert message.startswith("Function 'Log'")
    assert f"created at {HERE}:{line_of('marker: inside-module')}" in message
    assert "model(x)" in message                      # the caller's frame is in the traceback


def test_check_nan_false_records_the_site_but_raises_nothing():
    x = mg.tensor([0.0], requires_grad=True)
    with mg.autograd.detect_anomaly(check_nan=False):
        assert mg.autograd.is_anomaly_enabled()
        assert not mg.anomaly.is_anomaly_check_nan_enabled()
        y = x.log()                                   # marker: unchecked
        y.sum().backward()
    assert mg.anomaly.creation_site(y.grad_fn) == f"{HERE}:{line_of('marker: unchecked')}"
    assert np.isinf(x.grad.numpy()).all()


def test_off_records_nothing_and_checks_nothing():
    x = mg.tensor([0.0], requires_grad=True)
    assert not mg.autograd.is_anomaly_enabled()
    y = x.log()
    y.sum().backward()
    assert not hasattr(y.grad_fn, "anomaly_site")
    assert mg.anomaly.creation_site(y.grad_fn) is None
    assert np.isinf(x.grad.numpy()).all()


def test_a_node_made_outside_the_mode_says_so():
    x = mg.tensor([0.0], requires_grad=True)
    y = x.log().sum()
    with mg.autograd.detect_anomaly(), pytest.raises(RuntimeError, match="was not recorded"):
        y.backward()


def test_modes_nest_restore_and_decorate():
    with mg.autograd.detect_anomaly():
        with mg.autograd.detect_anomaly(check_nan=False):
            assert not mg.anomaly.is_anomaly_check_nan_enabled()
        assert mg.anomaly.is_anomaly_check_nan_enabled()
    assert not mg.autograd.is_anomaly_enabled()

    @mg.autograd.detect_anomaly()
    def inside():
        return mg.autograd.is_anomaly_enabled()

    assert inside() and not mg.autograd.is_anomaly_enabled()
    mg.autograd.set_detect_anomaly(True)
    try:
        assert mg.autograd.is_anomaly_enabled()
    finally:
        mg.autograd.set_detect_anomaly(False)
    assert not mg.autograd.is_anomaly_enabled()
    with mg.autograd.set_detect_anomaly(True):
        assert mg.autograd.is_anomaly_enabled()
    assert not mg.autograd.is_anomaly_enabled()


def test_a_finite_training_step_runs_unchanged_in_the_mode():
    def step():
        mg.manual_seed(1)
        model = nn.Sequential(nn.Linear(5, 8, bias=False, dtype=mg.float64),
                              nn.BatchNorm1d(8, dtype=mg.float64), nn.ReLU(),
                              nn.Linear(8, 3, dtype=mg.float64))
        x = mg.randn(6, 5, dtype=mg.float64)
        loss = F.cross_entropy(model(x), mg.tensor([0, 1, 2, 0, 1, 2]))
        loss.backward()
        return [p.grad.numpy().copy() for p in model.parameters()]

    plain = step()
    with mg.autograd.detect_anomaly():
        checked = step()
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a, b)
