/*
 * daemon/commit.c -- the commit thread: the one writer
 * (docs/ARCHITECTURE.md, "The path of a write"; commit.h has the shape).
 *
 * The loop thread queues write requests (maosd_commit_submit).  The commit
 * thread takes everything queued so far as one group and runs each
 * request through the same steps whatever it writes: check every item
 * (against the database plus the group's own pending writes, read through
 * the indexed batch), then stage every item (writes and the events that
 * record them: positions, versions, the group's timestamp, the hash
 * chain).  It makes ONE RocksDB write for the whole group with the
 * configured durability.  While that write syncs, new requests queue up
 * and form the next group: group commit.  The finished group goes back to
 * the loop via uv_async: the listeners get its effects, then each
 * request's done step answers it.  Nothing is acknowledged before the
 * write returned.
 *
 * What an item does is its write kind: WRITE_KINDS below is the one list,
 * like the op list in proto/.  A new kind of write is a row there and its
 * steps, not a branch here.
 *
 * Invariants (commit thread state, maosd_wstate):
 *  - log_pos is the position of the last event in the database plus the
 *    current group's accepted requests; log_hash is BLAKE2b-256 of that
 *    event's record; last_time never decreases, so event times are
 *    non-decreasing in position order (read_all relies on it to stop early).
 *  - A request's checks all run before any of its writes enter the batch;
 *    if a stage fails half-way (out of memory) the batch is rolled back to
 *    the request's mark and the state restored from its copy.
 *  - If the group write fails, the store turns read-only (store.c) and every
 *    request of the group that had succeeded is answered OUTCOME_UNKNOWN
 *    (READ_ONLY when nothing of the group was written); the state is
 *    restored to the last durable group's.
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
 * waits (its last group had one request).  When waiting keeps bringing
 * nobody (GATHER_MISSES waits in a row: a producer alone, or a waiting
 * claim served by the enqueue that arrived), it stops, and tries again
 * once every GATHER_PROBE groups.
 */
#include <pthread.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"
#include "dispatch.h"

#define GATHER_MAX_US 200
#define GATHER_MISSES 4
#define GATHER_PROBE 64
/* A group takes queued requests up to this much cost (maosd_wreq_cost: at
 * least one request), so one WriteBatch stays bounded however much is
 * queued. */
#define GROUP_MAX_BYTES (64u << 20)
/* ... and up to this many appended events (at least one request): the
 * replies of a group go out while the next is staged, so that clients
 * sending big append_batch requests decode replies beside the commit
 * thread instead of after one group of everything (20,000 appends from
 * Python in requests of 1,000: 96 -> 80 ms with 2,048, 1,024 the same,
 * 4,096 88 ms); fsyncs stay few (2,048 small events are ~0.5 MB of
 * journal).  Groups of single appends are far below it. */
#define GROUP_MAX_EVENTS 2048

/* ---- the write kinds ------------------------------------------------------------ */

/* X(ITEM, "name", check, stage, reply) -- the one list of write kinds. */
#define WRITE_KINDS(X)                                                         \
    X(APPEND, "append", maosd_check_append, maosd_stage_append,                \
      maosd_reply_append)                                                      \
    X(CHECKPOINT, "checkpoint", maosd_check_checkpoint,                        \
      maosd_stage_checkpoint, maosd_reply_checkpoint)                          \
    X(PUT, "put", maosd_check_put, maosd_stage_put, maosd_reply_put)           \
    X(DELETE, "delete", maosd_check_delete, maosd_stage_delete,                \
      maosd_reply_delete)                                                      \
    X(RELEASE, "release", maosd_check_release, maosd_stage_release,            \
      maosd_reply_release)                                                     \
    X(AGENT_REGISTER, "agent_register", maosd_check_agent_register,            \
      maosd_stage_agent_register, maosd_reply_agent_register)                  \
    X(AGENT_STATUS, "agent_status", maosd_check_agent_status,                  \
      maosd_stage_agent_status, maosd_reply_agent_status)                      \
    X(AGENT_DEREGISTER, "agent_deregister", maosd_check_agent_deregister,      \
      maosd_stage_agent_deregister, maosd_reply_agent_deregister)              \
    X(ENQUEUE, "enqueue", maosd_check_none, maosd_stage_enqueue,               \
      maosd_reply_enqueue)                                                     \
    X(CLAIM, "claim", maosd_check_claim, maosd_stage_claim, maosd_reply_claim) \
    X(ACK, "ack", maosd_check_ack, maosd_stage_ack, maosd_reply_ack)           \
    X(NACK, "nack", maosd_check_nack, maosd_stage_nack, maosd_reply_nack)      \
    X(EXTEND, "extend", maosd_check_extend, maosd_stage_extend,                \
      maosd_reply_extend)                                                      \
    X(TASK_RELEASE, "release", maosd_check_task_release,                       \
      maosd_stage_task_release, maosd_reply_task_release)                      \
    X(DEAD_RETRY, "dead_retry", maosd_check_dead_retry,                        \
      maosd_stage_dead_retry, maosd_reply_dead_retry)                          \
    X(DEAD_PURGE, "dead_purge", maosd_check_none,                              \
      maosd_stage_dead_purge, maosd_reply_dead_purge)                          \
    X(QUEUE_TICK, "queue_tick", maosd_check_none, maosd_stage_queue_tick,      \
      maosd_reply_own)                                                         \
    X(QUEUE_UNBIND, "queue_unbind", maosd_check_none, maosd_stage_queue_unbind, \
      maosd_reply_own)                                                         \
    X(BACKUP, "backup", maosd_check_backup, maosd_stage_backup,                \
      maosd_reply_backup)                                                      \
    X(STREAM_META, "stream_meta", maosd_check_stream_meta,                     \
      maosd_stage_stream_meta, maosd_reply_stream_meta)                        \
    X(RETAIN, "retain", maosd_check_none, maosd_stage_retain,                  \
      maosd_reply_retain)                                                      \
    X(CHAIN, "chain", maosd_check_none, maosd_stage_chain, maosd_reply_own)    \
    X(TOKEN_PUT, "token_put", maosd_check_token_put, maosd_stage_token_put,    \
      maosd_reply_token_put)                                                   \
    X(TOKEN_DELETE, "token_delete", maosd_check_token_delete,                  \
      maosd_stage_token_delete, maosd_reply_token_delete)

