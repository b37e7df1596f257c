/* api_opencl_conv.c - the OpenCL entry points of 2-D convolution and
 * pooling (see mg.h; the kernels and their math are in
 * src/opencl/kernels_conv.cl). The window and size checks are the CPU's
 * (api_conv.c), so both devices accept and refuse the same arguments.
 *
 * Convolution runs on chunks of nb images (K = c_in*kh*kw, P = OH*OW):
 *   forward   cols (K, nb*P) = im2col(x chunk);  out chunk = weight . cols   (one batched matmul)
 *             (a 1x1 kernel with stride 1 and no padding multiplies x itself, in one call)
 *   backward  gradT (c_out, nb*P) = the dout chunk with axes 0 and 1 swapped
 *             dweight (+)= gradT . cols^T;  dx chunk = col2im(weight^T . gradT)
 *             (weight^T is copied once first, so the matmul reads both operands along rows)
 *             dbias = dout summed over n, i, j (mg_cl_reduce)
 * nb keeps cols within COLS_BUDGET_BYTES (and the device's largest buffer):
 * it depends only on the shapes and the device, so results are the same
 * bits on every run. Everything is enqueued; nothing waits for the device. */
#include "api_opencl.h"
#include "cpu/kernels.h"

#define COLS_BUDGET_BYTES ((int64_t)64 << 20)

/* The 11 window arguments of the kernels (WINDOW_ARGS in kernels_conv.cl). */
#define WINDOW_KARGS(C, g)                                                                        \
    MG_CL_ARG(C), MG_CL_ARG((g).h), MG_CL_ARG((g).w), MG_CL_ARG((g).oh), MG_CL_ARG((g).ow),        \
        MG_CL_ARG((g).kh), MG_CL_ARG((g).kw), MG_CL_ARG((g).sh), MG_CL_ARG((g).sw), MG_CL_ARG((g).ph), \
        MG_CL_ARG((g).pw)

typedef struct {
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    int dtype, device;
    size_t item;
    mg_conv_geometry g;
    int64_t batch, c_in, c_out, K, P, image;   /* image = c_in*h*w */
} conv_plan;

static mg_status conv_setup(const char *fn, int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w,
                            int64_t c_out, const mg_window2d_t *window, const mg_cl_buffer_t *first,
                            const char *name, conv_plan *p) {
    TRY(mg_clapi_begin(fn, dtype, first, name, &p->d, &p->k));
    TRY(mg_conv_check_sizes(fn, "input", batch, c_in, h, w));
    TRY(mg_conv_check_sizes(fn, "input image", 1, c_in, h, w));
    if (c_out < 0) return mg_fail(MG_ERR_SHAPE, "%s: negative c_out %lld", fn, (long long)c_out);
    TRY(mg_conv_make_geometry(fn, window, h, w, 0, &p->g));
    TRY(mg_conv_check_sizes(fn, "weight", c_out, c_in, p->g.kh, p->g.kw));
    TRY(mg_conv_check_sizes(fn, "weight row", 1, c_in, p->g.kh, p->g.kw));
    TRY(mg_conv_check_sizes(fn, "output", batch, c_out, p->g.oh, p->g.ow));
    TRY(mg_conv_check_sizes(fn, "im2col matrix", c_in * p->g.kh * p->g.kw, p->g.oh * p->g.ow, 1, 1));
    p->g.channels = c_in;
    p->dtype = dtype;
    p->device = first->device;
    p->item = ITEM(dtype);
    p->batch = batch, p->c_in = c_in, p->c_out = c_out;
    p->K = c_in * p->g.kh * p->g.kw;
    p->P = p->g.oh * p->g.ow;
    p->image = c_in * h * w;
    return MG_OK;
}

/* Images per chunk: (K + extra_rows) x nb*P values within the budget and the largest buffer. */
static int64_t chunk_images(const conv_plan *p, int64_t extra_rows) {
    int64_t budget = COLS_BUDGET_BYTES;
    if (p->d->max_alloc && (int64_t)(p->d->max_alloc / 2) < budget) budget = (int64_t)(p->d->max_alloc / 2);
    const int64_t per_image = (p->K + extra_rows) * p->P * (int64_t)p->item;
    int64_t nb = per_image ? budget / per_image : p->batch;
    if (nb < 1) nb = 1;
    return nb < p->batch ? nb : p->batch;
}

/* A buffer handle for a scratch cl_mem, so the public matmul and copy entries take it. */
static mg_cl_buffer_t scratch_handle(const conv_plan *p, cl_mem mem, int64_t elems) {
    return (mg_cl_buffer_t){mem, p->device, (size_t)(elems ? elems : 1) * p->item};
}

