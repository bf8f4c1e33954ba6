/* Tokenizer tests: the 300 o200k_base reference vectors (independent tokenizer),
 * special tokens and names, decode/encode round trips on ASCII and UTF-8 text.
 * Usage: test_tokenizer VECTORS.jsonl [VOCAB.tiktoken] */
#include <gptoss/engine.h>
#include <jansson.h>
#include <unistd.h>

#include "test_util.h"
#include "writer.h"

/* A file with just header + tokenizer section (all tokenizer_create_from_file reads), laid
 * out by the writer's own helpers. */
static int write_tokenizer_file(const char* path, const char* vocab_path) {
    struct gptoss_vocab vocab;
    if (gptoss_vocab_load_tiktoken(vocab_path, &vocab) != gptoss_status_success) {
        fprintf(stderr, "cannot load %s: %s\n", vocab_path, gptoss_last_error());
        return 0;
    }
    struct gptoss_model_config c = {
        .context_length = 4096, .num_blocks = 1, .num_experts = 4, .num_active_experts = 2, .embedding_dim = 64,
        .mlp_dim = 64, .swiglu_limit = 7.0f, .head_dim = 64, .num_heads = 8, .num_kv_heads = 1,
        .attention_window = 128, .rope_theta = 150000.0f, .interpolation_scale = 1.0f, .yarn_offset = 0.0f,
        .yarn_scale = 1.0f, .yarn_multiplier = 1.0f, .rmsnorm_epsilon = 1e-5f};
    uint8_t* section = NULL;
    size_t section_size = 0;
    uint32_t regex_size = 0, tokens_size = 0;
    enum gptoss_status st = gptoss_tokenizer_section_build(&vocab, &section, &section_size, &regex_size, &tokens_size);
    const uint32_t num_text = vocab.num_tokens;
    gptoss_vocab_free(&vocab);
    if (st != gptoss_status_success) {
        fprintf(stderr, "tokenizer section: %s\n", gptoss_last_error());
        return 0;
    }
    uint8_t* file = malloc(GPTOSS_FILE_HEADER_SIZE + section_size);
    int ok = file != NULL;
    if (ok) {
        gptoss_file_build_header(file, &c, 16, num_text, regex_size, tokens_size);
        memcpy(file + GPTOSS_FILE_HEADER_SIZE, section, section_size);
        ok = write_whole(path, file, GPTOSS_FILE_HEADER_SIZE + section_size);
    }
    free(file);
    free(section);
    return ok;
}

static void test_vectors(gptoss_tokenizer_t tok, const char* vectors_path) {
    size_t size;
    char* data = (char*) read_whole(vectors_path, &size);
    if (data == NULL) {
        CHECK(0, "cannot read %s", vectors_path);
        return;
    }
    int ok_count = 0, total = 0;
    size_t capacity = 1 << 16;
    uint32_t* tokens = malloc(capacity * sizeof(uint32_t));
    char* line = data;
    while (line < data + size) {
        char* nl = memchr(line, '\n', (size_t) (data + size - line));
        size_t len = nl ? (size_t) (nl - line) : (size_t) (data + size - line);
        if (len > 0) {
            json_error_t error;
            json_t* v = json_loadb(line, len, 0, &error);
            if (v == NULL) {
                CHECK(0, "vector line %d: %s", total + 1, error.text);
            } else {
                total++;
                const json_t* text = json_object_get(v, "text");
                const json_t* want = json_object_get(v, "tokens");
                if (!json_is_string(text) || !json_is_array(want)) {
                    CHECK(0, "vector %d: missing text/tokens", total);
                } else {
                    const char* chars = json_string_value(text);
                    const size_t length = json_string_length(text);
                    size_t n = 0;
                    enum gptoss_status st = gptoss_tokenizer_encode(tok, chars, length, tokens, capacity, &n);
                    int same = st == gptoss_status_success && n == json_array_size(want);
                    for (size_t i = 0; same && i < n; i++) {
                        const json_t* id = json_array_get(want, i);
                        same = json_is_integer(id) && json_integer_value(id) == (json_int_t) tokens[i];
                    }
                    if (same) {
                        ok_count++;
                    } else {
                        fprintf(stderr, "vector %d mismatch (status %s): text %.60s\n  got ", total,
                                gptoss_status_to_string(st), chars);
                        for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, "%u ", tokens[i]);
                        fprintf(stderr, "\n want ");
                        for (size_t i = 0; i < json_array_size(want) && i < 40; i++) {
                            fprintf(stderr, "%lld ", (long long) json_integer_value(json_array_get(want, i)));
                        }
                        fprintf(stderr, "\n");
                    }
                    CHECK(same, "vector %d", total);
                    /* decode round trip */
                    size_t pos = 0;
                    int rt = st == gptoss_status_success;
                    for (size_t i = 0; rt && i < n; i++) {
                        const void* p;
                        size_t s;
                        rt = gptoss_tokenizer_decode(tok, tokens[i], &p, &s) == gptoss_status_success &&
                             pos + s <= length && memcmp(chars + pos, p, s) == 0;
                        pos += s;
                    }
                    CHECK(rt && pos == length, "vector %d: decode does not give the text back", total);
                }
                json_decref(v);
            }
        }
        line += len + 1;
    }
    printf("tokenizer vectors: %d / %d match\n", ok_count, total);
    CHECK(total == 300, "expected 300 vectors, read %d", total);
    free(tokens);
    free(data);
}

