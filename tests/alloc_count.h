/* Counting a test program's allocations: malloc, calloc, realloc, aligned_alloc and
 * posix_memalign are wrapped at link time (the target gptoss_alloc_count adds
 * -Wl,--wrap=... for them: tests/CMakeLists.txt) in the program and the static libraries
 * it links, and counted from any thread while counting is on. */
#ifndef GPTOSS_TESTS_ALLOC_COUNT_H
#define GPTOSS_TESTS_ALLOC_COUNT_H

/* Zeroes the count and starts counting. */
void alloc_count_start(void);
/* Stops counting; the allocations counted since alloc_count_start. */
long alloc_count_stop(void);
/* One more allocation, when counting (for wrappers of other allocators a test adds). */
void alloc_count_hit(void);

#endif
