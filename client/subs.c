/*
 * client/subs.c -- subscriptions (events, channels, table watches): the
 * caller's copy of each (struct csub), registering it on the current
 * connection (first time or after a reconnect), unsubscribe, publish.
 *
 * Invariants: a csub's caller id never changes; its `next` never moves
 * back (resume is gap-free and duplicate-free).
 */
#include "client_priv.h"

struct csub *maosc_sub_by_server_id(struct maos_ctx_priv *p, uint64_t sid)
{
    for (size_t i = 0; i < p->n_subs; i++)
        if (p->subs[i]->server_id == sid)
            return p->subs[i];
    return NULL;
}

static size_t sub_index(struct maos_ctx_priv *p, uint64_t id)
{
    for (size_t i = 0; i < p->n_subs; i++)
        if (p->subs[i]->id == id)
            return i;
    return SIZE_MAX;
}

/* ---- subscriptions ---------------------------------------------------------------- */


/* Copy a filter (event subscription) or a pattern (channel) into one new
 * csub block: the struct, the types array, then NUL-terminated strings. */
static int csub_new(maos_ctx *c, const maos_read_filter *fl, const char *pattern,
                    struct csub **out)
{
    const char *strs[3] = {NULL, NULL, NULL};
    size_t nt = 0, need = 0;
    if (fl) {
        if (fl->n_types && !fl->types)
            return maosc_fail(c, MAOS_EINVALID_ARG, "n_types without types");
        if (fl->n_types > UINT32_MAX)
            return maosc_fail(c, MAOS_ELIMIT, "too many types");
        nt = fl->n_types;
        strs[0] = fl->stream;
        strs[1] = fl->prefix;
        strs[2] = fl->category;
        for (size_t i = 0; i < nt; i++) {
            if (!fl->types[i])
                return maosc_fail(c, MAOS_EINVALID_ARG, "types[%zu] is NULL", i);
            if (strlen(fl->types[i]) > UINT32_MAX / 2)
                return maosc_fail(c, MAOS_EINVALID_ARG, "types[%zu] is too long", i);
            need += strlen(fl->types[i]) + 1;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (strs[i] && strlen(strs[i]) > UINT32_MAX / 2)
            return maosc_fail(c, MAOS_EINVALID_ARG, "filter string too long");
        need += strs[i] ? strlen(strs[i]) + 1 : 0;
    }
    if (pattern) {
        int rc = maosc_check_str(c, "pattern", pattern);
        if (rc)
            return rc;
        need += strlen(pattern) + 1;
    }
    struct csub *s = calloc(1, sizeof *s + nt * sizeof(maos_slice) + need);
    if (!s)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    maos_slice *types = (maos_slice *)(s + 1);
    char *mem = (char *)(types + nt);
#define CSUB_COPY_(dst, src)                                                       \
    do {                                                                           \
        size_t l_ = strlen(src);                                                   \
        memcpy(mem, (src), l_ + 1);                                                \
        (dst).ptr = mem;                                                           \
        (dst).len = (uint32_t)l_;                                                  \
        mem += l_ + 1;                                                             \
    } while (0)
    if (pattern) {
        s->channel = 1;
        CSUB_COPY_(s->pattern, pattern);
    }
    if (fl) {
        if (fl->stream)
            CSUB_COPY_(s->filter.stream, fl->stream);
        if (fl->prefix)
            CSUB_COPY_(s->filter.prefix, fl->prefix);
        if (fl->category)
            CSUB_COPY_(s->filter.category, fl->category);
        for (size_t i = 0; i < nt; i++)
            CSUB_COPY_(types[i], fl->types[i]);
        s->filter.types = nt ? types : NULL;
        s->filter.n_types = (uint32_t)nt;
        s->filter.has_since = fl->has_since;
        s->filter.since = fl->since;
        s->filter.has_until = fl->has_until;
        s->filter.until = fl->until;
    }
#undef CSUB_COPY_
    *out = s;
    return 0;
}

/* Remove s from the table (and its deliveries) and free it. */
static void sub_forget(struct maos_ctx_priv *p, struct csub *s)
{
    maosc_pends_forget_arg(p, s);
    size_t i = 0;
    while (i < p->n_subs && p->subs[i] != s)
        i++;
    if (i < p->n_subs) {
        memmove(&p->subs[i], &p->subs[i + 1], (p->n_subs - i - 1) * sizeof *p->subs);
        p->n_subs--;
    }
    free(s);
}

/*
 * The answer to a subscribe / subscribe_channel / watch (pd->arg: the
 * csub), handled the moment it is routed, so that the pushes behind it in
 * the same read already find their subscription.  Learns the server id and,
 * for events, the first position; gives s its caller id on the first
 * success.  A refused re-subscribe (part of a reconnect) kills the
 * attempt; a failed new one is forgotten (an async one here, a sync one by
 * sub_add).
 */
static void sub_done(maos_ctx *c, struct maosc_pend *pd, int status, struct rxf *f,
                     const maos_reply *rep)
{
    struct maos_ctx_priv *p = c->priv;
    struct csub *s = pd->arg;
    int resub = pd->kind == MAOSC_PEND_INTERNAL;
    if (!s) { /* unsubscribed meanwhile: its pushes are dropped as unknown */
        if (resub && f && !status)
            maosc_hs_step(c);
        else if (resub && f)
            maosc_die(c, status, "re-subscribing was refused: %s",
                      pd->errstr[0] ? pd->errstr : maos_strerror(status));
        return;
    }
    if (!f || !rep || status) {
        if (resub && f && status)
            maosc_die(c, status, "re-subscribing subscription %llu was refused: %s",
                      (unsigned long long)s->id,
                      pd->errstr[0] ? pd->errstr : maos_strerror(status));
        else if (!resub && pd->kind == MAOSC_PEND_ASYNC)
            sub_forget(p, s);
        return;
    }
    uint64_t from = s->watch ? rep->revision + 1 : rep->from; /* watch: changes after it */
    if (rep->sub == 0 || maosc_sub_by_server_id(p, rep->sub) || (!s->channel && from == 0)) {
        if (pd->kind == MAOSC_PEND_ASYNC)
            sub_forget(p, s);
        maosc_die(c, MAOS_EPROTO, "bad subscribe reply (sub %llu, from %llu)",
                  (unsigned long long)rep->sub, (unsigned long long)from);
        return;
    }
    s->server_id = rep->sub;
    if (!s->channel)
        s->next = from;
    if (!s->id)
        s->id = ++p->last_sub_id;
    pd->sub_id = s->id;
    s->entries_open = s->watch && pd->sub_kind == MAOS_WATCH_FROM_ENTRIES;
    s->entries_pages = 0;
    if (resub)
        maosc_hs_step(c);
}

/* Queue s's subscribe on the current connection and, for a sync call, wait
 * for its answer (sub_done).  s is in p->subs already. */
int maosc_sub_register(maos_ctx *c, struct csub *s, int from_kind, uint64_t from,
                       int resume)
{
    struct maosc_req rq;
    struct rxf *f = NULL;
    maos_reply rep;
    int rc = maosc_req_begin(c, &rq);
    if (rc)
        return rc;
    maos_op op = s->watch     ? MAOS_OP_WATCH
                 : s->channel ? MAOS_OP_SUBSCRIBE_CHANNEL
                              : MAOS_OP_SUBSCRIBE;
    int enc = s->watch ? maos_enc_watch(&rq.pk, rq.rid, s->table, s->key_prefix, from_kind, from)
              : s->channel ? maos_enc_subscribe_channel(&rq.pk, rq.rid, s->pattern)
                           : maos_enc_subscribe(&rq.pk, rq.rid, &s->filter, from_kind, from);
    rq.internal = sub_done;
    rq.arg = s;
    rq.sub_kind = from_kind;
    rq.internal_only = resume;
    /* Safe to send again on a new connection (reconnect on): whatever the
     * lost one did with it, its subscriptions died with it.  So a
     * subscribe in flight at a loss is kept and re-sent after the
     * handshake (its caller waits on), like an established one. */
    rq.retry_ids = !resume;
    rc = maosc_call(c, &rq, op, enc, &f, &rep);
    if (rc == 0)
        free(f);
    return rc;
}

/* Part of a reconnect's handshake: every subscription again, events from
 * the `next` of the last push received (gap-free, no duplicate), a watch
 * after its last revision (or with new entries when its entries were cut
 * off), channels again. */
int maosc_subs_resume(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    for (size_t i = 0; i < p->n_subs; i++) {
        struct csub *s = p->subs[i];
        if (!s->id)
            continue; /* never accepted: its own subscribe is re-sent (retry) */
        int rc = s->watch && s->entries_open
                     ? maosc_sub_register(c, s, MAOS_WATCH_FROM_ENTRIES, 0, 1)
                 : s->watch   ? maosc_sub_register(c, s, MAOS_WATCH_FROM_REVISION, s->next - 1, 1)
                 : s->waiting ? maosc_sub_register(c, s, MAOS_FROM_VERSION, s->wait_version, 1)
                              : maosc_sub_register(c, s, MAOS_FROM_POSITION, s->next, 1);
        if (rc != MAOSC_QUEUED)
            return p->fd < 0 || p->dead ? rc
                                        : maosc_die(c, rc, "cannot re-subscribe subscription %llu",
                                                    (unsigned long long)s->id);
        p->hs_left++;
    }
    return 0;
}

/* Add s to the table and subscribe it; on failure s is forgotten. */
static int sub_add(maos_ctx *c, struct csub *s, int from_kind, uint64_t from,
                   uint64_t *sub)
{
    struct maos_ctx_priv *p = c->priv;
    if (p->n_subs == p->cap_subs) {
        size_t cap = p->cap_subs ? p->cap_subs * 2 : 8;
        struct csub **ns = realloc(p->subs, cap * sizeof *ns);
        if (!ns) {
            free(s);
            return maosc_fail(c, MAOS_ENOMEM, "out of memory");
        }
        p->subs = ns;
        p->cap_subs = cap;
    }
    p->subs[p->n_subs++] = s;
    if (!s->watch && from_kind == MAOS_FROM_VERSION) {
        s->waiting = 1;
        s->wait_version = from;
    }
    int rc = maosc_sub_register(c, s, from_kind, from, 0);
    if (rc == MAOSC_QUEUED)
        return rc; /* async: sub_done decides */
    if (rc) {
        sub_forget(p, s);
        return rc;
    }
    if (sub)
        *sub = s->id;
    return 0;
}

int maos_subscribe(maos_ctx *c, const maos_read_filter *f, int from_kind,
                   uint64_t from, uint64_t *sub)
{
    struct csub *s;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (from_kind != MAOS_FROM_POSITION && from_kind != MAOS_FROM_VERSION &&
        from_kind != MAOS_FROM_LIVE)
        return maosc_fail(c, MAOS_EINVALID_ARG, "bad from_kind %d", from_kind);
    if (from_kind == MAOS_FROM_VERSION && (!f || !f->stream || !*f->stream))
        return maosc_fail(c, MAOS_EINVALID_ARG, "MAOS_FROM_VERSION needs an exact stream");
    if ((rc = csub_new(c, f, NULL, &s)))
        return rc;
    return sub_add(c, s, from_kind, from, sub);
}

int maos_subscribe_channel(maos_ctx *c, const char *pattern, uint64_t *sub)
{
    struct csub *s;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!pattern || !*pattern)
        return maosc_fail(c, MAOS_EINVALID_ARG, "pattern is NULL or empty");
    if ((rc = csub_new(c, NULL, pattern, &s)))
        return rc;
    return sub_add(c, s, 0, 0, sub);
}

