/*
 * tests/subs/test_queues_wire.c -- the queue ops over raw sockets, against
 * a real maosd (issue 8: semantics of enqueue, claim, ack, nack, extend,
 * release, dead letters; the bad inputs a client library would refuse).
 *
 *  - a task's life: enqueued -> claimed (attempt 1, token = the claimed
 *    event's position) -> acked, each an event of queue-NAME, its history
 *    in the record, the queue's counts;
 *  - expiry and fencing: a lease runs out, a waiting claimer gets the task
 *    (attempt 2, a higher token), the first worker's ack/extend/nack get
 *    LEASE_LOST and change nothing, the result is the second's;
 *  - a poison task ends in dead letters after max_attempts; retry brings
 *    it back; purge deletes it;
 *  - priorities, delays (nothing early), ordering keys (one at a time, in
 *    order, other keys in parallel), dedupe keys (same id while pending);
 *  - a waiting claim is served by the enqueue that follows (no polling);
 *    an empty wait ends with no tasks;
 *  - a bound claim goes back at once when its connection closes, counted;
 *  - txn: ack + append + enqueue all or nothing;
 *  - kill -9 of maosd with tasks in every state: after restart every
 *    acknowledged transition is there, due timers fire, bound claims are
 *    given back;
 *  - bad input: typed errors, the daemon serves on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "queue_util.h"
#include "subs_util.h"
#include "tables_util.h"

static void still_serves(void)
{
    su_conn *c = su_open(tu_daemon->sock);
    su_ping(c);
    su_close(c);
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void stream_type_at(su_conn *c, uint64_t pos, const char *stream, const char *type)
{
    char s[1100], t[64];
    tu_record_at(c, pos, s, t, NULL);
    MT_EQ_STR(s, stream);
    MT_EQ_STR(t, type);
}

/* ---- a task's life --------------------------------------------------------------------- */

static void test_life(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    uint8_t id[16];
    int dup = -1;
    tu_result r = qu_enqueue(c, "jobs", "build", NULL, id, &dup);
    MT_EQ_INT(r.code, 0);
    MT_EQ_INT(dup, 0);
    uint64_t enq = r.revision;
    stream_type_at(c, enq, "queue-jobs", "enqueued");

    qu_task t[4];
    r = qu_claim(c, "jobs", 10000, 0, 4, 0, t);
    MT_EQ_INT(r.code, 0);
    MT_EQ_U64(r.count, 1);
    MT_TRUE(!memcmp(t[0].id, id, 16));
    MT_EQ_U64(t[0].attempt, 1);
    MT_EQ_STR(t[0].state, "leased");
    MT_EQ_STR(t[0].data, "build");
    MT_TRUE(t[0].token > enq);
    MT_EQ_INT(t[0].n_history, 2);
    stream_type_at(c, t[0].token, "queue-jobs", "claimed");
    MT_TRUE(t[0].lease_until > t[0].enqueued);

    /* nothing else is ready */
    qu_task none[1];
    r = qu_claim(c, "jobs", 1000, 0, 1, 0, none);
    MT_EQ_INT(r.code, 0);
    MT_EQ_U64(r.count, 0);

    maos_queue_info qi;
    MT_EQ_INT(qu_stats(c, "jobs", &qi), 0);
    MT_EQ_U64(qi.leased, 1);
    MT_EQ_U64(qi.ready, 0);

    r = qu_ack(c, id, t[0].token, "ok");
    MT_EQ_INT(r.code, 0);
    stream_type_at(c, r.revision, "queue-jobs", "acked");
    qu_task got;
    MT_EQ_INT(qu_get(c, id, &got), 0);
    MT_EQ_STR(got.state, "done");
    MT_EQ_INT(got.n_history, 3);
    MT_EQ_U64(got.token, 0);
    MT_EQ_INT(qu_stats(c, "jobs", &qi), 0);
    MT_EQ_U64(qi.leased, 0);
    MT_EQ_U64(qi.done, 1);
    /* acking again: no longer leased */
    r = qu_ack(c, id, t[0].token, "again");
    MT_EQ_INT(r.code, MAOS_ELEASE_LOST);
    su_close(c);
}

