/*
 * tests/integration/test_async.c -- libmaos-client's asynchronous requests
 * (client.h "Asynchronous requests") against a real maosd and against
 * fake servers.
 *
 *   test_pipeline_mixed    100 requests of ten kinds in flight at once,
 *                          plus sync and legacy pipelined calls meanwhile:
 *                          every answer reaches its own callback (by rid)
 *   test_async_more        the async forms of claim, queue_stats, txn_items,
 *                          agent_register, the sessions (chained get + CAS
 *                          put) and the waiting lock (taken when the holder
 *                          unlocks; timed out; freed while waiting)
 *   test_async_restart     appends with ids, writes without, and a
 *                          subscription across a daemon crash (kill -9)
 *                          and restart: appends
 *                          are re-sent and applied once, writes in flight
 *                          fail MAOS_ECONNECTION or succeed, the
 *                          subscription resumes gap-free
 *   test_async_connect     maos_async_connect before the daemon exists: a
 *                          libuv loop (a 1 ms timer) ticks while it
 *                          connects, requests issued at once are answered
 *                          once the daemon started; with no daemon at all it
 *                          gives up after connect_timeout_ms
 *   test_sub_in_flight     a sync subscribe whose connection breaks before its
 *                          answer is kept (re-sent after the reconnect)
 *   test_fake_server       garbage, truncated frames, oversized lengths,
 *                          wrong rids, silence: clean errors, no hang past
 *                          the request timeout
 *   test_uv_agent          a libuv agent (a forked process) appends 10,000
 *                          events while consuming a subscription and a
 *                          channel fed by another process; a 1 ms timer
 *                          measures the loop's lag (printed; bounded)
 *
 * The poll loop (ploop) is the plain-poll integration of
 * client/examples/poll_agent.c: loop ops record the interest and timer,
 * poll() waits on them, maos_process runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "harness.h"
#include "maos/adapters/libuv.h"
#include "maos/client.h"
#include "maos/json.h"
#include "maos/proto.h"
#include "client_priv.h" /* the context's registered agent */

/* ---- a plain poll loop -------------------------------------------------------- */

typedef struct ploop {
    int fd, rd, wr;
    int64_t timer_at; /* µs, -1: none */
} ploop;

static void pl_add_read(void *d, int fd)
{
    ploop *l = d;
    l->fd = fd;
    l->rd = 1;
}
static void pl_del_read(void *d, int fd)
{
    ploop *l = d;
    if (fd == l->fd)
        l->rd = 0;
}
static void pl_add_write(void *d, int fd)
{
    ploop *l = d;
    l->fd = fd;
    l->wr = 1;
}
static void pl_del_write(void *d, int fd)
{
    ploop *l = d;
    if (fd == l->fd)
        l->wr = 0;
}
static void pl_timer(void *d, int ms)
{
    ploop *l = d;
    l->timer_at = ms < 0 ? -1 : mt_now_us() + (int64_t)ms * 1000;
}

static void pl_attach(maos_ctx *c, ploop *l)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->timer_at = -1;
    maos_loop_ops o = {l, pl_add_read, pl_del_read, pl_add_write, pl_del_write, pl_timer};
    MT_EQ_ERR(maos_set_loop_ops(c, &o), 0);
}

/* One turn: wait up to max_ms for what the ops asked, then maos_process. */
static int pl_turn(maos_ctx *c, ploop *l, const maos_push_handlers *h, void *user, int max_ms)
{
    int ms = max_ms;
    if (l->timer_at >= 0) {
        int64_t left = (l->timer_at - mt_now_us()) / 1000;
        if (left < ms)
            ms = left < 0 ? 0 : (int)left;
    }
    struct pollfd p = {l->fd, (short)((l->rd ? POLLIN : 0) | (l->wr ? POLLOUT : 0)), 0};
    int watch = l->fd >= 0 && p.events;
    int n = poll(&p, watch ? 1 : 0, ms);
    if (n == 0 && !(l->timer_at >= 0 && mt_now_us() >= l->timer_at))
        return 0;
    if (l->timer_at >= 0 && mt_now_us() >= l->timer_at)
        l->timer_at = -1;
    return maos_process(c, h, user);
}

static const maos_push_handlers no_handlers = {NULL, NULL, NULL};

static maos_ctx *connect_to(const char *path, int reconnect, int client_ids)
{
    maos_options o = {.path = path, .reconnect = reconnect, .client_ids = client_ids};
    maos_ctx *c = maos_connect_with(&o);
    MT_TRUE(c != NULL);
    if (c->err)
        MT_FAIL("connect %s: %s", path, c->errstr);
    return c;
}

/* ---- the async forms of the multi-step and queue calls ------------------------- */

/* One answer: its status, and what the test reads from it in the callback
 * (the result is lent to the callback only). */
struct one {
    int calls, status;
    maos_result_fields fl;
    maos_task_page *tasks;
    maos_queue_stat *qs;
    size_t nq;
    maos_item_result items[3];
    uint8_t ids[2][16];
    char errstr[160];
};

static void one_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    struct one *o = privdata;
    o->calls++;
    o->status = status;
    snprintf(o->errstr, sizeof o->errstr, "%s", maos_result_errstr(r));
    if (status)
        return;
    maos_result_fields_get(r, &o->fl);
    if (maos_result_task_page(r, &o->tasks))
        o->tasks = NULL;
    if (maos_result_queue_stats(r, &o->qs, &o->nq))
        o->qs = NULL;
    for (size_t i = 0; i < 3; i++)
        if (maos_result_txn_item(r, i, &o->items[i], i == 2 ? o->ids : NULL, i == 2 ? 2 : 0))
            break;
}

/* maos_async_append_batch: the count and each outcome, ids of the first */
struct batch_seen {
    int calls, status;
    size_t count;
    maos_batch_outcome out[4];
    uint8_t ids[2][16];
    int bad_index; /* maos_result_batch past the end */
};

static void batch_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    struct batch_seen *b = privdata;
    b->calls++;
    b->status = status;
    if (status)
        return;
    b->count = maos_result_count(r);
    for (size_t i = 0; i < b->count && i < 4; i++)
        if (maos_result_batch(r, i, &b->out[i], i == 0 ? b->ids : NULL, i == 0 ? 2 : 0))
            b->out[i].status = 1; /* not read: the test sees it */
    b->bad_index = maos_result_batch(r, b->count, &b->out[3], NULL, 0);
}

/* Turn the loop until o's callback ran (30 s at most). */
static void wait_one(maos_ctx *c, ploop *l, struct one *o)
{
    int64_t deadline = mt_now_us() + 30 * 1000000LL;
    while (!o->calls && mt_now_us() < deadline)
        if (pl_turn(c, l, &no_handlers, NULL, 100) < 0)
            MT_FAIL("maos_process: %s", c->errstr);
    MT_EQ_INT(o->calls, 1);
}

/* An async claim of one task from qs (lease 60 s), answered within the
 * loop's turns: its answer in o, asserted to hold exactly one task. */
static const maos_task_info *claim_one(maos_ctx *c, ploop *l, const char *const *qs,
                                       uint32_t wait_ms, struct one *o)
{
    MT_EQ_ERR(maos_async_claim(c, one_cb, o, qs, 1, 60000, wait_ms, 1, 0), 0);
    wait_one(c, l, o);
    MT_EQ_ERR(o->status, 0);
    MT_TRUE(o->tasks != NULL);
    MT_EQ_U64(o->tasks->n, 1);
    return &o->tasks->tasks[0];
}

/* maosd-fault whose commit thread holds every write while the file gate
 * (gate_len bytes) exists (MAOS_FAULT_STALL_GATE), already created; *c
 * connected to it on loop l. */
static mt_daemon *held_commit(char *gate, size_t gate_len, maos_ctx **c, ploop *l)
{
    snprintf(gate, gate_len, "%s/stall-gate", mt_test_dir());
    mt_daemon *d = mt_daemon_new(NULL, mt_maosd_fault_bin());
    MT_EQ_INT(setenv("MAOS_FAULT_STALL_GATE", gate, 1), 0); /* read at its start */
    mt_daemon_up(d);
    MT_EQ_INT(unsetenv("MAOS_FAULT_STALL_GATE"), 0);
    *c = connect_to(d->sock, 0, 0);
    pl_attach(*c, l);
    mt_write_file(gate, "", 0);
    return d;
}

