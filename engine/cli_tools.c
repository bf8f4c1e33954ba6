/* gptoss tokenize / inspect, and shared CLI helpers. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gptoss/engine.h>

#include "cli_tools.h"
#include "internal/error.h"
#include "model.h"

int gptoss_cli_parse_u64(const char* s, unsigned long long max, unsigned long long* out) {
    if (s == NULL || *s < '0' || *s > '9') return -1;
    char* end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max) return -1;
    *out = v;
    return 0;
}

int gptoss_cli_check_output(const char* command, const char* out, int force) {
    struct stat sb;
    if (force || lstat(out, &sb) != 0) return 0;
    fprintf(stderr, "gptoss %s: %s exists: pass --force to replace it\n", command, out);
    return 2;
}

int gptoss_cli_check_stdout(const char* cmd) {
    static int state = 0; /* sticky: a failed stream stays failed */
    if (state != 0) return state;
    errno = 0;
    const int flush_failed = fflush(stdout) != 0;
    const int err = errno;
    if (!flush_failed && !ferror(stdout)) return 0;
    if (err == EPIPE) {
        state = -1;
    } else {
        state = 1;
        fprintf(stderr, "gptoss %s: cannot write to stdout: %s\n", cmd, err != 0 ? strerror(err) : "write error");
    }
    return state;
}

static char* read_stdin(size_t* size_out) {
    size_t cap = 1 << 16, n = 0;
    char* buf = malloc(cap);
    if (buf == NULL) return NULL;
    for (;;) {
        if (n == cap) {
            char* g = cap < ((size_t) 1 << 40) ? realloc(buf, cap * 2) : NULL;
            if (g == NULL) {
                free(buf);
                return NULL;
            }
            buf = g;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        if (r == 0) break;
        n += r;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *size_out = n;
    return buf;
}

/* Between token ids of `tokenize --decode`: whitespace or commas. */
static int is_id_separator(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ','; }

static const char tokenize_usage[] =
    "usage: gptoss tokenize -m MODEL [--decode]\n"
    "  Reads text on stdin and prints its token ids on one line, space separated\n"
    "  (o200k BPE of the model file's tokenizer; special-token names are plain text).\n"
    "  --decode: read whitespace-separated token ids on stdin and write their bytes\n"
    "  (special tokens as their names) to stdout.\n"
    "  -m, --model FILE   model file (only the header and tokenizer are read)\n";

int gptoss_cli_tokenize(int argc, char** argv) {
    const char* model = NULL;
    int decode = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(tokenize_usage, stdout);
            return 0;
        } else if ((strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--decode") == 0) {
            decode = 1;
        } else {
            fprintf(stderr, "gptoss tokenize: unknown or incomplete argument '%s'\n%s", argv[i], tokenize_usage);
            return 2;
        }
    }
    if (model == NULL) {
        fprintf(stderr, "gptoss tokenize: -m MODEL is required\n%s", tokenize_usage);
        return 2;
    }
    gptoss_tokenizer_t tok = NULL;
    enum gptoss_status st = gptoss_tokenizer_create_from_file(model, &tok);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss tokenize: %s: %s\n", gptoss_status_to_string(st), gptoss_last_error());
        return 1;
    }
    size_t size = 0;
    char* text = read_stdin(&size);
    int rc = 0;
    if (text == NULL) {
        fprintf(stderr, "gptoss tokenize: cannot read stdin\n");
        rc = 1;
    } else if (!decode) {
        size_t count = 0;
        st = gptoss_tokenizer_encode(tok, text, size, NULL, 0, &count);
        uint32_t* ids = NULL;
        if (st == gptoss_status_insufficient_memory || st == gptoss_status_success) {
            ids = malloc((count ? count : 1) * sizeof(uint32_t));
            st = ids ? gptoss_tokenizer_encode(tok, text, size, ids, count, &count) : gptoss_status_insufficient_memory;
        }
        if (st != gptoss_status_success) {
            fprintf(stderr, "gptoss tokenize: %s: %s\n", gptoss_status_to_string(st), gptoss_last_error());
            rc = 1;
        } else {
            for (size_t i = 0; i < count; i++) printf(i ? " %u" : "%u", ids[i]);
            printf("\n");
        }
        free(ids);
    } else {
        uint32_t vocabulary_size = 0;
        gptoss_tokenizer_get_num_tokens(tok, &vocabulary_size);
        const char* p = text;
        const char* end = text + size;
        while (p < end && rc == 0) {
            while (p < end && is_id_separator(*p)) p++;
            if (p >= end) break;
            const char* q = p;
            while (q < end && !is_id_separator(*q)) q++;
            /* the word p..q: digits only, and a valid id */
            char num[24];
            unsigned long long id = 0;
            int ok = q - p < (ptrdiff_t) sizeof(num);
            if (ok) {
                memcpy(num, p, (size_t) (q - p));
                num[q - p] = '\0';
                ok = gptoss_cli_parse_u64(num, UINT32_MAX, &id) == 0 && id < vocabulary_size;
            }
            const void* bytes;
            size_t n;
            if (!ok || gptoss_tokenizer_decode(tok, (uint32_t) id, &bytes, &n) != gptoss_status_success) {
                const int shown = q - p > 40 ? 40 : (int) (q - p);
                fprintf(stderr, "gptoss tokenize: token id '%.*s%s' (byte %zu of stdin) is not an integer in [0, %u]\n",
                        shown, p, q - p > shown ? "..." : "", (size_t) (p - text), vocabulary_size - 1);
                rc = 1;
                break;
            }
            fwrite(bytes, 1, n, stdout);
            p = q;
        }
    }
    free(text);
    gptoss_tokenizer_release(tok);
    if (gptoss_cli_check_stdout("tokenize") > 0) rc = 1;
    return rc;
}

