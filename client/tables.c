/*
 * client/tables.c -- tables (put/get/delete/list/count/txn items), agents,
 * locks (a put + a watch on the holder), sessions (documents of the
 * `sessions` table).
 *
 * Invariants: out-parameters are written only on success; the agent
 * registered is re-registered after a reconnect (conn.c).
 */
#include "client_priv.h"

/* ---- tables ------------------------------------------------------------------------ */


void maos_table_page_free(maos_table_page *pg)
{
    if (!pg)
        return;
    free(pg->mem_);
    free(pg);
}

/* A page over the reply frame f (taken): n entries from items (a raw
 * array), or the one entry of a get. */
int maosc_make_table_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, int single,
                     maos_table_page **out)
{
    size_t n = single ? 1 : rep->n_items, nlen = rep->next_kind == MAOS_NEXT_STR ? rep->next_s.len : 0;
    maos_table_page *pg = calloc(1, sizeof *pg + n * sizeof(maos_table_entry) + nlen + 1);
    if (!pg) {
        free(f);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    pg->entries = (maos_table_entry *)(pg + 1);
    char *next = (char *)(pg->entries + n);
    int bad = 0;
    if (single) {
        bad = maosc_entry_decode(rep->entry.ptr, rep->entry.len, &pg->entries[0]) != 0;
    } else {
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, rep->items.ptr, rep->items.len);
        bad = maos_mpr_array(&r, &cnt) || cnt != n;
        for (size_t i = 0; !bad && i < n; i++)
            bad = maosc_entry_next(&r, &pg->entries[i]) != 0;
    }
    if (bad) {
        free(pg);
        free(f);
        return maosc_die(c, MAOS_EPROTO, "malformed entries in a reply");
    }
    pg->n = n;
    pg->revision = rep->revision;
    if (nlen)
        memcpy(next, rep->next_s.ptr, nlen);
    next[nlen] = 0;
    pg->has_next = nlen > 0;
    pg->next = pg->has_next ? next : NULL;
    pg->mem_ = f;
    *out = pg;
    return 0;
}

int maos_put(maos_ctx *c, const char *table, const char *key, const void *doc,
             size_t len, int64_t expect, int bind, uint64_t *revision)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "table", table)) || (rc = maosc_check_str(c, "key", key)) ||
        (rc = maosc_check_doc(c, "doc", doc, len, 0)))
        return rc;
    maos_slice d = {doc, (uint32_t)len};
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_PUT,
                         maos_enc_put(&rq.pk, rq.rid, maosc_cstr(table), maosc_cstr(key), d, expect, bind),
                         &f, &rep)))
        return rc;
    if (revision)
        *revision = rep.revision;
    free(f);
    return 0;
}

int maos_get(maos_ctx *c, const char *table, const char *key, maos_table_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "table", table)) || (rc = maosc_check_str(c, "key", key)))
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_GET,
                         maos_enc_get(&rq.pk, rq.rid, maosc_cstr(table), maosc_cstr(key)), &f, &rep)))
        return rc;
    return maosc_make_table_page(c, f, &rep, 1, out);
}

int maos_delete(maos_ctx *c, const char *table, const char *key, int64_t expect,
                uint64_t *revision)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "table", table)) || (rc = maosc_check_str(c, "key", key)))
        return rc;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_DELETE,
                         maos_enc_delete(&rq.pk, rq.rid, maosc_cstr(table), maosc_cstr(key), expect), &f,
                         &rep)))
        return rc;
    if (revision)
        *revision = rep.revision;
    free(f);
    return 0;
}

int maos_list(maos_ctx *c, const char *table, const char *prefix, const char *after,
              const void *where, size_t where_len, uint32_t limit,
              maos_table_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "table", table)) ||
        (rc = maosc_check_doc(c, "where", where, where_len, 1)))
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if (limit > MAOS_READ_LIMIT_MAX)
        limit = MAOS_READ_LIMIT_MAX;
    maos_slice w = {where, (uint32_t)where_len};
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_LIST,
                         maos_enc_list(&rq.pk, rq.rid, maosc_cstr(table), maosc_cstr(prefix), maosc_cstr(after),
                                       limit, w),
                         &f, &rep)))
        return rc;
    return maosc_make_table_page(c, f, &rep, 0, out);
}

int maos_count(maos_ctx *c, const char *table, const char *prefix, const void *where,
               size_t where_len, uint64_t *count, uint64_t *revision)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "table", table)) ||
        (rc = maosc_check_doc(c, "where", where, where_len, 1)))
        return rc;
    maos_slice w = {where, (uint32_t)where_len};
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_COUNT,
                         maos_enc_count(&rq.pk, rq.rid, maosc_cstr(table), maosc_cstr(prefix), w), &f, &rep)))
        return rc;
    if (count)
        *count = rep.count;
    if (revision)
        *revision = rep.revision;
    free(f);
    return 0;
}

