/*
 * tests/fuzz/fuzz.h -- helpers shared by the fuzz targets.
 *
 * FUZZ_CHECK states an invariant of the code under test.  It aborts with a
 * message, so libFuzzer (and the replay driver under meson test) reports
 * the input as a crash.  It is not assert(): NDEBUG never turns it off.
 */
#ifndef MAOS_FUZZ_H
#define MAOS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maos/proto.h"

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__,        \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

static inline int fuzz_slice_eq(maos_slice a, maos_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* 1 if the error code is one of the list in maos/errors.h. */
static inline int fuzz_known_err(int rc)
{
    return rc < 0 && maos_err_from_name(maos_err_name(rc),
                                        (unsigned)strlen(maos_err_name(rc))) == rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
