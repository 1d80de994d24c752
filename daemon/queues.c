/*
 * daemon/queues.c -- queues on the loop thread (queues.h): the ops,
 * waiting claims, the timer of delays and leases, reads (task and
 * dead_list on a reader thread), and the claims of closed connections.
 * docs/ARCHITECTURE.md "Queues".
 *
 * Waiting claims.  A claim with wait_ms that finds nothing stays with the
 * commit thread, parked in arrival order, and is served in the very group
 * that makes a task of its queues ready (commit.c, park_and_serve): the
 * enqueue and the claim share one write, one fsync, and nobody polls.  The
 * loop keeps each waiting claim's timer; when wait_ms runs out, when its
 * connection closes or when maosd stops, it cancels the wait
 * (maosd_commit_cancel) and the claim comes back with what it has -- no
 * task -- and is answered (silently for a closed connection).
 *
 * Timers.  One uv timer is armed for the earliest 'D' key (a delay or a
 * lease), read after each group that wrote queues.  When it fires, one
 * request of maosd's own (MAOSD_ITEM_QUEUE_TICK) handles what fell due;
 * after a restart, what fell due meanwhile fires at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "dispatch.h"
#include "queues.h"

/* A claim with wait_ms, from its op until its reply (srv's list). */
struct maosd_qwait {
    uv_timer_t timer;           /* wait_ms */
    struct maosd_qwait *next, *prev;
    maosd_wreq *w;
    int expired;                /* its wait ended: cancelled at the commit thread */
};
typedef struct maosd_qwait qwait;

static void rearm(maosd_server *srv);
static void arm_at(maosd_server *srv, int64_t due);

/* ---- maosd's own queue writes --------------------------------------------------------- */

static void unbind_done(maosd_server *srv, maosd_wreq *w);

static void queue_unbind(maosd_server *srv, uint64_t conn)
{
    maosd_wreq *w = maosd_own_item(MAOSD_ITEM_QUEUE_UNBIND, conn);
    if (!w) {
        maosd_log(MAOSD_LOG_ERROR, "out of memory: the claims bound to connection %llu "
                  "come back when their leases run out", (unsigned long long)conn);
        return;
    }
    w->done = unbind_done;
    maosd_submit(srv, w);
}

static void unbind_done(maosd_server *srv, maosd_wreq *w)
{
    uint64_t conn = w->req.items[0].position;
    if (w->code)
        maosd_log(MAOSD_LOG_ERROR, "giving back the claims of %s failed: %s: %s",
                  conn ? "a closed connection" : "the last run's connections",
                  maos_err_name(w->code), w->why ? w->why : "-");
    else if (w->out[0].q_n)
        maosd_logf(conn ? MAOSD_LOG_DEBUG : MAOSD_LOG_INFO,
                   "gave back %u claims bound to %s", w->out[0].q_n,
                   conn ? "a closed connection" : "connections of the last run");
    int more = !w->code && w->out[0].q_more;
    maosd_wreq_free(w);
    if (more)
        queue_unbind(srv, conn);
}

static void tick_done(maosd_server *srv, maosd_wreq *w)
{
    if (w->code)
        maosd_log(MAOSD_LOG_ERROR, "queue timers: %s: %s", maos_err_name(w->code),
                  w->why ? w->why : "-");
    srv->queue_tick_pending = 0;
    int touched = !w->code && w->q_touched;
    maosd_wreq_free(w);
    if (touched)
        arm_at(srv, atomic_load(&srv->queue_next_due));
    else
        rearm(srv);
}

static void on_tick(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    if (srv->queue_tick_pending || srv->stopping)
        return;
    if (maosd_store_state(srv->store) != MAOSD_STORE_OK)
        return; /* read-only: nothing can move */
    maosd_wreq *w = maosd_own_item(MAOSD_ITEM_QUEUE_TICK, 0);
    if (!w) {
        uv_timer_start(&srv->queue_timer, on_tick, 100, 0); /* try again */
        return;
    }
    w->done = tick_done;
    srv->queue_tick_pending = 1;
    maosd_submit(srv, w);
}

