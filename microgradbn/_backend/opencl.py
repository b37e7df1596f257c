"""The OpenCL backend: ClArray device buffers in and out, src/opencl/kernels.cl
underneath (through the C library's mg_cl_* entry points).

The functions have the names, argument orders and results of the CPU
backend (cpu.py) with ClArray in place of NumPy arrays, so the ops layer
can pick a backend by module. Everything runs on the device: a function
enqueues kernels and returns; only ClArray.numpy() (and to_numpy) waits and
copies back. The C library checks every argument again; failures become
microgradbn.errors exceptions carrying its message.

BN statistics (save_mean, save_rstd, batch_var) are float64 on devices with
cl_khr_fp64 and float32 elsewhere (statistics_dtype); float64 tensors need
cl_khr_fp64 (DTypeError otherwise).
"""
import os
import tempfile

import numpy as np

from .._mgbn import ffi, lib
from ..errors import DTypeError, ShapeError
from .cpu import (  # noqa: F401  (the op codes are the CPU backend's, re-exported)
    DTYPE_CODES, GRAD_ABS, GRAD_RELU, GRAD_SIGMOID, GRAD_SQRT, GRAD_TANH, OP_ADD, OP_DIV, OP_MAX, OP_MIN,
    OP_MUL, OP_SUB, REDUCE_MAX, REDUCE_MIN, REDUCE_SUM, UNARY_ABS, UNARY_EXP, UNARY_LOG, UNARY_NEG,
    UNARY_RELU, UNARY_SIGMOID, UNARY_SQRT, UNARY_TANH, raise_status,
)
from .cpu.gemm import _flat_stride  # batched matmul splits batches the same way on both devices


def _default_pocl_cache_dir():
    """PoCL shows no device at all when it cannot write its kernel cache, so
    give it one under the user's cache directory (or the temp directory)
    unless POCL_CACHE_DIR is set. Runs at import, before libOpenCL loads."""
    if os.environ.get("POCL_CACHE_DIR"):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    user = os.getuid() if hasattr(os, "getuid") else "user"
    for path in (os.path.join(base, "microgradbn", "pocl"),
                 os.path.join(tempfile.gettempdir(), f"microgradbn-pocl-{user}")):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            os.environ["POCL_CACHE_DIR"] = path
            return


_default_pocl_cache_dir()


def _check(status):
    if status:
        raise_status(status)


# ---- devices ------------------------------------------------------------------

def is_available():
    """True if an OpenCL runtime loads and shows at least one device."""
    return lib.mg_cl_init() == 0


def unavailable_reason():
    """Why is_available() is False ("" when it is True)."""
    if lib.mg_cl_init() == 0:
        return ""
    return ffi.string(lib.mg_last_error()).decode("utf-8", "replace")


def init():
    """Loads the runtime; BackendError naming what to install if there is none."""
    _check(lib.mg_cl_init())


def device_count():
    out = ffi.new("int *")
    _check(lib.mg_cl_device_count(out))
    return out[0]


def device_info(index=0):
    info = ffi.new("mg_cl_device_info_t *")
    _check(lib.mg_cl_device_info(index, info))
    return {
        "name": ffi.string(info.name).decode("utf-8", "replace"),
        "vendor": ffi.string(info.vendor).decode("utf-8", "replace"),
        "version": ffi.string(info.version).decode("utf-8", "replace"),
        "global_mem_bytes": info.global_mem_bytes,
        "max_alloc_bytes": info.max_alloc_bytes,
        "max_work_group_size": info.max_work_group_size,
        "compute_units": info.compute_units,
        "fp64": bool(info.fp64),
        "is_gpu": bool(info.is_gpu),
    }


def devices():
    """One dict per device (name, vendor, global_mem_bytes, fp64, ...); [] without OpenCL."""
    if not is_available():
        return []
    return [device_info(i) for i in range(device_count())]


_statistics_dtypes = {}


def statistics_dtype(device=0):
    """The dtype of BN statistics and of float32 sums on device."""
    dtype = _statistics_dtypes.get(device)
    if dtype is None:
        dtype = _statistics_dtypes[device] = np.dtype(np.float64 if device_info(device)["fp64"] else np.float32)
    return dtype


def finish(device=0):
    """Waits until everything enqueued on device has run."""
    _check(lib.mg_cl_finish(device))


# ---- device arrays --------------------------------------------------------------

def _dtype_code(dtype):
    """The code of a float dtype, the only ones arithmetic kernels take."""
    code = DTYPE_CODES.get(np.dtype(dtype))
    if code is None:
        raise DTypeError(f"OpenCL arithmetic takes float32 or float64 arrays, got {np.dtype(dtype)}")
    return code


# Element types a ClArray may hold (mg.h: mg_dtype and mg_cl_dtype): bool
# masks are one byte, 0 or 1, as NumPy's np.bool_; int64 holds class indices.
STORAGE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.bool_): 2,
                 np.dtype(np.int64): 3}


