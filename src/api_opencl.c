/* api_opencl.c - the OpenCL entry points (see mg.h): buffers, elementwise,
 * reductions, matmul, softmax. BN and the optimizers: api_opencl_nn.c.
 *
 * Each entry checks its arguments (dtype, sizes, that every buffer is on the
 * one device and large enough for what the kernel will touch), then enqueues
 * kernels of src/opencl/kernels.cl with the device lock held. */
#include <math.h>
#include <stdlib.h>

#include "api_opencl.h"

/* ---- shared checks ---------------------------------------------------------- */

mg_status mg_clapi_dtype(const char *fn, int dtype) {
    if (dtype != MG_F32 && dtype != MG_F64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtype %d is neither float32 (0) nor float64 (1)", fn, dtype);
    return MG_OK;
}

mg_status mg_clapi_buffer(const char *fn, const char *name, const mg_cl_buffer_t *buf, int device,
                          int64_t elems, size_t item) {
    if (!buf) return mg_fail(MG_ERR_ARG, "%s: %s is NULL", fn, name);
    if (buf->device != device)
        return mg_fail(MG_ERR_ARG, "%s: %s is on OpenCL device %d, not %d", fn, name, buf->device, device);
    if (elems < 0 || (uint64_t)elems > buf->nbytes / item)
        return mg_fail(MG_ERR_SHAPE, "%s: %s holds %zu bytes, too few for %lld elements of %zu bytes",
                       fn, name, buf->nbytes, (long long)elems, item);
    return MG_OK;
}

mg_status mg_clapi_begin(const char *fn, int dtype, const mg_cl_buffer_t *first, const char *name,
                         mg_cl_device_t **d, mg_cl_kernel_t **k) {
    TRY(mg_cl_ensure(fn));
    TRY(mg_clapi_dtype(fn, dtype));
    if (!first) return mg_fail(MG_ERR_ARG, "%s: %s is NULL", fn, name);
    TRY(mg_cl_get_device(fn, first->device, d));
    return mg_cl_get_kernels(fn, *d, dtype, k);
}

mg_status mg_clapi_count(const char *fn, int ndim, const int64_t *shape, int64_t *total) {
    if (ndim < 0 || ndim > MG_MAX_DIMS)
        return mg_fail(MG_ERR_SHAPE, "%s: ndim %d is not in [0, %d]", fn, ndim, MG_MAX_DIMS);
    if (ndim > 0 && !shape) return mg_fail(MG_ERR_ARG, "%s: shape is NULL", fn);
    *total = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return mg_fail(MG_ERR_SHAPE, "%s: negative size %lld on axis %d", fn, (long long)shape[d], d);
        if (shape[d] > 0 && *total > INT64_MAX / shape[d]) return mg_fail(MG_ERR_SHAPE, "%s: shape too large", fn);
        *total *= shape[d];
    }
    return MG_OK;
}

mg_status mg_clapi_span(const char *fn, const char *name, const mg_cl_buffer_t *buf, int device,
                        size_t item, int64_t offset, int ndim, const int64_t *shape, const int64_t *strides) {
    if (!buf) return mg_fail(MG_ERR_ARG, "%s: %s is NULL", fn, name);
    if (ndim > 0 && !strides) return mg_fail(MG_ERR_ARG, "%s: strides of %s are NULL", fn, name);
    if (offset < 0 || offset > INT64_MAX / 4)
        return mg_fail(MG_ERR_ARG, "%s: offset %lld of %s is out of range", fn, (long long)offset, name);
    int64_t lo = offset, hi = offset;
    for (int d = 0; d < ndim; d++) {
        /* each axis reaches less than 2^61 elements, so the sums cannot overflow */
        const int64_t limit = INT64_MAX / 4 / ndim / (shape[d] > 1 ? shape[d] - 1 : 1);
        if (strides[d] > limit || strides[d] < -limit)
            return mg_fail(MG_ERR_SHAPE, "%s: stride %lld of %s is too large", fn, (long long)strides[d], name);
        const int64_t reach = (shape[d] - 1) * strides[d];
        if (reach < 0) lo += reach;
        else hi += reach;
    }
    if (lo < 0) return mg_fail(MG_ERR_SHAPE, "%s: %s is read before its first element (index %lld)", fn, name, (long long)lo);
    return mg_clapi_buffer(fn, name, buf, device, hi + 1, item);
}

