/* stream.c - writing a large elementwise output around the caches.
 *
 * An ordinary store to a line that is not in cache first reads the line
 * from memory, so y = f(x) moves three bytes for every two it needs. For
 * outputs of MG_STREAM_MIN_BYTES or more (cpu/kernels.h), too big to be
 * read back from cache by the next op anyway, a loop writes each piece of
 * STAGE_BYTES into a buffer that stays in L1, and the piece goes to its
 * place with streaming stores (the kernel table's stream_copy). The loop
 * computes the same values either way, so the bits do not change. */
#include "cpu/kernels.h"
#include "internal.h"

#define STAGE_BYTES 4096

void mg_write_streamed(mg_piece_fn piece, const void *ctx, int64_t start, int64_t len, size_t item,
                       char *out) {
    _Alignas(64) char stage[STAGE_BYTES];
    const int64_t step = STAGE_BYTES / (int64_t)item;
    for (int64_t i = 0; i < len; i += step) {
        const int64_t n = len - i < step ? len - i : step;
        piece(ctx, start + i, n, stage);
        mg_kernels->stream_copy(out + (size_t)(start + i) * item, stage, n * (int64_t)item);
    }
    mg_stream_fence();
}
