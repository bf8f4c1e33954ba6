/* Tokenizer (o200k_harmony): o200k pre-tokenisation with PCRE2 (the regex stored in the
 * model file), then byte-level BPE by merge rank (rank of a byte string = its token id),
 * as tiktoken does. Decode gives a text token's bytes (full u16 length) or a special
 * token's name. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/error.h>

#include "model.h"

struct gptoss_tokenizer {
    atomic_uint_least64_t ref_count;
    uint32_t num_text_tokens;
    uint32_t num_special_tokens;
    uint32_t special_ids[gptoss_special_token_max]; /* by enum; UINT32_MAX = absent */
    uint8_t* bytes;        /* text-token bytes back to back */
    uint32_t* offsets;     /* [num_text_tokens + 1] into bytes */
    uint32_t max_token_length;
    uint32_t* table;       /* open addressing: token id or UINT32_MAX */
    uint32_t table_mask;
    char* special_names;   /* NUL-separated names */
    uint32_t* special_name_offsets; /* [num_special_tokens + 1] (lengths exclude the NUL) */
    char* regex;           /* as stored in the file */
    pcre2_code* code;      /* compiled (rewritten) regex */
    int jit;
};

static const char* const special_enum_names[gptoss_special_token_max] = {
    [gptoss_special_token_return] = "<|return|>",
    [gptoss_special_token_start] = "<|start|>",
    [gptoss_special_token_message] = "<|message|>",
    [gptoss_special_token_end] = "<|end|>",
    [gptoss_special_token_refusal] = "<|refusal|>",
    [gptoss_special_token_constrain] = "<|constrain|>",
    [gptoss_special_token_channel] = "<|channel|>",
    [gptoss_special_token_call] = "<|call|>",
    [gptoss_special_token_untrusted] = "<|untrusted|>",
    [gptoss_special_token_end_untrusted] = "<|endofuntrusted|>",
};

/* ---- hashing ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const uint8_t* p, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h ^ (h >> 29);
}

/* Token id of the byte string, or UINT32_MAX. */
static uint32_t lookup(const struct gptoss_tokenizer* t, const uint8_t* p, size_t n) {
    if (n == 0 || n > t->max_token_length) return UINT32_MAX;
    uint32_t i = (uint32_t) hash_bytes(p, n) & t->table_mask;
    for (;;) {
        const uint32_t id = t->table[i];
        if (id == UINT32_MAX) return UINT32_MAX;
        const uint32_t len = t->offsets[id + 1] - t->offsets[id];
        if (len == n && memcmp(t->bytes + t->offsets[id], p, n) == 0) return id;
        i = (i + 1) & t->table_mask;
    }
}

/* ---- regex -------------------------------------------------------------------------- */

/* PCRE2's \s under UCP is Unicode Z + tab/LF/VT/FF/CR; the Unicode White_Space property
 * (Rust regex, used by tiktoken) also has U+0085. Rewrite \s and \S to include it. */
static char* rewrite_regex(const char* re, size_t n) {
    char* out = malloc(n * 12 + 1);
    if (out == NULL) return NULL;
    size_t k = 0;
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        const char ch = re[i];
        if (ch == '\\' && i + 1 < n) {
            const char nx = re[i + 1];
            if (nx == 's') {
                const char* r = in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
                memcpy(out + k, r, strlen(r));
                k += strlen(r);
            } else if (nx == 'S' && !in_class) {
                memcpy(out + k, "[^\\s\\x{85}]", 11);
                k += 11;
            } else {
                out[k++] = ch;
                out[k++] = nx;
            }
            i++;
            continue;
        }
        if (!in_class && ch == '[') {
            in_class = 1;
            out[k++] = ch;
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < n && re[i + 1] == '^') out[k++] = re[++i];
            if (i + 1 < n && re[i + 1] == ']') out[k++] = re[++i];
            continue;
        }
        if (in_class && ch == ']') in_class = 0;
        out[k++] = ch;
    }
    out[k] = '\0';
    return out;
}

/* ---- BPE ---------------------------------------------------------------------------- */

