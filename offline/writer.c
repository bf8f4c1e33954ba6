/* Model file writer (MODEL_FORMAT.md 10) and tiktoken vocabulary loader. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gptoss/error.h>

#include "writer.h"

const char gptoss_o200k_regex[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

#ifndef GPTOSS_VOCAB_DEFAULT
#define GPTOSS_VOCAB_DEFAULT "data/o200k_base.tiktoken"
#endif

/* ---- vocabulary --------------------------------------------------------------------- */

const char* gptoss_default_vocab_path(void) {
    static _Thread_local char buf[PATH_MAX + 64];
    if (access(GPTOSS_VOCAB_DEFAULT, R_OK) == 0) return GPTOSS_VOCAB_DEFAULT;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char* slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            static const char* const rel[] = {"/../data/o200k_base.tiktoken", "/../share/gptoss/o200k_base.tiktoken",
                                              "/data/o200k_base.tiktoken"};
            for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
                snprintf(buf, sizeof(buf), "%s%s", exe, rel[i]);
                if (access(buf, R_OK) == 0) return buf;
            }
        }
    }
    /* a build carried to another machine, run from the repository's root */
    static const char here[] = "data/o200k_base.tiktoken";
    if (access(here, R_OK) == 0) return here;
    return GPTOSS_VOCAB_DEFAULT;
}

static int b64_value(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict base64 decode of s[0..n) into out; returns the byte count or -1. */
static long b64_decode(const char* s, size_t n, uint8_t* out) {
    if (n == 0 || n % 4 != 0) return -1;
    long k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=') {
                if (i + 4 != n || j < 2) return -1;
                v[j] = 0;
                pad++;
            } else {
                if (pad) return -1;
                v[j] = b64_value((unsigned char) s[i + j]);
                if (v[j] < 0) return -1;
            }
        }
        const uint32_t w = ((uint32_t) v[0] << 18) | ((uint32_t) v[1] << 12) | ((uint32_t) v[2] << 6) | (uint32_t) v[3];
        out[k++] = (uint8_t) (w >> 16);
        if (pad < 2) out[k++] = (uint8_t) (w >> 8);
        if (pad < 1) out[k++] = (uint8_t) w;
    }
    return k;
}

void gptoss_vocab_free(struct gptoss_vocab* v) {
    if (v == NULL) return;
    free(v->bytes);
    free(v->offsets);
    memset(v, 0, sizeof(*v));
}

enum gptoss_status gptoss_vocab_load_tiktoken(const char* path, struct gptoss_vocab* out) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        return gptoss_fail(gptoss_status_io_error, "%s: cannot open the vocabulary: %s (set --vocab or $GPTOSS_VOCAB)",
                           path, strerror(errno));
    }
    enum gptoss_status st = gptoss_status_success;
    struct gptoss_vocab v = {0, NULL, NULL};
    size_t cap_tokens = 1024, cap_bytes = 1 << 16, used = 0;
    v.offsets = malloc((cap_tokens + 1) * sizeof(uint32_t));
    v.bytes = malloc(cap_bytes);
    char* line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    if (v.offsets == NULL || v.bytes == NULL) goto oom;
    v.offsets[0] = 0;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        char* sp = memchr(line, ' ', (size_t) len);
        if (sp == NULL) {
            st = gptoss_fail(gptoss_status_invalid_argument, "%s:%lu: expected \"<base64> <rank>\"", path, lineno);
            goto done;
        }
        char* end = NULL;
        errno = 0;
        unsigned long rank = strtoul(sp + 1, &end, 10);
        if (errno != 0 || end == sp + 1 || *end != '\0' || rank != v.num_tokens) {
            st = gptoss_fail(gptoss_status_invalid_argument, "%s:%lu: rank \"%s\" is not %u (ranks must be 0, 1, 2, ...)",
                             path, lineno, sp + 1, v.num_tokens);
            goto done;
        }
        const size_t b64_len = (size_t) (sp - line);
        if (b64_len / 4 * 3 > 65535) {
            st = gptoss_fail(gptoss_status_invalid_argument, "%s:%lu: token longer than 65535 bytes", path, lineno);
            goto done;
        }
        if (v.num_tokens + 1 > cap_tokens) {
            if (cap_tokens >= (1u << 24)) {
                st = gptoss_fail(gptoss_status_invalid_argument, "%s: more than %zu tokens", path, cap_tokens);
                goto done;
            }
            cap_tokens *= 2;
            uint32_t* o = realloc(v.offsets, (cap_tokens + 1) * sizeof(uint32_t));
            if (o == NULL) goto oom;
            v.offsets = o;
        }
        if (used + b64_len > cap_bytes) {
            while (used + b64_len > cap_bytes) cap_bytes *= 2;
            if (cap_bytes > (1u << 30)) {
                st = gptoss_fail(gptoss_status_invalid_argument, "%s: vocabulary over 1 GiB", path);
                goto done;
            }
            uint8_t* b = realloc(v.bytes, cap_bytes);
            if (b == NULL) goto oom;
            v.bytes = b;
        }
        long n = b64_decode(line, b64_len, v.bytes + used);
        if (n <= 0) {
            st = gptoss_fail(gptoss_status_invalid_argument, "%s:%lu: bad base64 \"%.*s\"", path, lineno, (int) b64_len, line);
            goto done;
        }
        used += (size_t) n;
        v.num_tokens++;
        v.offsets[v.num_tokens] = (uint32_t) used;
    }
    if (ferror(f)) {
        st = gptoss_fail(gptoss_status_io_error, "%s: read error: %s", path, strerror(errno));
        goto done;
    }
    if (v.num_tokens == 0) {
        st = gptoss_fail(gptoss_status_invalid_argument, "%s: no tokens", path);
        goto done;
    }
    goto done;
