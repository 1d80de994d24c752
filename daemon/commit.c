/*
 * daemon/commit.c -- the commit thread: the one writer (DESIGN.md).
 *
 * The loop thread queues write requests (maosd_commit_submit).  The commit
 * thread takes everything queued so far as one group, checks each request's
 * preconditions against authoritative state (the database plus the group's
 * own pending writes, read through the indexed batch), assigns positions,
 * versions, the group's timestamp and the hash chain, and makes ONE
 * RocksDB write for the whole group with the configured durability.  While
 * that write syncs, new requests queue up and form the next group: group
 * commit.  The finished group goes back to the loop via uv_async, which
 * answers the writers.  Nothing is acknowledged before the write returned.
 *
 * Invariants (commit thread state):
 *  - log_pos is the position of the last event in the database plus the
 *    current group's accepted requests; log_hash is BLAKE2b-256 of that
 *    event's record; last_time never decreases, so event times are
 *    non-decreasing in position order (read_all relies on it to stop early).
 *  - A request's checks all run before any of its writes enter the batch;
 *    if a write of a request fails half-way (out of memory) the batch is
 *    rolled back to the request's mark and the state restored.
 *  - If the group write fails, the store turns read-only (store.c) and every
 *    request of the group that had succeeded is answered READ_ONLY instead;
 *    the in-memory state is restored to the last durable head.
 *  - Only one thread ever writes; so isolation is serializable without
 *    locks or TransactionDB.
 *
 * Gathering: with N writers that each wait for their reply, a group that
 * starts the moment the first reply-driven request arrives holds one
 * request, and the others arrive during its fsync: groups alternate small
 * and large and each writer gets one fsync in two.  So when the last group
 * had more requests than are queued now, and durability is sync, the
 * thread waits a little for them: at most a quarter of the last write's
 * duration, capped at GATHER_MAX_US, and never longer than it takes for as
 * many requests as the last group had to arrive.  A lone writer never
 * waits (its last group had one request).
 */
#include <pthread.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "keys.h"
#include "maosd.h"

#define GATHER_MAX_US 200
/* A group takes queued requests up to this much cost (maosd_wreq_cost: at
 * least one request), so one WriteBatch stays bounded however much is
 * queued. */
#define GROUP_MAX_BYTES (64u << 20)

struct maosd_commit {
    maosd_server *srv;
    maosd_store *store;
    maosd_headfile *headfile;        /* commit thread only */
    maosd_commit_done_cb done;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    maosd_wreq *in_head, *in_tail;   /* queued by the loop */
    uint64_t in_count;               /* requests in the in-list */
    maosd_wreq *out_head, *out_tail; /* finished, for the loop */
    int stop;
    int started;
    uv_async_t async;
    atomic_uint_fast64_t in_flight;
    atomic_uint_fast64_t head;       /* last durable position */
    uint8_t head_hash[MAOS_HASH_BYTES]; /* its record's hash (under mu) */
    /* commit thread only */
    uint64_t log_pos;
    uint8_t log_hash[MAOS_HASH_BYTES];
    int64_t last_time;
    maosd_batch *batch;
    char *getbuf;
    size_t getcap;
    uint8_t rnd[4096];       /* random bytes for UUIDv7, refilled in bulk */
    size_t rnd_used;
    uint64_t last_group;     /* requests in the last group */
    uint64_t last_write_us;  /* duration of the last storage write */
    int gather;              /* 1 with sync durability */
};

int64_t maosd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void maosd_wreq_free(maosd_wreq *w)
{
    if (!w)
        return;
    maos_request_free(&w->req);
    msgpack_sbuffer_destroy(&w->recs);
    free(w->frame);
    free(w->results);
    free(w->ids);
    free(w->why);
    free(w);
}

/* ---- commit-thread helpers -------------------------------------------------- */

