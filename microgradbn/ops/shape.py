"""Ops that move or pick elements without arithmetic: reshape/view,
transpose, permute, unsqueeze, squeeze, flatten, expand, contiguous, clone,
casts, indexing, cat and stack.

Views stay views (NumPy strides, as PyTorch's), so `x.T @ y` or
`x[:, ::2] + 1` copy nothing; the C kernels take strides. Each backward
puts the gradient back where the elements came from.

On an OpenCL device storage is always contiguous (ClArray): reshape is a
view there too; permute, expand, basic indexing, cat and stack are strided
copies on the device (opencl.contiguous / copy_strided), with their views
worked out as NumPy would (_backend.view_of). Indexing with arrays or masks
is not supported there yet.
"""
import numpy as np

from .. import _backend
from .._backend import ClArray, cpu
from ..autograd import Function, unbroadcast
from ..errors import ShapeError
from ..tensor import Tensor, _as_dtype
from .arithmetic import result_dtype
from .reduce import normalize_dims


def _sizes(args, name):
    """(2, 3), ((2, 3),) or ([2, 3],) as a tuple of ints."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    sizes = []
    for n in args:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise TypeError(f"{name}: sizes must be ints, got {args!r}")
        sizes.append(int(n))
    return tuple(sizes)


def infer_shape(shape, size):
    """shape with its one -1 filled in so that it holds size elements."""
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for n in shape:
        if n != -1:
            if n < 0:
                raise RuntimeError(f"invalid shape dimension {n}")
            known *= n
    if -1 in shape:
        if known == 0 or size % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {size}")
        return tuple(size // known if n == -1 else n for n in shape)
    if known != size:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {size}")
    return shape


class Reshape(Function):
    def forward(self, x, shape, view):
        self.in_shape = x.shape
        if not view or type(x) is ClArray:     # (a ClArray is contiguous: any shape is a view)
            return x.reshape(shape)
        try:
            return np.reshape(x, shape, copy=False)
        except ValueError:
            raise RuntimeError("view size is not compatible with input tensor's size and stride "
                               "(at least one dimension spans across two contiguous subspaces). "
                               "Use .reshape(...) instead.") from None

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class Permute(Function):
    def forward(self, x, dims):
        self.dims = dims
        return x.transpose(dims) if type(x) is not ClArray else _backend.permuted(x, dims)

    def backward(self, grad):
        inverse = [0] * len(self.dims)     # axis d of the output was axis dims[d] of the input
        for d, axis in enumerate(self.dims):
            inverse[axis] = d
        return _backend.permuted(grad, inverse)


class Expand(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return _backend.broadcast_to(x, shape)

    def backward(self, grad):
        return unbroadcast(grad, self.in_shape)


class Copy(Function):
    """contiguous() and clone(): a fresh C-ordered copy; the gradient passes through."""

    def forward(self, x):
        return x.copy() if type(x) is ClArray else cpu.copy_of(x)

    def backward(self, grad):
        return grad


class Cast(Function):
    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.in_dtype)


def plain_index(index):
    """An index with tensors and lists turned into NumPy arrays."""
    parts = index if isinstance(index, tuple) else (index,)
    parts = tuple(p.data if isinstance(p, Tensor) else np.asarray(p) if isinstance(p, list) else p
                  for p in parts)
    return parts if isinstance(index, tuple) else parts[0]


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer))
               and not isinstance(p, bool) for p in parts)


class Index(Function):
    def forward(self, x, index):
        self.in_shape, self.index, self.basic = x.shape, index, _is_basic(index)
        if type(x) is ClArray:             # a strided copy of the view on the device
            if not self.basic:
                raise _backend.not_supported("indexing with arrays or masks")
            self.view = _backend.view_of(x.shape, index)
            return _backend.require(_backend.opencl, "contiguous", "indexing")(x, *self.view)
        out = x[index]
        return out if isinstance(out, np.ndarray) else np.asarray(out)

    def backward(self, grad):
        if type(grad) is ClArray:          # grad written into that view of zeros
            offset, shape, strides = self.view
            gx = _backend.opencl.zeros(self.in_shape, grad.dtype, grad.device)
            return _backend.opencl.copy_strided(gx, offset, strides, grad, 0, _backend.c_strides(shape), shape)
        gx = np.zeros(self.in_shape, grad.dtype)
        if self.basic:
            gx[self.index] = grad
        else:
            np.add.at(gx, self.index, grad)    # repeated indices add up
        return gx


class Cat(Function):
    def forward(self, *arrays, dim):
        xp = _backend.backend_of(*arrays)
        self.dim, self.sizes = dim, [a.shape[dim] for a in arrays]
        self.dtypes = [a.dtype for a in arrays]
        if xp is _backend.cpu:
            return np.concatenate(arrays, axis=dim, dtype=_common_dtype(arrays))
        shape = list(arrays[0].shape)
        shape[dim] = sum(self.sizes)
        copy = _backend.require(xp, "copy_strided", "cat")
        out = xp.empty(shape, _common_dtype(arrays), arrays[0].device)
        strides, start = _backend.c_strides(shape), 0
        for a in arrays:                   # each array into its slab along dim
            copy(out, start * strides[dim], strides, a, 0, _backend.c_strides(a.shape), a.shape)
            start += a.shape[dim]
        return out

    def backward(self, grad):
        if type(grad) is ClArray:          # each slab copied out
            strides, start, grads = _backend.c_strides(grad.shape), 0, []
            for size, dtype in zip(self.sizes, self.dtypes):
                shape = grad.shape[:self.dim] + (size,) + grad.shape[self.dim + 1:]
                slab = _backend.opencl.contiguous(grad, start * strides[self.dim], shape, strides)
                grads.append(slab.astype(dtype, copy=False))
                start += size
            return tuple(grads)
        cuts = np.cumsum(self.sizes)[:-1]
        return tuple(g.astype(dt, copy=False)
                     for g, dt in zip(np.split(grad, cuts, axis=self.dim), self.dtypes))


class Stack(Function):
    def forward(self, *arrays, dim):
        xp = _backend.backend_of(*arrays)
        self.dim, self.dtypes = dim, [a.dtype for a in arrays]
        if xp is _backend.cpu:
            return np.stack(arrays, axis=dim, dtype=_common_dtype(arrays))
        shape = arrays[0].shape[:dim] + (len(arrays),) + arrays[0].shape[dim:]
        copy = _backend.require(xp, "copy_strided", "stack")
        out = xp.empty(shape, _common_dtype(arrays), arrays[0].device)
        strides = _backend.c_strides(shape)
        inner = strides[:dim] + strides[dim + 1:]   # out[..., i, ...] skips axis dim
        for i, a in enumerate(arrays):
            copy(out, i * strides[dim], inner, a, 0, _backend.c_strides(a.shape), a.shape)
        return out

    def backward(self, grad):
        if type(grad) is ClArray:
            strides = _backend.c_strides(grad.shape)
            shape, inner = grad.shape[:self.dim] + grad.shape[self.dim + 1:], strides[:self.dim] + strides[self.dim + 1:]
            return tuple(_backend.opencl.contiguous(grad, i * strides[self.dim], shape, inner).astype(dt, copy=False)
                         for i, dt in enumerate(self.dtypes))
        lead = (slice(None),) * self.dim
        return tuple(grad[lead + (i,)].astype(dt, copy=False) for i, dt in enumerate(self.dtypes))


def _common_dtype(arrays):
    dtype = arrays[0].dtype
    for a in arrays[1:]:
        dtype = result_dtype(np.empty((1,), dtype), a)
    return dtype


# ---- what users call ------------------------------------------------------

def reshape(x, *shape):
    return Reshape.apply(x, shape=infer_shape(_sizes(shape, "reshape"), x.data.size), view=False)


def view(x, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer)):
        dtype = _as_dtype(shape[0])
        if dtype != x.dtype:
            raise TypeError("view(dtype) reinterprets memory, which microgradbn does not support; "
                            "use .to(dtype)")
        return x
    return Reshape.apply(x, shape=infer_shape(_sizes(shape, "view"), x.data.size), view=True)


def _dim(d, ndim, extra=0):
    bound = ndim + extra
    if not isinstance(d, (int, np.integer)) or not -max(bound, 1) <= d < max(bound, 1):
        raise IndexError(f"Dimension out of range (expected to be in range of "
                         f"[{-max(bound, 1)}, {max(bound, 1) - 1}], but got {d})")
    return int(d) % max(bound, 1)


def permute(x, *dims):
    dims = _sizes(dims, "permute")
    if len(dims) != x.ndim:
        raise RuntimeError(f"permute: number of dims {len(dims)} does not match the tensor's "
                           f"{x.ndim} (shape {tuple(x.shape)})")
    axes = tuple(_dim(d, x.ndim) for d in dims)
    if sorted(axes) != list(range(x.ndim)):
        raise RuntimeError(f"permute: dims {dims} repeat an axis")
    return Permute.apply(x, dims=axes)


def transpose(x, dim0, dim1):
    axes = list(range(x.ndim))
    a, b = _dim(dim0, x.ndim), _dim(dim1, x.ndim)
    if x.ndim == 0:
        return x
    axes[a], axes[b] = axes[b], axes[a]
    return Permute.apply(x, dims=tuple(axes))


def t(x):
    """The transpose of a tensor with at most 2 dimensions (.T reverses all)."""
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return Permute.apply(x, dims=tuple(reversed(range(x.ndim))))


def reverse_dims(x):
    return Permute.apply(x, dims=tuple(reversed(range(x.ndim))))


def unsqueeze(x, dim):
    d = _dim(dim, x.ndim, extra=1)
    shape = x.shape[:d] + (1,) + x.shape[d:]
    return Reshape.apply(x, shape=shape, view=False)


def squeeze(x, dim=None):
    axes = normalize_dims(dim, x.ndim)
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1))
    return Reshape.apply(x, shape=shape, view=False)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,), view=False)
    s, e = _dim(start_dim, x.ndim), _dim(end_dim, x.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:]
    return Reshape.apply(x, shape=shape, view=False)


def expand(x, *sizes):
    sizes = _sizes(sizes, "expand")
    if len(sizes) < x.ndim:
        raise ShapeError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or "
                         f"equal to the number of dimensions in the tensor ({x.ndim})")
    pad = len(sizes) - x.ndim
    shape = []
    for i, n in enumerate(sizes):
        old = x.shape[i - pad] if i >= pad else None
        if n == -1:
            if old is None:
                raise ShapeError("expand: -1 is not allowed in a leading, new dimension")
            n = old
        elif old is not None and old != 1 and old != n:
            raise ShapeError(f"expand: the expanded size of the tensor ({n}) must match the existing "
                             f"size ({old}) at non-singleton dimension {i}; target sizes {list(sizes)}, "
                             f"tensor shape {list(x.shape)}")
        shape.append(n)
    return Expand.apply(x, shape=tuple(shape))


def expand_as(x, other):
    return expand(x, other.shape)


def contiguous(x):
    return x if type(x.data) is ClArray or x.data.flags.c_contiguous else Copy.apply(x)


def clone(x):
    return Copy.apply(x)


def to(x, *args, dtype=None, device=None):
    """x.to(dtype), x.to("cpu"), x.to("opencl") (or "opencl:<i>"), x.to(device, dtype).
    Moving is differentiable: the gradient goes back to x's device. A cast
    runs on the CPU side of a move (before it to a device, after it back)."""
    for a in args:
        if isinstance(a, str):
            device = a
        else:
            dtype = a
    dtype = _as_dtype(dtype)
    if device is None:
        return _cast(x, dtype)
    index = _backend.parse_device(device)
    if index is None:                                   # to the CPU
        return _cast(x if not x.is_opencl else Move.apply(x, index=None), dtype)
    if x.is_opencl and x.data.device == index:
        return _cast(x, dtype)
    return Move.apply(_cast(x, dtype) if not x.is_opencl else x, index=index)


def _cast(x, dtype):
    if dtype is None or dtype == x.dtype:
        return x
    if x.requires_grad and dtype.kind != "f":
        return Tensor._wrap(x.data.astype(dtype))
    return Cast.apply(x, dtype=dtype)


class Move(Function):
    """x copied to another device (index: an OpenCL device, None: the CPU);
    the gradient is copied back to x's device."""

    def forward(self, x, index):
        self.source = x.device if type(x) is _backend.ClArray else None
        return _backend.to_host(x) if index is None else _backend.to_device(x, index)

    def backward(self, grad):
        return _backend.to_host(grad) if self.source is None else _backend.to_device(grad, self.source)


