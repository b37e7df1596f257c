/* dispatch.c - find what the CPU can run and fill the kernel table.
 *
 * x86-64: CPUID says what the CPU implements, XGETBV says which register
 * files the OS saves on a context switch; a path is usable only with both
 * (AVX2+FMA needs the YMM state, AVX-512F also the opmask and ZMM states).
 * aarch64: Advanced SIMD (NEON) is part of the base architecture.
 * MGBN_SIMD=scalar|avx2|avx512|neon forces a path; MGBN_NUM_THREADS sets the
 * pool size. A bad value makes mg_init() (and so every entry point) fail with
 * a message naming the variable, instead of silently running something else. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

static const char *const isa_names[] = {"scalar", "avx2", "avx512", "neon"};
#define NUM_ISAS 4

static mg_kernel_table tables[NUM_ISAS];
const mg_kernel_table *mg_kernels = &tables[MG_ISA_SCALAR];
static int active_isa = MG_ISA_SCALAR;
static unsigned compiled_isas, available_isas;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static mg_status init_status = MG_OK;
static char init_message[256];

static unsigned compiled_mask(void) {
    unsigned mask = 1u << MG_ISA_SCALAR;
#ifdef MG_HAVE_AVX2
    mask |= 1u << MG_ISA_AVX2;
#endif
#ifdef MG_HAVE_AVX512
    mask |= 1u << MG_ISA_AVX512;
#endif
#ifdef MG_HAVE_NEON
    mask |= 1u << MG_ISA_NEON;
#endif
    return mask;
}

static unsigned cpu_mask(void) {
    unsigned mask = 1u << MG_ISA_SCALAR;
#if defined(__x86_64__)
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return mask;
    const int has_fma = (ecx >> 12) & 1, has_osxsave = (ecx >> 27) & 1, has_avx = (ecx >> 28) & 1;
    if (!has_osxsave || !has_avx) return mask;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const int os_ymm = (xcr0_lo & 0x6) == 0x6;     /* XMM and YMM state */
    const int os_zmm = (xcr0_lo & 0xE6) == 0xE6;   /* ... and opmask, ZMM0-15, ZMM16-31 */
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return mask;
    const int has_avx2 = (ebx >> 5) & 1, has_avx512f = (ebx >> 16) & 1;
    if (has_avx2 && has_fma && os_ymm) mask |= 1u << MG_ISA_AVX2;
    if (has_avx512f && has_avx2 && has_fma && os_zmm) mask |= 1u << MG_ISA_AVX512;
#elif defined(__aarch64__)
    mask |= 1u << MG_ISA_NEON;
#endif
    return mask;
}

static void fill_table(int isa, mg_kernel_table *t) {
    switch (isa) {
#define FILL_FAMILY(family, suffix) mg_fill_##family##suffix(t);
#define FILL_SCALAR(family) FILL_FAMILY(family, _scalar)
#define FILL_AVX2(family) FILL_FAMILY(family, _avx2)
#define FILL_AVX512(family) FILL_FAMILY(family, _avx512)
#define FILL_NEON(family) FILL_FAMILY(family, _neon)
#define FILL(suffix) MG_KERNEL_FAMILIES(FILL##suffix) break;
    case MG_ISA_SCALAR: FILL(_SCALAR)
#ifdef MG_HAVE_AVX2
    case MG_ISA_AVX2: FILL(_AVX2)
#endif
#ifdef MG_HAVE_AVX512
    case MG_ISA_AVX512: FILL(_AVX512)
#endif
#ifdef MG_HAVE_NEON
    case MG_ISA_NEON: FILL(_NEON)
#endif
#undef FILL
    default: break;
    }
}

static void names_of(unsigned mask, char *buf, size_t size) {
    buf[0] = '\0';
    for (int isa = 0; isa < NUM_ISAS; isa++) {
        if (!(mask & (1u << isa))) continue;
        if (buf[0]) strncat(buf, ", ", size - strlen(buf) - 1);
        strncat(buf, isa_names[isa], size - strlen(buf) - 1);
    }
}

static void init_error(const char *variable, const char *value, const char *why) {
    init_status = MG_ERR_BACKEND;
    snprintf(init_message, sizeof init_message, "%s='%s': %s", variable, value, why);
}

/* ---- the streaming-store threshold (cpu/kernels.h) ------------------------ */

#define STREAM_MAX_MIN_BYTES ((int64_t)6 << 20)

int64_t mg_stream_min_bytes = STREAM_MAX_MIN_BYTES;

