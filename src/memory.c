/* memory.c - 64-byte-aligned buffers with a small cache of freed ones.
 *
 * A fresh page costs about a microsecond to fault in, which is a large part
 * of a batch-norm step on a few MiB. So, as PyTorch's caching allocator does,
 * freed buffers of at least MIN_CACHED bytes are kept, keyed by size class,
 * and reused by the next request of the same class. Classes are 8 steps per
 * power of two (at most 12.5% slack). The cache holds at most MAX_ENTRIES
 * buffers and MAX_CACHED_BYTES in all; beyond that the oldest is released.
 * A header before each buffer records its class.
 *
 * Cached buffers start LEAD = 2 KiB past a 4 KiB boundary. A loop that
 * reads x[i] and writes out[i] stalls when out sits a little after x modulo
 * 4 KiB: a load that matches the low 12 bits of a pending store waits for
 * it ("4K aliasing"). NumPy's large arrays start 16 bytes past a page, so a
 * 64-byte-aligned output at the start of a page was 48 bytes after its input:
 * a float32 exp of 16M values took 34.8 ms there, 20 ms at 304 bytes or more
 * (AMD EPYC). 2 KiB is far from both NumPy's offset and our own.
 *
 * Buffers of HUGE_MIN bytes or more start 2 KiB past a 2 MiB boundary and
 * are marked for transparent huge pages (madvise; Linux only, and only where
 * the system's THP setting is "madvise" or "always"), as NumPy marks its
 * arrays of 4 MiB and more. Three 4 MiB arrays in 4 KiB pages need 3072 TLB
 * entries, more than a Zen 3 core's 2048; in 2 MiB pages, six. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "internal.h"

#define ALIGNMENT 64
#define LEAD 2048
#define MIN_CACHED (64 * 1024)
#define MAX_ENTRIES 64
#define MAX_CACHED_BYTES ((size_t)1 << 30)
#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

typedef struct { size_t class_bytes; } header_t;  /* sits ALIGNMENT bytes before the buffer */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static void *cache[MAX_ENTRIES];     /* oldest first */
static int cache_count;
static size_t cache_bytes;

static size_t size_class(size_t nbytes) {
    if (nbytes < MIN_CACHED) return (nbytes + ALIGNMENT - 1) & ~(size_t)(ALIGNMENT - 1);
    int top = 63 - __builtin_clzll(nbytes);   /* 2^top <= nbytes */
    size_t step = (size_t)1 << (top - 3);
    return (nbytes + step - 1) & ~(step - 1);
}

static header_t *header_of(void *ptr) { return (header_t *)((char *)ptr - ALIGNMENT); }

/* Bytes from the block malloc gave to the buffer. */
static size_t lead_of(size_t cls) { return cls >= MIN_CACHED ? LEAD : ALIGNMENT; }

static void release(void *ptr) { free((char *)ptr - lead_of(header_of(ptr)->class_bytes)); }

mg_status mg_alloc(size_t nbytes, void **out) {
    if (!out) return mg_fail(MG_ERR_ARG, "mg_alloc: out is NULL");
    *out = NULL;
    if (nbytes == 0) return mg_fail(MG_ERR_ARG, "mg_alloc: size is zero");
    if (nbytes > ((size_t)1 << 60)) return mg_fail(MG_ERR_NOMEM, "mg_alloc: cannot allocate %zu bytes", nbytes);
    const size_t cls = size_class(nbytes);
    if (cls >= MIN_CACHED) {
        pthread_mutex_lock(&cache_lock);
        for (int i = cache_count - 1; i >= 0; i--) {
            if (header_of(cache[i])->class_bytes != cls) continue;
            *out = cache[i];
            memmove(&cache[i], &cache[i + 1], (size_t)(cache_count - i - 1) * sizeof cache[0]);
            cache_count--;
            cache_bytes -= cls;
            break;
        }
        pthread_mutex_unlock(&cache_lock);
        if (*out) return MG_OK;
    }
    void *block = NULL;
    const size_t lead = lead_of(cls);
    const size_t block_align = cls >= HUGE_MIN ? HUGE_PAGE : lead == LEAD ? 4096 : ALIGNMENT;
    if (posix_memalign(&block, block_align, cls + lead) != 0 || !block)
        return mg_fail(MG_ERR_NOMEM, "mg_alloc: cannot allocate %zu bytes (out of memory)", nbytes);
#if defined(MADV_HUGEPAGE)
    if (cls >= HUGE_MIN) (void)madvise(block, (cls + lead) & ~(size_t)4095, MADV_HUGEPAGE);  /* a hint */
#endif
    *out = (char *)block + lead;
    header_of(*out)->class_bytes = cls;
    return MG_OK;
}

void *mg_alloc_or_null(size_t nbytes) {
    void *out;
    return mg_alloc(nbytes, &out) == MG_OK ? out : NULL;
}

mg_status mg_free(void *ptr) {
    if (!ptr) return MG_OK;
    const size_t cls = header_of(ptr)->class_bytes;
    if (cls < MIN_CACHED || cls > MAX_CACHED_BYTES / 4) {
        release(ptr);
        return MG_OK;
    }
    pthread_mutex_lock(&cache_lock);
    while (cache_count == MAX_ENTRIES || (cache_count > 0 && cache_bytes + cls > MAX_CACHED_BYTES)) {
        cache_bytes -= header_of(cache[0])->class_bytes;
        release(cache[0]);
        memmove(&cache[0], &cache[1], (size_t)(--cache_count) * sizeof cache[0]);
    }
    cache[cache_count++] = ptr;
    cache_bytes += cls;
    pthread_mutex_unlock(&cache_lock);
    return MG_OK;
}

mg_status mg_release_cached(void) {
    pthread_mutex_lock(&cache_lock);
    while (cache_count > 0) release(cache[--cache_count]);
    cache_bytes = 0;
    pthread_mutex_unlock(&cache_lock);
    return MG_OK;
}