/* proto's items (MAOS_ITEM_*) and maosd's own (MAOSD_ITEM_*) */
enum {
    MAOSD_ITEM_APPEND = MAOS_ITEM_APPEND,
    MAOSD_ITEM_CHECKPOINT = MAOS_ITEM_CHECKPOINT,
    MAOSD_ITEM_PUT = MAOS_ITEM_PUT,
    MAOSD_ITEM_DELETE = MAOS_ITEM_DELETE,
    MAOSD_ITEM_ENQUEUE = MAOS_ITEM_ENQUEUE,
    MAOSD_ITEM_CLAIM = MAOS_ITEM_CLAIM,
    MAOSD_ITEM_ACK = MAOS_ITEM_ACK,
    MAOSD_ITEM_NACK = MAOS_ITEM_NACK,
    MAOSD_ITEM_EXTEND = MAOS_ITEM_EXTEND,
    MAOSD_ITEM_TASK_RELEASE = MAOS_ITEM_TASK_RELEASE,
    MAOSD_ITEM_DEAD_RETRY = MAOS_ITEM_DEAD_RETRY,
    MAOSD_ITEM_DEAD_PURGE = MAOS_ITEM_DEAD_PURGE,
};
_Static_assert((int)MAOS_ITEM__WIRE_END <= (int)MAOSD_ITEM_RELEASE,
               "maosd's own item kinds come after the wire's");

static const maosd_wkind kinds[MAOSD_ITEM__END] = {
#define KIND_ROW_(e, n, c, s, r) [MAOSD_ITEM_##e] = {n, c, s, r},
    WRITE_KINDS(KIND_ROW_)
#undef KIND_ROW_
};

const maosd_wkind *maosd_wkind_of(int item_kind)
{
    if (item_kind <= 0 || (size_t)item_kind >= sizeof kinds / sizeof kinds[0] ||
        !kinds[item_kind].check)
        return NULL;
    return &kinds[item_kind];
}

struct maosd_commit {
    maosd_server *srv;
    maosd_store *store;
    maosd_headfile *headfile;        /* commit thread only */
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
    atomic_uint_fast64_t write_start_ns; /* CLOCK_MONOTONIC at the start of the
                                          * group's storage write; 0 outside */
#ifdef MAOS_FAULT_INJECTION
    const char *stall_gate;  /* MAOS_FAULT_STALL_GATE (read at start) */
#endif
    uint8_t head_hash[MAOS_HASH_BYTES]; /* its record's hash (under mu) */
    /* loop thread only */
    struct {
        maosd_listener_fn fn;
        void *arg;
    } listeners[MAOSD_MAX_LISTENERS];
    int n_listeners;
    int kicked;                      /* a waiting claim was cancelled */
    /* What the commit thread waits for on cv (under mu), so that a submit
     * wakes it only when that is there: COMMIT_BUSY not waiting (nothing
     * to signal), COMMIT_IDLE any request, COMMIT_GATHERING the last
     * group's count of them (see "Gathering"). */
    enum { COMMIT_BUSY, COMMIT_IDLE, COMMIT_GATHERING } waits;
    /* commit thread only */
    maosd_wreq *parked_head, *parked_tail; /* waiting claims, by arrival */
    maosd_wstate st;                 /* pending state */
    maosd_wctx x;
    uint64_t last_group;     /* requests in the last group */
    uint64_t last_write_us;  /* duration of the last storage write */
    int gather;              /* 1 with sync durability */
    unsigned gather_misses;  /* waits in a row that brought no request */
    unsigned gather_skipped; /* waits skipped since then */
    uint64_t space_checked_ns; /* free space (space_short): when last read */
    uint64_t space_avail;      /* bytes available then */
};

int64_t maosd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- requests ------------------------------------------------------------------ */

maosd_wreq *maosd_wreq_new(maos_request *req, char **frame, size_t frame_len)
{
    size_t events = 0;
    for (uint32_t i = 0; i < req->n_appends; i++)
        events += req->appends[i].n_events;
    maosd_wreq *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->out = calloc(req->n_items ? req->n_items : 1, sizeof(*w->out));
    w->ids = malloc(16 * (events ? events : 1));
    if (!w->out || !w->ids) {
        free(w->out);
        free(w->ids);
        free(w);
        return NULL;
    }
    w->req = *req;
    w->n_events = events;
    req->mem_ = NULL;
    w->frame = *frame;
    w->frame_len = frame_len;
    *frame = NULL;
    w->index = -1;
    return w;
}

