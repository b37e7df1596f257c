/* tests/c/harness.h - a tiny test harness for the C tests (see README.md).
 *
 *   #include "harness.h"
 *   TEST(sum_of_nothing_is_zero) {
 *       double s = 1;
 *       CHECK_STATUS(mg_sum(MG_F64, NULL, 0, &s), MG_OK);
 *       CHECK(s == 0.0);
 *   }
 *
 * TEST registers the function before main() runs (a constructor), so a new
 * tests/c/test_<family>.c file needs no list anywhere: CMake globs it into
 * the one executable, mgbn_c_tests. A failed CHECK records file, line and
 * the expression and the test goes on; the executable exits non-zero if any
 * check failed. Between tests the runner puts the SIMD path and the thread
 * count back to what they were at start-up. */
#ifndef MG_TEST_HARNESS_H
#define MG_TEST_HARNESS_H

#include <stdint.h>

#include "mg.h"

#define MG_TEST_MAX_NDIM 16   /* the most axes mg_binary takes (mg.h) */

typedef void (*mg_test_fn)(void);
void mg_test_register(const char *name, mg_test_fn fn);
void mg_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Checks that a call returned `expected`; for a failure also that
 * mg_last_error() is not empty and contains `fn` (the function's name, may be
 * NULL to skip that part). */
void mg_test_status(const char *file, int line, const char *call, mg_status got,
                    mg_status expected, const char *fn);

#define TEST(name)                                                        \
    static void test_##name(void);                                        \
    __attribute__((constructor)) static void register_##name(void) {      \
        mg_test_register(#name, test_##name);                             \
    }                                                                     \
    static void test_##name(void)

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) mg_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);\
    } while (0)

/* Like CHECK, with a printf-style explanation. */
#define CHECK_MSG(cond, ...)                                              \
    do {                                                                  \
        if (!(cond)) mg_test_fail(__FILE__, __LINE__, __VA_ARGS__);       \
    } while (0)

#define CHECK_STATUS(call, expected) \
    mg_test_status(__FILE__, __LINE__, #call, (call), (expected), NULL)
/* For an expected failure: the message must also name the function `fn`. */
#define CHECK_FAILS(call, expected, fn) \
    mg_test_status(__FILE__, __LINE__, #call, (call), (expected), (fn))

/* The ISAs this CPU can run (scalar first); returns how many. */
int mg_test_isas(int isas[4]);
/* Deterministic pseudo-random numbers (xorshift64*), for inputs. */
uint64_t mg_test_rand(uint64_t *state);
/* A float in [-1, 1). */
double mg_test_uniform(uint64_t *state);

#endif
