/* Model file reader tests: layout of the released shapes against MODEL_FORMAT.md numbers,
 * loading a generated tiny model on the CPU backend (offsets, weights = the file's bytes),
 * and corrupt files (bad magic/UUIDs, absurd header fields, truncation at several points,
 * offsets past EOF), each rejected with the right status and no crash.
 * Usage: test_model_file [VOCAB.tiktoken] */
#include <fcntl.h>
#include <gptoss/engine.h>
#include <math.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "files.h"
#include "model.h"
#include "test_util.h"
#include "writer.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_released_layouts(void) {
    for (int big = 0; big < 2; big++) {
        struct gptoss_file_info in;
        memset(&in, 0, sizeof(in));
        struct gptoss_model_config* c = &in.config;
        c->num_blocks = big ? 36 : 24;
        c->num_experts = big ? 128 : 32;
        c->num_active_experts = 4;
        c->embedding_dim = 2880;
        c->mlp_dim = 2880;
        c->head_dim = 64;
        c->num_heads = 64;
        c->num_kv_heads = 8;
        gptoss_writer_set_rope(c, 4096.0, 32.0, 150000.0, 1.0, 32.0);
        CHECK(c->context_length == 131072, "context %u", c->context_length);
        CHECK(f32_bits(c->interpolation_scale) == 0x3D000000u, "interp %08x", f32_bits(c->interpolation_scale));
        CHECK(f32_bits(c->yarn_offset) == 0xBF5EA4B6u, "yarn_offset %08x", f32_bits(c->yarn_offset));
        CHECK(f32_bits(c->yarn_scale) == 0x3DDC1746u, "yarn_scale %08x", f32_bits(c->yarn_scale));
        CHECK(f32_bits(c->yarn_multiplier) == 0x3FAC5C86u, "yarn_multiplier %08x", f32_bits(c->yarn_multiplier));
        CHECK(f32_bits(c->rope_theta) == 0x48127C00u, "theta");
        in.num_special_tokens = 16;
        in.num_text_tokens = 199998;
        in.regex_size = 275;
        in.tokens_size = 1797666;
        CHECK(gptoss_file_compute_layout(&in) == gptoss_status_success, "layout: %s", gptoss_last_error());
        CHECK(in.regex_offset == 404 && in.tokens_offset == 679, "tokenizer offsets %llu %llu",
              (unsigned long long) in.regex_offset, (unsigned long long) in.tokens_offset);
        CHECK(in.weights_offset % 16384 == 0 && in.weights_offset >= 679 + 1797666, "W0");
        CHECK(in.embedding_bytes == 1152080640ull, "EMB %llu", (unsigned long long) in.embedding_bytes);
        CHECK(in.per_block == (big ? 53849344ull : 53296192ull), "PER_BLOCK %llu", (unsigned long long) in.per_block);
        const uint64_t b0 = 1152080640ull;
        CHECK(in.layer0.attn_norm == b0 && in.layer0.qkv_weight == b0 + 5760 && in.layer0.qkv_bias == b0 + 29496960 &&
                  in.layer0.sinks == b0 + 29507200 && in.layer0.out_weight == b0 + 29507328 &&
                  in.layer0.out_bias == b0 + 53100288 && in.layer0.mlp_norm == b0 + 53106048 &&
                  in.layer0.gate_weight == b0 + 53111808 &&
                  in.layer0.gate_bias == b0 + (big ? 53849088ull : 53296128ull),
              "block field offsets");
        CHECK(in.final_norm == (big ? 3090657024ull : 2431189248ull), "final norm %llu", (unsigned long long) in.final_norm);
        CHECK(in.shared_size == (big ? 4242751488ull : 3583279104ull), "SHARED %llu", (unsigned long long) in.shared_size);
        CHECK(in.expert.mlp1_blocks == 0 && in.expert.mlp1_scales == 8294400 && in.expert.mlp1_bias == 8812800 &&
                  in.expert.mlp2_blocks == 8824320 && in.expert.mlp2_scales == 12971520 &&
                  in.expert.mlp2_bias == 13230720 && in.expert.per_expert == 13236480,
              "expert layout");
        CHECK(in.moe_size == (big ? 1694269440ull : 423575552ull), "MOE %llu", (unsigned long long) in.moe_size);
        CHECK(in.weights_size == (big ? 65236451328ull : 13749084160ull), "weights %llu", (unsigned long long) in.weights_size);
    }
}