/* Work-items in a 1-D work-group for k: a power of two up to 256. */
size_t mg_clapi_local(const mg_cl_kernel_t *k, int64_t want) {
    size_t local = k->max_local < 256 ? k->max_local : 256;
    while (local > 1 && (int64_t)(local / 2) >= want) local /= 2;
    return local;
}

mg_status mg_clapi_launch_1d(const char *fn, mg_cl_device_t *d, const mg_cl_kernel_t *k, int64_t n,
                             int nargs, const mg_cl_arg_t *args) {
    const size_t global = (size_t)n, local = mg_clapi_local(k, n);
    pthread_mutex_lock(&d->lock);
    mg_status s = mg_cl_launch(fn, d, k, 1, &global, &local, nargs, args);
    pthread_mutex_unlock(&d->lock);
    return s;
}

/* ---- buffers ------------------------------------------------------------------ */

mg_status mg_cl_alloc(int device, size_t nbytes, mg_cl_buffer_t **out) {
    static const char fn[] = "mg_cl_alloc";
    mg_cl_device_t *d;
    TRY(mg_cl_get_device(fn, device, &d));
    if (!out) return mg_fail(MG_ERR_ARG, "%s: out is NULL", fn);
    if (nbytes == 0) return mg_fail(MG_ERR_ARG, "%s: nbytes must be > 0", fn);
    if (d->max_alloc && nbytes > d->max_alloc)
        return mg_fail(MG_ERR_NOMEM, "%s: %zu bytes is more than the largest buffer %s allows (%llu)",
                       fn, nbytes, d->name, (unsigned long long)d->max_alloc);
    mg_cl_buffer_t *buf = malloc(sizeof *buf);
    if (!buf) return mg_fail(MG_ERR_NOMEM, "%s: cannot allocate the buffer handle", fn);
    cl_int err;
    buf->mem = mg_cl.clCreateBuffer(d->context, CL_MEM_READ_WRITE, nbytes, NULL, &err);
    if (err != CL_SUCCESS) {
        free(buf);
        return mg_fail(MG_ERR_NOMEM, "%s: cannot allocate %zu bytes on %s (OpenCL error %d)", fn, nbytes,
                       d->name, (int)err);
    }
    buf->device = device;
    buf->nbytes = nbytes;
    *out = buf;
    return MG_OK;
}

mg_status mg_cl_free(mg_cl_buffer_t *buf) {
    if (!buf) return MG_OK;
    mg_cl.clReleaseMemObject(buf->mem);
    free(buf);
    return MG_OK;
}

mg_status mg_cl_buffer_size(const mg_cl_buffer_t *buf, size_t *nbytes, int *device) {
    if (!buf || !nbytes || !device) return mg_fail(MG_ERR_ARG, "mg_cl_buffer_size: NULL argument");
    *nbytes = buf->nbytes;
    *device = buf->device;
    return MG_OK;
}

static mg_status check_range(const char *fn, const char *name, const mg_cl_buffer_t *buf, size_t offset,
                             size_t nbytes) {
    if (!buf) return mg_fail(MG_ERR_ARG, "%s: %s is NULL", fn, name);
    if (offset > buf->nbytes || nbytes > buf->nbytes - offset)
        return mg_fail(MG_ERR_ARG, "%s: bytes [%zu, %zu + %zu) are outside %s (%zu bytes)", fn, offset,
                       offset, nbytes, name, buf->nbytes);
    return MG_OK;
}

