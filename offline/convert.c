/* gptoss convert: original checkpoint (config.json + *.safetensors) -> model file,
 * bit-compatible with upstream's create-local-model.py (MODEL_FORMAT.md 5.4, 7, 10).
 * Every tensor's dtype and shape is checked before the output is created. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/error.h>
#include <jansson.h>

#include "files.h"
#include "safetensors.h"
#include "writer.h"

struct cv_source {
    struct gptoss_model_config c;
    struct gptoss_st_set set;
    uint64_t vocab_size;               /* rows written for (un)embedding */
    uint8_t* buf;
    size_t buf_size;
    uint64_t overflowing_scales;       /* scale bytes >= 241 (wrap or +inf after +14) */
};

/* ---- config.json -------------------------------------------------------------------- */

static enum gptoss_status get_number(const json_t* root, const char* key, int required, double dflt, double lo,
                                     double hi, double* out) {
    const json_t* v = json_object_get(root, key);
    if (v == NULL) {
        if (required) return gptoss_fail(gptoss_status_invalid_argument, "missing \"%s\"", key);
        *out = dflt;
        return gptoss_status_success;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        return gptoss_fail(gptoss_status_invalid_argument, "\"%s\" is not a finite number", key);
    }
    const double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        return gptoss_fail(gptoss_status_invalid_argument, "\"%s\" = %g is outside [%g, %g]", key, x, lo,
                           hi);
    }
    *out = x;
    return gptoss_status_success;
}

static enum gptoss_status get_u32(const json_t* root, const char* key, int required, uint32_t dflt, uint32_t lo,
                                  uint32_t hi, uint32_t* out) {
    const json_t* v = json_object_get(root, key);
    if (v == NULL) {
        if (required) return gptoss_fail(gptoss_status_invalid_argument, "missing \"%s\"", key);
        *out = dflt;
        return gptoss_status_success;
    }
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t) lo || json_integer_value(v) > (json_int_t) hi) {
        return gptoss_fail(gptoss_status_invalid_argument, "\"%s\" must be an integer in [%u, %u]", key, lo, hi);
    }
    *out = (uint32_t) json_integer_value(v);
    return gptoss_status_success;
}

/* Parses config.json text into a model config (MODEL_FORMAT.md 3, 7.1). Shape keys are
 * required; RoPE keys default to torch/model.py's ModelConfig defaults. */
enum gptoss_status gptoss_convert_parse_config(const char* text, size_t size, struct gptoss_model_config* c,
                                               uint32_t* vocab_size_out, uint32_t* experts_per_token_out) {
    json_error_t error;
    json_t* root = json_loadb(text, size, JSON_DECODE_ANY, &error);
    if (root == NULL) {
        return gptoss_fail(gptoss_status_invalid_argument, "%s (line %d, byte %d)", error.text, error.line,
                           error.position);
    }
    enum gptoss_status st = gptoss_status_success;
    if (!json_is_object(root)) {
        st = gptoss_fail(gptoss_status_invalid_argument, "not a JSON object");
        goto done;
    }
    memset(c, 0, sizeof(*c));
    uint32_t ept = 4, vocab = 201088;
    double swiglu, theta, initial_ctx, factor, alpha, beta;
#define U(key, req, d, lo, hi, dst) if ((st = get_u32(root, key, req, d, lo, hi, dst)) != gptoss_status_success) goto done
#define F(key, req, d, lo, hi, dst) if ((st = get_number(root, key, req, d, lo, hi, dst)) != gptoss_status_success) goto done
    U("num_hidden_layers", 1, 0, 1, 1024, &c->num_blocks);
    U("num_experts", 1, 0, 1, 4096, &c->num_experts);
    U("experts_per_token", 0, 4, 1, 4096, &ept);
    U("vocab_size", 0, 201088, 1, 1u << 24, &vocab);
    U("hidden_size", 1, 0, 32, 1u << 18, &c->embedding_dim);
    U("intermediate_size", 1, 0, 32, 1u << 18, &c->mlp_dim);
    U("head_dim", 1, 0, 2, 4096, &c->head_dim);
    U("num_attention_heads", 1, 0, 1, 4096, &c->num_heads);
    U("num_key_value_heads", 1, 0, 1, 4096, &c->num_kv_heads);
    U("sliding_window", 0, 128, 0, UINT32_MAX, &c->attention_window);
    F("swiglu_limit", 0, 7.0, 1e-30, 1e30, &swiglu);
    F("rope_theta", 0, 150000.0, 1.0000001, 1e30, &theta);
    F("initial_context_length", 0, 4096.0, 1.0, 1e9, &initial_ctx);
    F("rope_scaling_factor", 0, 32.0, 1e-6, 1e6, &factor);
    F("rope_ntk_alpha", 0, 1.0, 1e-9, 1e9, &alpha);
    F("rope_ntk_beta", 0, 32.0, 1e-9, 1e9, &beta);
#undef U
#undef F
    if (alpha == beta) {
        st = gptoss_fail(gptoss_status_invalid_argument, "rope_ntk_alpha == rope_ntk_beta (%g) makes YaRN undefined", alpha);
        goto done;
    }
    c->num_active_experts = 4; /* hard-coded by upstream's converter (MODEL_FORMAT.md 3) */
    c->swiglu_limit = (float) swiglu;
    c->rmsnorm_epsilon = 1e-5f;
    gptoss_writer_set_rope(c, initial_ctx, factor, theta, alpha, beta);
    *vocab_size_out = vocab;
    *experts_per_token_out = ept;
done:
    json_decref(root);
    return st;
}

