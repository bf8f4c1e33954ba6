/* gptoss make-model: model files with random weights at any shape and the real o200k
 * tokenizer, streamed to disk (full 20b/120b files never live in memory). Every value is a
 * pure function of (seed, tensor, layer, expert, index), so files are reproducible and
 * independent of chunking. Scales keep activations O(1):
 *   bf16 matrices ~ N(0, 1/fan_in) (Q rows also * 1/sqrt(head_dim): the file has the SDPA
 *   scale folded in, as converted checkpoints do), embedding ~ N(0, 1), norm gains
 *   1 + N(0, 0.1^2), biases N(0, 0.02^2), sinks N(0, 1);
 *   MXFP4: uniform random nibbles (rms 2.93) with block exponents round(log2(1/(2.93
 *   sqrt(fan_in)))) + {-1, 0, +1}, stored with the file's +14 bias. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_tools.h"
#include "internal/error.h"
#include "writer.h"

struct mm_source {
    struct gptoss_model_config c;
    uint64_t seed;
    uint8_t* buf;
    size_t buf_size;
};

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t stream_key(uint64_t seed, enum gptoss_tensor_kind kind, uint32_t layer, uint32_t expert) {
    return mix64(mix64(mix64(seed ^ 0x6A09E667F3BCC909ull) + (uint64_t) kind * 0x9E3779B97F4A7C15ull) +
                 (((uint64_t) layer << 32) | expert));
}

static inline uint64_t rnd(uint64_t key, uint64_t i) { return mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull); }

/* Normal pair for index pair p. */
static void normal_pair(uint64_t key, uint64_t p, float* a, float* b) {
    const uint64_t r1 = rnd(key, 2 * p), r2 = rnd(key, 2 * p + 1);
    const double u1 = ((double) (r1 >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    const double u2 = (double) (r2 >> 11) * 0x1.0p-53;
    const double r = sqrt(-2.0 * log(u1));
    *a = (float) (r * cos(6.283185307179586 * u2));
    *b = (float) (r * sin(6.283185307179586 * u2));
}

/* bf16 tensor of n elements: value i = mean + std * N(0,1) * (row scale for Q rows). */
static enum gptoss_status write_bf16(struct mm_source* s, struct gptoss_writer* w, uint64_t key, uint64_t n, float mean,
                                     float std, uint64_t row_len, uint64_t scaled_rows, float row_scale) {
    uint16_t* out = (uint16_t*) s->buf;
    const uint64_t chunk = s->buf_size / 2 & ~(uint64_t) 1;
    for (uint64_t start = 0; start < n; start += chunk) {
        const uint64_t m = n - start < chunk ? n - start : chunk;
        for (uint64_t j = 0; j < m; j += 2) {
            float a, b;
            normal_pair(key, (start + j) / 2, &a, &b);
            const uint64_t i = start + j;
            float sa = std, sb = std;
            if (row_len != 0 && i / row_len < scaled_rows) sa *= row_scale;
            if (row_len != 0 && (i + 1) / row_len < scaled_rows) sb *= row_scale;
            out[j] = gptoss_f32_to_bf16_bits(mean + sa * a);
            if (j + 1 < m) out[j + 1] = gptoss_f32_to_bf16_bits(mean + sb * b);
        }
        enum gptoss_status st = gptoss_writer_write(w, out, (size_t) m * 2);
        if (st != gptoss_status_success) return st;
    }
    return gptoss_status_success;
}

static enum gptoss_status write_random_bytes(struct mm_source* s, struct gptoss_writer* w, uint64_t key, uint64_t n) {
    for (uint64_t start = 0; start < n; start += s->buf_size) {
        const uint64_t m = n - start < s->buf_size ? n - start : s->buf_size;
        for (uint64_t j = 0; j < m; j += 8) {
            const uint64_t r = rnd(key, (start + j) / 8);
            const size_t k = m - j < 8 ? (size_t) (m - j) : 8;
            memcpy(s->buf + j, &r, k);
        }
        enum gptoss_status st = gptoss_writer_write(w, s->buf, (size_t) m);
        if (st != gptoss_status_success) return st;
    }
    return gptoss_status_success;
}

static enum gptoss_status write_scales(struct mm_source* s, struct gptoss_writer* w, uint64_t key, uint64_t n,
                                       uint32_t fan_in) {
    const int e0 = (int) lround(log2(1.0 / (2.93 * sqrt((double) fan_in))));
    for (uint64_t start = 0; start < n; start += s->buf_size) {
        const uint64_t m = n - start < s->buf_size ? n - start : s->buf_size;
        for (uint64_t j = 0; j < m; j++) {
            const int e = e0 + (int) (rnd(key, start + j) % 3) - 1;
            s->buf[j] = (uint8_t) (127 + e + 14);
        }
        enum gptoss_status st = gptoss_writer_write(w, s->buf, (size_t) m);
        if (st != gptoss_status_success) return st;
    }
    return gptoss_status_success;
}

static enum gptoss_status mm_write(void* source, struct gptoss_writer* w, enum gptoss_tensor_kind kind, uint32_t layer,
                                   uint32_t expert, uint64_t size) {
    struct mm_source* s = source;
    const struct gptoss_model_config* c = &s->c;
    const uint64_t key = stream_key(s->seed, kind, layer, expert);
    const float inv_h = (float) (1.0 / sqrt((double) c->embedding_dim));
    switch (kind) {
        case gptoss_tensor_embedding:
            return write_bf16(s, w, key, size / 2, 0.0f, 1.0f, 0, 0, 1.0f);
        case gptoss_tensor_unembedding:
        case gptoss_tensor_gate_weight:
            return write_bf16(s, w, key, size / 2, 0.0f, inv_h, 0, 0, 1.0f);
        case gptoss_tensor_attn_norm:
        case gptoss_tensor_mlp_norm:
        case gptoss_tensor_final_norm:
            return write_bf16(s, w, key, size / 2, 1.0f, 0.1f, 0, 0, 1.0f);
        case gptoss_tensor_qkv_weight:
            return write_bf16(s, w, key, size / 2, 0.0f, inv_h, c->embedding_dim,
                              (uint64_t) c->num_heads * c->head_dim, (float) (1.0 / sqrt((double) c->head_dim)));
        case gptoss_tensor_qkv_bias:
            return write_bf16(s, w, key, size / 2, 0.0f, 0.02f, 1, (uint64_t) c->num_heads * c->head_dim,
                              (float) (1.0 / sqrt((double) c->head_dim)));
        case gptoss_tensor_sinks:
            return write_bf16(s, w, key, size / 2, 0.0f, 1.0f, 0, 0, 1.0f);
        case gptoss_tensor_out_weight:
            return write_bf16(s, w, key, size / 2, 0.0f,
                              (float) (1.0 / sqrt((double) c->num_heads * c->head_dim)), 0, 0, 1.0f);
        case gptoss_tensor_out_bias:
        case gptoss_tensor_gate_bias:
        case gptoss_tensor_mlp1_bias:
        case gptoss_tensor_mlp2_bias:
            return write_bf16(s, w, key, size / 2, 0.0f, 0.02f, 0, 0, 1.0f);
        case gptoss_tensor_mlp1_blocks:
        case gptoss_tensor_mlp2_blocks:
            return write_random_bytes(s, w, key, size);
        case gptoss_tensor_mlp1_scales:
            return write_scales(s, w, key, size, c->embedding_dim);
        case gptoss_tensor_mlp2_scales:
            return write_scales(s, w, key, size, c->mlp_dim);
    }
    return gptoss_fail(gptoss_status_invalid_state, "unknown tensor kind %d", (int) kind);
}

static const char make_model_usage[] =
    "usage: gptoss make-model --preset tiny|20b|120b [options] OUT\n"
    "  Writes a model file with random weights and the real o200k_harmony tokenizer\n"
    "  (200014 tokens), streamed to disk. OUT appears only when complete (written to a\n"
    "  temporary file next to it, then renamed); an existing OUT is kept unless --force.\n"
    "  --preset tiny   4 layers, 8 experts (4 active), hidden 64, mlp 128, 8 Q / 2 KV heads\n"
    "                  of dim 16, window 16, context 4096 (about 55 MB)\n"
    "  --preset 20b    gpt-oss-20b shapes (24 layers, 32 experts; about 13.8 GB)\n"
    "  --preset 120b   gpt-oss-120b shapes (36 layers, 128 experts; about 65 GB)\n"
    "  --layers N, --experts N, --active-experts N, --hidden N, --mlp N, --heads N,\n"
    "  --kv-heads N, --head-dim N, --window N, --context N   override the preset (header\n"
    "                  fields num_blocks, num_experts, num_active_experts, embedding_dim,\n"
    "                  mlp_dim, num_heads, num_kv_heads, head_dim, attention_window,\n"
    "                  context_length; checked as the engine will when loading)\n"
    "  --seed S        random seed (default 0)\n"
    "  --force         replace OUT if it exists\n"
    "  --vocab PATH    o200k_base.tiktoken (default: $GPTOSS_VOCAB or the repository's\n"
    "                  data/o200k_base.tiktoken)\n"
    "  --quiet         no progress line\n";

int gptoss_cli_make_model(int argc, char** argv) {
    const char* preset = NULL;
    const char* out = NULL;
    const char* vocab_path = NULL;
    unsigned long long seed = 0;
    int quiet = 0, force = 0;
    struct {
        const char* flag;
        unsigned long long value;
        int set;
    } ov[] = {{"--layers", 0, 0}, {"--experts", 0, 0}, {"--active-experts", 0, 0}, {"--hidden", 0, 0},
              {"--mlp", 0, 0},    {"--heads", 0, 0},   {"--kv-heads", 0, 0},       {"--head-dim", 0, 0},
              {"--window", 0, 0}, {"--context", 0, 0}};
    const size_t nov = sizeof(ov) / sizeof(ov[0]);
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(make_model_usage, stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (strcmp(a, "--force") == 0) {
            force = 1;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            if (i + 1 >= argc) {
                fprintf(stderr, "gptoss make-model: %s needs a value\n%s", a, make_model_usage);
                return 2;
            }
            const char* v = argv[++i];
            if (strcmp(a, "--preset") == 0) {
                preset = v;
            } else if (strcmp(a, "--vocab") == 0) {
                vocab_path = v;
            } else if (strcmp(a, "--seed") == 0 || strcmp(a, "-s") == 0) {
                if (gptoss_cli_parse_u64(v, UINT64_MAX, &seed) != 0) {
                    fprintf(stderr, "gptoss make-model: --seed '%s' is not a non-negative integer\n", v);
                    return 2;
                }
            } else {
                size_t k = 0;
                while (k < nov && strcmp(a, ov[k].flag) != 0) k++;
                if (k == nov) {
                    fprintf(stderr, "gptoss make-model: unknown option '%s'\n%s", a, make_model_usage);
                    return 2;
                }
                if (gptoss_cli_parse_u64(v, UINT32_MAX, &ov[k].value) != 0) {
                    fprintf(stderr, "gptoss make-model: %s '%s' is not an integer in [0, 2^32)\n", a, v);
                    return 2;
                }
                ov[k].set = 1;
            }
            continue;
        }
        if (out != NULL) {
            fprintf(stderr, "gptoss make-model: more than one output path ('%s', '%s')\n", out, a);
            return 2;
        }
        out = a;
    }
    if (preset == NULL || out == NULL) {
        fprintf(stderr, "gptoss make-model: --preset and OUT are required\n%s", make_model_usage);
        return 2;
    }
    if (gptoss_cli_check_output("make-model", out, force) != 0) return 2;
    struct mm_source s;
    memset(&s, 0, sizeof(s));
    struct gptoss_model_config* c = &s.c;
    if (gptoss_model_preset(preset, c) != 0) {
        fprintf(stderr, "gptoss make-model: unknown preset '%s' (tiny, 20b, 120b)\n", preset);
        return 2;
    }
    uint32_t* fields[] = {&c->num_blocks, &c->num_experts, &c->num_active_experts, &c->embedding_dim, &c->mlp_dim,
                          &c->num_heads,  &c->num_kv_heads, &c->head_dim,          &c->attention_window,
                          &c->context_length};
    for (size_t k = 0; k + 1 < nov; k++) {
        if (ov[k].set) *fields[k] = (uint32_t) ov[k].value;
    }
    /* RoPE/YaRN as the released models, again: the YaRN offset/scale depend on head_dim */
    gptoss_model_preset_set_rope(preset, c);
    if (ov[nov - 1].set) c->context_length = (uint32_t) ov[nov - 1].value;
    s.seed = seed;
    if (gptoss_model_config_validate(c) != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 2;
    }

    if (vocab_path == NULL) vocab_path = gptoss_default_vocab_path();
    struct gptoss_vocab vocab;
    enum gptoss_status st = gptoss_vocab_load_tiktoken(vocab_path, &vocab);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 1;
    }
    if (vocab.num_tokens != 199998) {
        fprintf(stderr, "gptoss make-model: warning: %s has %u tokens, o200k_base has 199998\n", vocab_path,
                vocab.num_tokens);
    }
    struct gptoss_writer w;
    st = gptoss_writer_open(&w, out, c, &vocab, force);
    gptoss_vocab_free(&vocab);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 1;
    }
    s.buf_size = 4u << 20;
    s.buf = malloc(s.buf_size);
    if (s.buf == NULL) {
        gptoss_writer_abort(&w);
        fprintf(stderr, "gptoss make-model: out of memory\n");
        return 1;
    }
    st = gptoss_writer_write_weights(&w, mm_write, &s, !quiet);
    free(s.buf);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    return 0;
}
