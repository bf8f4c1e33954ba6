/* Random-weight models: the one generator behind gptoss_model_create_random (weights made
 * in backend memory) and `gptoss make-model` (weights streamed to a model file). Both fill
 * every tensor with the same values, a pure function of (seed, tensor kind, layer, expert,
 * index), so a file made with a seed holds exactly the weights of the model made in memory
 * with that seed, on every backend.
 *
 * The distribution (scales keep the activations O(1)):
 *   bf16 tensors: uniform U(mean - a, mean + a), by the bf16_fill_random kernel:
 *     matrices a = sqrt(3 / fan_in) (embedding and sinks a = sqrt(3), i.e. unit variance);
 *     the Q rows of the QKV weight and bias also * 1/sqrt(head_dim), the SDPA scale a
 *     converted checkpoint has folded in; norm gains mean 1, a = 0.1 sqrt(3); biases
 *     a = 0.02 sqrt(3);
 *   MXFP4 blocks: uniform random bytes (u32_fill_random), i.e. random nibbles (rms 2.93);
 *   MXFP4 scales: stored byte 127 + 14 + e0 + {-1, 0, +1} (the file's +14 bias), e0 =
 *     round(log2(1 / (2.93 sqrt(fan_in)))), the offset chosen by mix64 of (key, index);
 *     one pattern per scale tensor kind, the same in every layer and expert.
 * Each tensor's fill uses its own Squares32 key, tensor_key(seed, kind, layer, expert) with
 * expert 0 for the tensors outside the MoE; element i uses counter offset i (the K and V
 * rows of the QKV tensors continue the Q rows' counter). Padding between tensors is zero
 * in files and unwritten in memory (nothing reads it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/error.h>
#include <gptoss/offline.h>

#include "files.h"
#include "util.h"
#include "writer.h"

/* Squares32 key of one tensor (odd, well mixed). */
static uint64_t tensor_key(uint64_t seed, enum gptoss_tensor_kind kind, uint32_t layer, uint32_t expert) {
    const uint64_t k = gptoss_mix64(gptoss_mix64(gptoss_mix64(seed ^ 0x243F6A8885A308D3ull) +
                                                 (uint64_t) kind * 0x9E3779B97F4A7C15ull) +
                                    (((uint64_t) layer << 32) | expert));
    return k | 1;
}

/* ---- the generator ----------------------------------------------------------------- */

struct generator {
    gptoss_backend_t backend;  /* runs the fill kernels */
    uint64_t seed;
    const struct gptoss_file_info* info;
    uint8_t* scales[2];        /* host patterns of the mlp1 / mlp2 scales */
};

static void make_scale_pattern(uint8_t* p, uint64_t n, uint32_t fan_in, uint64_t key) {
    const int e0 = (int) lround(log2(1.0 / (2.93 * sqrt((double) fan_in))));
    for (uint64_t j = 0; j < n; j++) {
        const int e = e0 + (int) (gptoss_mix64(key + (j + 1) * 0x9E3779B97F4A7C15ull) % 3) - 1;
        p[j] = (uint8_t) (127 + e + 14);
    }
}

static enum gptoss_status generator_init(struct generator* g, gptoss_backend_t backend, uint64_t seed,
                                         const struct gptoss_file_info* info) {
    memset(g, 0, sizeof(*g));
    g->backend = backend;
    g->seed = seed;
    g->info = info;
    g->scales[0] = malloc((size_t) info->mlp1_scales_bytes);
    g->scales[1] = malloc((size_t) info->mlp2_scales_bytes);
    if (g->scales[0] == NULL || g->scales[1] == NULL) {
        free(g->scales[0]);
        free(g->scales[1]);
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the scale patterns");
    }
    make_scale_pattern(g->scales[0], info->mlp1_scales_bytes, info->config.embedding_dim,
                       tensor_key(seed, gptoss_tensor_mlp1_scales, 0, 0));
    make_scale_pattern(g->scales[1], info->mlp2_scales_bytes, info->config.mlp_dim,
                       tensor_key(seed, gptoss_tensor_mlp2_scales, 0, 0));
    return gptoss_status_success;
}

static void generator_free(struct generator* g) {
    free(g->scales[0]);
    free(g->scales[1]);
}