/*
 * A claim answered after its request timed out gives its task back
 * (wire.c give_back): maosd-fault holds the commit thread in a group's
 * write (MAOS_FAULT_STALL_GATE) while an enqueue and then an async claim
 * (its own bound: 100 ms) wait behind it; the claim's callback says
 * MAOS_ETIMEOUT; the gate opens, maosd serves the claim with the task and
 * the library releases it (the attempt does not count), so the next claim
 * gets it with attempt 1 at once.  Without the release the task stayed
 * leased to no one for 60 s and that claim found nothing.
 */
static void test_late_claim_gives_back(void **state)
{
    (void)state;
    char gate[300];
    maos_ctx *c;
    ploop l;
    mt_daemon *d = held_commit(gate, sizeof gate, &c, &l);
    struct one enq = {0}, late = {0};
    MT_EQ_ERR(maos_async_enqueue(c, one_cb, &enq, "lc.q", "\x07", 1, NULL), 0);
    MT_EQ_ERR(maos_set_timeout(c, 100), 0);
    const char *qs[1] = {"lc.q"};
    MT_EQ_ERR(maos_async_claim(c, one_cb, &late, qs, 1, 60000, 0, 1, 0), 0);
    MT_EQ_ERR(maos_set_timeout(c, 30000), 0);
    wait_one(c, &l, &late); /* the commit thread is held: only the timeout ends it */
    MT_EQ_ERR(late.status, MAOS_ETIMEOUT);
    MT_EQ_INT(enq.calls, 0);
    MT_EQ_INT(unlink(gate), 0);
    wait_one(c, &l, &enq);
    MT_EQ_ERR(enq.status, 0);
    /* The late answer comes on c, whose loop turns until the next claim is
     * answered: the release it makes serves that claim, whether the claim
     * was read before it (then it waits) or after. */
    struct one next = {0};
    MT_EQ_U64(claim_one(c, &l, qs, 5000, &next)->attempt, 1);
    maos_task_page_free(next.tasks);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* A lock whose put is answered after the caller's request timeout
 * (MAOS_ETIMEOUT: the caller does not hold it) is let go of by the
 * library, not left held by the connection for no one: a later lock on
 * the same context gets it.  The put is held in maosd-fault's commit
 * thread until the caller has timed out (MAOS_FAULT_STALL_GATE). */
static void test_late_lock_lets_go(void **state)
{
    (void)state;
    char gate[300];
    maos_ctx *c;
    ploop l;
    mt_daemon *d = held_commit(gate, sizeof gate, &c, &l);
    struct one late = {0}, waited = {0}, next = {0};
    MT_EQ_ERR(maos_set_timeout(c, 100), 0);
    MT_EQ_ERR(maos_async_lock(c, one_cb, &late, "ll"), 0);
    MT_EQ_ERR(maos_async_lock_wait(c, one_cb, &waited, "ll-2", 60000), 0);
    MT_EQ_ERR(maos_set_timeout(c, 30000), 0);
    wait_one(c, &l, &late); /* the commit thread is held: only the timeout ends it */
    MT_EQ_ERR(late.status, MAOS_ETIMEOUT);
    wait_one(c, &l, &waited); /* a waiting lock's put times out the same way */
    MT_EQ_ERR(waited.status, MAOS_ETIMEOUT);
    MT_EQ_INT(unlink(gate), 0);
    /* Both puts take their locks now; their answers come on c, whose loop
     * turns until these locks are answered: each is free within the wait
     * (let go of by the library), whatever came first. */
    MT_EQ_ERR(maos_async_lock_wait(c, one_cb, &next, "ll", 10000), 0);
    wait_one(c, &l, &next);
    MT_EQ_ERR(next.status, 0);
    MT_TRUE(next.fl.revision > 0);
    struct one next2 = {0};
    MT_EQ_ERR(maos_async_lock_wait(c, one_cb, &next2, "ll-2", 10000), 0);
    wait_one(c, &l, &next2);
    MT_EQ_ERR(next2.status, 0);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_async_more(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_to(d->sock, 0, 0);
    maos_ctx *other = connect_to(d->sock, 0, 0);
    ploop l;
    pl_attach(c, &l);

    /* claim and queue_stats */
    MT_EQ_ERR(maos_enqueue(other, "am.q", "\x07", 1, NULL, NULL, NULL), 0);
    const char *qs[1] = {"am.q"};
    struct one cl = {0};
    const maos_task_info *got = claim_one(c, &l, qs, 0, &cl);
    MT_EQ_MEM_STR(got->queue.ptr, got->queue.len, "am.q");
    struct one st = {0};
    MT_EQ_ERR(maos_async_queue_stats(c, one_cb, &st, "am.q"), 0);
    wait_one(c, &l, &st);
    MT_EQ_ERR(st.status, 0);
    MT_EQ_U64(st.nq, 1);
    MT_EQ_U64(st.qs[0].leased, 1);
    MT_EQ_MEM_STR(st.qs[0].queue.ptr, st.qs[0].queue.len, "am.q");
    free(st.qs);

    /* txn_items: ack the claimed task, put, enqueue two; the ids of the
     * enqueue through maos_result_txn_item */
    maos_txn_item it[3];
    memset(it, 0, sizeof it);
    it[0].kind = MAOS_ITEM_ACK;
    memcpy(it[0].task, cl.tasks->tasks[0].id, 16);
    it[0].token = cl.tasks->tasks[0].token;
    it[1].kind = MAOS_ITEM_PUT;
    it[1].table = "kv.am";
    it[1].key = "k";
    it[1].doc = "\x80";
    it[1].doc_len = 1;
    it[1].expect = MAOS_EXPECT_ANY;
    it[2].kind = MAOS_ITEM_ENQUEUE;
    it[2].queue = "am.next";
    it[2].n_tasks = 2;
    struct one tx = {0};
    MT_EQ_ERR(maos_async_txn_items(c, one_cb, &tx, it, 3), 0);
    wait_one(c, &l, &tx);
    MT_EQ_ERR(tx.status, 0);
    MT_TRUE(tx.items[1].revision > tx.items[0].revision);
    MT_EQ_U64(tx.items[2].n_ids, 2);
    for (int i = 0; i < 2; i++) {
        maos_task_page *tp = NULL;
        MT_EQ_ERR(maos_task_get(other, tx.ids[i], &tp), 0);
        MT_EQ_MEM_STR(tp->tasks[0].queue.ptr, tp->tasks[0].queue.len, "am.next");
        maos_task_page_free(tp);
    }
    maos_task_page_free(cl.tasks);
    /* an item refused before sending: at once, no callback */
    maos_txn_item bad = {.kind = 99};
    MT_EQ_INT(maos_async_txn_items(c, one_cb, &tx, &bad, 1), MAOS_EINVALID_ARG);

    /* append_batch: one outcome per append, a refusal among them */
    maos_event_spec bev[2] = {{NULL, "b", NULL, 0, NULL, 0}, {NULL, "b", NULL, 0, NULL, 0}};
    maos_txn_append ba[3] = {{"am-b", MAOS_EXPECT_NO_STREAM, bev, 2, NULL},
                             {"am-b", MAOS_EXPECT_NO_STREAM, bev, 1, NULL},
                             {"am-b", 1, bev, 1, NULL}};
    struct batch_seen bs = {0};
    MT_EQ_ERR(maos_async_append_batch(c, batch_cb, &bs, ba, 3), 0);
    int64_t bdl = mt_now_us() + 30 * 1000000LL;
    while (!bs.calls && mt_now_us() < bdl)
        if (pl_turn(c, &l, &no_handlers, NULL, 100) < 0)
            MT_FAIL("maos_process: %s", c->errstr);
    MT_EQ_INT(bs.calls, 1);
    MT_EQ_ERR(bs.status, 0);
    MT_EQ_U64(bs.count, 3);
    MT_EQ_ERR(bs.out[0].status, 0);
    MT_EQ_U64(bs.out[0].info.count, 2);
    MT_EQ_ERR(bs.out[1].status, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(bs.out[1].actual, 1);
    MT_EQ_ERR(bs.out[2].status, 0);
    MT_EQ_U64(bs.out[2].info.version, 2);
    MT_EQ_INT(bs.bad_index, MAOS_EINVALID_ARG);
    maos_page *bp = NULL;
    MT_EQ_ERR(maos_read(other, "am-b", MAOS_FROM_START, 0, 10, &bp), 0);
    MT_EQ_U64(bp->n, 3);
    MT_EQ_INT(memcmp(bp->events[0].id, bs.ids[0], 16), 0);
    MT_EQ_INT(memcmp(bp->events[1].id, bs.ids[1], 16), 0);
    maos_page_free(bp);

    /* agent_register: the agent is the context's once accepted */
    maos_agent_spec ag = {.id = "am-agent", .name = "async agent"};
    struct one ar = {0};
    MT_EQ_ERR(maos_async_agent_register(c, one_cb, &ar, &ag), 0);
    wait_one(c, &l, &ar);
    MT_EQ_ERR(ar.status, 0);
    MT_TRUE(ar.fl.revision > 0);
    MT_EQ_ERR(maos_agent_status(c, "busy", NULL, 0), 0); /* needs this context's agent */
    /* a refused one (an id beyond the key rules) leaves the agent before */
    char longid[700];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    maos_agent_spec bad_ag = {.id = longid};
    struct one ar2 = {0};
    MT_EQ_ERR(maos_async_agent_register(c, one_cb, &ar2, &bad_ag), 0);
    wait_one(c, &l, &ar2);
    MT_TRUE(ar2.status < 0);
    MT_TRUE(!maos_is_dead(c));
    /* the agent the library registers again after a reconnect */
    MT_EQ_MEM_STR(c->priv->agent.id.ptr, c->priv->agent.id.len, "am-agent");
    MT_EQ_ERR(maos_agent_status(c, "idle", NULL, 0), 0);
    maos_table_page *ap = NULL;
    MT_EQ_ERR(maos_get(other, "agents", "am-agent", &ap), 0);
    MT_TRUE(memmem(ap->entries[0].data.ptr, ap->entries[0].data.len, "idle", 4) != NULL);
    maos_table_page_free(ap);

    /* sessions: create (the id at once), close and update (get + CAS put) */
    char sid[37] = "";
    struct one sc = {0};
    MT_EQ_ERR(maos_async_session_create(c, one_cb, &sc, NULL, NULL, 0, sid), 0);
    MT_EQ_INT((int)strlen(sid), 36);
    wait_one(c, &l, &sc);
    MT_EQ_ERR(sc.status, 0);
    struct one su = {0};
    MT_EQ_ERR(maos_async_session_update(c, one_cb, &su, sid, "\x81\xa1k\x01", 4), 0);
    wait_one(c, &l, &su);
    MT_EQ_ERR(su.status, 0);
    MT_TRUE(su.fl.revision > sc.fl.revision);
    struct one sx = {0};
    MT_EQ_ERR(maos_async_session_close(c, one_cb, &sx, sid, "\x2a", 1), 0);
    wait_one(c, &l, &sx);
    MT_EQ_ERR(sx.status, 0);
    maos_table_page *pg = NULL;
    MT_EQ_ERR(maos_get(other, "sessions", sid, &pg), 0);
    MT_EQ_U64(pg->entries[0].revision, sx.fl.revision);
    MT_TRUE(memmem(pg->entries[0].data.ptr, pg->entries[0].data.len, "closed", 6) != NULL);
    MT_TRUE(memmem(pg->entries[0].data.ptr, pg->entries[0].data.len, "\xa1k\x01", 3) != NULL);
    maos_table_page_free(pg);
    struct one sn = {0};
    MT_EQ_ERR(maos_async_session_close(c, one_cb, &sn, "no-such-session", NULL, 0), 0);
    wait_one(c, &l, &sn);
    MT_EQ_INT(sn.status, MAOS_ENOT_FOUND);

    /* a waiting lock: held by `other`, taken when other unlocks (from the
     * callback of a ping, i.e. while this loop turns); a second wait runs
     * out */
    uint64_t tok = 0;
    MT_EQ_ERR(maos_lock(other, "am-lock", 0, &tok), 0);
    struct one lk = {0};
    MT_EQ_ERR(maos_async_lock_wait(c, one_cb, &lk, "am-lock", 30000), 0);
    int64_t dl = mt_now_us() + 30 * 1000000LL;
    int turns = 0;
    while (turns < 20 && mt_now_us() < dl) /* the put refused, the watch up */
        if (pl_turn(c, &l, &no_handlers, NULL, 10) >= 0 && !lk.calls)
            turns++;
    MT_EQ_INT(lk.calls, 0);                 /* still waiting */
    MT_EQ_ERR(maos_unlock(other, "am-lock", tok), 0);
    wait_one(c, &l, &lk);
    MT_EQ_ERR(lk.status, 0);
    MT_TRUE(lk.fl.revision > tok);          /* a later fencing token */
    MT_EQ_U64(maos_queued(c), 0);           /* the library's watch delivered nothing */
    struct one lt = {0};
    int64_t t0 = mt_now_us();
    MT_EQ_ERR(maos_async_lock_wait(other, one_cb, &lt, "am-lock", 200), 0);
    ploop l3;
    pl_attach(other, &l3);
    dl = mt_now_us() + 30 * 1000000LL;
    while (!lt.calls && mt_now_us() < dl)
        pl_turn(other, &l3, &no_handlers, NULL, 100);
    MT_EQ_INT(lt.calls, 1);
    MT_EQ_INT(lt.status, MAOS_ETIMEOUT);
    MT_TRUE(strstr(lt.errstr, "am-lock") != NULL);
    /* not before its wait ran out (the library counts whole milliseconds) */
    MT_CMP_INT(mt_now_us() - t0, >=, 199000);
    MT_TRUE(!maos_is_dead(other));
    /* a wait in progress when the context is freed: its callback runs once */
    struct one lf = {0};
    MT_EQ_ERR(maos_async_lock_wait(other, one_cb, &lf, "am-lock", -1), 0);
    dl = mt_now_us() + 30 * 1000000LL;
    turns = 0;
    while (turns < 20 && mt_now_us() < dl)
        if (pl_turn(other, &l3, &no_handlers, NULL, 10) >= 0)
            turns++;
    MT_EQ_INT(lf.calls, 0);
    maos_free(other);
    MT_EQ_INT(lf.calls, 1);
    MT_EQ_INT(lf.status, MAOS_ECONNECTION);
    /* an async unsubscribe of an accepted subscription: one callback (it
     * once got two, one of them before the daemon's answer) */
    uint64_t sub = 0;
    MT_EQ_ERR(maos_subscribe_channel(c, "am.*", &sub), 0);
    struct one us = {0};
    MT_EQ_ERR(maos_async_unsubscribe(c, one_cb, &us, sub), 0);
    wait_one(c, &l, &us);
    MT_EQ_ERR(us.status, 0);
    MT_EQ_ERR(maos_ping(c), 0); /* the daemon answered everything before */
    for (int i = 0; i < 5; i++)
        pl_turn(c, &l, &no_handlers, NULL, 10);
    MT_EQ_INT(us.calls, 1);
    MT_EQ_U64(maos_async_inflight(c), 0);
    /* the JSON forms: bad JSON at once, no callback; good JSON answered */
    struct one js = {0};
    MT_EQ_INT(maos_async_append_json(c, one_cb, &js, "am-j", MAOS_EXPECT_ANY, "T", "{", NULL),
              MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_async_append_json(c, one_cb, &js, "am-j", MAOS_EXPECT_NO_STREAM, "T",
                                     "{\"a\":1}", NULL), 0);
    wait_one(c, &l, &js);
    MT_EQ_ERR(js.status, 0);
    struct one je = {0}, jp = {0};
    MT_EQ_ERR(maos_async_enqueue_json(c, one_cb, &je, "am.j", "[1]", NULL, NULL), 0);
    wait_one(c, &l, &je);
    MT_EQ_ERR(je.status, 0);
    MT_EQ_ERR(maos_async_publish_json(c, one_cb, &jp, "am.ch", "\"hi\""), 0);
    wait_one(c, &l, &jp);
    MT_EQ_ERR(jp.status, 0);
    MT_EQ_U64(jp.fl.receivers, 0);
    maos_page *jpg = NULL;
    MT_EQ_ERR(maos_read(c, "am-j", MAOS_FROM_START, 0, 10, &jpg), 0);
    MT_EQ_U64(jpg->n, 1);
    maos_page_free(jpg);
    printf("# async claim, queue_stats, txn_items, agent_register, session_create/"
           "close/update, lock_wait (taken, timed out, freed): answers asserted\n");
    maos_free(c);
}

/* ---- 100 mixed requests in flight --------------------------------------------- */

enum { KINDS = 10 };
struct slot {
    int i, kind, calls, status;
    uint64_t rid;
    char why[160];
};

static void mixed_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    struct slot *s = privdata;
    s->calls++;
    s->status = status;
    s->rid = maos_result_rid(r);
    if (status) {
        snprintf(s->why, sizeof s->why, "status %s: %s", maos_err_name(status),
                 maos_result_errstr(r));
        return;
    }
    maos_result_fields fl;
    maos_page *pg = NULL;
    maos_table_page *tp = NULL;
    maos_stream_page *sp = NULL;
    maos_stats_info st;
    maos_append_info ai = {0};
    int rc = maos_result_fields_get(r, &fl);
    const char *bad = NULL;
    switch (s->kind) {
    case 0:
        rc = rc ? rc : maos_result_append(r, 0, &ai);
        bad = rc || ai.count != 1 ? "append" : NULL;
        break;
    case 1:
        rc = rc ? rc : maos_result_page(r, &pg);
        bad = rc || pg->n != 1 || pg->events[0].version != 0 ? "read" : NULL;
        break;
    case 2:
        rc = rc ? rc : maos_result_table_page(r, &tp);
        bad = rc || tp->n != 1 || tp->entries[0].key.len != 2 ? "get" : NULL;
        break;
    case 3:
        bad = rc || fl.revision == 0 ? "put" : NULL;
        break;
    case 4:
        bad = rc || fl.count < 1 ? "count" : NULL;
        break;
    case 5:
        bad = rc || fl.position != 5 ? "checkpoint_get" : NULL;
        break;
    case 6:
        rc = rc ? rc : maos_result_stats(r, &st);
        bad = rc || st.head_position < 1 ? "stats" : NULL;
        if (!bad) {
            maos_stats_kv *kv = NULL;
            uint64_t hp = 0;
            rc = maos_result_stats_kv(r, &kv);
            bad = rc || maos_stats_find(kv, "head_position", &hp) || hp != st.head_position
                      ? "stats_kv" : NULL;
            maos_stats_kv_free(kv);
        }
        break;
    case 7:
        bad = rc ? "ping" : NULL;
        break;
    case 8:
        rc = rc ? rc : maos_result_streams(r, &sp);
        bad = rc || sp->n < 1 ? "streams" : NULL;
        break;
    default:
        rc = rc ? rc : maos_result_page(r, &pg);
        bad = rc || pg->n != 1 || pg->events[0].position != 1 ? "read_all" : NULL;
        break;
    }
    /* an answer of another kind is refused by the getters */
    if (!bad && s->kind != 1 && s->kind != 9 && maos_result_page(r, &pg) != MAOS_EINVALID_ARG)
        bad = "page getter accepted another request's answer";
    if (bad)
        snprintf(s->why, sizeof s->why, "%s answer wrong (rc %d)", bad, rc);
    maos_page_free(pg);
    maos_table_page_free(tp);
    maos_stream_page_free(sp);
}

struct enq {
    int calls, status;
    uint8_t ids[3][16];
    int dup[3];
};

static void enq_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    struct enq *e = privdata;
    e->calls++;
    e->status = status ? status : maos_result_enqueue(r, 3, e->ids[0], e->dup);
}

static void test_pipeline_mixed(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_to(d->sock, 0, 0);
    maos_event_spec ev = {NULL, "T", "\x01", 1, NULL, 0};
    MT_EQ_ERR(maos_append(c, "pm-1", MAOS_EXPECT_ANY, &ev, 1, NULL), 0); /* position 1 */
    MT_EQ_ERR(maos_put(c, "kv.t", "k1", "\x80", 1, MAOS_EXPECT_ANY, 0, NULL), 0);
    MT_EQ_ERR(maos_checkpoint_save(c, "cp", 5), 0);
    ploop l;
    pl_attach(c, &l);
    enum { N = 100 };
    struct slot s[N];
    memset(s, 0, sizeof s);
    char key[N][16];
    for (int i = 0; i < N; i++) {
        int rc = 0;
        s[i].i = i;
        s[i].kind = i % KINDS;
        snprintf(key[i], sizeof key[i], "k-%d", i);
        switch (s[i].kind) {
        case 0:
            rc = maos_async_append(c, mixed_cb, &s[i], "pm-a", MAOS_EXPECT_ANY, &ev, 1);
            break;
        case 1:
            rc = maos_async_read(c, mixed_cb, &s[i], "pm-1", MAOS_FROM_START, 0, 10);
            break;
        case 2:
            rc = maos_async_get(c, mixed_cb, &s[i], "kv.t", "k1");
            break;
        case 3:
            rc = maos_async_put(c, mixed_cb, &s[i], "kv.t", key[i], "\x80", 1,
                                MAOS_EXPECT_ANY, 0);
            break;
        case 4:
            rc = maos_async_count(c, mixed_cb, &s[i], "kv.t", NULL, NULL, 0);
            break;
        case 5:
            rc = maos_async_checkpoint_get(c, mixed_cb, &s[i], "cp");
            break;
        case 6:
            rc = maos_async_stats(c, mixed_cb, &s[i]);
            break;
        case 7:
            rc = maos_async_ping(c, mixed_cb, &s[i]);
            break;
        case 8:
            rc = maos_async_streams(c, mixed_cb, &s[i], "pm-", NULL, 0);
            break;
        default:
            rc = maos_async_read_all(c, mixed_cb, &s[i], NULL, 1, 0, 1);
            break;
        }
        if (rc)
            MT_FAIL("async request %d (kind %d): %s", i, s[i].kind, c->errstr);
    }
    MT_EQ_U64(maos_async_inflight(c), N);
    /* synchronous calls and legacy pipelined appends meanwhile: each gets
     * its own reply, none is refused BUSY */
    uint64_t pos = 0;
    MT_EQ_ERR(maos_checkpoint_get(c, "cp", &pos), 0);
    MT_EQ_U64(pos, 5);
    uint64_t lr[3];
    for (int i = 0; i < 3; i++)
        MT_EQ_ERR(maos_append_send(c, "pm-l", MAOS_EXPECT_ANY, &ev, 1, &lr[i]), 0);
    MT_EQ_ERR(maos_ping(c), 0);
    for (int i = 0; i < 3; i++) {
        maos_result *m = NULL;
        MT_EQ_ERR(maos_reply_recv(c, &m), 0);
        MT_TRUE(m != NULL);
        MT_EQ_ERR(maos_result_status(m), 0);
        MT_EQ_U64(maos_result_rid(m), lr[i]);
        /* the one result type: the append's answer and its ids */
        maos_append_info ai;
        uint8_t id[1][16];
        MT_EQ_U64(maos_result_count(m), 1);
        MT_EQ_ERR(maos_result_append(m, 0, &ai), 0);
        MT_EQ_ERR(maos_result_append_ids(m, 0, id, 1), 0);
        MT_EQ_INT(maos_result_append(m, 1, &ai), MAOS_EINVALID_ARG);
        maos_page *pg = NULL;
        MT_EQ_ERR(maos_read(c, "pm-l", ai.version, 0, 1, &pg), 0);
        MT_EQ_U64(pg->n, 1);
        MT_TRUE(memcmp(pg->events[0].id, id[0], 16) == 0);
        maos_page_free(pg);
        maos_result_free(m);
    }
    /* bad arguments: refused at once, no callback */
    MT_EQ_ERR(maos_async_read(c, mixed_cb, NULL, NULL, 0, 0, 0), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_async_ping(c, NULL, NULL), MAOS_EINVALID_ARG);
    int64_t deadline = mt_now_us() + 30 * 1000000LL;
    while (maos_async_inflight(c) && mt_now_us() < deadline) {
        int rc = pl_turn(c, &l, &no_handlers, NULL, 100);
        if (rc < 0)
            MT_FAIL("maos_process: %s", c->errstr);
    }
    MT_EQ_U64(maos_async_inflight(c), 0);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        if (s[i].calls != 1)
            MT_FAIL("request %d: callback ran %d times", i, s[i].calls);
        if (s[i].status || s[i].why[0])
            MT_FAIL("request %d (kind %d): %s", i, s[i].kind, s[i].why);
        MT_CMP_INT(s[i].rid, >, last); /* its own answer: rids in issue order */
        last = s[i].rid;
    }
    /* an enqueue's answer through its getter */
    struct enq e = {0, 0, {{0}}, {0, 0, 0}};
    const void *datas[3] = {"\x01", "\x02", "\x03"};
    size_t lens[3] = {1, 1, 1};
    maos_task_opts topt[3] = {{.dedupe_key = "same"}, {.dedupe_key = "same"}, {0}};
    MT_EQ_ERR(maos_async_enqueue_n(c, enq_cb, &e, "pm.q", datas, lens, topt, 3), 0);
    while (!e.calls && mt_now_us() < deadline)
        pl_turn(c, &l, &no_handlers, NULL, 100);
    MT_EQ_INT(e.calls, 1);
    MT_EQ_ERR(e.status, 0);
    MT_EQ_INT(e.dup[0] + e.dup[1] + e.dup[2], 1);   /* the second "same" */
    MT_TRUE(memcmp(e.ids[0], e.ids[1], 16) == 0);   /* is the first task */
    MT_TRUE(memcmp(e.ids[0], e.ids[2], 16) != 0);
    printf("# 100 async requests of %d kinds, 2 sync calls and 3 pipelined appends "
           "in flight together: every answer matched\n", KINDS);
    maos_free(c);
}

