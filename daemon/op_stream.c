/*
 * daemon/op_stream.c -- the event store ops: append and txn (queued to the
 * commit thread, answered from maosd_write_reply), read (one stream),
 * read_all (the global log with filters) and streams (listing).
 *
 * Reads run on a reader thread (reader.c) in bounded slices: one reply
 * carries at most `limit` events and about REPLY_BUDGET bytes, and read_all
 * examines at most SCAN_BUDGET records per request; the reply's "next" says
 * where to go on.
 * read_all with an exact stream walks that stream's index instead of the
 * log, so its cost follows the stream's length, not the log's.
 * Replies copy stored record bytes into the output buffer: no re-encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "dispatch.h"

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

maosd_wreq *maosd_wreq_for(maosd_conn *c, maos_request *req, char **frame,
                           size_t frame_len)
{
    maosd_wreq *w = maosd_wreq_new(req, frame, frame_len);
    if (!w)
        return NULL;
    w->conn = c;
    if (c) {
        w->who.conn_id = c->id;
        w->who.pid = c->pid;
        w->who.uid = c->uid;
        if (maosd_tables_stamp(c, w)) { /* meta.agent: only maosd writes it */
            maosd_wreq_free(w);
            return NULL;
        }
    }
    return w;
}

int maosd_queue_write(maosd_server *srv, maosd_conn *c, maos_request *req,
                      char **frame, size_t frame_len)
{
    maosd_wreq *w = maosd_wreq_for(c, req, frame, frame_len);
    if (!w)
        return MAOS_EOVERLOADED;
    maosd_submit(srv, w);
    return 0;
}

void maosd_submit(maosd_server *srv, maosd_wreq *w)
{
    w->cost = maosd_wreq_cost(w);
    if (w->conn) {
        w->conn->refs++;
        maosd_conn_write_queued(w->conn, w->cost);
    }
    maosd_commit_submit(srv->commit, w);
}

int maosd_append_internal(maosd_server *srv, const char *stream, const char *type,
                          const char *data, size_t len)
{
    maos_event_in ev = {
        .type = {type, (uint32_t)strlen(type)},
        .data = {data, (uint32_t)len},
    };
    maos_append_in a = {
        .stream = {stream, (uint32_t)strlen(stream)},
        .expect = MAOS_EXPECT_ANY,
        .n_events = 1,
        .events = &ev,
    };
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    maos_request req;
    char why[256] = "";
    int rc = maos_enc_append(&pk, 0, &a);
    if (!rc && !sb.data)
        rc = MAOS_ENOMEM;
    maos_limits lim = srv->lim;
    lim.system = 1; /* '$' streams are maosd's own */
    memset(&req, 0, sizeof(req));
    if (!rc)
        rc = maos_request_decode(sb.data, sb.size, &lim, &req, why, sizeof(why));
    if (!rc)
        rc = maosd_queue_write(srv, NULL, &req, &sb.data, sb.size);
    if (rc)
        maosd_log(MAOSD_LOG_ERROR, "cannot record a %s event in stream %s: %s: %s",
                  type, stream, maos_err_name(rc), why[0] ? why : "out of memory");
    maos_request_free(&req);
    msgpack_sbuffer_destroy(&sb); /* NULL once the request took it */
    return rc;
}

int maosd_op_append(maosd_call *call)
{
    maos_request *req = call->req;
    size_t total = 0;
    int rc;
    for (uint32_t i = 0; i < req->n_appends; i++)
        total += req->appends[i].n_events;

    uint8_t *scratch = malloc(16 * (total ? total : 1));
    if (!scratch) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    rc = check_unique_ids(call, scratch);
    free(scratch);
    if (rc)
        return rc;
    rc = maosd_queue_write(call->srv, call->conn, req, &call->frame, call->frame_len);
    if (rc)
        snprintf(call->why, sizeof(call->why), "out of memory");
    return rc;
}

/* The whole reply to a write request that succeeded. */
static int encode_reply(msgpack_packer *pk, const maosd_wreq *w)
{
    const maos_request *req = &w->req;
    if (req->op != MAOS_OP_TXN) {
        const maosd_wkind *k = maosd_wkind_of(req->items[0].kind);
        return k->reply(pk, w, 0, 1);
    }
    int rc = maos_enc_reply_txn_begin(pk, req->rid, req->n_items);
    for (uint32_t i = 0; i < req->n_items && !rc; i++)
        rc = maosd_wkind_of(req->items[i].kind)->reply(pk, w, i, 0);
    return rc;
}

