/*
 * tests/subs/test_subs_resume.c -- resume across daemon crashes (issue 3,
 * "Durable subscriptions and resume" and "Tests": kill -9 and restart
 * maosd while subscribed; the received sequence has no gap and no
 * duplicate).
 *
 * A forked writer appends N_EVENTS events with event ids (so that a batch
 * re-sent after a lost connection is an idempotent duplicate, never
 * written twice), reconnecting whenever the daemon is gone.  The test
 * process kills maosd with SIGKILL twice while the writer runs and starts
 * it again on the same data dir each time.  A forked subscriber follows
 * everything from the start:
 *
 *  - test_resume_raw: raw sockets; after a lost connection it reconnects
 *    and subscribes again from the last delivered position + 1 (the
 *    resume rule PROTOCOL.md gives);
 *  - test_resume_client (built as test_subs_resume_client):
 *    libmaos-client with reconnect on, which resumes by itself; it also
 *    saves a checkpoint now and then across the crashes.
 *
 * At the end the subscriber's sequence must equal read_all 1..H (same
 * positions, same record bytes): no gap, no duplicate, and nothing it saw
 * before a crash changed or vanished (only synced events are pushed).  H
 * must be exactly N_EVENTS (idempotent re-sends wrote nothing twice).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "subs_util.h"
#ifdef MAOS_SUBS_CLIENT
#include "maos/client.h"
#endif

#define N_EVENTS 4000
#define KILL_AT_1 800
#define KILL_AT_2 2200
#define RECONNECT_MS 30000

/* ---- the writer ------------------------------------------------------------------- */

static void mk_id(uint8_t id[16], uint64_t seq)
{
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0x3c ^ (i * 29));
    memcpy(id, &seq, 8);
    id[6] = (uint8_t)(0x40 | (id[6] & 0x0f));
    id[8] = (uint8_t)(0x80 | (id[8] & 0x3f));
    id[15] ^= 0x01;
}

static su_conn *open_retry(const char *sock, int64_t deadline)
{
    for (;;) {
        su_conn *c = su_try_open(sock);
        if (c)
            return c;
        if (mt_now_us() > deadline)
            SU_FAIL("cannot reach the daemon at %s", sock);
        mt_sleep_ms(20);
    }
}

/* One append (with ids) sent and answered; 0, or -1 when the connection
 * was lost (the caller reconnects and sends it again). */
static int append_once(su_conn *c, const maos_append_in *a, uint32_t n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t rid = su_rid(c);
    if (maos_enc_append(&pk, rid, a))
        SU_FAIL("encode append");
    int rc = su_send(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc)
        return -1;
    maos_slice fr;
    int r = su_recv(c, 20000, &fr);
    if (r != 1)
        return -1;
    maos_reply rep;
    if (maos_reply_decode(fr.ptr, fr.len, &rep) || rep.rid != rid)
        SU_FAIL("bad append reply");
    if (!rep.ok) {
        if (rep.code == MAOS_ESHUTTING_DOWN)
            return -1;
        SU_FAIL("append: %d (%s) %.*s", rep.code, maos_err_name(rep.code),
                (int)rep.message.len, rep.message.ptr);
    }
    if (rep.result.count != n)
        SU_FAIL("append count %u, want %u", rep.result.count, n);
    return rep.result.duplicate ? 1 : 0;
}