static const char* g_vocab;
static char g_dir[] = "/tmp/gptoss-model-test-XXXXXX";
static char g_model[256];

static int make_tiny(void) {
    snprintf(g_model, sizeof(g_model), "%s/tiny.bin", g_dir);
    char* argv[] = {"make-model", "--preset", "tiny", "--seed", "7", "--vocab", (char*) g_vocab, "--quiet", g_model};
    return gptoss_cmd_make_model(9, argv) == 0;
}

static void test_load(gptoss_backend_t backend) {
    gptoss_model_t m = NULL;
    enum gptoss_status st = gptoss_model_create_from_file(g_model, backend, &m);
    CHECK(st == gptoss_status_success, "load tiny: %s", gptoss_last_error());
    if (st != gptoss_status_success) return;
    const struct gptoss_model_config* c = &m->config;
    CHECK(c->num_blocks == 4 && c->num_experts == 8 && c->num_active_experts == 4 && c->embedding_dim == 64 &&
              c->mlp_dim == 128 && c->head_dim == 16 && c->num_heads == 8 && c->num_kv_heads == 2 &&
              c->attention_window == 16 && c->context_length == 4096,
          "tiny config");
    CHECK(m->vocabulary_size == 200014, "vocab %u", m->vocabulary_size);
    size_t ctx = 0;
    CHECK(gptoss_model_get_max_context_length(m, &ctx) == gptoss_status_success && ctx == 4096, "max ctx");
    gptoss_tokenizer_t tok = NULL;
    CHECK(gptoss_model_get_tokenizer(m, &tok) == gptoss_status_success && tok != NULL, "get tokenizer");
    uint32_t ids[8];
    size_t n = 0;
    CHECK(gptoss_tokenizer_encode(tok, "Hello, world!", 13, ids, 8, &n) == gptoss_status_success && n == 4 &&
              ids[0] == 13225 && ids[3] == 0,
          "tokenizer of the model");
    /* layout: W0-relative offsets, 16-aligned, strictly increasing, all inside weights_size */
    const size_t H = 64, QKV = 16 * (8 + 4), E = 8;
    CHECK(m->embedding == 0, "embedding at 0");
    int ok = 1;
    size_t prev_end = 200014 * H * 2;
    for (uint32_t l = 0; l < 4; l++) {
        const struct gptoss_layer_offsets* o = &m->layers[l];
        const size_t offs[] = {o->attn_norm, o->qkv_weight, o->qkv_bias, o->sinks, o->out_weight,
                               o->out_bias, o->mlp_norm, o->gate_weight, o->gate_bias};
        const size_t sizes[] = {H * 2, QKV * H * 2, QKV * 2, 8 * 2, H * 8 * 16 * 2, H * 2, H * 2, E * H * 2, E * 2};
        for (int k = 0; k < 9; k++) {
            const size_t start = (prev_end + 15) / 16 * 16;
            if (offs[k] != start) ok = 0;
            prev_end = offs[k] + sizes[k];
        }
        if (o->moe % 16384 != 0 || (l > 0 && o->moe <= m->layers[l - 1].moe)) ok = 0;
    }
    CHECK(ok, "layer offsets back to back with r16 sizes");
    CHECK(m->final_norm == (prev_end + 15) / 16 * 16, "final norm offset");
    CHECK(m->unembedding == m->final_norm + H * 2, "unembedding offset");
    CHECK(m->layers[0].moe == (m->unembedding + 200014 * H * 2 + 16383) / 16384 * 16384, "moe start");
    const struct gptoss_expert_layout* x = &m->expert;
    CHECK(x->mlp1_blocks == 0 && x->mlp1_scales == 256 * 2 * 16 && x->mlp1_bias == x->mlp1_scales + 256 * 2 &&
              x->mlp2_blocks == x->mlp1_bias + 256 * 2 && x->mlp2_scales == x->mlp2_blocks + 64 * 4 * 16 &&
              x->mlp2_bias == x->mlp2_scales + 64 * 4 && x->per_expert == x->mlp2_bias + 64 * 2,
          "expert layout");
    CHECK(m->layers[3].moe + E * x->per_expert == m->weights_size, "weights size");
    /* decode bytes: from the layout's tensor sizes (independent of the formula in model.c) */
    {
        uint64_t attn = 0;
        for (int k = 0; k < 9; k++) {
            const size_t sizes[] = {H * 2, QKV * H * 2, QKV * 2, 8 * 2, H * 8 * 16 * 2, H * 2, H * 2, E * H * 2, E * 2};
            attn += sizes[k];
        }
        const size_t ns[] = {0, 5, 15, 16, 40};
        for (int i = 0; i < 5; i++) {
            uint64_t want = H * 2 + H * 2 + 200014ull * H * 2, got = 0;
            for (uint32_t l = 0; l < 4; l++) {
                size_t pos = ns[i] + 1;
                if (l % 2 == 0 && pos > 16) pos = 16;
                want += attn + 4 * (uint64_t) x->per_expert + pos * 2 * 2 * 16 * sizeof(float);
            }
            CHECK(gptoss_model_get_decode_bytes(m, ns[i], &got) == gptoss_status_success && got == want,
                  "decode bytes at %zu cached: %llu, want %llu", ns[i], (unsigned long long) got,
                  (unsigned long long) want);
        }
        uint64_t untouched = 12345;
        CHECK(gptoss_model_get_decode_bytes(NULL, 0, &untouched) == gptoss_status_invalid_argument &&
                  untouched == 12345 && strstr(gptoss_last_error(), "model") != NULL,
              "decode bytes: NULL model rejected");
        CHECK(gptoss_model_get_decode_bytes(m, 0, NULL) == gptoss_status_invalid_argument &&
                  strstr(gptoss_last_error(), "bytes_out") != NULL,
              "decode bytes: NULL output rejected");
    }
    struct stat sb;
    stat(g_model, &sb);
    const uint64_t w0 = (uint64_t) sb.st_size - m->weights_size;
    CHECK(w0 == 1802240, "W0 %llu", (unsigned long long) w0);
    /* the weights are the file's bytes (CPU: the mapping) */
    if (gptoss_backend_get_kind(backend) == gptoss_backend_kind_cpu) {
        size_t fsize;
        uint8_t* file = read_whole(g_model, &fsize);
        CHECK(file != NULL && fsize == w0 + m->weights_size && memcmp(file + w0, m->weights, m->weights_size) == 0,
              "weights bytes");
        /* norm gains ~1, MXFP4 scales in range */
        const uint16_t* g = (const uint16_t*) (m->weights + m->layers[2].attn_norm);
        float mean = 0;
        for (int i = 0; i < 64; i++) mean += gptoss_bf16_bits_to_f32(g[i]) / 64;
        CHECK(mean > 0.9f && mean < 1.1f, "norm gain mean %g", (double) mean);
        const uint8_t* sc = m->weights + m->layers[1].moe + 3 * x->per_expert + x->mlp1_scales;
        int sc_ok = 1;
        for (int i = 0; i < 512; i++) sc_ok &= sc[i] >= 127 + 14 - 8 && sc[i] <= 127 + 14 - 3;
        CHECK(sc_ok, "scales");
        free(file);
    }
    CHECK(gptoss_model_retain(m) == gptoss_status_success, "retain");
    CHECK(gptoss_model_release(m) == gptoss_status_success, "release 1");
    CHECK(gptoss_model_release(m) == gptoss_status_success, "release 2");
    /* tokenizer outlives the model */
    CHECK(gptoss_tokenizer_encode(tok, "abc", 3, ids, 8, &n) == gptoss_status_success, "tokenizer after model");
    gptoss_tokenizer_release(tok);
    CHECK(gptoss_model_release(NULL) == gptoss_status_success, "release NULL");
}