/* ---- expiry and fencing ------------------------------------------------------------------ */

static void test_fencing(void **state)
{
    (void)state;
    su_conn *a = su_open(tu_daemon->sock), *b = su_open(tu_daemon->sock);
    uint8_t id[16];
    MT_EQ_INT(qu_enqueue(a, "fence", "payload", NULL, id, NULL).code, 0);
    qu_task ta, tb;
    tu_result r = qu_claim(a, "fence", 300, 0, 1, 0, &ta); /* a 300 ms lease */
    MT_EQ_U64(r.count, 1);
    /* b waits; the expiry hands the task to it */
    r = qu_claim(b, "fence", 30000, 30000, 1, 0, &tb);
    MT_EQ_INT(r.code, 0);
    MT_EQ_U64(r.count, 1);
    MT_TRUE(!memcmp(tb.id, id, 16));
    MT_EQ_U64(tb.attempt, 2);
    MT_TRUE(tb.token > ta.token);
    MT_EQ_STR(tb.last_error, "lease expired");
    /* a's late ops change nothing */
    MT_EQ_INT(qu_ack(a, id, ta.token, "a").code, MAOS_ELEASE_LOST);
    MT_EQ_INT(qu_extend(a, id, ta.token, 60000).code, MAOS_ELEASE_LOST);
    MT_EQ_INT(qu_nack(a, id, ta.token, "a failed", -1).code, MAOS_ELEASE_LOST);
    MT_EQ_INT(qu_release(a, id, ta.token).code, MAOS_ELEASE_LOST);
    qu_task got;
    MT_EQ_INT(qu_get(a, id, &got), 0);
    MT_EQ_STR(got.state, "leased");
    MT_EQ_U64(got.token, tb.token);
    /* b extends and acks */
    r = qu_extend(b, id, tb.token, 60000);
    MT_EQ_INT(r.code, 0);
    MT_EQ_INT(qu_ack(b, id, tb.token, "b").code, 0);
    MT_EQ_INT(qu_get(a, id, &got), 0);
    MT_EQ_STR(got.state, "done");
    su_close(a);
    su_close(b);
}

/* ---- poison tasks and dead letters -------------------------------------------------------- */

static void test_dead_letters(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    uint8_t id[16];
    qu_opts o = {.max_attempts = 3};
    MT_EQ_INT(qu_enqueue(c, "poison", "boom", &o, id, NULL).code, 0);
    for (int i = 1; i <= 3; i++) {
        qu_task t;
        tu_result r = qu_claim(c, "poison", 10000, 0, 1, 0, &t);
        MT_EQ_U64(r.count, 1);
        MT_EQ_U64(t.attempt, (uint64_t)i);
        r = qu_nack(c, id, t.token, "crashed", -1);
        MT_EQ_INT(r.code, 0);
        MT_EQ_STR(r.msg, i < 3 ? "ready" : "dead");
    }
    qu_task t;
    MT_EQ_U64(qu_claim(c, "poison", 10000, 0, 1, 0, &t).count, 0);
    qu_task dead[4];
    tu_result r = qu_dead_list(c, "poison", dead, 4);
    MT_EQ_INT(r.code, 0);
    MT_EQ_U64(r.count, 1);
    MT_EQ_STR(dead[0].state, "dead");
    MT_EQ_STR(dead[0].last_error, "crashed");
    maos_queue_info qi;
    MT_EQ_INT(qu_stats(c, "poison", &qi), 0);
    MT_EQ_U64(qi.dead, 1);
    /* retry brings it back as a new delivery */
    r = qu_dead_retry(c, "poison", id);
    MT_EQ_INT(r.code, 0);
    MT_EQ_INT(qu_dead_retry(c, "poison", id).code, MAOS_ECONFLICT); /* not dead now */
    r = qu_claim(c, "poison", 10000, 0, 1, 0, &t);
    MT_EQ_U64(r.count, 1);
    MT_EQ_U64(t.attempt, 1);
    /* dies again (max 3), then purge deletes it */
    for (int i = 0; i < 3; i++) {
        if (i)
            MT_EQ_U64(qu_claim(c, "poison", 10000, 0, 1, 0, &t).count, 1);
        MT_EQ_INT(qu_nack(c, id, t.token, "crashed again", -1).code, 0);
    }
    r = qu_dead_purge(c, "poison");
    MT_EQ_INT(r.code, 0);
    MT_EQ_U64(r.count, 1);
    qu_task gone;
    MT_EQ_INT(qu_get(c, id, &gone), MAOS_ENOT_FOUND);
    MT_EQ_INT(qu_stats(c, "poison", &qi), 0);
    MT_EQ_U64(qi.dead, 0);
    su_close(c);
}

