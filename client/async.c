/*
 * client/async.c -- the asynchronous requests (client.h "Asynchronous
 * requests"): maos_async_NAME and the maos_result getters.
 *
 * One code path builds every request: maos_async_NAME sets the context's
 * submit mode (submit_async, with the callback and privdata) and calls the
 * synchronous maos_NAME, whose argument checks and encoding run as usual;
 * maosc_call (wire.c) then registers an ASYNC completion instead of
 * waiting, and returns MAOSC_QUEUED, which the sync function passes up
 * unchanged (every one returns at once on a nonzero maosc_call).  The
 * answer is decoded later, in the callback, by the same decoders the
 * synchronous calls use (maosc_make_page, maosc_stats_from, ...).
 *
 * Invariants:
 *  - submit mode is set only for the duration of one maos_async_* call;
 *  - a maos_async_* call that returns 0 has exactly one completion that
 *    will run its callback (a request, or, when the call needed no request,
 *    a completion queued at once); one that fails queued nothing;
 *  - a maos_result lives for its callback only; getters copy what they
 *    hand out.
 */
#include "client_priv.h"

int maosc_async_begin(maos_ctx *c, maos_callback cb, void *privdata)
{
    if (!c || !c->priv)
        return MAOS_EINVALID_ARG;
    struct maos_ctx_priv *p = c->priv;
    if (!cb)
        return maosc_fail(c, MAOS_EINVALID_ARG, "callback is NULL");
    if (p->dead) {
        c->err = p->dead;
        return p->dead;
    }
    if (p->submit_async)
        return maosc_fail(c, MAOS_EINVALID_ARG, "nested async call");
    p->submit_async = 1;
    p->submit_cb = cb;
    p->submit_privdata = privdata;
    return 0;
}

/* rc: what the synchronous function returned in submit mode. */
int maosc_async_end(maos_ctx *c, int rc)
{
    struct maos_ctx_priv *p = c->priv;
    p->submit_async = 0;
    if (rc == MAOSC_QUEUED)
        return 0;
    if (rc < 0)
        return rc;
    /* Done without a request (e.g. unsubscribing a subscription that is
     * not registered on this connection): the callback still runs once,
     * from maos_process, with status 0. */
    return maosc_post(c, p->submit_cb, p->submit_privdata, 0, NULL);
}

void maosc_ignore(maos_ctx *c, int status, maos_result *r, void *arg)
{
    (void)c, (void)status, (void)r, (void)arg;
}

int maosc_post(maos_ctx *c, maos_callback cb, void *privdata, int status, const char *errstr)
{
    struct maos_ctx_priv *p = c->priv;
    struct maosc_pend *pd = calloc(1, sizeof *pd);
    if (!pd)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    pd->kind = MAOSC_PEND_ASYNC;
    pd->cb = cb;
    pd->privdata = privdata;
    pd->done = 1;
    pd->status = status;
    if (errstr)
        snprintf(pd->errstr, sizeof pd->errstr, "%s", errstr);
    p->n_pends++;
    pd->prev = p->cq_tail;
    if (p->cq_tail)
        p->cq_tail->next = pd;
    else
        p->cq_head = pd;
    p->cq_tail = pd;
    if (!p->in_process)
        maosc_hooks_update(p, 0);
    return 0;
}

#define ASYNC_CALL(call)                                                                \
    do {                                                                                \
        int rc_ = maosc_async_begin(c, cb, privdata);                                   \
        if (rc_)                                                                        \
            return rc_;                                                                 \
        return maosc_async_end(c, (call));                                              \
    } while (0)

size_t maos_async_inflight(const maos_ctx *c)
{
    return c && c->priv ? c->priv->n_pends : 0;
}

/* ---- the requests ---------------------------------------------------------- */

int maos_async_ping(maos_ctx *c, maos_callback cb, void *privdata)
{
    ASYNC_CALL(maos_ping(c));
}

int maos_async_append(maos_ctx *c, maos_callback cb, void *privdata, const char *stream,
                      int64_t expect, const maos_event_spec *events, size_t n)
{
    ASYNC_CALL(maos_append(c, stream, expect, events, n, NULL));
}

