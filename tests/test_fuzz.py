"""Fuzzing with Hypothesis.

1. Random sequences of ops (elementwise, maps, reductions over dims,
   reshape/transpose/indexing, matmul, softmax, BN) run on a tensor whose
   layout the sequence keeps changing (views, negative strides, empties);
   each op's result is held against NumPy in float64 on the very values
   the op was given, so errors cannot pile up along the sequence.
2. Random bad arguments (wrong shapes, dtypes, layouts, NaN/Inf, empty,
   sizes like 10**15, negative sizes, wrong Python types, None) into every
   public function of mg, mg.nn.functional, the Tensor methods, the nn
   modules' constructors (and the modules they make) and the C backend
   (microgradbn._backend.cpu). The only allowed outcomes are a result or
   one of the documented exceptions: ValueError, TypeError, IndexError,
   RuntimeError, MemoryError or a subclass (ShapeError, DTypeError, ...).
   A crash (a segfault, an abort, a sanitizer report: CI runs this file
   under ASan/UBSan) ends the run.

Sizes are either small (at most 7) or at least 10**15, never in between,
so that no combination of them asks for an allocation that could succeed
and fill the machine: huge requests fail at once with MemoryError.

The default run is short; MGBN_FUZZ_EXAMPLES=N runs N examples per test.
"""
import builtins
import inspect
import math
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import microgradbn as mg
import microgradbn.nn as nn
import microgradbn.nn.functional as F
from microgradbn import autograd
from microgradbn._backend import cpu

EXAMPLES = int(os.environ.get("MGBN_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
# the calls into every public function: fewer per function, there are many functions
ARGS_FUZZ = settings(FUZZ, max_examples=max(5, EXAMPLES // 5))

DOCUMENTED = (ValueError, TypeError, IndexError, RuntimeError, MemoryError)
# and, for bad arguments: an int too large for its C type raises Python's own
# OverflowError (NumPy and cffi do), Tensor.__dlpack__ refuses with BufferError
# as PyTorch's does
BAD_ARGUMENT_ERRORS = DOCUMENTED + (OverflowError, BufferError)


# ---- 1. sequences of ops against NumPy ----------------------------------------

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def finite_values(dtype):
    return st.floats(-3, 3, width=32 if dtype == np.float32 else 64)


def as64(t):
    return np.asarray(t.data, dtype=np.float64)


def step_binary(data, t):
    other_shape = data.draw(hnp.broadcastable_shapes(t.shape, min_dims=0, max_dims=t.ndim + 1,
                                                     min_side=0, max_side=5))
    op = data.draw(st.sampled_from(["add", "sub", "mul", "div"]))
    values = st.floats(0.5, 3) if op == "div" else finite_values(t.dtype)
    other = data.draw(hnp.arrays(t.dtype, other_shape, elements=values))
    if op == "div":
        other = other * data.draw(st.sampled_from([1, -1]))
    fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op]
    if data.draw(st.booleans()):                                   # t op other
        return (lambda: getattr(mg, op)(t, mg.tensor(other))), fn(as64(t), other.astype(np.float64)), 1
    if op == "div":                                                # other / t could divide by 0
        scalar = data.draw(st.floats(0.5, 3))
        return (lambda: t / scalar), as64(t) / np.float64(t.dtype.type(scalar)), 1
    return (lambda: getattr(mg, op)(mg.tensor(other), t)), fn(other.astype(np.float64), as64(t)), 1


def step_unary(data, t):
    name = data.draw(st.sampled_from(["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "neg",
                                      "clamp", "pow"]))
    a = as64(t)
    with np.errstate(all="ignore"):
        if name == "clamp":
            lo, hi = sorted(data.draw(st.lists(st.floats(-2, 2), min_size=2, max_size=2)))
            return (lambda: mg.clamp(t, lo, hi)), np.clip(a, lo, hi), 1
        if name == "pow":
            e = data.draw(st.sampled_from([2, 3, 0.5, -1.0]))
            return (lambda: t ** e), np.power(a.astype(t.dtype), e).astype(np.float64), 1
        oracle = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh,
                  "relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
                  "abs": np.abs, "neg": np.negative}[name]
        return (lambda: getattr(mg, name)(t)), oracle(a), 1


def draw_dims(data, ndim):
    dims = data.draw(st.lists(st.integers(-ndim, ndim - 1), max_size=ndim, unique_by=lambda d: d % ndim))
    return tuple(dims) if dims else None


def step_reduce(data, t):
    name = data.draw(st.sampled_from(["sum", "mean", "var", "amax", "amin", "argmax"]))
    a, keepdim = as64(t), data.draw(st.booleans())
    if name == "argmax":
        dim = data.draw(st.none() | st.integers(-t.ndim, t.ndim - 1)) if t.ndim else None
        try:
            expected = np.argmax(a, axis=dim, keepdims=keepdim)
        except ValueError:          # over an empty dim
            expected = ValueError
        return (lambda: mg.argmax(t, dim, keepdim)), expected, 0
    dim = draw_dims(data, t.ndim) if t.ndim else None
    axes = tuple(range(t.ndim)) if dim is None else tuple(d % t.ndim for d in dim)
    count = math.prod(t.shape[d] for d in axes)
    scale = max(count, 1)
    if name in ("amax", "amin"):
        run = lambda: getattr(mg, name)(t, dim if dim is not None else (), keepdim)  # noqa: E731
        if count == 0:
            return run, ValueError, 0
        return run, (np.max if name == "amax" else np.min)(a, axis=axes, keepdims=keepdim), 1
    if name == "var":
        if count < 2:
            return None
        expected = np.var(a, axis=axes, ddof=1, keepdims=keepdim)
        return (lambda: mg.var(t, dim, keepdim=keepdim)), expected, scale
    if name == "mean" and count == 0:
        return None
    fn = np.sum if name == "sum" else np.mean
    return (lambda: getattr(mg, name)(t, dim, keepdim)), fn(a, axis=axes, keepdims=keepdim), scale


def step_softmax(data, t):
    if t.ndim == 0:
        return None
    dim = data.draw(st.integers(-t.ndim, t.ndim - 1))
    a = as64(t)
    shifted = a - (np.max(a, axis=dim, keepdims=True) if a.size else 0)
    log_sum = np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))
    if data.draw(st.booleans()):
        return (lambda: mg.softmax(t, dim)), np.exp(shifted - log_sum), 1
    return (lambda: mg.log_softmax(t, dim)), shifted - log_sum, 1