mg_status mg_cl_write(mg_cl_buffer_t *dst, size_t dst_offset_bytes, const void *src, size_t nbytes) {
    static const char fn[] = "mg_cl_write";
    mg_cl_device_t *d;
    TRY(check_range(fn, "dst", dst, dst_offset_bytes, nbytes));
    if (nbytes == 0) return MG_OK;
    if (!src) return mg_fail(MG_ERR_ARG, "%s: src is NULL", fn);
    TRY(mg_cl_get_device(fn, dst->device, &d));
    cl_int err = mg_cl.clEnqueueWriteBuffer(d->queue, dst->mem, CL_TRUE, dst_offset_bytes, nbytes, src, 0,
                                            NULL, NULL);
    return err == CL_SUCCESS ? MG_OK : mg_cl_error(fn, "clEnqueueWriteBuffer", err);
}

mg_status mg_cl_read(const mg_cl_buffer_t *src, size_t src_offset_bytes, void *dst, size_t nbytes) {
    static const char fn[] = "mg_cl_read";
    mg_cl_device_t *d;
    TRY(check_range(fn, "src", src, src_offset_bytes, nbytes));
    if (nbytes == 0) return MG_OK;
    if (!dst) return mg_fail(MG_ERR_ARG, "%s: dst is NULL", fn);
    TRY(mg_cl_get_device(fn, src->device, &d));
    cl_int err = mg_cl.clEnqueueReadBuffer(d->queue, src->mem, CL_TRUE, src_offset_bytes, nbytes, dst, 0,
                                           NULL, NULL);
    return err == CL_SUCCESS ? MG_OK : mg_cl_error(fn, "clEnqueueReadBuffer", err);
}

mg_status mg_cl_copy(const mg_cl_buffer_t *src, size_t src_offset_bytes, mg_cl_buffer_t *dst,
                     size_t dst_offset_bytes, size_t nbytes) {
    static const char fn[] = "mg_cl_copy";
    mg_cl_device_t *d;
    TRY(check_range(fn, "src", src, src_offset_bytes, nbytes));
    TRY(check_range(fn, "dst", dst, dst_offset_bytes, nbytes));
    if (src->device != dst->device)
        return mg_fail(MG_ERR_ARG, "%s: src is on device %d and dst on device %d", fn, src->device, dst->device);
    if (src == dst && src_offset_bytes < dst_offset_bytes + nbytes && dst_offset_bytes < src_offset_bytes + nbytes)
        return mg_fail(MG_ERR_ARG, "%s: the source and destination ranges overlap", fn);
    if (nbytes == 0) return MG_OK;
    TRY(mg_cl_get_device(fn, src->device, &d));
    cl_int err = mg_cl.clEnqueueCopyBuffer(d->queue, src->mem, dst->mem, src_offset_bytes, dst_offset_bytes,
                                           nbytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? MG_OK : mg_cl_error(fn, "clEnqueueCopyBuffer", err);
}

mg_status mg_cl_fill(int dtype, mg_cl_buffer_t *buf, int64_t n, double value) {
    static const char fn[] = "mg_cl_fill";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin(fn, dtype, buf, "buf", &d, &k));
    if (n < 0) return mg_fail(MG_ERR_ARG, "%s: negative length %lld", fn, (long long)n);
    TRY(mg_clapi_buffer(fn, "buf", buf, buf->device, n, ITEM(dtype)));
    mg_cl_real_t v = mg_cl_real(dtype, value);
    return LAUNCH_1D(fn, d, &k[MG_CLK_fill], n, MG_CL_ARG(n), MG_CL_ARG(buf->mem), MG_CL_REAL(dtype, v));
}

mg_status mg_cl_finish(int device) {
    mg_cl_device_t *d;
    TRY(mg_cl_get_device("mg_cl_finish", device, &d));
    cl_int err = mg_cl.clFinish(d->queue);
    return err == CL_SUCCESS ? MG_OK : mg_cl_error("mg_cl_finish", "clFinish", err);
}

/* ---- elementwise ---------------------------------------------------------------- */

