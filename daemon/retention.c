/*
 * daemon/retention.c -- retention (docs/ARCHITECTURE.md "Retention"):
 * rules that keep a stream's last N events or its events younger than D,
 * per stream or per category; truncation of a stream before a version;
 * deletion of a stream; and the passes that remove what they remove.
 *
 *  - op stream_meta (write kind STREAM_META): check reads the stream's
 *    meta ('m' key, keys.h) or the category's rule and works out the new
 *    one, stage writes it and records the change in $system.  A rule
 *    replaces the old one; `first` (versions below it are removed) only
 *    ever grows.  Then a pass runs at once.
 *  - the pass (write kind RETAIN, maosd's own, every retention_interval_s
 *    and after every change, again at once while work is left): for every
 *    stream with a meta key or under a category rule, `first` moves up to
 *    what the rule keeps, and the records below it become stubs
 *    (maos_enc_stub: the record without data and meta, with the hash of
 *    the record it replaces), at most PASS_EVENTS per pass.  Then stubs at
 *    the start of the log collapse: all but the last are deleted with
 *    their ids entries, and meta log_anchor names the one kept.
 *
 * Invariants:
 *  - no read returns a version below its stream's `first` (op_stream.c);
 *    no scan returns a stub unless it asks (read_all {removed: true});
 *  - a stub's prev and its "removed" hash link the chain as the record
 *    did, so verify runs through stubs; below log_anchor nothing is left,
 *    and the stub at log_anchor is where the chain starts;
 *  - the head record is never deleted (recovery checks it); it may be a
 *    stub (maosd_record_hash);
 *  - only the commit thread writes any of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "keys.h"
#include "dispatch.h"
#include "readahead.h"
#include "retention.h"

/* Work of one pass, so a group stays small: records made stubs or read
 * for their age, and stubs collapsed. */
#define PASS_EVENTS 4096
#define PASS_COLLAPSE 8192

void maosd_record_hash(const char *rec, size_t len, uint8_t out[MAOS_HASH_BYTES])
{
    maos_slice h;
    if (maos_record_stub(rec, len, &h))
        memcpy(out, h.ptr, MAOS_HASH_BYTES);
    else
        crypto_generichash(out, MAOS_HASH_BYTES, (const unsigned char *)rec, len, NULL, 0);
}

static int reserved(maos_slice name)
{
    return name.len && name.ptr[0] == '$';
}

/* ---- reads through the batch (commit thread) ------------------------------------------ */

static int get_smeta(maosd_wctx *x, maos_slice stream, maosd_smeta *m, int *has)
{
    char k[MAOSD_KEY_MAX];
    size_t vlen;
    int rc = maosd_wx_get(x, MAOSD_CF_STREAMS, k, maosd_key_smeta(k, stream), &vlen);
    memset(m, 0, sizeof(*m));
    *has = rc == 0;
    if (rc == MAOS_ENOT_FOUND)
        return 0;
    if (rc)
        return rc;
    if (maosd_smeta_decode(x->getbuf, vlen, m))
        return maosd_store_corrupt("the meta of stream %.*s (streams 'm' key) is malformed",
                                   (int)stream.len, stream.ptr);
    return 0;
}

typedef struct rule {
    uint64_t max_count, max_age_ms;
} rule;

/* The category rule of `category`: 1 and *r, or 0 (none). */
static int get_rule(maosd_wctx *x, maos_slice category, rule *r)
{
    char k[MAOSD_RETENTION_KEY_MAX];
    size_t vlen;
    int rc = maosd_wx_get(x, MAOSD_CF_META, k, maosd_key_retention(k, category), &vlen);
    if (rc == MAOS_ENOT_FOUND)
        return 0;
    if (rc)
        return rc;
    if (vlen != 16)
        return maosd_store_corrupt("the retention rule of category %.*s is %zu bytes, "
                                   "want 16", (int)category.len, category.ptr, vlen);
    r->max_count = maosd_get_u64(x->getbuf);
    r->max_age_ms = maosd_get_u64(x->getbuf + 8);
    return 1;
}

/* The index entry holding version v of stream (keys.h). */
static int index_span(maosd_wctx *x, maos_slice stream, uint64_t v, maosd_sindex *e)
{
    char k[MAOSD_KEY_MAX];
    size_t plen = 2 + stream.len;
    size_t klen = maosd_key_version(k, stream, v);
    maosd_iter *it = maosd_wx_iter(x, MAOSD_CF_STREAMS, k, plen);
    if (!it)
        return MAOS_ENOMEM;
    maosd_iter_seek_prev(it, k, klen);
    int rc = maosd_iter_status(it);
    if (!rc && !maosd_iter_valid(it))
        rc = MAOS_ENOT_FOUND;
    if (!rc) {
        size_t ikl, ivl;
        const char *ik = maosd_iter_key(it, &ikl);
        const char *iv = maosd_iter_value(it, &ivl);
        if (ikl < plen || memcmp(ik, k, plen) || maosd_sindex_decode(ik, ikl, plen, iv, ivl, e))
            rc = MAOS_ENOT_FOUND;
        else if (v - e->first >= e->count)
            rc = MAOS_ENOT_FOUND;
    }
    maosd_iter_free(it);
    if (rc == MAOS_ENOT_FOUND)
        return maosd_store_corrupt("version %llu of stream %.*s is missing from the index",
                                   (unsigned long long)v, (int)stream.len, stream.ptr);
    return rc;
}

