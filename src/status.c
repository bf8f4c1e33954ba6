#include <stdarg.h>
#include <stdio.h>

#include "internal/error.h"

static _Thread_local char g_error[512];

const char* gptoss_status_to_string(enum gptoss_status status) {
    switch (status) {
        case gptoss_status_success: return "success";
        case gptoss_status_invalid_argument: return "invalid_argument";
        case gptoss_status_unsupported_argument: return "unsupported_argument";
        case gptoss_status_invalid_state: return "invalid_state";
        case gptoss_status_io_error: return "io_error";
        case gptoss_status_insufficient_memory: return "insufficient_memory";
        case gptoss_status_insufficient_resources: return "insufficient_resources";
        case gptoss_status_unsupported_system: return "unsupported_system";
        case gptoss_status_context_overflow: return "context_overflow";
    }
    return "unknown_status";
}

const char* gptoss_last_error(void) { return g_error; }

static _Thread_local unsigned g_keep_depth;
static _Thread_local unsigned long g_error_count;

void gptoss_clear_error(void) {
    if (g_keep_depth == 0) g_error[0] = '\0';
}

void gptoss_error_keep_begin(void) { g_keep_depth++; }

void gptoss_error_keep_end(void) { g_keep_depth--; }

unsigned long gptoss_error_count(void) { return g_error_count; }

enum gptoss_status gptoss_fail(enum gptoss_status status, const char* format, ...) {
    g_error_count++;
    if (g_keep_depth != 0) return status;
    va_list args;
    va_start(args, format);
    vsnprintf(g_error, sizeof(g_error), format, args);
    va_end(args);
    return status;
}