int mg_clapi_merge_axes(int ndim, const int64_t *shape, int narrays, const int64_t *const *strides,
                        int64_t *shape_out, int64_t (*strides_out)[MG_MAX_DIMS]) {
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        int merge = n > 0;
        for (int j = 0; j < narrays && merge; j++) merge = strides_out[j][n - 1] == strides[j][d] * shape[d];
        if (merge) shape_out[n - 1] *= shape[d];
        else shape_out[n++] = shape[d];
        for (int j = 0; j < narrays; j++) strides_out[j][n - 1] = strides[j][d];
    }
    if (n == 0) {
        shape_out[0] = 1;
        for (int j = 0; j < narrays; j++) strides_out[j][0] = 0;
        n = 1;
    }
    return n;
}

mg_status mg_cl_binary(int op, int dtype, int ndim, const int64_t *shape,
                       const mg_cl_buffer_t *a, int64_t a_offset, const int64_t *a_strides,
                       const mg_cl_buffer_t *b, int64_t b_offset, const int64_t *b_strides,
                       mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_binary";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t n;
    TRY(mg_clapi_begin(fn, dtype, out, "out", &d, &k));
    if (op < 0 || op > MG_OP_MIN) return mg_fail(MG_ERR_ARG, "%s: unknown op %d", fn, op);
    TRY(mg_clapi_count(fn, ndim, shape, &n));
    if (n == 0) return MG_OK;
    const size_t item = ITEM(dtype);
    TRY(mg_clapi_span(fn, "a", a, out->device, item, a_offset, ndim, shape, a_strides));
    TRY(mg_clapi_span(fn, "b", b, out->device, item, b_offset, ndim, shape, b_strides));
    TRY(mg_clapi_buffer(fn, "out", out, out->device, n, item));
    int64_t merged_shape[MG_MAX_DIMS], merged[2][MG_MAX_DIMS];
    const int64_t *const strides[2] = {a_strides, b_strides};
    const int m = mg_clapi_merge_axes(ndim, shape, 2, strides, merged_shape, merged);
    if (m == 1 && (n == 1 || (merged[0][0] == 1 && merged[1][0] == 1)))
        return LAUNCH_1D(fn, d, &k[MG_CLK_binary_contig], n, MG_CL_ARG(op), MG_CL_ARG(n), MG_CL_ARG(a->mem),
                         MG_CL_ARG(a_offset), MG_CL_ARG(b->mem), MG_CL_ARG(b_offset), MG_CL_ARG(out->mem));
    int64_t meta[3 * MG_MAX_DIMS];
    for (int i = 0; i < m; i++) meta[i] = merged_shape[i], meta[m + i] = merged[0][i], meta[2 * m + i] = merged[1][i];
    cl_mem meta_mem;
    TRY(mg_cl_temp(fn, d, meta, 3 * (size_t)m * sizeof *meta, &meta_mem));
    mg_status s = LAUNCH_1D(fn, d, &k[MG_CLK_binary_strided], n, MG_CL_ARG(op), MG_CL_ARG(n), MG_CL_ARG(m),
                            MG_CL_ARG(meta_mem), MG_CL_ARG(a->mem), MG_CL_ARG(a_offset), MG_CL_ARG(b->mem),
                            MG_CL_ARG(b_offset), MG_CL_ARG(out->mem));
    mg_cl_release(meta_mem);
    return s;
}

mg_status mg_clapi_begin_map(const char *fn, int dtype, int64_t n, const mg_cl_buffer_t *in0,
                             const mg_cl_buffer_t *in1, const mg_cl_buffer_t *out, mg_cl_device_t **d,
                             mg_cl_kernel_t **k) {
    TRY(mg_clapi_begin(fn, dtype, out, "out", d, k));
    if (n < 0) return mg_fail(MG_ERR_ARG, "%s: negative length %lld", fn, (long long)n);
    TRY(mg_clapi_buffer(fn, "out", out, out->device, n, ITEM(dtype)));
    TRY(mg_clapi_buffer(fn, in1 ? "saved or x" : "x", in0, out->device, n, ITEM(dtype)));
    if (in1) TRY(mg_clapi_buffer(fn, "grad", in1, out->device, n, ITEM(dtype)));
    return MG_OK;
}

