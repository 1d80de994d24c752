/*
 * maos/adapters/libuv.h -- run a maos_ctx's subscriptions inside a libuv
 * loop.  Header-only (like hiredis' adapters): include it in one or more
 * files of a program that links libuv; the library itself never depends
 * on libuv.
 *
 *     maos_uv *a = maos_uv_attach(loop, c, &handlers, user, on_error);
 *     ... uv_run(loop, UV_RUN_DEFAULT) ...
 *     maos_uv_detach(a);      then maos_free(c) (or go on using c blocking)
 *
 * How it works: maos_set_loop_ops() tells the adapter what to watch --
 * the socket for reading, for writing while output waits, and a timer
 * (request timeouts, reconnect backoff, work queued outside the loop); the
 * adapter keeps one uv_poll_t on the current socket (a new one after every
 * reconnect, since uv_poll_t is bound to a descriptor) and one uv_timer_t,
 * and both call maos_process(), which writes, reads, and runs the
 * callbacks of async requests (maos_async_*) and the push handlers.  Deliveries queued by synchronous calls made
 * elsewhere in the program (e.g. an append in another callback) are
 * handled on the next loop turn; reconnect backoff runs on the timer, and a
 * reconnect attempt (connect, then hello and the re-subscribes, pipelined)
 * completes as its answers arrive: the loop never sleeps in the library.
 *
 * Invariants:
 *  - a->poll watches a->fd for a->events, or is NULL (fd -1);
 *  - the timer is armed as the library last asked (ops.timer);
 *  - after on_error ran (the context died) nothing else is called.
 *
 * Ownership: maos_uv_attach allocates the adapter; maos_uv_detach releases
 * it (asynchronously, with the loop's close callbacks: keep the loop
 * running until they ran, as usual in libuv).  The context stays the
 * caller's; detach before maos_free(c).  handlers are copied.
 * Thread-safety: everything runs on the loop's thread, as the context's
 * one-thread rule (maos/client.h) requires.
 */
#ifndef MAOS_ADAPTERS_LIBUV_H
#define MAOS_ADAPTERS_LIBUV_H

#include <stdlib.h>

#include <uv.h>

#include "maos/client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct maos_uv maos_uv;

/* The context died (err: its sticky error, also in c->err / c->errstr).
 * Called once; the adapter has stopped watching.  Detach, then free the
 * context (or connect again). */
typedef void (*maos_uv_error_cb)(maos_uv *a, maos_ctx *c, int err, void *user);

struct maos_uv {
    uv_loop_t *loop;
    maos_ctx *c;
    maos_push_handlers h;
    void *user;
    maos_uv_error_cb on_error;
    uv_poll_t *poll; /* watcher of fd, or NULL */
    int fd;
    int events;      /* UV_READABLE | UV_WRITABLE asked for */
    uv_timer_t timer;
    int failed, detached;
};

static inline void maos_uv__run(maos_uv *a)
{
    if (a->failed || a->detached)
        return;
    int rc = maos_process(a->c, &a->h, a->user);
    if (rc < 0 && maos_is_dead(a->c)) {
        a->failed = 1;
        uv_timer_stop(&a->timer);
        if (a->poll)
            uv_poll_stop(a->poll);
        if (a->on_error)
            a->on_error(a, a->c, rc, a->user);
    }
}

static inline void maos_uv__on_poll(uv_poll_t *w, int status, int events)
{
    (void)status; /* an error shows up as a failing read in maos_process */
    (void)events;
    maos_uv__run((maos_uv *)w->data);
}

static inline void maos_uv__on_timer(uv_timer_t *t)
{
    maos_uv__run((maos_uv *)t->data);
}

static inline void maos_uv__free_handle(uv_handle_t *h)
{
    free(h);
}

static inline void maos_uv__free_adapter(uv_handle_t *h)
{
    free(h->data); /* the timer's data is the adapter that holds it */
}