def factor_shape(data, n):
    """A random shape with n elements (up to 4 dims), maybe with one -1."""
    if n == 0:
        return data.draw(st.sampled_from([(0,), (0, 3), (2, 0, 1), (-1, 0)]))
    factors, p, m = [], 2, n
    while m > 1:
        while m % p == 0:
            factors.append(p)
            m //= p
        p += 1
    dims = [1] * data.draw(st.integers(1, 4))
    for f in factors:
        dims[data.draw(st.integers(0, len(dims) - 1))] *= f
    if data.draw(st.booleans()):
        dims[data.draw(st.integers(0, len(dims) - 1))] = -1
    return tuple(dims)


def step_shape(data, t):
    kind = data.draw(st.sampled_from(["reshape", "transpose", "permute", "unsqueeze", "squeeze", "flatten",
                                      "expand"]))
    a = as64(t)
    if kind == "reshape":
        shape = factor_shape(data, t.numel())
        try:
            expected = a.reshape(shape)
        except ValueError:          # (-1, 0) for no elements: ambiguous, refused by both
            expected = ValueError
        return (lambda: t.reshape(shape)), expected, 0
    if kind == "unsqueeze":
        d = data.draw(st.integers(-t.ndim - 1, t.ndim))
        return (lambda: t.unsqueeze(d)), np.expand_dims(a, d), 0
    if t.ndim == 0:
        return None
    if kind == "transpose":
        d0, d1 = data.draw(st.integers(-t.ndim, t.ndim - 1)), data.draw(st.integers(-t.ndim, t.ndim - 1))
        return (lambda: t.transpose(d0, d1)), np.swapaxes(a, d0, d1), 0
    if kind == "permute":
        perm = data.draw(st.permutations(range(t.ndim)))
        return (lambda: t.permute(*perm)), np.transpose(a, perm), 0
    if kind == "squeeze":
        d = data.draw(st.integers(-t.ndim, t.ndim - 1))
        return (lambda: t.squeeze(d)), (np.squeeze(a, d) if t.shape[d] == 1 else a), 0
    if kind == "flatten":
        start = data.draw(st.integers(0, t.ndim - 1))
        end = data.draw(st.integers(start, t.ndim - 1))
        merged = a.shape[:start] + (math.prod(a.shape[start:end + 1]),) + a.shape[end + 1:]
        return (lambda: t.flatten(start, end)), a.reshape(merged), 0
    sizes = tuple(data.draw(st.integers(1, 3)) if n == 1 else n for n in t.shape)
    return (lambda: t.expand(*sizes)), np.broadcast_to(a, sizes), 0


