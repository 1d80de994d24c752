/*
 * tests/subs/test_subs_slow.c -- a slow consumer costs a position, not
 * memory (issue 3, "Slow consumers and memory" and "Tests").
 *
 * maosd runs with --max-output-mb 4.  The test process subscribes to
 * everything from the start on one raw connection and then does not read
 * it.  A forked writer appends TOTAL events (200,000, about 620 bytes of
 * data each: ~150 MB of stored records) as pipelined appends of 100 events
 * (up to 32 in flight), and a forked "normal" subscriber reads everything
 * as it comes.  Meanwhile the test samples the daemon's VmRSS every 20 ms.
 *
 * Asserted:
 *  - memory: the daemon's peak VmRSS (sampled, and VmHWM at the end) stays
 *    under RSS_BOUND_MB.  The bound is README's "Memory bounds" total for
 *    this setup, with room to spare but well under what keeping the slow
 *    subscriber's backlog would cost (~150 MB of records on top):
 *       RSS once serving (measured after a first request; ~10-20 MiB)
 *     + block cache 32 MiB + memtables 64 MiB (RocksDB, README)
 *     + 3 connections x (4 MiB cap + 2 MiB catch-up window) = 18 MiB
 *     + the writer's frames in flight (32 x ~30 KiB ~ 1 MiB)
 *     + 24 MiB slack (allocator, RocksDB iterators and index blocks)
 *     = start-up + 139 MiB.  Under ASan the same plus a third for shadow
 *       and allocator overhead, with the daemon's quarantine set to 16 MiB.
 *  - writers are not stalled: the writer finishes within WRITER_MAX_S;
 *  - the normal subscriber gets all TOTAL events, once each, in order;
 *  - the slow subscriber, once it reads again, gets all TOTAL events once
 *    each in order (fell_behind / caught_up pushes allowed), and `stats`
 *    counts fell_behind >= 1;
 *  - afterwards every subscription is live with lag 0.
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

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define TOTAL 200000
#define BATCH 100
#define WINDOW 32
#define PAD 600          /* data ~620 bytes, record ~740 bytes */
#define RSS_MARGIN_MB 139
#define WRITER_MAX_S 60
#define N_STREAMS 10

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* Pipelined appends of BATCH events, at most WINDOW unanswered.  Replies
 * are matched by rid (PROTOCOL.md: replies may arrive in any order). */
static void writer(const char *sock, long total, long pad)
{
    su_conn *c = su_open(sock);
    msgpack_sbuffer data[BATCH];
    su_ev_in ev[BATCH];
    for (int i = 0; i < BATCH; i++)
        msgpack_sbuffer_init(&data[i]);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint64_t out[WINDOW];
    int n_out = 0;
    long sent = 0, acked = 0;
    while (sent < total || n_out > 0) {
        if (sent < total && n_out < WINDOW) {
            for (int i = 0; i < BATCH; i++) {
                su_mk_data(&data[i], 1, (uint64_t)(sent + i), (size_t)pad);
                ev[i] = (su_ev_in){i % 2 ? "Tick" : "Tock", data[i].data,
                                   data[i].size};
            }
            char stream[32];
            snprintf(stream, sizeof stream, "load-%ld", (sent / BATCH) % N_STREAMS);
            uint64_t rid = su_rid(c);
            sb.size = 0;
            su_enc_append(&sb, rid, stream, ev, BATCH);
            su_send_sb(c, &sb);
            out[n_out++] = rid;
            sent += BATCH;
            continue;
        }
        maos_slice fr;
        int r = su_recv(c, 60000, &fr);
        if (r != 1)
            SU_FAIL("no append reply within 60 s (%d); %ld of %ld acked", r,
                    acked, total);
        maos_reply rep;
        if (maos_reply_decode(fr.ptr, fr.len, &rep))
            SU_FAIL("undecodable append reply");
        if (!rep.ok)
            SU_FAIL("append rid %llu: %d (%s)", (unsigned long long)rep.rid,
                    rep.code, maos_err_name(rep.code));
        int k = 0;
        while (k < n_out && out[k] != rep.rid)
            k++;
        if (k == n_out)
            SU_FAIL("a reply for rid %llu, which is not outstanding",
                    (unsigned long long)rep.rid);
        if (rep.result.count != BATCH)
            SU_FAIL("append count %u, want %d", rep.result.count, BATCH);
        out[k] = out[--n_out];
        acked += BATCH;
    }
    for (int i = 0; i < BATCH; i++)
        msgpack_sbuffer_destroy(&data[i]);
    msgpack_sbuffer_destroy(&sb);
    su_close(c);
}