static mg_status im2col(const char *fn, const conv_plan *p, const mg_cl_buffer_t *x, int64_t n0, int64_t nb,
                        cl_mem cols) {
    const int64_t total = p->K * nb * p->P, x_off = n0 * p->image;
    return LAUNCH_1D(fn, p->d, &p->k[MG_CLK_im2col], total, MG_CL_ARG(total), MG_CL_ARG(nb),
                     WINDOW_KARGS(p->c_in, p->g), MG_CL_ARG(x->mem), MG_CL_ARG(x_off), MG_CL_ARG(cols));
}

mg_status mg_cl_conv2d_forward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w,
                               int64_t c_out, const mg_window2d_t *window, const mg_cl_buffer_t *x,
                               const mg_cl_buffer_t *weight, const mg_cl_buffer_t *bias, mg_cl_buffer_t *out) {
    static const char fn[] = "mg_cl_conv2d_forward";
    conv_plan p;
    TRY(conv_setup(fn, dtype, batch, c_in, h, w, c_out, window, out, "out", &p));
    const int64_t out_count = batch * c_out * p.P;
    TRY(mg_clapi_buffer(fn, "out", out, p.device, out_count, p.item));
    TRY(mg_clapi_buffer(fn, "x", x, p.device, batch * p.image, p.item));
    TRY(mg_clapi_buffer(fn, "weight", weight, p.device, c_out * p.K, p.item));
    if (bias) TRY(mg_clapi_buffer(fn, "bias", bias, p.device, c_out, p.item));
    if (out_count == 0) return MG_OK;
    const mg_conv_geometry *g = &p.g;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0) {
        /* out[n] (c_out, P) = weight (c_out, c_in) . x[n] (c_in, P) */
        TRY(mg_cl_matmul(dtype, batch, c_out, p.P, p.K, weight, 0, 0, p.K, 1, x, 0, p.image, p.P, 1,
                         out, 0, c_out * p.P, p.P, 0));
    } else {
        const int64_t nb = chunk_images(&p, 0);
        cl_mem cols;
        TRY(mg_cl_temp(fn, p.d, NULL, (size_t)(p.K * nb * p.P) * p.item, &cols));
        const mg_cl_buffer_t cols_buf = scratch_handle(&p, cols, p.K * nb * p.P);
        mg_status s = MG_OK;
        for (int64_t n0 = 0; n0 < batch && s == MG_OK; n0 += nb) {
            const int64_t m = batch - n0 < nb ? batch - n0 : nb;
            s = im2col(fn, &p, x, n0, m, cols);
            /* out[n0 + t] (c_out, P) = weight (c_out, K) . cols[:, t*P .. (t+1)*P) (K, P) */
            if (s == MG_OK)
                s = mg_cl_matmul(dtype, m, c_out, p.P, p.K, weight, 0, 0, p.K, 1, &cols_buf, 0, p.P, m * p.P, 1,
                                 out, n0 * c_out * p.P, c_out * p.P, p.P, 0);
        }
        mg_cl_release(cols);
        TRY(s);
    }
    if (!bias) return MG_OK;
    return LAUNCH_1D(fn, p.d, &p.k[MG_CLK_add_channel_bias], out_count, MG_CL_ARG(out_count), MG_CL_ARG(c_out),
                     MG_CL_ARG(p.P), MG_CL_ARG(bias->mem), MG_CL_ARG(out->mem));
}

