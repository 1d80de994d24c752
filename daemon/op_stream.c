/*
 * daemon/op_stream.c -- the event store ops: append and txn (queued to the
 * commit thread, answered from maosd_append_done), read (one stream),
 * read_all (the global log with filters) and streams (listing).
 *
 * Reads run on the loop thread in bounded slices: one reply carries at most
 * `limit` events and about REPLY_BUDGET bytes, and read_all examines at most
 * SCAN_BUDGET records per request; the reply's "next" says where to go on.
 * read_all with an exact stream walks that stream's index instead of the
 * log, so its cost follows the stream's length, not the log's.
 * Replies copy stored record bytes into the output buffer: no re-encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "maosd.h"

#define REPLY_BUDGET (1u << 20)
#define SCAN_BUDGET 20000

/* ---- append / txn --------------------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* Event ids must be unique within one request. */
static int check_unique_ids(maosd_call *call, uint8_t *scratch)
{
    const maos_request *req = call->req;
    size_t n = 0;
    for (uint32_t i = 0; i < req->n_appends; i++)
        for (uint32_t j = 0; j < req->appends[i].n_events; j++)
            if (req->appends[i].events[j].has_id)
                memcpy(scratch + 16 * n++, req->appends[i].events[j].id, 16);
    if (n < 2)
        return 0;
    qsort(scratch, n, 16, cmp_id);
    for (size_t k = 1; k < n; k++) {
        if (memcmp(scratch + 16 * (k - 1), scratch + 16 * k, 16) == 0) {
            char txt[37];
            maos_uuid_format(scratch + 16 * k, txt);
            snprintf(call->why, sizeof(call->why),
                     "event id %s appears twice in one request", txt);
            return MAOS_EBAD_REQUEST;
        }
    }
    return 0;
}