/* ---- across a daemon restart ------------------------------------------------- */

struct rs {
    int appends_issued, appends_done, appends_failed, dups;
    int writes_ok, writes_lost, writes_other;
    int *calls;                /* per append */
    uint64_t events, last_pos, dup_pos, gap;
    int sub_ok;
    maos_ctx *c;
    char why[200];
};

struct rs_req {
    struct rs *t;
    int i;
};

static void rs_append_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    struct rs_req *q = privdata;
    struct rs *t = q->t;
    t->calls[q->i]++;
    maos_append_info ai = {0};
    if (status || maos_result_append(r, 0, &ai)) {
        t->appends_failed++;
        snprintf(t->why, sizeof t->why, "append %d: %s %s", q->i, maos_err_name(status),
                 maos_result_errstr(r));
    } else {
        t->appends_done++;
        t->dups += ai.duplicate;
    }
    free(q);
}

static void rs_write_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    (void)r;
    struct rs *t = privdata;
    if (status == 0)
        t->writes_ok++;
    else if (status == MAOS_ECONNECTION)
        t->writes_lost++;
    else
        t->writes_other++;
}

static void rs_sub_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    (void)r;
    struct rs *t = privdata;
    t->sub_ok = status == 0 ? 1 : -1;
}

static void rs_on_events(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    struct rs *t = user;
    for (size_t i = 0; i < d->n; i++) {
        uint64_t p = d->events[i].position;
        if (p <= t->last_pos)
            t->dup_pos = p;
        else if (t->last_pos && p != t->last_pos + 1)
            t->gap = p;
        t->last_pos = p > t->last_pos ? p : t->last_pos;
        t->events++;
    }
}