maosd_wreq *maosd_own_item(int kind, uint64_t position)
{
    maos_request req;
    memset(&req, 0, sizeof(req));
    req.op = MAOS_OP_NONE;
    req.items = calloc(1, sizeof(*req.items));
    char *frame = malloc(1);
    maosd_wreq *w = req.items && frame ? maosd_wreq_new(&req, &frame, 0) : NULL;
    if (!w) {
        free(req.items);
        free(frame);
        return NULL;
    }
    w->req.n_items = 1;
    w->items_owned = 1;
    w->req.items[0].kind = kind;
    w->req.items[0].position = position;
    return w;
}

/* The reasons of refused items (append_batch). */
static void free_refusals(maosd_wreq *w)
{
    for (uint32_t i = 0; i < w->req.n_items; i++) {
        free(w->out[i].refused_why);
        w->out[i].refused_why = NULL;
    }
}

void maosd_wreq_free(maosd_wreq *w)
{
    if (!w)
        return;
    if (w->out)
        free_refusals(w);
    if (w->items_owned)
        free(w->req.items);
    maos_request_free(&w->req);
    msgpack_sbuffer_destroy(&w->recs);
    msgpack_sbuffer_destroy(&w->current);
    free(w->frame);
    free(w->out);
    free(w->ids);
    free(w->changes);
    free(w->agent_mem);
    free(w->doc_mem);
    free(w->why);
    msgpack_sbuffer_destroy(&w->qout);
    free(w->qready);
    free(w);
}

void maosd_wreq_reset(maosd_wreq *w)
{
    free_refusals(w);
    free(w->why);
    w->why = NULL;
    w->code = 0;
    w->has_actual = 0;
    w->current.size = 0;
    w->index = -1;
    memset(w->out, 0, (w->req.n_items ? w->req.n_items : 1) * sizeof(*w->out));
    w->recs.size = 0;
    w->n_recs = 0;
    w->last_pos = 0;
    w->n_changes = 0;
    w->q_touched = 0;
    w->qout.size = 0;
    w->n_qready = 0;
}

/* ---- helpers for the kinds (commit thread) ------------------------------------------ */

int maosd_wfail(maosd_wreq *w, int code, int64_t index, const char *fmt, ...)
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

int maosd_wx_get(maosd_wctx *x, maosd_cf cf, const char *k, size_t klen,
                 size_t *vlen)
{
    return maosd_batch_get_buf(x->batch, cf, k, klen, &x->getbuf, &x->getcap, vlen);
}

int maosd_wx_stream_head(maosd_wctx *x, maos_slice stream, int *exists,
                         uint64_t *head)
{
    char k[MAOSD_KEY_MAX], v[16];
    size_t vlen;
    int rc = maosd_batch_get(x->batch, MAOSD_CF_STREAMS, k,
                             maosd_key_head(k, stream), v, sizeof(v), &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        *exists = 0;
        *head = 0;
        return 0;
    }
    if (rc)
        return rc;
    if (vlen != 16)
        return maosd_store_corrupt("the head of stream %.*s (streams 'h' key) is %zu "
                                   "bytes, want 16", (int)stream.len, stream.ptr, vlen);
    *exists = 1;
    *head = maosd_get_u64(v);
    return 0;
}

/* 10 random bytes from the pool: one getrandom per 400 ids, not per id. */
static const uint8_t *rand10(maosd_wctx *x)
{
    if (x->rnd_used + 10 > sizeof(x->rnd)) {
        randombytes_buf(x->rnd, sizeof(x->rnd));
        x->rnd_used = 0;
    }
    x->rnd_used += 10;
    return x->rnd + x->rnd_used - 10;
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

int maosd_wx_event(maosd_wctx *x, maosd_wreq *w, maos_slice stream,
                   uint64_t version, maos_slice type, const uint8_t *id,
                   uint8_t *id_out, uint32_t at, uint32_t of, maos_slice data,
                   maos_slice meta, uint64_t *pos_out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->recs, msgpack_sbuffer_write);
    uint64_t pos = x->st->log_pos + 1;
    uint8_t fresh[16];
    int indexed = 1; /* an ids entry: the id does not name its position */
    if (!id) {
        uuidv7(fresh, x->now, rand10(x));
        if (pos < MAOSD_ID_POS_LIMIT) {
            maosd_id_name_position(fresh, pos);
            indexed = 0;
        }
        id = fresh;
    }
    if (id_out)
        memcpy(id_out, id, 16);
    size_t off = w->recs.size;
    if (maos_enc_record(&pk, pos, x->now, version, stream, type, id,
                        x->st->log_hash, data, meta))
        return MAOS_ENOMEM;
    const char *rec = w->recs.data + off;
    size_t rlen = w->recs.size - off;
    x->st->log_pos = pos;
    crypto_generichash(x->st->log_hash, MAOS_HASH_BYTES, (const unsigned char *)rec,
                       rlen, NULL, 0);
    char k[MAOSD_KEY_MAX], pv[MAOSD_ID_VALUE_LEN];
    maosd_put_u64(pv, pos);
    maosd_put_u32(pv + 8, at);
    maosd_put_u32(pv + 12, of);
    maosd_batch_put(x->batch, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos), rec, rlen);
    if (indexed)
        maosd_batch_put(x->batch, MAOSD_CF_IDS, (const char *)id, 16, pv,
                        MAOSD_ID_VALUE_LEN);
    w->n_recs++;
    w->last_pos = pos;
    if (pos_out)
        *pos_out = pos;
    return 0;
}

/* An append right after one of the same stream, at the next version and
 * position, extends that append's index entry (one entry, one key written
 * for a run of small appends): the entry still covers consecutive versions
 * at consecutive positions, as keys.h requires. */
