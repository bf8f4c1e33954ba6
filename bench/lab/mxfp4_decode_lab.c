/* CPU lab (not a test, not the library): what bounds the AVX-512 MXFP4 one-token decode loop.
 *
 *   mxfp4_decode_lab [ROWS]      (default 23040 rows of 2880 columns: 35 MB, a 20b swiglu call)
 *
 * Part 1, issue rates: 12 independent copies of one instruction (or of two, alternated) in a
 * loop, in core cycles per instruction (the TSC rate is calibrated against 512-bit FMAs,
 * which Zen 4 and Intel cores with two FMA units run at one per cycle). Two instructions
 * that alternate at the rate of the slower one alone share its pipes; at half the sum
 * they do not.
 * Part 2, the decode loop: 4 rows x 1 vector, per block the 32 weights looked up in the
 * block's scaled f32 table, two FMAs into the row's accumulator, as src/cpu/moe.c:
 *   widen:     vpmovzxbd of the 16 bytes, vpsrld 4, two vpermps (the loop before 2026-12-05)
 *   broadcast: two 8-byte broadcast loads, two vpsrlvd, two vpermps (the loop since)
 *   read only: the same loads and prefetches, no arithmetic (the access pattern's ceiling)
 * each checked against a float64 dot product, then timed with the weights in L1/L2 (8 rows,
 * many passes) and streamed from memory (ROWS rows). One thread; run two at once to see
 * two cores share the memory. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx2,fma")))

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
}

/* ---- part 1: issue rates ----------------------------------------------------------- */

#define ISSUE_N 60000000ull
#define CLOBBER "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "memory"
#define RATE(name, body)                                                                          \
    TARGET static double name(const void* p) {                                                    \
        const uint64_t t0 = __rdtsc();                                                            \
        for (uint64_t i = 0; i < ISSUE_N / 12; i++) __asm__ volatile(body ::"r"(p) : CLOBBER);    \
        return (double) (__rdtsc() - t0) / ISSUE_N;                                               \
    }
#define ONE(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
#define TWO(a, b) a(0) b(1) a(2) b(3) a(4) b(5) a(6) b(7) a(8) b(9) a(10) b(11)
#define FMA(i) "vfmadd231ps %%zmm16, %%zmm17, %%zmm" #i "\n"
#define PERMPS(i) "vpermps %%zmm16, %%zmm17, %%zmm" #i "\n"
#define ZXBD(i) "vpmovzxbd %%xmm16, %%zmm" #i "\n"
#define SRLD(i) "vpsrld $4, %%zmm16, %%zmm" #i "\n"
#define SRLVD(i) "vpsrlvd %%zmm16, %%zmm17, %%zmm" #i "\n"
#define ANDD(i) "vpandd %%zmm16, %%zmm17, %%zmm" #i "\n"
#define PERMW(i) "vpermw %%zmm16, %%zmm17, %%zmm" #i "\n"
#define BCAST16(i) "vbroadcasti32x4 " #i "*16(%0), %%zmm" #i "\n"
#define BCAST8(i) "vpbroadcastq " #i "*16(%0), %%zmm" #i "\n"
#define LOAD64(i) "vmovdqu32 " #i "*64(%0), %%zmm" #i "\n"
RATE(r_fma, ONE(FMA))
RATE(r_permps, ONE(PERMPS))
RATE(r_permw, ONE(PERMW))
RATE(r_zxbd, ONE(ZXBD))
RATE(r_srld, ONE(SRLD))
RATE(r_srlvd, ONE(SRLVD))
RATE(r_andd, ONE(ANDD))
RATE(r_bcast16, ONE(BCAST16))
RATE(r_bcast8, ONE(BCAST8))
RATE(r_load64, ONE(LOAD64))
RATE(r_fma_permps, TWO(FMA, PERMPS))
RATE(r_permps_zxbd, TWO(PERMPS, ZXBD))
RATE(r_permps_srld, TWO(PERMPS, SRLD))
RATE(r_permps_srlvd, TWO(PERMPS, SRLVD))
RATE(r_permps_bcast16, TWO(PERMPS, BCAST16))
RATE(r_permps_bcast8, TWO(PERMPS, BCAST8))
RATE(r_fma_srlvd, TWO(FMA, SRLVD))