static void log_own_write(const maosd_wreq *w)
{
    const maos_item_in *it = &w->req.items[0];
    maos_slice what = it->kind == MAOS_ITEM_APPEND ? it->append->stream : it->key;
    if (w->code)
        maosd_log(MAOSD_LOG_ERROR, "%s write to %.*s failed: %s: %s",
                  maosd_wkind_of(it->kind)->name, (int)what.len, what.ptr,
                  maos_err_name(w->code), w->why ? w->why : "-");
    else if (it->kind == MAOS_ITEM_APPEND)
        maosd_log(MAOSD_LOG_WARN, "recorded in stream %.*s at position %llu",
                  (int)what.len, what.ptr,
                  (unsigned long long)w->out[0].append.first_position);
}

void maosd_write_reply(maosd_server *srv, maosd_wreq *w)
{
    maosd_conn *c = w->conn;
    (void)srv;
    if (!c) { /* maosd's own write without a done step */
        log_own_write(w);
        maosd_wreq_free(w);
        return;
    }
    if (!c->closing) {
        if (!w->code) {
            msgpack_packer pk;
            size_t mark = maosd_reply_begin(c, &pk);
            if (encode_reply(&pk, w))
                c->out_broken = 1; /* maosd_reply_end closes c */
            maosd_reply_end(c, mark);
        } else {
            maosd_logf(MAOSD_LOG_DEBUG, "conn %llu rid %llu %s: %s: %s",
                       (unsigned long long)c->id, (unsigned long long)w->req.rid,
                       maos_op_name(w->req.op), maos_err_name(w->code),
                       w->why ? w->why : "-");
            maosd_reply_error(c, w->req.rid, w->code, w->why, w->has_actual,
                              w->actual, w->index);
        }
    }
    maosd_conn_write_done(c, w->cost);
    maosd_conn_unref(c);
    maosd_wreq_free(w);
}

/* ---- reads ---------------------------------------------------------------- */

/* Bytes of records in one reply: about REPLY_BUDGET, and never so much that
 * the reply outgrows what clients accept (max_frame + MAOS_REPLY_SLACK);
 * the first record always goes in, whatever its size.  While the daemon
 * is over its output budget, only MAOSD_LIGHT_BYTES: the connections it
 * still serves then (those holding almost nothing, server.c) each add one
 * small reply, not a full one. */
size_t maosd_reply_budget(const maosd_server *srv)
{
    size_t b = srv->cfg->max_frame;
    if (b > REPLY_BUDGET)
        b = REPLY_BUDGET;
    if (srv->buffered > srv->cfg->max_total_output && b > MAOSD_LIGHT_BYTES)
        b = MAOSD_LIGHT_BYTES;
    return b;
}

static uint32_t scan_max(const maosd_scan *sc)
{
    return sc->max_scan ? sc->max_scan : SCAN_BUDGET;
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
        return maosd_store_corrupt("the head of stream %.*s (streams 'h' key) is %zu "
                                   "bytes, want 16", (int)stream.len, stream.ptr, vlen);
    *head = maosd_get_u64(v);
    return 0;
}

int maosd_read_failure(int rc, char *why, size_t whylen, int *log_it)
{
    if (rc == MAOS_ENOMEM)
        rc = MAOS_EOVERLOADED;
    if (rc == MAOS_ENOT_FOUND)
        rc = MAOS_EINTERNAL;
    *log_it = rc != MAOS_EOVERLOADED;
    if (*log_it)
        snprintf(why, whylen, "storage failure while reading: %s", maosd_store_errmsg());
    else
        snprintf(why, whylen, "out of memory while reading");
    return rc;
}

/* Undo a partly encoded reply and turn the failure into an error reply.
 * Damaged storage is logged here, once per failed read, with RocksDB's
 * words (they name the file); the client gets CORRUPT and the same text. */
int maosd_drop_reply(maosd_call *call, size_t mark, int rc)
{
    int log_it;
    call->conn->out.size = mark;
    rc = maosd_read_failure(rc, call->why, sizeof(call->why), &log_it);
    if (log_it)
        maosd_log(MAOSD_LOG_ERROR, "conn %llu rid %llu: %s",
                  (unsigned long long)call->conn->id,
                  (unsigned long long)call->req->rid, call->why);
    return rc;
}

static int filter_active(const maos_filter *f)
{
    return f && (f->stream.len || f->prefix.len || f->category.len || f->n_types ||
                 f->has_since || f->has_until);
}

