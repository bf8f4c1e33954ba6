/* Internal: setting the thread-local error message (the functions of the public
 * <gptoss/error.h>, for the layers above too) and counting failures. */
#ifndef GPTOSS_INTERNAL_ERROR_H
#define GPTOSS_INTERNAL_ERROR_H

#include <gptoss/error.h>

/* Returns the status of expr from the calling function unless it is success. */
#define GPTOSS_TRY(expr)                                      \
    do {                                                      \
        const enum gptoss_status gptoss_try_status_ = (expr); \
        if (gptoss_try_status_ != gptoss_status_success) {    \
            return gptoss_try_status_;                        \
        }                                                     \
    } while (0)

/* Number of gptoss_fail calls made by the calling thread so far (graph recordings use it
 * to notice a call that failed while recording). */
unsigned long gptoss_error_count(void);

#endif