static void issue_rates(void) {
    static char buf[1024] __attribute__((aligned(64)));
    const double fma = r_fma(buf); /* TSC ticks per core cycle */
    struct {
        const char* name;
        double (*f)(const void*);
    } rows[] = {
        {"vfmadd231ps", r_fma}, {"vpermps", r_permps}, {"vpermw", r_permw}, {"vpmovzxbd xmm->zmm", r_zxbd},
        {"vpsrld imm", r_srld}, {"vpsrlvd", r_srlvd}, {"vpandd", r_andd},
        {"vbroadcasti32x4 m128", r_bcast16}, {"vpbroadcastq m64", r_bcast8}, {"vmovdqu32 m512", r_load64},
        {"vfmadd231ps + vpermps", r_fma_permps}, {"vpermps + vpmovzxbd", r_permps_zxbd},
        {"vpermps + vpsrld", r_permps_srld}, {"vpermps + vpsrlvd", r_permps_srlvd},
        {"vpermps + vbroadcasti32x4", r_permps_bcast16}, {"vpermps + vpbroadcastq", r_permps_bcast8},
        {"vfmadd231ps + vpsrlvd", r_fma_srlvd},
    };
    printf("issue rates, 512-bit operands (core cycles per instruction; pairs alternate)\n");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        printf("  %-28s %.2f\n", rows[i].name, rows[i].f(buf) / fma);
    }
}

/* ---- part 2: the decode loop ------------------------------------------------------- */

static const float fp4_values[16] = {0, .5f, 1, 1.5f, 2, 3, 4, 6, -0.f, -.5f, -1, -1.5f, -2, -3, -4, -6};
static float tables[256][16] __attribute__((aligned(64)));

/* As rows_direct_avx512_n compiles: one pointer per row, stepped by a block; the next 4
 * rows prefetched, one line per 4 blocks. */
#define DECODE_LOOP(NAME, ...)                                                                           \
    TARGET static void NAME(const uint8_t* q, const uint8_t* s, uint32_t nb, uint32_t rows, const float* x, \
                            float* out) {                                                                \
        const __m512i shifts = _mm512_set_epi32(28, 28, 24, 24, 20, 20, 16, 16, 12, 12, 8, 8, 4, 4, 0, 0); \
        (void) shifts;                                                                                   \
        const size_t row = (size_t) nb * 16;                                                             \
        for (uint32_t r = 0; r < rows; r += 4) {                                                         \
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),             \
                             _mm512_setzero_ps()};                                                       \
            const uint8_t* qr[4] = {q + r * row, q + (r + 1) * row, q + (r + 2) * row, q + (r + 3) * row}; \
            const uint8_t* sr[4] = {s + (size_t) r * nb, s + (size_t) (r + 1) * nb, s + (size_t) (r + 2) * nb, \
                                    s + (size_t) (r + 3) * nb};                                          \
            for (uint32_t b = 0; b < nb; b++) {                                                          \
                const __m512 xl = _mm512_load_ps(x + 32 * (size_t) b);                                   \
                const __m512 xh = _mm512_load_ps(x + 32 * (size_t) b + 16);                              \
                (void) xl;                                                                               \
                (void) xh;                                                                               \
                for (int i = 0; i < 4; i++) {                                                            \
                    const uint8_t* qq = qr[i] + 16 * (size_t) b;                                         \
                    const float* t = tables[sr[i][b]];                                                   \
                    if (b % 4 == 0) _mm_prefetch((const char*) (qq + 4 * row), _MM_HINT_T0);             \
                    __VA_ARGS__                                                                          \
                }                                                                                        \
            }                                                                                            \
            for (int i = 0; i < 4; i++) out[r + i] = _mm512_reduce_add_ps(acc[i]);                       \
        }                                                                                                \
    }

DECODE_LOOP(loop_widen, {
    const __m512 tab = _mm512_load_ps(t);
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*) qq));
    acc[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx, tab), xl, acc[i]);
    acc[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), tab), xh, acc[i]);
})
DECODE_LOOP(loop_broadcast, {
    const __m512 tab = _mm512_load_ps(t);
    int64_t q0, q1;
    memcpy(&q0, qq, 8);
    memcpy(&q1, qq + 8, 8);
    acc[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi64(q0), shifts), tab), xl, acc[i]);
    acc[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi64(q1), shifts), tab), xh, acc[i]);
})
DECODE_LOOP(loop_read, { /* the same loads, xor-ed together */
    int64_t q0, q1;
    memcpy(&q0, qq, 8);
    memcpy(&q1, qq + 8, 8);
    const __m512i w = _mm512_ternarylogic_epi64(_mm512_load_si512(t), _mm512_set1_epi64(q0), _mm512_set1_epi64(q1), 0x96);
    acc[i] = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(acc[i]), w));
})