struct bpe_scratch {
    uint32_t* start;  /* part start offsets (node i) */
    uint32_t* next;   /* next node or UINT32_MAX */
    uint32_t* prev;
    uint32_t* rank;   /* rank of merging node i with next(i), UINT32_MAX = none */
    uint64_t* heap;   /* (rank << 32) | node */
    size_t capacity;
};

static int scratch_reserve(struct bpe_scratch* s, size_t n) {
    if (n <= s->capacity) return 1;
    size_t cap = s->capacity ? s->capacity : 64;
    while (cap < n) cap *= 2;
    uint32_t* a = realloc(s->start, cap * sizeof(uint32_t));
    if (a) s->start = a;
    uint32_t* b = realloc(s->next, cap * sizeof(uint32_t));
    if (b) s->next = b;
    uint32_t* c = realloc(s->prev, cap * sizeof(uint32_t));
    if (c) s->prev = c;
    uint32_t* d = realloc(s->rank, cap * sizeof(uint32_t));
    if (d) s->rank = d;
    uint64_t* e = realloc(s->heap, cap * 2 * sizeof(uint64_t));
    if (e) s->heap = e;
    if (!a || !b || !c || !d || !e) return 0;
    s->capacity = cap;
    return 1;
}

static void scratch_free(struct bpe_scratch* s) {
    free(s->start);
    free(s->next);
    free(s->prev);
    free(s->rank);
    free(s->heap);
}

static void heap_push(uint64_t* h, size_t* n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t* h, size_t* n) {
    uint64_t top = h[0];
    uint64_t v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = v;
    return top;
}

struct emit {
    uint32_t* out;
    size_t capacity;
    size_t count;
};

static void emit_token(struct emit* e, uint32_t id) {
    if (e->count < e->capacity) e->out[e->count] = id;
    e->count++;
}

static uint32_t pair_rank(const struct gptoss_tokenizer* t, const uint8_t* p, const struct bpe_scratch* s, uint32_t i,
                          size_t piece_len) {
    const uint32_t j = s->next[i];
    if (j == UINT32_MAX) return UINT32_MAX;
    const uint32_t k = s->next[j];
    const uint32_t end = k == UINT32_MAX ? (uint32_t) piece_len : s->start[k];
    return lookup(t, p + s->start[i], end - s->start[i]);
}

/* Byte-level BPE of one piece: repeatedly merge the adjacent pair whose concatenation has
 * the lowest rank (leftmost on ties), as tiktoken's byte_pair_merge. The heap is keyed by
 * (rank, node index); node indices increase left to right, so ties go to the leftmost. */
static enum gptoss_status bpe_piece(const struct gptoss_tokenizer* t, const uint8_t* p, size_t n,
                                    struct bpe_scratch* s, struct emit* e) {
    if (n == 0) return gptoss_status_success;
    const uint32_t whole = lookup(t, p, n);
    if (whole != UINT32_MAX) {
        emit_token(e, whole);
        return gptoss_status_success;
    }
    if (n > UINT32_MAX / 2) return gptoss_fail(gptoss_status_invalid_argument, "text piece of %zu bytes is too long", n);
    if (!scratch_reserve(s, n)) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate BPE scratch for %zu bytes", n);
    }
    for (uint32_t i = 0; i < n; i++) {
        s->start[i] = i;
        s->next[i] = i + 1 < n ? i + 1 : UINT32_MAX;
        s->prev[i] = i == 0 ? UINT32_MAX : i - 1;
    }
    size_t hn = 0;
    for (uint32_t i = 0; i < n; i++) {
        s->rank[i] = pair_rank(t, p, s, i, n);
        if (s->rank[i] != UINT32_MAX) heap_push(s->heap, &hn, ((uint64_t) s->rank[i] << 32) | i);
    }
    while (hn > 0) {
        const uint64_t top = heap_pop(s->heap, &hn);
        const uint32_t i = (uint32_t) top, r = (uint32_t) (top >> 32);
        if (s->start[i] == UINT32_MAX || s->rank[i] != r) continue; /* stale entry */
        /* merge i with next(i) */
        const uint32_t j = s->next[i];
        const uint32_t k = s->next[j];
        s->next[i] = k;
        if (k != UINT32_MAX) s->prev[k] = i;
        s->start[j] = UINT32_MAX;
        s->rank[j] = UINT32_MAX;
        s->rank[i] = pair_rank(t, p, s, i, n);
        if (s->rank[i] != UINT32_MAX) heap_push(s->heap, &hn, ((uint64_t) s->rank[i] << 32) | i);
        const uint32_t q = s->prev[i];
        if (q != UINT32_MAX) {
            s->rank[q] = pair_rank(t, p, s, q, n);
            if (s->rank[q] != UINT32_MAX) heap_push(s->heap, &hn, ((uint64_t) s->rank[q] << 32) | q);
        }
        /* the heap never holds more than 2n entries: each merge removes one node and pushes at most 2 */
    }
    for (uint32_t i = 0; i != UINT32_MAX; i = s->next[i]) {
        const uint32_t end = s->next[i] == UINT32_MAX ? (uint32_t) n : s->start[s->next[i]];
        const uint32_t id = lookup(t, p + s->start[i], end - s->start[i]);
        if (id == UINT32_MAX) {
            return gptoss_fail(gptoss_status_invalid_argument,
                               "byte 0x%02X at text offset %u has no token in this vocabulary", p[s->start[i]],
                               s->start[i]);
        }
        emit_token(e, id);
    }
    return gptoss_status_success;
}