/* ---- priorities, delays, ordering keys, dedupe keys ------------------------------------------ */

static void test_order(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    uint8_t low[16], high[16], mid[16];
    qu_opts lo = {.priority = -5}, hi = {.priority = 7};
    MT_EQ_INT(qu_enqueue(c, "prio", "low", &lo, low, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "prio", "mid1", NULL, mid, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "prio", "mid2", NULL, NULL, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "prio", "high", &hi, high, NULL).code, 0);
    qu_task t[4];
    MT_EQ_U64(qu_claim(c, "prio", 10000, 0, 4, 0, t).count, 4);
    MT_EQ_STR(t[0].data, "high");
    MT_EQ_STR(t[1].data, "mid1"); /* FIFO within a priority */
    MT_EQ_STR(t[2].data, "mid2");
    MT_EQ_STR(t[3].data, "low");

    /* a delay: not claimable before, claimable after, never early */
    qu_opts d = {.delay_ms = 400};
    uint8_t did[16];
    tu_result r = qu_enqueue(c, "delay", "later", &d, did, NULL);
    MT_EQ_INT(r.code, 0);
    qu_task got;
    MT_EQ_INT(qu_get(c, did, &got), 0);
    MT_EQ_STR(got.state, "delayed");
    int64_t due = got.not_before;
    MT_TRUE(due >= got.enqueued + 400000);
    MT_EQ_U64(qu_claim(c, "delay", 10000, 0, 1, 0, t).count, 0);
    r = qu_claim(c, "delay", 10000, 30000, 1, 0, t);
    int64_t now = wall_us();
    MT_EQ_U64(r.count, 1);
    /* maosd and this test read the same clock: the claim came after due */
    MT_TRUE(now >= due);

    /* ordering keys: a1, a2 one at a time and in order; b1 in parallel */
    uint8_t a1[16], a2[16], b1[16];
    qu_opts ka = {.ordering_key = "repo-a"}, kb = {.ordering_key = "repo-b"};
    MT_EQ_INT(qu_enqueue(c, "ord", "a1", &ka, a1, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "ord", "a2", &ka, a2, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "ord", "b1", &kb, b1, NULL).code, 0);
    MT_EQ_INT(qu_get(c, a2, &got), 0);
    MT_EQ_STR(got.state, "blocked");
    r = qu_claim(c, "ord", 10000, 0, 4, 0, t);
    MT_EQ_U64(r.count, 2);
    MT_EQ_STR(t[0].data, "a1");
    MT_EQ_STR(t[1].data, "b1");
    MT_EQ_U64(qu_claim(c, "ord", 10000, 0, 4, 0, t + 2).count, 0);
    /* a nack keeps a1 first in its key */
    MT_EQ_INT(qu_nack(c, a1, t[0].token, "retry me", -1).code, 0);
    r = qu_claim(c, "ord", 10000, 0, 4, 0, t + 2);
    MT_EQ_U64(r.count, 1);
    MT_EQ_STR(t[2].data, "a1");
    MT_EQ_INT(qu_ack(c, a1, t[2].token, NULL).code, 0);
    r = qu_claim(c, "ord", 10000, 0, 4, 0, t + 3);
    MT_EQ_U64(r.count, 1);
    MT_EQ_STR(t[3].data, "a2");

    /* dedupe: the same id while unfinished, a new one after */
    uint8_t x1[16], x2[16], x3[16];
    int dup;
    qu_opts dk = {.dedupe_key = "only-once"};
    MT_EQ_INT(qu_enqueue(c, "dd", "first", &dk, x1, &dup).code, 0);
    MT_EQ_INT(dup, 0);
    r = qu_enqueue(c, "dd", "second", &dk, x2, &dup);
    MT_EQ_INT(r.code, 0);
    MT_EQ_INT(dup, 1);
    MT_TRUE(!memcmp(x1, x2, 16));
    MT_EQ_U64(qu_claim(c, "dd", 10000, 0, 1, 0, t).count, 1);
    MT_EQ_INT(qu_ack(c, x1, t[0].token, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "dd", "third", &dk, x3, &dup).code, 0);
    MT_EQ_INT(dup, 0);
    MT_TRUE(memcmp(x1, x3, 16) != 0);
    su_close(c);
}