/* ---- corruption -------------------------------------------------------------------- */

static char g_bad[256];

static void copy_prefix(const char* src, const char* dst, uint64_t n) {
    size_t size;
    uint8_t* data = read_whole(src, &size);
    if (n > size) n = size;
    write_whole(dst, data, (size_t) n);
    free(data);
}

static void patch(const char* path, uint64_t offset, const void* bytes, size_t n) {
    int fd = open(path, O_WRONLY);
    if (pwrite(fd, bytes, n, (off_t) offset) != (ssize_t) n) fprintf(stderr, "patch failed\n");
    close(fd);
}

static void patch_u32(const char* path, uint64_t offset, uint32_t v) {
    uint8_t b[4];
    gptoss_store_u32le(b, v);
    patch(path, offset, b, 4);
}

/* A failed load must say why: the message names the file and the cause (`cause`, e.g. the
 * header field and its value, the size, the errno text). */
static void check_message(const char* what, const char* who, const char* cause) {
    const char* msg = gptoss_last_error();
    CHECK(strstr(msg, g_bad) != NULL && strstr(msg, cause) != NULL, "%s: %s message '%s' does not name '%s' and '%s'",
          what, who, msg, g_bad, cause);
}

static void expect_status(gptoss_backend_t backend, const char* what, enum gptoss_status want_model,
                          enum gptoss_status want_tokenizer, const char* cause) {
    gptoss_model_t m = NULL;
    enum gptoss_status st = gptoss_model_create_from_file(g_bad, backend, &m);
    CHECK(st == want_model, "%s: model status %s (want %s): %s", what, gptoss_status_to_string(st),
          gptoss_status_to_string(want_model), gptoss_last_error());
    if (getenv("VERBOSE")) fprintf(stderr, "  %-40s -> %s: %s\n", what, gptoss_status_to_string(st), gptoss_last_error());
    if (st == gptoss_status_success) gptoss_model_release(m);
    else {
        CHECK(m == NULL, "%s: output written on failure", what);
        check_message(what, "model", cause);
    }
    gptoss_tokenizer_t t = NULL;
    st = gptoss_tokenizer_create_from_file(g_bad, &t);
    CHECK(st == want_tokenizer, "%s: tokenizer status %s (want %s): %s", what, gptoss_status_to_string(st),
          gptoss_status_to_string(want_tokenizer), gptoss_last_error());
    if (st == gptoss_status_success) gptoss_tokenizer_release(t);
    else check_message(what, "tokenizer", cause);
}

