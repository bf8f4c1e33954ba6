/* HTTP through libmicrohttpd: a thread pool with internal polling, a connection limit, an
 * idle timeout and a body limit (413). A generation request is validated on the HTTP thread
 * (api.c) and queued for the engine; its connection is then suspended until the engine
 * has something for it: the whole response, or for streams the next server-sent events
 * (a chunked response whose reader suspends the connection when it has nothing to send;
 * the engine resumes it). While a connection waits suspended, the engine asks between
 * steps whether its socket was closed by the client (peer_gone) and cancels the request
 * if so; when libmicrohttpd itself sees the connection end, the request is cancelled
 * too. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "server.h"

enum route {
    route_none = 0,
    route_health,
    route_models,
    route_metrics,
    route_chat,
    route_responses,
    route_completions,
    route_template,
};

static const struct {
    const char* path;
    const char* method;
    enum route route;
} routes[] = {
    {"/health", "GET", route_health},
    {"/v1/models", "GET", route_models},
    {"/metrics", "GET", route_metrics},
    {"/v1/chat/completions", "POST", route_chat},
    {"/v1/responses", "POST", route_responses},
    {"/v1/completions", "POST", route_completions},
    {"/apply-template", "POST", route_template},
};

struct srv_http {
    struct MHD_Daemon* daemon;
    struct srv_api_config api;
    struct srv_scheduler* scheduler;
    struct srv_metrics* metrics;
    char* api_key;
    size_t max_body;
    unsigned timeout_s;
    int64_t started;
    atomic_uint active; /* generations whose response is not fully sent */
};

/* Per connection request state (libmicrohttpd's con_cls). */
struct conn {
    struct srv_http* h;
    struct MHD_Connection* mc;
    enum route route;
    const char* endpoint;     /* the metrics label */
    struct srv_buf body;
    bool too_large;
    bool responded;
    struct srv_request* req;  /* a generation this connection waits for */
    double t_arrival;
};

/* The reader state of a streamed response. */
struct stream {
    struct srv_http* h;
    struct MHD_Connection* mc;
    struct srv_request* req;
    struct srv_buf out;
    size_t off;
    uint64_t seq;
    bool finished;
};

/* ---- responses ---------------------------------------------------------------------- */

static void queue(struct conn* c, int status, const char* content_type, char* data, size_t len) {
    struct MHD_Response* r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(data);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == 405) {
        for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++)
            if (strcmp(routes[i].path, c->endpoint) == 0) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, routes[i].method);
    }
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 429 || status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    MHD_queue_response(c->mc, (unsigned) status, r);
    MHD_destroy_response(r);
    c->responded = true;
    srv_metrics_request(c->h->metrics, c->endpoint, status);
}

static void send_json(struct conn* c, int status, json_t* j) {
    char* s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s == NULL) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        s = strdup(oom);
        status = 500;
        if (s == NULL) return;
    }
    queue(c, status, "application/json", s, strlen(s));
}

static void send_error(struct conn* c, const struct srv_error* e) { send_json(c, e->status, srv_error_json(e)); }

static void send_error_msg(struct conn* c, int status, const char* type, const char* code, const char* fmt, const char* arg) {
    struct srv_error e;
    srv_error_set(&e, status, type, code, NULL, fmt, arg);
    send_error(c, &e);
}

/* ---- the engine's callbacks (request mutex held) ------------------------------------ */

static void notify(struct srv_request* req) {
    if (req->suspended && req->conn != NULL && (req->params.stream || req->done)) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
    }
}

static int peer_gone(struct srv_request* req) {
    if (!req->suspended || req->conn == NULL) return 0; /* libmicrohttpd watches it */
    const union MHD_ConnectionInfo* ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    char byte;
    return recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0; /* end of stream */
}

/* ---- streams ------------------------------------------------------------------------ */

