"""Exceptions. Each C status code (src/mg.h) becomes one of these, carrying
the C library's message; each subclasses the builtin a Python user expects."""


class ShapeError(ValueError):
    """Shapes that do not fit together (MG_ERR_SHAPE)."""


class DTypeError(TypeError):
    """An unsupported or mismatched dtype (MG_ERR_DTYPE)."""


class BackendError(RuntimeError):
    """A backend or SIMD path that is not available (MG_ERR_BACKEND)."""


class InternalError(RuntimeError):
    """A bug in mgbn (MG_ERR_INTERNAL): please report it."""


# mg_status value -> exception class
STATUS_EXCEPTIONS = {
    1: ValueError,     # MG_ERR_ARG
    2: ShapeError,     # MG_ERR_SHAPE
    3: DTypeError,     # MG_ERR_DTYPE
    4: MemoryError,    # MG_ERR_NOMEM
    5: BackendError,   # MG_ERR_BACKEND
    6: InternalError,  # MG_ERR_INTERNAL
}
