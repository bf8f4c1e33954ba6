/* gptoss tokenize / inspect, and shared CLI helpers. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gptoss/engine.h>
#include <gptoss/error.h>

#include "cli_tools.h"
#include "files.h"
#include "format.h"

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

/* --vocab, else $GPTOSS_VOCAB, else the default lookup (gptoss_default_vocab_path). */
static const char* vocab_path_or_env(const char* vocab_path) {
    if (vocab_path != NULL) return vocab_path;
    const char* env = getenv("GPTOSS_VOCAB");
    return env != NULL && env[0] != '\0' ? env : gptoss_default_vocab_path();
}

static const char convert_usage[] =
    "usage: gptoss convert [--vocab PATH] [--quiet] [--force] CHECKPOINT_DIR OUT\n"
    "  Converts an original gpt-oss checkpoint (the original/ directory: config.json and\n"
    "  *.safetensors) into a model file, bit-compatible with upstream's converter:\n"
    "  vocabulary truncated to 200014 rows, QKV rows permuted for adjacent-pair RoPE,\n"
    "  Q*0.5 / K*0.25 folded in (bf16), MXFP4 scales +14. OUT appears only when complete\n"
    "  (written to a temporary file next to it, then renamed).\n"
    "  --vocab PATH   o200k_base.tiktoken (default: $GPTOSS_VOCAB or the repository's\n"
    "                 data/o200k_base.tiktoken)\n"
    "  --quiet        no progress line\n"
    "  --force        replace OUT if it exists (without it, an existing OUT is kept)\n";

int gptoss_cli_convert(int argc, char** argv) {
    const char* dir = NULL;
    const char* out = NULL;
    const char* vocab_path = NULL;
    int quiet = 0, force = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(convert_usage, stdout);
            return 0;
        } else if (strcmp(a, "--vocab") == 0 && i + 1 < argc) {
            vocab_path = argv[++i];
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--force") == 0) {
            force = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "gptoss convert: unknown or incomplete option '%s'\n%s", a, convert_usage);
            return 2;
        } else if (dir == NULL) {
            dir = a;
        } else if (out == NULL) {
            out = a;
        } else {
            fprintf(stderr, "gptoss convert: unexpected argument '%s'\n%s", a, convert_usage);
            return 2;
        }
    }
    if (dir == NULL || out == NULL) {
        fprintf(stderr, "gptoss convert: CHECKPOINT_DIR and OUT are required\n%s", convert_usage);
        return 2;
    }
    if (gptoss_cli_check_output("convert", out, force) != 0) return 2;
    struct gptoss_convert_notes notes;
    const enum gptoss_status st = gptoss_convert_checkpoint(dir, out, vocab_path_or_env(vocab_path),
                                                            (force ? GPTOSS_WRITE_REPLACE : 0) |
                                                                (quiet ? 0 : GPTOSS_WRITE_PROGRESS),
                                                            &notes);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss convert: %s\n", gptoss_last_error());
        return 1;
    }
    if (notes.experts_per_token != 4) {
        fprintf(stderr, "gptoss convert: note: experts_per_token is %u; the file says 4 active experts, as upstream's\n"
                        "converter does (MODEL_FORMAT.md 3)\n", notes.experts_per_token);
    }
    if (notes.overflowing_scales != 0) {
        fprintf(stderr, "gptoss convert: warning: %llu MXFP4 scale bytes are >= 241 and wrapped/overflowed when biased by\n"
                        "+14 (written as upstream does; MODEL_FORMAT.md 5.4 item 4)\n",
                (unsigned long long) notes.overflowing_scales);
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    return 0;
}

static const char make_model_usage[] =
    "usage: gptoss make-model --preset tiny|20b|120b [options] OUT\n"
    "  Writes a model file with random weights and the real o200k_harmony tokenizer\n"
    "  (200014 tokens), streamed to disk. OUT appears only when complete (written to a\n"
    "  temporary file next to it, then renamed); an existing OUT is kept unless --force.\n"
    "  --preset tiny   4 layers, 8 experts (4 active), hidden 64, mlp 128, 8 Q / 2 KV heads\n"
    "                  of dim 16, window 16, context 4096 (about 55 MB)\n"
    "  --preset 20b    gpt-oss-20b shapes (24 layers, 32 experts; about 13.8 GB)\n"
    "  --preset 120b   gpt-oss-120b shapes (36 layers, 128 experts; about 65 GB)\n"
    "  --layers N, --experts N, --active-experts N, --hidden N, --mlp N, --heads N,\n"
    "  --kv-heads N, --head-dim N, --window N, --context N   override the preset (header\n"
    "                  fields num_blocks, num_experts, num_active_experts, embedding_dim,\n"
    "                  mlp_dim, num_heads, num_kv_heads, head_dim, attention_window,\n"
    "                  context_length; checked as the engine will when loading)\n"
    "  --seed S        random seed (default 0)\n"
    "  --force         replace OUT if it exists\n"
    "  --vocab PATH    o200k_base.tiktoken (default: $GPTOSS_VOCAB or the repository's\n"
    "                  data/o200k_base.tiktoken)\n"
    "  --quiet         no progress line\n";