static void rs_issue(struct rs *t, int n)
{
    static const maos_event_spec ev = {NULL, "R", "\x01", 1, NULL, 0};
    for (int k = 0; k < n; k++) {
        struct rs_req *q = malloc(sizeof *q);
        MT_TRUE(q != NULL);
        q->t = t;
        q->i = t->appends_issued;
        if (maos_async_append(t->c, rs_append_cb, q, "rs-s", MAOS_EXPECT_ANY, &ev, 1))
            MT_FAIL("async append %d: %s", q->i, t->c->errstr);
        t->appends_issued++;
    }
}

static void test_async_restart(void **state)
{
    (void)state;
    enum { N = 3000, WINDOW = 200 };
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    struct rs t;
    memset(&t, 0, sizeof t);
    t.calls = calloc(N, sizeof *t.calls);
    t.c = connect_to(d->sock, 1, 1); /* reconnect, MAOS_CLIENT_IDS */
    ploop l;
    pl_attach(t.c, &l);
    maos_push_handlers h = {rs_on_events, NULL, NULL};
    maos_read_filter f = {.stream = "rs-s"};
    MT_EQ_ERR(maos_async_subscribe(t.c, rs_sub_cb, &t, &f, MAOS_FROM_POSITION, 1), 0);
    int64_t deadline = mt_now_us() + 120 * 1000000LL;
    int restarted = 0;
    while ((t.appends_done + t.appends_failed < N || t.events < N) &&
           mt_now_us() < deadline) {
        int inflight = t.appends_issued - t.appends_done - t.appends_failed;
        if (t.appends_issued < N && inflight < WINDOW)
            rs_issue(&t, (N - t.appends_issued) < WINDOW - inflight ? N - t.appends_issued
                                                                     : WINDOW - inflight);
        if (!restarted && t.appends_done >= N / 3) {
            /* writes without ids in flight, then the daemon goes away
             * under a full window of appends */
            for (int k = 0; k < 20; k++)
                MT_EQ_ERR(maos_async_checkpoint_save(t.c, rs_write_cb, &t, "rs-cp",
                                                     (uint64_t)k + 1), 0);
            pl_turn(t.c, &l, &h, &t, 0); /* written: now in flight */
            /* a crash: no reply of what is in flight comes (a clean stop
             * answers everything queued first) */
            mt_daemon_kill9(d);
            /* the loop meets the loss: appends are kept, writes fail */
            for (int k = 0; k < 20; k++)
                pl_turn(t.c, &l, &h, &t, 10);
            /* requests issued while down are sent after the handshake */
            MT_EQ_ERR(maos_async_checkpoint_save(t.c, rs_write_cb, &t, "rs-cp2", 7), 0);
            mt_daemon_up(d);
            restarted = 1;
        }
        int rc = pl_turn(t.c, &l, &h, &t, 100);
        if (rc < 0)
            MT_FAIL("maos_process: %s (%s)", maos_err_name(rc), t.c->errstr);
    }
    MT_TRUE(restarted);
    MT_EQ_INT(t.sub_ok, 1);
    if (t.appends_failed)
        MT_FAIL("%d appends failed: %s", t.appends_failed, t.why);
    MT_EQ_INT(t.appends_done, N);
    for (int i = 0; i < N; i++)
        if (t.calls[i] != 1)
            MT_FAIL("append %d: callback ran %d times", i, t.calls[i]);
    MT_CMP_INT(maos_reconnects(t.c), >=, 1);
    MT_EQ_INT(t.writes_other, 0);
    MT_EQ_INT(t.writes_ok + t.writes_lost, 21);
    /* applied once each: the stream holds exactly N events */
    uint64_t n = 0, from = 0;
    for (;;) {
        maos_page *pg = NULL;
        MT_EQ_ERR(maos_read(t.c, "rs-s", from, 0, 1000, &pg), 0);
        n += pg->n;
        int more = pg->has_next && pg->n;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            break;
    }
    MT_EQ_U64(n, N);
    /* the subscription resumed gap-free, no duplicate */
    MT_EQ_U64(t.events, N);
    MT_EQ_U64(t.dup_pos, 0);
    MT_EQ_U64(t.gap, 0);
    printf("# restart with %d appends in flight: all applied once (%d answered "
           "duplicate after a re-send), %d of 21 id-less writes lost with "
           "MAOS_ECONNECTION, %llu reconnect(s), subscription gap-free\n",
           WINDOW, t.dups, t.writes_lost, (unsigned long long)maos_reconnects(t.c));
    maos_free(t.c);
    free(t.calls);
}

