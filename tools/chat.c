/* The harmony conversation of `gptoss chat` (chat.h). */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

static enum gptoss_status reserve_ids(struct chat* c, size_t extra) {
    if (c->ids_cap - c->num_ids >= extra) return gptoss_status_success;
    size_t cap = c->ids_cap ? c->ids_cap : 1024;
    while (cap - c->num_ids < extra) {
        if (cap > SIZE_MAX / 2 / sizeof(uint32_t)) return gptoss_status_insufficient_memory;
        cap *= 2;
    }
    uint32_t* ids = realloc(c->ids, cap * sizeof(uint32_t));
    if (ids == NULL) return gptoss_status_insufficient_memory;
    c->ids = ids;
    c->ids_cap = cap;
    return gptoss_status_success;
}

/* Number of tokens of text (nothing written). */
static enum gptoss_status count_text(const struct chat* c, const char* text, size_t size, size_t* n) {
    enum gptoss_status st = gptoss_tokenizer_encode(c->tokenizer, text, size, NULL, 0, n);
    return st == gptoss_status_insufficient_memory ? gptoss_status_success : st;
}

enum gptoss_status chat_init(struct chat* c, gptoss_tokenizer_t tokenizer) {
    memset(c, 0, sizeof(*c));
    c->tokenizer = tokenizer;
    const enum gptoss_special_token need[5] = {gptoss_special_token_start, gptoss_special_token_message,
                                               gptoss_special_token_end, gptoss_special_token_channel,
                                               gptoss_special_token_return};
    uint32_t* const dst[5] = {&c->start, &c->message, &c->end, &c->channel, &c->ret};
    for (int i = 0; i < 5; i++) {
        enum gptoss_status st = gptoss_tokenizer_get_special_token_id(tokenizer, need[i], dst[i]);
        if (st != gptoss_status_success) return gptoss_status_invalid_argument;
    }
    /* optional: a reply may end with <|call|>; <|constrain|> may appear in headers */
    if (gptoss_tokenizer_get_special_token_id(tokenizer, gptoss_special_token_call, &c->call) != gptoss_status_success) {
        c->call = UINT32_MAX;
    }
    if (gptoss_tokenizer_get_special_token_id(tokenizer, gptoss_special_token_constrain, &c->constrain) !=
        gptoss_status_success) {
        c->constrain = UINT32_MAX;
    }
    return gptoss_tokenizer_encode(tokenizer, "assistant", 9, c->assistant, 8, &c->assistant_len);
}

void chat_free(struct chat* c) {
    free(c->ids);
    free(c->turns);
    memset(c, 0, sizeof(*c));
}

enum gptoss_status chat_add_message(struct chat* c, const char* role, const char* text, size_t text_size) {
    size_t nr = 0, nt = 0;
    enum gptoss_status st = count_text(c, role, strlen(role), &nr);
    if (st == gptoss_status_success) st = count_text(c, text, text_size, &nt);
    if (st == gptoss_status_success) st = reserve_ids(c, nr + nt + 3);
    if (st != gptoss_status_success) return st;
    uint32_t* p = c->ids + c->num_ids;
    size_t n;
    *p++ = c->start;
    gptoss_tokenizer_encode(c->tokenizer, role, strlen(role), p, nr, &n);
    p += nr;
    *p++ = c->message;
    gptoss_tokenizer_encode(c->tokenizer, text, text_size, p, nt, &n);
    p += nt;
    *p = c->end;
    c->num_ids += nr + nt + 3;
    return gptoss_status_success;
}

enum gptoss_status chat_begin_turn(struct chat* c) {
    if (c->num_turns == c->turns_cap) {
        const size_t cap = c->turns_cap ? 2 * c->turns_cap : 16;
        size_t* t = realloc(c->turns, cap * sizeof(size_t));
        if (t == NULL) return gptoss_status_insufficient_memory;
        c->turns = t;
        c->turns_cap = cap;
    }
    c->turns[c->num_turns++] = c->num_ids;
    return gptoss_status_success;
}

/* The runs of final-channel content in a reply: their count, and each run in runs (if not NULL). */
struct content_run {
    size_t begin, end;
};
static size_t final_runs(const struct chat* c, const uint32_t* reply, size_t n, struct content_run* runs) {
    struct chat_parser p;
    chat_parser_reset(&p);
    size_t count = 0, begin = SIZE_MAX;
    for (size_t i = 0; i <= n; i++) {
        const int final_text = i < n && chat_parse(c, &p, reply[i]) == chat_event_text && p.final;
        if (final_text && begin == SIZE_MAX) begin = i;
        if (!final_text && begin != SIZE_MAX) {
            if (runs != NULL) runs[count] = (struct content_run){begin, i};
            count++;
            begin = SIZE_MAX;
        }
    }
    return count;
}

