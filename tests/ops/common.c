/* The parts of the test modules that every kernel shares (see ops.h): the registry, the
 * problem and expectation plumbing, the comparison of outputs, input generation and the
 * common tolerance terms. */
#include "ops.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/math.h"
#include "reference/reference.h"
#include "util.h"

#define TC_OP_ENTRY(name, family) &tc_op_##name,
const struct tc_op* const tc_ops[gptoss_kernel_count] = {GPTOSS_KERNEL_LIST(TC_OP_ENTRY, TC_OP_ENTRY)};
#undef TC_OP_ENTRY

bool tc_registry_check(char* msg, size_t size) {
#define TC_KERNEL_FLAG(name, family) false,
#define TC_FUSION_FLAG(name, family) true,
    static const bool fusion[gptoss_kernel_count] = {GPTOSS_KERNEL_LIST(TC_KERNEL_FLAG, TC_FUSION_FLAG)};
#undef TC_FUSION_FLAG
#undef TC_KERNEL_FLAG
    for (int k = 0; k < gptoss_kernel_count; k++) {
        const struct tc_op* op = tc_ops[k];
        const char* name = gptoss_kernel_get_name((enum gptoss_kernel) k);
        size_t tests = 0, bench = 0;
        for (size_t i = 0; i < op->num_cases; i++) {
            tests += (op->cases[i].flags & TC_BENCH_ONLY) == 0;
            bench += (op->cases[i].flags & TC_BENCH) != 0;
        }
        const char* why = op->kernel != (enum gptoss_kernel) k ? "its module entry names another kernel"
                          : tests == 0                         ? "has no test case"
                          : bench == 0                         ? "has no benchmark row (TC_BENCH)"
                          : fusion[k] != (op->unfused != NULL) ? "a fusion without `unfused` (or the reverse)"
                                                               : NULL;
        if (why != NULL) {
            snprintf(msg, size, "kernel %s %s", name, why);
            return false;
        }
    }
    snprintf(msg, size, "%d kernels, each with test cases and a benchmark row", (int) gptoss_kernel_count);
    return true;
}

size_t tc_num_cases(void) {
    size_t n = 0;
    for (int k = 0; k < gptoss_kernel_count; k++) n += tc_ops[k]->num_cases;
    return n;
}

const struct tc_case* tc_case_at(size_t index, const struct tc_op** op_out) {
    for (int k = 0; k < gptoss_kernel_count; k++) {
        if (index < tc_ops[k]->num_cases) {
            *op_out = tc_ops[k];
            return &tc_ops[k]->cases[index];
        }
        index -= tc_ops[k]->num_cases;
    }
    *op_out = NULL;
    return NULL;
}

const char* tc_kernel_name(const struct tc_op* op) { return gptoss_kernel_get_name(op->kernel); }

static int g_passed, g_failed, g_skipped;
static char g_skipped_names[8192];

void tc_report(const char* name, bool ok, const char* detail) {
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, detail[0] ? ": " : "", detail);
    if (ok)
        g_passed++;
    else
        g_failed++;
}

void tc_skip(const char* name, const char* why) {
    printf("SKIP %s: %s\n", name, why);
    g_skipped++;
    strncat(g_skipped_names, " ", sizeof g_skipped_names - strlen(g_skipped_names) - 1);
    strncat(g_skipped_names, name, sizeof g_skipped_names - strlen(g_skipped_names) - 1);
}

int tc_summary(void) {
    printf("%d passed, %d failed, %d skipped%s%s\n", g_passed, g_failed, g_skipped, g_skipped ? "; skipped:" : "",
           g_skipped_names);
    return g_failed == 0 ? 0 : 1;
}

