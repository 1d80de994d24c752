/*
 * client/calls.c -- the event calls: append and txn (synchronous and
 * pipelined: maos_append_send / maos_txn_send / maos_reply_recv), reads,
 * streams, stats and checkpoints.
 *
 * Invariants: arguments are checked before anything is queued;
 * out-parameters are written only on success.
 */
#include "client_priv.h"
#include "maos/json.h"

static int fill_events(maos_ctx *c, const maos_event_spec *ev, size_t n,
                       maos_event_in *in)
{
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    for (size_t i = 0; i < n; i++) {
        const maos_event_spec *e = &ev[i];
        maos_event_in *x = &in[i];
        memset(x, 0, sizeof *x);
        if (!e->type)
            return maosc_fail(c, MAOS_EINVALID_ARG, "event %zu: type is NULL", i);
        if (e->id) {
            memcpy(x->id, e->id, 16);
            x->has_id = 1;
        }
        x->type = maosc_cstr(e->type);
        if (e->data_len) {
            if (!e->data || e->data_len > UINT32_MAX ||
                maos_mp_check(e->data, e->data_len, &lim) != 0)
                return maosc_fail(c, MAOS_EINVALID_ARG,
                            "event %zu: data is not one well-formed msgpack value", i);
            x->data.ptr = e->data;
            x->data.len = (uint32_t)e->data_len;
        }
        if (e->meta_len) {
            maos_mpr r;
            maos_mpr_init(&r, e->meta, e->meta_len);
            if (!e->meta || e->meta_len > UINT32_MAX ||
                maos_mp_check(e->meta, e->meta_len, &lim) != 0 ||
                maos_mpr_peek(&r) != MAOS_MP_MAP)
                return maosc_fail(c, MAOS_EINVALID_ARG,
                            "event %zu: meta is not one well-formed msgpack map", i);
            x->meta.ptr = e->meta;
            x->meta.len = (uint32_t)e->meta_len;
        }
    }
    return 0;
}

/* Queue an append or a txn.  appends[0..n): n == 1 and !txn for append.
 * f == NULL: pipelined (maos_append_send: reply for maos_reply_recv), else
 * through maosc_call (sync: *f / *rep are the reply; async: queued).  With
 * MAOS_CLIENT_IDS, events without an id get a UUIDv7 here; a request whose
 * every event has an id is safe to re-send after a reconnect. */
/* The wire form of n appends (checked): *in (n of them) and *evs (their
 * events, one array), both malloc'ed, freed by the caller after encoding;
 * *all_ids: every event carries an id (MAOS_CLIENT_IDS gives one to those
 * without).  Shared by append/txn and txn_items (tables.c). */
int maosc_appends_in(maos_ctx *c, int txn, const maos_txn_append *ap, size_t n,
                     maos_append_in **in_out, maos_event_in **evs_out, int *all_ids_out)
{
    size_t total = 0;
    if (!ap || n == 0 || n > UINT32_MAX)
        return maosc_fail(c, MAOS_EINVALID_ARG, "no appends given");
    for (size_t i = 0; i < n; i++) {
        int rc = maosc_check_str(c, "stream", ap[i].stream);
        if (rc)
            return rc;
        if (!ap[i].events || ap[i].n_events == 0 || ap[i].n_events > UINT32_MAX)
            return maosc_fail(c, MAOS_EINVALID_ARG, "append %zu: no events given", i);
        if (ap[i].expect < MAOS_EXPECT_EXISTS)
            return maosc_fail(c, MAOS_EINVALID_ARG, "append %zu: bad expected version %lld",
                        i, (long long)ap[i].expect);
        total += ap[i].n_events;
    }
    maos_append_in *in = calloc(n, sizeof *in);
    maos_event_in *evs = calloc(total, sizeof *evs);
    if (!in || !evs) {
        free(in);
        free(evs);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        in[i].stream = maosc_cstr(ap[i].stream);
        in[i].expect = ap[i].expect;
        in[i].n_events = (uint32_t)ap[i].n_events;
        in[i].events = evs + k;
        rc = fill_events(c, ap[i].events, ap[i].n_events, evs + k);
        if (rc && txn)
            snprintf(c->errstr + strlen(c->errstr),
                     sizeof c->errstr - strlen(c->errstr), " (append %zu)", i);
        k += ap[i].n_events;
    }
    int all_ids = 1;
    for (size_t i = 0; i < total && !rc; i++) {
        if (!evs[i].has_id && c->priv->client_ids) {
            maosc_uuidv7(evs[i].id);
            evs[i].has_id = 1;
        }
        all_ids &= evs[i].has_id;
    }
    if (rc) {
        free(evs);
        free(in);
        return rc;
    }
    *in_out = in;
    *evs_out = evs;
    *all_ids_out = all_ids;
    return 0;
}