/* ---- waiting claims and bound claims ------------------------------------------------------- */

static void test_waiting(void **state)
{
    (void)state;
    su_conn *w = su_open(tu_daemon->sock), *p = su_open(tu_daemon->sock);
    /* an empty wait ends empty */
    qu_task t;
    tu_result r = qu_claim(w, "wq", 10000, 50, 1, 0, &t);
    MT_EQ_INT(r.code, 0);
    MT_EQ_U64(r.count, 0);
    /* two waiting claims, served in arrival order by two enqueues */
    uint64_t r1 = qu_claim_send(w, "wq", 10000, 60000, 0);
    uint64_t r2 = qu_claim_send(w, "wq", 10000, 60000, 0);
    /* both are parked once stats counts them */
    maos_queue_info qi;
    int64_t dl = mt_now_us() + 30000000;
    for (;;) {
        if (qu_stats(p, "wq", &qi) == 0 && qi.waiting == 2)
            break;
        MT_TRUE(mt_now_us() < dl);
        su_ping(p);
    }
    tu_result e = qu_enqueue(p, "wq", "one", NULL, NULL, NULL);
    MT_EQ_INT(e.code, 0);
    r = qu_claim_wait(w, r1, 30000, &t, 1);
    MT_EQ_U64(r.count, 1);
    MT_EQ_STR(t.data, "one");
    /* served in the enqueue's own write: its claimed event follows */
    MT_EQ_U64(t.token, e.revision + 1);
    MT_EQ_INT(qu_enqueue(p, "wq", "two", NULL, NULL, NULL).code, 0);
    r = qu_claim_wait(w, r2, 30000, &t, 1);
    MT_EQ_U64(r.count, 1);
    MT_EQ_STR(t.data, "two");

    /* a bound claim goes back when its connection closes */
    uint8_t id[16];
    MT_EQ_INT(qu_enqueue(p, "bq", "held", NULL, id, NULL).code, 0);
    su_conn *holder = su_open(tu_daemon->sock);
    r = qu_claim(holder, "bq", 600000, 0, 1, 1, &t);
    MT_EQ_U64(r.count, 1);
    uint64_t wr = qu_claim_send(p, "bq", 10000, 60000, 0);
    su_close(holder);
    r = qu_claim_wait(p, wr, 30000, &t, 1);
    MT_EQ_U64(r.count, 1);
    MT_TRUE(!memcmp(t.id, id, 16));
    MT_EQ_U64(t.attempt, 2);
    MT_EQ_STR(t.last_error, "worker connection closed");
    su_close(w);
    su_close(p);
}

/* ---- txn --------------------------------------------------------------------------------- */

