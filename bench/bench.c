/* Kernel benchmark (not a test): the cases flagged TC_BENCH in the test modules
 * (tests/ops/<family>.c; on CUDA also TC_BENCH_CUDA): at least one row per kernel, mostly
 * the gpt-oss-20b decode shapes (qkv 2880->5120 with RoPE + KV write, attention output
 * 4096->2880 with residual add, router 2880->32, unembedding 2880->200014 and 201088, MoE
 * up/down 4 of 32 experts, SDPA one query over 4096 cached tokens with window 128 and
 * full, the fused decode kernels) plus 512-token prefill rows (GFLOP/s).
 *
 *   bench [-t THREADS] [--backend cpu|cuda] [--isa auto|scalar|avx2|avx512] [-n RUNS]
 *         [--filter SUBSTR] [--bw-mb MB] [--peak-s SECONDS] [--row-order auto|one|many]
 *
 * --row-order sets the backend's row order before the rows run (gptoss_backend_set_row_order:
 * e.g. `one` measures the batched decode kernels the engine's batch-invariant steps run for
 * many streams, on the rows of several tokens such as *_batch64_*).
 * First it measures this machine's read bandwidth in the same run: a read-only pass
 * (sum) over a 2 GB f32 buffer with AVX2 and the same number of threads, best of 5.
 * Then per case: inputs are ROTATED among enough copies that the bytes touched exceed
 * the 32 MB L3 several times (>= 4 x 32 MB, so every call streams from DRAM as in a real
 * decode step), 3 warm-up rounds, then the median of RUNS calls (CPU: each call timed;
 * CUDA: batches of calls between two gptoss_backend_synchronize, per-call mean of each
 * batch, median over batches). Bytes = weights read once + activations in/out, computed
 * by each module's bytes() next to its kernel; GB/s = bytes / median time and
 * "% BW" compares it with the measured read bandwidth: on CUDA the copy bandwidth above,
 * on the CPU a read pass of a quarter of the size run right before the row (column
 * "read"), since a shared VM's bandwidth drifts within a run. On the CPU it also measures
 * the f32 FMA peak of the same threads (peak.h) at the backend's vector width (AVX-512 or
 * AVX2; the scalar backend: the widest) and "%peak" compares each row's GFLOP/s with it. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include <gptoss/kernels.h>

#include "ops/ops.h"
#include "peak.h"
#include "readbw.h"
#include "util.h"

#define L3_BYTES (32.0 * 1024 * 1024)
#define ROTATE_BYTES (4.0 * L3_BYTES)          /* bytes touched across the copies */
#define MAX_BENCH_MEMORY (3.0 * 1024 * 1024 * 1024) /* cap on all copies of one case */

static int cmp_double(const void* a, const void* b) {
    const double x = *(const double*) a, y = *(const double*) b;
    return (x > y) - (x < y);
}