oom:
    st = gptoss_fail(gptoss_status_insufficient_memory, "%s: out of memory reading the vocabulary", path);
done:
    free(line);
    fclose(f);
    if (st != gptoss_status_success) {
        gptoss_vocab_free(&v);
        return st;
    }
    *out = v;
    return gptoss_status_success;
}

/* Special slot j (id = num_text + j) -> enum, for the o200k_harmony table (MODEL_FORMAT.md
 * 4.2, slot 10 = <|message|>); 0 = zeros. */
static const int special_slot_enum[16] = {
    0, 0, gptoss_special_token_untrusted, 0, gptoss_special_token_return, gptoss_special_token_constrain, 0,
    gptoss_special_token_channel, gptoss_special_token_start, gptoss_special_token_end,
    gptoss_special_token_message, 0, 0, 0, gptoss_special_token_call, gptoss_special_token_refusal,
};

/* ---- writing ------------------------------------------------------------------------ */

static enum gptoss_status raw_write(struct gptoss_writer* w, const void* data, size_t size) {
    if (size == 0) return gptoss_status_success;
    if (fwrite(data, 1, size, w->out.file) != size) {
        return gptoss_fail(gptoss_status_io_error, "%s: write of %zu bytes at offset %llu failed: %s", w->out.path, size,
                           (unsigned long long) w->offset, strerror(errno));
    }
    w->offset += size;
    return gptoss_status_success;
}

enum gptoss_status gptoss_writer_write(struct gptoss_writer* w, const void* data, size_t size) {
    if (w->offset + size > w->info.file_size) {
        return gptoss_fail(gptoss_status_invalid_state, "%s: writer bug: write of %zu bytes at %llu passes the layout's end %llu",
                           w->out.path, size, (unsigned long long) w->offset, (unsigned long long) w->info.file_size);
    }
    return raw_write(w, data, size);
}

static enum gptoss_status write_zeros(struct gptoss_writer* w, uint64_t size) {
    static const uint8_t zeros[4096];
    while (size != 0) {
        const size_t n = size < sizeof(zeros) ? (size_t) size : sizeof(zeros);
        enum gptoss_status st = raw_write(w, zeros, n);
        if (st != gptoss_status_success) return st;
        size -= n;
    }
    return gptoss_status_success;
}

/* Pads with zeros up to W0 + rel_offset, which must be the next 16-byte boundary or, for a
 * MoE layer, the next 16384-byte one (the layout's); `what` names the tensor in the error. */
