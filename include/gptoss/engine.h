/*
 * gpt-oss-kernels engine: models, tokenizer, contexts, samplers.
 *
 * Names follow upstream's gpt-oss.h (gptoss_model_create_from_file, gptoss_context_*,
 * gptoss_sampler_*), so code written against it ports by relinking; the backend choice
 * is added. All objects are reference counted: *_retain adds a reference, *_release drops
 * one and frees at zero (NULL accepted). Functions return a status; outputs (*_out) are
 * written only on success; gptoss_last_error() says what failed.
 *
 * Threading: a model is read-only after creation and may be shared by contexts and
 * batches on any number of threads; a context, or a batch with its sequences, is used by
 * one thread at a time.
 */
#ifndef GPTOSS_ENGINE_H
#define GPTOSS_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gptoss/kernels.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gptoss_model* gptoss_model_t;
typedef struct gptoss_tokenizer* gptoss_tokenizer_t;
typedef struct gptoss_context* gptoss_context_t;
typedef struct gptoss_sampler* gptoss_sampler_t;
typedef struct gptoss_batch* gptoss_batch_t;
typedef struct gptoss_sequence* gptoss_sequence_t;

/* Special tokens, as upstream's enum. */
enum gptoss_special_token {
    gptoss_special_token_invalid = 0,
    gptoss_special_token_return = 1,
    gptoss_special_token_start = 2,
    gptoss_special_token_message = 3,
    gptoss_special_token_end = 4,
    gptoss_special_token_refusal = 5,
    gptoss_special_token_constrain = 6,
    gptoss_special_token_channel = 7,
    gptoss_special_token_call = 8,
    gptoss_special_token_untrusted = 9,
    gptoss_special_token_end_untrusted = 10,
    gptoss_special_token_max,
};

/* ---- models ------------------------------------------------------------------------ */

/* Opens an upstream model file ("GPT-OSS v1.0", MODEL_FORMAT.md) and prepares it on
 * `backend` (borrowed: it must outlive the model): CPU maps the file read-only; CUDA uploads
 * the weights once (progress bar on stderr). Every size, offset, count and UUID of the
 * file is checked: a bad file gives io_error or invalid_argument, never a crash. */
enum gptoss_status gptoss_model_create_from_file(const char* path, gptoss_backend_t backend,
                                                 gptoss_model_t* model_out);

/* Flags of gptoss_model_create_from_file_ex. */
enum {
    /* CPU: copy the weights into the backend's own memory (2 MiB pages where the system
     * allows transparent huge pages) instead of reading them through the file mapping.
     * Decode streams every weight once per token; with 4 KiB page-cache pages each 4 KiB
     * costs a TLB miss and stops the hardware prefetchers, so decode is faster
     * (docs/RESULTS.md). Costs a longer load (the whole file is read at
     * once) and RAM for a private copy. CUDA always copies (uploads); the flag is ignored. */
    GPTOSS_MODEL_NO_MMAP = 1u << 0,
};
/* gptoss_model_create_from_file with flags (0 = the same). */
enum gptoss_status gptoss_model_create_from_file_ex(const char* path, gptoss_backend_t backend, uint32_t flags,
                                                    gptoss_model_t* model_out);
/* Models with random weights made in memory: gptoss_model_create_random, in the offline
 * library (<gptoss/offline.h>). */
enum gptoss_status gptoss_model_get_tokenizer(gptoss_model_t model, gptoss_tokenizer_t* tokenizer_out);
enum gptoss_status gptoss_model_get_max_context_length(gptoss_model_t model, size_t* max_context_length_out);
/* Bytes one decode step (one token, greedy) reads when num_kv_tokens tokens are already
 * cached, from the model's shapes: the embedding row; per layer both norm gains, the qkv
 * weight and bias, the sinks, the output weight and bias, the router weight and bias, the
 * weights, scales and biases of num_active_experts experts, and the f32 K and V rows its
 * attention reads (num_kv_tokens + 1 positions, at most attention_window on the sliding
 * layers); the final norm and the unembedding. Divided into a measured memory bandwidth
 * it gives the decode bound that `gptoss bench` reports. invalid_argument for a NULL
 * argument. */
enum gptoss_status gptoss_model_get_decode_bytes(gptoss_model_t model, size_t num_kv_tokens, uint64_t* bytes_out);
enum gptoss_status gptoss_model_retain(gptoss_model_t model);
enum gptoss_status gptoss_model_release(gptoss_model_t model);