void* tc_xmalloc(size_t n) {
    void* p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "tests: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------------------------
 * RNG
 * ---------------------------------------------------------------------------------- */

void tc_rng_seed(struct tc_rng* rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = gptoss_splitmix64(&seed);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tc_rng_u64(struct tc_rng* rng) {
    uint64_t* s = rng->s;
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double tc_rng_uniform(struct tc_rng* rng) { return (double) (tc_rng_u64(rng) >> 11) * 0x1.0p-53; }

double tc_rng_normal(struct tc_rng* rng) {
    double u1 = tc_rng_uniform(rng), u2 = tc_rng_uniform(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t tc_hash_string(const char* s) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t) *s) * 0x100000001B3ull;
    return h;
}

float tc_f32_from_bits(uint32_t bits) { return gptoss_f32_from_bits(bits); }

/* ------------------------------------------------------------------------------------
 * Inputs
 * ---------------------------------------------------------------------------------- */

void tc_fill_f32(struct tc_rng* rng, float* x, size_t n, float lo, float hi) {
    const float scale = (hi - lo) * 0x1.0p-24f;
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        const uint64_t u = tc_rng_u64(rng);
        x[i] = lo + (float) (u & 0xFFFFFF) * scale;
        x[i + 1] = lo + (float) ((u >> 32) & 0xFFFFFF) * scale;
    }
    if (i < n) x[i] = lo + (float) (tc_rng_u64(rng) & 0xFFFFFF) * scale;
}

/* Two simple loops (random bits, then values), so that the 576 M-element unembedding
 * weights fill fast. */
void tc_fill_bf16(struct tc_rng* rng, gptoss_bf16* w, size_t n, float lo, float hi) {
    const float scale = (hi - lo) * 0x1.0p-16f;
    uint16_t* u = (uint16_t*) w;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint64_t r = tc_rng_u64(rng);
        memcpy(u + i, &r, 8);
    }
    for (; i < n; i++) u[i] = (uint16_t) tc_rng_u64(rng);
    for (i = 0; i < n; i++) u[i] = gptoss_f32_to_bf16(lo + ((float) u[i] + 0.5f) * scale);
}

void tc_fill_bytes(struct tc_rng* rng, uint8_t* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint64_t u = tc_rng_u64(rng);
        memcpy(p + i, &u, 8);
    }
    if (i < n) {
        const uint64_t u = tc_rng_u64(rng);
        memcpy(p + i, &u, n - i);
    }
}

float tc_weight_amplitude(uint32_t cols) { return cols >= 64 ? 1.0f / sqrtf((float) cols) * 2.0f : 1.0f; }

void tc_make_routing(struct tc_rng* rng, uint32_t T, uint32_t E, uint32_t k, uint32_t* ids, float* scores) {
    float* logits = tc_xmalloc((size_t) T * E * sizeof *logits);
    double* s = tc_xmalloc((size_t) T * k * sizeof *s);
    uint32_t* tmp_ids = ids != NULL ? ids : tc_xmalloc((size_t) T * k * sizeof *tmp_ids);
    tc_fill_f32(rng, logits, (size_t) T * E, -4.0f, 4.0f);
    gptoss_ref_f32_topk(&(struct gptoss_f32_topk_args){logits, tmp_ids, NULL, T, E, k}, s);
    if (scores != NULL) {
        for (size_t i = 0; i < (size_t) T * k; i++) scores[i] = (float) s[i];
    }
    if (ids == NULL) free(tmp_ids);
    free(logits);
    free(s);
}

void tc_make_offsets(struct tc_rng* rng, uint32_t T, uint32_t E, uint32_t k, uint32_t* offsets) {
    uint32_t* ids = tc_xmalloc((size_t) T * k * sizeof *ids);
    uint32_t* intra = tc_xmalloc((size_t) T * k * sizeof *intra);
    tc_make_routing(rng, T, E, k, ids, NULL);
    gptoss_ref_expert_routing_metadata(&(struct gptoss_expert_routing_metadata_args){ids, offsets, intra, T * k, E});
    free(ids);
    free(intra);
}

/* ------------------------------------------------------------------------------------
 * Problems
 * ---------------------------------------------------------------------------------- */

static size_t elem_size(enum tc_elem e) { return e == TC_BF16 ? 2 : (e == TC_U8 ? 1 : 4); }

void* tc_add_buffer(struct tc_problem* p, const char* name, enum tc_role role, enum tc_elem elem, size_t count) {
    struct tc_buffer* b = &p->b[p->n++];
    b->name = name;
    b->role = role;
    b->elem = elem;
    b->size = count * elem_size(elem);
    if (b->size == 0) b->size = 4;
    b->host = malloc(b->size);
    return b->host;
}

