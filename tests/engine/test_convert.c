/* Converter test: writes a tiny synthetic checkpoint (config.json + two safetensors files
 * with random tensors), converts it, and checks every header field and tensor region of
 * the output field by field against MODEL_FORMAT.md (expected bytes computed here from
 * the checkpoint). An existing output is kept without --force and replaced with it. Then
 * malformed checkpoints must fail cleanly with no output (and no temporary file) left.
 * Usage: test_convert [VOCAB.tiktoken] */
#include <dirent.h>
#include <gptoss/engine.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "files.h"
#include "safetensors.h"
#include "test_util.h"
#include "writer.h"

enum { L = 2, E = 4, H = 64, I = 64, D = 64, HQ = 2, HKV = 1, QKV = D * (HQ + 2 * HKV), VCK = 201088, V = 200014 };

struct tensor {
    char name[96];
    const char* dtype;
    int rank;
    uint64_t shape[4];
    uint8_t* data;
    uint64_t size;
    int file;
};

static struct tensor g_t[64];
static int g_nt;
static const char* g_vocab;
static char g_dir[] = "/tmp/gptoss-convert-test-XXXXXX";

static uint16_t rand_bf16(void) {
    /* values in about [-4, 4] plus occasional subnormals and zeros */
    uint64_t r = rng_next();
    if (r % 97 == 0) return (uint16_t) ((r >> 8) & 0x807F); /* subnormal or zero */
    float f = (float) ((double) (r >> 11) * 0x1.0p-53 * 8.0 - 4.0);
    return gptoss_f32_to_bf16_bits(f);
}

static struct tensor* add(const char* name, const char* dtype, int file, int rank, uint64_t d0, uint64_t d1, uint64_t d2,
                          uint64_t d3) {
    struct tensor* t = &g_t[g_nt++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->dtype = dtype;
    t->rank = rank;
    t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2, t->shape[3] = d3;
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) n *= t->shape[i];
    const int es = strcmp(dtype, "U8") == 0 ? 1 : 2;
    t->size = n * es;
    t->data = malloc(t->size ? t->size : 1);
    t->file = file;
    if (es == 2) {
        for (uint64_t i = 0; i < n; i++) {
            uint16_t b = rand_bf16();
            memcpy(t->data + 2 * i, &b, 2);
        }
    } else {
        for (uint64_t i = 0; i < n; i++) t->data[i] = (uint8_t) rng_next();
    }
    return t;
}

static struct tensor* find(const char* name) {
    for (int i = 0; i < g_nt; i++)
        if (strcmp(g_t[i].name, name) == 0) return &g_t[i];
    return NULL;
}

static void build_checkpoint(void) {
    g_nt = 0;
    add("embedding.weight", "BF16", 0, 2, VCK, H, 0, 0);
    add("norm.scale", "BF16", 0, 1, H, 0, 0, 0);
    add("unembedding.weight", "BF16", 1, 2, VCK, H, 0, 0);
    for (int n = 0; n < L; n++) {
        char b[96];
#define A(suffix, dtype, rank, d0, d1, d2, d3) \
    (snprintf(b, sizeof(b), "block.%d.%s", n, suffix), add(b, dtype, n, rank, d0, d1, d2, d3))
        A("attn.norm.scale", "BF16", 1, H, 0, 0, 0);
        A("attn.qkv.weight", "BF16", 2, QKV, H, 0, 0);
        A("attn.qkv.bias", "BF16", 1, QKV, 0, 0, 0);
        A("attn.sinks", "BF16", 1, HQ, 0, 0, 0);
        A("attn.out.weight", "BF16", 2, H, HQ * D, 0, 0);
        A("attn.out.bias", "BF16", 1, H, 0, 0, 0);
        A("mlp.norm.scale", "BF16", 1, H, 0, 0, 0);
        A("mlp.gate.weight", "BF16", 2, E, H, 0, 0);
        A("mlp.gate.bias", "BF16", 1, E, 0, 0, 0);
        A("mlp.mlp1_weight.blocks", "U8", 4, E, 2 * I, H / 32, 16);
        struct tensor* s1 = A("mlp.mlp1_weight.scales", "U8", 3, E, 2 * I, H / 32, 0);
        A("mlp.mlp1_bias", "BF16", 2, E, 2 * I, 0, 0);
        A("mlp.mlp2_weight.blocks", "U8", 4, E, H, I / 32, 16);
        struct tensor* s2 = A("mlp.mlp2_weight.scales", "U8", 3, E, H, I / 32, 0);
        A("mlp.mlp2_bias", "BF16", 2, E, H, 0, 0);
#undef A
        for (uint64_t i = 0; i < s1->size; i++) s1->data[i] = (uint8_t) (110 + rng_next() % 26);
        for (uint64_t i = 0; i < s2->size; i++) s2->data[i] = (uint8_t) (110 + rng_next() % 26);
        s1->data[5] = 241; /* wraps to 255 */
        s2->data[7] = 250; /* wraps to 8 */
    }
}