/* ---- tokenizer (o200k_harmony: byte-level BPE by merge rank, o200k pre-tokenisation) -- */

/* Creates the tokenizer from a model file's tokenizer section alone (no weights). */
enum gptoss_status gptoss_tokenizer_create_from_file(const char* path, gptoss_tokenizer_t* tokenizer_out);
enum gptoss_status gptoss_tokenizer_get_special_token_id(gptoss_tokenizer_t tokenizer,
                                                         enum gptoss_special_token token_type,
                                                         uint32_t* token_id_out);
enum gptoss_status gptoss_tokenizer_get_num_text_tokens(gptoss_tokenizer_t tokenizer, uint32_t* num_out);
enum gptoss_status gptoss_tokenizer_get_num_special_tokens(gptoss_tokenizer_t tokenizer, uint32_t* num_out);
enum gptoss_status gptoss_tokenizer_get_num_tokens(gptoss_tokenizer_t tokenizer, uint32_t* num_out);
/* Bytes of a token: text tokens give their bytes, special tokens their name
 * ("<|start|>"). *ptr_out stays valid while the tokenizer lives. */
enum gptoss_status gptoss_tokenizer_decode(gptoss_tokenizer_t tokenizer, uint32_t token_id, const void** ptr_out,
                                           size_t* size_out);
/* Encodes text (ordinary text only: special-token names are encoded as text). Writes up
 * to `capacity` ids to tokens_out and the full count to *num_tokens_out; returns
 * insufficient_memory (with the count set) when capacity is too small. */
enum gptoss_status gptoss_tokenizer_encode(gptoss_tokenizer_t tokenizer, const char* text, size_t text_size,
                                           uint32_t* tokens_out, size_t capacity, size_t* num_tokens_out);
enum gptoss_status gptoss_tokenizer_retain(gptoss_tokenizer_t tokenizer);
enum gptoss_status gptoss_tokenizer_release(gptoss_tokenizer_t tokenizer);

/* ---- contexts ---------------------------------------------------------------------- */

/* A context is one sequence of tokens with its KV cache; a batch (below) runs many
 * sequences in the same forward steps. A context is a batch of one sequence: the same
 * results, bit for bit, as that sequence run in a batch.
 *
 * Numerics: with batch_invariant (below, the default) the logits and tokens of a sequence
 * do not depend on the other sequences of its forward steps nor on how its prompt is split
 * into chunks: bit for bit, on every backend. The CPU backend's kernels never depend on
 * the other rows of a call; on CUDA the matrix products choose their kernel by the number
 * of rows (one-token GEMV, batched GEMV, tensor-core GEMM), which sum in different orders,
 * so there a batch-invariant step computes a sequence's drawn tokens as a token alone is
 * computed and its prompt tokens as a long prompt is (kernels.h, gptoss_backend_set_row_order;
 * README, "Batch invariance"). */

/* Options of a context or a batch (gptoss_context_create_with_params,
 * gptoss_batch_create). Fill them with gptoss_context_params_init (the defaults below),
 * then change fields. The library reads no environment variable: the `gptoss` CLI maps
 * its flags and environment onto these. */
