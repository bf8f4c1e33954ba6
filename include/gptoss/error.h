/*
 * gpt-oss-kernels: setting the calling thread's error message, for libraries built on
 * this one (the engine, the offline library). What gptoss_last_error() returns
 * (kernels.h) is set here; a library layered on the kernels reports its own failures the
 * same way, so a caller reads one message whichever layer failed.
 */
#ifndef GPTOSS_ERROR_H
#define GPTOSS_ERROR_H

#include <gptoss/kernels.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GPTOSS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define GPTOSS_PRINTF(f, a)
#endif

/* Formats the message into the calling thread's error buffer (512 bytes, truncated) and
 * returns status; while the thread keeps its message (gptoss_error_keep_begin), only
 * returns status. */
enum gptoss_status gptoss_fail(enum gptoss_status status, const char* format, ...) GPTOSS_PRINTF(2, 3);

/* Clears the calling thread's message: called on entry of the public functions, except the
 * release and free functions (gptoss_*_release, gptoss_backend_free), which leave it as it
 * is, so that the clean-up after a failure, in the library or in the caller, keeps the
 * failure's message. */
void gptoss_clear_error(void);

/* Clean-up whose failures are not reported (the statuses of the calls inside are dropped,
 * e.g. freeing a half-made object after a failure, or waiting for the device before
 * returning an earlier error): between begin and end, neither gptoss_clear_error nor
 * gptoss_fail changes the calling thread's message. Nests. */
void gptoss_error_keep_begin(void);
void gptoss_error_keep_end(void);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_ERROR_H */