/* What one item did, from its wire result. */
static void item_result_from(const maos_txn_result *res, maos_item_result *o)
{
    o->revision = res->kind == MAOS_ITEM_APPEND ? res->append.first_position : res->revision;
    o->lease_until = res->kind == MAOS_ITEM_EXTEND ? res->lease_until : 0;
    snprintf(o->state, sizeof o->state, "%.*s",
             res->kind == MAOS_ITEM_NACK ? (int)res->state.len : 0,
             res->state.ptr ? res->state.ptr : "");
    o->n_ids = res->kind == MAOS_ITEM_ENQUEUE ? res->task_ids.len / 16 : 0;
}

int maos_result_txn_item(const maos_result *r, size_t i, maos_item_result *out,
                         uint8_t (*ids)[16], size_t cap)
{
    if (!r || !r->pd || r->pd->status || !r->pd->f || r->pd->op != MAOS_OP_TXN ||
        !r->pd->kinds || i >= r->pd->n_kinds || (!ids && cap))
        return MAOS_EINVALID_ARG;
    maos_mpr m;
    uint32_t cnt;
    maos_txn_result res;
    maos_mpr_init(&m, r->rep.results.ptr, r->rep.results.len);
    if (maos_mpr_array(&m, &cnt) || cnt != r->pd->n_kinds)
        return maosc_die(r->c, MAOS_EPROTO, "malformed txn results");
    for (size_t k = 0; k <= i; k++)
        if (maos_txn_result_next(&m, r->pd->kinds[k], &res) ||
            (res.kind == MAOS_ITEM_ENQUEUE && res.task_ids.len % 16) ||
            (res.kind == MAOS_ITEM_APPEND &&
             res.append.ids.len != (uint64_t)res.append.count * 16))
            return maosc_die(r->c, MAOS_EPROTO, "malformed txn result %zu", k);
    maos_item_result o;
    item_result_from(&res, &o);
    if (ids && cap) {
        maos_slice s = res.kind == MAOS_ITEM_APPEND    ? res.append.ids
                       : res.kind == MAOS_ITEM_ENQUEUE ? res.task_ids
                                                       : (maos_slice){NULL, 0};
        if (s.len)
            memcpy(ids, s.ptr, 16 * (s.len / 16 < cap ? s.len / 16 : cap));
    }
    if (out)
        *out = o;
    return 0;
}

/* The wire form of the caller's txn items (checked): in[n], with what
 * they point to (appends, events, tasks) allocated in *blocks (up to 3 per
 * item), all freed by items_free. */
struct items_mem {
    maos_item_in *in;
    void **blocks;
    size_t n_blocks;
    int all_ids; /* every item an append whose events all carry ids */
};

static void items_free(struct items_mem *m)
{
    for (size_t i = 0; i < m->n_blocks; i++)
        free(m->blocks[i]);
    free(m->blocks);
    free(m->in);
}