static enum gptoss_status begin_tensor(struct gptoss_writer* w, uint64_t rel_offset, const char* what) {
    const uint64_t target = w->info.weights_offset + rel_offset;
    const uint64_t aligned = (w->offset + GPTOSS_TENSOR_ALIGNMENT - 1) / GPTOSS_TENSOR_ALIGNMENT * GPTOSS_TENSOR_ALIGNMENT;
    /* MoE layers start at a 16384 boundary: pad up to the target when it is the next
     * 16384-aligned offset (MODEL_FORMAT.md 10) */
    const uint64_t page = (w->offset + GPTOSS_FILE_ALIGNMENT - 1) / GPTOSS_FILE_ALIGNMENT * GPTOSS_FILE_ALIGNMENT;
    if (aligned != target && !(target == page && target % GPTOSS_FILE_ALIGNMENT == 0)) {
        return gptoss_fail(gptoss_status_invalid_state, "%s: writer bug: %s would start at %llu, the layout says %llu",
                           w->out.path, what, (unsigned long long) aligned, (unsigned long long) target);
    }
    return write_zeros(w, target - w->offset);
}

enum gptoss_status gptoss_tokenizer_section_build(const struct gptoss_vocab* vocab, uint8_t** section_out,
                                                  size_t* section_size_out, uint32_t* regex_size_out,
                                                  uint32_t* tokens_size_out) {
    const size_t regex_size = strlen(gptoss_o200k_regex) + 1;
    uint64_t tokens_size = 0;
    for (uint32_t t = 0; t < vocab->num_tokens; t++) {
        const uint32_t len = vocab->offsets[t + 1] - vocab->offsets[t];
        if (len == 0 || len > 65535) {
            return gptoss_fail(gptoss_status_invalid_argument, "vocabulary token %u has length %u (must be 1..65535)", t, len);
        }
        tokens_size += 2 + (uint64_t) len;
    }
    if (tokens_size > UINT32_MAX) return gptoss_fail(gptoss_status_invalid_argument, "vocabulary too large");
    const size_t size = 16 * 16 + regex_size + (size_t) tokens_size;
    uint8_t* section = malloc(size);
    if (section == NULL) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu bytes for the tokenizer section", size);
    }
    uint8_t* p = section;
    for (int j = 0; j < 16; j++) {
        const int e = special_slot_enum[j];
        if (e) memcpy(p, gptoss_special_token_uuids[e], 16);
        else memset(p, 0, 16);
        p += 16;
    }
    memcpy(p, gptoss_o200k_regex, regex_size);
    p += regex_size;
    for (uint32_t t = 0; t < vocab->num_tokens; t++) {
        const uint32_t len = vocab->offsets[t + 1] - vocab->offsets[t];
        p[0] = (uint8_t) len;
        p[1] = (uint8_t) (len >> 8);
        memcpy(p + 2, vocab->bytes + vocab->offsets[t], len);
        p += 2 + len;
    }
    *section_out = section;
    *section_size_out = size;
    *regex_size_out = (uint32_t) regex_size;
    *tokens_size_out = (uint32_t) tokens_size;
    return gptoss_status_success;
}

enum gptoss_status gptoss_writer_open(struct gptoss_writer* w, const char* path, const struct gptoss_model_config* config,
                                      const struct gptoss_vocab* vocab, int replace) {
    memset(w, 0, sizeof(*w));
    uint8_t* section = NULL;
    size_t section_size = 0;
    uint32_t regex_size = 0, tokens_size = 0;
    enum gptoss_status st = gptoss_tokenizer_section_build(vocab, &section, &section_size, &regex_size, &tokens_size);
    if (st != gptoss_status_success) return st;
    uint8_t header[GPTOSS_FILE_HEADER_SIZE];
    gptoss_file_build_header(header, config, 16, vocab->num_tokens, regex_size, tokens_size);
    st = gptoss_file_parse_header(header, &w->info);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        free(section);
        return gptoss_fail(st, "cannot write this model: %s", msg);
    }
    st = gptoss_outfile_open(&w->out, path, replace, 8 << 20);
    if (st != gptoss_status_success) {
        free(section);
        return st;
    }

    if ((st = raw_write(w, header, sizeof(header))) != gptoss_status_success) goto fail;
    if ((st = raw_write(w, section, section_size)) != gptoss_status_success) goto fail;
    if (w->offset != w->info.tokenizer_end) {
        st = gptoss_fail(gptoss_status_invalid_state, "writer bug: tokenizer ends at %llu, layout says %llu",
                         (unsigned long long) w->offset, (unsigned long long) w->info.tokenizer_end);
        goto fail;
    }
    if ((st = write_zeros(w, w->info.weights_offset - w->offset)) != gptoss_status_success) goto fail;
    free(section);
    return gptoss_status_success;
