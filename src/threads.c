/* threads.c - a small pthread pool, started lazily and re-made after fork.
 *
 * One job runs at a time: the caller posts (fn, ctx, ntasks), wakes the
 * workers, takes tasks itself from a shared atomic counter, and waits until
 * every worker that joined has finished. Tasks write separate outputs, so the
 * result never depends on which thread ran which task (see internal.h).
 *
 * Joining is explicit. A worker joins a job by incrementing the job's ticket
 * (job number and joined count in one atomic word) while the job is open;
 * the caller closes the job once every task is claimed, and waits only for
 * the workers that joined. A worker the OS has not scheduled yet (a shared
 * machine, or Python's own threads on the other core) never delays the
 * caller: its tasks are run by whoever is there, and when it wakes it finds
 * the job closed and goes back to waiting.
 *
 * Waking a sleeping thread (a futex) takes 10-30 us here, as long as a
 * whole 128K-element add, and on a virtual machine whose second core has
 * been idle a while, far longer: after 0.3 s of sleep, back-to-back 256x256
 * products on two threads (whose jobs are some 50 us apart: Python, and B
 * packed by the caller alone) ran at one thread's speed for about 30 ms when
 * the worker slept after 50 us of watching, and at full speed from the
 * first calls when it watched for 5 ms. So an idle worker first watches for
 * the next job for SPIN_NS before it sleeps on the condition variable, and
 * the caller watches for the workers to finish for as long before it
 * sleeps: ops that follow each other (a training step) then hand work over
 * in well under a microsecond. The cost is at most SPIN_NS of one core
 * after each job, yielded to any runnable thread (sched_yield).
 * (OpenBLAS's idle threads spin for about 0.1 s, libgomp's for milliseconds.) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* held while a job runs */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_posted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t job_finished = PTHREAD_COND_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static int wanted_threads = 1;   /* the caller plus wanted_threads - 1 workers */
static int started_workers = 0;
#define SPIN_NS 5000000

static _Atomic uint64_t generation = 0;  /* bumped once per posted job (under state_lock) */
static uint64_t spawn_generation; /* generation when the newest workers were made */

/* job.ticket: bits 63..32 the job's generation (low 32 bits), bit 31 set
 * once the job is closed, bits 30..0 how many workers joined it. */
#define TICKET_CLOSED ((uint64_t)1 << 31)
#define TICKET_JOINED_MASK (TICKET_CLOSED - 1)

static struct {
    mg_task_fn fn;
    void *ctx;
    int64_t ntasks;
    atomic_int_fast64_t next_task;
    int workers;                  /* workers with index < this may join the job */
    _Atomic uint64_t ticket;
    atomic_int workers_finished;  /* joined workers that are done; the last signals under the lock */
} job;

