/* Internal: setting the thread-local error message. */
#ifndef GPTOSS_INTERNAL_ERROR_H
#define GPTOSS_INTERNAL_ERROR_H

#include <gptoss/kernels.h>

#if defined(__GNUC__)
#define GPTOSS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define GPTOSS_PRINTF(f, a)
#endif

/* Returns the status of expr from the calling function unless it is success. */
#define GPTOSS_TRY(expr)                                      \
    do {                                                      \
        const enum gptoss_status gptoss_try_status_ = (expr); \
        if (gptoss_try_status_ != gptoss_status_success) {    \
            return gptoss_try_status_;                        \
        }                                                     \
    } while (0)

/* Formats the message into the calling thread's error buffer and returns status (while
 * the thread keeps its message, see gptoss_error_keep_begin, only returns status). */
enum gptoss_status gptoss_fail(enum gptoss_status status, const char* format, ...) GPTOSS_PRINTF(2, 3);

/* Number of gptoss_fail calls made by the calling thread so far (graph recordings use it
 * to notice a call that failed while recording). */
unsigned long gptoss_error_count(void);

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

#endif