def _storage_code(dtype):
    code = STORAGE_CODES.get(np.dtype(dtype))
    if code is None:
        raise DTypeError(f"OpenCL arrays are float32, float64, bool or int64, got {np.dtype(dtype)}")
    return code


class ClArray:
    """A C-contiguous float32/float64/bool/int64 array in an OpenCL buffer:
    the buffer (freed by the garbage collector), shape, dtype and device
    index. Views made by reshape share the buffer."""

    __slots__ = ("buffer", "shape", "dtype", "device", "size")

    def __init__(self, shape, dtype, device=0, buffer=None):
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        _storage_code(self.dtype)
        self.device = device
        self.size = int(np.prod(self.shape, dtype=np.int64))
        if buffer is None:
            nbytes = max(self.size, 1) * self.dtype.itemsize
            out = ffi.new("mg_cl_buffer_t **")
            _check(lib.mg_cl_alloc(device, nbytes, out))
            buffer = ffi.gc(out[0], lib.mg_cl_free, size=nbytes)
        self.buffer = buffer

    @classmethod
    def from_numpy(cls, array, device=0):
        """A device copy of a float32, float64, bool or int64 NumPy array."""
        array = np.asarray(array)
        if not array.flags.c_contiguous:
            array = array.copy(order="C")   # (np.ascontiguousarray would make a 0-d array 1-d)
        out = cls(array.shape, array.dtype, device)
        if array.size:
            _check(lib.mg_cl_write(out.buffer, 0, ffi.from_buffer(array), array.nbytes))
        return out

    def numpy(self):
        """A NumPy copy (waits for the kernels that write this array)."""
        out = np.empty(self.shape, self.dtype)
        if self.size:
            _check(lib.mg_cl_read(self.buffer, 0, ffi.from_buffer(out), out.nbytes))
        return out

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if -1 in shape:
            known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
            shape = tuple(self.size // known if n == -1 and known else n for n in shape)
        if int(np.prod(shape, dtype=np.int64)) != self.size:
            raise ShapeError(f"cannot reshape a ClArray of shape {self.shape} into {shape}")
        return ClArray(shape, self.dtype, self.device, self.buffer)

    def copy(self):
        out = ClArray(self.shape, self.dtype, self.device)
        if self.size:
            _check(lib.mg_cl_copy(self.buffer, 0, out.buffer, 0, self.nbytes))
        return out

    def fill_(self, value):
        """Sets every element to value, in place (on the device)."""
        _check(lib.mg_cl_fill(_dtype_code(self.dtype), self.buffer, self.size, value))
        return self

    def astype(self, dtype, copy=True):
        """This array in dtype, as ndarray.astype: itself when it already has
        dtype and copy is false; a float32<->float64 cast runs on the device."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self.copy() if copy else self
        cast = globals().get("astype")    # (the module's function, from the kernels' section)
        if cast is None:
            raise NotImplementedError(f"casting {self.dtype} to {dtype} is not supported on device opencl yet")
        return cast(self, dtype)

    def __repr__(self):
        return f"ClArray(shape={self.shape}, dtype={self.dtype}, device={self.device})"


def _strides(shape):
    """C-contiguous element strides of shape."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


def to_device(array, device=0):
    return ClArray.from_numpy(array, device)


def to_numpy(x):
    return x.numpy()


def empty(shape, dtype, device=0):
    return ClArray(shape, dtype, device)


def full(shape, value, dtype, device=0):
    """An array of shape filled with value; bool and int64 ones are one value
    of the dtype broadcast (stride 0) by copy_strided, so every int64 is exact."""
    out = ClArray(shape, dtype, device)
    if out.dtype in DTYPE_CODES:
        _check(lib.mg_cl_fill(_dtype_code(out.dtype), out.buffer, out.size, value))
    elif out.size:
        one = ClArray.from_numpy(np.array(value, out.dtype), device)
        copy_strided(out, 0, _strides(out.shape), one, 0, [0] * out.ndim, out.shape)
    return out


def zeros(shape, dtype, device=0):
    return full(shape, 0.0, dtype, device)


def _like(x, shape=None, dtype=None):
    return ClArray(x.shape if shape is None else shape, x.dtype if dtype is None else dtype, x.device)


# ---- elementwise -------------------------------------------------------------------

def _output(out, shape, dtype, device, name):
    if out is None:
        return ClArray(shape, dtype, device)
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"{name}: out must be a {np.dtype(dtype)} ClArray of shape {tuple(shape)}")
    return out


def binary(op, a, b, shape, dtype, out=None):
    """a op b broadcast to shape, in dtype (a and b already have it), into
    out (a ClArray) or a new array."""
    shape = tuple(shape)
    out = _output(out, shape, dtype, a.device, "binary")

    def strides(x):
        pad = len(shape) - x.ndim
        return [0] * pad + [0 if n == 1 else s for n, s in zip(x.shape, _strides(x.shape))]
    _check(lib.mg_cl_binary(op, _dtype_code(out.dtype), len(shape), list(shape), a.buffer, 0, strides(a),
                            b.buffer, 0, strides(b), out.buffer))
    return out