/*
 * One record met during a scan: past the scan's end (0 and *stop), not
 * matching (0), or copied to out (count++).  Forward scans stop at `upto`
 * and at `until`, backward ones at `since`: times never decrease along
 * positions.
 */
static int scan_take(maosd_scan *sc, const char *rec, size_t rlen, uint64_t pos,
                     msgpack_sbuffer *out, int *stop)
{
    if (!sc->backward && pos > sc->upto) {
        *stop = 1;
        return 0;
    }
    const maos_filter *f = sc->f;
    if (filter_active(f)) {
        maos_record r;
        if (maos_record_decode(rec, rlen, &r))
            return maosd_store_corrupt("the record at position %llu does not decode",
                                       (unsigned long long)pos);
        if ((!sc->backward && f->has_until && r.time > f->until) ||
            (sc->backward && f->has_since && r.time < f->since)) {
            *stop = 1;
            return 0;
        }
        if (!maos_filter_match(f, &r))
            return 0;
    }
    if (msgpack_sbuffer_write(out, rec, rlen))
        return MAOS_ENOMEM;
    sc->count++;
    return 0;
}

/* The iterator failed moving past the last record taken (a damaged block
 * after it): hand out what was read, and let the next read, which starts
 * at the damage, report it.  So a reader gets every intact event before
 * damage, and the error names exactly the first unreadable place. */
static int stop_before_damage(maosd_scan *sc, uint64_t next, int rc)
{
    if (rc == MAOS_ENOMEM)
        return rc;
    sc->more = 1;
    sc->next = next;
    return 0;
}

/* Walk one stream's version index from a version (inclusive).  The loop
 * ends with the iterator on the first entry not returned, so "next" comes
 * from the index itself, even if the stream grew meanwhile. */
static int scan_index(maosd_store *st, maos_slice stream, uint64_t from,
                      maosd_scan *sc, msgpack_sbuffer *out)
{
    char k[MAOSD_KEY_MAX];
    size_t plen = 2 + stream.len; /* 'v' stream 0 */
    maosd_iter *it = maosd_iter_new(st, MAOSD_CF_STREAMS);
    if (!it)
        return MAOS_EOVERLOADED;
    size_t klen = maosd_key_version(k, stream, from);
    if (sc->backward)
        maosd_iter_seek_prev(it, k, klen);
    else
        maosd_iter_seek(it, k, klen);
    size_t start = out->size, rcap = 0;
    uint32_t scanned = 0;
    uint64_t last = 0;
    char *rec = NULL;
    int rc = 0, stop = 0;
    while (!rc && !stop && maosd_iter_valid(it)) {
        size_t ilen, vlen, rlen;
        const char *ik = maosd_iter_key(it, &ilen);
        const char *iv = maosd_iter_value(it, &vlen);
        if (ilen < plen || memcmp(ik, k, plen))
            break; /* past this stream's versions */
        if (ilen != plen + 8 || vlen != 8) {
            rc = maosd_store_corrupt("an index entry of stream %.*s (streams 'v' key "
                                     "of %zu bytes) has a %zu-byte value, want 8",
                                     (int)stream.len, stream.ptr, ilen, vlen);
            break;
        }
        uint64_t pos = maosd_get_u64(iv);
        uint64_t here = sc->next_is_version ? maosd_get_u64(ik + plen) : pos;
        if (sc->count == sc->limit || scanned == scan_max(sc)) {
            sc->more = 1;
            sc->next = here;
            break;
        }
        /* One buffer for the whole scan, grown as needed: no malloc per
         * event. */
        char ek[8];
        rc = maosd_store_get_buf(st, MAOSD_CF_EVENTS, ek, maosd_key_event(ek, pos),
                                 &rec, &rcap, &rlen);
        if (rc)
            break;
        if (!fits(out->size - start, rlen, sc->count, sc->budget)) {
            sc->more = 1;
            sc->next = here;
            break;
        }
        rc = scan_take(sc, rec, rlen, pos, out, &stop);
        scanned++;
        last = here;
        if (sc->backward)
            maosd_iter_prev(it);
        else
            maosd_iter_next(it);
    }
    free(rec);
    sc->scanned += scanned;
    if (!rc)
        rc = maosd_iter_status(it);
    if (rc && scanned && !stop && !sc->more)
        rc = stop_before_damage(sc, sc->backward ? last - 1 : last + 1, rc);
    maosd_iter_free(it);
    return rc == MAOS_ENOT_FOUND ? MAOS_EINTERNAL : rc;
}

/* Walk the global log from a position (inclusive); UINT64_MAX backward is
 * "from the last event". */