enum gptoss_status chat_add_reply(struct chat* c, const uint32_t* reply, size_t num_reply) {
    const size_t count = final_runs(c, reply, num_reply, NULL);
    if (count == 0) return gptoss_status_success;
    struct content_run* runs = malloc(count * sizeof(*runs));
    if (runs == NULL) return gptoss_status_insufficient_memory;
    final_runs(c, reply, num_reply, runs);
    size_t nf = 0;
    enum gptoss_status st = count_text(c, "final", 5, &nf);
    size_t total = 0;
    for (size_t k = 0; k < count; k++) total += 4 + c->assistant_len + nf + (runs[k].end - runs[k].begin);
    if (st == gptoss_status_success) st = reserve_ids(c, total);
    if (st == gptoss_status_success) {
        /* <|start|>assistant<|channel|>final<|message|>CONTENT<|end|> */
        for (size_t k = 0; k < count; k++) {
            uint32_t* p = c->ids + c->num_ids;
            size_t n;
            *p++ = c->start;
            memcpy(p, c->assistant, c->assistant_len * sizeof(uint32_t));
            p += c->assistant_len;
            *p++ = c->channel;
            gptoss_tokenizer_encode(c->tokenizer, "final", 5, p, nf, &n);
            p += nf;
            *p++ = c->message;
            memcpy(p, reply + runs[k].begin, (runs[k].end - runs[k].begin) * sizeof(uint32_t));
            p += runs[k].end - runs[k].begin;
            *p++ = c->end;
            c->num_ids = (size_t) (p - c->ids);
        }
    }
    free(runs);
    return st;
}

enum gptoss_status chat_drop_turn(struct chat* c, size_t k) {
    if (k >= c->num_turns) return gptoss_status_invalid_argument;
    const size_t begin = c->turns[k], end = k + 1 < c->num_turns ? c->turns[k + 1] : c->num_ids;
    memmove(c->ids + begin, c->ids + end, (c->num_ids - end) * sizeof(uint32_t));
    c->num_ids -= end - begin;
    for (size_t j = k + 1; j < c->num_turns; j++) c->turns[j - 1] = c->turns[j] - (end - begin);
    c->num_turns--;
    return gptoss_status_success;
}

enum gptoss_status chat_render(const struct chat* c, uint32_t* out, size_t capacity, size_t* num_out) {
    const size_t n = c->num_ids + 1 + c->assistant_len;
    *num_out = n;
    if (capacity < n) return gptoss_status_insufficient_memory;
    memcpy(out, c->ids, c->num_ids * sizeof(uint32_t));
    out[c->num_ids] = c->start;
    memcpy(out + c->num_ids + 1, c->assistant, c->assistant_len * sizeof(uint32_t));
    return gptoss_status_success;
}

void chat_parser_reset(struct chat_parser* p) {
    memset(p, 0, sizeof(*p));
}

enum chat_event chat_parse(const struct chat* c, struct chat_parser* p, uint32_t token) {
    if (token == c->ret || token == c->call) return chat_event_reply_end;
    if (token == c->end || token == c->start) {
        chat_parser_reset(p); /* the next message's header follows */
        return token == c->end ? chat_event_message_end : chat_event_header;
    }
    if (p->in_content) return chat_event_text;
    if (token == c->channel) {
        p->in_channel = 1;
        p->channel_len = 0;
        p->channel[0] = '\0';
    } else if (token == c->message) {
        p->in_content = 1;
        p->in_channel = 0;
        p->final = p->channel_len == 0 || strcmp(p->channel, "final") == 0;
    } else if (token == c->constrain) {
        p->in_channel = 0;
    } else if (p->in_channel) {
        /* the name ends at a space (" to=functions.f", " <|constrain|>json") */
        const void* bytes;
        size_t n;
        if (gptoss_tokenizer_decode(c->tokenizer, token, &bytes, &n) == gptoss_status_success) {
            for (size_t k = 0; k < n && p->in_channel; k++) {
                const char ch = ((const char*) bytes)[k];
                if (ch == ' ') {
                    p->in_channel = 0;
                } else if (p->channel_len + 1 < sizeof(p->channel)) {
                    p->channel[p->channel_len++] = ch;
                    p->channel[p->channel_len] = '\0';
                }
            }
        }
    }
    return chat_event_header;
}
