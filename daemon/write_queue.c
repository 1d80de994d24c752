/*
 * daemon/write_queue.c -- the queues' write kinds (commit.h; queues.h has
 * the record and the keys; docs/ARCHITECTURE.md "Queues").
 *
 * Every state change of a task is three things in one batch: its record,
 * its indexes (only leave() and enter() touch those, and the queue's
 * counts with them), and one event in stream queue-NAME whose position
 * goes into the record's history.  A claim's token is the position of its
 * `claimed` event: strictly increasing per task, so a late worker's token
 * is always an old one (fencing).
 *
 * Checks (LEASE_LOST, NOT_FOUND, CONFLICT) read the task through the batch,
 * so they see the group's earlier requests.  Stages read it again (cheap:
 * the batch or the memtable) rather than keep a copy across items.
 *
 * Readiness: whenever a task becomes ready, the request notes its queue
 * (w->qready); the loop wakes that many waiting claims (queues.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "keys.h"
#include "dispatch.h"
#include "queues.h"

/* Tasks one request of maosd's own (tick, unbind) handles at most; the
 * loop sends another for the rest. */
#define OWN_BATCH 1000

/* ---- the record ---------------------------------------------------------------- */

const char *maosd_task_state_name(int state)
{
    static const char *const names[MAOSD_TASK__END] = {
        [MAOSD_TASK_READY] = "ready",   [MAOSD_TASK_DELAYED] = "delayed",
        [MAOSD_TASK_BLOCKED] = "blocked", [MAOSD_TASK_LEASED] = "leased",
        [MAOSD_TASK_DONE] = "done",     [MAOSD_TASK_DEAD] = "dead"};
    return state > 0 && state < MAOSD_TASK__END ? names[state] : "?";
}

static int opt_str(maos_mpr *r, maos_slice *out)
{
    if (maos_mpr_peek(r) == MAOS_MP_NIL) {
        *out = (maos_slice){NULL, 0};
        return maos_mpr_nil(r);
    }
    return maos_mpr_str(r, out);
}

int maosd_task_parse(const char *v, size_t n, maosd_task *t)
{
    if (n < MAOSD_TASK_HDR)
        return MAOS_ECORRUPT;
    memset(t, 0, sizeof(*t));
    t->state = (uint8_t)v[0];
    t->priority = (int32_t)maosd_get_u32(v + 4);
    t->attempt = maosd_get_u32(v + 8);
    t->max_attempts = maosd_get_u32(v + 12);
    t->lease_ms = maosd_get_u32(v + 16);
    t->backoff_ms = maosd_get_u32(v + 20);
    t->seq = maosd_get_u64(v + 24);
    t->enqueued = (int64_t)maosd_get_u64(v + 32);
    t->due = (int64_t)maosd_get_u64(v + 40);
    t->token = maosd_get_u64(v + 48);
    t->bound_conn = maosd_get_u64(v + 56);
    t->bound_pid = maosd_get_u32(v + 64);
    t->n_history = maosd_get_u32(v + 68);
    if (t->state < MAOSD_TASK_READY || t->state >= MAOSD_TASK__END ||
        t->n_history > MAOSD_TASK_HISTORY_MAX ||
        n < MAOSD_TASK_HDR + 8 * (size_t)t->n_history)
        return MAOS_ECORRUPT;
    t->history = v + MAOSD_TASK_HDR;
    size_t off = MAOSD_TASK_HDR + 8 * (size_t)t->n_history;
    maos_mpr r;
    maos_mpr_init(&r, v + off, n - off);
    if (maos_mpr_str(&r, &t->queue) || maos_mpr_skip(&r, &t->data) ||
        maos_mpr_peek(&r) != MAOS_MP_MAP || maos_mpr_skip(&r, &t->meta) ||
        opt_str(&r, &t->dedupe_key) || opt_str(&r, &t->ordering_key) ||
        opt_str(&r, &t->last_error) || maos_mpr_skip(&r, &t->result) ||
        r.p != r.end)
        return MAOS_ECORRUPT;
    return 0;
}

static int pack_opt(msgpack_packer *pk, maos_slice s)
{
    if (!s.len)
        return msgpack_pack_nil(pk);
    return msgpack_pack_str(pk, s.len) || msgpack_pack_str_body(pk, s.ptr, s.len);
}

static int pack_raw_or(msgpack_packer *pk, maos_slice raw, int empty_map)
{
    if (raw.len)
        return msgpack_pack_str_body(pk, raw.ptr, raw.len);
    return empty_map ? msgpack_pack_map(pk, 0) : msgpack_pack_nil(pk);
}

int maosd_task_encode(msgpack_sbuffer *sb, const maosd_task *t, const uint64_t *add,
                      uint32_t n_add)
{
    /* keep the first event (enqueued) and the latest ones */
    uint32_t keep = t->n_history, skip = 0;
    if (keep + n_add > MAOSD_TASK_HISTORY_MAX) {
        skip = keep + n_add - MAOSD_TASK_HISTORY_MAX;
        keep -= skip;
    }
    char h[MAOSD_TASK_HDR];
    memset(h, 0, sizeof(h));
    h[0] = (char)t->state;
    maosd_put_u32(h + 4, (uint32_t)t->priority);
    maosd_put_u32(h + 8, t->attempt);
    maosd_put_u32(h + 12, t->max_attempts);
    maosd_put_u32(h + 16, t->lease_ms);
    maosd_put_u32(h + 20, t->backoff_ms);
    maosd_put_u64(h + 24, t->seq);
    maosd_put_u64(h + 32, (uint64_t)t->enqueued);
    maosd_put_u64(h + 40, (uint64_t)t->due);
    maosd_put_u64(h + 48, t->token);
    maosd_put_u64(h + 56, t->bound_conn);
    maosd_put_u32(h + 64, t->bound_pid);
    maosd_put_u32(h + 68, keep + n_add);
    if (msgpack_sbuffer_write(sb, h, sizeof(h)))
        return MAOS_ENOMEM;
    if (keep) {
        /* the first, then the newest keep - 1 */
        if (msgpack_sbuffer_write(sb, t->history, 8) ||
            (keep > 1 &&
             msgpack_sbuffer_write(sb, t->history + 8 * (1 + (size_t)skip),
                                   8 * ((size_t)keep - 1))))
            return MAOS_ENOMEM;
    }
    for (uint32_t i = 0; i < n_add; i++) {
        char p[8];
        maosd_put_u64(p, add[i]);
        if (msgpack_sbuffer_write(sb, p, 8))
            return MAOS_ENOMEM;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_str(&pk, t->queue.len) ||
        msgpack_pack_str_body(&pk, t->queue.ptr, t->queue.len) ||
        pack_raw_or(&pk, t->data, 0) || pack_raw_or(&pk, t->meta, 1) ||
        pack_opt(&pk, t->dedupe_key) || pack_opt(&pk, t->ordering_key) ||
        pack_opt(&pk, t->last_error) || pack_raw_or(&pk, t->result, 0))
        return MAOS_ENOMEM;
    return 0;
}

