"""The CPU backend: NumPy arrays in, C kernels (through cffi) underneath.

Every function takes and returns NumPy arrays of float32 or float64 whose
shapes the caller has already checked; the C library checks again and any
failure becomes the matching exception (microgradbn.errors) with the C
message. The functions have the names of the OpenCL backend's (opencl/),
one family per file, cut as there:

    core.py         dtype codes, status -> exceptions, allocation, SIMD path, threads
    elementwise.py  binary (broadcasting and the fast paths), unary maps, clamp,
                    pow, reductions
    gemm.py         matmul, matmul_tn, matmul_nt
    nn.py           batch norm, conv2d, pooling, optimizer steps
"""
from ..._mgbn import ffi, lib  # noqa: F401  (for tests that call the C library directly)
from .core import (  # noqa: F401
    DTYPE_CODES, ISA_NAMES, LARGE_BYTES, backend_info, copy_of, empty, empty_like, handle, init, pointer,
    raise_status, set_isa, set_num_threads,
)
from .elementwise import (  # noqa: F401
    GRAD_ABS, GRAD_RELU, GRAD_SIGMOID, GRAD_SQRT, GRAD_TANH, OP_ADD, OP_DIV, OP_MAX, OP_MIN, OP_MUL, OP_SUB,
    REDUCE_MAX, REDUCE_MIN, REDUCE_SUM, UNARY_ABS, UNARY_EXP, UNARY_LOG, UNARY_NEG, UNARY_RELU, UNARY_SIGMOID,
    UNARY_SQRT, UNARY_TANH, add, binary, binary_same, binary_scalar, clamp, clamp_backward, element_strides, pow,
    pow_scalar, pow_scalar_backward, reduce, sum_all, sum_axes, unary, unary_backward, unary_same,
)
from .gemm import matmul, matmul_nt, matmul_tn  # noqa: F401
from .nn import (  # noqa: F401
    adam_step, avg_pool2d_backward, avg_pool2d_forward, batch_norm_backward, batch_norm_eval_backward,
    batch_norm_eval_forward, batch_norm_train_forward, conv2d_backward, conv2d_forward, max_pool2d_backward,
    max_pool2d_forward, pooled_size, sgd_step,
)