static ssize_t stream_read(void* cls, uint64_t pos, char* buf, size_t max) {
    struct stream* st = cls;
    (void) pos;
    for (;;) {
        if (st->off < st->out.len) {
            const size_t n = st->out.len - st->off < max ? st->out.len - st->off : max;
            memcpy(buf, st->out.data + st->off, n);
            st->off += n;
            return (ssize_t) n;
        }
        st->out.len = st->off = 0;
        if (st->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        struct srv_request* req = st->req;
        pthread_mutex_lock(&req->mu);
        struct srv_event* ev = NULL;
        const size_t n = srv_request_take_events(req, &ev);
        if (n == 0) { /* nothing yet: wait for the engine to resume us */
            req->suspended = true;
            MHD_suspend_connection(st->mc);
            pthread_mutex_unlock(&req->mu);
            return 0;
        }
        pthread_mutex_unlock(&req->mu);
        srv_format_stream(req, ev, n, &st->seq, &st->out);
        for (size_t i = 0; i < n; i++) st->finished |= ev[i].type == srv_event_done;
        srv_events_free(ev, n);
    }
}

static void stream_free(void* cls) {
    struct stream* st = cls;
    srv_request_release(st->req);
    srv_buf_free(&st->out);
    free(st);
}

static void start_stream(struct conn* c, struct srv_request* req) {
    struct stream* st = calloc(1, sizeof(*st));
    if (st == NULL) {
        send_error_msg(c, 500, "server_error", NULL, "%s", "out of memory");
        return;
    }
    st->h = c->h;
    st->mc = c->mc;
    st->req = req;
    srv_request_retain(req);
    srv_format_stream_begin(req, &st->seq, &st->out);
    struct MHD_Response* r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (r == NULL) {
        stream_free(st);
        send_error_msg(c, 500, "server_error", NULL, "%s", "out of memory");
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_queue_response(c->mc, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    c->responded = true;
    srv_metrics_request(c->h->metrics, c->endpoint, 200);
}

/* ---- endpoints ---------------------------------------------------------------------- */

static void generate(struct conn* c) {
    struct srv_http* h = c->h;
    const enum srv_api api = c->route == route_chat ? srv_api_chat
                             : c->route == route_responses ? srv_api_responses : srv_api_completions;
    struct srv_error err;
    struct srv_request* req = NULL;
    if (!srv_api_prepare(&h->api, api, c->body.data ? c->body.data : "", c->body.len, &req, &err)) {
        send_error(c, &err);
        return;
    }
    req->t_arrival = c->t_arrival;
    req->deadline = h->timeout_s ? c->t_arrival + (double) h->timeout_s : 1e300;
    req->notify = notify;
    req->peer_gone = peer_gone;
    req->conn = c->mc;
    const enum srv_submit sub = srv_scheduler_submit(h->scheduler, req);
    if (sub != srv_submit_ok) {
        if (sub == srv_submit_full) {
            send_error_msg(c, 429, "rate_limit_error", "queue_full", "%s",
                           "The server's request queue is full (--max-queue); retry later");
        } else {
            send_error_msg(c, 503, "server_error", "server_shutdown", "%s", "The server is shutting down");
        }
        srv_request_release(req);
        return;
    }
    c->req = req; /* the connection's reference */
    atomic_fetch_add(&h->active, 1);
    if (req->params.stream) {
        start_stream(c, req);
        return;
    }
    pthread_mutex_lock(&req->mu);
    if (!req->done) {
        req->suspended = true;
        MHD_suspend_connection(c->mc);
        pthread_mutex_unlock(&req->mu);
        return; /* the engine resumes us; the handler runs again */
    }
    pthread_mutex_unlock(&req->mu);
}

/* A finished non-streamed generation. */
static void send_result(struct conn* c) {
    struct srv_request* req = c->req;
    if (req->result.error.status != 0) {
        send_error(c, &req->result.error);
    } else {
        send_json(c, 200, srv_format_response(req));
    }
}

static void models(struct conn* c) {
    send_json(c, 200, json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id", c->h->api.model_id,
                                "object", "model", "created", (json_int_t) c->h->started, "owned_by", "gptoss"));
}

static void metrics(struct conn* c) {
    struct srv_buf b = {0};
    size_t queued = 0, running = 0;
    struct gptoss_batch_info kv;
    srv_scheduler_counts(c->h->scheduler, &queued, &running, &kv);
    uint64_t memory[2];
    const bool have_memory = srv_scheduler_memory(c->h->scheduler, &memory[0], &memory[1]);
    srv_metrics_render(c->h->metrics, queued, running, &kv, have_memory ? memory : NULL, &b);
    if (b.oom || b.data == NULL) {
        srv_buf_free(&b);
        send_error_msg(c, 500, "server_error", NULL, "%s", "out of memory");
        return;
    }
    queue(c, 200, "text/plain; version=0.0.4", b.data, b.len); /* takes the buffer */
}

static void apply_template(struct conn* c) {
    struct srv_error err;
    json_t* out = NULL;
    if (!srv_api_render(&c->h->api, c->body.data ? c->body.data : "", c->body.len, &out, &err)) {
        send_error(c, &err);
        return;
    }
    send_json(c, 200, out);
}

/* ---- the access handler ------------------------------------------------------------- */

/* Constant time in the key's content: every byte of the presented token is compared. */
static bool key_matches(const char* key, const char* given) {
    const size_t kl = strlen(key), gl = strlen(given);
    unsigned diff = kl != gl;
    for (size_t i = 0; i < gl; i++) diff |= (unsigned char) given[i] ^ (unsigned char) key[i % kl];
    return diff == 0;
}

static bool authorized(struct conn* c) {
    if (c->h->api_key == NULL || c->route == route_health) return true;
    const char* auth = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) return false;
    return key_matches(c->h->api_key, auth + 7);
}

/* The first call for a request: route, method, key and declared size. */
static void begin(struct conn* c, const char* url, const char* method) {
    bool path_known = false;
    c->endpoint = "other";
    for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
        if (strcmp(url, routes[i].path) != 0) continue;
        path_known = true;
        c->endpoint = routes[i].path;
        if (strcmp(method, routes[i].method) == 0) c->route = routes[i].route;
    }
    if (!path_known) {
        send_error_msg(c, 404, "invalid_request_error", "not_found", "Unknown route %.200s", url);
    } else if (c->route == route_none) {
        send_error_msg(c, 405, "invalid_request_error", "method_not_allowed", "Method %.20s not allowed here", method);
    } else if (!authorized(c)) {
        send_error_msg(c, 401, "authentication_error", "invalid_api_key", "%s",
                       "Missing or incorrect API key (Authorization: Bearer KEY)");
    } else {
        const char* len = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len != NULL && strtoull(len, NULL, 10) > c->h->max_body) c->too_large = true;
    }
}