static const char* g_config =
    "{\n  \"num_hidden_layers\": 2, \"num_experts\": 4, \"experts_per_token\": 4, \"vocab_size\": 201088,\n"
    "  \"hidden_size\": 64, \"intermediate_size\": 64, \"swiglu_limit\": 7.0, \"head_dim\": 64,\n"
    "  \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"sliding_window\": 128,\n"
    "  \"initial_context_length\": 4096, \"rope_theta\": 150000, \"rope_scaling_factor\": 32.0,\n"
    "  \"rope_ntk_alpha\": 1.0, \"rope_ntk_beta\": 32.0\n}\n";

/* skip_name: leave out one tensor; bad: 0 none, 1 wrong shape, 2 wrong dtype, 3 offset past EOF */
static void write_checkpoint(const char* dir, const char* config, const char* skip_name, const char* bad_name, int bad) {
    mkdir(dir, 0755);
    char path[512];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    write_whole(path, config, strlen(config));
    for (int f = 0; f < 2; f++) {
        char* hdr = malloc(1 << 16);
        size_t k = (size_t) sprintf(hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
        uint64_t off = 0;
        for (int i = 0; i < g_nt; i++) {
            struct tensor* t = &g_t[i];
            if (t->file != f || (skip_name && strcmp(t->name, skip_name) == 0)) continue;
            const int is_bad = bad_name && strcmp(t->name, bad_name) == 0;
            const char* dtype = is_bad && bad == 2 ? "F16" : t->dtype;
            uint64_t s0 = t->shape[0] + (is_bad && bad == 1 ? 1 : 0);
            uint64_t end = off + t->size + (is_bad && bad == 1 ? t->size / t->shape[0] : 0);
            if (is_bad && bad == 3) end += 1u << 30;
            k += (size_t) sprintf(hdr + k, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, dtype);
            for (int r = 0; r < t->rank; r++) k += (size_t) sprintf(hdr + k, "%s%llu", r ? "," : "", (unsigned long long) (r ? t->shape[r] : s0));
            k += (size_t) sprintf(hdr + k, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long) off, (unsigned long long) end);
            off = end;
            if (is_bad && bad == 3) off -= 1u << 30;
        }
        k += (size_t) sprintf(hdr + k, "}");
        while (k % 8) hdr[k++] = ' ';
        snprintf(path, sizeof(path), "%s/model-%05d.safetensors", dir, f);
        FILE* fp = fopen(path, "wb");
        uint64_t hl = k;
        fwrite(&hl, 8, 1, fp);
        fwrite(hdr, 1, k, fp);
        for (int i = 0; i < g_nt; i++) {
            struct tensor* t = &g_t[i];
            if (t->file != f || (skip_name && strcmp(t->name, skip_name) == 0)) continue;
            fwrite(t->data, 1, t->size, fp);
            if (bad_name && strcmp(t->name, bad_name) == 0 && bad == 1) {
                uint8_t* z = calloc(1, t->size / t->shape[0]);
                fwrite(z, 1, t->size / t->shape[0], fp);
                free(z);
            }
        }
        fclose(fp);
        free(hdr);
    }
}

static int run_convert(const char* dir, const char* out) {
    char* argv[] = {"convert", "--quiet", "--vocab", (char*) g_vocab, (char*) dir, (char*) out};
    return gptoss_cmd_convert(6, argv);
}

static uint64_t r16(uint64_t x) { return (x + 15) / 16 * 16; }
static uint64_t r16k(uint64_t x) { return (x + 16383) / 16384 * 16384; }