int maosd_enc_task(msgpack_packer *pk, const uint8_t id[16], const maosd_task *t)
{
    const char *st = maosd_task_state_name(t->state);
    maos_task w = {
        .queue = t->queue, .state = {st, (uint32_t)strlen(st)},
        .attempt = t->attempt, .max_attempts = t->max_attempts,
        .priority = t->priority, .data = t->data, .meta = t->meta,
        .enqueued = t->enqueued,
        .not_before = t->state == MAOSD_TASK_DELAYED ? t->due : 0,
        .dedupe_key = t->dedupe_key, .ordering_key = t->ordering_key,
        .last_error = t->last_error, .result = t->result,
        .token = t->state == MAOSD_TASK_LEASED ? t->token : 0,
        .lease_until = t->state == MAOSD_TASK_LEASED ? t->due : 0,
        .n_history = t->n_history, .history_be = t->history,
    };
    memcpy(w.id, id, 16);
    return maos_enc_task(pk, &w);
}

/* ---- keys ------------------------------------------------------------------------ */

static size_t qname(char *k, char c, maos_slice queue)
{
    k[0] = c;
    memcpy(k + 1, queue.ptr, queue.len);
    k[1 + queue.len] = 0;
    return 2 + (size_t)queue.len;
}

size_t maosd_qkey_prefix(char *k, char c, maos_slice queue)
{
    return qname(k, c, queue);
}

size_t maosd_qkey_task(char *k, const uint8_t id[16])
{
    k[0] = 'T';
    memcpy(k + 1, id, 16);
    return 17;
}

size_t maosd_qkey_ready(char *k, maos_slice queue, int32_t prio, uint64_t seq,
                        const uint8_t id[16])
{
    size_t n = qname(k, 'R', queue);
    maosd_put_u32(k + n, (uint32_t)((int64_t)INT32_MAX - prio));
    maosd_put_u64(k + n + 4, seq);
    memcpy(k + n + 12, id, 16);
    return n + 28;
}

/* 'c' queue 0 seq(8) id(16): the age and the dead-letter indexes */
static size_t qkey_seq_id(char *k, char c, maos_slice queue, uint64_t seq,
                          const uint8_t id[16])
{
    size_t n = qname(k, c, queue);
    maosd_put_u64(k + n, seq);
    memcpy(k + n + 8, id, 16);
    return n + 24;
}

size_t maosd_qkey_age(char *k, maos_slice queue, uint64_t seq, const uint8_t id[16])
{
    return qkey_seq_id(k, 'A', queue, seq, id);
}

size_t maosd_qkey_due(char *k, int64_t due, const uint8_t id[16])
{
    k[0] = 'D';
    maosd_put_u64(k + 1, (uint64_t)due);
    memcpy(k + 9, id, 16);
    return 25;
}

size_t maosd_qkey_dedupe(char *k, maos_slice queue, maos_slice dedupe_key)
{
    size_t n = qname(k, 'K', queue);
    memcpy(k + n, dedupe_key.ptr, dedupe_key.len);
    return n + dedupe_key.len;
}

size_t maosd_qkey_order(char *k, maos_slice queue, maos_slice okey, int with_seq,
                        uint64_t seq)
{
    size_t n = qname(k, 'O', queue);
    memcpy(k + n, okey.ptr, okey.len);
    n += okey.len;
    k[n++] = 0;
    if (with_seq) {
        maosd_put_u64(k + n, seq);
        n += 8;
    }
    return n;
}

size_t maosd_qkey_dead(char *k, maos_slice queue, uint64_t seq, const uint8_t id[16])
{
    return qkey_seq_id(k, 'X', queue, seq, id);
}

size_t maosd_qkey_bound(char *k, uint64_t conn, const uint8_t id[16])
{
    k[0] = 'B';
    maosd_put_u64(k + 1, conn);
    memcpy(k + 9, id, 16);
    return 25;
}

size_t maosd_qkey_counts(char *k, maos_slice queue)
{
    k[0] = 'Q';
    memcpy(k + 1, queue.ptr, queue.len);
    return 1 + (size_t)queue.len;
}

/* ---- a task in the commit thread ---------------------------------------------------- */

/* A task read through the batch; t's slices point into mem (its own copy:
 * x->getbuf is reused by the next read). */
typedef struct qtask {
    uint8_t id[16];
    maosd_task t;
    char *mem;
} qtask;

static int64_t item_index(const maosd_wreq *w, uint32_t i)
{
    return w->req.op == MAOS_OP_TXN ? (int64_t)i : -1;
}

/* 1 found, 0 absent, or a read error. */
static int load(maosd_wctx *x, const uint8_t id[16], qtask *q)
{
    char k[MAOSD_QKEY_MAX];
    size_t vlen;
    memcpy(q->id, id, 16);
    q->mem = NULL;
    int rc = maosd_wx_get(x, MAOSD_CF_QUEUES, k, maosd_qkey_task(k, id), &vlen);
    if (rc == MAOS_ENOT_FOUND)
        return 0;
    if (rc)
        return rc;
    q->mem = malloc(vlen ? vlen : 1);
    if (!q->mem)
        return MAOS_ENOMEM;
    memcpy(q->mem, x->getbuf, vlen);
    if (maosd_task_parse(q->mem, vlen, &q->t)) {
        free(q->mem);
        q->mem = NULL;
        return maosd_store_corrupt("the record of a task (queues 'T' key) does not "
                                   "parse (%zu bytes)", vlen);
    }
    return 1;
}

static void unload(qtask *q)
{
    free(q->mem);
    q->mem = NULL;
}

/* Write the record, with up to two new history positions; *as_stored
 * (if not NULL) gets the record's bytes (the caller destroys it). */
