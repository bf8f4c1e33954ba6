/* Fuzz target of JSON mode's recognizer (server/json_mode.c) against jansson. The input is a
 * text. The recognizer takes it whole as a complete object exactly when jansson loads it as
 * an object (JSON_ALLOW_NUL) and the text also keeps the recognizer's own rules: no
 * whitespace before or after the object, at most SRV_JSON_MAX_DEPTH nested containers and
 * SRV_JSON_MAX_WS whitespace bytes in a row (both counted here by a scan of the text's
 * strings, written apart from the recognizer). Where jansson refuses what RFC 8259 allows
 * (numbers beyond its range, lone surrogate escapes), an acceptance is not a mismatch, nor
 * is a refusal where jansson takes a NUL byte between tokens. A mismatch aborts.
 *
 * Built as a corpus replay (replay_main.c, ctest serve_fuzz_json_mode_replay) and, with
 * -DGPTOSS_FUZZ=ON and clang, as a libFuzzer binary (tests/serve/fuzz.sh SECONDS json_mode). */
#include <stdlib.h>
#include <string.h>

#include "server.h"

static int is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The deepest nesting and the longest whitespace run outside strings, of a text jansson
 * parsed (its strings are well formed), and whether a NUL byte stands outside the strings
 * (jansson 2.14 takes it between tokens; RFC 8259 does not) */
static void measure(const uint8_t* s, size_t n, int* depth_out, int* ws_out, int* nul_out) {
    int depth = 0, most = 0, run = 0, longest = 0, in_string = 0;
    *nul_out = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = s[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
            continue;
        }
        if (is_ws(c)) {
            run++;
            if (run > longest) longest = run;
            continue;
        }
        run = 0;
        if (c == '\0') *nul_out = 1;
        if (c == '"') in_string = 1;
        else if (c == '{' || c == '[') {
            if (++depth > most) most = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    *depth_out = most;
    *ws_out = longest;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct srv_json j;
    srv_json_init(&j);
    int ours = 1;
    for (size_t i = 0; i < size && ours; i++) ours = srv_json_feed_byte(&j, data[i]);
    ours = ours && srv_json_complete(&j);

    json_error_t err;
    json_t* v = json_loadb((const char*) data, size, JSON_ALLOW_NUL, &err);
    const int loaded = v != NULL;
    int theirs = loaded && json_is_object(v);
    json_decref(v);
    if (theirs) {
        int depth = 0, ws = 0, nul = 0;
        measure(data, size, &depth, &ws, &nul);
        theirs = !nul && !is_ws(data[0]) && !is_ws(data[size - 1]) && depth <= SRV_JSON_MAX_DEPTH &&
                 ws <= SRV_JSON_MAX_WS;
    }
    if (ours == theirs) return 0;
    if (ours && !loaded &&
        (strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL ||
         strstr(err.text, "Unicode") != NULL)) {
        return 0; /* RFC 8259 allows it; jansson's representation does not */
    }
    fprintf(stderr, "fuzz_json_mode: recognizer %d, jansson %d (%s) on %zu bytes\n", ours, theirs,
            loaded ? "loaded" : err.text, size);
    abort();
}
