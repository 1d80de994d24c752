/*
 * tests/fault/failmalloc.c -- see failmalloc.h.
 *
 * Invariants: the wrappers never allocate themselves; an injected failure
 * returns NULL with errno ENOMEM (realloc leaves the old block alone, as
 * the real one does); outside an armed window they are the real calls.
 */
#include "failmalloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t k);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static atomic_long g_nth; /* 0: off */
static atomic_int g_on;
static const char *_Atomic g_only;
static atomic_int g_persist;
static atomic_long g_injected;
static atomic_long g_max_window;

static __thread int t_armed;
static __thread long t_count;
static __thread const char *t_name;

void fm_configure(long nth, int persist)
{
    atomic_store(&g_nth, nth);
    atomic_store(&g_persist, persist);
    atomic_store(&g_on, 1);
}

void fm_enable(int on)
{
    atomic_store(&g_on, on);
}

void fm_only(const char *window)
{
    atomic_store(&g_only, window);
}

void fm_arm(const char *name)
{
    t_armed = 1;
    t_count = 0;
    t_name = name;
}

long fm_disarm(void)
{
    long n = t_count;
    t_armed = 0;
    long m = atomic_load(&g_max_window);
    while (n > m && !atomic_compare_exchange_weak(&g_max_window, &m, n)) {
    }
    return n;
}

long fm_injected(void)
{
    return atomic_load(&g_injected);
}

long fm_max_window(void)
{
    return atomic_load(&g_max_window);
}

/* 1 when this allocation must fail. */
static int should_fail(size_t bytes)
{
    if (!t_armed)
        return 0;
    long k = ++t_count;
    long nth = atomic_load(&g_nth);
    const char *only = atomic_load(&g_only);
    if (only && (!t_name || strcmp(only, t_name) != 0))
        return 0;
    if (!atomic_load(&g_on) || nth <= 0 || k < nth ||
        (k > nth && !atomic_load(&g_persist)))
        return 0;
    atomic_fetch_add(&g_injected, 1);
    char line[160];
    int n = snprintf(line, sizeof line,
                     "failmalloc: fail allocation %ld (%zu bytes) of %s\n", k,
                     bytes, t_name ? t_name : "?");
    if (n > 0 && write(2, line, (size_t)n) < 0) {
        /* nowhere to say it */
    }
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return should_fail(n) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t k)
{
    return should_fail(n * k) ? NULL : __real_calloc(n, k);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail(n) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return should_fail(strlen(s) + 1) ? NULL : __real_strdup(s);
}
