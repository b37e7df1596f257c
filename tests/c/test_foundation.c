/* tests/c/test_foundation.c - status, version, dispatch, argument checks,
 * the allocator, the thread pool and fork (the kernels themselves are in
 * test_foundation_kernels.c). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef MGBN_EXPECTED_VERSION
#error "CMake passes the project version as MGBN_EXPECTED_VERSION"
#endif

/* ---- status, version, backend info -------------------------------------- */

TEST(init_and_version) {
    CHECK_STATUS(mg_init(), MG_OK);
    CHECK(strcmp(mg_last_error(), "") == 0);
    const char *v = mg_version();
    int major, minor, patch;
    char tail;
    CHECK_MSG(sscanf(v, "%d.%d.%d%c", &major, &minor, &patch, &tail) == 3,
              "mg_version() = \"%s\" is not MAJOR.MINOR.PATCH", v);
    CHECK_MSG(strcmp(v, MGBN_EXPECTED_VERSION) == 0,
              "mg_version() = \"%s\" but CMakeLists.txt says %s", v, MGBN_EXPECTED_VERSION);
}

TEST(backend_info) {
    mg_backend_info_t info;
    CHECK_STATUS(mg_get_backend_info(&info), MG_OK);
    CHECK(info.available_isas & (1u << MG_ISA_SCALAR));
    CHECK((info.available_isas & ~info.compiled_isas) == 0);
    CHECK(info.available_isas & (1u << info.active_isa));
    CHECK(info.num_threads >= 1);
#if defined(__x86_64__)
    CHECK(info.compiled_isas == ((1u << MG_ISA_SCALAR) | (1u << MG_ISA_AVX2) | (1u << MG_ISA_AVX512)));
#elif defined(__aarch64__)
    CHECK(info.compiled_isas == ((1u << MG_ISA_SCALAR) | (1u << MG_ISA_NEON)));
    CHECK(info.available_isas == info.compiled_isas);
#endif
    CHECK_FAILS(mg_get_backend_info(NULL), MG_ERR_ARG, "mg_get_backend_info");
}

TEST(set_isa_and_threads) {
    int isas[4];
    const int n = mg_test_isas(isas);
    CHECK(n >= 1 && isas[0] == MG_ISA_SCALAR);
    mg_backend_info_t info;
    for (int i = 0; i < n; i++) {
        CHECK_STATUS(mg_set_isa(isas[i]), MG_OK);
        CHECK_STATUS(mg_get_backend_info(&info), MG_OK);
        CHECK(info.active_isa == isas[i]);
    }
    for (int isa = 0; isa < 4; isa++) {
        if (info.available_isas & (1u << isa)) continue;   /* e.g. avx512 on an AVX2 machine */
        CHECK_FAILS(mg_set_isa(isa), MG_ERR_BACKEND, "can run");
    }
    CHECK_FAILS(mg_set_isa(-1), MG_ERR_ARG, "mg_set_isa");
    CHECK_FAILS(mg_set_isa(4), MG_ERR_ARG, "mg_set_isa");
    for (int t = 1; t <= 3; t++) {
        CHECK_STATUS(mg_set_num_threads(t), MG_OK);
        CHECK_STATUS(mg_get_backend_info(&info), MG_OK);
        CHECK(info.num_threads == t);
    }
    CHECK_FAILS(mg_set_num_threads(0), MG_ERR_ARG, "mg_set_num_threads");
    CHECK_FAILS(mg_set_num_threads(-3), MG_ERR_ARG, "mg_set_num_threads");
    CHECK_FAILS(mg_set_num_threads(1025), MG_ERR_ARG, "mg_set_num_threads");
}

/* ---- mg_last_error ------------------------------------------------------ */

static void *fail_on_other_thread(void *arg) {
    char *seen = arg;
    float x = 0, out;
    mg_sum(7, &x, 1, &out);                      /* bad dtype, on this thread */
    snprintf(seen, 256, "%s", mg_last_error());
    return NULL;
}