static void dq_purge(struct maos_ctx_priv *p, uint64_t id)
{
    struct dnode **pp = &p->dq_head, *last = NULL;
    while (*pp) {
        struct dnode *x = *pp;
        if (x->d.sub == id) {
            *pp = x->next;
            free(x);
            p->dq_len--;
        } else {
            last = x;
            pp = &x->next;
        }
    }
    p->dq_tail = last;
}

int maos_unsubscribe(maos_ctx *c, uint64_t sub)
{
    struct maos_ctx_priv *p;
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    p = c->priv;
    size_t i = sub ? sub_index(p, sub) : SIZE_MAX; /* 0: an async one not accepted yet */
    if (i == SIZE_MAX)
        return maosc_fail(c, MAOS_ENOT_FOUND, "no subscription %llu on this context",
                    (unsigned long long)sub);
    /* Gone locally first: its pushes in flight are dropped as unknown. */
    uint64_t sid = p->subs[i]->server_id;
    sub_forget(p, p->subs[i]);
    dq_purge(p, sub);
    if (!sid)
        return 0;
    if ((rc = maosc_req_begin(c, &rq)))
        return rc;
    rc = maosc_call(c, &rq, MAOS_OP_UNSUBSCRIBE, maos_enc_unsubscribe(&rq.pk, rq.rid, sid),
                    &f, &rep);
    if (rc == MAOSC_QUEUED) /* async: f was not set (and the callback is the reply's) */
        return rc;
    if (rc) {
        if (p->down && !p->dead) { /* the new connection will not have it */
            c->err = 0;
            c->errstr[0] = '\0';
            return 0;
        }
        return rc;
    }
    free(f);
    return 0;
}


