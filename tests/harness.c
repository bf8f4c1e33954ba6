/* The test harness: every case of every kernel's test module (tests/ops/) on every
 * backend (CPU scalar / avx2 / avx512 with 2 threads, CUDA device 0), compared with the
 * float64 reference (src/reference/) within each module's tolerances.
 *
 *   harness [--table] [--filter SUBSTR[,SUBSTR...]] [--quick] [--seed N] [--threads N]
 *           [--backend scalar|avx2|avx512|cuda] [--row-order auto|one|many] [--skipped-file PATH] [--list]
 *
 * --filter: the cases whose names contain any of the comma-separated substrings (one
 * process for many cases: each compute-sanitizer run pays the device start-up once).
 * --row-order: set on every backend before the cases run (gptoss_backend_set_row_order; the
 * kernels' arithmetic of that order against the same reference and tolerances; default auto).
 *
 * Seed: --seed, else GPTOSS_TEST_SEED, else the time. It is printed first and in every
 * failure line; every case draws its inputs from (seed, case name), so
 * `GPTOSS_TEST_SEED=S harness --filter NAME` replays one failure.
 *
 * Per call: every buffer is allocated with gptoss_backend_alloc plus GUARD bytes holding a
 * pattern; outputs start as 0xFF bytes (NaN for floats, 0xFFFFFFFF for integers); after
 * the call the outputs come back (gptoss_backend_copy + synchronize), guards must be
 * intact, inputs unchanged (inputs up to 64 MB are compared in full), then tc_check
 * compares the values with the reference (|out - ref| <= tol(element), a NaN or inf only
 * where the reference has one; exact outputs bit for bit) and runs the module's own
 * checks. Draw-based cases (sample, the seed README's SDPA example) repeat this per draw.
 * TC_FAULT cases (inputs the kernel must refuse) expect the call or the synchronize to fail:
 * refused by the call, every output must be untouched; reported by the synchronize (device
 * backends), the outputs are checked as usual; the module's verify judges the failure.
 *
 * First a check that every kernel of the kernel list has test cases and a benchmark row.
 * Then one line per (case, backend) as soon as it ran: PASS/FAIL name backend max_err time,
 * or with --table a row of the table (columns named in its header, print_header). A
 * failure also prints "FAIL name backend seed=S: why"; a case that does not apply in the
 * row order (its module's tc_op.skip) prints "SKIP name backend: why". Last, per backend
 * with skipped cases "LABEL: N skipped (reason)", the file that lists them by name
 * (--skipped-file, default harness-skipped.txt beside the binary) and the line "N passed,
 * N failed, N skipped". Exit status 1 on any failure. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gptoss/kernels.h>

#include "ops/ops.h"
#include "util.h"

#define GUARD 256 /* bytes after every buffer */
#define FULL_INPUT_CHECK_BYTES (64u << 20)

static uint8_t guard_byte(size_t i) { return (uint8_t) (0xA5u + 7u * (unsigned) i); }

static const char* status_str(enum gptoss_status s) { return gptoss_status_to_string(s); }

/* ------------------------------------------------------------------------------------
 * Running one case on one backend
 * ---------------------------------------------------------------------------------- */

/* Copies the inputs (and old values) up, 0xFF into the outputs, the guard pattern after
 * each buffer. */
static bool upload(gptoss_backend_t be, const struct tc_problem* p, void* const dev[], struct tc_result* res) {
    uint8_t guard[GUARD];
    for (size_t g = 0; g < GUARD; g++) guard[g] = guard_byte(g);
    for (int i = 0; i < p->n; i++) {
        const struct tc_buffer* b = &p->b[i];
        enum gptoss_status st;
        if (b->role == TC_OUT) {
            uint8_t* stage = tc_xmalloc(b->size);
            memset(stage, 0xFF, b->size);
            st = gptoss_backend_copy(be, dev[i], stage, b->size, gptoss_copy_host_to_backend);
            if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
            free(stage);
        } else {
            st = gptoss_backend_copy(be, dev[i], b->host, b->size, gptoss_copy_host_to_backend);
        }
        if (st == gptoss_status_success) {
            st = gptoss_backend_copy(be, (uint8_t*) dev[i] + b->size, guard, GUARD, gptoss_copy_host_to_backend);
        }
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
        if (st != gptoss_status_success) {
            tc_failf(res, "upload of %s: %s (%s)", b->name, status_str(st), gptoss_last_error());
            return false;
        }
    }
    return true;
}

/* Downloads outputs (and guards) into outs[i] (NULL for inputs); checks guards and
 * unchanged inputs. */
