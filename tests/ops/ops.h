/* The test modules: everything the tests and benchmarks know about a kernel, in one place
 * per kernel family (tests/ops/<family>.c): its cases (shapes, parameters), how to make
 * its inputs, its call, its expected outputs (the float64 reference with a tolerance per
 * element and the reason for it), the bytes and FLOPs of a call and a shape string.
 * tests/harness.c, tests/test_fused.c, tests/test_alloc.c, bench/bench.c,
 * tools/cuda_bench.c and the Python tests (through tests/ops/python.c) all use it.
 *
 * The registry tc_ops[] has one entry per kernel of the kernel list (kernel-list.h): a
 * kernel without a module does not link.
 *
 * A case names what it hits: `matmul_odd_cols_2881`, `sdpa_20b_decode_4096_window128`.
 * Inputs are random (never zeros), generated on the host from a 64-bit seed so that a
 * failure replays: weights bf16 ~U[-1,1] (x 1/sqrt(cols) where a real model scales
 * them), MXFP4 blocks random bytes with +14-biased scales stored in 137..142 (raw
 * 123..128), routing data from the reference topk of random logits (distinct experts per
 * token).
 *
 * TOLERANCE MODEL (eps = 2^-23, the f32 machine epsilon). Reductions of K terms in f32,
 * in any order (sequential, blocked, tree): error <= 8 sqrt(K) eps sum|terms|. sqrt(K) is
 * the statistical growth of K independent roundings (each <= eps/2 of a partial sum
 * bounded by sum|terms|); the factor 8 covers the ~sqrt(3)x spread and the tail of max
 * over millions of outputs. (The deterministic worst case K eps/2 sum|terms| is only
 * reached by adversarial data.) sum|terms| comes from the reference itself, run a second
 * time on |inputs| (|x|, |w|, |V|, ...), so the bound scales with each output's
 * magnitude instead of using one atol for every shape. Each module states how its
 * kernels' tolerances follow from this; exact kernels compare bits (any NaN equals any
 * NaN). */
#ifndef GPTOSS_TESTS_OPS_H
#define GPTOSS_TESTS_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernel-args.h>
#include <gptoss/kernels.h>

#include "common/math.h"

struct tc_rng;

#define TC_EPS32 1.1920928955078125e-07 /* 2^-23 */
#define TC_TINY 1e-30                   /* absolute floor of a tolerance: only for exact zeros */

/* ------------------------------------------------------------------------------------
 * Cases
 * ---------------------------------------------------------------------------------- */

/* Case flags. */
enum {
    TC_QUICK = 1u << 0,        /* part of the --quick catalogue (sanitizer runs, the Python tests) */
    TC_BENCH = 1u << 1,        /* a row of the benchmarks (bench/bench.c, tools/cuda_bench.c) */
    TC_NO_BIAS = 1u << 2,      /* bias pointer NULL (matmul family, sdpa: no sinks) */
    TC_YARN_NEUTRAL = 1u << 3, /* plain RoPE (interp 1, offset 0, scale 0, mult 1) */
    TC_TIES = 1u << 4,         /* inputs with exact ties (topk, unembedding argmax, sample_logits) */
    TC_INPLACE = 1u << 5,      /* rmsnorm, apply_penalties: output == input */
    TC_SEED_README = 1u << 6,  /* the seed README's SDPA example, repeated with fresh draws */
    TC_ALL_SCALES = 1u << 7,   /* mf4 convert: every raw scale 0..255 (inf/NaN included) */
    TC_SPARSE = 1u << 8,       /* sample: half of the probabilities are exactly 0; penalties,
                                * sample_logits: -inf and NaN logits */
    TC_BENCH_ONLY = 1u << 9,   /* only a benchmark row; the tests leave it out */
    TC_TINY_SCALES = 1u << 10, /* moe: scale bytes 0..9 (weights 2^-142 .. 6*2^-132, f32
                                * subnormals), activations near 2^118, bias ~ +-2^-12 */
    TC_BENCH_CUDA = 1u << 11,  /* a row of the CUDA benchmarks only (too slow for the CPU bench) */
    TC_FAULT = 1u << 12,       /* inputs the kernel must refuse (tests/harness.c): the call, or on a
                                * device backend the synchronize after it, fails; the harness keeps
                                * the failure in p->fault. Refused by the call: every output must be
                                * untouched, then the module's verify runs (the message). Reported
                                * by the synchronize: tc_check (the spans of the rows that must still
                                * be right, then verify: the status, the message, the NaN rows). */
    TC_IN_ORDER = 1u << 13,    /* sdpa varlen: each sequence's rows consecutive, in position
                                * order (a batch step's layout), instead of shuffled */
    TC_POSITIVE_V = 1u << 14,  /* sdpa: V drawn from [0.5, 1] instead of [-1, 1]: no cancellation in
                                * P V, so the tolerance (relative to sum p |V|) is relative to the
                                * output itself and a biased accumulation shows */
    TC_STRIDE8 = 1u << 15,     /* moe: expert stride 8 bytes past a multiple of 64 (8- but not
                                * 16-byte aligned experts: CUDA's kernels without cp.async) */
    TC_SKEWED = 1u << 16,      /* moe dense: every expert but the first holds one row, the first
                                * the rest (CUDA picks its row tile by the average: an expert of
                                * several tiles where the average asks for small ones) */
};

