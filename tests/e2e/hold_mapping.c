/* Test helper for test_files.sh: maps FILE read-only (as the engine maps a model file),
 * sums its bytes, creates READY, waits (up to 120 s) until GO exists, then sums the mapping
 * again. Exit 0 if both sums match (the old file stayed readable while FILE was replaced),
 * 1 otherwise; a mapping whose file was truncated under it ends with SIGBUS instead.
 * Usage: hold_mapping FILE READY GO */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t sum(const volatile uint8_t* p, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: hold_mapping FILE READY GO\n");
        return 2;
    }
    const int fd = open(argv[1], O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size == 0) {
        perror(argv[1]);
        return 2;
    }
    const size_t n = (size_t) sb.st_size;
    const uint8_t* map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    const uint64_t before = sum(map, n);
    const int ready = open(argv[2], O_WRONLY | O_CREAT, 0644);
    if (ready < 0) {
        perror(argv[2]);
        return 2;
    }
    close(ready);
    for (int i = 0; i < 12000 && access(argv[3], F_OK) != 0; i++) nanosleep(&(struct timespec){0, 10000000}, NULL);
    if (access(argv[3], F_OK) != 0) {
        fprintf(stderr, "hold_mapping: %s did not appear\n", argv[3]);
        return 2;
    }
    const uint64_t after = sum(map, n);
    printf("hold_mapping: %zu bytes, sum %016llx before, %016llx after\n", n, (unsigned long long) before,
           (unsigned long long) after);
    return before == after ? 0 : 1;
}
