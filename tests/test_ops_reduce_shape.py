"""Reductions, softmax, shape ops, indexing, cat/stack through check_op and
float64 gradcheck; Hypothesis draws shapes and dims."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microgradbn as mg
from helpers import check_op, gradcheck64, torch


def _np_var(x, axis, correction, keepdims=False):
    return np.var(x, axis=axis, ddof=correction, keepdims=keepdims)


def _np_log_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


REDUCTIONS = {
    "sum": (lambda x, d, k: x.sum(d, keepdim=k), lambda x, d, k: np.sum(x, axis=d, keepdims=k),
            lambda x, d, k: x.sum(d, keepdim=k)),
    "mean": (lambda x, d, k: x.mean(d, keepdim=k), lambda x, d, k: np.mean(x, axis=d, keepdims=k),
             lambda x, d, k: x.mean(d, keepdim=k)),
    "var": (lambda x, d, k: x.var(d, keepdim=k), lambda x, d, k: _np_var(x, d, 1, k),
            lambda x, d, k: x.var(d, keepdim=k)),
    "var0": (lambda x, d, k: x.var(d, correction=0, keepdim=k), lambda x, d, k: _np_var(x, d, 0, k),
             lambda x, d, k: x.var(d, correction=0, keepdim=k)),
    "amax": (lambda x, d, k: x.amax(d, keepdim=k), lambda x, d, k: np.max(x, axis=d, keepdims=k),
             lambda x, d, k: x.amax(d, keepdim=k)),
    "amin": (lambda x, d, k: x.amin(d, keepdim=k), lambda x, d, k: np.min(x, axis=d, keepdims=k),
             lambda x, d, k: x.amin(d, keepdim=k)),
}
CASES = [((1000,), 0), ((33,), None), ((7, 33), 1), ((7, 33), 0), ((4, 5, 6), (0, 2)),
         ((4, 5, 6), -1), ((4, 5, 6), (0, 1, 2)), ((3, 1, 5), 1)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # NumPy's var of one value
@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("shape,dim", CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions(name, shape, dim, keepdim):
    mg_fn, np_fn, t_fn = REDUCTIONS[name]
    degenerate = name == "var" and shape == (3, 1, 5) and dim == 1  # one value: 0/0
    with np.errstate(all="ignore"):
        check_op(lambda x: mg_fn(x, dim, keepdim), lambda x: np_fn(x, dim, keepdim), [shape],
                 (lambda x: t_fn(x, dim, keepdim)) if torch is not None and dim is not None else None,
                 grad=not degenerate)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_gradcheck(name):
    mg_fn = REDUCTIONS[name][0]
    gradcheck64(lambda x: mg_fn(x, 1, False), [(3, 4)])
    gradcheck64(lambda x: mg_fn(x, (0, 2), True), [(2, 3, 2)])


def test_amax_shares_gradient_among_ties():
    x = mg.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0.5, 0.5], [1, 0, 0]])
    if torch is not None:
        t = torch.tensor(x.data, requires_grad=True)
        t.amax(1).sum().backward()
        np.testing.assert_array_equal(x.grad.data, t.grad.numpy())


# ---- max(dim) / min(dim): (values, indices), the gradient to the chosen element

EXTREMES = {"max": (np.max, np.argmax), "min": (np.min, np.argmin)}


@pytest.mark.parametrize("name", EXTREMES)
@pytest.mark.parametrize("shape,dim", [((1,), 0), ((7,), -1), ((33, 4), 0), ((1000,), 0),
                                       ((4, 5, 6), 1), ((3, 1, 5), 1)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_along_dim(name, shape, dim, keepdim):
    np_values, np_index = EXTREMES[name]
    check_op(lambda x: getattr(x, name)(dim, keepdim=keepdim).values,
             lambda x: np_values(x, axis=dim, keepdims=keepdim), [shape],
             (lambda x: getattr(x, name)(dim, keepdim=keepdim).values) if torch is not None else None)
    x = mg.tensor(np.random.default_rng(5).standard_normal(shape))
    result = getattr(mg, name)(x, dim, keepdim)
    values, indices = result                       # a named tuple, as torch.return_types
    assert result.values is values and result.indices is indices and indices.dtype == mg.int64
    np.testing.assert_array_equal(indices.data, np_index(x.data, axis=dim, keepdims=keepdim))
    if torch is not None:
        t = getattr(torch.tensor(x.data), name)(dim, keepdim=keepdim)
        np.testing.assert_array_equal(indices.data, t.indices.numpy())


@pytest.mark.parametrize("name", EXTREMES)
def test_max_min_along_dim_gradcheck(name):
    gradcheck64(lambda x: getattr(x, name)(1).values, [(3, 4)])
    gradcheck64(lambda x: getattr(x, name)(0, keepdim=True).values, [(2, 3, 2)])


def test_max_dim_ties_nan_and_no_dim():
    x = mg.tensor([[1.0, 3.0, 3.0], [np.nan, 0.0, np.nan], [2.0, 2.0, 2.0]], requires_grad=True)
    values, indices = x.max(1)
    np.testing.assert_array_equal(values.data, [3.0, np.nan, 2.0])
    assert indices.tolist() == [1, 0, 0]                # the first maximum, the first NaN
    values.sum().backward()                             # only the chosen element gets the gradient
    np.testing.assert_array_equal(x.grad.data, [[0, 1, 0], [1, 0, 0], [1, 0, 0]])
    if torch is not None:
        t = torch.tensor(x.data, requires_grad=True)
        tv, ti = t.max(1)
        tv.sum().backward()
        np.testing.assert_array_equal(ti.numpy(), indices.data)
        np.testing.assert_array_equal(t.grad.numpy(), x.grad.data)
    assert mg.tensor([[1.0, 5.0], [7.0, 2.0]]).max().item() == 7.0     # no dim: the largest element
    assert mg.min(mg.tensor([[1.0, 5.0], [7.0, 2.0]])).item() == 1.0
    scalar = mg.tensor(3.0).max(0)
    assert scalar.values.item() == 3.0 and scalar.indices.item() == 0 and scalar.values.shape == ()
    assert mg.tensor([[1, 5], [7, 2]]).max(1).values.tolist() == [5, 7]
    with pytest.raises(mg.ShapeError, match="non-empty"):
        mg.zeros(2, 0).max(1)
    with pytest.raises(TypeError, match="dim must be an int"):
        mg.ones(2, 3).max((0, 1))


SOFTMAX = {
    "softmax1": (lambda x: x.softmax(1), lambda x: np.exp(_np_log_softmax(x, 1)), "softmax", 1),
    "log_softmax1": (lambda x: x.log_softmax(1), lambda x: _np_log_softmax(x, 1), "log_softmax", 1),
    "softmax0": (lambda x: mg.softmax(x, 0), lambda x: np.exp(_np_log_softmax(x, 0)), "softmax", 0),
    "log_softmax-1": (lambda x: mg.log_softmax(x, -1), lambda x: _np_log_softmax(x, -1), "log_softmax", -1),
}


@pytest.mark.parametrize("name", SOFTMAX)
@pytest.mark.parametrize("shape", [(1, 7), (7, 33), (4, 1000)])
def test_softmax(name, shape):
    fn, np_fn, torch_name, dim = SOFTMAX[name]
    t_fn = (lambda x: getattr(torch, torch_name)(x, dim)) if torch is not None else None
    check_op(fn, np_fn, [shape], t_fn, low=-5, high=5)
    gradcheck64(fn, [(3, 4)])


def test_log_softmax_is_stable():
    x = mg.tensor([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(x.log_softmax(1).data, [[0.0, -1000.0, -2000.0]])
    np.testing.assert_allclose(x.softmax(1).data, [[1.0, 0.0, 0.0]])


SHAPE_OPS = {
    "reshape": (lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
    "view": (lambda x: x.contiguous().view(-1, 6), lambda x: x.reshape(-1, 6)),
    "transpose": (lambda x: x.transpose(0, 2), lambda x: np.swapaxes(x, 0, 2)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: np.transpose(x, (2, 0, 1))),
    "T": (lambda x: x[0].T * 1.0, lambda x: x[0].T),
    "unsqueeze": (lambda x: x.unsqueeze(1), lambda x: x[:, None]),
    "squeeze": (lambda x: x[:, :1].squeeze(1), lambda x: x[:, 0]),
    "flatten": (lambda x: x.flatten(1), lambda x: x.reshape(x.shape[0], -1)),
    "expand": (lambda x: x[:, :1].expand(2, -1, 3, -1),
               lambda x: np.broadcast_to(x[:, :1], (2, 2, 3, x.shape[-1]))),
    "index": (lambda x: x[1, ::2, None, ...], lambda x: x[1, ::2, None, ...]),
    "index_negative_step": (lambda x: x[-1, ::-2, 1:], lambda x: x[-1, ::-2, 1:]),
    "index_array": (lambda x: x[mg.tensor([0, 0, 1])], lambda x: x[[0, 0, 1]]),
    "index_mask": (lambda x: x[x > 0], lambda x: x[x > 0]),
    "cat": (lambda x: mg.cat([x, x * 2], 1), lambda x: np.concatenate([x, x * 2], 1)),
    "stack": (lambda x: mg.stack([x, x * 2], -1), lambda x: np.stack([x, x * 2], -1)),
    "clone": (lambda x: x.clone(), lambda x: x.copy()),
    "to64": (lambda x: x.to(mg.float64).to(x.dtype), lambda x: x),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_ops(name):
    mg_fn, np_fn = SHAPE_OPS[name]
    layouts = ("contiguous", "transposed", "negative") if name == "index_mask" else None
    kwargs = {"layouts": layouts} if layouts else {}
    t_fn = None
    if torch is not None and name not in ("index_negative_step", "index_array", "index_mask", "to64"):
        t_fn = {"cat": lambda x: torch.cat([x, x * 2], 1),
                "stack": lambda x: torch.stack([x, x * 2], -1)}.get(name, mg_fn)
    check_op(mg_fn, np_fn, [(2, 3, 4)], t_fn, **kwargs)
    if name != "index_mask":       # the mask moves with the nudged values
        gradcheck64(mg_fn, [(2, 3, 4)])


SIZED_SHAPE_OPS = ("transpose", "permute", "T", "unsqueeze", "squeeze", "flatten", "expand", "index",
                   "cat", "stack", "clone")


@pytest.mark.parametrize("name", SIZED_SHAPE_OPS)
@pytest.mark.parametrize("n", [1, 7, 33, 1000])
def test_shape_ops_sizes(name, n):
    mg_fn, np_fn = SHAPE_OPS[name]
    t_fn = {"cat": lambda x: torch.cat([x, x * 2], 1),
            "stack": lambda x: torch.stack([x, x * 2], -1)}.get(name, mg_fn) if torch is not None else None
    check_op(mg_fn, np_fn, [(2, 3, n)], t_fn)


def test_view_of_non_contiguous_raises_like_pytorch():
    x = mg.ones(3, 4).T
    with pytest.raises(RuntimeError, match="reshape"):
        x.view(12)
    assert x.reshape(12).shape == (12,)
    with pytest.raises(RuntimeError, match=r"shape '\[5, -1\]' is invalid for input of size 12"):
        mg.ones(3, 4).reshape(5, -1)


def test_shape_errors():
    with pytest.raises(mg.ShapeError, match=r"\(2, 3\).*\(2, 4\)"):
        mg.cat([mg.ones(2, 3), mg.ones(2, 4)], 0)
    with pytest.raises(mg.ShapeError):
        mg.stack([mg.ones(2), mg.ones(3)])
    with pytest.raises(mg.ShapeError):
        mg.ones(2, 3).expand(4, 3)
    with pytest.raises(IndexError):
        mg.ones(2, 3).sum(2)
    with pytest.raises(IndexError):
        mg.ones(2, 3)[5]
    with pytest.raises(RuntimeError, match="multiple"):
        mg.ones(2, 3).sum((1, -1))


def test_empty_tensors():
    assert mg.zeros(0, 3).sum(0).tolist() == [0.0, 0.0, 0.0]
    assert mg.zeros(0, 3).sum().item() == 0.0
    with pytest.raises(mg.ShapeError, match="non-empty"):
        mg.zeros(0, 3).amax(0)
    assert np.isnan(mg.zeros(0).mean().item())


def test_integer_reductions():
    x = mg.tensor([[1, 2], [3, 4]])
    assert x.sum().item() == 10 and x.sum().dtype == mg.int64
    assert x.amax(0).tolist() == [3, 4]
    with pytest.raises(TypeError, match="floating point"):
        x.mean()


shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, data=st.data())
def test_hypothesis_reductions_match_numpy(shape, data):
    ndim = len(shape)
    dims = tuple(sorted(data.draw(st.sets(st.integers(0, ndim - 1), min_size=1))))
    keepdim = data.draw(st.booleans())
    x = mg.tensor(np.random.default_rng(ndim).standard_normal(shape), requires_grad=True)
    for mg_name, np_fn in (("sum", np.sum), ("amax", np.max), ("amin", np.min)):
        out = getattr(x, mg_name)(dims, keepdim=keepdim)
        np.testing.assert_allclose(out.data, np_fn(x.data.astype(np.float64), axis=dims, keepdims=keepdim),
                                   rtol=1e-6)
    out = x.mean(dims, keepdim=keepdim)
    out.sum().backward()
    count = np.prod([shape[d] for d in dims])
    np.testing.assert_allclose(x.grad.data, np.full(shape, 1 / count), rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, data=st.data())
def test_hypothesis_broadcast_binary(shape, data):
    other = tuple(data.draw(st.sampled_from([1, n])) for n in shape)
    other = other[data.draw(st.integers(0, len(other))):]
    rng = np.random.default_rng(len(shape))
    a = mg.tensor(rng.standard_normal(shape), requires_grad=True)
    b = mg.tensor(rng.standard_normal(other), requires_grad=True)
    out = a * b + b
    np.testing.assert_allclose(out.data, a.data * b.data + b.data, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(a.grad.data, np.broadcast_to(b.data, out.shape), rtol=1e-6)
    expected_b = np.sum(np.broadcast_to(a.data, out.shape) + 1, axis=tuple(range(out.ndim - len(other))))
    np.testing.assert_allclose(b.grad.data, np.sum(expected_b, axis=tuple(
        i for i, n in enumerate(other) if n == 1), keepdims=True).reshape(other), rtol=1e-5)
