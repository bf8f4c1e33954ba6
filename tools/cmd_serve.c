/* gptoss serve: the OpenAI-compatible HTTP server; gptoss render: a request's prompt. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gptoss/offline.h>

#include "options.h"
#include "cmd_serve.h"
#include "server.h"

#define EXIT_USAGE 2

struct options {
    const char* model;
    const char* random;
    unsigned long long random_seed;
    const char* host;
    unsigned long long port;
    const char* backend;
    unsigned long long device;
    unsigned long long threads;
    unsigned long long context;
    unsigned long long parallel;
    unsigned long long kv_budget;
    const char* api_key;
    const char* api_key_file;
    unsigned long long max_queue;
    unsigned long long timeout;
    unsigned long long max_body;
    unsigned long long http_threads;
    const char* alias;
    bool no_mmap;
    const char* batch_invariant; /* on | many | off */
    const char* request; /* render */
};

static void help_serve(void) {
    printf("usage: gptoss serve (-m FILE | --random PRESET) [--host 127.0.0.1] [--port 8080]\n"
           "                    [--backend cpu|cuda] [-t N] [-c CTX] [--api-key KEY | --api-key-file F]\n"
           "                    [--parallel N] [--kv-budget BYTES] [--max-queue N] [--timeout S] [options]\n"
           "An OpenAI-compatible HTTP server. Endpoints:\n"
           "  GET  /health, /v1/models, /metrics (Prometheus text)\n"
           "  POST /v1/chat/completions   chat in the harmony format: reasoning_content, tool_calls,\n"
           "                              reasoning_effort, logprobs, stop, seed, stream\n"
           "  POST /v1/responses          the Responses API (previous_response_id, streamed events)\n"
           "  POST /v1/completions        plain-text completion of a prompt (no chat format)\n"
           "  POST /apply-template        the rendered prompt of a chat or responses request\n"
           "Up to --parallel requests run together in one batch (a forward step takes the next token\n"
           "of each and a chunk of any new prompt); new ones join between steps in arrival order,\n"
           "finished or cancelled ones leave at once. A request's tokens and logprobs do not depend\n"
           "on the others it runs with, bit for bit, on the CPU and on CUDA (README, \"Batch\n"
           "invariance\"; --batch-invariant). Ctrl-C or SIGTERM stops accepting requests (new\n"
           "ones get 503), lets the queued and running ones finish, and exits (a second signal\n"
           "cancels them).\n"
           "  -m, --model FILE      model file (GPT-OSS v1.0); its file name is the model id\n"
           "  --random PRESET       instead of -m: random weights (tiny | 20b | 120b), id random-PRESET\n"
           "  --random-seed S       with --random: weight seed (default 0)\n"
           "  --alias NAME          the model id clients send and the server reports\n"
           "  --host H              address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
           "  --port P              port (default 8080; 0 = any free port, printed at start)\n"
           "  --backend cpu|cuda    where to run (default cpu)\n"
           "  --device N            CUDA device (default 0)\n"
           "  -t, --threads N       CPU threads (default: one per processor)\n"
           "  -c, --ctx-size N      tokens per context: prompt + reply (default: the model's, at most 8192)\n"
           "  --parallel N          requests run at once, in one batch (default 1)\n"
           "  --kv-budget BYTES     memory of the KV cache shared by the requests, e.g. 8G (suffixes\n"
           "                        K, M, G, T: powers of 1024; default: enough for --parallel requests\n"
           "                        of -c tokens). A request reserves the blocks its prompt + max_tokens\n"
           "                        can need; one that does not fit waits in the queue until running\n"
           "                        ones finish (none is evicted), one that cannot fit even alone gets\n"
           "                        400 kv_budget_exceeded. The prompt cache lives in the same memory:\n"
           "                        a finished request's K/V stay until the blocks are needed, and a\n"
           "                        request reuses the longest cached prefix of its prompt\n"
           "  --api-key KEY         require \"Authorization: Bearer KEY\" (all but /health)\n"
           "  --api-key-file F      the same, the key read from the first line of F\n"
           "  --max-queue N         requests waiting for the engine; more get 429 (default 64)\n"
           "  --timeout S           a request's limit from arrival, in seconds: waiting past it gives\n"
           "                        503, running past it 504; also the idle connection timeout\n"
           "                        (default 600; 0 = none)\n"
           "  --max-body BYTES      request body limit; larger gives 413 (default 16777216)\n"
           "  --http-threads N      HTTP threads (default 4)\n"
           "  --no-mmap             cpu: copy the weights into memory (see gptoss generate --help)\n"
           "  --batch-invariant on|many|off  cuda (the cpu always is): on (default), a request's\n"
           "                        tokens as it alone would get them, decode in exact f32 (best for\n"
           "                        1-4 requests; at 64 a third of off's speed on an H100); many, the\n"
           "                        same guarantee with every token in the prefill's split-bf16\n"
           "                        tensor-core arithmetic (best from 16 requests: at 64 faster than\n"
           "                        off; one request alone 2.4x slower than on); off, each\n"
           "                        step's kernels by its rows (a request's last bits, and at near ties\n"
           "                        its tokens, then depend on the others). --no-batch-invariant: off\n");
}

