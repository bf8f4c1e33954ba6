/* Internal: the argument checks of the kernels (src/kernels/<family>.c) and their helpers.
 *
 * gptoss_check_<name>(backend, args) checks the arguments of kernel <name> (the backend
 * handle itself is checked before, by src/kernels/run.c); a fusion's
 * gptoss_unfused_<name>(backend, args) runs the kernels it fuses through the backend's
 * entries, for backends without a fused entry (arguments already checked).
 *
 * Every helper returns gptoss_status_success or the status of gptoss_fail() (which has
 * set the thread-local message). GPTOSS_TRY returns early on failure, so a check reads as
 * a flat list of checks. Nothing here writes to kernel buffers; the host-content helpers
 * only read them. */
#ifndef GPTOSS_KERNELS_CHECK_H
#define GPTOSS_KERNELS_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <gptoss/kernel-args.h>

#include "internal/backend.h"
#include "internal/error.h"

#define GPTOSS_INVALID gptoss_status_invalid_argument
#define GPTOSS_UNSUPPORTED gptoss_status_unsupported_argument

#define GPTOSS_CHECK_DECL(name, family) \
    enum gptoss_status gptoss_check_##name(gptoss_backend_t backend, const struct gptoss_##name##_args* args);
#define GPTOSS_UNFUSED_DECL(name, family) \
    GPTOSS_CHECK_DECL(name, family)       \
    enum gptoss_status gptoss_unfused_##name(gptoss_backend_t backend, const struct gptoss_##name##_args* args);
GPTOSS_KERNEL_LIST(GPTOSS_CHECK_DECL, GPTOSS_UNFUSED_DECL)
#undef GPTOSS_UNFUSED_DECL
#undef GPTOSS_CHECK_DECL

static inline enum gptoss_status gptoss_check_backend(gptoss_backend_t backend) {
    if (backend == NULL) return gptoss_fail(GPTOSS_INVALID, "backend is NULL");
    if (backend->ops == NULL) return gptoss_fail(GPTOSS_INVALID, "backend has no kernel table");
    return gptoss_status_success;
}

/* Non-NULL and aligned to `alignment` bytes (1 = any). */
static inline enum gptoss_status gptoss_check_pointer(const void* pointer, const char* name, size_t alignment) {
    if (pointer == NULL) return gptoss_fail(GPTOSS_INVALID, "%s is NULL", name);
    if (alignment > 1 && (uintptr_t) pointer % alignment != 0) {
        return gptoss_fail(GPTOSS_INVALID, "%s is not %zu-byte aligned", name, alignment);
    }
    return gptoss_status_success;
}

/* As gptoss_check_pointer, but NULL is accepted (documented optional buffers). */
static inline enum gptoss_status gptoss_check_optional_pointer(const void* pointer, const char* name,
                                                               size_t alignment) {
    if (pointer == NULL) return gptoss_status_success;
    return gptoss_check_pointer(pointer, name, alignment);
}

/* Sizes are >= 1 everywhere. */
static inline enum gptoss_status gptoss_check_nonzero(uint64_t value, const char* name) {
    if (value == 0) return gptoss_fail(GPTOSS_INVALID, "%s 0 must be at least 1", name);
    return gptoss_status_success;
}

static inline enum gptoss_status gptoss_check_multiple(uint64_t value, const char* name, uint64_t divisor,
                                                       const char* divisor_name) {
    if (divisor == 0 || value % divisor != 0) {
        return gptoss_fail(GPTOSS_INVALID, "%s %llu is not a multiple of %s %llu", name,
                           (unsigned long long) value, divisor_name, (unsigned long long) divisor);
    }
    return gptoss_status_success;
}

static inline enum gptoss_status gptoss_check_finite(float value, const char* name) {
    if (!isfinite(value)) return gptoss_fail(GPTOSS_INVALID, "%s %g is not finite", name, (double) value);
    return gptoss_status_success;
}

static inline enum gptoss_status gptoss_check_finite_positive(float value, const char* name) {
    GPTOSS_TRY(gptoss_check_finite(value, name));
    if (!(value > 0.0f)) return gptoss_fail(GPTOSS_INVALID, "%s %g is not > 0", name, (double) value);
    return gptoss_status_success;
}