static void download(gptoss_backend_t be, const struct tc_problem* p, void* const dev[], void* outs[],
                     struct tc_result* res) {
    for (int i = 0; i < p->n; i++) {
        const struct tc_buffer* b = &p->b[i];
        const bool full = b->role != TC_IN || b->size <= FULL_INPUT_CHECK_BYTES;
        uint8_t* h = tc_xmalloc(b->size + GUARD);
        enum gptoss_status st;
        if (full) {
            st = gptoss_backend_copy(be, h, dev[i], b->size + GUARD, gptoss_copy_backend_to_host);
        } else {
            st = gptoss_backend_copy(be, h + b->size, (uint8_t*) dev[i] + b->size, GUARD, gptoss_copy_backend_to_host);
        }
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
        if (st != gptoss_status_success) {
            tc_failf(res, "download of %s: %s (%s)", b->name, status_str(st), gptoss_last_error());
            free(h);
            outs[i] = NULL;
            continue;
        }
        for (size_t g = 0; g < GUARD; g++) {
            if (h[b->size + g] != guard_byte(g)) {
                tc_failf(res, "guard byte %zu after %s (%zu bytes) overwritten: 0x%02x", g, b->name, b->size,
                         h[b->size + g]);
                break;
            }
        }
        if (b->role == TC_IN) {
            if (full && memcmp(h, b->host, b->size) != 0) tc_failf(res, "input %s was modified", b->name);
            free(h);
            outs[i] = NULL;
        } else {
            outs[i] = h;
        }
    }
}

/* A TC_FAULT call refused by the call itself: every output still holds the 0xFF poison. */
static void refused_untouched(const struct tc_problem* p, void* const outs[], struct tc_result* res) {
    for (int i = 0; i < p->n; i++) {
        if (outs[i] == NULL || p->b[i].role == TC_IN) continue;
        const uint8_t* o = outs[i];
        for (size_t j = 0; j < p->b[i].size; j++) {
            if (o[j] != 0xFF) {
                tc_failf(res, "the call was refused (%s) but byte %zu of %s was written", p->fault.message, j,
                         p->b[i].name);
                return;
            }
        }
    }
}

static void run_case(gptoss_backend_t be, struct tc_problem* p, const struct tc_expect* ex, struct tc_result* res) {
    void* dev[TC_MAX_BUFFERS] = {0};
    for (int i = 0; i < p->n && !res->fail; i++) {
        const size_t size = p->b[i].size + GUARD;
        const enum gptoss_status st = gptoss_backend_alloc(be, size, &dev[i]);
        if (st != gptoss_status_success) {
            dev[i] = NULL;
            tc_failf(res, "gptoss_backend_alloc(%zu) for %s: %s (%s)", size, p->b[i].name, status_str(st),
                     gptoss_last_error());
        }
    }
    const uint32_t draws = tc_num_draws(p->c);
    double time_s = 0.0;
    for (uint32_t d = 0; d < draws && !res->fail; d++) {
        tc_problem_draw(p, d);
        if (!upload(be, p, dev, res)) break;
        const double t0 = gptoss_now_s();
        enum gptoss_status st = tc_launch(be, p, dev);
        const bool call_ok = st == gptoss_status_success;
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
        time_s += gptoss_now_s() - t0;
        const bool fault = (p->c->flags & TC_FAULT) != 0;
        if (fault) {
            p->fault.status = st;
            p->fault.at_sync = call_ok;
            snprintf(p->fault.message, sizeof p->fault.message, "%s", st != gptoss_status_success ? gptoss_last_error() : "");
        } else if (st != gptoss_status_success) {
            tc_failf(res, "%s%s returned %s: %s", draws > 1 ? "a draw of " : "", tc_kernel_name(p->op), status_str(st),
                     gptoss_last_error());
            break;
        }
        void* outs[TC_MAX_BUFFERS] = {0};
        download(be, p, dev, outs, res);
        if (fault && p->op->verify == NULL) {
            tc_failf(res, "a TC_FAULT case needs the module's verify to judge the failure");
        } else if (!res->fail && fault && !call_ok) {
            refused_untouched(p, outs, res); /* refused by the call: nothing written */
            if (!res->fail) p->op->verify(p, ex, outs, res);
        } else if (!res->fail) {
            tc_check(p, ex, outs, res);
        }
        for (int i = 0; i < p->n; i++) free(outs[i]);
    }
    res->time_s = time_s / draws;
    for (int i = 0; i < p->n; i++) {
        if (dev[i] != NULL) gptoss_backend_free(be, dev[i]);
    }
}