int maos_publish(maos_ctx *c, const char *channel, const void *payload, size_t len,
                 uint64_t *receivers)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    maos_slice pl = {NULL, 0};
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "channel", channel)))
        return rc;
    if (len) {
        maos_limits lim = {0};
        maos_limits_defaults(&lim);
        if (!payload || len > UINT32_MAX || maos_mp_check(payload, len, &lim) != 0)
            return maosc_fail(c, MAOS_EINVALID_ARG,
                        "payload is not one well-formed msgpack value");
        pl.ptr = payload;
        pl.len = (uint32_t)len;
    }
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_PUBLISH, maos_enc_publish(&rq.pk, rq.rid, maosc_cstr(channel), pl), &f,
                         &rep)))
        return rc;
    if (receivers)
        *receivers = rep.receivers;
    free(f);
    return 0;
}


int maos_watch(maos_ctx *c, const char *table, const char *prefix, int from_kind,
               uint64_t revision, uint64_t *sub)
{
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "table", table)))
        return rc;
    if (!prefix)
        prefix = "";
    if (from_kind != MAOS_WATCH_FROM_ENTRIES && from_kind != MAOS_WATCH_FROM_REVISION &&
        from_kind != MAOS_WATCH_FROM_NOW)
        return maosc_fail(c, MAOS_EINVALID_ARG, "bad from_kind %d", from_kind);
    size_t tl = strlen(table), pl = strlen(prefix);
    if (tl > 4096 || pl > 4096)
        return maosc_fail(c, MAOS_EINVALID_ARG, "table or prefix too long");
    struct csub *s = calloc(1, sizeof *s + tl + pl + 2);
    if (!s)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    char *mem = (char *)(s + 1);
    memcpy(mem, table, tl + 1);
    memcpy(mem + tl + 1, prefix, pl + 1);
    s->watch = 1;
    s->hook = c->priv->submit_hook;
    s->hook_arg = c->priv->submit_hook_arg;
    s->table = (maos_slice){mem, (uint32_t)tl};
    s->key_prefix = (maos_slice){mem + tl + 1, (uint32_t)pl};
    return sub_add(c, s, from_kind, revision, sub);
}