static int fail(maosd_wreq *w, int code, int64_t index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(maosd_wreq *w, int code, int64_t index, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(w->why); /* error text only where an error happened */
    if (vasprintf(&w->why, fmt, ap) < 0)
        w->why = NULL; /* the reply falls back to the code's message */
    va_end(ap);
    w->code = code;
    w->index = index;
    return code;
}

/* Read a value through the batch into cm->getbuf (grown as needed). */
static int get_value(maosd_commit *cm, maosd_cf cf, const char *k, size_t klen,
                     size_t *vlen)
{
    return maosd_batch_get_buf(cm->batch, cf, k, klen, &cm->getbuf, &cm->getcap, vlen);
}

typedef struct head_state {
    int exists;
    uint64_t head;     /* version of the last event */
} head_state;

static int read_head(maosd_commit *cm, maos_slice stream, head_state *hs)
{
    char k[MAOSD_KEY_MAX], v[16];
    size_t vlen;
    int rc = maosd_batch_get(cm->batch, MAOSD_CF_STREAMS, k,
                             maosd_key_head(k, stream), v, sizeof(v), &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        hs->exists = 0;
        hs->head = 0;
        return 0;
    }
    if (rc)
        return rc;
    if (vlen != 16)
        return maosd_store_corrupt("the head of stream %.*s (streams 'h' key) is %zu "
                                   "bytes, want 16", (int)stream.len, stream.ptr, vlen);
    hs->exists = 1;
    hs->head = maosd_get_u64(v);
    return 0;
}

static int slice_eq_raw(maos_slice sent, maos_slice stored, uint8_t empty)
{
    if (sent.len == 0)
        return stored.len == 1 && (uint8_t)stored.ptr[0] == empty;
    return sent.len == stored.len && !memcmp(sent.ptr, stored.ptr, sent.len);
}

/*
 * Idempotency.  Returns 1 when every event of the append carries an id that
 * is already stored, in this stream, at consecutive versions and positions,
 * with the same type, data and meta: the original result is written to
 * *res.  Returns 0 when none of the ids is stored.  Anything in between is
 * a CONFLICT (negative).
 */
static int check_duplicate(maosd_commit *cm, maosd_wreq *w, uint32_t ai,
                           maos_append_result *res, uint8_t *ids)
{
    const maos_append_in *a = &w->req.appends[ai];
    int64_t idx = w->req.op == MAOS_OP_TXN ? (int64_t)ai : -1;
    uint32_t present = 0;
    for (uint32_t j = 0; j < a->n_events; j++) {
        const maos_event_in *e = &a->events[j];
        char idtxt[37];
        size_t vlen;
        if (!e->has_id) {
            if (present)
                goto partial;
            continue;
        }
        int rc = get_value(cm, MAOSD_CF_IDS, (const char *)e->id, 16, &vlen);
        if (rc == MAOS_ENOT_FOUND) {
            if (present)
                goto partial;
            continue;
        }
        if (rc)
            return fail(w, rc, idx, "id lookup failed: %s", maosd_store_errmsg());
        maos_uuid_format(e->id, idtxt);
        if (vlen != MAOSD_ID_VALUE_LEN)
            return fail(w, MAOS_ECORRUPT, idx, "the ids entry of event id %s is %zu "
                        "bytes, want %d", idtxt, vlen, MAOSD_ID_VALUE_LEN);
        if (present < j)
            goto partial;
        uint64_t pos = maosd_get_u64(cm->getbuf);
        uint32_t at = maosd_get_u32(cm->getbuf + 8);
        uint32_t of = maosd_get_u32(cm->getbuf + 12);
        char k[8];
        rc = get_value(cm, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos), &vlen);
        if (rc)
            return fail(w, rc == MAOS_ENOT_FOUND ? MAOS_ECORRUPT : rc, idx,
                        "event %llu of an indexed id %s", (unsigned long long)pos,
                        rc == MAOS_ENOT_FOUND ? "is missing" : maosd_store_errmsg());
        maos_record rec;
        if (maos_record_decode(cm->getbuf, vlen, &rec))
            return fail(w, MAOS_ECORRUPT, idx, "the record at position %llu does not "
                        "decode", (unsigned long long)pos);
        if (rec.stream.len != a->stream.len ||
            memcmp(rec.stream.ptr, a->stream.ptr, a->stream.len))
            return fail(w, MAOS_ECONFLICT, idx,
                        "event id %s is already used in stream %.*s", idtxt,
                        (int)rec.stream.len, rec.stream.ptr);
        if (j == 0) {
            res->first_version = rec.version;
            res->first_position = rec.position;
        }
        /* Same place in an append of the same length, at the same offset
         * from the first event: the very same append. */
        if (at != j || of != a->n_events || rec.version != res->first_version + j ||
            rec.position != res->first_position + j)
            return fail(w, MAOS_ECONFLICT, idx,
                        "event id %s was stored by a different append", idtxt);
        if (!slice_eq_raw(e->type, rec.type, 0) ||
            !slice_eq_raw(e->data, rec.data, 0xc0) ||
            !slice_eq_raw(e->meta, rec.meta, 0x80))
            return fail(w, MAOS_ECONFLICT, idx,
                        "event id %s is already used for a different event", idtxt);
        present++;
    }
    if (present == 0)
        return 0;
    for (uint32_t j = 0; j < a->n_events; j++)
        memcpy(ids + 16 * j, a->events[j].id, 16);
    res->stream = a->stream;
    res->count = a->n_events;
    res->duplicate = 1;
    res->ids.ptr = (const char *)ids;
    res->ids.len = a->n_events * 16;
    return 1;
partial:
    return fail(w, MAOS_ECONFLICT, idx,
                "some events of this append are already stored (by id) and "
                "some are not; a retry must resend the same events with the same ids");
}