/* Shapes and parameters of a case; each module says what the fields mean for its
 * kernels (0 = unused). check: 0 = every token (row) is compared with the reference;
 * N = N random tokens (always the first and the last) are compared, the rest is only
 * scanned for NaN and guard damage. draws: calls of a draw-based case (sample, the seed
 * README example); 0 = one call. */
struct tc_case {
    const char* name;
    uint32_t t, c, r;
    uint32_t hq, hkv, d;
    uint32_t e, k;
    uint64_t off;
    uint32_t maxt;
    uint32_t window;
    float f, f2;
    uint32_t check;
    uint32_t flags;
    uint32_t draws;
};

/* ------------------------------------------------------------------------------------
 * Problems: the host buffers of one case
 * ---------------------------------------------------------------------------------- */

enum tc_role { TC_IN = 0, TC_OUT = 1, TC_INOUT = 2 };
enum tc_elem { TC_F32 = 0, TC_U32 = 1, TC_BF16 = 2, TC_U8 = 3 };

#define TC_MAX_BUFFERS 8

struct tc_buffer {
    const char* name;
    enum tc_role role;
    enum tc_elem elem;
    bool nan_ok; /* an output that may hold NaN (not scanned for the NaN poison) */
    size_t size; /* bytes */
    void* host;  /* inputs; for TC_INOUT the old value */
};

struct tc_op;

struct tc_problem {
    const struct tc_op* op;
    const struct tc_case* c;
    struct tc_buffer b[TC_MAX_BUFFERS];
    int n;
    uint64_t seed;      /* of the inputs (a draw re-makes its inputs from it) */
    uint32_t draw;      /* index of the current draw (draw-based cases) */
    uint64_t memory[2]; /* a draw-based case's state across draws */
    /* derived launch parameters */
    uint64_t rng_seed;    /* fill kernels, sample */
    uint64_t rng_offset;  /* fill kernels, sample (per draw) */
    size_t expert_stride; /* moe: bytes per expert (blocks, scales, bias interleaved) */
    size_t scales_off;    /* moe: byte offset of the scales inside an expert */
    size_t bias_off;      /* moe: byte offset of the bias inside an expert */
    uint64_t kv_stride;   /* sdpa: floats per kv head */
    float rope[5];        /* base, interpolation_scale, yarn_offset, yarn_scale, multiplier */
    struct {              /* TC_FAULT cases: how the call under test failed */
        int status;       /* enum gptoss_status of the call, else of the synchronize after it */
        bool at_sync;     /* the call returned success (the error, if any, came from the synchronize) */
        char message[384];
    } fault;
};

/* ------------------------------------------------------------------------------------
 * Expectations: spans of an output buffer with reference values and tolerances (or
 * exact values)
 * ---------------------------------------------------------------------------------- */