static void help_render(void) {
    printf("usage: gptoss render -m FILE REQUEST.json\n"
           "Prints the harmony prompt of a chat completions request (with \"messages\") or a\n"
           "responses request (with \"input\") as JSON: {\"prompt\": text, \"tokens\": [ids],\n"
           "\"num_tokens\": n}, exactly as POST /apply-template. Only the model file's tokenizer\n"
           "is read. REQUEST.json may be - for stdin.\n"
           "  -m, --model FILE      model file (for its tokenizer)\n");
}

static int usage(const char* cmd, const char* fmt, const char* a, const char* b) {
    fprintf(stderr, "gptoss %s: ", cmd);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (see gptoss %s --help)\n", cmd);
    return EXIT_USAGE;
}

/* Returns 0 ok, 1 help printed, 2 usage error. */
static int parse(int argc, char** argv, bool render, struct options* o) {
    const char* cmd = render ? "render" : "serve";
    for (int i = 1; i < argc; i++) {
        char flag[64];
        const char* arg = argv[i];
        const char* inline_value = NULL;
        const char* eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        if (eq != NULL && (size_t) (eq - arg) < sizeof(flag)) {
            memcpy(flag, arg, (size_t) (eq - arg));
            flag[eq - arg] = '\0';
            inline_value = eq + 1;
            arg = flag;
        }
#define IS(s) (strcmp(arg, s) == 0)
#define VALUE() (inline_value ? inline_value : (i + 1 < argc ? argv[++i] : NULL))
#define NUM(field, max)                                                                                   \
    do {                                                                                                  \
        const char* v_ = VALUE();                                                                         \
        if (v_ == NULL || gptoss_cli_parse_u64(v_, (max), &o->field) != 0) {                              \
            char m_[32];                                                                                  \
            snprintf(m_, sizeof(m_), "%llu", (unsigned long long) (max));                                 \
            return usage(cmd, "%s expects an integer in [0, %s]", arg, m_);                               \
        }                                                                                                 \
    } while (0)
#define STR(field)                                                                                        \
    do {                                                                                                  \
        if ((o->field = VALUE()) == NULL) return usage(cmd, "%s needs a value%s", arg, "");               \
    } while (0)
        if (IS("-h") || IS("--help")) {
            if (render) help_render();
            else help_serve();
            return 1;
        } else if (IS("-m") || IS("--model")) STR(model);
        else if (render) {
            if (arg[0] == '-' && arg[1] != '\0') return usage(cmd, "unknown option '%s'%s", arg, "");
            if (o->request != NULL) return usage(cmd, "unexpected argument '%s'%s", arg, "");
            o->request = arg;
        } else if (IS("--random")) STR(random);
        else if (IS("--random-seed")) NUM(random_seed, UINT64_MAX);
        else if (IS("--alias")) STR(alias);
        else if (IS("--host")) STR(host);
        else if (IS("--port")) NUM(port, 65535);
        else if (IS("--backend")) STR(backend);
        else if (IS("--device")) NUM(device, 1024);
        else if (IS("-t") || IS("--threads")) NUM(threads, 4096);
        else if (IS("-c") || IS("--ctx-size")) NUM(context, 1ull << 32);
        else if (IS("--parallel")) NUM(parallel, 4096);
        else if (IS("--kv-budget")) {
            const char* v = VALUE();
            if (v == NULL || gptoss_cli_parse_bytes(v, &o->kv_budget) != 0) {
                return usage(cmd, "--kv-budget expects a byte count such as 8G, got '%s'%s", v ? v : "", "");
            }
        }
        else if (IS("--api-key")) STR(api_key);
        else if (IS("--api-key-file")) STR(api_key_file);
        else if (IS("--max-queue")) NUM(max_queue, 1u << 20);
        else if (IS("--timeout")) NUM(timeout, 1u << 30);
        else if (IS("--max-body")) NUM(max_body, 1ull << 40);
        else if (IS("--http-threads")) NUM(http_threads, 1024);
        else if (IS("--no-mmap")) o->no_mmap = true;
        else if (IS("--no-batch-invariant")) o->batch_invariant = "off";
        else if (IS("--batch-invariant")) {
            STR(batch_invariant);
            if (strcmp(o->batch_invariant, "on") != 0 && strcmp(o->batch_invariant, "many") != 0 &&
                strcmp(o->batch_invariant, "off") != 0) {
                return usage(cmd, "--batch-invariant expects on, many or off, got '%s'%s", o->batch_invariant, "");
            }
        }
        else return usage(cmd, "unknown option '%s'%s", arg, "");
#undef IS
#undef VALUE
#undef NUM
#undef STR
    }
    return 0;
}