struct gptoss_context_params {
    /* The backend the context computes on; NULL (default) = the model's. A model on a CPU
     * backend may be run by another CPU backend (other threads or instruction set: the
     * weights are host memory); any other backend must be the model's. Borrowed: it must
     * outlive the context. */
    gptoss_backend_t backend;
    /* Tokens a sequence holds; 0 (default) = the model's maximum. */
    size_t context_length;
    /* Token rows per forward step (prefill chunk), at most 65536; 0 (default) = the
     * backend's default, 128 on the CPU, 512 on CUDA, or max_sequences if more; at most
     * the larger of context_length and max_sequences. */
    size_t max_batch_tokens;
    /* The MoE of a group of rows runs the expert-grouped (prefill) kernels from this many
     * rows on, the per-token (decode) kernels below it; 0 (default) = the backend's choice
     * (CPU: never, which keeps results independent of the step; CUDA: from 4 rows per expert
     * on average, i.e. 4 x num_experts / num_active_experts rows: 32 for gpt-oss-20b, 128 for
     * 120b). The two paths sum in different orders: outputs differ in the last bits
     * between values. */
    uint32_t moe_dense_min_rows;
    /* 1 (default): the fused kernels of kernels.h (the MoE gate; the MoE accumulate with
     * the RMSNorm after it); 0: their parts as separate calls. Bit-identical outputs. */
    int fused_ops;
    /* 1 (default): on a backend that records graphs (CUDA), decode steps (one token of each
     * sequence) are recorded once per number of sequences and replayed; 0: direct kernel
     * launches. Bit-identical outputs. */
    int graphs;
    /* 0 (default); 1: per-kernel profile (gptoss_context_print_profile): every kernel call
     * is bracketed by gptoss_backend_synchronize and timed (slower; no graphs). */
    int profile;
    /* Batches: sequences alive at once, at most max_batch_tokens; 0 (default) = 1. A
     * context holds one. */
    uint32_t max_sequences;
    /* Bytes of backend memory for the KV cache, shared by the sequences in blocks of
     * gptoss_batch_info.block_size positions; 0 (default) = enough for max_sequences
     * sequences of context_length tokens. The sliding-window layers keep only their window
     * (and a prefill chunk), so a sequence of n tokens needs about half the memory of n
     * positions of every layer. */
    size_t kv_budget;
    /* Where a token is drawn (enum gptoss_sampling; greedy sampling always takes the
     * argmax of the unembedding on the backend). */
    int sampling;
    /* enum gptoss_batch_invariance: whether a sequence's results are bit for bit the same
     * alone or among others, however its prompt is chunked (above), and how. Default on. */
    int batch_invariant;
};
/* gptoss_context_params.batch_invariant. */
enum gptoss_batch_invariance {
    /* each step's kernels chosen by its number of rows (CUDA: the last bits of a sequence's
     * logits, and at near ties its tokens, depend on the others and on the chunks) */
    gptoss_batch_invariant_off = 0,
    /* prompt tokens in row order many (kernels.h: the prefill kernels' arithmetic), drawn
     * tokens in row order one (each as a token alone: the decode kernels' exact f32 sums),
     * each kernel call once per run of one order; the MoE of prompt rows on the
     * expert-grouped kernels (CUDA), of drawn rows on the per-token ones, whatever
     * moe_dense_min_rows says; attention of drawn rows on the flash-decoding kernel, of a
     * prompt's rows on CUDA's tensor cores (one call per sequence). One sequence decodes as
     * fast as without invariance; many (CUDA) slower: their MoE runs the per-token kernels. */
    gptoss_batch_invariant_on = 1,
    /* drawn tokens in row order many too, but for attention: every matmul and the MoE in the
     * prefill kernels' arithmetic whatever the rows (CUDA: tensor cores, split-bf16
     * activations, within the prefill's tolerances; not the exact f32 decode sums). Many
     * sequences decode on the kernels of off (CUDA: tensor cores from 32 rows); one sequence
     * slower (tensor-core kernels for one row). CPU: the same as on. */
    gptoss_batch_invariant_many = 2,
};
/* gptoss_context_params.sampling. Both ways draw from the same distribution (the steps in
 * kernels.h, gptoss_f32_sample_logits); the host sampler adds the probabilities in double,
 * the kernels exactly, so a token can differ between them only where the draw falls within
 * that rounding (about n 2^-53 of the total, n candidates) of a boundary. */
enum gptoss_sampling {
    /* the backend's way: CPU backends the host sampler (temperature alone: the backend's
     * f32_softmax + f32_sample), other backends (CUDA) the kernels */
    gptoss_sampling_auto = 0,
    /* the host sampler: the logits are copied to the host for every draw */
    gptoss_sampling_host = 1,
    /* the kernels f32_apply_penalties + f32_sample_logits on the backend: the logits stay
     * there; the counts of the context's tokens are kept there for the penalties */
    gptoss_sampling_kernels = 2,
};
/* Fills *params with the defaults (NULL is ignored). */
void gptoss_context_params_init(struct gptoss_context_params* params);
/* Creates a context with the given options (NULL = the defaults; max_sequences is 1 and
 * kv_budget 0 here). invalid_argument names a bad field (a flag not 0 or 1, a backend that
 * cannot run the model, a context_length above the model's maximum, max_batch_tokens above
 * 65536). */