static int store_as(maosd_wctx *x, const qtask *q, uint64_t pos1, uint64_t pos2,
                    msgpack_sbuffer *as_stored)
{
    uint64_t add[2] = {pos1, pos2};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = maosd_task_encode(&sb, &q->t, add, (pos1 != 0) + (pos2 != 0));
    if (!rc) {
        char k[MAOSD_QKEY_MAX];
        maosd_batch_put(x->batch, MAOSD_CF_QUEUES, k, maosd_qkey_task(k, q->id),
                        sb.data, sb.size);
    }
    if (as_stored && !rc)
        *as_stored = sb;
    else
        msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int store(maosd_wctx *x, const qtask *q, uint64_t pos1, uint64_t pos2)
{
    return store_as(x, q, pos1, pos2, NULL);
}

static void qput(maosd_wctx *x, const char *k, size_t klen, const void *v, size_t vlen)
{
    maosd_batch_put(x->batch, MAOSD_CF_QUEUES, k, klen, v, vlen);
}

static void qdel(maosd_wctx *x, const char *k, size_t klen)
{
    maosd_batch_delete(x->batch, MAOSD_CF_QUEUES, k, klen);
}

/* ---- index cursors ------------------------------------------------------------------------ */

/*
 * A queue on an LSM tree: every claim deletes the first key of the ready
 * index and every ack the task's timer, so the head of those ranges fills
 * with tombstones until compaction, and a seek from the start of the range
 * steps over all of them -- a claim would cost O(tasks ever claimed).  So
 * the commit thread remembers, per queue, where the live ready keys start
 * (and, for the one timer index, where the live timers start): a lower
 * bound, lowered by enter() when it adds a key before it, raised to the
 * first key a seek found.  A seek from it skips only the tombstones made
 * since the last one.  The bounds are forgotten after a rollback or a
 * failed write (the batch no longer holds what they assumed).
 */
typedef struct qcur {
    struct qcur *next;
    char queue[MAOS_QUEUE_NAME_MAX];
    uint32_t len;
    char low[MAOSD_QKEY_MAX];    /* valid when known */
    size_t lowlen;
    int known;
} qcur;

struct maosd_qcache {
    qcur *ready;                 /* per queue: the ready index */
    char dlow[25];               /* the timer index ('D' due id) */
    int dknown;
};

static qcur *cur_of(maosd_wctx *x, maos_slice queue)
{
    if (!x->qcache && !(x->qcache = calloc(1, sizeof(*x->qcache))))
        return NULL;
    for (qcur *c = x->qcache->ready; c; c = c->next)
        if (c->len == queue.len && !memcmp(c->queue, queue.ptr, queue.len))
            return c;
    qcur *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    memcpy(c->queue, queue.ptr, queue.len);
    c->len = queue.len;
    c->next = x->qcache->ready;
    x->qcache->ready = c;
    return c;
}

static int key_lt(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c < 0 || (c == 0 && alen < blen);
}

/* A key was added to an index: a known bound above it comes down to it. */
static void cur_lower(char *low, size_t *lowlen, int known, const char *k, size_t klen)
{
    if (known && key_lt(k, klen, low, *lowlen)) {
        memcpy(low, k, klen);
        *lowlen = klen;
    }
}

void maosd_queue_cache_reset(maosd_wctx *x)
{
    if (!x->qcache)
        return;
    for (qcur *c = x->qcache->ready; c; c = c->next)
        c->known = 0;
    x->qcache->dknown = 0;
}

void maosd_queue_cache_free(maosd_wctx *x)
{
    if (!x->qcache)
        return;
    for (qcur *c = x->qcache->ready, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(x->qcache);
    x->qcache = NULL;
}

/* Where a scan of the timer index starts: the bound, else the index. */
static size_t due_start(maosd_wctx *x, char *k)
{
    if (x->qcache && x->qcache->dknown) {
        memcpy(k, x->qcache->dlow, 25);
        return 25;
    }
    k[0] = 'D';
    return 1;
}

/* A scan of the timer index met key (NULL: it is empty). */
static void due_seen(maosd_wctx *x, const char *key)
{
    if (!x->qcache && !(x->qcache = calloc(1, sizeof(*x->qcache))))
        return;
    if (key) {
        memcpy(x->qcache->dlow, key, 25);
    } else { /* empty: anything added is lower than this */
        memset(x->qcache->dlow, 0xff, 25);
        x->qcache->dlow[0] = 'D';
    }
    x->qcache->dknown = 1;
}

int64_t maosd_queue_next_due(maosd_wctx *x)
{
    char k[25];
    size_t klen = due_start(x, k);
    maosd_iter *it = maosd_iter_new_bounded(x->srv->store, MAOSD_CF_QUEUES, "E", 1);
    if (!it)
        return 1; /* unknown: the loop looks again at once */
    maosd_iter_seek(it, k, klen);
    size_t nk;
    const char *key = maosd_iter_key(it, &nk);
    int64_t due = 0;
    if (key && nk == 25 && key[0] == 'D') {
        due = (int64_t)maosd_get_u64(key + 1);
        due_seen(x, key);
    } else if (!maosd_iter_status(it)) {
        due_seen(x, NULL);
    }
    maosd_iter_free(it);
    return due;
}

/* The queue's count of tasks in `state` moves by delta. */
static int count_add(maosd_wctx *x, maos_slice queue, int state, int delta)
{
    char k[MAOSD_QKEY_MAX], v[MAOSD_QCOUNTS_LEN];
    size_t klen = maosd_qkey_counts(k, queue), vlen;
    int rc = maosd_wx_get(x, MAOSD_CF_QUEUES, k, klen, &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        memset(v, 0, sizeof(v));
    } else if (rc) {
        return rc;
    } else if (vlen != sizeof(v)) {
        return maosd_store_corrupt("the counts of queue %.*s are %zu bytes",
                                   (int)queue.len, queue.ptr, vlen);
    } else {
        memcpy(v, x->getbuf, sizeof(v));
    }
    char *c = v + 8 * (state - 1);
    maosd_put_u64(c, maosd_get_u64(c) + (uint64_t)(int64_t)delta);
    qput(x, k, klen, v, sizeof(v));
    return 0;
}

/* Note that a task of q's queue became ready (waiting claims wake). */
static int note_ready(maosd_wreq *w, maos_slice queue, uint64_t seq)
{
    for (uint32_t i = 0; i < w->n_qready; i++)
        if (w->qready[i].len == queue.len &&
            !memcmp(w->qready[i].queue, queue.ptr, queue.len)) {
            w->qready[i].n++;
            if (seq < w->qready[i].min_seq)
                w->qready[i].min_seq = seq;
            return 0;
        }
    if (w->n_qready == w->cap_qready) {
        uint32_t cap = w->cap_qready ? 2 * w->cap_qready : 4;
        maosd_qready *n = realloc(w->qready, cap * sizeof(*n));
        if (!n)
            return MAOS_ENOMEM;
        w->qready = n;
        w->cap_qready = cap;
    }
    maosd_qready *r = &w->qready[w->n_qready++];
    memcpy(r->queue, queue.ptr, queue.len);
    r->len = queue.len;
    r->n = 1;
    r->min_seq = seq;
    return 0;
}

/* The task leaves its state: its indexes go, its count drops. */
static int leave(maosd_wctx *x, const qtask *q)
{
    const maosd_task *t = &q->t;
    char k[MAOSD_QKEY_MAX];
    switch (t->state) {
    case MAOSD_TASK_READY:
        qdel(x, k, maosd_qkey_ready(k, t->queue, t->priority, t->seq, q->id));
        qdel(x, k, maosd_qkey_age(k, t->queue, t->seq, q->id));
        break;
    case MAOSD_TASK_DELAYED:
        qdel(x, k, maosd_qkey_due(k, t->due, q->id));
        break;
    case MAOSD_TASK_LEASED:
        qdel(x, k, maosd_qkey_due(k, t->due, q->id));
        if (t->bound_conn)
            qdel(x, k, maosd_qkey_bound(k, t->bound_conn, q->id));
        break;
    case MAOSD_TASK_DEAD:
        qdel(x, k, maosd_qkey_dead(k, t->queue, t->seq, q->id));
        break;
    default:
        break;
    }
    return count_add(x, t->queue, t->state, -1);
}

/* The task enters its (new) state: its indexes and count. */
static int enter(maosd_wctx *x, maosd_wreq *w, const qtask *q)
{
    const maosd_task *t = &q->t;
    char k[MAOSD_QKEY_MAX];
    int rc = 0;
    switch (t->state) {
    case MAOSD_TASK_READY: {
        size_t klen = maosd_qkey_ready(k, t->queue, t->priority, t->seq, q->id);
        qput(x, k, klen, "", 0);
        qcur *c = cur_of(x, t->queue);
        if (!c)
            return MAOS_ENOMEM;
        cur_lower(c->low, &c->lowlen, c->known, k, klen);
        qput(x, k, maosd_qkey_age(k, t->queue, t->seq, q->id), "", 0);
        rc = note_ready(w, t->queue, t->seq);
        break;
    }
    case MAOSD_TASK_DELAYED:
    case MAOSD_TASK_LEASED:
        qput(x, k, maosd_qkey_due(k, t->due, q->id), "", 0);
        if (x->qcache) {
            size_t dl = 25;
            cur_lower(x->qcache->dlow, &dl, x->qcache->dknown, k, 25);
        }
        if (t->state == MAOSD_TASK_LEASED && t->bound_conn)
            qput(x, k, maosd_qkey_bound(k, t->bound_conn, q->id), "", 0);
        break;
    case MAOSD_TASK_DEAD:
        qput(x, k, maosd_qkey_dead(k, t->queue, t->seq, q->id), "", 0);
        break;
    default:
        break;
    }
    w->q_touched = 1;
    return rc ? rc : count_add(x, t->queue, t->state, +1);
}

/* ---- events ------------------------------------------------------------------------- */

/* An event's data: {task, ...}; the caller packs n more pairs. */
typedef struct evdata {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} evdata;

static void ev_begin(evdata *e, const uint8_t id[16], uint32_t n)
{
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&e->pk, 1 + n);
    msgpack_pack_str(&e->pk, 4);
    msgpack_pack_str_body(&e->pk, "task", 4);
    msgpack_pack_bin(&e->pk, 16);
    msgpack_pack_bin_body(&e->pk, id, 16);
}

static void ev_key(evdata *e, const char *k)
{
    msgpack_pack_str(&e->pk, strlen(k));
    msgpack_pack_str_body(&e->pk, k, strlen(k));
}

static void ev_u64(evdata *e, const char *k, uint64_t v)
{
    ev_key(e, k);
    msgpack_pack_uint64(&e->pk, v);
}

static void ev_i64(evdata *e, const char *k, int64_t v)
{
    ev_key(e, k);
    msgpack_pack_int64(&e->pk, v);
}

static void ev_str(evdata *e, const char *k, maos_slice s)
{
    ev_key(e, k);
    pack_opt(&e->pk, s);
}

static void ev_bool(evdata *e, const char *k, int b)
{
    ev_key(e, k);
    if (b)
        msgpack_pack_true(&e->pk);
    else
        msgpack_pack_false(&e->pk);
}

static void ev_cstr(evdata *e, const char *k, const char *s)
{
    ev_str(e, k, (maos_slice){s, (uint32_t)strlen(s)});
}

/* Append the event (stream queue-NAME) and free its data.  *pos. */
static int ev_end(maosd_wctx *x, maosd_wreq *w, evdata *e, maos_slice queue,
                  const char *type, uint64_t *pos)
{
    char stream[8 + MAOS_QUEUE_NAME_MAX];
    maos_slice s = {stream, (uint32_t)maos_queue_stream(queue, stream)};
    int rc = e->sb.data ? maosd_wx_record(x, w, s, (maos_slice){type, (uint32_t)strlen(type)},
                                          (maos_slice){e->sb.data, (uint32_t)e->sb.size}, pos)
                        : MAOS_ENOMEM;
    msgpack_sbuffer_destroy(&e->sb);
    return rc;
}

/* ---- finishing and retrying ---------------------------------------------------------- */

/* A task that is done or dead frees its dedupe key, and the next task of
 * its ordering key (if any) is handed out. */
static int finish(maosd_wctx *x, maosd_wreq *w, const qtask *q)
{
    const maosd_task *t = &q->t;
    char k[MAOSD_QKEY_MAX];
    size_t klen, vlen;
    int rc;
    if (t->dedupe_key.len) {
        klen = maosd_qkey_dedupe(k, t->queue, t->dedupe_key);
        rc = maosd_wx_get(x, MAOSD_CF_QUEUES, k, klen, &vlen);
        if (rc && rc != MAOS_ENOT_FOUND)
            return rc;
        if (!rc && vlen == 16 && !memcmp(x->getbuf, q->id, 16))
            qdel(x, k, klen);
    }
    if (!t->ordering_key.len)
        return 0;
    qdel(x, k, maosd_qkey_order(k, t->queue, t->ordering_key, 1, t->seq));
    /* the next of the key: the first left under its prefix */
    klen = maosd_qkey_order(k, t->queue, t->ordering_key, 0, 0);
    maosd_iter *it = maosd_wx_iter(x, MAOSD_CF_QUEUES, k, klen);
    if (!it)
        return MAOS_ENOMEM;
    maosd_iter_seek(it, k, klen);
    uint8_t next[16];
    int have = 0;
    size_t nk;
    const char *key = maosd_iter_key(it, &nk);
    if (key && nk == klen + 8 && !memcmp(key, k, klen)) {
        const char *v = maosd_iter_value(it, &vlen);
        if (vlen == 16) {
            memcpy(next, v, 16);
            have = 1;
        }
    }
    rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (rc || !have)
        return rc;
    qtask n;
    rc = load(x, next, &n);
    if (rc <= 0)
        return rc ? rc : maosd_store_corrupt("ordering key index names a missing task");
    if (n.t.state == MAOSD_TASK_BLOCKED) {
        if ((rc = leave(x, &n)) == 0) {
            n.t.state = n.t.due > x->now ? MAOSD_TASK_DELAYED : MAOSD_TASK_READY;
            if (n.t.state == MAOSD_TASK_READY)
                n.t.due = 0;
            if ((rc = enter(x, w, &n)) == 0)
                rc = store(x, &n, 0, 0);
        }
    }
    unload(&n);
    return rc;
}

/* Backoff after a failed attempt: backoff_ms * 2^(attempt-1), capped. */
static int64_t backoff_us(const maosd_task *t)
{
    if (!t->backoff_ms)
        return 0;
    int64_t ms = t->backoff_ms;
    for (uint32_t i = 1; i < t->attempt && ms < MAOS_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > MAOS_BACKOFF_MAX_MS)
        ms = MAOS_BACKOFF_MAX_MS;
    return ms * 1000;
}

/*
 * A leased task's attempt ended without an ack (nack, expiry, its worker's
 * connection closed): ready again (after delay_us), or dead when out of
 * attempts.  type: the event ("nacked", "expired", "released"), reason for
 * "released".  *state_out: the new state.
 */
static int attempt_failed(maosd_wctx *x, maosd_wreq *w, qtask *q, int64_t delay_us,
                          maos_slice error, const char *type, const char *reason,
                          uint64_t *pos_out, const char **state_out)
{
    maosd_task *t = &q->t;
    uint64_t token = t->token, pos, pos2 = 0;
    int rc = leave(x, q);
    if (rc)
        return rc;
    t->token = 0;
    t->bound_conn = 0;
    t->bound_pid = 0;
    t->last_error = error;
    if (t->attempt >= t->max_attempts) {
        t->state = MAOSD_TASK_DEAD;
        t->due = 0;
    } else if (delay_us > 0) {
        t->state = MAOSD_TASK_DELAYED;
        t->due = x->now + delay_us;
    } else {
        t->state = MAOSD_TASK_READY;
        t->due = 0;
    }
    evdata e;
    ev_begin(&e, q->id, 4 + (reason != NULL) + (error.len != 0));
    ev_u64(&e, "attempt", t->attempt);
    ev_u64(&e, "token", token);
    ev_cstr(&e, "state", maosd_task_state_name(t->state));
    ev_i64(&e, "not_before", t->state == MAOSD_TASK_DELAYED ? t->due : 0);
    if (reason)
        ev_cstr(&e, "reason", reason);
    if (error.len)
        ev_str(&e, "error", error);
    if ((rc = ev_end(x, w, &e, t->queue, type, &pos)))
        return rc;
    if (t->state == MAOSD_TASK_DEAD) {
        ev_begin(&e, q->id, 2);
        ev_u64(&e, "attempt", t->attempt);
        ev_str(&e, "error", error);
        if ((rc = ev_end(x, w, &e, t->queue, "dead_lettered", &pos2)) ||
            (rc = finish(x, w, q)))
            return rc;
    }
    if ((rc = enter(x, w, q)) || (rc = store(x, q, pos, pos2)))
        return rc;
    if (pos_out)
        *pos_out = pos2 ? pos2 : pos;
    if (state_out)
        *state_out = maosd_task_state_name(t->state);
    return 0;
}

/* ---- enqueue -------------------------------------------------------------------------- */

/* enqueue, dead_purge and maosd's own kinds: nothing to check (decoded means
 * valid; a dedupe hit is not an error). */
int maosd_check_none(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)x;
    (void)w;
    (void)i;
    return 0;
}