def add(a, b):
    """a + b for arrays of one shape and dtype (gradient accumulation)."""
    return binary(OP_ADD, a, b, a.shape, a.dtype)


def handle(array):
    """What binary_same takes for array: on this backend the ClArray itself."""
    return array


def binary_same(op, x, x_handle, y_handle):
    """x op y for arrays of one shape and dtype; returns the result and its handle."""
    out = binary(op, x_handle, y_handle, x.shape, x.dtype)
    return out, out


def unary(op, x, out=None):
    """f(x) elementwise (a UNARY_* op) into out (x's shape and dtype) or a new array."""
    out = _output(out, x.shape, x.dtype, x.device, "unary")
    _check(lib.mg_cl_unary(op, _dtype_code(x.dtype), x.size, x.buffer, out.buffer))
    return out


def unary_backward(op, saved, grad):
    """The backward of a unary op (a GRAD_* op) from the saved array and the gradient."""
    out = _like(saved)
    _check(lib.mg_cl_unary_backward(op, _dtype_code(saved.dtype), saved.size, saved.buffer, grad.buffer,
                                    out.buffer))
    return out


def clamp(x, lo, hi):
    """min(max(x, lo), hi); lo = -inf or hi = inf for no bound."""
    out = _like(x)
    _check(lib.mg_cl_clamp(_dtype_code(x.dtype), x.size, x.buffer, lo, hi, out.buffer))
    return out


def clamp_backward(x, grad, lo, hi):
    """grad where lo <= x <= hi, else 0."""
    out = _like(x)
    _check(lib.mg_cl_clamp_backward(_dtype_code(x.dtype), x.size, x.buffer, grad.buffer, lo, hi, out.buffer))
    return out


# ---- reductions ----------------------------------------------------------------------

def reduce(op, x, axes):
    """x reduced (REDUCE_SUM, _MAX or _MIN) over axes, a tuple of distinct
    non-negative axes; the result has the other axes, in order. float32 sums
    accumulate in statistics_dtype."""
    mask = 0
    for axis in axes:
        mask |= 1 << axis
    out = _like(x, tuple(n for d, n in enumerate(x.shape) if not mask >> d & 1))
    _check(lib.mg_cl_reduce(op, _dtype_code(x.dtype), x.ndim, list(x.shape), x.buffer, 0, _strides(x.shape),
                            mask, out.buffer))
    return out


def sum_axes(a, axes):
    """a summed over the given axes."""
    return reduce(REDUCE_SUM, a, tuple(axes))


def sum_all(a):
    """The sum of every element, as a 0-d ClArray of a's dtype."""
    return reduce(REDUCE_SUM, a, tuple(range(a.ndim)))


# ---- softmax over the last axis ----------------------------------------------------------