/* The law of a bf16 tensor: U(mean - a, mean + a) element by element, the first `scaled`
 * elements U(mean - a * row_scale, mean + a * row_scale) instead (the Q rows). */
struct bf16_law {
    float mean, a;
    uint64_t scaled;
    float row_scale;
};

/* The law of a bf16 tensor kind (the distribution at the top of this file); 0 for the
 * MXFP4 blocks and scales, which are not bf16. */
static int bf16_law_of(const struct gptoss_model_config* c, enum gptoss_tensor_kind kind, struct bf16_law* law) {
    const float s3 = 1.7320508075688772f;
    const float q_scale = (float) (1.0 / sqrt((double) c->head_dim));
    const uint64_t q_rows = (uint64_t) c->num_heads * c->head_dim;
    *law = (struct bf16_law){0.0f, 0.02f * s3, 0, 1.0f}; /* biases */
    switch (kind) {
        case gptoss_tensor_embedding:
        case gptoss_tensor_sinks:
            law->a = s3;
            return 1;
        case gptoss_tensor_unembedding:
        case gptoss_tensor_gate_weight:
            law->a = (float) sqrt(3.0 / (double) c->embedding_dim);
            return 1;
        case gptoss_tensor_attn_norm:
        case gptoss_tensor_mlp_norm:
        case gptoss_tensor_final_norm:
            law->mean = 1.0f;
            law->a = 0.1f * s3;
            return 1;
        case gptoss_tensor_qkv_weight:
            *law = (struct bf16_law){0.0f, (float) sqrt(3.0 / (double) c->embedding_dim), q_rows * c->embedding_dim,
                                     q_scale};
            return 1;
        case gptoss_tensor_qkv_bias:
            law->scaled = q_rows;
            law->row_scale = q_scale;
            return 1;
        case gptoss_tensor_out_weight:
            law->a = (float) sqrt(3.0 / ((double) c->num_heads * c->head_dim));
            return 1;
        case gptoss_tensor_out_bias:
        case gptoss_tensor_gate_bias:
        case gptoss_tensor_mlp1_bias:
        case gptoss_tensor_mlp2_bias:
            return 1;
        default:
            return 0;
    }
}

/* bf16 elements [i0, i0 + n) of a tensor of the given law; out = element i0. */
static enum gptoss_status fill_bf16(const struct generator* g, uint64_t key, gptoss_bf16* out, uint64_t i0, uint64_t n,
                                    const struct bf16_law* law) {
    enum gptoss_status st = gptoss_status_success;
    if (i0 < law->scaled) {
        const uint64_t m = law->scaled - i0 < n ? law->scaled - i0 : n;
        const float as = law->a * law->row_scale;
        st = gptoss_bf16_fill_random(g->backend, out, m, key, i0, law->mean - as, law->mean + as);
        out += m;
        i0 += m;
        n -= m;
    }
    if (st == gptoss_status_success && n != 0) {
        st = gptoss_bf16_fill_random(g->backend, out, n, key, i0, law->mean - law->a, law->mean + law->a);
    }
    return st;
}

/* Bytes [start, start + size) of tensor t into dst (memory of g->backend); start and size
 * are multiples of 4 unless they end the tensor. */
static enum gptoss_status generator_fill(const struct generator* g, const struct gptoss_tensor_ref* t, uint64_t start,
                                         uint64_t size, uint8_t* dst) {
    const uint64_t key = tensor_key(g->seed, t->kind, t->layer, t->expert);
    struct bf16_law law;
    enum gptoss_status st;
    if (bf16_law_of(&g->info->config, t->kind, &law)) {
        st = fill_bf16(g, key, (gptoss_bf16*) dst, start / 2, size / 2, &law);
    } else if (t->kind == gptoss_tensor_mlp1_blocks || t->kind == gptoss_tensor_mlp2_blocks) {
        st = gptoss_u32_fill_random(g->backend, (uint32_t*) dst, size / 4, key, start / 4);
    } else {
        st = gptoss_backend_copy(g->backend, dst, g->scales[t->kind == gptoss_tensor_mlp2_scales] + start,
                                 (size_t) size, gptoss_copy_host_to_backend);
    }
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "random weights: filling block.%u.%s (expert %u) failed: %s", t->layer,
                           gptoss_tensor_kind_name(t->kind), t->expert, msg);
    }
    return gptoss_status_success;
}