/* a * b without 64-bit overflow. */
static inline bool gptoss_mul_u64(uint64_t a, uint64_t b, uint64_t* out) {
    if (a != 0 && b > UINT64_MAX / a) return false;
    *out = a * b;
    return true;
}

static inline bool gptoss_add_u64(uint64_t a, uint64_t b, uint64_t* out) {
    if (b > UINT64_MAX - a) return false;
    *out = a + b;
    return true;
}

/* Element count of a buffer: the product of `count` factors (named by `names`) must not
 * overflow 64 bits, and count * element_size bytes must fit in size_t. The message
 * names the buffer and the factors: "output size num_tokens 4294967295 x num_rows
 * 4294967295 x 4 bytes overflows size_t" (a name "a->num_tokens", as the GPTOSS_SIZE
 * macros spell an argument, is shown as "num_tokens"). */
static inline enum gptoss_status gptoss_check_size_product(const char* buffer, size_t element_size,
                                                           uint64_t* elements_out, unsigned count,
                                                           const uint64_t* factors, const char* const* names) {
    uint64_t product = 1;
    bool ok = true;
    for (unsigned i = 0; i < count; i++) {
        if (!gptoss_mul_u64(product, factors[i], &product)) ok = false;
    }
    uint64_t bytes = 0;
    if (ok && (!gptoss_mul_u64(product, (uint64_t) element_size, &bytes) || bytes > (uint64_t) SIZE_MAX)) {
        ok = false;
    }
    if (!ok) {
        char text[384];
        size_t used = 0;
        for (unsigned i = 0; i < count && used < sizeof text; i++) {
            const char* arrow = strstr(names[i], "->");
            int n = snprintf(text + used, sizeof text - used, "%s%s %llu", i == 0 ? "" : " x ",
                             arrow != NULL ? arrow + 2 : names[i], (unsigned long long) factors[i]);
            if (n < 0) break;
            used += (size_t) n;
        }
        return gptoss_fail(GPTOSS_INVALID, "%s size %s x %zu bytes overflows size_t", buffer, text, element_size);
    }
    if (elements_out != NULL) *elements_out = product;
    return gptoss_status_success;
}