static int check_expected(maosd_wreq *w, uint32_t ai, const head_state *hs)
{
    const maos_append_in *a = &w->req.appends[ai];
    int64_t idx = w->req.op == MAOS_OP_TXN ? (int64_t)ai : -1;
    int ok;
    switch (a->expect) {
    case MAOS_EXPECT_ANY: ok = 1; break;
    case MAOS_EXPECT_NO_STREAM: ok = !hs->exists; break;
    case MAOS_EXPECT_EXISTS: ok = hs->exists; break;
    default: ok = hs->exists && hs->head == (uint64_t)a->expect; break;
    }
    if (ok)
        return 0;
    w->has_actual = 1;
    w->actual = hs->exists ? (int64_t)hs->head : -1;
    char want[32];
    if (a->expect >= 0)
        snprintf(want, sizeof(want), "version %lld", (long long)a->expect);
    else
        snprintf(want, sizeof(want), "%s",
                 a->expect == MAOS_EXPECT_NO_STREAM ? "no stream" : "an existing stream");
    if (hs->exists)
        return fail(w, MAOS_EWRONG_EXPECTED_VERSION, idx,
                    "stream %.*s is at version %llu, expected %s", (int)a->stream.len,
                    a->stream.ptr, (unsigned long long)hs->head, want);
    return fail(w, MAOS_EWRONG_EXPECTED_VERSION, idx,
                "stream %.*s does not exist, expected %s", (int)a->stream.len,
                a->stream.ptr, want);
}

/* 10 random bytes from the pool: one getrandom per 400 ids, not per id. */
static const uint8_t *rand10(maosd_commit *cm)
{
    if (cm->rnd_used + 10 > sizeof(cm->rnd)) {
        randombytes_buf(cm->rnd, sizeof(cm->rnd));
        cm->rnd_used = 0;
    }
    cm->rnd_used += 10;
    return cm->rnd + cm->rnd_used - 10;
}

