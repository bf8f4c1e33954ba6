/* The conversation of `gptoss chat` in the harmony format, as token ids.
 *
 * The history is a list of rendered messages, <|start|>ROLE<|message|>TEXT<|end|> (an
 * assistant message: <|start|>assistant<|channel|>final<|message|>TEXT<|end|>), back to
 * back: first the system message and the optional developer message, which are kept for
 * the whole session, then the turns. A turn is the user's message and the final-channel
 * message(s) of the assistant's reply: the reply's analysis is dropped once the turn is
 * over, as the harmony format prescribes for earlier turns. chat_render gives the history
 * followed by <|start|>assistant, the prompt of the next reply.
 *
 * Functions return a status; on failure the history is unchanged. */
#ifndef GPTOSS_TOOLS_CHAT_H
#define GPTOSS_TOOLS_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/engine.h>

struct chat {
    gptoss_tokenizer_t tokenizer; /* borrowed: must outlive the chat */
    /* harmony special tokens */
    uint32_t start, message, end, channel, ret, call, constrain;
    uint32_t assistant[8]; /* "assistant" as text tokens */
    size_t assistant_len;
    uint32_t* ids;         /* the rendered history */
    size_t num_ids, ids_cap;
    size_t* turns;         /* turns[k]: index in ids where turn k starts (its user message) */
    size_t num_turns, turns_cap;
};

/* Finds the special tokens; invalid_argument when the tokenizer lacks one of start,
 * message, end, channel, return. */
enum gptoss_status chat_init(struct chat* c, gptoss_tokenizer_t tokenizer);
void chat_free(struct chat* c);

/* Appends <|start|>ROLE<|message|>TEXT<|end|> ("system", "developer", "user"). */
enum gptoss_status chat_add_message(struct chat* c, const char* role, const char* text, size_t text_size);
/* Starts a turn: the messages appended from now on (the user's, then the reply's) belong
 * to it. */
enum gptoss_status chat_begin_turn(struct chat* c);
/* Adds a reply, the tokens generated after chat_render's prompt (complete or cut off:
 * interrupted, -n, full context): keeps the content of its final-channel messages (and of
 * messages without a channel), each as a closed final message; drops the rest. */
enum gptoss_status chat_add_reply(struct chat* c, const uint32_t* reply, size_t num_reply);
/* Removes turn k (0 = the oldest) and its messages; invalid_argument if there is none. */
enum gptoss_status chat_drop_turn(struct chat* c, size_t k);
/* Writes the history and <|start|>assistant to out (at most capacity ids) and the count
 * to *num_out; insufficient_memory (count set) when capacity is too small. */
enum gptoss_status chat_render(const struct chat* c, uint32_t* out, size_t capacity, size_t* num_out);

/* A reply's tokens, one at a time, as its harmony messages. */
enum chat_event {
    chat_event_header,      /* part of a message header (role, channel, recipient) */
    chat_event_text,        /* message content; parser.final says if it is final-channel */
    chat_event_message_end, /* <|end|>: the message ended, another may follow */
    chat_event_reply_end,   /* <|return|> or <|call|>: the reply ended */
};
struct chat_parser {
    int in_content;   /* after <|message|> */
    int in_channel;   /* reading the channel name after <|channel|> */
    int final;        /* the message's channel is "final" (or it has none) */
    char channel[32]; /* channel name, truncated */
    size_t channel_len;
};
/* Starts a reply: the header of its first message follows the prompt's <|start|>assistant. */
void chat_parser_reset(struct chat_parser* p);
enum chat_event chat_parse(const struct chat* c, struct chat_parser* p, uint32_t token);

#endif
