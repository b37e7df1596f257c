/* opencl.h - what loader.c, device.c and api_opencl*.c share; never seen by Python.
 *
 *   loader.c   dlopen of libOpenCL on first use, the mg_cl_api function table
 *   device.c   platforms and devices, one context and in-order queue per
 *              device, kernels.cl built once per (device, dtype) on first use,
 *              kernel launches
 *   kernels.cl, kernels_data.cl, kernels_conv.cl: every kernel, one program;
 *              embedded (concatenated) as mg_cl_kernels_source by CMake
 *
 * Every operation enqueues on its device's in-order queue and returns
 * without waiting: commands run in the order they were issued, a read waits
 * for the commands before it, and a buffer released while a kernel still
 * uses it lives until that kernel is done (the OpenCL rule). */
#ifndef MG_OPENCL_H
#define MG_OPENCL_H

#include <pthread.h>

#include "../internal.h"
#include "cl_min.h"

/* The kernels of the program, one cl_kernel per (device, dtype) each. */
#define MG_CL_KERNELS(X)                                                             \
    X(fill) X(binary_contig) X(binary_strided) X(unary) X(unary_backward)            \
    X(clamp_forward) X(clamp_backward) X(reduce_items) X(reduce_groups)              \
    X(reduce_partials) X(matmul) X(softmax) X(softmax_backward) X(bn_stats_cols)     \
    X(bn_stats_planes) X(bn_stats_finish) X(bn_forward_apply) X(bn_sums_cols)        \
    X(bn_sums_planes) X(bn_sums_finish) X(bn_backward_dx) X(bn_eval_forward)         \
    X(bn_eval_backward) X(sgd_step) X(adam_step)                                     \
    /* kernels_data.cl */                                                            \
    X(copy_real) X(copy_u8) X(copy_i64) X(cast_f32_to_real) X(cast_real_to_f32)      \
    X(cast_u8_to_real) X(cast_real_to_u8) X(cast_i64_to_real) X(cast_real_to_i64)    \
    X(cast_u8_to_i64) X(cast_i64_to_u8) X(compare) X(where_select) X(pow_scalar)     \
    X(pow_scalar_backward) X(pow_tensor) X(gather_classes) X(scatter_classes)        \
    X(index_check)                                                                   \
    /* kernels_conv.cl */                                                            \
    X(im2col) X(col2im) X(add_channel_bias) X(max_pool_forward) X(max_pool_argmax)   \
    X(max_pool_backward) X(avg_pool_forward) X(avg_pool_backward)

enum {
#define MG_CL_ENUM(name) MG_CLK_##name,
    MG_CL_KERNELS(MG_CL_ENUM)
#undef MG_CL_ENUM
    MG_CL_NUM_KERNELS
};

typedef struct {
    cl_kernel kernel;
    size_t max_local;   /* CL_KERNEL_WORK_GROUP_SIZE, rounded down to a power of two */
} mg_cl_kernel_t;

typedef struct {
    cl_device_id id;
    cl_context context;
    cl_command_queue queue;
    pthread_mutex_t lock;              /* kernel arguments are shared state: one launch at a time */
    char name[256], vendor[256], version[128];
    uint64_t global_mem, max_alloc, local_mem;
    size_t max_work_group;
    int compute_units, fp64, is_gpu;
    size_t matmul_tile;                /* side of the matmul tile (-D MATMUL_TS) */
    cl_program program[2];             /* per dtype; NULL until built */
    mg_cl_kernel_t kernels[2][MG_CL_NUM_KERNELS];
} mg_cl_device_t;

struct mg_cl_buffer {
    cl_mem mem;
    int device;
    size_t nbytes;
};

/* loader.c: the entry points once libOpenCL is open (NULL before). */
extern mg_cl_api_t mg_cl;
/* Opens the library once; MG_ERR_BACKEND otherwise, *message saying why
 * and what to install (no mg_fail: the caller adds its name). */
mg_status mg_cl_load(const char **message);

/* device.c */
extern const char mg_cl_kernels_source[];   /* generated from kernels.cl */
/* Loads the library and finds the devices, once per process; a failure is
 * MG_ERR_BACKEND with a message naming fn and what to install. */
mg_status mg_cl_ensure(const char *fn);
/* The device with that index, or MG_ERR_ARG naming fn. */
mg_status mg_cl_get_device(const char *fn, int index, mg_cl_device_t **out);
/* The kernels of dtype on device, building the program on first use;
 * MG_ERR_DTYPE for float64 on a device without cl_khr_fp64. */
mg_status mg_cl_get_kernels(const char *fn, mg_cl_device_t *d, int dtype, mg_cl_kernel_t **out);
/* MG_ERR_BACKEND naming fn, the OpenCL call and its error code. */
mg_status mg_cl_error(const char *fn, const char *call, cl_int err);

/* One kernel argument: value points to size bytes, or value is NULL for a
 * __local buffer of size bytes. */
typedef struct {
    size_t size;
    const void *value;
} mg_cl_arg_t;

#define MG_CL_ARG(v) ((mg_cl_arg_t){sizeof(v), &(v)})
#define MG_CL_LOCAL(bytes) ((mg_cl_arg_t){(bytes), NULL})

/* A float or double scalar argument, as the kernel's REAL type. */
typedef union {
    float f;
    double d;
} mg_cl_real_t;
mg_cl_real_t mg_cl_real(int dtype, double v);
#define MG_CL_REAL(dtype, u) ((mg_cl_arg_t){(dtype) == MG_F32 ? sizeof(float) : sizeof(double), &(u)})

/* Sets the arguments and enqueues k over global[dims] in work-groups of
 * local[dims] (global is first rounded up to a multiple of local). Call
 * with d->lock held. */
mg_status mg_cl_launch(const char *fn, mg_cl_device_t *d, const mg_cl_kernel_t *k, int dims,
                       const size_t *global, const size_t *local, int nargs, const mg_cl_arg_t *args);
#define MG_CL_LAUNCH(fn, d, k, dims, global, local, ...)                                   \
    mg_cl_launch(fn, d, k, dims, global, local,                                          \
                 (int)(sizeof((mg_cl_arg_t[]){__VA_ARGS__}) / sizeof(mg_cl_arg_t)),      \
                 (mg_cl_arg_t[]){__VA_ARGS__})

/* A read-only device buffer holding a copy of nbytes of host memory (shapes,
 * strides), or a scratch buffer (host NULL); release with mg_cl_release. */
mg_status mg_cl_temp(const char *fn, mg_cl_device_t *d, const void *host, size_t nbytes, cl_mem *out);
void mg_cl_release(cl_mem mem);

/* Largest power of two <= n (n >= 1). */
size_t mg_cl_pow2_floor(size_t n);

#endif