static void test_corrupt(gptoss_backend_t backend) {
    const enum gptoss_status IA = gptoss_status_invalid_argument, IO = gptoss_status_io_error, OK = gptoss_status_success;
    snprintf(g_bad, sizeof(g_bad), "%s/bad.bin", g_dir);
    struct stat sb;
    stat(g_model, &sb);
    const uint64_t size = (uint64_t) sb.st_size;
    /* header fields: offset, value, expected model status, tokenizer status */
    static const struct {
        const char* what;
        uint32_t offset, value;
        int io;            /* 1: layout needs more than the file (io_error) */
        const char* cause; /* in the message */
    } fields[] = {
        {"magic", 0, 0x2D545048, 0, "bad magic \"HPT-OSS v1.0\""},
        {"zero word", 12, 1, 0, "offset 12 is 1"},
        {"model uuid", 20, 0x12345678, 0, "model UUID at offset 16"},
        {"layout uuid", 104, 0, 0, "layout UUID at offset 100"},
        {"tokenizer uuid", 128, 0xFFFFFFFF, 0, "tokenizer UUID at offset 116"},
        {"context_length 0", 32, 0, 0, "context_length is 0"},
        {"context_length huge", 32, 0xFFFFFFFF, 0, "context_length is 4294967295"},
        {"num_blocks 0", 36, 0, 0, "num_blocks is 0"},
        {"num_blocks absurd", 36, 0x7FFFFFFF, 0, "num_blocks is 2147483647"},
        {"num_blocks 1000 (past EOF)", 36, 1000, 1, "53636096 bytes, the layout (L=1000"},
        {"num_experts 0", 40, 0, 0, "num_experts is 0"},
        {"num_experts absurd", 40, 0xFFFFFFFF, 0, "num_experts is 4294967295"},
        {"num_experts 4096 (past EOF)", 40, 4096, 1, "53636096 bytes, the layout (L=4 E=4096"},
        {"active > experts", 44, 9, 0, "num_active_experts is 9"},
        {"active 0", 44, 0, 0, "num_active_experts is 0"},
        {"embedding_dim 33", 48, 33, 0, "embedding_dim 33"},
        {"embedding_dim 0", 48, 0, 0, "embedding_dim is 0"},
        {"embedding_dim absurd", 48, 0x80000000u, 0, "embedding_dim is 2147483648"},
        {"embedding_dim 262144 (past EOF)", 48, 262144, 1, "H=262144"},
        {"mlp_dim 48", 52, 48, 0, "mlp_dim 48"},
        {"mlp_dim absurd", 52, 0xFFFFFFE0u, 0, "mlp_dim is 4294967264"},
        {"swiglu NaN", 56, 0x7FC00000u, 0, "swiglu_limit is nan"},
        {"swiglu negative", 56, 0xBF800000u, 0, "swiglu_limit is -1"},
        {"head_dim odd", 60, 15, 0, "head_dim 15"},
        {"head_dim 6 (not a multiple of 4)", 60, 6, 0, "head_dim 6 is not a multiple of 4"},
        {"head_dim 2", 60, 2, 0, "head_dim is 2"},
        {"head_dim 0", 60, 0, 0, "head_dim is 0"},
        {"num_heads 0", 64, 0, 0, "num_heads is 0"},
        {"heads % kv", 64, 7, 0, "num_heads 7 is not a multiple of num_kv_heads 2"},
        {"kv > heads", 68, 16, 0, "num_kv_heads is 16"},
        {"kv 0", 68, 0, 0, "num_kv_heads is 0"},
        {"attention_window 0", 72, 0, 0, "attention_window is 0"},
        {"rope_theta inf", 76, 0x7F800000u, 0, "rope_theta is inf"},
        {"interp 0", 80, 0, 0, "interpolation_scale is 0"},
        {"yarn_offset NaN", 84, 0xFFC00000u, 0, "yarn_offset is"},
        {"yarn_multiplier -1", 92, 0xBF800000u, 0, "yarn_multiplier is -1"},
        {"rmsnorm_epsilon 0", 96, 0, 0, "rmsnorm_epsilon is 0"},
        {"rmsnorm_epsilon 2", 96, 0x40000000u, 0, "rmsnorm_epsilon is 2"},
        {"num_special absurd", 132, 0xFFFFFFFFu, 0, "num_special_tokens is 4294967295"},
        {"num_text 0", 136, 0, 0, "num_text_tokens is 0"},
        {"num_text absurd", 136, 0xFFFFFFFFu, 0, "num_text_tokens is 4294967295"},
        {"regex_size 0", 140, 0, 0, "regex_size is 0"},
        {"regex_size absurd", 140, 0xFFFFFFFFu, 0, "regex_size is 4294967295"},
        {"regex_size 274 (no NUL)", 140, 274, 0, "regex (274 bytes at offset 404) is not NUL-terminated"},
        {"tokens_size 0", 144, 0, 0, "tokens_size is 0"},
        {"tokens_size absurd", 144, 0xFFFFFFFFu, 0, "tokens_size is 4294967295"},
        {"tokens_size - 1", 144, 1797665, 0, "runs past tokens_size 1797665"},
        {"tokens_size + 1", 144, 1797667, 0, "tokens_size says 1797667"},
    };
    copy_prefix(g_model, g_bad, size);
    size_t hsize;
    uint8_t* orig = read_whole(g_model, &hsize);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        patch_u32(g_bad, fields[i].offset, fields[i].value);
        /* layout-too-big cases keep a valid tokenizer section */
        expect_status(backend, fields[i].what, fields[i].io ? IO : IA, fields[i].io ? OK : IA, fields[i].cause);
        patch(g_bad, fields[i].offset, orig + fields[i].offset, 4);
    }
    /* one-bit flips in every header byte: never a crash, never success on a changed field
     * (the float fields may stay valid: any status is fine there) */
    for (uint32_t off = 0; off < GPTOSS_FILE_HEADER_SIZE; off++) {
        uint8_t b = orig[off] ^ 0x80;
        patch(g_bad, off, &b, 1);
        gptoss_model_t m = NULL;
        if (gptoss_model_create_from_file(g_bad, backend, &m) == gptoss_status_success) gptoss_model_release(m);
        gptoss_tokenizer_t t = NULL;
        if (gptoss_tokenizer_create_from_file(g_bad, &t) == gptoss_status_success) gptoss_tokenizer_release(t);
        patch(g_bad, off, orig + off, 1);
    }
    CHECK(1, "bit flips survived");
    /* tokenizer section content */
    patch(g_bad, 404 + 274, "x", 1);
    expect_status(backend, "regex without NUL", IA, IA, "regex (275 bytes at offset 404) is not NUL-terminated");
    patch(g_bad, 404 + 274, orig + 404 + 274, 1);
    patch(g_bad, 404 + 10, "\0", 1);
    expect_status(backend, "NUL inside the regex", IA, IA, "regex has a NUL at byte 10");
    patch(g_bad, 404 + 10, orig + 404 + 10, 1);
    patch(g_bad, 404, "(", 1);
    expect_status(backend, "regex does not compile", IA, IA, "regex does not compile");
    patch(g_bad, 404, orig + 404, 1);
    patch(g_bad, 679, "\0\0", 2);
    expect_status(backend, "token of length 0", IA, IA, "text token 0 has length 0");
    patch(g_bad, 679, "\xff\xff", 2);
    expect_status(backend, "token length past table", IA, IA, "ends inside the length of token");
    patch(g_bad, 679, orig + 679, 2);
    static const uint8_t unknown_uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    patch(g_bad, 148 + 16 * 8, unknown_uuid, 16);
    expect_status(backend, "unknown special UUID (warning only)", OK, OK, "");
    patch(g_bad, 148 + 16 * 8, orig + 148 + 16 * 8, 16);
    expect_status(backend, "restored file", OK, OK, "");
    /* truncation at several points (shrinking the same copy) */
    const uint64_t w0 = 1802240;
    const uint64_t cuts[] = {size - 1, size - 16384, w0 + 100000, w0 + 1, w0, 679 + 1797666, 679 + 1000, 679, 404, 200,
                             GPTOSS_FILE_HEADER_SIZE, GPTOSS_FILE_HEADER_SIZE - 1, 100, 12, 0};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        if (truncate(g_bad, (off_t) cuts[i]) != 0) CHECK(0, "truncate");
        char what[64], cause[64];
        snprintf(what, sizeof(what), "truncated to %llu", (unsigned long long) cuts[i]);
        snprintf(cause, sizeof(cause), "truncated: %llu bytes", (unsigned long long) cuts[i]);
        expect_status(backend, what, IO, cuts[i] >= 679 + 1797666 ? OK : IO, cause);
    }
    free(orig);
    /* other files */
    static const char text[] =
        "This is a text file, not a model. It is long enough to hold a header: 148 bytes are read and the magic "
        "is checked first; a model file starts with GPT-OSS v1.0.\n";
    write_whole(g_bad, text, sizeof(text) - 1);
    expect_status(backend, "text file", IA, IA, "bad magic \"This is a te\"");
    write_whole(g_bad, "hello\n", 6);
    expect_status(backend, "short text file", IO, IO, "truncated: 6 bytes, the header alone needs 148");
    write_whole(g_bad, "", 0);
    expect_status(backend, "empty file", IO, IO, "truncated: 0 bytes");
    snprintf(g_bad, sizeof(g_bad), "%s/does-not-exist.bin", g_dir);
    expect_status(backend, "missing file", IO, IO, "No such file or directory");
    snprintf(g_bad, sizeof(g_bad), "%s", g_dir);
    expect_status(backend, "directory", IO, IO, "is a directory");
    snprintf(g_bad, sizeof(g_bad), "/dev/null");
    expect_status(backend, "/dev/null", IO, IO, "is a character device");
    snprintf(g_bad, sizeof(g_bad), "/dev/zero");
    expect_status(backend, "/dev/zero", IO, IO, "is a character device");
    snprintf(g_bad, sizeof(g_bad), "%s/bad.bin", g_dir);
    /* API misuse */
    gptoss_model_t m = NULL;
    CHECK(gptoss_model_create_from_file(NULL, backend, &m) == IA, "NULL path");
    CHECK(gptoss_model_create_from_file(g_model, NULL, &m) == IA, "NULL backend");
    CHECK(gptoss_model_create_from_file(g_model, backend, NULL) == IA, "NULL out");
    CHECK(gptoss_tokenizer_create_from_file(NULL, NULL) == IA, "tokenizer NULL");
}