static void writer(const char *sock)
{
    su_rng r;
    su_rng_seed(&r, 777);
    static const char *const streams[] = {"task-1", "task-2", "job-1", "job-2"};
    msgpack_sbuffer data[5];
    maos_event_in ev[5];
    for (int i = 0; i < 5; i++)
        msgpack_sbuffer_init(&data[i]);
    int64_t deadline = mt_now_us() + RECONNECT_MS * 1000LL;
    su_conn *c = open_retry(sock, deadline);
    uint64_t seq = 0, resends = 0, dups = 0;
    while (seq < N_EVENTS) {
        uint32_t n = 1 + (uint32_t)su_rng_below(&r, 5);
        if (seq + n > N_EVENTS)
            n = (uint32_t)(N_EVENTS - seq);
        memset(ev, 0, sizeof ev);
        for (uint32_t i = 0; i < n; i++) {
            su_mk_data(&data[i], 7, seq + i, su_rng_below(&r, 50));
            ev[i].type = su_s(i % 2 ? "Progress" : "Done");
            ev[i].data = (maos_slice){data[i].data, (uint32_t)data[i].size};
            mk_id(ev[i].id, seq + i);
            ev[i].has_id = 1;
        }
        maos_append_in a = {su_s(streams[su_rng_below(&r, 4)]),
                            MAOS_EXPECT_ANY, n, ev};
        for (;;) {
            int rc = append_once(c, &a, n);
            if (rc >= 0) {
                dups += rc;
                break;
            }
            /* lost: the daemon was killed; the batch may or may not be
             * stored, the ids make the re-send safe */
            su_close(c);
            resends++;
            c = open_retry(sock, mt_now_us() + RECONNECT_MS * 1000LL);
        }
        seq += n;
    }
    printf("[writer] %d events, %llu re-sends after a lost connection, %llu "
           "of them found already stored\n",
           N_EVENTS, (unsigned long long)resends, (unsigned long long)dups);
    fflush(stdout);
    for (int i = 0; i < 5; i++)
        msgpack_sbuffer_destroy(&data[i]);
    su_close(c);
}

#ifndef MAOS_SUBS_CLIENT
/* ---- the raw subscriber ---------------------------------------------------------- */

/* Subscribe to everything from `from`; pushes that arrive before the reply
 * go to the collector.  0, or -1 when the connection was lost. */
static int subscribe_try(su_conn *c, uint64_t from, su_sub *sub)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t rid = su_rid(c);
    maos_enc_subscribe(&pk, rid, NULL, MAOS_FROM_POSITION, from);
    int rc = su_send(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc)
        return -1;
    maos_slice fr;
    if (su_recv(c, 20000, &fr) != 1)
        return -1;
    maos_reply rep;
    if (maos_reply_decode(fr.ptr, fr.len, &rep) || rep.rid != rid)
        SU_FAIL("bad subscribe reply (a push before the reply?)");
    if (!rep.ok)
        SU_FAIL("subscribe from %llu: %d (%s)", (unsigned long long)from,
                rep.code, maos_err_name(rep.code));
    SU_EQ_U64(rep.from, from);
    sub->id = rep.sub;
    sub->from = from;
    /* a new subscription: its `next` starts over */
    sub->next = 0;
    return 0;
}

static uint64_t last_pos(const su_sub *s)
{
    return s->got.n ? s->got.v[s->got.n - 1].pos : 0;
}

#endif

static void verify(const char *sock, const su_evs *got, uint64_t h)
{
    su_conn *c = su_open(sock);
    su_evs want = {0};
    su_read_all(c, NULL, 1, 0, &want);
    SU_EQ_U64(want.n, h);
    su_evs_assert_equal("resumed subscription vs read_all", got, &want);
    su_evs_free(&want);
    su_close(c);
}

#ifndef MAOS_SUBS_CLIENT
static void raw_subscriber(const char *sock, int head_fd)
{
    su_collector col = {0};
    su_sub sub;
    memset(&sub, 0, sizeof sub);
    col.subs = &sub;
    col.n = 1;
    uint64_t reconnects = 0, opened = 0, h = 0;
    int have_h = 0;
    int64_t deadline = mt_now_us() + 120LL * 1000000;
    su_conn *c = NULL;
    while (!have_h || last_pos(&sub) < h) {
        if (mt_now_us() > deadline)
            SU_FAIL("subscriber: last position %llu of %llu within 120 s",
                    (unsigned long long)last_pos(&sub),
                    (unsigned long long)h);
        if (!have_h) {
            struct pollfd pfd = {head_fd, POLLIN, 0};
            if (poll(&pfd, 1, 0) == 1) {
                if (read(head_fd, &h, sizeof h) != (ssize_t)sizeof h)
                    SU_FAIL("reading the final head");
                have_h = 1;
            }
        }
        if (!c) {
            c = open_retry(sock, mt_now_us() + RECONNECT_MS * 1000LL);
            reconnects += opened++ > 0;
            su_set_push(c, su_collect, &col);
            /* resume: the last delivered position + 1 */
            if (subscribe_try(c, last_pos(&sub) + 1, &sub) != 0) {
                su_close(c);
                c = NULL;
                continue;
            }
        }
        int r = su_pump(c, 50, NULL);
        if (r < 0) {
            su_close(c);
            c = NULL;
        } else if (r == 0 && have_h) {
            /* Quiet after the writer finished: a request on another
             * connection, so that this test does not depend on the daemon
             * sending a last catch-up push with no other traffic
             * (test_subs_ops' test_catchup_quiet checks that). */
            su_conn *p = su_try_open(sock);
            if (p) {
                su_ping(p);
                su_close(p);
            }
        }
    }
    if (c)
        su_close(c);
    printf("[raw subscriber] %zu events, %llu reconnects\n", sub.got.n,
           (unsigned long long)reconnects);
    fflush(stdout);
    /* it noticed both crashes */
    SU_EQ_U64(reconnects, 2);
    verify(sock, &sub.got, h);
    su_evs_free(&sub.got);
}
#endif

