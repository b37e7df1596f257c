/* api_opencl_data.c - the OpenCL entry points of strided copies and casts,
 * comparisons, where, pow and the class-index gather/scatter (see mg.h;
 * the kernels and their math are in src/opencl/kernels_data.cl).
 *
 * Strided entries merge the axes that every operand walks as one (so a
 * contiguous operand becomes one long axis), copy the merged shape and
 * strides into a small constant buffer and launch one work-item per element. */
#include <stdlib.h>

#include "api_opencl.h"

static size_t item_of(int dtype) { return dtype == MG_CL_BOOL ? 1 : dtype == MG_F32 ? 4 : 8; }

static const char *dtype_name(int dtype) {
    static const char *const names[] = {"float32", "float64", "bool", "int64"};
    return names[dtype];
}

/* Merges the axes of shape over narrays stride arrays, writes meta = (shape,
 * strides[0], strides[1], ...) of the merged axes into a constant buffer and
 * returns their number in *m. */
static mg_status strided_meta(const char *fn, mg_cl_device_t *d, int ndim, const int64_t *shape, int narrays,
                              const int64_t *const *strides, int *m, cl_mem *meta_mem) {
    int64_t merged_shape[MG_MAX_DIMS], merged[4][MG_MAX_DIMS], meta[5 * MG_MAX_DIMS];
    *m = mg_clapi_merge_axes(ndim, shape, narrays, strides, merged_shape, merged);
    for (int i = 0; i < *m; i++) {
        meta[i] = merged_shape[i];
        for (int j = 0; j < narrays; j++) meta[(j + 1) * *m + i] = merged[j][i];
    }
    return mg_cl_temp(fn, d, meta, (size_t)(narrays + 1) * (size_t)*m * sizeof *meta, meta_mem);
}

/* ---- strided copy and cast ------------------------------------------------------ */

/* No element of dst is written twice: sorted by |stride|, each axis longer
 * than 1 steps past everything the shorter-strided axes reach. */
static mg_status check_no_self_overlap(const char *fn, int ndim, const int64_t *shape, const int64_t *strides) {
    int64_t size[MG_MAX_DIMS], step[MG_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] > 1) {
            const int64_t s = strides[d] < 0 ? -strides[d] : strides[d];
            int at = n++;
            for (; at > 0 && step[at - 1] > s; at--) step[at] = step[at - 1], size[at] = size[at - 1];
            step[at] = s, size[at] = shape[d];
        }
    int64_t reach = 0;   /* the farthest element the axes so far reach */
    for (int i = 0; i < n; i++) {
        if (step[i] <= reach)
            return mg_fail(MG_ERR_ARG, "%s: dst strides write some elements more than once", fn);
        reach += step[i] * (size[i] - 1);
    }
    return MG_OK;
}

/* [*lo, *hi]: the bytes an offset + strides view of shape touches (sizes > 0). */
static void extent(int64_t offset, int ndim, const int64_t *shape, const int64_t *strides, size_t item,
                   int64_t *lo, int64_t *hi) {
    *lo = *hi = offset;
    for (int d = 0; d < ndim; d++) {
        const int64_t reach = (shape[d] - 1) * strides[d];
        if (reach < 0) *lo += reach;
        else *hi += reach;
    }
    *lo *= (int64_t)item;
    *hi = (*hi + 1) * (int64_t)item - 1;
}

/* The program and kernel that convert src_dtype into dst_dtype. */
static void copy_kernel(int src_dtype, int dst_dtype, int *program, int *kernel) {
    const int src_float = src_dtype <= MG_F64, dst_float = dst_dtype <= MG_F64;
    *program = MG_F32;
    if (src_dtype == dst_dtype) {
        *kernel = src_float ? MG_CLK_copy_real : src_dtype == MG_CL_BOOL ? MG_CLK_copy_u8 : MG_CLK_copy_i64;
        if (src_float) *program = src_dtype;
    } else if (src_float && dst_float) {
        *program = MG_F64;
        *kernel = src_dtype == MG_F32 ? MG_CLK_cast_f32_to_real : MG_CLK_cast_real_to_f32;
    } else if (dst_float) {
        *program = dst_dtype;
        *kernel = src_dtype == MG_CL_BOOL ? MG_CLK_cast_u8_to_real : MG_CLK_cast_i64_to_real;
    } else if (src_float) {
        *program = src_dtype;
        *kernel = dst_dtype == MG_CL_BOOL ? MG_CLK_cast_real_to_u8 : MG_CLK_cast_real_to_i64;
    } else {
        *kernel = src_dtype == MG_CL_BOOL ? MG_CLK_cast_u8_to_i64 : MG_CLK_cast_i64_to_u8;
    }
}

