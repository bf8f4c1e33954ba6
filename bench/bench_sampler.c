/* Host sampler benchmark (not a test): the time of one gptoss_sampler_pick_host draw at
 * the real vocabulary size (201,088 logits) for temperature 0.7 / 1.0, top-p 0.9 / 0.95 /
 * 1.0, without top-k and with top-k 50, and a row with penalties, on two kinds of logits:
 *
 *   flat    N(0, 1) for every token: the shape of the random models (`make-model`), whose
 *           nucleus holds most of the vocabulary (top-p 0.9 at T = 1: ~120,000 tokens);
 *   peaked  N(0, 2^2) for every token, and 64 likely tokens at 20 - 0.4 j + N(0, 0.3^2):
 *           a trained model's shape, the top token ~35% at T = 1, a nucleus of a few tokens;
 *
 * and last the worst case: equal logits with top-p 0.5, a tie at the nucleus boundary that
 * every draw hands to the exact path.
 *
 *   bench_sampler [-n DRAWS] [-s SEED] [--filter SUBSTR]
 *
 * Per row: the logits are copied back before each draw (outside the timed region: the
 * penalties modify them), the draw's rng offset advances; printed: the median, min and max
 * of DRAWS timed draws (CLOCK_MONOTONIC) in microseconds and how many draws the bucketed
 * path handed to the exact one (engine/sampler.c; "-": a path without buckets). top-p 1.0
 * without top-k and without penalties is plain temperature sampling, which the engine runs
 * on the backend (f32_softmax + f32_sample); its host row is here for comparison. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "util.h"

#define VOCAB 201088u

static uint64_t rng_state;
static uint64_t rng_next(void) { return gptoss_splitmix64(&rng_state); }
static double rng_uniform(void) { return ((double) (rng_next() >> 11) + 0.5) * 0x1.0p-53; }
static double rng_normal(void) {
    return sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform());
}

static double now_us(void) { return 1e6 * gptoss_now_s(); }

static int cmp_double(const void* a, const void* b) {
    const double x = *(const double*) a, y = *(const double*) b;
    return (x > y) - (x < y);
}

static void cpu_name(char* out, size_t size) {
    snprintf(out, size, "unknown CPU");
    FILE* f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) return;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) == 0) {
            const char* colon = strchr(line, ':');
            if (colon != NULL) {
                snprintf(out, size, "%s", colon + 2);
                out[strcspn(out, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

/* One row: DRAWS timed draws of s on a copy of values; 0 on success. */
static int run_row(const char* name, const float* values, const struct gptoss_sampler* s, const uint32_t* history,
                   size_t history_size, unsigned draws, const char* filter, float* logits, double* times,
                   struct gptoss_sampler_scratch* scratch) {
    char row[160];
    snprintf(row, sizeof(row), "%-7s %5.2f %5.2f %5u %9s", name, (double) s->temperature, (double) s->top_p, s->top_k,
             history_size != 0 ? "0.5/0.5" : "-");
    if (filter != NULL && strstr(row, filter) == NULL) return 0;
    const uint64_t fast = scratch->fast_draws, fallback = scratch->fallback_draws;
    for (unsigned r = 0; r < draws; r++) {
        memcpy(logits, values, VOCAB * sizeof(float));
        const double t0 = now_us();
        const uint32_t id = gptoss_sampler_pick_host(s, logits, history, history_size, 1000 + r, scratch);
        times[r] = now_us() - t0;
        if (id >= VOCAB) {
            fprintf(stderr, "bench_sampler: draw returned id %u\n", id);
            return 1;
        }
    }
    qsort(times, draws, sizeof(double), cmp_double);
    char fallbacks[32] = "-";
    if (scratch->fast_draws + scratch->fallback_draws != fast + fallback) {
        snprintf(fallbacks, sizeof(fallbacks), "%llu", (unsigned long long) (scratch->fallback_draws - fallback));
    }
    printf("%s %10.1f %10.1f %10.1f %9s\n", row, times[draws / 2], times[0], times[draws - 1], fallbacks);
    fflush(stdout);
    return 0;
}

int main(int argc, char** argv) {
    unsigned draws = 101;
    uint64_t seed = 1;
    const char* filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            draws = (unsigned) strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_sampler [-n DRAWS] [-s SEED] [--filter SUBSTR]\n");
            return 2;
        }
    }
    if (draws == 0) draws = 1;

    float* flat = malloc(VOCAB * sizeof(float));
    float* peaked = malloc(VOCAB * sizeof(float));
    float* logits = malloc(VOCAB * sizeof(float));
    double* times = malloc(draws * sizeof(double));
    uint32_t history[64];
    struct gptoss_sampler_scratch scratch;
    if (flat == NULL || peaked == NULL || logits == NULL || times == NULL ||
        gptoss_sampler_scratch_init(&scratch, VOCAB) != 0) {
        fprintf(stderr, "bench_sampler: out of memory\n");
        return 1;
    }
    rng_state = seed;
    for (uint32_t i = 0; i < VOCAB; i++) {
        flat[i] = (float) rng_normal();
        peaked[i] = (float) (2.0 * rng_normal());
    }
    for (uint32_t j = 0; j < 64; j++) {
        peaked[rng_next() % VOCAB] = (float) (20.0 - 0.4 * j + 0.3 * rng_normal());
    }
    for (uint32_t j = 0; j < 64; j++) history[j] = (uint32_t) (rng_next() % VOCAB);

    char cpu[256];
    cpu_name(cpu, sizeof(cpu));
    printf("host sampler, V = %u, %u draws per row, seed %llu, %s\n", VOCAB, draws, (unsigned long long) seed, cpu);
    printf("%-7s %5s %5s %5s %9s %10s %10s %10s %9s\n", "logits", "temp", "top_p", "top_k", "penalty", "median_us",
           "min_us", "max_us", "fallbacks");

    const struct {
        const char* name;
        const float* values;
    } dists[] = {{"flat", flat}, {"peaked", peaked}};
    const float temps[] = {0.7f, 1.0f}, top_ps[] = {0.9f, 0.95f, 1.0f};
    const uint32_t top_ks[] = {0, 50};
    for (size_t d = 0; d < 2; d++) {
        for (size_t ti = 0; ti < 2; ti++) {
            for (size_t pi = 0; pi < 3; pi++) {
                for (size_t ki = 0; ki < 2; ki++) {
                    const struct gptoss_sampler s = {.temperature = temps[ti], .top_p = top_ps[pi], .top_k = top_ks[ki],
                                                     .seed = seed};
                    if (run_row(dists[d].name, dists[d].values, &s, NULL, 0, draws, filter, logits, times, &scratch)) {
                        return 1;
                    }
                }
            }
        }
        /* presence and frequency penalties 0.5 over 64 tokens, top-k and top-p off */
        const struct gptoss_sampler s = {.temperature = 1.0f, .top_p = 1.0f, .presence_penalty = 0.5f,
                                         .frequency_penalty = 0.5f, .seed = seed};
        if (run_row(dists[d].name, dists[d].values, &s, history, 64, draws, filter, logits, times, &scratch)) return 1;
    }
    /* the worst case: equal logits, the nucleus boundary an exact tie (every draw exact) */
    memset(flat, 0, VOCAB * sizeof(float));
    const struct gptoss_sampler s = {.temperature = 1.0f, .top_p = 0.5f, .seed = seed};
    if (run_row("equal", flat, &s, NULL, 0, draws, filter, logits, times, &scratch)) return 1;
    gptoss_sampler_scratch_free(&scratch);
    free(flat);
    free(peaked);
    free(logits);
    free(times);
    return 0;
}