/* 1 if an unfinished task of the ordering key exists. */
static int order_busy(maosd_wctx *x, maos_slice queue, maos_slice okey)
{
    char k[MAOSD_QKEY_MAX];
    size_t klen = maosd_qkey_order(k, queue, okey, 0, 0), nk;
    maosd_iter *it = maosd_wx_iter(x, MAOSD_CF_QUEUES, k, klen);
    if (!it)
        return MAOS_ENOMEM;
    maosd_iter_seek(it, k, klen);
    const char *key = maosd_iter_key(it, &nk);
    int busy = key && nk == klen + 8 && !memcmp(key, k, klen);
    int rc = maosd_iter_status(it);
    maosd_iter_free(it);
    return rc ? rc : busy;
}

/* One task of an enqueue: id (new, or the unfinished task holding its
 * dedupe key: *dup), *pos its event's position (0 for a dup). */
static int enqueue_one(maosd_wctx *x, maosd_wreq *w, const maos_item_in *it,
                       const maos_task_in *s, uint8_t id[16], int *dup,
                       uint64_t *pos_out)
{
    char k[MAOSD_QKEY_MAX];
    size_t vlen;
    int rc;
    *dup = 0;
    *pos_out = 0;
    if (s->dedupe_key.len) {
        rc = maosd_wx_get(x, MAOSD_CF_QUEUES, k, maosd_qkey_dedupe(k, it->queue, s->dedupe_key),
                          &vlen);
        if (!rc && vlen == 16) {
            memcpy(id, x->getbuf, 16);
            *dup = 1;
            return 0;
        }
        if (rc && rc != MAOS_ENOT_FOUND)
            return rc;
    }
    qtask q = {.mem = NULL};
    maosd_task *t = &q.t;
    maosd_wx_uuid(x, q.id);
    memcpy(id, q.id, 16);
    t->queue = it->queue;
    t->data = s->data;
    t->meta = s->meta;
    t->priority = s->priority;
    t->max_attempts = s->max_attempts ? s->max_attempts : MAOS_ATTEMPTS_DEFAULT;
    t->lease_ms = s->lease_ms ? s->lease_ms : MAOS_LEASE_MS_DEFAULT;
    t->backoff_ms = s->backoff_ms;
    t->dedupe_key = s->dedupe_key;
    t->ordering_key = s->ordering_key;
    t->enqueued = x->now;
    int64_t not_before = s->not_before ? s->not_before
                       : s->delay_ms > 0 ? x->now + s->delay_ms * 1000 : 0;
    t->due = not_before > x->now ? not_before : 0;
    int blocked = 0;
    if (s->ordering_key.len) {
        blocked = order_busy(x, it->queue, s->ordering_key);
        if (blocked < 0)
            return blocked;
    }
    t->state = blocked ? MAOSD_TASK_BLOCKED
             : t->due ? MAOSD_TASK_DELAYED : MAOSD_TASK_READY;
    uint64_t pos;
    evdata e;
    ev_begin(&e, q.id, 7);
    ev_cstr(&e, "state", maosd_task_state_name(t->state));
    ev_i64(&e, "priority", t->priority);
    ev_i64(&e, "not_before", t->due);
    ev_str(&e, "dedupe_key", t->dedupe_key);
    ev_str(&e, "ordering_key", t->ordering_key);
    ev_key(&e, "data");
    pack_raw_or(&e.pk, t->data, 0);
    ev_key(&e, "meta");
    pack_raw_or(&e.pk, t->meta, 1);
    if ((rc = ev_end(x, w, &e, t->queue, "enqueued", &pos)))
        return rc;
    t->seq = pos;
    if (s->ordering_key.len) {
        size_t klen = maosd_qkey_order(k, t->queue, t->ordering_key, 1, t->seq);
        qput(x, k, klen, q.id, 16);
    }
    if (s->dedupe_key.len)
        qput(x, k, maosd_qkey_dedupe(k, t->queue, t->dedupe_key), q.id, 16);
    if ((rc = enter(x, w, &q)) || (rc = store(x, &q, pos, 0)))
        return rc;
    *pos_out = pos;
    return 0;
}