/* ---- tensor checks ------------------------------------------------------------------ */

static enum gptoss_status expect(const struct gptoss_st_set* set, const char* name, const char* dtype, uint32_t rank,
                                 const uint64_t* shape, int rows_at_least, const struct gptoss_st_tensor** out) {
    const struct gptoss_st_tensor* t = gptoss_st_find(set, name);
    if (t == NULL) return gptoss_fail(gptoss_status_invalid_argument, "checkpoint has no tensor %s", name);
    if (strcmp(t->dtype, dtype) != 0) {
        return gptoss_fail(gptoss_status_unsupported_argument, "tensor %s has dtype %s, expected %s", name, t->dtype, dtype);
    }
    int ok = t->rank == rank;
    for (uint32_t i = 0; ok && i < rank; i++) {
        ok = (i == 0 && rows_at_least) ? t->shape[0] >= shape[0] : t->shape[i] == shape[i];
    }
    if (!ok) {
        char got[160] = "", want[160] = "";
        size_t g = 0, w = 0;
        for (uint32_t i = 0; i < t->rank && g < sizeof(got) - 24; i++) {
            g += (size_t) snprintf(got + g, sizeof(got) - g, "%s%llu", i ? ", " : "", (unsigned long long) t->shape[i]);
        }
        for (uint32_t i = 0; i < rank && w < sizeof(want) - 24; i++) {
            w += (size_t) snprintf(want + w, sizeof(want) - w, "%s%s%llu", i ? ", " : "", i == 0 && rows_at_least ? ">=" : "",
                                   (unsigned long long) shape[i]);
        }
        return gptoss_fail(gptoss_status_invalid_argument, "tensor %s has shape [%s], expected [%s]", name, got, want);
    }
    *out = t;
    return gptoss_status_success;
}

static const struct gptoss_st_tensor* find_layer(const struct gptoss_st_set* set, uint32_t layer, const char* suffix) {
    char name[160];
    snprintf(name, sizeof(name), "block.%u.%s", layer, suffix);
    return gptoss_st_find(set, name);
}