void tc_problem_destroy(struct tc_problem* p) {
    for (int i = 0; i < p->n; i++) free(p->b[i].host);
    p->n = 0;
}

int tc_problem_create(struct tc_problem* p, const struct tc_op* op, const struct tc_case* c, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->op = op;
    p->c = c;
    p->seed = seed;
    struct tc_rng rng;
    tc_rng_seed(&rng, seed);
    p->rng_seed = tc_rng_u64(&rng);
    p->rng_offset = c->off;
    const bool neutral = (c->flags & TC_YARN_NEUTRAL) != 0;
    p->rope[0] = c->f;
    p->rope[1] = neutral ? 1.0f : 0.03125f;
    p->rope[2] = neutral ? 0.0f : tc_f32_from_bits(TC_YARN_OFFSET_BITS);
    p->rope[3] = neutral ? 0.0f : tc_f32_from_bits(TC_YARN_SCALE_BITS);
    p->rope[4] = neutral ? 1.0f : tc_f32_from_bits(TC_YARN_MULT_BITS);
    op->make(p, &rng);
    for (int i = 0; i < p->n; i++) {
        if (p->b[i].host == NULL) {
            tc_problem_destroy(p);
            return -1;
        }
    }
    return 0;
}

uint32_t tc_num_draws(const struct tc_case* c) { return c->draws > 1 ? c->draws : 1; }

void tc_problem_draw(struct tc_problem* p, uint32_t d) {
    p->draw = d;
    if (p->op->draw != NULL) p->op->draw(p, d);
}

enum gptoss_status tc_launch(gptoss_backend_t backend, const struct tc_problem* p, void* const dev[]) {
    union gptoss_kernel_args args;
    memset(&args, 0, sizeof args);
    p->op->args(p, dev, &args);
    return gptoss_kernel_run(backend, p->op->kernel, &args);
}

void tc_shape_rows(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "T=%u C=%u R=%u", c->t, c->c, c->r);
}

double tc_bytes(const struct tc_op* op, const struct tc_case* c) { return op->bytes(c); }

double tc_flops(const struct tc_op* op, const struct tc_case* c) { return op->flops != NULL ? op->flops(c) : 0.0; }

void tc_shape_string(const struct tc_op* op, const struct tc_case* c, char* buf, size_t size) {
    op->shape(c, buf, size);
}

/* ------------------------------------------------------------------------------------
 * Expectations
 * ---------------------------------------------------------------------------------- */

struct tc_span* tc_add_span(struct tc_expect* ex, int buf, size_t start, size_t n, bool exact, size_t elem_size,
                            const char* fmt, ...) {
    if (ex->nspans == ex->cap) {
        ex->cap = ex->cap ? 2 * ex->cap : 16;
        ex->spans = realloc(ex->spans, ex->cap * sizeof *ex->spans);
        if (ex->spans == NULL) exit(2);
    }
    struct tc_span* s = calloc(1, sizeof *s);
    if (s == NULL) exit(2);
    ex->spans[ex->nspans++] = s;
    s->buf = buf;
    s->start = start;
    s->n = n;
    if (exact) {
        s->exact = tc_xmalloc(n * elem_size);
    } else {
        s->ref = tc_xmalloc(n * sizeof(double));
        s->tol = tc_xmalloc(n * sizeof(double));
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->label, sizeof s->label, fmt, ap);
    va_end(ap);
    return s;
}

void tc_expect_free(struct tc_expect* ex) {
    for (size_t i = 0; i < ex->nspans; i++) {
        free(ex->spans[i]->ref);
        free(ex->spans[i]->tol);
        free(ex->spans[i]->exact);
        free(ex->spans[i]);
    }
    free(ex->spans);
    free(ex->tokens);
    memset(ex, 0, sizeof *ex);
}