mg_status mg_cl_copy_strided(int ndim, const int64_t *shape,
                             int src_dtype, const mg_cl_buffer_t *src, int64_t src_offset,
                             const int64_t *src_strides,
                             int dst_dtype, mg_cl_buffer_t *dst, int64_t dst_offset,
                             const int64_t *dst_strides, int accumulate) {
    static const char fn[] = "mg_cl_copy_strided";
    TRY(mg_cl_ensure(fn));
    if (src_dtype < MG_F32 || src_dtype > MG_CL_INT64 || dst_dtype < MG_F32 || dst_dtype > MG_CL_INT64)
        return mg_fail(MG_ERR_DTYPE, "%s: dtypes %d -> %d: each must be float32 (0), float64 (1), bool (2) "
                       "or int64 (3)", fn, src_dtype, dst_dtype);
    if (!dst) return mg_fail(MG_ERR_ARG, "%s: dst is NULL", fn);
    if (accumulate != 0 && accumulate != 1) return mg_fail(MG_ERR_ARG, "%s: accumulate must be 0 or 1", fn);
    if (accumulate && (src_dtype != dst_dtype || dst_dtype > MG_F64))
        return mg_fail(MG_ERR_DTYPE, "%s: accumulate adds float into float of one dtype, not %s into %s", fn,
                       dtype_name(src_dtype), dtype_name(dst_dtype));
    int64_t n;
    TRY(mg_clapi_count(fn, ndim, shape, &n));
    int program, kernel;
    copy_kernel(src_dtype, dst_dtype, &program, &kernel);
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_cl_get_device(fn, dst->device, &d));
    TRY(mg_cl_get_kernels(fn, d, program, &k));   /* float64 on either side: the float64 program */
    if (n == 0) return MG_OK;
    const size_t src_item = item_of(src_dtype), dst_item = item_of(dst_dtype);
    TRY(mg_clapi_span(fn, "src", src, dst->device, src_item, src_offset, ndim, shape, src_strides));
    TRY(mg_clapi_span(fn, "dst", dst, dst->device, dst_item, dst_offset, ndim, shape, dst_strides));
    TRY(check_no_self_overlap(fn, ndim, shape, dst_strides));
    if (src == dst) {
        int64_t slo, shi, dlo, dhi;
        extent(src_offset, ndim, shape, src_strides, src_item, &slo, &shi);
        extent(dst_offset, ndim, shape, dst_strides, dst_item, &dlo, &dhi);
        if (slo <= dhi && dlo <= shi) return mg_fail(MG_ERR_ARG, "%s: src and dst overlap in one buffer", fn);
    }
    const int64_t *const strides[2] = {dst_strides, src_strides};
    int m;
    cl_mem meta;
    TRY(strided_meta(fn, d, ndim, shape, 2, strides, &m, &meta));
    mg_status s = LAUNCH_1D(fn, d, &k[kernel], n, MG_CL_ARG(n), MG_CL_ARG(m), MG_CL_ARG(meta),
                            MG_CL_ARG(src->mem), MG_CL_ARG(src_offset), MG_CL_ARG(dst->mem),
                            MG_CL_ARG(dst_offset), MG_CL_ARG(accumulate));
    mg_cl_release(meta);
    return s;
}

/* ---- comparisons and where ------------------------------------------------------- */

mg_status mg_cl_compare(int op, int dtype, int ndim, const int64_t *shape,
                        const mg_cl_buffer_t *a, int64_t a_offset, const int64_t *a_strides,
                        const mg_cl_buffer_t *b, int64_t b_offset, const int64_t *b_strides,
                        mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_compare";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t n;
    TRY(mg_clapi_begin(fn, dtype, out, "out", &d, &k));
    if (op < MG_CMP_EQ || op > MG_CMP_GE) return mg_fail(MG_ERR_ARG, "%s: unknown comparison %d", fn, op);
    TRY(mg_clapi_count(fn, ndim, shape, &n));
    TRY(mg_clapi_buffer(fn, "out", out, out->device, n, 1));
    if (n == 0) return MG_OK;
    TRY(mg_clapi_span(fn, "a", a, out->device, ITEM(dtype), a_offset, ndim, shape, a_strides));
    TRY(mg_clapi_span(fn, "b", b, out->device, ITEM(dtype), b_offset, ndim, shape, b_strides));
    const int64_t *const strides[2] = {a_strides, b_strides};
    int m;
    cl_mem meta;
    TRY(strided_meta(fn, d, ndim, shape, 2, strides, &m, &meta));
    mg_status s = LAUNCH_1D(fn, d, &k[MG_CLK_compare], n, MG_CL_ARG(op), MG_CL_ARG(n), MG_CL_ARG(m),
                            MG_CL_ARG(meta), MG_CL_ARG(a->mem), MG_CL_ARG(a_offset), MG_CL_ARG(b->mem),
                            MG_CL_ARG(b_offset), MG_CL_ARG(out->mem));
    mg_cl_release(meta);
    return s;
}

