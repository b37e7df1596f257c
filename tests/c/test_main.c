/* tests/c/test_main.c - the runner of the C tests (harness.h, README.md).
 *
 *   mgbn_c_tests            run every registered test
 *   mgbn_c_tests WORD...    run the tests whose names contain any WORD
 *   mgbn_c_tests --list     print the test names
 *
 * MGBN_C_TESTS_SKIP="WORD ..." skips the tests whose names contain a WORD
 * (tools/aarch64-linux-gnu.cmake sets it under qemu-user, which cannot fork
 * a process that has threads).
 *
 * Prints one line per test and ends with "N passed, N failed, N skipped";
 * exits 0 only if every check passed (1 on a failed check, 2 when no test
 * ran). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define MAX_TESTS 1024

static struct { const char *name; mg_test_fn fn; } tests[MAX_TESTS];
static int num_tests;
static int current_failures;
static const char *current_name;

void mg_test_register(const char *name, mg_test_fn fn) {
    if (num_tests == MAX_TESTS) {
        fprintf(stderr, "harness: more than %d tests; raise MAX_TESTS\n", MAX_TESTS);
        exit(2);
    }
    tests[num_tests].name = name;
    tests[num_tests].fn = fn;
    num_tests++;
}

void mg_test_fail(const char *file, int line, const char *fmt, ...) {
    if (current_failures++ >= 20) return;   /* one broken loop must not flood the log */
    va_list args;
    va_start(args, fmt);
    fprintf(stdout, "    %s:%d: [%s] ", file, line, current_name);
    vfprintf(stdout, fmt, args);
    fputc('\n', stdout);
    va_end(args);
}

void mg_test_status(const char *file, int line, const char *call, mg_status got,
                    mg_status expected, const char *fn) {
    const char *message = mg_last_error();
    if (got != expected) {
        mg_test_fail(file, line, "%s returned %d, expected %d (last error: \"%s\")", call,
                     (int)got, (int)expected, message);
    } else if (expected != MG_OK && message[0] == '\0') {
        mg_test_fail(file, line, "%s failed as expected but left no message", call);
    } else if (expected != MG_OK && fn && !strstr(message, fn)) {
        mg_test_fail(file, line, "%s: message \"%s\" does not name %s", call, message, fn);
    }
}

int mg_test_isas(int isas[4]) {
    mg_backend_info_t info;
    int n = 0;
    if (mg_get_backend_info(&info) != MG_OK) return 0;
    for (int isa = 0; isa < 4; isa++)
        if (info.available_isas & (1u << isa)) isas[n++] = isa;
    return n;
}

uint64_t mg_test_rand(uint64_t *state) {
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

double mg_test_uniform(uint64_t *state) {
    return (double)(mg_test_rand(state) >> 11) * 0x1.0p-52 - 1.0;
}

/* Under AddressSanitizer (MGBN_SANITIZE=ON) a huge malloc must return NULL,
 * as it does without it, so that mg_alloc's MG_ERR_NOMEM path is tested; the
 * ASAN_OPTIONS variable still overrides this. Unused in other builds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static int selected(const char *name, int argc, char **argv) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i])) return 1;
    return 0;
}

static int skipped(const char *name) {
    const char *list = getenv("MGBN_C_TESTS_SKIP");
    char word[128];
    int used;
    while (list && sscanf(list, " %127s%n", word, &used) == 1) {
        if (strstr(name, word)) return 1;
        list += used;
    }
    return 0;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < num_tests; i++) puts(tests[i].name);
        return 0;
    }
    mg_backend_info_t start;
    if (mg_init() != MG_OK || mg_get_backend_info(&start) != MG_OK) {
        printf("mg_init failed: %s\n0 passed, 1 failed\n", mg_last_error());
        return 1;
    }
    printf("mgbn %s, SIMD path %d, %d threads\n", mg_version(), start.active_isa, start.num_threads);
    int passed = 0, failed = 0, skips = 0;
    for (int i = 0; i < num_tests; i++) {
        if (!selected(tests[i].name, argc, argv)) continue;
        if (skipped(tests[i].name)) {
            printf("skip %s (MGBN_C_TESTS_SKIP)\n", tests[i].name);
            skips++;
            continue;
        }
        current_name = tests[i].name;
        current_failures = 0;
        const double t0 = now_ms();
        tests[i].fn();
        printf("%s %s (%.0f ms)\n", current_failures ? "FAIL" : "ok  ", tests[i].name, now_ms() - t0);
        fflush(stdout);
        if (current_failures) failed++;
        else passed++;
        mg_set_isa(start.active_isa);
        mg_set_num_threads(start.num_threads);
    }
    if (passed + failed == 0) {
        printf("no test matched\n");
        return 2;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skips);
    return failed ? 1 : 0;
}