static tu_result txn_ack_append_enqueue(su_conn *c, const uint8_t id[16], uint64_t token,
                                        int64_t expect)
{
    tu_pkb d;
    tu_pkb_init(&d);
    tu_pk_str(&d.pk, "follow-up");
    maos_task_in spec = {.data = {d.sb.data, (uint32_t)d.sb.size}, .delay_ms = -1};
    maos_event_in ev = {.type = tu_sl("result")};
    maos_append_in a = {.stream = tu_sl("results-1"), .expect = expect, .n_events = 1,
                        .events = &ev};
    maos_item_in items[3];
    memset(items, 0, sizeof items);
    items[0].kind = MAOS_ITEM_ACK;
    memcpy(items[0].task, id, 16);
    items[0].has_task = 1;
    items[0].token = token;
    items[1].kind = MAOS_ITEM_APPEND;
    items[1].append = &a;
    items[2].kind = MAOS_ITEM_ENQUEUE;
    items[2].queue = tu_sl("next");
    items[2].tasks = &spec;
    items[2].n_tasks = 1;
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_txn_ops(&b.pk, rid, items, 3), 0);
    msgpack_sbuffer_destroy(&d.sb);
    return tu_call_sb(c, &b, rid);
}

static void test_txn(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    uint8_t id[16];
    MT_EQ_INT(qu_enqueue(c, "tx", "work", NULL, id, NULL).code, 0);
    qu_task t;
    MT_EQ_U64(qu_claim(c, "tx", 60000, 0, 1, 0, &t).count, 1);
    uint64_t head = su_head(c);
    /* the append's expect fails: nothing of the txn happens */
    tu_result r = txn_ack_append_enqueue(c, id, t.token, 5);
    MT_EQ_INT(r.code, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(r.index, 1);
    MT_EQ_U64(su_head(c), head);
    qu_task got;
    MT_EQ_INT(qu_get(c, id, &got), 0);
    MT_EQ_STR(got.state, "leased");
    maos_queue_info qi;
    MT_EQ_INT(qu_stats(c, "next", &qi), MAOS_ENOT_FOUND);
    /* a wrong token fails it too, with the ack's index */
    r = txn_ack_append_enqueue(c, id, t.token + 1000, MAOS_EXPECT_ANY);
    MT_EQ_INT(r.code, MAOS_ELEASE_LOST);
    MT_EQ_INT(r.index, 0);
    MT_EQ_U64(su_head(c), head);
    /* all parts hold: all happen */
    r = txn_ack_append_enqueue(c, id, t.token, MAOS_EXPECT_NO_STREAM);
    MT_EQ_INT(r.code, 0);
    MT_EQ_INT(qu_get(c, id, &got), 0);
    MT_EQ_STR(got.state, "done");
    MT_EQ_INT(qu_stats(c, "next", &qi), 0);
    MT_EQ_U64(qi.ready, 1);
    su_close(c);
}

/* ---- kill -9 of maosd ---------------------------------------------------------------------- */

static void test_restart(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    uint8_t rd[16], dl[16], ls[16], bd[16], dn[16], dd[16];
    qu_opts late = {.delay_ms = 500}, one = {.max_attempts = 1};
    MT_EQ_INT(qu_enqueue(c, "rs", "done", NULL, dn, NULL).code, 0);
    qu_task t;
    MT_EQ_U64(qu_claim(c, "rs", 60000, 0, 1, 0, &t).count, 1);
    MT_EQ_INT(qu_ack(c, dn, t.token, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "rs", "dead", &one, dd, NULL).code, 0);
    MT_EQ_U64(qu_claim(c, "rs", 60000, 0, 1, 0, &t).count, 1);
    MT_EQ_INT(qu_nack(c, dd, t.token, "no", -1).code, 0);
    MT_EQ_INT(qu_enqueue(c, "rs", "leased", NULL, ls, NULL).code, 0);
    qu_task lt;
    MT_EQ_U64(qu_claim(c, "rs", 600000, 0, 1, 0, &lt).count, 1);
    MT_EQ_INT(qu_enqueue(c, "rs", "bound", NULL, bd, NULL).code, 0);
    qu_task bt;
    MT_EQ_U64(qu_claim(c, "rs", 600000, 0, 1, 1, &bt).count, 1);
    MT_EQ_INT(qu_enqueue(c, "rs", "delayed", &late, dl, NULL).code, 0);
    MT_EQ_INT(qu_enqueue(c, "rs", "ready", NULL, rd, NULL).code, 0);
    su_close(c);

    mt_daemon_kill9(tu_daemon);
    mt_daemon_up(tu_daemon);
    c = su_open(tu_daemon->sock);
    qu_task g;
    MT_EQ_INT(qu_get(c, dn, &g), 0);
    MT_EQ_STR(g.state, "done");
    MT_EQ_INT(qu_get(c, dd, &g), 0);
    MT_EQ_STR(g.state, "dead");
    MT_EQ_INT(qu_get(c, ls, &g), 0);
    MT_EQ_STR(g.state, "leased");
    MT_EQ_U64(g.token, lt.token);
    /* the bound claim's connection died with maosd: given back at start */
    MT_EQ_INT(qu_get(c, bd, &g), 0);
    MT_EQ_STR(g.state, "ready");
    MT_EQ_STR(g.last_error, "worker connection closed");
    /* the old lease still fences */
    MT_EQ_INT(qu_ack(c, bd, bt.token, NULL).code, MAOS_ELEASE_LOST);
    maos_queue_info qi;
    MT_EQ_INT(qu_stats(c, "rs", &qi), 0);
    MT_EQ_U64(qi.done, 1);
    MT_EQ_U64(qi.dead, 1);
    MT_EQ_U64(qi.leased, 1);
    MT_EQ_U64(qi.ready + qi.delayed, 3);
    /* the delayed one fires after the restart: three claims get ready,
     * bound and delayed */
    int seen = 0;
    int64_t dlm = mt_now_us() + 30000000;
    while (seen < 3) {
        MT_TRUE(mt_now_us() < dlm);
        tu_result r = qu_claim(c, "rs", 60000, 30000, 1, 0, &t);
        MT_EQ_INT(r.code, 0);
        seen += (int)r.count;
    }
    MT_EQ_INT(qu_get(c, dl, &g), 0);
    MT_EQ_STR(g.state, "leased");
    su_close(c);
}

/* ---- bad input ------------------------------------------------------------------------------ */

static int raw_code(su_conn *c, const char *op, const char *key, int kind, const char *sval,
                    int64_t ival)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    msgpack_pack_map(&b.pk, 3);
    tu_pk_str(&b.pk, "op");
    tu_pk_str(&b.pk, op);
    tu_pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, rid);
    tu_pk_str(&b.pk, key);
    if (kind == 's')
        tu_pk_str(&b.pk, sval);
    else
        msgpack_pack_int64(&b.pk, ival);
    return tu_call_sb(c, &b, rid).code;
}