/* ---- the pass (write kind RETAIN) -------------------------------------------------------- */

typedef struct pass {
    maosd_wctx *x;
    uint32_t budget;          /* events left to touch in this pass */
    uint64_t removed;         /* stubs made */
    int moved;                /* a stream's first version moved */
    int more;                 /* stopped with work left */
    msgpack_sbuffer stub;     /* scratch for one stub */
} pass;

/* Where a round of passes over the streams stands: the next pass starts
 * there (kept by the loop between passes, srv->retain_cursor). */
typedef struct retain_cursor {
    int phase;                /* 0: streams with meta keys; 1: category rules */
    uint32_t cat_len, stream_len;
    char cat[MAOS_STREAM_MAX];    /* phase 1: the category */
    char stream[MAOS_STREAM_MAX]; /* the stream to resume at (phase 1: the
                                   * name after the category); len 0: the first */
} retain_cursor;

/* What a pass reports to the loop (the request's done_arg). */
typedef struct retain_out {
    retain_cursor cur;        /* in: where to start; out: where to go on */
    uint64_t removed;
    uint64_t anchor;          /* the log anchor after the pass */
    int moved;                /* a stream's first version moved */
    int more;
} retain_out;

/* The record at pos (into x->getbuf). */
static int get_record(maosd_wctx *x, uint64_t pos, size_t *len)
{
    char k[8];
    int rc = maosd_wx_get(x, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos), len);
    if (rc == MAOS_ENOT_FOUND)
        return maosd_store_corrupt("the event at position %llu is missing",
                                   (unsigned long long)pos);
    return rc;
}

/* Replace the record at pos by its stub (nothing if it is one already). */
static int make_stub(pass *p, uint64_t pos)
{
    size_t len;
    maos_slice h;
    maos_record r;
    uint8_t hash[MAOS_HASH_BYTES];
    int rc = get_record(p->x, pos, &len);
    if (rc)
        return rc;
    if (maos_record_stub(p->x->getbuf, len, &h))
        return 0;
    if (maos_record_decode(p->x->getbuf, len, &r) || r.position != pos)
        return maosd_store_corrupt("the record at position %llu does not decode",
                                   (unsigned long long)pos);
    crypto_generichash(hash, sizeof hash, (const unsigned char *)r.raw.ptr, r.raw.len,
                       NULL, 0);
    msgpack_packer pk;
    p->stub.size = 0;
    msgpack_packer_init(&pk, &p->stub, msgpack_sbuffer_write);
    if (maos_enc_stub(&pk, &r, hash))
        return MAOS_ENOMEM;
    char k[8];
    maosd_batch_put(p->x->batch, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos), p->stub.data,
                    p->stub.size);
    p->removed++;
    return 0;
}

/* One stream: move `first` up to what the rule keeps (r may be NULL),
 * and make stubs of what is below it, within the pass's budget. */
static int retain_stream(pass *p, maos_slice stream, const maosd_smeta *m0, int has_m,
                         const rule *r)
{
    maosd_wctx *x = p->x;
    int exists;
    uint64_t head;
    int rc = maosd_wx_stream_head(x, stream, &exists, &head);
    if (rc || !exists)
        return rc;
    maosd_smeta m = *m0;
    uint64_t target = m.first;
    maosd_sindex e = {0};
    if ((m.flags & MAOSD_SMETA_DELETED) && head >= m.first)
        m.flags &= ~MAOSD_SMETA_DELETED; /* written again since */
    if (r && r->max_count && head + 1 > r->max_count && head + 1 - r->max_count > target)
        target = head + 1 - r->max_count;
    /* an age past the epoch: nothing is that old */
    if (r && r->max_age_ms && r->max_age_ms < (uint64_t)x->now / 1000) {
        int64_t cutoff = x->now - (int64_t)(r->max_age_ms * 1000);
        while (target <= head && p->budget) {
            if (!e.count || target - e.first >= e.count)
                if ((rc = index_span(x, stream, target, &e)))
                    return rc;
            size_t len;
            maos_record rec;
            if ((rc = get_record(x, e.pos + (target - e.first), &len)))
                return rc;
            if (maos_record_decode(x->getbuf, len, &rec))
                return maosd_store_corrupt("the record at position %llu does not decode",
                                           (unsigned long long)(e.pos + (target - e.first)));
            if (rec.time >= cutoff)
                break;
            p->budget--;
            target++;
        }
        if (target <= head && !p->budget)
            p->more = 1;
    }
    if (target > head + 1)
        target = head + 1;
    uint64_t v = m.done;
    while (v < target && p->budget) {
        if (!e.count || v < e.first || v - e.first >= e.count)
            if ((rc = index_span(x, stream, v, &e)))
                return rc;
        if ((rc = make_stub(p, e.pos + (v - e.first))))
            return rc;
        p->budget--;
        v++;
    }
    if (v < target)
        p->more = 1;
    if (target > m.first)
        p->moved = 1;
    m.first = target > m.first ? target : m.first;
    m.done = v;
    if (has_m ? !memcmp(&m, m0, sizeof m) : m.first == 0)
        return 0;
    char k[MAOSD_KEY_MAX], val[MAOSD_SMETA_LEN];
    maosd_smeta_value(val, &m);
    maosd_batch_put(x->batch, MAOSD_CF_STREAMS, k, maosd_key_smeta(k, stream), val,
                    sizeof val);
    return 0;
}

