/* device.c - OpenCL platforms and devices, programs, kernel launches.
 *
 * On first use every device of every platform gets a context and an in-order
 * command queue. kernels.cl is built for a device the first time an
 * operation of a dtype runs there, once per (device, dtype) and process:
 * REAL is float or double, ACC (sums, statistics) is double wherever the
 * device has cl_khr_fp64 and float elsewhere. MGBN_OPENCL_FP64=0 treats
 * every device as one without cl_khr_fp64 (so tests reach that path). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl.h"

#define MAX_DEVICES 16
#define INSTALL_HINT "install an OpenCL runtime, e.g. Debian's pocl-opencl-icd and ocl-icd-libopencl1"

static mg_cl_device_t devices[MAX_DEVICES];
static int num_devices;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static mg_status discover_status;
static char discover_message[512];

static const char *const kernel_names[MG_CL_NUM_KERNELS] = {
#define MG_CL_NAME(name) #name,
    MG_CL_KERNELS(MG_CL_NAME)
#undef MG_CL_NAME
};

mg_status mg_cl_error(const char *fn, const char *call, cl_int err) {
    return mg_fail(MG_ERR_BACKEND, "%s: %s failed with OpenCL error %d", fn, call, (int)err);
}

size_t mg_cl_pow2_floor(size_t n) {
    size_t p = 1;
    while (p * 2 <= n) p *= 2;
    return p;
}

mg_cl_real_t mg_cl_real(int dtype, double v) {
    mg_cl_real_t u;
    if (dtype == MG_F32) u.f = (float)v;
    else u.d = v;
    return u;
}

/* ---- discovery ----------------------------------------------------------- */

static void device_string(cl_device_id id, cl_device_info what, char *out, size_t size) {
    out[0] = '\0';
    if (mg_cl.clGetDeviceInfo(id, what, size, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[size - 1] = '\0';
}

static int device_has_fp64(cl_device_id id) {
    size_t size = 0;
    if (mg_cl.clGetDeviceInfo(id, CL_DEVICE_EXTENSIONS, 0, NULL, &size) != CL_SUCCESS || !size) return 0;
    char *ext = malloc(size + 1);
    if (!ext) return 0;
    int found = 0;
    if (mg_cl.clGetDeviceInfo(id, CL_DEVICE_EXTENSIONS, size, ext, NULL) == CL_SUCCESS) {
        ext[size] = '\0';
        found = strstr(ext, "cl_khr_fp64") != NULL;
    }
    free(ext);
    return found;
}

/* Fills d for device id; 0 if the device cannot get a context and queue. */
static int open_device(mg_cl_device_t *d, cl_device_id id) {
    memset(d, 0, sizeof *d);
    d->id = id;
    device_string(id, CL_DEVICE_NAME, d->name, sizeof d->name);
    device_string(id, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
    device_string(id, CL_DEVICE_VERSION, d->version, sizeof d->version);
    cl_ulong value = 0;
    cl_uint units = 1;
    cl_device_type type = 0;
    size_t wg = 1;
    if (mg_cl.clGetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof value, &value, NULL) == CL_SUCCESS)
        d->global_mem = value;
    if (mg_cl.clGetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof value, &value, NULL) == CL_SUCCESS)
        d->max_alloc = value;
    if (mg_cl.clGetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof value, &value, NULL) == CL_SUCCESS)
        d->local_mem = value;
    mg_cl.clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    mg_cl.clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL);
    mg_cl.clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    d->max_work_group = wg ? wg : 1;
    d->compute_units = (int)units;
    d->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    const char *fp64 = getenv("MGBN_OPENCL_FP64");   /* "0": run as on a device without it */
    d->fp64 = device_has_fp64(id) && !(fp64 && strcmp(fp64, "0") == 0);
    /* The matmul work-group is TS x TS/4 items and holds two TS x (TS + 1) tiles. */
    d->matmul_tile = 32;
    while (d->matmul_tile > 4 && (d->matmul_tile * d->matmul_tile / 4 > d->max_work_group ||
                                  2 * d->matmul_tile * (d->matmul_tile + 1) * 8 > d->local_mem))
        d->matmul_tile /= 2;
    cl_int err;
    d->context = mg_cl.clCreateContext(NULL, 1, &id, NULL, NULL, &err);
    if (err != CL_SUCCESS) return 0;
    d->queue = mg_cl.clCreateCommandQueue(d->context, id, 0, &err);
    if (err != CL_SUCCESS) {
        mg_cl.clReleaseContext(d->context);
        return 0;
    }
    pthread_mutex_init(&d->lock, NULL);
    return 1;
}