TEST(last_error_is_per_thread) {
    float x = 1, out;
    CHECK_FAILS(mg_sum(MG_F32, &x, -5, &out), MG_ERR_ARG, "mg_sum");
    char mine[256], theirs[256] = "";
    snprintf(mine, sizeof mine, "%s", mg_last_error());
    CHECK(strstr(mine, "-5") != NULL);           /* the message gives the value */
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, fail_on_other_thread, theirs) == 0);
    pthread_join(thread, NULL);
    CHECK(strstr(theirs, "dtype 7") != NULL);
    CHECK(strcmp(mg_last_error(), mine) == 0);   /* untouched by the other thread */
    CHECK_STATUS(mg_init(), MG_OK);
    CHECK(strcmp(mg_last_error(), "") == 0);     /* mg_init clears it */
}

/* ---- argument checks ---------------------------------------------------- */

TEST(binary_contig_validation) {
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 1, 1, 1}, out[4];
    CHECK_FAILS(mg_binary_contig(-1, MG_F32, 4, a, b, out), MG_ERR_ARG, "mg_binary_contig");
    CHECK_FAILS(mg_binary_contig(6, MG_F32, 4, a, b, out), MG_ERR_ARG, "mg_binary_contig");
    CHECK_FAILS(mg_binary_contig(MG_OP_ADD, 2, 4, a, b, out), MG_ERR_DTYPE, "mg_binary_contig");
    CHECK_FAILS(mg_binary_contig(MG_OP_ADD, -1, 4, a, b, out), MG_ERR_DTYPE, "mg_binary_contig");
    CHECK_FAILS(mg_binary_contig(MG_OP_ADD, MG_F32, -1, a, b, out), MG_ERR_ARG, "mg_binary_contig");
    CHECK_FAILS(mg_binary_contig(MG_OP_ADD, MG_F32, 4, NULL, b, out), MG_ERR_ARG, "mg_binary_contig");
    CHECK_FAILS(mg_binary_contig(MG_OP_ADD, MG_F32, 4, a, NULL, out), MG_ERR_ARG, "mg_binary_contig");
    CHECK_FAILS(mg_binary_contig(MG_OP_ADD, MG_F32, 4, a, b, NULL), MG_ERR_ARG, "mg_binary_contig");
    CHECK_STATUS(mg_binary_contig(MG_OP_ADD, MG_F32, 0, NULL, NULL, NULL), MG_OK);
    CHECK_STATUS(mg_binary_contig(MG_OP_SUB, MG_F32, 4, a, b, out), MG_OK);
    CHECK(out[0] == 0 && out[3] == 3);
}

TEST(binary_validation) {
    double a[6] = {0}, b[6] = {0}, out[6];
    int64_t shape[17], sa[17], sb[17];
    for (int d = 0; d < 17; d++) shape[d] = 1, sa[d] = sb[d] = 0;
    shape[0] = 6;
    sa[0] = sb[0] = 1;
    CHECK_FAILS(mg_binary(99, MG_F64, 1, shape, a, sa, b, sb, out), MG_ERR_ARG, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, 5, 1, shape, a, sa, b, sb, out), MG_ERR_DTYPE, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 17, shape, a, sa, b, sb, out), MG_ERR_SHAPE, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, -1, shape, a, sa, b, sb, out), MG_ERR_SHAPE, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 1, NULL, a, sa, b, sb, out), MG_ERR_ARG, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 1, shape, a, NULL, b, sb, out), MG_ERR_ARG, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 1, shape, a, sa, b, NULL, out), MG_ERR_ARG, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 1, shape, NULL, sa, b, sb, out), MG_ERR_ARG, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 1, shape, a, sa, NULL, sb, out), MG_ERR_ARG, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 1, shape, a, sa, b, sb, NULL), MG_ERR_ARG, "mg_binary");
    const int64_t negative[2] = {2, -3}, huge[3] = {1ll << 40, 1ll << 40, 1ll << 40}, zeros[3] = {0};
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 2, negative, a, zeros, b, zeros, out), MG_ERR_SHAPE, "mg_binary");
    CHECK_FAILS(mg_binary(MG_OP_MUL, MG_F64, 3, huge, a, zeros, b, zeros, out), MG_ERR_SHAPE, "mg_binary");
    /* 16 axes are allowed; a zero-size shape writes nothing. */
    CHECK_STATUS(mg_binary(MG_OP_MUL, MG_F64, 16, shape, a, sa, b, sb, out), MG_OK);
    const int64_t empty[2] = {3, 0};
    CHECK_STATUS(mg_binary(MG_OP_MUL, MG_F64, 2, empty, NULL, zeros, NULL, zeros, NULL), MG_OK);
}

