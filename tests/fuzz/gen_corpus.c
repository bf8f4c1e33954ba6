/* Writes the seed corpus under DIR/{model_file,safetensors,tokenizer}/ (run once; the
 * output is committed as tests/fuzz/corpus). usage: gen_corpus DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "writer.h"

static void put(const char* dir, const char* sub, const char* name, const void* data, size_t size) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    FILE* f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static enum gptoss_status fill(void* source, struct gptoss_writer* w, const struct gptoss_tensor_ref* t) {
    (void) source;
    const enum gptoss_tensor_kind kind = t->kind;
    uint64_t size = t->size;
    uint8_t buf[256];
    while (size) {
        size_t n = size < sizeof(buf) ? (size_t) size : sizeof(buf);
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t) (i * 37 + kind);
        enum gptoss_status st = gptoss_writer_write(w, buf, n);
        if (st) return st;
        size -= n;
    }
    return gptoss_status_success;
}

static uint8_t* slurp(const char* path, size_t* n) {
    FILE* f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t) ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t* b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) exit(1);
    fclose(f);
    return b;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char* dir = argv[1];
    mkdir(dir, 0755);
    /* a small vocabulary: 256 bytes + a few merges */
    static const char* const merges[] = {"he", "ll", "hell", "hello", " w", "or", "ld", "  ", " world", "\xc3\xa9"};
    const uint32_t nm = sizeof(merges) / sizeof(merges[0]);
    struct gptoss_vocab v;
    v.num_tokens = 256 + nm;
    v.offsets = malloc((v.num_tokens + 1) * sizeof(uint32_t));
    v.bytes = malloc(4096);
    uint32_t pos = 0;
    for (uint32_t i = 0; i < 256; i++) v.offsets[i] = pos, v.bytes[pos++] = (uint8_t) i;
    for (uint32_t i = 0; i < nm; i++) {
        v.offsets[256 + i] = pos;
        memcpy(v.bytes + pos, merges[i], strlen(merges[i]));
        pos += (uint32_t) strlen(merges[i]);
    }
    v.offsets[v.num_tokens] = pos;
    struct gptoss_model_config c = {
        .context_length = 64, .num_blocks = 2, .num_experts = 2, .num_active_experts = 1, .embedding_dim = 32,
        .mlp_dim = 32, .swiglu_limit = 7.0f, .head_dim = 4, .num_heads = 2, .num_kv_heads = 1,
        .attention_window = 8, .rope_theta = 150000.0f, .interpolation_scale = 1.0f, .yarn_offset = 0.0f,
        .yarn_scale = 1.0f, .yarn_multiplier = 1.0f, .rmsnorm_epsilon = 1e-5f};
    char path[1024];
    snprintf(path, sizeof(path), "%s/small-model.bin", dir);
    struct gptoss_writer w;
    if (gptoss_writer_open(&w, path, &c, &v, 1) || gptoss_writer_write_weights(&w, fill, NULL, 0)) {
        fprintf(stderr, "write failed: %s\n", gptoss_last_error());
        return 1;
    }
    size_t n;
    uint8_t* model = slurp(path, &n);
    remove(path);
    put(dir, "model_file", "valid-small", model, n);
    put(dir, "model_file", "truncated-header", model, 100);
    put(dir, "model_file", "truncated-tokenizer", model, 800);
    put(dir, "model_file", "truncated-weights", model, n - 1000);
    model[36] = 200; /* num_blocks past EOF */
    put(dir, "model_file", "blocks-past-eof", model, n);
    model[36] = 2;
    model[0] = 'X';
    put(dir, "model_file", "bad-magic", model, n);
    model[0] = 'G';
    model[148 + 16 * 3] ^= 1; /* unknown special UUID */
    put(dir, "model_file", "odd-uuid", model, n);
    free(model);

    /* safetensors + config */
    const char* h = "{\"__metadata__\":{\"format\":\"pt\"},\"block.0.attn.sinks\":{\"dtype\":\"BF16\",\"shape\":[4],"
                    "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"U8\",\"shape\":[2,2,16],\"data_offsets\":[8,72]}}";
    uint8_t buf[512];
    uint64_t hl = strlen(h);
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, h, hl);
    memset(buf + 8 + hl, 0x3f, 72);
    put(dir, "safetensors", "valid.safetensors", buf, 8 + hl + 72);
    put(dir, "safetensors", "short-data.safetensors", buf, 8 + hl + 40);
    hl = 1ull << 40;
    memcpy(buf, &hl, 8);
    put(dir, "safetensors", "huge-header.safetensors", buf, 64);
    const char* cfg =
        "{\"num_hidden_layers\": 24, \"num_experts\": 32, \"experts_per_token\": 4, \"vocab_size\": 201088,"
        " \"hidden_size\": 2880, \"intermediate_size\": 2880, \"swiglu_limit\": 7.0, \"head_dim\": 64,"
        " \"num_attention_heads\": 64, \"num_key_value_heads\": 8, \"sliding_window\": 128,"
        " \"initial_context_length\": 4096, \"rope_theta\": 150000, \"rope_scaling_factor\": 32.0,"
        " \"rope_ntk_alpha\": 1.0, \"rope_ntk_beta\": 32.0}";
    put(dir, "safetensors", "config-20b.json", cfg, strlen(cfg));
    const char* js = "{\"a\":[1,-2.5e3,\"\\u00e9\\ud83d\\ude00\",true,false,null,{\"b\":[[]]}]}";
    put(dir, "safetensors", "json-mix.json", js, strlen(js));

    /* tokenizer texts */
    static const char* const texts[] = {
        "Hello, world!", "I'm sure they'll say we've done it, DON'T you think?",
        "Numbers: 1 12 123 1234 12345", "   \n\n   \t\t  x", "def add(a, b):\n\treturn a + b\n",
        "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c", "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
        "\xf0\x9f\x99\x82\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "MiXeD\xc7\x88?!!!!\n", "\xff\xfe\x80 invalid \xc3",
        "<|start|>user<|message|>hi<|end|>", "\xc2\x85\xc2\xa0\xe3\x80\x80 spaces"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char name[32];
        snprintf(name, sizeof(name), "text-%02zu", i);
        put(dir, "tokenizer", name, texts[i], strlen(texts[i]));
    }
    gptoss_vocab_free(&v);
    return 0;
}