/* ---- fake servers ------------------------------------------------------------ */

enum fake_kind { F_GARBAGE, F_TRUNCATED, F_OVERSIZED, F_WRONG_RID, F_SILENT, F_KINDS,
                 F_DROP_SUB /* not in the loop of test_fake_server: test_sub_in_flight */ };
static const char *const fake_names[] = {"garbage", "truncated frame", "oversized length",
                                         "wrong rid", "never answers"};

static void fk_send(int fd, const void *p, size_t n)
{
    if (mt_send_all(fd, p, n) != 0)
        _exit(0); /* the client went away */
}

/* The fake (a child): answers hello, then misbehaves as kind says on every
 * later request.  Serves connections one after the other. */
static void fake_serve(int lfd, enum fake_kind kind)
{
    for (int conn_no = 1;; conn_no++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            _exit(0);
        maos_reader rd;
        maos_reader_init(&rd, MAOS_DEFAULT_MAX_FRAME);
        int hello = 0;
        for (;;) {
            char buf[65536];
            ssize_t k = recv(fd, buf, sizeof buf, 0);
            if (k <= 0)
                break;
            if (maos_reader_feed(&rd, buf, (size_t)k))
                _exit(1);
            maos_slice fr;
            while (maos_reader_next(&rd, &fr) == 1) {
                maos_request req;
                char why[128];
                if (maos_request_decode(fr.ptr, fr.len, NULL, &req, why, sizeof why))
                    _exit(1);
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                char hdr[4];
                if (kind == F_DROP_SUB && hello && req.op == MAOS_OP_SUBSCRIBE_CHANNEL) {
                    if (conn_no == 1) { /* the first connection breaks under it */
                        msgpack_sbuffer_destroy(&sb);
                        maos_request_free(&req);
                        goto next_conn;
                    }
                    /* later ones: {rid, ok, sub: 7}, then a message push */
                    msgpack_pack_map(&pk, 3);
                    msgpack_pack_str(&pk, 3);
                    msgpack_pack_str_body(&pk, "rid", 3);
                    msgpack_pack_uint64(&pk, req.rid);
                    msgpack_pack_str(&pk, 2);
                    msgpack_pack_str_body(&pk, "ok", 2);
                    msgpack_pack_true(&pk);
                    msgpack_pack_str(&pk, 3);
                    msgpack_pack_str_body(&pk, "sub", 3);
                    msgpack_pack_uint64(&pk, 7);
                    maos_frame_put_len(hdr, (uint32_t)sb.size);
                    fk_send(fd, hdr, 4);
                    fk_send(fd, sb.data, sb.size);
                    sb.size = 0;
                    maos_enc_push_message(&pk, 7, (maos_slice){"fk.1", 4},
                                          (maos_slice){"\xc0", 1});
                    maos_frame_put_len(hdr, (uint32_t)sb.size);
                    fk_send(fd, hdr, 4);
                    fk_send(fd, sb.data, sb.size);
                    sb.size = 0;
                } else if (kind == F_DROP_SUB && hello) {
                    maos_enc_reply_ok(&pk, req.rid);
                    maos_frame_put_len(hdr, (uint32_t)sb.size);
                    fk_send(fd, hdr, 4);
                    fk_send(fd, sb.data, sb.size);
                    sb.size = 0;
                } else if (!hello) {
                    maos_enc_reply_hello(&pk, req.rid, MAOS_PROTOCOL_VERSION, "fake", 1 << 20);
                    hello = 1;
                } else if (kind == F_GARBAGE) {
                    static const char g[12] = "\x00\x00\x00\x08\xc1\xc1\xc1\xc1\xc1\xc1\xc1\xc1";
                    fk_send(fd, g, sizeof g);
                } else if (kind == F_TRUNCATED) {
                    maos_enc_reply_ok(&pk, req.rid);
                    maos_frame_put_len(hdr, (uint32_t)sb.size + 100);
                    fk_send(fd, hdr, 4);
                    fk_send(fd, sb.data, sb.size);
                    shutdown(fd, SHUT_WR);
                } else if (kind == F_OVERSIZED) {
                    maos_frame_put_len(hdr, 0x7fffffffu);
                    fk_send(fd, hdr, 4);
                    fk_send(fd, "\x85", 1);
                } else if (kind == F_WRONG_RID) {
                    maos_enc_reply_ok(&pk, req.rid + 1000);
                }
                if (sb.size && (!hello || kind == F_WRONG_RID || req.op == MAOS_OP_HELLO)) {
                    maos_frame_put_len(hdr, (uint32_t)sb.size);
                    fk_send(fd, hdr, 4);
                    fk_send(fd, sb.data, sb.size);
                }
                msgpack_sbuffer_destroy(&sb);
                maos_request_free(&req);
            }
        }
    next_conn:
        maos_reader_free(&rd);
        close(fd);
    }
}