def _rows_cols(x, name):
    if x.ndim == 0:
        raise ShapeError(f"{name}: expected at least one axis, got a 0-d array")
    cols = x.shape[-1]
    return (x.size // cols if cols else 0), cols


def softmax(x, log=False):
    """softmax (or log_softmax) of x over its last axis."""
    rows, cols = _rows_cols(x, "softmax")
    out = _like(x)
    _check(lib.mg_cl_softmax(_dtype_code(x.dtype), rows, cols, x.buffer, int(log), out.buffer))
    return out


def softmax_backward(y, grad, log=False):
    """dx from the forward's result y and the gradient (last axis)."""
    rows, cols = _rows_cols(y, "softmax_backward")
    out = _like(y)
    _check(lib.mg_cl_softmax_backward(_dtype_code(y.dtype), rows, cols, y.buffer, grad.buffer, int(log),
                                      out.buffer))
    return out


# ---- matmul ----------------------------------------------------------------------------
# An operand is read through a view (array, offset, shape, strides), all in
# elements, so transposed operands (matmul_tn, matmul_nt) cost no copy.

def matmul(a, b, out=None, accumulate=False):
    """a @ b with NumPy's rules (1-D operands, broadcast batch axes), as
    cpu.matmul; with out (a ClArray of the result's shape and dtype) the
    result is written there, or added to it when accumulate is true."""
    return _matmul(_view(a), _view(b), out, accumulate)


def matmul_tn(a, b, out=None, accumulate=False):
    """a^T @ b (the last two axes of a swapped), read in place: no copy."""
    return _matmul(_swapped(_view(a)), _view(b), out, accumulate)


def matmul_nt(a, b, out=None, accumulate=False):
    """a @ b^T (the last two axes of b swapped), read in place: no copy."""
    return _matmul(_view(a), _swapped(_view(b)), out, accumulate)


def _view(x):
    return x, 0, x.shape, tuple(_strides(x.shape))


def _swapped(view):
    x, offset, shape, strides = view
    if len(shape) < 2:
        raise ShapeError(f"matmul: cannot transpose an operand of shape {shape}")
    return x, offset, shape[:-2] + (shape[-1], shape[-2]), strides[:-2] + (strides[-1], strides[-2])


def _matmul(av, bv, out, accumulate):
    a, b = av[0], bv[0]
    shape_a, shape_b = av[2], bv[2]
    if a.dtype != b.dtype:
        raise DTypeError(f"matmul: operands must both be float32 or both float64, got {a.dtype} and {b.dtype}")
    if not shape_a or not shape_b:
        raise ShapeError(f"matmul: operands must have at least one dimension, got shapes {shape_a} and {shape_b}")
    if len(shape_a) == 1:
        av = (a, av[1], (1,) + shape_a, (0,) + av[3])
    if len(shape_b) == 1:
        bv = (b, bv[1], shape_b + (1,), bv[3] + (0,))
    (m, k), (k_b, n) = av[2][-2:], bv[2][-2:]
    if k != k_b:
        raise ShapeError(f"matmul: shapes {shape_a} and {shape_b} do not fit: "
                         f"{k} (last axis of a) != {k_b} (axis -2 of b)")
    try:
        batch_shape = tuple(np.broadcast_shapes(av[2][:-2], bv[2][:-2]))
    except ValueError:
        raise ShapeError(f"matmul: the batch axes of shapes {shape_a} and {shape_b} do not broadcast") from None
    final_shape = batch_shape + shape_a[-2:-1] + (shape_b[-1:] if len(shape_b) > 1 else ())
    if out is None:
        if accumulate:
            raise ValueError("matmul: accumulate=True needs out")
        out = ClArray(final_shape, a.dtype, a.device)
    elif out.shape != final_shape or out.dtype != a.dtype:
        raise ShapeError(f"matmul: out must have shape {final_shape} and dtype {a.dtype}, "
                         f"got shape {out.shape}, dtype {out.dtype}")
    if out.size:
        c_strides = tuple(_strides(batch_shape + (m, n)))
        _matmul_batched(a.dtype, m, n, k, _batch_view(av, batch_shape), _batch_view(bv, batch_shape),
                        (out, 0, batch_shape, c_strides), accumulate)
    return out


def _batch_view(view, batch_shape):
    """view with its batch strides right-aligned to batch_shape (0 where broadcast)."""
    x, offset, shape, strides = view
    lead, lead_strides = shape[:-2], strides[:-2]
    pad = len(batch_shape) - len(lead)
    batch_strides = (0,) * pad + tuple(0 if size == 1 else s for size, s in zip(lead, lead_strides))
    return x, offset, batch_shape, batch_strides + strides[-2:]


def _matmul_batched(dtype, m, n, k, av, bv, cv, accumulate):
    """c[...] (+)= a[...] @ b[...] over the batch axes, in as few calls as the
    strides allow (one when each operand's batch axes are one flat axis)."""
    batch_shape = cv[2]
    nb = len(batch_shape)
    sa = _flat_stride(av[3][:nb], batch_shape)
    sb = _flat_stride(bv[3][:nb], batch_shape)
    if sa is None or sb is None:   # split the first batch axis
        for i in range(batch_shape[0]):
            def step(v):
                x, offset, shape, strides = v
                return x, offset + i * strides[0], shape[1:], strides[1:]
            _matmul_batched(dtype, m, n, k, step(av), step(bv), step(cv), accumulate)
        return
    batch = int(np.prod(batch_shape, dtype=np.int64))
    a, a_off, _, a_st = av
    b, b_off, _, b_st = bv
    c, c_off, _, c_st = cv
    _check(lib.mg_cl_matmul(_dtype_code(dtype), batch, m, n, k,
                            a.buffer, a_off, sa, a_st[-2], a_st[-1],
                            b.buffer, b_off, sb, b_st[-2], b_st[-1],
                            c.buffer, c_off, m * n if nb else 0, n, 1 if accumulate else 0))


# ---- batch normalization -------------------------------------------------------------------
# x is a ClArray (N, C), (N, C, L) or (N, C, H, W), seen by the kernels as
# (N, C, S). weight/bias are (C,) of x's dtype or None. The per-channel
# statistics are (C,) ClArrays of statistics_dtype(x.device).

def _bn_ncs(x):
    if x.ndim not in (2, 3, 4):
        raise ShapeError(f"batch_norm: expected a 2-D, 3-D or 4-D input (N, C, ...), got shape {x.shape}")
    s = 1
    for n in x.shape[2:]:
        s *= n
    return x.shape[0], x.shape[1], s


def _bn_param(p, x, name="parameter", dtype=None):
    """The buffer of an optional (C,) parameter of x's dtype (or dtype), or NULL."""
    if p is None:
        return ffi.NULL
    dtype = x.dtype if dtype is None else dtype
    if p.shape != (x.shape[1],) or p.dtype != dtype:
        raise ShapeError(f"batch_norm: expected a ({x.shape[1]},) {dtype} {name}, got {p.shape} {p.dtype}")
    return p.buffer


def batch_norm_train_forward(x, weight, bias, eps):
    """Training forward; returns (y, save_mean, save_rstd, batch_var): the
    batch mean, 1/sqrt(var + eps) and the biased variance, (C,) each."""
    n, c, s = _bn_ncs(x)
    stat = statistics_dtype(x.device)
    y = _like(x)
    mean, rstd, var = (ClArray((c,), stat, x.device) for _ in range(3))
    _check(lib.mg_cl_batch_norm_train_forward(
        _dtype_code(x.dtype), n, c, s, x.buffer, _bn_param(weight, x, "weight"), _bn_param(bias, x, "bias"),
        eps, y.buffer, mean.buffer, rstd.buffer, var.buffer))
    return y, mean, rstd, var


def batch_norm_eval_forward(x, running_mean, running_var, weight, bias, eps):
    """y = x*scale + shift, scale = weight/sqrt(running_var + eps),
    shift = bias - running_mean*scale."""
    n, c, s = _bn_ncs(x)
    y = _like(x)
    _check(lib.mg_cl_batch_norm_eval_forward(
        _dtype_code(x.dtype), n, c, s, x.buffer, _bn_param(running_mean, x, "running_mean"),
        _bn_param(running_var, x, "running_var"), _bn_param(weight, x, "weight"), _bn_param(bias, x, "bias"),
        eps, y.buffer))
    return y


def batch_norm_backward(dy, x, save_mean, save_rstd, weight, need_dx, need_dweight, need_dbias):
    """Training backward; returns (dx, dweight, dbias), None where not needed."""
    n, c, s = _bn_ncs(x)
    if dy.shape != x.shape or dy.dtype != x.dtype:
        raise ShapeError(f"batch_norm_backward: dy {dy.shape} {dy.dtype} does not match x {x.shape} {x.dtype}")
    stat = statistics_dtype(x.device)
    dx = _like(x) if need_dx else None
    dweight = ClArray((c,), x.dtype, x.device) if need_dweight else None
    dbias = ClArray((c,), x.dtype, x.device) if need_dbias else None
    _check(lib.mg_cl_batch_norm_backward(
        _dtype_code(x.dtype), n, c, s, dy.buffer, x.buffer, _bn_param(save_mean, x, "save_mean", stat),
        _bn_param(save_rstd, x, "save_rstd", stat), _bn_param(weight, x, "weight"),
        ffi.NULL if dx is None else dx.buffer, ffi.NULL if dweight is None else dweight.buffer,
        ffi.NULL if dbias is None else dbias.buffer))
    return dx, dweight, dbias


def batch_norm_eval_backward(dy, running_var, weight, eps):
    """dx = dy*weight/sqrt(running_var + eps)."""
    n, c, s = _bn_ncs(dy)
    dx = _like(dy)
    _check(lib.mg_cl_batch_norm_eval_backward(
        _dtype_code(dy.dtype), n, c, s, dy.buffer, _bn_param(running_var, dy, "running_var"),
        _bn_param(weight, dy, "weight"), eps, dx.buffer))
    return dx


# ---- optimizer steps (in place, torch.optim's order of operations, see optim.py) ----------

def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first_step):
    """One SGD step on param (and momentum_buffer, which may be None when momentum == 0)."""
    _check(lib.mg_cl_sgd_step(
        _dtype_code(param.dtype), param.size, param.buffer, grad.buffer,
        ffi.NULL if momentum_buffer is None else momentum_buffer.buffer, lr, momentum, dampening,
        weight_decay, int(nesterov), int(first_step)))


