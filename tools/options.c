/* The CLI's options module (options.h), on getopt_long. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"

int gptoss_cli_parse_u64(const char* s, unsigned long long max, unsigned long long* out) {
    if (s == NULL || *s < '0' || *s > '9') return -1;
    char* end = NULL;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max) return -1;
    *out = v;
    return 0;
}

int gptoss_cli_parse_bytes(const char* s, unsigned long long* out) {
    if (s == NULL || *s < '0' || *s > '9') return -1;
    char* end = NULL;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s) return -1;
    static const char units[] = "KMGT";
    unsigned shift = 0;
    if (*end != '\0') {
        const char* u = strchr(units, *end >= 'a' ? *end - 'a' + 'A' : *end);
        if (u == NULL || end[1] != '\0') return -1;
        shift = 10 * (unsigned) (u - units + 1);
    }
    if (shift != 0 && v > (~0ull >> shift)) return -1;
    *out = v << shift;
    return 0;
}

/* The value of option o, as the flag was written ("-n" or "--n-predict"). 0 or -1. */
static int store(const struct gptoss_option* o, const char* flag, const char* v) {
    switch (o->kind) {
        case gptoss_option_flag:
            *(int*) o->dest = 1;
            return 0;
        case gptoss_option_string:
            *(const char**) o->dest = v;
            return 0;
        case gptoss_option_choice: {
            const size_t n = strlen(v);
            for (const char* c = o->choices; *c != '\0';) {
                const char* bar = strchr(c, '|');
                const size_t len = bar != NULL ? (size_t) (bar - c) : strlen(c);
                if (len == n && memcmp(c, v, n) == 0) {
                    *(const char**) o->dest = v;
                    return 0;
                }
                c += len + (bar != NULL);
            }
            gptoss_cli_usage_error("%s expects one of %s, got '%s'", flag, o->choices, v);
            return -1;
        }
        case gptoss_option_u64: {
            unsigned long long x;
            if (gptoss_cli_parse_u64(v, o->hi, &x) != 0 || x < o->lo) {
                gptoss_cli_usage_error("%s expects an integer in [%llu, %llu], got '%s'", flag, o->lo, o->hi, v);
                return -1;
            }
            *(unsigned long long*) o->dest = x;
            return 0;
        }
        case gptoss_option_f32: {
            errno = 0;
            char* end = NULL;
            const double x = strtod(v, &end);
            if (*v == '\0' || *v == ' ' || errno != 0 || end == v || *end != '\0' || !isfinite(x) || x < o->min ||
                x > o->max) {
                gptoss_cli_usage_error("%s expects a number in [%g, %g], got '%s'", flag, o->min, o->max, v);
                return -1;
            }
            *(float*) o->dest = (float) x;
            return 0;
        }
    }
    return -1;
}

#define MAX_OPTIONS 64
/* getopt_long's value of option i: its short name, or (long only) 256 + i. */
#define LONG_ONLY 256

int gptoss_options_parse(int argc, char** argv, const struct gptoss_option* opts, size_t num_opts, void (*help)(void),
                         char** positional, size_t max_positional, size_t* num_positional) {
    struct option longs[MAX_OPTIONS + 2];
    char shorts[3 * MAX_OPTIONS + 4];
    size_t ns = 0;
    shorts[ns++] = ':'; /* a missing value returns ':' */
    shorts[ns++] = 'h';
    if (num_opts > MAX_OPTIONS) {
        gptoss_cli_usage_error("internal error: %zu options exceed %d", num_opts, MAX_OPTIONS);
        return -1;
    }
    for (size_t i = 0; i < num_opts; i++) {
        const int has_arg = opts[i].kind == gptoss_option_flag ? no_argument : required_argument;
        longs[i] = (struct option){opts[i].name, has_arg, NULL, opts[i].short_name ? opts[i].short_name
                                                                                   : LONG_ONLY + (int) i};
        if (opts[i].short_name) {
            shorts[ns++] = (char) opts[i].short_name;
            if (has_arg == required_argument) shorts[ns++] = ':';
        }
    }
    longs[num_opts] = (struct option){"help", no_argument, NULL, 'h'};
    longs[num_opts + 1] = (struct option){NULL, 0, NULL, 0};
    shorts[ns] = '\0';

    gptoss_cli_set_command(argv[0]);
    size_t count = 0;
    opterr = 0;
    optind = 0; /* GNU: a full re-initialisation, so subcommands can parse again */
    for (;;) {
        int longindex = -1;
        const int c = getopt_long(argc, argv, shorts, longs, &longindex);
        if (c == -1) break;
        if (c == 'h') {
            help();
            return 1;
        }
        /* the option as written: "--name" (long form) or "-x" */
        const struct gptoss_option* o = NULL;
        const int val = c == '?' || c == ':' ? optopt : c;
        for (size_t i = 0; i < num_opts && o == NULL; i++) {
            if (val == (opts[i].short_name ? opts[i].short_name : LONG_ONLY + (int) i)) o = &opts[i];
        }
        /* after a failure, the argument that failed; after a success, the value may follow */
        const char* written = argv[optind - 1];
        const int long_form = c == '?' || c == ':' ? strncmp(written, "--", 2) == 0 : longindex >= 0;
        char flag[80];
        if (o != NULL && long_form) snprintf(flag, sizeof(flag), "--%s", o->name);
        else if (o != NULL && o->short_name) snprintf(flag, sizeof(flag), "-%c", o->short_name);
        else snprintf(flag, sizeof(flag), "%.70s", written);
        if (c == ':') {
            gptoss_cli_usage_error("%s needs a value", flag);
            return -1;
        }
        if (c == '?') {
            if (o != NULL && o->kind == gptoss_option_flag) gptoss_cli_usage_error("%s takes no value", flag);
            else if (optopt != 0 && optopt < LONG_ONLY) gptoss_cli_usage_error("unknown option '-%c'", optopt);
            else gptoss_cli_usage_error("unknown option '%s'", written);
            return -1;
        }
        if (o == NULL || store(o, flag, optarg) != 0) {
            if (o == NULL) gptoss_cli_usage_error("unknown option '%s'", written);
            return -1;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (count == max_positional) {
            gptoss_cli_usage_error("unexpected argument '%s'", argv[i]);
            return -1;
        }
        positional[count++] = argv[i];
    }
    if (num_positional != NULL) *num_positional = count;
    return 0;
}
