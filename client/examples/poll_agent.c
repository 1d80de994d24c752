/*
 * client/examples/poll_agent.c -- an event-loop agent on plain poll(2),
 * without any loop library.  Built by meson, not installed.
 *
 *   poll_agent STREAM [COUNT]
 *
 * It subscribes to STREAM from its start and appends COUNT events (default
 * 1000) to it, at most 64 in flight, never blocking: every request is a
 * maos_async_* call whose callback runs from maos_process, and the loop
 * below is told by maos_loop_ops what to watch:
 *   - the socket for reading, and for writing while output waits;
 *   - a timer (request timeouts, reconnect backoff, work to do soon).
 * It stops once all its appends were answered and it has seen them all
 * come back through the subscription.  With reconnect on and
 * MAOS_CLIENT_IDS, a daemon restart meanwhile is survived: the appends in
 * flight are re-sent with their ids (applied once), the subscription
 * resumes without gap or duplicate.
 *
 * The same ops map onto epoll (EPOLL_CTL_ADD/MOD with EPOLLIN/EPOLLOUT, a
 * timerfd for the timer) or any other loop; maos/adapters/libuv.h is the
 * libuv one.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "maos/client.h"

struct loop {
    int fd, rd, wr;
    long long timer_at; /* monotonic ms, -1: none */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The loop ops: only record what to watch; the loop acts on it. */
static void add_read(void *d, int fd) { struct loop *l = d; l->fd = fd; l->rd = 1; }
static void del_read(void *d, int fd) { struct loop *l = d; if (fd == l->fd) l->rd = 0; }
static void add_write(void *d, int fd) { struct loop *l = d; l->fd = fd; l->wr = 1; }
static void del_write(void *d, int fd) { struct loop *l = d; if (fd == l->fd) l->wr = 0; }
static void timer(void *d, int ms)
{
    struct loop *l = d;
    l->timer_at = ms < 0 ? -1 : now_ms() + ms;
}

struct agent {
    maos_ctx *c;
    const char *stream;
    long want, issued, answered, failed, seen;
};

static void issue(struct agent *a);

static void on_append(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    struct agent *a = privdata;
    maos_append_info info = {0};
    a->answered++;
    if (status || maos_result_append(r, 0, &info)) {
        /* MAOS_ECONNECTION (outcome unknown) cannot happen to an append
         * whose events carry ids; refusals and timeouts can */
        fprintf(stderr, "append: %s: %s\n", maos_err_name(status), maos_result_errstr(r));
        a->failed++;
    }
    (void)c;
    issue(a);
}

static void on_subscribed(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    (void)privdata;
    if (status)
        fprintf(stderr, "subscribe: %s: %s\n", maos_err_name(status), maos_result_errstr(r));
}

static void on_events(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    struct agent *a = user;
    a->seen += (long)d->n;
}

/* Keep up to 64 appends in flight. */
static void issue(struct agent *a)
{
    static const maos_event_spec ev = {NULL, "tick", "\xc0", 1, NULL, 0};
    while (a->issued < a->want && a->issued - a->answered < 64) {
        if (maos_async_append(a->c, on_append, a, a->stream, MAOS_EXPECT_ANY, &ev, 1)) {
            fprintf(stderr, "append not queued: %s\n", a->c->errstr);
            a->failed++;
            a->answered++;
        }
        a->issued++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s STREAM [COUNT]\n", argv[0]);
        return 2;
    }
    struct agent a = {.stream = argv[1], .want = argc == 3 ? atol(argv[2]) : 1000};
    maos_options opt = {.client_name = "poll_agent", .reconnect = 1,
                        .client_ids = MAOS_CLIENT_IDS};
    a.c = maos_connect_with(&opt); /* $MAOS_SOCKET or the default */
    if (!a.c || a.c->err) {
        fprintf(stderr, "connect: %s\n", a.c ? a.c->errstr : "out of memory");
        maos_free(a.c);
        return 3;
    }
    struct loop l = {-1, 0, 0, -1};
    maos_loop_ops ops = {&l, add_read, del_read, add_write, del_write, timer};
    maos_set_loop_ops(a.c, &ops);
    maos_push_handlers h = {on_events, NULL, NULL};
    maos_read_filter f = {.stream = a.stream};
    if (maos_async_subscribe(a.c, on_subscribed, &a, &f, MAOS_FROM_LIVE, 0)) {
        fprintf(stderr, "subscribe: %s\n", a.c->errstr);
        maos_free(a.c);
        return 3;
    }
    issue(&a);
    while (a.answered < a.want || a.seen < a.want - a.failed) {
        int ms = -1;
        if (l.timer_at >= 0) {
            long long left = l.timer_at - now_ms();
            ms = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
        }
        struct pollfd p = {l.fd, (short)((l.rd ? POLLIN : 0) | (l.wr ? POLLOUT : 0)), 0};
        poll(&p, l.fd >= 0 && p.events ? 1 : 0, ms);
        if (l.timer_at >= 0 && now_ms() >= l.timer_at)
            l.timer_at = -1;
        int rc = maos_process(a.c, &h, &a);
        if (rc < 0 && maos_is_dead(a.c)) {
            fprintf(stderr, "%s: %s\n", maos_err_name(rc), a.c->errstr);
            maos_free(a.c);
            return 1;
        }
    }
    printf("%ld appends answered (%ld failed), %ld seen through the subscription, "
           "%" PRIu64 " reconnect(s)\n", a.answered, a.failed, a.seen, maos_reconnects(a.c));
    maos_free(a.c);
    return a.failed ? 1 : 0;
}