int maos_async_txn(maos_ctx *c, maos_callback cb, void *privdata,
                   const maos_txn_append *appends, size_t n)
{
    ASYNC_CALL(maos_txn(c, appends, n, NULL));
}

int maos_async_append_batch(maos_ctx *c, maos_callback cb, void *privdata,
                            const maos_txn_append *appends, size_t n)
{
    ASYNC_CALL(maosc_append_batch_queue(c, appends, n));
}

int maos_async_read(maos_ctx *c, maos_callback cb, void *privdata, const char *stream,
                    uint64_t from, int backward, uint32_t limit)
{
    maos_page *pg;
    ASYNC_CALL(maos_read(c, stream, from, backward, limit, &pg));
}

int maos_async_read_all(maos_ctx *c, maos_callback cb, void *privdata,
                        const maos_read_filter *f, uint64_t from, int backward,
                        uint32_t limit)
{
    maos_page *pg;
    ASYNC_CALL(maos_read_all(c, f, from, backward, limit, &pg));
}

int maos_async_streams(maos_ctx *c, maos_callback cb, void *privdata, const char *prefix,
                       const char *after, uint32_t limit)
{
    maos_stream_page *pg;
    ASYNC_CALL(maos_streams(c, prefix, after, limit, &pg));
}

int maos_async_stats(maos_ctx *c, maos_callback cb, void *privdata)
{
    maos_stats_info st;
    ASYNC_CALL(maos_stats_get(c, &st));
}

int maos_async_checkpoint_save(maos_ctx *c, maos_callback cb, void *privdata,
                               const char *name, uint64_t position)
{
    ASYNC_CALL(maos_checkpoint_save(c, name, position));
}

int maos_async_checkpoint_get(maos_ctx *c, maos_callback cb, void *privdata,
                              const char *name)
{
    ASYNC_CALL(maos_checkpoint_get(c, name, NULL));
}

int maos_async_backup(maos_ctx *c, maos_callback cb, void *privdata, const char *dir)
{
    ASYNC_CALL(maos_backup(c, dir, NULL));
}

int maos_async_stream_meta(maos_ctx *c, maos_callback cb, void *privdata,
                           const char *stream, const char *category,
                           const maos_stream_meta_set *set)
{
    ASYNC_CALL(maos_stream_meta(c, stream, category, set, NULL));
}

int maos_async_read_log(maos_ctx *c, maos_callback cb, void *privdata, uint64_t from,
                        uint32_t limit)
{
    maos_page *pg;
    ASYNC_CALL(maos_read_log(c, from, limit, &pg));
}

int maos_async_compact(maos_ctx *c, maos_callback cb, void *privdata)
{
    ASYNC_CALL(maos_compact(c));
}

int maos_async_publish(maos_ctx *c, maos_callback cb, void *privdata, const char *channel,
                       const void *payload, size_t len)
{
    ASYNC_CALL(maos_publish(c, channel, payload, len, NULL));
}

int maos_async_subscribe(maos_ctx *c, maos_callback cb, void *privdata,
                         const maos_read_filter *f, int from_kind, uint64_t from)
{
    ASYNC_CALL(maos_subscribe(c, f, from_kind, from, NULL));
}

int maos_async_subscribe_channel(maos_ctx *c, maos_callback cb, void *privdata,
                                 const char *pattern)
{
    ASYNC_CALL(maos_subscribe_channel(c, pattern, NULL));
}

int maos_async_watch(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                     const char *prefix, int from_kind, uint64_t revision)
{
    ASYNC_CALL(maos_watch(c, table, prefix, from_kind, revision, NULL));
}

int maos_async_unsubscribe(maos_ctx *c, maos_callback cb, void *privdata, uint64_t sub)
{
    ASYNC_CALL(maos_unsubscribe(c, sub));
}

int maos_async_put(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                   const char *key, const void *doc, size_t len, int64_t expect, int bind)
{
    ASYNC_CALL(maos_put(c, table, key, doc, len, expect, bind, NULL));
}