/* op: MAOS_OP_APPEND (n 1), MAOS_OP_TXN or MAOS_OP_APPEND_BATCH. */
static int queue_appends(maos_ctx *c, maos_op op, const maos_txn_append *ap,
                         size_t n, uint64_t *rid_out, struct rxf **f, maos_reply *rep)
{
    maos_append_in *in = NULL;
    maos_event_in *evs = NULL;
    int all_ids = 0;
    int rc = maosc_appends_in(c, op != MAOS_OP_APPEND, ap, n, &in, &evs, &all_ids);
    if (!rc) {
        struct maosc_req rq;
        rc = maosc_req_begin(c, &rq);
        if (!rc) {
            int enc = op == MAOS_OP_TXN ? maos_enc_txn(&rq.pk, rq.rid, in, (uint32_t)n)
                      : op == MAOS_OP_APPEND_BATCH
                          ? maos_enc_append_batch(&rq.pk, rq.rid, in, (uint32_t)n)
                          : maos_enc_append(&rq.pk, rq.rid, &in[0]);
            rq.retry_ids = all_ids;
            if (rid_out)
                *rid_out = rq.rid;
            rc = f ? maosc_call(c, &rq, op, enc, f, rep) : maosc_req_end(c, &rq, op, enc);
        }
    }
    free(evs);
    free(in);
    return rc;
}

/* Fill a caller's maos_append_info from a wire result, and ids (NULL or
 * room for cap ids) with the first min(count, cap) event ids. */
int maosc_copy_result(maos_ctx *c, const maos_append_result *r,
                       maos_append_info *out, uint8_t (*ids)[16], size_t cap)
{
    if (r->ids.len != (uint64_t)r->count * 16)
        return maosc_die(c, MAOS_EPROTO, "append result: %u ids in %u bytes",
                   r->count, r->ids.len);
    if (out) {
        out->version = r->first_version;
        out->position = r->first_position;
        out->count = r->count;
        out->duplicate = r->duplicate;
    }
    if (ids && cap)
        memcpy(ids, r->ids.ptr, (r->count < cap ? r->count : cap) * 16);
    return 0;
}

/* ---- synchronous writes ------------------------------------------------------- */

int maos_ping(maos_ctx *c)
{
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_PING, maos_enc_simple(&rq.pk, rq.rid, MAOS_OP_PING), &f, &rep)))
        return rc;
    free(f);
    return 0;
}

int maos_append_ids(maos_ctx *c, const char *stream, int64_t expect,
                    const maos_event_spec *events, size_t n, maos_append_info *out,
                    uint8_t (*ids)[16])
{
    maos_txn_append a = {stream, expect, events, n, NULL};
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = queue_appends(c, MAOS_OP_APPEND, &a, 1, NULL, &f, &rep)))
        return rc;
    maos_append_info tmp;
    rc = maosc_copy_result(c, &rep.result, &tmp, ids, n);
    if (!rc && out)
        *out = tmp;
    free(f);
    return rc;
}

int maos_append(maos_ctx *c, const char *stream, int64_t expect,
                const maos_event_spec *events, size_t n, maos_append_info *out)
{
    return maos_append_ids(c, stream, expect, events, n, out, NULL);
}

int maos_txn(maos_ctx *c, const maos_txn_append *appends, size_t n,
             maos_append_info *out)
{
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = queue_appends(c, MAOS_OP_TXN, appends, n, NULL, &f, &rep)))
        return rc;
    if (rep.n_results != n) {
        free(f);
        return maosc_die(c, MAOS_EPROTO, "txn reply has %u results for %zu appends",
                   rep.n_results, n);
    }
    maos_mpr r;
    uint32_t cnt;
    maos_mpr_init(&r, rep.results.ptr, rep.results.len);
    if (maos_mpr_array(&r, &cnt) || cnt != n) {
        free(f);
        return maosc_die(c, MAOS_EPROTO, "malformed txn reply");
    }
    /* Validate everything before writing *out (written only on success). */
    maos_append_result res;
    maos_mpr r2 = r;
    for (size_t i = 0; i < n; i++) {
        if (maos_append_result_next(&r2, &res) ||
            res.ids.len != (uint64_t)res.count * 16) {
            free(f);
            return maosc_die(c, MAOS_EPROTO, "malformed txn result %zu", i);
        }
    }
    for (size_t i = 0; i < n; i++) {
        maos_append_result_next(&r, &res);
        maosc_copy_result(c, &res, out ? &out[i] : NULL, appends[i].ids, appends[i].n_events);
    }
    free(f);
    return 0;
}