mg_status mg_cl_unary(int op, int dtype, int64_t n, const mg_cl_buffer_t *x, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_unary";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin_map(fn, dtype, n, x, NULL, out, &d, &k));
    if (op < 0 || op > 7) return mg_fail(MG_ERR_ARG, "%s: unknown op %d", fn, op);
    return LAUNCH_1D(fn, d, &k[MG_CLK_unary], n, MG_CL_ARG(op), MG_CL_ARG(n), MG_CL_ARG(x->mem),
                     MG_CL_ARG(out->mem));
}

mg_status mg_cl_unary_backward(int op, int dtype, int64_t n, const mg_cl_buffer_t *saved,
                               const mg_cl_buffer_t *grad, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_unary_backward";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin_map(fn, dtype, n, saved, grad, out, &d, &k));
    if (op < 0 || op > 4) return mg_fail(MG_ERR_ARG, "%s: unknown op %d", fn, op);
    return LAUNCH_1D(fn, d, &k[MG_CLK_unary_backward], n, MG_CL_ARG(op), MG_CL_ARG(n),
                     MG_CL_ARG(saved->mem), MG_CL_ARG(grad->mem), MG_CL_ARG(out->mem));
}

static mg_status check_bounds(const char *fn, double lo, double hi) {
    if (isnan(lo) || isnan(hi) || lo > hi)
        return mg_fail(MG_ERR_ARG, "%s: bounds [%g, %g] are not an interval", fn, lo, hi);
    return MG_OK;
}

mg_status mg_cl_clamp(int dtype, int64_t n, const mg_cl_buffer_t *x, double lo, double hi,
                      mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_clamp";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin_map(fn, dtype, n, x, NULL, out, &d, &k));
    TRY(check_bounds(fn, lo, hi));
    mg_cl_real_t l = mg_cl_real(dtype, lo), h = mg_cl_real(dtype, hi);
    return LAUNCH_1D(fn, d, &k[MG_CLK_clamp_forward], n, MG_CL_ARG(n), MG_CL_ARG(x->mem), MG_CL_REAL(dtype, l),
                     MG_CL_REAL(dtype, h), MG_CL_ARG(out->mem));
}

mg_status mg_cl_clamp_backward(int dtype, int64_t n, const mg_cl_buffer_t *x, const mg_cl_buffer_t *grad,
                               double lo, double hi, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_clamp_backward";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin_map(fn, dtype, n, x, grad, out, &d, &k));
    TRY(check_bounds(fn, lo, hi));
    mg_cl_real_t l = mg_cl_real(dtype, lo), h = mg_cl_real(dtype, hi);
    return LAUNCH_1D(fn, d, &k[MG_CLK_clamp_backward], n, MG_CL_ARG(n), MG_CL_ARG(x->mem),
                     MG_CL_ARG(grad->mem), MG_CL_REAL(dtype, l), MG_CL_REAL(dtype, h), MG_CL_ARG(out->mem));
}

/* ---- reductions ------------------------------------------------------------------
 * M outputs of R values each. One work-item per output when the values are
 * few (R <= 32) or when neighbouring outputs are neighbours in memory and
 * there are enough of them; otherwise work-groups that reduce as a tree, G
 * of them per output when the outputs are few (then a second pass adds the
 * G partials of each output in order). */

#define REDUCE_ITEM_VALUES 32
#define REDUCE_TARGET_GROUPS 256