/* Names collected before any write (a batch iterator is invalid after
 * one): back to back in names, offsets in off. */
typedef struct namelist {
    msgpack_sbuffer names;
    size_t *off;
    uint32_t n, cap;
} namelist;

static int names_add(namelist *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? 2 * l->cap : 64;
        size_t *o = realloc(l->off, (cap + 1) * sizeof(*o));
        if (!o)
            return MAOS_ENOMEM;
        l->off = o;
        l->cap = cap;
    }
    if (!l->n)
        l->off[0] = 0;
    if (len && msgpack_sbuffer_write(&l->names, s, len)) /* "": the category's own name */
        return MAOS_ENOMEM;
    l->off[++l->n] = l->names.size;
    return 0;
}

static maos_slice names_at(const namelist *l, uint32_t i)
{
    uint32_t len = (uint32_t)(l->off[i + 1] - l->off[i]);
    return (maos_slice){len ? l->names.data + l->off[i] : "", len};
}

static void names_free(namelist *l)
{
    msgpack_sbuffer_destroy(&l->names);
    free(l->off);
}

/* Up to max keys of cf under prefix, from prefix + start on (inclusive),
 * without the prefix, into l. */
static int collect(maosd_wctx *x, maosd_cf cf, const char *prefix, size_t plen,
                   maos_slice start, uint32_t max, namelist *l)
{
    char k[MAOSD_KEY_MAX + MAOSD_RETENTION_KEY_MAX];
    if (plen + start.len > sizeof k)
        return MAOS_EINTERNAL;
    maosd_iter *it = maosd_wx_iter(x, cf, prefix, plen);
    if (!it)
        return MAOS_ENOMEM;
    memcpy(k, prefix, plen);
    if (start.len)
        memcpy(k + plen, start.ptr, start.len);
    int rc = 0;
    for (maosd_iter_seek(it, k, plen + start.len); !rc && l->n < max && maosd_iter_valid(it);
         maosd_iter_next(it)) {
        size_t klen;
        const char *ik = maosd_iter_key(it, &klen);
        if (klen < plen || memcmp(ik, prefix, plen))
            break;
        rc = names_add(l, ik + plen, klen - plen);
    }
    if (!rc)
        rc = maosd_iter_status(it);
    maosd_iter_free(it);
    return rc;
}

static void cursor_set(retain_cursor *cur, int phase, maos_slice cat, maos_slice stream)
{
    cur->phase = phase;
    cur->cat_len = cat.len;
    if (cat.len)
        memcpy(cur->cat, cat.ptr, cat.len);
    cur->stream_len = stream.len;
    if (stream.len)
        memcpy(cur->stream, stream.ptr, stream.len);
}

/* Phase 0: the streams with a meta key (their own rule, their category's,
 * or a truncation still to carry out).  1 when the pass stops inside it
 * (the cursor then names the stream to resume at), 0 when all are done,
 * or an error. */
static int retain_metas(pass *p, retain_cursor *cur)
{
    maosd_wctx *x = p->x;
    namelist metas = {0};
    msgpack_sbuffer_init(&metas.names);
    int rc = collect(x, MAOSD_CF_STREAMS, "m", 1,
                     (maos_slice){cur->stream, cur->stream_len}, p->budget + 1, &metas);
    for (uint32_t i = 0; !rc && i < metas.n; i++) {
        maos_slice s = names_at(&metas, i);
        maosd_smeta m;
        int has;
        rule r, *rp = NULL;
        if (!p->budget) {
            cursor_set(cur, 0, (maos_slice){0}, s);
            rc = 1;
            break;
        }
        p->budget--; /* a stream looked at costs as one event */
        if ((rc = get_smeta(x, s, &m, &has)))
            break;
        if (m.flags & MAOSD_SMETA_RULE) {
            r = (rule){m.max_count, m.max_age_ms};
            rp = &r;
        } else if ((rc = get_rule(x, maos_category(s), &r)) > 0) {
            rp = &r;
        }
        if (rc >= 0)
            rc = retain_stream(p, s, &m, has, rp);
        if (!rc && p->more) {
            cursor_set(cur, 0, (maos_slice){0}, s);
            rc = 1;
        }
    }
    names_free(&metas);
    return rc;
}

