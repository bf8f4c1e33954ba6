/* Atomic file replacement (outfile.h): temporary file, fsync, rename, directory fsync, and
 * removal of the temporary file on failure and on SIGINT/SIGTERM/SIGHUP. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gptoss/error.h>

#include "outfile.h"

/* ---- signal clean-up ------------------------------------------------------------------
 * The handler may only use async-signal-safe calls (unlink, sigaction, raise) and read
 * static storage: the temporary paths live in fixed slots; a slot's path is complete
 * before its state says armed. */

enum { SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_ARMED = 2 };
static char g_slot_path[GPTOSS_OUTFILE_MAX_OPEN][PATH_MAX];
static volatile sig_atomic_t g_slot_state[GPTOSS_OUTFILE_MAX_OPEN];
static pthread_mutex_t g_slot_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_slots_armed; /* under g_slot_lock */

static const int g_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NUM_SIGNALS (sizeof(g_signals) / sizeof(g_signals[0]))
static struct sigaction g_previous[NUM_SIGNALS];
static int g_installed[NUM_SIGNALS];

static void on_signal(int sig) {
    for (int i = 0; i < GPTOSS_OUTFILE_MAX_OPEN; i++) {
        if (g_slot_state[i] == SLOT_ARMED) unlink(g_slot_path[i]);
    }
    /* the previous disposition (normally the default: end the process) handles the
     * signal once this handler returns */
    for (size_t k = 0; k < NUM_SIGNALS; k++) {
        if (g_signals[k] == sig) sigaction(sig, &g_previous[k], NULL);
    }
    raise(sig);
}

static void signals_block(sigset_t* old) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t k = 0; k < NUM_SIGNALS; k++) sigaddset(&set, g_signals[k]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void signals_restore(const sigset_t* old) { pthread_sigmask(SIG_SETMASK, old, NULL); }

/* Arms a slot for tmp_path (strlen < PATH_MAX, checked by the caller); -1 if all are in use.
 * The first armed slot installs the handler for every signal that is not ignored. */
static int slot_arm(const char* tmp_path) {
    pthread_mutex_lock(&g_slot_lock);
    int slot = -1;
    for (int i = 0; i < GPTOSS_OUTFILE_MAX_OPEN && slot < 0; i++) {
        if (g_slot_state[i] == SLOT_FREE) slot = i;
    }
    if (slot >= 0) {
        g_slot_state[slot] = SLOT_FILLING;
        memcpy(g_slot_path[slot], tmp_path, strlen(tmp_path) + 1);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        g_slot_state[slot] = SLOT_ARMED;
        if (g_slots_armed++ == 0) {
            struct sigaction sa;
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = on_signal;
            sa.sa_flags = SA_RESTART;
            sigemptyset(&sa.sa_mask);
            for (size_t k = 0; k < NUM_SIGNALS; k++) sigaddset(&sa.sa_mask, g_signals[k]);
            for (size_t k = 0; k < NUM_SIGNALS; k++) {
                struct sigaction cur;
                g_installed[k] = sigaction(g_signals[k], NULL, &cur) == 0 && cur.sa_handler != SIG_IGN;
                if (!g_installed[k]) continue;
                g_previous[k] = cur;
                sigaction(g_signals[k], &sa, NULL);
            }
        }
    }
    pthread_mutex_unlock(&g_slot_lock);
    return slot;
}

/* The last disarmed slot puts back the previous handlers (where ours is still in place). */
static void slot_disarm(int slot) {
    pthread_mutex_lock(&g_slot_lock);
    g_slot_state[slot] = SLOT_FREE;
    if (--g_slots_armed == 0) {
        for (size_t k = 0; k < NUM_SIGNALS; k++) {
            struct sigaction cur;
            if (g_installed[k] && sigaction(g_signals[k], NULL, &cur) == 0 && cur.sa_handler == on_signal) {
                sigaction(g_signals[k], &g_previous[k], NULL);
            }
            g_installed[k] = 0;
        }
    }
    pthread_mutex_unlock(&g_slot_lock);
}

/* ---- files ----------------------------------------------------------------------------- */

static void release(struct gptoss_outfile* f) {
    if (f->slot >= 0) slot_disarm(f->slot);
    free(f->path);
    free(f->tmp_path);
    free(f->buffer);
    memset(f, 0, sizeof(*f));
    f->slot = -1;
}

static void random_suffix(char out[7]) {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static _Atomic uint64_t counter;
    uint64_t r;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t) sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = ((uint64_t) ts.tv_nsec << 24) ^ (uint64_t) ts.tv_sec ^ ((uint64_t) getpid() << 40) ^ ++counter * 0x9E3779B97F4A7C15ull;
    }
    for (int i = 0; i < 6; i++) {
        out[i] = chars[r % 62];
        r /= 62;
    }
    out[6] = '\0';
}

