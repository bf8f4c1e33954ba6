/* The op catalogue: one table of named kernel cases (kernel, shapes, parameters) shared by
 * the test harness (tests/harness.c) and the benchmark (bench/bench.c), plus the code
 * both need to turn a case into concrete buffers and to launch it on a backend.
 *
 * A case names what it hits: `matmul_odd_cols_2881`, `sdpa_20b_decode_4096_window128`.
 * Inputs are random (never zeros), generated on the host from a 64-bit seed so that a
 * failure replays: weights bf16 ~U[-1,1] (x 1/sqrt(cols) where a real model scales
 * them), MXFP4 blocks random bytes with +14-biased scales stored in 137..142 (raw
 * 123..128), routing data from the reference topk of random logits (distinct experts per
 * token). */
#ifndef GPTOSS_TESTS_CATALOGUE_H
#define GPTOSS_TESTS_CATALOGUE_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernels.h>

enum tc_kernel {
    TK_U32_FILL_RANDOM,
    TK_F32_FILL_RANDOM,
    TK_BF16_FILL_RANDOM,
    TK_MF4_F32_CONVERT,
    TK_EMBEDDINGS,
    TK_RMSNORM,
    TK_MATMUL,
    TK_MATMUL_ADD,
    TK_DENSE_MATMUL_QKV,
    TK_DENSE_MATMUL_ATTN_OUTPUT,
    TK_DENSE_MATMUL_MLP_GATE,
    TK_MATMUL_QKV,
    TK_ROPE,
    TK_SDPA,
    TK_UNEMBEDDING,
    TK_TOPK,
    TK_ROUTING_METADATA,
    TK_SCATTER,
    TK_MOE_MATMUL_SWIGLU,
    TK_MOE_MATMUL,
    TK_MOE_DENSE_MATMUL_SWIGLU,
    TK_MOE_DENSE_MATMUL,
    TK_GATHER_AND_ACCUMULATE,
    TK_ACCUMULATE,
    TK_SOFTMAX,
    TK_SAMPLE,
    TK_ACCUMULATE_RMSNORM, /* fusion: accumulate, then rmsnorm of the residual */
    TK_RMSNORM_MATMUL_TOPK, /* fusion: the MoE gate (rmsnorm, router matmul, top-k) */
    TK_COUNT
};

/* Case flags. */
enum {
    TC_QUICK = 1u << 0,        /* part of the --quick catalogue (sanitizer runs) */
    TC_BENCH = 1u << 1,        /* a row of bench/bench.c */
    TC_NO_BIAS = 1u << 2,      /* bias pointer NULL (matmul family, sdpa: no sinks) */
    TC_YARN_NEUTRAL = 1u << 3, /* plain RoPE (interp 1, offset 0, scale 0, mult 1) */
    TC_TIES = 1u << 4,         /* inputs with exact ties (topk, unembedding argmax) */
    TC_INPLACE = 1u << 5,      /* rmsnorm output == input */
    TC_SEED_README = 1u << 6,  /* the seed README's SDPA example, repeated with fresh draws */
    TC_ALL_SCALES = 1u << 7,   /* mf4 convert: every raw scale 0..255 (inf/NaN included) */
    TC_SPARSE = 1u << 8,       /* sample: half of the probabilities are exactly 0 */
    TC_BENCH_ONLY = 1u << 9,   /* only a bench row; the harness leaves it out */
    TC_TINY_SCALES = 1u << 10, /* moe: scale bytes 0..9 (weights 2^-142 .. 6*2^-132, f32
                                * subnormals), activations near 2^118, bias ~ +-2^-12 */
};

/* Field meaning per kernel (0 = unused):
 *   fill:        t = elements, off = counter offset, f/f2 = min/max (f32/bf16)
 *   convert:     t = elements (multiple of 32)
 *   embeddings:  t = tokens, c = channels, r = vocabulary
 *   rmsnorm:     t x c, f = epsilon
 *   matmul*:     t = tokens, c = num_cols (K), r = num_rows (N)
 *   qkv / rope:  t = tokens, c = num_cols, hq/hkv/d heads, off = token_offset,
 *                maxt = max_tokens, f = rope_base
 *   sdpa:        t = query tokens, off = num_kv_tokens, hq/hkv/d, window, maxt = cache
 *                capacity in tokens (0: off + t), f = scale
 *   unembedding: t = tokens, c = num_cols, r = vocabulary rows
 *   topk:        t = tokens, e = experts, k = active
 *   routing:     t = tokens (pairs = t*k), e, k
 *   scatter / gather / accumulate: t = tokens, c = channels, e, k
 *   accumulate_rmsnorm: t, c, e, k as accumulate; f = epsilon
 *   rmsnorm_matmul_topk: t = tokens, c = channels, e = experts (router rows), k, f = epsilon
 *   moe:         t = tokens (dense: P = t*k rows), c = num_cols, r = num_rows (I for
 *                swiglu: the expert has 2r rows), e, k, f = swiglu limit
 *   softmax:     t = tokens, c = vocabulary, f = temperature
 *   sample:      c = channels, t = number of draws (rng offsets), f = unused
 * check: 0 = every token (row) is compared with the reference; N = N random tokens
 * (always the first and the last) are compared, the rest is only scanned for NaN and
 * guard damage. */