struct tc_span {
    int buf;
    size_t start, n;
    double* ref; /* n values (tolerance spans) */
    double* tol; /* n values */
    void* exact; /* n elements of the buffer's type (exact spans) */
    char label[48];
};

struct tc_expect {
    struct tc_span** spans; /* each span allocated on its own: pointers stay valid */
    size_t nspans, cap;
    uint32_t* tokens; /* tokens (rows) compared with the reference */
    uint32_t ntokens;
};

/* The verdict of one call (or of all draws of a case). */
struct tc_result {
    bool fail;
    char msg[512];
    double max_err;    /* max |out - ref| over the elements compared with a tolerance */
    double tol_at_max; /* the tolerance of the element where max_err is */
    double max_ratio;  /* max |out - ref| / tol over them */
    uint64_t n_tol;    /* elements compared with a tolerance (tc_note_error) */
    uint64_t n_exact;  /* elements compared bit for bit */
    double time_s;     /* one call (per draw for draw-based cases), including synchronize */
};

/* ------------------------------------------------------------------------------------
 * A kernel's test module
 * ---------------------------------------------------------------------------------- */

struct tc_op {
    enum gptoss_kernel kernel;
    const struct tc_case* cases;
    size_t num_cases;
    /* Adds the buffers of the problem (tc_add_buffer) and makes its inputs from rng. */
    void (*make)(struct tc_problem* p, struct tc_rng* rng);
    /* The kernel's arguments, dev[i] standing for buffer i. */
    void (*args)(const struct tc_problem* p, void* const dev[], union gptoss_kernel_args* out);
    /* Reference values and tolerances of the outputs (tc_add_span), from the host
     * buffers; NULL for draw-based kernels, which `verify` every draw. */
    void (*expect)(const struct tc_problem* p, struct tc_expect* ex);
    /* Optional: checks beyond the spans, on the outputs (outs[i] NULL for inputs). */
    void (*verify)(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res);
    /* Optional, draw-based cases: before draw d, changes the inputs (host buffers) or
     * launch parameters of p. */
    void (*draw)(struct tc_problem* p, uint32_t d);
    /* Bytes a call must move at least (weights read once + activations in/out), its
     * useful floating-point operations (NULL: data movement only) and a shape string for
     * tables ("T=1 C=2880 R=5120"). */
    double (*bytes)(const struct tc_case* c);
    double (*flops)(const struct tc_case* c);
    void (*shape)(const struct tc_case* c, char* buf, size_t size);
    /* Fusions: runs the kernels the fusion fuses, in sequence, through the public named
     * functions (what the fused call must equal bit for bit; tests/test_fused.c). */
    enum gptoss_status (*unfused)(gptoss_backend_t backend, const union gptoss_kernel_args* args);
    /* Optional: why case c does not apply in row order `order` (the harness reports it as
     * skipped with this reason), or NULL when it applies. */
    const char* (*skip)(const struct tc_case* c, enum gptoss_row_order order);
};

/* .cases and .num_cases of a tc_op from a static array */
#define TC_CASES(array) .cases = (array), .num_cases = sizeof(array) / sizeof((array)[0])

/* The registry: tc_ops[k] is the module entry of kernel k. */
extern const struct tc_op* const tc_ops[gptoss_kernel_count];

/* Whether every kernel of the list has test cases and a benchmark row in its module (and
 * `unfused` exactly when it is a fusion); the verdict, naming the first kernel at fault,
 * in msg. */
bool tc_registry_check(char* msg, size_t size);

/* Every case of every kernel, in list order: case i of the whole catalogue. */
size_t tc_num_cases(void);
const struct tc_case* tc_case_at(size_t index, const struct tc_op** op_out);

/* ------------------------------------------------------------------------------------
 * Running a case (shared by every user)
 * ---------------------------------------------------------------------------------- */

/* Builds the host buffers of case c of op with inputs drawn from `seed`. Returns 0 on
 * success, -1 when out of memory (everything freed). */