enum gptoss_status gptoss_context_create_with_params(gptoss_model_t model, const struct gptoss_context_params* params,
                                                     gptoss_context_t* context_out);
/* gptoss_context_create_with_params with the defaults and these two limits. */
enum gptoss_status gptoss_context_create(gptoss_model_t model, size_t context_length, size_t max_batch_tokens,
                                         gptoss_context_t* context_out);
enum gptoss_status gptoss_context_get_num_tokens(gptoss_context_t context, size_t* num_tokens_out);
enum gptoss_status gptoss_context_get_max_tokens(gptoss_context_t context, size_t* max_tokens_out);
enum gptoss_status gptoss_context_get_max_batch_tokens(gptoss_context_t context, size_t* max_batch_tokens_out);
enum gptoss_status gptoss_context_get_tokens(gptoss_context_t context, uint32_t* tokens_out, size_t max_tokens,
                                             size_t* num_tokens_out);
/* Tokenizes and appends; context_overflow when full (tokens appended so far are kept). */
enum gptoss_status gptoss_context_append_chars(gptoss_context_t context, const char* text, size_t text_length,
                                               size_t* num_tokens_out);
/* Appends ids (each must be < the vocabulary size, else nothing is appended). */
enum gptoss_status gptoss_context_append_tokens(gptoss_context_t context, size_t num_tokens, const uint32_t* tokens);
/* Forgets the tokens but keeps their K/V in the cache (the prefix cache, as a released
 * sequence's), so that an identical re-appended prefix is reused. */
enum gptoss_status gptoss_context_reset(gptoss_context_t context);
/* Number of leading positions whose K/V are in the cache for the context's tokens (at most
 * their count). After gptoss_context_reset the first call (or forward pass) looks up the
 * longest prefix of the tokens appended since whose K/V the cache still holds and takes
 * it. The next forward pass computes tokens [count, num_tokens); a sampled token is
 * pending (not counted) until then. A prompt cache reads it after appending a prompt to
 * learn how many of its tokens are reused. */
enum gptoss_status gptoss_context_get_num_kv_tokens(gptoss_context_t context, size_t* num_kv_tokens_out);
/* Runs the forward pass over all pending tokens (prefill, in chunks of max_batch_tokens). */
enum gptoss_status gptoss_context_process(gptoss_context_t context);
/* Samples up to max_tokens tokens with `sampler` (NULL = greedy), appending each to the
 * context and computing its K/V before the next one; stops early on context_overflow. */
enum gptoss_status gptoss_context_sample(gptoss_context_t context, gptoss_sampler_t sampler, size_t max_tokens,
                                         uint32_t* tokens_out, size_t* num_tokens_out);
/* Logits of the last processed token (f32[vocabulary]) copied to the host. */
enum gptoss_status gptoss_context_get_logits(gptoss_context_t context, float* logits_out, size_t capacity);
/* The profile of a context created with params.profile = 1, as a table on f: per kernel
 * and phase (prefill batches of n > 1 rows, decode steps of n = 1; sampling counts in the
 * phase of the forward pass before it) the calls, the host wall time (CLOCK_MONOTONIC, the
 * backend synchronised around every call), ms per token and the share of the phase's wall
 * time; what no kernel accounts for (host sampling, argument checks, bookkeeping) is
 * "other (host)". Prints nothing for a context without profiling. */
enum gptoss_status gptoss_context_print_profile(gptoss_context_t context, FILE* f);
/* Zeroes the profile's counters (e.g. after a warm-up). */
enum gptoss_status gptoss_context_reset_profile(gptoss_context_t context);
enum gptoss_status gptoss_context_retain(gptoss_context_t context);
enum gptoss_status gptoss_context_release(gptoss_context_t context);

/* ---- batches: many sequences in one forward step ----------------------------------- */

/* A batch owns a KV cache of a fixed budget (params.kv_budget) shared by its sequences in
 * blocks, and runs their tokens together: each gptoss_batch_step takes the next token of
 * every decoding sequence and a chunk of any new prompt (up to params.max_batch_tokens
 * rows in all), concatenated for the matrix products, attention per sequence on its own
 * cache, and draws the next token of each generating sequence with its own sampler and
 * seed. Sequences join and leave between steps. A released sequence's blocks go back to
 * the cache at once; their K/V stay there as a prefix cache until the memory is needed, so
 * a new sequence that starts with the same tokens (a shared system prompt, the previous
 * turn of a chat) reuses them, sliding-window layers included. */
