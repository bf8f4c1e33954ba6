/* Running a kernel: the generic entry gptoss_kernel_run, the public named functions of
 * kernels.h (thin wrappers that fill the kernel's arguments struct) and the kernel names,
 * all generated from the kernel list (include/gptoss/kernel-list.h).
 *
 * A call: clear the thread's error message, check the backend handle, check the arguments
 * (gptoss_check_<name>, src/kernels/<family>.c), then the backend's entry
 * (backend->ops-><name>). */
#include "kernels/check.h"

#define RUN(name, family)                                                                                     \
    static enum gptoss_status run_##name(gptoss_backend_t backend, const struct gptoss_##name##_args* args) { \
        GPTOSS_TRY(gptoss_check_##name(backend, args));                                                       \
        return backend->ops->name(backend, args);                                                             \
    }
/* A fusion runs as its parts (gptoss_unfused_<name>, src/kernels/<family>.c) on a backend
 * without a fused entry, or where the backend says its fused entry does not apply. */
#define RUN_FUSION(name, family)                                                                              \
    static enum gptoss_status run_##name(gptoss_backend_t backend, const struct gptoss_##name##_args* args) { \
        GPTOSS_TRY(gptoss_check_##name(backend, args));                                                       \
        const struct gptoss_backend_ops* ops = backend->ops;                                                  \
        if (ops->name != NULL && (ops->supports_##name == NULL || ops->supports_##name(backend, args))) {     \
            return ops->name(backend, args);                                                                  \
        }                                                                                                     \
        return gptoss_unfused_##name(backend, args);                                                          \
    }
GPTOSS_KERNEL_LIST(RUN, RUN_FUSION)

/* The named functions. kernels.h declares them: the compiler checks that the list gives
 * each the parameters of its contract. */
#define PARAMETER(type, name) , type name
#define FIELD(type, name) name,
#define NAMED(name, family)                                                                    \
    enum gptoss_status gptoss_##name(gptoss_backend_t backend GPTOSS_ARGS_##name(PARAMETER)) { \
        const struct gptoss_##name##_args args = {GPTOSS_ARGS_##name(FIELD)};                  \
        gptoss_clear_error();                                                                  \
        GPTOSS_TRY(gptoss_check_backend(backend));                                             \
        return run_##name(backend, &args);                                                     \
    }
GPTOSS_KERNEL_LIST(NAMED, NAMED)

#define CASE(name, family)     \
    case gptoss_kernel_##name: \
        return run_##name(backend, args);

enum gptoss_status gptoss_kernel_run(gptoss_backend_t backend, enum gptoss_kernel kernel, const void* args) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    if (args == NULL) return gptoss_fail(GPTOSS_INVALID, "args is NULL");
    switch (kernel) {
        GPTOSS_KERNEL_LIST(CASE, CASE)
        case gptoss_kernel_count:
            break;
    }
    return gptoss_fail(GPTOSS_INVALID, "kernel %d is not a gptoss_kernel value", (int) kernel);
}

#define NAME(name, family) #name,
static const char* const kernel_names[] = {GPTOSS_KERNEL_LIST(NAME, NAME)};

#define FAMILY(name, family) #family,
static const char* const kernel_families[] = {GPTOSS_KERNEL_LIST(FAMILY, FAMILY)};

const char* gptoss_kernel_get_name(enum gptoss_kernel kernel) {
    return (unsigned) kernel < (unsigned) gptoss_kernel_count ? kernel_names[kernel] : NULL;
}

const char* gptoss_kernel_get_family(enum gptoss_kernel kernel) {
    return (unsigned) kernel < (unsigned) gptoss_kernel_count ? kernel_families[kernel] : NULL;
}