/* Phase 1: the streams of every category with a rule that have no meta
 * key of their own (those were phase 0's).  As retain_metas. */
static int retain_categories(pass *p, retain_cursor *cur)
{
    maosd_wctx *x = p->x;
    namelist cats = {0};
    msgpack_sbuffer_init(&cats.names);
    int rc = collect(x, MAOSD_CF_META, MAOSD_RETENTION_PREFIX,
                     sizeof(MAOSD_RETENTION_PREFIX) - 1, (maos_slice){cur->cat, cur->cat_len},
                     UINT32_MAX, &cats);
    for (uint32_t i = 0; !rc && i < cats.n; i++) {
        char cat_[MAOS_STREAM_MAX];
        maos_slice cat = names_at(&cats, i);
        memcpy(cat_, cat.ptr, cat.len);
        cat.ptr = cat_;
        rule r;
        if ((rc = get_rule(x, cat, &r)) <= 0)
            continue; /* an error (rc < 0) ends the loop */
        rc = 0;
        /* the category's streams ('h' keys): cat itself and cat-... */
        maos_slice from = {0};
        if (cur->cat_len == cat.len && !memcmp(cur->cat, cat.ptr, cat.len))
            from = (maos_slice){cur->stream, cur->stream_len};
        namelist ss = {0};
        msgpack_sbuffer_init(&ss.names);
        char hk[MAOSD_KEY_MAX];
        rc = collect(x, MAOSD_CF_STREAMS, hk, maosd_key_head(hk, cat), from, p->budget + 1,
                     &ss);
        for (uint32_t j = 0; !rc && j < ss.n; j++) {
            char full[MAOS_STREAM_MAX];
            maos_slice tail = names_at(&ss, j);
            if (!p->budget) {
                cursor_set(cur, 1, cat, tail);
                rc = 1;
                break;
            }
            p->budget--;
            if (cat.len + tail.len > sizeof full)
                continue;
            memcpy(full, cat.ptr, cat.len);
            memcpy(full + cat.len, tail.ptr, tail.len);
            maos_slice s = {full, cat.len + tail.len};
            if (maos_category(s).len != cat.len)
                continue; /* "catx-..." is another category */
            maosd_smeta m;
            int has;
            if ((rc = get_smeta(x, s, &m, &has)) || has)
                continue; /* a meta key: phase 0's */
            rc = retain_stream(p, s, &m, 0, &r);
            if (!rc && p->more) {
                cursor_set(cur, 1, cat, tail);
                rc = 1;
            }
        }
        names_free(&ss);
    }
    names_free(&cats);
    return rc;
}

/* The streams a pass looks at, from the cursor on: phase 0, then 1; a
 * pass that runs out of budget leaves the cursor where it stopped and
 * more set, so passes go round every stream however many there are. */
static int retain_streams(pass *p, retain_cursor *cur)
{
    int rc = 0;
    if (cur->phase == 0) {
        rc = retain_metas(p, cur);
        if (rc == 0)
            cursor_set(cur, 1, (maos_slice){0}, (maos_slice){0});
    }
    if (rc == 0)
        rc = retain_categories(p, cur);
    if (rc == 0) {
        cursor_set(cur, 0, (maos_slice){0}, (maos_slice){0}); /* round done */
        return 0;
    }
    if (rc == 1) {
        p->more = 1;
        return 0;
    }
    return rc;
}

/* Stubs at the start of the log: all but the last of a run go, with
 * their ids entries; the last is the anchor.  Never the head record. */