fail:
    free(section);
    gptoss_writer_abort(w);
    return st;
}

/* Checks the final size equals the layout's, then commits: the file appears at `path`. */
static enum gptoss_status writer_close(struct gptoss_writer* w) {
    if (w->offset != w->info.file_size) {
        const enum gptoss_status st =
            gptoss_fail(gptoss_status_invalid_state, "%s: writer bug: wrote %llu bytes, the layout needs %llu",
                        w->out.path, (unsigned long long) w->offset, (unsigned long long) w->info.file_size);
        gptoss_writer_abort(w);
        return st;
    }
    return gptoss_outfile_commit(&w->out);
}

void gptoss_writer_abort(struct gptoss_writer* w) { gptoss_outfile_abort(&w->out); }

/* ---- rope / weights ----------------------------------------------------------------- */

void gptoss_writer_set_rope(struct gptoss_model_config* c, double initial_context_length, double factor,
                            double rope_theta, double ntk_alpha, double ntk_beta) {
    const double pi = 3.14159265358979323846;
    const double half = (double) c->head_dim / 2.0;
    const double low = half * log(initial_context_length / (ntk_beta * 2.0 * pi)) / log(rope_theta);
    const double high = half * log(initial_context_length / (ntk_alpha * 2.0 * pi)) / log(rope_theta);
    const double ctx = initial_context_length * factor;
    c->context_length = ctx >= 0.0 && ctx < 4294967296.0 ? (uint32_t) ctx : 0;
    c->rope_theta = (float) rope_theta;
    c->interpolation_scale = (float) (1.0 / factor);
    c->yarn_offset = (float) (-low / (high - low));
    c->yarn_scale = (float) (1.0 / (high - low));
    c->yarn_multiplier = (float) (0.1 * log(factor) + 1.0);
}

struct progress {
    int enabled, last;
    uint64_t total;
};

static void progress_update(struct progress* p, const struct gptoss_writer* w) {
    if (!p->enabled) return;
    const int pct = (int) ((double) w->offset * 100.0 / (double) p->total);
    if (pct == p->last) return;
    p->last = pct;
    fprintf(stderr, "\rwriting %s: %3d%% (%.2f / %.2f GiB)", w->out.path, pct, (double) w->offset / (1u << 30),
            (double) p->total / (1u << 30));
    if (pct == 100) fputc('\n', stderr);
    fflush(stderr);
}

struct weights_job {
    struct gptoss_writer* w;
    gptoss_tensor_source_fn fn;
    void* source;
    struct progress progress;
};

static enum gptoss_status write_tensor(void* arg, const struct gptoss_tensor_ref* t) {
    struct weights_job* job = arg;
    struct gptoss_writer* w = job->w;
    char what[96];
    snprintf(what, sizeof(what), "block.%u.%s (expert %u)", t->layer, gptoss_tensor_kind_name(t->kind), t->expert);
    enum gptoss_status st = begin_tensor(w, t->offset, what);
    if (st != gptoss_status_success) return st;
    const uint64_t start = w->offset;
    if ((st = job->fn(job->source, w, t)) != gptoss_status_success) return st;
    if (w->offset - start != t->size) {
        return gptoss_fail(gptoss_status_invalid_state, "writer bug: %s: source wrote %llu bytes, expected %llu", what,
                           (unsigned long long) (w->offset - start), (unsigned long long) t->size);
    }
    progress_update(&job->progress, w);
    return gptoss_status_success;
}

enum gptoss_status gptoss_writer_write_weights(struct gptoss_writer* w, gptoss_tensor_source_fn fn, void* source,
                                               int progress) {
    struct weights_job job = {w, fn, source, {progress, -1, w->info.file_size}};
    const enum gptoss_status st = gptoss_file_for_each_tensor(&w->info, write_tensor, &job);
    if (st != gptoss_status_success) {
        gptoss_writer_abort(w);
        return st;
    }
    /* no trailing padding: the layout ends with the last expert's mlp2 bias (2H bytes,
     * a multiple of 16 since H is a multiple of 32); writer_close checks the size */
    return writer_close(w);
}
