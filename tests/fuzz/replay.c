/*
 * tests/fuzz/replay.c -- runs a fuzz target over files, without libFuzzer.
 *
 *   replay_frame PATH...   each PATH a file or a directory of files
 *
 * Linked with one fuzz_*.c, it gives every compiler (gcc included) and
 * every test run (plain and ASan/UBSan) a regression test over the seed
 * corpus and any crash input added to it.  Each input is copied into a
 * buffer of exactly its size, as libFuzzer does, so the sanitizers see any
 * read past the end.  Directories are read in name order so runs are
 * repeatable.  Exits 1 if no input was found (an empty corpus would be a
 * test that tests nothing); a failing input aborts the process, and the
 * name printed just before it is the input to blame.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "replay: out of memory\n");
            exit(2);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        return -1;
    }
    /* Exactly n bytes (at least one allocated), so overreads are caught. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        fprintf(stderr, "replay: out of memory\n");
        exit(2);
    }
    memcpy(exact, buf, n);
    free(buf);
    printf("replay: %s (%zu bytes)\n", path, n);
    fflush(stdout);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int skip_name(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    long inputs = 0, errors = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) == 0)
                inputs++;
            else
                errors++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, skip_name, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            errors++;
            continue;
        }
        for (int k = 0; k < n; k++) {
            size_t len = strlen(argv[i]) + strlen(names[k]->d_name) + 2;
            char *path = malloc(len);
            if (!path) {
                fprintf(stderr, "replay: out of memory\n");
                return 2;
            }
            snprintf(path, len, "%s/%s", argv[i], names[k]->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path) == 0)
                    inputs++;
                else
                    errors++;
            }
            free(path);
            free(names[k]);
        }
        free(names);
    }
    printf("replay: %ld inputs, %ld unreadable\n", inputs, errors);
    if (inputs == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return errors ? 1 : 0;
}