static void discover(void) {
    const char *why;
    discover_status = mg_cl_load(&why);
    if (discover_status != MG_OK) {
        snprintf(discover_message, sizeof discover_message, "%s", why);
        return;
    }
    cl_platform_id platforms[8];
    cl_uint nplatforms = 0;
    cl_int err = mg_cl.clGetPlatformIDs(8, platforms, &nplatforms);
    if (err != CL_SUCCESS && err != CL_PLATFORM_NOT_FOUND_KHR) nplatforms = 0;
    if (nplatforms > 8) nplatforms = 8;
    for (cl_uint p = 0; p < nplatforms; p++) {
        cl_device_id ids[MAX_DEVICES];
        cl_uint nids = 0;
        if (mg_cl.clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, ids, &nids) != CL_SUCCESS)
            continue;
        if (nids > MAX_DEVICES) nids = MAX_DEVICES;
        for (cl_uint i = 0; i < nids && num_devices < MAX_DEVICES; i++)
            num_devices += open_device(&devices[num_devices], ids[i]);
    }
    if (num_devices == 0) {
        snprintf(discover_message, sizeof discover_message,
                 "the OpenCL runtime loaded but reports no usable device (%u platform(s)); "
                 INSTALL_HINT " (PoCL also needs a writable POCL_CACHE_DIR)", (unsigned)nplatforms);
        discover_status = MG_ERR_BACKEND;
    }
}

mg_status mg_cl_ensure(const char *fn) {
    pthread_once(&once, discover);
    if (discover_status != MG_OK) return mg_fail(discover_status, "%s: %s", fn, discover_message);
    return MG_OK;
}

mg_status mg_cl_get_device(const char *fn, int index, mg_cl_device_t **out) {
    mg_status s = mg_cl_ensure(fn);
    if (s != MG_OK) return s;
    if (index < 0 || index >= num_devices)
        return mg_fail(MG_ERR_ARG, "%s: no OpenCL device %d (there are %d)", fn, index, num_devices);
    *out = &devices[index];
    return MG_OK;
}

mg_status mg_cl_device_count(int *out) {
    if (!out) return mg_fail(MG_ERR_ARG, "mg_cl_device_count: out is NULL");
    mg_status s = mg_cl_ensure("mg_cl_device_count");
    if (s != MG_OK) return s;
    *out = num_devices;
    return MG_OK;
}

mg_status mg_cl_init(void) { return mg_cl_ensure("mg_cl_init"); }

mg_status mg_cl_device_info(int device, mg_cl_device_info_t *out) {
    mg_cl_device_t *d;
    mg_status s = mg_cl_get_device("mg_cl_device_info", device, &d);
    if (s != MG_OK) return s;
    if (!out) return mg_fail(MG_ERR_ARG, "mg_cl_device_info: out is NULL");
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", d->name);
    snprintf(out->vendor, sizeof out->vendor, "%s", d->vendor);
    snprintf(out->version, sizeof out->version, "%s", d->version);
    out->global_mem_bytes = d->global_mem;
    out->max_alloc_bytes = d->max_alloc;
    out->max_work_group_size = (int64_t)d->max_work_group;
    out->compute_units = d->compute_units;
    out->fp64 = d->fp64;
    out->is_gpu = d->is_gpu;
    return MG_OK;
}

/* ---- programs ------------------------------------------------------------ */

static mg_status build_failure(const char *fn, mg_cl_device_t *d, cl_program program, cl_int err) {
    char log[320] = "";
    size_t size = 0;
    mg_cl.clGetProgramBuildInfo(program, d->id, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &size);
    log[sizeof log - 1] = '\0';
    return mg_fail(MG_ERR_BACKEND, "%s: building kernels.cl for %s failed (OpenCL error %d): %s",
                   fn, d->name, (int)err, log);
}