/* Reads everything from the start; exits 0 with all `total` in order. */
static void normal_reader(const char *sock, long total, int ready_fd)
{
    su_conn *c = su_open(sock);
    su_collector col = {0};
    su_sub sub;
    memset(&sub, 0, sizeof sub);
    col.subs = &sub;
    su_set_push(c, su_collect, &col);
    if (su_subscribe(c, NULL, MAOS_FROM_POSITION, 1, &sub.id, &sub.from))
        SU_FAIL("subscribe");
    col.n = 1;
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        SU_FAIL("write to parent");
    int64_t deadline = mt_now_us() + 240LL * 1000000;
    while ((long)sub.got.n < total) {
        if (mt_now_us() > deadline)
            SU_FAIL("normal subscriber: %zu of %ld events within 240 s",
                    sub.got.n, total);
        if (su_pump(c, 200, NULL) < 0)
            SU_FAIL("normal subscriber: the daemon closed the connection");
    }
    /* exactly 1..total: su_collect already refused duplicates and disorder */
    SU_EQ_U64(sub.got.n, total);
    SU_EQ_U64(sub.got.v[0].pos, 1);
    SU_EQ_U64(sub.got.v[total - 1].pos, total);
    printf("[normal subscriber] %ld events in %llu pushes, fell_behind %llu, "
           "caught_up %llu\n",
           total, (unsigned long long)sub.frames,
           (unsigned long long)sub.fell_behind,
           (unsigned long long)sub.caught_up);
    fflush(stdout);
    su_evs_free(&sub.got);
    su_close(c);
}