static void test_specials(gptoss_tokenizer_t tok) {
    uint32_t n;
    CHECK(gptoss_tokenizer_get_num_text_tokens(tok, &n) == gptoss_status_success && n == 199998, "text %u", n);
    CHECK(gptoss_tokenizer_get_num_special_tokens(tok, &n) == gptoss_status_success && n == 16, "special %u", n);
    CHECK(gptoss_tokenizer_get_num_tokens(tok, &n) == gptoss_status_success && n == 200014, "total %u", n);
    static const struct { enum gptoss_special_token e; uint32_t id; const char* name; } want[] = {
        {gptoss_special_token_return, 200002, "<|return|>"},   {gptoss_special_token_start, 200006, "<|start|>"},
        {gptoss_special_token_message, 200008, "<|message|>"}, {gptoss_special_token_end, 200007, "<|end|>"},
        {gptoss_special_token_refusal, 200013, "<|refusal|>"}, {gptoss_special_token_constrain, 200003, "<|constrain|>"},
        {gptoss_special_token_channel, 200005, "<|channel|>"}, {gptoss_special_token_call, 200012, "<|call|>"},
        {gptoss_special_token_untrusted, 200000, "<|untrusted|>"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        uint32_t id = 0;
        CHECK(gptoss_tokenizer_get_special_token_id(tok, want[i].e, &id) == gptoss_status_success && id == want[i].id,
              "special %d -> %u", (int) want[i].e, id);
        const void* p = NULL;
        size_t s = 0;
        CHECK(gptoss_tokenizer_decode(tok, want[i].id, &p, &s) == gptoss_status_success && s == strlen(want[i].name) &&
                  memcmp(p, want[i].name, s) == 0,
              "name of %u", want[i].id);
    }
    uint32_t id = 0;
    CHECK(gptoss_tokenizer_get_special_token_id(tok, gptoss_special_token_end_untrusted, &id) ==
              gptoss_status_invalid_argument, "end_untrusted must be absent");
    CHECK(gptoss_tokenizer_get_special_token_id(tok, gptoss_special_token_invalid, &id) == gptoss_status_invalid_argument, "invalid enum");
    CHECK(gptoss_tokenizer_get_special_token_id(tok, gptoss_special_token_max, &id) == gptoss_status_invalid_argument, "max enum");
    const void* p;
    size_t s;
    CHECK(gptoss_tokenizer_decode(tok, 199999, &p, &s) == gptoss_status_success && s == 13 && memcmp(p, "<|endoftext|>", 13) == 0, "endoftext");
    CHECK(gptoss_tokenizer_decode(tok, 200009, &p, &s) == gptoss_status_success && s == 19 &&
              memcmp(p, "<|reserved_200009|>", 19) == 0, "reserved name");
    CHECK(gptoss_tokenizer_decode(tok, 200014, &p, &s) == gptoss_status_invalid_argument, "out of range");
    CHECK(gptoss_tokenizer_decode(tok, UINT32_MAX, &p, &s) == gptoss_status_invalid_argument, "out of range");
    /* a token of 128+ bytes (upstream's decode size bug) */
    size_t longest = 0;
    for (uint32_t t = 0; t < 199998; t++) {
        gptoss_tokenizer_decode(tok, t, &p, &s);
        if (s > longest) longest = s;
    }
    CHECK(longest >= 128, "longest token %zu bytes", longest);
    /* capacity */
    size_t count = 0;
    uint32_t small[2];
    CHECK(gptoss_tokenizer_encode(tok, "Hello, world!", 13, small, 2, &count) == gptoss_status_insufficient_memory && count == 4,
          "capacity: count %zu", count);
    CHECK(gptoss_tokenizer_encode(tok, "abc", 3, NULL, 0, &count) == gptoss_status_insufficient_memory && count >= 1, "count only");
    CHECK(gptoss_tokenizer_encode(tok, "", 0, NULL, 0, &count) == gptoss_status_success && count == 0, "empty");
    CHECK(gptoss_tokenizer_encode(tok, NULL, 3, small, 2, &count) == gptoss_status_invalid_argument, "NULL text");
    /* special names are plain text when encoded */
    uint32_t buf[16];
    CHECK(gptoss_tokenizer_encode(tok, "<|start|>", 9, buf, 16, &count) == gptoss_status_success && count > 1, "special as text");
}

/* Random token streams (text tokens) decode to bytes; re-encoding those bytes and decoding
 * again gives the same bytes. Random ASCII and UTF-8 text encodes and decodes back. */
static void test_round_trips(gptoss_tokenizer_t tok) {
    uint32_t* toks = malloc(sizeof(uint32_t) * 65536);
    uint8_t* text = malloc(1 << 20);
    uint8_t* back = malloc(1 << 20);
    int failures = 0;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 0;
        const int mode = trial % 4;
        if (mode == 0) { /* random text-token stream */
            int k = 1 + (int) (rng_next() % 64);
            for (int i = 0; i < k; i++) {
                const void* p;
                size_t s;
                gptoss_tokenizer_decode(tok, (uint32_t) (rng_next() % 199998), &p, &s);
                memcpy(text + n, p, s);
                n += s;
            }
        } else if (mode == 1) { /* ASCII */
            int k = (int) (rng_next() % 300);
            for (int i = 0; i < k; i++) text[n++] = (uint8_t) (rng_next() % 2 ? 32 + rng_next() % 95 : " \n\tae0'"[rng_next() % 7]);
        } else if (mode == 2) { /* UTF-8 from a set of scripts */
            static const char* const pieces[] = {"é", "ß", "Ω", "ж", "中文", "日本語", "한국어", "🙂", "👍🏽", "ǈ", "ſ", "İ", "\xc2\x85",
                                                 "\xc2\xa0", "\xe3\x80\x80", " ", "x", "1", "٣", "'S", "'ll", "\r\n", "…", "ﬁ"};
            int k = (int) (rng_next() % 80);
            for (int i = 0; i < k; i++) {
                const char* s = pieces[rng_next() % (sizeof(pieces) / sizeof(pieces[0]))];
                memcpy(text + n, s, strlen(s));
                n += strlen(s);
            }
        } else { /* arbitrary bytes, invalid UTF-8 included */
            int k = (int) (rng_next() % 200);
            for (int i = 0; i < k; i++) text[n++] = (uint8_t) rng_next();
        }
        size_t count = 0;
        enum gptoss_status st = gptoss_tokenizer_encode(tok, (const char*) text, n, toks, 65536, &count);
        size_t m = 0;
        for (size_t i = 0; st == gptoss_status_success && i < count; i++) {
            const void* p;
            size_t s;
            if (gptoss_tokenizer_decode(tok, toks[i], &p, &s) != gptoss_status_success || toks[i] >= 199998) {
                st = gptoss_status_invalid_state;
                break;
            }
            memcpy(back + m, p, s);
            m += s;
        }
        if (st != gptoss_status_success || m != n || memcmp(text, back, n) != 0) failures++;
    }
    CHECK(failures == 0, "%d of 200 round trips failed", failures);
    /* long runs: no quadratic blow-up, exact round trip */
    size_t n = 200000;
    memset(text, 'a', n);
    size_t count;
    CHECK(gptoss_tokenizer_encode(tok, (const char*) text, n, toks, 65536, &count) == gptoss_status_success, "long run");
    memset(text, ' ', n);
    CHECK(gptoss_tokenizer_encode(tok, (const char*) text, n, toks, 65536, &count) == gptoss_status_success, "long spaces");
    free(toks);
    free(text);
    free(back);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s VECTORS.jsonl [VOCAB.tiktoken]\n", argv[0]);
        return 2;
    }
    const char* vocab_path = argc > 2 ? argv[2] : gptoss_default_vocab_path();
    char path[] = "/tmp/gptoss-tok-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 2;
    close(fd);
    if (!write_tokenizer_file(path, vocab_path)) {
        unlink(path);
        CHECK(0, "cannot write the tokenizer file");
        return finish();
    }
    gptoss_tokenizer_t tok = NULL;
    enum gptoss_status st = gptoss_tokenizer_create_from_file(path, &tok);
    CHECK(st == gptoss_status_success, "create_from_file: %s", gptoss_last_error());
    unlink(path);
    if (st == gptoss_status_success) {
        test_vectors(tok, argv[1]);
        test_specials(tok);
        test_round_trips(tok);
        CHECK(gptoss_tokenizer_release(tok) == gptoss_status_success, "release");
    }
    CHECK(gptoss_tokenizer_release(NULL) == gptoss_status_success, "release NULL");
    return finish();
}
