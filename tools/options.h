/* The CLI's options module: every subcommand describes its options as a table and parses
 * argv with gptoss_options_parse (getopt_long underneath: --name VALUE, --name=VALUE,
 * -x VALUE, -xVALUE, options and positional arguments in any order, "--" ends the
 * options). Values are checked as they are read: numbers over the whole string and within
 * their range, choices among their names; a failure prints
 *   gptoss CMD: -n expects an integer in [0, 16777216], got 'x' (see gptoss CMD --help)
 * and the subcommand exits with status 2. */
#ifndef GPTOSS_TOOLS_OPTIONS_H
#define GPTOSS_TOOLS_OPTIONS_H

#include <stddef.h>

enum gptoss_option_kind {
    gptoss_option_flag,    /* no value: *(int*) dest = 1 */
    gptoss_option_string,  /* *(const char**) dest = the value */
    gptoss_option_choice,  /* a string among `choices` ("cpu|cuda") */
    gptoss_option_u64,     /* *(unsigned long long*) dest, in [lo, hi] */
    gptoss_option_f32,     /* *(float*) dest, finite, in [min, max] */
};

struct gptoss_option {
    const char* name;  /* the long name without "--" */
    int short_name;    /* 'n' for -n, or 0 */
    enum gptoss_option_kind kind;
    void* dest;
    unsigned long long lo, hi; /* u64 range */
    double min, max;           /* f32 range */
    const char* choices;       /* choice: names separated by '|' */
};

/* Table entries. */
#define GPTOSS_OPTION_FLAG(name, short_name, dest) {(name), (short_name), gptoss_option_flag, (dest), 0, 0, 0, 0, NULL}
#define GPTOSS_OPTION_STRING(name, short_name, dest) \
    {(name), (short_name), gptoss_option_string, (dest), 0, 0, 0, 0, NULL}
#define GPTOSS_OPTION_CHOICE(name, short_name, dest, choices) \
    {(name), (short_name), gptoss_option_choice, (dest), 0, 0, 0, 0, (choices)}
#define GPTOSS_OPTION_U64(name, short_name, dest, lo, hi) \
    {(name), (short_name), gptoss_option_u64, (dest), (lo), (hi), 0, 0, NULL}
#define GPTOSS_OPTION_F32(name, short_name, dest, min, max) \
    {(name), (short_name), gptoss_option_f32, (dest), 0, 0, (min), (max), NULL}

/* Parses argv[1..argc) (argv[0] is the subcommand; messages name it from now on) against
 * opts[0..num_opts); -h and --help print help() and stop. Positional arguments are stored in order in
 * positional[0..max_positional) and counted in *num_positional; more than
 * max_positional is a usage error. Returns 0 (parsed), 1 (help printed) or -1 (usage
 * error, message printed). May be called again in the same process. */
int gptoss_options_parse(int argc, char** argv, const struct gptoss_option* opts, size_t num_opts, void (*help)(void),
                         char** positional, size_t max_positional, size_t* num_positional);

/* Full-string unsigned integer in [0, max]: 0 on success (also for values of
 * environment variables). */
int gptoss_cli_parse_u64(const char* s, unsigned long long max, unsigned long long* out);
/* A byte count: digits with an optional binary suffix K, M, G or T (case-insensitive:
 * 8G = 8 * 2^30). 0 or -1 (not a count, or above 2^64-1). */
int gptoss_cli_parse_bytes(const char* s, unsigned long long* out);

#endif