/* Arm the timer for due (µs; 0: no timer). */
static void arm_at(maosd_server *srv, int64_t due)
{
    if (srv->stopping || srv->queue_tick_pending || !srv->queue_timer_on)
        return;
    if (!due) {
        uv_timer_stop(&srv->queue_timer);
        return;
    }
    int64_t wait_us = due - maosd_now_us();
    uint64_t ms = wait_us <= 0 ? 0 : (uint64_t)(wait_us + 999) / 1000;
    uv_timer_start(&srv->queue_timer, on_tick, ms, 0);
}

/* Arm the timer for the earliest 'D' key, read here (start-up, and after a
 * tick: the group of a tick may have written nothing). */
static void rearm(maosd_server *srv)
{
    maosd_iter *it = maosd_iter_new_bounded(srv->store, MAOSD_CF_QUEUES, "E", 1);
    if (!it)
        return;
    maosd_iter_seek(it, "D", 1);
    size_t nk;
    const char *k = maosd_iter_key(it, &nk);
    int64_t due = k && nk == 25 && k[0] == 'D' ? (int64_t)maosd_get_u64(k + 1) : 0;
    maosd_iter_free(it);
    arm_at(srv, due);
}

/* ---- waiting claims ----------------------------------------------------------------------- */

static void qwait_freed(uv_handle_t *h)
{
    free(h->data);
}

/* The claim came back (tasks, nothing after its wait ended, or an error):
 * its wait ends, then its reply. */
static void claim_done(maosd_server *srv, maosd_wreq *w)
{
    qwait *q = w->done_arg;
    if (q->prev)
        q->prev->next = q->next;
    else
        srv->qwait_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        srv->qwait_tail = q->prev;
    srv->n_qwaiting--;
    if (w->conn)
        w->conn->q_waiting--;
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, qwait_freed);
    maosd_write_reply(srv, w);
}

static void end_wait(maosd_server *srv, qwait *q)
{
    if (!q->expired) {
        q->expired = 1;
        maosd_commit_cancel(srv->commit, q->w);
    }
}

static void on_wait_over(uv_timer_t *t)
{
    qwait *q = t->data;
    end_wait(q->w->conn->srv, q);
}

static int claims_queue(const maos_item_in *it, const char *name, uint32_t len)
{
    for (uint32_t j = 0; j < it->n_queues; j++)
        if (it->queues[j].len == len && !memcmp(it->queues[j].ptr, name, len))
            return 1;
    return 0;
}

/*
 * Where the scan for a queue's oldest ready task starts ('A' index, for
 * queue_stats): the seq of the oldest one found last time, lowered when a
 * committed group makes an older one ready (w->qready's min_seq).  The
 * claimed tasks' deleted keys before it are never stepped over again (see
 * "index cursors" in write_queue.c).
 */
typedef struct qage {
    struct qage *next;
    char queue[MAOS_QUEUE_NAME_MAX];
    uint32_t len;
    uint64_t seq;
} qage;

static qage *age_of(maosd_server *srv, maos_slice queue, int make)
{
    for (qage *a = srv->qage; a; a = a->next)
        if (a->len == queue.len && !memcmp(a->queue, queue.ptr, queue.len))
            return a;
    qage *a = make ? calloc(1, sizeof(*a)) : NULL;
    if (!a)
        return NULL;
    memcpy(a->queue, queue.ptr, queue.len);
    a->len = queue.len;
    a->next = srv->qage;
    srv->qage = a;
    return a;
}

/* The listener: move the timer when a group wrote queues (to the earliest
 * timer, which the commit thread read after the write); lower the
 * oldest-ready cursors. */
static void on_commit(maosd_server *srv, void *arg, maosd_wreq *list)
{
    (void)arg;
    int touched = 0;
    for (maosd_wreq *w = list; w; w = w->next) {
        if (w->code)
            continue;
        touched |= w->q_touched;
        for (uint32_t i = 0; i < w->n_qready; i++) {
            qage *a = age_of(srv, (maos_slice){w->qready[i].queue, w->qready[i].len}, 0);
            if (a && w->qready[i].min_seq < a->seq)
                a->seq = w->qready[i].min_seq;
        }
    }
    if (touched)
        arm_at(srv, atomic_load(&srv->queue_next_due));
}

/* ---- set-up and shutdown -------------------------------------------------------------- */

int maosd_queues_init(maosd_server *srv)
{
    uv_timer_init(srv->loop, &srv->queue_timer);
    srv->queue_timer.data = srv;
    srv->queue_timer_on = 1;
    return maosd_commit_listen(srv->commit, on_commit, NULL);
}

