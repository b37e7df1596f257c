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
/* *total = the product of shape[0..ndim), checked for sign and overflow. */
mg_status mg_clapi_count(const char *fn, int ndim, const int64_t *shape, int64_t *total);
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