/* An enqueue of one task whose spec has key = value. */
static int spec_code(su_conn *c, const char *key, int64_t v)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    msgpack_pack_map(&b.pk, 4);
    tu_pk_str(&b.pk, "op");
    tu_pk_str(&b.pk, "enqueue");
    tu_pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, rid);
    tu_pk_str(&b.pk, "queue");
    tu_pk_str(&b.pk, "badq");
    tu_pk_str(&b.pk, "tasks");
    msgpack_pack_array(&b.pk, 1);
    msgpack_pack_map(&b.pk, 1);
    tu_pk_str(&b.pk, key);
    msgpack_pack_int64(&b.pk, v);
    return tu_call_sb(c, &b, rid).code;
}

static void test_bad_input(void **state)
{
    (void)state;
    su_conn *c = su_open(tu_daemon->sock);
    uint8_t nobody[16];
    memset(nobody, 0x42, 16);
    MT_EQ_INT(qu_ack(c, nobody, 5, NULL).code, MAOS_ENOT_FOUND);
    MT_EQ_INT(qu_nack(c, nobody, 5, "x", -1).code, MAOS_ENOT_FOUND);
    qu_task t;
    MT_EQ_INT(qu_get(c, nobody, &t), MAOS_ENOT_FOUND);
    uint8_t id[16];
    MT_EQ_INT(qu_enqueue(c, "okq", "x", NULL, id, NULL).code, 0);
    MT_EQ_U64(qu_claim(c, "okq", 10000, 0, 1, 0, &t).count, 1);
    MT_EQ_INT(qu_ack(c, id, t.token + 1, NULL).code, MAOS_ELEASE_LOST);
    /* names */
    MT_EQ_INT(qu_enqueue(c, "bad name", "x", NULL, NULL, NULL).code, MAOS_EINVALID_NAME);
    MT_EQ_INT(qu_enqueue(c, "", "x", NULL, NULL, NULL).code, MAOS_EINVALID_NAME);
    char longq[80];
    memset(longq, 'q', 65);
    longq[65] = 0;
    MT_EQ_INT(qu_enqueue(c, longq, "x", NULL, NULL, NULL).code, MAOS_EINVALID_NAME);
    MT_EQ_INT(qu_stats(c, "never-used", NULL), MAOS_ENOT_FOUND);
    /* options out of range */
    MT_EQ_INT(spec_code(c, "delay", -1), MAOS_EBAD_REQUEST);
    MT_EQ_INT(spec_code(c, "delay", MAOS_DELAY_MS_MAX + 1), MAOS_EBAD_REQUEST);
    MT_EQ_INT(spec_code(c, "lease_ms", 0), MAOS_EBAD_REQUEST);
    MT_EQ_INT(spec_code(c, "lease_ms", (int64_t)MAOS_LEASE_MS_MAX + 1), MAOS_EBAD_REQUEST);
    MT_EQ_INT(spec_code(c, "max_attempts", 0), MAOS_EBAD_REQUEST);
    MT_EQ_INT(spec_code(c, "priority", (int64_t)INT32_MAX + 1), MAOS_EBAD_REQUEST);
    MT_EQ_INT(spec_code(c, "not_before", -5), MAOS_EBAD_REQUEST);
    MT_EQ_INT(raw_code(c, "enqueue", "queue", 's', "q1", 0), MAOS_EBAD_REQUEST); /* no tasks */
    MT_EQ_INT(raw_code(c, "claim", "queues", 's', "q1", 0), MAOS_EBAD_REQUEST);
    MT_EQ_INT(raw_code(c, "ack", "task", 's', "not-a-uuid", 0), MAOS_EINVALID_ID);
    MT_EQ_INT(raw_code(c, "ack", "token", 'i', NULL, 5), MAOS_EBAD_REQUEST); /* no task */
    MT_EQ_INT(raw_code(c, "task", "task", 'i', NULL, 7), MAOS_EINVALID_ID);
    MT_EQ_INT(raw_code(c, "dead_list", "limit", 'i', NULL, 5), MAOS_EBAD_REQUEST);
    MT_EQ_INT(raw_code(c, "dead_retry", "queue", 's', "no/slash", 0), MAOS_EINVALID_NAME);
    /* claim bounds */
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    maos_slice q = tu_sl("okq");
    MT_EQ_INT(maos_enc_claim(&b.pk, rid, &q, 1, MAOS_LEASE_MS_MAX + 1, 0, 1, 0), 0);
    MT_EQ_INT(tu_call_sb(c, &b, rid).code, MAOS_EBAD_REQUEST);
    tu_pkb_init(&b);
    rid = su_rid(c);
    MT_EQ_INT(maos_enc_claim(&b.pk, rid, &q, 1, 1000, MAOS_WAIT_MS_MAX + 1, 1, 0), 0);
    MT_EQ_INT(tu_call_sb(c, &b, rid).code, MAOS_EBAD_REQUEST);
    /* clients cannot append to queue streams */
    su_ev_in ev = {.type = "enqueued"};
    MT_EQ_INT(su_append(c, "queue-okq", &ev, 1, NULL), MAOS_EINVALID_NAME);
    /* too many waiting claims on one connection */
    for (int i = 0; i < MAOS_CLAIMS_WAITING_MAX; i++)
        qu_claim_send(c, "empty", 1000, 60000, 0);
    tu_result r = qu_claim(c, "empty", 1000, 60000, 1, 0, &t);
    MT_EQ_INT(r.code, MAOS_ELIMIT);
    su_close(c);
    still_serves();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_life, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_fencing, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_order, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_waiting, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_txn, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_restart, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, tu_setup, tu_teardown),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 180);
}
