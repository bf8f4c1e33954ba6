/* Read bandwidth of this machine, measured in the same run as a benchmark: a read-only
 * pass (sum of f32) over a buffer far larger than the caches, one contiguous slice per
 * thread, AVX2 where the CPU has it. Shared by bench/ (kernel rows) and `gptoss bench`
 * (the decode bound). */
#ifndef GPTOSS_UTIL_READBW_H
#define GPTOSS_UTIL_READBW_H

#include <stddef.h>
#include <stdint.h>

/* GB/s (1e9 bytes/s) of the best of `passes` read passes over `bytes` with `threads`
 * threads; 0 when the buffer or the threads cannot be had. The buffer is allocated and
 * touched once (not timed), then freed. pass_gbs_out (may be NULL) receives the GB/s of
 * each pass ([passes]; valid when the result is not 0). *checksum_out (may be NULL)
 * receives the sum of all passes, so the reads cannot be optimised away. */
double gptoss_tools_read_bandwidth(size_t bytes, uint32_t threads, int passes, double* pass_gbs_out,
                                   double* checksum_out);

#endif