mg_status mg_cl_reduce(int op, int dtype, int ndim, const int64_t *shape, const mg_cl_buffer_t *x,
                       int64_t x_offset, const int64_t *strides, unsigned reduce_mask, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_reduce";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t total;
    TRY(mg_clapi_begin(fn, dtype, out, "out", &d, &k));
    if (op < 0 || op > 2) return mg_fail(MG_ERR_ARG, "%s: unknown op %d", fn, op);
    TRY(mg_clapi_count(fn, ndim, shape, &total));
    if (ndim < 32 && reduce_mask >> ndim)
        return mg_fail(MG_ERR_ARG, "%s: reduce_mask 0x%x names an axis >= ndim %d", fn, reduce_mask, ndim);
    int64_t kshape[MG_MAX_DIMS], kstride[MG_MAX_DIMS], rshape[MG_MAX_DIMS], rstride[MG_MAX_DIMS];
    int nk = 0, nr = 0;
    int64_t M = 1, R = 1;
    for (int a = 0; a < ndim; a++) {
        if (reduce_mask >> a & 1) rshape[nr] = shape[a], rstride[nr++] = strides ? strides[a] : 0, R *= shape[a];
        else kshape[nk] = shape[a], kstride[nk++] = strides ? strides[a] : 0, M *= shape[a];
    }
    const size_t item = ITEM(dtype);
    TRY(mg_clapi_buffer(fn, "out", out, out->device, M, item));
    if (M == 0) return MG_OK;
    if (R == 0) {
        if (op != 0) return mg_fail(MG_ERR_SHAPE, "%s: max/min over an empty axis", fn);
        return mg_cl_fill(dtype, out, M, 0.0);
    }
    TRY(mg_clapi_span(fn, "x", x, out->device, item, x_offset, ndim, shape, strides));

    int64_t meta[4 * MG_MAX_DIMS], merged[1][MG_MAX_DIMS], mshape[MG_MAX_DIMS];
    const int64_t *kst[1] = {kstride}, *rst[1] = {rstride};
    const int mk = mg_clapi_merge_axes(nk, kshape, 1, kst, mshape, merged);
    for (int i = 0; i < mk; i++) meta[i] = mshape[i], meta[mk + i] = merged[0][i];
    const int kept_unit = merged[0][mk - 1] == 1 || merged[0][mk - 1] == -1;
    const int mr = mg_clapi_merge_axes(nr, rshape, 1, rst, mshape, merged);
    for (int i = 0; i < mr; i++) meta[2 * mk + i] = mshape[i], meta[2 * mk + mr + i] = merged[0][i];
    cl_mem meta_mem, partial = NULL;
    TRY(mg_cl_temp(fn, d, meta, 2 * (size_t)(mk + mr) * sizeof *meta, &meta_mem));

    mg_status s;
    pthread_mutex_lock(&d->lock);
    if (R <= REDUCE_ITEM_VALUES || (kept_unit && M >= REDUCE_TARGET_GROUPS)) {
        const mg_cl_kernel_t *kr = &k[MG_CLK_reduce_items];
        const size_t global = (size_t)M, local = mg_clapi_local(kr, M);
        s = MG_CL_LAUNCH(fn, d, kr, 1, &global, &local, MG_CL_ARG(op), MG_CL_ARG(M), MG_CL_ARG(R),
                         MG_CL_ARG(mk), MG_CL_ARG(mr), MG_CL_ARG(meta_mem), MG_CL_ARG(x->mem),
                         MG_CL_ARG(x_offset), MG_CL_ARG(out->mem));
    } else {
        const mg_cl_kernel_t *kg = &k[MG_CLK_reduce_groups];
        const size_t L = mg_clapi_local(kg, R);
        int64_t G = 1;
        if (M < REDUCE_TARGET_GROUPS) {
            G = (R + (int64_t)L * 8 - 1) / ((int64_t)L * 8);       /* at least 8 values per item */
            if (G > REDUCE_TARGET_GROUPS / M) G = REDUCE_TARGET_GROUPS / M;
            if (G < 1) G = 1;
        }
        const int64_t chunk = (R + G - 1) / G;
        G = (R + chunk - 1) / chunk;
        s = G > 1 ? mg_cl_temp(fn, d, NULL, (size_t)(M * G) * ACC_ITEM(d), &partial) : MG_OK;
        const size_t global = (size_t)(M * G) * L;
        if (s == MG_OK)
            s = MG_CL_LAUNCH(fn, d, kg, 1, &global, &L, MG_CL_ARG(op), MG_CL_ARG(M), MG_CL_ARG(R),
                             MG_CL_ARG(G), MG_CL_ARG(chunk), MG_CL_ARG(mk), MG_CL_ARG(mr), MG_CL_ARG(meta_mem),
                             MG_CL_ARG(x->mem), MG_CL_ARG(x_offset), MG_CL_ARG(partial), MG_CL_ARG(out->mem),
                             MG_CL_LOCAL(L * ACC_ITEM(d)));
        if (s == MG_OK && G > 1) {
            const mg_cl_kernel_t *kp = &k[MG_CLK_reduce_partials];
            const size_t pglobal = (size_t)M, plocal = mg_clapi_local(kp, M);
            s = MG_CL_LAUNCH(fn, d, kp, 1, &pglobal, &plocal, MG_CL_ARG(op), MG_CL_ARG(M), MG_CL_ARG(G),
                             MG_CL_ARG(partial), MG_CL_ARG(out->mem));
        }
    }
    pthread_mutex_unlock(&d->lock);
    mg_cl_release(meta_mem);
    mg_cl_release(partial);
    return s;
}