/* element of the block in lane l (0..15: multiplied with xl, 16..31: xh) */
static int lane_element(int variant, int l) {
    const int d = l % 16, half = l / 16;
    if (variant == 0) return 2 * d + half;                  /* widen: even elements, then odd */
    return 16 * half + 8 * (d % 2) + d / 2;                 /* broadcast */
}

typedef void (*decode_fn)(const uint8_t*, const uint8_t*, uint32_t, uint32_t, const float*, float*);

int main(int argc, char** argv) {
    const uint32_t nb = 90, rows = argc > 1 ? (uint32_t) strtoul(argv[1], NULL, 10) / 4 * 4 : 23040;
    if (rows < 8) {
        fprintf(stderr, "usage: mxfp4_decode_lab [ROWS >= 8]\n");
        return 2;
    }
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vbmi")) {
        printf("SKIPPED: this CPU lacks AVX-512 F/VBMI\n");
        return 0;
    }
    issue_rates();
    const unsigned seed = (unsigned) time(NULL);
    srand(seed);
    printf("\ndecode loop, 4 rows x 1 vector, %u columns (seed %u)\n", nb * 32, seed);
    for (int sb = 0; sb < 256; sb++)
        for (int i = 0; i < 16; i++) tables[sb][i] = fp4_values[i] * ldexpf(1.0f, sb - 141);
    const size_t qbytes = (size_t) rows * nb * 16;
    uint8_t* q = aligned_alloc(64, qbytes + 8 * 1024);
    uint8_t* s = aligned_alloc(64, ((size_t) rows * nb + 63) / 64 * 64);
    float* x = aligned_alloc(64, nb * 32 * sizeof(float));
    float* xp = aligned_alloc(64, nb * 32 * sizeof(float));
    float* out = malloc(rows * sizeof(float));
    if (!q || !s || !x || !xp || !out) return 1;
    for (size_t i = 0; i < qbytes + 8 * 1024; i++) q[i] = (uint8_t) rand();
    for (size_t i = 0; i < (size_t) rows * nb; i++) s[i] = (uint8_t) (115 + rand() % 12);
    for (uint32_t i = 0; i < nb * 32; i++) x[i] = (float) rand() / (float) RAND_MAX - 0.5f;
    const char* names[3] = {"widen (vpmovzxbd)", "broadcast (vpbroadcastq)", "read only"};
    const decode_fn fns[3] = {loop_widen, loop_broadcast, loop_read};
    int failed = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int v = 0; v < 3; v++) {
            for (uint32_t b = 0; b < nb; b++)
                for (int l = 0; l < 32; l++) xp[32 * b + l] = x[32 * b + lane_element(v == 2 ? 0 : v, l)];
            double err = 0;
            if (v < 2) {
                fns[v](q, s, nb, 8, xp, out);
                for (uint32_t r = 0; r < 8; r++) {
                    double ref = 0, mag = 0;
                    for (uint32_t b = 0; b < nb; b++)
                        for (int j = 0; j < 32; j++) {
                            const uint8_t byte = q[((size_t) r * nb + b) * 16 + j / 2];
                            const double p = (double) tables[s[r * nb + b]][j % 2 ? byte >> 4 : byte & 15] * x[32 * b + j];
                            ref += p;
                            mag += fabs(p);
                        }
                    /* f32 products are exact (fp4 x 2^k times an f32); 2880 f32 additions:
                     * |error| <= 2880 * 2^-24 * sum |p| */
                    err = fmax(err, fabs(out[r] - ref) / mag);
                    if (fabs(out[r] - ref) > 2880 * 0x1p-24 * mag) failed = 1;
                }
            }
            const int reps = 20000;
            double t0 = now();
            for (int k = 0; k < reps; k++) fns[v](q, s, nb, 8, xp, out);
            const double cache = 8.0 * nb * 17 * reps / (now() - t0) / 1e9;
            const int mreps = (int) (2e9 / ((double) rows * nb * 17)) + 1;
            t0 = now();
            for (int k = 0; k < mreps; k++) fns[v](q, s, nb, rows, xp, out);
            const double memory = (double) rows * nb * 17 * mreps / (now() - t0) / 1e9;
            printf("  %-26s L1/L2 %6.2f GB/s   memory (%zu MB) %6.2f GB/s   error/sum|p| %.1e\n", names[v], cache,
                   qbytes / 1000000, memory, err);
        }
    }
    if (failed) printf("FAILED: a decode loop disagrees with float64 beyond its bound\n");
    return failed;
}