void maosd_wx_stream_appended(maosd_wctx *x, maos_slice stream, uint64_t first,
                              uint64_t pos, uint32_t count)
{
    char k[MAOSD_KEY_MAX], v[16];
    if (x->run_valid && x->run_len == stream.len &&
        !memcmp(x->run_stream, stream.ptr, stream.len) &&
        x->run_first + x->run_count == first && x->run_pos + x->run_count == pos &&
        x->run_count <= UINT32_MAX - count) {
        x->run_count += count;
    } else {
        x->run_valid = stream.len <= sizeof x->run_stream; /* names are shorter */
        x->run_len = stream.len;
        if (x->run_valid)
            memcpy(x->run_stream, stream.ptr, stream.len);
        x->run_first = first;
        x->run_pos = pos;
        x->run_count = count;
    }
    maosd_sindex_value(v, x->run_pos, x->run_count);
    maosd_batch_put(x->batch, MAOSD_CF_STREAMS, k, maosd_key_version(k, stream, x->run_first),
                    v, MAOSD_SINDEX_VALUE_LEN);
    maosd_put_u64(v, first + count - 1);
    maosd_put_u64(v + 8, pos + count - 1);
    maosd_batch_put(x->batch, MAOSD_CF_STREAMS, k, maosd_key_head(k, stream), v, 16);
}

/* A small fixed buffer for msgpack_packer. */
typedef struct fixbuf {
    char buf[16 + MAOS_KEY_MAX];
    size_t used;
} fixbuf;

static int fixbuf_write(void *data, const char *b, size_t n)
{
    fixbuf *f = data;
    if (f->used + n > sizeof(f->buf))
        return -1;
    memcpy(f->buf + f->used, b, n);
    f->used += n;
    return 0;
}

void maosd_wx_uuid(maosd_wctx *x, uint8_t id[16])
{
    uuidv7(id, x->now, rand10(x));
}

size_t maosd_prefix_end(char *out, const char *prefix, size_t plen)
{
    memcpy(out, prefix, plen);
    while (plen && (uint8_t)out[plen - 1] == 0xff)
        plen--;
    if (plen)
        out[plen - 1]++;
    return plen;
}

maosd_iter *maosd_wx_iter(maosd_wctx *x, maosd_cf cf, const char *prefix, size_t plen)
{
    char end[MAOSD_KEY_MAX];
    if (plen > sizeof(end))
        return NULL;
    size_t elen = maosd_prefix_end(end, prefix, plen);
    return maosd_batch_iter_new(x->batch, cf, elen ? end : NULL, elen);
}

int maosd_wx_record(maosd_wctx *x, maosd_wreq *w, maos_slice stream,
                    maos_slice type, maos_slice data, uint64_t *pos)
{
    int exists;
    uint64_t head;
    int rc = maosd_wx_stream_head(x, stream, &exists, &head);
    if (rc)
        return rc;
    uint64_t version = exists ? head + 1 : 0;
    /* meta {agent}: the writer's registered agent, as on its appends */
    fixbuf meta = {.used = 0};
    if (w->who.agent.len) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &meta, fixbuf_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str(&pk, 5);
        msgpack_pack_str_body(&pk, "agent", 5);
        msgpack_pack_str(&pk, w->who.agent.len);
        msgpack_pack_str_body(&pk, w->who.agent.ptr, w->who.agent.len);
    }
    size_t mlen = meta.used; /* fits: at most 1 + 6 + 3 + 512 bytes */
    rc = maosd_wx_event(x, w, stream, version, type, NULL, NULL, 0, 1, data,
                        (maos_slice){meta.buf, (uint32_t)mlen}, pos);
    if (!rc)
        maosd_wx_stream_appended(x, stream, version, *pos, 1);
    return rc;
}

/* ---- one request, one group ------------------------------------------------------- */

/* Stage items [from, to) of w (those checked as writing something) as one
 * unit: on a failure nothing of them stays and w carries the error.
 * 1 staged, 0 failed. */
static int stage_items(maosd_commit *cm, maosd_wreq *w, uint32_t from, uint32_t to)
{
    maosd_wctx *x = &cm->x;
    maosd_wstate saved = cm->st;
    size_t recs0 = w->recs.size;
    uint32_t nrecs0 = w->n_recs, nchanges0 = w->n_changes;
    uint64_t last0 = w->last_pos;
    maosd_batch_mark(x->batch);
    if (!w->recs.alloc) { /* sized to need, not msgpack's 8 KiB first step */
        size_t cap = maosd_wreq_records_bound(&w->req, w->frame_len);
        w->recs.data = malloc(cap);
        w->recs.alloc = w->recs.data ? cap : 0;
    }
    for (uint32_t i = from; i < to; i++) {
        if (w->out[i].nothing)
            continue;
        if (w->req.items[i].kind != MAOS_ITEM_APPEND)
            x->run_valid = 0; /* it may change index entries (retention) */
        int rc = maosd_wkind_of(w->req.items[i].kind)->stage(x, w, i);
        if (rc) {
            x->run_valid = 0; /* its entry may be rolled back */
            maosd_batch_rollback(x->batch);
            maosd_queue_cache_reset(x);
            cm->st = saved;
            w->recs.size = recs0;
            w->n_recs = nrecs0;
            w->n_changes = nchanges0;
            w->last_pos = last0;
            if (rc == MAOS_ENOMEM) /* a client-side code: not for the wire */
                maosd_wfail(w, MAOS_EOVERLOADED, -1,
                            "out of memory while staging the write");
            else
                maosd_wfail(w, rc, -1, "storage failure while staging the write: %s",
                            maosd_store_errmsg());
            return 0;
        }
    }
    return 1;
}