int maosd_queues_start(maosd_server *srv)
{
    queue_unbind(srv, 0);
    rearm(srv);
    return 0;
}

void maosd_queues_end_waits(maosd_conn *c)
{
    maosd_server *srv = c->srv;
    for (qwait *q = srv->qwait_head; q; q = q->next)
        if (q->w->conn == c)
            end_wait(srv, q); /* it comes back; closing: no reply is written */
}

void maosd_queues_conn_closed(maosd_conn *c)
{
    maosd_queues_end_waits(c);
    if (c->q_bound)
        queue_unbind(c->srv, c->id);
}

void maosd_queues_free(maosd_server *srv)
{
    for (qage *a = srv->qage, *n; a; a = n) {
        n = a->next;
        free(a);
    }
    srv->qage = NULL;
}

void maosd_queues_close(maosd_server *srv)
{
    for (qwait *q = srv->qwait_head; q; q = q->next)
        end_wait(srv, q); /* they come back empty: maosd stops */
    if (srv->queue_timer_on) {
        srv->queue_timer_on = 0;
        uv_timer_stop(&srv->queue_timer);
        uv_close((uv_handle_t *)&srv->queue_timer, NULL);
    }
}

uint64_t maosd_queues_waiting(const maosd_server *srv, maos_slice queue)
{
    uint64_t n = 0;
    for (const qwait *q = srv->qwait_head; q; q = q->next)
        n += (uint64_t)claims_queue(&q->w->req.items[0], queue.ptr, queue.len);
    return n;
}

/* ---- the write ops ---------------------------------------------------------------------- */

/* enqueue, ack, nack, extend, release, dead_retry, dead_purge */
int maosd_op_queue_write(maosd_call *call)
{
    int rc = maosd_queue_write(call->srv, call->conn, call->req, &call->frame,
                               call->frame_len);
    if (rc)
        snprintf(call->why, sizeof(call->why), "out of memory");
    return rc;
}