enum gptoss_status gptoss_batch_create(gptoss_model_t model, const struct gptoss_context_params* params,
                                       gptoss_batch_t* batch_out);

struct gptoss_batch_info {
    size_t context_length;   /* tokens a sequence may hold at most */
    size_t max_batch_tokens; /* rows per step */
    size_t max_sequences;
    size_t num_sequences;    /* alive */
    size_t block_size;       /* positions per KV block */
    size_t block_bytes;      /* backend memory per block */
    size_t num_blocks;       /* of the budget */
    size_t reserved_blocks;  /* by the live sequences (gptoss_sequence_create) */
    size_t free_blocks;      /* held by no sequence */
    size_t cached_blocks;    /* of those, blocks with prefix-cache contents */
};
enum gptoss_status gptoss_batch_get_info(gptoss_batch_t batch, struct gptoss_batch_info* info_out);
/* Blocks a sequence of max_tokens tokens reserves (see gptoss_sequence_create). */
enum gptoss_status gptoss_batch_get_sequence_blocks(gptoss_batch_t batch, size_t max_tokens, size_t* blocks_out);

/* A token drawn by a step. */
struct gptoss_batch_token {
    gptoss_sequence_t sequence;
    uint32_t token; /* UINT32_MAX: the sequence was in a step that failed */
};
/* One forward step over the batch's sequences: every sequence with tokens whose K/V are
 * not computed yet takes part (sequences with one such token first, then prompt chunks in
 * the order the sequences were created, up to max_batch_tokens rows); a generating sequence
 * (gptoss_sequence_generate) whose tokens are then all computed draws its next token,
 * which is appended to it (computed by the next step) and listed in tokens_out (capacity
 * >= max_sequences entries; *num_tokens_out = how many). Nothing to do: success, 0
 * tokens. On failure (a backend error) the sequences of the step keep their tokens but
 * lose the K/V the step computed and stop generating; they are listed with token
 * UINT32_MAX, and the status and message say what failed; the batch stays usable. A draw
 * that fails (logits holding NaN: gptoss_status_invalid_state, "the logits hold NaN") fails
 * only its sequence: it is listed with UINT32_MAX and stops generating, the others draw.
 * (On CUDA only the draws made by the host sampler check for NaN so far; greedy draws and
 * the sampling kernels there do not.) */
enum gptoss_status gptoss_batch_step(gptoss_batch_t batch, struct gptoss_batch_token* tokens_out, size_t capacity,
                                     size_t* num_tokens_out);
/* The profile of a batch created with params.profile = 1 (as gptoss_context_print_profile). */
enum gptoss_status gptoss_batch_print_profile(gptoss_batch_t batch, FILE* f);
enum gptoss_status gptoss_batch_reset_profile(gptoss_batch_t batch);
enum gptoss_status gptoss_batch_retain(gptoss_batch_t batch);
enum gptoss_status gptoss_batch_release(gptoss_batch_t batch);

/* A new, empty sequence of at most max_tokens tokens (0 = context_length) in the batch.
 * It reserves the KV blocks it can need at that length (gptoss_batch_get_sequence_blocks):
 * insufficient_resources, with the numbers, when they do not fit beside the reservations
 * of the live sequences (retry after others are released), or when max_sequences are
 * alive. A sequence holds a reference to its batch. */
enum gptoss_status gptoss_sequence_create(gptoss_batch_t batch, size_t max_tokens, gptoss_sequence_t* sequence_out);
/* Appends ids (each < the vocabulary size, else nothing is appended); context_overflow
 * past max_tokens (nothing appended). The first step after the first append looks up the
 * longest cached prefix of the tokens (gptoss_sequence_get_num_kv_tokens). */
enum gptoss_status gptoss_sequence_append_tokens(gptoss_sequence_t sequence, size_t num_tokens,
                                                 const uint32_t* tokens);
enum gptoss_status gptoss_sequence_get_num_tokens(gptoss_sequence_t sequence, size_t* num_tokens_out);
enum gptoss_status gptoss_sequence_get_tokens(gptoss_sequence_t sequence, uint32_t* tokens_out, size_t max_tokens,
                                              size_t* num_tokens_out);
/* Leading tokens whose K/V are computed (or reused from the cache: the first call after the
 * first append takes the longest cached prefix). */