/* ---- the one config check (reader, writer, make-model, inspect) -------------------- */

static void test_config_rules(void) {
    struct gptoss_model_config base;
    CHECK(gptoss_model_preset("tiny", &base) == 0, "tiny preset");
    CHECK(gptoss_model_config_validate(&base) == gptoss_status_success, "tiny is valid: %s", gptoss_last_error());
    /* a rule, a value that breaks it, and what the message must say */
#define FIELD(f) offsetof(struct gptoss_model_config, f)
    static const struct {
        size_t field;
        uint32_t value;
        const char* cause;
    } bad[] = {
        {FIELD(context_length), 0, "context_length is 0"},
        {FIELD(context_length), (1u << 24) + 1, "context_length is 16777217"},
        {FIELD(num_blocks), 0, "num_blocks is 0"},
        {FIELD(num_blocks), 1025, "num_blocks is 1025"},
        {FIELD(num_experts), 0, "num_experts is 0"},
        {FIELD(num_experts), 4097, "num_experts is 4097"},
        {FIELD(num_active_experts), 0, "num_active_experts is 0"},
        {FIELD(num_active_experts), 9, "num_active_experts is 9, must be in [1, 8]"},
        {FIELD(embedding_dim), 16, "embedding_dim is 16"},
        {FIELD(embedding_dim), 48, "embedding_dim 48 is not a multiple of 32"},
        {FIELD(embedding_dim), (1u << 18) + 32, "embedding_dim is 262176"},
        {FIELD(mlp_dim), 0, "mlp_dim is 0"},
        {FIELD(mlp_dim), 40, "mlp_dim 40 is not a multiple of 32"},
        {FIELD(head_dim), 0, "head_dim is 0"},
        {FIELD(head_dim), 2, "head_dim is 2"},
        {FIELD(head_dim), 6, "head_dim 6 is not a multiple of 4"},
        {FIELD(head_dim), 15, "head_dim 15 is not a multiple of 4"},
        {FIELD(head_dim), 4100, "head_dim is 4100"},
        {FIELD(num_heads), 0, "num_heads is 0"},
        {FIELD(num_heads), 6, "num_heads 6 is not a multiple of num_kv_heads 4"}, /* with num_kv_heads 4 below */
        {FIELD(num_kv_heads), 0, "num_kv_heads is 0"},
        {FIELD(num_kv_heads), 9, "num_kv_heads is 9, must be in [1, 8]"},
        {FIELD(num_kv_heads), 3, "num_heads 8 is not a multiple of num_kv_heads 3"},
        {FIELD(attention_window), 0, "attention_window is 0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gptoss_model_config c = base;
        if (bad[i].field == FIELD(num_heads)) c.num_kv_heads = 4;
        memcpy((char*) &c + bad[i].field, &bad[i].value, sizeof(uint32_t));
        const enum gptoss_status st = gptoss_model_config_validate(&c);
        CHECK(st == gptoss_status_invalid_argument && strstr(gptoss_last_error(), bad[i].cause) != NULL,
              "rule %zu: status %s, message '%s', want '%s'", i, gptoss_status_to_string(st), gptoss_last_error(),
              bad[i].cause);
    }
    static const struct {
        size_t field;
        float value;
        const char* cause;
    } bad_float[] = {
        {FIELD(swiglu_limit), 0.0f, "swiglu_limit is 0"},       {FIELD(swiglu_limit), INFINITY, "swiglu_limit is inf"},
        {FIELD(rope_theta), 1.0f, "rope_theta is 1"},           {FIELD(interpolation_scale), -1.0f, "interpolation_scale is -1"},
        {FIELD(yarn_offset), NAN, "yarn_offset is nan"},        {FIELD(yarn_scale), -INFINITY, "yarn_scale is -inf"},
        {FIELD(yarn_multiplier), 0.0f, "yarn_multiplier is 0"}, {FIELD(rmsnorm_epsilon), 1.0f, "rmsnorm_epsilon is 1"},
    };
    for (size_t i = 0; i < sizeof(bad_float) / sizeof(bad_float[0]); i++) {
        struct gptoss_model_config c = base;
        memcpy((char*) &c + bad_float[i].field, &bad_float[i].value, sizeof(float));
        const enum gptoss_status st = gptoss_model_config_validate(&c);
        CHECK(st == gptoss_status_invalid_argument && strstr(gptoss_last_error(), bad_float[i].cause) != NULL,
              "float rule %zu: status %s, message '%s', want '%s'", i, gptoss_status_to_string(st),
              gptoss_last_error(), bad_float[i].cause);
    }
    /* the edges that are allowed */
    static const struct {
        size_t field;
        uint32_t value;
    } good[] = {
        {FIELD(head_dim), 4},           {FIELD(head_dim), 4096},         {FIELD(attention_window), 1},
        {FIELD(attention_window), UINT32_MAX}, {FIELD(num_active_experts), 8}, {FIELD(num_active_experts), 1},
        {FIELD(num_kv_heads), 8},       {FIELD(num_kv_heads), 1},        {FIELD(context_length), 1u << 24},
        {FIELD(embedding_dim), 32},     {FIELD(mlp_dim), 1u << 18},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct gptoss_model_config c = base;
        memcpy((char*) &c + good[i].field, &good[i].value, sizeof(uint32_t));
        CHECK(gptoss_model_config_validate(&c) == gptoss_status_success, "edge %zu (value %u) rejected: %s", i,
              good[i].value, gptoss_last_error());
    }
#undef FIELD
    /* make-model refuses before writing (usage error, exit 2) */
    char out[300];
    snprintf(out, sizeof(out), "%s/refused.bin", g_dir);
    static const char* const flags[][2] = {{"--window", "0"},         {"--head-dim", "6"}, {"--head-dim", "2"},
                                           {"--active-experts", "9"}, {"--kv-heads", "3"}, {"--hidden", "48"},
                                           {"--layers", "0"},         {"--context", "0"}};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char* argv[] = {"make-model", "--preset", "tiny", (char*) flags[i][0], (char*) flags[i][1], "--vocab",
                        (char*) g_vocab, "--quiet", out};
        CHECK(gptoss_cmd_make_model(9, argv) == 2 && access(out, F_OK) != 0, "make-model %s %s not refused",
              flags[i][0], flags[i][1]);
    }
}

