/* api_opencl.h - what api_opencl.c and api_opencl_nn.c share: argument
 * checks and launch helpers over src/opencl/opencl.h. */
#ifndef MG_API_OPENCL_H
#define MG_API_OPENCL_H

#include "opencl/opencl.h"

#define TRY(expr) do { mg_status s_ = (expr); if (s_ != MG_OK) return s_; } while (0)
#define ITEM(dtype) ((dtype) == MG_F32 ? sizeof(float) : sizeof(double))
/* Bytes of one ACC value (sums, BN statistics) on device d. */
#define ACC_ITEM(d) ((d)->fp64 ? sizeof(double) : sizeof(float))
#define ACC_DTYPE(d) ((d)->fp64 ? MG_F64 : MG_F32)

mg_status mg_clapi_dtype(const char *fn, int dtype);
/* buf is not NULL, is on device and holds at least elems elements of item bytes. */
mg_status mg_clapi_buffer(const char *fn, const char *name, const mg_cl_buffer_t *buf, int device,
                          int64_t elems, size_t item);
/* The runtime, the dtype, and the device and kernels of the buffer first. */
mg_status mg_clapi_begin(const char *fn, int dtype, const mg_cl_buffer_t *first, const char *name,
                         mg_cl_device_t **d, mg_cl_kernel_t **k);
/* The checks of the contiguous elementwise entries: mg_clapi_begin on out,
 * n >= 0, and in0, in1 (may be NULL) and out on out's device holding n
 * elements of dtype each. */
mg_status mg_clapi_begin_map(const char *fn, int dtype, int64_t n, const mg_cl_buffer_t *in0,
                             const mg_cl_buffer_t *in1, const mg_cl_buffer_t *out, mg_cl_device_t **d,
                             mg_cl_kernel_t **k);
/* *total = the product of shape[0..ndim), checked for sign and overflow. */
mg_status mg_clapi_count(const char *fn, int ndim, const int64_t *shape, int64_t *total);
/* buf holds every element offset + sum_d i_d*strides[d], 0 <= i_d < shape[d]
 * (a non-empty shape), and offset and strides are small enough that no sum
 * overflows. */
mg_status mg_clapi_span(const char *fn, const char *name, const mg_cl_buffer_t *buf, int device,
                        size_t item, int64_t offset, int ndim, const int64_t *shape, const int64_t *strides);
/* Drops size-1 axes and merges axis d into the one before it wherever each
 * of the narrays stride arrays walks the two as one flat axis (as api.c does
 * on the CPU), so contiguous data becomes one long axis. Writes shape_out and
 * strides_out[j]; returns the new ndim, >= 1. */
int mg_clapi_merge_axes(int ndim, const int64_t *shape, int narrays, const int64_t *const *strides,
                        int64_t *shape_out, int64_t (*strides_out)[MG_MAX_DIMS]);
/* A power-of-two work-group size for k, at most 256 and no larger than
 * needed for want items. */
size_t mg_clapi_local(const mg_cl_kernel_t *k, int64_t want);

/* k over n items in 1-D work-groups of mg_clapi_local(k, n), with the device
 * lock held; LAUNCH_1D(fn, d, k, n, MG_CL_ARG(...), ...) lists the arguments. */
mg_status mg_clapi_launch_1d(const char *fn, mg_cl_device_t *d, const mg_cl_kernel_t *k, int64_t n,
                             int nargs, const mg_cl_arg_t *args);
#define LAUNCH_1D(fn, d, k, n, ...)                                                                 \
    mg_clapi_launch_1d(fn, d, k, n, (int)(sizeof((mg_cl_arg_t[]){__VA_ARGS__}) / sizeof(mg_cl_arg_t)), \
                       (mg_cl_arg_t[]){__VA_ARGS__})

#endif
