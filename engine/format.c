/* The model file format (format.h): header fields and their checks, the layout. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gptoss/error.h>

#include "format.h"

const uint8_t gptoss_file_magic[12] = {'G', 'P', 'T', '-', 'O', 'S', 'S', ' ', 'v', '1', '.', '0'};
const uint8_t gptoss_model_uuid[16] = {0xDF, 0x52, 0xDC, 0x86, 0x17, 0x89, 0x4E, 0xD0,
                                       0xA2, 0x95, 0x66, 0xF1, 0x05, 0x08, 0x14, 0x5B};
const uint8_t gptoss_layout_uuid[16] = {0x22, 0x91, 0x77, 0xA8, 0x57, 0x75, 0x42, 0x68,
                                        0xBF, 0xD8, 0xD5, 0x88, 0xB3, 0x51, 0xC5, 0x6D};
const uint8_t gptoss_tokenizer_uuid[16] = {0x74, 0x01, 0xAD, 0xED, 0x2A, 0x95, 0x40, 0xCB,
                                           0xB7, 0x82, 0x9C, 0xCE, 0xBA, 0xAF, 0xE7, 0x2B};
const uint8_t gptoss_special_token_uuids[gptoss_special_token_max][16] = {
    [gptoss_special_token_return] = {0xF7, 0x99, 0xFF, 0x69, 0x19, 0x92, 0x43, 0xC4, 0xA3, 0xD8, 0xD8, 0x31, 0xF4,
                                     0x75, 0xDC, 0x75},
    [gptoss_special_token_start] = {0x55, 0xA7, 0x7C, 0x2F, 0x8A, 0x01, 0x4C, 0x54, 0x8A, 0xC2, 0x31, 0x3B, 0xFC,
                                    0x7E, 0x20, 0x8D},
    [gptoss_special_token_message] = {0x16, 0xE4, 0x04, 0x31, 0xF4, 0x7F, 0x4B, 0x22, 0xB5, 0x9B, 0x8B, 0x27, 0x8F,
                                      0xC3, 0x0A, 0x54},
    [gptoss_special_token_end] = {0xFC, 0xAC, 0x2F, 0x6D, 0x47, 0x05, 0x4F, 0x6B, 0xB2, 0x28, 0x64, 0x2A, 0xCC,
                                  0xAC, 0x72, 0x38},
    [gptoss_special_token_refusal] = {0xE1, 0x5B, 0xA7, 0x02, 0x28, 0xC4, 0x42, 0x92, 0xAB, 0x8F, 0xFF, 0xA4, 0x34,
                                      0x70, 0x91, 0x28},
    [gptoss_special_token_constrain] = {0xC0, 0xBB, 0x14, 0xC7, 0x60, 0x22, 0x49, 0xDA, 0xAD, 0x08, 0x79, 0x2D,
                                        0x67, 0xE8, 0xB4, 0x70},
    [gptoss_special_token_channel] = {0xFD, 0x3D, 0xDA, 0x11, 0xC8, 0xAB, 0x40, 0x33, 0x87, 0x6E, 0xD9, 0x3D, 0xEB,
                                      0x17, 0x2C, 0x93},
    [gptoss_special_token_call] = {0x12, 0x20, 0xF7, 0x96, 0xE3, 0x88, 0x4D, 0xE5, 0xB4, 0x87, 0xFE, 0x2E, 0xB5,
                                   0xFE, 0x03, 0xC0},
    [gptoss_special_token_untrusted] = {0x07, 0xD7, 0xDA, 0x55, 0xB3, 0x46, 0x4C, 0xFF, 0x8B, 0x37, 0x7C, 0xEF,
                                        0xAC, 0xF8, 0xA3, 0xE8},
    [gptoss_special_token_end_untrusted] = {0xF2, 0x65, 0xBD, 0x9C, 0xC7, 0x17, 0x46, 0x9E, 0xA4, 0x47, 0x92, 0x06,
                                            0x87, 0xD6, 0x5D, 0x90},
};

/* ---- limits: chosen so that no size product can overflow 64 bits ------------------- */
#define MAX_CONTEXT_LENGTH (1u << 24)
#define MAX_BLOCKS 1024u
#define MAX_EXPERTS 4096u
#define MAX_DIM (1u << 18)        /* embedding_dim, mlp_dim */
#define MAX_HEAD_DIM 4096u
#define MAX_HEADS 4096u
#define MAX_TEXT_TOKENS (1u << 24)
#define MAX_SPECIAL_TOKENS 4096u
#define MAX_REGEX_SIZE (1u << 16)
#define MAX_TOKENS_SIZE (1u << 30)