int maos_async_get(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                   const char *key)
{
    maos_table_page *pg;
    ASYNC_CALL(maos_get(c, table, key, &pg));
}

int maos_async_delete(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                      const char *key, int64_t expect)
{
    ASYNC_CALL(maos_delete(c, table, key, expect, NULL));
}

int maos_async_list(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                    const char *prefix, const char *after, const void *where,
                    size_t where_len, uint32_t limit)
{
    maos_table_page *pg;
    ASYNC_CALL(maos_list(c, table, prefix, after, where, where_len, limit, &pg));
}

int maos_async_count(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                     const char *prefix, const void *where, size_t where_len)
{
    ASYNC_CALL(maos_count(c, table, prefix, where, where_len, NULL, NULL));
}

int maos_async_agent_status(maos_ctx *c, maos_callback cb, void *privdata,
                            const char *status, const void *detail, size_t len)
{
    ASYNC_CALL(maos_agent_status(c, status, detail, len));
}

int maos_async_agent_deregister(maos_ctx *c, maos_callback cb, void *privdata,
                                const char *id)
{
    ASYNC_CALL(maos_agent_deregister(c, id));
}

int maos_async_lock(maos_ctx *c, maos_callback cb, void *privdata, const char *name)
{
    ASYNC_CALL(maos_lock(c, name, 0, NULL));
}

int maos_async_unlock(maos_ctx *c, maos_callback cb, void *privdata, const char *name,
                      uint64_t token)
{
    ASYNC_CALL(maos_unlock(c, name, token));
}

int maos_async_ack(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16],
                   uint64_t token, const void *result, size_t len)
{
    ASYNC_CALL(maos_ack(c, id, token, result, len));
}

int maos_async_nack(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16],
                    uint64_t token, const char *error, int64_t retry_after_ms)
{
    ASYNC_CALL(maos_nack(c, id, token, error, retry_after_ms, NULL));
}

int maos_async_extend(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16],
                      uint64_t token, uint32_t lease_ms)
{
    ASYNC_CALL(maos_extend(c, id, token, lease_ms, NULL));
}

int maos_async_task_release(maos_ctx *c, maos_callback cb, void *privdata,
                            const uint8_t id[16], uint64_t token)
{
    ASYNC_CALL(maos_task_release(c, id, token));
}

int maos_async_task_get(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16])
{
    maos_task_page *pg;
    ASYNC_CALL(maos_task_get(c, id, &pg));
}

int maos_async_dead_list(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                         const uint8_t *after, uint32_t limit)
{
    maos_task_page *pg;
    ASYNC_CALL(maos_dead_list(c, queue, after, limit, &pg));
}

int maos_async_dead_retry(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                          const uint8_t *id)
{
    ASYNC_CALL(maos_dead_retry(c, queue, id, NULL, NULL));
}

int maos_async_dead_purge(maos_ctx *c, maos_callback cb, void *privdata, const char *queue)
{
    ASYNC_CALL(maos_dead_purge(c, queue, NULL, NULL));
}

int maos_async_enqueue(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                       const void *data, size_t len, const maos_task_opts *o)
{
    ASYNC_CALL(maos_enqueue_n(c, queue, &data, &len, o, 1, NULL, NULL));
}

int maos_async_enqueue_n(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                         const void *const *datas, const size_t *lens,
                         const maos_task_opts *opts, size_t n)
{
    ASYNC_CALL(maos_enqueue_n(c, queue, datas, lens, opts, n, NULL, NULL));
}

int maos_async_claim(maos_ctx *c, maos_callback cb, void *privdata,
                     const char *const *queues, size_t n, uint32_t lease_ms, uint32_t wait_ms,
                     uint32_t max, int bind)
{
    maos_task_page *pg;
    ASYNC_CALL(maos_claim(c, queues, n, lease_ms, wait_ms, max, bind, &pg));
}

