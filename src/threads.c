/* threads.c - a small pthread pool, started lazily and re-made after fork.
 *
 * One job runs at a time: the caller posts (fn, ctx, ntasks), wakes the
 * workers, takes tasks itself from a shared atomic counter, and waits until
 * every worker that joined has finished. Tasks write separate outputs, so the
 * result never depends on which thread ran which task (see internal.h). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER; /* held while a job runs */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_posted = PTHREAD_COND_INITIALIZER;
static pthread_cond_t job_finished = PTHREAD_COND_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static int wanted_threads = 1;   /* the caller plus wanted_threads - 1 workers */
static int started_workers = 0;
static uint64_t generation = 0;  /* bumped once per posted job */
static uint64_t spawn_generation; /* generation when the newest workers were made */

static struct {
    mg_task_fn fn;
    void *ctx;
    int64_t ntasks;
    atomic_int_fast64_t next_task;
    int workers;                 /* workers with index < this join the job */
    int workers_running;
} job;

static void run_tasks(void) {
    int64_t task;
    while ((task = atomic_fetch_add(&job.next_task, 1)) < job.ntasks) job.fn(job.ctx, task);
}

static void *worker_main(void *arg) {
    const int index = (int)(intptr_t)arg;
    pthread_mutex_lock(&state_lock);
    uint64_t seen = spawn_generation;  /* the job being posted is spawn_generation + 1 */
    for (;;) {
        while (generation == seen) pthread_cond_wait(&job_posted, &state_lock);
        seen = generation;
        if (index >= job.workers) continue;
        pthread_mutex_unlock(&state_lock);
        run_tasks();
        pthread_mutex_lock(&state_lock);
        if (--job.workers_running == 0) pthread_cond_signal(&job_finished);
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
    job.workers_running = job.workers;
    generation++;
    pthread_cond_broadcast(&job_posted);
    pthread_mutex_unlock(&state_lock);

    run_tasks();

    pthread_mutex_lock(&state_lock);
    while (job.workers_running > 0) pthread_cond_wait(&job_finished, &state_lock);
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
