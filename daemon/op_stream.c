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
 * log, so its cost follows the stream's length, not the log's.  The index
 * has one entry per append (keys.h): a stream read seeks the entry of its
 * first version once, then range-scans the events of each entry; every
 * record read that way is checked to be the event its entry names.
 * Replies copy stored record bytes into the output buffer: no re-encoding
 * (the array form a request may ask for drops each record's keys, the
 * values' bytes copied as they are: maos_record_to_array).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "audit.h"
#include "dispatch.h"
#include "readahead.h"

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
    w->t0_ns = uv_hrtime();
    if (c) {
        w->who.conn_id = c->id;
        w->who.pid = c->pid;
        w->who.uid = c->uid;
        w->who.rights = c->rights;
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

void maosd_submit_item(maosd_server *srv, maosd_wreq *w, maos_item_in *it,
                       maosd_wdone_fn done, void *done_arg)
{
    w->req.items = it;
    w->req.n_items = 1;
    w->items_owned = 1;
    w->done = done;
    w->done_arg = done_arg;
    maosd_submit(srv, w);
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
    if (req->op != MAOS_OP_TXN && req->op != MAOS_OP_APPEND_BATCH) {
        const maosd_wkind *k = maosd_wkind_of(req->items[0].kind);
        return k->reply(pk, w, 0, 1);
    }
    int rc = maos_enc_reply_txn_begin(pk, req->rid, req->n_items);
    for (uint32_t i = 0; i < req->n_items && !rc; i++) {
        const maosd_item_out *o = &w->out[i];
        if (o->refused)
            rc = maos_enc_batch_refusal(pk, o->refused, o->refused_why, o->has_actual,
                                        o->actual);
        else if (req->form == MAOS_FORM_ARRAY) /* append_batch's results as arrays */
            rc = maos_enc_append_result_array(pk, &o->append);
        else
            rc = maosd_wkind_of(req->items[i].kind)->reply(pk, w, i, 0);
    }
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
    if (!c) { /* maosd's own write without a done step */
        log_own_write(w);
        maosd_wreq_free(w);
        return;
    }
    maosd_metrics_observe(srv, w->req.op, w->t0_ns);
    if (!c->closing) {
        if (!w->code) {
            msgpack_packer pk;
            size_t mark = maosd_reply_begin(c, &pk);
            if (encode_reply(&pk, w))
                c->out_broken = 1; /* maosd_reply_end closes c */
            maosd_reply_end(c, mark);
        } else {
            maosd_logf_req(MAOSD_LOG_DEBUG, c->id, w->req.rid, maos_op_name(w->req.op),
                           w->code, w->why);
            maosd_reply_error_entry(c, w->req.rid, w->code, w->why, w->has_actual,
                                    w->actual, w->index,
                                    (maos_slice){w->current.data,
                                                 (uint32_t)w->current.size});
            if (maosd_audit_is_refusal(w->code)) /* e.g. a lease of another queue */
                maosd_audit_refused(c, maos_op_name(w->req.op), w->code, w->why,
                                    maosd_audit_target(&w->req));
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

int maosd_stream_smeta(maosd_store *st, maos_slice stream, maosd_smeta *m)
{
    char k[MAOSD_KEY_MAX], v[MAOSD_SMETA_LEN + 1];
    size_t vlen;
    int rc = maosd_store_get(st, MAOSD_CF_STREAMS, k, maosd_key_smeta(k, stream), v,
                             sizeof(v), &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        memset(m, 0, sizeof(*m));
        return 0;
    }
    if (rc)
        return rc;
    if (maosd_smeta_decode(v, vlen, m))
        return maosd_store_corrupt("the meta of stream %.*s (streams 'm' key) is "
                                   "malformed", (int)stream.len, stream.ptr);
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
        maosd_log_req(MAOSD_LOG_ERROR, call->conn->id, call->req->rid,
                      maos_op_name(call->req->op), rc, call->why);
    return rc;
}

/* Whether the filter needs each record decoded.  in_stream: the scan
 * walks the filter's stream's index, whose records are already checked to
 * be of that stream (record_is), so the stream part needs no decode. */
static int filter_active(const maos_filter *f, int in_stream)
{
    return f && ((f->stream.len && !in_stream) || f->prefix.len || f->category.len ||
                 f->n_types || f->has_since || f->has_until);
}

/* The same with the scan's rights (a restricted connection's read_all or
 * catch-up: every record is decoded for its stream). */
static int scan_filtered(const maosd_scan *sc, int in_stream)
{
    return sc->rights || filter_active(sc->f, in_stream);
}

/*
 * What a filter and the rights look at (position, time, version, stream,
 * type), read off the front of a stored record.  maos_enc_record writes
 * them first, in that order and with fixed-width numbers, so the head is
 * a few compares of known bytes, and the data and meta behind it -- most
 * of the bytes, and a map walk each -- are not walked (a filtered scan of
 * the log decoded every record whole: about half the reader's time).  A
 * record laid out otherwise is decoded whole.  id, prev, data and meta are
 * left empty; raw is the whole record.  0 or MAOS_EPROTO.
 */
#define HEAD_POSITION "\xa8position\xcf" /* key, then uint 64 */
#define HEAD_TIME "\xa4time\xd3"         /* key, then int 64 */
#define HEAD_VERSION "\xa7version\xcf"   /* key, then uint 64 */
#define HEAD_FIXED (1 + 10 + 8 + 6 + 8 + 9 + 8)
static int record_head(const char *p, size_t len, maos_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    if (len < HEAD_FIXED || ((uint8_t)p[0] != 0x89 && (uint8_t)p[0] != 0x8a) ||
        memcmp(p + 1, HEAD_POSITION, 10) || memcmp(p + 19, HEAD_TIME, 6) ||
        memcmp(p + 33, HEAD_VERSION, 9))
        return maos_record_decode(p, len, rec);
    rec->position = maosd_get_u64(p + 11);
    rec->time = (int64_t)maosd_get_u64(p + 25);
    rec->version = maosd_get_u64(p + 42);
    maos_mpr r;
    maos_slice k;
    maos_mpr_init(&r, p + HEAD_FIXED, len - HEAD_FIXED);
    if (maos_mpr_str(&r, &k) || k.len != 6 || memcmp(k.ptr, "stream", 6) ||
        maos_mpr_str(&r, &rec->stream) || maos_mpr_str(&r, &k) || k.len != 4 ||
        memcmp(k.ptr, "type", 4) || maos_mpr_str(&r, &rec->type))
        return maos_record_decode(p, len, rec);
    rec->raw.ptr = p;
    rec->raw.len = (uint32_t)len;
    return 0;
}

/*
 * One record met during a scan: past the scan's end (0 and *stop), not
 * matching (0), or copied to out (count++).  Forward scans stop at `upto`
 * and at `until`, backward ones at `since`: times never decrease along
 * positions.  in_stream: as for filter_active.
 */
static int scan_take(maosd_scan *sc, const char *rec, size_t rlen, uint64_t pos,
                     int in_stream, msgpack_sbuffer *out, int *stop)
{
    if (!sc->backward && pos > sc->upto) {
        *stop = 1;
        return 0;
    }
    if (!sc->removed && rlen && (uint8_t)rec[0] == 0x8a)
        return 0; /* the stub of a removed event (maos_enc_stub) */
    const maos_filter *f = sc->f;
    if (scan_filtered(sc, in_stream)) {
        maos_record r;
        if (record_head(rec, rlen, &r))
            return maosd_store_corrupt("the record at position %llu does not decode",
                                       (unsigned long long)pos);
        if (f && ((!sc->backward && f->has_until && r.time > f->until) ||
                  (sc->backward && f->has_since && r.time < f->since))) {
            *stop = 1;
            return 0;
        }
        if (f && !maos_filter_match(f, &r))
            return 0;
        /* out of scope: left out silently, as a filter does */
        if (!maosd_rights_allow(sc->rights, sc->rights_kind, r.stream))
            return 0;
    }
    if (sc->form == MAOS_FORM_ARRAY) {
        int rc = maos_record_to_array(rec, rlen, out);
        if (rc == MAOS_EPROTO)
            return maosd_store_corrupt("the record at position %llu does not decode",
                                       (unsigned long long)pos);
        if (rc)
            return rc;
    } else if (msgpack_sbuffer_write(out, rec, rlen)) {
        return MAOS_ENOMEM;
    }
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

/* ---- the stream index (keys.h: one entry per append) ----------------------- */

/* The entry under the index iterator, if it belongs to the stream whose
 * key prefix is k[0..plen): *have 1 and *e, or *have 0 (past the stream's
 * entries).  0, or CORRUPT for a malformed entry. */
static int index_at(maosd_iter *it, maos_slice stream, const char *k, size_t plen,
                    maosd_sindex *e, int *have)
{
    size_t ilen, vlen;
    *have = 0;
    if (!maosd_iter_valid(it))
        return 0;
    const char *ik = maosd_iter_key(it, &ilen);
    const char *iv = maosd_iter_value(it, &vlen);
    if (ilen < plen || memcmp(ik, k, plen))
        return 0;
    if (maosd_sindex_decode(ik, ilen, plen, iv, vlen, e))
        return maosd_store_corrupt("an index entry of stream %.*s (streams 'v' key of "
                                   "%zu bytes, value of %zu bytes) is malformed: want "
                                   "a %zu-byte key and a value of 12 bytes (8: old "
                                   "layout) with a count of at least 1",
                                   (int)stream.len, stream.ptr, ilen, vlen, plen + 8);
    *have = 1;
    return 0;
}

/* Entries tile a stream's versions: b must follow a directly (forward). */
static int index_follows(maos_slice stream, const maosd_sindex *a, const maosd_sindex *b)
{
    if (b->first == a->first + a->count)
        return 0;
    return maosd_store_corrupt("the index of stream %.*s goes from versions %llu..%llu "
                               "to an entry at version %llu (entries must neither "
                               "overlap nor leave a gap)", (int)stream.len, stream.ptr,
                               (unsigned long long)a->first,
                               (unsigned long long)(a->first + a->count - 1),
                               (unsigned long long)b->first);
}

/* The entry holding version v of a stream (v <= head: it must exist),
 * with it (an iterator over the streams CF). */
static int index_find(maosd_iter *it, maos_slice stream, uint64_t v, maosd_sindex *e)
{
    char k[MAOSD_KEY_MAX];
    size_t klen = maosd_key_version(k, stream, v);
    maosd_iter_seek_prev(it, k, klen);
    int have, rc = index_at(it, stream, k, klen - 8, e, &have);
    if (!rc)
        rc = maosd_iter_status(it);
    if (rc)
        return rc == MAOS_ENOT_FOUND ? MAOS_EINTERNAL : rc;
    if (!have || v - e->first >= e->count)
        return maosd_store_corrupt("version %llu of stream %.*s is missing from the "
                                   "index (its head is past it)", (unsigned long long)v,
                                   (int)stream.len, stream.ptr);
    return 0;
}

/*
 * Whether the record r (n bytes) read through the index is the event the
 * index says: that position, that version, that stream.  A damaged index
 * (an entry too long, entries overlapping, a stale position) then reads as
 * damage, never as another stream's events.  Records as maos_enc_record
 * writes them start with fixed-width fields at fixed offsets, checked in
 * place; anything else is decoded.
 */
static int record_is(const char *r, size_t n, uint64_t pos, uint64_t version,
                     maos_slice stream)
{
    static const char k1[] = "\x89\xa8position\xcf", k2[] = "\xa4time\xd3",
                      k3[] = "\xa7version\xcf", k4[] = "\xa6stream";
    /* offsets: k1 0, position 11, k2 19, time 25, k3 33, version 42, k4 50,
     * the stream's str header 57 */
    size_t h = stream.len < 32 ? 1 : 2;
    if (stream.len < 256 && n >= 57 + h + stream.len && !memcmp(r, k1, 11) &&
        !memcmp(r + 19, k2, 6) && !memcmp(r + 33, k3, 9) && !memcmp(r + 50, k4, 7) &&
        (h == 1 ? (uint8_t)r[57] == (0xa0 | stream.len)
                : (uint8_t)r[57] == 0xd9 && (uint8_t)r[58] == stream.len))
        return maosd_get_u64(r + 11) == pos && maosd_get_u64(r + 42) == version &&
               !memcmp(r + 57 + h, stream.ptr, stream.len);
    maos_record rec;
    return !maos_record_decode(r, n, &rec) && rec.position == pos &&
           rec.version == version && rec.stream.len == stream.len &&
           !memcmp(rec.stream.ptr, stream.ptr, stream.len);
}

/*
 * Walk one stream from a version (inclusive): its index entries in order
 * (backward: in reverse), and within each entry its events, which are
 * consecutive positions of the events CF: one iterator over the events
 * steps from one to the next and seeks only where an entry starts
 * somewhere else.  The loop ends on the first event not returned, so
 * "next" comes from the index itself, even if the stream grew meanwhile.
 * The events iterator is made after the index iterator: every event an
 * entry names is in its view (they were written in one batch).
 */
/* Version v of stream is not where its index entry says: if a retention
 * pass removed it since this read looked up the stream's first version
 * (its stub collapsed), 1 and *restart = the first version now; else 0
 * (damage). */
static int removed_meanwhile(maosd_store *st, maos_slice stream, uint64_t v,
                             uint64_t *restart)
{
    maosd_smeta m;
    if (maosd_stream_smeta(st, stream, &m) || v >= m.first)
        return 0;
    *restart = m.first;
    return 1;
}

static int scan_index_at(maosd_store *st, maos_slice stream, uint64_t from,
                         maosd_scan *sc, msgpack_sbuffer *out, uint64_t *restart)
{
    char k[MAOSD_KEY_MAX];
    size_t plen = 2 + stream.len; /* 'v' stream 0 */
    maosd_iter *it = maosd_iter_new(st, MAOSD_CF_STREAMS);
    if (!it)
        return MAOS_EOVERLOADED;
    if (from < sc->vmin) {
        if (sc->backward) {
            maosd_iter_free(it);
            return 0; /* all of it removed */
        }
        from = sc->vmin;
    }
    size_t klen = maosd_key_version(k, stream, from);
    maosd_sindex e = {0};
    uint64_t off = 0; /* of the next event within e */
    int have;
    /* The entry at or before `from`.  Forward, `from` past its end is past
     * the head: an entry after it would mean versions missing from the
     * index. */
    maosd_iter_seek_prev(it, k, klen);
    int rc = index_at(it, stream, k, plen, &e, &have);
    if (!rc && !sc->backward && (!have || from - e.first >= e.count)) {
        maosd_iter_seek(it, k, klen);
        rc = index_at(it, stream, k, plen, &e, &have);
        if (!rc && have)
            rc = maosd_store_corrupt("version %llu of stream %.*s is missing from the "
                                     "index (an entry at version %llu follows)",
                                     (unsigned long long)from, (int)stream.len,
                                     stream.ptr, (unsigned long long)e.first);
    } else if (!rc && have) {
        off = from - e.first;
        if (off >= e.count) {
            /* backward from past this entry: from past the head, the last
             * event; an entry after it would mean missing versions */
            maosd_sindex after;
            int more;
            maosd_iter_next(it);
            rc = index_at(it, stream, k, plen, &after, &more);
            if (!rc && more)
                rc = maosd_store_corrupt("version %llu of stream %.*s is missing from "
                                         "the index (an entry at version %llu follows)",
                                         (unsigned long long)from, (int)stream.len,
                                         stream.ptr, (unsigned long long)after.first);
            maosd_iter_seek_prev(it, k, klen);
            off = e.count - 1;
        }
    }
    maosd_iter *ev = NULL;
    if (!rc && have && !(ev = maosd_iter_new(st, MAOSD_CF_EVENTS)))
        rc = MAOS_EOVERLOADED;
    size_t start = out->size;
    uint32_t scanned = 0;
    uint64_t last = 0, evpos = 0;
    int on = 0; /* ev is on evpos */
    int stop = 0;
    while (!rc && !stop && have) {
        uint64_t pos = e.pos + off;
        uint64_t here = sc->next_is_version ? e.first + off : pos;
        if (e.first + off < sc->vmin)
            break; /* backward, down to the first version not removed */
        if (sc->count == sc->limit || scanned == scan_max(sc)) {
            sc->more = 1;
            sc->next = here;
            break;
        }
        if (on && !sc->backward && pos == evpos + 1) {
            maosd_iter_next(ev);
        } else if (on && sc->backward && pos + 1 == evpos) {
            maosd_iter_prev(ev);
        } else {
            char pk[8];
            maosd_iter_seek(ev, pk, maosd_key_event(pk, pos));
        }
        evpos = pos;
        on = 1;
        size_t elen, rlen;
        const char *ek = maosd_iter_key(ev, &elen);
        const char *rec = maosd_iter_value(ev, &rlen);
        if (!ek || elen != 8 || maosd_get_u64(ek) != pos) {
            rc = maosd_iter_status(ev);
            if (!rc && removed_meanwhile(st, stream, e.first + off, restart))
                break; /* forward: from *restart on; backward: nothing more */
            if (!rc)
                rc = maosd_store_corrupt("version %llu of stream %.*s: its event (position "
                                         "%llu) is missing", (unsigned long long)(e.first + off),
                                         (int)stream.len, stream.ptr, (unsigned long long)pos);
            break;
        }
        if (!record_is(rec, rlen, pos, e.first + off, stream)) {
            rc = maosd_store_corrupt("version %llu of stream %.*s: the record at its "
                                     "position %llu is another event (a damaged index)",
                                     (unsigned long long)(e.first + off), (int)stream.len,
                                     stream.ptr, (unsigned long long)pos);
            break;
        }
        if (!fits(out->size - start, rlen, sc->count, sc->budget)) {
            sc->more = 1;
            sc->next = here;
            break;
        }
        rc = scan_take(sc, rec, rlen, pos, 1, out, &stop);
        scanned++;
        last = here;
        if (rc || stop)
            break;
        /* the next event: within e, or in the next (previous) entry */
        maosd_sindex prev = e;
        if (!sc->backward && off + 1 < e.count) {
            off++;
        } else if (sc->backward && off > 0) {
            off--;
        } else {
            if (sc->backward)
                maosd_iter_prev(it);
            else
                maosd_iter_next(it);
            rc = index_at(it, stream, k, plen, &e, &have);
            if (!rc && have)
                rc = sc->backward ? index_follows(stream, &e, &prev)
                                  : index_follows(stream, &prev, &e);
            off = sc->backward ? e.count - 1 : 0;
        }
    }
    sc->scanned += scanned;
    if (!rc)
        rc = maosd_iter_status(it);
    if (!rc && ev)
        rc = maosd_iter_status(ev);
    if (rc && scanned && !stop && !sc->more && sc->backward && last == 0 && rc != MAOS_ENOMEM)
        rc = 0; /* down to version 0: whatever is damaged holds none of it */
    else if (rc && scanned && !stop && !sc->more)
        rc = stop_before_damage(sc, sc->backward ? last - 1 : last + 1, rc);
    maosd_iter_free(ev);
    maosd_iter_free(it);
    return rc == MAOS_ENOT_FOUND ? MAOS_EINTERNAL : rc;
}

/* scan_index_at, started again past what a retention pass removed while
 * it ran (a few times at most: each pass only moves first up). */
static int scan_index(maosd_store *st, maos_slice stream, uint64_t from,
                      maosd_scan *sc, msgpack_sbuffer *out)
{
    for (int tries = 0;; tries++) {
        uint64_t restart = 0;
        int rc = scan_index_at(st, stream, from, sc, out, &restart);
        if (rc || !restart || sc->more)
            return rc;
        if (sc->backward || tries == 8)
            return 0; /* below the first version there is nothing */
        from = sc->vmin = restart;
    }
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
        rc = scan_take(sc, iv, vlen, pos, 0, out, &stop);
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

int maosd_stream_version_position(maosd_store *st, maos_slice stream,
                                  uint64_t version, uint64_t *pos)
{
    uint64_t head;
    int rc = read_head(st, stream, &head);
    if (rc)
        return rc;
    maosd_smeta m;
    if ((rc = maosd_stream_smeta(st, stream, &m)))
        return rc;
    if (version < m.first)
        version = m.first; /* removed: from the first left */
    if (version > head)
        return MAOS_ENOT_FOUND;
    maosd_iter *it = maosd_iter_new(st, MAOSD_CF_STREAMS);
    if (!it)
        return MAOS_EOVERLOADED;
    maosd_sindex e;
    rc = index_find(it, stream, version, &e);
    maosd_iter_free(it);
    if (rc)
        return rc;
    *pos = e.pos + (version - e.first);
    return 0;
}

/*
 * The first version of a stream (0 .. head) whose position is at or after
 * `from` (backward: after it), head + 1 if none.  Positions grow with
 * versions, and within an entry they are consecutive, so one lookup
 * answers for the whole entry: a binary search over versions that steps
 * over whole entries, at most log2(entries) seeks.
 */
static int version_at(maosd_store *st, maos_slice stream, uint64_t head, uint64_t from,
                      int backward, uint64_t *out)
{
    if (backward && from == UINT64_MAX) {
        *out = head + 1; /* every position is at or before it */
        return 0;
    }
    uint64_t t = backward ? from + 1 : from; /* the first position wanted */
    maosd_iter *it = maosd_iter_new(st, MAOSD_CF_STREAMS);
    if (!it)
        return MAOS_EOVERLOADED;
    uint64_t lo = 0, hi = head + 1;
    int rc = 0;
    while (lo < hi) {
        maosd_sindex e;
        if ((rc = index_find(it, stream, lo + (hi - lo) / 2, &e)))
            break;
        /* the part of e within [lo, hi): [a, b), holding the middle */
        uint64_t a = e.first > lo ? e.first : lo;
        uint64_t b = e.first + e.count - 1 < hi - 1 ? e.first + e.count : hi;
        if (t <= e.pos + (a - e.first)) {
            hi = a; /* a is at or after t already */
        } else if (t - e.pos >= b - e.first) {
            lo = b; /* all of [a, b) is before t */
        } else {
            lo = hi = e.first + (t - e.pos);
        }
    }
    maosd_iter_free(it);
    if (!rc)
        *out = lo;
    return rc;
}

int maosd_collect(maosd_store *st, uint64_t from, maosd_scan *sc,
                  msgpack_sbuffer *out)
{
    if (!sc->f || !sc->f->stream.len)
        return scan_log(st, from, sc, out);
    /* An exact stream: walk that stream's index, not the whole log, from
     * the first version at or after the starting position (forward; the
     * last at or before it, backward). */
    maos_slice stream = sc->f->stream;
    uint64_t head, v;
    int rc = read_head(st, stream, &head);
    if (rc == MAOS_ENOT_FOUND)
        return 0; /* nothing, and nothing more */
    if (rc)
        return rc;
    maosd_smeta m;
    if ((rc = maosd_stream_smeta(st, stream, &m)))
        return rc;
    if ((rc = version_at(st, stream, head, from, sc->backward, &v)))
        return rc;
    sc->vmin = m.first;
    if (!sc->backward && v < m.first)
        v = m.first;
    if (sc->backward ? v <= m.first : v > head)
        return 0;
    return scan_index(st, stream, sc->backward ? v - 1 : v, sc, out);
}

/*
 * The reads run on a reader thread (reader.c): the handler moves the
 * request into a job, and the job's run step below is the read, writing
 * its reply frame into the job's buffer.  Only the job and the store are
 * touched there; the budget was taken on the loop thread at submit
 * (maosd_rjob_call).
 */
/* Reply {events: [...], next} around a scan, into the job's buffer. */
static void reply_scan(maosd_rjob *j, maosd_scan *sc, maos_slice stream, uint64_t from)
{
    msgpack_packer pk;
    maosd_rjob_reserve(j);
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
    if (rc) {
        maosd_rjob_fail(j, mark, rc);
        return;
    }
    j->page_more = sc->more;
    j->page_next = sc->next;
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
    maosd_smeta m;
    if ((rc = maosd_stream_smeta(j->store, req->stream, &m))) {
        maosd_rjob_fail(j, j->out.size, rc);
        return;
    }
    if ((m.flags & MAOSD_SMETA_DELETED) && m.first > head) {
        j->rc = MAOS_ENOT_FOUND;
        snprintf(j->why, sizeof(j->why), "stream %.*s was deleted",
                 (int)req->stream.len, req->stream.ptr);
        return;
    }
    maosd_scan sc = {
        .backward = req->backward,
        .upto = UINT64_MAX,
        .limit = req->limit,
        .budget = j->budget,
        .next_is_version = 1,
        .vmin = m.first,
        .form = req->form,
    };
    uint64_t from = req->has_from ? req->from : (req->backward ? head : 0);
    reply_scan(j, &sc, req->stream, from);
}

int maosd_op_read(maosd_call *call)
{
    return maosd_read_call(call, run_read);
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
        .removed = req->removed,
        .form = req->form,
        .rights = j->rights,
        .rights_kind = MAOS_SCOPE_READ,
    };
    uint64_t from = req->has_from ? req->from : (req->backward ? UINT64_MAX : 1);
    reply_scan(j, &sc, (maos_slice){0}, from);
}

int maosd_op_read_all(maosd_call *call)
{
    return maosd_read_call(call, run_read_all);
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
        if (j->rights && !maosd_rights_allow(j->rights, MAOS_SCOPE_READ, si.stream))
            continue; /* not its to see ($audit, a table's or queue's stream) */
        maosd_smeta m;
        if ((rc = maosd_stream_smeta(j->store, si.stream, &m)))
            break;
        if ((m.flags & MAOSD_SMETA_DELETED) && m.first > si.head)
            continue; /* deleted */
        si.count -= m.first; /* removed events are not counted */
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
    return maosd_rjob_call(call, run_streams);
}