int maos_async_queue_stats(maos_ctx *c, maos_callback cb, void *privdata, const char *queue)
{
    maos_queue_stat *qi;
    size_t n;
    ASYNC_CALL(maos_queue_stats(c, queue, &qi, &n));
}

int maos_async_txn_items(maos_ctx *c, maos_callback cb, void *privdata,
                         const maos_txn_item *items, size_t n)
{
    ASYNC_CALL(maos_txn_items_ex(c, items, n, NULL));
}

int maos_async_agent_register(maos_ctx *c, maos_callback cb, void *privdata,
                              const maos_agent_spec *a)
{
    ASYNC_CALL(maos_agent_register(c, a, NULL));
}

int maos_async_session_create(maos_ctx *c, maos_callback cb, void *privdata, const char *id,
                              const void *metadata, size_t len, char id_out[37])
{
    ASYNC_CALL(maos_session_create(c, id, metadata, len, id_out, NULL));
}

int maos_async_session_close(maos_ctx *c, maos_callback cb, void *privdata, const char *id,
                             const void *result, size_t len)
{
    ASYNC_CALL(maos_session_close(c, id, result, len, NULL));
}

int maos_async_session_update(maos_ctx *c, maos_callback cb, void *privdata, const char *id,
                              const void *metadata, size_t len)
{
    ASYNC_CALL(maos_session_update(c, id, metadata, len, NULL));
}

int maos_async_lock_wait(maos_ctx *c, maos_callback cb, void *privdata, const char *name,
                         int wait_ms)
{
    ASYNC_CALL(maos_lock(c, name, wait_ms, NULL));
}

/* ---- results ----------------------------------------------------------------- */

uint64_t maos_result_rid(const maos_result *r)
{
    return r && r->pd ? r->pd->rid : 0;
}

const char *maos_result_errstr(const maos_result *r)
{
    return r && r->pd ? r->pd->errstr : "";
}

int maos_result_actual(const maos_result *r, int64_t *actual)
{
    if (!r || !r->pd || !r->pd->f || !r->rep.has_actual)
        return 0;
    if (actual)
        *actual = r->rep.actual;
    return 1;
}

int64_t maos_result_index(const maos_result *r)
{
    return r && r->pd && r->pd->f && !r->rep.ok ? r->rep.index : -1;
}

/* A successful answer to one of ops (0-terminated), or MAOS_EINVALID_ARG. */
static int answer_of(const maos_result *r, const maos_op *ops)
{
    if (!r || !r->pd || r->pd->status || !r->pd->f)
        return MAOS_EINVALID_ARG;
    for (; *ops; ops++)
        if (r->pd->op == *ops)
            return 0;
    return MAOS_EINVALID_ARG;
}

/* A copy of the reply frame, for a page that takes ownership of it, and
 * the reply decoded from the copy. */
static struct rxf *frame_copy(const maos_result *r, maos_reply *rep)
{
    const struct rxf *f = r->pd->f;
    struct rxf *cp = maosc_rxf_new(f->data, f->len, 0);
    if (!cp)
        return NULL;
    maos_reply_decode(cp->data, cp->len, rep);
    return cp;
}

int maos_result_fields_get(const maos_result *r, maos_result_fields *out)
{
    if (!r || !r->pd || r->pd->status || !out)
        return MAOS_EINVALID_ARG;
    maos_result_fields v;
    memset(&v, 0, sizeof v);
    if (r->pd->f) {
        const maos_reply *rep = &r->rep;
        v.revision = rep->revision;
        v.count = rep->count;
        v.position = rep->position;
        v.receivers = rep->receivers;
        v.lease_until = rep->lease_until;
        v.more = rep->more;
        snprintf(v.state, sizeof v.state, "%.*s", (int)rep->state.len,
                 rep->state.ptr ? rep->state.ptr : "");
    }
    v.sub = r->pd->sub_id;
    *out = v;
    return 0;
}