/* ---- presets ----------------------------------------------------------------------- */

int gptoss_model_preset(const char* name, struct gptoss_model_config* out) {
    if (name == NULL) return -1;
    struct gptoss_model_config c;
    memset(&c, 0, sizeof(c));
    c.num_active_experts = 4;
    c.swiglu_limit = 7.0f;
    c.rmsnorm_epsilon = 1e-5f;
    c.attention_window = 128;
    c.head_dim = 64;
    c.num_heads = 64;
    c.num_kv_heads = 8;
    c.embedding_dim = 2880;
    c.mlp_dim = 2880;
    if (strcmp(name, "20b") == 0) {
        c.num_blocks = 24;
        c.num_experts = 32;
    } else if (strcmp(name, "120b") == 0) {
        c.num_blocks = 36;
        c.num_experts = 128;
    } else if (strcmp(name, "tiny") == 0) {
        c.num_blocks = 4;
        c.num_experts = 8;
        c.embedding_dim = 64;
        c.mlp_dim = 128;
        c.head_dim = 16;
        c.num_heads = 8;
        c.num_kv_heads = 2;
        c.attention_window = 16;
    } else {
        return -1;
    }
    gptoss_model_preset_set_rope(name, &c);
    *out = c;
    return 0;
}

void gptoss_model_preset_set_rope(const char* name, struct gptoss_model_config* c) {
    gptoss_writer_set_rope(c, 4096.0, 32.0, 150000.0, 1.0, 32.0);
    if (name != NULL && strcmp(name, "tiny") == 0) c->context_length = 4096;
}

/* ---- model files (make-model) ------------------------------------------------------- */

struct file_source {
    struct generator gen;
    uint8_t* buf; /* host chunk, filled by the CPU backend */
    size_t buf_size;
};

