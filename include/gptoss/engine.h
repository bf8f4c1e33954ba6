/*
 * gpt-oss-kernels engine: models, tokenizer, contexts, samplers.
 *
 * Names follow upstream's gpt-oss.h (gptoss_model_create_from_file, gptoss_context_*,
 * gptoss_sampler_*), so code written against it ports by relinking; the backend choice
 * is added. All objects are reference counted: *_retain adds a reference, *_release drops
 * one and frees at zero (NULL accepted). Functions return a status; outputs (*_out) are
 * written only on success; gptoss_last_error() says what failed.
 *
 * Threading: a model is read-only after creation and may be shared by contexts on any
 * number of threads; a context is used by one thread at a time.
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

/* Options of a context (gptoss_context_create_with_params). Fill them with
 * gptoss_context_params_init (the defaults below), then change fields. The library reads
 * no environment variable: the `gptoss` CLI maps its flags and environment onto these. */
struct gptoss_context_params {
    /* The backend the context computes on; NULL (default) = the model's. A model on a CPU
     * backend may be run by another CPU backend (other threads or instruction set: the
     * weights are host memory); any other backend must be the model's. Borrowed: it must
     * outlive the context. */
    gptoss_backend_t backend;
    /* Tokens the context holds; 0 (default) = the model's maximum. */
    size_t context_length;
    /* Prefill chunk: tokens per forward pass over the prompt, at most 65536; 0 (default) =
     * the backend's default, 128 on the CPU, 512 on CUDA; at most context_length. */
    size_t max_batch_tokens;
    /* The MoE of a group of rows runs the expert-grouped (prefill) kernels from this many
     * rows on, the per-token (decode) kernels below it; 0 (default) = the backend's choice
     * (256 on the CPU, 16 on CUDA). The two paths sum in different orders: outputs differ
     * in the last bits between values. */
    uint32_t moe_dense_min_rows;
    /* 1 (default): the fused kernels of kernels.h (the MoE gate; the MoE accumulate with
     * the RMSNorm after it); 0: their parts as separate calls. Bit-identical outputs. */
    int fused_ops;
    /* 1 (default): on a backend that records graphs (CUDA), every decode step is one graph
     * launch; 0: direct kernel launches. Bit-identical outputs. */
    int graphs;
    /* 0 (default); 1: per-kernel profile (gptoss_context_print_profile): every kernel call
     * is bracketed by gptoss_backend_synchronize and timed (slower; no graphs). */
    int profile;
    /* Where a token is drawn (enum gptoss_sampling; greedy sampling always takes the
     * argmax of the unembedding on the backend). */
    int sampling;
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
/* Creates a context with the given options (NULL = the defaults). invalid_argument names a
 * bad field (a flag not 0 or 1, a backend that cannot run the model, a context_length above
 * the model's maximum, max_batch_tokens above 65536). */
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
/* Forgets the tokens but keeps the KV cache so an identical re-appended prefix is reused. */
enum gptoss_status gptoss_context_reset(gptoss_context_t context);
/* Number of leading positions whose K/V are in the cache and belong to the context's
 * tokens (or, after gptoss_context_reset, to the tokens before it: the count can exceed
 * the token count until a different id is appended at a cached position). The next
 * forward pass computes tokens [min(count, num_tokens), num_tokens); a sampled token is
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

/* ---- samplers ---------------------------------------------------------------------- */

/* Defaults: temperature 0 (greedy), top_k 0 (off), top_p 1 (off), penalties 0, seed 0.
 * Temperature divides the logits. Same seed, same tokens on the same backend (and the same
 * gptoss_context_params.sampling). */
enum gptoss_status gptoss_sampler_create(gptoss_sampler_t* sampler_out);
enum gptoss_status gptoss_sampler_set_temperature(gptoss_sampler_t sampler, float temperature);
enum gptoss_status gptoss_sampler_set_top_k(gptoss_sampler_t sampler, uint32_t top_k);
enum gptoss_status gptoss_sampler_set_top_p(gptoss_sampler_t sampler, float top_p);
enum gptoss_status gptoss_sampler_set_presence_penalty(gptoss_sampler_t sampler, float presence_penalty);
enum gptoss_status gptoss_sampler_set_frequency_penalty(gptoss_sampler_t sampler, float frequency_penalty);
enum gptoss_status gptoss_sampler_set_seed(gptoss_sampler_t sampler, uint64_t seed);
enum gptoss_status gptoss_sampler_retain(gptoss_sampler_t sampler);
enum gptoss_status gptoss_sampler_release(gptoss_sampler_t sampler);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_ENGINE_H */