static pid_t fake_start(const char *path, enum fake_kind kind)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        MT_FAIL("socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    MT_TRUE(lfd >= 0);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 8))
        MT_FAIL("fake on %s: %s", path, strerror(errno));
    pid_t pid = mt_fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        fake_serve(lfd, kind);
        _exit(0);
    }
    close(lfd);
    return pid;
}

struct fres {
    int calls, status;
};

static void fake_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    (void)r;
    struct fres *f = privdata;
    f->calls++;
    f->status = status;
}

static void test_fake_server(void **state)
{
    (void)state;
    for (int kind = 0; kind < F_KINDS; kind++) {
        char path[300];
        snprintf(path, sizeof path, "%s/fake-%d.sock", mt_test_dir(), kind);
        pid_t pid = fake_start(path, (enum fake_kind)kind);
        maos_ctx *c = connect_to(path, 0, 0);
        MT_EQ_ERR(maos_set_timeout(c, 300), 0); /* each request's bound */
        ploop l;
        pl_attach(c, &l);
        struct fres a = {0, 0}, b = {0, 0};
        MT_EQ_ERR(maos_async_ping(c, fake_cb, &a), 0);
        MT_EQ_ERR(maos_async_checkpoint_get(c, fake_cb, &b, "x"), 0);
        int64_t t0 = mt_now_us(), deadline = t0 + 10 * 1000000LL;
        while ((a.calls == 0 || b.calls == 0) && mt_now_us() < deadline)
            pl_turn(c, &l, &no_handlers, NULL, 50);
        double ms = (double)(mt_now_us() - t0) / 1000.0;
        if (a.calls != 1 || b.calls != 1)
            MT_FAIL("%s: callbacks ran %d and %d times in %.0f ms", fake_names[kind],
                    a.calls, b.calls, ms);
        if (kind == F_SILENT) {
            MT_EQ_ERR(a.status, MAOS_ETIMEOUT);
            MT_EQ_ERR(b.status, MAOS_ETIMEOUT);
            MT_TRUE(!maos_is_dead(c)); /* a request timeout keeps the connection */
            /* no bound: in flight when the server goes away (reconnect
             * off): MAOS_ECONNECTION, outcome unknown */
            MT_EQ_ERR(maos_set_timeout(c, MAOS_TIMEOUT_NONE), 0);
            struct fres e = {0, 0};
            MT_EQ_ERR(maos_async_checkpoint_save(c, fake_cb, &e, "x", 1), 0);
            pl_turn(c, &l, &no_handlers, NULL, 0); /* sent */
            kill(pid, SIGKILL);
            mt_wait(pid, 5000);
            int64_t dl = mt_now_us() + 10 * 1000000LL;
            while (!e.calls && mt_now_us() < dl)
                pl_turn(c, &l, &no_handlers, NULL, 50);
            MT_EQ_INT(e.calls, 1);
            MT_EQ_ERR(e.status, MAOS_ECONNECTION);
            MT_TRUE(maos_is_dead(c));
        } else {
            MT_EQ_ERR(a.status, MAOS_ECONNECTION);
            MT_EQ_ERR(b.status, MAOS_ECONNECTION);
            MT_TRUE(maos_is_dead(c));
            int want = kind == F_TRUNCATED ? MAOS_ECLOSED : MAOS_EPROTO;
            MT_EQ_ERR(c->err, want);
            /* later calls fail at once with the sticky error */
            MT_EQ_ERR(maos_async_ping(c, fake_cb, &a), want);
            MT_EQ_ERR(maos_ping(c), want);
        }
        printf("# fake server (%s): both callbacks ran once, %s, after %.0f ms; %s\n",
               fake_names[kind], maos_err_name(a.status), ms, c->errstr);
        maos_free(c);
        kill(pid, SIGKILL);
        mt_wait(pid, 5000);
    }
}

/* With reconnect on, a sync read (retry-safe) to a server that answers
 * hello and then nothing: the request timeout ends it with MAOS_ETIMEOUT;
 * it is not sent again on the new connection (it would wait there too, for
 * ever: the call would never return). */
static void test_silent_server_reconnect(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/fake-silent-rc.sock", mt_test_dir());
    pid_t pid = fake_start(path, F_SILENT);
    maos_ctx *c = connect_to(path, 1, 0);
    MT_EQ_ERR(maos_set_timeout(c, 300), 0);
    uint64_t pos = 0;
    MT_EQ_ERR(maos_checkpoint_get(c, "x", &pos), MAOS_ETIMEOUT);
    MT_EQ_ERR(maos_checkpoint_get(c, "y", &pos), MAOS_ETIMEOUT);
    printf("# silent server, reconnect on: the sync read timed out (%s), %llu "
           "reconnect(s)\n", c->errstr, (unsigned long long)maos_reconnects(c));
    maos_free(c);
    kill(pid, SIGKILL);
    mt_wait(pid, 5000);
}