static inline void maos_uv__drop_poll(maos_uv *a)
{
    if (!a->poll)
        return;
    uv_poll_stop(a->poll);
    uv_close((uv_handle_t *)a->poll, maos_uv__free_handle);
    a->poll = NULL;
    a->fd = -1;
    a->events = 0;
}

/* Watch fd for `events` (0: nothing). */
static inline void maos_uv__watch(maos_uv *a, int fd, int events)
{
    if (a->detached)
        return;
    if (fd != a->fd)
        maos_uv__drop_poll(a);
    if (!events) {
        maos_uv__drop_poll(a);
        return;
    }
    if (!a->poll) {
        uv_poll_t *w = (uv_poll_t *)malloc(sizeof *w);
        if (!w || uv_poll_init(a->loop, w, fd) != 0) {
            free(w);
            /* cannot watch it: poll the context on the timer instead */
            uv_timer_start(&a->timer, maos_uv__on_timer, 10, 10);
            return;
        }
        w->data = a;
        a->poll = w;
        a->fd = fd;
    }
    a->events = events;
    uv_poll_start(a->poll, events, maos_uv__on_poll);
}

/* The maos_loop_ops of this adapter. */
static inline void maos_uv__add_read(void *data, int fd)
{
    maos_uv *a = (maos_uv *)data;
    maos_uv__watch(a, fd, (fd == a->fd ? a->events : 0) | UV_READABLE);
}
static inline void maos_uv__del_read(void *data, int fd)
{
    maos_uv *a = (maos_uv *)data;
    if (fd == a->fd)
        maos_uv__watch(a, fd, a->events & ~UV_READABLE);
}
static inline void maos_uv__add_write(void *data, int fd)
{
    maos_uv *a = (maos_uv *)data;
    maos_uv__watch(a, fd, (fd == a->fd ? a->events : 0) | UV_WRITABLE);
}
static inline void maos_uv__del_write(void *data, int fd)
{
    maos_uv *a = (maos_uv *)data;
    if (fd == a->fd)
        maos_uv__watch(a, fd, a->events & ~UV_WRITABLE);
}
static inline void maos_uv__timer(void *data, int ms)
{
    maos_uv *a = (maos_uv *)data;
    if (a->detached)
        return;
    if (ms < 0)
        uv_timer_stop(&a->timer);
    else
        uv_timer_start(&a->timer, maos_uv__on_timer, (uint64_t)ms, 0);
}

/*
 * Watch c's socket on loop and hand its deliveries to h (called with
 * user); the callbacks of c's async requests run from the same turns.
 * on_error may be NULL.  Returns the adapter, or NULL (out of memory, bad
 * arguments).  c must not be attached twice.
 */
static inline maos_uv *maos_uv_attach(uv_loop_t *loop, maos_ctx *c,
                                      const maos_push_handlers *h, void *user,
                                      maos_uv_error_cb on_error)
{
    if (!loop || !c || !h)
        return NULL;
    maos_uv *a = (maos_uv *)calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->loop = loop;
    a->c = c;
    a->h = *h;
    a->user = user;
    a->on_error = on_error;
    a->fd = -1;
    if (uv_timer_init(loop, &a->timer) != 0) {
        free(a);
        return NULL;
    }
    a->timer.data = a;
    maos_loop_ops ops = {a, maos_uv__add_read, maos_uv__del_read, maos_uv__add_write,
                         maos_uv__del_write, maos_uv__timer};
    maos_set_loop_ops(c, &ops); /* tells the current state: starts watching */
    return a;
}

/* Stop watching and release the adapter (see Ownership).  Accepts NULL. */
static inline void maos_uv_detach(maos_uv *a)
{
    if (!a)
        return;
    maos_set_loop_ops(a->c, NULL);
    a->detached = 1;
    maos_uv__drop_poll(a);
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, maos_uv__free_adapter); /* frees a */
}

#ifdef __cplusplus
}
#endif
#endif
