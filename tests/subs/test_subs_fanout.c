/*
 * tests/subs/test_subs_fanout.c -- fan-out (issue 3, "Tests": 200
 * subscribers on one connection each and one writer: every subscriber gets
 * every event).
 *
 * One process holds 200 raw connections.  100 subscribe to everything
 * before the writer starts (live from position 1); a forked writer then
 * appends 500 events in appends of 1..5 events (durability sync) while the
 * other 100 subscribe "from start" one after another, so they join at
 * different points and switch from catch-up to live under load.  Every
 * connection is read with one poll() over all of them.  Each subscriber
 * must end with exactly positions 1..500, in order, with the same record
 * bytes as read_all: nothing missing, nothing twice.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "subs_util.h"

#define N_SUBS 200
#define N_EVENTS 500

/* Read what is readable on c now and dispatch every whole frame.  0, or
 * -1 when the peer closed. */
static int feed(su_conn *c)
{
    char *p;
    long space = maos_reader_space(&c->rd, &p, 0);
    if (space <= 0)
        MT_FAIL("reader space: %ld", space);
    ssize_t k = recv(c->fd, p, (size_t)space, MSG_DONTWAIT);
    if (k == 0)
        return -1;
    if (k < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    maos_reader_commit(&c->rd, (size_t)k);
    for (;;) {
        maos_slice fr;
        int r = maos_reader_next(&c->rd, &fr);
        if (r < 0)
            MT_FAIL("frame reader: %s", maos_err_name(r));
        if (r == 0)
            return 0;
        maos_push push;
        r = maos_push_decode(fr.ptr, fr.len, &push);
        if (r != 1)
            MT_FAIL("a frame that is not a push (%d) while only pushes were "
                    "expected",
                    r);
        c->on_push(c, &push, c->user);
    }
}

static void writer(const char *sock)
{
    su_conn *c = su_open(sock);
    su_rng r;
    su_rng_seed(&r, 4242);
    static const char *const streams[] = {"task-1", "task-2", "job-1"};
    static const char *const types[] = {"A", "B", "C"};
    msgpack_sbuffer data[5];
    for (int i = 0; i < 5; i++)
        msgpack_sbuffer_init(&data[i]);
    uint64_t seq = 0;
    while (seq < N_EVENTS) {
        size_t n = 1 + su_rng_below(&r, 5);
        if (seq + n > N_EVENTS)
            n = N_EVENTS - seq;
        su_ev_in ev[5];
        for (size_t i = 0; i < n; i++) {
            su_mk_data(&data[i], 0, seq + i, su_rng_below(&r, 64));
            ev[i] = (su_ev_in){types[su_rng_below(&r, 3)], data[i].data,
                               data[i].size};
        }
        int rc = su_append(c, streams[su_rng_below(&r, 3)], ev, n, NULL);
        if (rc)
            SU_FAIL("append: %d (%s)", rc, maos_err_name(rc));
        seq += n;
        if (su_rng_below(&r, 4) == 0)
            mt_sleep_ms(1); /* let the late subscribers join mid-way */
    }
    for (int i = 0; i < 5; i++)
        msgpack_sbuffer_destroy(&data[i]);
    su_close(c);
}

static void test_fanout_200(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    su_conn **cs = calloc(N_SUBS, sizeof *cs);
    su_collector *cols = calloc(N_SUBS, sizeof *cols);
    su_sub *subs = calloc(N_SUBS, sizeof *subs);
    for (int i = 0; i < N_SUBS; i++) {
        cs[i] = su_open(d->sock);
        cols[i].subs = &subs[i];
        su_set_push(cs[i], su_collect, &cols[i]);
    }
    /* the first half: live from position 1 before anything is written */
    for (int i = 0; i < N_SUBS / 2; i++) {
        MT_EQ_ERR(su_subscribe(cs[i], NULL, MAOS_FROM_LIVE, 0, &subs[i].id,
                               &subs[i].from),
                  0);
        MT_EQ_U64(subs[i].from, 1);
        cols[i].n = 1;
    }
    int64_t t0 = mt_now_us();
    pid_t w = su_fork("fan-out writer");
    if (w == 0) {
        writer(d->sock);
        _exit(0);
    }
    /* the second half: from the start, while the writer runs */
    su_conn *probe = su_open(d->sock);
    uint64_t joined_at[N_SUBS];
    for (int i = N_SUBS / 2; i < N_SUBS; i++) {
        joined_at[i] = su_head(probe);
        MT_EQ_ERR(su_subscribe(cs[i], NULL, MAOS_FROM_POSITION, 1, &subs[i].id,
                               &subs[i].from),
                  0);
        MT_EQ_U64(subs[i].from, 1);
        cols[i].n = 1;
        if (i % 10 == 0)
            mt_sleep_ms(2);
    }
    print_message("late subscribers joined at heads %llu .. %llu\n",
                  (unsigned long long)joined_at[N_SUBS / 2],
                  (unsigned long long)joined_at[N_SUBS - 1]);

    struct pollfd *pf = calloc(N_SUBS, sizeof *pf);
    int64_t deadline = mt_now_us() + 60000000;
    int writer_done = 0;
    for (;;) {
        size_t complete = 0;
        for (int i = 0; i < N_SUBS; i++)
            complete += subs[i].got.n >= N_EVENTS;
        if (!writer_done && !su_alive(w)) {
            int st = mt_wait(w, 1000);
            if (st != 0)
                MT_FAIL("the writer exited with status %d", st);
            writer_done = 1;
            print_message("writer done after %.2f s\n",
                          (double)(mt_now_us() - t0) / 1e6);
        }
        if (complete == N_SUBS && writer_done)
            break;
        if (mt_now_us() > deadline) {
            for (int i = 0; i < N_SUBS; i++)
                if (subs[i].got.n < N_EVENTS)
                    print_error("subscriber %d: %zu events, next %llu, "
                                "caught_up %llu\n",
                                i, subs[i].got.n,
                                (unsigned long long)subs[i].next,
                                (unsigned long long)subs[i].caught_up);
            MT_FAIL("only %zu of %d subscribers got all %d events within "
                    "60 s (writer done: %d)",
                    complete, N_SUBS, N_EVENTS, writer_done);
        }
        for (int i = 0; i < N_SUBS; i++)
            pf[i] = (struct pollfd){cs[i]->fd, POLLIN, 0};
        int pr = poll(pf, N_SUBS, 50);
        if (pr < 0 && errno != EINTR)
            MT_FAIL("poll: %s", strerror(errno));
        /* Quiet for 50 ms: a request from another connection, so this test
         * does not depend on the daemon sending a last catch-up push with
         * no other traffic (test_subs_ops' test_catchup_quiet checks that). */
        if (pr == 0)
            su_ping(probe);
        for (int i = 0; pr > 0 && i < N_SUBS; i++)
            if (pf[i].revents && feed(cs[i]) < 0)
                MT_FAIL("the daemon closed subscriber %d's connection", i);
    }
    double secs = (double)(mt_now_us() - t0) / 1e6;

    /* anything queued after the last event (there should be nothing) */
    for (int i = 0; i < N_SUBS; i++)
        su_ping(cs[i]);
    su_evs want = {0};
    su_read_all(probe, NULL, 1, 0, &want);
    MT_EQ_U64(want.n, N_EVENTS);
    for (int i = 0; i < N_SUBS; i++) {
        char what[64];
        snprintf(what, sizeof what, "subscriber %d (%s)", i,
                 i < N_SUBS / 2 ? "live from 1" : "from start, joined late");
        su_evs_assert_equal(what, &subs[i].got, &want);
        MT_EQ_U64(cols[i].unknown, 0);
        MT_CMP_INT(subs[i].caught_up, >=, 1);
    }
    maos_stats st;
    su_stats(probe, &st);
    print_message("fan-out: %d subscribers x %d events in %.2f s; push_frames "
                  "%llu, push_events %llu, fell_behind %llu\n",
                  N_SUBS, N_EVENTS, secs, (unsigned long long)st.push_frames,
                  (unsigned long long)st.push_events,
                  (unsigned long long)st.fell_behind);
    MT_EQ_U64(st.subscriptions, N_SUBS);
    MT_EQ_U64(st.subscriptions_live, N_SUBS);
    MT_EQ_U64(st.subscriptions_max_lag, 0);
    MT_EQ_U64(st.push_events, (uint64_t)N_SUBS * N_EVENTS);
    for (int i = 0; i < N_SUBS; i++) {
        su_evs_free(&subs[i].got);
        su_close(cs[i]);
    }
    su_evs_free(&want);
    su_close(probe);
    free(pf);
    free(cs);
    free(cols);
    free(subs);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout_200),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 120);
}
