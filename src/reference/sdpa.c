/* Reference: scaled dot-product attention with sinks, sliding window and GQA, in double. */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>

#include "common/math.h"

/* Attention of one query head over keys first..last of one kv head; writes head_dim
 * doubles. An empty key set (first > last) gives 0. */
static void attend_one_head(const float* q, const float* kv_head, const gptoss_bf16* sink, double* out,
                            uint64_t first, uint64_t last, uint32_t head_dim, double scale) {
    for (uint32_t d = 0; d < head_dim; d++) {
        out[d] = 0.0;
    }
    if (first > last) {
        return;
    }

    /* max over the sink and the scores (the scores are recomputed below; clarity first) */
    double m = (sink != NULL) ? (double) gptoss_bf16_to_f32(sink->bits) : -INFINITY;
    for (uint64_t t = first; t <= last; t++) {
        const float* k = kv_head + t * 2 * head_dim;
        double s = 0.0;
        for (uint32_t d = 0; d < head_dim; d++) {
            s += (double) q[d] * (double) k[d];
        }
        s *= scale;
        if (s > m) {
            m = s;
        }
    }

    double denominator = (sink != NULL) ? exp((double) gptoss_bf16_to_f32(sink->bits) - m) : 0.0;
    for (uint64_t t = first; t <= last; t++) {
        const float* k = kv_head + t * 2 * head_dim;
        const float* v = k + head_dim;
        double s = 0.0;
        for (uint32_t d = 0; d < head_dim; d++) {
            s += (double) q[d] * (double) k[d];
        }
        const double p = exp(s * scale - m);
        denominator += p;
        for (uint32_t d = 0; d < head_dim; d++) {
            out[d] += p * (double) v[d];
        }
    }
    for (uint32_t d = 0; d < head_dim; d++) {
        out[d] /= denominator;
    }
}

void gptoss_ref_f32_sdpa(const struct gptoss_f32_sdpa_args* args, double* output) {
    const size_t q_row_size = (size_t) args->head_dim * (args->num_q_heads + 2 * (size_t) args->num_kv_heads);
    const size_t out_row_size = (size_t) args->head_dim * args->num_q_heads;
    const uint32_t group = args->num_q_heads / args->num_kv_heads;

    for (uint32_t i = 0; i < args->num_q_tokens; i++) {
        const uint64_t pos = (uint64_t) args->num_kv_tokens + i;
        /* keys max(0, pos + 1 - window) .. pos; window UINT32_MAX covers everything */
        const uint64_t first = (pos + 1 > args->window) ? pos + 1 - args->window : 0;
        for (uint32_t hq = 0; hq < args->num_q_heads; hq++) {
            const uint32_t h = hq / group;
            attend_one_head(args->q + i * q_row_size + (size_t) hq * args->head_dim, args->kv + h * args->kv_stride,
                            args->sinks != NULL ? &args->sinks[hq] : NULL,
                            output + i * out_row_size + (size_t) hq * args->head_dim, first, pos, args->head_dim,
                            (double) args->scale);
        }
    }
}

void gptoss_ref_f32_sdpa_varlen(const struct gptoss_f32_sdpa_varlen_args* args, double* output) {
    const uint32_t D = args->head_dim, Hkv = args->num_kv_heads;
    const size_t q_row_size = (size_t) D * (args->num_q_heads + 2 * (size_t) Hkv);
    const size_t out_row_size = (size_t) D * args->num_q_heads;
    for (uint32_t i = 0; i < args->num_q_tokens; i++) {
        const uint64_t P = args->positions[i];
        const uint64_t first = (P + 1 > args->window) ? P + 1 - args->window : 0;
        const uint64_t n = P - first + 1; /* keys first..P become positions 0..n-1 */
        const uint32_t* table = args->block_tables + (size_t) args->seq_ids[i] * args->table_stride;
        float* kv = malloc((size_t) Hkv * n * 2 * D * sizeof(float));
        if (kv == NULL) abort(); /* the oracle has no error path */
        for (uint32_t h = 0; h < Hkv; h++) {
            for (uint64_t t = first; t <= P; t++) {
                const uint64_t slot = (uint64_t) table[t / args->block_size] * args->block_size + t % args->block_size;
                const float* src = args->kv + h * args->kv_stride + slot * 2 * D;
                float* dst = kv + ((size_t) h * n + (t - first)) * 2 * D;
                for (uint32_t d = 0; d < 2 * D; d++) dst[d] = src[d];
            }
        }
        const struct gptoss_f32_sdpa_args one = {args->q + i * q_row_size, kv, args->sinks, NULL, args->window,
                                                 (uint64_t) n * 2 * D, 1, (uint32_t) (n - 1), args->num_q_heads, Hkv,
                                                 D, args->scale};
        gptoss_ref_f32_sdpa(&one, output + i * out_row_size);
        free(kv);
    }
}