enum gptoss_status gptoss_outfile_open(struct gptoss_outfile* f, const char* path, int replace, size_t buffer_size) {
    memset(f, 0, sizeof(*f));
    f->slot = -1;
    f->replace = replace;
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!replace) return gptoss_fail(gptoss_status_invalid_argument, "%s exists and is not replaced", path);
        if (S_ISDIR(sb.st_mode)) return gptoss_fail(gptoss_status_invalid_argument, "%s is a directory", path);
    }
    /* ".NAME.tmp-XXXXXX" next to OUT (NAME cut to 200 bytes to stay within NAME_MAX) */
    const char* slash = strrchr(path, '/');
    const size_t dir_len = slash != NULL ? (size_t) (slash - path) + 1 : 0;
    const char* base = path + dir_len;
    const int base_len = (int) (strlen(base) < 200 ? strlen(base) : 200);
    const size_t tmp_size = dir_len + (size_t) base_len + 16;
    f->path = strdup(path);
    f->tmp_path = malloc(tmp_size);
    if (f->path == NULL || f->tmp_path == NULL) {
        release(f);
        return gptoss_fail(gptoss_status_insufficient_memory, "%s: out of memory", path);
    }
    if (tmp_size > PATH_MAX) {
        release(f);
        return gptoss_fail(gptoss_status_invalid_argument, "%s: path longer than %d bytes", path, PATH_MAX - 16);
    }
    sigset_t old_mask;
    signals_block(&old_mask); /* a signal arriving now is handled once the file is armed */
    int fd = -1, err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        char suffix[7];
        random_suffix(suffix);
        snprintf(f->tmp_path, tmp_size, "%.*s.%.*s.tmp-%s", (int) dir_len, path, base_len, base, suffix);
        fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        err = errno;
        if (fd < 0 && err != EEXIST) break;
    }
    const int slots_full = fd >= 0 && (f->slot = slot_arm(f->tmp_path)) < 0;
    if (slots_full) {
        unlink(f->tmp_path);
        close(fd);
        fd = -1;
    }
    signals_restore(&old_mask);
    if (fd < 0) {
        enum gptoss_status st =
            slots_full ? gptoss_fail(gptoss_status_insufficient_resources, "%s: more than %d output files open at once",
                                     path, GPTOSS_OUTFILE_MAX_OPEN)
                       : gptoss_fail(gptoss_status_io_error, "%s: cannot create a temporary file next to it: %s", path,
                                     strerror(err));
        release(f);
        return st;
    }
    f->file = fdopen(fd, "wb");
    if (f->file == NULL) {
        err = errno;
        close(fd);
        unlink(f->tmp_path);
        release(f);
        return gptoss_fail(gptoss_status_io_error, "%s: fdopen failed: %s", path, strerror(err));
    }
    if (buffer_size != 0 && (f->buffer = malloc(buffer_size)) != NULL) setvbuf(f->file, f->buffer, _IOFBF, buffer_size);
    return gptoss_status_success;
}

/* rename(2), or with !replace an exclusive move: renameat2(RENAME_NOREPLACE), or link +
 * unlink on file systems without it. */
static int move_into_place(const struct gptoss_outfile* f) {
    if (f->replace) return rename(f->tmp_path, f->path);
    if (renameat2(AT_FDCWD, f->tmp_path, AT_FDCWD, f->path, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
    if (link(f->tmp_path, f->path) != 0) return -1;
    unlink(f->tmp_path);
    return 0;
}

static int fsync_directory(const char* path) {
    const char* slash = strrchr(path, '/');
    char* dir = slash == NULL ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t) (slash - path));
    if (dir == NULL) return -1;
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    /* some file systems cannot sync a directory (EINVAL): nothing more to do there */
    const int r = fsync(fd) == 0 || errno == EINVAL ? 0 : -1;
    const int err = errno;
    close(fd);
    errno = err;
    return r;
}

enum gptoss_status gptoss_outfile_commit(struct gptoss_outfile* f) {
    if (f->file == NULL) return gptoss_fail(gptoss_status_invalid_state, "output file is not open");
    const char* what = NULL;
    int err = 0;
    if (fflush(f->file) != 0) what = "write", err = errno;
    else if (fsync(fileno(f->file)) != 0) what = "fsync", err = errno;
    if (fclose(f->file) != 0 && what == NULL) what = "close", err = errno;
    f->file = NULL;
    enum gptoss_status st = gptoss_status_success;
    if (what != NULL) {
        unlink(f->tmp_path);
        st = gptoss_fail(gptoss_status_io_error, "%s: %s of the temporary file %s failed: %s", f->path, what,
                         f->tmp_path, strerror(err));
    } else if (move_into_place(f) != 0) {
        err = errno;
        unlink(f->tmp_path);
        st = err == EEXIST ? gptoss_fail(gptoss_status_io_error,
                                         "%s was created by something else while this file was written: not replaced",
                                         f->path)
                           : gptoss_fail(gptoss_status_io_error, "%s: cannot rename %s to it: %s", f->path,
                                         f->tmp_path, strerror(err));
    } else if (fsync_directory(f->path) != 0) {
        st = gptoss_fail(gptoss_status_io_error, "%s: written, but syncing its directory failed: %s", f->path,
                         strerror(errno));
    }
    release(f);
    return st;
}

void gptoss_outfile_abort(struct gptoss_outfile* f) {
    if (f->file == NULL) return;
    fclose(f->file);
    f->file = NULL;
    unlink(f->tmp_path);
    release(f);
}