/* ---- a libuv agent --------------------------------------------------------------- */

enum { UA_APPENDS = 10000, UA_WINDOW = 256, UA_MSGS = 500 };
/* The bound of a loop turn's busy time (see test_uv_agent).  ASan and
 * UBSan make the same work 2-4 times slower (turns of up to 4.5 ms were
 * measured under them, 0.6-3 ms without): 15 ms there.  ThreadSanitizer
 * makes it 5-15 times slower (11.5 ms measured in CI): 60 ms there. */
#if MT_TSAN
#define LAG_BOUND_MS 60
#elif defined(__SANITIZE_ADDRESS__)
#define LAG_BOUND_MS 15
#else
#define LAG_BOUND_MS 5
#endif

struct ua {
    maos_ctx *c;
    uv_loop_t *loop;
    maos_uv *a;
    uv_timer_t tick;
    uv_prepare_t prepare;
    uint64_t last_tick_ns, max_lag_ns, ticks, lag_over_1ms;
    uint64_t turn_start_ns, idle_ns, max_turn_ns; /* busy time per loop turn */
    int issued, done, failed, subs_ok, ready_sent, ready_fd;
    uint64_t events, last_pos, bad_order;
    int msgs;
};

static void ua_append_cb(maos_ctx *c, int status, maos_result *r, void *privdata);

static void ua_issue(struct ua *u)
{
    static const maos_event_spec ev = {NULL, "Tok", "\xa5hello", 6, NULL, 0};
    while (u->issued < UA_APPENDS && u->issued - u->done - u->failed < UA_WINDOW) {
        if (maos_async_append(u->c, ua_append_cb, u, "ua-out", MAOS_EXPECT_ANY, &ev, 1)) {
            u->failed++;
            return;
        }
        u->issued++;
    }
}

static void ua_check_done(struct ua *u)
{
    if (u->done + u->failed == UA_APPENDS && u->events >= UA_APPENDS && u->msgs >= UA_MSGS) {
        uv_timer_stop(&u->tick);
        uv_prepare_stop(&u->prepare);
        maos_uv_detach(u->a);
        u->a = NULL;
    }
}

static void ua_append_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    (void)r;
    struct ua *u = privdata;
    if (status)
        u->failed++;
    else
        u->done++;
    ua_issue(u);
    ua_check_done(u);
}

static void ua_sub_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    (void)r;
    struct ua *u = privdata;
    if (status == 0)
        u->subs_ok++;
    if (u->subs_ok == 2 && !u->ready_sent) {
        u->ready_sent = 1; /* the publisher may start */
        if (write(u->ready_fd, "R", 1) != 1)
            _exit(20);
        ua_issue(u);
    }
}

static void ua_on_events(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    struct ua *u = user;
    for (size_t i = 0; i < d->n; i++) {
        if (d->events[i].position <= u->last_pos)
            u->bad_order++;
        u->last_pos = d->events[i].position;
        u->events++;
    }
    ua_check_done(u);
}

static void ua_on_message(maos_ctx *c, const maos_delivery *d, void *user)
{
    (void)c;
    (void)d;
    struct ua *u = user;
    u->msgs++;
    ua_check_done(u);
}

static void ua_on_tick(uv_timer_t *t)
{
    struct ua *u = t->data;
    uint64_t now = uv_hrtime();
    if (u->last_tick_ns) {
        uint64_t gap = now - u->last_tick_ns;
        uint64_t lag = gap > 1000000 ? gap - 1000000 : 0;
        if (lag > u->max_lag_ns)
            u->max_lag_ns = lag;
        if (lag > 1000000)
            u->lag_over_1ms++;
    }
    u->last_tick_ns = now;
    u->ticks++;
}

/* The loop's busy time per turn: the wall time between two uv_prepare
 * (one whole iteration) minus the time it spent idle in poll
 * (uv_metrics_idle_time): timers and I/O callbacks -- maos_process, the
 * async callbacks and the push handlers -- of that turn.  Unlike the tick's
 * lag it does not count the time the process waited for a CPU while idle
 * on a busy machine. */
static void ua_on_prepare(uv_prepare_t *h)
{
    struct ua *u = h->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(u->loop);
    if (u->turn_start_ns) {
        uint64_t busy = now - u->turn_start_ns - (idle - u->idle_ns);
        if (busy > u->max_turn_ns)
            u->max_turn_ns = busy;
    }
    u->turn_start_ns = now;
    u->idle_ns = idle;
}

/* The agent process: exit 0 when everything arrived; prints its figures on
 * out_fd as one line. */
static void ua_agent(const char *sock, int ready_fd, int out_fd)
{
    struct ua u;
    memset(&u, 0, sizeof u);
    u.ready_fd = ready_fd;
    u.loop = uv_default_loop();
    uv_loop_configure(u.loop, UV_METRICS_IDLE_TIME);
    u.c = connect_to(sock, 0, 0);
    maos_push_handlers h = {ua_on_events, NULL, ua_on_message};
    u.a = maos_uv_attach(u.loop, u.c, &h, &u, NULL);
    if (!u.a)
        _exit(21);
    maos_read_filter f = {.stream = "ua-out"};
    if (maos_async_subscribe(u.c, ua_sub_cb, &u, &f, MAOS_FROM_POSITION, 1) ||
        maos_async_subscribe_channel(u.c, ua_sub_cb, &u, "ua.ctl"))
        _exit(22);
    uv_timer_init(u.loop, &u.tick);
    u.tick.data = &u;
    uv_timer_start(&u.tick, ua_on_tick, 1, 1);
    uv_prepare_init(u.loop, &u.prepare);
    u.prepare.data = &u;
    uv_prepare_start(&u.prepare, ua_on_prepare);
    uv_run(u.loop, UV_RUN_DEFAULT);
    dprintf(out_fd, "appends=%d failed=%d events=%llu msgs=%d bad_order=%llu ticks=%llu "
                    "max_lag_us=%llu lag_over_1ms=%llu max_turn_us=%llu\n",
            u.done, u.failed, (unsigned long long)u.events, u.msgs,
            (unsigned long long)u.bad_order, (unsigned long long)u.ticks,
            (unsigned long long)(u.max_lag_ns / 1000), (unsigned long long)u.lag_over_1ms,
            (unsigned long long)(u.max_turn_ns / 1000));
    uv_loop_close(u.loop);
    maos_free(u.c);
    int ok = u.done == UA_APPENDS && !u.failed && u.events == UA_APPENDS && u.msgs == UA_MSGS &&
             !u.bad_order;
    _exit(ok ? 0 : 23);
}

/* An agent process (body(sock, signal_fd, out_fd), which exits): *sig_fd
 * reads the byte it signals with, *out_fd the line it prints. */
static pid_t agent_start(void (*body)(const char *, int, int), const char *sock, int *sig_fd,
                         int *out_fd)
{
    int sig[2], out[2];
    MT_EQ_INT(pipe(sig), 0);
    MT_EQ_INT(pipe(out), 0);
    pid_t pid = mt_fork();
    if (pid == 0) {
        close(sig[0]);
        close(out[0]);
        body(sock, sig[1], out[1]);
        _exit(0);
    }
    close(sig[1]);
    close(out[1]);
    *sig_fd = sig[0];
    *out_fd = out[0];
    return pid;
}

/* The byte the agent signals (within a minute). */
static char agent_signal(int sig_fd)
{
    struct pollfd p = {sig_fd, POLLIN, 0};
    char b = 0;
    MT_EQ_INT(poll(&p, 1, 60000), 1);
    MT_EQ_INT((int)read(sig_fd, &b, 1), 1);
    return b;
}

/* Wait for the agent; its exit status, and its line in line. */
static int agent_end(pid_t pid, int sig_fd, int out_fd, int timeout_ms, char *line, size_t cap)
{
    int st = mt_wait(pid, timeout_ms);
    ssize_t k = read(out_fd, line, cap - 1);
    line[k > 0 ? k : 0] = '\0';
    close(out_fd);
    close(sig_fd);
    return st;
}

