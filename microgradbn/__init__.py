"""microgradbn: a tiny, fast, readable autodiff framework.

    import microgradbn as mg
    x = mg.tensor([1.0, 2.0]) + mg.tensor([3.0, 4.0])
"""
from ._backend import cpu as _cpu
from .errors import BackendError, DTypeError, InternalError, ShapeError

_cpu.init()  # a bad MGBN_SIMD or MGBN_NUM_THREADS is reported here, at import

__version__ = "0.1.0"


def backend_info():
    """Which SIMD path runs, which ones this machine can run, threads, version."""
    info = _cpu.backend_info()
    info["opencl_available"] = False  # the OpenCL backend is not built yet
    return info


def set_num_threads(n):
    """Threads the C kernels use (results are the same bits for any n)."""
    _cpu.set_num_threads(n)


def get_num_threads():
    return _cpu.backend_info()["threads"]