static uint32_t u32_at(const uint8_t* p) { return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24; }
static float f32_at(const uint8_t* p) {
    uint32_t u = u32_at(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Checks region [pos, pos+n) == want, then zeros up to the next 16 boundary; advances pos. */
static int region(const uint8_t* file, uint64_t* pos, const uint8_t* want, uint64_t n, const char* what) {
    uint64_t p = (*pos + 15) / 16 * 16;
    int ok = 1;
    for (uint64_t i = *pos; i < p; i++) ok &= file[i] == 0;
    ok &= memcmp(file + p, want, n) == 0;
    if (!ok) fprintf(stderr, "region %s at %llu differs\n", what, (unsigned long long) p);
    *pos = p + n;
    return ok;
}

static uint16_t bf16_mul(uint16_t b, float s) {
    /* independent of the converter's helper: exact product in double, round to nearest even */
    uint32_t u = (uint32_t) b << 16;
    float f;
    memcpy(&f, &u, 4);
    float prod = (float) ((double) f * s);
    memcpy(&u, &prod, 4);
    uint32_t lsb = (u >> 16) & 1;
    u += 0x7FFF + lsb;
    return (uint16_t) (u >> 16);
}

static void test_good(void) {
    char dir[512], out[512];
    snprintf(dir, sizeof(dir), "%s/ckpt", g_dir);
    snprintf(out, sizeof(out), "%s/model.bin", g_dir);
    write_checkpoint(dir, g_config, NULL, NULL, 0);
    CHECK(run_convert(dir, out) == 0, "convert failed: %s", gptoss_last_error());
    size_t fsize = 0;
    uint8_t* f = read_whole(out, &fsize);
    if (f == NULL) {
        CHECK(0, "no output");
        return;
    }
    struct gptoss_vocab vocab;
    if (gptoss_vocab_load_tiktoken(g_vocab, &vocab) != gptoss_status_success) {
        CHECK(0, "vocab");
        return;
    }
    /* header */
    CHECK(memcmp(f, "GPT-OSS v1.0", 12) == 0 && u32_at(f + 12) == 0, "magic");
    static const uint8_t model_uuid[16] = {0xDF, 0x52, 0xDC, 0x86, 0x17, 0x89, 0x4E, 0xD0, 0xA2, 0x95, 0x66, 0xF1, 0x05, 0x08, 0x14, 0x5B};
    static const uint8_t layout_uuid[16] = {0x22, 0x91, 0x77, 0xA8, 0x57, 0x75, 0x42, 0x68, 0xBF, 0xD8, 0xD5, 0x88, 0xB3, 0x51, 0xC5, 0x6D};
    static const uint8_t tok_uuid[16] = {0x74, 0x01, 0xAD, 0xED, 0x2A, 0x95, 0x40, 0xCB, 0xB7, 0x82, 0x9C, 0xCE, 0xBA, 0xAF, 0xE7, 0x2B};
    CHECK(memcmp(f + 16, model_uuid, 16) == 0, "model uuid");
    CHECK(memcmp(f + 100, layout_uuid, 16) == 0, "layout uuid");
    CHECK(memcmp(f + 116, tok_uuid, 16) == 0, "tokenizer uuid");
    const uint32_t want_u32[] = {131072, L, E, 4, H, I, 0, D, HQ, HKV, 128};
    const char* names[] = {"context_length", "num_blocks", "num_experts", "num_active_experts", "embedding_dim",
                           "mlp_dim", "swiglu", "head_dim", "num_heads", "num_kv_heads", "attention_window"};
    for (int i = 0; i < 11; i++) {
        if (i == 6) continue;
        CHECK(u32_at(f + 32 + 4 * i) == want_u32[i], "%s = %u", names[i], u32_at(f + 32 + 4 * i));
    }
    CHECK(u32_at(f + 56) == 0x40E00000u, "swiglu_limit");
    CHECK(u32_at(f + 76) == 0x48127C00u, "rope_theta");
    CHECK(u32_at(f + 80) == 0x3D000000u, "interpolation_scale");
    CHECK(u32_at(f + 84) == 0xBF5EA4B6u, "yarn_offset %08x", u32_at(f + 84));
    CHECK(u32_at(f + 88) == 0x3DDC1746u, "yarn_scale %08x", u32_at(f + 88));
    CHECK(u32_at(f + 92) == 0x3FAC5C86u, "yarn_multiplier %08x", u32_at(f + 92));
    CHECK(u32_at(f + 96) == 0x3727C5ACu, "rmsnorm_epsilon %08x", u32_at(f + 96));
    (void) f32_at;
    uint64_t tokens_size = 0;
    for (uint32_t t = 0; t < vocab.num_tokens; t++) tokens_size += 2 + vocab.offsets[t + 1] - vocab.offsets[t];
    CHECK(u32_at(f + 132) == 16 && u32_at(f + 136) == 199998 && u32_at(f + 140) == 275 && u32_at(f + 144) == tokens_size,
          "tokenizer header");
    /* special table (MODEL_FORMAT.md 4.2) */
    static const char* const slot_uuid[16] = {
        NULL, NULL, "07d7da55b3464cff8b377cefacf8a3e8", NULL, "f799ff69199243c4a3d8d831f475dc75",
        "c0bb14c7602249daad08792d67e8b470", NULL, "fd3dda11c8ab4033876ed93deb172c93", "55a77c2f8a014c548ac2313bfc7e208d",
        "fcac2f6d47054f6bb228642accac7238", "16e40431f47f4b22b59b8b278fc30a54", NULL, NULL, NULL,
        "1220f796e3884de5b487fe2eb5fe03c0", "e15ba70228c44292ab8fffa434709128"};
    for (int j = 0; j < 16; j++) {
        uint8_t want[16] = {0};
        if (slot_uuid[j])
            for (int b = 0; b < 16; b++) sscanf(slot_uuid[j] + 2 * b, "%2hhx", &want[b]);
        CHECK(memcmp(f + 148 + 16 * j, want, 16) == 0, "special slot %d", j);
    }
    const char* regex =
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
        "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    CHECK(strlen(regex) == 274 && memcmp(f + 404, regex, 275) == 0, "regex");
    uint64_t pos = 679;
    int tok_ok = 1;
    for (uint32_t t = 0; t < vocab.num_tokens && tok_ok; t++) {
        uint32_t len = vocab.offsets[t + 1] - vocab.offsets[t];
        tok_ok = f[pos] == (len & 0xFF) && f[pos + 1] == (len >> 8) && memcmp(f + pos + 2, vocab.bytes + vocab.offsets[t], len) == 0;
        pos += 2 + len;
    }
    CHECK(tok_ok && pos == 679 + tokens_size, "token table");
    const uint64_t w0 = r16k(pos);
    int zeros = 1;
    for (uint64_t i = pos; i < w0; i++) zeros &= f[i] == 0;
    CHECK(zeros, "padding before W0");
    /* expected total size */
    const uint64_t per_block = r16(H * 2) + r16(QKV * H * 2) + r16(QKV * 2) + r16(HQ * 2) + r16(H * HQ * D * 2) + r16(H * 2) +
                               r16(H * 2) + r16(E * H * 2) + r16(E * 2);
    const uint64_t shared = r16k(r16((uint64_t) V * H * 2) * 2 + L * per_block + r16(H * 2));
    const uint64_t per_expert = r16(2 * I * H / 2) + r16(2 * I * H / 32) + r16(2 * I * 2) + r16(H * I / 2) + r16(H * I / 32) + r16(H * 2);
    const uint64_t moe = r16k(E * per_expert);
    CHECK(fsize == w0 + shared + (L - 1) * moe + E * per_expert, "file size %zu", fsize);
    /* weights */
    pos = w0;
    int ok = region(f, &pos, find("embedding.weight")->data, (uint64_t) V * H * 2, "embedding");
    uint8_t* buf = malloc(QKV * H * 2);
    for (int n = 0; n < L; n++) {
        char name[96];
#define T(suffix) (snprintf(name, sizeof(name), "block.%d.%s", n, suffix), find(name))
        ok &= region(f, &pos, T("attn.norm.scale")->data, H * 2, "attn norm");
        for (int pass = 0; pass < 2; pass++) {
            const struct tensor* t = pass == 0 ? T("attn.qkv.weight") : T("attn.qkv.bias");
            const int cols = pass == 0 ? H : 1;
            for (int row = 0; row < QKV; row++) {
                const int head = row / D, r = row % D;
                const int qk = head < HQ + HKV;
                const int src = qk ? head * D + (r % 2 == 0 ? r / 2 : r / 2 + D / 2) : row;
                const float s = head < HQ ? 0.5f : (qk ? 0.25f : 1.0f);
                for (int c = 0; c < cols; c++) {
                    uint16_t b;
                    memcpy(&b, t->data + ((size_t) src * cols + c) * 2, 2);
                    uint16_t v = qk ? bf16_mul(b, s) : b;
                    memcpy(buf + ((size_t) row * cols + c) * 2, &v, 2);
                }
            }
            ok &= region(f, &pos, buf, (uint64_t) QKV * cols * 2, pass == 0 ? "qkv weight" : "qkv bias");
        }
        ok &= region(f, &pos, T("attn.sinks")->data, HQ * 2, "sinks");
        ok &= region(f, &pos, T("attn.out.weight")->data, H * HQ * D * 2, "out weight");
        ok &= region(f, &pos, T("attn.out.bias")->data, H * 2, "out bias");
        ok &= region(f, &pos, T("mlp.norm.scale")->data, H * 2, "mlp norm");
        ok &= region(f, &pos, T("mlp.gate.weight")->data, E * H * 2, "gate weight");
        ok &= region(f, &pos, T("mlp.gate.bias")->data, E * 2, "gate bias");
    }
    ok &= region(f, &pos, find("norm.scale")->data, H * 2, "final norm");
    ok &= region(f, &pos, find("unembedding.weight")->data, (uint64_t) V * H * 2, "unembedding");
    CHECK(ok, "shared region");
    ok = 1;
    for (int n = 0; n < L; n++) {
        uint64_t p0 = w0 + shared + (uint64_t) n * moe;
        for (uint64_t i = pos; i < p0; i++) ok &= f[i] == 0;
        pos = p0;
        char name[96];
        for (int e = 0; e < E; e++) {
            const struct tensor* t;
            t = T("mlp.mlp1_weight.blocks");
            ok &= region(f, &pos, t->data + e * (t->size / E), t->size / E, "mlp1 blocks");
            t = T("mlp.mlp1_weight.scales");
            for (uint64_t i = 0; i < t->size / E; i++) buf[i] = (uint8_t) ((t->data[e * (t->size / E) + i] + 14) % 256);
            ok &= region(f, &pos, buf, t->size / E, "mlp1 scales");
            t = T("mlp.mlp1_bias");
            ok &= region(f, &pos, t->data + e * (t->size / E), t->size / E, "mlp1 bias");
            t = T("mlp.mlp2_weight.blocks");
            ok &= region(f, &pos, t->data + e * (t->size / E), t->size / E, "mlp2 blocks");
            t = T("mlp.mlp2_weight.scales");
            for (uint64_t i = 0; i < t->size / E; i++) buf[i] = (uint8_t) ((t->data[e * (t->size / E) + i] + 14) % 256);
            ok &= region(f, &pos, buf, t->size / E, "mlp2 scales");
            t = T("mlp.mlp2_bias");
            ok &= region(f, &pos, t->data + e * (t->size / E), t->size / E, "mlp2 bias");
        }
#undef T
    }
    CHECK(ok && pos == fsize, "MoE region (end %llu, size %zu)", (unsigned long long) pos, fsize);
    free(buf);
    /* the reader accepts it */
    gptoss_backend_t backend;
    if (gptoss_backend_create_cpu(1, &backend) == gptoss_status_success) {
        gptoss_model_t m;
        CHECK(gptoss_model_create_from_file(out, backend, &m) == gptoss_status_success, "load converted: %s", gptoss_last_error());
        gptoss_model_release(m);
        gptoss_backend_release(backend);
    } else {
        skip("CPU backend: load converted model");
    }
    free(f);
    gptoss_vocab_free(&vocab);
}

/* No temporary file (".NAME.tmp-*") is left in g_dir. */
static int no_temporary_files(void) {
    DIR* d = opendir(g_dir);
    int clean = d != NULL;
    for (struct dirent* e; d != NULL && (e = readdir(d)) != NULL;) {
        if (strstr(e->d_name, ".tmp-") != NULL) {
            fprintf(stderr, "left behind: %s\n", e->d_name);
            clean = 0;
        }
    }
    if (d != NULL) closedir(d);
    return clean;
}

static void expect_fail(const char* what, const char* config, const char* skip_name, const char* bad_name, int bad) {
    char dir[512], out[512];
    snprintf(dir, sizeof(dir), "%s/bad", g_dir);
    snprintf(out, sizeof(out), "%s/bad.bin", g_dir);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) return;
    write_checkpoint(dir, config, skip_name, bad_name, bad);
    int rc = run_convert(dir, out);
    CHECK(rc != 0, "%s: convert succeeded", what);
    CHECK(access(out, F_OK) != 0, "%s: output left behind", what);
    CHECK(no_temporary_files(), "%s: temporary file left behind", what);
    unlink(out);
}

/* OUT is never replaced without --force; with it, it is replaced by the complete model. */
static void test_existing_output(void) {
    char dir[512], out[512];
    snprintf(dir, sizeof(dir), "%s/ckpt", g_dir);
    snprintf(out, sizeof(out), "%s/existing.bin", g_dir);
    static const char notes[] = "my notes, not a model\n";
    write_whole(out, notes, sizeof(notes) - 1);
    size_t size = 0;
    uint8_t* kept = NULL;
    CHECK(run_convert(dir, out) == 2 && (kept = read_whole(out, &size)) != NULL && size == sizeof(notes) - 1 &&
              memcmp(kept, notes, size) == 0,
          "existing OUT replaced without --force");
    free(kept);
    char* argv[] = {"convert", "--quiet", "--force", "--vocab", (char*) g_vocab, dir, out};
    CHECK(gptoss_cmd_convert(7, argv) == 0, "convert --force: %s", gptoss_last_error());
    char model[512];
    snprintf(model, sizeof(model), "%s/model.bin", g_dir);
    size_t want_size = 0, got_size = 0;
    uint8_t* want = read_whole(model, &want_size);
    uint8_t* got = read_whole(out, &got_size);
    CHECK(want != NULL && got != NULL && got_size == want_size && memcmp(got, want, want_size) == 0,
          "convert --force wrote %zu bytes, not the %zu of the model", got_size, want_size);
    free(want);
    free(got);
    unlink(out);
    CHECK(no_temporary_files(), "temporary files left after convert");
}

static void test_bad(void) {
    expect_fail("missing tensor", g_config, "block.1.mlp.mlp2_bias", NULL, 0);
    expect_fail("wrong shape", g_config, NULL, "block.0.attn.qkv.weight", 1);
    expect_fail("wrong dtype", g_config, NULL, "block.1.attn.sinks", 2);
    expect_fail("offset past EOF", g_config, NULL, "block.0.mlp.mlp1_bias", 3);
    expect_fail("malformed config", "{\"num_hidden_layers\": 2,", NULL, NULL, 0);
    expect_fail("config not object", "[1,2]", NULL, NULL, 0);
    expect_fail("missing key", "{\"num_hidden_layers\": 2}", NULL, NULL, 0);
    expect_fail("negative layers", "{\"num_hidden_layers\": -2, \"num_experts\": 4, \"hidden_size\": 64, \"intermediate_size\": 64,"
                " \"head_dim\": 64, \"num_attention_heads\": 2, \"num_key_value_heads\": 1}", NULL, NULL, 0);
    expect_fail("config/ckpt layer mismatch", "{\"num_hidden_layers\": 3, \"num_experts\": 4, \"hidden_size\": 64, \"intermediate_size\": 64,"
                " \"head_dim\": 64, \"num_attention_heads\": 2, \"num_key_value_heads\": 1}", NULL, NULL, 0);
    expect_fail("hidden not /32", "{\"num_hidden_layers\": 2, \"num_experts\": 4, \"hidden_size\": 48, \"intermediate_size\": 64,"
                " \"head_dim\": 64, \"num_attention_heads\": 2, \"num_key_value_heads\": 1}", NULL, NULL, 0);
    /* CLI usage */
    char* a1[] = {"convert"};
    CHECK(gptoss_cmd_convert(1, a1) == 2, "no args");
    char* a2[] = {"convert", "--bogus", "a", "b"};
    CHECK(gptoss_cmd_convert(4, a2) == 2, "bad flag");
    char* a3[] = {"convert", "/nonexistent-dir", "/tmp/x.bin"};
    CHECK(gptoss_cmd_convert(3, a3) == 1, "missing dir");
    char* a4[] = {"make-model", "--preset", "huge", "/tmp/x.bin"};
    CHECK(gptoss_cmd_make_model(4, a4) == 2, "bad preset");
    char* a5[] = {"make-model", "--preset", "tiny", "--layers", "12x", "/tmp/x.bin"};
    CHECK(gptoss_cmd_make_model(6, a5) == 2, "bad number");
    char* a6[] = {"make-model", "--preset", "tiny", "--hidden", "48", "--vocab", (char*) g_vocab, "/tmp/gptoss-never.bin"};
    CHECK(gptoss_cmd_make_model(8, a6) == 2 && access("/tmp/gptoss-never.bin", F_OK) != 0, "invalid shape");
    char* a7[] = {"tokenize"};
    CHECK(gptoss_cmd_tokenize(1, a7) == 2, "tokenize without -m");
}

static void test_config_parser(void) {
    struct gptoss_model_config c;
    uint32_t v, k;
    CHECK(gptoss_convert_parse_config(g_config, strlen(g_config), &c, &v, &k) == gptoss_status_success && v == 201088 &&
              k == 4 && c.num_blocks == 2 && c.context_length == 131072,
          "config parse");
    static const char* const bad[] = {"", "{", "{\"a\":}", "{\"a\":1,}", "[", "\"x", "{\"num_hidden_layers\":1e999}",
                                      "{\"a\":\"\\ud800\"}", "nul", "{\"a\":01}", "{} x", "{\"a\":\"\x01\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(gptoss_convert_parse_config(bad[i], strlen(bad[i]), &c, &v, &k) == gptoss_status_invalid_argument, "bad config %zu", i);
    }
    /* nesting far deeper than any config: an error, not a stack overflow */
    const size_t depth = 100000;
    char* deep = malloc(depth);
    if (deep != NULL) {
        memset(deep, '[', depth);
        CHECK(gptoss_convert_parse_config(deep, depth, &c, &v, &k) == gptoss_status_invalid_argument,
              "deep nesting rejected");
        free(deep);
    }
    /* a repeated key: the last one counts (as Python's json) */
    const char* twice = "{\"num_hidden_layers\":1,\"num_experts\":4,\"hidden_size\":64,\"intermediate_size\":64,"
                        "\"head_dim\":16,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"num_hidden_layers\":3}";
    CHECK(gptoss_convert_parse_config(twice, strlen(twice), &c, &v, &k) == gptoss_status_success && c.num_blocks == 3,
          "repeated key: %u layers", c.num_blocks);
    /* safetensors header parser on hand-made buffers */
    struct gptoss_st_set set;
    memset(&set, 0, sizeof(set));
    uint8_t buf[256];
    const char* h = "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}";
    uint64_t hl = strlen(h);
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, h, hl);
    CHECK(gptoss_st_parse(buf, 8 + hl + 12, 0, "t", &set) == gptoss_status_success && set.num_tensors == 1 &&
              set.tensors[0].offset == 8 + hl && set.tensors[0].size == 12,
          "safetensors ok");
    gptoss_st_close(&set);
    CHECK(gptoss_st_parse(buf, 8 + hl + 11, 0, "t", &set) == gptoss_status_invalid_argument, "safetensors short data");
    gptoss_st_close(&set);
    hl = 1ull << 60;
    memcpy(buf, &hl, 8);
    CHECK(gptoss_st_parse(buf, 100, 0, "t", &set) == gptoss_status_invalid_argument, "safetensors huge header");
    gptoss_st_close(&set);
    const char* dup = "{\"a\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[0,12]},"
                      "\"a\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[0,12]}}";
    hl = strlen(dup);
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, dup, hl);
    CHECK(gptoss_st_parse(buf, 8 + hl + 12, 0, "t", &set) == gptoss_status_invalid_argument &&
              strstr(gptoss_last_error(), "duplicate") != NULL,
          "safetensors tensor named twice: %s", gptoss_last_error());
    gptoss_st_close(&set);
    const char* h2 = "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,12]}}";
    hl = strlen(h2);
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, h2, hl);
    CHECK(gptoss_st_parse(buf, 8 + hl + 12, 0, "t", &set) == gptoss_status_invalid_argument, "safetensors shape overflow");
    gptoss_st_close(&set);
}

int main(int argc, char** argv) {
    g_vocab = argc > 1 ? argv[1] : gptoss_default_vocab_path();
    if (mkdtemp(g_dir) == NULL) return 2;
    test_config_parser();
    build_checkpoint();
    test_good();
    test_existing_output();
    test_bad();
    for (int i = 0; i < g_nt; i++) free(g_t[i].data);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return finish();
}