/* One append_batch result as the caller's outcome (ids: the append's
 * array or NULL, room for cap). */
void maosc_batch_outcome(maos_ctx *c, const maos_batch_result *res, maos_batch_outcome *out,
                         uint8_t (*ids)[16], size_t cap)
{
    memset(out, 0, sizeof *out);
    out->status = res->code;
    out->has_actual = res->has_actual;
    out->actual = res->has_actual ? res->actual : 0;
    if (res->code)
        snprintf(out->message, sizeof out->message, "%.*s", (int)res->message.len,
                 res->message.ptr ? res->message.ptr : "");
    else
        maosc_copy_result(c, &res->append, &out->info, ids, cap);
}

/* maos_append_batch and maos_async_append_batch (out NULL: queued only). */
static int append_batch(maos_ctx *c, const maos_txn_append *appends, size_t n,
                        maos_batch_outcome *out)
{
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = queue_appends(c, MAOS_OP_APPEND_BATCH, appends, n, NULL, &f, &rep)))
        return rc;
    maos_mpr r;
    uint32_t cnt;
    maos_mpr_init(&r, rep.results.ptr, rep.results.len);
    if (rep.n_results != n || maos_mpr_array(&r, &cnt) || cnt != n) {
        free(f);
        return maosc_die(c, MAOS_EPROTO, "append_batch reply has %u results for %zu appends",
                         rep.n_results, n);
    }
    /* Validate everything before writing out[] (written only on success). */
    maos_batch_result res;
    maos_mpr r2 = r;
    for (size_t i = 0; i < n; i++) {
        if (maos_batch_result_next(&r2, &res)) {
            free(f);
            return maosc_die(c, MAOS_EPROTO, "malformed append_batch result %zu", i);
        }
    }
    for (size_t i = 0; out && i < n; i++) {
        maos_batch_result_next(&r, &res);
        maosc_batch_outcome(c, &res, &out[i], appends[i].ids, appends[i].n_events);
    }
    free(f);
    return 0;
}

int maos_append_batch(maos_ctx *c, const maos_txn_append *appends, size_t n,
                      maos_batch_outcome *out)
{
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    return append_batch(c, appends, n, out);
}

int maosc_append_batch_queue(maos_ctx *c, const maos_txn_append *appends, size_t n)
{
    return append_batch(c, appends, n, NULL);
}

/* ---- reads ---------------------------------------------------------------------- */

static uint32_t clamp_limit(uint32_t limit)
{
    if (limit == 0)
        return MAOS_READ_LIMIT_DEFAULT;
    return limit > MAOS_READ_LIMIT_MAX ? MAOS_READ_LIMIT_MAX : limit;
}

/* Build a page from a read/read_all reply; takes ownership of f. */
int maosc_make_page(maos_ctx *c, struct rxf *f, const maos_reply *rep,
                     maos_page **out)
{
    size_t n = rep->n_items;
    if ((uint64_t)n * MIN_RECORD_BYTES > rep->items.len) {
        free(f);
        return maosc_die(c, MAOS_EPROTO, "reply declares %zu events in %u bytes", n,
                   rep->items.len);
    }
    /* the events made while the reply was decoded (maosc_reply_in), when
     * rep is that decode: one walk of the page, not two */
    int made = f->events && f->n_events == n && n && rep->items.ptr >= f->data &&
               rep->items.ptr < f->data + f->len;
    maos_page *pg = calloc(1, sizeof *pg + (made ? 0 : n * sizeof(maos_event)));
    if (!pg) {
        free(f);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory for a page of %zu events", n);
    }
    pg->events = made ? f->events : (maos_event *)(pg + 1);
    if (!made && maosc_records_to_events(rep->items, n, pg->events))
        goto bad;
    pg->n = n;
    pg->has_next = rep->next_kind == MAOS_NEXT_UINT;
    pg->next = pg->has_next ? rep->next_u : 0;
    pg->mem_ = f;
    *out = pg;
    return 0;
bad:
    free(pg);
    free(f);
    return maosc_die(c, MAOS_EPROTO, "malformed event record in a reply");
}

void maos_page_free(maos_page *p)
{
    if (!p)
        return;
    free(p->mem_);
    free(p);
}

int maos_read(maos_ctx *c, const char *stream, uint64_t from, int backward,
              uint32_t limit, maos_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "stream", stream)))
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_READ,
                        maos_enc_read(&rq.pk, rq.rid, maosc_cstr(stream), from != MAOS_FROM_START,
                                      from, backward ? 1 : 0, clamp_limit(limit)), &f, &rep)))
        return rc;
    return maosc_make_page(c, f, &rep, out);
}