int maosd_op_claim(maosd_call *call)
{
    maosd_conn *c = call->conn;
    maos_item_in *it = &call->req->items[0];
    if (it->wait_ms && c->q_waiting >= MAOS_CLAIMS_WAITING_MAX) {
        snprintf(call->why, sizeof(call->why),
                 "this connection has %u claims waiting already (at most %u)",
                 c->q_waiting, MAOS_CLAIMS_WAITING_MAX);
        return MAOS_ELIMIT;
    }
    if (c->agent)
        it->bind = 1; /* a registered agent's claims die with it */
    qwait *q = NULL;
    if (it->wait_ms && !(q = calloc(1, sizeof(*q)))) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    maosd_wreq *w = maosd_wreq_for(c, call->req, &call->frame, call->frame_len);
    if (!w) {
        free(q);
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    if (it->bind)
        c->q_bound = 1;
    if (q) {
        maosd_server *srv = call->srv;
        q->w = w;
        q->prev = srv->qwait_tail;
        if (q->prev)
            q->prev->next = q;
        else
            srv->qwait_head = q;
        srv->qwait_tail = q;
        srv->n_qwaiting++;
        uv_timer_init(srv->loop, &q->timer);
        q->timer.data = q;
        uv_timer_start(&q->timer, on_wait_over, w->req.items[0].wait_ms, 0);
        w->done = claim_done;
        w->done_arg = q;
        c->q_waiting++;
    }
    maosd_submit(call->srv, w);
    return 0;
}

/* ---- reads ---------------------------------------------------------------------------- */

static int read_failed(maosd_call *call, int rc)
{
    snprintf(call->why, sizeof(call->why), "%s", maosd_store_errmsg());
    return rc;
}

/* The task id's record, malloc'ed into *v (parsed into *t).  0,
 * MAOS_ENOT_FOUND (why set) or a read error (maosd_store_errmsg says
 * which).  Any thread: it reads only the store. */
static int read_task(maosd_store *st, const uint8_t id[16], char **v, maosd_task *t,
                     char *why, size_t whylen)
{
    char k[MAOSD_QKEY_MAX], text[37];
    size_t vlen;
    *v = NULL;
    int rc = maosd_store_get_alloc(st, MAOSD_CF_QUEUES, k, maosd_qkey_task(k, id), v, &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        maos_uuid_format(id, text);
        snprintf(why, whylen, "no task %s", text);
        return rc;
    }
    if (!rc && maosd_task_parse(*v, vlen, t))
        rc = maosd_store_corrupt("the record of a task (queues 'T' key) does not parse");
    if (rc) {
        free(*v);
        *v = NULL;
    }
    return rc;
}

/*
 * task and dead_list run on a reader thread (reader.c): the handler moves
 * the request into a job, the run step reads into the job's own reply
 * frame, touching only the job and the store.  queue_stats stays on the
 * loop: it counts the loop's waiting claims and moves the loop's
 * oldest-ready cursors (qage).
 */

/* A failed read of a run step: NOT_FOUND (why set by read_task) as it is,
 * anything else as maosd_rjob_fail says. */
static void rjob_failed(maosd_rjob *j, size_t mark, int rc)
{
    if (rc == MAOS_ENOT_FOUND) {
        j->out.size = mark;
        j->rc = rc;
        return;
    }
    maosd_rjob_fail(j, mark, rc);
}

static void run_task(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    char *v;
    maosd_task t;
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    int rc = read_task(j->store, req->task, &v, &t, j->why, sizeof(j->why));
    if (rc) {
        rjob_failed(j, mark, rc);
        return;
    }
    if (!maosd_rights_allow(j->rights, MAOS_SCOPE_QUEUE_WORK, t.queue)) {
        /* the request names only the task: its queue is known here */
        j->out.size = mark;
        j->rc = MAOS_EFORBIDDEN;
        snprintf(j->why, sizeof(j->why), "task needs scope queue.work:%.*s",
                 (int)t.queue.len, t.queue.ptr);
        free(v);
        return;
    }
    if (maos_enc_reply_head(&pk, req->rid, 1) || msgpack_pack_str(&pk, 4) ||
        msgpack_pack_str_body(&pk, "task", 4) || maosd_enc_task(&pk, req->task, &t))
        rc = MAOS_ENOMEM;
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
    free(v);
}

int maosd_op_task(maosd_call *call)
{
    return maosd_rjob_call(call, run_task);
}

/* One queue's figures from its counts value. */
static int queue_info(maosd_call *call, maos_slice queue, const char *counts, size_t n,
                      maos_queue_info *qi)
{
    if (n != MAOSD_QCOUNTS_LEN)
        return maosd_store_corrupt("the counts of queue %.*s are %zu bytes",
                                   (int)queue.len, queue.ptr, n);
    memset(qi, 0, sizeof(*qi));
    qi->queue = queue;
    uint64_t *f[MAOSD_TASK_STATES] = {&qi->ready, &qi->delayed, &qi->blocked,
                                      &qi->leased, &qi->done, &qi->dead};
    for (int s = 0; s < MAOSD_TASK_STATES; s++)
        *f[s] = maosd_get_u64(counts + 8 * s);
    qi->waiting = maosd_queues_waiting(call->srv, queue);
    /* the oldest ready task: the first 'A' key, from the cursor on */
    char k[MAOSD_QKEY_MAX];
    size_t plen = maosd_qkey_prefix(k, 'A', queue), nk;
    char end[MAOSD_QKEY_MAX];
    size_t elen = maosd_prefix_end(end, k, plen);
    maosd_iter *it = maosd_iter_new_bounded(call->srv->store, MAOSD_CF_QUEUES, end, elen);
    qage *age = age_of(call->srv, queue, 1);
    if (!it || !age) {
        maosd_iter_free(it);
        return MAOS_ENOMEM;
    }
    if (age->seq) { /* known: from there (k holds the prefix) */
        maosd_put_u64(k + plen, age->seq);
        maosd_iter_seek(it, k, plen + 8);
    } else {
        maosd_iter_seek(it, k, plen);
    }
    const char *key = maosd_iter_key(it, &nk);
    uint8_t id[16];
    int have = key && nk == plen + 24 && !memcmp(key, k, plen);
    if (have)
        memcpy(id, key + plen + 8, 16);
    int rc = maosd_iter_status(it);
    if (!rc) /* none ready: anything made ready is older than this */
        age->seq = have ? maosd_get_u64(key + plen) : UINT64_MAX;
    maosd_iter_free(it);
    if (rc || !have)
        return rc;
    char *v;
    maosd_task t;
    rc = read_task(call->srv->store, id, &v, &t, call->why, sizeof(call->why));
    if (rc == MAOS_ENOT_FOUND) /* acked since */
        return 0;
    if (!rc)
        qi->oldest_ready = t.enqueued;
    free(v);
    return rc;
}

int maosd_op_queue_stats(maosd_call *call)
{
    const maos_request *req = call->req;
    maosd_store *st = call->srv->store;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc = 0;
    maos_queue_info qi;
    if (req->queue.len) {
        char k[MAOSD_QKEY_MAX], *v = NULL;
        size_t vlen;
        rc = maosd_store_get_alloc(st, MAOSD_CF_QUEUES, k,
                                   maosd_qkey_counts(k, req->queue), &v, &vlen);
        static const char zero[MAOSD_QCOUNTS_LEN];
        if (rc == MAOS_ENOT_FOUND && maosd_queues_waiting(call->srv, req->queue)) {
            rc = 0; /* not used yet, but claims wait on it */
            vlen = sizeof(zero);
        } else if (rc == MAOS_ENOT_FOUND) {
            snprintf(call->why, sizeof(call->why), "no queue %.*s",
                     (int)req->queue.len, req->queue.ptr);
            return rc;
        }
        if (!rc && !(rc = queue_info(call, req->queue, v ? v : zero, vlen, &qi)))
            rc = maos_enc_queue_info(&pk, &qi), n = 1;
        free(v);
    } else {
        maosd_iter *it = maosd_iter_new_bounded(st, MAOSD_CF_QUEUES, "R", 1);
        if (!it)
            return MAOS_EOVERLOADED;
        for (maosd_iter_seek(it, "Q", 1); !rc && maosd_iter_valid(it); maosd_iter_next(it)) {
            size_t nk, vlen;
            const char *key = maosd_iter_key(it, &nk);
            if (key[0] != 'Q')
                break;
            const char *v = maosd_iter_value(it, &vlen);
            maos_slice q = {key + 1, (uint32_t)(nk - 1)};
            if (!(rc = queue_info(call, q, v, vlen, &qi)))
                rc = maos_enc_queue_info(&pk, &qi);
            n++;
        }
        if (!rc)
            rc = maosd_iter_status(it);
        maosd_iter_free(it);
    }
    if (!rc && !sb.data && n)
        rc = MAOS_ENOMEM;
    if (rc) {
        msgpack_sbuffer_destroy(&sb);
        if (rc == MAOS_ENOMEM) {
            snprintf(call->why, sizeof(call->why), "out of memory");
            return MAOS_EOVERLOADED;
        }
        return read_failed(call, rc);
    }
    size_t mark = maosd_reply_begin(call->conn, &pk);
    if (maos_enc_reply_head(&pk, req->rid, 1) || msgpack_pack_str(&pk, 6) ||
        msgpack_pack_str_body(&pk, "queues", 6) || msgpack_pack_array(&pk, n) ||
        (sb.size && msgpack_pack_str_body(&pk, sb.data, sb.size)))
        call->conn->out_broken = 1;
    maosd_reply_end(call->conn, mark);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* {tasks: [n tasks encoded in sb], next: the last task's id or nil}. */
static int task_page_reply(msgpack_packer *pk, uint64_t rid, const msgpack_sbuffer *sb,
                           uint32_t n, int more, const uint8_t last[16])
{
    if (maos_enc_reply_head(pk, rid, 2) || msgpack_pack_str(pk, 5) ||
        msgpack_pack_str_body(pk, "tasks", 5) || msgpack_pack_array(pk, n) ||
        (sb->size && msgpack_pack_str_body(pk, sb->data, sb->size)) ||
        msgpack_pack_str(pk, 4) || msgpack_pack_str_body(pk, "next", 4) ||
        (more ? msgpack_pack_bin(pk, 16) || msgpack_pack_bin_body(pk, last, 16)
              : msgpack_pack_nil(pk)))
        return MAOS_ENOMEM;
    return 0;
}

static void run_dead_list(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    char k[MAOSD_QKEY_MAX];
    size_t plen = maosd_qkey_prefix(k, 'X', req->queue), klen = plen;
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    if (req->has_task) { /* after that task: from its key on, itself skipped */
        char *v;
        maosd_task t;
        int rc = read_task(j->store, req->task, &v, &t, j->why, sizeof(j->why));
        if (rc) {
            rjob_failed(j, mark, rc);
            return;
        }
        klen = maosd_qkey_dead(k, req->queue, t.seq, req->task);
        free(v);
    }
    char end[MAOSD_QKEY_MAX];
    size_t elen = maosd_prefix_end(end, k, plen);
    maosd_iter *it = maosd_iter_new_bounded(j->store, MAOSD_CF_QUEUES, end, elen);
    if (!it) {
        maosd_rjob_fail(j, mark, MAOS_ENOMEM);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer tpk;
    msgpack_packer_init(&tpk, &sb, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc = 0, more = 0;
    uint8_t last[16];
    for (maosd_iter_seek(it, k, klen); !rc && maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t nk;
        const char *key = maosd_iter_key(it, &nk);
        if (nk != plen + 24 || memcmp(key, k, plen))
            break;
        if (req->has_task && !memcmp(key + plen + 8, req->task, 16))
            continue;
        if (n == req->limit) {
            more = 1;
            break;
        }
        uint8_t id[16];
        memcpy(id, key + plen + 8, 16);
        char *v;
        maosd_task t;
        rc = read_task(j->store, id, &v, &t, j->why, sizeof(j->why));
        if (rc == MAOS_ENOT_FOUND) { /* retried or purged since the seek */
            rc = 0;
            continue;
        }
        if (!rc) {
            rc = maosd_enc_task(&tpk, id, &t);
            free(v);
            memcpy(last, id, 16);
            n++;
        }
    }
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (!rc)
        rc = task_page_reply(&pk, req->rid, &sb, n, more, last);
    msgpack_sbuffer_destroy(&sb);
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
}

int maosd_op_dead_list(maosd_call *call)
{
    return maosd_rjob_call(call, run_dead_list);
}

/* Task records one task_list page examines at most: with a queue filter a
 * page may hold fewer than limit tasks (next says where to go on). */
#define TASK_LIST_SCAN 100000

/* task_list (reader thread): every task record ('T' keys, by id), of one
 * queue or all, any state: what an export carries. */
static void run_task_list(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    char k[MAOSD_QKEY_MAX];
    size_t klen = req->has_task ? maosd_qkey_task(k, req->task) : 1;
    k[0] = 'T';
    uint32_t limit = req->limit ? req->limit : MAOS_READ_LIMIT_DEFAULT;
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    maosd_iter *it = maosd_iter_new_bounded(j->store, MAOSD_CF_QUEUES, "U", 1);
    if (!it) {
        maosd_rjob_fail(j, mark, MAOS_ENOMEM);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer tpk;
    msgpack_packer_init(&tpk, &sb, msgpack_sbuffer_write);
    uint32_t n = 0, scanned = 0;
    int rc = 0, more = 0;
    uint8_t last[16];
    for (maosd_iter_seek(it, k, klen); !rc && maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t nk, nv;
        const char *key = maosd_iter_key(it, &nk);
        if (nk != 17 || key[0] != 'T')
            break;
        if (req->has_task && !memcmp(key + 1, req->task, 16))
            continue;
        if (n == limit || scanned == TASK_LIST_SCAN) {
            more = 1;
            break;
        }
        scanned++;
        const char *v = maosd_iter_value(it, &nv);
        maosd_task t;
        if (maosd_task_parse(v, nv, &t)) {
            char text[37];
            maos_uuid_format((const uint8_t *)key + 1, text);
            rc = maosd_store_corrupt("task %s (queues key T) does not parse", text);
            break;
        }
        memcpy(last, key + 1, 16);
        if (req->queue.len &&
            (t.queue.len != req->queue.len || memcmp(t.queue.ptr, req->queue.ptr, t.queue.len)))
            continue;
        rc = maosd_enc_task(&tpk, last, &t);
        n++;
    }
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (!rc)
        rc = task_page_reply(&pk, req->rid, &sb, n, more, last);
    msgpack_sbuffer_destroy(&sb);
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
}

int maosd_op_task_list(maosd_call *call)
{
    return maosd_rjob_call(call, run_task_list);
}