TEST(sum_validation) {
    float x[3] = {1, 2, 3}, out = -1;
    CHECK_FAILS(mg_sum(2, x, 3, &out), MG_ERR_DTYPE, "mg_sum");
    CHECK_FAILS(mg_sum(-1, x, 3, &out), MG_ERR_DTYPE, "mg_sum");
    CHECK_FAILS(mg_sum(MG_F32, x, -1, &out), MG_ERR_ARG, "mg_sum");
    CHECK_FAILS(mg_sum(MG_F32, NULL, 3, &out), MG_ERR_ARG, "mg_sum");
    CHECK_FAILS(mg_sum(MG_F32, x, 3, NULL), MG_ERR_ARG, "mg_sum");
    CHECK(out == -1);                             /* a failed call writes nothing */
    CHECK_STATUS(mg_sum(MG_F32, NULL, 0, &out), MG_OK);
    CHECK(out == 0);
    CHECK_STATUS(mg_sum(MG_F32, x, 3, &out), MG_OK);
    CHECK(out == 6);
}

/* ---- the allocator ------------------------------------------------------ */

TEST(alloc_validation_and_nomem) {
    void *p = (void *)&p;
    CHECK_FAILS(mg_alloc(64, NULL), MG_ERR_ARG, "mg_alloc");
    CHECK_FAILS(mg_alloc(0, &p), MG_ERR_ARG, "mg_alloc");
    CHECK(p == NULL);
    /* 1e15 float32 elements: far beyond this machine, must fail cleanly. */
    p = (void *)&p;
    CHECK_FAILS(mg_alloc((size_t)1000000000000000ull * 4, &p), MG_ERR_NOMEM, "mg_alloc");
    CHECK(p == NULL);
    CHECK_FAILS(mg_alloc(SIZE_MAX, &p), MG_ERR_NOMEM, "mg_alloc");
    CHECK_FAILS(mg_alloc(SIZE_MAX - 63, &p), MG_ERR_NOMEM, "mg_alloc");
    CHECK(p == NULL);
    CHECK_STATUS(mg_alloc(100, &p), MG_OK);       /* and the library still works */
    CHECK(p != NULL);
    CHECK_STATUS(mg_free(p), MG_OK);
    CHECK_STATUS(mg_free(NULL), MG_OK);
}

TEST(alloc_or_null) {
    CHECK(mg_alloc_or_null(0) == NULL);
    CHECK_MSG(strstr(mg_last_error(), "mg_alloc: size is zero") != NULL, "message: %s", mg_last_error());
    CHECK(mg_alloc_or_null((size_t)1000000000000000ull * 4) == NULL);
    CHECK_MSG(strstr(mg_last_error(), "cannot allocate 4000000000000000 bytes") != NULL, "message: %s",
              mg_last_error());
    void *p = mg_alloc_or_null(1 << 20);
    CHECK(p != NULL && ((uintptr_t)p & 63) == 0);
    memset(p, 0xA5, 1 << 20);
    CHECK_STATUS(mg_free(p), MG_OK);
}

TEST(alloc_alignment) {
    const size_t sizes[] = {1, 3, 63, 64, 65, 4096, 65535, 65536, 65537, 1 << 20, (3 << 20) + 7,
                            (4 << 20) - 1, 4 << 20, (5 << 20) + 3};
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        CHECK_STATUS(mg_alloc(sizes[i], &p[i]), MG_OK);
        CHECK_MSG(((uintptr_t)p[i] & 63) == 0, "mg_alloc(%zu) gave %p, not 64-byte aligned", sizes[i], p[i]);
        /* memory.c's placement: 2 KiB past a page from 64 KiB on, past a 2 MiB huge page from 4 MiB on */
        const uintptr_t page = sizes[i] >= (4 << 20) ? (2 << 20) : 4096;
        if (sizes[i] >= 65536)
            CHECK_MSG((uintptr_t)p[i] % page == 2048, "mg_alloc(%zu) gave %p, not 2 KiB past a %zu-byte boundary",
                      sizes[i], p[i], (size_t)page);
        memset(p[i], 0xA5, sizes[i]);             /* the whole buffer is ours (ASan checks) */
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) CHECK_STATUS(mg_free(p[i]), MG_OK);
    CHECK_STATUS(mg_release_cached(), MG_OK);
}