static double median(double* v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ------------------------------------------------------------------------------------
 * Read bandwidth: sum of a large f32 buffer, one slice per thread
 * ---------------------------------------------------------------------------------- */

/* GB/s of a read-only pass over `bytes` with `threads` threads (best of `passes`). */
static double measure_read_bandwidth(size_t bytes, uint32_t threads, int passes) {
    double checksum = 0;
    const double best = gptoss_tools_read_bandwidth(bytes, threads, passes, NULL, &checksum);
    fprintf(stderr, "(read pass checksum %g)\n", checksum);
    return best;
}

/* ------------------------------------------------------------------------------------
 * Kernel timing
 * ---------------------------------------------------------------------------------- */

struct row {
    const struct tc_op* op;
    const struct tc_case* c;
    double time_s, bytes, flops;
    double bw_near; /* CPU: read pass just before this row, GB/s */
    uint32_t copies;
    bool ok;
    char err[160];
};

static bool bench_case(gptoss_backend_t be, bool cuda, const struct tc_op* op, const struct tc_case* c, uint32_t runs,
                       struct row* out) {
    struct tc_problem p;
    memset(out, 0, sizeof *out);
    out->op = op;
    out->c = c;
    out->bytes = tc_bytes(op, c);
    out->flops = tc_flops(op, c);
    if (tc_problem_create(&p, op, c, 0x5EEDull ^ tc_hash_string(c->name)) != 0) {
        snprintf(out->err, sizeof out->err, "out of host memory");
        return false;
    }
    size_t alloc_bytes = 0;
    for (int i = 0; i < p.n; i++) alloc_bytes += p.b[i].size;
    uint32_t copies = (uint32_t) ceil(ROTATE_BYTES / out->bytes);
    if (copies < 1) copies = 1;
    if (copies > 4096) copies = 4096;
    while (copies > 1 && (double) copies * alloc_bytes > MAX_BENCH_MEMORY) copies--;
    out->copies = copies;
    void** dev = calloc((size_t) copies * TC_MAX_BUFFERS, sizeof *dev);
    bool ok = true;
    for (uint32_t k = 0; k < copies && ok; k++) {
        for (int i = 0; i < p.n && ok; i++) {
            void** d = &dev[(size_t) k * TC_MAX_BUFFERS + i];
            if (gptoss_backend_alloc(be, p.b[i].size, d) != gptoss_status_success ||
                gptoss_backend_copy(be, *d, p.b[i].host, p.b[i].size, gptoss_copy_host_to_backend) !=
                    gptoss_status_success) {
                snprintf(out->err, sizeof out->err, "alloc/upload: %s", gptoss_last_error());
                ok = false;
            }
        }
    }
    if (ok && gptoss_backend_synchronize(be) != gptoss_status_success) ok = false;
    /* warm-up: 3 rounds over every copy (at least 3 calls) */
    for (uint32_t w = 0; ok && w < 3 * copies; w++) {
        enum gptoss_status st = tc_launch(be, &p, &dev[(size_t) (w % copies) * TC_MAX_BUFFERS]);
        if (st != gptoss_status_success) {
            snprintf(out->err, sizeof out->err, "%s: %s", gptoss_status_to_string(st), gptoss_last_error());
            ok = false;
        }
    }
    if (ok && gptoss_backend_synchronize(be) != gptoss_status_success) {
        snprintf(out->err, sizeof out->err, "synchronize: %s", gptoss_last_error());
        ok = false;
    }
    if (ok) {
        double* t = calloc(runs, sizeof *t);
        uint32_t next = 0;
        for (uint32_t r = 0; r < runs; r++) {
            if (cuda) {
                /* a batch of calls between two synchronizations */
                const uint32_t batch = copies < 20 ? 20 : copies;
                const double t0 = gptoss_now_s();
                for (uint32_t j = 0; j < batch; j++) {
                    tc_launch(be, &p, &dev[(size_t) (next++ % copies) * TC_MAX_BUFFERS]);
                }
                gptoss_backend_synchronize(be);
                t[r] = (gptoss_now_s() - t0) / batch;
            } else {
                const double t0 = gptoss_now_s();
                tc_launch(be, &p, &dev[(size_t) (next++ % copies) * TC_MAX_BUFFERS]);
                t[r] = gptoss_now_s() - t0;
            }
        }
        out->time_s = median(t, runs);
        free(t);
    }
    for (size_t i = 0; i < (size_t) copies * TC_MAX_BUFFERS; i++) {
        if (dev[i]) gptoss_backend_free(be, dev[i]);
    }
    free(dev);
    tc_problem_destroy(&p);
    out->ok = ok;
    return ok;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench [-t THREADS] [--backend cpu|cuda] [--isa auto|scalar|avx2|avx512] [-n RUNS]\n"
            "             [--filter SUBSTR] [--bw-mb MB] [--peak-s SECONDS] [--row-order auto|one|many]\n");
}