static char* read_all(FILE* f, size_t* size_out) {
    size_t cap = 1 << 16, n = 0;
    char* buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char* nb = realloc(buf, cap * 2);
        if (nb == NULL) free(buf);
        buf = nb;
        cap *= 2;
    }
    if (buf != NULL && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    *size_out = n;
    return buf;
}

/* The model id: --alias, else the file name, else random-PRESET. */
static const char* model_id(const struct options* o, char* buf, size_t size) {
    if (o->alias != NULL) return o->alias;
    if (o->random != NULL) {
        snprintf(buf, size, "random-%s", o->random);
        return buf;
    }
    const char* slash = strrchr(o->model, '/');
    return slash != NULL ? slash + 1 : o->model;
}

/* The key of --api-key-file: its first line. */
static char* read_key_file(const char* path) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "gptoss serve: cannot open --api-key-file '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    size_t n = 0;
    char* text = read_all(f, &n);
    fclose(f);
    if (text == NULL) return NULL;
    text[n] = '\0'; /* read_all leaves room */
    text[strcspn(text, "\r\n")] = '\0';
    if (text[0] == '\0') {
        fprintf(stderr, "gptoss serve: --api-key-file '%s' holds no key on its first line\n", path);
        free(text);
        return NULL;
    }
    return text;
}