mg_status mg_cl_conv2d_backward(int dtype, int64_t batch, int64_t c_in, int64_t h, int64_t w,
                                int64_t c_out, const mg_window2d_t *window, const mg_cl_buffer_t *x,
                                const mg_cl_buffer_t *weight, const mg_cl_buffer_t *dout,
                                mg_cl_buffer_t *dx, mg_cl_buffer_t *dweight, mg_cl_buffer_t *dbias) {
    static const char fn[] = "mg_cl_conv2d_backward";
    conv_plan p;
    TRY(conv_setup(fn, dtype, batch, c_in, h, w, c_out, window, dout, "dout", &p));
    const int64_t P = p.P, K = p.K;
    TRY(mg_clapi_buffer(fn, "dout", dout, p.device, batch * c_out * P, p.item));
    if (dx) TRY(mg_clapi_buffer(fn, "dx", dx, p.device, batch * p.image, p.item));
    if (dweight) TRY(mg_clapi_buffer(fn, "dweight", dweight, p.device, c_out * K, p.item));
    if (dbias) TRY(mg_clapi_buffer(fn, "dbias", dbias, p.device, c_out, p.item));
    if (dweight) TRY(mg_clapi_buffer(fn, "x (needed for dweight)", x, p.device, batch * p.image, p.item));
    if (dx) TRY(mg_clapi_buffer(fn, "weight (needed for dx)", weight, p.device, c_out * K, p.item));

    if (dbias) {   /* dbias[o] = the sum of dout[:, o, :] */
        const int64_t shape[3] = {batch, c_out, P}, strides[3] = {c_out * P, P, 1};
        TRY(mg_cl_reduce(0, dtype, 3, shape, dout, 0, strides, 1u | 4u, dbias));
    }
    if (dweight && batch == 0) TRY(mg_cl_fill(dtype, dweight, c_out * K, 0.0));
    if ((!dx && !dweight) || batch == 0) return MG_OK;

    const int64_t nb = chunk_images(&p, c_out);
    cl_mem cols, grad_t = NULL, weight_t = NULL;
    TRY(mg_cl_temp(fn, p.d, NULL, (size_t)(K * nb * P) * p.item, &cols));
    mg_status s = mg_cl_temp(fn, p.d, NULL, (size_t)(c_out * nb * P) * p.item, &grad_t);
    if (s == MG_OK && dx) s = mg_cl_temp(fn, p.d, NULL, (size_t)(K * c_out) * p.item, &weight_t);
    mg_cl_buffer_t cols_buf = scratch_handle(&p, cols, K * nb * P);
    mg_cl_buffer_t grad_t_buf = scratch_handle(&p, grad_t, c_out * nb * P);
    mg_cl_buffer_t weight_t_buf = scratch_handle(&p, weight_t, K * c_out);
    if (s == MG_OK && dx) {   /* weight^T (K, c_out), so the matmul reads its tiles along rows */
        const int64_t shape[2] = {K, c_out}, src_strides[2] = {1, K}, dst_strides[2] = {c_out, 1};
        s = mg_cl_copy_strided(2, shape, dtype, weight, 0, src_strides, dtype, &weight_t_buf, 0, dst_strides, 0);
    }
    for (int64_t n0 = 0; n0 < batch && s == MG_OK; n0 += nb) {
        const int64_t m = batch - n0 < nb ? batch - n0 : nb, mp = m * P;
        /* gradT (c_out, m, P) = dout[n0 .. n0+m) (m, c_out, P), axes 0 and 1 swapped */
        const int64_t shape[3] = {c_out, m, P}, src_strides[3] = {P, c_out * P, 1}, dst_strides[3] = {mp, P, 1};
        s = mg_cl_copy_strided(3, shape, dtype, dout, n0 * c_out * P, src_strides, dtype, &grad_t_buf, 0,
                               dst_strides, 0);
        if (s == MG_OK && dweight) {
            /* dweight (c_out, K) (+)= gradT (c_out, mP) . cols^T (mP, K) */
            s = im2col(fn, &p, x, n0, m, cols);
            if (s == MG_OK)
                s = mg_cl_matmul(dtype, 1, c_out, K, mp, &grad_t_buf, 0, 0, mp, 1, &cols_buf, 0, 0, 1, mp,
                                 dweight, 0, 0, K, n0 > 0);
        }
        if (s == MG_OK && dx) {
            /* dcols (K, mP) = weight^T (K, c_out) . gradT (c_out, mP), into the cols buffer; then col2im */
            s = mg_cl_matmul(dtype, 1, K, mp, c_out, &weight_t_buf, 0, 0, c_out, 1, &grad_t_buf, 0, 0, mp, 1,
                             &cols_buf, 0, 0, mp, 0);
            const int64_t total = m * p.image, dx_off = n0 * p.image;
            if (s == MG_OK)
                s = LAUNCH_1D(fn, p.d, &p.k[MG_CLK_col2im], total, MG_CL_ARG(total), MG_CL_ARG(m),
                              WINDOW_KARGS(c_in, p.g), MG_CL_ARG(cols), MG_CL_ARG(dx->mem), MG_CL_ARG(dx_off));
        }
    }
    mg_cl_release(cols);
    mg_cl_release(grad_t);
    mg_cl_release(weight_t);
    return s;
}

/* ---- pooling ------------------------------------------------------------------------ */

typedef struct {
    mg_cl_device_t *d;
    mg_cl_kernel_t *k;
    mg_conv_geometry g;
    int64_t channels, in_count, out_count;
} pool_plan;

/* The checks of every pool entry: dtype and device of `first`, the window
 * (padding at most half the kernel), x- and out-sized buffers. */
