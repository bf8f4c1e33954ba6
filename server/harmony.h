/*
 * The harmony format of gpt-oss: rendering OpenAI requests into prompt token ids and
 * parsing the model's completion tokens back into messages, token by token.
 *
 * The reference is OpenAI's openai-harmony package (HarmonyGptOss encoding):
 * gptoss_harmony_render_conversation gives the ids of its render_conversation_for_completion
 * (next role: assistant; auto_drop_analysis on), the parser follows its StreamableParser
 * (strict by default) token for token, including its error cases.
 *
 * Layers:
 *   request (Chat Completions or Responses, jansson)
 *     -> gptoss_harmony_conversation_from_chat / _from_responses
 *   harmony conversation (JSON in openai-harmony's own Conversation form)
 *     -> gptoss_harmony_render_conversation
 *   prompt token ids, ending with <|start|>assistant
 *   ... the engine samples ...
 *   completion tokens -> gptoss_harmony_parser_feed (one at a time) -> events
 *
 * Conventions: every call checks its arguments; on failure it returns a status other than
 * gptoss_status_success, fills *error_out (when not NULL) and leaves the other outputs
 * untouched. invalid_argument: the input is wrong (the message names the JSON path of the
 * bad value, e.g. "messages[3].tool_call_id", also given alone in error->param);
 * unsupported_argument: valid OpenAI input this renderer does not handle (image parts,
 * non-function tools); insufficient_memory. Returned JSON is a new reference (json_decref
 * it), returned token arrays are malloc'd (free them). Inputs are only read. Functions are
 * thread-safe; a parser is used by one thread at a time.
 *
 * ---- How OpenAI requests map to harmony (Chat Completions) ----------------------------
 * system message: the render options' model identity, knowledge cutoff and current date,
 *   "Reasoning: <effort>" (request.reasoning_effort, else the options' default), and the
 *   channels analysis, commentary, final (required); harmony adds "Calls to these tools
 *   must go to the commentary channel: 'functions'." when function tools are listed.
 * developer message: the contents of the system and developer messages that open
 *   request.messages, joined by a blank line ("\n\n"), as "# Instructions"; then the
 *   request's function tools as the `functions` namespace ("# Tools"). Rendered when
 *   either exists. A system or developer message later in the conversation becomes its
 *   own developer message (instructions only) at its place.
 * user: one user message; content is a string or text parts (concatenated); other part
 *   types are unsupported_argument; `name` is ignored.
 * assistant: reasoning_content (a non-empty string) -> an analysis message; then content:
 *   on the final channel, or, when the message also has tool_calls, on the commentary
 *   channel (a preamble) if non-empty; then each tool call ->
 *   `assistant to=functions.NAME<|channel|>commentary <|constrain|>json` with the
 *   arguments string verbatim, ended by <|call|>. An assistant message needs content,
 *   reasoning_content or tool_calls.
 * tool: tool_call_id must name a tool call of an earlier assistant message; becomes
 *   `functions.NAME to=assistant<|channel|>commentary` with the content (string or
 *   text parts).
 * tools: [{"type":"function","function":{"name","description","parameters"}}]; names
 *   match [A-Za-z0-9_-]{1,64}; parameters (a JSON-schema object, optional) become
 *   harmony's TypeScript-like signature exactly as openai-harmony writes it.
 * tool_choice: "auto" and "required" list all tools ("required" is not enforced by the
 *   prompt); "none" lists none; {"type":"function","function":{"name":N}} lists only N
 *   (forcing the call is the sampler's business: see
 *   gptoss_harmony_render_tool_call_header).
 * Earlier turns' reasoning: harmony's auto-drop rule applies to the rendered list: when
 *   the last assistant message is on the final channel, analysis messages before the
 *   first final message are dropped.
 * Responses API: `instructions` first, then leading system/developer input messages,
 *   as above; input is a string (one user message) or items: message (roles user,
 *   assistant -> final channel, system, developer; content a string or
 *   input_text/output_text parts), reasoning (its reasoning_text content -> analysis),
 *   function_call, function_call_output (call_id must name an earlier function_call);
 *   tools in the flat form {"type":"function","name",...}; tool_choice as above in its
 *   Responses form; reasoning.effort.
 */
#ifndef GPTOSS_SERVER_HARMONY_H
#define GPTOSS_SERVER_HARMONY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <gptoss/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What failed: param is the JSON path of the bad value ("" when the failure is not about
 * one value), message a sentence that starts with the path. Always NUL-terminated. */