/* UUIDv7: 48-bit Unix milliseconds, version 7, variant 10, 74 random bits. */
static void uuidv7(uint8_t id[16], int64_t now_us, const uint8_t rnd[10])
{
    uint64_t ms = (uint64_t)now_us / 1000;
    for (int i = 5; i >= 0; i--) {
        id[i] = (uint8_t)ms;
        ms >>= 8;
    }
    id[6] = (uint8_t)(0x70 | (rnd[0] & 0x0f));
    id[7] = rnd[1];
    id[8] = (uint8_t)(0x80 | (rnd[2] & 0x3f));
    memcpy(id + 9, rnd + 3, 7);
}

/* Phase 2: put the request's events into the batch.  The records are
 * encoded into w->recs (kept for the subscriptions' fan-out) and copied
 * into the batch from there. */
static int write_request(maosd_commit *cm, maosd_wreq *w, const head_state *hs,
                         int64_t now)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->recs, msgpack_sbuffer_write);
    if (!w->recs.alloc) { /* sized to need, not msgpack's 8 KiB first step */
        size_t cap = maosd_wreq_records_bound(&w->req, w->frame_len);
        w->recs.data = malloc(cap);
        w->recs.alloc = w->recs.data ? cap : 0;
    }
    uint8_t *ids = w->ids;
    w->recs.size = 0;
    w->n_recs = 0;
    for (uint32_t i = 0; i < w->req.n_appends; i++) {
        const maos_append_in *a = &w->req.appends[i];
        maos_append_result *res = &w->results[i];
        uint64_t v0 = hs[i].exists ? hs[i].head + 1 : 0;
        res->stream = a->stream;
        res->first_version = v0;
        res->first_position = cm->log_pos + 1;
        res->count = a->n_events;
        res->duplicate = 0;
        res->ids.ptr = (const char *)ids;
        res->ids.len = a->n_events * 16;
        for (uint32_t j = 0; j < a->n_events; j++, ids += 16) {
            const maos_event_in *e = &a->events[j];
            if (e->has_id)
                memcpy(ids, e->id, 16);
            else
                uuidv7(ids, now, rand10(cm));
            uint64_t pos = ++cm->log_pos;
            char k[MAOSD_KEY_MAX], pv[MAOSD_ID_VALUE_LEN];
            size_t off = w->recs.size;
            if (maos_enc_record(&pk, pos, now, v0 + j, a->stream, e->type, ids,
                                cm->log_hash, e->data, e->meta))
                return MAOS_ENOMEM;
            const char *rec = w->recs.data + off;
            size_t rlen = w->recs.size - off;
            crypto_generichash(cm->log_hash, MAOS_HASH_BYTES,
                               (const unsigned char *)rec, rlen, NULL, 0);
            maosd_put_u64(pv, pos);
            maosd_put_u32(pv + 8, j);
            maosd_put_u32(pv + 12, a->n_events);
            maosd_batch_put(cm->batch, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos),
                            rec, rlen);
            maosd_batch_put(cm->batch, MAOSD_CF_STREAMS, k,
                            maosd_key_version(k, a->stream, v0 + j), pv, 8);
            maosd_batch_put(cm->batch, MAOSD_CF_IDS, ids, 16, pv, MAOSD_ID_VALUE_LEN);
            w->n_recs++;
        }
        char k[MAOSD_KEY_MAX], hv[16];
        maosd_put_u64(hv, v0 + a->n_events - 1);
        maosd_put_u64(hv + 8, cm->log_pos);
        maosd_batch_put(cm->batch, MAOSD_CF_STREAMS, k, maosd_key_head(k, a->stream),
                        hv, 16);
    }
    return 0;
}