def draw_index(data, shape):
    """A basic index (ints, slices with any step, None, Ellipsis) or an advanced one."""
    kind = data.draw(st.sampled_from(["basic", "basic", "int_array", "mask"]))
    if kind == "mask" and shape:
        return data.draw(hnp.arrays(np.bool_, shape))
    if kind == "int_array" and shape and shape[0] > 0:
        return data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=4))
    parts = []
    for n in shape[:data.draw(st.integers(0, len(shape)))]:
        if n > 0 and data.draw(st.booleans()):
            parts.append(data.draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 2, n + 2)
            parts.append(slice(data.draw(bound), data.draw(bound),
                               data.draw(st.none() | st.sampled_from([1, 2, 3, -1, -2]))))
    if data.draw(st.booleans()):
        parts.insert(data.draw(st.integers(0, len(parts))), None)
    return tuple(parts)


def step_index(data, t):
    index = draw_index(data, t.shape)
    return (lambda: t[index]), as64(t)[index], 0


def step_matmul(data, t):
    if t.ndim == 0:
        return None
    k = t.shape[-1]
    n = data.draw(st.integers(1, 5))
    if data.draw(st.booleans()) or t.ndim == 1:
        other_shape = (k,) if data.draw(st.booleans()) else (k, n)
    else:
        batch = data.draw(hnp.broadcastable_shapes(t.shape[:-2], min_dims=0, min_side=0, max_side=4))
        other_shape = batch + (k, n)
    b = data.draw(hnp.arrays(t.dtype, other_shape, elements=finite_values(t.dtype)))
    return (lambda: t @ mg.tensor(b)), np.matmul(as64(t), b.astype(np.float64)), max(k, 1) * 3


def step_batch_norm(data, t):
    if t.ndim not in (2, 3, 4) or t.numel() == 0:
        return None
    c = t.shape[1]
    count = t.numel() // c
    training = data.draw(st.booleans())
    if training and count < 2:
        return None
    a = as64(t)
    axes = (0,) + tuple(range(2, t.ndim))
    vec = hnp.arrays(t.dtype, (c,), elements=finite_values(t.dtype))
    weight, bias = data.draw(vec), data.draw(vec)
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.5]))
    extra = (1,) * (t.ndim - 2)
    if training:
        mean, var = a.mean(axis=axes, keepdims=True), a.var(axis=axes, keepdims=True)
        args = (None, None)
    else:
        mean = data.draw(vec).astype(np.float64)
        var = np.abs(data.draw(vec)).astype(np.float64) + 0.1
        args = (mg.tensor(mean.astype(t.dtype)), mg.tensor(var.astype(t.dtype)))
        mean, var = mean.astype(t.dtype).reshape((1, c) + extra), var.astype(t.dtype).reshape((1, c) + extra)
    rstd = 1 / np.sqrt(var + eps)
    expected = (a - mean) * rstd * weight.reshape((1, c) + extra) + bias.reshape((1, c) + extra)
    # the float32 kernels compute x - mean in float32: scale by the largest rstd
    def run():
        return F.batch_norm(t, *args, mg.tensor(weight), mg.tensor(bias), training=training, eps=eps)

    return run, expected, float(np.max(rstd)) * 4


