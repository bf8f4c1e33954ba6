/* JSON mode's recognizer and allowed tokens (server/json_mode.c) against jansson:
 *   - random JSON objects (nested objects and arrays, strings with escapes and UTF-8 of 1-4
 *     bytes, numbers of every form, literals) written by jansson in several styles: every
 *     prefix is accepted, the object is complete at its last byte and not before;
 *   - the same documents edited at random (bytes inserted, deleted, replaced): the
 *     recognizer takes the whole text as a complete object exactly when jansson loads it as
 *     an object (jansson's own limits, which RFC 8259's grammar does not have, are skipped
 *     and counted: integers and reals out of its range, lone surrogate escapes);
 *   - the allowed tokens of states along those documents, with the real o200k vocabulary
 *     (a random tiny model's): a sample of token ids checked one by one against feeding their
 *     bytes, no special token ever allowed, and the document's next byte always allowed as
 *     its one-byte token.
 * Seed: GPTOSS_TEST_SEED. */
#include <time.h>

#include "../engine/test_util.h"
#include <gptoss/offline.h>

#include "server.h"

static uint32_t below(uint32_t n) { return (uint32_t) (rng_next() % n); }

/* A random UTF-8 character (1-4 bytes) appended to s, or an ASCII control / quote / backslash
 * (which jansson escapes). */
static void random_char(char* s, size_t* n) {
    uint32_t cp;
    switch (below(6)) {
    case 0: cp = below(0x20); break;          /* control: escaped */
    case 1: cp = below(2) ? '"' : '\\'; break; /* escaped */
    case 2: cp = 0x80 + below(0x800 - 0x80); break;
    case 3:
        do cp = 0x800 + below(0x10000 - 0x800);
        while (cp >= 0xD800 && cp <= 0xDFFF);
        break;
    case 4: cp = 0x10000 + below(0x110000 - 0x10000); break;
    default: cp = 0x20 + below(0x5F); break;
    }
    if (cp == 0) cp = 1; /* jansson strings are NUL-terminated here */
    if (cp < 0x80) {
        s[(*n)++] = (char) cp;
    } else if (cp < 0x800) {
        s[(*n)++] = (char) (0xC0 | cp >> 6);
        s[(*n)++] = (char) (0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s[(*n)++] = (char) (0xE0 | cp >> 12);
        s[(*n)++] = (char) (0x80 | (cp >> 6 & 0x3F));
        s[(*n)++] = (char) (0x80 | (cp & 0x3F));
    } else {
        s[(*n)++] = (char) (0xF0 | cp >> 18);
        s[(*n)++] = (char) (0x80 | (cp >> 12 & 0x3F));
        s[(*n)++] = (char) (0x80 | (cp >> 6 & 0x3F));
        s[(*n)++] = (char) (0x80 | (cp & 0x3F));
    }
}

static json_t* random_string(void) {
    char s[64];
    size_t n = 0;
    for (uint32_t k = below(8); k > 0; k--) random_char(s, &n);
    s[n] = '\0';
    return json_string(s);
}

static json_t* random_value(int depth) {
    switch (below(depth >= 4 ? 6 : 8)) {
    case 0: return json_integer((json_int_t) (rng_next() >> below(64)) * (below(2) ? -1 : 1));
    case 1: return json_real(((double) (int64_t) rng_next()) * (below(2) ? 1e-300 : 1e-10) / (1 + below(1000)));
    case 2: return json_real((double) below(1000) / 8.0);
    case 3: return below(2) ? json_true() : json_false();
    case 4: return json_null();
    case 5: return random_string();
    case 6: {
        json_t* a = json_array();
        for (uint32_t k = below(5); k > 0; k--) json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t* o = json_object();
        for (uint32_t k = below(5); k > 0; k--) {
            char key[16];
            snprintf(key, sizeof(key), "%c%u", 'a' + below(26), below(100));
            json_object_set_new(o, key, random_value(depth + 1));
        }
        return o;
    }
    }
}

/* A random object as text, in one of jansson's styles (indented, compact, ASCII escapes). */
static char* random_document(void) {
    json_t* o = json_object();
    for (uint32_t k = below(6); k > 0; k--) {
        char key[16];
        snprintf(key, sizeof(key), "k%u", below(1000));
        json_object_set_new(o, key, random_value(1));
    }
    static const size_t styles[] = {0, JSON_COMPACT, JSON_INDENT(2), JSON_ENSURE_ASCII, JSON_INDENT(1) | JSON_SORT_KEYS};
    char* text = json_dumps(o, styles[below(5)] | JSON_REAL_PRECISION(below(2) ? 17 : 6));
    json_decref(o);
    return text;
}

/* 1: every byte accepted and the object complete after the last; *at: the first refused byte */
static int recognize(const char* s, size_t n, size_t* at) {
    struct srv_json j;
    srv_json_init(&j);
    for (size_t i = 0; i < n; i++) {
        if (!srv_json_feed_byte(&j, (uint8_t) s[i])) {
            *at = i;
            return 0;
        }
    }
    *at = n;
    return srv_json_complete(&j);
}

static void test_documents(unsigned count) {
    unsigned prefixes_ok = 0;
    for (unsigned d = 0; d < count; d++) {
        char* text = random_document();
        const size_t n = strlen(text);
        struct srv_json j;
        srv_json_init(&j);
        size_t bad = SIZE_MAX, early = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            if (!srv_json_feed_byte(&j, (uint8_t) text[i])) {
                bad = i;
                break;
            }
            if (srv_json_complete(&j) && i + 1 < n && early == SIZE_MAX) early = i;
        }
        CHECK(bad == SIZE_MAX, "document %u: byte %zu of %zu (0x%02x) refused: %.80s", d, bad, n,
              bad < n ? (unsigned char) text[bad] : 0, text);
        CHECK(bad != SIZE_MAX || srv_json_complete(&j), "document %u: not complete at its end: %.80s", d, text);
        CHECK(early == SIZE_MAX, "document %u: complete at byte %zu of %zu", d, early, n);
        prefixes_ok += bad == SIZE_MAX;
        free(text);
    }
    printf("  %u random documents: every prefix accepted in %u\n", count, prefixes_ok);
}

