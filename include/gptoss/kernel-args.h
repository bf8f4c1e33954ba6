/*
 * gpt-oss-kernels: every kernel as an id and an arguments struct, and one generic entry.
 *
 * For code that stores kernel calls and runs them later (the engine's forward plan: a
 * decode step built once as a list of (kernel, arguments) and then run directly, profiled
 * or recorded into a graph). Each kernel `gptoss_<name>` of kernels.h has
 *
 *   - an id, gptoss_kernel_<name> (enum gptoss_kernel, in the order of the kernel list);
 *   - an arguments struct, struct gptoss_<name>_args, whose fields are the parameters of
 *     gptoss_<name> after `backend`, with the same names, types and order;
 *
 * and gptoss_kernel_run(backend, gptoss_kernel_<name>, &args) does exactly what
 * gptoss_<name>(backend, args...) does: the same checks (same status and message on bad
 * arguments; nothing written), then the same work. The named functions of kernels.h are
 * thin wrappers around it. union gptoss_kernel_args holds the arguments of any kernel.
 *
 * They come from the kernel list, kernel-list.h (X-macros, also usable by callers).
 */
#ifndef GPTOSS_KERNEL_ARGS_H
#define GPTOSS_KERNEL_ARGS_H

#include <gptoss/kernel-list.h>
#include <gptoss/kernels.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPTOSS_KERNEL_ID(name, family) gptoss_kernel_##name,
enum gptoss_kernel {
    GPTOSS_KERNEL_LIST(GPTOSS_KERNEL_ID, GPTOSS_KERNEL_ID)
    gptoss_kernel_count /* the number of kernels, not a kernel */
};
#undef GPTOSS_KERNEL_ID

#define GPTOSS_ARGS_FIELD(type, name) type name;
#define GPTOSS_ARGS_STRUCT(name, family) struct gptoss_##name##_args { GPTOSS_ARGS_##name(GPTOSS_ARGS_FIELD) };
GPTOSS_KERNEL_LIST(GPTOSS_ARGS_STRUCT, GPTOSS_ARGS_STRUCT)
#undef GPTOSS_ARGS_STRUCT
#undef GPTOSS_ARGS_FIELD

#define GPTOSS_ARGS_MEMBER(name, family) struct gptoss_##name##_args name;
union gptoss_kernel_args {
    GPTOSS_KERNEL_LIST(GPTOSS_ARGS_MEMBER, GPTOSS_ARGS_MEMBER)
};
#undef GPTOSS_ARGS_MEMBER

/* Checks `kernel` (a gptoss_kernel value), `args` (not NULL; a struct
 * gptoss_<name>_args of that kernel) and the arguments as gptoss_<name> does, then runs
 * the kernel on `backend`. Returns what gptoss_<name> returns. The struct is read during
 * the call only; the buffers it points to are used as by gptoss_<name>. */
enum gptoss_status gptoss_kernel_run(gptoss_backend_t backend, enum gptoss_kernel kernel, const void* args);

/* Static name of a kernel ("f32_bf16w_matmul", the function name without "gptoss_"), or
 * NULL for a value that is not a kernel id. */
const char* gptoss_kernel_get_name(enum gptoss_kernel kernel);

/* Static name of a kernel's family ("matmul"), or NULL for a value that is not a kernel id. */
const char* gptoss_kernel_get_family(enum gptoss_kernel kernel);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_KERNEL_ARGS_H */