mg_status mg_cl_where(int dtype, int ndim, const int64_t *shape,
                      const mg_cl_buffer_t *cond, int64_t cond_offset, const int64_t *cond_strides,
                      const mg_cl_buffer_t *a, int64_t a_offset, const int64_t *a_strides,
                      const mg_cl_buffer_t *b, int64_t b_offset, const int64_t *b_strides,
                      mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_where";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t n;
    TRY(mg_clapi_begin(fn, dtype, out, "out", &d, &k));
    TRY(mg_clapi_count(fn, ndim, shape, &n));
    const size_t item = ITEM(dtype);
    TRY(mg_clapi_buffer(fn, "out", out, out->device, n, item));
    if (n == 0) return MG_OK;
    TRY(mg_clapi_span(fn, "cond", cond, out->device, 1, cond_offset, ndim, shape, cond_strides));
    TRY(mg_clapi_span(fn, "a", a, out->device, item, a_offset, ndim, shape, a_strides));
    TRY(mg_clapi_span(fn, "b", b, out->device, item, b_offset, ndim, shape, b_strides));
    const int64_t *const strides[3] = {cond_strides, a_strides, b_strides};
    int m;
    cl_mem meta;
    TRY(strided_meta(fn, d, ndim, shape, 3, strides, &m, &meta));
    mg_status s = LAUNCH_1D(fn, d, &k[MG_CLK_where_select], n, MG_CL_ARG(n), MG_CL_ARG(m), MG_CL_ARG(meta),
                            MG_CL_ARG(cond->mem), MG_CL_ARG(cond_offset), MG_CL_ARG(a->mem),
                            MG_CL_ARG(a_offset), MG_CL_ARG(b->mem), MG_CL_ARG(b_offset), MG_CL_ARG(out->mem));
    mg_cl_release(meta);
    return s;
}

/* ---- pow ------------------------------------------------------------------------------ */

mg_status mg_cl_pow_scalar(int dtype, int64_t n, const mg_cl_buffer_t *x, double p, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_pow_scalar";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin_map(fn, dtype, n, x, NULL, out, &d, &k));
    mg_cl_real_t e = mg_cl_real(dtype, p);
    return LAUNCH_1D(fn, d, &k[MG_CLK_pow_scalar], n, MG_CL_ARG(n), MG_CL_ARG(x->mem), MG_CL_REAL(dtype, e),
                     MG_CL_ARG(out->mem));
}

mg_status mg_cl_pow_scalar_backward(int dtype, int64_t n, const mg_cl_buffer_t *x, const mg_cl_buffer_t *grad,
                                    double p, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_pow_scalar_backward";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin_map(fn, dtype, n, x, grad, out, &d, &k));
    mg_cl_real_t e = mg_cl_real(dtype, p);
    return LAUNCH_1D(fn, d, &k[MG_CLK_pow_scalar_backward], n, MG_CL_ARG(n), MG_CL_ARG(x->mem),
                     MG_CL_ARG(grad->mem), MG_CL_REAL(dtype, e), MG_CL_ARG(out->mem));
}

mg_status mg_cl_pow(int dtype, int64_t n, const mg_cl_buffer_t *x, const mg_cl_buffer_t *y,
                    mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_pow";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    TRY(mg_clapi_begin_map(fn, dtype, n, x, NULL, out, &d, &k));
    TRY(mg_clapi_buffer(fn, "y", y, out->device, n, ITEM(dtype)));
    return LAUNCH_1D(fn, d, &k[MG_CLK_pow_tensor], n, MG_CL_ARG(n), MG_CL_ARG(x->mem), MG_CL_ARG(y->mem),
                     MG_CL_ARG(out->mem));
}

/* ---- class indices ---------------------------------------------------------------------- */