int maos_read_all(maos_ctx *c, const maos_read_filter *fl, uint64_t from,
                  int backward, uint32_t limit, maos_page **out)
{
    maos_filter mf;
    maos_slice *types = NULL;
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    memset(&mf, 0, sizeof mf);
    if (fl) {
        if (fl->n_types && !fl->types)
            return maosc_fail(c, MAOS_EINVALID_ARG, "n_types without types");
        if (fl->n_types > UINT32_MAX)
            return maosc_fail(c, MAOS_ELIMIT, "too many types");
        mf.stream = maosc_cstr(fl->stream);
        mf.prefix = maosc_cstr(fl->prefix);
        mf.category = maosc_cstr(fl->category);
        if (fl->n_types) {
            types = calloc(fl->n_types, sizeof *types);
            if (!types)
                return maosc_fail(c, MAOS_ENOMEM, "out of memory");
            for (size_t i = 0; i < fl->n_types; i++) {
                if (!fl->types[i]) {
                    free(types);
                    return maosc_fail(c, MAOS_EINVALID_ARG, "types[%zu] is NULL", i);
                }
                types[i] = maosc_cstr(fl->types[i]);
            }
            mf.types = types;
            mf.n_types = (uint32_t)fl->n_types;
        }
        mf.has_since = fl->has_since;
        mf.since = fl->since;
        mf.has_until = fl->has_until;
        mf.until = fl->until;
    }
    rc = maosc_req_begin(c, &rq);
    if (!rc)
        rc = maosc_call(c, &rq, MAOS_OP_READ_ALL,
                        maos_enc_read_all(&rq.pk, rq.rid, from != MAOS_FROM_START, from,
                                          backward ? 1 : 0, clamp_limit(limit), &mf),
                        &f, &rep);
    free(types);
    if (rc)
        return rc;
    return maosc_make_page(c, f, &rep, out);
}

/* A page over a streams reply frame f (taken). */
int maosc_make_stream_page(maos_ctx *c, struct rxf *f, const maos_reply *rp,
                           maos_stream_page **out)
{
    maos_reply rep = *rp;
    size_t n = rep.n_items;
    if ((uint64_t)n * MIN_STREAM_INFO_BYTES > rep.items.len) {
        free(f);
        return maosc_die(c, MAOS_EPROTO, "reply declares %zu streams in %u bytes", n,
                   rep.items.len);
    }
    int has_next = rep.next_kind == MAOS_NEXT_STR;
    size_t nextlen = has_next ? rep.next_s.len : 0;
    maos_stream_page *pg = calloc(1, sizeof *pg + n * sizeof(maos_stream_entry) +
                                         nextlen + 1);
    if (!pg) {
        free(f);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    pg->streams = (maos_stream_entry *)(pg + 1);
    char *next = (char *)(pg->streams + n);
    maos_mpr r;
    uint32_t cnt;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    if (maos_mpr_array(&r, &cnt) || cnt != n)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        maos_stream_info si;
        if (maos_stream_info_next(&r, &si))
            goto bad;
        pg->streams[i].stream = si.stream.ptr;
        pg->streams[i].stream_len = si.stream.len;
        pg->streams[i].head = si.head;
        pg->streams[i].count = si.count;
        pg->streams[i].last_position = si.last_position;
    }
    if (nextlen)
        memcpy(next, rep.next_s.ptr, nextlen);
    next[nextlen] = '\0';
    pg->n = n;
    pg->has_next = has_next;
    pg->next = next;
    pg->mem_ = f;
    *out = pg;
    return 0;
bad:
    free(pg);
    free(f);
    return maosc_die(c, MAOS_EPROTO, "malformed streams reply");
}

int maos_streams(maos_ctx *c, const char *prefix, const char *after,
                 uint32_t limit, maos_stream_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_STREAMS, maos_enc_streams(&rq.pk, rq.rid, maosc_cstr(prefix), maosc_cstr(after),
                                                   clamp_limit(limit)), &f, &rep)))
        return rc;

    return maosc_make_stream_page(c, f, &rep, out);
}

void maos_stream_page_free(maos_stream_page *p)
{
    if (!p)
        return;
    free(p->mem_);
    free(p);
}