/* ---- the client-library subscriber ------------------------------------------------ */

#ifdef MAOS_SUBS_CLIENT
/*
 * libmaos-client with reconnect on: one maos_subscribe from the start, then
 * maos_next until the final head.  The library reconnects after each crash
 * and resumes the subscription by itself.  Along the way it saves a
 * checkpoint every 500 events (a save may fail while the daemon is down;
 * the next one goes on), and at the end the checkpoint reads back.
 */
static void client_subscriber(const char *sock, int head_fd)
{
    maos_options o;
    memset(&o, 0, sizeof o);
    o.path = sock;
    o.timeout_ms = 20000;
    o.client_name = "subs-resume-test";
    o.reconnect = 1;
    o.reconnect_max_ms = RECONNECT_MS;
    maos_ctx *c = maos_connect_with(&o);
    if (!c || c->err)
        SU_FAIL("connect: %d (%s)", c ? c->err : -1,
                c ? maos_err_name(c->err) : "NULL");
    uint64_t sub = 0;
    int rc = maos_subscribe(c, NULL, MAOS_FROM_POSITION, 1, &sub);
    if (rc)
        SU_FAIL("maos_subscribe: %d (%s) %s", rc, maos_err_name(rc),
                c->errstr);
    su_evs got = {0};
    uint64_t h = 0, caught_up = 0, fell_behind = 0, errors = 0, saves = 0;
    uint64_t saved_at = 0, last_next = 0;
    int have_h = 0;
    int64_t deadline = mt_now_us() + 120LL * 1000000;
    for (;;) {
        uint64_t last = got.n ? got.v[got.n - 1].pos : 0;
        if (have_h && last >= h)
            break;
        if (mt_now_us() > deadline)
            SU_FAIL("subscriber: last position %llu of %llu within 120 s "
                    "(reconnects %llu, dead %d)",
                    (unsigned long long)last, (unsigned long long)h,
                    (unsigned long long)maos_reconnects(c), maos_is_dead(c));
        if (!have_h) {
            struct pollfd pfd = {head_fd, POLLIN, 0};
            if (poll(&pfd, 1, 0) == 1) {
                if (read(head_fd, &h, sizeof h) != (ssize_t)sizeof h)
                    SU_FAIL("reading the final head");
                have_h = 1;
            }
        }
        if (last >= saved_at + 500) {
            if (maos_checkpoint_save(c, "resume-test", last) == 0) {
                saved_at = last;
                saves++;
            }
        }
        maos_delivery *d = NULL;
        rc = maos_next(c, 100, &d);
        if (rc == MAOS_ETIMEOUT) {
            if (have_h) {
                /* quiet after the writer: see test_catchup_quiet */
                su_conn *p = su_try_open(sock);
                if (p) {
                    su_ping(p);
                    su_close(p);
                }
            }
            continue;
        }
        if (rc) {
            if (maos_is_dead(c))
                SU_FAIL("maos_next: the context died: %d (%s) %s", rc,
                        maos_err_name(rc), c->errstr);
            errors++; /* a lost connection; the library reconnects */
            continue;
        }
        if (d->sub != sub)
            SU_FAIL("a delivery for sub %llu, want %llu",
                    (unsigned long long)d->sub, (unsigned long long)sub);
        switch (d->kind) {
        case MAOS_PUSH_EVENTS:
            if (d->n == 0)
                SU_FAIL("an events delivery with no events");
            for (size_t i = 0; i < d->n; i++) {
                const maos_event *e = &d->events[i];
                uint64_t prev = got.n ? got.v[got.n - 1].pos : 0;
                if (e->position <= prev)
                    SU_FAIL("delivered position %llu after %llu (duplicate "
                            "or out of order; reconnects so far %llu)",
                            (unsigned long long)e->position,
                            (unsigned long long)prev,
                            (unsigned long long)maos_reconnects(c));
                su_evs_push(&got, e->position, su_hash(e->raw, e->raw_len));
            }
            if (d->next <= got.v[got.n - 1].pos)
                SU_FAIL("delivery next %llu not above its last event %llu",
                        (unsigned long long)d->next,
                        (unsigned long long)got.v[got.n - 1].pos);
            break;
        case MAOS_PUSH_CAUGHT_UP:
            caught_up++;
            break;
        case MAOS_PUSH_FELL_BEHIND:
            fell_behind++;
            break;
        default:
            SU_FAIL("unexpected delivery kind %d", (int)d->kind);
        }
        last_next = d->next;
        maos_delivery_free(d);
    }
    (void)last_next;
    /* the checkpoint, saved across crashes, reads back */
    rc = maos_checkpoint_save(c, "resume-test", h);
    if (rc)
        SU_FAIL("checkpoint_save: %d (%s)", rc, maos_err_name(rc));
    uint64_t cp = 0;
    rc = maos_checkpoint_get(c, "resume-test", &cp);
    if (rc)
        SU_FAIL("checkpoint_get: %d (%s)", rc, maos_err_name(rc));
    SU_EQ_U64(cp, h);
    uint64_t reconnects = maos_reconnects(c);
    printf("[client subscriber] %zu events, %llu reconnects, %llu failed "
           "calls, %llu checkpoints saved on the way, caught_up %llu, "
           "fell_behind %llu\n",
           got.n, (unsigned long long)reconnects, (unsigned long long)errors,
           (unsigned long long)saves, (unsigned long long)caught_up,
           (unsigned long long)fell_behind);
    fflush(stdout);
    /* it noticed the crashes and came back: once per crash, or once for
     * both when the second kill landed while the library was still
     * waiting out its backoff after the first (the daemon restarted and was
     * killed again between two of its tries); gap-free either way */
    SU_TRUE(reconnects >= 1 && reconnects <= 2);
    SU_TRUE(caught_up >= 1);
    /* at least one save on the way (the final one is read back above); how
     * many depends on how the events came: a catch-up push carries up to a
     * slice (thousands of these small events), so a subscriber that fell
     * behind may see the 4,000 in two or three deliveries */
    SU_TRUE(saves >= 1);
    maos_free(c);
    verify(sock, &got, h);
    su_evs_free(&got);
}
#endif