static int collapse(pass *p, uint64_t *anchor)
{
    maosd_wctx *x = p->x;
    size_t vlen;
    uint64_t from = 1;
    int rc = maosd_wx_get(x, MAOSD_CF_META, MAOSD_META_LOG_ANCHOR,
                          strlen(MAOSD_META_LOG_ANCHOR), &vlen);
    if (rc == 0 && vlen == 8)
        from = maosd_get_u64(x->getbuf);
    else if (rc == 0)
        return maosd_store_corrupt("meta %s is %zu bytes, want 8", MAOSD_META_LOG_ANCHOR,
                                   vlen);
    else if (rc != MAOS_ENOT_FOUND)
        return rc;
    *anchor = rc == 0 ? from : 0;
    uint64_t *pos = malloc(PASS_COLLAPSE * sizeof(*pos));
    uint8_t *ids = malloc(PASS_COLLAPSE * 16);
    maosd_iter *it = pos && ids ? maosd_wx_iter(x, MAOSD_CF_EVENTS, "", 0) : NULL;
    if (!it) {
        free(pos);
        free(ids);
        return MAOS_ENOMEM;
    }
    uint32_t n = 0;
    char k[8];
    maosd_iter_seek(it, k, maosd_key_event(k, from));
    for (; n < PASS_COLLAPSE && maosd_iter_valid(it); maosd_iter_next(it)) {
        size_t klen, rlen;
        const char *ik = maosd_iter_key(it, &klen);
        const char *rv = maosd_iter_value(it, &rlen);
        maos_slice h;
        maos_record r;
        if (klen != 8)
            break;
        uint64_t at = maosd_get_u64(ik);
        if (at >= x->st->log_pos || (n && at != pos[n - 1] + 1) ||
            !maos_record_stub(rv, rlen, &h) || maos_record_decode(rv, rlen, &r))
            break;
        pos[n] = at;
        memcpy(ids + 16 * n, r.id.ptr, 16);
        n++;
    }
    rc = maosd_iter_status(it);
    maosd_iter_free(it);
    if (!rc && n >= 2) {
        for (uint32_t i = 0; i + 1 < n; i++) {
            maosd_batch_delete(x->batch, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos[i]));
            maosd_batch_delete(x->batch, MAOSD_CF_IDS, ids + 16 * i, 16);
        }
        char v[8];
        maosd_put_u64(v, pos[n - 1]);
        maosd_batch_put(x->batch, MAOSD_CF_META, MAOSD_META_LOG_ANCHOR,
                        strlen(MAOSD_META_LOG_ANCHOR), v, 8);
        *anchor = pos[n - 1];
        if (n == PASS_COLLAPSE)
            p->more = 1;
    }
    free(pos);
    free(ids);
    return rc;
}

int maosd_stage_retain(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)i;
    retain_out *out = w->done_arg;
    pass p = {.x = x, .budget = PASS_EVENTS};
    msgpack_sbuffer_init(&p.stub);
    uint64_t anchor = 0;
    int rc = retain_streams(&p, &out->cur);
    if (!rc)
        rc = collapse(&p, &anchor);
    msgpack_sbuffer_destroy(&p.stub);
    if (rc)
        return rc;
    out->removed = p.removed;
    out->anchor = anchor;
    out->moved = p.moved;
    out->more = p.more;
    return 0;
}

/* ---- op stream_meta (write kind STREAM_META) ------------------------------------------ */

/* The change check worked out, for stage and the reply (done_arg). */
typedef struct smeta_job {
    maos_stream_meta_out out;
    maosd_smeta m;            /* the stream's new meta */
    int write_m;
    int write_rule, delete_rule;
    rule r;                   /* the category's new rule */
} smeta_job;

int maosd_check_stream_meta(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)i;
    const maos_request *req = &w->req;
    const maos_stream_meta_in *in = &req->smeta;
    smeta_job *j = w->done_arg;
    /* maosd's own streams take a rule (so that the log's start can be
     * collapsed past them), never a truncation or deletion */
    if ((in->has_truncate_before || in->delete_) && reserved(req->stream))
        return maosd_wfail(w, MAOS_EINVALID_NAME, -1, "stream %.*s is maosd's own: it "
                           "takes a retention rule, not a truncation or deletion",
                           (int)req->stream.len, req->stream.ptr);
    if (in->category.len) {
        rule r = {0, 0};
        int rc = get_rule(x, in->category, &r);
        if (rc < 0)
            return maosd_wfail(w, rc, -1, "cannot read the rule: %s", maosd_store_errmsg());
        if (in->set) {
            j->r = (rule){in->max_count, in->max_age_ms};
            j->write_rule = in->max_count || in->max_age_ms;
            j->delete_rule = !j->write_rule && rc > 0;
            r = j->r;
        } else if (in->clear) {
            j->delete_rule = rc > 0;
            r = (rule){0, 0};
        }
        j->out.max_count = r.max_count;
        j->out.max_age_ms = r.max_age_ms;
        return j->write_rule || j->delete_rule ? 0 : 1;
    }
    maosd_smeta m;
    int has, exists;
    uint64_t head;
    int rc = get_smeta(x, req->stream, &m, &has);
    if (!rc)
        rc = maosd_wx_stream_head(x, req->stream, &exists, &head);
    if (rc)
        return maosd_wfail(w, rc, -1, "cannot read the stream: %s", maosd_store_errmsg());
    maosd_smeta old = m;
    if ((in->has_truncate_before || in->delete_) && !exists)
        return maosd_wfail(w, MAOS_ENOT_FOUND, -1, "stream %.*s not found",
                           (int)req->stream.len, req->stream.ptr);
    if (in->has_truncate_before) {
        if (in->truncate_before > head + 1)
            return maosd_wfail(w, MAOS_EBAD_REQUEST, -1,
                               "stream %.*s is at version %llu: truncate_before may be at "
                               "most %llu", (int)req->stream.len, req->stream.ptr,
                               (unsigned long long)head, (unsigned long long)head + 1);
        if (in->truncate_before > m.first)
            m.first = in->truncate_before;
        m.flags &= ~MAOSD_SMETA_DELETED; /* truncated, not deleted */
    }
    if (in->delete_) {
        m.first = head + 1;
        m.flags |= MAOSD_SMETA_DELETED;
    }
    if (in->set) {
        m.max_count = in->max_count;
        m.max_age_ms = in->max_age_ms;
        m.flags = (m.flags & ~MAOSD_SMETA_RULE) |
                  (in->max_count || in->max_age_ms ? MAOSD_SMETA_RULE : 0);
    } else if (in->clear) {
        m.max_count = m.max_age_ms = 0;
        m.flags &= ~MAOSD_SMETA_RULE;
    }
    j->m = m;
    j->write_m = memcmp(&m, &old, sizeof m) != 0;
    j->out.is_stream = 1;
    j->out.max_count = m.max_count;
    j->out.max_age_ms = m.max_age_ms;
    j->out.first_version = m.first;
    j->out.head = exists ? (int64_t)head : -1;
    j->out.deleted = (m.flags & MAOSD_SMETA_DELETED) && exists && m.first > head;
    return j->write_m ? 0 : 1;
}

