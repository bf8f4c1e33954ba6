/* The test modules for the Python tests: python/tests/testops.py loads this library
 * (build/tests/libgptoss_pytestops.so) with ctypes, so that the Python ops are tested on
 * the cases, inputs, reference and tolerances of the C harness, typed once in
 * tests/ops/<family>.c. It lists the kernels (with their parameters) and the cases, makes
 * a case's inputs, says what each argument of its call is (a place in one of its buffers,
 * or a number), and checks the outputs of a call the Python package made (tc_check).
 * Nothing here runs a kernel. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#define EXPORT __attribute__((visibility("default")))

#define MAX_PARAMS 24

struct param {
    const char* name;
    const char* type; /* as the kernel list spells it: "const float*", "uint32_t", ... */
    size_t offset;    /* in the kernel's arguments struct */
};

/* The parameters of every kernel, from the kernel list. */
static struct param params[gptoss_kernel_count][MAX_PARAMS];
static int num_params[gptoss_kernel_count];

#define PARAM(type, name) out[n++] = (struct param){#name, #type, offsetof(args_t, name)};
#define KERNEL_PARAMS(kernel, family)                                       \
    {                                                                       \
        typedef struct gptoss_##kernel##_args args_t;                       \
        struct param* out = params[gptoss_kernel_##kernel];                 \
        int n = 0;                                                          \
        GPTOSS_ARGS_##kernel(PARAM) num_params[gptoss_kernel_##kernel] = n; \
    }

static void init_params(void) {
    if (num_params[0] != 0) return;
    GPTOSS_KERNEL_LIST(KERNEL_PARAMS, KERNEL_PARAMS)
}

EXPORT int tcpy_num_kernels(void) { return gptoss_kernel_count; }
EXPORT const char* tcpy_kernel_name(int k) { return gptoss_kernel_get_name((enum gptoss_kernel) k); }
EXPORT int tcpy_num_params(int k) {
    init_params();
    return num_params[k];
}
EXPORT const char* tcpy_param_name(int k, int j) {
    init_params();
    return params[k][j].name;
}

EXPORT size_t tcpy_num_cases(void) { return tc_num_cases(); }
static const struct tc_case* case_at(size_t i, const struct tc_op** op) { return tc_case_at(i, op); }
EXPORT const char* tcpy_case_name(size_t i) {
    const struct tc_op* op;
    return case_at(i, &op)->name;
}
EXPORT int tcpy_case_kernel(size_t i) {
    const struct tc_op* op;
    case_at(i, &op);
    return (int) op->kernel;
}
EXPORT unsigned tcpy_case_flags(size_t i) {
    const struct tc_op* op;
    return case_at(i, &op)->flags;
}
EXPORT unsigned tcpy_case_draws(size_t i) {
    const struct tc_op* op;
    return tc_num_draws(case_at(i, &op));
}

/* A case being run: its problem and expectations. */
struct tcpy_case {
    struct tc_problem p;
    struct tc_expect ex;
};

EXPORT struct tcpy_case* tcpy_create(size_t i, uint64_t seed) {
    const struct tc_op* op;
    const struct tc_case* c = case_at(i, &op);
    struct tcpy_case* h = calloc(1, sizeof *h);
    if (h == NULL) return NULL;
    if (tc_problem_create(&h->p, op, c, seed ^ tc_hash_string(c->name)) != 0) {
        free(h);
        return NULL;
    }
    tc_expect_build(&h->p, &h->ex);
    return h;
}

EXPORT void tcpy_destroy(struct tcpy_case* h) {
    if (h == NULL) return;
    tc_expect_free(&h->ex);
    tc_problem_destroy(&h->p);
    free(h);
}

EXPORT int tcpy_num_buffers(const struct tcpy_case* h) { return h->p.n; }
EXPORT const char* tcpy_buffer_name(const struct tcpy_case* h, int b) { return h->p.b[b].name; }
/* enum tc_role: 0 in, 1 out, 2 in/out; enum tc_elem: 0 f32, 1 u32, 2 bf16, 3 u8 */
EXPORT int tcpy_buffer_role(const struct tcpy_case* h, int b) { return (int) h->p.b[b].role; }
EXPORT int tcpy_buffer_elem(const struct tcpy_case* h, int b) { return (int) h->p.b[b].elem; }
EXPORT size_t tcpy_buffer_size(const struct tcpy_case* h, int b) { return h->p.b[b].size; }
EXPORT void* tcpy_buffer_host(const struct tcpy_case* h, int b) { return h->p.b[b].host; }

/* Prepares draw d (draw-based cases: sample, the seed README's SDPA example). */
EXPORT void tcpy_draw(struct tcpy_case* h, unsigned d) { tc_problem_draw(&h->p, d); }

/* Argument j of the call: a pointer (returns 0; *buffer and *offset in bytes, *buffer -1
 * for NULL), an integer (1; *u) or a float (2; *f). */
EXPORT int tcpy_arg(const struct tcpy_case* h, int j, int* buffer, uint64_t* offset, uint64_t* u, double* f) {
    init_params();
    void* host[TC_MAX_BUFFERS];
    for (int i = 0; i < h->p.n; i++) host[i] = h->p.b[i].host;
    union gptoss_kernel_args args;
    memset(&args, 0, sizeof args);
    h->p.op->args(&h->p, host, &args);
    const struct param* prm = &params[h->p.op->kernel][j];
    const char* field = (const char*) &args + prm->offset;
    if (strchr(prm->type, '*') != NULL) {
        const uint8_t* ptr;
        memcpy(&ptr, field, sizeof ptr);
        *buffer = -1;
        *offset = 0;
        for (int i = 0; i < h->p.n && ptr != NULL; i++) {
            const uint8_t* base = h->p.b[i].host;
            if (ptr >= base && ptr < base + h->p.b[i].size) {
                *buffer = i;
                *offset = (uint64_t) (ptr - base);
            }
        }
        return 0;
    }
    if (strcmp(prm->type, "float") == 0) {
        float v;
        memcpy(&v, field, sizeof v);
        *f = v;
        return 2;
    }
    if (strcmp(prm->type, "uint32_t") == 0) {
        uint32_t v;
        memcpy(&v, field, sizeof v);
        *u = v;
    } else if (strcmp(prm->type, "size_t") == 0) {
        size_t v;
        memcpy(&v, field, sizeof v);
        *u = v;
    } else {
        memcpy(u, field, sizeof *u); /* uint64_t */
    }
    return 1;
}

/* outs[i]: the bytes of buffer i after the call (NULL for inputs). Returns 1 when they
 * pass the case's checks, else 0 with the first failure in msg. */
EXPORT int tcpy_check(struct tcpy_case* h, void* const* outs, char* msg, size_t size) {
    struct tc_result res;
    memset(&res, 0, sizeof res);
    tc_check(&h->p, &h->ex, (void* const*) outs, &res);
    snprintf(msg, size, "%s", res.fail ? res.msg : "");
    return res.fail ? 0 : 1;
}