int maosd_stage_enqueue(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_item_out *o = &w->out[i];
    o->q_off = w->qout.size;
    o->q_n = it->n_tasks;
    /* ids, then one duplicate flag per task */
    size_t need = w->qout.size + 17 * (size_t)it->n_tasks;
    if (need > w->qout.alloc) {
        char *n = realloc(w->qout.data, need);
        if (!n)
            return MAOS_ENOMEM;
        w->qout.data = n;
        w->qout.alloc = need;
    }
    char *space = w->qout.data + o->q_off;
    w->qout.size = need;
    for (uint32_t j = 0; j < it->n_tasks; j++) {
        int dup;
        uint64_t pos;
        int rc = enqueue_one(x, w, it, &it->tasks[j], (uint8_t *)space + 16 * j, &dup,
                             &pos);
        if (rc)
            return rc;
        space[16 * (size_t)it->n_tasks + j] = (char)dup;
        if (pos)
            o->revision = pos;
    }
    return 0;
}

static int pack_bools(msgpack_packer *pk, const char *flags, uint32_t n)
{
    if (msgpack_pack_array(pk, n))
        return MAOS_ENOMEM;
    for (uint32_t j = 0; j < n; j++)
        if (flags[j] ? msgpack_pack_true(pk) : msgpack_pack_false(pk))
            return MAOS_ENOMEM;
    return 0;
}

int maosd_reply_enqueue(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    const maosd_item_out *o = &w->out[i];
    const char *ids = w->qout.data + o->q_off;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer bp;
    msgpack_packer_init(&bp, &sb, msgpack_sbuffer_write);
    int rc = pack_bools(&bp, ids + 16 * (size_t)o->q_n, o->q_n);
    maos_txn_result r = {.kind = MAOS_ITEM_ENQUEUE, .revision = o->revision,
                         .task_ids = {ids, 16 * o->q_n}, .n_duplicates = o->q_n,
                         .duplicates = {sb.data, (uint32_t)sb.size}};
    if (!rc)
        rc = !sb.data                 ? MAOS_ENOMEM
             : top                    ? maos_enc_reply_result(pk, w->req.rid, &r)
                                      : maos_enc_txn_result(pk, &r);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- claim ------------------------------------------------------------------------------ */

int maosd_check_claim(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)x;
    if (w->req.items[i].bind && !w->who.conn_id)
        return maosd_wfail(w, MAOS_EINTERNAL, -1,
                           "maosd's own requests cannot hold a claim");
    return 0;
}

