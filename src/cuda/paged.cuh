/* The paged KV cache of the varlen kernels (kernels.h): the rows' positions and sequences,
 * the sequences' block tables, and the lookups with their range checks, shared by the
 * cache writes of qkv (rope.cuh) and the key reads of sdpa.cu. A position t of sequence s
 * is in cache slot block_tables[s * table_stride + t / block_size] * block_size +
 * t % block_size. */
#ifndef GPTOSS_CUDA_PAGED_CUH
#define GPTOSS_CUDA_PAGED_CUH

#include "cuda/common.cuh"

struct gptoss_kv_pages {
    const uint32_t* positions; /* per row; nullptr: a plain cache (no pages) */
    const uint32_t* seq_ids;   /* per row */
    const uint32_t* block_tables;
    uint32_t block_size, table_stride, num_seqs;
    uint64_t num_blocks;   /* blocks of the cache: an entry must be below */
    uint32_t* error_word;  /* GPTOSS_CUDA_ERROR_KV_ROW for a row out of range */
};

/* Position of row i and its sequence's table row; false for a sequence >= num_seqs or a
 * position past the table (the caller sets the error bit and writes NaN). */
__device__ __forceinline__ bool gptoss_d_kv_row(const gptoss_kv_pages& k, uint32_t i, uint32_t& pos,
                                                const uint32_t*& table) {
    const uint32_t s = k.seq_ids[i];
    pos = k.positions[i];
    if (s >= k.num_seqs || pos / k.block_size >= k.table_stride) return false;
    table = k.block_tables + (size_t) s * k.table_stride;
    return true;
}

/* Cache slot of position t through a table row of gptoss_d_kv_row (t at most that row's
 * position); false for a table entry >= num_blocks (NONE = 0xFFFFFFFF included). */
__device__ __forceinline__ bool gptoss_d_kv_slot(const gptoss_kv_pages& k, const uint32_t* table, uint32_t t,
                                                 uint64_t& slot) {
    const uint32_t entry = table[t / k.block_size];
    if (entry >= k.num_blocks) return false;
    slot = (uint64_t) entry * k.block_size + t % k.block_size;
    return true;
}

#endif