/* Check and stage one request.  Returns 1 if it put writes in the batch. */
static int process_request(maosd_commit *cm, maosd_wreq *w, int64_t now)
{
    if (w->req.op == MAOS_OP_CHECKPOINT_SAVE) {
        char k[MAOSD_CHECKPOINT_KEY_MAX], v[8];
        maosd_put_u64(v, w->req.position);
        maosd_batch_put(cm->batch, MAOSD_CF_META, k,
                        maosd_key_checkpoint(k, w->req.name), v, 8);
        return 1;
    }
    uint32_t n = w->req.n_appends;
    head_state hs[n];
    uint32_t dups = 0;
    uint8_t *ids = w->ids;
    w->index = -1;

    for (uint32_t i = 0; i < n; i++) {
        int rc = read_head(cm, w->req.appends[i].stream, &hs[i]);
        if (rc) {
            fail(w, rc, -1, "cannot read the stream head: %s", maosd_store_errmsg());
            return 0;
        }
        rc = check_duplicate(cm, w, i, &w->results[i], ids);
        if (rc < 0)
            return 0;
        dups += (uint32_t)rc;
        ids += 16 * (size_t)w->req.appends[i].n_events;
    }
    if (dups == n)
        return 0; /* an idempotent re-send: the original results, no write */
    if (dups) {
        fail(w, MAOS_ECONFLICT, -1,
             "some appends of this txn are already stored and some are not");
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        if (check_expected(w, i, &hs[i]))
            return 0;

    uint64_t pos0 = cm->log_pos;
    uint8_t hash0[MAOS_HASH_BYTES];
    memcpy(hash0, cm->log_hash, sizeof(hash0));
    maosd_batch_mark(cm->batch);
    if (write_request(cm, w, hs, now)) {
        maosd_batch_rollback(cm->batch);
        cm->log_pos = pos0;
        memcpy(cm->log_hash, hash0, sizeof(hash0));
        fail(w, MAOS_ENOMEM, -1, "out of memory while staging the append");
        return 0;
    }
    return 1;
}

/*
 * After a successful group write, before anyone is answered: MAOS-HEAD
 * gets the new acknowledged head (datadir.h), so that a later start can
 * tell a log that lost acknowledged groups.  The group itself is durable
 * whatever happens here; a failed write of the record means the disk is
 * failing: the store goes read-only (the group is still acknowledged).
 */
static void record_head(maosd_commit *cm)
{
    if (!cm->headfile)
        return;
    maosd_head h = {.position = cm->log_pos, .sync = cm->srv->cfg->sync};
    memcpy(h.hash, cm->log_hash, sizeof(h.hash));
    if (maosd_headfile_write(cm->headfile, &h) == 0)
        return;
    maosd_log(MAOSD_LOG_ERROR, "cannot record the acknowledged head in %s: %s; "
              "store is now read-only", MAOSD_HEAD_FILE,
              strerror(maosd_headfile_errno(cm->headfile)));
    maosd_store_set_read_only(cm->store);
}

static void commit_group(maosd_commit *cm, maosd_wreq *list)
{
    maosd_counters *ct = &cm->srv->counters;
    uint64_t pos0 = cm->log_pos;
    uint8_t hash0[MAOS_HASH_BYTES];
    memcpy(hash0, cm->log_hash, sizeof(hash0));
    int64_t now = maosd_now_us();
    if (now < cm->last_time)
        now = cm->last_time;
    uint64_t nreq = 0, staged = 0;

    maosd_batch_clear(cm->batch);
    for (maosd_wreq *w = list; w; w = w->next) {
        nreq++;
        if (maosd_store_state(cm->store) != MAOSD_STORE_OK) {
            fail(w, MAOS_EREAD_ONLY, -1,
                 "store is read-only after a write failure; restart maosd");
            continue;
        }
        staged += (uint64_t)process_request(cm, w, now);
    }
    if (!staged)
        return;

    char meta[8 + MAOS_HASH_BYTES];
    maosd_put_u64(meta, cm->log_pos);
    memcpy(meta + 8, cm->log_hash, MAOS_HASH_BYTES);
    maosd_batch_put(cm->batch, MAOSD_CF_META, MAOSD_META_LOG_HEAD,
                    strlen(MAOSD_META_LOG_HEAD), meta, sizeof(meta));

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = maosd_store_write(cm->store, cm->batch);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cm->last_write_us = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                                   (t1.tv_nsec - t0.tv_nsec) / 1000);
    atomic_fetch_add(&ct->commit_write_us, cm->last_write_us);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR,
                  "commit of %llu requests failed (%s); store is now read-only",
                  (unsigned long long)nreq, maosd_store_last_error(cm->store));
        for (maosd_wreq *w = list; w; w = w->next)
            if (w->code == 0)
                fail(w, MAOS_EREAD_ONLY, -1,
                     "the storage write of this request's group failed: its "
                     "outcome is unknown (after a restart it may be there); "
                     "the store is read-only until maosd restarts; retry "
                     "with the same event ids");
        cm->log_pos = pos0;
        memcpy(cm->log_hash, hash0, sizeof(hash0));
        atomic_fetch_add(&ct->commit_errors, 1);
        return;
    }
    cm->last_time = now;
    record_head(cm);
    pthread_mutex_lock(&cm->mu);
    memcpy(cm->head_hash, cm->log_hash, sizeof(cm->head_hash));
    atomic_store(&cm->head, cm->log_pos);
    pthread_mutex_unlock(&cm->mu);
    atomic_store(&ct->head_position, cm->log_pos);
    atomic_fetch_add(&ct->commit_groups, 1);
    atomic_fetch_add(&ct->commit_requests, nreq);
    atomic_fetch_add(&ct->commit_events, cm->log_pos - pos0);
    if (nreq > atomic_load(&ct->commit_max_group))
        atomic_store(&ct->commit_max_group, nreq);
}