/* ---- release and free keep the message of the failure before them ----------------- */

static void test_release_keeps_error(gptoss_backend_t backend) {
    gptoss_model_t m = NULL;
    gptoss_tokenizer_t t = NULL;
    gptoss_sampler_t sampler = NULL;
    gptoss_context_t ctx = NULL;
    void* buf = NULL;
    CHECK(gptoss_model_create_from_file(g_model, backend, &m) == gptoss_status_success &&
              gptoss_model_get_tokenizer(m, &t) == gptoss_status_success &&
              gptoss_sampler_create(&sampler) == gptoss_status_success &&
              gptoss_context_create(m, 64, 0, &ctx) == gptoss_status_success &&
              gptoss_backend_alloc(backend, 64, &buf) == gptoss_status_success,
          "objects for the release test: %s", gptoss_last_error());
    gptoss_backend_t other = NULL;
    CHECK(gptoss_backend_create_cpu(1, &other) == gptoss_status_success, "second backend");
    /* a failure, then every release and free (NULL and real objects) */
    gptoss_tokenizer_t none = NULL;
    CHECK(gptoss_tokenizer_create_from_file("/nonexistent/model.bin", &none) == gptoss_status_io_error, "fail");
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
    CHECK(strstr(msg, "/nonexistent/model.bin") != NULL, "failure message '%s'", msg);
#define KEEPS(call)                                                                                          \
    do {                                                                                                     \
        (void) (call);                                                                                       \
        CHECK(strcmp(gptoss_last_error(), msg) == 0, "%s changed the message to '%s'", #call, gptoss_last_error()); \
    } while (0)
    KEEPS(gptoss_model_release(NULL));
    KEEPS(gptoss_tokenizer_release(NULL));
    KEEPS(gptoss_context_release(NULL));
    KEEPS(gptoss_sampler_release(NULL));
    KEEPS(gptoss_graph_release(NULL));
    KEEPS(gptoss_backend_release(NULL));
    KEEPS(gptoss_backend_free(backend, NULL));
    KEEPS(gptoss_backend_free(backend, buf));
    KEEPS(gptoss_context_release(ctx)); /* frees its buffers, releases its model reference */
    KEEPS(gptoss_sampler_release(sampler));
    KEEPS(gptoss_model_release(m));     /* the last model reference: frees the model */
    KEEPS(gptoss_tokenizer_release(t)); /* the last tokenizer reference */
    KEEPS(gptoss_backend_release(other));
#undef KEEPS
    /* other calls still clear it on entry */
    size_t n = 0;
    CHECK(gptoss_model_get_max_context_length(NULL, &n) == gptoss_status_invalid_argument, "NULL model");
    CHECK(strcmp(gptoss_last_error(), msg) != 0, "a failing call sets its own message");
}

int main(int argc, char** argv) {
    g_vocab = argc > 1 ? argv[1] : gptoss_default_vocab_path();
    test_released_layouts();
    if (mkdtemp(g_dir) == NULL) return 2;
    test_config_rules();
    if (!make_tiny()) {
        CHECK(0, "make-model tiny failed");
        return finish();
    }
    gptoss_backend_t backend = NULL;
    enum gptoss_status st = gptoss_backend_create_cpu(1, &backend);
    if (st != gptoss_status_success) {
        skip("CPU backend unavailable: model loading tests");
    } else {
        test_load(backend);
        test_corrupt(backend);
        test_release_keeps_error(backend);
        gptoss_backend_release(backend);
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return finish();
}
