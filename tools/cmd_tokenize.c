/* gptoss tokenize: text on stdin -> token ids (or ids -> text with --decode). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/engine.h>

#include "cli.h"

/* Between token ids of `tokenize --decode`: whitespace or commas. */
static int is_id_separator(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ','; }

static void help(void) {
    printf("usage: gptoss tokenize -m MODEL [--decode]\n"
           "  Reads text on stdin and prints its token ids on one line, space separated\n"
           "  (o200k BPE of the model file's tokenizer; special-token names are plain text).\n"
           "  --decode: read whitespace-separated token ids on stdin and write their bytes\n"
           "  (special tokens as their names) to stdout.\n"
           "  -m, --model FILE   model file (only the header and tokenizer are read)\n");
}

int gptoss_cmd_tokenize(int argc, char** argv) {
    const char* model = NULL;
    int decode = 0;
    const struct gptoss_option options[] = {
        GPTOSS_OPTION_STRING("model", 'm', &model),
        GPTOSS_OPTION_FLAG("decode", 0, &decode),
    };
    const int r = gptoss_options_parse(argc, argv, options, sizeof(options) / sizeof(options[0]), help, NULL, 0, NULL);
    if (r != 0) return r > 0 ? 0 : GPTOSS_EXIT_USAGE;
    if (model == NULL) {
        gptoss_cli_usage_error("-m MODEL is required");
        return GPTOSS_EXIT_USAGE;
    }
    gptoss_tokenizer_t tok = NULL;
    enum gptoss_status st = gptoss_tokenizer_create_from_file(model, &tok);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss tokenize: %s: %s\n", gptoss_status_to_string(st), gptoss_last_error());
        return 1;
    }
    size_t size = 0;
    char* text = gptoss_cli_read_file("-", &size);
    int rc = 0;
    if (text == NULL) {
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
    if (gptoss_cli_check_stdout() > 0) rc = 1;
    return rc;
}

