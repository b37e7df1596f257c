"""The OpenCL backend: ClArray device buffers in and out, src/opencl/kernels*.cl
underneath (through the C library's mg_cl_* entry points).

The functions have the names, argument orders and results of the CPU
backend (cpu/) with ClArray in place of NumPy arrays, so the ops layer
can pick a backend by module; the op codes are the CPU backend's. Everything
runs on the device: a function enqueues kernels and returns; only
ClArray.numpy() (and to_numpy) waits and copies back. The C library checks
every argument again; failures become microgradbn.errors exceptions carrying
its message. One family per file, cut as the CPU backend's:

    core.py         PoCL's cache, devices, dtype codes, ClArray, allocation,
                    views, copies and casts
    elementwise.py  binary, unary maps, clamp, pow, compare, where, reductions
    gemm.py         matmul, matmul_tn, matmul_nt
    nn.py           batch norm, conv2d, pooling, optimizer steps
    loss.py         softmax, class-index gather/scatter, cross entropy, nll
                    (the CPU does these in NumPy)

BN statistics (save_mean, save_rstd, batch_var) are float64 on devices with
cl_khr_fp64 and float32 elsewhere (statistics_dtype); float64 tensors need
cl_khr_fp64 (DTypeError otherwise).
"""
from ..cpu import (  # noqa: F401  (the op codes are the CPU backend's, re-exported)
    DTYPE_CODES, GRAD_ABS, GRAD_RELU, GRAD_SIGMOID, GRAD_SQRT, GRAD_TANH, OP_ADD, OP_DIV, OP_MAX, OP_MIN,
    OP_MUL, OP_SUB, REDUCE_MAX, REDUCE_MIN, REDUCE_SUM, UNARY_ABS, UNARY_EXP, UNARY_LOG, UNARY_NEG,
    UNARY_RELU, UNARY_SIGMOID, UNARY_SQRT, UNARY_TANH, raise_status,
)
from .core import (  # noqa: F401
    STORAGE_CODES, ClArray, astype, contiguous, copy_strided, device_count, device_info, devices, empty, finish,
    full, init, is_available, statistics_dtype, to_device, to_numpy, unavailable_reason, zeros,
)
from .elementwise import (  # noqa: F401
    CMP_EQ, CMP_GE, CMP_GT, CMP_LE, CMP_LT, CMP_NE, add, binary, binary_same, clamp, clamp_backward, compare,
    handle, pow, pow_scalar, pow_scalar_backward, reduce, sum_all, sum_axes, unary, unary_backward, where,
)
from .gemm import matmul, matmul_nt, matmul_tn  # noqa: F401
from .loss import (  # noqa: F401
    bad_class_index, cross_entropy_backward, cross_entropy_forward, gather_classes, nll_backward, nll_forward,
    scatter_classes, softmax, softmax_backward,
)
from .nn import (  # noqa: F401
    adam_step, avg_pool2d_backward, avg_pool2d_forward, batch_norm_backward, batch_norm_eval_backward,
    batch_norm_eval_forward, batch_norm_train_forward, conv2d_backward, conv2d_forward, max_pool2d_backward,
    max_pool2d_forward, pooled_size, sgd_step,
)