static void run_tasks(void) {
    int64_t task;
    while ((task = atomic_fetch_add(&job.next_task, 1)) < job.ntasks) job.fn(job.ctx, task);
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Waits up to SPIN_NS, without the lock, for done() to become true. */
static void spin_until(int (*done)(const void *), const void *arg) {
    const int64_t start = now_ns();
    for (int i = 0; !done(arg); i++) {
        if (i < 64) {
            cpu_relax();
        } else {
            sched_yield();                 /* a runnable neighbour gets the core */
            if (now_ns() - start > SPIN_NS) return;
        }
    }
}

static uint64_t ticket_of(uint64_t gen) { return (gen & 0xffffffffu) << 32; }

/* A worker's try to join job `gen`: fails once the job is closed or replaced. */
static int join_job(uint64_t gen) {
    uint64_t t = atomic_load(&job.ticket);
    while ((t & ~TICKET_JOINED_MASK) == ticket_of(gen)) {
        if (atomic_compare_exchange_weak(&job.ticket, &t, t + 1)) return 1;
    }
    return 0;
}

/* A joined worker's end: the last one to finish a closed job wakes the caller.
 * If the job is still open, the caller has not yet read the joined count; it
 * will see this worker's increment and not sleep. */
static void finish_job(void) {
    const int finished = atomic_fetch_add(&job.workers_finished, 1) + 1;
    const uint64_t t = atomic_load(&job.ticket);
    if ((t & TICKET_CLOSED) && finished == (int)(t & TICKET_JOINED_MASK)) {
        pthread_mutex_lock(&state_lock);   /* the caller checks the count under it */
        pthread_cond_signal(&job_finished);
        pthread_mutex_unlock(&state_lock);
    }
}

static int job_posted_since(const void *seen) { return atomic_load(&generation) != *(const uint64_t *)seen; }
static int joined_done(const void *joined) { return atomic_load(&job.workers_finished) == *(const int *)joined; }

static void *worker_main(void *arg) {
    const int index = (int)(intptr_t)arg;
    pthread_mutex_lock(&state_lock);
    uint64_t seen = spawn_generation;  /* the job being posted is spawn_generation + 1 */
    for (;;) {
        while (atomic_load(&generation) == seen) pthread_cond_wait(&job_posted, &state_lock);
        seen = atomic_load(&generation);
        if (index >= job.workers) continue;
        pthread_mutex_unlock(&state_lock);
        if (join_job(seen)) {
            run_tasks();
            finish_job();
        }
        spin_until(job_posted_since, &seen);
        pthread_mutex_lock(&state_lock);
    }
    return NULL;
}

/* fork() copies only the calling thread: the child starts with no workers. */
static void before_fork(void) { pthread_mutex_lock(&job_lock); pthread_mutex_lock(&state_lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&state_lock); pthread_mutex_unlock(&job_lock); }
static void after_fork_child(void) {
    pthread_mutex_init(&job_lock, NULL);
    pthread_mutex_init(&state_lock, NULL);
    pthread_cond_init(&job_posted, NULL);
    pthread_cond_init(&job_finished, NULL);
    started_workers = 0;
}
static void register_atfork(void) { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }

/* Starts workers up to wanted_threads - 1; returns how many are running.
 * Called with state_lock held. If the OS refuses a thread we use fewer. */
static int start_workers(void) {
    spawn_generation = generation;
    while (started_workers < wanted_threads - 1) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attr, worker_main, (void *)(intptr_t)started_workers);
        pthread_attr_destroy(&attr);
        if (failed) break;
        started_workers++;
    }
    return started_workers < wanted_threads - 1 ? started_workers : wanted_threads - 1;
}

void mg_parallel_for(int64_t ntasks, mg_task_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    if (ntasks == 1 || wanted_threads == 1 || pthread_mutex_trylock(&job_lock) != 0) {
        for (int64_t task = 0; task < ntasks; task++) fn(ctx, task);
        return;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&state_lock);
    job.fn = fn;
    job.ctx = ctx;
    job.ntasks = ntasks;
    atomic_store(&job.next_task, 0);
    job.workers = start_workers();
    atomic_store(&job.workers_finished, 0);
    atomic_store(&job.ticket, ticket_of(generation + 1));
    atomic_fetch_add(&generation, 1);
    pthread_cond_broadcast(&job_posted);
    pthread_mutex_unlock(&state_lock);

    run_tasks();   /* returns once every task is claimed */

    const int joined = (int)(atomic_fetch_or(&job.ticket, TICKET_CLOSED) & TICKET_JOINED_MASK);
    spin_until(joined_done, &joined);
    pthread_mutex_lock(&state_lock);
    while (atomic_load(&job.workers_finished) < joined) pthread_cond_wait(&job_finished, &state_lock);
    pthread_mutex_unlock(&state_lock);
    pthread_mutex_unlock(&job_lock);
}

int mg_pool_threads(void) { return wanted_threads; }

void mg_pool_set_threads(int n) {
    pthread_mutex_lock(&job_lock);   /* never change it under a running job */
    wanted_threads = n;
    pthread_mutex_unlock(&job_lock);
}

int mg_default_threads(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