static int scan_log(maosd_store *st, uint64_t from, maosd_scan *sc,
                    msgpack_sbuffer *out)
{
    maosd_iter *it = maosd_iter_new(st, MAOSD_CF_EVENTS);
    if (!it)
        return MAOS_EOVERLOADED;
    char k[8];
    if (sc->backward)
        maosd_iter_seek_prev(it, k, maosd_key_event(k, from));
    else
        maosd_iter_seek(it, k, maosd_key_event(k, from));
    size_t start = out->size;
    uint32_t scanned = 0;
    uint64_t last = 0;
    int rc = 0, stop = 0;
    while (!rc && !stop && maosd_iter_valid(it)) {
        size_t klen, vlen;
        const char *ik = maosd_iter_key(it, &klen);
        const char *iv = maosd_iter_value(it, &vlen);
        if (klen != 8) {
            rc = maosd_store_corrupt("an events key of %zu bytes, want 8", klen);
            break;
        }
        uint64_t pos = maosd_get_u64(ik);
        if (sc->count == sc->limit || scanned == scan_max(sc) ||
            !fits(out->size - start, vlen, sc->count, sc->budget)) {
            sc->more = 1;
            sc->next = pos;
            break;
        }
        rc = scan_take(sc, iv, vlen, pos, out, &stop);
        scanned++;
        last = pos;
        if (sc->backward)
            maosd_iter_prev(it);
        else
            maosd_iter_next(it);
    }
    sc->scanned += scanned;
    if (!rc)
        rc = maosd_iter_status(it);
    if (rc && scanned && !stop && !sc->more)
        rc = stop_before_damage(sc, sc->backward ? last - 1 : last + 1, rc);
    maosd_iter_free(it);
    return rc;
}

/* Position of a stream's version v (it exists: v <= head). */
static int version_position(maosd_store *st, maos_slice stream, uint64_t v,
                            uint64_t *pos)
{
    char k[MAOSD_KEY_MAX], val[8];
    size_t vlen;
    int rc = maosd_store_get(st, MAOSD_CF_STREAMS, k, maosd_key_version(k, stream, v),
                             val, sizeof(val), &vlen);
    if (rc == MAOS_ENOT_FOUND)
        return maosd_store_corrupt("version %llu of stream %.*s is missing from the "
                                   "index (its head is past it)", (unsigned long long)v,
                                   (int)stream.len, stream.ptr);
    if (rc)
        return rc;
    if (vlen != 8)
        return maosd_store_corrupt("the index entry of version %llu of stream %.*s is "
                                   "%zu bytes, want 8", (unsigned long long)v,
                                   (int)stream.len, stream.ptr, vlen);
    *pos = maosd_get_u64(val);
    return 0;
}

int maosd_stream_version_position(maosd_store *st, maos_slice stream,
                                  uint64_t version, uint64_t *pos)
{
    uint64_t head;
    int rc = read_head(st, stream, &head);
    if (rc)
        return rc;
    if (version > head)
        return MAOS_ENOT_FOUND;
    return version_position(st, stream, version, pos);
}