static int items_in(maos_ctx *c, const maos_txn_item *items, size_t n, struct items_mem *m)
{
    int rc = 0;
    memset(m, 0, sizeof *m);
    m->in = calloc(n, sizeof *m->in);
    m->blocks = calloc(2 * n, sizeof *m->blocks);
    if (!m->in || !m->blocks) {
        items_free(m);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    m->all_ids = 1;
    for (size_t i = 0; i < n && !rc; i++) {
        const maos_txn_item *it = &items[i];
        maos_item_in *x = &m->in[i];
        x->kind = it->kind;
        switch (it->kind) {
        case MAOS_ITEM_APPEND: {
            maos_append_in *ap = NULL;
            maos_event_in *evs = NULL;
            int all_ids = 0;
            if (!it->append) {
                rc = maosc_fail(c, MAOS_EINVALID_ARG, "item %zu: append is NULL", i);
                break;
            }
            rc = maosc_appends_in(c, 0, it->append, 1, &ap, &evs, &all_ids);
            if (!rc) {
                m->blocks[m->n_blocks++] = ap;
                m->blocks[m->n_blocks++] = evs;
                x->append = ap;
                m->all_ids &= all_ids;
            }
            break;
        }
        case MAOS_ITEM_PUT:
        case MAOS_ITEM_DELETE:
            m->all_ids = 0;
            if ((rc = maosc_check_str(c, "table", it->table)) ||
                (rc = maosc_check_str(c, "key", it->key)))
                break;
            if (it->kind == MAOS_ITEM_PUT &&
                (rc = maosc_check_doc(c, "doc", it->doc, it->doc_len, 0)))
                break;
            x->table.name = maosc_cstr(it->table);
            x->key = maosc_cstr(it->key);
            if (it->kind == MAOS_ITEM_PUT)
                x->data = (maos_slice){it->doc, (uint32_t)it->doc_len};
            x->expect = it->expect;
            x->bind = it->bind;
            break;
        case MAOS_ITEM_CHECKPOINT:
            m->all_ids = 0;
            if (!(rc = maosc_check_str(c, "name", it->name))) {
                x->name = maosc_cstr(it->name);
                x->position = it->position;
            }
            break;
        case MAOS_ITEM_ENQUEUE: {
            maos_task_in *t = NULL;
            m->all_ids = 0;
            if ((rc = maosc_check_str(c, "queue", it->queue)) ||
                (rc = maosc_tasks_in(c, it->datas, it->lens, it->opts, it->n_tasks, &t)))
                break;
            m->blocks[m->n_blocks++] = t;
            x->queue = maosc_cstr(it->queue);
            x->tasks = t;
            x->n_tasks = (uint32_t)it->n_tasks;
            break;
        }
        case MAOS_ITEM_ACK:
        case MAOS_ITEM_NACK:
        case MAOS_ITEM_EXTEND:
        case MAOS_ITEM_TASK_RELEASE:
            m->all_ids = 0;
            memcpy(x->task, it->task, 16);
            x->has_task = 1;
            x->token = it->token;
            if (it->kind == MAOS_ITEM_ACK) {
                if ((rc = maosc_check_value(c, "result", it->result, it->result_len)))
                    break;
                x->result = (maos_slice){it->result_len ? it->result : NULL,
                                         (uint32_t)it->result_len};
            } else if (it->kind == MAOS_ITEM_NACK) {
                x->error = maosc_cstr(it->error);
                x->retry_after_ms = it->retry_after_ms < 0 ? -1 : it->retry_after_ms;
            } else if (it->kind == MAOS_ITEM_EXTEND) {
                x->lease_ms = it->lease_ms;
            }
            break;
        default:
            rc = maosc_fail(c, MAOS_EINVALID_ARG, "item %zu: unknown kind %d", i, it->kind);
        }
    }
    if (rc)
        items_free(m);
    return rc;
}

int maos_txn_items_ex(maos_ctx *c, const maos_txn_item *items, size_t n,
                      maos_item_result *results)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    struct items_mem m;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!items || !n || n > 100)
        return maosc_fail(c, MAOS_EINVALID_ARG, "a txn has 1..100 items");
    if ((rc = items_in(c, items, n, &m)))
        return rc;
    if (!(rc = maosc_req_begin(c, &rq))) {
        rq.retry_ids = m.all_ids;
        /* async: the kinds read its results later (maos_result_txn_item) */
        if (c->priv->submit_async && (rq.kinds = malloc(n)))
            for (size_t i = 0; i < n; i++)
                rq.kinds[i] = (unsigned char)items[i].kind;
        rq.n_kinds = rq.kinds ? n : 0;
        rc = c->priv->submit_async && !rq.kinds
                 ? maosc_fail(c, MAOS_ENOMEM, "out of memory")
                 : maosc_call(c, &rq, MAOS_OP_TXN,
                              maos_enc_txn_ops(&rq.pk, rq.rid, m.in, (uint32_t)n), &f, &rep);
        free(rq.kinds); /* NULL once the completion took it */
    }
    items_free(&m);
    if (rc)
        return rc;
    /* every element is checked before the first result is written */
    maos_mpr r, r2;
    uint32_t cnt;
    maos_mpr_init(&r, rep.results.ptr, rep.results.len);
    rc = maos_mpr_array(&r, &cnt) || cnt != n ? MAOS_EPROTO : 0;
    r2 = r;
    for (size_t i = 0; !rc && i < n; i++) {
        maos_txn_result res;
        if (maos_txn_result_next(&r2, items[i].kind, &res) ||
            (res.kind == MAOS_ITEM_ENQUEUE && res.task_ids.len % 16) ||
            (res.kind == MAOS_ITEM_APPEND &&
             res.append.ids.len != (uint64_t)res.append.count * 16))
            rc = MAOS_EPROTO;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        maos_txn_result res;
        maos_item_result tmp, *o = results ? &results[i] : &tmp;
        maos_txn_result_next(&r, items[i].kind, &res);
        item_result_from(&res, o);
        if (res.kind == MAOS_ITEM_ENQUEUE && items[i].ids)
            memcpy(items[i].ids, res.task_ids.ptr,
                   16 * (res.task_ids.len / 16 < items[i].n_tasks ? res.task_ids.len / 16
                                                                  : items[i].n_tasks));
        if (res.kind == MAOS_ITEM_APPEND && items[i].append && items[i].append->ids)
            maosc_copy_result(c, &res.append, NULL, items[i].append->ids,
                              items[i].append->n_events);
    }
    free(f);
    if (rc)
        return maosc_die(c, rc, "malformed txn results");
    return 0;
}

int maos_txn_items(maos_ctx *c, const maos_txn_item *items, size_t n,
                   uint64_t *revisions)
{
    maos_item_result stack[8], *res = stack;
    if (revisions && items && n > 8 && n <= 100 && !(res = calloc(n, sizeof *res)))
        return c ? maosc_fail(c, MAOS_ENOMEM, "out of memory") : MAOS_ENOMEM;
    if (revisions && res == stack)
        memset(stack, 0, sizeof stack);
    int rc = maos_txn_items_ex(c, items, n, revisions ? res : NULL);
    for (size_t i = 0; !rc && revisions && i < n; i++)
        revisions[i] = res[i].revision;
    if (res != stack)
        free(res);
    return rc;
}


/* ---- agents ------------------------------------------------------------------------ */

/* An async agent_register's fate, decided when its answer comes: the agent
 * it set stays registered on the context (re-registered after reconnects)
 * when the daemon accepted it; else the one before comes back. */