/* append_batch: an item's refusal moves from the request to the item, and
 * the request goes on with its next item. */
static void refuse_item(maosd_wreq *w, uint32_t i)
{
    maosd_item_out *o = &w->out[i];
    o->refused = w->code;
    o->refused_why = w->why;
    o->has_actual = w->has_actual;
    o->actual = w->actual;
    w->code = 0;
    w->why = NULL;
    w->has_actual = 0;
    w->index = -1;
}

/*
 * append_batch (PROTOCOL.md): each item checked and staged before the
 * next is checked, so a later append to the same stream sees the earlier
 * one, as a later request of the group does; a refused item leaves no
 * trace and does not stop the others.  1 when something was staged.
 */
static int process_each(maosd_commit *cm, maosd_wreq *w)
{
    maosd_wctx *x = &cm->x;
    int staged = 0;
    for (uint32_t i = 0; i < w->req.n_items; i++) {
        const maosd_wkind *k = maosd_wkind_of(w->req.items[i].kind);
        int rc = k ? k->check(x, w, i)
                   : maosd_wfail(w, MAOS_EINTERNAL, -1, "unknown write kind %d",
                                 w->req.items[i].kind);
        if (rc == 0 && !stage_items(cm, w, i, i + 1))
            rc = w->code;
        if (rc < 0)
            refuse_item(w, i);
        else if (rc == 1)
            w->out[i].nothing = 1;
        else
            staged = 1;
    }
    return staged;
}

/* Check, then stage, every item of w (all or nothing, but append_batch's
 * items each on their own).  Returns 1 if it put writes in the batch. */
static int process_request(maosd_commit *cm, maosd_wreq *w)
{
    maosd_wctx *x = &cm->x;
    uint32_t n = w->req.n_items, writes = 0;
    size_t ids = 0;
    w->index = -1;
    for (uint32_t i = 0; i < n; i++) {
        w->out[i].ids_off = ids;
        if (w->req.items[i].kind == MAOS_ITEM_APPEND)
            ids += w->req.items[i].append->n_events;
    }
    if (w->req.op == MAOS_OP_APPEND_BATCH)
        return process_each(cm, w);
    for (uint32_t i = 0; i < n; i++) {
        const maosd_wkind *k = maosd_wkind_of(w->req.items[i].kind);
        if (!k) {
            maosd_wfail(w, MAOS_EINTERNAL, -1, "unknown write kind %d",
                        w->req.items[i].kind);
            return 0;
        }
        int rc = k->check(x, w, i);
        if (rc < 0)
            return 0;
        w->out[i].nothing = rc == 1;
        writes += rc == 0;
    }
    if (!writes)
        return 0;
    /* An idempotent re-send of part of a txn cannot be told from a
     * different txn that reuses some ids: all or nothing. */
    for (uint32_t i = 0; i < n; i++)
        if (w->out[i].nothing && w->req.items[i].kind == MAOS_ITEM_APPEND) {
            maosd_wfail(w, MAOS_ECONFLICT, -1,
                        "some appends of this txn are already stored and some are not");
            return 0;
        }
    return stage_items(cm, w, 0, n);
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
    maosd_head h = {.position = cm->st.log_pos, .sync = cm->srv->cfg->sync};
    memcpy(h.hash, cm->st.log_hash, sizeof(h.hash));
    if (maosd_headfile_write(cm->headfile, &h) == 0)
        return;
    maosd_log(MAOSD_LOG_ERROR, "cannot record the acknowledged head in %s: %s; "
              "store is now read-only", MAOSD_HEAD_FILE,
              strerror(maosd_headfile_errno(cm->headfile)));
    maosd_store_set_read_only(cm->store);
}

/* ---- waiting claims (see maosd_commit_cancel) ------------------------------------ */

/* 1 when w is a waiting claim that found nothing and should park. */
static int wants_park(const maosd_wreq *w)
{
    return w->req.n_items == 1 && w->req.items[0].kind == MAOS_ITEM_CLAIM && !w->code &&
           !w->out[0].q_n && w->req.items[0].wait_ms && !atomic_load(&w->q_cancel);
}

static int claims_any(const maosd_wreq *w, const maosd_wreq *list)
{
    const maos_item_in *it = &w->req.items[0];
    for (const maosd_wreq *r = list; r; r = r->next)
        for (uint32_t i = 0; i < r->n_qready; i++)
            for (uint32_t j = 0; j < it->n_queues; j++)
                if (it->queues[j].len == r->qready[i].len &&
                    !memcmp(it->queues[j].ptr, r->qready[i].queue, r->qready[i].len))
                    return 1;
    return 0;
}

/*
 * After the group's requests: the claims of the group that found nothing
 * join the parked ones (behind them: arrival order), then every parked
 * claim on a queue that got ready tasks in this group tries again, in the
 * same batch.  The served ones are appended to the group (*tail).  Returns
 * how many of them staged writes.
 */
