"""OpenCL devices: is one here, and which.

    import microgradbn as mg
    mg.opencl.is_available()   # False without an OpenCL runtime or device
    mg.opencl.devices()        # [{'name': ..., 'vendor': ..., 'global_mem_bytes': ..., 'fp64': ...}]

libOpenCL is loaded on the first of these calls, never at import; set
MGBN_OPENCL_LIBRARY to load another library than the system's libOpenCL.so.1.
Without a runtime, unavailable_reason() says what to install (e.g. Debian's
pocl-opencl-icd and ocl-icd-libopencl1). For PoCL a writable POCL_CACHE_DIR
is set under the user's cache directory when none is given.
"""
from ._backend import opencl as _cl


def is_available():
    """True if an OpenCL runtime loads and shows at least one device."""
    return _cl.is_available()


def unavailable_reason():
    """Why is_available() is False, naming what to install ("" when available)."""
    return _cl.unavailable_reason()


def device_count():
    """The number of OpenCL devices (0 without a runtime)."""
    return _cl.device_count() if _cl.is_available() else 0


def devices():
    """One dict per device: name, vendor, version, global_mem_bytes,
    max_alloc_bytes, max_work_group_size, compute_units, fp64, is_gpu."""
    return _cl.devices()
