/*
 * tests/fuzz/fuzz_async.c -- libFuzzer target for libmaos-client's async
 * reader: the bytes a (hostile or broken) server sends on a connection
 * with requests of every kind in flight.
 *
 * A context is made on one end of a socketpair (client_priv.h
 * maosc_ctx_new: no daemon, no handshake), async requests are issued
 * (rids 1..), a legacy pipelined append and two async subscriptions too;
 * the input is written to the other end, the write side shut, and
 * maos_process runs until the context dies (the EOF at the latest).  Every
 * callback decodes its answer with the getters.  Beyond "no crash, leak,
 * overflow or UB", it checks:
 *  - every callback ran exactly once by the time the context is freed;
 *  - a failing getter returns a known error code;
 *  - the context ends dead (the EOF) with a connection error.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "client_priv.h"
#include "fuzz.h"

enum { NREQ = 9 };

struct slot {
    int calls;
};

static void check_rc(int rc)
{
    FUZZ_CHECK(rc == 0 || fuzz_known_err(rc), "getter returned %d", rc);
}

static void on_done(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    struct slot *s = privdata;
    s->calls++;
    FUZZ_CHECK(status == 0 || fuzz_known_err(status), "status %d", status);
    maos_result_fields f;
    maos_page *pg = NULL;
    maos_table_page *tp = NULL;
    maos_stream_page *sp = NULL;
    maos_task_page *kp = NULL;
    maos_stats_info st;
    maos_append_info ai = {0};
    int64_t actual;
    maos_result_actual(r, &actual);
    (void)maos_result_index(r);
    FUZZ_CHECK(maos_result_errstr(r) != NULL, "errstr");
    if (status)
        return;
    check_rc(maos_result_fields_get(r, &f));
    int rc = maos_result_page(r, &pg);
    check_rc(rc);
    maos_page_free(pg);
    check_rc(maos_result_table_page(r, &tp));
    maos_table_page_free(tp);
    check_rc(maos_result_streams(r, &sp));
    maos_stream_page_free(sp);
    check_rc(maos_result_task_page(r, &kp));
    maos_task_page_free(kp);
    check_rc(maos_result_stats(r, &st));
    check_rc(maos_result_append(r, 0, &ai));
}

static void on_any(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    (void)user;
    for (size_t i = 0; i < d->n; i++)
        FUZZ_CHECK(d->events[i].stream_len == 0 || d->events[i].stream, "event stream");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (size > 256 * 1024 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return 0;
    maos_options o = {.path = "fuzz", .timeout_ms = MAOS_TIMEOUT_NONE};
    maos_ctx *c = maosc_ctx_new(&o);
    FUZZ_CHECK(c && !c->err, "context");
    c->priv->fd = sv[0];
    c->priv->ever_connected = 1;
    struct slot s[NREQ + 2];
    memset(s, 0, sizeof s);
    maos_event_spec ev = {NULL, "T", NULL, 0, NULL, 0};
    maos_read_filter fl = {.prefix = "s"};
    int rc[NREQ + 2];
    rc[0] = maos_async_ping(c, on_done, &s[0]);                                 /* rid 1 */
    rc[1] = maos_async_append(c, on_done, &s[1], "s-1", MAOS_EXPECT_ANY, &ev, 1); /* 2 */
    rc[2] = maos_async_read(c, on_done, &s[2], "s-1", 0, 0, 10);                /* 3 */
    rc[3] = maos_async_read_all(c, on_done, &s[3], NULL, 1, 0, 10);             /* 4 */
    rc[4] = maos_async_get(c, on_done, &s[4], "kv.t", "k");                     /* 5 */
    rc[5] = maos_async_streams(c, on_done, &s[5], NULL, NULL, 0);               /* 6 */
    rc[6] = maos_async_stats(c, on_done, &s[6]);                                /* 7 */
    rc[7] = maos_async_subscribe(c, on_done, &s[7], &fl, MAOS_FROM_POSITION, 1); /* 8 */
    rc[8] = maos_async_subscribe_channel(c, on_done, &s[8], "ch.*");            /* 9 */
    rc[9] = maos_async_txn(c, on_done, &s[9],
                           &(maos_txn_append){"s-2", MAOS_EXPECT_ANY, &ev, 1, NULL}, 1); /* 10 */
    rc[10] = maos_async_checkpoint_get(c, on_done, &s[10], "cp");               /* 11 */
    uint64_t lrid;
    maos_append_send(c, "s-3", MAOS_EXPECT_ANY, &ev, 1, &lrid);                  /* 12 */
    for (int i = 0; i < NREQ + 2; i++)
        FUZZ_CHECK(rc[i] == 0, "request %d not queued: %d", i, rc[i]);
    maos_push_handlers h = {on_any, on_any, on_any};
    maos_process(c, &h, NULL); /* writes the requests */
    size_t off = 0;
    for (int turn = 0; turn < 10000 && !maos_is_dead(c); turn++) {
        if (off < size) {
            ssize_t k = write(sv[1], data + off, size - off);
            if (k > 0)
                off += (size_t)k;
            if (off == size)
                shutdown(sv[1], SHUT_WR);
        } else if (off == 0) {
            shutdown(sv[1], SHUT_WR);
            off = 1;
        }
        /* drain what the client writes, so it never blocks */
        char sink[4096];
        while (read(sv[1], sink, sizeof sink) > 0)
            ;
        maos_process(c, &h, NULL);
    }
    FUZZ_CHECK(maos_is_dead(c), "the EOF must end the connection");
    FUZZ_CHECK(maos_err_is_fatal(c->err), "dead with %d", c->err);
    maos_result *m = NULL;
    maos_reply_recv(c, &m); /* dead: fails at once */
    maos_result_free(m);
    maos_free(c); /* runs the callbacks still due */
    for (int i = 0; i < NREQ + 2; i++)
        FUZZ_CHECK(s[i].calls == 1, "callback %d ran %d times", i, s[i].calls);
    close(sv[1]);
    return 0;
}
