/* Counting a test program's allocations (alloc_count.h). */
#include <stdatomic.h>
#include <stddef.h>

#include "alloc_count.h"

static atomic_int counting;
static atomic_long allocations;

void alloc_count_start(void) {
    atomic_store(&allocations, 0);
    atomic_store(&counting, 1);
}

long alloc_count_stop(void) {
    atomic_store(&counting, 0);
    return atomic_load(&allocations);
}

void alloc_count_hit(void) {
    if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
}

void* __real_malloc(size_t size);
void* __real_calloc(size_t count, size_t size);
void* __real_realloc(void* ptr, size_t size);
void* __real_aligned_alloc(size_t alignment, size_t size);
int __real_posix_memalign(void** ptr, size_t alignment, size_t size);

void* __wrap_malloc(size_t size) {
    alloc_count_hit();
    return __real_malloc(size);
}
void* __wrap_calloc(size_t n, size_t size) {
    alloc_count_hit();
    return __real_calloc(n, size);
}
void* __wrap_realloc(void* ptr, size_t size) {
    alloc_count_hit();
    return __real_realloc(ptr, size);
}
void* __wrap_aligned_alloc(size_t alignment, size_t size) {
    alloc_count_hit();
    return __real_aligned_alloc(alignment, size);
}
int __wrap_posix_memalign(void** ptr, size_t alignment, size_t size) {
    alloc_count_hit();
    return __real_posix_memalign(ptr, alignment, size);
}