static void test_slow_consumer(void **state)
{
    (void)state;
    long total = env_long("MAOS_SLOW_TOTAL", TOTAL);
    long pad = env_long("MAOS_SLOW_PAD", PAD);
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_add_arg(d, "--max-output-mb");
    mt_daemon_add_arg(d, "4");
    if (UNDER_ASAN) {
        const char *a = getenv("ASAN_OPTIONS");
        char opts[512];
        snprintf(opts, sizeof opts, "%s%squarantine_size_mb=16",
                 a && *a ? a : "", a && *a ? ":" : "");
        mt_daemon_setenv(d, "ASAN_OPTIONS", opts);
    }
    mt_daemon_up(d);
    /* the baseline once the daemon has served a request (its serving
     * code and buffers are in), not after a guessed sleep */
    su_conn *first = su_open(d->sock);
    maos_stats s0;
    su_stats(first, &s0);
    su_close(first);
    long rss0 = mt_rss_kb(d->pid);
    MT_CMP_INT(rss0, >, 0);
    long margin = env_long("MAOS_SLOW_MARGIN_MB", RSS_MARGIN_MB) * 1024;
    long bound = UNDER_ASAN ? rss0 + margin + margin / 3 : rss0 + margin;

    /* the slow one: subscribed, then never read until the writer is done */
    su_conn *slow = su_open(d->sock);
    su_collector col = {0};
    su_sub sub;
    memset(&sub, 0, sizeof sub);
    col.subs = &sub;
    su_set_push(slow, su_collect, &col);
    MT_EQ_ERR(su_subscribe(slow, NULL, MAOS_FROM_POSITION, 1, &sub.id,
                           &sub.from),
              0);
    col.n = 1;
    MT_EQ_U64(sub.from, 1);

    int ready[2];
    if (pipe(ready) != 0)
        MT_FAIL("pipe: %s", strerror(errno));
    pid_t reader = su_fork("normal subscriber");
    if (reader == 0) {
        close(ready[0]);
        normal_reader(d->sock, total, ready[1]);
        _exit(0);
    }
    close(ready[1]);
    char one;
    if (read(ready[0], &one, 1) != 1)
        MT_FAIL("the normal subscriber did not subscribe");
    close(ready[0]);

    int64_t t0 = mt_now_us();
    pid_t w = su_fork("writer");
    if (w == 0) {
        writer(d->sock, total, pad);
        _exit(0);
    }
    long peak = rss0, samples = 0;
    int64_t deadline = t0 + (int64_t)WRITER_MAX_S * 1000000;
    while (su_alive(w)) {
        long rss = mt_rss_kb(d->pid);
        if (rss > peak)
            peak = rss;
        samples++;
        if (rss > bound && !MT_TSAN) /* TSan: see harness.h */
            MT_FAIL("daemon VmRSS %ld KiB over the bound %ld KiB (start-up "
                    "%ld KiB) while the slow subscriber does not read",
                    rss, bound, rss0);
        if (mt_now_us() > deadline)
            MT_FAIL("the writer did not finish %ld events within %d s "
                    "(writers stalled by the slow subscriber?)",
                    total, WRITER_MAX_S);
        mt_sleep_ms(20);
    }
    double wsecs = (double)(mt_now_us() - t0) / 1e6;
    int st = mt_wait(w, 1000);
    if (st != 0)
        MT_FAIL("the writer exited with status %d", st);
    long hwm = mt_hwm_kb(d->pid);
    su_conn *probe = su_open(d->sock);
    maos_stats s1;
    su_stats(probe, &s1);
    print_message("writer: %ld events in %.2f s (%.0f events/s); daemon RSS "
                  "start-up %ld KiB, peak sampled %ld KiB (%ld samples), "
                  "VmHWM %ld KiB, bound %ld KiB; fell_behind %llu, max lag "
                  "%llu\n",
                  total, wsecs, (double)total / wsecs, rss0, peak, samples,
                  hwm, bound, (unsigned long long)s1.fell_behind,
                  (unsigned long long)s1.subscriptions_max_lag);
    MT_EQ_U64(s1.head_position, total);
    if (hwm > bound && !MT_TSAN) /* TSan: see harness.h */
        MT_FAIL("daemon VmHWM %ld KiB over the bound %ld KiB (start-up %ld "
                "KiB)",
                hwm, bound, rss0);
    /* the slow subscriber fell behind (its backlog is a position) */
    MT_CMP_INT(s1.fell_behind, >=, 1);
    MT_CMP_INT(s1.subscriptions_max_lag, >, 0);

    /* the normal subscriber got everything, and was not held up: it is
     * done within 30 s of the writer */
    st = mt_wait(reader, 30000);
    if (st != 0)
        MT_FAIL("the normal subscriber exited with status %d (1000: still "
                "reading 30 s after the writer finished)",
                st);

    /* now the slow one reads: all of them, once each, in order */
    int64_t t1 = mt_now_us();
    deadline = t1 + 120LL * 1000000;
    while ((long)sub.got.n < total) {
        if (mt_now_us() > deadline)
            MT_FAIL("slow subscriber: %zu of %ld events within 120 s after "
                    "it resumed reading (next %llu, fell_behind %llu, "
                    "caught_up %llu)",
                    sub.got.n, total, (unsigned long long)sub.next,
                    (unsigned long long)sub.fell_behind,
                    (unsigned long long)sub.caught_up);
        /* every position considered but some never delivered: a gap */
        if (sub.next > (uint64_t)total)
            MT_FAIL("slow subscriber: next %llu is past the head %ld but only "
                    "%zu of %ld events were delivered (events missing)",
                    (unsigned long long)sub.next, total, sub.got.n, total);
        int r = su_pump(slow, 200, NULL);
        if (r < 0)
            MT_FAIL("the daemon closed the slow subscriber's connection "
                    "after %zu events",
                    sub.got.n);
        if (r == 0)
            su_ping(probe); /* quiet: see test_subs_ops' test_catchup_quiet */
    }
    double rsecs = (double)(mt_now_us() - t1) / 1e6;
    MT_EQ_U64(sub.got.n, total);
    MT_EQ_U64(sub.got.v[0].pos, 1);
    MT_EQ_U64(sub.got.v[total - 1].pos, total);
    /* the same bytes as stored */
    su_evs want = {0};
    su_read_all(probe, NULL, 1, 0, &want);
    su_evs_assert_equal("slow subscriber", &sub.got, &want);
    /* it is live again: caught_up after its last fell_behind */
    int64_t live_deadline = mt_now_us() + 10000000;
    maos_stats s2;
    for (;;) {
        su_pump(slow, 50, NULL);
        su_stats(probe, &s2);
        if (s2.subscriptions_live == 1 || mt_now_us() > live_deadline)
            break;
    }
    print_message("slow subscriber: %zu events in %llu pushes after resuming "
                  "(%.2f s), fell_behind pushes %llu, caught_up pushes %llu; "
                  "stats fell_behind %llu, live %llu, max lag %llu\n",
                  sub.got.n, (unsigned long long)sub.frames, rsecs,
                  (unsigned long long)sub.fell_behind,
                  (unsigned long long)sub.caught_up,
                  (unsigned long long)s2.fell_behind,
                  (unsigned long long)s2.subscriptions_live,
                  (unsigned long long)s2.subscriptions_max_lag);
    MT_EQ_U64(s2.subscriptions, 1);
    MT_EQ_U64(s2.subscriptions_live, 1);
    MT_EQ_U64(s2.subscriptions_max_lag, 0);
    MT_CMP_INT(sub.caught_up, >=, 1);
    MT_EQ_U64(col.unknown, 0);
    /* the push state sequence: caught_up (maybe), then fell_behind and
     * caught_up in turn; the last state is caught_up */
    MT_CMP_INT(sub.caught_up, >=, sub.fell_behind);
    su_evs_free(&want);
    su_evs_free(&sub.got);
    su_close(slow);
    su_close(probe);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_consumer),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 400);
}