/* The best ready task of the claim's queues (highest priority, then
 * oldest): 1 and *id, 0 none, or an error. */
static int best_ready(maosd_wctx *x, const maos_item_in *it, uint8_t id[16])
{
    char best[4 + 8 + 16], k[MAOSD_QKEY_MAX];
    int have = 0, rc = 0;
    for (uint32_t j = 0; j < it->n_queues && !rc; j++) {
        qcur *c = cur_of(x, it->queues[j]);
        size_t plen = maosd_qkey_prefix(k, 'R', it->queues[j]), nk;
        maosd_iter *ix = c ? maosd_wx_iter(x, MAOSD_CF_QUEUES, k, plen) : NULL;
        if (!ix)
            return MAOS_ENOMEM;
        if (c->known)
            maosd_iter_seek(ix, c->low, c->lowlen);
        else
            maosd_iter_seek(ix, k, plen);
        const char *key = maosd_iter_key(ix, &nk);
        int live = key && nk == plen + sizeof(best) && !memcmp(key, k, plen);
        if (live && (!have || memcmp(key + plen, best, sizeof(best)) < 0)) {
            memcpy(best, key + plen, sizeof(best));
            have = 1;
        }
        rc = maosd_iter_status(ix);
        if (!rc) { /* the live keys start here (or after the prefix) */
            if (live) {
                memcpy(c->low, key, nk);
                c->lowlen = nk;
            } else {
                memcpy(c->low, k, plen);
                memset(c->low + plen, 0xff, sizeof(best));
                c->lowlen = plen + sizeof(best);
            }
            c->known = 1;
        }
        maosd_iter_free(ix);
    }
    if (rc)
        return rc;
    if (have)
        memcpy(id, best + 12, 16);
    return have;
}

int maosd_stage_claim(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_item_out *o = &w->out[i];
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->qout, msgpack_sbuffer_write);
    o->q_off = w->qout.size;
    o->q_n = 0;
    while (o->q_n < it->max_tasks) {
        uint8_t id[16];
        int rc = best_ready(x, it, id);
        if (rc <= 0)
            return rc;
        qtask q;
        rc = load(x, id, &q);
        if (rc <= 0)
            return rc ? rc : maosd_store_corrupt("the ready index names a missing task");
        maosd_task *t = &q.t;
        if (t->state != MAOSD_TASK_READY) {
            unload(&q);
            return maosd_store_corrupt("the ready index names a task that is %s",
                                       maosd_task_state_name(t->state));
        }
        uint64_t pos = 0;
        if ((rc = leave(x, &q)) == 0) {
            t->state = MAOSD_TASK_LEASED;
            t->attempt++;
            t->token = x->st->log_pos + 1; /* the claimed event's position */
            t->due = x->now + 1000 * (int64_t)(it->lease_ms ? it->lease_ms : t->lease_ms);
            t->bound_conn = it->bind ? w->who.conn_id : 0;
            t->bound_pid = it->bind ? (uint32_t)w->who.pid : 0;
            evdata e;
            ev_begin(&e, q.id, 4);
            ev_u64(&e, "attempt", t->attempt);
            ev_u64(&e, "token", t->token);
            ev_i64(&e, "lease_until", t->due);
            ev_bool(&e, "bound", t->bound_conn != 0);
            rc = ev_end(x, w, &e, t->queue, "claimed", &pos);
        }
        if (!rc && pos != t->token)
            rc = maosd_store_corrupt("claim token %llu is not its event's position %llu",
                                     (unsigned long long)t->token, (unsigned long long)pos);
        msgpack_sbuffer rec = {0};
        if (!rc && !(rc = enter(x, w, &q)) && !(rc = store_as(x, &q, pos, 0, &rec))) {
            /* the reply shows the task as stored (its new history) */
            maosd_task shown;
            rc = maosd_task_parse(rec.data, rec.size, &shown);
            if (!rc)
                rc = maosd_enc_task(&pk, q.id, &shown);
            msgpack_sbuffer_destroy(&rec);
        }
        unload(&q);
        if (rc)
            return rc;
        o->q_n++;
    }
    return 0;
}

int maosd_reply_claim(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    const maosd_item_out *o = &w->out[i];
    (void)top; /* never in a txn */
    if (maos_enc_reply_head(pk, w->req.rid, 1) || msgpack_pack_str(pk, 5) ||
        msgpack_pack_str_body(pk, "tasks", 5) || msgpack_pack_array(pk, o->q_n) ||
        (w->qout.size > o->q_off &&
         msgpack_pack_str_body(pk, w->qout.data + o->q_off, w->qout.size - o->q_off)))
        return MAOS_ENOMEM;
    return 0;
}

/* ---- ack, nack, extend, release ------------------------------------------------------- */

/* Check an op on a leased task: the task exists and is leased under
 * it->token, unexpired.  0, or the error recorded on w. */

static int check_lease(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    char text[37];
    qtask q;
    int rc = load(x, it->task, &q);
    maos_uuid_format(it->task, text);
    if (rc < 0)
        return maosd_wfail(w, rc, item_index(w, i), "cannot read task %s: %s", text,
                           maosd_store_errmsg());
    if (rc == 0)
        return maosd_wfail(w, MAOS_ENOT_FOUND, item_index(w, i), "no task %s", text);
    const maosd_task *t = &q.t;
    /* the task's queue must be the writer's (maosd_access_check could not
     * know it: the request names only the task) */
    if (!maosd_rights_allow(w->who.rights, MAOS_SCOPE_QUEUE_WORK, t->queue)) {
        rc = maosd_wfail(w, MAOS_EFORBIDDEN, item_index(w, i), "%s needs scope queue.work:%.*s "
                         "(task %s is of queue %.*s)", maos_op_name(w->req.op),
                         (int)t->queue.len, t->queue.ptr, text, (int)t->queue.len,
                         t->queue.ptr);
        unload(&q);
        return rc;
    }
    if (t->state == MAOSD_TASK_LEASED && t->token == it->token && t->due > x->now) {
        unload(&q);
        return 0;
    }
    const char *why = t->state != MAOSD_TASK_LEASED ? "the task is "
                    : t->token != it->token        ? "another claim holds it (token "
                                                   : "its lease ran out";
    char more[48] = "";
    if (t->state != MAOSD_TASK_LEASED)
        snprintf(more, sizeof(more), "%s", maosd_task_state_name(t->state));
    else if (t->token != it->token)
        snprintf(more, sizeof(more), "%llu)", (unsigned long long)t->token);
    unload(&q);
    return maosd_wfail(w, MAOS_ELEASE_LOST, item_index(w, i),
                       "the lease of task %s with token %llu is no longer yours: %s%s",
                       text, (unsigned long long)it->token, why, more);
}

/* Load the leased task of item i for its stage (the check passed). */
static int load_leased(maosd_wctx *x, maosd_wreq *w, uint32_t i, qtask *q)
{
    int rc = load(x, w->req.items[i].task, q);
    if (rc == 0)
        return maosd_store_corrupt("a checked task vanished before its stage");
    return rc < 0 ? rc : 0;
}

int maosd_check_ack(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    return check_lease(x, w, i);
}