enum gptoss_status gptoss_sequence_get_num_kv_tokens(gptoss_sequence_t sequence, size_t* num_kv_tokens_out);
/* The sequence draws up to max_new_tokens tokens, one per step, with sampler (NULL =
 * greedy; retained; a draw uses its parameters and seed as gptoss_context_sample does);
 * 0 stops drawing. It also stops at max_tokens. */
enum gptoss_status gptoss_sequence_generate(gptoss_sequence_t sequence, gptoss_sampler_t sampler,
                                            size_t max_new_tokens);
/* The logits (f32[vocabulary]) the sequence's last drawn token came from, valid until the
 * next step; invalid_state when the last step drew nothing for it. */
enum gptoss_status gptoss_sequence_get_logits(gptoss_sequence_t sequence, float* logits_out, size_t capacity);
enum gptoss_status gptoss_sequence_retain(gptoss_sequence_t sequence);
/* Releases a reference; at zero the sequence's blocks go back to the batch's cache at once
 * (a cancelled or finished request) and its reservation ends. */
enum gptoss_status gptoss_sequence_release(gptoss_sequence_t sequence);

/* ---- samplers ---------------------------------------------------------------------- */

/* Defaults: temperature 0 (greedy), top_k 0 (off), top_p 1 (off), penalties 0, no logit bias,
 * no mask of allowed tokens, seed 0.
 * Temperature divides the logits. Same seed, same tokens on the same backend (and the same
 * gptoss_context_params.sampling). */
enum gptoss_status gptoss_sampler_create(gptoss_sampler_t* sampler_out);
enum gptoss_status gptoss_sampler_set_temperature(gptoss_sampler_t sampler, float temperature);
enum gptoss_status gptoss_sampler_set_top_k(gptoss_sampler_t sampler, uint32_t top_k);
enum gptoss_status gptoss_sampler_set_top_p(gptoss_sampler_t sampler, float top_p);
enum gptoss_status gptoss_sampler_set_presence_penalty(gptoss_sampler_t sampler, float presence_penalty);
enum gptoss_status gptoss_sampler_set_frequency_penalty(gptoss_sampler_t sampler, float frequency_penalty);
enum gptoss_status gptoss_sampler_set_seed(gptoss_sampler_t sampler, uint64_t seed);
/* Logit bias (OpenAI's logit_bias): biases[i] is added to the logit of token_ids[i] before
 * every draw, after the penalties and before the temperature; num = 0 removes the bias.
 * Replaces the sampler's earlier bias. The ids must be distinct (each id < the model's
 * vocabulary size: gptoss_sequence_generate and gptoss_context_sample check it), the biases
 * finite, num <= GPTOSS_SAMPLER_MAX_LOGIT_BIAS; on error the sampler keeps its bias. A sampler
 * with a bias draws on the host (its logits row copied there), also where
 * gptoss_context_params.sampling asks for the kernels. Not while a step that uses the
 * sampler runs. */
#define GPTOSS_SAMPLER_MAX_LOGIT_BIAS 65536u
enum gptoss_status gptoss_sampler_set_logit_bias(gptoss_sampler_t sampler, size_t num, const uint32_t* token_ids,
                                                 const float* biases);
/* Allowed tokens (constrained decoding, e.g. a JSON grammar): bit (id % 32) of words[id / 32]
 * set = id may be drawn; ids at or past 32 * num_words may not. Applied at every draw after
 * the penalties and the logit bias: a disallowed id is never drawn, greedy or sampled (an
 * allowed id with a -inf logit still can be, when every allowed id has one). num_words = 0
 * removes the mask. The mask must allow at least one id (and one below the vocabulary size:
 * gptoss_sequence_generate, gptoss_context_sample and every draw check it); on error the
 * sampler keeps its mask. The words are copied. A sampler with a mask draws on the host, as
 * with a bias. May be set between steps (the next draw uses it), not while a step that uses
 * the sampler runs. */
enum gptoss_status gptoss_sampler_set_allowed_tokens(gptoss_sampler_t sampler, size_t num_words,
                                                     const uint32_t* words);
enum gptoss_status gptoss_sampler_retain(gptoss_sampler_t sampler);
enum gptoss_status gptoss_sampler_release(gptoss_sampler_t sampler);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_ENGINE_H */