static mg_status check_rows_classes(const char *fn, int64_t rows, int64_t classes, int64_t *count) {
    if (rows < 0 || classes < 0)
        return mg_fail(MG_ERR_SHAPE, "%s: negative size (rows %lld, classes %lld)", fn, (long long)rows,
                       (long long)classes);
    const int64_t shape[2] = {rows, classes};
    return mg_clapi_count(fn, 2, shape, count);
}

mg_status mg_cl_gather_classes(int dtype, int64_t rows, int64_t classes, const mg_cl_buffer_t *x,
                               const mg_cl_buffer_t *index, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_gather_classes";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t count;
    TRY(mg_clapi_begin(fn, dtype, out, "out", &d, &k));
    TRY(check_rows_classes(fn, rows, classes, &count));
    TRY(mg_clapi_buffer(fn, "out", out, out->device, rows, ITEM(dtype)));
    TRY(mg_clapi_buffer(fn, "x", x, out->device, count, ITEM(dtype)));
    TRY(mg_clapi_buffer(fn, "index", index, out->device, rows, sizeof(int64_t)));
    return LAUNCH_1D(fn, d, &k[MG_CLK_gather_classes], rows, MG_CL_ARG(rows), MG_CL_ARG(classes),
                     MG_CL_ARG(x->mem), MG_CL_ARG(index->mem), MG_CL_ARG(out->mem));
}

mg_status mg_cl_scatter_classes(int dtype, int64_t rows, int64_t classes, const mg_cl_buffer_t *values,
                                int64_t values_stride, const mg_cl_buffer_t *index, mg_cl_buffer_t *dx) {
    static const char fn[] = "mg_cl_scatter_classes";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t count;
    TRY(mg_clapi_begin(fn, dtype, dx, "dx", &d, &k));
    TRY(check_rows_classes(fn, rows, classes, &count));
    if (values_stride < 0) return mg_fail(MG_ERR_ARG, "%s: values_stride %lld < 0", fn, (long long)values_stride);
    TRY(mg_clapi_buffer(fn, "dx", dx, dx->device, count, ITEM(dtype)));
    if (count == 0) return MG_OK;
    const int64_t shape[1] = {rows}, strides[1] = {values_stride};
    TRY(mg_clapi_span(fn, "values", values, dx->device, ITEM(dtype), 0, 1, shape, strides));
    TRY(mg_clapi_buffer(fn, "index", index, dx->device, rows, sizeof(int64_t)));
    return LAUNCH_1D(fn, d, &k[MG_CLK_scatter_classes], count, MG_CL_ARG(rows), MG_CL_ARG(classes),
                     MG_CL_ARG(values->mem), MG_CL_ARG(values_stride), MG_CL_ARG(index->mem), MG_CL_ARG(dx->mem));
}

mg_status mg_cl_bad_class_index(int64_t rows, int64_t classes, const mg_cl_buffer_t *index, int64_t *first) {
    static const char fn[] = "mg_cl_bad_class_index";
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int64_t count;
    TRY(mg_clapi_begin(fn, MG_F32, index, "index", &d, &k));
    if (!first) return mg_fail(MG_ERR_ARG, "%s: first is NULL", fn);
    TRY(check_rows_classes(fn, rows, classes, &count));
    if (rows >= INT32_MAX) return mg_fail(MG_ERR_SHAPE, "%s: %lld rows, at most 2^31 - 2", fn, (long long)rows);
    TRY(mg_clapi_buffer(fn, "index", index, index->device, rows, sizeof(int64_t)));
    *first = -1;
    if (rows == 0) return MG_OK;
    int found = (int)rows;
    cl_mem flag;
    TRY(mg_cl_temp(fn, d, NULL, sizeof found, &flag));
    cl_int err = mg_cl.clEnqueueWriteBuffer(d->queue, flag, CL_TRUE, 0, sizeof found, &found, 0, NULL, NULL);
    mg_status s = err == CL_SUCCESS ? MG_OK : mg_cl_error(fn, "clEnqueueWriteBuffer", err);
    if (s == MG_OK)
        s = LAUNCH_1D(fn, d, &k[MG_CLK_index_check], rows, MG_CL_ARG(rows), MG_CL_ARG(classes),
                      MG_CL_ARG(index->mem), MG_CL_ARG(flag));
    if (s == MG_OK) {
        err = mg_cl.clEnqueueReadBuffer(d->queue, flag, CL_TRUE, 0, sizeof found, &found, 0, NULL, NULL);
        if (err != CL_SUCCESS) s = mg_cl_error(fn, "clEnqueueReadBuffer", err);
        else if (found < rows) *first = found;
    }
    mg_cl_release(flag);
    return s;
}