/* ---- creation ----------------------------------------------------------------------- */

static void tokenizer_free(struct gptoss_tokenizer* t) {
    if (t == NULL) return;
    if (t->code) pcre2_code_free(t->code);
    free(t->regex);
    free(t->bytes);
    free(t->offsets);
    free(t->table);
    free(t->special_names);
    free(t->special_name_offsets);
    free(t);
}

/* The special tokens: ids by enum from the UUID table, and names. */
static enum gptoss_status read_specials(struct gptoss_tokenizer* t, const struct gptoss_file_info* info,
                                        const uint8_t* uuids) {
    const uint32_t S = info->num_special_tokens;
    t->special_name_offsets = calloc((size_t) S + 1, sizeof(uint32_t));
    t->special_names = malloc((size_t) S * 32 + 1);
    if (t->special_name_offsets == NULL || t->special_names == NULL) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %u special-token names", S);
    }
    static const uint8_t zero_uuid[16];
    int warned = 0;
    size_t name_pos = 0;
    for (uint32_t j = 0; j < S; j++) {
        const uint8_t* u = uuids + 16 * (size_t) j;
        const uint32_t id = info->num_text_tokens + j;
        const char* name = NULL;
        for (int k = 1; k < gptoss_special_token_max; k++) {
            if (memcmp(u, gptoss_special_token_uuids[k], 16) == 0) {
                if (t->special_ids[k] == UINT32_MAX) t->special_ids[k] = id;
                name = special_enum_names[k];
                break;
            }
        }
        if (name == NULL && memcmp(u, zero_uuid, 16) != 0 && !warned) {
            fprintf(stderr, "gptoss: warning: unknown special-token UUID in slot %u (id %u) ignored\n", j, id);
            warned = 1;
        }
        char buf[32];
        if (name == NULL) {
            /* o200k_harmony layout (MODEL_FORMAT.md 4.1): names of the slots without a UUID */
            if (id == 199999) name = "<|endoftext|>";
            else if (id == 200001) name = "<|endofuntrusted|>";
            else if (id == 200008) name = "<|message|>";
            else {
                snprintf(buf, sizeof(buf), "<|reserved_%u|>", id);
                name = buf;
            }
        }
        const size_t len = strlen(name);
        memcpy(t->special_names + name_pos, name, len + 1);
        t->special_name_offsets[j] = (uint32_t) name_pos;
        name_pos += len + 1;
    }
    t->special_name_offsets[S] = (uint32_t) name_pos;
    return gptoss_status_success;
}