/* With cm->mu held and requests queued: wait briefly for the writers of
 * the last group to come back (see "Gathering" at the top). */
static void gather(maosd_commit *cm)
{
    if (!cm->gather || cm->in_count >= cm->last_group || cm->stop)
        return;
    uint64_t wait_us = cm->last_write_us / 4;
    if (wait_us > GATHER_MAX_US)
        wait_us = GATHER_MAX_US;
    if (wait_us == 0)
        return;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += (long)wait_us * 1000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    while (cm->in_count < cm->last_group && !cm->stop)
        if (pthread_cond_timedwait(&cm->cv, &cm->mu, &dl))
            break; /* timed out */
}

static void *commit_main(void *arg)
{
    maosd_commit *cm = arg;
    for (;;) {
        pthread_mutex_lock(&cm->mu);
        while (!cm->in_head && !cm->stop)
            pthread_cond_wait(&cm->cv, &cm->mu);
        if (cm->in_head)
            gather(cm);
        /* Take the queue, up to GROUP_MAX_BYTES of it. */
        maosd_wreq *list = cm->in_head, *last = NULL;
        uint64_t n = 0;
        size_t bytes = 0;
        for (maosd_wreq *w = list; w && (!n || bytes + w->cost <= GROUP_MAX_BYTES);
             w = w->next) {
            bytes += w->cost;
            last = w;
            n++;
        }
        if (last) {
            cm->in_head = last->next;
            last->next = NULL;
            if (!cm->in_head)
                cm->in_tail = NULL;
        }
        cm->in_count -= n;
        cm->last_group = n;
        int stop = cm->stop;
        pthread_mutex_unlock(&cm->mu);
        if (!list) {
            if (stop)
                break;
            continue;
        }
        commit_group(cm, list);
        maosd_wreq *tail = list;
        while (tail->next)
            tail = tail->next;
        pthread_mutex_lock(&cm->mu);
        if (cm->out_tail)
            cm->out_tail->next = list;
        else
            cm->out_head = list;
        cm->out_tail = tail;
        pthread_mutex_unlock(&cm->mu);
        uv_async_send(&cm->async);
    }
    return NULL;
}

/* ---- loop side ------------------------------------------------------------ */