/* ------------------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------------------- */

struct backend_slot {
    const char* label; /* scalar, avx2, avx512, cuda */
    gptoss_backend_t be;
    char name[160];
    char skip_reason[256]; /* non-empty: not available */
    struct skipped_case {
        const struct tc_case* c;
        const char* why; /* the case's own reason (tc_op.skip), or NULL: the backend's */
    }* skipped;          /* the cases skipped on it */
    size_t nskipped, cap, ncase_skips;
};

static void note_skip(struct backend_slot* s, const struct tc_case* c, const char* why) {
    if (s->nskipped == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->skipped = realloc(s->skipped, s->cap * sizeof *s->skipped);
        if (s->skipped == NULL) exit(2);
    }
    s->skipped[s->nskipped++] = (struct skipped_case){c, why};
    if (why != NULL) s->ncase_skips++;
}

/* Whether name contains one of the comma-separated substrings of filter (NULL or "": all;
 * empty parts are ignored). */
static bool filter_matches(const char* filter, const char* name) {
    if (filter == NULL || *filter == '\0') return true;
    for (const char* p = filter;;) {
        const char* comma = strchr(p, ',');
        const size_t n = comma != NULL ? (size_t) (comma - p) : strlen(p);
        for (const char* s = name; n > 0 && strlen(s) >= n; s++) {
            if (strncmp(s, p, n) == 0) return true;
        }
        if (comma == NULL) return false;
        p = comma + 1;
    }
}

static bool selected(const struct tc_case* c, bool quick, const char* filter) {
    return !(quick && !(c->flags & TC_QUICK)) && filter_matches(filter, c->name) && !(c->flags & TC_BENCH_ONLY);
}

/* The table: one row per (case, backend), printed as soon as it is known. max_err is the
 * largest |out - ref| of the elements compared with a tolerance, tol the tolerance of
 * that element, err/tol the largest ratio over all of them ("exact": compared bit for
 * bit; "-": only the module's own checks, e.g. the draws of the sampling kernels). */
#define ROW_FORMAT "%9s  %-34s %-7s %-36s %10s %10s %8s %-6s %10s %8s  %s\n"

static void print_header(void) {
    printf(ROW_FORMAT, "case#", "op", "backend", "shape", "max_err", "tol", "err/tol", "result", "time_ms", "GB/s",
           "case");
}

static void print_row(size_t index, size_t total, const struct tc_op* op, const struct tc_case* c,
                      const char* backend, const struct tc_result* r) {
    char num[32], shape[96], err[32], tol[32], ratio[32], ms[32], gbs[32];
    snprintf(num, sizeof num, "%zu/%zu", index, total);
    tc_shape_string(op, c, shape, sizeof shape);
    if (r->n_tol != 0) {
        snprintf(err, sizeof err, "%.3g", r->max_err);
        snprintf(tol, sizeof tol, "%.3g", r->tol_at_max);
        snprintf(ratio, sizeof ratio, "%.0f%%", 100.0 * r->max_ratio);
    } else {
        snprintf(err, sizeof err, "%s", r->n_exact != 0 ? "0" : "-");
        snprintf(tol, sizeof tol, "%s", r->n_exact != 0 ? "exact" : "-");
        snprintf(ratio, sizeof ratio, "-");
    }
    snprintf(ms, sizeof ms, "%.4f", 1e3 * r->time_s);
    snprintf(gbs, sizeof gbs, "%.2f", r->time_s > 0 ? tc_bytes(op, c) / r->time_s * 1e-9 : 0.0);
    printf(ROW_FORMAT, num, tc_kernel_name(op), backend, shape, err, tol, ratio, r->fail ? "FAIL" : "ok", ms, gbs,
           c->name);
}

/* Writes "backend case" per skipped case (the reasons first, as comments) to path through
 * a temporary file renamed over it. Returns 0 on success. */
static int write_skipped(const char* path, const struct backend_slot* slots, int nslots, uint64_t seed) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int) sizeof tmp) return -1;
    FILE* f = fopen(tmp, "w");
    if (f == NULL) return -1;
    fprintf(f, "# cases the harness skipped (seed %" PRIu64 "): one line per backend and case\n", seed);
    for (int i = 0; i < nslots; i++) {
        if (slots[i].nskipped > slots[i].ncase_skips) fprintf(f, "# %s: %s\n", slots[i].label, slots[i].skip_reason);
    }
    for (int i = 0; i < nslots; i++) {
        for (size_t j = 0; j < slots[i].nskipped; j++) {
            const struct skipped_case* k = &slots[i].skipped[j];
            if (k->why != NULL) fprintf(f, "%s %s  # %s\n", slots[i].label, k->c->name, k->why);
            else fprintf(f, "%s %s\n", slots[i].label, k->c->name);
        }
    }
    const bool ok = fflush(f) == 0 && !ferror(f);
    if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* The default list of skipped cases: harness-skipped.txt beside the binary. */