struct tc_case {
    const char* name;
    enum tc_kernel kernel;
    uint32_t t, c, r;
    uint32_t hq, hkv, d;
    uint32_t e, k;
    uint64_t off;
    uint32_t maxt;
    uint32_t window;
    float f, f2;
    uint32_t check;
    uint32_t flags;
};

extern const struct tc_case tc_catalogue[];
extern const size_t tc_catalogue_size;

const char* tc_kernel_name(enum tc_kernel kernel);

/* ---- buffers of one problem instance ---- */

enum tc_role { TC_IN = 0, TC_OUT = 1, TC_INOUT = 2 };
enum tc_elem { TC_F32 = 0, TC_U32 = 1, TC_BF16 = 2, TC_U8 = 3 };

#define TC_MAX_BUFFERS 8

struct tc_buffer {
    const char* name;
    enum tc_role role;
    enum tc_elem elem;
    size_t size;       /* bytes */
    void* host;        /* inputs; for TC_INOUT the old value */
};

struct tc_problem {
    const struct tc_case* c;
    struct tc_buffer b[TC_MAX_BUFFERS];
    int n;
    /* derived launch parameters */
    uint64_t rng_seed;      /* fill kernels, sample */
    uint64_t rng_offset;    /* fill kernels, sample (the harness may change it per draw) */
    size_t expert_stride;   /* moe: bytes per expert (blocks, scales, bias interleaved) */
    size_t scales_off;      /* moe: byte offset of the scales inside an expert */
    size_t bias_off;        /* moe: byte offset of the bias inside an expert */
    uint64_t kv_stride;     /* sdpa: floats per kv head */
    float rope[5];          /* base, interpolation_scale, yarn_offset, yarn_scale, multiplier */
};

/* Builds the host buffers of case c with inputs drawn from `seed`. Returns 0 on success,
 * -1 when out of memory (everything freed). */
int tc_problem_create(struct tc_problem* p, const struct tc_case* c, uint64_t seed);
void tc_problem_destroy(struct tc_problem* p);

/* Index of the buffer named `name`, or -1. */
int tc_buffer_index(const struct tc_problem* p, const char* name);

/* Calls the kernel of p->c on backend with dev[i] standing for p->b[i]. */
enum gptoss_status tc_launch(gptoss_backend_t backend, const struct tc_problem* p, void* const dev[]);

/* Bytes a kernel call must move at least (weights read once + activations in/out) and its
 * useful floating-point operations (0 for data movement kernels). */
double tc_bytes(const struct tc_case* c);
double tc_flops(const struct tc_case* c);

/* A shape string for tables ("T=1 C=2880 R=5120"). */
void tc_shape_string(const struct tc_case* c, char* buf, size_t size);

/* Small deterministic RNG (xoshiro256**) used for every input. */
struct tc_rng {
    uint64_t s[4];
};
void tc_rng_seed(struct tc_rng* rng, uint64_t seed);
uint64_t tc_rng_u64(struct tc_rng* rng);
double tc_rng_uniform(struct tc_rng* rng); /* [0, 1) */
double tc_rng_normal(struct tc_rng* rng);
uint64_t tc_hash_string(const char* s);

/* gpt-oss RoPE constants (KERNELS.md 1.7), from their f32 bit patterns. */
float tc_f32_from_bits(uint32_t bits);
#define TC_YARN_OFFSET_BITS 0xBF5EA4B6u
#define TC_YARN_SCALE_BITS 0x3DDC1746u
#define TC_YARN_MULT_BITS 0x3FAC5C86u

/* Bit pattern of the KV-cache slots matmul_qkv must not touch (a quiet NaN). */
#define TC_KV_POISON 0x7FC0DEADu

#endif /* GPTOSS_TESTS_CATALOGUE_H */