struct gptoss_harmony_error {
    char param[160];
    char message[480];
};

enum gptoss_harmony_effort {
    gptoss_harmony_effort_low = 1,
    gptoss_harmony_effort_medium = 2,
    gptoss_harmony_effort_high = 3,
};

/* The system message's fixed parts. NULL strings are left out of the message. */
struct gptoss_harmony_render_options {
    const char* model_identity;   /* default "You are ChatGPT, a large language model trained by OpenAI." */
    const char* knowledge_cutoff; /* default "2024-06" */
    const char* current_date;     /* default NULL; the server passes today as YYYY-MM-DD */
    enum gptoss_harmony_effort default_effort; /* default medium; used when the request names none */
};

/* Fills *options with the defaults above. */
void gptoss_harmony_render_options_init(struct gptoss_harmony_render_options* options);

/* ---- requests -> harmony conversation ---------------------------------------------- */

/* Maps a Chat Completions request (the JSON object of POST /v1/chat/completions; fields
 * other than messages, tools, tool_choice, reasoning_effort and a json_schema
 * response_format are ignored here; the format goes to the developer content's
 * "response_formats", this project's extension, rendered as "# Response Formats") to a
 * harmony conversation (see the mapping above). options NULL = the defaults.
 * *conversation_out: {"messages":[...]} in openai-harmony's Conversation form. */
enum gptoss_status gptoss_harmony_conversation_from_chat(const json_t* request,
                                                         const struct gptoss_harmony_render_options* options,
                                                         json_t** conversation_out,
                                                         struct gptoss_harmony_error* error_out);

/* The same for a Responses API request (input, instructions, tools, tool_choice,
 * reasoning.effort, a json_schema text.format). */
enum gptoss_status gptoss_harmony_conversation_from_responses(const json_t* request,
                                                              const struct gptoss_harmony_render_options* options,
                                                              json_t** conversation_out,
                                                              struct gptoss_harmony_error* error_out);

/* ---- harmony conversation -> prompt tokens ----------------------------------------- */

/* Renders a harmony conversation for completion by the assistant: the ids of every
 * message (harmony's auto-drop rule applied), then <|start|>assistant. `conversation` is
 * openai-harmony's Conversation JSON: {"messages": [{"role": "system"|"developer"|"user"|
 * "assistant"|"tool", "name", "recipient", "channel", "content_type" (strings or null),
 * "content": a string or a list of {"type":"text","text"} | {"type":"system_content",
 * "model_identity", "reasoning_effort" ("Low"|"Medium"|"High"), "conversation_start_date",
 * "knowledge_cutoff", "channel_config": {"valid_channels", "channel_required"}, "tools"} |
 * {"type":"developer_content", "instructions", "tools", "response_formats"}}]}, tools being
 * {NAMESPACE: {"name", "description", "tools": [{"name", "description", "parameters"}]}},
 * response_formats (this project's extension) [{"name", "description", "schema"}].
 * Missing and null fields are absent. tokenizer: the model's (o200k_harmony).
 * *tokens_out (malloc'd, free it) holds *num_tokens_out ids. */
enum gptoss_status gptoss_harmony_render_conversation(gptoss_tokenizer_t tokenizer, const json_t* conversation,
                                                      uint32_t** tokens_out, size_t* num_tokens_out,
                                                      struct gptoss_harmony_error* error_out);

/* The ids of `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>`, the
 * header the model writes for a call of NAME: appended to the prompt (and fed to the
 * parser) it forces that call (tool_choice naming a function). *tokens_out malloc'd. */
enum gptoss_status gptoss_harmony_render_tool_call_header(gptoss_tokenizer_t tokenizer, const char* name,
                                                          uint32_t** tokens_out, size_t* num_tokens_out,
                                                          struct gptoss_harmony_error* error_out);

/* ---- completion tokens -> messages (incremental) ----------------------------------- */

typedef struct gptoss_harmony_parser* gptoss_harmony_parser_t;

/* Parser flag: openai-harmony's strict=False. A stop token inside the first message's
 * header (the role given at creation) then ends that message, the header's text after
 * the channel becoming its content, instead of being kept as a header token. */
#define GPTOSS_HARMONY_PARSE_LENIENT 1u

/* A message header. Strings are NULL when absent; content_type keeps the constrain
 * marker ("<|constrain|>json"). role: "assistant", "user", "system", "developer" or
 * "tool"; name: the author name of tool messages ("functions.get_weather"). */