int tc_problem_create(struct tc_problem* p, const struct tc_op* op, const struct tc_case* c, uint64_t seed);
void tc_problem_destroy(struct tc_problem* p);
/* Draws of a case: at least 1. tc_problem_draw prepares draw d (inputs, parameters). */
uint32_t tc_num_draws(const struct tc_case* c);
void tc_problem_draw(struct tc_problem* p, uint32_t d);

/* Calls the kernel of p on backend with dev[i] standing for p->b[i]. */
enum gptoss_status tc_launch(gptoss_backend_t backend, const struct tc_problem* p, void* const dev[]);

/* Builds the expectations of p (the reference is computed once, for all backends). */
void tc_expect_build(const struct tc_problem* p, struct tc_expect* ex);
void tc_expect_free(struct tc_expect* ex);

/* Compares the outputs of one call (outs[i]: the host copy of buffer i after the call,
 * NULL for inputs) with the expectations: spans, no NaN / 0xFFFFFFFF poison left in
 * outputs, the module's own checks. The first failure is kept in res. */
void tc_check(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res);

void tc_failf(struct tc_result* res, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records one element compared with a tolerance: |out - ref| = err, allowed tol (the
 * max_err, tol_at_max, max_ratio and n_tol of res). */
void tc_note_error(struct tc_result* res, double err, double tol);

double tc_bytes(const struct tc_op* op, const struct tc_case* c);
double tc_flops(const struct tc_op* op, const struct tc_case* c);
void tc_shape_string(const struct tc_op* op, const struct tc_case* c, char* buf, size_t size);

/* "auto" | "one" | "many" -> *order (gptoss_backend_set_row_order); false for anything else */
bool tc_parse_row_order(const char* name, enum gptoss_row_order* order);
/* The "T C R" shape (tokens, columns, rows) of most kernels. */
void tc_shape_rows(const struct tc_case* c, char* buf, size_t size);
const char* tc_kernel_name(const struct tc_op* op);

/* ------------------------------------------------------------------------------------
 * For the modules: buffers, spans, inputs, tolerances
 * ---------------------------------------------------------------------------------- */

/* Adds buffer `name` of `count` elements (at least 4 bytes) and returns its host memory
 * (NULL when out of memory: tc_problem_create then fails). */
void* tc_add_buffer(struct tc_problem* p, const char* name, enum tc_role role, enum tc_elem elem, size_t count);
/* A span of `n` elements of buffer `buf` from element `start`: exact (n elements of the
 * buffer's type in ->exact) or with ->ref and ->tol. */
struct tc_span* tc_add_span(struct tc_expect* ex, int buf, size_t start, size_t n, bool exact, size_t elem_size,
                            const char* fmt, ...) __attribute__((format(printf, 7, 8)));
/* The tokens (rows) of `total` to compare: all, or c->check of them (the first, the last
 * and random others, ascending), into ex->tokens. */
void tc_pick_tokens(struct tc_expect* ex, uint32_t total, uint32_t check, uint64_t seed);

/* Small deterministic RNG (xoshiro256**) used for every input. */
struct tc_rng {
    uint64_t s[4];
};
void tc_rng_seed(struct tc_rng* rng, uint64_t seed);
uint64_t tc_rng_u64(struct tc_rng* rng);
double tc_rng_uniform(struct tc_rng* rng); /* [0, 1) */
double tc_rng_normal(struct tc_rng* rng);
uint64_t tc_hash_string(const char* s);

/* f32 uniform in [lo, hi) (24 random bits per value); bf16 uniform in [lo, hi) (16 bits,
 * rounded to nearest even); random bytes. */
void tc_fill_f32(struct tc_rng* rng, float* x, size_t n, float lo, float hi);
void tc_fill_bf16(struct tc_rng* rng, gptoss_bf16* w, size_t n, float lo, float hi);
void tc_fill_bytes(struct tc_rng* rng, uint8_t* p, size_t n);
/* Weight amplitude of a matrix with `cols` columns (1/sqrt(cols) x 2 from 64 columns on). */
float tc_weight_amplitude(uint32_t cols);
/* Routing of T tokens onto k of E experts: the reference topk of random logits (ids
 * and/or scores may be NULL). */
void tc_make_routing(struct tc_rng* rng, uint32_t T, uint32_t E, uint32_t k, uint32_t* ids, float* scores);
/* The expert-grouped offsets of such a routing (dense MoE kernels). */
void tc_make_offsets(struct tc_rng* rng, uint32_t T, uint32_t E, uint32_t k, uint32_t* offsets);

static inline double tc_bf16d(gptoss_bf16 v) { return (double) gptoss_bf16_to_f32(v.bits); }
/* |x| element-wise, a new buffer */
float* tc_abs_f32(const float* x, size_t n);
void* tc_xmalloc(size_t n);
/* out[r] = sum_c |x[c]| |w[r][c]| in double (the sum|terms| of a row of a bf16 matmul) */
void tc_abs_dot_rows(const float* x, const gptoss_bf16* w, uint32_t R, uint32_t C, double* out);
/* Tolerance of one output of a bf16 matmul of K terms: 8 sqrt(K) eps sum|x w| for the
 * reduction, 4 eps (|b| + |old|) for the bias and residual adds and 2 eps |ref| for the
 * final store (each rounds once). */
double tc_matmul_tol(double K, double sum_abs, double bias_abs, double old_abs, double ref);
/* RMSNorm tolerance of an output of a row of C channels, relative: (4 sqrt(C) + 4) eps
 * |ref| (sum of C squares -> 8 sqrt(C) eps relative, halved by the rsqrt, plus the two
 * products). */
double tc_rmsnorm_tol(uint32_t C, double ref);

/* Shared between modules. matmul.c: inputs x[T][C], w[R][C] of a bf16 matmul (TC_TIES:
 * small integers, exact on every backend). rope.c: the RoPE tolerance of the Q and K
 * heads of a qkv row at position pos, from the values and tolerances before the rotation;
 * the "T C H D pos" shape. routing.c: the accumulate inputs (input[k][T][C],
 * expert_scores, residual) and the tolerance of its residual; the "T k of E" and
 * "T C k of E" shapes. */
void tc_fill_matmul(struct tc_problem* p, struct tc_rng* rng, float* x, gptoss_bf16* w);
void tc_rope_tolerance(const struct tc_problem* p, const double* pre, const double* pre_tol, double* tol, uint32_t pos);
void tc_shape_heads(const struct tc_case* c, char* buf, size_t size);
void tc_make_accumulate(struct tc_problem* p, struct tc_rng* rng);
void tc_accumulate_tol(const struct tc_problem* p, double* tol);
void tc_shape_pairs(const struct tc_case* c, char* buf, size_t size);
void tc_shape_routing(const struct tc_case* c, char* buf, size_t size);

/* gpt-oss RoPE constants (KERNELS.md 1.7), from their f32 bit patterns. */
float tc_f32_from_bits(uint32_t bits);
#define TC_YARN_OFFSET_BITS 0xBF5EA4B6u
#define TC_YARN_SCALE_BITS 0x3DDC1746u
#define TC_YARN_MULT_BITS 0x3FAC5C86u
/* gpt-oss shapes (KERNELS.md 7.1): window 128 or full, RoPE theta 150000 with YaRN. */
#define TC_FULL UINT32_MAX
#define TC_THETA 150000.0f

/* The lines of a test program: "PASS name: detail" / "FAIL name: detail" / "SKIP name:
 * why", then tc_summary's "N passed, N failed, N skipped; skipped: names" (its return value
 * is the exit status: 1 when anything failed). */
void tc_report(const char* name, bool ok, const char* detail);
void tc_skip(const char* name, const char* why);
int tc_summary(void);

/* Each module's table entries (generated from the kernel list). */
#define TC_OP_DECL(name, family) extern const struct tc_op tc_op_##name;
GPTOSS_KERNEL_LIST(TC_OP_DECL, TC_OP_DECL)
#undef TC_OP_DECL

#endif /* GPTOSS_TESTS_OPS_H */