static uint64_t park_and_serve(maosd_commit *cm, maosd_wreq **list)
{
    maosd_wreq **pp = list, *w;
    int any_ready = 0;
    while ((w = *pp)) {
        any_ready |= w->n_qready != 0;
        if (wants_park(w)) {
            *pp = w->next;
            w->next = NULL;
            if (cm->parked_tail)
                cm->parked_tail->next = w;
            else
                cm->parked_head = w;
            cm->parked_tail = w;
        } else {
            pp = &w->next;
        }
    }
    if (!any_ready)
        return 0;
    uint64_t staged = 0;
    maosd_wreq **tail = pp, *prev = NULL;
    for (maosd_wreq *p = cm->parked_head, *next; p; p = next) {
        next = p->next;
        /* a cancelled wait (its connection closed, its time ran out) is
         * not served: it goes back empty (take_cancelled) */
        if (atomic_load(&p->q_cancel) || !claims_any(p, *list)) {
            prev = p;
            continue;
        }
        p->next = NULL;
        maosd_wreq_reset(p);
        staged += (uint64_t)process_request(cm, p);
        if (wants_park(p)) { /* still nothing (others were faster) */
            p->next = next;
            prev = p;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            cm->parked_head = next;
        if (cm->parked_tail == p)
            cm->parked_tail = prev;
        *tail = p;
        tail = &p->next;
    }
    return staged;
}

/* Parked claims whose wait was cancelled (all of them when stopping),
 * taken off the parked list into a list of their own. */
static maosd_wreq *take_cancelled(maosd_commit *cm, int all)
{
    maosd_wreq *out = NULL, **tail = &out, *prev = NULL;
    for (maosd_wreq *p = cm->parked_head, *next; p; p = next) {
        next = p->next;
        if (!all && !atomic_load(&p->q_cancel)) {
            prev = p;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            cm->parked_head = next;
        if (cm->parked_tail == p)
            cm->parked_tail = prev;
        p->next = NULL;
        *tail = p;
        tail = &p->next;
    }
    return out;
}

#ifdef MAOS_FAULT_INJECTION
/* maosd-fault, MAOS_FAULT_STALL_GATE=path: while the file exists, the
 * commit thread waits inside the group's write (at most a minute), as a
 * wedged disk would hold it: the watchdog test. */
static void fault_stall_gate(const maosd_commit *cm)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; cm->stall_gate && i < 60000 && access(cm->stall_gate, F_OK) == 0; i++)
        nanosleep(&ms, NULL);
}
#endif

/*
 * Disk full (docs/ARCHITECTURE.md "Disk full"): 1 when the data
 * directory's file system has less than min_free_mb available, checked
 * before a group writes anything, so a full disk refuses writes with
 * NO_SPACE instead of failing RocksDB's flushes (a background error
 * that only a reopen clears).  statvfs at most every SPACE_CHECK_NS
 * while there is plenty, at every group when it is within 4x the reserve.
 * Entering and leaving the state is logged once each; writes resume at
 * the first group after space is freed.
 */
#define SPACE_CHECK_NS (100 * 1000000ull)

static int space_short(maosd_commit *cm, uint64_t *avail, uint64_t *need)
{
    maosd_server *srv = cm->srv;
    *need = atomic_load_explicit(&srv->min_free_bytes, memory_order_relaxed);
    uint64_t now = uv_hrtime();
    if (!*need) {
        atomic_store(&srv->no_space, 0);
        return 0;
    }
    if (!cm->space_checked_ns || cm->space_avail < 4 * *need ||
        now - cm->space_checked_ns >= SPACE_CHECK_NS) {
        struct statvfs v;
        if (statvfs(srv->cfg->data_dir, &v) == 0) {
            cm->space_avail = (uint64_t)v.f_bavail * v.f_frsize;
        } else if (!cm->space_checked_ns) { /* never measured: not short */
            maosd_log(MAOSD_LOG_WARN, "cannot read the free space of %s: %s; the "
                      "min_free_mb reserve is not enforced", srv->cfg->data_dir,
                      strerror(errno));
            cm->space_avail = UINT64_MAX;
        }
        cm->space_checked_ns = now;
    }
    *avail = cm->space_avail;
    int short_ = cm->space_avail < *need;
    if (short_ != atomic_load(&srv->no_space)) { /* only this thread writes it */
        atomic_store(&srv->no_space, short_);
        if (short_)
            maosd_log(MAOSD_LOG_ERROR, "%s has %llu MB free, below min_free_mb %llu: "
                      "writes are refused (NO_SPACE) until space is freed; reads go on",
                      srv->cfg->data_dir, (unsigned long long)(*avail >> 20),
                      (unsigned long long)(*need >> 20));
        else
            maosd_log(MAOSD_LOG_WARN, "%s has %llu MB free again: writes resume",
                      srv->cfg->data_dir, (unsigned long long)(*avail >> 20));
    }
    return short_;
}