static mg_status build(const char *fn, mg_cl_device_t *d, int dtype) {
    char options[256];
    snprintf(options, sizeof options,
             "-cl-std=CL1.2 -D REAL=%s -D ACC=%s%s -D MATMUL_TS=%zu",
             dtype == MG_F32 ? "float" : "double", d->fp64 ? "double" : "float",
             d->fp64 ? " -D MG_FP64=1" : "", d->matmul_tile);
    const char *source = mg_cl_kernels_source;
    cl_int err;
    cl_program program = mg_cl.clCreateProgramWithSource(d->context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS) return mg_cl_error(fn, "clCreateProgramWithSource", err);
    err = mg_cl.clBuildProgram(program, 1, &d->id, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        mg_status s = build_failure(fn, d, program, err);
        mg_cl.clReleaseProgram(program);
        return s;
    }
    for (int i = 0; i < MG_CL_NUM_KERNELS; i++) {
        mg_cl_kernel_t *k = &d->kernels[dtype][i];
        k->kernel = mg_cl.clCreateKernel(program, kernel_names[i], &err);
        size_t wg = 1;
        if (err == CL_SUCCESS)
            err = mg_cl.clGetKernelWorkGroupInfo(k->kernel, d->id, CL_KERNEL_WORK_GROUP_SIZE,
                                                 sizeof wg, &wg, NULL);
        if (err != CL_SUCCESS) {
            mg_status s = mg_fail(MG_ERR_BACKEND, "%s: kernel %s of kernels.cl on %s: OpenCL error %d",
                                  fn, kernel_names[i], d->name, (int)err);
            for (int j = 0; j <= i; j++)
                if (d->kernels[dtype][j].kernel) mg_cl.clReleaseKernel(d->kernels[dtype][j].kernel);
            mg_cl.clReleaseProgram(program);
            memset(d->kernels[dtype], 0, sizeof d->kernels[dtype]);
            return s;
        }
        k->max_local = mg_cl_pow2_floor(wg ? wg : 1);
    }
    d->program[dtype] = program;
    return MG_OK;
}

mg_status mg_cl_get_kernels(const char *fn, mg_cl_device_t *d, int dtype, mg_cl_kernel_t **out) {
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtype %d is neither float32 (0) nor float64 (1)", fn, dtype);
    if (dtype == MG_F64 && !d->fp64)
        return mg_fail(MG_ERR_DTYPE, "%s: device %s has no float64 (cl_khr_fp64)", fn, d->name);
    mg_status s = MG_OK;
    pthread_mutex_lock(&d->lock);
    if (!d->program[dtype]) s = build(fn, d, dtype);   /* a failed build is tried again next time */
    pthread_mutex_unlock(&d->lock);
    if (s != MG_OK) return s;
    *out = d->kernels[dtype];
    return MG_OK;
}

/* ---- buffers and launches ------------------------------------------------ */

mg_status mg_cl_temp(const char *fn, mg_cl_device_t *d, const void *host, size_t nbytes, cl_mem *out) {
    cl_int err;
    *out = mg_cl.clCreateBuffer(d->context, host ? CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE,
                                nbytes ? nbytes : 1, (void *)host, &err);
    if (err != CL_SUCCESS)
        return mg_fail(MG_ERR_NOMEM, "%s: cannot allocate %zu bytes of scratch on %s (OpenCL error %d)",
                       fn, nbytes, d->name, (int)err);
    return MG_OK;
}

void mg_cl_release(cl_mem mem) {
    if (mem) mg_cl.clReleaseMemObject(mem);
}

mg_status mg_cl_launch(const char *fn, mg_cl_device_t *d, const mg_cl_kernel_t *k, int dims,
                       const size_t *global, const size_t *local, int nargs, const mg_cl_arg_t *args) {
    for (int i = 0; i < nargs; i++) {
        cl_int err = mg_cl.clSetKernelArg(k->kernel, (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS) return mg_cl_error(fn, "clSetKernelArg", err);
    }
    size_t rounded[3];
    for (int i = 0; i < dims; i++) {
        if (global[i] == 0) return MG_OK;
        rounded[i] = (global[i] + local[i] - 1) / local[i] * local[i];
    }
    cl_int err = mg_cl.clEnqueueNDRangeKernel(d->queue, k->kernel, (cl_uint)dims, NULL, rounded, local,
                                              0, NULL, NULL);
    if (err != CL_SUCCESS) return mg_cl_error(fn, "clEnqueueNDRangeKernel", err);
    return MG_OK;
}