/* Overflow-checked 64-bit arithmetic: any overflow sets *ovf and the result is garbage. */
static uint64_t add64(uint64_t a, uint64_t b, int* ovf) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) *ovf = 1;
    return r;
}
static uint64_t mul64(uint64_t a, uint64_t b, int* ovf) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) *ovf = 1;
    return r;
}
static uint64_t roundup64(uint64_t a, uint64_t align, int* ovf) {
    uint64_t r = add64(a, align - 1, ovf);
    return r / align * align;
}
static uint64_t r16(uint64_t a, int* ovf) { return roundup64(a, GPTOSS_TENSOR_ALIGNMENT, ovf); }

static float load_f32le(const uint8_t* p) {
    uint32_t bits = gptoss_load_u32le(p);
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static void format_uuid(const uint8_t* u, char out[37]) {
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[k++] = '-';
        out[k++] = hex[u[i] >> 4];
        out[k++] = hex[u[i] & 15];
    }
    out[k] = '\0';
}

static enum gptoss_status check_uuid(const uint8_t* got, const uint8_t* want, const char* what, unsigned offset) {
    if (memcmp(got, want, 16) == 0) return gptoss_status_success;
    char g[37], w[37];
    format_uuid(got, g);
    format_uuid(want, w);
    return gptoss_fail(gptoss_status_invalid_argument, "%s UUID at offset %u is %s, expected %s", what, offset, g, w);
}

enum gptoss_status gptoss_file_compute_layout(struct gptoss_file_info* info) {
    const struct gptoss_model_config* c = &info->config;
    int ovf = 0;
    const uint64_t H = c->embedding_dim, I = c->mlp_dim, D = c->head_dim, Hq = c->num_heads, Hkv = c->num_kv_heads;
    const uint64_t E = c->num_experts, L = c->num_blocks;
    const uint64_t V = (uint64_t) info->num_text_tokens + info->num_special_tokens;

    info->special_uuids_offset = GPTOSS_FILE_HEADER_SIZE;
    info->regex_offset = add64(info->special_uuids_offset, mul64(16, info->num_special_tokens, &ovf), &ovf);
    info->tokens_offset = add64(info->regex_offset, info->regex_size, &ovf);
    info->tokenizer_end = add64(info->tokens_offset, info->tokens_size, &ovf);
    info->weights_offset = roundup64(info->tokenizer_end, GPTOSS_FILE_ALIGNMENT, &ovf);

    const uint64_t qkv_rows = mul64(D, add64(Hq, mul64(2, Hkv, &ovf), &ovf), &ovf);
    info->embedding_bytes = mul64(mul64(V, H, &ovf), 2, &ovf);
    info->norm_bytes = mul64(H, 2, &ovf);
    info->qkv_weight_bytes = mul64(mul64(qkv_rows, H, &ovf), 2, &ovf);
    info->qkv_bias_bytes = mul64(qkv_rows, 2, &ovf);
    info->sinks_bytes = mul64(Hq, 2, &ovf);
    info->out_weight_bytes = mul64(mul64(H, mul64(Hq, D, &ovf), &ovf), 2, &ovf);
    info->out_bias_bytes = mul64(H, 2, &ovf);
    info->gate_weight_bytes = mul64(mul64(E, H, &ovf), 2, &ovf);
    info->gate_bias_bytes = mul64(E, 2, &ovf);
    info->mlp1_blocks_bytes = mul64(mul64(2, I, &ovf), H / 2, &ovf);      /* [2I][H/32][16] */
    info->mlp1_scales_bytes = mul64(mul64(2, I, &ovf), H / 32, &ovf);     /* [2I][H/32] */
    info->mlp1_bias_bytes = mul64(mul64(2, I, &ovf), 2, &ovf);
    info->mlp2_blocks_bytes = mul64(H, I / 2, &ovf);                      /* [H][I/32][16] */
    info->mlp2_scales_bytes = mul64(H, I / 32, &ovf);
    info->mlp2_bias_bytes = mul64(H, 2, &ovf);