static void on_async(uv_async_t *h)
{
    maosd_commit *cm = h->data;
    pthread_mutex_lock(&cm->mu);
    maosd_wreq *list = cm->out_head;
    cm->out_head = cm->out_tail = NULL;
    pthread_mutex_unlock(&cm->mu);
    if (list)
        maosd_sub_fanout(cm->srv, list);
    while (list) {
        maosd_wreq *next = list->next;
        list->next = NULL;
        atomic_fetch_sub(&cm->in_flight, 1);
        cm->done(cm->srv, list);
        list = next;
    }
}

static void free_commit(uv_handle_t *h);

int maosd_commit_start(maosd_server *srv, const maosd_head *head,
                       int64_t last_time, maosd_commit_done_cb done,
                       maosd_commit **out)
{
    maosd_commit *cm = calloc(1, sizeof(*cm));
    if (!cm)
        return MAOS_ENOMEM;
    cm->srv = srv;
    cm->store = srv->store;
    cm->headfile = srv->headfile;
    cm->done = done;
    cm->batch = maosd_batch_new(cm->store);
    if (!cm->batch) {
        free(cm);
        return MAOS_ENOMEM;
    }
    pthread_mutex_init(&cm->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cm->cv, &ca);
    pthread_condattr_destroy(&ca);
    cm->gather = srv->cfg->sync;
    cm->rnd_used = sizeof(cm->rnd); /* empty: filled on first use */
    cm->log_pos = head->position;
    memcpy(cm->log_hash, head->hash, sizeof(cm->log_hash));
    memcpy(cm->head_hash, head->hash, sizeof(cm->head_hash));
    cm->last_time = last_time;
    atomic_store(&cm->head, cm->log_pos);
    atomic_store(&srv->counters.head_position, cm->log_pos);
    uv_async_init(srv->loop, &cm->async, on_async);
    cm->async.data = cm;
    if (pthread_create(&cm->thread, NULL, commit_main, cm)) {
        /* The handle belongs to the loop now: free cm from its close
         * callback, which runs on the loop's next turn, not here. */
        uv_close((uv_handle_t *)&cm->async, free_commit);
        return MAOS_EINTERNAL;
    }
    cm->started = 1;
    *out = cm;
    return 0;
}

void maosd_commit_submit(maosd_commit *cm, maosd_wreq *w)
{
    w->next = NULL;
    atomic_fetch_add(&cm->in_flight, 1);
    pthread_mutex_lock(&cm->mu);
    if (cm->in_tail)
        cm->in_tail->next = w;
    else
        cm->in_head = w;
    cm->in_tail = w;
    cm->in_count++;
    pthread_cond_signal(&cm->cv);
    pthread_mutex_unlock(&cm->mu);
}

uint64_t maosd_commit_in_flight(const maosd_commit *cm)
{
    return atomic_load(&((maosd_commit *)cm)->in_flight);
}

uint64_t maosd_commit_head(const maosd_commit *cm)
{
    return atomic_load(&((maosd_commit *)cm)->head);
}

void maosd_commit_durable(maosd_commit *cm, uint64_t *pos,
                          uint8_t hash[MAOS_HASH_BYTES])
{
    pthread_mutex_lock(&cm->mu);
    *pos = atomic_load(&cm->head);
    memcpy(hash, cm->head_hash, MAOS_HASH_BYTES);
    pthread_mutex_unlock(&cm->mu);
}

static void free_commit(uv_handle_t *h)
{
    maosd_commit *cm = h->data;
    maosd_batch_free(cm->batch);
    free(cm->getbuf);
    pthread_mutex_destroy(&cm->mu);
    pthread_cond_destroy(&cm->cv);
    free(cm);
}

void maosd_commit_stop(maosd_commit *cm)
{
    if (!cm)
        return;
    pthread_mutex_lock(&cm->mu);
    cm->stop = 1;
    pthread_cond_signal(&cm->cv);
    pthread_mutex_unlock(&cm->mu);
    pthread_join(cm->thread, NULL);
    on_async(&cm->async); /* answer anything finished after the last wakeup */
    uv_close((uv_handle_t *)&cm->async, free_commit);
}