void tc_pick_tokens(struct tc_expect* ex, uint32_t total, uint32_t check, uint64_t seed) {
    uint32_t n = (check == 0 || check >= total) ? total : check;
    ex->tokens = tc_xmalloc(n * sizeof *ex->tokens);
    ex->ntokens = n;
    if (n == total) {
        for (uint32_t i = 0; i < n; i++) ex->tokens[i] = i;
        return;
    }
    bool* taken = calloc(total, 1);
    struct tc_rng rng;
    tc_rng_seed(&rng, seed ^ 0x70C3E45ull);
    uint32_t m = 0;
    taken[0] = true;
    ex->tokens[m++] = 0;
    if (n > 1) {
        taken[total - 1] = true;
        ex->tokens[m++] = total - 1;
    }
    while (m < n) {
        const uint32_t t = (uint32_t) (tc_rng_u64(&rng) % total);
        if (!taken[t]) {
            taken[t] = true;
            ex->tokens[m++] = t;
        }
    }
    m = 0;
    for (uint32_t t = 0; t < total; t++) {
        if (taken[t]) ex->tokens[m++] = t;
    }
    free(taken);
}

void tc_expect_build(const struct tc_problem* p, struct tc_expect* ex) {
    memset(ex, 0, sizeof *ex);
    if (p->op->expect != NULL) p->op->expect(p, ex);
}

/* ------------------------------------------------------------------------------------
 * Tolerance terms
 * ---------------------------------------------------------------------------------- */

float* tc_abs_f32(const float* x, size_t n) {
    float* a = tc_xmalloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = fabsf(x[i]);
    return a;
}

/* The same as the reference matmul of |x| and |w|, without a |w| copy of 1 GB weights. */
void tc_abs_dot_rows(const float* x, const gptoss_bf16* w, uint32_t R, uint32_t C, double* out) {
    double* xa = tc_xmalloc(C * sizeof *xa);
    for (uint32_t c = 0; c < C; c++) xa[c] = fabs((double) x[c]);
    for (uint32_t r = 0; r < R; r++) {
        const gptoss_bf16* row = w + (size_t) r * C;
        double acc = 0.0;
        for (uint32_t c = 0; c < C; c++) acc += xa[c] * (double) gptoss_bf16_to_f32(row[c].bits & 0x7FFF);
        out[r] = acc;
    }
    free(xa);
}

double tc_matmul_tol(double K, double sum_abs, double bias_abs, double old_abs, double ref) {
    return 8.0 * sqrt(K) * TC_EPS32 * sum_abs + 4.0 * TC_EPS32 * (bias_abs + old_abs) + 2.0 * TC_EPS32 * fabs(ref) +
           TC_TINY;
}

double tc_rmsnorm_tol(uint32_t C, double ref) {
    return (4.0 * sqrt((double) C) + 4.0) * TC_EPS32 * fabs(ref) + TC_TINY;
}

/* ------------------------------------------------------------------------------------
 * Checking the outputs of a call
 * ---------------------------------------------------------------------------------- */

void tc_failf(struct tc_result* res, const char* fmt, ...) {
    if (res->fail) return; /* keep the first failure */
    res->fail = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof res->msg, fmt, ap);
    va_end(ap);
}

void tc_note_error(struct tc_result* res, double err, double tol) {
    if (res->n_tol++ == 0 || err > res->max_err) {
        res->max_err = err;
        res->tol_at_max = tol;
    }
    if (tol > 0 && err / tol > res->max_ratio) res->max_ratio = err / tol;
}

static bool is_nan_f32(const void* p, size_t i) {
    uint32_t u;
    memcpy(&u, (const uint8_t*) p + 4 * i, 4);
    return (u & 0x7FFFFFFFu) > 0x7F800000u;
}