struct agent_swap {
    maos_agent_in old;
    char *old_mem, *new_mem;
};

static void agent_reg_done(maos_ctx *c, struct maosc_pend *pd, int status, struct rxf *f,
                           const maos_reply *rep)
{
    (void)f;
    (void)rep;
    struct maos_ctx_priv *p = c->priv;
    struct agent_swap *sw = pd->arg;
    if (!sw)
        return;
    pd->arg = NULL;
    if (status && p->agent_mem == sw->new_mem) {
        free(p->agent_mem);
        p->agent = sw->old;
        p->agent_mem = sw->old_mem;
    } else {
        free(sw->old_mem);
    }
    free(sw);
}

int maosc_agent_send(maos_ctx *c, uint64_t *revision)
{
    struct maos_ctx_priv *p = c->priv;
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_req_begin(c, &rq);
    if (!rc && p->submit_async) {
        rq.internal = agent_reg_done;
        rq.arg = p->agent_swap_;
    }
    if (rc || (rc = maosc_call(c, &rq, MAOS_OP_AGENT_REGISTER,
                               maos_enc_agent_register(&rq.pk, rq.rid, &p->agent), &f, &rep)))
        return rc;
    if (revision)
        *revision = rep.revision;
    free(f);
    return 0;
}

int maos_agent_register(maos_ctx *c, const maos_agent_spec *a, uint64_t *revision)
{
    struct maos_ctx_priv *p;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    p = c->priv;
    if (!a || !a->id || !*a->id)
        return maosc_fail(c, MAOS_EINVALID_ARG, "agent id is NULL or empty");
    if ((rc = maosc_check_doc(c, "details", a->details, a->details_len, 1)))
        return rc;
    /* one block: id, session, name, kind (NUL-terminated), the tags as a
     * msgpack array, the details */
    const char *strs[4] = {a->id, a->session, a->name, a->kind};
    size_t need = a->details_len + 16;
    for (int i = 0; i < 4; i++)
        need += strs[i] ? strlen(strs[i]) + 1 : 0;
    msgpack_sbuffer tags;
    msgpack_sbuffer_init(&tags);
    if (a->n_tags) {
        msgpack_packer tp;
        msgpack_packer_init(&tp, &tags, msgpack_sbuffer_write);
        msgpack_pack_array(&tp, a->n_tags);
        for (size_t i = 0; i < a->n_tags; i++) {
            const char *t = a->tags[i] ? a->tags[i] : "";
            msgpack_pack_str(&tp, strlen(t));
            msgpack_pack_str_body(&tp, t, strlen(t));
        }
        if (!tags.data)
            return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    need += tags.size;
    char *mem = malloc(need);
    if (!mem) {
        msgpack_sbuffer_destroy(&tags);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    maos_agent_in in;
    memset(&in, 0, sizeof in);
    maos_slice *dst[4] = {&in.id, &in.session, &in.name, &in.kind};
    char *q = mem;
    for (int i = 0; i < 4; i++) {
        if (!strs[i])
            continue;
        size_t l = strlen(strs[i]);
        memcpy(q, strs[i], l + 1);
        *dst[i] = (maos_slice){q, (uint32_t)l};
        q += l + 1;
    }
    if (tags.size) {
        memcpy(q, tags.data, tags.size);
        in.tags = (maos_slice){q, (uint32_t)tags.size};
        q += tags.size;
    }
    msgpack_sbuffer_destroy(&tags);
    if (a->details_len) {
        memcpy(q, a->details, a->details_len);
        in.details = (maos_slice){q, (uint32_t)a->details_len};
    }
    char *old_mem = p->agent_mem;
    maos_agent_in old = p->agent;
    struct agent_swap *sw = NULL;
    if (p->submit_async && !(sw = malloc(sizeof *sw))) {
        free(mem);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    if (sw)
        *sw = (struct agent_swap){old, old_mem, mem};
    p->agent = in;
    p->agent_mem = mem;
    p->agent_swap_ = sw;
    rc = maosc_agent_send(c, revision);
    p->agent_swap_ = NULL;
    if (rc == MAOSC_QUEUED)
        return rc; /* agent_reg_done decides, when the answer comes */
    free(sw);
    if (rc) { /* keep what was registered before, if anything */
        p->agent = old;
        p->agent_mem = old_mem;
        free(mem);
        return rc;
    }
    free(old_mem);
    return 0;
}

int maos_agent_status(maos_ctx *c, const char *status, const void *detail, size_t len)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "status", status)))
        return rc;
    if (len && (!detail || len > UINT32_MAX || maos_mp_check(detail, len, &lim)))
        return maosc_fail(c, MAOS_EINVALID_ARG, "detail is not one well-formed msgpack value");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_AGENT_STATUS,
                         maos_enc_agent_status(&rq.pk, rq.rid, maosc_cstr(status),
                                               (maos_slice){detail, (uint32_t)len}),
                         &f, &rep)))
        return rc;
    free(f);
    return 0;
}