/* The change, as an admin record of $audit (audit.h). */
static void change_record(const maosd_wreq *w, maosd_audit *a)
{
    const maos_stream_meta_in *in = &w->req.smeta;
    const smeta_job *j = w->done_arg;
    maosd_audit_begin_writer(a, "stream_meta", w);
    if (w->req.stream.len)
        maosd_audit_str(a, "stream", w->req.stream);
    else
        maosd_audit_str(a, "category", in->category);
    maosd_audit_u64(a, "max_count", j->out.max_count);
    maosd_audit_u64(a, "max_age_ms", j->out.max_age_ms);
    if (in->has_truncate_before)
        maosd_audit_u64(a, "truncate_before", in->truncate_before);
    if (in->delete_)
        maosd_audit_bool(a, "delete", 1);
}

int maosd_stage_stream_meta(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)i;
    smeta_job *j = w->done_arg;
    const maos_stream_meta_in *in = &w->req.smeta;
    if (j->write_m) {
        char k[MAOSD_KEY_MAX], v[MAOSD_SMETA_LEN];
        maosd_smeta_value(v, &j->m);
        maosd_batch_put(x->batch, MAOSD_CF_STREAMS, k, maosd_key_smeta(k, w->req.stream), v,
                        sizeof v);
    }
    if (j->write_rule || j->delete_rule) {
        char k[MAOSD_RETENTION_KEY_MAX], v[16];
        size_t klen = maosd_key_retention(k, in->category);
        maosd_put_u64(v, j->r.max_count);
        maosd_put_u64(v + 8, j->r.max_age_ms);
        if (j->write_rule)
            maosd_batch_put(x->batch, MAOSD_CF_META, k, klen, v, 16);
        else
            maosd_batch_delete(x->batch, MAOSD_CF_META, k, klen);
    }
    /* the change and its audit record: one write */
    maosd_audit a;
    change_record(w, &a);
    return maosd_audit_stage(x, w, &a);
}

int maosd_reply_stream_meta(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)i;
    (void)top;
    const smeta_job *j = w->done_arg;
    return maos_enc_reply_stream_meta(pk, w->req.rid, &j->out);
}

int maosd_reply_retain(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top)
{
    (void)pk;
    (void)w;
    (void)i;
    (void)top;
    return 0; /* maosd's own: nobody to answer */
}

/* ---- the loop: passes and the op ------------------------------------------------------- */

static void run_pass(maosd_server *srv);

static void on_timer(uv_timer_t *t)
{
    run_pass(t->data);
}

static void schedule(maosd_server *srv, uint64_t ms)
{
    if (srv->retention_on && !srv->stopping)
        uv_timer_start(&srv->retention_timer, on_timer, ms, 0);
}

/* A read-ahead page may hold versions that are removed now: a full page
 * never changes, except by a removal (readahead.c). */
static void drop_read_ahead(maosd_server *srv)
{
    for (maosd_conn *c = srv->conns; c; c = c->next)
        maosd_ahead_drop(c);
}

