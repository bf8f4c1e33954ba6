#include "cpu/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "internal/error.h"

/* Spin iterations before a worker sleeps on the condition variable. */
#define GPTOSS_SPIN_ITERATIONS 20000

struct gptoss_threadpool {
    uint32_t num_threads;
    pthread_t* threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_uint_fast64_t generation; /* bumped for each parallel call */
    atomic_uint pending;             /* workers still running the current call */
    atomic_bool stop;
    /* the current call */
    gptoss_parallel_fn fn;
    void* context;
    size_t range, grain;
};

static void run_slice(struct gptoss_threadpool* pool, uint32_t index) {
    const size_t grains = (pool->range + pool->grain - 1) / pool->grain;
    const size_t per = grains / pool->num_threads, extra = grains % pool->num_threads;
    const size_t first = index * per + (index < extra ? index : extra);
    const size_t count = per + (index < extra ? 1 : 0);
    size_t begin = first * pool->grain, end = (first + count) * pool->grain;
    if (end > pool->range) end = pool->range;
    if (begin < end) pool->fn(pool->context, index, begin, end);
}

struct worker_arg {
    struct gptoss_threadpool* pool;
    uint32_t index;
};

static void* worker_main(void* opaque) {
    struct worker_arg arg = *(struct worker_arg*) opaque;
    free(opaque);
    struct gptoss_threadpool* pool = arg.pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t now = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int spin = 0; now == seen && spin < GPTOSS_SPIN_ITERATIONS; spin++) {
            now = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (now == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((now = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
                   !atomic_load(&pool->stop)) {
                pthread_cond_wait(&pool->wake, &pool->mutex);
            }
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = now;
        run_slice(pool, arg.index);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
}

enum gptoss_status gptoss_threadpool_create(uint32_t num_threads, struct gptoss_threadpool** pool_out) {
    struct gptoss_threadpool* pool = calloc(1, sizeof *pool);
    if (pool == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a thread pool");
    pool->num_threads = num_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->stop, false);
    pool->threads = calloc(num_threads, sizeof(pthread_t));
    if (pool->threads == NULL) {
        free(pool);
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %u thread handles", num_threads);
    }
    for (uint32_t i = 1; i < num_threads; i++) {
        struct worker_arg* arg = malloc(sizeof *arg);
        if (arg == NULL || pthread_create(&pool->threads[i], NULL, worker_main,
                                          (*arg = (struct worker_arg){pool, i}, arg)) != 0) {
            free(arg);
            pool->num_threads = i; /* release joins the ones that started */
            gptoss_threadpool_release(pool);
            return gptoss_fail(gptoss_status_insufficient_resources, "cannot start worker thread %u of %u", i,
                               num_threads);
        }
    }
    *pool_out = pool;
    return gptoss_status_success;
}

void gptoss_threadpool_release(struct gptoss_threadpool* pool) {
    if (pool == NULL) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (uint32_t i = 1; i < pool->num_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->threads);
    free(pool);
}

uint32_t gptoss_threadpool_num_threads(const struct gptoss_threadpool* pool) { return pool->num_threads; }

void gptoss_threadpool_parallelize(struct gptoss_threadpool* pool, gptoss_parallel_fn fn, void* context,
                                   size_t range, size_t grain) {
    if (range == 0) return;
    if (grain == 0) grain = 1;
    if (pool->num_threads == 1 || range <= grain) {
        fn(context, 0, 0, range);
        return;
    }
    pool->fn = fn;
    pool->context = context;
    pool->range = range;
    pool->grain = grain;
    atomic_store_explicit(&pool->pending, pool->num_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    run_slice(pool, 0);
    for (int spin = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) != 0 &&
                       spin < GPTOSS_SPIN_ITERATIONS * 10;
         spin++) {
    }
    if (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) {
        pthread_mutex_lock(&pool->mutex);
        while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) {
            pthread_cond_wait(&pool->done, &pool->mutex);
        }
        pthread_mutex_unlock(&pool->mutex);
    }
}