static enum gptoss_status check_all(const struct cv_source* s) {
    const struct gptoss_model_config* c = &s->c;
    const uint64_t H = c->embedding_dim, I = c->mlp_dim, D = c->head_dim, Hq = c->num_heads, Hkv = c->num_kv_heads;
    const uint64_t E = c->num_experts, QKV = D * (Hq + 2 * Hkv);
    const struct gptoss_st_tensor* t;
    enum gptoss_status st;
#define X(name, dtype, rows_at_least, ...)                                                           \
    do {                                                                                            \
        const uint64_t shape[] = {__VA_ARGS__};                                                     \
        st = expect(&s->set, name, dtype, sizeof(shape) / sizeof(shape[0]), shape, rows_at_least, &t); \
        if (st != gptoss_status_success) return st;                                                 \
    } while (0)
    X("embedding.weight", "BF16", 1, s->vocab_size, H);
    X("norm.scale", "BF16", 0, H);
    X("unembedding.weight", "BF16", 1, s->vocab_size, H);
    for (uint32_t n = 0; n < c->num_blocks; n++) {
        char name[160];
#define L(suffix, dtype, ...)                                          \
    snprintf(name, sizeof(name), "block.%u.%s", n, suffix);            \
    X(name, dtype, 0, __VA_ARGS__)
        L("attn.norm.scale", "BF16", H);
        L("attn.qkv.weight", "BF16", QKV, H);
        L("attn.qkv.bias", "BF16", QKV);
        L("attn.sinks", "BF16", Hq);
        L("attn.out.weight", "BF16", H, Hq * D);
        L("attn.out.bias", "BF16", H);
        L("mlp.norm.scale", "BF16", H);
        L("mlp.gate.weight", "BF16", E, H);
        L("mlp.gate.bias", "BF16", E);
        L("mlp.mlp1_weight.blocks", "U8", E, 2 * I, H / 32, 16);
        L("mlp.mlp1_weight.scales", "U8", E, 2 * I, H / 32);
        L("mlp.mlp1_bias", "BF16", E, 2 * I);
        L("mlp.mlp2_weight.blocks", "U8", E, H, I / 32, 16);
        L("mlp.mlp2_weight.scales", "U8", E, H, I / 32);
        L("mlp.mlp2_bias", "BF16", E, H);
#undef L
    }
#undef X
    return gptoss_status_success;
}

/* ---- writing ------------------------------------------------------------------------ */