int maos_agent_deregister(maos_ctx *c, const char *id)
{
    struct maos_ctx_priv *p;
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "id", id)))
        return rc;
    p = c->priv;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_AGENT_DEREGISTER,
                         maos_enc_agent_deregister(&rq.pk, rq.rid, maosc_cstr(id)), &f, &rep)))
        if (rc != MAOSC_QUEUED) /* async: forgotten now, not re-registered */
            return rc;
    if (rc == 0)
        free(f);
    if (p->agent_mem && p->agent.id.len == strlen(id) &&
        !memcmp(p->agent.id.ptr, id, p->agent.id.len)) {
        free(p->agent_mem);
        p->agent_mem = NULL;
        memset(&p->agent, 0, sizeof p->agent);
    }
    return rc;
}

/* ---- locks ---------------------------------------------------------------------------- */

/* 1 when the delivery holds the `deleted` event of stream. */
static int has_deleted(const maos_delivery *d, const char *stream)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->events[i].stream_len == strlen(stream) &&
            !memcmp(d->events[i].stream, stream, d->events[i].stream_len) &&
            d->events[i].type_len == 7 && !memcmp(d->events[i].type, "deleted", 7))
            return 1;
    return 0;
}

/* The document of a lock: {"owner": client name, "pid": pid}, into doc
 * (room for 64 + 255 bytes); its length, or 0 out of memory. */
static size_t lock_doc(struct maos_ctx_priv *p, char *doc, size_t cap)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *owner = p->client_name ? p->client_name : "libmaos-client";
    size_t ol = strlen(owner) > 255 ? 255 : strlen(owner);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 5);
    msgpack_pack_str_body(&pk, "owner", 5);
    msgpack_pack_str(&pk, ol);
    msgpack_pack_str_body(&pk, owner, ol);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "pid", 3);
    msgpack_pack_int64(&pk, (int64_t)getpid());
    size_t dlen = sb.data && sb.size <= cap ? sb.size : 0;
    if (dlen)
        memcpy(doc, sb.data, dlen);
    msgpack_sbuffer_destroy(&sb);
    return dlen;
}

/*
 * An async waiting lock (maos_async_lock_wait): put (absent, bound); when
 * held, a watch of the entry from the holder's revision, whose deliveries
 * come to lockw_push (never queued for the caller); at the holder's
 * `deleted`, or at the deadline (maosc_lockw_expire), a continuation
 * (lockw_cont, a posted completion) unsubscribes and puts again, or ends.
 * `armed`: waiting for the push or the deadline, nothing in flight; a waiter
 * is in the context's list from start to end, so that maos_free ends those
 * waiting (maosc_lockw_abort).  The caller's callback runs once, with the
 * last put's answer (fields.revision: the token) or the error.
 */
struct maosc_lockw {
    struct maosc_lockw *next, *prev;
    maos_callback cb;
    void *privdata;
    int wait_ms;
    long long deadline;     /* monotonic ms; 0: none */
    uint64_t sub;           /* the watch, once known */
    int64_t held;           /* the holder's token */
    int armed, watch_done, freed_early;
    size_t dlen;
    char doc[64 + 255];
    char stream[16 + MAOS_KEY_MAX];
    char name[];
};

static void lockw_finish(maos_ctx *c, struct maosc_lockw *w, int status, maos_result *r)
{
    struct maos_ctx_priv *p = c->priv;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->lockw_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->cb(c, status, r, w->privdata);
    free(w);
}

static void lockw_put_done(maos_ctx *c, int status, maos_result *r, void *arg);

static void lockw_cont(maos_ctx *c, int status, maos_result *r, void *arg)
{
    struct maosc_lockw *w = arg;
    if (w->sub)
        maos_async_unsubscribe(c, maosc_ignore, NULL, w->sub); /* gone locally at once */
    w->sub = 0;
    int rc = status;
    if (!rc) {
        c->priv->lock_put = w->name; /* wire.c let_go */
        rc = maos_async_put(c, lockw_put_done, w, "locks", w->name, w->doc, w->dlen,
                            MAOS_EXPECT_ABSENT, 1);
        c->priv->lock_put = NULL;
    }
    if (rc)
        lockw_finish(c, w, rc, r);
}

static void lockw_push(maos_ctx *c, struct csub *s, const maos_delivery *d)
{
    struct maosc_lockw *w = s->hook_arg;
    w->sub = s->id;
    if (!has_deleted(d, w->stream))
        return;
    if (!w->watch_done) {
        w->freed_early = 1; /* lockw_watch_done goes on */
        return;
    }
    if (!w->armed)
        return;
    w->armed = 0;
    if (maosc_post(c, lockw_cont, w, 0, NULL))
        w->armed = 1; /* out of memory: the deadline (or maos_free) ends it */
}

static void lockw_watch_done(maos_ctx *c, int status, maos_result *r, void *arg)
{
    struct maosc_lockw *w = arg;
    maos_result_fields fl;
    if (status) {
        lockw_finish(c, w, status, r);
        return;
    }
    if (!maos_result_fields_get(r, &fl))
        w->sub = fl.sub;
    w->watch_done = 1;
    if (w->freed_early) {
        lockw_cont(c, 0, r, w);
        return;
    }
    w->armed = 1;
    struct maos_ctx_priv *p = c->priv;
    if (w->deadline && (!p->next_deadline || w->deadline < p->next_deadline))
        p->next_deadline = w->deadline; /* maos_process tells the loop's timer */
}

