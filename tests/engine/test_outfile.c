/* offline/outfile.c: atomic replacement of output files. The end-to-end cases (make-model
 * with an existing OUT, --force, a failing write, SIGTERM/SIGINT, a reader that has the
 * old file mapped) are in tests/e2e/test_files.sh; here the module's own rules:
 * no replacement without `replace` (also against a file that appears while writing),
 * abort leaves nothing, the file's mode follows the umask, relative paths, errors name
 * the path, and the limit on files open at once. */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outfile.h"
#include "test_util.h"

static char g_dir[] = "/tmp/gptoss-outfile-test-XXXXXX";

/* Number of entries in g_dir whose name contains ".tmp-". */
static int temporaries(void) {
    DIR* d = opendir(g_dir);
    int n = 0;
    for (struct dirent* e; d != NULL && (e = readdir(d)) != NULL;) n += strstr(e->d_name, ".tmp-") != NULL;
    if (d != NULL) closedir(d);
    return n;
}

static int holds(const char* path, const char* text) {
    size_t n = 0;
    uint8_t* data = read_whole(path, &n);
    const int same = data != NULL && n == strlen(text) && memcmp(data, text, n) == 0;
    free(data);
    return same;
}

static enum gptoss_status write_text(const char* path, int replace, const char* text) {
    struct gptoss_outfile f;
    enum gptoss_status st = gptoss_outfile_open(&f, path, replace, 0);
    if (st != gptoss_status_success) return st;
    if (fputs(text, f.file) < 0) {
        gptoss_outfile_abort(&f);
        return gptoss_status_io_error;
    }
    return gptoss_outfile_commit(&f);
}

int main(void) {
    if (mkdtemp(g_dir) == NULL) return 2;
    char path[300], other[300];
    snprintf(path, sizeof(path), "%s/out.bin", g_dir);

    /* new file; then no replacement without `replace`, replacement with it */
    CHECK(write_text(path, 0, "first") == gptoss_status_success && holds(path, "first"), "create: %s",
          gptoss_last_error());
    CHECK(write_text(path, 0, "second") == gptoss_status_invalid_argument && holds(path, "first") &&
              strstr(gptoss_last_error(), path) != NULL && strstr(gptoss_last_error(), "exists") != NULL,
          "existing file replaced without replace: '%s'", gptoss_last_error());
    CHECK(write_text(path, 1, "third") == gptoss_status_success && holds(path, "third"), "replace: %s",
          gptoss_last_error());
    CHECK(temporaries() == 0, "temporary files left");

    /* mode: 0666 less the umask, as fopen would create it */
    const mode_t old_mask = umask(027);
    CHECK(write_text(path, 1, "mode") == gptoss_status_success, "replace under umask 027");
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640, "mode %o, want 640", (unsigned) (sb.st_mode & 0777));
    umask(old_mask);

    /* a file that appears at OUT while it is written is kept (never replaced) */
    snprintf(other, sizeof(other), "%s/raced.bin", g_dir);
    struct gptoss_outfile f;
    CHECK(gptoss_outfile_open(&f, other, 0, 4096) == gptoss_status_success, "open raced: %s", gptoss_last_error());
    CHECK(temporaries() == 1 && access(other, F_OK) != 0, "while writing: one temporary file, no OUT");
    fputs("ours", f.file);
    write_whole(other, "theirs", 6);
    CHECK(gptoss_outfile_commit(&f) == gptoss_status_io_error && holds(other, "theirs") &&
              strstr(gptoss_last_error(), "created by something else") != NULL,
          "raced file replaced: '%s'", gptoss_last_error());
    CHECK(f.file == NULL && f.path == NULL && temporaries() == 0, "commit released everything");

    /* abort: OUT as it was, no temporary file; abort twice is harmless */
    CHECK(gptoss_outfile_open(&f, path, 1, 0) == gptoss_status_success, "open for abort");
    fputs("discarded", f.file);
    gptoss_outfile_abort(&f);
    gptoss_outfile_abort(&f);
    CHECK(holds(path, "mode") && temporaries() == 0, "abort changed OUT or left a temporary file");

    /* a relative path */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL && chdir(g_dir) == 0, "chdir");
    CHECK(write_text("relative.bin", 0, "rel") == gptoss_status_success && holds("relative.bin", "rel"),
          "relative path: %s", gptoss_last_error());
    CHECK(chdir(cwd) == 0, "chdir back");

    /* errors name the path and the cause; nothing is created */
    snprintf(other, sizeof(other), "%s/no-such-dir/x.bin", g_dir);
    CHECK(write_text(other, 1, "x") == gptoss_status_io_error && strstr(gptoss_last_error(), other) != NULL &&
              strstr(gptoss_last_error(), strerror(ENOENT)) != NULL,
          "missing directory: '%s'", gptoss_last_error());
    CHECK(write_text(g_dir, 1, "x") == gptoss_status_invalid_argument &&
              strstr(gptoss_last_error(), "is a directory") != NULL,
          "OUT is a directory: '%s'", gptoss_last_error());

    /* GPTOSS_OUTFILE_MAX_OPEN at once, then insufficient_resources; all aborted: nothing left */
    struct gptoss_outfile many[GPTOSS_OUTFILE_MAX_OPEN + 1];
    int opened = 0;
    for (int i = 0; i < GPTOSS_OUTFILE_MAX_OPEN; i++) {
        snprintf(other, sizeof(other), "%s/many-%d.bin", g_dir, i);
        opened += gptoss_outfile_open(&many[i], other, 0, 0) == gptoss_status_success;
    }
    CHECK(opened == GPTOSS_OUTFILE_MAX_OPEN, "%d of %d files opened", opened, GPTOSS_OUTFILE_MAX_OPEN);
    snprintf(other, sizeof(other), "%s/one-too-many.bin", g_dir);
    CHECK(gptoss_outfile_open(&many[GPTOSS_OUTFILE_MAX_OPEN], other, 0, 0) == gptoss_status_insufficient_resources &&
              temporaries() == GPTOSS_OUTFILE_MAX_OPEN,
          "file %d: '%s'", GPTOSS_OUTFILE_MAX_OPEN + 1, gptoss_last_error());
    for (int i = 0; i < GPTOSS_OUTFILE_MAX_OPEN; i++) gptoss_outfile_abort(&many[i]);
    CHECK(temporaries() == 0, "aborted files left temporaries");
    CHECK(write_text(other, 0, "after") == gptoss_status_success, "slots free again: %s", gptoss_last_error());

    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return finish();
}