/* s as a NUL-terminated string in out (cut to cap - 1 bytes). */
static void copy_str(char *out, size_t cap, maos_slice s)
{
    snprintf(out, cap, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
}

/* Fill *out from a stats reply (written only when it is whole). */
int maosc_stats_from(maos_ctx *c, const maos_reply *rp, maos_stats_info *out)
{
    const maos_reply *r = rp;
    maos_stats_info tmp;
    if (!r->has_stats)
        return maosc_die(c, MAOS_EPROTO, "stats reply without stats");
    if (r->stats.head_hash.len != sizeof tmp.head_hash)
        return maosc_die(c, MAOS_EPROTO, "stats reply without a 32-byte head_hash");
    memset(&tmp, 0, sizeof tmp);
#define COPY_STAT_(name) tmp.name = r->stats.name;
    MAOS_STATS_MAP_V1(COPY_STAT_)
#undef COPY_STAT_
    copy_str(tmp.server, sizeof tmp.server, r->stats.server);
    copy_str(tmp.state, sizeof tmp.state, r->stats.state);
    copy_str(tmp.durability, sizeof tmp.durability, r->stats.durability);
    copy_str(tmp.data_dir, sizeof tmp.data_dir, r->stats.data_dir);
    memcpy(tmp.head_hash, r->stats.head_hash.ptr, sizeof tmp.head_hash);
    *out = tmp;
    return 0;
}

/* The stats request, for both forms: its reply in *f / *rep (sync), or
 * queued (async: MAOSC_QUEUED). */
static int stats_request(maos_ctx *c, const void *out, struct rxf **f, maos_reply *rep)
{
    struct maosc_req rq;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if ((rc = maosc_req_begin(c, &rq)))
        return rc;
    return maosc_call(c, &rq, MAOS_OP_STATS, maos_enc_simple(&rq.pk, rq.rid, MAOS_OP_STATS), f,
                      rep);
}

int maos_stats_get(maos_ctx *c, maos_stats_info *out)
{
    struct rxf *f;
    maos_reply rep;
    int rc = stats_request(c, out, &f, &rep);
    if (rc)
        return rc;
    rc = maosc_stats_from(c, &rep, out);
    free(f);
    return rc;
}

/* ---- stats as key/value (client.h "maos_stats_kv") ---- */

struct stat_num {
    const char *name;
    uint64_t value;
};
struct stat_text {
    const char *name, *text;
};
struct maos_stats_kv {
    size_t n_num, n_text, pos;
    struct stat_num *num;
    struct stat_text *text;
    /* then the arrays, then the names and texts, NUL-terminated */
};

/* Walk a stats reply map: every uint and str value but rid's, counted
 * (kv NULL: *n_num, *n_text, *bytes) or copied into kv.  0 or MAOS_EPROTO. */
static int stats_walk(const struct rxf *f, size_t *n_num, size_t *n_text, size_t *bytes,
                      struct maos_stats_kv *kv, char *strs)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, f->data, f->len);
    if (maos_mpr_map(&r, &n))
        return MAOS_EPROTO;
    *n_num = *n_text = *bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, v;
        uint64_t u;
        if (maos_mpr_str(&r, &k))
            return MAOS_EPROTO;
        int kind = maos_mpr_peek(&r);
        int is_rid = k.len == 3 && !memcmp(k.ptr, "rid", 3);
        if (kind == MAOS_MP_UINT && !is_rid) {
            if (maos_mpr_uint(&r, &u))
                return MAOS_EPROTO;
            if (kv) {
                memcpy(strs, k.ptr, k.len);
                strs[k.len] = 0;
                kv->num[*n_num] = (struct stat_num){strs, u};
                strs += k.len + 1;
            }
            (*n_num)++;
            *bytes += k.len + 1;
        } else if (kind == MAOS_MP_STR) {
            if (maos_mpr_str(&r, &v))
                return MAOS_EPROTO;
            if (kv) {
                memcpy(strs, k.ptr, k.len);
                strs[k.len] = 0;
                memcpy(strs + k.len + 1, v.ptr, v.len);
                strs[k.len + 1 + v.len] = 0;
                kv->text[*n_text] = (struct stat_text){strs, strs + k.len + 1};
                strs += k.len + 1 + v.len + 1;
            }
            (*n_text)++;
            *bytes += k.len + 1 + v.len + 1;
        } else if (maos_mpr_skip(&r, NULL)) {
            return MAOS_EPROTO;
        }
    }
    return 0;
}

/* The kv form of a stats reply (checked as maosc_stats_from does). */
int maosc_stats_kv_from(maos_ctx *c, const struct rxf *f, const maos_reply *rep,
                        maos_stats_kv **out)
{
    maos_stats_info check;
    size_t nn, nt, bytes;
    int rc = maosc_stats_from(c, rep, &check);
    if (rc)
        return rc;
    if (stats_walk(f, &nn, &nt, &bytes, NULL, NULL))
        return maosc_die(c, MAOS_EPROTO, "malformed stats reply");
    struct maos_stats_kv *kv = calloc(1, sizeof *kv + nn * sizeof *kv->num +
                                             nt * sizeof *kv->text + bytes + 1);
    if (!kv)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    kv->num = (struct stat_num *)(kv + 1);
    kv->text = (struct stat_text *)(kv->num + nn);
    stats_walk(f, &kv->n_num, &kv->n_text, &bytes, kv, (char *)(kv->text + nt));
    *out = kv;
    return 0;
}