static void lockw_put_done(maos_ctx *c, int status, maos_result *r, void *arg)
{
    struct maosc_lockw *w = arg;
    struct maos_ctx_priv *p = c->priv;
    int64_t held = 0;
    if (status != MAOS_EWRONG_REVISION || !maos_result_actual(r, &held) || held <= 0) {
        lockw_finish(c, w, status, r);
        return;
    }
    if (w->deadline && maosc_now_ms() >= w->deadline) {
        lockw_finish(c, w, MAOS_ETIMEOUT, r);
        return;
    }
    /* wait for the holder's `deleted`, by push, from its revision */
    w->held = held;
    w->watch_done = w->freed_early = w->armed = 0;
    p->submit_hook = lockw_push;
    p->submit_hook_arg = w;
    int rc = maos_async_watch(c, lockw_watch_done, w, "locks", w->name,
                              MAOS_WATCH_FROM_REVISION, (uint64_t)held);
    p->submit_hook = NULL;
    p->submit_hook_arg = NULL;
    if (rc)
        lockw_finish(c, w, rc, r);
}

void maosc_lockw_expire(maos_ctx *c, long long now, long long *next)
{
    for (struct maosc_lockw *w = c->priv->lockw_head; w; w = w->next) {
        if (!w->armed || !w->deadline)
            continue;
        if (w->deadline <= now) {
            char why[160];
            snprintf(why, sizeof why, "lock %s is held (token %lld) after %d ms", w->name,
                     (long long)w->held, w->wait_ms);
            w->armed = 0;
            if (maosc_post(c, lockw_cont, w, MAOS_ETIMEOUT, why))
                w->armed = 1;
        } else if (*next < 0 || w->deadline < *next) {
            *next = w->deadline;
        }
    }
}

void maosc_lockw_abort(maos_ctx *c, int status)
{
    for (struct maosc_lockw *w = c->priv->lockw_head; w; w = w->next)
        if (w->armed) {
            w->armed = 0;
            if (maosc_post(c, lockw_cont, w, status, "the context was freed"))
                w->armed = 1;
        }
}

/* maos_async_lock_wait's start (submit mode: the caller's callback). */
static int lock_async(maos_ctx *c, const char *name, int wait_ms)
{
    struct maos_ctx_priv *p = c->priv;
    size_t nl = strlen(name);
    struct maosc_lockw *w = calloc(1, sizeof *w + nl + 1);
    if (!w)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    memcpy(w->name, name, nl + 1);
    snprintf(w->stream, sizeof w->stream, "lock-%s", name);
    if (!(w->dlen = lock_doc(p, w->doc, sizeof w->doc))) {
        free(w);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    w->cb = p->submit_cb;
    w->privdata = p->submit_privdata;
    w->wait_ms = wait_ms;
    w->deadline = wait_ms > 0 ? maosc_now_ms() + wait_ms : 0;
    p->submit_async = 0; /* its first request is an async call of its own */
    p->lock_put = name; /* wire.c let_go */
    int rc = maos_async_put(c, lockw_put_done, w, "locks", name, w->doc, w->dlen,
                            MAOS_EXPECT_ABSENT, 1);
    p->lock_put = NULL;
    if (rc) {
        free(w);
        return rc;
    }
    w->next = p->lockw_head;
    if (w->next)
        w->next->prev = w;
    p->lockw_head = w;
    return MAOSC_QUEUED;
}

int maos_lock(maos_ctx *c, const char *name, int wait_ms, uint64_t *token)
{
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "name", name)))
        return rc;
    struct maos_ctx_priv *p = c->priv;
    if (p->submit_async && wait_ms != 0)
        return lock_async(c, name, wait_ms);
    char doc[64 + 255], stream[16 + MAOS_KEY_MAX];
    size_t dlen = lock_doc(p, doc, sizeof doc);
    if (!dlen)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    snprintf(stream, sizeof stream, "lock-%s", name);
    long long deadline = wait_ms < 0 ? -1 : maosc_now_ms() + wait_ms;
    for (;;) {
        p->lock_put = name; /* a put answered after its async timeout: wire.c let_go */
        rc = maos_put(c, "locks", name, doc, dlen, MAOS_EXPECT_ABSENT, 1, token);
        p->lock_put = NULL;
        if (rc != MAOS_EWRONG_REVISION || wait_ms == 0)
            return rc;
        int64_t held;
        if (!maos_err_actual(c, &held) || held <= 0)
            return rc;
        /* wait for the holder's `deleted`, by push, from its revision */
        uint64_t sub;
        if ((rc = maos_watch(c, "locks", name, MAOS_WATCH_FROM_REVISION,
                             (uint64_t)held, &sub)))
            return rc;
        int freed = 0;
        while (!freed) {
            int left = -1;
            if (deadline >= 0) {
                long long l = deadline - maosc_now_ms();
                left = l <= 0 ? 0 : l > INT_MAX ? INT_MAX : (int)l;
            }
            maos_delivery *d = NULL;
            rc = maosc_next_of(c, sub, left, &d);
            if (rc)
                break;
            freed = has_deleted(d, stream);
            maos_delivery_free(d);
        }
        int urc = maos_unsubscribe(c, sub);
        if (rc == MAOS_ETIMEOUT)
            return maosc_fail(c, MAOS_ETIMEOUT, "lock %s is held (token %lld) after %d ms",
                        name, (long long)held, wait_ms);
        if (rc)
            return rc;
        if (urc)
            return urc;
    }
}