static enum gptoss_status write_tensor(void* source, struct gptoss_writer* w, const struct gptoss_tensor_ref* t) {
    struct file_source* s = source;
    for (uint64_t start = 0; start < t->size; start += s->buf_size) {
        const uint64_t m = t->size - start < s->buf_size ? t->size - start : s->buf_size;
        enum gptoss_status st = generator_fill(&s->gen, t, start, m, s->buf);
        if (st == gptoss_status_success) st = gptoss_writer_write(w, s->buf, (size_t) m);
        if (st != gptoss_status_success) return st;
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_write_random_model(const char* path, const struct gptoss_model_config* config, uint64_t seed,
                                             const struct gptoss_vocab* vocab, uint32_t flags) {
    struct gptoss_writer w;
    enum gptoss_status st = gptoss_writer_open(&w, path, config, vocab, (flags & GPTOSS_WRITE_REPLACE) != 0);
    if (st != gptoss_status_success) return st;
    struct file_source s;
    memset(&s, 0, sizeof(s));
    gptoss_backend_t cpu = NULL;
    st = gptoss_backend_create_cpu(0, &cpu);
    if (st == gptoss_status_success) st = generator_init(&s.gen, cpu, seed, &w.info);
    if (st != gptoss_status_success) {
        gptoss_error_keep_begin();
        gptoss_backend_release(cpu);
        gptoss_error_keep_end();
        gptoss_writer_abort(&w);
        return st;
    }
    s.buf_size = (size_t) 4 << 20; /* a multiple of 4: chunks of the MXFP4 blocks are whole u32 */
    s.buf = malloc(s.buf_size);
    if (s.buf == NULL) {
        st = gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a %zu-byte write buffer", s.buf_size);
        gptoss_writer_abort(&w);
    } else {
        st = gptoss_writer_write_weights(&w, write_tensor, &s, (flags & GPTOSS_WRITE_PROGRESS) != 0);
    }
    free(s.buf);
    generator_free(&s.gen);
    gptoss_error_keep_begin();
    gptoss_backend_release(cpu);
    gptoss_error_keep_end();
    return st;
}

/* ---- models in memory (gptoss_model_create_random) ------------------------------------ */

struct memory_job {
    struct generator gen;
    uint8_t* weights; /* backend memory, W0 */
};

static enum gptoss_status fill_tensor(void* arg, const struct gptoss_tensor_ref* t) {
    struct memory_job* job = arg;
    return generator_fill(&job->gen, t, 0, t->size, job->weights + t->offset);
}

enum gptoss_status gptoss_model_create_random(const char* preset, uint32_t num_layers, uint64_t seed,
                                              gptoss_backend_t backend, gptoss_model_t* model_out) {
    return gptoss_model_create_random_ex(preset, num_layers, seed, NULL, backend, model_out);
}

enum gptoss_status gptoss_model_create_random_ex(const char* preset, uint32_t num_layers, uint64_t seed,
                                                 const char* vocab_path, gptoss_backend_t backend,
                                                 gptoss_model_t* model_out) {
    gptoss_clear_error();
    if (preset == NULL) return gptoss_fail(gptoss_status_invalid_argument, "preset is NULL");
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (model_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model_out is NULL");
    const enum gptoss_backend_kind kind = gptoss_backend_get_kind(backend);
    if (kind != gptoss_backend_kind_cpu && kind != gptoss_backend_kind_cuda) {
        return gptoss_fail(gptoss_status_invalid_argument, "backend kind %d is unknown", (int) kind);
    }
    struct gptoss_model_config config;
    if (gptoss_model_preset(preset, &config) != 0) {
        return gptoss_fail(gptoss_status_invalid_argument, "unknown random-model preset '%.40s' (tiny, 20b, 120b)",
                           preset);
    }
    if (num_layers != 0) {
        if (num_layers > 1024) {
            return gptoss_fail(gptoss_status_invalid_argument, "num_layers %u exceeds 1024", num_layers);
        }
        config.num_blocks = num_layers;
    }

    /* tokenizer section and layout, exactly as make-model writes and the reader parses them */
    struct gptoss_vocab vocab;
    enum gptoss_status st = gptoss_vocab_load_tiktoken(vocab_path != NULL ? vocab_path : gptoss_default_vocab_path(),
                                                       &vocab);
    if (st != gptoss_status_success) return st;
    uint8_t* section = NULL;
    size_t section_size = 0;
    uint32_t regex_size = 0, tokens_size = 0;
    st = gptoss_tokenizer_section_build(&vocab, &section, &section_size, &regex_size, &tokens_size);
    const uint32_t num_text = vocab.num_tokens;
    gptoss_vocab_free(&vocab);
    if (st != gptoss_status_success) return st;
    uint8_t header[GPTOSS_FILE_HEADER_SIZE];
    gptoss_file_build_header(header, &config, 16, num_text, regex_size, tokens_size);
    struct gptoss_file_info info;
    st = gptoss_file_parse_header(header, &info);
    if (st != gptoss_status_success) {
        free(section);
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "random model '%s' (%u layers): %s", preset, config.num_blocks, msg);
    }
    char what[64];
    snprintf(what, sizeof(what), "random model '%s'", preset);
    gptoss_model_t model = NULL;
    struct memory_job job;
    st = gptoss_model_create_with_layout(&info, section, section_size, backend, what, &model, &job.weights);
    free(section);
    if (st != gptoss_status_success) return st;
    st = generator_init(&job.gen, backend, seed, &info);
    if (st == gptoss_status_success) {
        st = gptoss_file_for_each_tensor(&info, fill_tensor, &job);
        /* the copies from the scale patterns (and CUDA's asynchronous errors) are done after
         * this; after a failure of the fill, that failure is the one reported */
        if (st != gptoss_status_success) gptoss_error_keep_begin();
        const enum gptoss_status sync = gptoss_backend_synchronize(backend);
        if (st != gptoss_status_success) gptoss_error_keep_end();
        if (st == gptoss_status_success && sync != gptoss_status_success) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
            st = gptoss_fail(sync, "%s: filling the weights failed: %s", what, msg);
        }
        generator_free(&job.gen);
    }
    if (st != gptoss_status_success) {
        gptoss_model_release(model); /* keeps the failure's message */
        return st;
    }
    *model_out = model;
    return gptoss_status_success;
}