static void test_uv_agent(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    int sig, out;
    pid_t agent = agent_start(ua_agent, d->sock, &sig, &out);
    /* the publisher, another process, starts once the agent subscribed */
    agent_signal(sig);
    pid_t pub = mt_fork();
    if (pub == 0) {
        maos_ctx *c = connect_to(d->sock, 0, 0);
        for (int i = 0; i < UA_MSGS; i++)
            if (maos_publish(c, "ua.ctl", "\x01", 1, NULL))
                _exit(30);
        maos_free(c);
        _exit(0);
    }
    MT_EQ_INT(mt_wait(pub, 120000), 0);
    char line[512];
    int st = agent_end(agent, sig, out, 240000, line, sizeof line);
    printf("# libuv agent: %s", line);
    if (st != 0)
        MT_FAIL("agent exited with %d: %s", st, line);
    /* The loop's stall bound: 5 ms of busy time in one loop turn (15 under
     * ASan, 60 under TSan; MAOS_TEST_LAG_BOUND_MS overrides it, e.g. for
     * valgrind).  The library
     * never waits in maos_process or a maos_async_* call and each turn's
     * work is bounded (reads per call, completions and deliveries queued
     * before it), so a longer turn would be a blocking call or an unbounded
     * turn; measured turns are 1.5-3 ms here.  The 1 ms tick's lag is
     * printed too (the issue's figure) but not asserted: it also counts the
     * time a busy shared machine keeps the process off a CPU (seen up to
     * 47 ms once on the 2-core CI machine, 2-3 ms usually). */
    const char *env = getenv("MAOS_TEST_LAG_BOUND_MS");
    long bound_us = (env && atol(env) > 0 ? atol(env) : LAG_BOUND_MS) * 1000;
    const char *m = strstr(line, "max_turn_us=");
    MT_TRUE(m != NULL);
    long turn = atol(m + 12);
    if (turn > bound_us)
        MT_FAIL("a loop turn was busy %ld us (bound %ld us): %s", turn, bound_us, line);
}

/* ---- a subscribe in flight at a connection loss ------------------------------ */

/* A fake server breaks the first connection under a channel subscribe (no
 * answer); with reconnect on, the synchronous maos_subscribe_channel is
 * kept (re-sent after the new handshake) and returns its subscription,
 * which then gets the message the fake pushes. */
static void test_sub_in_flight(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/fake-drop.sock", mt_test_dir());
    pid_t pid = fake_start(path, F_DROP_SUB);
    maos_ctx *c = connect_to(path, 1, 0);
    uint64_t sub = 0;
    MT_EQ_ERR(maos_subscribe_channel(c, "fk.*", &sub), 0);
    MT_EQ_U64(sub, 1);
    MT_EQ_U64(maos_reconnects(c), 1);
    maos_delivery *d = NULL;
    MT_EQ_ERR(maos_next(c, 10000, &d), 0);
    MT_EQ_INT(d->kind, MAOS_PUSH_MESSAGE);
    MT_EQ_U64(d->sub, sub);
    MT_EQ_MEM_STR(d->channel, d->channel_len, "fk.1");
    maos_delivery_free(d);
    MT_EQ_ERR(maos_ping(c), 0);
    maos_free(c);
    kill(pid, SIGTERM);
    mt_wait(pid, 10000);
}

/* ---- a non-blocking first connect --------------------------------------------- */

/* The child of test_async_connect: maos_async_connect to a daemon that is
 * not there yet, a ping and an append issued at once, a 1 ms libuv timer;
 * after 10 ticks with no connection it tells the parent (which then starts
 * the daemon); exits 0 when both answers came, after the ticks. */
struct lc {
    uv_loop_t *loop;
    uv_timer_t tick;
    maos_ctx *c;
    maos_uv *a;
    int told_fd;
    uint64_t ticks, ticks_at_connect;
    int ping, append, done;
};

static void lc_maybe_done(struct lc *u)
{
    if (++u->done == 2) {
        u->ticks_at_connect = u->ticks;
        uv_timer_stop(&u->tick);
        maos_uv_detach(u->a);
    }
}

static void lc_ping_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c, (void)r;
    struct lc *u = privdata;
    u->ping = status ? status : 1;
    lc_maybe_done(u);
}

static void lc_append_cb(maos_ctx *c, int status, maos_result *r, void *privdata)
{
    (void)c;
    struct lc *u = privdata;
    maos_append_info ai;
    u->append = status ? status : maos_result_append(r, 0, &ai) ? -1 : (int)ai.count;
    lc_maybe_done(u);
}

static void lc_on_tick(uv_timer_t *t)
{
    struct lc *u = t->data;
    u->ticks++;
    if (u->ticks == 10 && u->told_fd >= 0) {
        /* ten ticks of the loop while connecting: it does not block */
        char b = maos_is_dead(u->c) ? 'd' : 't';
        if (write(u->told_fd, &b, 1) != 1)
            _exit(41);
        close(u->told_fd);
        u->told_fd = -1;
    }
}

static void lc_agent(const char *sock, int told_fd, int out_fd)
{
    struct lc u;
    memset(&u, 0, sizeof u);
    u.told_fd = told_fd;
    u.loop = uv_default_loop();
    /* the daemon may take its time to start on a busy machine: a minute */
    maos_options o = {.path = sock, .connect_timeout_ms = 60000};
    u.c = maos_async_connect(&o);
    if (!u.c || maos_is_dead(u.c) || u.c->err)
        _exit(42);
    u.a = maos_uv_attach(u.loop, u.c, &no_handlers, &u, NULL);
    maos_event_spec ev = {NULL, "T", "\x01", 1, NULL, 0};
    if (!u.a || maos_async_ping(u.c, lc_ping_cb, &u) ||
        maos_async_append(u.c, lc_append_cb, &u, "lc-1", MAOS_EXPECT_NO_STREAM, &ev, 1))
        _exit(43);
    uv_timer_init(u.loop, &u.tick);
    u.tick.data = &u;
    uv_timer_start(&u.tick, lc_on_tick, 1, 1);
    uv_run(u.loop, UV_RUN_DEFAULT);
    dprintf(out_fd, "ping=%d append=%d ticks_at_connect=%llu reconnects=%llu dead=%d\n",
            u.ping, u.append, (unsigned long long)u.ticks_at_connect,
            (unsigned long long)maos_reconnects(u.c), maos_is_dead(u.c));
    int ok = u.ping == 1 && u.append == 1 && u.ticks_at_connect >= 10 &&
             maos_reconnects(u.c) == 0 && !maos_is_dead(u.c);
    uv_loop_close(u.loop);
    maos_free(u.c);
    _exit(ok ? 0 : 44);
}

static void test_async_connect(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL); /* not started yet */
    int told, out;
    pid_t agent = agent_start(lc_agent, d->sock, &told, &out);
    MT_EQ_INT(agent_signal(told), 't'); /* ticking, connecting, not dead */
    mt_daemon_up(d);
    char line[256];
    int st = agent_end(agent, told, out, 120000, line, sizeof line);
    printf("# async connect before the daemon started: %s", line);
    if (st != 0)
        MT_FAIL("agent exited with %d: %s", st, line);

    /* no daemon at all: the connect gives up after its timeout, the request
     * queued meanwhile gets MAOS_ECONNECTION, nothing blocks */
    char gone[300];
    snprintf(gone, sizeof gone, "%s/none/s.sock", mt_test_dir());
    maos_options o = {.path = gone, .connect_timeout_ms = 200};
    maos_ctx *c = maos_async_connect(&o);
    MT_TRUE(c != NULL && !maos_is_dead(c));
    MT_EQ_INT(maos_fd(c), -1);
    ploop l;
    pl_attach(c, &l);
    struct one po = {0};
    MT_EQ_ERR(maos_async_ping(c, one_cb, &po), 0);
    int64_t dl = mt_now_us() + 30 * 1000000LL;
    while (!po.calls && mt_now_us() < dl)
        pl_turn(c, &l, &no_handlers, NULL, 100);
    MT_EQ_INT(po.calls, 1);
    MT_EQ_INT(po.status, MAOS_ECONNECTION);
    MT_TRUE(maos_is_dead(c));
    MT_EQ_INT(c->err, MAOS_ECONNECT);
    MT_TRUE(strstr(c->errstr, "gave up connecting after 200 ms") != NULL);
    maos_free(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_mixed),
        cmocka_unit_test(test_async_more),
        cmocka_unit_test(test_late_claim_gives_back),
        cmocka_unit_test(test_late_lock_lets_go),
        cmocka_unit_test(test_async_restart),
        cmocka_unit_test(test_fake_server),
        cmocka_unit_test(test_silent_server_reconnect),
        cmocka_unit_test(test_uv_agent),
        cmocka_unit_test(test_async_connect),
        cmocka_unit_test(test_sub_in_flight),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 300);
}