/* ---- matmul ------------------------------------------------------------------------ */

mg_status mg_cl_matmul(int dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                       const mg_cl_buffer_t *a, int64_t a_offset, int64_t a_batch_stride,
                       int64_t a_row_stride, int64_t a_col_stride,
                       const mg_cl_buffer_t *b, int64_t b_offset, int64_t b_batch_stride,
                       int64_t b_row_stride, int64_t b_col_stride,
                       mg_cl_buffer_t *c, int64_t c_offset, int64_t c_batch_stride,
                       int64_t c_row_stride, int accumulate) {
    static const char fn[] = "mg_cl_matmul";
    mg_cl_device_t *d;
    mg_cl_kernel_t *kern;
    TRY(mg_clapi_begin(fn, dtype, c, "c", &d, &kern));
    if (batch < 0 || m < 0 || n < 0 || k < 0)
        return mg_fail(MG_ERR_SHAPE, "%s: negative size in batch=%lld m=%lld n=%lld k=%lld", fn,
                       (long long)batch, (long long)m, (long long)n, (long long)k);
    if (accumulate != 0 && accumulate != 1) return mg_fail(MG_ERR_ARG, "%s: accumulate must be 0 or 1", fn);
    if (batch == 0 || m == 0 || n == 0) return MG_OK;
    const size_t item = ITEM(dtype);
    const int64_t c_shape[3] = {batch, m, n}, c_strides[3] = {c_batch_stride, c_row_stride, 1};
    TRY(mg_clapi_span(fn, "c", c, c->device, item, c_offset, 3, c_shape, c_strides));
    if ((m > 1 && c_row_stride < n) || (batch > 1 && c_batch_stride < (m - 1) * c_row_stride + n))
        return mg_fail(MG_ERR_ARG, "%s: c's rows or batches overlap (row stride %lld, batch stride %lld)", fn,
                       (long long)c_row_stride, (long long)c_batch_stride);
    if (k > 0) {
        const int64_t a_shape[3] = {batch, m, k}, a_strides[3] = {a_batch_stride, a_row_stride, a_col_stride};
        const int64_t b_shape[3] = {batch, k, n}, b_strides[3] = {b_batch_stride, b_row_stride, b_col_stride};
        TRY(mg_clapi_span(fn, "a", a, c->device, item, a_offset, 3, a_shape, a_strides));
        TRY(mg_clapi_span(fn, "b", b, c->device, item, b_offset, 3, b_shape, b_strides));
    } else if (!a || !b) {
        return mg_fail(MG_ERR_ARG, "%s: a or b is NULL", fn);
    }
    const mg_cl_kernel_t *km = &kern[MG_CLK_matmul];
    const size_t ts = d->matmul_tile, rows = ts / 4;
    if (km->max_local < ts * rows)
        return mg_fail(MG_ERR_BACKEND, "%s: %s runs at most %zu work-items per group, the kernel needs %zu",
                       fn, d->name, km->max_local, ts * rows);
    const size_t global[3] = {(size_t)n, ((size_t)m + ts - 1) / ts * rows, (size_t)batch};
    const size_t local[3] = {ts, rows, 1};
    pthread_mutex_lock(&d->lock);
    mg_status s = MG_CL_LAUNCH(fn, d, km, 3, global, local, MG_CL_ARG(m), MG_CL_ARG(n), MG_CL_ARG(k),
                               MG_CL_ARG(a->mem), MG_CL_ARG(a_offset), MG_CL_ARG(a_batch_stride),
                               MG_CL_ARG(a_row_stride), MG_CL_ARG(a_col_stride), MG_CL_ARG(b->mem),
                               MG_CL_ARG(b_offset), MG_CL_ARG(b_batch_stride), MG_CL_ARG(b_row_stride),
                               MG_CL_ARG(b_col_stride), MG_CL_ARG(c->mem), MG_CL_ARG(c_offset),
                               MG_CL_ARG(c_batch_stride), MG_CL_ARG(c_row_stride), MG_CL_ARG(accumulate));
    pthread_mutex_unlock(&d->lock);
    return s;
}