int maos_stats_get_kv(maos_ctx *c, maos_stats_kv **out)
{
    struct rxf *f;
    maos_reply rep;
    int rc = stats_request(c, out, &f, &rep);
    if (rc)
        return rc;
    rc = maosc_stats_kv_from(c, f, &rep, out);
    free(f);
    return rc;
}

int maos_stats_next(maos_stats_kv *kv, const char **name, uint64_t *value)
{
    if (!kv || kv->pos >= kv->n_num)
        return 0;
    if (name)
        *name = kv->num[kv->pos].name;
    if (value)
        *value = kv->num[kv->pos].value;
    kv->pos++;
    return 1;
}

void maos_stats_rewind(maos_stats_kv *kv)
{
    if (kv)
        kv->pos = 0;
}

int maos_stats_find(const maos_stats_kv *kv, const char *name, uint64_t *value)
{
    if (!kv || !name)
        return MAOS_EINVALID_ARG;
    for (size_t i = 0; i < kv->n_num; i++)
        if (!strcmp(kv->num[i].name, name)) {
            if (value)
                *value = kv->num[i].value;
            return 0;
        }
    return MAOS_ENOT_FOUND;
}

const char *maos_stats_text(const maos_stats_kv *kv, const char *name)
{
    for (size_t i = 0; kv && name && i < kv->n_text; i++)
        if (!strcmp(kv->text[i].name, name))
            return kv->text[i].text;
    return NULL;
}

void maos_stats_kv_free(maos_stats_kv *kv)
{
    free(kv);
}

/* ---- pipelining ---------------------------------------------------------------- */

int maos_append_send(maos_ctx *c, const char *stream, int64_t expect,
                     const maos_event_spec *events, size_t n, uint64_t *rid)
{
    maos_txn_append a = {stream, expect, events, n, NULL};
    int rc = maosc_enter(c);
    if (rc || (rc = queue_appends(c, MAOS_OP_APPEND, &a, 1, rid, NULL, NULL)))
        return rc;
    return maosc_maybe_flush(c);
}

int maos_txn_send(maos_ctx *c, const maos_txn_append *appends, size_t n,
                  uint64_t *rid)
{
    int rc = maosc_enter(c);
    if (rc || (rc = queue_appends(c, MAOS_OP_TXN, appends, n, rid, NULL, NULL)))
        return rc;
    return maosc_maybe_flush(c);
}

/* A legacy pipelined reply becomes a maos_result the caller owns (the one
 * reply type of the API): a completion of its own holding the frame, as
 * an async callback's result views one (async.c), with `owned` set. */
int maos_reply_recv(maos_ctx *c, maos_result **out)
{
    struct maos_ctx_priv *p;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_enter(c);
    if (rc)
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    p = c->priv;
    if (p->pending == 0) {
        *out = NULL;
        return 0;
    }
    if ((rc = maosc_flush_out(c)) || (rc = maosc_rx_take(c, &f)))
        return rc;
    maos_op op;
    if ((rc = maosc_take_reply(c, f, 0, &rep, &op))) {
        free(f);
        return rc;
    }

    /* Only appends and txns are pipelined; an rid-0 error (op unknown) is
     * an error reply, whose fields maosc_take_reply has checked.  Every
     * result is checked here, so that the getters find them well formed. */
    if (rep.ok) {
        if (op == MAOS_OP_TXN) {
            uint32_t cnt;
            maos_mpr r;
            maos_append_result res;
            maos_mpr_init(&r, rep.results.ptr, rep.results.len);
            int bad = rep.n_results == 0 ||
                      (uint64_t)rep.n_results * MIN_STREAM_INFO_BYTES > rep.results.len ||
                      maos_mpr_array(&r, &cnt) || cnt != rep.n_results;
            for (uint32_t i = 0; !bad && i < cnt; i++)
                bad = maos_append_result_next(&r, &res) ||
                      res.ids.len != (uint64_t)res.count * 16;
            if (bad) {
                free(f);
                return maosc_die(c, MAOS_EPROTO, "malformed txn reply");
            }
        } else if (op == MAOS_OP_APPEND) {
            if (rep.result.ids.len != (uint64_t)rep.result.count * 16) {
                free(f);
                return maosc_die(c, MAOS_EPROTO, "append result: %u ids in %u bytes",
                                 rep.result.count, rep.result.ids.len);
            }
        } else {
            free(f);
            return maosc_die(c, MAOS_EPROTO, "unexpected %s reply", maos_op_name(op));
        }
    }
    maos_result *m = calloc(1, sizeof *m);
    struct maosc_pend *pd = calloc(1, sizeof *pd);
    if (!m || !pd) {
        free(m);
        free(pd);
        free(f);
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    }
    pd->rid = rep.rid;
    pd->op = op;
    pd->f = f;
    pd->done = 1;
    if (!rep.ok) {
        pd->status = rep.code ? rep.code : MAOS_EPROTO;
        snprintf(pd->errstr, sizeof pd->errstr, "%.*s", (int)rep.message.len,
                 rep.message.ptr ? rep.message.ptr : "");
    }
    m->c = c;
    m->pd = pd;
    m->owned = 1;
    m->rep = rep;
    *out = m;
    return 0;
}