/* |out - ref| <= tol(element); a NaN or inf only where the reference has one. */
static void compare_span(const struct tc_problem* p, const struct tc_span* s, void* const outs[],
                         struct tc_result* res) {
    const struct tc_buffer* b = &p->b[s->buf];
    const uint8_t* out = outs[s->buf];
    size_t nbad = 0, first = 0;
    double first_got = 0, first_want = 0, first_tol = 0;
    if (s->exact != NULL) {
        const size_t es = elem_size(b->elem);
        for (size_t i = 0; i < s->n; i++) {
            const uint8_t* o = out + (s->start + i) * es;
            const uint8_t* e = (const uint8_t*) s->exact + i * es;
            bool ok = memcmp(o, e, es) == 0;
            if (!ok && b->elem == TC_F32) ok = is_nan_f32(o, 0) && is_nan_f32(e, 0);
            if (!ok && b->elem == TC_BF16) {
                uint16_t uo, ue;
                memcpy(&uo, o, 2);
                memcpy(&ue, e, 2);
                ok = (uo & 0x7FFF) > 0x7F80 && (ue & 0x7FFF) > 0x7F80;
            }
            if (!ok && nbad++ == 0) first = i;
        }
        res->n_exact += s->n;
        if (nbad) {
            uint32_t go = 0, we = 0;
            memcpy(&go, out + (s->start + first) * es, es);
            memcpy(&we, (const uint8_t*) s->exact + first * es, es);
            tc_failf(res, "%s[%zu] (%s +%zu): got 0x%08" PRIx32 " want 0x%08" PRIx32 " (exact; %zu of %zu differ)",
                     b->name, s->start + first, s->label, first, go, we, nbad, s->n);
        }
        return;
    }
    const float* of = (const float*) out;
    for (size_t i = 0; i < s->n; i++) {
        const double o = of[s->start + i], r = s->ref[i], t = s->tol[i];
        bool ok;
        if (isnan(r)) {
            ok = isnan(o);
        } else if (isinf(r)) {
            ok = o == r;
        } else if (!isfinite(o)) {
            ok = false;
        } else {
            const double err = fabs(o - r);
            ok = err <= t;
            tc_note_error(res, err, t);
        }
        if (!ok && nbad++ == 0) {
            first = i;
            first_got = o;
            first_want = r;
            first_tol = t;
        }
    }
    if (nbad) {
        tc_failf(res, "%s[%zu] (%s +%zu): got %.9g want %.9g err %.3g > tol %.3g (%zu of %zu outside)", b->name,
                 s->start + first, s->label, first, first_got, first_want, fabs(first_got - first_want), first_tol,
                 nbad, s->n);
    }
}

void tc_check(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    for (size_t i = 0; i < ex->nspans; i++) {
        if (outs[ex->spans[i]->buf] != NULL) compare_span(p, ex->spans[i], outs, res);
    }
    /* a case that compares nothing cannot fail: that is a defect of the case */
    if (ex->nspans == 0 && p->op->verify == NULL) tc_failf(res, "nothing was compared with the reference");
    /* outputs outside the compared spans: no NaN (the 0xFF poison) and no 0xFFFFFFFF id
     * may be left */
    for (int i = 0; i < p->n; i++) {
        const struct tc_buffer* b = &p->b[i];
        if (outs[i] == NULL || b->role == TC_IN) continue;
        if (b->elem == TC_F32 && !b->nan_ok) {
            for (size_t j = 0; j < b->size / 4; j++) {
                if (is_nan_f32(outs[i], j)) {
                    tc_failf(res, "%s[%zu] is NaN (not written?)", b->name, j);
                    break;
                }
            }
        }
        if (b->elem == TC_U32 && b->role == TC_OUT) {
            const uint32_t* u = outs[i];
            for (size_t j = 0; j < b->size / 4; j++) {
                if (u[j] == 0xFFFFFFFFu) {
                    tc_failf(res, "%s[%zu] still holds the 0xFFFFFFFF poison (not written?)", b->name, j);
                    break;
                }
            }
        }
    }
    if (!res->fail && p->op->verify != NULL) p->op->verify(p, ex, outs, res);
}

bool tc_parse_row_order(const char* name, enum gptoss_row_order* order) {
    if (strcmp(name, "auto") == 0) {
        *order = gptoss_row_order_auto;
    } else if (strcmp(name, "one") == 0) {
        *order = gptoss_row_order_one;
    } else if (strcmp(name, "many") == 0) {
        *order = gptoss_row_order_many;
    } else {
        return false;
    }
    return true;
}
