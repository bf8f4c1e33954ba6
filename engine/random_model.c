/* Random-weight models created directly in backend memory (gptoss_model_create_random):
 * no file is written or read except the o200k vocabulary. The shapes are make-model's
 * presets (gptoss_model_preset, engine/writer.c); the layout is the file layout
 * (gptoss_file_parse_header -> gptoss_file_compute_layout), so every offset is the one a
 * file written by make-model would have; the tokenizer section is built by the writer's
 * code (gptoss_tokenizer_section_build) and parsed by the reader's.
 *
 * The weights are one gptoss_backend_alloc of the file's weights size, filled on the
 * backend, one call per tensor, with the public random-fill kernels:
 *   bf16 tensors: gptoss_bf16_fill_random over U(-a, a), a = sqrt(3) * make-model's std
 *     (matrices a = sqrt(3 / fan_in); Q rows of the QKV weight/bias also * 1/sqrt(head_dim),
 *     the folded SDPA scale; embedding and sinks a = sqrt(3); norm gains 1 +- 0.1 sqrt(3);
 *     biases +- 0.02 sqrt(3));
 *   MXFP4 blocks: gptoss_u32_fill_random (uniform random nibbles);
 *   MXFP4 scales: copied from a host pattern (one per fan-in, a function of the seed):
 *     stored byte 127 + 14 + e0 + {-1, 0, +1}, e0 = round(log2(1 / (2.93 sqrt(fan_in)))),
 *     as make-model writes them.
 * Each tensor's fill uses its own Squares32 key derived from (seed, tensor kind, layer,
 * expert), offset 0 (the K/V rows of the QKV tensors continue the Q rows' counter), so the
 * weights are a pure function of (preset, num_layers, seed) and bit-identical on every
 * backend. Padding between tensors is not written (nothing reads it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal/error.h"
#include "model.h"
#include "writer.h"

static inline uint64_t rm_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Squares32 key of one tensor (odd, well mixed). */
static uint64_t tensor_key(uint64_t seed, enum gptoss_tensor_kind kind, uint32_t layer, uint32_t expert) {
    const uint64_t k = rm_mix64(rm_mix64(rm_mix64(seed ^ 0x243F6A8885A308D3ull) + (uint64_t) kind * 0x9E3779B97F4A7C15ull) +
                                (((uint64_t) layer << 32) | expert));
    return k | 1;
}

struct filler {
    gptoss_backend_t backend;
    uint8_t* base;          /* the weights allocation */
    uint64_t seed;
    const struct gptoss_file_info* info;
    const uint8_t* scales1; /* host patterns for the mlp1 / mlp2 scales */
    const uint8_t* scales2;
};

static enum gptoss_status fail_tensor(enum gptoss_status st, enum gptoss_tensor_kind kind, uint32_t layer,
                                      uint32_t expert) {
    char msg[400];
    snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
    return gptoss_fail(st, "random model: filling block.%u.%s (expert %u) failed: %s", layer,
                       gptoss_tensor_kind_name(kind), expert, msg);
}

/* bf16 tensor at `off` (bytes), `n` elements ~ U(-a, a) + mean; the first `scaled`
 * elements use a * row_scale instead (Q rows). */
static enum gptoss_status fill_bf16(const struct filler* f, enum gptoss_tensor_kind kind, uint32_t layer,
                                    uint64_t off, uint64_t n, float mean, float a, uint64_t scaled, float row_scale) {
    const uint64_t key = tensor_key(f->seed, kind, layer, 0);
    gptoss_bf16* out = (gptoss_bf16*) (f->base + off);
    enum gptoss_status st;
    if (scaled != 0) {
        const float as = a * row_scale;
        st = gptoss_bf16_fill_random(f->backend, out, scaled, key, 0, mean - as, mean + as);
        if (st != gptoss_status_success) return fail_tensor(st, kind, layer, 0);
    }
    if (n > scaled) {
        st = gptoss_bf16_fill_random(f->backend, out + scaled, n - scaled, key, scaled, mean - a, mean + a);
        if (st != gptoss_status_success) return fail_tensor(st, kind, layer, 0);
    }
    return gptoss_status_success;
}