#define GPTOSS_SIZE1(buffer, esize, out, a)                                                          \
    gptoss_check_size_product(buffer, esize, out, 1, (const uint64_t[]){(uint64_t) (a)},              \
                              (const char* const[]){#a})
#define GPTOSS_SIZE2(buffer, esize, out, a, b)                                                       \
    gptoss_check_size_product(buffer, esize, out, 2, (const uint64_t[]){(uint64_t) (a), (uint64_t) (b)}, \
                              (const char* const[]){#a, #b})
#define GPTOSS_SIZE3(buffer, esize, out, a, b, c)                                                    \
    gptoss_check_size_product(buffer, esize, out, 3,                                                 \
                              (const uint64_t[]){(uint64_t) (a), (uint64_t) (b), (uint64_t) (c)},    \
                              (const char* const[]){#a, #b, #c})

/* A size the backends index with 32-bit integers. */
static inline enum gptoss_status gptoss_check_fits_u32(uint64_t value, const char* what) {
    if (value > UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "%s = %llu exceeds UINT32_MAX", what, (unsigned long long) value);
    }
    return gptoss_status_success;
}

/* The byte ranges [a, a + a_bytes) and [b, b + b_bytes) must be disjoint. A NULL pointer
 * (absent optional buffer) never overlaps. */
static inline enum gptoss_status gptoss_check_disjoint(const void* a, uint64_t a_bytes, const char* a_name,
                                                       const void* b, uint64_t b_bytes, const char* b_name) {
    if (a == NULL || b == NULL || a_bytes == 0 || b_bytes == 0) return gptoss_status_success;
    const uintptr_t a0 = (uintptr_t) a, b0 = (uintptr_t) b;
    const uintptr_t a1 = a_bytes > UINTPTR_MAX - a0 ? UINTPTR_MAX : a0 + (uintptr_t) a_bytes;
    const uintptr_t b1 = b_bytes > UINTPTR_MAX - b0 ? UINTPTR_MAX : b0 + (uintptr_t) b_bytes;
    if (a0 < b1 && b0 < a1) return gptoss_fail(GPTOSS_INVALID, "%s overlaps %s", a_name, b_name);
    return gptoss_status_success;
}

/* Attention head geometry shared by qkv, rope and sdpa: all >= 1, num_q_heads a multiple
 * of num_kv_heads, head_dim a multiple of head_dim_multiple; *qkv_dim_out = head_dim *
 * (num_q_heads + 2 * num_kv_heads), the row length of a qkv buffer, which the backends
 * index with 32-bit integers. */
static inline enum gptoss_status gptoss_check_heads(uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                                                    uint32_t head_dim_multiple, uint64_t* qkv_dim_out) {
    GPTOSS_TRY(gptoss_check_nonzero(num_q_heads, "num_q_heads"));
    GPTOSS_TRY(gptoss_check_nonzero(num_kv_heads, "num_kv_heads"));
    GPTOSS_TRY(gptoss_check_nonzero(head_dim, "head_dim"));
    if (num_q_heads % num_kv_heads != 0) {
        return gptoss_fail(GPTOSS_INVALID, "num_q_heads %u is not a multiple of num_kv_heads %u", num_q_heads,
                           num_kv_heads);
    }
    if (head_dim % head_dim_multiple != 0) {
        if (head_dim_multiple == 2) return gptoss_fail(GPTOSS_INVALID, "head_dim %u is not even", head_dim);
        return gptoss_fail(GPTOSS_INVALID, "head_dim %u is not a multiple of %u", head_dim, head_dim_multiple);
    }
    const uint64_t num_heads = (uint64_t) num_q_heads + 2 * (uint64_t) num_kv_heads; /* < 2^34 */
    uint64_t qkv_dim;
    if (!gptoss_mul_u64(head_dim, num_heads, &qkv_dim)) {
        return gptoss_fail(GPTOSS_INVALID, "head_dim %u x (num_q_heads %u + 2 x num_kv_heads %u) overflows 64 bits",
                           head_dim, num_q_heads, num_kv_heads);
    }
    if (qkv_dim > UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED,
                           "qkv row length head_dim %u x (num_q_heads %u + 2 x num_kv_heads %u) = %llu exceeds UINT32_MAX",
                           head_dim, num_q_heads, num_kv_heads, (unsigned long long) qkv_dim);
    }
    *qkv_dim_out = qkv_dim;
    return gptoss_status_success;
}

/* RoPE/YaRN parameters (header, RoPE section): rope_base finite and > 0 (its log is
 * taken), the others finite. */
static inline enum gptoss_status gptoss_check_rope_params(float rope_base, float interpolation_scale,
                                                          float yarn_offset, float yarn_scale, float yarn_multiplier) {
    GPTOSS_TRY(gptoss_check_finite_positive(rope_base, "rope_base"));
    GPTOSS_TRY(gptoss_check_finite(interpolation_scale, "interpolation_scale"));
    GPTOSS_TRY(gptoss_check_finite(yarn_offset, "yarn_offset"));
    GPTOSS_TRY(gptoss_check_finite(yarn_scale, "yarn_scale"));
    GPTOSS_TRY(gptoss_check_finite(yarn_multiplier, "yarn_multiplier"));
    return gptoss_status_success;
}

/* Routing geometry shared by the MoE family: num_tokens, num_active_experts, num_experts
 * >= 1, num_active_experts <= num_experts; *num_pairs_out = num_tokens *
 * num_active_experts (< 2^64). With expert_offsets (u32[num_experts + 1], values up to
 * num_pairs) the pair count must fit in u32 and num_experts + 1 must be indexable in
 * 32 bits. */
static inline enum gptoss_status gptoss_check_routing(uint32_t num_tokens, uint32_t num_active_experts,
                                                      uint32_t num_experts, bool uses_offsets,
                                                      uint64_t* num_pairs_out) {
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_active_experts, "num_active_experts"));
    GPTOSS_TRY(gptoss_check_nonzero(num_experts, "num_experts"));
    if (num_active_experts > num_experts) {
        return gptoss_fail(GPTOSS_INVALID, "num_active_experts %u exceeds num_experts %u", num_active_experts,
                           num_experts);
    }
    const uint64_t num_pairs = (uint64_t) num_tokens * num_active_experts;
    if (uses_offsets) {
        if (num_pairs > UINT32_MAX) {
            return gptoss_fail(GPTOSS_INVALID,
                               "num_tokens %u x num_active_experts %u = %llu does not fit the u32 expert_offsets",
                               num_tokens, num_active_experts, (unsigned long long) num_pairs);
        }
        if (num_experts == UINT32_MAX) {
            return gptoss_fail(GPTOSS_UNSUPPORTED, "num_experts %u: expert_offsets[num_experts + 1] exceeds 32-bit indexing",
                               num_experts);
        }
    }
    *num_pairs_out = num_pairs;
    return gptoss_status_success;
}

/* The paged KV cache of the varlen kernels (kernels.h): block_size, table_stride, num_seqs
 * >= 1; kv_stride a non-zero multiple of the block's 2 * head_dim * block_size floats
 * (*num_blocks_out = how many blocks a kv head holds); table_stride * block_size positions
 * indexable in 32 bits; the cache, num_kv_heads x kv_stride floats, must fit in size_t
 * (*cache_bytes_out); the tables u32[num_seqs][table_stride] too (*tables_bytes_out). */
static inline enum gptoss_status gptoss_check_paged_kv(uint32_t num_kv_heads, uint32_t head_dim, uint64_t kv_stride,
                                                       uint32_t block_size, uint32_t table_stride, uint32_t num_seqs,
                                                       uint64_t* num_blocks_out, uint64_t* cache_bytes_out,
                                                       uint64_t* tables_bytes_out) {
    GPTOSS_TRY(gptoss_check_nonzero(block_size, "block_size"));
    GPTOSS_TRY(gptoss_check_nonzero(table_stride, "table_stride"));
    GPTOSS_TRY(gptoss_check_nonzero(num_seqs, "num_seqs"));
    uint64_t block_floats = 0; /* floats of one block of one kv head */
    if (!gptoss_mul_u64(2 * (uint64_t) head_dim, block_size, &block_floats)) {
        return gptoss_fail(GPTOSS_INVALID, "2 x head_dim %u x block_size %u overflows 64 bits", head_dim, block_size);
    }
    if (kv_stride == 0 || kv_stride % block_floats != 0) {
        return gptoss_fail(GPTOSS_INVALID, "kv_stride %llu is not a non-zero multiple of 2 x head_dim %u x block_size %u",
                           (unsigned long long) kv_stride, head_dim, block_size);
    }
    if ((uint64_t) table_stride * block_size > (uint64_t) UINT32_MAX + 1) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "table_stride %u x block_size %u positions exceed 2^32", table_stride,
                           block_size);
    }
    uint64_t cache_elements = 0, table_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("kv_cache", 4, &cache_elements, num_kv_heads, kv_stride));
    GPTOSS_TRY(GPTOSS_SIZE2("block_tables", 4, &table_elements, num_seqs, table_stride));
    *num_blocks_out = kv_stride / block_floats;
    *cache_bytes_out = cache_elements * 4;
    *tables_bytes_out = table_elements * 4;
    return gptoss_status_success;
}