int maos_checkpoint_save(maos_ctx *c, const char *name, uint64_t position)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "name", name)))
        return rc;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_CHECKPOINT_SAVE,
                         maos_enc_checkpoint_save(&rq.pk, rq.rid, maosc_cstr(name), position), &f,
                         &rep)))
        return rc;
    free(f);
    return 0;
}

int maos_metrics(maos_ctx *c, char **text)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!text)
        return maosc_fail(c, MAOS_EINVALID_ARG, "text is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_METRICS, maos_enc_metrics(&rq.pk, rq.rid), &f, &rep)))
        return rc;
    char *t = malloc((size_t)rep.text.len + 1);
    if (t) {
        memcpy(t, rep.text.ptr, rep.text.len);
        t[rep.text.len] = 0;
    }
    free(f);
    if (!t)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    *text = t;
    return 0;
}

int maos_backup(maos_ctx *c, const char *dir, uint64_t *position)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "dir", dir)))
        return rc;
    if (dir[0] != '/')
        return maosc_fail(c, MAOS_EINVALID_ARG, "dir must be an absolute path");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_BACKUP, maos_enc_backup(&rq.pk, rq.rid, maosc_cstr(dir)),
                         &f, &rep)))
        return rc;
    if (position)
        *position = rep.position;
    free(f);
    return 0;
}

void maosc_stream_meta_from(const maos_reply *rep, maos_stream_meta_info *out)
{
    out->max_count = rep->smeta.max_count;
    out->max_age_ms = rep->smeta.max_age_ms;
    out->is_stream = rep->smeta.head >= 0 || rep->smeta.first_version > 0;
    out->first_version = rep->smeta.first_version;
    out->head = rep->smeta.head;
    out->deleted = rep->smeta.deleted;
}

int maos_stream_meta(maos_ctx *c, const char *stream, const char *category,
                     const maos_stream_meta_set *set, maos_stream_meta_info *out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    maos_stream_meta_in in;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!stream == !category)
        return maosc_fail(c, MAOS_EINVALID_ARG, "give a stream or a category");
    if ((rc = maosc_check_str(c, stream ? "stream" : "category", stream ? stream : category)))
        return rc;
    memset(&in, 0, sizeof in);
    if (set) {
        if (set->set && set->clear)
            return maosc_fail(c, MAOS_EINVALID_ARG, "set and clear together");
        if (category && (set->has_truncate_before || set->delete_stream))
            return maosc_fail(c, MAOS_EINVALID_ARG, "truncate and delete are for a stream");
        in.set = set->set != 0;
        in.max_count = set->max_count;
        in.max_age_ms = set->max_age_ms;
        in.clear = set->clear != 0;
        in.has_truncate_before = set->has_truncate_before != 0;
        in.truncate_before = set->truncate_before;
        in.delete_ = set->delete_stream != 0;
    }
    if (category)
        in.category = maosc_cstr(category);
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_STREAM_META,
                         maos_enc_stream_meta(&rq.pk, rq.rid, maosc_cstr(stream), &in),
                         &f, &rep)))
        return rc;
    if (out) {
        maosc_stream_meta_from(&rep, out);
        out->is_stream = stream != NULL;
    }
    free(f);
    return 0;
}

int maos_read_log(maos_ctx *c, uint64_t from, uint32_t limit, maos_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_READ_ALL,
                         maos_enc_read_log(&rq.pk, rq.rid, 1, from ? from : 1, 0,
                                           clamp_limit(limit), NULL),
                         &f, &rep)))
        return rc;
    return maosc_make_page(c, f, &rep, out);
}

int maos_compact(maos_ctx *c)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_COMPACT, maos_enc_compact(&rq.pk, rq.rid), &f, &rep)))
        return rc;
    free(f);
    return 0;
}

int maos_pubkey(maos_ctx *c, uint8_t key[32])
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!key)
        return maosc_fail(c, MAOS_EINVALID_ARG, "key is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_PUBKEY, maos_enc_pubkey(&rq.pk, rq.rid), &f, &rep)))
        return rc;
    memcpy(key, rep.key.ptr, 32);
    free(f);
    return 0;
}

