"""microgradbn: a tiny, fast, readable autodiff framework.

    import microgradbn as mg
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == [2., 4.]
"""
from ._backend import cpu as _cpu

_cpu.init()  # a bad MGBN_SIMD or MGBN_NUM_THREADS is reported here, at import

from . import autograd  # noqa: E402
from . import graph  # noqa: E402
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from .errors import BackendError, DTypeError, InternalError, ShapeError  # noqa: E402
from .autograd import gradcheck  # noqa: E402,F401
from .ops import (  # noqa: E402
    abs, add, amax, amin, argmax, argmin, cat, clamp, clone, div, eq, exp, expand, flatten, ge, gt,
    le, log, log_softmax, lt, matmul, max, mean, min, mul, ne, neg, permute, pow, relu, reshape,
    sigmoid, softmax, sqrt, squeeze, stack, sub, sum, tanh, transpose, unsqueeze, var, view, where,
)
from . import datasets  # noqa: E402
from . import opencl  # noqa: E402
from .tensor import Tensor, bool_, float32, float64, int64  # noqa: E402
from .creation import (  # noqa: E402
    arange, empty, from_dlpack, from_numpy, full, full_like, manual_seed, ones, ones_like, rand,
    rand_like, randn, randn_like, tensor, zeros, zeros_like,
)
from . import nn, optim  # noqa: E402
from .serialization import load, save  # noqa: E402

__version__ = "0.1.0"


def backend_info():
    """Which SIMD path runs, which ones this machine can run, threads, the size
    from which outputs are written with streaming stores, version, OpenCL."""
    info = _cpu.backend_info()
    info["opencl_available"] = opencl.is_available()
    return info


def set_num_threads(n):
    """Threads the C kernels use (results are the same bits for any n)."""
    _cpu.set_num_threads(n)


def get_num_threads():
    return _cpu.backend_info()["threads"]