int maosd_op_append(maosd_call *call)
{
    maos_request *req = call->req;
    size_t total = 0;
    for (uint32_t i = 0; i < req->n_appends; i++)
        total += req->appends[i].n_events;

    maosd_wreq *w = calloc(1, sizeof(*w));
    if (w) {
        w->results = calloc(req->n_appends, sizeof(*w->results));
        w->ids = malloc(16 * total);
    }
    if (!w || !w->results || !w->ids) {
        maosd_wreq_free(w);
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    int rc = check_unique_ids(call, w->ids);
    if (rc) {
        maosd_wreq_free(w);
        return rc;
    }
    /* Move the request and its frame into the write request. */
    w->req = *req;
    req->mem_ = NULL;
    w->frame = call->frame;
    w->frame_len = call->frame_len;
    call->frame = NULL;
    w->conn = call->conn;
    w->index = -1;
    call->conn->refs++;
    maosd_conn_write_queued(call->conn, w->frame_len);
    maosd_commit_submit(call->srv->commit, w);
    return 0;
}

void maosd_append_done(maosd_server *srv, maosd_wreq *w)
{
    maosd_conn *c = w->conn;
    (void)srv;
    if (!c->closing) {
        if (w->code) {
            maosd_logf(MAOSD_LOG_DEBUG, "conn %llu rid %llu %s: %s: %s",
                       (unsigned long long)c->id, (unsigned long long)w->req.rid,
                       maos_op_name(w->req.op), maos_err_name(w->code), w->why);
            maosd_reply_error(c, w->req.rid, w->code, w->why, w->has_actual,
                              w->actual, w->index);
        } else {
            msgpack_packer pk;
            size_t mark = maosd_reply_begin(c, &pk);
            maos_enc_reply_append(&pk, w->req.rid, w->req.op == MAOS_OP_TXN,
                                  w->results, w->req.n_appends);
            maosd_reply_end(c, mark);
        }
    }
    maosd_conn_write_done(c, w->frame_len);
    maosd_conn_unref(c);
    maosd_wreq_free(w);
}

/* ---- reads ---------------------------------------------------------------- */

/* Bytes of records in one reply: about REPLY_BUDGET, and never so much that
 * the reply outgrows what clients accept (max_frame + MAOS_REPLY_SLACK);
 * the first record always goes in, whatever its size. */
static size_t reply_budget(const maosd_call *call)
{
    size_t b = call->srv->cfg->max_frame;
    return b < REPLY_BUDGET ? b : REPLY_BUDGET;
}

static int fits(size_t used, size_t more, uint32_t count, size_t budget)
{
    return count == 0 || used + more <= budget;
}

static int read_head(maosd_store *st, maos_slice stream, uint64_t *head)
{
    char k[MAOSD_KEY_MAX], v[16];
    size_t vlen;
    int rc = maosd_store_get(st, MAOSD_CF_STREAMS, k, maosd_key_head(k, stream), v,
                             sizeof(v), &vlen);
    if (rc)
        return rc;
    if (vlen != 16)
        return MAOS_EINTERNAL;
    *head = maosd_get_u64(v);
    return 0;
}

/* Undo a partly encoded reply and turn the failure into an error reply. */
static int drop_reply(maosd_call *call, size_t mark, int rc)
{
    call->conn->out.size = mark;
    if (rc == MAOS_ENOMEM)
        rc = MAOS_EOVERLOADED;
    if (rc == MAOS_ENOT_FOUND)
        rc = MAOS_EINTERNAL;
    snprintf(call->why, sizeof(call->why), "%s while reading",
             rc == MAOS_EOVERLOADED ? "out of memory" : "storage failure");
    return rc;
}

/*
 * Walk one stream's version index from version `from` (inclusive), forward
 * or backward, and reply with its records: op read (no filter; "next" is a
 * version) and read_all with an exact stream (filter; "next" a position).
 * The loop ends with the iterator on the first entry not returned, so
 * "next" comes from the index itself, even if the stream grew meanwhile.
 */
static int reply_from_index(maosd_call *call, maos_slice stream, uint64_t from,
                            const maos_filter *f)
{
    maos_request *req = call->req;
    maosd_conn *c = call->conn;
    maosd_store *st = call->srv->store;
    char k[MAOSD_KEY_MAX];
    size_t plen = 2 + stream.len; /* 'v' stream 0 */
    maosd_iter *it = maosd_iter_new(st, MAOSD_CF_STREAMS);
    if (!it)
        return MAOS_EOVERLOADED;
    size_t klen = maosd_key_version(k, stream, from);
    if (req->backward)
        maosd_iter_seek_prev(it, k, klen);
    else
        maosd_iter_seek(it, k, klen);

    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    maos_list_mark lm;
    int rc = maos_enc_list_begin(&c->out, req->rid, "events", &lm);
    size_t start = c->out.size, budget = reply_budget(call);
    uint32_t count = 0, scanned = 0;
    int more = 0;
    uint64_t next = 0;
    char *rec = NULL;
    while (!rc && maosd_iter_valid(it)) {
        size_t ilen, vlen, rlen;
        const char *ik = maosd_iter_key(it, &ilen);
        const char *iv = maosd_iter_value(it, &vlen);
        if (ilen != plen + 8 || memcmp(ik, k, plen) || vlen != 8)
            break;
        uint64_t pos = maosd_get_u64(iv);
        if (count == req->limit || scanned == SCAN_BUDGET) {
            more = 1;
            next = f ? pos : maosd_get_u64(ik + plen);
            break;
        }
        char ek[8];
        free(rec);
        rec = NULL;
        rc = maosd_store_get_alloc(st, MAOSD_CF_EVENTS, ek, maosd_key_event(ek, pos),
                                   &rec, &rlen);
        if (rc)
            break;
        if (!fits(c->out.size - start, rlen, count, budget)) {
            more = 1;
            next = f ? pos : maosd_get_u64(ik + plen);
            break;
        }
        int match = 1;
        if (f) {
            maos_record r;
            if (maos_record_decode(rec, rlen, &r)) {
                rc = MAOS_EINTERNAL;
                break;
            }
            if ((!req->backward && f->has_until && r.time > f->until) ||
                (req->backward && f->has_since && r.time < f->since))
                break; /* times never decrease along positions */
            match = maos_filter_match(f, &r);
        }
        if (match) {
            if (msgpack_sbuffer_write(&c->out, rec, rlen))
                rc = MAOS_ENOMEM;
            count++;
        }
        scanned++;
        if (req->backward)
            maosd_iter_prev(it);
        else
            maosd_iter_next(it);
    }
    free(rec);
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (!rc)
        rc = maos_enc_list_end(&c->out, &lm, count,
                               more ? MAOS_NEXT_UINT : MAOS_NEXT_NONE, next,
                               (maos_slice){0});
    if (rc)
        return drop_reply(call, mark, rc);
    maosd_reply_end(c, mark);
    return 0;
}

/* An empty page: {events: [], next: nil}. */
static int reply_empty(maosd_call *call)
{
    maosd_conn *c = call->conn;
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    maos_list_mark lm;
    int rc = maos_enc_list_begin(&c->out, call->req->rid, "events", &lm);
    if (!rc)
        rc = maos_enc_list_end(&c->out, &lm, 0, MAOS_NEXT_NONE, 0, (maos_slice){0});
    if (rc)
        return drop_reply(call, mark, rc);
    maosd_reply_end(c, mark);
    return 0;
}

int maosd_op_read(maosd_call *call)
{
    maos_request *req = call->req;
    uint64_t head;
    int rc = read_head(call->srv->store, req->stream, &head);
    if (rc == MAOS_ENOT_FOUND) {
        snprintf(call->why, sizeof(call->why), "stream %.*s not found",
                 (int)req->stream.len, req->stream.ptr);
        return rc;
    }
    if (rc)
        return rc;
    uint64_t from = req->has_from ? req->from : (req->backward ? head : 0);
    return reply_from_index(call, req->stream, from, NULL);
}

/* Position of a stream's version v (it exists: v <= head). */
static int version_position(maosd_store *st, maos_slice stream, uint64_t v,
                            uint64_t *pos)
{
    char k[MAOSD_KEY_MAX], val[8];
    size_t vlen;
    int rc = maosd_store_get(st, MAOSD_CF_STREAMS, k, maosd_key_version(k, stream, v),
                             val, sizeof(val), &vlen);
    if (rc)
        return rc == MAOS_ENOT_FOUND ? MAOS_EINTERNAL : rc;
    *pos = maosd_get_u64(val);
    return 0;
}

/*
 * read_all with an exact stream: walk that stream's index, not the whole
 * log.  Positions grow with versions, so the first version at or after the
 * starting position (forward; the last at or before it, backward) is found
 * by binary search: log2(stream length) point reads.
 */
static int read_all_stream(maosd_call *call)
{
    maos_request *req = call->req;
    maosd_store *st = call->srv->store;
    maos_slice stream = req->filter.stream;
    uint64_t head;
    int rc = read_head(st, stream, &head);
    if (rc == MAOS_ENOT_FOUND)
        return reply_empty(call);
    if (rc)
        return rc;
    uint64_t from = req->has_from ? req->from : (req->backward ? UINT64_MAX : 1);
    /* first version whose position is > from (backward) or >= from */
    uint64_t lo = 0, hi = head + 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, pos;
        if ((rc = version_position(st, stream, mid, &pos)))
            return rc;
        if (req->backward ? pos <= from : pos < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (req->backward) {
        if (lo == 0)
            return reply_empty(call);
        return reply_from_index(call, stream, lo - 1, &req->filter);
    }
    if (lo > head)
        return reply_empty(call);
    return reply_from_index(call, stream, lo, &req->filter);
}

static int filter_active(const maos_filter *f)
{
    return f->stream.len || f->prefix.len || f->category.len || f->n_types ||
           f->has_since || f->has_until;
}

int maosd_op_read_all(maosd_call *call)
{
    maos_request *req = call->req;
    maosd_conn *c = call->conn;
    const maos_filter *f = &req->filter;
    int filtered = filter_active(f);
    if (f->stream.len)
        return read_all_stream(call);
    maosd_iter *it = maosd_iter_new(call->srv->store, MAOSD_CF_EVENTS);
    if (!it)
        return MAOS_EOVERLOADED;
    char k[8];
    if (req->backward) {
        if (req->has_from)
            maosd_iter_seek_prev(it, k, maosd_key_event(k, req->from));
        else
            maosd_iter_seek_last(it);
    } else {
        maosd_iter_seek(it, k, maosd_key_event(k, req->has_from ? req->from : 1));
    }

    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    maos_list_mark lm;
    int rc = maos_enc_list_begin(&c->out, req->rid, "events", &lm);
    size_t start = c->out.size, budget = reply_budget(call);
    uint32_t count = 0, scanned = 0;
    int more = 0;
    uint64_t next = 0;
    /* As in read: the loop stops with the iterator on the first record not
     * examined, and that record's position is "next". */
    while (!rc && maosd_iter_valid(it)) {
        size_t klen, vlen;
        const char *ik = maosd_iter_key(it, &klen);
        const char *iv = maosd_iter_value(it, &vlen);
        if (klen != 8) {
            rc = MAOS_EINTERNAL;
            break;
        }
        if (count == req->limit || scanned == SCAN_BUDGET ||
            !fits(c->out.size - start, vlen, count, budget)) {
            more = 1;
            next = maosd_get_u64(ik);
            break;
        }
        int match = 1;
        if (filtered) {
            maos_record r;
            if (maos_record_decode(iv, vlen, &r)) {
                rc = MAOS_EINTERNAL;
                break;
            }
            /* Times never decrease along positions: stop at the edge. */
            if ((!req->backward && f->has_until && r.time > f->until) ||
                (req->backward && f->has_since && r.time < f->since))
                break;
            match = maos_filter_match(f, &r);
        }
        if (match) {
            if (msgpack_sbuffer_write(&c->out, iv, vlen))
                rc = MAOS_ENOMEM;
            count++;
        }
        scanned++;
        if (req->backward)
            maosd_iter_prev(it);
        else
            maosd_iter_next(it);
    }
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (!rc)
        rc = maos_enc_list_end(&c->out, &lm, count,
                               more ? MAOS_NEXT_UINT : MAOS_NEXT_NONE, next,
                               (maos_slice){0});
    if (rc)
        return drop_reply(call, mark, rc);
    maosd_reply_end(c, mark);
    return 0;
}

int maosd_op_streams(maosd_call *call)
{
    maos_request *req = call->req;
    maosd_conn *c = call->conn;
    char pk_[MAOSD_KEY_MAX], ak[MAOSD_KEY_MAX];
    size_t plen = maosd_key_head(pk_, req->prefix);
    size_t alen = req->after.len ? maosd_key_head(ak, req->after) : 0;
    maosd_iter *it = maosd_iter_new(call->srv->store, MAOSD_CF_STREAMS);
    if (!it)
        return MAOS_EOVERLOADED;
    /* Start at whichever of prefix and cursor sorts later. */
    int cmp = memcmp(ak, pk_, alen < plen ? alen : plen);
    if (alen && (cmp > 0 || (cmp == 0 && alen > plen)))
        maosd_iter_seek(it, ak, alen);
    else
        maosd_iter_seek(it, pk_, plen);

    msgpack_packer pk;
    size_t mark = maosd_reply_begin(c, &pk);
    maos_list_mark lm;
    int rc = maos_enc_list_begin(&c->out, req->rid, "streams", &lm);
    size_t start = c->out.size, budget = reply_budget(call);
    uint32_t count = 0;
    int more = 0;
    char cursor[MAOS_NAME_MAX]; /* last listed name: the next page's "after" */
    uint32_t cursor_len = 0;
    for (; !rc && maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t klen, vlen;
        const char *ik = maosd_iter_key(it, &klen);
        const char *iv = maosd_iter_value(it, &vlen);
        if (klen < plen || memcmp(ik, pk_, plen))
            break;
        if (alen && klen == alen && !memcmp(ik, ak, alen))
            continue; /* the cursor itself was on the previous page */
        /* an entry is at most ~300 bytes */
        if (count == req->limit || !fits(c->out.size - start, 512, count, budget)) {
            more = 1;
            break;
        }
        if (vlen != 16)
            continue;
        maos_stream_info si = {
            .stream = {ik + 1, (uint32_t)(klen - 1)},
            .head = maosd_get_u64(iv),
            .count = maosd_get_u64(iv) + 1,
            .last_position = maosd_get_u64(iv + 8),
        };
        rc = maos_enc_stream_info(&pk, &si);
        cursor_len = si.stream.len;
        memcpy(cursor, si.stream.ptr, cursor_len);
        count++;
    }
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (!rc)
        rc = maos_enc_list_end(&c->out, &lm, count,
                               more ? MAOS_NEXT_STR : MAOS_NEXT_NONE, 0,
                               (maos_slice){cursor, cursor_len});
    if (rc)
        return drop_reply(call, mark, rc);
    maosd_reply_end(c, mark);
    return 0;
}