static void body_too_large(struct conn* c) {
    char msg[96];
    snprintf(msg, sizeof(msg), "The request body is larger than %zu bytes", c->h->max_body);
    send_error_msg(c, 413, "invalid_request_error", "request_too_large", "%s", msg);
}

static enum MHD_Result handler(void* cls, struct MHD_Connection* mc, const char* url, const char* method,
                               const char* version, const char* upload_data, size_t* upload_size, void** con_cls) {
    struct srv_http* h = cls;
    (void) version;
    struct conn* c = *con_cls;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL) return MHD_NO; /* closes the connection */
        c->h = h;
        c->mc = mc;
        c->t_arrival = srv_now();
        *con_cls = c;
        begin(c, url, method);
        if (c->too_large && !c->responded) body_too_large(c); /* declared too large: refuse before reading */
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!c->responded && !c->too_large) {
            if (c->body.len + *upload_size > h->max_body) {
                c->too_large = true;
                srv_buf_free(&c->body);
            } else {
                srv_buf_put(&c->body, upload_data, *upload_size);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->responded) return MHD_YES;
    if (c->req != NULL) { /* resumed: the generation is done */
        send_result(c);
        return MHD_YES;
    }
    if (c->too_large) {
        body_too_large(c);
        return MHD_YES;
    }
    if (c->body.oom) {
        send_error_msg(c, 500, "server_error", NULL, "%s", "out of memory");
        return MHD_YES;
    }
    switch (c->route) {
    case route_health: send_json(c, 200, json_pack("{s:s}", "status", "ok")); break;
    case route_models: models(c); break;
    case route_metrics: metrics(c); break;
    case route_template: apply_template(c); break;
    default: generate(c); break;
    }
    return MHD_YES;
}

static void completed(void* cls, struct MHD_Connection* mc, void** con_cls, enum MHD_RequestTerminationCode toe) {
    (void) cls;
    (void) mc;
    (void) toe;
    struct conn* c = *con_cls;
    if (c == NULL) return;
    if (c->req != NULL) {
        struct srv_request* req = c->req;
        pthread_mutex_lock(&req->mu);
        req->conn = NULL;
        req->suspended = false;
        if (!req->done) atomic_store(&req->cancel, 1); /* the client left before the end */
        pthread_mutex_unlock(&req->mu);
        srv_request_release(req);
        atomic_fetch_sub(&c->h->active, 1);
    }
    srv_buf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

static void log_error(void* cls, const char* fmt, va_list ap) {
    (void) cls;
    fprintf(stderr, "gptoss serve: http: ");
    vfprintf(stderr, fmt, ap);
}

/* ---- start / stop ------------------------------------------------------------------- */

bool srv_http_start(const struct srv_http_options* o, const struct srv_api_config* api, struct srv_scheduler* scheduler,
                    struct srv_metrics* metrics, struct srv_http** out, uint16_t* port_out, char* why, size_t why_size) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo* ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned) o->port);
    const int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(why, why_size, "--host %s: %s", o->host, gai_strerror(gai));
        return false;
    }
    struct srv_http* h = calloc(1, sizeof(*h));
    if (h == NULL) {
        freeaddrinfo(ai);
        snprintf(why, why_size, "out of memory");
        return false;
    }
    h->api = *api;
    h->scheduler = scheduler;
    h->metrics = metrics;
    h->api_key = o->api_key ? strdup(o->api_key) : NULL;
    h->max_body = o->max_body;
    h->timeout_s = o->timeout_s;
    h->started = (int64_t) time(NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, o->port, NULL, NULL, handler, h, MHD_OPTION_EXTERNAL_LOGGER, log_error, h,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, o->threads,
                                 MHD_OPTION_CONNECTION_LIMIT, o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                                 o->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, h, MHD_OPTION_END);
    const int saved = errno;
    freeaddrinfo(ai);
    if (h->daemon == NULL) {
        snprintf(why, why_size, "cannot listen on %s port %u: %s", o->host, (unsigned) o->port,
                 saved ? strerror(saved) : "libmicrohttpd refused the options");
        free(h->api_key);
        free(h);
        return false;
    }
    const union MHD_DaemonInfo* di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = di ? di->port : o->port;
    *out = h;
    return true;
}

unsigned srv_http_active(struct srv_http* h) { return atomic_load(&h->active); }

void srv_http_stop(struct srv_http* h) {
    if (h == NULL) return;
    MHD_stop_daemon(h->daemon);
    free(h->api_key);
    free(h);
}