    /* shared region (relative to W0) */
    struct gptoss_layer_offsets b;
    memset(&b, 0, sizeof(b));
    uint64_t o = 0;
    info->embedding = 0;
    o = r16(info->embedding_bytes, &ovf);
    const uint64_t block0 = o;
    uint64_t in = 0;
    b.attn_norm = (size_t) in; in = add64(in, r16(info->norm_bytes, &ovf), &ovf);
    b.qkv_weight = (size_t) in; in = add64(in, r16(info->qkv_weight_bytes, &ovf), &ovf);
    b.qkv_bias = (size_t) in; in = add64(in, r16(info->qkv_bias_bytes, &ovf), &ovf);
    b.sinks = (size_t) in; in = add64(in, r16(info->sinks_bytes, &ovf), &ovf);
    b.out_weight = (size_t) in; in = add64(in, r16(info->out_weight_bytes, &ovf), &ovf);
    b.out_bias = (size_t) in; in = add64(in, r16(info->out_bias_bytes, &ovf), &ovf);
    b.mlp_norm = (size_t) in; in = add64(in, r16(info->norm_bytes, &ovf), &ovf);
    b.gate_weight = (size_t) in; in = add64(in, r16(info->gate_weight_bytes, &ovf), &ovf);
    b.gate_bias = (size_t) in; in = add64(in, r16(info->gate_bias_bytes, &ovf), &ovf);
    info->per_block = in;
    /* make block-0 offsets W0-relative */
    b.attn_norm += block0; b.qkv_weight += block0; b.qkv_bias += block0; b.sinks += block0;
    b.out_weight += block0; b.out_bias += block0; b.mlp_norm += block0; b.gate_weight += block0;
    b.gate_bias += block0;
    o = add64(block0, mul64(L, info->per_block, &ovf), &ovf);
    info->final_norm = o;
    o = add64(o, r16(info->norm_bytes, &ovf), &ovf);
    info->unembedding = o;
    o = add64(o, r16(info->embedding_bytes, &ovf), &ovf);
    info->shared_size = roundup64(o, GPTOSS_FILE_ALIGNMENT, &ovf);
    b.moe = (size_t) info->shared_size;
    info->layer0 = b;

    /* experts */
    struct gptoss_expert_layout x;
    uint64_t e = 0;
    x.mlp1_blocks = (size_t) e; e = add64(e, r16(info->mlp1_blocks_bytes, &ovf), &ovf);
    x.mlp1_scales = (size_t) e; e = add64(e, r16(info->mlp1_scales_bytes, &ovf), &ovf);
    x.mlp1_bias = (size_t) e; e = add64(e, r16(info->mlp1_bias_bytes, &ovf), &ovf);
    x.mlp2_blocks = (size_t) e; e = add64(e, r16(info->mlp2_blocks_bytes, &ovf), &ovf);
    x.mlp2_scales = (size_t) e; e = add64(e, r16(info->mlp2_scales_bytes, &ovf), &ovf);
    x.mlp2_bias = (size_t) e; e = add64(e, r16(info->mlp2_bias_bytes, &ovf), &ovf);
    x.per_expert = (size_t) e;
    info->expert = x;
    const uint64_t experts_bytes = mul64(E, e, &ovf);
    info->moe_size = roundup64(experts_bytes, GPTOSS_FILE_ALIGNMENT, &ovf);
    info->weights_size = add64(add64(info->shared_size, mul64(L - 1, info->moe_size, &ovf), &ovf), experts_bytes, &ovf);
    info->file_size = add64(info->weights_offset, info->weights_size, &ovf);
    if (ovf || (sizeof(size_t) < 8 && info->file_size > (uint64_t) SIZE_MAX)) {
        return gptoss_fail(gptoss_status_invalid_argument,
                           "model dimensions (L=%u E=%u H=%u I=%u V=%llu) give a file size that overflows",
                           c->num_blocks, c->num_experts, c->embedding_dim, c->mlp_dim, (unsigned long long) V);
    }
    return gptoss_status_success;
}

