/*
 * gpt-oss-kernels offline library (gptoss_offline): what is not needed to run a model.
 * Here: models with random weights made in memory. (Converting checkpoints and writing
 * model files are the `gptoss convert` and `gptoss make-model` commands.)
 */
#ifndef GPTOSS_OFFLINE_H
#define GPTOSS_OFFLINE_H

#include <stdint.h>

#include <gptoss/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Creates a model with random weights directly in `backend` memory (no file): the shapes
 * of `gptoss make-model --preset` ("tiny", "20b", "120b"; num_layers 0 = the preset's
 * count), the weights laid out exactly as in a model file and filled on the backend by
 * the random-fill kernels. The weights are those `gptoss make-model --seed` writes for the
 * same shape: a function of (preset, num_layers, seed) only, bit-identical on every
 * backend (the distribution: offline/random.c). The tokenizer is the real o200k_harmony
 * one, built from the o200k_base vocabulary found at the default places: the
 * repository's data/o200k_base.tiktoken (fixed at build time), data/ or ../data/ next
 * to the executable, data/ in the working directory. invalid_argument for an unknown
 * preset or a NULL argument; io_error when the vocabulary cannot be read;
 * insufficient_memory if the weights do not fit the backend. */
enum gptoss_status gptoss_model_create_random(const char* preset, uint32_t num_layers, uint64_t seed,
                                              gptoss_backend_t backend, gptoss_model_t* model_out);
/* The same with the vocabulary read from vocab_path (a tiktoken file; NULL = the default). */
enum gptoss_status gptoss_model_create_random_ex(const char* preset, uint32_t num_layers, uint64_t seed,
                                                 const char* vocab_path, gptoss_backend_t backend,
                                                 gptoss_model_t* model_out);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_OFFLINE_H */