static void pass_done(maosd_server *srv, maosd_wreq *w)
{
    retain_out *out = w->done_arg;
    srv->retention_pending = 0;
    int more = 0;
    if (w->code) {
        maosd_log(MAOSD_LOG_ERROR, "retention: %s: %s", maos_err_name(w->code),
                  w->why ? w->why : "-");
    } else {
        if (out->removed || out->moved)
            drop_read_ahead(srv);
        if (out->removed) {
            srv->events_removed += out->removed;
            maosd_logf(MAOSD_LOG_DEBUG, "retention: %llu events removed",
                       (unsigned long long)out->removed);
        }
        srv->log_anchor = out->anchor;
        more = out->more;
        if (srv->retain_cursor)
            *srv->retain_cursor = out->cur; /* where the next pass goes on */
    }
    free(out);
    w->done_arg = NULL;
    maosd_wreq_free(w);
    if (more || srv->retention_again) {
        srv->retention_again = 0;
        schedule(srv, 0);
    } else {
        schedule(srv, (uint64_t)srv->cfg->retention_interval_s * 1000);
    }
}

static void run_pass(maosd_server *srv)
{
    if (srv->stopping || !srv->retention_on)
        return;
    if (srv->retention_pending) {
        srv->retention_again = 1;
        return;
    }
    if (maosd_store_state(srv->store) != MAOSD_STORE_OK) {
        schedule(srv, (uint64_t)srv->cfg->retention_interval_s * 1000);
        return;
    }
    if (!srv->retain_cursor)
        srv->retain_cursor = calloc(1, sizeof(*srv->retain_cursor));
    retain_out *out = srv->retain_cursor ? calloc(1, sizeof(*out)) : NULL;
    if (out)
        out->cur = *srv->retain_cursor;
    maosd_wreq *w = out ? maosd_own_item(MAOSD_ITEM_RETAIN, 0) : NULL;
    if (!w) {
        free(out);
        schedule(srv, 1000); /* try again */
        return;
    }
    w->done = pass_done;
    w->done_arg = out;
    srv->retention_pending = 1;
    maosd_submit(srv, w);
}

int maosd_retention_init(maosd_server *srv)
{
    /* the anchor for stats, also --read-only (verify starts there) */
    char v[8];
    size_t vlen;
    if (!maosd_store_get(srv->store, MAOSD_CF_META, MAOSD_META_LOG_ANCHOR,
                         strlen(MAOSD_META_LOG_ANCHOR), v, sizeof v, &vlen) &&
        vlen == 8)
        srv->log_anchor = maosd_get_u64(v);
    uv_timer_init(srv->loop, &srv->retention_timer);
    srv->retention_timer.data = srv;
    srv->retention_on = 1;
    return 0;
}

void maosd_retention_start(maosd_server *srv)
{
    run_pass(srv);
}

void maosd_retention_close(maosd_server *srv)
{
    if (!srv->retention_on)
        return;
    srv->retention_on = 0;
    uv_timer_stop(&srv->retention_timer);
    uv_close((uv_handle_t *)&srv->retention_timer, NULL);
    free(srv->retain_cursor); /* a pass still in flight has its own copy */
    srv->retain_cursor = NULL;
}

static void smeta_done(maosd_server *srv, maosd_wreq *w)
{
    int changed = !w->code && !w->out[0].nothing;
    smeta_job *j = w->done_arg;
    if (changed)
        drop_read_ahead(srv); /* before the reply: no page of before */
    maosd_write_reply(srv, w); /* answers (with j) and frees w */
    free(j);
    if (changed)
        run_pass(srv);
}

static void run_compact(maosd_rjob *j)
{
    uint64_t t0 = uv_hrtime();
    maosd_store_compact(j->store);
    maosd_logf(MAOSD_LOG_INFO, "compaction of every column family took %llu ms",
               (unsigned long long)((uv_hrtime() - t0) / 1000000));
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    if (maos_enc_reply_ok(&pk, j->req.rid) || maosd_rjob_frame_end(j, mark)) {
        j->out.size = mark;
        j->rc = MAOS_EOVERLOADED;
        snprintf(j->why, sizeof(j->why), "out of memory (the compaction ran)");
    }
}

/* Who asked for a compaction (for its audit record). */
typedef struct compact_who {
    uid_t uid;
    pid_t pid;
    uint64_t conn;
} compact_who;

static void compact_done(maosd_rjob *j)
{
    compact_who *who = j->arg;
    j->srv->compacting = 0;
    if (who && !j->rc) {
        maosd_audit a;
        maosd_audit_begin(&a, "compact", who->uid, who->pid, who->conn);
        maosd_audit_emit(j->srv, &a, "admin");
    }
    free(who);
    maosd_rjob_reply(j);
}

/* One compaction at a time: it holds one of the reader threads for as long
 * as it takes (minutes on a large store), so a second request while it
 * runs is refused, not queued behind it. */