/* ---- host-content checks (backend->host_memory only) ---- */

/* ids[i] < limit for i < count: "expert_ids[5] = 40 is not below num_experts 32". */
static inline enum gptoss_status gptoss_check_ids_below(const uint32_t* ids, uint64_t count, const char* ids_name,
                                                        uint32_t limit, const char* limit_name) {
    for (uint64_t i = 0; i < count; i++) {
        if (ids[i] >= limit) {
            return gptoss_fail(GPTOSS_INVALID, "%s[%llu] = %u is not below %s %u", ids_name, (unsigned long long) i,
                               ids[i], limit_name, limit);
        }
    }
    return gptoss_status_success;
}

/* expert_offsets[0..num_experts] non-decreasing from 0 to total. */
static inline enum gptoss_status gptoss_check_expert_offsets(const uint32_t* offsets, uint32_t num_experts,
                                                             uint64_t total, const char* total_name) {
    if (offsets[0] != 0) return gptoss_fail(GPTOSS_INVALID, "expert_offsets[0] = %u is not 0", offsets[0]);
    for (uint64_t e = 1; e <= num_experts; e++) {
        if (offsets[e] < offsets[e - 1]) {
            return gptoss_fail(GPTOSS_INVALID, "expert_offsets[%llu] = %u is below expert_offsets[%llu] = %u",
                               (unsigned long long) e, offsets[e], (unsigned long long) (e - 1), offsets[e - 1]);
        }
    }
    if ((uint64_t) offsets[num_experts] != total) {
        return gptoss_fail(GPTOSS_INVALID, "expert_offsets[%u] = %u is not %s %llu", num_experts,
                           offsets[num_experts], total_name, (unsigned long long) total);
    }
    return gptoss_status_success;
}