static const char inspect_usage[] =
    "usage: gptoss inspect MODEL\n"
    "  Validates a model file (header, tokenizer, layout against the file size) and prints\n"
    "  its header fields and tensor layout. Reads no weights.\n";

int gptoss_cli_inspect(int argc, char** argv) {
    const char* path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(inspect_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' || path != NULL) {
            fprintf(stderr, "gptoss inspect: unexpected argument '%s'\n%s", argv[i], inspect_usage);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (path == NULL) {
        fprintf(stderr, "%s", inspect_usage);
        return 2;
    }
    uint64_t size = 0;
    struct gptoss_file_info in;
    enum gptoss_status st = gptoss_file_read_header(path, &size, &in);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss inspect: %s: %s\n", gptoss_status_to_string(st), gptoss_last_error());
        return 1;
    }
    const struct gptoss_model_config* c = &in.config;
    printf("file                 %s (%llu bytes; layout needs %llu)\n", path, (unsigned long long) size,
           (unsigned long long) in.file_size);
    printf("context_length       %u\nnum_blocks           %u\nnum_experts          %u\nnum_active_experts   %u\n",
           c->context_length, c->num_blocks, c->num_experts, c->num_active_experts);
    printf("embedding_dim        %u\nmlp_dim              %u\nswiglu_limit         %.9g\nhead_dim             %u\n",
           c->embedding_dim, c->mlp_dim, (double) c->swiglu_limit, c->head_dim);
    printf("num_heads            %u\nnum_kv_heads         %u\nattention_window     %u\nrope_theta           %.9g\n",
           c->num_heads, c->num_kv_heads, c->attention_window, (double) c->rope_theta);
    printf("interpolation_scale  %.9g\nyarn_offset          %.9g\nyarn_scale           %.9g\nyarn_multiplier      %.9g\n",
           (double) c->interpolation_scale, (double) c->yarn_offset, (double) c->yarn_scale, (double) c->yarn_multiplier);
    printf("rmsnorm_epsilon      %.9g\n", (double) c->rmsnorm_epsilon);
    printf("tokens               %u text + %u special; regex %u bytes; token table %u bytes\n", in.num_text_tokens,
           in.num_special_tokens, in.regex_size, in.tokens_size);
    printf("weights at           %llu (shared %llu, per block %llu, MoE per layer %llu, per expert %zu)\n",
           (unsigned long long) in.weights_offset, (unsigned long long) in.shared_size, (unsigned long long) in.per_block,
           (unsigned long long) in.moe_size, in.expert.per_expert);
    if (size < in.file_size) {
        fprintf(stderr, "gptoss inspect: %s: file is truncated (%llu < %llu bytes)\n", path, (unsigned long long) size,
                (unsigned long long) in.file_size);
        return 1;
    }
    gptoss_tokenizer_t tok;
    st = gptoss_tokenizer_create_from_file(path, &tok);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss inspect: %s: %s\n", gptoss_status_to_string(st), gptoss_last_error());
        return 1;
    }
    printf("special tokens      ");
    for (int e = 1; e < gptoss_special_token_max; e++) {
        uint32_t id;
        if (gptoss_tokenizer_get_special_token_id(tok, (enum gptoss_special_token) e, &id) == gptoss_status_success) {
            const void* p;
            size_t n;
            gptoss_tokenizer_decode(tok, id, &p, &n);
            printf(" %.*s=%u", (int) n, (const char*) p, id);
        }
    }
    printf("\n");
    gptoss_tokenizer_release(tok);
    return gptoss_cli_check_stdout("inspect") > 0;
}