static void make_scale_pattern(uint8_t* p, uint64_t n, uint32_t fan_in, uint64_t key) {
    const int e0 = (int) lround(log2(1.0 / (2.93 * sqrt((double) fan_in))));
    for (uint64_t j = 0; j < n; j++) {
        const int e = e0 + (int) (rm_mix64(key + (j + 1) * 0x9E3779B97F4A7C15ull) % 3) - 1;
        p[j] = (uint8_t) (127 + e + 14);
    }
}

static enum gptoss_status fill_weights(const struct filler* f) {
    const struct gptoss_file_info* in = f->info;
    const struct gptoss_model_config* c = &in->config;
    const float s3 = 1.7320508075688772f;
    const float a_h = (float) sqrt(3.0 / (double) c->embedding_dim);
    const float a_out = (float) sqrt(3.0 / ((double) c->num_heads * c->head_dim));
    const float q_scale = (float) (1.0 / sqrt((double) c->head_dim));
    const float a_norm = 0.1f * s3, a_bias = 0.02f * s3;
    const uint64_t q_rows = (uint64_t) c->num_heads * c->head_dim;
    enum gptoss_status st;
#define TRY(call)                                           \
    do {                                                    \
        if ((st = (call)) != gptoss_status_success) return st; \
    } while (0)
    TRY(fill_bf16(f, gptoss_tensor_embedding, 0, in->embedding, in->embedding_bytes / 2, 0.0f, s3, 0, 1.0f));
    for (uint32_t n = 0; n < c->num_blocks; n++) {
        const uint64_t d = (uint64_t) n * in->per_block;
        const struct gptoss_layer_offsets* b = &in->layer0;
        TRY(fill_bf16(f, gptoss_tensor_attn_norm, n, b->attn_norm + d, in->norm_bytes / 2, 1.0f, a_norm, 0, 1.0f));
        TRY(fill_bf16(f, gptoss_tensor_qkv_weight, n, b->qkv_weight + d, in->qkv_weight_bytes / 2, 0.0f, a_h,
                      q_rows * c->embedding_dim, q_scale));
        TRY(fill_bf16(f, gptoss_tensor_qkv_bias, n, b->qkv_bias + d, in->qkv_bias_bytes / 2, 0.0f, a_bias, q_rows,
                      q_scale));
        TRY(fill_bf16(f, gptoss_tensor_sinks, n, b->sinks + d, in->sinks_bytes / 2, 0.0f, s3, 0, 1.0f));
        TRY(fill_bf16(f, gptoss_tensor_out_weight, n, b->out_weight + d, in->out_weight_bytes / 2, 0.0f, a_out, 0,
                      1.0f));
        TRY(fill_bf16(f, gptoss_tensor_out_bias, n, b->out_bias + d, in->out_bias_bytes / 2, 0.0f, a_bias, 0, 1.0f));
        TRY(fill_bf16(f, gptoss_tensor_mlp_norm, n, b->mlp_norm + d, in->norm_bytes / 2, 1.0f, a_norm, 0, 1.0f));
        TRY(fill_bf16(f, gptoss_tensor_gate_weight, n, b->gate_weight + d, in->gate_weight_bytes / 2, 0.0f, a_h, 0,
                      1.0f));
        TRY(fill_bf16(f, gptoss_tensor_gate_bias, n, b->gate_bias + d, in->gate_bias_bytes / 2, 0.0f, a_bias, 0,
                      1.0f));
    }
    TRY(fill_bf16(f, gptoss_tensor_final_norm, 0, in->final_norm, in->norm_bytes / 2, 1.0f, a_norm, 0, 1.0f));
    TRY(fill_bf16(f, gptoss_tensor_unembedding, 0, in->unembedding, in->embedding_bytes / 2, 0.0f, a_h, 0, 1.0f));
    const struct gptoss_expert_layout* x = &in->expert;
    for (uint32_t n = 0; n < c->num_blocks; n++) {
        for (uint32_t e = 0; e < c->num_experts; e++) {
            const uint64_t base = in->shared_size + (uint64_t) n * in->moe_size + (uint64_t) e * x->per_expert;
            uint8_t* p = f->base + base;
#define BLOCKS(kind, field, bytes)                                                                          \
    st = gptoss_u32_fill_random(f->backend, (uint32_t*) (p + x->field), (bytes) / 4,                        \
                                tensor_key(f->seed, kind, n, e), 0);                                        \
    if (st != gptoss_status_success) return fail_tensor(st, kind, n, e)
#define SCALES(kind, field, bytes, pattern)                                                                 \
    st = gptoss_backend_copy(f->backend, p + x->field, (pattern), (size_t) (bytes), gptoss_copy_host_to_backend); \
    if (st != gptoss_status_success) return fail_tensor(st, kind, n, e)
#define BIAS(kind, field, bytes)                                                                            \
    st = gptoss_bf16_fill_random(f->backend, (gptoss_bf16*) (p + x->field), (bytes) / 2,                    \
                                 tensor_key(f->seed, kind, n, e), 0, -a_bias, a_bias);                      \
    if (st != gptoss_status_success) return fail_tensor(st, kind, n, e)
            BLOCKS(gptoss_tensor_mlp1_blocks, mlp1_blocks, in->mlp1_blocks_bytes);
            SCALES(gptoss_tensor_mlp1_scales, mlp1_scales, in->mlp1_scales_bytes, f->scales1);
            BIAS(gptoss_tensor_mlp1_bias, mlp1_bias, in->mlp1_bias_bytes);
            BLOCKS(gptoss_tensor_mlp2_blocks, mlp2_blocks, in->mlp2_blocks_bytes);
            SCALES(gptoss_tensor_mlp2_scales, mlp2_scales, in->mlp2_scales_bytes, f->scales2);
            BIAS(gptoss_tensor_mlp2_bias, mlp2_bias, in->mlp2_bias_bytes);
#undef BLOCKS
#undef SCALES
#undef BIAS
        }
    }
#undef TRY
    return gptoss_status_success;
}

