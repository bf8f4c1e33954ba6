/* Persistent thread pool of the CPU backend. Workers are started once, at backend
 * creation; a parallel call wakes them (short spin, then a condition variable), so
 * decode-sized kernels pay no thread start-up. */
#ifndef GPTOSS_CPU_THREADPOOL_H
#define GPTOSS_CPU_THREADPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernels.h>

struct gptoss_threadpool;

/* fn(context, thread_index, begin, end): process items [begin, end). */
typedef void (*gptoss_parallel_fn)(void* context, uint32_t thread_index, size_t begin, size_t end);

/* num_threads >= 1 (the calling thread is thread 0, so num_threads - 1 workers start). */
enum gptoss_status gptoss_threadpool_create(uint32_t num_threads, struct gptoss_threadpool** pool_out);
void gptoss_threadpool_release(struct gptoss_threadpool* pool);
uint32_t gptoss_threadpool_num_threads(const struct gptoss_threadpool* pool);

/* Splits [0, range) into one contiguous slice per thread, slice boundaries multiples of
 * `grain` (>= 1), and runs fn on every non-empty slice; returns when all are done. The
 * split depends only on (range, grain, num_threads), so a kernel whose items are
 * independent gives results that do not depend on the thread count. A range that fits
 * one grain runs on the calling thread alone. Not reentrant: one call at a time per pool
 * (the backend serialises calls with a mutex). */
void gptoss_threadpool_parallelize(struct gptoss_threadpool* pool, gptoss_parallel_fn fn, void* context,
                                   size_t range, size_t grain);

#endif