/* The size in bytes of the largest cache (level 2 or above) Linux lists for CPU 0
 * (sysfs: "8192K"), or 0 where it lists none. */
static int64_t last_level_cache_bytes(void) {
    int64_t best = 0;
    for (int index = 0; index < 8; index++) {
        char path[96];
        int level = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
        FILE *f = fopen(path, "r");
        if (!f) break;
        const int got_level = fscanf(f, "%d", &level) == 1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
        f = fopen(path, "r");
        if (!f) continue;
        long long size = 0;
        char unit = 0;
        if (got_level && level >= 2 && fscanf(f, "%lld%c", &size, &unit) >= 1) {
            const int64_t bytes = (int64_t)size * (unit == 'K' ? 1024 : unit == 'M' ? 1 << 20 : 1);
            if (bytes > best) best = bytes;
        }
        fclose(f);
    }
    return best;
}

static void init(void) {
    compiled_isas = compiled_mask();
    available_isas = compiled_isas & cpu_mask();
    for (int isa = 0; isa < NUM_ISAS; isa++)
        if (available_isas & (1u << isa)) fill_table(isa, &tables[isa]);
    for (int isa = NUM_ISAS - 1; isa >= 0; isa--)
        if (available_isas & (1u << isa)) { active_isa = isa; break; }

    const char *forced = getenv("MGBN_SIMD");
    if (forced && forced[0]) {
        int isa = -1;
        for (int i = 0; i < NUM_ISAS; i++)
            if (strcmp(forced, isa_names[i]) == 0) isa = i;
        char why[160], names[64];
        names_of(available_isas, names, sizeof names);
        if (isa < 0 || !(available_isas & (1u << isa))) {
            const char *reason = isa < 0 ? "not one of scalar, avx2, avx512, neon"
                                 : (compiled_isas & (1u << isa)) ? "this CPU or OS does not support it"
                                                                 : "this build does not contain it";
            snprintf(why, sizeof why, "%s (this machine can run: %s)", reason, names);
            init_error("MGBN_SIMD", forced, why);
        } else {
            active_isa = isa;
        }
    }
    mg_kernels = &tables[active_isa];

    const int64_t cache = last_level_cache_bytes();
    if (cache > 0 && cache / 2 < mg_stream_min_bytes)
        mg_stream_min_bytes = cache / 2 > (1 << 20) ? cache / 2 : (1 << 20);

    int threads = mg_default_threads();
    const char *threads_env = getenv("MGBN_NUM_THREADS");
    if (threads_env && threads_env[0]) {
        char *end;
        long n = strtol(threads_env, &end, 10);
        if (*end != '\0' || n < 1 || n > 1024)
            init_error("MGBN_NUM_THREADS", threads_env, "expected a whole number from 1 to 1024");
        else
            threads = (int)n;
    }
    mg_pool_set_threads(threads);
}

mg_status mg_ensure_init(void) {
    pthread_once(&init_once, init);
    if (init_status != MG_OK) return mg_fail(init_status, "%s", init_message);
    return MG_OK;
}

mg_status mg_init(void) {
    mg_clear_error();
    return mg_ensure_init();
}

mg_status mg_get_backend_info(mg_backend_info_t *out) {
    mg_status s = mg_ensure_init();
    if (s) return s;
    if (!out) return mg_fail(MG_ERR_ARG, "mg_get_backend_info: out is NULL");
    out->active_isa = active_isa;
    out->compiled_isas = compiled_isas;
    out->available_isas = available_isas;
    out->num_threads = mg_pool_threads();
    out->stream_min_bytes = mg_stream_min_bytes;
    return MG_OK;
}

mg_status mg_set_isa(int isa) {
    mg_status s = mg_ensure_init();
    if (s) return s;
    if (isa < 0 || isa >= NUM_ISAS) return mg_fail(MG_ERR_ARG, "mg_set_isa: unknown ISA %d", isa);
    if (!(available_isas & (1u << isa))) {
        char names[64];
        names_of(available_isas, names, sizeof names);
        return mg_fail(MG_ERR_BACKEND, "SIMD path '%s' is not available here (this machine can run: %s)",
                       isa_names[isa], names);
    }
    active_isa = isa;
    mg_kernels = &tables[isa];
    return MG_OK;
}

mg_status mg_set_num_threads(int n) {
    mg_status s = mg_ensure_init();
    if (s) return s;
    if (n < 1 || n > 1024) return mg_fail(MG_ERR_ARG, "mg_set_num_threads: %d is not in [1, 1024]", n);
    mg_pool_set_threads(n);
    return MG_OK;
}