static void write_group(maosd_commit *cm, maosd_wreq **listp)
{
    maosd_wreq *list = *listp;
    maosd_counters *ct = &cm->srv->counters;
    maosd_wstate durable = cm->st;
    int64_t now = maosd_now_us();
    if (now < cm->st.last_time)
        now = cm->st.last_time;
    cm->x.now = now;
    uint64_t nreq = 0, staged = 0;

    maosd_batch_clear(cm->x.batch);
    cm->x.run_valid = 0; /* index entries are extended within a group only */
    uint64_t avail = 0, need = 0;
    int full = space_short(cm, &avail, &need);
    for (maosd_wreq *w = list; w; w = w->next) {
        nreq++;
        /* maosd's own writes (queue timers, releases of closed connections'
         * entries) are small and keep the daemon's state right: the reserve
         * is for them too */
        if (full && w->conn && maosd_store_state(cm->store) == MAOSD_STORE_OK) {
            maosd_wfail(w, MAOS_ENO_SPACE, -1,
                        "%s has %llu MB free, below min_free_mb %llu: writes are refused "
                        "until space is freed (reads go on); nothing of this request "
                        "was written", cm->srv->cfg->data_dir,
                        (unsigned long long)(avail >> 20), (unsigned long long)(need >> 20));
            continue;
        }
        if (maosd_store_state(cm->store) != MAOSD_STORE_OK) {
            maosd_wfail(w, MAOS_EREAD_ONLY, -1, "%s", maosd_read_only_why(cm->srv));
            continue;
        }
        staged += (uint64_t)process_request(cm, w);
    }
    staged += park_and_serve(cm, listp);
    list = *listp;
    if (!staged || !maosd_batch_count(cm->x.batch))
        return; /* nothing to write (say, claims that found nothing) */

    char meta[8 + MAOS_HASH_BYTES];
    maosd_put_u64(meta, cm->st.log_pos);
    memcpy(meta + 8, cm->st.log_hash, MAOS_HASH_BYTES);
    maosd_batch_put(cm->x.batch, MAOSD_CF_META, MAOSD_META_LOG_HEAD,
                    strlen(MAOSD_META_LOG_HEAD), meta, sizeof(meta));

    struct timespec t0, t1;
    uint64_t lap = maosd_store_journal_lap(cm->store);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    atomic_store(&cm->write_start_ns, (uint64_t)t0.tv_sec * 1000000000u + (uint64_t)t0.tv_nsec);
#ifdef MAOS_FAULT_INJECTION
    fault_stall_gate(cm);
#endif
    int rc = maosd_store_write(cm->store, cm->x.batch);
    atomic_store(&cm->write_start_ns, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cm->last_write_us = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                                   (t1.tv_nsec - t0.tv_nsec) / 1000);
    atomic_fetch_add(&ct->commit_write_us, cm->last_write_us);
    maosd_hist_observe(&cm->srv->commit_write_hist, cm->last_write_us);
    if (rc) {
        maosd_log(MAOSD_LOG_ERROR,
                  "commit of %llu requests failed (%s); store is now read-only",
                  (unsigned long long)nreq, maosd_store_last_error(cm->store));
        for (maosd_wreq *w = list; w; w = w->next)
            if (w->code) /* its conflict may be with this group's lost writes */
                w->current.size = 0;
            else if (rc == MAOS_EOUTCOME_UNKNOWN)
                maosd_wfail(w, MAOS_EOUTCOME_UNKNOWN, -1,
                            "the storage write of this request's group failed: its "
                            "outcome is unknown (after a restart it may be there); "
                            "the store is read-only until maosd restarts; retry "
                            "with the same event ids");
            else
                maosd_wfail(w, rc == MAOS_EREAD_ONLY ? rc : MAOS_EINTERNAL, -1,
                            "the storage write of this request's group was refused "
                            "before anything was written (%s); the store is "
                            "read-only until maosd restarts",
                            maosd_store_last_error(cm->store)
                                ? maosd_store_last_error(cm->store) : "no detail");
        cm->st = durable;
        maosd_queue_cache_reset(&cm->x);
        atomic_fetch_add(&ct->commit_errors, 1);
        return;
    }
    cm->st.last_time = now;
    record_head(cm);
    if (maosd_store_journal_lap(cm->store) != lap) /* the write ended a lap */
        maosd_log(MAOSD_LOG_INFO, "journal lap %llu started: memtables flushed, this "
                  "group's write took %llu us",
                  (unsigned long long)maosd_store_journal_lap(cm->store),
                  (unsigned long long)cm->last_write_us);
    for (maosd_wreq *w = list; w; w = w->next)
        if (!w->code && w->q_touched) { /* the loop arms its timer with it */
            atomic_store(&cm->srv->queue_next_due, maosd_queue_next_due(&cm->x));
            break;
        }
    pthread_mutex_lock(&cm->mu);
    memcpy(cm->head_hash, cm->st.log_hash, sizeof(cm->head_hash));
    atomic_store(&cm->head, cm->st.log_pos);
    pthread_mutex_unlock(&cm->mu);
    atomic_store(&ct->head_position, cm->st.log_pos);
    atomic_fetch_add(&ct->commit_groups, 1);
    atomic_fetch_add(&ct->commit_requests, nreq);
    atomic_fetch_add(&ct->commit_events, cm->st.log_pos - durable.log_pos);
    if (nreq > atomic_load(&ct->commit_max_group))
        atomic_store(&ct->commit_max_group, nreq);
}

/* One group: its writes, then its backups (backup.c), which hold the group
 * and every one before it: taken here, between two groups, by the one
 * writer, nothing can slip in. */
static void commit_group(maosd_commit *cm, maosd_wreq **listp)
{
    write_group(cm, listp);
    for (maosd_wreq *w = *listp; w; w = w->next) {
        if (w->code || w->req.n_items != 1 || w->req.items[0].kind != MAOSD_ITEM_BACKUP)
            continue;
        if (maosd_store_state(cm->store) != MAOSD_STORE_OK) {
            maosd_wfail(w, MAOS_EREAD_ONLY, -1, "%s", maosd_read_only_why(cm->srv));
            continue;
        }
        maosd_head h = {.position = cm->st.log_pos, .sync = cm->srv->cfg->sync};
        memcpy(h.hash, cm->st.log_hash, sizeof(h.hash));
        maosd_backup_take(cm->store, cm->srv->cfg->data_dir, &h, w);
    }
}

/* With cm->mu held and requests queued: wait briefly for the writers of
 * the last group to come back (see "Gathering" at the top). */