/* The pre-tokenisation regex: NUL-terminated, no NUL inside; compiled (rewritten). */
static enum gptoss_status read_regex(struct gptoss_tokenizer* t, const struct gptoss_file_info* info,
                                     const uint8_t* regex) {
    if (regex[info->regex_size - 1] != 0) {
        return gptoss_fail(gptoss_status_invalid_argument,
                           "tokenizer regex (%u bytes at offset %llu) is not NUL-terminated", info->regex_size,
                           (unsigned long long) info->regex_offset);
    }
    const size_t regex_len = strlen((const char*) regex);
    if (regex_len != info->regex_size - 1) {
        return gptoss_fail(gptoss_status_invalid_argument, "tokenizer regex has a NUL at byte %zu of %u", regex_len,
                           info->regex_size);
    }
    t->regex = malloc(regex_len + 1);
    char* rewritten = t->regex ? rewrite_regex((const char*) regex, regex_len) : NULL;
    if (rewritten == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the regex");
    memcpy(t->regex, regex, regex_len + 1);
    int errcode = 0;
    PCRE2_SIZE erroff = 0;
    t->code = pcre2_compile((PCRE2_SPTR) rewritten, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
    free(rewritten);
    if (t->code == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        return gptoss_fail(gptoss_status_invalid_argument, "tokenizer regex does not compile (at %zu): %s",
                           (size_t) erroff, (const char*) msg);
    }
    t->jit = pcre2_jit_compile(t->code, PCRE2_JIT_COMPLETE) == 0;
    return gptoss_status_success;
}

/* The text tokens (length-prefixed) and their hash table (bytes -> id; the first id wins
 * on duplicates). */
static enum gptoss_status read_text_tokens(struct gptoss_tokenizer* t, const struct gptoss_file_info* info,
                                           const uint8_t* tokens) {
    const uint32_t N = info->num_text_tokens;
    t->offsets = malloc(((size_t) N + 1) * sizeof(uint32_t));
    t->bytes = malloc(info->tokens_size);
    size_t table_size = 1024;
    while (table_size < (size_t) N * 2) table_size *= 2;
    t->table = malloc(table_size * sizeof(uint32_t));
    if (t->offsets == NULL || t->bytes == NULL || t->table == NULL) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the token table (%u tokens)", N);
    }
    memset(t->table, 0xFF, table_size * sizeof(uint32_t));
    t->table_mask = (uint32_t) (table_size - 1);
    size_t pos = 0, out = 0;
    for (uint32_t id = 0; id < N; id++) {
        if (pos + 2 > info->tokens_size) {
            return gptoss_fail(gptoss_status_invalid_argument,
                               "text-token table (tokens_size %u) ends inside the length of token %u", info->tokens_size,
                               id);
        }
        const uint32_t len = (uint32_t) tokens[pos] | ((uint32_t) tokens[pos + 1] << 8);
        pos += 2;
        if (len == 0) return gptoss_fail(gptoss_status_invalid_argument, "text token %u has length 0", id);
        if (len > info->tokens_size - pos) {
            return gptoss_fail(gptoss_status_invalid_argument,
                               "text token %u (length %u at table offset %zu) runs past tokens_size %u", id, len,
                               pos - 2, info->tokens_size);
        }
        t->offsets[id] = (uint32_t) out;
        memcpy(t->bytes + out, tokens + pos, len);
        out += len;
        pos += len;
        if (len > t->max_token_length) t->max_token_length = len;
        /* insert (first id wins on duplicates) */
        t->offsets[id + 1] = (uint32_t) out;
        uint32_t i = (uint32_t) hash_bytes(t->bytes + t->offsets[id], len) & t->table_mask;
        for (;;) {
            const uint32_t other = t->table[i];
            if (other == UINT32_MAX) {
                t->table[i] = id;
                break;
            }
            const uint32_t olen = t->offsets[other + 1] - t->offsets[other];
            if (olen == len && memcmp(t->bytes + t->offsets[other], t->bytes + t->offsets[id], len) == 0) break;
            i = (i + 1) & t->table_mask;
        }
    }
    t->offsets[N] = (uint32_t) out;
    if (pos != info->tokens_size) {
        return gptoss_fail(gptoss_status_invalid_argument, "text-token table uses %zu bytes, tokens_size says %u", pos,
                           info->tokens_size);
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_create_from_section(const struct gptoss_file_info* info, const uint8_t* section,
                                                        size_t section_size, gptoss_tokenizer_t* tokenizer_out) {
    if (info == NULL || section == NULL || tokenizer_out == NULL) {
        return gptoss_fail(gptoss_status_invalid_argument, "NULL argument to tokenizer creation");
    }
    const uint64_t want = info->tokenizer_end - GPTOSS_FILE_HEADER_SIZE;
    if (section_size < want) {
        return gptoss_fail(gptoss_status_io_error, "tokenizer section is %zu bytes, header says %llu", section_size,
                           (unsigned long long) want);
    }
    struct gptoss_tokenizer* t = calloc(1, sizeof(*t));
    if (t == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the tokenizer");
    atomic_init(&t->ref_count, 1);
    t->num_text_tokens = info->num_text_tokens;
    t->num_special_tokens = info->num_special_tokens;
    for (int i = 0; i < gptoss_special_token_max; i++) t->special_ids[i] = UINT32_MAX;
    enum gptoss_status st = read_specials(t, info, section + (info->special_uuids_offset - GPTOSS_FILE_HEADER_SIZE));
    if (st == gptoss_status_success) st = read_regex(t, info, section + (info->regex_offset - GPTOSS_FILE_HEADER_SIZE));
    if (st == gptoss_status_success) {
        st = read_text_tokens(t, info, section + (info->tokens_offset - GPTOSS_FILE_HEADER_SIZE));
    }
    if (st != gptoss_status_success) {
        tokenizer_free(t);
        return st;
    }
    *tokenizer_out = t;
    return gptoss_status_success;
}

/* ---- queries ------------------------------------------------------------------------ */

enum gptoss_status gptoss_tokenizer_get_special_token_id(gptoss_tokenizer_t tokenizer,
                                                         enum gptoss_special_token token_type, uint32_t* token_id_out) {
    gptoss_clear_error();
    if (tokenizer == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer is NULL");
    if (token_id_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "token_id_out is NULL");
    if ((int) token_type <= gptoss_special_token_invalid || (int) token_type >= gptoss_special_token_max) {
        return gptoss_fail(gptoss_status_invalid_argument, "special token type %d is not valid", (int) token_type);
    }
    const uint32_t id = tokenizer->special_ids[token_type];
    if (id == UINT32_MAX) {
        return gptoss_fail(gptoss_status_invalid_argument, "special token %s is not present in this tokenizer",
                           special_enum_names[token_type]);
    }
    *token_id_out = id;
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_get_num_text_tokens(gptoss_tokenizer_t tokenizer, uint32_t* num_out) {
    gptoss_clear_error();
    if (tokenizer == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer is NULL");
    if (num_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_out is NULL");
    *num_out = tokenizer->num_text_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_get_num_special_tokens(gptoss_tokenizer_t tokenizer, uint32_t* num_out) {
    gptoss_clear_error();
    if (tokenizer == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer is NULL");
    if (num_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_out is NULL");
    *num_out = tokenizer->num_special_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_get_num_tokens(gptoss_tokenizer_t tokenizer, uint32_t* num_out) {
    gptoss_clear_error();
    if (tokenizer == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer is NULL");
    if (num_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_out is NULL");
    *num_out = tokenizer->num_text_tokens + tokenizer->num_special_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_decode(gptoss_tokenizer_t tokenizer, uint32_t token_id, const void** ptr_out,
                                           size_t* size_out) {
    gptoss_clear_error();
    if (tokenizer == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer is NULL");
    if (ptr_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "ptr_out is NULL");
    if (size_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "size_out is NULL");
    if (token_id < tokenizer->num_text_tokens) {
        *ptr_out = tokenizer->bytes + tokenizer->offsets[token_id];
        *size_out = tokenizer->offsets[token_id + 1] - tokenizer->offsets[token_id];
        return gptoss_status_success;
    }
    const uint64_t j = (uint64_t) token_id - tokenizer->num_text_tokens;
    if (j >= tokenizer->num_special_tokens) {
        return gptoss_fail(gptoss_status_invalid_argument, "token id %u is out of range (vocabulary size %u)", token_id,
                           tokenizer->num_text_tokens + tokenizer->num_special_tokens);
    }
    *ptr_out = tokenizer->special_names + tokenizer->special_name_offsets[j];
    *size_out = tokenizer->special_name_offsets[j + 1] - tokenizer->special_name_offsets[j] - 1;
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_encode(gptoss_tokenizer_t tokenizer, const char* text, size_t text_size,
                                           uint32_t* tokens_out, size_t capacity, size_t* num_tokens_out) {
    gptoss_clear_error();
    if (tokenizer == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer is NULL");
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    if (text == NULL && text_size != 0) return gptoss_fail(gptoss_status_invalid_argument, "text is NULL");
    if (tokens_out == NULL && capacity != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens_out is NULL");
    struct emit e = {tokens_out, capacity, 0};
    struct bpe_scratch s;
    memset(&s, 0, sizeof(s));
    enum gptoss_status st = gptoss_status_success;
    if (text_size == 0) goto done;

    pcre2_match_data* md = pcre2_match_data_create_from_pattern(tokenizer->code, NULL);
    pcre2_match_context* mc = pcre2_match_context_create(NULL);
    if (md == NULL || mc == NULL) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        st = gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate regex match data");
        goto done;
    }
    /* bound the work of a hostile regex or input */
    pcre2_set_match_limit(mc, 10000000);
    pcre2_set_depth_limit(mc, 100000);
    const uint8_t* p = (const uint8_t*) text;
    size_t pos = 0;
    while (pos < text_size) {
        int rc = pcre2_match(tokenizer->code, (PCRE2_SPTR) p, text_size, pos, 0, md, mc);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
            /* very long match: the interpreter keeps its backtracking state on the heap */
            rc = pcre2_match(tokenizer->code, (PCRE2_SPTR) p, text_size, pos, PCRE2_NO_JIT, md, mc);
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            /* no match in the rest (only possible with invalid UTF-8 or an unusual regex):
             * encode the remaining bytes as one piece */
            st = bpe_piece(tokenizer, p + pos, text_size - pos, &s, &e);
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            st = gptoss_fail(gptoss_status_invalid_argument, "regex match failed at text offset %zu: %s", pos,
                             (const char*) msg);
            break;
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms < pos || me < ms || me > text_size) { /* cannot happen; never trust blindly */
            st = gptoss_fail(gptoss_status_invalid_argument, "regex returned a bad match [%zu, %zu)", ms, me);
            break;
        }
        /* bytes the regex skipped (invalid UTF-8): their own piece, so nothing is lost */
        if (ms > pos && (st = bpe_piece(tokenizer, p + pos, ms - pos, &s, &e)) != gptoss_status_success) break;
        if (me == ms) {
            /* empty match: step over one character (or byte) without emitting */
            size_t step = 1;
            while (ms + step < text_size && (p[ms + step] & 0xC0) == 0x80) step++;
            if ((st = bpe_piece(tokenizer, p + ms, step, &s, &e)) != gptoss_status_success) break;
            pos = ms + step;
            continue;
        }
        if ((st = bpe_piece(tokenizer, p + ms, me - ms, &s, &e)) != gptoss_status_success) break;
        pos = me;
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
done:
    scratch_free(&s);
    if (st != gptoss_status_success) return st;
    *num_tokens_out = e.count;
    if (e.count > capacity) {
        return gptoss_fail(gptoss_status_insufficient_memory, "text encodes to %zu tokens, capacity is %zu", e.count,
                           capacity);
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_retain(gptoss_tokenizer_t tokenizer) {
    gptoss_clear_error();
    if (tokenizer == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer is NULL");
    atomic_fetch_add_explicit(&tokenizer->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_tokenizer_release(gptoss_tokenizer_t tokenizer) {
    if (tokenizer == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&tokenizer->ref_count, 1, memory_order_acq_rel) == 1) tokenizer_free(tokenizer);
    return gptoss_status_success;
}