/* For each pair p: expert_offsets[e] + intra[p] < expert_offsets[e + 1], e = ids[p]
 * (ids already checked below num_experts, offsets already checked). */
static inline enum gptoss_status gptoss_check_intra_offsets(const uint32_t* ids, const uint32_t* offsets,
                                                            const uint32_t* intra, uint64_t num_pairs) {
    for (uint64_t p = 0; p < num_pairs; p++) {
        const uint32_t e = ids[p];
        const uint64_t row = (uint64_t) offsets[e] + intra[p];
        if (row >= offsets[e + 1]) {
            return gptoss_fail(GPTOSS_INVALID,
                               "intra_expert_offsets[%llu] = %u is out of range for expert %u "
                               "(expert_offsets[%u] = %u + %u is not below expert_offsets[%u] = %u)",
                               (unsigned long long) p, intra[p], e, e, offsets[e], intra[p], e + 1, offsets[e + 1]);
        }
    }
    return gptoss_status_success;
}


/* Rows of a varlen kernel (kernels.h, paged KV cache): seq_ids[t] < num_seqs, positions[t]
 * < table_stride * block_size, and the table entries of the positions row t touches (its
 * own for the QKV write; with a window, its keys max(0, P + 1 - window) .. P for the
 * attention, window 0 = only P) below num_blocks. */
static inline enum gptoss_status gptoss_check_paged_rows(const uint32_t* positions, const uint32_t* seq_ids,
                                                         const uint32_t* block_tables, uint32_t num_tokens,
                                                         uint32_t num_seqs, uint32_t block_size,
                                                         uint32_t table_stride, uint64_t num_blocks,
                                                         uint32_t window) {
    const uint64_t max_positions = (uint64_t) table_stride * block_size;
    for (uint32_t t = 0; t < num_tokens; t++) {
        if (seq_ids[t] >= num_seqs) {
            return gptoss_fail(GPTOSS_INVALID, "seq_ids[%u] = %u is not below num_seqs %u", t, seq_ids[t], num_seqs);
        }
        const uint64_t P = positions[t];
        if (P >= max_positions) {
            return gptoss_fail(GPTOSS_INVALID, "positions[%u] = %u is not below table_stride %u x block_size %u", t,
                               positions[t], table_stride, block_size);
        }
        const uint64_t first = (window != 0 && P + 1 > window) ? P + 1 - window : (window == 0 ? P : 0);
        const uint32_t* row = block_tables + (size_t) seq_ids[t] * table_stride;
        for (uint64_t b = first / block_size; b <= P / block_size; b++) {
            if (row[b] >= num_blocks) {
                return gptoss_fail(GPTOSS_INVALID,
                                   "block_tables[%u][%llu] = %u (row %u, position %llu) is not below the cache's %llu "
                                   "blocks", seq_ids[t], (unsigned long long) b, row[b], t,
                                   (unsigned long long) (b * block_size > first ? b * block_size : first),
                                   (unsigned long long) num_blocks);
            }
        }
    }
    return gptoss_status_success;
}

#endif /* GPTOSS_KERNELS_CHECK_H */
