/* The test harness: every case of every kernel's test module (tests/ops/) on every
 * backend (CPU scalar / avx2 / avx512 with 2 threads, CUDA device 0), compared with the
 * float64 reference (src/reference/) within each module's tolerances.
 *
 *   harness [--table] [--filter SUBSTR] [--quick] [--seed N] [--threads N]
 *           [--backend scalar|avx2|avx512|cuda] [--list]
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
 * Summary: one line per (case, backend): PASS/FAIL name backend max_err time; then
 * "N passed, N failed, N skipped" and the skipped cases by name. Exit status 1 on any
 * failure. */
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
    char* skipped_list;    /* names of the cases skipped on it */
    size_t skipped_len, skipped_cap;
    uint32_t nskipped;
};

static void note_skip(struct backend_slot* s, const char* name) {
    const size_t need = strlen(name) + 2;
    if (s->skipped_len + need + 1 > s->skipped_cap) {
        s->skipped_cap = (s->skipped_cap + need) * 2 + 256;
        s->skipped_list = realloc(s->skipped_list, s->skipped_cap);
        if (s->skipped_list == NULL) exit(2);
    }
    memcpy(s->skipped_list + s->skipped_len, name, need - 2);
    s->skipped_len += need - 2;
    s->skipped_list[s->skipped_len++] = ' ';
    s->skipped_list[s->skipped_len] = '\0';
    s->nskipped++;
}

struct table_row {
    const struct tc_op* op;
    const struct tc_case* c;
    const char* backend;
    struct tc_result r;
};

static void usage(void) {
    fprintf(stderr,
            "usage: harness [--table] [--filter SUBSTR] [--quick] [--seed N] [--threads N]\n"
            "               [--backend scalar|avx2|avx512|cuda] [--list]\n");
}

int main(int argc, char** argv) {
    bool table = false, quick = false, list = false, have_seed = false;
    const char* filter = NULL;
    const char* only_backend = NULL;
    uint32_t threads = 2;
    uint64_t seed = 0;
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
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
            have_seed = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (uint32_t) strtoul(argv[++i], NULL, 0);
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
            if (filter && !strstr(c->name, filter)) continue;
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
        if (st != gptoss_status_success) {
            s->be = NULL;
            snprintf(s->skip_reason, sizeof s->skip_reason, "%s: %s", status_str(st), gptoss_last_error());
            printf("backend %s: unavailable (%s); its cases are SKIPPED\n", s->label, s->skip_reason);
        } else {
            snprintf(s->name, sizeof s->name, "%s", gptoss_backend_get_name(s->be));
            printf("backend %s: %s\n", s->label, s->name);
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
    struct table_row* rows = NULL;
    size_t nrows = 0;
    const double t_start = gptoss_now_s();
    for (size_t ci = 0; ci < num_cases; ci++) {
        const struct tc_op* op;
        const struct tc_case* c = tc_case_at(ci, &op);
        if (quick && !(c->flags & TC_QUICK)) continue;
        if (filter && !strstr(c->name, filter)) continue;
        if (c->flags & TC_BENCH_ONLY) continue;
        bool any = false;
        for (int i = 0; i < 4; i++) any |= slots[i].be != NULL;
        if (!any) {
            for (int i = 0; i < 4; i++) {
                note_skip(&slots[i], c->name);
                nskip++;
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
                note_skip(s, c->name);
                nskip++;
                continue;
            }
            struct tc_result res = {0};
            run_case(s->be, &p, &ex, &res);
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
            rows = realloc(rows, (nrows + 1) * sizeof *rows);
            rows[nrows++] = (struct table_row){op, c, s->label, res};
        }
        tc_expect_free(&ex);
        tc_problem_destroy(&p);
        if (getenv("GPTOSS_HARNESS_VERBOSE")) fprintf(stderr, "  (%s: reference %.2f s)\n", c->name, prep_s);
    }

    if (table) {
        printf("\n%-34s %-7s %-36s %10s %5s %11s %8s\n", "op", "backend", "shape", "max_err", "pass", "time_ms", "GB/s");
        for (size_t i = 0; i < nrows; i++) {
            const struct table_row* r = &rows[i];
            char shape[96];
            tc_shape_string(r->op, r->c, shape, sizeof shape);
            const double gbs = r->r.time_s > 0 ? tc_bytes(r->op, r->c) / r->r.time_s * 1e-9 : 0;
            printf("%-34s %-7s %-36s %10.3g %5s %11.4f %8.2f   %s\n", tc_kernel_name(r->op), r->backend, shape,
                   r->r.max_err, r->r.fail ? "FAIL" : "ok", 1e3 * r->r.time_s, gbs, r->c->name);
        }
    }
    printf("\n(total %.1f s)\n", gptoss_now_s() - t_start);
    printf("%u passed, %u failed, %u skipped\n", npass, nfail, nskip);
    for (int i = 0; i < 4; i++) {
        if (slots[i].nskipped) {
            printf("skipped on %s (%s): %s\n", slots[i].label, slots[i].skip_reason, slots[i].skipped_list);
        }
        free(slots[i].skipped_list);
        gptoss_backend_release(slots[i].be);
    }
    free(rows);
    return nfail ? 1 : 0;
}