#define BAD(...) return gptoss_fail(gptoss_status_invalid_argument, __VA_ARGS__)

enum gptoss_status gptoss_model_config_validate(const struct gptoss_model_config* c) {
#define RANGE(field, lo, hi)                                                                                    \
    if (c->field < (lo) || c->field > (hi))                                                                     \
        BAD("model header field " #field " is %u, must be in [%u, %u]", c->field, (unsigned) (lo), (unsigned) (hi))
    RANGE(context_length, 1, MAX_CONTEXT_LENGTH);
    RANGE(num_blocks, 1, MAX_BLOCKS);
    RANGE(num_experts, 1, MAX_EXPERTS);
    RANGE(num_active_experts, 1, c->num_experts);
    RANGE(embedding_dim, 32, MAX_DIM);
    RANGE(mlp_dim, 32, MAX_DIM);
    RANGE(head_dim, 4, MAX_HEAD_DIM);
    RANGE(num_heads, 1, MAX_HEADS);
    RANGE(num_kv_heads, 1, c->num_heads);
#undef RANGE
    if (c->attention_window == 0) {
        BAD("model header field attention_window is 0, must be at least 1 (f32_sdpa; %u = full attention)", UINT32_MAX);
    }
    if (c->embedding_dim % 32 != 0) BAD("model header field embedding_dim %u is not a multiple of 32 (MXFP4 blocks)", c->embedding_dim);
    if (c->mlp_dim % 32 != 0) BAD("model header field mlp_dim %u is not a multiple of 32 (MXFP4 blocks)", c->mlp_dim);
    if (c->head_dim % 4 != 0) {
        BAD("model header field head_dim %u is not a multiple of 4 (f32_sdpa; RoPE rotates pairs)", c->head_dim);
    }
    if (c->num_heads % c->num_kv_heads != 0) {
        BAD("model header field num_heads %u is not a multiple of num_kv_heads %u", c->num_heads, c->num_kv_heads);
    }
#define FINITE(field, cond)                                                                                   \
    if (!isfinite(c->field) || !(cond)) BAD("model header field " #field " is %g, must be finite and " #cond, (double) c->field)
    FINITE(swiglu_limit, c->swiglu_limit > 0.0f);
    FINITE(rope_theta, c->rope_theta > 1.0f);
    FINITE(interpolation_scale, c->interpolation_scale > 0.0f);
    FINITE(yarn_offset, 1);
    FINITE(yarn_scale, 1);
    FINITE(yarn_multiplier, c->yarn_multiplier > 0.0f);
    FINITE(rmsnorm_epsilon, c->rmsnorm_epsilon > 0.0f && c->rmsnorm_epsilon < 1.0f);
#undef FINITE
    return gptoss_status_success;
}

enum gptoss_status gptoss_file_parse_header(const uint8_t h[GPTOSS_FILE_HEADER_SIZE], struct gptoss_file_info* out) {
    enum gptoss_status st;
    if (memcmp(h, gptoss_file_magic, 12) != 0) {
        char shown[13];
        for (int i = 0; i < 12; i++) shown[i] = (h[i] >= 32 && h[i] < 127) ? (char) h[i] : '?';
        shown[12] = '\0';
        BAD("bad magic \"%s\" at offset 0, expected \"GPT-OSS v1.0\"", shown);
    }
    if (gptoss_load_u32le(h + 12) != 0) BAD("header word at offset 12 is %u, expected 0", gptoss_load_u32le(h + 12));
    if ((st = check_uuid(h + 16, gptoss_model_uuid, "model", 16)) != gptoss_status_success) return st;
    if ((st = check_uuid(h + 100, gptoss_layout_uuid, "layout", 100)) != gptoss_status_success) return st;
    if ((st = check_uuid(h + 116, gptoss_tokenizer_uuid, "tokenizer", 116)) != gptoss_status_success) return st;

    struct gptoss_file_info info;
    memset(&info, 0, sizeof(info));
    struct gptoss_model_config* c = &info.config;
    const uint8_t* m = h + 32;
    c->context_length = gptoss_load_u32le(m + 0);
    c->num_blocks = gptoss_load_u32le(m + 4);
    c->num_experts = gptoss_load_u32le(m + 8);
    c->num_active_experts = gptoss_load_u32le(m + 12);
    c->embedding_dim = gptoss_load_u32le(m + 16);
    c->mlp_dim = gptoss_load_u32le(m + 20);
    c->swiglu_limit = load_f32le(m + 24);
    c->head_dim = gptoss_load_u32le(m + 28);
    c->num_heads = gptoss_load_u32le(m + 32);
    c->num_kv_heads = gptoss_load_u32le(m + 36);
    c->attention_window = gptoss_load_u32le(m + 40);
    c->rope_theta = load_f32le(m + 44);
    c->interpolation_scale = load_f32le(m + 48);
    c->yarn_offset = load_f32le(m + 52);
    c->yarn_scale = load_f32le(m + 56);
    c->yarn_multiplier = load_f32le(m + 60);
    c->rmsnorm_epsilon = load_f32le(m + 64);

    if ((st = gptoss_model_config_validate(c)) != gptoss_status_success) return st;

    const uint8_t* t = h + 132;
    info.num_special_tokens = gptoss_load_u32le(t + 0);
    info.num_text_tokens = gptoss_load_u32le(t + 4);
    info.regex_size = gptoss_load_u32le(t + 8);
    info.tokens_size = gptoss_load_u32le(t + 12);
    if (info.num_special_tokens > MAX_SPECIAL_TOKENS) {
        BAD("tokenizer header field num_special_tokens is %u, must be at most %u", info.num_special_tokens, MAX_SPECIAL_TOKENS);
    }
    if (info.num_text_tokens < 1 || info.num_text_tokens > MAX_TEXT_TOKENS) {
        BAD("tokenizer header field num_text_tokens is %u, must be in [1, %u]", info.num_text_tokens, MAX_TEXT_TOKENS);
    }
    if (info.regex_size < 2 || info.regex_size > MAX_REGEX_SIZE) {
        BAD("tokenizer header field regex_size is %u, must be in [2, %u]", info.regex_size, MAX_REGEX_SIZE);
    }
    if (info.tokens_size > MAX_TOKENS_SIZE || (uint64_t) info.tokens_size < 3ull * info.num_text_tokens) {
        BAD("tokenizer header field tokens_size is %u, must be in [3 * num_text_tokens = %llu, %u]", info.tokens_size,
            3ull * info.num_text_tokens, MAX_TOKENS_SIZE);
    }
    if ((st = gptoss_file_compute_layout(&info)) != gptoss_status_success) return st;
    *out = info;
    return gptoss_status_success;
}

/* ---- header writing -------------------------------------------------------------- */

static void store_f32(uint8_t* p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    gptoss_store_u32le(p, u);
}

void gptoss_file_build_header(uint8_t h[GPTOSS_FILE_HEADER_SIZE], const struct gptoss_model_config* c,
                                uint32_t num_special_tokens, uint32_t num_text_tokens, uint32_t regex_size,
                                uint32_t tokens_size) {
    memset(h, 0, GPTOSS_FILE_HEADER_SIZE);
    memcpy(h, gptoss_file_magic, 12);
    memcpy(h + 16, gptoss_model_uuid, 16);
    uint8_t* m = h + 32;
    gptoss_store_u32le(m + 0, c->context_length);
    gptoss_store_u32le(m + 4, c->num_blocks);
    gptoss_store_u32le(m + 8, c->num_experts);
    gptoss_store_u32le(m + 12, c->num_active_experts);
    gptoss_store_u32le(m + 16, c->embedding_dim);
    gptoss_store_u32le(m + 20, c->mlp_dim);
    store_f32(m + 24, c->swiglu_limit);
    gptoss_store_u32le(m + 28, c->head_dim);
    gptoss_store_u32le(m + 32, c->num_heads);
    gptoss_store_u32le(m + 36, c->num_kv_heads);
    gptoss_store_u32le(m + 40, c->attention_window);
    store_f32(m + 44, c->rope_theta);
    store_f32(m + 48, c->interpolation_scale);
    store_f32(m + 52, c->yarn_offset);
    store_f32(m + 56, c->yarn_scale);
    store_f32(m + 60, c->yarn_multiplier);
    store_f32(m + 64, c->rmsnorm_epsilon);
    memcpy(h + 100, gptoss_layout_uuid, 16);
    memcpy(h + 116, gptoss_tokenizer_uuid, 16);
    gptoss_store_u32le(h + 132, num_special_tokens);
    gptoss_store_u32le(h + 136, num_text_tokens);
    gptoss_store_u32le(h + 140, regex_size);
    gptoss_store_u32le(h + 144, tokens_size);
}

/* ---- tensors ------------------------------------------------------------------------ */

const char* gptoss_tensor_kind_name(enum gptoss_tensor_kind kind) {
    static const char* const names[] = {
        "embedding",  "attn.norm",  "attn.qkv.weight", "attn.qkv.bias", "attn.sinks",  "attn.out.weight",
        "attn.out.bias", "mlp.norm", "mlp.gate.weight", "mlp.gate.bias", "norm",       "unembedding",
        "mlp1.blocks", "mlp1.scales", "mlp1.bias",      "mlp2.blocks",   "mlp2.scales", "mlp2.bias",
    };
    return (unsigned) kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

enum gptoss_status gptoss_file_for_each_tensor(const struct gptoss_file_info* in,
                                               enum gptoss_status (*fn)(void* arg, const struct gptoss_tensor_ref* t),
                                               void* arg) {
    const struct gptoss_model_config* c = &in->config;
    enum gptoss_status st;
#define T(k, l, x, off, bytes)                                                            \
    do {                                                                                  \
        const struct gptoss_tensor_ref t_ = {(k), (l), (x), (off), (bytes)};              \
        if ((st = fn(arg, &t_)) != gptoss_status_success) return st;                      \
    } while (0)
    T(gptoss_tensor_embedding, 0, 0, in->embedding, in->embedding_bytes);
    for (uint32_t n = 0; n < c->num_blocks; n++) {
        const uint64_t d = (uint64_t) n * in->per_block;
        const struct gptoss_layer_offsets* b = &in->layer0;
        T(gptoss_tensor_attn_norm, n, 0, b->attn_norm + d, in->norm_bytes);
        T(gptoss_tensor_qkv_weight, n, 0, b->qkv_weight + d, in->qkv_weight_bytes);
        T(gptoss_tensor_qkv_bias, n, 0, b->qkv_bias + d, in->qkv_bias_bytes);
        T(gptoss_tensor_sinks, n, 0, b->sinks + d, in->sinks_bytes);
        T(gptoss_tensor_out_weight, n, 0, b->out_weight + d, in->out_weight_bytes);
        T(gptoss_tensor_out_bias, n, 0, b->out_bias + d, in->out_bias_bytes);
        T(gptoss_tensor_mlp_norm, n, 0, b->mlp_norm + d, in->norm_bytes);
        T(gptoss_tensor_gate_weight, n, 0, b->gate_weight + d, in->gate_weight_bytes);
        T(gptoss_tensor_gate_bias, n, 0, b->gate_bias + d, in->gate_bias_bytes);
    }
    T(gptoss_tensor_final_norm, 0, 0, in->final_norm, in->norm_bytes);
    T(gptoss_tensor_unembedding, 0, 0, in->unembedding, in->embedding_bytes);
    const struct gptoss_expert_layout* x = &in->expert;
    for (uint32_t n = 0; n < c->num_blocks; n++) {
        for (uint32_t e = 0; e < c->num_experts; e++) {
            const uint64_t base = in->shared_size + (uint64_t) n * in->moe_size + (uint64_t) e * x->per_expert;
            T(gptoss_tensor_mlp1_blocks, n, e, base + x->mlp1_blocks, in->mlp1_blocks_bytes);
            T(gptoss_tensor_mlp1_scales, n, e, base + x->mlp1_scales, in->mlp1_scales_bytes);
            T(gptoss_tensor_mlp1_bias, n, e, base + x->mlp1_bias, in->mlp1_bias_bytes);
            T(gptoss_tensor_mlp2_blocks, n, e, base + x->mlp2_blocks, in->mlp2_blocks_bytes);
            T(gptoss_tensor_mlp2_scales, n, e, base + x->mlp2_scales, in->mlp2_scales_bytes);
            T(gptoss_tensor_mlp2_bias, n, e, base + x->mlp2_bias, in->mlp2_bias_bytes);
        }
    }
#undef T
    return gptoss_status_success;
}