int maosd_op_compact(maosd_call *call)
{
    maosd_server *srv = call->srv;
    if (call->conn->uid != 0 && call->conn->uid != srv->euid) {
        snprintf(call->why, sizeof(call->why), "compact is for root and the daemon's user "
                 "(uid %u); uid %u may not", (unsigned)srv->euid, (unsigned)call->conn->uid);
        return MAOS_EUNAUTHORIZED;
    }
    if (srv->compacting) {
        snprintf(call->why, sizeof(call->why), "a compaction is running; try again when it "
                 "is done");
        return MAOS_EOVERLOADED;
    }
    compact_who *who = malloc(sizeof(*who));
    maosd_rjob *j = who ? maosd_rjob_new(srv, call->conn, run_compact, compact_done, who)
                        : NULL;
    if (!j) {
        free(who);
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    *who = (compact_who){call->conn->uid, call->conn->pid, call->conn->id};
    j->req.rid = call->req->rid;
    j->req.op = MAOS_OP_COMPACT;
    if (maosd_rjob_submit(j)) {
        free(who); /* j was freed, its done step never runs */
        snprintf(call->why, sizeof(call->why), "cannot queue the compaction");
        return MAOS_EOVERLOADED;
    }
    srv->compacting = 1;
    return 0;
}

/* A reader thread: stream_meta that changes nothing (also --read-only):
 * what the stream's or the category's meta says. */
static void run_smeta_report(maosd_rjob *j)
{
    const maos_request *req = &j->req;
    maos_stream_meta_out o = {.head = -1};
    int rc = 0;
    if (req->smeta.category.len) {
        char k[MAOSD_RETENTION_KEY_MAX], v[17];
        size_t vlen;
        rc = maosd_store_get(j->store, MAOSD_CF_META, k,
                             maosd_key_retention(k, req->smeta.category), v, sizeof v, &vlen);
        if (rc == 0 && vlen == 16) {
            o.max_count = maosd_get_u64(v);
            o.max_age_ms = maosd_get_u64(v + 8);
        } else if (rc == 0) {
            rc = maosd_store_corrupt("the retention rule of category %.*s is %zu bytes",
                                     (int)req->smeta.category.len, req->smeta.category.ptr,
                                     vlen);
        } else if (rc == MAOS_ENOT_FOUND) {
            rc = 0;
        }
    } else {
        maosd_smeta m;
        char k[MAOSD_KEY_MAX], v[16];
        size_t vlen;
        rc = maosd_stream_smeta(j->store, req->stream, &m);
        int hrc = rc ? rc : maosd_store_get(j->store, MAOSD_CF_STREAMS, k,
                                            maosd_key_head(k, req->stream), v, sizeof v, &vlen);
        if (!rc && hrc == 0 && vlen == 16)
            o.head = (int64_t)maosd_get_u64(v);
        else if (!rc && hrc != MAOS_ENOT_FOUND)
            rc = hrc ? hrc : maosd_store_corrupt("the head of stream %.*s is %zu bytes",
                                                 (int)req->stream.len, req->stream.ptr, vlen);
        o.is_stream = 1;
        o.max_count = m.max_count;
        o.max_age_ms = m.max_age_ms;
        o.first_version = m.first;
        o.deleted = (m.flags & MAOSD_SMETA_DELETED) && o.head >= 0 && m.first > (uint64_t)o.head;
    }
    if (rc) {
        maosd_rjob_fail(j, j->out.size, rc);
        return;
    }
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    if (maos_enc_reply_stream_meta(&pk, req->rid, &o) || maosd_rjob_frame_end(j, mark))
        maosd_rjob_fail(j, mark, MAOS_ENOMEM);
}

int maosd_op_stream_meta(maosd_call *call)
{
    const maos_stream_meta_in *in = &call->req->smeta;
    maosd_server *srv = call->srv;
    if (!in->set && !in->clear && !in->has_truncate_before && !in->delete_)
        return maosd_rjob_call(call, run_smeta_report);
    /* a change: the gate of the write ops (dispatch.c), here */
    if (srv->stopping) {
        snprintf(call->why, sizeof(call->why), "maosd is shutting down");
        return MAOS_ESHUTTING_DOWN;
    }
    if (maosd_store_state(srv->store) != MAOSD_STORE_OK) {
        snprintf(call->why, sizeof(call->why), "%s", maosd_read_only_why(srv));
        return MAOS_EREAD_ONLY;
    }
    smeta_job *j = calloc(1, sizeof(*j));
    maos_item_in *it = calloc(1, sizeof(*it));
    maosd_wreq *w = j && it ? maosd_wreq_for(call->conn, call->req, &call->frame,
                                             call->frame_len)
                            : NULL;
    if (!w) {
        free(j);
        free(it);
        snprintf(call->why, sizeof(call->why), "out of memory");
        return MAOS_EOVERLOADED;
    }
    it->kind = MAOSD_ITEM_STREAM_META;
    maosd_submit_item(call->srv, w, it, smeta_done, j);
    return 0;
}