int gptoss_cli_serve(int argc, char** argv) {
    struct options o = {.host = "127.0.0.1", .port = 8080, .backend = "cpu", .max_queue = 64, .timeout = 600,
                        .max_body = 16u << 20, .http_threads = 4, .parallel = 1, .batch_invariant = "on"};
    const int pr = parse(argc, argv, false, &o);
    if (pr != 0) return pr == 1 ? 0 : EXIT_USAGE;
    if ((o.model == NULL) == (o.random == NULL)) return usage("serve", "exactly one of -m FILE and --random PRESET is required%s%s", "", "");
    if (o.api_key != NULL && o.api_key_file != NULL) return usage("serve", "give --api-key or --api-key-file, not both%s%s", "", "");
    if (strcmp(o.backend, "cpu") != 0 && strcmp(o.backend, "cuda") != 0) return usage("serve", "--backend expects cpu or cuda, got '%s'%s", o.backend, "");
    if (o.parallel == 0 || o.max_queue == 0 || o.http_threads == 0) return usage("serve", "--parallel, --max-queue and --http-threads must be at least 1%s%s", "", "");
    if (o.api_key != NULL && o.api_key[0] == '\0') return usage("serve", "--api-key is empty%s%s", "", "");
    if (o.model != NULL && access(o.model, R_OK) != 0) {
        fprintf(stderr, "gptoss serve: cannot read model file '%s': %s\n", o.model, strerror(errno));
        return 1;
    }
    char* file_key = o.api_key_file ? read_key_file(o.api_key_file) : NULL;
    if (o.api_key_file != NULL && file_key == NULL) return 1;

    /* signals are taken by sigwait below: block them before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    gptoss_backend_t backend = NULL;
    gptoss_model_t model = NULL;
    gptoss_tokenizer_t tokenizer = NULL;
    struct srv_metrics* metrics = srv_metrics_create();
    struct srv_store* store = srv_store_create(128, 64u << 20);
    struct srv_scheduler* sched = NULL;
    struct srv_http* http = NULL;
    char why[512];
    enum gptoss_status st = strcmp(o.backend, "cuda") == 0 ? gptoss_backend_create_cuda((int) o.device, NULL, &backend)
                                                           : gptoss_backend_create_cpu((uint32_t) o.threads, &backend);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss serve: creating the backend: %s\n", gptoss_last_error());
        goto done;
    }
    const double t0 = srv_now();
    st = o.random ? gptoss_model_create_random(o.random, 0, o.random_seed, backend, &model)
                  : gptoss_model_create_from_file_ex(o.model, backend, o.no_mmap ? GPTOSS_MODEL_NO_MMAP : 0, &model);
    if (st != gptoss_status_success || gptoss_model_get_tokenizer(model, &tokenizer) != gptoss_status_success) {
        fprintf(stderr, "gptoss serve: loading the model: %s\n", gptoss_last_error());
        goto done;
    }
    size_t max_ctx = 0;
    gptoss_model_get_max_context_length(model, &max_ctx);
    size_t ctx = o.context ? (size_t) o.context : (max_ctx < 8192 ? max_ctx : 8192);
    if (ctx > max_ctx || ctx < 2) {
        fprintf(stderr, "gptoss serve: -c %zu is not in [2, %zu] (the model's context length)\n", ctx, max_ctx);
        goto done;
    }
    if (metrics == NULL || store == NULL) {
        fprintf(stderr, "gptoss serve: out of memory\n");
        goto done;
    }
    const struct srv_scheduler_options so = {.parallel = o.parallel, .context_length = ctx, .max_queue = o.max_queue,
                                             .kv_budget = (size_t) o.kv_budget, .backend = backend,
                                             .batch_invariant = strcmp(o.batch_invariant, "off") == 0 ? 0
                                                                : strcmp(o.batch_invariant, "many") == 0 ? 2
                                                                                                          : 1};
    if (!srv_scheduler_create(model, &so, metrics, store, &sched, why, sizeof(why))) {
        fprintf(stderr, "gptoss serve: %s\n", why);
        goto done;
    }
    char idbuf[64];
    struct srv_api_config api = {.tokenizer = tokenizer, .model_id = model_id(&o, idbuf, sizeof(idbuf)),
                                 .context_length = ctx, .store = store, .max_choices = (size_t) o.parallel};
    gptoss_harmony_render_options_init(&api.render);
    const struct srv_http_options ho = {.host = o.host, .port = (uint16_t) o.port,
                                        .api_key = file_key ? file_key : o.api_key, .max_body = (size_t) o.max_body,
                                        .threads = (unsigned) o.http_threads,
                                        .max_connections = (unsigned) (o.max_queue + 64 > 4096 ? 4096 : o.max_queue + 64),
                                        .timeout_s = (unsigned) o.timeout};
    uint16_t port = 0;
    if (!srv_http_start(&ho, &api, sched, metrics, &http, &port, why, sizeof(why))) {
        fprintf(stderr, "gptoss serve: %s\n", why);
        goto done;
    }
    struct gptoss_batch_info info;
    size_t queued = 0, running = 0;
    srv_scheduler_counts(sched, &queued, &running, &info);
    fprintf(stderr, "gptoss serve: model '%s' loaded in %.2f s (%s); %llu request(s) at once, %zu tokens each; "
            "KV budget %zu blocks of %zu positions, %zu bytes each (%.1f MiB)\n", api.model_id, srv_now() - t0,
            gptoss_backend_get_name(backend), o.parallel, ctx, info.num_blocks, info.block_size, info.block_bytes,
            (double) info.num_blocks * (double) info.block_bytes / 1048576.0);
    fprintf(stderr, "gptoss serve: listening on http://%s%s%s:%u\n", strchr(o.host, ':') ? "[" : "", o.host,
            strchr(o.host, ':') ? "]" : "", (unsigned) port);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "gptoss serve: %s: finishing the requests in flight (again to cancel them)\n", strsignal(sig));
    /* it goes on listening until the end: generation requests get 503 server_shutdown. (Not
     * MHD_quiesce_daemon: with a thread pool on epoll it races with the polling threads, both
     * taking the listening socket out of a thread's epoll set, and the loser's error is a
     * libmicrohttpd panic: abort, "Failed to remove listen FD from epoll set".) */
    srv_scheduler_stop_accepting(sched);
    bool cancelled = false;
    while (!srv_scheduler_wait_idle(sched, 0.1)) {
        const struct timespec zero = {0, 0};
        if (!cancelled && sigtimedwait(&sigs, NULL, &zero) > 0) {
            fprintf(stderr, "gptoss serve: cancelling the requests in flight\n");
            srv_scheduler_cancel_all(sched);
            cancelled = true;
        }
    }
    /* let the last responses reach their clients (bounded) */
    for (int i = 0; i < 200 && srv_http_active(http) > 0; i++) usleep(25000);
    fprintf(stderr, "gptoss serve: stopped\n");
    rc = 0;
done:
    srv_http_stop(http);
    srv_scheduler_destroy(sched);
    srv_store_free(store);
    srv_metrics_free(metrics);
    gptoss_tokenizer_release(tokenizer);
    gptoss_model_release(model);
    gptoss_backend_release(backend);
    free(file_key);
    return rc;
}

