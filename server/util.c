/* Small helpers of the server: byte buffers, lossy UTF-8, errors, ids, the clock. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "server.h"

/* ---- buffers ------------------------------------------------------------------------ */

void srv_buf_put(struct srv_buf* b, const void* s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char* p = realloc(b->data, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void srv_buf_puts(struct srv_buf* b, const char* s) { srv_buf_put(b, s, strlen(s)); }

void srv_buf_printf(struct srv_buf* b, const char* fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t) n < sizeof(small)) {
        srv_buf_put(b, small, (size_t) n);
        return;
    }
    char* big = malloc((size_t) n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t) n + 1, fmt, ap);
    va_end(ap);
    srv_buf_put(b, big, (size_t) n);
    free(big);
}

void srv_buf_free(struct srv_buf* b) {
    free(b->data);
    *b = (struct srv_buf){0};
}

/* ---- UTF-8 -------------------------------------------------------------------------- */

/* Length of the well-formed sequence at s (Unicode table 3-7), 0 if ill-formed; *maximal
 * is the length of its maximal subpart (the bytes replaced by one U+FFFD), and *incomplete
 * is set when the input ended inside a sequence that was valid so far. */
static size_t utf8_sequence(const unsigned char* s, size_t n, size_t* maximal, bool* incomplete) {
    const unsigned char c = s[0];
    *incomplete = false;
    *maximal = 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) { need = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 3;
    else if (c == 0xED) { need = 3; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) need = 3;
    else if (c == 0xF0) { need = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else if (c == 0xF4) { need = 4; hi = 0x8F; }
    else return 0;
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *incomplete = true;
            *maximal = i;
            return 0;
        }
        const unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (s[i] < lo_i || s[i] > hi_i) {
            *maximal = i;
            return 0;
        }
    }
    return need;
}

size_t srv_utf8_lossy(struct srv_buf* out, const char* s, size_t n, bool partial) {
    const unsigned char* u = (const unsigned char*) s;
    size_t i = 0, run = 0; /* [run, i) is valid text not yet written */
    while (i < n) {
        size_t maximal;
        bool incomplete;
        const size_t len = utf8_sequence(u + i, n - i, &maximal, &incomplete);
        if (len > 0) {
            i += len;
            continue;
        }
        srv_buf_put(out, s + run, i - run);
        if (incomplete && partial) return i;
        srv_buf_put(out, "\xEF\xBF\xBD", 3);
        i += maximal;
        run = i;
    }
    srv_buf_put(out, s + run, n - run);
    return n;
}

/* ---- errors ------------------------------------------------------------------------- */

void srv_error_set(struct srv_error* e, int status, const char* type, const char* code, const char* param,
                   const char* fmt, ...) {
    e->status = status;
    e->type = type;
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* A string for JSON: the bytes made valid UTF-8 (messages may quote request text). */
static json_t* lossy_string(const char* s) {
    struct srv_buf b = {0};
    srv_utf8_lossy(&b, s, strlen(s), false);
    json_t* j = json_stringn(b.data ? b.data : "", b.len);
    srv_buf_free(&b);
    return j;
}

json_t* srv_error_json(const struct srv_error* e) {
    json_t* inner = json_object();
    json_object_set_new(inner, "message", lossy_string(e->message));
    json_object_set_new(inner, "type", json_string(e->type ? e->type : "server_error"));
    json_object_set_new(inner, "param", e->param[0] ? lossy_string(e->param) : json_null());
    json_object_set_new(inner, "code", e->code[0] ? json_string(e->code) : json_null());
    json_t* o = json_object();
    json_object_set_new(o, "error", inner);
    return o;
}

/* ---- ids and time ------------------------------------------------------------------- */

void srv_make_id(char* out, size_t size, const char* prefix) {
    unsigned char r[12];
    if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r)) {
        /* no entropy source: time and a counter keep ids unique within the process */
        static atomic_uint_fast64_t counter;
        const uint64_t t = (uint64_t) time(NULL) ^ (atomic_fetch_add(&counter, 1) << 32);
        for (size_t i = 0; i < sizeof(r); i++) r[i] = (unsigned char) (t >> (8 * (i % 8)));
    }
    int o = snprintf(out, size, "%s", prefix);
    for (size_t i = 0; i < sizeof(r) && o > 0 && (size_t) o + 2 < size; i++) o += snprintf(out + o, size - (size_t) o, "%02x", r[i]);
}

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}