/* ---- the test --------------------------------------------------------------------- */

/* Wait until the head reaches `at` (or the writer ended). */
static uint64_t wait_head(mt_daemon *d, uint64_t at, pid_t w)
{
    int64_t deadline = mt_now_us() + 60000000;
    for (;;) {
        su_conn *c = su_try_open(d->sock);
        if (c) {
            uint64_t h = su_head(c);
            su_close(c);
            if (h >= at)
                return h;
        }
        if (!su_alive(w))
            MT_FAIL("the writer ended before the head reached %llu",
                    (unsigned long long)at);
        if (mt_now_us() > deadline)
            MT_FAIL("the head did not reach %llu within 60 s",
                    (unsigned long long)at);
        mt_sleep_ms(10);
    }
}

typedef void (*subscriber_fn)(const char *sock, int head_fd);

static void run_resume(subscriber_fn subscriber, const char *name)
{
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    int hp[2];
    if (pipe2(hp, O_CLOEXEC) != 0)
        MT_FAIL("pipe: %s", strerror(errno));
    pid_t s = su_fork("%s", name);
    if (s == 0) {
        close(hp[1]);
        subscriber(d->sock, hp[0]);
        _exit(0);
    }
    close(hp[0]);
    mt_sleep_ms(100); /* subscribed before the first event, usually */
    pid_t w = su_fork("writer");
    if (w == 0) {
        writer(d->sock);
        _exit(0);
    }
    uint64_t at1 = wait_head(d, KILL_AT_1, w);
    mt_daemon_kill9(d);
    mt_daemon_up(d);
    uint64_t at2 = wait_head(d, KILL_AT_2, w);
    mt_daemon_kill9(d);
    mt_daemon_up(d);
    print_message("killed maosd (SIGKILL) at heads %llu and %llu\n",
                  (unsigned long long)at1, (unsigned long long)at2);
    int st = mt_wait(w, 60000);
    if (st != 0)
        MT_FAIL("the writer exited with status %d", st);
    su_conn *c = su_open(d->sock);
    uint64_t h = su_head(c);
    su_close(c);
    /* idempotent re-sends: every event stored exactly once */
    MT_EQ_U64(h, N_EVENTS);
    if (write(hp[1], &h, sizeof h) != (ssize_t)sizeof h)
        MT_FAIL("telling the subscriber the head: %s", strerror(errno));
    st = mt_wait(s, 150000);
    close(hp[1]);
    if (st != 0)
        MT_FAIL("%s exited with status %d (its message is above)", name, st);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

#ifndef MAOS_SUBS_CLIENT
static void test_resume_raw(void **state)
{
    (void)state;
    run_resume(raw_subscriber, "raw subscriber");
}
#endif

#ifdef MAOS_SUBS_CLIENT
static void test_resume_client(void **state)
{
    (void)state;
    run_resume(client_subscriber, "client subscriber");
}

/*
 * A subscription from a version not written yet waits for exactly that
 * version (PROTOCOL.md); the library must keep waiting for it across a
 * reconnect, not resume by position (which would hand out the versions
 * below it that were written meanwhile).  Stream w has versions 0..2; the
 * client waits for version 5; the daemon restarts; versions 3..6 are
 * written: the first event delivered is version 5, then 6.
 */
static void test_from_version_across_restart(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *w = maos_connect_timeout(d->sock, 20000);
    MT_TRUE(w && !w->err);
    maos_event_spec ev = {.type = "t"};
    for (int i = 0; i < 3; i++)
        MT_EQ_ERR(maos_append(w, "w", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    maos_free(w);

    maos_options o;
    memset(&o, 0, sizeof o);
    o.path = d->sock;
    o.timeout_ms = 20000;
    o.reconnect = 1;
    o.reconnect_max_ms = RECONNECT_MS;
    maos_ctx *c = maos_connect_with(&o);
    MT_TRUE(c && !c->err);
    maos_read_filter f = {.stream = "w"};
    uint64_t sub;
    MT_EQ_ERR(maos_subscribe(c, &f, MAOS_FROM_VERSION, 5, &sub), 0);

    mt_daemon_kill9(d);
    mt_daemon_up(d);
    /* the library notices the loss on its next read and reconnects */
    int64_t deadline = mt_now_us() + 60LL * 1000000;
    while (maos_reconnects(c) == 0) {
        maos_delivery *dl = NULL;
        int rc = maos_next(c, 100, &dl);
        MT_TRUE(rc == MAOS_ETIMEOUT || (rc == 0 && dl->n == 0));
        maos_delivery_free(dl);
        if (mt_now_us() > deadline)
            MT_FAIL("no reconnect within 60 s");
    }
    w = maos_connect_timeout(d->sock, 20000);
    MT_TRUE(w && !w->err);
    for (int i = 3; i < 7; i++)
        MT_EQ_ERR(maos_append(w, "w", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    maos_free(w);

    uint64_t want = 5;
    while (want < 7) {
        maos_delivery *dl = NULL;
        int rc = maos_next(c, 100, &dl);
        if (rc == MAOS_ETIMEOUT) {
            if (mt_now_us() > deadline)
                MT_FAIL("version %llu not delivered within 60 s",
                        (unsigned long long)want);
            continue;
        }
        MT_EQ_ERR(rc, 0);
        for (size_t i = 0; i < dl->n; i++)
            MT_EQ_U64(dl->events[i].version, want++);
        maos_delivery_free(dl);
    }
    maos_free(c);
}
#endif

int main(int argc, char **argv)
{
    /* One source, two programs: test_subs_resume (raw sockets, proto
     * only) and test_subs_resume_client (libmaos-client). */
    const struct CMUnitTest tests[] = {
#ifdef MAOS_SUBS_CLIENT
        cmocka_unit_test(test_resume_client),
        cmocka_unit_test(test_from_version_across_restart),
#else
        cmocka_unit_test(test_resume_raw),
#endif
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 180);
}