int gptoss_cli_render(int argc, char** argv) {
    struct options o = {0};
    const int pr = parse(argc, argv, true, &o);
    if (pr != 0) return pr == 1 ? 0 : EXIT_USAGE;
    if (o.model == NULL || o.request == NULL) return usage("render", "-m FILE and REQUEST.json are required%s%s", "", "");
    FILE* f = strcmp(o.request, "-") == 0 ? stdin : fopen(o.request, "rb");
    if (f == NULL) {
        fprintf(stderr, "gptoss render: cannot open '%s': %s\n", o.request, strerror(errno));
        return 1;
    }
    size_t n = 0;
    char* body = read_all(f, &n);
    if (f != stdin) fclose(f);
    if (body == NULL) {
        fprintf(stderr, "gptoss render: cannot read '%s'\n", o.request);
        return 1;
    }
    gptoss_tokenizer_t tokenizer = NULL;
    if (gptoss_tokenizer_create_from_file(o.model, &tokenizer) != gptoss_status_success) {
        fprintf(stderr, "gptoss render: reading the tokenizer of '%s': %s\n", o.model, gptoss_last_error());
        free(body);
        return 1;
    }
    struct srv_api_config api = {.tokenizer = tokenizer, .model_id = NULL, .context_length = SIZE_MAX};
    gptoss_harmony_render_options_init(&api.render);
    struct srv_error err;
    json_t* out = NULL;
    int rc = 0;
    if (srv_api_render(&api, body, n, &out, &err)) {
        char* s = json_dumps(out, JSON_COMPACT);
        if (s != NULL) printf("%s\n", s);
        free(s);
        json_decref(out);
    } else {
        fprintf(stderr, "gptoss render: %s\n", err.message);
        rc = 1;
    }
    free(body);
    gptoss_tokenizer_release(tokenizer);
    return rc;
}