/* ---- softmax ----------------------------------------------------------------------- */

static mg_status softmax_launch(const char *fn, int kernel, int dtype, int64_t rows, int64_t cols,
                                const mg_cl_buffer_t *in0, const mg_cl_buffer_t *in1, int is_log,
                                mg_cl_buffer_t *out) {
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin(fn, dtype, out, "out", &d, &k));
    if (rows < 0 || cols < 0 || (cols > 0 && rows > INT64_MAX / cols))
        return mg_fail(MG_ERR_SHAPE, "%s: bad shape (%lld, %lld)", fn, (long long)rows, (long long)cols);
    if (is_log != 0 && is_log != 1) return mg_fail(MG_ERR_ARG, "%s: is_log must be 0 or 1", fn);
    const size_t item = ITEM(dtype);
    TRY(mg_clapi_buffer(fn, "out", out, out->device, rows * cols, item));
    TRY(mg_clapi_buffer(fn, in1 ? "y" : "x", in0, out->device, rows * cols, item));
    if (in1) TRY(mg_clapi_buffer(fn, "grad", in1, out->device, rows * cols, item));
    if (rows * cols == 0) return MG_OK;
    const mg_cl_kernel_t *ks = &k[kernel];
    const size_t local = mg_clapi_local(ks, cols), global = (size_t)rows * local;
    pthread_mutex_lock(&d->lock);
    mg_status s = in1
        ? MG_CL_LAUNCH(fn, d, ks, 1, &global, &local, MG_CL_ARG(cols), MG_CL_ARG(in0->mem), MG_CL_ARG(in1->mem),
                       MG_CL_ARG(is_log), MG_CL_ARG(out->mem), MG_CL_LOCAL(local * ACC_ITEM(d)))
        : MG_CL_LAUNCH(fn, d, ks, 1, &global, &local, MG_CL_ARG(cols), MG_CL_ARG(in0->mem), MG_CL_ARG(is_log),
                       MG_CL_ARG(out->mem), MG_CL_LOCAL(local * ACC_ITEM(d)));
    pthread_mutex_unlock(&d->lock);
    return s;
}

mg_status mg_cl_softmax(int dtype, int64_t rows, int64_t cols, const mg_cl_buffer_t *x, int is_log,
                        mg_cl_buffer_t *y) {
    return softmax_launch("mg_cl_softmax", MG_CLK_softmax, dtype, rows, cols, x, NULL, is_log, y);
}

mg_status mg_cl_softmax_backward(int dtype, int64_t rows, int64_t cols, const mg_cl_buffer_t *y,
                                 const mg_cl_buffer_t *grad, int is_log, mg_cl_buffer_t *dx) {
    return softmax_launch("mg_cl_softmax_backward", MG_CLK_softmax_backward, dtype, rows, cols, y, grad,
                          is_log, dx);
}