static mg_status pool_setup(const char *fn, int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                            const mg_window2d_t *window, const mg_cl_buffer_t *in, const char *in_name,
                            const mg_cl_buffer_t *out, const char *out_name, int in_is_x, pool_plan *p) {
    TRY(mg_clapi_begin(fn, dtype, in, in_name, &p->d, &p->k));
    TRY(mg_conv_check_sizes(fn, "input", batch, channels, h, w));
    TRY(mg_conv_make_geometry(fn, window, h, w, 1, &p->g));
    TRY(mg_conv_check_sizes(fn, "output", batch, channels, p->g.oh, p->g.ow));
    p->channels = channels;
    p->in_count = batch * channels * h * w;
    p->out_count = batch * channels * p->g.oh * p->g.ow;
    if (batch * channels > 0 && (h == 0 || w == 0))   /* a window of padding alone has no value */
        return mg_fail(MG_ERR_SHAPE, "%s: empty image %lldx%lld", fn, (long long)h, (long long)w);
    const size_t item = ITEM(dtype);
    TRY(mg_clapi_buffer(fn, in_name, in, in->device, in_is_x ? p->in_count : p->out_count, item));
    return mg_clapi_buffer(fn, out_name, out, in->device, in_is_x ? p->out_count : p->in_count, item);
}

static mg_status pool_forward(const char *fn, int kernel, int dtype, int64_t batch, int64_t channels, int64_t h,
                              int64_t w, const mg_window2d_t *window, const mg_cl_buffer_t *x,
                              mg_cl_buffer_t *out) {
    pool_plan p;
    TRY(pool_setup(fn, dtype, batch, channels, h, w, window, x, "x", out, "out", 1, &p));
    return LAUNCH_1D(fn, p.d, &p.k[kernel], p.out_count, MG_CL_ARG(p.out_count), WINDOW_KARGS(p.channels, p.g),
                     MG_CL_ARG(x->mem), MG_CL_ARG(out->mem));
}

mg_status mg_cl_max_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                   const mg_window2d_t *window, const mg_cl_buffer_t *x, mg_cl_buffer_t *out) {
    return pool_forward("mg_cl_max_pool2d_forward", MG_CLK_max_pool_forward, dtype, batch, channels, h, w,
                        window, x, out);
}

mg_status mg_cl_avg_pool2d_forward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                   const mg_window2d_t *window, const mg_cl_buffer_t *x, mg_cl_buffer_t *out) {
    return pool_forward("mg_cl_avg_pool2d_forward", MG_CLK_avg_pool_forward, dtype, batch, channels, h, w,
                        window, x, out);
}

mg_status mg_cl_max_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                    const mg_window2d_t *window, const mg_cl_buffer_t *x,
                                    const mg_cl_buffer_t *dout, mg_cl_buffer_t *dx) {
    static const char fn[] = "mg_cl_max_pool2d_backward";
    pool_plan p;
    TRY(pool_setup(fn, dtype, batch, channels, h, w, window, x, "x", dx, "dx", 1, &p));
    TRY(mg_clapi_buffer(fn, "dout", dout, x->device, p.out_count, ITEM(dtype)));
    if (p.in_count == 0) return MG_OK;
    cl_mem arg;   /* the argmax of every window, then gathered per input */
    TRY(mg_cl_temp(fn, p.d, NULL, (size_t)p.out_count * sizeof(int64_t), &arg));
    mg_status s = LAUNCH_1D(fn, p.d, &p.k[MG_CLK_max_pool_argmax], p.out_count, MG_CL_ARG(p.out_count),
                            WINDOW_KARGS(p.channels, p.g), MG_CL_ARG(x->mem), MG_CL_ARG(arg));
    if (s == MG_OK)
        s = LAUNCH_1D(fn, p.d, &p.k[MG_CLK_max_pool_backward], p.in_count, MG_CL_ARG(p.in_count),
                      WINDOW_KARGS(p.channels, p.g), MG_CL_ARG(arg), MG_CL_ARG(dout->mem), MG_CL_ARG(dx->mem));
    mg_cl_release(arg);
    return s;
}

mg_status mg_cl_avg_pool2d_backward(int dtype, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                    const mg_window2d_t *window, const mg_cl_buffer_t *dout,
                                    mg_cl_buffer_t *dx) {
    static const char fn[] = "mg_cl_avg_pool2d_backward";
    pool_plan p;
    TRY(pool_setup(fn, dtype, batch, channels, h, w, window, dout, "dout", dx, "dx", 0, &p));
    return LAUNCH_1D(fn, p.d, &p.k[MG_CLK_avg_pool_backward], p.in_count, MG_CL_ARG(p.in_count),
                     WINDOW_KARGS(p.channels, p.g), MG_CL_ARG(dout->mem), MG_CL_ARG(dx->mem));
}
