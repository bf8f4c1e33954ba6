/* Internal: replacing a file atomically, for every file the engine writes (model files from
 * `gptoss convert` and `gptoss make-model`).
 *
 * gptoss_outfile_open creates a new temporary file in OUT's directory (".NAME.tmp-XXXXXX",
 * mode 0666 less the umask); everything is written there. gptoss_outfile_commit flushes and
 * fsyncs it, renames it to OUT and fsyncs the directory: OUT is either what it was before or
 * the complete new file, never a part, and a process that has the old OUT open or mapped
 * keeps reading the old file (its inode lives until the last user closes it).
 * gptoss_outfile_abort (any failure) closes and removes the temporary file, leaving OUT as it
 * was. Until commit or abort, SIGINT, SIGTERM and SIGHUP (unless ignored) remove the
 * temporary file before the process ends by the signal; SIGKILL cannot be caught, so a
 * ".NAME.tmp-*" file may then be left behind. At most GPTOSS_OUTFILE_MAX_OPEN files per
 * process are open at once. */
#ifndef GPTOSS_ENGINE_OUTFILE_H
#define GPTOSS_ENGINE_OUTFILE_H

#include <stddef.h>
#include <stdio.h>

#include <gptoss/kernels.h>

#define GPTOSS_OUTFILE_MAX_OPEN 8

struct gptoss_outfile {
    FILE* file;      /* write here (fully buffered) */
    char* path;      /* OUT */
    char* tmp_path;  /* the temporary file */
    char* buffer;    /* stdio buffer, or NULL */
    int replace;     /* commit may replace an existing OUT */
    int slot;        /* in the signal clean-up table */
};

/* Creates the temporary file for `path`. Without `replace`, an existing `path` (any kind of
 * file, a dangling link too) is an error here and again at commit, which never replaces one
 * (a file that appeared meanwhile is kept). buffer_size: stdio buffer (0: the default).
 * On failure nothing is left behind and *f is zeroed. */
enum gptoss_status gptoss_outfile_open(struct gptoss_outfile* f, const char* path, int replace, size_t buffer_size);

/* Flush, fsync, rename to OUT, fsync the directory. On failure the temporary file is
 * removed and OUT is untouched. Always releases *f. */
enum gptoss_status gptoss_outfile_commit(struct gptoss_outfile* f);

/* Closes and removes the temporary file; OUT is untouched. NULL file (already released)
 * is a no-op. Never sets the thread's error message. */
void gptoss_outfile_abort(struct gptoss_outfile* f);

#endif