TEST(alloc_cache_reuse) {
    CHECK_STATUS(mg_release_cached(), MG_OK);
    void *p, *q, *r, *s;
    CHECK_STATUS(mg_alloc(1 << 20, &p), MG_OK);
    CHECK_STATUS(mg_free(p), MG_OK);
    CHECK_STATUS(mg_alloc(1 << 20, &q), MG_OK);
    CHECK_MSG(q == p, "a freed 1 MiB buffer was not reused (%p then %p)", p, q);
    CHECK_STATUS(mg_free(q), MG_OK);
    CHECK_STATUS(mg_alloc((1 << 20) - 1000, &r), MG_OK);   /* same size class */
    CHECK(r == p);
    CHECK_STATUS(mg_alloc(1 << 20, &s), MG_OK);            /* r is in use: a new one */
    CHECK(s != r);
    memset(r, 1, (1 << 20) - 1000);
    memset(s, 2, 1 << 20);
    CHECK(((unsigned char *)r)[(1 << 20) - 1001] == 1);
    CHECK_STATUS(mg_free(r), MG_OK);
    CHECK_STATUS(mg_free(s), MG_OK);
    CHECK_STATUS(mg_alloc(4 << 20, &q), MG_OK);            /* another class: not p */
    CHECK(q != p && q != s);
    CHECK_STATUS(mg_free(q), MG_OK);
    CHECK_STATUS(mg_release_cached(), MG_OK);
    /* Many frees past the cache's limits release the oldest, never crash. */
    void *many[80];
    for (int i = 0; i < 80; i++) CHECK_STATUS(mg_alloc(70000 + i * 4096, &many[i]), MG_OK);
    for (int i = 0; i < 80; i++) CHECK_STATUS(mg_free(many[i]), MG_OK);
    CHECK_STATUS(mg_release_cached(), MG_OK);
}

/* ---- the pool: concurrent callers, fork --------------------------------- */

#define BIG (1000 * 1000 + 3)

static double *big_input(void) {
    double *x = malloc(BIG * sizeof *x);
    uint64_t rng = 42;
    for (int64_t i = 0; i < BIG; i++) x[i] = mg_test_uniform(&rng) * 1e3;
    return x;
}

typedef struct { const double *x; double want; int mismatches; } caller_job;

static void *sum_repeatedly(void *arg) {
    caller_job *j = arg;
    for (int k = 0; k < 4; k++) {
        double s;
        if (mg_sum(MG_F64, j->x, BIG, &s) != MG_OK || memcmp(&s, &j->want, sizeof s) != 0)
            j->mismatches++;
    }
    return NULL;
}

TEST(concurrent_callers_same_bits) {
    double *x = big_input(), want;
    CHECK_STATUS(mg_set_num_threads(2), MG_OK);
    CHECK_STATUS(mg_sum(MG_F64, x, BIG, &want), MG_OK);
    caller_job jobs[3];
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (caller_job){x, want, 0};
        CHECK(pthread_create(&threads[i], NULL, sum_repeatedly, &jobs[i]) == 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
        CHECK_MSG(jobs[i].mismatches == 0, "caller %d got other bits %d times", i, jobs[i].mismatches);
    }
    free(x);
}

TEST(fork_after_pool_ran) {
    double *x = big_input(), before;
    CHECK_STATUS(mg_set_num_threads(3), MG_OK);
    CHECK_STATUS(mg_sum(MG_F64, x, BIG, &before), MG_OK);   /* the pool's workers now exist */
    fflush(stdout);
    const pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(30);                                /* a deadlocked pool dies instead of hanging */
        double after, *y = malloc(BIG * sizeof *y);
        int ok = y && mg_sum(MG_F64, x, BIG, &after) == MG_OK && memcmp(&after, &before, sizeof after) == 0;
        ok = ok && mg_binary_contig(MG_OP_ADD, MG_F64, BIG, x, x, y) == MG_OK;
        for (int64_t i = 0; ok && i < BIG; i++) ok = y[i] == x[i] + x[i];
        ok = ok && mg_set_num_threads(2) == MG_OK && mg_sum(MG_F64, x, BIG, &after) == MG_OK &&
             memcmp(&after, &before, sizeof after) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child computed wrong results or died (wait status %d)", status);
    double again;                                 /* the parent's pool still works */
    CHECK_STATUS(mg_sum(MG_F64, x, BIG, &again), MG_OK);
    CHECK(memcmp(&again, &before, sizeof again) == 0);
    free(x);
}
