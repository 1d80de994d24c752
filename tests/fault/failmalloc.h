/*
 * tests/fault/failmalloc.h -- allocation failure on purpose, for test
 * builds only (issue 15, "Allocation failure"; SQLite's malloc tests).
 *
 * failmalloc.c is linked into a binary together with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup
 * so that every call to those from the binary's own objects (and static
 * libraries: proto, the client when built from source, msgpack-c's inline
 * sbuffer) goes through the wrappers first.  Calls made inside shared
 * libraries (libuv, RocksDB's C++ new, libc's own) are not affected.
 *
 * Counting is per thread and only while that thread is "armed": in each
 * armed window the nth allocation fails (and, with persist, every later
 * one of the window too), then the window goes on normally.  So sweeping
 * nth over 1, 2, 3, ... makes each allocation site of a request path fail
 * once.  An injection is logged on stderr ("failmalloc: fail allocation N
 * of <window>").
 *
 * Thread-safety: the configuration is set before windows are armed; the
 * counters are per thread; fm_injected is an atomic total.
 */
#ifndef MAOS_TESTS_FAILMALLOC_H
#define MAOS_TESTS_FAILMALLOC_H

/* nth >= 1: fail the nth allocation of every window; 0: never fail
 * (windows still count).  persist: later allocations of the window fail
 * too.  Also turns failures on (fm_enable(1)). */
void fm_configure(long nth, int persist);
/* Failures on (1) or off (0) without forgetting nth; async-signal-safe. */
void fm_enable(int on);
/* Only windows with this name fail (NULL: all).  The string must live as
 * long as the setting (a literal or getenv's). */
void fm_only(const char *window);
/* Start a window on this thread (name: for the log line; a string
 * literal). */
void fm_arm(const char *name);
/* End it; returns the number of allocations it made. */
long fm_disarm(void);
/* Failures injected so far, all threads. */
long fm_injected(void);
/* The most allocations one window made so far (all threads). */
long fm_max_window(void);

#endif
