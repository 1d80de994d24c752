/*
 * daemon/write_stream.c -- the event store's write kinds (commit.h):
 * append (one append of a request or txn) and checkpoint (a named
 * subscription position in meta).  Check and stage run on the commit
 * thread, reply on the loop.
 *
 * Append check: the stream head, then idempotency (event ids already
 * stored: the same append re-sent gets its original result and writes
 * nothing; a partial match is a CONFLICT), then the expected version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "dispatch.h"

static int64_t item_index(const maosd_wreq *w, uint32_t i)
{
    return w->req.op == MAOS_OP_TXN ? (int64_t)i : -1;
}

/* First id of item i's events in w->ids. */
static uint8_t *item_ids(maosd_wreq *w, uint32_t i)
{
    return w->ids + 16 * w->out[i].ids_off;
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
static int check_duplicate(maosd_wctx *x, maosd_wreq *w, uint32_t ai,
                           maos_append_result *res, uint8_t *ids)
{
    const maos_append_in *a = w->req.items[ai].append;
    int64_t idx = item_index(w, ai);
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
        int rc = maosd_wx_get(x, MAOSD_CF_IDS, (const char *)e->id, 16, &vlen);
        if (rc && rc != MAOS_ENOT_FOUND)
            return maosd_wfail(w, rc, idx, "id lookup failed: %s", maosd_store_errmsg());
        maos_uuid_format(e->id, idtxt);
        uint64_t pos;
        uint32_t at = j, of = a->n_events; /* an id maosd made: any run matches */
        int made = rc == MAOS_ENOT_FOUND;
        if (made) {
            pos = maosd_id_position(e->id);
            if (pos == 0 || pos > x->st->log_pos) {
                if (present)
                    goto partial;
                continue;
            }
        } else {
            if (vlen != MAOSD_ID_VALUE_LEN)
                return maosd_wfail(w, MAOS_ECORRUPT, idx, "the ids entry of event id %s "
                                   "is %zu bytes, want %d", idtxt, vlen,
                                   MAOSD_ID_VALUE_LEN);
            pos = maosd_get_u64(x->getbuf);
            at = maosd_get_u32(x->getbuf + 8);
            of = maosd_get_u32(x->getbuf + 12);
        }
        char k[8];
        rc = maosd_wx_get(x, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos), &vlen);
        if (rc == MAOS_ENOT_FOUND && made) { /* removed (retention): a new id here */
            if (present)
                goto partial;
            continue;
        }
        if (rc)
            return maosd_wfail(w, rc == MAOS_ENOT_FOUND ? MAOS_ECORRUPT : rc, idx,
                               "event %llu of an indexed id %s",
                               (unsigned long long)pos,
                               rc == MAOS_ENOT_FOUND ? "is missing" : maosd_store_errmsg());
        maos_record rec;
        if (maos_record_decode(x->getbuf, vlen, &rec))
            return maosd_wfail(w, MAOS_ECORRUPT, idx, "the record at position %llu "
                               "does not decode", (unsigned long long)pos);
        if (made && memcmp(rec.id.ptr, e->id, 16)) { /* another event's place */
            if (present)
                goto partial;
            continue;
        }
        if (present < j)
            goto partial;
        if (rec.stream.len != a->stream.len ||
            memcmp(rec.stream.ptr, a->stream.ptr, a->stream.len))
            return maosd_wfail(w, MAOS_ECONFLICT, idx,
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
            return maosd_wfail(w, MAOS_ECONFLICT, idx,
                               "event id %s was stored by a different append", idtxt);
        maos_slice removed;
        if (!slice_eq_raw(e->type, rec.type, 0) ||
            (!maos_record_stub(x->getbuf, vlen, &removed) && /* a stub: data gone */
             (!slice_eq_raw(e->data, rec.data, 0xc0) ||
              !slice_eq_raw(e->meta, rec.meta, 0x80))))
            return maosd_wfail(w, MAOS_ECONFLICT, idx,
                               "event id %s is already used for a different event",
                               idtxt);
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
    return maosd_wfail(w, MAOS_ECONFLICT, idx,
                       "some events of this append are already stored (by id) and "
                       "some are not; a retry must resend the same events with the "
                       "same ids");
}

static int check_expected(maosd_wreq *w, uint32_t ai, const maosd_item_out *o)
{
    const maos_append_in *a = w->req.items[ai].append;
    int64_t idx = item_index(w, ai);
    int ok;
    switch (a->expect) {
    case MAOS_EXPECT_ANY: ok = 1; break;
    case MAOS_EXPECT_NO_STREAM: ok = !o->exists; break;
    case MAOS_EXPECT_EXISTS: ok = o->exists; break;
    default: ok = o->exists && o->head == (uint64_t)a->expect; break;
    }
    if (ok)
        return 0;
    w->has_actual = 1;
    w->actual = o->exists ? (int64_t)o->head : -1;
    char want[32];
    if (a->expect >= 0)
        snprintf(want, sizeof(want), "version %lld", (long long)a->expect);
    else
        snprintf(want, sizeof(want), "%s",
                 a->expect == MAOS_EXPECT_NO_STREAM ? "no stream" : "an existing stream");
    if (o->exists)
        return maosd_wfail(w, MAOS_EWRONG_EXPECTED_VERSION, idx,
                           "stream %.*s is at version %llu, expected %s",
                           (int)a->stream.len, a->stream.ptr,
                           (unsigned long long)o->head, want);
    return maosd_wfail(w, MAOS_EWRONG_EXPECTED_VERSION, idx,
                       "stream %.*s does not exist, expected %s", (int)a->stream.len,
                       a->stream.ptr, want);
}

int maosd_check_append(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    maosd_item_out *o = &w->out[i];
    const maos_append_in *a = w->req.items[i].append;
    int rc = maosd_wx_stream_head(x, a->stream, &o->exists, &o->head);
    if (rc)
        return maosd_wfail(w, rc, -1, "cannot read the stream head: %s",
                           maosd_store_errmsg());
    rc = check_duplicate(x, w, i, &o->append, item_ids(w, i));
    if (rc)
        return rc; /* 1: a re-send, its original result; or an error */
    rc = check_expected(w, i, o);
    return rc < 0 ? rc : 0;
}

/* The records are encoded into w->recs (kept for the subscriptions'
 * fan-out) and copied into the batch from there (maosd_wx_event).  The
 * append's events take the next positions one after the other (nothing
 * else is staged in between), so one index entry covers them all. */
int maosd_stage_append(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_append_in *a = w->req.items[i].append;
    maosd_item_out *o = &w->out[i];
    maos_append_result *res = &o->append;
    uint8_t *ids = item_ids(w, i);
    uint64_t v0 = o->exists ? o->head + 1 : 0;
    res->stream = a->stream;
    res->first_version = v0;
    res->first_position = x->st->log_pos + 1;
    res->count = a->n_events;
    res->duplicate = 0;
    res->ids.ptr = (const char *)ids;
    res->ids.len = a->n_events * 16;
    for (uint32_t j = 0; j < a->n_events; j++) {
        const maos_event_in *e = &a->events[j];
        if (maosd_wx_event(x, w, a->stream, v0 + j, e->type, e->has_id ? e->id : NULL,
                           ids + 16 * j, j, a->n_events, e->data, e->meta, NULL))
            return MAOS_ENOMEM;
    }
    maosd_wx_stream_appended(x, a->stream, v0, res->first_position, a->n_events);
    return 0;
}

int maosd_reply_append(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    if (top)
        return maos_enc_reply_append(pk, w->req.rid, 0, &w->out[i].append, 1);
    maos_txn_result r = {.kind = MAOS_ITEM_APPEND, .append = w->out[i].append};
    return maos_enc_txn_result(pk, &r);
}

int maosd_check_checkpoint(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)x;
    (void)w;
    (void)i;
    return 0;
}

int maosd_stage_checkpoint(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    const maos_item_in *it = &w->req.items[i];
    char k[MAOSD_CHECKPOINT_KEY_MAX], v[8];
    maosd_put_u64(v, it->position);
    maosd_batch_put(x->batch, MAOSD_CF_META, k, maosd_key_checkpoint(k, it->name), v, 8);
    return 0;
}

int maosd_reply_checkpoint(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)i;
    if (top)
        return maos_enc_reply_ok(pk, w->req.rid);
    maos_txn_result r = {.kind = MAOS_ITEM_CHECKPOINT};
    return maos_enc_txn_result(pk, &r);
}