static enum gptoss_status write_qkv(struct cv_source* s, struct gptoss_writer* w, const struct gptoss_st_tensor* t,
                                    uint64_t row_len, uint64_t size) {
    const struct gptoss_model_config* c = &s->c;
    const uint64_t D = c->head_dim, Hq = c->num_heads, Hkv = c->num_kv_heads;
    const uint8_t* src = gptoss_st_data(&s->set, t);
    uint8_t* dst = s->buf;
    if (size > s->buf_size) {
        uint8_t* g = realloc(s->buf, (size_t) size);
        if (g == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %llu bytes", (unsigned long long) size);
        s->buf = g;
        s->buf_size = (size_t) size;
        dst = g;
    }
    const uint64_t row_bytes = row_len * 2;
    /* Q scale 0.5 and K scale 0.25 (upstream, 1/sqrt(64) in total); for other head_dims
     * K gets 2/sqrt(D) so that the product stays 1/sqrt(D). */
    const float q_scale = 0.5f;
    const float k_scale = D == 64 ? 0.25f : (float) (2.0 / sqrt((double) D));
    for (uint64_t head = 0; head < Hq + 2 * Hkv; head++) {
        const int is_q = head < Hq, is_k = !is_q && head < Hq + Hkv;
        for (uint64_t r = 0; r < D; r++) {
            /* new row 2i = old row i, new row 2i+1 = old row i + D/2 (Q and K heads) */
            const uint64_t old = (is_q || is_k) ? (r % 2 == 0 ? r / 2 : r / 2 + D / 2) : r;
            const uint8_t* in = src + (head * D + old) * row_bytes;
            uint8_t* o = dst + (head * D + r) * row_bytes;
            if (!is_q && !is_k) {
                memcpy(o, in, (size_t) row_bytes);
                continue;
            }
            const float scale = is_q ? q_scale : k_scale;
            for (uint64_t j = 0; j < row_len; j++) {
                const uint16_t b = (uint16_t) (in[2 * j] | (in[2 * j + 1] << 8));
                const uint16_t v = gptoss_f32_to_bf16_bits(gptoss_bf16_bits_to_f32(b) * scale);
                o[2 * j] = (uint8_t) v;
                o[2 * j + 1] = (uint8_t) (v >> 8);
            }
        }
    }
    return gptoss_writer_write(w, dst, (size_t) size);
}

static enum gptoss_status write_scales(struct cv_source* s, struct gptoss_writer* w, const uint8_t* src, uint64_t size) {
    for (uint64_t start = 0; start < size; start += s->buf_size) {
        const uint64_t m = size - start < s->buf_size ? size - start : s->buf_size;
        for (uint64_t j = 0; j < m; j++) {
            const uint8_t v = src[start + j];
            if (v >= 241) s->overflowing_scales++;
            s->buf[j] = (uint8_t) (v + 14); /* mod 256, as upstream */
        }
        enum gptoss_status st = gptoss_writer_write(w, s->buf, (size_t) m);
        if (st != gptoss_status_success) return st;
    }
    return gptoss_status_success;
}

static enum gptoss_status cv_write(void* source, struct gptoss_writer* w, const struct gptoss_tensor_ref* ref) {
    struct cv_source* s = source;
    const enum gptoss_tensor_kind kind = ref->kind;
    const uint32_t layer = ref->layer, expert = ref->expert;
    const uint64_t size = ref->size;
    const struct gptoss_st_tensor* t = NULL;
    static const char* const suffix[] = {
        [gptoss_tensor_attn_norm] = "attn.norm.scale",          [gptoss_tensor_qkv_weight] = "attn.qkv.weight",
        [gptoss_tensor_qkv_bias] = "attn.qkv.bias",             [gptoss_tensor_sinks] = "attn.sinks",
        [gptoss_tensor_out_weight] = "attn.out.weight",         [gptoss_tensor_out_bias] = "attn.out.bias",
        [gptoss_tensor_mlp_norm] = "mlp.norm.scale",            [gptoss_tensor_gate_weight] = "mlp.gate.weight",
        [gptoss_tensor_gate_bias] = "mlp.gate.bias",            [gptoss_tensor_mlp1_blocks] = "mlp.mlp1_weight.blocks",
        [gptoss_tensor_mlp1_scales] = "mlp.mlp1_weight.scales", [gptoss_tensor_mlp1_bias] = "mlp.mlp1_bias",
        [gptoss_tensor_mlp2_blocks] = "mlp.mlp2_weight.blocks", [gptoss_tensor_mlp2_scales] = "mlp.mlp2_weight.scales",
        [gptoss_tensor_mlp2_bias] = "mlp.mlp2_bias",
    };
    switch (kind) {
        case gptoss_tensor_embedding: t = gptoss_st_find(&s->set, "embedding.weight"); break;
        case gptoss_tensor_unembedding: t = gptoss_st_find(&s->set, "unembedding.weight"); break;
        case gptoss_tensor_final_norm: t = gptoss_st_find(&s->set, "norm.scale"); break;
        default: t = find_layer(&s->set, layer, suffix[kind]); break;
    }
    if (t == NULL) return gptoss_fail(gptoss_status_invalid_state, "tensor for %s vanished", gptoss_tensor_kind_name(kind));
    const uint8_t* data = gptoss_st_data(&s->set, t);
    switch (kind) {
        case gptoss_tensor_qkv_weight: return write_qkv(s, w, t, s->c.embedding_dim, size);
        case gptoss_tensor_qkv_bias: return write_qkv(s, w, t, 1, size);
        case gptoss_tensor_mlp1_blocks:
        case gptoss_tensor_mlp1_bias:
        case gptoss_tensor_mlp2_blocks:
        case gptoss_tensor_mlp2_bias:
            /* per-expert slice [expert] of an [E, ...] tensor */
            if (t->size != size * s->c.num_experts) break;
            return gptoss_writer_write(w, data + (uint64_t) expert * size, (size_t) size);
        case gptoss_tensor_mlp1_scales:
        case gptoss_tensor_mlp2_scales:
            if (t->size != size * s->c.num_experts) break;
            return write_scales(s, w, data + (uint64_t) expert * size, size);
        case gptoss_tensor_embedding:
        case gptoss_tensor_unembedding:
            if (t->size < size) break;
            return gptoss_writer_write(w, data, (size_t) size); /* rows [0, V) */
        default:
            if (t->size != size) break;
            return gptoss_writer_write(w, data, (size_t) size);
    }
    return gptoss_fail(gptoss_status_invalid_state, "tensor %s: %llu bytes do not fit the layout's %llu", t->name,
                       (unsigned long long) t->size, (unsigned long long) size);
}

static char* read_file_text(const char* path, size_t max, size_t* size_out) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 4096, n = 0;
    char* buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            if (cap >= max) {
                free(buf);
                buf = NULL;
                errno = EFBIG;
                break;
            }
            char* g = realloc(buf, cap * 2);
            if (g == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    if (buf != NULL) *size_out = n;
    return buf;
}

enum gptoss_status gptoss_convert_checkpoint(const char* dir, const char* out, const char* vocab_path, uint32_t flags,
                                             struct gptoss_convert_notes* notes_out) {
    struct cv_source s;
    memset(&s, 0, sizeof(s));
    struct gptoss_vocab vocab = {0, NULL, NULL};
    char cfg_path[4096];
    if ((size_t) snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", dir) >= sizeof(cfg_path)) {
        return gptoss_fail(gptoss_status_invalid_argument, "checkpoint directory path is too long (%zu bytes)",
                           strlen(dir));
    }
    size_t cfg_size = 0;
    char* cfg = read_file_text(cfg_path, 1 << 20, &cfg_size);
    if (cfg == NULL) return gptoss_fail(gptoss_status_io_error, "%s: cannot read: %s", cfg_path, strerror(errno));
    uint32_t ckpt_vocab = 0, ept = 0;
    enum gptoss_status st = gptoss_convert_parse_config(cfg, cfg_size, &s.c, &ckpt_vocab, &ept);
    free(cfg);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "%s: %s", cfg_path, msg);
    }
    if (s.c.num_experts < 4) {
        return gptoss_fail(gptoss_status_invalid_argument,
                           "num_experts %u is below the 4 active experts the format implies", s.c.num_experts);
    }
    if (vocab_path == NULL) vocab_path = gptoss_default_vocab_path();
    if ((st = gptoss_vocab_load_tiktoken(vocab_path, &vocab)) != gptoss_status_success) return st;
    s.vocab_size = (uint64_t) vocab.num_tokens + 16;
    if (ckpt_vocab < s.vocab_size) {
        st = gptoss_fail(gptoss_status_invalid_argument, "config.json vocab_size %u is below the tokenizer's %llu tokens",
                         ckpt_vocab, (unsigned long long) s.vocab_size);
        goto done;
    }
    {
        /* validate the shape exactly as the reader will, before touching the tensors */
        uint8_t header[GPTOSS_FILE_HEADER_SIZE];
        struct gptoss_file_info info;
        gptoss_file_build_header(header, &s.c, 16, vocab.num_tokens, (uint32_t) strlen(gptoss_o200k_regex) + 1,
                                 3 * vocab.num_tokens);
        if ((st = gptoss_file_parse_header(header, &info)) != gptoss_status_success) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
            st = gptoss_fail(st, "%s: %s", cfg_path, msg);
            goto done;
        }
    }
    st = gptoss_st_open_dir(dir, &s.set);
    if (st == gptoss_status_success) st = check_all(&s);
    if (st != gptoss_status_success) goto done;
    struct gptoss_writer w;
    st = gptoss_writer_open(&w, out, &s.c, &vocab, (flags & GPTOSS_WRITE_REPLACE) != 0);
    if (st != gptoss_status_success) goto done;
    s.buf_size = 4u << 20;
    s.buf = malloc(s.buf_size);
    if (s.buf == NULL) {
        gptoss_writer_abort(&w);
        st = gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the conversion buffer (%zu bytes)",
                         s.buf_size);
        goto done;
    }
    st = gptoss_writer_write_weights(&w, cv_write, &s, (flags & GPTOSS_WRITE_PROGRESS) != 0);
    if (st == gptoss_status_success && notes_out != NULL) {
        notes_out->experts_per_token = ept;
        notes_out->overflowing_scales = s.overflowing_scales;
    }
done:
    free(s.buf);
    gptoss_st_close(&s.set);
    gptoss_vocab_free(&vocab);
    return st;
}