/* Result i of an append or txn answer: 0 and *res, or an error. */
static int append_result_at(const maos_result *r, size_t i, maos_append_result *res)
{
    static const maos_op ops[] = {MAOS_OP_APPEND, MAOS_OP_TXN, 0};
    if (answer_of(r, ops))
        return MAOS_EINVALID_ARG;
    if (r->pd->op == MAOS_OP_APPEND) {
        if (i != 0)
            return MAOS_EINVALID_ARG;
        *res = r->rep.result;
        return 0;
    }
    maos_mpr m;
    uint32_t cnt;
    maos_mpr_init(&m, r->rep.results.ptr, r->rep.results.len);
    if (maos_mpr_array(&m, &cnt))
        return maosc_die(r->c, MAOS_EPROTO, "malformed txn reply");
    if (i >= cnt)
        return MAOS_EINVALID_ARG;
    for (size_t k = 0; k <= i; k++)
        if (maos_append_result_next(&m, res))
            return maosc_die(r->c, MAOS_EPROTO, "malformed txn result %zu", k);
    return 0;
}

int maos_result_append(const maos_result *r, size_t i, maos_append_info *out)
{
    maos_append_result res;
    maos_append_info tmp;
    if (!out)
        return MAOS_EINVALID_ARG;
    int rc = append_result_at(r, i, &res);
    if (!rc)
        rc = maosc_copy_result(r->c, &res, &tmp, NULL, 0);
    if (!rc)
        *out = tmp;
    return rc;
}

int maos_result_batch(const maos_result *r, size_t i, maos_batch_outcome *out,
                      uint8_t (*ids)[16], size_t cap)
{
    static const maos_op ops[] = {MAOS_OP_APPEND_BATCH, 0};
    if (!out || (!ids && cap) || answer_of(r, ops))
        return MAOS_EINVALID_ARG;
    struct maosc_pend *pd = r->pd;
    maos_batch_result res;
    if (i >= r->rep.n_results)
        return MAOS_EINVALID_ARG;
    size_t k = pd->batch_at;
    if (!k || i < k - 1) { /* from the start (the first call, or going back) */
        uint32_t cnt;
        maos_mpr_init(&pd->batch_cur, r->rep.results.ptr, r->rep.results.len);
        if (maos_mpr_array(&pd->batch_cur, &cnt) || cnt != r->rep.n_results)
            return maosc_die(r->c, MAOS_EPROTO, "malformed append_batch reply");
        k = 1;
    }
    /* the cursor stands before element k - 1 */
    for (; k - 1 <= i; k++)
        if (maos_batch_result_next(&pd->batch_cur, &res)) {
            pd->batch_at = 0;
            return maosc_die(r->c, MAOS_EPROTO, "malformed append_batch result %zu", k - 1);
        }
    pd->batch_at = (uint32_t)k;
    maosc_batch_outcome(r->c, &res, out, ids, cap);
    return 0;
}

int maos_result_append_ids(const maos_result *r, size_t i, uint8_t (*ids)[16], size_t cap)
{
    maos_append_result res;
    if (!ids && cap)
        return MAOS_EINVALID_ARG;
    int rc = append_result_at(r, i, &res);
    return rc ? rc : maosc_copy_result(r->c, &res, NULL, ids, cap);
}

size_t maos_result_count(const maos_result *r)
{
    static const maos_op ops[] = {MAOS_OP_APPEND, MAOS_OP_TXN, MAOS_OP_APPEND_BATCH, 0};
    if (answer_of(r, ops))
        return 0;
    return r->pd->op == MAOS_OP_APPEND ? 1 : r->rep.n_results;
}

int maos_result_status(const maos_result *r)
{
    return r && r->pd ? r->pd->status : MAOS_EINVALID_ARG;
}

void maos_result_free(maos_result *r)
{
    if (!r || !r->owned)
        return;
    free(r->pd->f);
    free(r->pd);
    free(r);
}

int maos_result_page(const maos_result *r, maos_page **out)
{
    static const maos_op ops[] = {MAOS_OP_READ, MAOS_OP_READ_ALL, 0};
    maos_reply rep;
    if (answer_of(r, ops) || !out)
        return MAOS_EINVALID_ARG;
    struct rxf *f = frame_copy(r, &rep);
    return f ? maosc_make_page(r->c, f, &rep, out) : MAOS_ENOMEM;
}