int maos_chain_sign(maos_ctx *c, uint64_t position, uint8_t hash[32], uint8_t sig[64],
                    uint64_t *head)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!hash || !sig || !position)
        return maosc_fail(c, MAOS_EINVALID_ARG, "position 0, or hash or sig NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_CHAIN_SIGN,
                         maos_enc_chain_sign(&rq.pk, rq.rid, position), &f, &rep)))
        return rc;
    if (rep.position != position) {
        free(f);
        return maosc_die(c, MAOS_EPROTO, "chain_sign answered for another position");
    }
    memcpy(hash, rep.hash.ptr, 32);
    memcpy(sig, rep.signature.ptr, 64);
    if (head)
        *head = rep.smeta.head < 0 ? 0 : (uint64_t)rep.smeta.head;
    free(f);
    return 0;
}

int maos_event_removed(const maos_event *e, uint8_t hash[32])
{
    maos_slice h;
    if (!e || !e->raw || !maos_record_stub(e->raw, e->raw_len, &h))
        return 0;
    if (hash)
        memcpy(hash, h.ptr, 32);
    return 1;
}

int maos_checkpoint_get(maos_ctx *c, const char *name, uint64_t *position)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "name", name)))
        return rc;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_CHECKPOINT_GET, maos_enc_checkpoint_get(&rq.pk, rq.rid, maosc_cstr(name)),
                         &f, &rep)))
        return rc;
    if (position)
        *position = rep.position;
    free(f);
    return 0;
}

/* ---- tokens -------------------------------------------------------------------- */

_Static_assert(MAOS_TOKEN_TEXT_SIZE == MAOS_TOKEN_TEXT_LEN + 1, "client.h and proto.h agree");

/* The raw value of top-level key `key` of a reply frame.  0 or MAOS_EPROTO. */
static int reply_value(const struct rxf *f, const char *key, maos_slice *out)
{
    maos_mpr r;
    maos_mpr_init(&r, f->data, f->len);
    return maos_mpr_find(&r, key, out) ? MAOS_EPROTO : 0;
}

int maos_token_create(maos_ctx *c, const char *name, const char *const *scopes,
                      size_t n_scopes, uint64_t expires_ms, int64_t uid, const char *session,
                      char token[MAOS_TOKEN_TEXT_SIZE])
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "name", name)))
        return rc;
    if (!token || (n_scopes && !scopes) || n_scopes > 64 || (!n_scopes && !session))
        return maosc_fail(c, MAOS_EINVALID_ARG, "token_create needs token, and scopes "
                                                "(at most 64) or a session");
    for (size_t i = 0; i < n_scopes; i++)
        if ((rc = maosc_check_str(c, "scope", scopes[i])))
            return rc;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_TOKEN_CREATE,
                         maos_enc_token_create(&rq.pk, rq.rid, name, scopes, (uint32_t)n_scopes,
                                               expires_ms, uid, session),
                         &f, &rep)))
        return rc;
    maos_slice v;
    maos_mpr r;
    maos_slice t = {0};
    rc = reply_value(f, "token", &v);
    if (!rc) {
        maos_mpr_init(&r, v.ptr, v.len);
        if (maos_mpr_str(&r, &t) || t.len != MAOS_TOKEN_TEXT_SIZE - 1)
            rc = MAOS_EPROTO;
    }
    if (!rc) {
        memcpy(token, t.ptr, t.len);
        token[t.len] = 0;
    }
    free(f);
    return rc ? maosc_fail(c, rc, "token_create reply without a token") : 0;
}

int maos_token_list(maos_ctx *c, char **json)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!json)
        return maosc_fail(c, MAOS_EINVALID_ARG, "json is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_TOKEN_LIST, maos_enc_token_list(&rq.pk, rq.rid), &f,
                         &rep)))
        return rc;
    maos_slice v;
    char *text = NULL;
    rc = reply_value(f, "tokens", &v);
    if (!rc)
        rc = maos_msgpack_to_json_text(v.ptr, v.len, &text);
    free(f);
    if (rc)
        return maosc_fail(c, rc == MAOS_ENOMEM ? rc : MAOS_EPROTO,
                          "token_list reply does not convert");
    *json = text;
    return 0;
}

int maos_token_revoke(maos_ctx *c, const char *name, uint64_t *closed)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "name", name)))
        return rc;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_TOKEN_REVOKE, maos_enc_token_revoke(&rq.pk, rq.rid, name),
                         &f, &rep)))
        return rc;
    if (closed)
        *closed = rep.count;
    free(f);
    return 0;
}