struct gptoss_harmony_header {
    const char* role;
    const char* name;
    const char* channel;
    const char* recipient;
    const char* content_type;
};

enum gptoss_harmony_event_type {
    /* A header was read (<|message|>): `header` is the new message's. */
    gptoss_harmony_event_message_begin = 1,
    /* New content: text/text_size are complete UTF-8 characters (bytes of a character
     * split across tokens are held back until it is complete; invalid bytes become
     * U+FFFD, as openai-harmony does). */
    gptoss_harmony_event_content_delta = 2,
    /* The message ended: text/text_size is its whole content (the deltas concatenated,
     * plus U+FFFD for any incomplete tail); `stop` says how. */
    gptoss_harmony_event_message_end = 3,
    /* The stream is malformed here (openai-harmony raises): `error` says why; text holds
     * the decoded text that was dropped (the stray token, or the header), with U+FFFD for
     * invalid bytes, so that a caller may still show it. The parser goes on in the state
     * openai-harmony leaves: after a stray token it still waits for <|start|>. */
    gptoss_harmony_event_error = 4,
};

enum gptoss_harmony_stop {
    gptoss_harmony_stop_none = 0, /* gptoss_harmony_parser_finish cut the message */
    gptoss_harmony_stop_end = 1,  /* <|end|> */
    gptoss_harmony_stop_return = 2, /* <|return|>: the assistant is done */
    gptoss_harmony_stop_call = 3, /* <|call|>: a tool call, waiting for the result */
};

struct gptoss_harmony_event {
    enum gptoss_harmony_event_type type;
    const struct gptoss_harmony_header* header; /* begin, delta, end: the current message */
    const char* text;                          /* delta, end, error (may be empty) */
    size_t text_size;
    enum gptoss_harmony_stop stop;             /* end */
    const char* error;                         /* error */
};

/* Creates a parser for completion tokens. role: the role whose header the completion
 * starts in (the prompt ends with <|start|>assistant: pass "assistant"), or NULL when
 * the tokens start with <|start|>. flags: 0 or GPTOSS_HARMONY_PARSE_LENIENT. The parser
 * keeps a reference to the tokenizer. Special tokens decode to their o200k_harmony names
 * (ids up to 201088, "<|reserved_N|>" for the unnamed ones); larger ids are invalid. */
enum gptoss_status gptoss_harmony_parser_create(gptoss_tokenizer_t tokenizer, const char* role, uint32_t flags,
                                                gptoss_harmony_parser_t* parser_out);

/* Feeds one token. *events_out points at *num_events_out events (0 to 3), valid until the
 * next call on the parser. A malformed stream gives an error event, not a failed status;
 * the status fails only for a NULL argument (invalid_argument) or memory
 * (insufficient_memory; the parser then refuses further calls with invalid_state and is
 * only good for release). */
enum gptoss_status gptoss_harmony_parser_feed(gptoss_harmony_parser_t parser, uint32_t token,
                                              const struct gptoss_harmony_event** events_out,
                                              size_t* num_events_out);

/* End of stream (openai-harmony's process_eos): a message in progress ends with
 * stop_none; inside a header it is an error event. */
enum gptoss_status gptoss_harmony_parser_finish(gptoss_harmony_parser_t parser,
                                                const struct gptoss_harmony_event** events_out,
                                                size_t* num_events_out);

/* The messages ended so far, in the Conversation message form ({"role", "name",
 * "channel", "recipient", "content_type" when present, "content": [{"type":"text",
 * "text"}]}), as a new JSON array. */
enum gptoss_status gptoss_harmony_parser_get_messages(gptoss_harmony_parser_t parser, json_t** messages_out);

enum gptoss_status gptoss_harmony_parser_release(gptoss_harmony_parser_t parser);

/* A whole completion at once (openai-harmony's parse_messages_from_completion_tokens):
 * feeds every token, then the end of stream; the first error event fails the call with
 * invalid_argument ("tokens[i]: why"). *messages_out as gptoss_harmony_parser_get_messages. */
enum gptoss_status gptoss_harmony_parse_completion(gptoss_tokenizer_t tokenizer, const uint32_t* tokens,
                                                   size_t num_tokens, const char* role, uint32_t flags,
                                                   json_t** messages_out, struct gptoss_harmony_error* error_out);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_SERVER_HARMONY_H */