static void test_edits(unsigned count) {
    static const char interesting[] = "{}[]\":,\\ -+.eE0123456789tfnulrsabx\t\n\x01\x7f\xc0\xc2\xa9\xe0\xed\xf0\xf4\xf5\x80\xbf";
    unsigned agree = 0, valid = 0, skipped_limits = 0;
    for (unsigned d = 0; d < count; d++) {
        char* doc = random_document();
        size_t n = strlen(doc);
        char* s = malloc(n + 16);
        memcpy(s, doc, n);
        for (uint32_t e = 1 + below(3); e > 0; e--) {
            const size_t at = below((uint32_t) n + 1);
            const char c = interesting[below(sizeof(interesting) - 1)];
            switch (below(3)) {
            case 0: /* insert */
                memmove(s + at + 1, s + at, n - at);
                s[at] = c;
                n++;
                break;
            case 1: /* delete */
                if (at < n) {
                    memmove(s + at, s + at + 1, n - at - 1);
                    n--;
                }
                break;
            default: /* replace */
                if (at < n) s[at] = c;
                break;
            }
        }
        /* the recognizer takes the object alone: compare on the text without the whitespace
         * around it (which jansson allows) */
        size_t lead = 0;
        while (lead < n && strchr(" \t\n\r", s[lead]) != NULL && s[lead] != '\0') lead++;
        while (n > lead && strchr(" \t\n\r", s[n - 1]) != NULL && s[n - 1] != '\0') n--;
        memmove(s, s + lead, n - lead);
        n -= lead;
        size_t stop = 0;
        const int ours = recognize(s, n, &stop);
        json_error_t err;
        json_t* v = json_loadb(s, n, JSON_ALLOW_NUL, &err);
        const int theirs = v != NULL && json_is_object(v);
        json_decref(v);
        if (ours && !theirs && (strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL ||
                                strstr(err.text, "surrogate") != NULL || strstr(err.text, "Unicode") != NULL)) {
            skipped_limits++; /* RFC 8259 allows it; jansson's representation does not */
        } else {
            CHECK(ours == theirs, "edit %u: recognizer %d (stopped at byte %zu), jansson %d (%s) on %zu bytes: %.*s", d,
                  ours, stop, theirs, theirs ? "ok" : err.text, n, (int) (n < 120 ? n : 120), s);
            agree += ours == theirs;
            valid += theirs;
        }
        free(s);
        free(doc);
    }
    printf("  %u edited documents: %u agree with jansson (%u valid objects), %u past jansson's limits\n", count,
           agree, valid, skipped_limits);
    CHECK(valid > 0 && valid < agree, "edits must give both valid and invalid documents (%u of %u)", valid, agree);
}