def adam_step(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    """One Adam step (AdamW when decoupled) on param, exp_avg and exp_avg_sq; step counts from 1."""
    _check(lib.mg_cl_adam_step(
        _dtype_code(param.dtype), param.size, param.buffer, grad.buffer, exp_avg.buffer, exp_avg_sq.buffer,
        lr, beta1, beta2, eps, weight_decay, step, int(decoupled)))


# ==== views and copies, casts, comparisons, where, pow, class indices, conv and pooling ====
# INTERFACE (what the Tensor layer calls; everything stays on the device):
#
# ClArray dtypes: float32, float64 (needs cl_khr_fp64), bool (one byte, 0 or
# 1, on the device; .numpy() gives np.bool_) and int64 (class indices).
# Offsets and strides count ELEMENTS; a view is (array, offset, shape, strides).
#
# copy_strided(dst, dst_offset, dst_strides, src, src_offset, src_strides, shape, accumulate=False) -> dst
#     dst[view] = src[view] elementwise over shape (in place; returns dst), or
#     dst[view] += src[view] with accumulate (float dst of src's dtype only).
#     Different dtypes convert as astype. src strides may be 0 (broadcast) or
#     negative; dst must not write an element twice, nor overlap src in one
#     buffer. Uses: writing into slices (cat/stack, setitem), the backward of
#     indexing/slicing (accumulate into a view of zeros(...)), expand.
# contiguous(x, offset, shape, strides) -> a new C-contiguous ClArray holding
#     the view (transpose/permute/slice/expand made real).
# astype(x, dtype) -> a new ClArray (always a copy, as NumPy's astype): float
#     casts round to nearest; to bool, non-zero (NaN too) is True; float to
#     int64 rounds toward zero, saturating, NaN -> 0.
# compare(op, a, b, shape) -> bool ClArray of shape; op one of CMP_EQ, CMP_NE,
#     CMP_LT, CMP_LE, CMP_GT, CMP_GE; a and b float of one dtype, each
#     broadcasting to shape (right-aligned, as binary()). NaN: IEEE.
# where(cond, a, b, shape) -> a where cond else b, broadcast to shape; cond a
#     bool ClArray, a and b float of one dtype (the result's). The backward
#     of where is where(cond, grad, zeros(()), ...) and its mirror.
# pow_scalar(x, p), pow_scalar_backward(x, grad, p), pow(x, y): as cpu.py
#     (PyTorch's shortcut exponents; pow(x, y) needs one shape).
# gather_classes(x, index) -> (N,): x[i, index[i]] for x (N, C), index int64
#     (N,); NaN where an index is out of range (check with bad_class_index).
# scatter_classes(values, index, classes) -> (N, classes): values[i] at
#     [i, index[i]], 0 elsewhere; values (N,) or one value (shape () or (1,)).
# bad_class_index(index, classes) -> the first index value outside
#     [0, classes), or None. Waits for the device (the only call here that does).
# cross_entropy_forward(x, index) -> (losses (N,), log_probs (N, C)): losses =
#     logsumexp(x_i) - x_i[t_i]; cross_entropy_backward(log_probs, index,
#     row_grad) -> dx = (softmax(x) - onehot(t)) * row_grad, row_grad (N,) or
#     one value (grad/N for 'mean'); nll_forward(x, index) -> -x_i[t_i] and
#     nll_backward(row_grad, index, classes) -> dx (N, C). The reductions
#     ('mean', 'sum') are sum_all and binary() on these, on the device.
# conv2d_forward, conv2d_backward, max_pool2d_forward, max_pool2d_backward,
#     avg_pool2d_forward, avg_pool2d_backward, pooled_size: the names,
#     arguments and results of cpu.py (stride, padding, kernel as pairs).

from .cpu.nn import _check_conv, _check_grad, _window, pooled_size  # noqa: E402  (shared with the CPU backend)

CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE = range(6)


def _same_device(name, *arrays):
    device = arrays[0].device
    for a in arrays[1:]:
        if a.device != device:
            raise ValueError(f"{name}: arrays on OpenCL devices {device} and {a.device}")
    return device


def _axes(name, shape, *stride_lists):
    shape = tuple(int(n) for n in shape)
    for strides in stride_lists:
        if len(strides) != len(shape):
            raise ShapeError(f"{name}: {len(strides)} strides for a shape of {len(shape)} axes {shape}")
    return shape


def copy_strided(dst, dst_offset, dst_strides, src, src_offset, src_strides, shape, accumulate=False):
    """dst[view] = src[view] (or += with accumulate) over shape; returns dst."""
    shape = _axes("copy_strided", shape, dst_strides, src_strides)
    _same_device("copy_strided", dst, src)
    _check(lib.mg_cl_copy_strided(len(shape), list(shape), _storage_code(src.dtype), src.buffer, int(src_offset),
                                  [int(s) for s in src_strides], _storage_code(dst.dtype), dst.buffer,
                                  int(dst_offset), [int(s) for s in dst_strides], int(bool(accumulate))))
    return dst


def contiguous(x, offset, shape, strides):
    """A new C-contiguous array holding the view (x, offset, shape, strides)."""
    out = ClArray(shape, x.dtype, x.device)
    return copy_strided(out, 0, _strides(out.shape), x, offset, strides, out.shape)


def astype(x, dtype):
    """A copy of x converted to dtype (see the conversions above)."""
    out = ClArray(x.shape, dtype, x.device)
    return copy_strided(out, 0, _strides(x.shape), x, 0, _strides(x.shape), x.shape)


def _broadcast_strides(name, x, shape):
    """x's C strides right-aligned to shape, 0 on broadcast axes."""
    pad = len(shape) - x.ndim
    if pad < 0 or any(n != 1 and n != m for n, m in zip(x.shape, shape[pad:])):
        raise ShapeError(f"{name}: shape {x.shape} does not broadcast to {tuple(shape)}")
    return [0] * pad + [0 if n == 1 else s for n, s in zip(x.shape, _strides(x.shape))]


def _float_pair(name, a, b):
    if a.dtype != b.dtype:
        raise DTypeError(f"{name}: operands must have one dtype, got {a.dtype} and {b.dtype}")
    return _dtype_code(a.dtype)


def compare(op, a, b, shape):
    """a op b (a CMP_* op) broadcast to shape, as a bool array."""
    shape = tuple(shape)
    code = _float_pair("compare", a, b)
    out = ClArray(shape, np.bool_, _same_device("compare", a, b))
    _check(lib.mg_cl_compare(op, code, len(shape), list(shape), a.buffer, 0, _broadcast_strides("compare", a, shape),
                             b.buffer, 0, _broadcast_strides("compare", b, shape), out.buffer))
    return out


def where(cond, a, b, shape):
    """a where cond else b, all broadcast to shape; cond a bool array."""
    shape = tuple(shape)
    if cond.dtype != np.bool_:
        raise DTypeError(f"where: the condition must be a bool array, got {cond.dtype}")
    code = _float_pair("where", a, b)
    out = ClArray(shape, a.dtype, _same_device("where", cond, a, b))
    _check(lib.mg_cl_where(code, len(shape), list(shape), cond.buffer, 0, _broadcast_strides("where", cond, shape),
                           a.buffer, 0, _broadcast_strides("where", a, shape), b.buffer, 0,
                           _broadcast_strides("where", b, shape), out.buffer))
    return out


def _same_layout(name, array, like):
    if array.shape != like.shape or array.dtype != like.dtype:
        raise ShapeError(f"{name}: expected a {like.dtype} array of shape {like.shape}, "
                         f"got {array.dtype} {array.shape}")


def pow_scalar(x, p):
    """x ** p for a float exponent p (shortcuts for 0, +-0.5, +-1, +-2, 3)."""
    out = _like(x)
    _check(lib.mg_cl_pow_scalar(_dtype_code(x.dtype), x.size, x.buffer, p, out.buffer))
    return out


def pow_scalar_backward(x, grad, p):
    """grad * (p * x ** (p - 1)); zero when p == 0."""
    _same_layout("pow_scalar_backward: grad", grad, x)
    out = _like(x)
    _check(lib.mg_cl_pow_scalar_backward(_dtype_code(x.dtype), x.size, x.buffer, grad.buffer, p, out.buffer))
    return out


def pow(x, y):
    """x ** y elementwise for arrays of one shape and float dtype."""
    _same_layout("pow: y", y, x)
    out = _like(x)
    _check(lib.mg_cl_pow(_dtype_code(x.dtype), x.size, x.buffer, y.buffer, out.buffer))
    return out


# ---- class indices: cross entropy and nll ---------------------------------------------

def _rows_and_index(name, x_shape, index):
    if len(x_shape) != 2 or index.dtype != np.int64 or index.shape != (x_shape[0],):
        raise ShapeError(f"{name}: expected x (N, C) and an int64 index (N,), got x {tuple(x_shape)} "
                         f"and index {index.dtype} {index.shape}")
    return x_shape


def gather_classes(x, index):
    """out[i] = x[i, index[i]] (NaN where index[i] is outside [0, C))."""
    rows, classes = _rows_and_index("gather_classes", x.shape, index)
    out = ClArray((rows,), x.dtype, _same_device("gather_classes", x, index))
    _check(lib.mg_cl_gather_classes(_dtype_code(x.dtype), rows, classes, x.buffer, index.buffer, out.buffer))
    return out


def scatter_classes(values, index, classes):
    """dx (N, classes): values[i] (or the one value) at [i, index[i]], 0 elsewhere."""
    if index.ndim != 1:
        raise ShapeError(f"scatter_classes: expected an int64 index (N,), got {index.dtype} {index.shape}")
    rows, classes = _rows_and_index("scatter_classes", (index.shape[0], classes), index)
    if values.size == 1 and values.ndim <= 1:
        stride = 0
    elif values.shape == (rows,):
        stride = 1
    else:
        raise ShapeError(f"scatter_classes: values must be ({rows},) or one value, got {values.shape}")
    dx = ClArray((rows, classes), values.dtype, _same_device("scatter_classes", values, index))
    _check(lib.mg_cl_scatter_classes(_dtype_code(values.dtype), rows, classes, values.buffer, stride,
                                     index.buffer, dx.buffer))
    return dx


def bad_class_index(index, classes):
    """The first value of index outside [0, classes), or None (waits for the device)."""
    if index.dtype != np.int64 or index.ndim != 1:
        raise ShapeError(f"bad_class_index: expected an int64 index (N,), got {index.dtype} {index.shape}")
    first = ffi.new("int64_t *")
    _check(lib.mg_cl_bad_class_index(index.shape[0], classes, index.buffer, first))
    if first[0] < 0:
        return None
    value = np.empty(1, np.int64)
    _check(lib.mg_cl_read(index.buffer, first[0] * 8, ffi.from_buffer(value), 8))
    return int(value[0])


def cross_entropy_forward(x, index):
    """(losses, log_probs): losses[i] = logsumexp(x[i]) - x[i, index[i]], x (N, C)."""
    log_probs = softmax(x, log=True)
    return unary(UNARY_NEG, gather_classes(log_probs, index)), log_probs


def cross_entropy_backward(log_probs, index, row_grad):
    """dx = (softmax - onehot(index)) * row_grad: the log_softmax backward of
    g = -row_grad at the targets (dx = g - exp(log_probs) * sum(g))."""
    g = scatter_classes(unary(UNARY_NEG, row_grad), index, log_probs.shape[1])
    return softmax_backward(log_probs, g, log=True)


def nll_forward(x, index):
    """losses[i] = -x[i, index[i]] for log-probabilities x (N, C)."""
    return unary(UNARY_NEG, gather_classes(x, index))


def nll_backward(row_grad, index, classes):
    """dx (N, classes) = -row_grad at [i, index[i]], 0 elsewhere."""
    return scatter_classes(unary(UNARY_NEG, row_grad), index, classes)


# ---- convolution and pooling (NCHW; kernel, stride, padding as (height, width) pairs) ----

def _nchw(name, x):
    if x.ndim != 4:
        raise ShapeError(f"{name}: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
    return x.shape


def conv2d_forward(x, weight, bias, stride, padding):
    """out (N, C_out, OH, OW) = x (N, C_in, H, W) cross-correlated with
    weight (C_out, C_in, kH, kW), plus bias (C_out,) or None."""
    n, c_in, h, w = _nchw("conv2d", x)
    _check_conv(x, weight, bias)
    c_out, _, kh, kw = weight.shape
    out = ClArray((n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype,
                  _same_device("conv2d", x, weight, *([] if bias is None else [bias])))
    _check(lib.mg_cl_conv2d_forward(_dtype_code(x.dtype), n, c_in, h, w, c_out, _window((kh, kw), stride, padding),
                                    x.buffer, weight.buffer, ffi.NULL if bias is None else bias.buffer, out.buffer))
    return out


def conv2d_backward(x, weight, grad, stride, padding, want_x, want_weight, want_bias):
    """(dx, dweight, dbias) of conv2d_forward given grad = dout; None where not wanted."""
    n, c_in, h, w = _nchw("conv2d_backward", x)
    _check_conv(x, weight, None)
    c_out, _, kh, kw = weight.shape
    _check_grad("conv2d_backward", grad, (n, c_out) + pooled_size((h, w), (kh, kw), stride, padding), x.dtype)
    device = _same_device("conv2d_backward", x, weight, grad)
    dx = ClArray(x.shape, x.dtype, device) if want_x else None
    dweight = ClArray(weight.shape, x.dtype, device) if want_weight else None
    dbias = ClArray((c_out,), x.dtype, device) if want_bias else None
    _check(lib.mg_cl_conv2d_backward(_dtype_code(x.dtype), n, c_in, h, w, c_out, _window((kh, kw), stride, padding),
                                     x.buffer, weight.buffer, grad.buffer,
                                     *[ffi.NULL if a is None else a.buffer for a in (dx, dweight, dbias)]))
    return dx, dweight, dbias


def _pool_forward(c_function, x, kernel, stride, padding):
    n, c, h, w = _nchw("pool2d", x)
    out = ClArray((n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype, x.device)
    _check(c_function(_dtype_code(x.dtype), n, c, h, w, _window(kernel, stride, padding), x.buffer, out.buffer))
    return out


def max_pool2d_forward(x, kernel, stride, padding):
    """The max of each window (a NaN wins), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_cl_max_pool2d_forward, x, kernel, stride, padding)


def max_pool2d_backward(x, grad, kernel, stride, padding):
    """dx: grad routed to each window's first maximum in x."""
    n, c, h, w = _nchw("max_pool2d_backward", x)
    _check_grad("max_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding), x.dtype)
    dx = ClArray(x.shape, x.dtype, _same_device("max_pool2d_backward", x, grad))
    _check(lib.mg_cl_max_pool2d_backward(_dtype_code(x.dtype), n, c, h, w, _window(kernel, stride, padding),
                                         x.buffer, grad.buffer, dx.buffer))
    return dx


def avg_pool2d_forward(x, kernel, stride, padding):
    """The window sums divided by kH*kW (padding counts as zeros), (N, C, OH, OW)."""
    return _pool_forward(lib.mg_cl_avg_pool2d_forward, x, kernel, stride, padding)


def avg_pool2d_backward(shape, grad, kernel, stride, padding):
    """dx of the given input shape: grad / (kH*kW) spread over each window."""
    n, c, h, w = shape
    _check_grad("avg_pool2d_backward", grad, (n, c) + pooled_size((h, w), kernel, stride, padding), grad.dtype)
    dx = ClArray(shape, grad.dtype, grad.device)
    _check(lib.mg_cl_avg_pool2d_backward(_dtype_code(grad.dtype), n, c, h, w, _window(kernel, stride, padding),
                                         grad.buffer, dx.buffer))
    return dx