int maos_unlock(maos_ctx *c, const char *name, uint64_t token)
{
    return maos_delete(c, "locks", name, (int64_t)token, NULL);
}

/* ---- sessions -------------------------------------------------------------------------- */

/* UUIDv7: 48-bit Unix ms, version 7, variant 10, random rest. */
void maosc_uuidv7(uint8_t id[16])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    randombytes_buf(id + 6, 10);
    for (int i = 5; i >= 0; i--) {
        id[i] = (uint8_t)ms;
        ms >>= 8;
    }
    id[6] = (uint8_t)(0x70 | (id[6] & 0x0f));
    id[8] = (uint8_t)(0x80 | (id[8] & 0x3f));
}

static void uuidv7_text(char out[37])
{
    uint8_t id[16];
    maosc_uuidv7(id);
    maos_uuid_format(id, out);
}

static void pk_kv_str(msgpack_packer *pk, const char *k, const char *v, size_t vl)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_str(pk, vl);
    msgpack_pack_str_body(pk, v, vl);
}

int64_t maosc_now_us_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int maos_session_create(maos_ctx *c, const char *id, const void *metadata, size_t len,
                        char id_out[37], uint64_t *revision)
{
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_doc(c, "metadata", metadata, len, 1)))
        return rc;
    char gen[37];
    if (!id || !*id) {
        uuidv7_text(gen);
        id = gen;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pk_kv_str(&pk, "id", id, strlen(id));
    pk_kv_str(&pk, "state", "open", 4);
    msgpack_pack_str(&pk, 7);
    msgpack_pack_str_body(&pk, "created", 7);
    msgpack_pack_int64(&pk, maosc_now_us_real());
    msgpack_pack_str(&pk, 8);
    msgpack_pack_str_body(&pk, "metadata", 8);
    if (len)
        msgpack_pack_str_body(&pk, metadata, len);
    else
        msgpack_pack_map(&pk, 0);
    if (!sb.data)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    rc = maos_put(c, "sessions", id, sb.data, sb.size, MAOS_EXPECT_ABSENT, 0, revision);
    msgpack_sbuffer_destroy(&sb);
    if ((!rc || rc == MAOSC_QUEUED) && id_out) /* async: the id is known at once */
        snprintf(id_out, 37, "%.36s", id);
    return rc;
}

/* The session document e with some top-level fields set (raw msgpack
 * values), into sb (initialised here; the caller destroys it). */
static int session_doc(maos_ctx *c, const maos_table_entry *e, const char *const *names,
                       const maos_slice *vals, int n, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    maos_mpr r;
    uint32_t m, keep = 0;
    maos_mpr_init(&r, e->data.ptr, e->data.len);
    maos_mpr scan = r;
    if (maos_mpr_map(&scan, &m))
        return maosc_fail(c, MAOS_EPROTO, "session document is not a map");
    maos_mpr_map(&r, &m);
    for (int pass = 0; pass < 2; pass++) {
        maos_mpr it = r;
        if (pass == 1)
            msgpack_pack_map(&pk, keep + (uint32_t)n);
        for (uint32_t i = 0; i < m; i++) {
            maos_slice k, v, ks;
            maos_mpr_skip(&it, &k);
            maos_mpr_skip(&it, &v);
            maos_mpr kr;
            maos_mpr_init(&kr, k.ptr, k.len);
            int over = 0;
            if (maos_mpr_str(&kr, &ks) == 0)
                for (int j = 0; j < n; j++)
                    over |= ks.len == strlen(names[j]) && !memcmp(ks.ptr, names[j], ks.len);
            if (over)
                continue;
            if (pass == 0)
                keep++;
            else {
                msgpack_pack_str_body(&pk, k.ptr, k.len);
                msgpack_pack_str_body(&pk, v.ptr, v.len);
            }
        }
    }
    for (int j = 0; j < n; j++) {
        msgpack_pack_str(&pk, strlen(names[j]));
        msgpack_pack_str_body(&pk, names[j], strlen(names[j]));
        msgpack_pack_str_body(&pk, vals[j].ptr, vals[j].len);
    }
    if (!sb->data)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    return 0;
}

#define SESSION_ATTEMPTS 100

/* The async form of session_update: get, then put with compare-and-set,
 * again on MAOS_EWRONG_REVISION; the caller's callback gets the last
 * answer (the put's, or the first failure). */
struct sess_chain {
    maos_callback cb;
    void *privdata;
    int n, attempts;
    const char *names[3];
    maos_slice vals[3];
    char *id;           /* in mem */
    char mem[];         /* id, then the values */
};

