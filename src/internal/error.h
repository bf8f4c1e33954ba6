/* Internal: setting the thread-local error message (the functions of the public
 * <gptoss/error.h>, for the layers above too) and counting failures. */
#ifndef GPTOSS_INTERNAL_ERROR_H
#define GPTOSS_INTERNAL_ERROR_H

#include <gptoss/error.h>

/* Number of gptoss_fail calls made by the calling thread so far (graph recordings use it
 * to notice a call that failed while recording). */
unsigned long gptoss_error_count(void);

#endif