STEPS = {"binary": step_binary, "unary": step_unary, "reduce": step_reduce, "softmax": step_softmax,
         "shape": step_shape, "index": step_index, "matmul": step_matmul, "batch_norm": step_batch_norm}


def check_step(run, expected, scale, dtype, inputs_max):
    """run() against expected (an array, or ValueError: then run must raise a documented error)."""
    if expected is ValueError:
        with pytest.raises(DOCUMENTED):
            run()
        return None
    out = run()
    assert isinstance(out, mg.Tensor)
    assert out.shape == np.shape(expected), (out.shape, np.shape(expected))
    if out.dtype == np.int64:
        np.testing.assert_array_equal(out.data, expected)
        return out
    assert out.dtype == dtype
    with np.errstate(over="ignore"):   # the exact value in the output's dtype: inf beyond its range
        expected = np.asarray(expected).astype(dtype).astype(np.float64)
    atol = TOL[dtype] * scale * max(1.0, inputs_max) ** 2
    np.testing.assert_allclose(as64(out), expected, rtol=TOL[dtype] * 4, atol=atol, equal_nan=True)
    return out


@FUZZ
@given(data=st.data(), dtype=st.sampled_from([np.float64, np.float32]))
def test_random_op_sequences_match_numpy(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    t = mg.tensor(data.draw(hnp.arrays(dtype, shape, elements=finite_values(dtype))))
    for _ in range(data.draw(st.integers(1, 6))):
        name = data.draw(st.sampled_from(sorted(STEPS)))
        inputs_max = float(np.max(np.abs(as64(t)), initial=0))
        with np.errstate(all="ignore"):
            drawn = STEPS[name](data, t)
            if drawn is None:
                continue
            out = check_step(*drawn, np.dtype(dtype), inputs_max)
        if (out is None or out.dtype != dtype or not np.isfinite(out.data).all()
                or np.abs(out.data).max(initial=0) > 1e6):
            break
        t = out


# ---- 2. bad arguments ---------------------------------------------------------

SMALL_INTS = [-3, -1, 0, 1, 2, 3, 7]
HUGE_INTS = [10**15, -10**15, 2**62, 2**63, 10**30]
FLOATS = [0.0, -0.0, 0.5, -2.5, 1e-300, 1e300, math.nan, math.inf, -math.inf]
DTYPES = [np.float32, np.float64, np.int64, np.bool_, np.float16, np.int32, np.uint8, np.complex128,
          np.dtype(">f8")]


@st.composite
def bad_arrays(draw, dtypes=DTYPES):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3))
    fill = draw(st.sampled_from(FLOATS + [1.0, -1.0, 3.0]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        a = np.full(shape, fill).astype(dtype)
    layout = draw(st.sampled_from(["c", "transposed", "reversed", "broadcast", "fortran"]))
    if layout == "transposed":
        a = a.T
    elif layout == "reversed" and a.ndim:
        a = a[::-1]
    elif layout == "broadcast":
        a = np.broadcast_to(a, (2,) + a.shape)
    elif layout == "fortran":
        a = np.asfortranarray(a)
    return a


def tensors_from(arrays):
    def make(a):
        if a.dtype not in (np.float32, np.float64, np.int64, np.bool_) or not a.dtype.isnative:
            return mg.tensor(np.zeros(a.shape, np.float32))
        t = mg.from_numpy(a) if a.flags.writeable else mg.tensor(a)
        return t.requires_grad_() if t.is_floating_point() and a.size % 2 else t
    return arrays.map(make)


def leaves():
    ints = st.sampled_from(SMALL_INTS + HUGE_INTS)
    return st.one_of(
        st.none(), ints, st.sampled_from(FLOATS), st.booleans(),
        st.sampled_from(["", "abc", "float32", "mean", "relu", "cpu", "opencl", "fan_in"]),
        st.sampled_from([b"x", object(), Ellipsis, slice(None, None, -1), slice(0, 10**15),
                         np.float64(math.nan), np.int64(-1), mg.float32, mg.int64, np.dtype(np.float16),
                         [], [[1.0], [2.0, 3.0]], {}, {"a": 1}, lambda *a, **k: None, float]),
        st.lists(ints, max_size=4).map(tuple), bad_arrays(), tensors_from(bad_arrays()),
    )


def arguments():
    def containers(inner):
        return st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)

    return st.recursive(leaves(), containers, max_leaves=6)


def public_functions(namespace, skip=()):
    found = []
    for name in sorted(dir(namespace)):
        fn = getattr(namespace, name)
        if (name.startswith("_") or name in skip or not inspect.isfunction(fn)
                or not fn.__module__.startswith("microgradbn")):
            continue
        found.append((f"{namespace.__name__}.{name}", fn))
    return found


def tensor_methods():
    names = [n for n in dir(mg.Tensor) if (not n.startswith("_") or n in OPERATORS)
             and callable(getattr(mg.Tensor, n)) and n not in ("register_hook",)]
    return [(f"Tensor.{n}", getattr(mg.Tensor, n)) for n in sorted(names)]


OPERATORS = {"__getitem__", "__setitem__", "__add__", "__sub__", "__mul__", "__truediv__", "__pow__",
             "__matmul__", "__rsub__", "__rtruediv__", "__rpow__", "__eq__", "__lt__", "__neg__",
             "__len__", "__iter__", "__float__", "__int__", "__index__", "__bool__", "__dlpack__",
             "__array__"}
MODULES = [(f"nn.{n}", getattr(nn, n)) for n in nn.__all__
           if inspect.isclass(getattr(nn, n)) and issubclass(getattr(nn, n), nn.Module)]
# the array-level functions: NumPy arrays in (F re-exports reduce_sum_array for its losses)
BACKEND = public_functions(cpu, skip={"init", "raise_status"}) + [
    ("microgradbn.ops.reduce_sum_array", mg.ops.reduce_sum_array)]
TARGETS = (public_functions(mg, skip={"save", "load", "set_num_threads"})
           + public_functions(F, skip={"reduce_sum_array"}) + tensor_methods() + BACKEND)


THREADS, ISA = mg.get_num_threads(), mg.backend_info()["isa"]


# Known gap (docs/reliability.md): a plain Python or NumPy object (None, a list,
# a number, an ndarray, ...) where a Tensor or an array is needed can still
# raise AttributeError ("'NoneType' object has no attribute 'shape'") rather
# than TypeError. An AttributeError about any other type fails the test.
PLAIN_TYPES = {name for name in dir(builtins) if isinstance(getattr(builtins, name), type)} | {
    "NoneType", "ellipsis", "function", "builtin_function_or_method", "type"}


def wrong_plain_type(error, backend):
    """error is that gap (for the array-level functions: a Tensor for an array, too)."""
    match = re.match(r"(?:type object )?'([\w.]+)'(?: object)? has no attribute", str(error))
    if not isinstance(error, AttributeError) or match is None:
        return False
    name = match.group(1)
    return name in PLAIN_TYPES or name.startswith("numpy.") or backend and name == "Tensor"


def call(fn, args, kwargs, backend=False):
    """fn(*args, **kwargs) may return or raise a documented exception, nothing else.
    What a call may switch globally is switched back: grad mode, anomaly mode,
    threads and SIMD path."""
    with np.errstate(all="ignore"):
        try:
            result = fn(*args, **kwargs)
        except BAD_ARGUMENT_ERRORS:
            return None
        except AttributeError as error:
            if not wrong_plain_type(error, backend):
                raise
            return None
        finally:
            autograd._state.enabled = True
            autograd._anomaly = None
            mg.set_num_threads(THREADS)
            cpu.set_isa(ISA)
    if isinstance(result, mg.Tensor):
        np.asarray(result.data).sum()   # touch the result's memory
    return result


# Arguments drawn by parameter name: mostly of the expected kind (an array
# of the wrong shape is likelier to reach a kernel than None is), else anything.
NAMED = [
    ({"a", "b", "x", "y", "saved", "grad", "dy", "array", "total", "input", "target", "other", "out",
      "condition", "src", "value", "weight", "bias", "running_mean", "running_var", "save_mean",
      "save_rstd", "t", "obj", "data", "gradient", "tensor", "x_handle", "y_handle"}, "array"),
    ({"op", "dim", "dim0", "dim1", "start_dim", "end_dim", "n", "num_features", "in_features",
      "out_features", "in_channels", "out_channels", "seed", "correction", "start", "end", "step",
      "index"}, st.sampled_from(SMALL_INTS + HUGE_INTS)),
    ({"shape", "size", "sizes", "axes", "dims", "kernel_size", "kernel", "stride", "padding"},
     st.lists(st.sampled_from(SMALL_INTS + HUGE_INTS), max_size=4).map(tuple) | st.sampled_from(SMALL_INTS)),
    ({"eps", "momentum", "lr", "p", "lo", "hi", "min", "max", "fill_value", "alpha", "exponent"},
     st.sampled_from(FLOATS + SMALL_INTS)),
    ({"keepdim", "training", "affine", "track_running_stats", "need_dx", "need_dweight", "need_dbias",
      "want_x", "want_weight", "want_bias", "accumulate", "requires_grad", "retain_graph", "copy"},
     st.booleans()),
    ({"dtype"}, st.sampled_from([None, mg.float32, mg.float64, mg.int64, np.float16, "float64", "int32"])),
    ({"reduction"}, st.sampled_from(["mean", "sum", "none", "max", None])),
]


def float_arrays():
    return bad_arrays(dtypes=[np.float32, np.float64])


def hinted(name, backend):
    """A strategy for the argument called name (backend: NumPy arrays, else tensors)."""
    for names, kind in NAMED:
        if name in names:
            if kind == "array":
                arrays = st.one_of(float_arrays(), bad_arrays())
                kind = arrays if backend else tensors_from(arrays)
            return st.one_of(kind, kind, kind, arguments())
    return arguments()


def draw_call(data, fn, backend=False):
    """Positional arguments for a prefix of fn's parameters (and maybe more), then
    keywords for some of the rest."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    count = data.draw(st.integers(0, len(positional) + (3 if variadic else 1)), label="positional")
    args = [data.draw(hinted(positional[i] if i < len(positional) else None, backend), label=f"arg{i}")
            for i in range(count)]
    rest = [p.name for p in params if p.kind == p.KEYWORD_ONLY] + positional[count:]
    keys = []
    if rest:
        keys = data.draw(st.lists(st.sampled_from(rest), unique=True, max_size=3), label="keywords")
    kwargs = {k: data.draw(hinted(k, backend), label=k) for k in keys}
    return args, kwargs


@pytest.mark.parametrize("name,fn", TARGETS, ids=[name for name, _ in TARGETS])
@ARGS_FUZZ
@given(data=st.data())
def test_bad_arguments_raise_documented_exceptions(name, fn, data):
    if name.startswith("Tensor."):   # a method: a real tensor as self, then anything
        fn = getattr(data.draw(tensors_from(bad_arrays()), label="self"), name[len("Tensor."):])
    backend = (name, fn) in BACKEND
    args, kwargs = draw_call(data, fn, backend)
    call(fn, args, kwargs, backend)


@pytest.mark.parametrize("name,cls", MODULES, ids=[name for name, _ in MODULES])
@ARGS_FUZZ
@given(data=st.data())
def test_module_constructors_and_calls_raise_documented_exceptions(name, cls, data):
    args, kwargs = draw_call(data, cls)
    module = call(cls, args, kwargs)
    if module is not None:
        call(module, [data.draw(tensors_from(bad_arrays()) | arguments(), label="input")], {})


def test_every_public_function_is_fuzzed():
    names = {name for name, _ in TARGETS}
    for expected in ("microgradbn.tensor", "microgradbn.matmul", "microgradbn.from_dlpack",
                     "microgradbn.nn.functional.batch_norm", "microgradbn.nn.functional.conv2d",
                     "microgradbn._backend.cpu.binary", "microgradbn._backend.cpu.batch_norm_backward",
                     "Tensor.reshape", "Tensor.__getitem__"):
        assert expected in names
    assert {"nn.Linear", "nn.BatchNorm1d", "nn.BatchNorm2d", "nn.Conv2d"} <= {n for n, _ in MODULES}