static void sess_finish(maos_ctx *c, struct sess_chain *ch, int status, maos_result *r)
{
    ch->cb(c, status, r, ch->privdata);
    free(ch);
}

static void sess_put_done(maos_ctx *c, int status, maos_result *r, void *arg);

static void sess_get_done(maos_ctx *c, int status, maos_result *r, void *arg)
{
    struct sess_chain *ch = arg;
    maos_table_page *pg = NULL;
    msgpack_sbuffer sb;
    if (!status)
        status = maos_result_table_page(r, &pg);
    if (status) {
        sess_finish(c, ch, status, r);
        return;
    }
    int rc = session_doc(c, &pg->entries[0], ch->names, ch->vals, ch->n, &sb);
    if (!rc)
        rc = maos_async_put(c, sess_put_done, ch, "sessions", ch->id, sb.data, sb.size,
                            (int64_t)pg->entries[0].revision, 0);
    msgpack_sbuffer_destroy(&sb);
    maos_table_page_free(pg);
    if (rc)
        sess_finish(c, ch, rc, r);
}

static void sess_put_done(maos_ctx *c, int status, maos_result *r, void *arg)
{
    struct sess_chain *ch = arg;
    if (status == MAOS_EWRONG_REVISION && ++ch->attempts < SESSION_ATTEMPTS) {
        int rc = maos_async_get(c, sess_get_done, ch, "sessions", ch->id);
        if (rc)
            sess_finish(c, ch, rc, r);
        return;
    }
    sess_finish(c, ch, status, r);
}

/* The session's document with some top-level fields set (raw msgpack
 * values), written with compare-and-set on the revision read; again when
 * someone else wrote it in between.  In submit mode, the chain above. */
static int session_update(maos_ctx *c, const char *id, const char *const *names,
                          const maos_slice *vals, int n, uint64_t *revision)
{
    struct maos_ctx_priv *p = c->priv;
    if (p->submit_async) {
        size_t need = strlen(id) + 1;
        for (int j = 0; j < n; j++)
            need += vals[j].len;
        struct sess_chain *ch = calloc(1, sizeof *ch + need);
        if (!ch)
            return maosc_fail(c, MAOS_ENOMEM, "out of memory");
        ch->cb = p->submit_cb;
        ch->privdata = p->submit_privdata;
        ch->n = n;
        ch->id = ch->mem;
        memcpy(ch->id, id, strlen(id) + 1);
        char *q = ch->mem + strlen(id) + 1;
        for (int j = 0; j < n; j++) {
            ch->names[j] = names[j]; /* static strings */
            if (vals[j].len)
                memcpy(q, vals[j].ptr, vals[j].len);
            ch->vals[j] = (maos_slice){q, vals[j].len};
            q += vals[j].len;
        }
        p->submit_async = 0; /* the chain's first request is an async call of its own */
        int rc = maos_async_get(c, sess_get_done, ch, "sessions", ch->id);
        if (rc) {
            free(ch);
            return rc;
        }
        return MAOSC_QUEUED;
    }
    for (int attempt = 0; attempt < SESSION_ATTEMPTS; attempt++) {
        maos_table_page *pg = NULL;
        msgpack_sbuffer sb;
        int rc = maos_get(c, "sessions", id, &pg);
        if (rc)
            return rc;
        rc = session_doc(c, &pg->entries[0], names, vals, n, &sb);
        uint64_t rev = pg->entries[0].revision;
        maos_table_page_free(pg);
        if (!rc)
            rc = maos_put(c, "sessions", id, sb.data, sb.size, (int64_t)rev, 0, revision);
        msgpack_sbuffer_destroy(&sb);
        if (rc != MAOS_EWRONG_REVISION)
            return rc;
    }
    return maosc_fail(c, MAOS_ECONFLICT, "session %s kept changing under 100 attempts", id);
}

int maos_session_close(maos_ctx *c, const char *id, const void *result, size_t len,
                       uint64_t *revision)
{
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "id", id)))
        return rc;
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    if (len && (!result || len > UINT32_MAX || maos_mp_check(result, len, &lim)))
        return maosc_fail(c, MAOS_EINVALID_ARG, "result is not one well-formed msgpack value");
    char st[8], tm[16];
    st[0] = (char)0xa6;
    memcpy(st + 1, "closed", 6);
    int64_t now = maosc_now_us_real();
    tm[0] = (char)0xd3;
    for (int i = 0; i < 8; i++)
        tm[1 + i] = (char)((uint64_t)now >> (56 - 8 * i));
    const char *names[3] = {"state", "closed", "result"};
    maos_slice vals[3] = {{st, 7}, {tm, 9}, {result, (uint32_t)len}};
    return session_update(c, id, names, vals, len ? 3 : 2, revision);
}

int maos_session_update(maos_ctx *c, const char *id, const void *metadata, size_t len,
                        uint64_t *revision)
{
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "id", id)) ||
        (rc = maosc_check_doc(c, "metadata", metadata, len, 0)))
        return rc;
    const char *names[1] = {"metadata"};
    maos_slice vals[1] = {{metadata, (uint32_t)len}};
    return session_update(c, id, names, vals, 1, revision);
}