def assign(array, index, value):
    """array[index] = value (a number or an array broadcast to the view) for
    a ClArray and a basic index: a strided copy on the device."""
    copy = _backend.require(_backend.opencl, "copy_strided", "index assignment")
    if not _is_basic(index):
        raise _backend.not_supported("index assignment with arrays or masks")
    offset, shape, strides = _backend.view_of(array.shape, index)
    if type(value) is not ClArray:
        value = np.asarray(value)
        value = _backend.full((), value.item(), array.dtype, array) if value.ndim == 0 else \
            _backend.to_device(value, array.device)
    pad = len(shape) - value.ndim
    if pad < 0 or any(n != 1 and n != m for n, m in zip(value.shape, shape[pad:])):
        raise ShapeError(f"could not broadcast input array from shape {value.shape} into shape {shape}")
    value_strides = (0,) * pad + tuple(0 if n == 1 else s for n, s in zip(value.shape, _backend.c_strides(value.shape)))
    copy(array, offset, strides, value, 0, value_strides, shape)


def getitem(x, index):
    index = plain_index(index)
    return Index.apply(x, index=index)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat(): expected a non-empty list of Tensors")
    first = tensors[0]
    d = _dim(dim, first.ndim)
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, first.shape))
                                       if k != d):
            raise ShapeError(f"cat(): sizes of tensors must match except in dimension {d}: "
                             f"tensor 0 has shape {tuple(first.shape)}, tensor {i} has shape "
                             f"{tuple(t.shape)}")
    return Cat.apply(*tensors, dim=d)


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack(): expected a non-empty list of Tensors")
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.shape != first.shape:
            raise ShapeError(f"stack(): expects each tensor to be equal size, but got "
                             f"{tuple(first.shape)} at entry 0 and {tuple(t.shape)} at entry {i}")
    return Stack.apply(*tensors, dim=_dim(dim, first.ndim, extra=1))