int maos_result_streams(const maos_result *r, maos_stream_page **out)
{
    static const maos_op ops[] = {MAOS_OP_STREAMS, 0};
    maos_reply rep;
    if (answer_of(r, ops) || !out)
        return MAOS_EINVALID_ARG;
    struct rxf *f = frame_copy(r, &rep);
    return f ? maosc_make_stream_page(r->c, f, &rep, out) : MAOS_ENOMEM;
}

int maos_result_stats(const maos_result *r, maos_stats_info *out)
{
    static const maos_op ops[] = {MAOS_OP_STATS, 0};
    if (answer_of(r, ops) || !out)
        return MAOS_EINVALID_ARG;
    return maosc_stats_from(r->c, &r->rep, out);
}

int maos_result_stats_kv(const maos_result *r, maos_stats_kv **out)
{
    static const maos_op ops[] = {MAOS_OP_STATS, 0};
    if (answer_of(r, ops) || !out)
        return MAOS_EINVALID_ARG;
    return maosc_stats_kv_from(r->c, r->pd->f, &r->rep, out);
}

int maos_result_stream_meta(const maos_result *r, maos_stream_meta_info *out)
{
    static const maos_op ops[] = {MAOS_OP_STREAM_META, 0};
    if (answer_of(r, ops) || !out)
        return MAOS_EINVALID_ARG;
    maosc_stream_meta_from(&r->rep, out);
    return 0;
}

int maos_result_queue_stats(const maos_result *r, maos_queue_stat **out, size_t *n)
{
    static const maos_op ops[] = {MAOS_OP_QUEUE_STATS, 0};
    if (answer_of(r, ops) || !out || !n)
        return MAOS_EINVALID_ARG;
    return maosc_queue_stats_from(r->c, &r->rep, out, n);
}

int maos_result_table_page(const maos_result *r, maos_table_page **out)
{
    static const maos_op ops[] = {MAOS_OP_GET, MAOS_OP_LIST, 0};
    maos_reply rep;
    if (answer_of(r, ops) || !out)
        return MAOS_EINVALID_ARG;
    struct rxf *f = frame_copy(r, &rep);
    return f ? maosc_make_table_page(r->c, f, &rep, r->pd->op == MAOS_OP_GET, out)
             : MAOS_ENOMEM;
}

int maos_result_task_page(const maos_result *r, maos_task_page **out)
{
    static const maos_op ops[] = {MAOS_OP_CLAIM, MAOS_OP_TASK, MAOS_OP_DEAD_LIST, 0};
    maos_reply rep;
    if (answer_of(r, ops) || !out)
        return MAOS_EINVALID_ARG;
    struct rxf *f = frame_copy(r, &rep);
    return f ? maosc_make_task_page(r->c, f, &rep, r->pd->op == MAOS_OP_TASK, out)
             : MAOS_ENOMEM;
}

int maos_result_enqueue(const maos_result *r, size_t n, uint8_t *ids, int *duplicates)
{
    static const maos_op ops[] = {MAOS_OP_ENQUEUE, 0};
    if (answer_of(r, ops))
        return MAOS_EINVALID_ARG;
    const maos_reply *rep = &r->rep;
    maos_mpr m;
    uint32_t cnt;
    maos_mpr_init(&m, rep->duplicates.ptr, rep->duplicates.len);
    if (rep->n_duplicates != n || rep->task_ids.len != 16 * n || maos_mpr_array(&m, &cnt) ||
        cnt != n)
        return n == rep->n_duplicates ? maosc_die(r->c, MAOS_EPROTO, "malformed enqueue reply")
                                      : MAOS_EINVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        int d;
        if (maos_mpr_bool(&m, &d))
            return maosc_die(r->c, MAOS_EPROTO, "malformed enqueue reply");
        if (duplicates)
            duplicates[i] = d;
    }
    if (ids)
        memcpy(ids, rep->task_ids.ptr, 16 * n);
    return 0;
}
