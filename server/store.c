/* Finished responses kept for previous_response_id: at most max_entries and about
 * max_bytes (their JSON size); the oldest go first. */
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct entry {
    char id[48];
    json_t* conversation; /* input items then output items */
    size_t bytes;
};

struct srv_store {
    pthread_mutex_t mu;
    struct entry* ring;
    size_t cap, head, count; /* oldest at head */
    size_t bytes, max_bytes;
};

struct srv_store* srv_store_create(size_t max_entries, size_t max_bytes) {
    struct srv_store* s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    s->ring = calloc(max_entries ? max_entries : 1, sizeof(*s->ring));
    if (s->ring == NULL) {
        free(s);
        return NULL;
    }
    s->cap = max_entries ? max_entries : 1;
    s->max_bytes = max_bytes;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

static void drop_oldest(struct srv_store* s) {
    struct entry* e = &s->ring[s->head];
    json_decref(e->conversation);
    s->bytes -= e->bytes;
    memset(e, 0, sizeof(*e));
    s->head = (s->head + 1) % s->cap;
    s->count--;
}

void srv_store_free(struct srv_store* s) {
    if (s == NULL) return;
    while (s->count > 0) drop_oldest(s);
    pthread_mutex_destroy(&s->mu);
    free(s->ring);
    free(s);
}

void srv_store_put(struct srv_store* s, const char* id, json_t* input, json_t* output) {
    json_t* conv = json_deep_copy(input);
    if (conv == NULL) return;
    json_array_extend(conv, output);
    char* dump = json_dumps(conv, JSON_COMPACT);
    const size_t bytes = dump ? strlen(dump) : 0;
    free(dump);
    pthread_mutex_lock(&s->mu);
    if (bytes > s->max_bytes) { /* too large to keep */
        pthread_mutex_unlock(&s->mu);
        json_decref(conv);
        return;
    }
    while (s->count > 0 && (s->count == s->cap || s->bytes + bytes > s->max_bytes)) drop_oldest(s);
    struct entry* e = &s->ring[(s->head + s->count) % s->cap];
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->conversation = conv;
    e->bytes = bytes;
    s->bytes += bytes;
    s->count++;
    pthread_mutex_unlock(&s->mu);
}

json_t* srv_store_get_conversation(struct srv_store* s, const char* id) {
    json_t* out = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->count && out == NULL; i++) {
        const struct entry* e = &s->ring[(s->head + i) % s->cap];
        if (strcmp(e->id, id) == 0) out = json_deep_copy(e->conversation);
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}