static void default_skipped_path(const char* argv0, char* buf, size_t size) {
    const char* slash = strrchr(argv0, '/');
    if (slash == NULL) {
        snprintf(buf, size, "harness-skipped.txt");
    } else {
        snprintf(buf, size, "%.*s/harness-skipped.txt", (int) (slash - argv0), argv0);
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: harness [--table] [--filter SUBSTR[,SUBSTR...]] [--quick] [--seed N] [--threads N]\n"
            "               [--backend scalar|avx2|avx512|cuda] [--row-order auto|one|many] [--skipped-file PATH]\n"
            "               [--list]\n");
}

int main(int argc, char** argv) {
    bool table = false, quick = false, list = false, have_seed = false;
    const char* filter = NULL;
    const char* only_backend = NULL;
    char skipped_path[4096];
    default_skipped_path(argv[0], skipped_path, sizeof skipped_path);
    uint32_t threads = 2;
    uint64_t seed = 0;
    enum gptoss_row_order order = gptoss_row_order_auto;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--table") == 0) {
            table = true;
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--list") == 0) {
            list = true;
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            only_backend = argv[++i];
        } else if (strcmp(argv[i], "--skipped-file") == 0 && i + 1 < argc) {
            snprintf(skipped_path, sizeof skipped_path, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
            have_seed = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (uint32_t) strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--row-order") == 0 && i + 1 < argc) {
            const char* o = argv[++i];
            if (!tc_parse_row_order(o, &order)) {
                fprintf(stderr, "harness: --row-order must be auto, one or many, not \"%s\"\n", o);
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (!have_seed) {
        const char* env = getenv("GPTOSS_TEST_SEED");
        if (env != NULL && *env != '\0') {
            seed = strtoull(env, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t) ts.tv_sec * 1000003u ^ (uint64_t) ts.tv_nsec;
        }
    }
    const size_t num_cases = tc_num_cases();
    if (list) {
        for (size_t i = 0; i < num_cases; i++) {
            const struct tc_op* op;
            const struct tc_case* c = tc_case_at(i, &op);
            if (quick && !(c->flags & TC_QUICK)) continue;
            if (!filter_matches(filter, c->name)) continue;
            char shape[96];
            tc_shape_string(op, c, shape, sizeof shape);
            printf("%-52s %-34s %s\n", c->name, tc_kernel_name(op), shape);
        }
        return 0;
    }
    printf("seed %" PRIu64 " (replay: GPTOSS_TEST_SEED=%" PRIu64 ")\n", seed, seed);
    fflush(stdout);

    struct backend_slot slots[4] = {{.label = "scalar"}, {.label = "avx2"}, {.label = "avx512"}, {.label = "cuda"}};
    const enum gptoss_cpu_isa isas[3] = {gptoss_cpu_isa_scalar, gptoss_cpu_isa_avx2, gptoss_cpu_isa_avx512};
    for (int i = 0; i < 4; i++) {
        struct backend_slot* s = &slots[i];
        if (only_backend && strcmp(only_backend, s->label) != 0) {
            snprintf(s->skip_reason, sizeof s->skip_reason, "not selected (--backend %s)", only_backend);
            continue;
        }
        enum gptoss_status st = i < 3 ? gptoss_backend_create_cpu_isa(threads, isas[i], &s->be)
                                      : gptoss_backend_create_cuda(0, NULL, &s->be);
        if (st == gptoss_status_success && order != gptoss_row_order_auto) {
            st = gptoss_backend_set_row_order(s->be, order);
            if (st != gptoss_status_success) {
                gptoss_backend_release(s->be);
                s->be = NULL;
            }
        }
        if (st != gptoss_status_success) {
            s->be = NULL;
            snprintf(s->skip_reason, sizeof s->skip_reason, "%s: %s", status_str(st), gptoss_last_error());
            printf("backend %s: unavailable (%s); its cases are SKIPPED\n", s->label, s->skip_reason);
        } else {
            snprintf(s->name, sizeof s->name, "%s", gptoss_backend_get_name(s->be));
            printf("backend %s: %s%s\n", s->label, s->name,
                   order == gptoss_row_order_one ? " (row order one)" : order == gptoss_row_order_many ? " (row order many)" : "");
        }
    }
    fflush(stdout);

    uint32_t npass = 0, nfail = 0, nskip = 0;
    char registry[256];
    if (tc_registry_check(registry, sizeof registry)) {
        npass++;
        printf("PASS registry: %s\n", registry);
    } else {
        nfail++;
        printf("FAIL registry: %s\n", registry);
    }
    size_t total = 0, index = 0;
    for (size_t ci = 0; ci < num_cases; ci++) {
        const struct tc_op* op;
        total += selected(tc_case_at(ci, &op), quick, filter);
    }
    if (table) {
        printf("\n");
        print_header();
    }
    fflush(stdout);
    const double t_start = gptoss_now_s();
    for (size_t ci = 0; ci < num_cases; ci++) {
        const struct tc_op* op;
        const struct tc_case* c = tc_case_at(ci, &op);
        if (!selected(c, quick, filter)) continue;
        index++;
        bool any = false;
        for (int i = 0; i < 4; i++) any |= slots[i].be != NULL;
        if (!any) {
            for (int i = 0; i < 4; i++) {
                note_skip(&slots[i], c, NULL);
                nskip++;
            }
            continue;
        }
        const char* why = op->skip != NULL ? op->skip(c, order) : NULL;
        if (why != NULL) { /* not in this row order: skipped everywhere, with the reason where it runs */
            for (int i = 0; i < 4; i++) {
                note_skip(&slots[i], c, slots[i].be != NULL ? why : NULL);
                nskip++;
                if (slots[i].be != NULL) printf("SKIP %s %s: %s\n", c->name, slots[i].label, why);
            }
            continue;
        }
        struct tc_problem p;
        if (tc_problem_create(&p, op, c, seed ^ tc_hash_string(c->name)) != 0) {
            printf("FAIL %s (all backends) seed=%" PRIu64 ": out of host memory building the inputs\n", c->name, seed);
            nfail++;
            continue;
        }
        const double t_prep = gptoss_now_s();
        struct tc_expect ex;
        tc_expect_build(&p, &ex);
        const double prep_s = gptoss_now_s() - t_prep;
        for (int i = 0; i < 4; i++) {
            struct backend_slot* s = &slots[i];
            if (s->be == NULL) {
                note_skip(s, c, NULL);
                nskip++;
                continue;
            }
            struct tc_result res = {0};
            run_case(s->be, &p, &ex, &res);
            if (table) print_row(index, total, op, c, s->label, &res);
            if (res.fail) {
                nfail++;
                printf("FAIL %s %s seed=%" PRIu64 ": %s\n", c->name, s->label, seed, res.msg);
            } else {
                npass++;
                if (!table) {
                    printf("PASS %s %s max_err=%.3g (%.0f%% of tol) %.3f ms%s\n", c->name, s->label, res.max_err,
                           100.0 * res.max_ratio, 1e3 * res.time_s, tc_num_draws(c) > 1 ? " per draw" : "");
                }
            }
            fflush(stdout);
        }
        tc_expect_free(&ex);
        tc_problem_destroy(&p);
        if (getenv("GPTOSS_HARNESS_VERBOSE")) fprintf(stderr, "  (%s: reference %.2f s)\n", c->name, prep_s);
    }

    printf("\n(total %.1f s)\n", gptoss_now_s() - t_start);
    /* the skipped cases: a count and the reason per backend here, the names in a file */
    if (nskip != 0) {
        for (int i = 0; i < 4; i++) {
            const size_t nbackend = slots[i].nskipped - slots[i].ncase_skips;
            if (nbackend) printf("%s: %zu skipped (%s)\n", slots[i].label, nbackend, slots[i].skip_reason);
            if (slots[i].ncase_skips) {
                printf("%s: %zu skipped by their cases (the SKIP lines say why)\n", slots[i].label, slots[i].ncase_skips);
            }
        }
        if (write_skipped(skipped_path, slots, 4, seed) == 0) {
            printf("skipped cases by name: %s\n", skipped_path);
        } else {
            printf("skipped cases by name: not written (%s: %s)\n", skipped_path, strerror(errno));
        }
    }
    printf("%u passed, %u failed, %u skipped\n", npass, nfail, nskip);
    for (int i = 0; i < 4; i++) {
        free(slots[i].skipped);
        gptoss_backend_release(slots[i].be);
    }
    return nfail ? 1 : 0;
}