static void test_hand_cases(void) {
    static const struct {
        const char* text;
        int complete; /* 1 complete, 0 a valid prefix, -1 refused */
    } cases[] = {
        {"{}", 1},
        {"{ \n\t\r}", 1},
        {" {}", -1},                /* the object alone: nothing before it */
        {"{} ", -1},                /* nor after it */
        {"{\"a\":[1,-0.5e+3,0,true,false,null,\"\\u00e9\\n\"]}", 1},
        {"{\"a\":{\"b\":{\"c\":[[[]]]}}}", 1},
        {"{\"a\":1", 0},
        {"{\"a\":\"\xc3", 0},       /* an open two-byte character */
        {"{\"a\":\"\xc3\xa9\"}", 1},
        {"[]", -1},                 /* the top is an object */
        {"\"x\"", -1},
        {"{\"a\":01}", -1},         /* leading zero */
        {"{\"a\":1.}", -1},
        {"{\"a\":-}", -1},
        {"{\"a\":1e}", -1},
        {"{\"a\":.5}", -1},
        {"{\"a\":tru}", -1},
        {"{\"a\":nul", 0},
        {"{\"a\" 1}", -1},
        {"{\"a\":1,}", -1},         /* trailing comma */
        {"{\"a\":[1,]}", -1},
        {"{'a':1}", -1},
        {"{\"a\":\"\x01\"}", -1},   /* a control byte in a string */
        {"{\"a\":\"\\x\"}", -1},    /* a bad escape */
        {"{\"a\":\"\\u12g4\"}", -1},
        {"{\"a\":\"\xc0\xaf\"}", -1},     /* overlong */
        {"{\"a\":\"\xed\xa0\x80\"}", -1}, /* a surrogate in UTF-8 */
        {"{\"a\":\"\xf4\x90\x80\x80\"}", -1}, /* past U+10FFFF */
        {"{\"a\":[}", -1},
        {"{\"a\":1]}", -1},
        {"{} {}", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct srv_json j;
        srv_json_init(&j);
        const bool fed = srv_json_feed(&j, cases[i].text, strlen(cases[i].text));
        const int got = !fed ? -1 : srv_json_complete(&j) ? 1 : 0;
        CHECK(got == cases[i].complete, "%s: %d, want %d", cases[i].text, got, cases[i].complete);
    }
    /* nesting: SRV_JSON_MAX_DEPTH containers, not one more */
    struct srv_json j;
    srv_json_init(&j);
    bool ok = srv_json_feed(&j, "{\"a\":", 5);
    for (int d = 1; d < SRV_JSON_MAX_DEPTH; d++) ok = ok && srv_json_feed_byte(&j, '[');
    CHECK(ok, "%d nested containers", SRV_JSON_MAX_DEPTH);
    CHECK(!srv_json_feed_byte(&j, '['), "container %d is refused", SRV_JSON_MAX_DEPTH + 1);
    /* whitespace: SRV_JSON_MAX_WS bytes in a row, not one more; inside a string any number */
    srv_json_init(&j);
    ok = srv_json_feed_byte(&j, '{');
    for (int k = 0; k < SRV_JSON_MAX_WS; k++) ok = ok && srv_json_feed_byte(&j, k % 2 ? ' ' : '\n');
    CHECK(ok && !srv_json_feed_byte(&j, ' '), "%d whitespace bytes in a row, not %d", SRV_JSON_MAX_WS,
          SRV_JSON_MAX_WS + 1);
    CHECK(srv_json_feed(&j, "}", 1) && srv_json_complete(&j), "then the object closes");
    srv_json_init(&j);
    ok = srv_json_feed(&j, "{\"", 2);
    for (int k = 0; k < 3 * SRV_JSON_MAX_WS; k++) ok = ok && srv_json_feed_byte(&j, ' ');
    CHECK(ok, "spaces in a string are content");
}

/* The allowed tokens along random documents, checked by feeding token bytes. */
static void test_allowed(gptoss_tokenizer_t tok, uint32_t V, unsigned count) {
    struct srv_json_vocab* v = srv_json_vocab_create(tok, V);
    CHECK(v != NULL, "vocabulary");
    if (v == NULL) return;
    uint32_t* words = malloc(v->num_words * sizeof(uint32_t));
    unsigned states = 0, sampled = 0;
    size_t total_allowed = 0;
    for (unsigned d = 0; d < count; d++) {
        char* text = random_document();
        const size_t n = strlen(text);
        struct srv_json j;
        srv_json_init(&j);
        for (size_t i = 0; i <= n; i++) {
            if (below(8) == 0 || i == n) {
                states++;
                const size_t allowed = srv_json_allowed(&j, v, words);
                total_allowed += allowed;
                size_t counted = 0;
                for (uint32_t w = 0; w < v->num_words; w++) counted += (size_t) __builtin_popcount(words[w]);
                CHECK(counted == allowed, "the count %zu is the mask's %zu", allowed, counted);
                for (uint32_t id = v->num_text; id < V; id++) {
                    CHECK(!(words[id / 32] >> (id % 32) & 1u), "special or unused id %u allowed", id);
                }
                for (int k = 0; k < 300; k++) {
                    const uint32_t id = below(v->num_text);
                    struct srv_json t = j;
                    const bool fits = v->offsets[id + 1] > v->offsets[id] &&
                                      srv_json_feed(&t, v->bytes + v->offsets[id], v->offsets[id + 1] - v->offsets[id]);
                    CHECK(fits == (bool) (words[id / 32] >> (id % 32) & 1u), "token %u: fits %d, mask %d", id, fits,
                          !fits);
                    sampled++;
                }
                if (i < n) { /* the next byte of the document, as its one-byte token */
                    uint32_t id = 0;
                    size_t got = 0;
                    if (gptoss_tokenizer_encode(tok, text + i, 1, &id, 1, &got) == gptoss_status_success && got == 1) {
                        CHECK(words[id / 32] >> (id % 32) & 1u, "the next byte 0x%02x (token %u) is not allowed",
                              (unsigned char) text[i], id);
                    }
                } else {
                    CHECK(srv_json_complete(&j), "complete at the end");
                }
            }
            if (i < n && !srv_json_feed_byte(&j, (uint8_t) text[i])) break;
        }
        free(text);
    }
    printf("  allowed tokens: %u states, %u tokens checked one by one, %.0f allowed on average\n", states, sampled,
           states ? (double) total_allowed / states : 0.0);
    free(words);
    srv_json_vocab_free(v);
}

int main(void) {
    const char* seed_env = getenv("GPTOSS_TEST_SEED");
    g_rng = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t) time(NULL);
    printf("seed %llu (GPTOSS_TEST_SEED)\n", (unsigned long long) g_rng);
    test_hand_cases();
    test_documents(3000);
    test_edits(20000);
    gptoss_backend_t b = NULL;
    gptoss_model_t m = NULL;
    gptoss_tokenizer_t tok = NULL;
    uint32_t V = 0;
    if (gptoss_backend_create_cpu(1, &b) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 1, 1, b, &m) != gptoss_status_success ||
        gptoss_model_get_tokenizer(m, &tok) != gptoss_status_success ||
        gptoss_tokenizer_get_num_tokens(tok, &V) != gptoss_status_success) {
        fprintf(stderr, "set-up: %s\n", gptoss_last_error());
        return 1;
    }
    test_allowed(tok, V, 40);
    gptoss_tokenizer_release(tok);
    gptoss_model_release(m);
    gptoss_backend_release(b);
    return finish();
}
