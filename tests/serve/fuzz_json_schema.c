/* Fuzz target of structured outputs (server/json_schema.c). The input is a schema (JSON text)
 * and, after the first NUL byte, a document. The schema is compiled (untrusted: it must never
 * crash, leak or run away, whatever it is); when it compiles, the recognizer's verdict on the
 * document (every byte accepted and the value complete) must be the oracle's
 * (schema_oracle.h: a validator over jansson values and a scan of the text's own rules),
 * except where jansson cannot tell (oracle -1), and the longest prefix it accepts must never
 * be a dead end: complete, or some next byte accepted. A mismatch aborts.
 *
 * Built as a corpus replay (replay_main.c, ctest serve_fuzz_json_schema_replay) and, with
 * -DGPTOSS_FUZZ=ON and clang, as a libFuzzer binary (tests/serve/fuzz.sh SECONDS json_schema). */
#include <stdlib.h>
#include <string.h>

#include "schema_oracle.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const uint8_t* nul = memchr(data, 0, size);
    const size_t schema_len = nul ? (size_t) (nul - data) : size;
    json_t* schema = json_loadb((const char*) data, schema_len, JSON_DECODE_ANY, NULL);
    if (schema == NULL) return 0;
    struct srv_error err;
    struct srv_schema* s = srv_schema_compile(schema, "schema", &err);
    if (s == NULL) {
        if (err.status != 400 || err.message[0] == '\0') {
            fprintf(stderr, "fuzz_json_schema: a refusal without a 400 and a message (%d)\n", err.status);
            abort();
        }
        json_decref(schema);
        return 0;
    }
    const char* text = nul ? (const char*) nul + 1 : "";
    const size_t n = nul ? size - schema_len - 1 : 0;
    struct srv_schema_state* st = srv_schema_state_create(s);
    size_t accepted = 0;
    while (accepted < n && srv_schema_feed(st, text + accepted, 1)) accepted++;
    const int ours = accepted == n && srv_schema_complete(st);
    bool next = srv_schema_complete(st);
    for (int c = 0; c < 256 && !next; c++) {
        const char b = (char) c;
        next = srv_schema_try(st, &b, 1);
    }
    if (!next) {
        fprintf(stderr, "fuzz_json_schema: a dead end after %zu bytes\n", accepted);
        abort();
    }
    const int theirs = nul ? oracle_verdict(schema, text, n) : ours;
    if (theirs >= 0 && ours != theirs) {
        fprintf(stderr, "fuzz_json_schema: recognizer %d (%zu of %zu bytes), oracle %d\n", ours, accepted, n, theirs);
        abort();
    }
    srv_schema_state_free(st);
    srv_schema_free(s);
    json_decref(schema);
    return 0;
}