int maosd_stage_ack(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    qtask q;
    uint64_t pos = 0; /* read only when the stage succeeded */
    int rc = load_leased(x, w, i, &q);
    if (rc)
        return rc;
    maosd_task *t = &q.t;
    if ((rc = leave(x, &q)) == 0) {
        evdata e;
        ev_begin(&e, q.id, 2);
        ev_u64(&e, "attempt", t->attempt);
        ev_u64(&e, "token", t->token);
        rc = ev_end(x, w, &e, t->queue, "acked", &pos);
    }
    if (!rc) {
        t->state = MAOSD_TASK_DONE;
        t->token = t->bound_conn = 0;
        t->bound_pid = 0;
        t->due = 0;
        t->result = it->result;
        t->last_error = (maos_slice){NULL, 0};
        if (!(rc = finish(x, w, &q)) && !(rc = enter(x, w, &q)))
            rc = store(x, &q, pos, 0);
    }
    unload(&q);
    w->out[i].revision = pos;
    return rc;
}

static int reply_revision(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top,
                          int kind)
{
    maos_txn_result r = {.kind = kind, .revision = w->out[i].revision};
    return top ? maos_enc_reply_result(pk, w->req.rid, &r) : maos_enc_txn_result(pk, &r);
}

int maosd_reply_ack(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    return reply_revision(pk, w, i, top, MAOS_ITEM_ACK);
}

int maosd_check_nack(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    return check_lease(x, w, i);
}

int maosd_stage_nack(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    qtask q;
    int rc = load_leased(x, w, i, &q);
    if (rc)
        return rc;
    int64_t delay = it->retry_after_ms >= 0 ? it->retry_after_ms * 1000 : backoff_us(&q.t);
    static const char failed[] = "failed";
    maos_slice error = it->error.len ? it->error : (maos_slice){failed, sizeof(failed) - 1};
    rc = attempt_failed(x, w, &q, delay, error, "nacked", NULL, &w->out[i].revision,
                        &w->out[i].q_state);
    unload(&q);
    return rc;
}

int maosd_reply_nack(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    const maosd_item_out *o = &w->out[i];
    const char *st = o->q_state ? o->q_state : "?";
    maos_txn_result r = {.kind = MAOS_ITEM_NACK, .revision = o->revision,
                         .state = {st, (uint32_t)strlen(st)}};
    return top ? maos_enc_reply_result(pk, w->req.rid, &r) : maos_enc_txn_result(pk, &r);
}

int maosd_check_extend(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    return check_lease(x, w, i);
}

int maosd_stage_extend(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    qtask q;
    int rc = load_leased(x, w, i, &q);
    if (rc)
        return rc;
    if ((rc = leave(x, &q)) == 0) {
        q.t.due = x->now + 1000 * (int64_t)w->req.items[i].lease_ms;
        if (!(rc = enter(x, w, &q)))
            rc = store(x, &q, 0, 0);
    }
    w->out[i].lease_until = q.t.due;
    unload(&q);
    return rc;
}

int maosd_reply_extend(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    maos_txn_result r = {.kind = MAOS_ITEM_EXTEND, .lease_until = w->out[i].lease_until};
    return top ? maos_enc_reply_result(pk, w->req.rid, &r) : maos_enc_txn_result(pk, &r);
}

int maosd_check_task_release(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    return check_lease(x, w, i);
}

int maosd_stage_task_release(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    qtask q;
    uint64_t pos = 0; /* read only when the stage succeeded */
    int rc = load_leased(x, w, i, &q);
    if (rc)
        return rc;
    maosd_task *t = &q.t;
    uint64_t token = t->token;
    if ((rc = leave(x, &q)) == 0) {
        /* given back unused: the attempt does not count */
        if (t->attempt)
            t->attempt--;
        t->state = MAOSD_TASK_READY;
        t->token = t->bound_conn = 0;
        t->bound_pid = 0;
        t->due = 0;
        evdata e;
        ev_begin(&e, q.id, 4);
        ev_u64(&e, "attempt", t->attempt);
        ev_u64(&e, "token", token);
        ev_cstr(&e, "state", "ready");
        ev_cstr(&e, "reason", "released");
        rc = ev_end(x, w, &e, t->queue, "released", &pos);
    }
    if (!rc && !(rc = enter(x, w, &q)))
        rc = store(x, &q, pos, 0);
    w->out[i].revision = pos;
    unload(&q);
    return rc;
}

int maosd_reply_task_release(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    return reply_revision(pk, w, i, top, MAOS_ITEM_TASK_RELEASE);
}

/* ---- scans of an index ---------------------------------------------------------------- */

/* Up to max task ids (the last 16 bytes of each key) of the index keys
 * under prefix, in key order, into ids.  due_limit >= 0: the keys are
 * 'D' timers, and those due after it are not taken.  *more: keys are left. */
static int collect_from(maosd_wctx *x, const char *from, size_t flen, const char *prefix,
                        size_t plen, int64_t due_limit, uint8_t *ids, uint32_t max,
                        uint32_t *n, int *more)
{
    maosd_iter *it = maosd_wx_iter(x, MAOSD_CF_QUEUES, prefix, plen);
    if (!it)
        return MAOS_ENOMEM;
    *n = 0;
    *more = 0;
    for (maosd_iter_seek(it, from, flen);; maosd_iter_next(it)) {
        size_t nk;
        const char *key = maosd_iter_key(it, &nk);
        if (!key || nk < plen + 16 || memcmp(key, prefix, plen))
            break;
        if (due_limit >= 0 && (int64_t)maosd_get_u64(key + 1) > due_limit)
            break;
        if (*n == max) {
            *more = 1;
            break;
        }
        memcpy(ids + 16 * (size_t)(*n)++, key + nk - 16, 16);
    }
    int rc = maosd_iter_status(it);
    maosd_iter_free(it);
    return rc;
}

static int collect(maosd_wctx *x, const char *prefix, size_t plen, int64_t due_limit,
                   uint8_t *ids, uint32_t max, uint32_t *n, int *more)
{
    return collect_from(x, prefix, plen, prefix, plen, due_limit, ids, max, n, more);
}

/* ---- dead letters ------------------------------------------------------------------------ */

int maosd_check_dead_retry(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    if (!it->has_task)
        return 0;
    char text[37];
    qtask q;
    int rc = load(x, it->task, &q);
    maos_uuid_format(it->task, text);
    if (rc < 0)
        return maosd_wfail(w, rc, -1, "cannot read task %s: %s", text, maosd_store_errmsg());
    if (rc == 0 || q.t.queue.len != it->queue.len ||
        memcmp(q.t.queue.ptr, it->queue.ptr, it->queue.len)) {
        unload(&q);
        return maosd_wfail(w, MAOS_ENOT_FOUND, -1, "no task %s in queue %.*s", text,
                           (int)it->queue.len, it->queue.ptr);
    }
    int state = q.t.state;
    unload(&q);
    if (state != MAOSD_TASK_DEAD)
        return maosd_wfail(w, MAOS_ECONFLICT, -1, "task %s is %s, not dead", text,
                           maosd_task_state_name(state));
    return 0;
}