int main(int argc, char** argv) {
    uint32_t threads = 2, runs = 21;
    const char* backend = "cpu";
    const char* isa_name = "auto";
    const char* filter = NULL;
    size_t bw_mb = 2048;
    double peak_s = 0.2; /* per pass of the FMA peak loops; 0 skips them (their CPU time varies with load) */
    enum gptoss_row_order order = gptoss_row_order_auto;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--threads") == 0) && i + 1 < argc) {
            threads = (uint32_t) strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
        } else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            isa_name = argv[++i];
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            runs = (uint32_t) strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else if (strcmp(argv[i], "--peak-s") == 0 && i + 1 < argc) {
            peak_s = strtod(argv[++i], NULL);
        } else if (strcmp(argv[i], "--row-order") == 0 && i + 1 < argc) {
            const char* o = argv[++i];
            if (!tc_parse_row_order(o, &order)) {
                fprintf(stderr, "bench: --row-order must be auto, one or many, not \"%s\"\n", o);
                return 2;
            }
        } else if (strcmp(argv[i], "--bw-mb") == 0 && i + 1 < argc) {
            bw_mb = strtoull(argv[++i], NULL, 0);
        } else {
            usage();
            return 2;
        }
    }
    if (threads == 0 || runs == 0) {
        usage();
        return 2;
    }
    const bool cuda = strcmp(backend, "cuda") == 0;
    gptoss_backend_t be = NULL;
    enum gptoss_status st;
    if (cuda) {
        st = gptoss_backend_create_cuda(0, NULL, &be);
    } else if (strcmp(backend, "cpu") == 0) {
        enum gptoss_cpu_isa isa = gptoss_cpu_isa_auto;
        if (strcmp(isa_name, "scalar") == 0) isa = gptoss_cpu_isa_scalar;
        if (strcmp(isa_name, "avx2") == 0) isa = gptoss_cpu_isa_avx2;
        if (strcmp(isa_name, "avx512") == 0) isa = gptoss_cpu_isa_avx512;
        st = gptoss_backend_create_cpu_isa(threads, isa, &be);
    } else {
        usage();
        return 2;
    }
    if (st != gptoss_status_success) {
        fprintf(stderr, "bench: cannot create the %s backend: %s (%s)\n", backend, gptoss_status_to_string(st),
                gptoss_last_error());
        return 1;
    }
    if (order != gptoss_row_order_auto) {
        st = gptoss_backend_set_row_order(be, order);
        if (st != gptoss_status_success) {
            fprintf(stderr, "bench: cannot set the row order: %s (%s)\n", gptoss_status_to_string(st),
                    gptoss_last_error());
            gptoss_backend_release(be);
            return 1;
        }
    }
    printf("backend: %s%s\n", gptoss_backend_get_name(be),
           order == gptoss_row_order_one ? " (row order one)" : order == gptoss_row_order_many ? " (row order many)" : "");

    double bw = 0, peak = 0;
    if (!cuda) {
        bw = measure_read_bandwidth(bw_mb << 20, threads, 5);
        printf("read bandwidth: %.2f GB/s (sum of a %zu MB f32 buffer, %s, %u threads, best of 5)\n", bw, bw_mb,
               __builtin_cpu_supports("avx2") ? "AVX2" : "scalar", threads);
        const double p512 = gptoss_bench_peak_gflops(gptoss_peak_fma_avx512, threads, peak_s, 3);
        const double p256 = gptoss_bench_peak_gflops(gptoss_peak_fma_avx2, threads, peak_s, 3);
        const double pbf16 = gptoss_bench_peak_gflops(gptoss_peak_dpbf16, threads, peak_s, 3);
        if (peak_s > 0) {
            printf("f32 FMA peak: %.1f GFLOP/s AVX-512, %.1f AVX2 (%u threads, best of 3; 0 = not supported); "
                   "vdpbf16ps %.1f (bf16 products)\n", p512, p256, threads, pbf16);
        } else {
            printf("f32 FMA peak: not measured (--peak-s 0)\n");
        }
        const char* name = gptoss_backend_get_name(be);
        peak = strncmp(name, "cpu-avx2", 8) == 0 ? p256 : strncmp(name, "cpu-avx512", 10) == 0 ? p512
                                                                                             : fmax(p256, p512);
    } else {
        /* No CUDA kernel of our own here: device-to-device copy (read + write) as the proxy. */
        const size_t bytes = bw_mb << 20;
        void *a = NULL, *b = NULL;
        if (gptoss_backend_alloc(be, bytes, &a) == gptoss_status_success &&
            gptoss_backend_alloc(be, bytes, &b) == gptoss_status_success) {
            gptoss_backend_copy(be, b, a, bytes, gptoss_copy_backend_to_backend);
            gptoss_backend_synchronize(be);
            double best = 0;
            for (int p = 0; p < 5; p++) {
                const double t0 = gptoss_now_s();
                gptoss_backend_copy(be, b, a, bytes, gptoss_copy_backend_to_backend);
                gptoss_backend_synchronize(be);
                const double gbs = 2.0 * (double) bytes / (gptoss_now_s() - t0) * 1e-9;
                if (gbs > best) best = gbs;
            }
            bw = best;
        }
        gptoss_backend_free(be, a);
        gptoss_backend_free(be, b);
        printf("device bandwidth: %.2f GB/s (device-to-device copy of %zu MB, read + write counted, best of 5)\n", bw,
               bw_mb);
    }
    fflush(stdout);

    struct row rows[128];
    size_t nrows = 0;
    for (size_t i = 0; i < tc_num_cases() && nrows < 128; i++) {
        const struct tc_op* op;
        const struct tc_case* c = tc_case_at(i, &op);
        if (!(c->flags & (cuda ? TC_BENCH | TC_BENCH_CUDA : TC_BENCH))) continue;
        if (filter && !strstr(c->name, filter)) continue;
        struct row* r = &rows[nrows++];
        /* CPU: a shorter read pass right before the row as well (shared VMs drift by
         * +-10-20% within a minute; the %BW column uses this one) */
        const double near = cuda ? 0.0 : measure_read_bandwidth((bw_mb / 4) << 20, threads, 3);
        bench_case(be, cuda, op, c, runs, r); /* (clears *r) */
        r->bw_near = near;
        if (r->ok) {
            fprintf(stderr, "%-50s %10.1f us  (%u copies)\n", c->name, 1e6 * r->time_s, r->copies);
        } else {
            fprintf(stderr, "%-50s FAILED: %s\n", c->name, r->err);
        }
    }

    printf("\n%-48s %-34s %11s %9s %8s %6s %9s %6s %8s\n", "case", "shape", "median_us", "MB", "GB/s", "%BW",
           "GFLOP/s", cuda ? "" : "%peak", cuda ? "" : "read");
    for (size_t i = 0; i < nrows; i++) {
        const struct row* r = &rows[i];
        char shape[96];
        tc_shape_string(r->op, r->c, shape, sizeof shape);
        if (!r->ok) {
            printf("%-48s %-34s  FAILED: %s\n", r->c->name, shape, r->err);
            continue;
        }
        const double gbs = r->bytes / r->time_s * 1e-9;
        const double ref = r->bw_near > 0 ? r->bw_near : bw;
        const double gflops = r->flops / r->time_s * 1e-9;
        printf("%-48s %-34s %11.1f %9.2f %8.2f %5.0f%% %9.2f", r->c->name, shape, 1e6 * r->time_s, r->bytes * 1e-6, gbs,
               ref > 0 ? 100.0 * gbs / ref : 0.0, gflops);
        if (cuda) printf("\n");
        else printf(" %5.0f%% %8.2f\n", peak > 0 ? 100.0 * gflops / peak : 0.0, r->bw_near);
    }
    gptoss_backend_release(be);
    return 0;
}