static void gather(maosd_commit *cm)
{
    if (!cm->gather || cm->in_count >= cm->last_group || cm->stop)
        return;
    /* Waits that brought nobody only delay the ones queued (a producer
     * alone, a waiting claim served by an enqueue): after GATHER_MISSES of
     * them in a row, stop waiting, trying again every GATHER_PROBE groups. */
    if (cm->gather_misses >= GATHER_MISSES && ++cm->gather_skipped % GATHER_PROBE)
        return;
    uint64_t before = cm->in_count;
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
    cm->waits = COMMIT_GATHERING;
    while (cm->in_count < cm->last_group && !cm->stop)
        if (pthread_cond_timedwait(&cm->cv, &cm->mu, &dl))
            break; /* timed out */
    cm->waits = COMMIT_BUSY;
    if (cm->in_count > before)
        cm->gather_misses = 0;
    else if (cm->gather_misses < GATHER_MISSES)
        cm->gather_misses++;
}

static void *commit_main(void *arg)
{
    maosd_commit *cm = arg;
    maosd_store_thread_init();
    for (;;) {
        pthread_mutex_lock(&cm->mu);
        cm->waits = COMMIT_IDLE;
        while (!cm->in_head && !cm->stop && !cm->kicked)
            pthread_cond_wait(&cm->cv, &cm->mu);
        cm->waits = COMMIT_BUSY;
        cm->kicked = 0;
        if (cm->in_head)
            gather(cm);
        /* Take the queue, up to GROUP_MAX_BYTES and GROUP_MAX_EVENTS of it. */
        maosd_wreq *list = cm->in_head, *last = NULL;
        uint64_t n = 0;
        size_t bytes = 0, events = 0;
        for (maosd_wreq *w = list;
             w && (!n || (bytes + w->cost <= GROUP_MAX_BYTES &&
                          events + w->n_events <= GROUP_MAX_EVENTS));
             w = w->next) {
            bytes += w->cost;
            events += w->n_events;
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
        int stop = cm->stop && !list;
        pthread_mutex_unlock(&cm->mu);
        if (list)
            commit_group(cm, &list);
        /* waits that ended come back, after the group */
        maosd_wreq *back = take_cancelled(cm, stop), **end = &list;
        while (*end)
            end = &(*end)->next;
        *end = back;
        if (!list) {
            if (stop)
                break;
            continue;
        }
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
        for (int i = 0; i < cm->n_listeners; i++)
            cm->listeners[i].fn(cm->srv, cm->listeners[i].arg, list);
    while (list) {
        maosd_wreq *next = list->next;
        list->next = NULL;
        atomic_fetch_sub(&cm->in_flight, 1);
        if (list->done)
            list->done(cm->srv, list);
        else
            maosd_write_reply(cm->srv, list);
        list = next;
    }
}

static void free_commit(uv_handle_t *h);

int maosd_commit_listen(maosd_commit *cm, maosd_listener_fn fn, void *arg)
{
    if (cm->n_listeners == MAOSD_MAX_LISTENERS)
        return MAOS_ELIMIT;
    cm->listeners[cm->n_listeners].fn = fn;
    cm->listeners[cm->n_listeners].arg = arg;
    cm->n_listeners++;
    return 0;
}

int maosd_commit_start(maosd_server *srv, const maosd_head *head,
                       int64_t last_time, maosd_commit **out)
{
    maosd_commit *cm = calloc(1, sizeof(*cm));
    if (!cm)
        return MAOS_ENOMEM;
    cm->srv = srv;
    cm->store = srv->store;
    cm->headfile = srv->headfile;
    cm->x.srv = srv;
    cm->x.st = &cm->st;
    cm->x.batch = maosd_batch_new(cm->store);
    if (!cm->x.batch) {
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
#ifdef MAOS_FAULT_INJECTION
    cm->stall_gate = getenv("MAOS_FAULT_STALL_GATE");
#endif
    cm->x.rnd_used = sizeof(cm->x.rnd); /* empty: filled on first use */
    cm->st.log_pos = head->position;
    memcpy(cm->st.log_hash, head->hash, sizeof(cm->st.log_hash));
    memcpy(cm->head_hash, head->hash, sizeof(cm->head_hash));
    cm->st.last_time = last_time;
    atomic_store(&cm->head, cm->st.log_pos);
    atomic_store(&srv->counters.head_position, cm->st.log_pos);
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
    /* Each wake-up of the commit thread is a context switch (and on a VM
     * an inter-processor interrupt): none while it writes (it takes the
     * queue when done), none for the arrivals a gathering wait still
     * waits past. */
    if (cm->waits == COMMIT_IDLE ||
        (cm->waits == COMMIT_GATHERING && cm->in_count >= cm->last_group))
        pthread_cond_signal(&cm->cv);
    pthread_mutex_unlock(&cm->mu);
}

void maosd_commit_cancel(maosd_commit *cm, maosd_wreq *w)
{
    atomic_store(&w->q_cancel, 1);
    pthread_mutex_lock(&cm->mu);
    cm->kicked = 1;
    pthread_cond_signal(&cm->cv);
    pthread_mutex_unlock(&cm->mu);
}

uint64_t maosd_commit_in_flight(const maosd_commit *cm)
{
    return atomic_load(&((maosd_commit *)cm)->in_flight);
}

uint64_t maosd_commit_write_age_us(const maosd_commit *cm)
{
    uint64_t start = atomic_load(&cm->write_start_ns);
    if (!start)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    return ns > start ? (ns - start) / 1000 : 0;
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
    maosd_queue_cache_free(&cm->x);
    maosd_batch_free(cm->x.batch);
    free(cm->x.getbuf);
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