static int retry_one(maosd_wctx *x, maosd_wreq *w, const uint8_t id[16])
{
    qtask q;
    uint64_t pos;
    char k[MAOSD_QKEY_MAX];
    size_t vlen;
    int rc = load(x, id, &q);
    if (rc <= 0)
        return rc ? rc : maosd_store_corrupt("the dead letters name a missing task");
    maosd_task *t = &q.t;
    if (t->state != MAOSD_TASK_DEAD) {
        unload(&q);
        return 0;
    }
    if ((rc = leave(x, &q)) == 0) {
        evdata e;
        ev_begin(&e, q.id, 0);
        rc = ev_end(x, w, &e, t->queue, "retried", &pos);
    }
    int blocked = 0;
    if (!rc && t->ordering_key.len)
        rc = (blocked = order_busy(x, t->queue, t->ordering_key)) < 0 ? blocked : 0;
    if (!rc) {
        /* a new delivery, at the back of its queue */
        t->attempt = 0;
        t->seq = pos;
        t->due = 0;
        t->state = blocked ? MAOSD_TASK_BLOCKED : MAOSD_TASK_READY;
        if (t->ordering_key.len)
            qput(x, k, maosd_qkey_order(k, t->queue, t->ordering_key, 1, t->seq), q.id, 16);
        if (t->dedupe_key.len) {
            size_t klen = maosd_qkey_dedupe(k, t->queue, t->dedupe_key);
            rc = maosd_wx_get(x, MAOSD_CF_QUEUES, k, klen, &vlen);
            if (rc == MAOS_ENOT_FOUND) /* free: it is this task's again */
                qput(x, k, klen, q.id, 16), rc = 0;
        }
    }
    if (!rc && !(rc = enter(x, w, &q)))
        rc = store(x, &q, pos, 0);
    unload(&q);
    return rc;
}

int maosd_stage_dead_retry(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_item_out *o = &w->out[i];
    if (it->has_task) {
        o->q_n = 1;
        return retry_one(x, w, it->task);
    }
    char k[MAOSD_QKEY_MAX];
    size_t plen = maosd_qkey_prefix(k, 'X', it->queue);
    uint8_t *ids = malloc(16 * MAOS_DEAD_BATCH);
    if (!ids)
        return MAOS_ENOMEM;
    int rc = collect(x, k, plen, -1, ids, MAOS_DEAD_BATCH, &o->q_n, &o->q_more);
    for (uint32_t j = 0; j < o->q_n && !rc; j++)
        rc = retry_one(x, w, ids + 16 * j);
    free(ids);
    return rc;
}

static int reply_count(msgpack_packer *pk, const maosd_wreq *w, uint32_t i)
{
    const maosd_item_out *o = &w->out[i];
    if (maos_enc_reply_head(pk, w->req.rid, 2) || msgpack_pack_str(pk, 5) ||
        msgpack_pack_str_body(pk, "count", 5) || msgpack_pack_uint32(pk, o->q_n) ||
        msgpack_pack_str(pk, 4) || msgpack_pack_str_body(pk, "more", 4) ||
        (o->q_more ? msgpack_pack_true(pk) : msgpack_pack_false(pk)))
        return MAOS_ENOMEM;
    return 0;
}

int maosd_reply_dead_retry(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)top;
    return reply_count(pk, w, i);
}

int maosd_stage_dead_purge(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    maosd_item_out *o = &w->out[i];
    char k[MAOSD_QKEY_MAX];
    size_t plen = maosd_qkey_prefix(k, 'X', it->queue);
    uint8_t *ids = malloc(16 * MAOS_DEAD_BATCH);
    if (!ids)
        return MAOS_ENOMEM;
    int rc = collect(x, k, plen, -1, ids, MAOS_DEAD_BATCH, &o->q_n, &o->q_more);
    for (uint32_t j = 0; j < o->q_n && !rc; j++) {
        qtask q;
        uint64_t pos;
        rc = load(x, ids + 16 * j, &q);
        if (rc <= 0) {
            rc = rc ? rc : maosd_store_corrupt("the dead letters name a missing task");
            break;
        }
        if (!(rc = leave(x, &q))) {
            evdata e;
            ev_begin(&e, q.id, 0);
            rc = ev_end(x, w, &e, q.t.queue, "purged", &pos);
        }
        if (!rc)
            qdel(x, k, maosd_qkey_task(k, q.id));
        w->q_touched = 1;
        unload(&q);
    }
    free(ids);
    if (!rc && o->q_n) { /* an admin action: its record in the same write */
        maosd_audit a;
        maosd_audit_begin_writer(&a, "dead_purge", w);
        maosd_audit_str(&a, "queue", it->queue);
        maosd_audit_u64(&a, "count", o->q_n);
        rc = maosd_audit_stage(x, w, &a);
    }
    return rc;
}

int maosd_reply_dead_purge(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)top;
    return reply_count(pk, w, i);
}

/* ---- maosd's own: timers that fell due, claims of closed connections ------------------ */

static const char expired_t[] = "lease expired";
static const char closed_t[] = "worker connection closed";

int maosd_stage_queue_tick(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_item_out *o = &w->out[i];
    uint8_t *ids = malloc(16 * OWN_BATCH);
    if (!ids)
        return MAOS_ENOMEM;
    char start[25];
    size_t slen = due_start(x, start);
    int rc = collect_from(x, start, slen, "D", 1, x->now, ids, OWN_BATCH, &o->q_n,
                          &o->q_more);
    for (uint32_t j = 0; j < o->q_n && !rc; j++) {
        qtask q;
        rc = load(x, ids + 16 * j, &q);
        if (rc <= 0) {
            rc = rc ? rc : maosd_store_corrupt("a queue timer names a missing task");
            break;
        }
        maosd_task *t = &q.t;
        if (t->due > x->now) {
            rc = 0; /* moved since it was collected */
        } else if (t->state == MAOSD_TASK_DELAYED) {
            if (!(rc = leave(x, &q))) {
                t->state = MAOSD_TASK_READY;
                t->due = 0;
                if (!(rc = enter(x, w, &q)))
                    rc = store(x, &q, 0, 0);
            }
        } else if (t->state == MAOSD_TASK_LEASED) {
            rc = attempt_failed(x, w, &q, backoff_us(t),
                                (maos_slice){expired_t, sizeof(expired_t) - 1}, "expired",
                                NULL, NULL, NULL);
        }
        unload(&q);
    }
    free(ids);
    return rc;
}

/* maosd's own (tick, unbind): never answered on the wire */
int maosd_reply_own(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)i;
    (void)top;
    return maos_enc_reply_ok(pk, w->req.rid);
}

int maosd_stage_queue_unbind(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_item_out *o = &w->out[i];
    uint64_t conn = w->req.items[i].position;
    char k[9];
    size_t plen = 1;
    k[0] = 'B';
    if (conn) {
        maosd_put_u64(k + 1, conn);
        plen = 9;
    }
    uint8_t *ids = malloc(16 * OWN_BATCH);
    if (!ids)
        return MAOS_ENOMEM;
    int rc = collect(x, k, plen, -1, ids, OWN_BATCH, &o->q_n, &o->q_more);
    for (uint32_t j = 0; j < o->q_n && !rc; j++) {
        qtask q;
        rc = load(x, ids + 16 * j, &q);
        if (rc <= 0) {
            rc = rc ? rc : maosd_store_corrupt("a bound claim names a missing task");
            break;
        }
        maosd_task *t = &q.t;
        if (t->state == MAOSD_TASK_LEASED && t->bound_conn && (!conn || t->bound_conn == conn))
            rc = attempt_failed(x, w, &q, backoff_us(t),
                                (maos_slice){closed_t, sizeof(closed_t) - 1}, "released",
                                "connection closed", NULL, NULL);
        unload(&q);
    }
    free(ids);
    return rc;
}