int maosd_collect(maosd_store *st, uint64_t from, maosd_scan *sc,
                  msgpack_sbuffer *out)
{
    if (!sc->f || !sc->f->stream.len)
        return scan_log(st, from, sc, out);
    /* An exact stream: walk that stream's index, not the whole log.
     * Positions grow with versions, so the first version at or after the
     * starting position (forward; the last at or before it, backward) is
     * found by binary search: log2(stream length) point reads. */
    maos_slice stream = sc->f->stream;
    uint64_t head;
    int rc = read_head(st, stream, &head);
    if (rc == MAOS_ENOT_FOUND)
        return 0; /* nothing, and nothing more */
    if (rc)
        return rc;
    uint64_t lo = 0, hi = head + 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, pos;
        if ((rc = version_position(st, stream, mid, &pos)))
            return rc;
        if (sc->backward ? pos <= from : pos < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (sc->backward ? lo == 0 : lo > head)
        return 0;
    return scan_index(st, stream, sc->backward ? lo - 1 : lo, sc, out);
}

/*
 * The reads run on a reader thread (reader.c): the handler moves the
 * request into a job, and the job's run step below is the read, writing
 * its reply frame into the job's buffer.  Only the job and the store are
 * touched there; the budget was taken on the loop thread at submit.
 */
static int submit_read(maosd_call *call, void (*run)(maosd_rjob *j))
{
    maosd_rjob *j = maosd_rjob_for(call, run);
    if (!j) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    int rc = maosd_rjob_submit(j);
    if (rc)
        snprintf(call->why, sizeof(call->why), "cannot queue the read");
    return rc;
}

/* Reply {events: [...], next} around a scan, into the job's buffer. */
static void reply_scan(maosd_rjob *j, maosd_scan *sc, maos_slice stream, uint64_t from)
{
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    maos_list_mark lm;
    int rc = maos_enc_list_begin(&j->out, j->req.rid, "events", &lm);
    if (!rc)
        rc = sc->next_is_version ? scan_index(j->store, stream, from, sc, &j->out)
                                 : maosd_collect(j->store, from, sc, &j->out);
    if (!rc)
        rc = maos_enc_list_end(&j->out, &lm, sc->count,
                               sc->more ? MAOS_NEXT_UINT : MAOS_NEXT_NONE, sc->next,
                               (maos_slice){0});
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
}

static void run_read(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    uint64_t head;
    int rc = read_head(j->store, req->stream, &head);
    if (rc == MAOS_ENOT_FOUND) {
        j->rc = rc;
        snprintf(j->why, sizeof(j->why), "stream %.*s not found",
                 (int)req->stream.len, req->stream.ptr);
        return;
    }
    if (rc) {
        maosd_rjob_fail(j, j->out.size, rc);
        return;
    }
    maosd_scan sc = {
        .backward = req->backward,
        .upto = UINT64_MAX,
        .limit = req->limit,
        .budget = j->budget,
        .next_is_version = 1,
    };
    uint64_t from = req->has_from ? req->from : (req->backward ? head : 0);
    reply_scan(j, &sc, req->stream, from);
}

int maosd_op_read(maosd_call *call)
{
    return submit_read(call, run_read);
}

static void run_read_all(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    maosd_scan sc = {
        .f = &req->filter,
        .backward = req->backward,
        .upto = UINT64_MAX,
        .limit = req->limit,
        .budget = j->budget,
    };
    uint64_t from = req->has_from ? req->from : (req->backward ? UINT64_MAX : 1);
    reply_scan(j, &sc, (maos_slice){0}, from);
}

int maosd_op_read_all(maosd_call *call)
{
    return submit_read(call, run_read_all);
}

static void run_streams(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    char pk_[MAOSD_KEY_MAX], ak[MAOSD_KEY_MAX];
    size_t plen = maosd_key_head(pk_, req->prefix);
    size_t alen = req->after.len ? maosd_key_head(ak, req->after) : 0;
    maosd_iter *it = maosd_iter_new(j->store, MAOSD_CF_STREAMS);
    if (!it) {
        maosd_rjob_fail(j, j->out.size, MAOS_ENOMEM);
        return;
    }
    /* Start at whichever of prefix and cursor sorts later. */
    int cmp = memcmp(ak, pk_, alen < plen ? alen : plen);
    if (alen && (cmp > 0 || (cmp == 0 && alen > plen)))
        maosd_iter_seek(it, ak, alen);
    else
        maosd_iter_seek(it, pk_, plen);

    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    maos_list_mark lm;
    int rc = maos_enc_list_begin(&j->out, req->rid, "streams", &lm);
    size_t start = j->out.size, budget = j->budget;
    uint32_t count = 0;
    int more = 0;
    char cursor[MAOS_STREAM_MAX]; /* last listed name: the next page's "after" */
    uint32_t cursor_len = 0;
    for (; !rc && maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t klen, vlen;
        const char *ik = maosd_iter_key(it, &klen);
        const char *iv = maosd_iter_value(it, &vlen);
        if (klen < plen || memcmp(ik, pk_, plen))
            break;
        if (alen && klen == alen && !memcmp(ik, ak, alen))
            continue; /* the cursor itself was on the previous page */
        /* an entry is its name plus at most ~60 bytes */
        if (count == req->limit || !fits(j->out.size - start, klen + 64, count, budget)) {
            more = 1;
            break;
        }
        if (vlen != 16) {
            rc = maosd_store_corrupt("the head of stream %.*s (streams 'h' key) is %zu "
                                     "bytes, want 16", (int)(klen - 1), ik + 1, vlen);
            break;
        }
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
        rc = maos_enc_list_end(&j->out, &lm, count,
                               more ? MAOS_NEXT_STR : MAOS_NEXT_NONE, 0,
                               (maos_slice){cursor, cursor_len});
    if (!rc)
        rc = maosd_rjob_frame_end(j, mark);
    if (rc)
        maosd_rjob_fail(j, mark, rc);
}

int maosd_op_streams(maosd_call *call)
{
    return submit_read(call, run_streams);
}
