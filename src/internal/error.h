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

/* Formats the message into the calling thread's error buffer and returns status. */
enum gptoss_status gptoss_fail(enum gptoss_status status, const char* format, ...) GPTOSS_PRINTF(2, 3);

/* Number of gptoss_fail calls made by the calling thread so far (graph recordings use it
 * to notice a call that failed while recording). */
unsigned long gptoss_error_count(void);

/* Clears the calling thread's message (called on entry of public functions). */
void gptoss_clear_error(void);

#endif
