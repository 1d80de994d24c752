/*
 * tests/fault/failmalloc_maosd.c -- the request-path windows of the test
 * daemon maosd-failmalloc (daemon sources + failmalloc.c + this file,
 * linked with --wrap for the allocators and for the three functions
 * below; nothing in daemon/ changes).
 *
 * Windows (loop thread only; the commit thread never counts):
 *   dispatch     maosd_dispatch: decode, look up, validate, the handler and
 *                its reply (reads, stats, subscribe, ...), or the hand-off
 *                of a write to the commit thread
 *   append_done  maosd_write_reply: the reply to a committed write
 *   fanout       maosd_sub_fanout: pushes of a committed group to live
 *                subscribers
 * Not covered: accepting a connection, the catch-up pump, libuv's own
 * allocations, RocksDB's (C++ new) -- see failmalloc.h.
 *
 * Environment: MAOS_FAILMALLOC_NTH=N (fail the N-th allocation of every
 * window), MAOS_FAILMALLOC_PERSIST=1 (and the rest of that window),
 * MAOS_FAILMALLOC_WINDOW=dispatch|append_done|fanout (only that window
 * fails; the sweep needs it: a write's dispatch window comes first and
 * would always fail before its append_done window got to the same N).
 * Failures start off: SIGUSR1 turns them on (logging "failmalloc: on"),
 * SIGUSR2 off again ("failmalloc: off"), so a test decides which requests
 * run under them and can check afterwards that the daemon serves
 * normally.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failmalloc.h"
#include "dispatch.h"

void __real_maosd_dispatch(maosd_conn *c, const char *frame, size_t len);
void __wrap_maosd_dispatch(maosd_conn *c, const char *frame, size_t len);
void __real_maosd_write_reply(maosd_server *srv, maosd_wreq *w);
void __wrap_maosd_write_reply(maosd_server *srv, maosd_wreq *w);
void __real_maosd_sub_fanout(maosd_server *srv, void *arg, maosd_wreq *list);
void __wrap_maosd_sub_fanout(maosd_server *srv, void *arg, maosd_wreq *list);

void __wrap_maosd_dispatch(maosd_conn *c, const char *frame, size_t len)
{
    fm_arm("dispatch");
    __real_maosd_dispatch(c, frame, len);
    fm_disarm();
}

void __wrap_maosd_write_reply(maosd_server *srv, maosd_wreq *w)
{
    fm_arm("append_done");
    __real_maosd_write_reply(srv, w);
    fm_disarm();
}

void __wrap_maosd_sub_fanout(maosd_server *srv, void *arg, maosd_wreq *list)
{
    fm_arm("fanout");
    __real_maosd_sub_fanout(srv, arg, list);
    fm_disarm();
}

/* SIGUSR1/SIGUSR2 are taken by one thread of ours in sigwait(), blocked
 * everywhere else (the constructor runs before maosd creates a thread, and
 * threads inherit the mask).  A signal handler would do under a plain build,
 * but under ThreadSanitizer a handler runs only when the thread the kernel
 * picked next calls into an intercepted function -- a RocksDB background
 * thread may sleep in uninstrumented code for good, and the test would
 * wait for "failmalloc: on" forever. */
static void *signal_thread(void *arg)
{
    static const char on[] = "failmalloc: on\n", off[] = "failmalloc: off\n";
    const sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0)
            continue;
        fm_enable(sig == SIGUSR1);
        const char *msg = sig == SIGUSR1 ? on : off;
        if (write(2, msg, strlen(msg)) < 0) {
            /* nowhere to say it */
        }
    }
    return NULL;
}

static sigset_t g_set;
static pthread_t g_thread;
static int g_have_thread;

__attribute__((constructor)) static void fm_from_env(void)
{
    const char *n = getenv("MAOS_FAILMALLOC_NTH");
    const char *p = getenv("MAOS_FAILMALLOC_PERSIST");
    if (!n || !*n)
        return;
    fm_configure(atol(n), p && strcmp(p, "1") == 0);
    fm_enable(0);
    const char *w = getenv("MAOS_FAILMALLOC_WINDOW");
    if (w && *w)
        fm_only(w);
    sigemptyset(&g_set);
    sigaddset(&g_set, SIGUSR1);
    sigaddset(&g_set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &g_set, NULL);
    if (pthread_create(&g_thread, NULL, signal_thread, &g_set) != 0)
        abort();
    g_have_thread = 1;
}

/* Joined at exit (sigwait is a cancellation point): a thread still alive
 * then would make TSan sleep a second before exiting (atexit_sleep_ms). */
__attribute__((destructor)) static void fm_stop_thread(void)
{
    if (!g_have_thread)
        return;
    pthread_cancel(g_thread);
    pthread_join(g_thread, NULL);
    g_have_thread = 0;
}