int gptoss_cli_make_model(int argc, char** argv) {
    const char* preset = NULL;
    const char* out = NULL;
    const char* vocab_path = NULL;
    unsigned long long seed = 0;
    int quiet = 0, force = 0;
    struct {
        const char* flag;
        unsigned long long value;
        int set;
    } ov[] = {{"--layers", 0, 0}, {"--experts", 0, 0}, {"--active-experts", 0, 0}, {"--hidden", 0, 0},
              {"--mlp", 0, 0},    {"--heads", 0, 0},   {"--kv-heads", 0, 0},       {"--head-dim", 0, 0},
              {"--window", 0, 0}, {"--context", 0, 0}};
    const size_t nov = sizeof(ov) / sizeof(ov[0]);
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(make_model_usage, stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (strcmp(a, "--force") == 0) {
            force = 1;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            if (i + 1 >= argc) {
                fprintf(stderr, "gptoss make-model: %s needs a value\n%s", a, make_model_usage);
                return 2;
            }
            const char* v = argv[++i];
            if (strcmp(a, "--preset") == 0) {
                preset = v;
            } else if (strcmp(a, "--vocab") == 0) {
                vocab_path = v;
            } else if (strcmp(a, "--seed") == 0 || strcmp(a, "-s") == 0) {
                if (gptoss_cli_parse_u64(v, UINT64_MAX, &seed) != 0) {
                    fprintf(stderr, "gptoss make-model: --seed '%s' is not a non-negative integer\n", v);
                    return 2;
                }
            } else {
                size_t k = 0;
                while (k < nov && strcmp(a, ov[k].flag) != 0) k++;
                if (k == nov) {
                    fprintf(stderr, "gptoss make-model: unknown option '%s'\n%s", a, make_model_usage);
                    return 2;
                }
                if (gptoss_cli_parse_u64(v, UINT32_MAX, &ov[k].value) != 0) {
                    fprintf(stderr, "gptoss make-model: %s '%s' is not an integer in [0, 2^32)\n", a, v);
                    return 2;
                }
                ov[k].set = 1;
            }
            continue;
        }
        if (out != NULL) {
            fprintf(stderr, "gptoss make-model: more than one output path ('%s', '%s')\n", out, a);
            return 2;
        }
        out = a;
    }
    if (preset == NULL || out == NULL) {
        fprintf(stderr, "gptoss make-model: --preset and OUT are required\n%s", make_model_usage);
        return 2;
    }
    if (gptoss_cli_check_output("make-model", out, force) != 0) return 2;
    struct gptoss_model_config config;
    struct gptoss_model_config* c = &config;
    if (gptoss_model_preset(preset, c) != 0) {
        fprintf(stderr, "gptoss make-model: unknown preset '%s' (tiny, 20b, 120b)\n", preset);
        return 2;
    }
    uint32_t* fields[] = {&c->num_blocks, &c->num_experts, &c->num_active_experts, &c->embedding_dim, &c->mlp_dim,
                          &c->num_heads,  &c->num_kv_heads, &c->head_dim,          &c->attention_window,
                          &c->context_length};
    for (size_t k = 0; k + 1 < nov; k++) {
        if (ov[k].set) *fields[k] = (uint32_t) ov[k].value;
    }
    /* RoPE/YaRN as the released models, again: the YaRN offset/scale depend on head_dim */
    gptoss_model_preset_set_rope(preset, c);
    if (ov[nov - 1].set) c->context_length = (uint32_t) ov[nov - 1].value;
    if (gptoss_model_config_validate(c) != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 2;
    }

    vocab_path = vocab_path_or_env(vocab_path);
    struct gptoss_vocab vocab;
    enum gptoss_status st = gptoss_vocab_load_tiktoken(vocab_path, &vocab);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 1;
    }
    if (vocab.num_tokens != 199998) {
        fprintf(stderr, "gptoss make-model: warning: %s has %u tokens, o200k_base has 199998\n", vocab_path,
                vocab.num_tokens);
    }
    st = gptoss_write_random_model(out, c, seed, &vocab, (force ? GPTOSS_WRITE_REPLACE : 0) | (quiet ? 0 : GPTOSS_WRITE_PROGRESS));
    gptoss_vocab_free(&vocab);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    return 0;
}