/* Drops the half-made model (the release keeps the failure's message). */
static enum gptoss_status fail_release(struct gptoss_model* m, enum gptoss_status st) {
    gptoss_model_release(m);
    return st;
}

enum gptoss_status gptoss_model_create_random(const char* preset, uint32_t num_layers, uint64_t seed,
                                              gptoss_backend_t backend, gptoss_model_t* model_out) {
    gptoss_clear_error();
    if (preset == NULL) return gptoss_fail(gptoss_status_invalid_argument, "preset is NULL");
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (model_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model_out is NULL");
    const enum gptoss_backend_kind kind = gptoss_backend_get_kind(backend);
    if (kind != gptoss_backend_kind_cpu && kind != gptoss_backend_kind_cuda) {
        return gptoss_fail(gptoss_status_invalid_argument, "backend kind %d is unknown", (int) kind);
    }
    struct gptoss_model_config config;
    if (strlen(preset) >= sizeof(((struct gptoss_model*) 0)->random_preset) ||
        gptoss_model_preset(preset, &config) != 0) {
        return gptoss_fail(gptoss_status_invalid_argument, "unknown random-model preset '%.40s' (tiny, 20b, 120b)",
                           preset);
    }
    if (num_layers != 0) {
        if (num_layers > 1024) {
            return gptoss_fail(gptoss_status_invalid_argument, "num_layers %u exceeds 1024", num_layers);
        }
        config.num_blocks = num_layers;
    }

    /* tokenizer section, exactly as make-model writes it */
    const char* vocab_path = gptoss_default_vocab_path();
    struct gptoss_vocab vocab;
    enum gptoss_status st = gptoss_vocab_load_tiktoken(vocab_path, &vocab);
    if (st != gptoss_status_success) return st;
    uint8_t* section = NULL;
    size_t section_size = 0;
    uint32_t regex_size = 0, tokens_size = 0;
    st = gptoss_tokenizer_section_build(&vocab, &section, &section_size, &regex_size, &tokens_size);
    const uint32_t num_text = vocab.num_tokens;
    gptoss_vocab_free(&vocab);
    if (st != gptoss_status_success) return st;

    /* layout: the reader's header validation and layout of the equivalent file */
    uint8_t header[GPTOSS_FILE_HEADER_SIZE];
    gptoss_writer_build_header(header, &config, 16, num_text, regex_size, tokens_size);
    struct gptoss_file_info info;
    st = gptoss_file_parse_header(header, &info);
    if (st != gptoss_status_success) {
        free(section);
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "random model '%s' (%u layers): %s", preset, config.num_blocks, msg);
    }
    if (section_size != info.tokenizer_end - GPTOSS_FILE_HEADER_SIZE) {
        free(section);
        return gptoss_fail(gptoss_status_invalid_state, "tokenizer section is %zu bytes, the layout says %llu",
                           section_size, (unsigned long long) (info.tokenizer_end - GPTOSS_FILE_HEADER_SIZE));
    }

    struct gptoss_model* m = calloc(1, sizeof(*m));
    if (m == NULL) {
        free(section);
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the model");
    }
    m->fd = -1;
    m->backend = backend;
    atomic_init(&m->ref_count, 1);
    m->config = info.config;
    m->vocabulary_size = info.num_text_tokens + info.num_special_tokens;
    m->is_random = 1;
    snprintf(m->random_preset, sizeof(m->random_preset), "%s", preset);
    m->random_seed = seed;

    st = gptoss_tokenizer_create_from_section(&info, section, section_size, &m->tokenizer);
    free(section);
    if (st != gptoss_status_success) return fail_release(m, st);
    if ((st = gptoss_model_set_layout(m, &info)) != gptoss_status_success) return fail_release(m, st);

    void* weights = NULL;
    st = gptoss_backend_alloc(backend, m->weights_size, &weights);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        gptoss_fail(st, "random model '%s': cannot allocate %zu bytes of weights on %s: %s", preset, m->weights_size,
                    gptoss_backend_get_name(backend), msg);
        return fail_release(m, st);
    }
    m->weights = weights;
    m->weights_owned = 1;
    if (kind == gptoss_backend_kind_cpu && getenv("GPTOSS_RANDOM_NO_HUGEPAGE") == NULL) {
        /* host weights: ask for transparent huge pages before the first touch (the fill):
         * fewer page faults while filling, fewer TLB misses while streaming the weights */
        const uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
        const uintptr_t lo = ((uintptr_t) weights + page - 1) / page * page;
        const uintptr_t hi = ((uintptr_t) weights + m->weights_size) / page * page;
        if (hi > lo) (void) madvise((void*) lo, hi - lo, MADV_HUGEPAGE);
    }

    uint8_t* scales1 = malloc((size_t) info.mlp1_scales_bytes);
    uint8_t* scales2 = malloc((size_t) info.mlp2_scales_bytes);
    if (scales1 == NULL || scales2 == NULL) {
        free(scales1);
        free(scales2);
        gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the scale patterns");
        return fail_release(m, gptoss_status_insufficient_memory);
    }
    make_scale_pattern(scales1, info.mlp1_scales_bytes, config.embedding_dim,
                       tensor_key(seed, gptoss_tensor_mlp1_scales, 0, 0));
    make_scale_pattern(scales2, info.mlp2_scales_bytes, config.mlp_dim,
                       tensor_key(seed, gptoss_tensor_mlp2_scales, 0, 0));
    const struct filler f = {backend, weights, seed, &info, scales1, scales2};
    st = fill_weights(&f);
    /* the copies from the patterns (and CUDA's asynchronous errors) are done after this;
     * after a failure of the fill, that failure is the one reported */
    if (st != gptoss_status_success) gptoss_error_keep_begin();
    const enum gptoss_status sync = gptoss_backend_synchronize(backend);
    if (st != gptoss_status_success) gptoss_error_keep_end();
    free(scales1);
    free(scales2);
    if (st == gptoss_status_success && sync != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        st = gptoss_fail(sync, "random model '%s': filling the weights failed: %s", preset, msg);
    }
    if (st != gptoss_status_success) return fail_release(m, st);
    *model_out = m;
    return gptoss_status_success;
}
