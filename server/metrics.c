/* Server metrics in the Prometheus text format: requests by endpoint and status, tokens in
 * and out (and prompt tokens served from the cache), histograms of the time to the first
 * token and of the decode rate per request. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define MAX_SERIES 96

static const double ttft_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double rate_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
#define NT (sizeof(ttft_buckets) / sizeof(*ttft_buckets))
#define NR (sizeof(rate_buckets) / sizeof(*rate_buckets))

struct histogram {
    uint64_t counts[16]; /* per bucket (not cumulative); the last one is +Inf */
    uint64_t count;
    double sum;
};

struct srv_metrics {
    pthread_mutex_t mu;
    struct {
        char endpoint[32];
        int status;
        uint64_t count;
    } series[MAX_SERIES];
    size_t num_series;
    uint64_t prompt, cached, completion, parse_errors;
    struct histogram ttft, rate;
};

struct srv_metrics* srv_metrics_create(void) {
    struct srv_metrics* m = calloc(1, sizeof(*m));
    if (m != NULL) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void srv_metrics_free(struct srv_metrics* m) {
    if (m == NULL) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void srv_metrics_request(struct srv_metrics* m, const char* endpoint, int status) {
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->num_series && !(m->series[i].status == status && strcmp(m->series[i].endpoint, endpoint) == 0)) i++;
    if (i == m->num_series && i < MAX_SERIES) {
        snprintf(m->series[i].endpoint, sizeof(m->series[i].endpoint), "%s", endpoint);
        m->series[i].status = status;
        m->num_series++;
    }
    if (i < MAX_SERIES) m->series[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_tokens(struct srv_metrics* m, size_t prompt, size_t cached, size_t completion) {
    pthread_mutex_lock(&m->mu);
    m->prompt += prompt;
    m->cached += cached;
    m->completion += completion;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_parse_errors(struct srv_metrics* m, size_t n) {
    pthread_mutex_lock(&m->mu);
    m->parse_errors += n;
    pthread_mutex_unlock(&m->mu);
}

static void observe(struct histogram* h, const double* bounds, size_t nb, double v) {
    size_t i = 0;
    while (i < nb && v > bounds[i]) i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void srv_metrics_ttft(struct srv_metrics* m, double s) {
    pthread_mutex_lock(&m->mu);
    observe(&m->ttft, ttft_buckets, NT, s);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_decode_rate(struct srv_metrics* m, double tps) {
    pthread_mutex_lock(&m->mu);
    observe(&m->rate, rate_buckets, NR, tps);
    pthread_mutex_unlock(&m->mu);
}

static void render_histogram(struct srv_buf* out, const char* name, const char* help, const struct histogram* h,
                             const double* bounds, size_t nb) {
    srv_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += h->counts[i];
        srv_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long) cum);
    }
    srv_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long) h->count,
                   name, h->sum, name, (unsigned long long) h->count);
}

void srv_metrics_render(struct srv_metrics* m, size_t queue_length, size_t running, const struct gptoss_batch_info* kv,
                        const uint64_t* memory, struct srv_buf* out) {
    pthread_mutex_lock(&m->mu);
    srv_buf_puts(out, "# HELP gptoss_requests_total HTTP requests by endpoint and status code.\n"
                      "# TYPE gptoss_requests_total counter\n");
    for (size_t i = 0; i < m->num_series; i++) {
        srv_buf_printf(out, "gptoss_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", m->series[i].endpoint,
                       m->series[i].status, (unsigned long long) m->series[i].count);
    }
    srv_buf_printf(out,
                   "# HELP gptoss_prompt_tokens_total Prompt tokens of finished requests.\n"
                   "# TYPE gptoss_prompt_tokens_total counter\ngptoss_prompt_tokens_total %llu\n"
                   "# HELP gptoss_prompt_tokens_cached_total Prompt tokens whose KV cache was reused (not computed).\n"
                   "# TYPE gptoss_prompt_tokens_cached_total counter\ngptoss_prompt_tokens_cached_total %llu\n"
                   "# HELP gptoss_completion_tokens_total Generated tokens.\n"
                   "# TYPE gptoss_completion_tokens_total counter\ngptoss_completion_tokens_total %llu\n"
                   "# HELP gptoss_harmony_parse_errors_total Malformed stretches of model output (dropped).\n"
                   "# TYPE gptoss_harmony_parse_errors_total counter\ngptoss_harmony_parse_errors_total %llu\n"
                   "# HELP gptoss_queue_length Requests waiting for the engine.\n"
                   "# TYPE gptoss_queue_length gauge\ngptoss_queue_length %zu\n"
                   "# HELP gptoss_requests_running Requests the engine is running.\n"
                   "# TYPE gptoss_requests_running gauge\ngptoss_requests_running %zu\n",
                   (unsigned long long) m->prompt, (unsigned long long) m->cached, (unsigned long long) m->completion,
                   (unsigned long long) m->parse_errors, queue_length, running);
    srv_buf_printf(out,
                   "# HELP gptoss_kv_blocks KV cache blocks of the budget (--kv-budget).\n"
                   "# TYPE gptoss_kv_blocks gauge\ngptoss_kv_blocks %zu\n"
                   "# HELP gptoss_kv_blocks_reserved KV blocks reserved by the running requests.\n"
                   "# TYPE gptoss_kv_blocks_reserved gauge\ngptoss_kv_blocks_reserved %zu\n"
                   "# HELP gptoss_kv_blocks_cached Free KV blocks holding a finished request's K/V (prompt cache).\n"
                   "# TYPE gptoss_kv_blocks_cached gauge\ngptoss_kv_blocks_cached %zu\n",
                   kv->num_blocks, kv->reserved_blocks, kv->cached_blocks);
    if (memory != NULL) {
        srv_buf_printf(out,
                       "# HELP gptoss_backend_memory_used_bytes Memory in use where the model runs (CUDA: the "
                       "device, every process; CPU: this process's resident memory), sampled at most once a "
                       "second.\n# TYPE gptoss_backend_memory_used_bytes gauge\ngptoss_backend_memory_used_bytes %llu\n"
                       "# HELP gptoss_backend_memory_total_bytes The device's memory (CPU: the machine's).\n"
                       "# TYPE gptoss_backend_memory_total_bytes gauge\ngptoss_backend_memory_total_bytes %llu\n",
                       (unsigned long long) memory[0], (unsigned long long) memory[1]);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    /* what a leak grows, unlike resident memory: that also holds the allocator's per-thread
     * arenas (made as threads meet in malloc, kept) and the pages of the KV blocks once
     * first written (the prompt cache reaches every block in time) */
    const struct mallinfo2 mi = mallinfo2();
    srv_buf_printf(out,
                   "# HELP gptoss_heap_allocated_bytes Bytes handed out by malloc and not freed (glibc mallinfo2: "
                   "uordblks + hblkhd).\n# TYPE gptoss_heap_allocated_bytes gauge\ngptoss_heap_allocated_bytes %zu\n",
                   mi.uordblks + mi.hblkhd);
#endif
    render_histogram(out, "gptoss_time_to_first_token_seconds", "Seconds from arrival to the first generated token.",
                     &m->ttft, ttft_buckets, NT);
    render_histogram(out, "gptoss_decode_tokens_per_second", "Decode rate of each request after its first token.",
                     &m->rate, rate_buckets, NR);
    pthread_mutex_unlock(&m->mu);
}
