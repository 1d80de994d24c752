/*
 * client/queues.c -- queue calls (enqueue, claim, ack/nack/extend/release,
 * figures, dead letters) and maos_worker_run with its keeper thread.
 *
 * Invariants: the keeper has a context of its own and shares only
 * `struct keeper` (under its mutex) with the worker loop.
 */
#include "client_priv.h"

/* ---- queues ------------------------------------------------------------------------ */

void maos_task_page_free(maos_task_page *p)
{
    if (!p)
        return;
    free(p->mem_);
    free(p);
}

/* A page of the tasks in a reply (single: the `task` field, else the
 * `tasks` list); takes f. */
int maosc_make_task_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, int single,
                          maos_task_page **out)
{
    size_t n = single ? 1 : rep->n_items;
    maos_task_page *pg = calloc(1, sizeof *pg + n * sizeof(maos_task_info));
    if (!pg) {
        free(f);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    }
    pg->tasks = (maos_task_info *)(pg + 1);
    int bad = 0;
    if (single) {
        bad = maosc_task_decode(rep->task.ptr, rep->task.len, &pg->tasks[0]) != 0;
    } else {
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, rep->items.ptr, rep->items.len);
        bad = maos_mpr_array(&r, &cnt) || cnt != n;
        for (size_t i = 0; !bad && i < n; i++)
            bad = maosc_task_next(&r, &pg->tasks[i]) != 0;
    }
    if (bad) {
        free(pg);
        free(f);
        return maosc_die(c, MAOS_EPROTO, "malformed tasks in a reply");
    }
    pg->n = n;
    if (rep->next_kind == MAOS_NEXT_BIN && rep->next_s.len == 16) {
        pg->has_next = 1;
        memcpy(pg->next, rep->next_s.ptr, 16);
    }
    pg->mem_ = f;
    *out = pg;
    return 0;
}



static void task_spec(maos_task_in *t, const void *data, size_t len, const maos_task_opts *o)
{
    memset(t, 0, sizeof(*t));
    t->data = (maos_slice){data, (uint32_t)len};
    t->delay_ms = -1;
    if (!o)
        return;
    t->priority = o->priority;
    t->delay_ms = o->delay_ms > 0 ? o->delay_ms : -1;
    t->not_before = o->not_before;
    t->max_attempts = o->max_attempts;
    t->lease_ms = o->lease_ms;
    t->backoff_ms = o->backoff_ms;
    t->dedupe_key = maosc_cstr(o->dedupe_key);
    t->ordering_key = maosc_cstr(o->ordering_key);
    t->meta = (maos_slice){o->meta_len ? o->meta : NULL, (uint32_t)o->meta_len};
}

/* The wire form of n tasks (checked): *out, malloc'ed (the caller frees
 * it).  Shared by enqueue and txn_items' ENQUEUE (tables.c). */
int maosc_tasks_in(maos_ctx *c, const void *const *datas, const size_t *lens,
                   const maos_task_opts *opts, size_t n, maos_task_in **out)
{
    int rc = 0;
    if (!n || n > 10000)
        return maosc_fail(c, MAOS_EINVALID_ARG, "an enqueue has 1..10000 tasks");
    maos_task_in *t = calloc(n, sizeof(*t));
    if (!t)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len = lens ? lens[i] : 0;
        rc = maosc_check_value(c, "task data", datas ? datas[i] : NULL, len);
        if (!rc && opts && opts[i].meta_len)
            rc = maosc_check_doc(c, "task meta", opts[i].meta, opts[i].meta_len, 1);
        if (!rc && opts && opts[i].delay_ms < 0)
            rc = maosc_fail(c, MAOS_EINVALID_ARG, "task %zu: negative delay_ms %lld", i,
                      (long long)opts[i].delay_ms);
        task_spec(&t[i], datas ? datas[i] : NULL, len, opts ? &opts[i] : NULL);
    }
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int maos_enqueue_n(maos_ctx *c, const char *queue, const void *const *datas,
                   const size_t *lens, const maos_task_opts *opts, size_t n,
                   uint8_t *ids, int *duplicates)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "queue", queue)))
        return rc;
    maos_task_in *t = NULL;
    rc = maosc_tasks_in(c, datas, lens, opts, n, &t);
    if (!rc && !(rc = maosc_req_begin(c, &rq)))
        rc = maosc_call(c, &rq, MAOS_OP_ENQUEUE,
                        maos_enc_enqueue(&rq.pk, rq.rid, maosc_cstr(queue), t, (uint32_t)n), &f, &rep);
    free(t);
    if (rc)
        return rc;
    maos_mpr r;
    uint32_t cnt;
    maos_mpr_init(&r, rep.duplicates.ptr, rep.duplicates.len);
    rc = rep.n_duplicates != n || rep.task_ids.len != 16 * n || maos_mpr_array(&r, &cnt);
    for (size_t i = 0; !rc && i < n; i++) {
        int d;
        rc = maos_mpr_bool(&r, &d);
        if (duplicates)
            duplicates[i] = d;
    }
    if (!rc && ids)
        memcpy(ids, rep.task_ids.ptr, 16 * n);
    free(f);
    return rc ? maosc_die(c, MAOS_EPROTO, "malformed enqueue reply") : 0;
}

int maos_enqueue(maos_ctx *c, const char *queue, const void *data, size_t len,
                 const maos_task_opts *o, uint8_t id[16], int *duplicate)
{
    return maos_enqueue_n(c, queue, &data, &len, o, 1, id, duplicate);
}

int maos_claim(maos_ctx *c, const char *const *queues, size_t n, uint32_t lease_ms,
               uint32_t wait_ms, uint32_t max, int bind, maos_task_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if (!queues || !n || n > MAOS_CLAIM_QUEUES_MAX)
        return maosc_fail(c, MAOS_EINVALID_ARG, "a claim names 1..%d queues",
                    MAOS_CLAIM_QUEUES_MAX);
    maos_slice qs[MAOS_CLAIM_QUEUES_MAX];
    for (size_t i = 0; i < n; i++) {
        if ((rc = maosc_check_str(c, "queue", queues[i])))
            return rc;
        qs[i] = maosc_cstr(queues[i]);
    }
    /* the reply may rightly take wait_ms: stretch the request bound */
    int saved = c->priv->timeout_ms;
    if (saved > 0 && wait_ms)
        c->priv->timeout_ms = saved + (int)(wait_ms > INT32_MAX / 2 ? INT32_MAX / 2 : wait_ms);
    if (!(rc = maosc_req_begin(c, &rq)))
        rc = maosc_call(c, &rq, MAOS_OP_CLAIM,
                        maos_enc_claim(&rq.pk, rq.rid, qs, (uint32_t)n, lease_ms, wait_ms,
                                       max ? max : 1, bind),
                        &f, &rep);
    c->priv->timeout_ms = saved;
    if (rc)
        return rc;
    return maosc_make_task_page(c, f, &rep, 0, out);
}

int maos_claim_start(maos_ctx *c, const char *const *queues, size_t n, uint32_t lease_ms,
                     uint32_t wait_ms, uint32_t max, int bind, uint64_t *rid_out)
{
    struct maosc_req rq;
    int rc = maosc_enter(c);
    if (rc)
        return rc;
    struct maos_ctx_priv *p = c->priv;
    if (p->n_aclaims == MAOS_CLAIMS_WAITING_MAX)
        return maosc_fail(c, MAOS_ELIMIT, "%d claims are in flight already",
                    MAOS_CLAIMS_WAITING_MAX);
    if (!queues || !n || n > MAOS_CLAIM_QUEUES_MAX)
        return maosc_fail(c, MAOS_EINVALID_ARG, "a claim names 1..%d queues",
                    MAOS_CLAIM_QUEUES_MAX);
    maos_slice qs[MAOS_CLAIM_QUEUES_MAX];
    for (size_t i = 0; i < n; i++) {
        if ((rc = maosc_check_str(c, "queue", queues[i])))
            return rc;
        qs[i] = maosc_cstr(queues[i]);
    }
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_req_end(c, &rq, MAOS_OP_CLAIM,
                        maos_enc_claim(&rq.pk, rq.rid, qs, (uint32_t)n, lease_ms, wait_ms,
                                       max ? max : 1, bind))))
        return rc;
    p->pending--; /* answered as a delivery, not by maos_reply_recv */
    p->aclaims[p->n_aclaims++] = rq.rid;
    if (rid_out)
        *rid_out = rq.rid;
    return maosc_flush_out(c);
}

/* ack, nack, extend, release: one task op; *f and *rep for the caller. */
static int task_op(maos_ctx *c, maos_op op, const uint8_t id[16], uint64_t token,
                   maos_slice text, const void *value, size_t len, int64_t num,
                   struct rxf **f, maos_reply *rep)
{
    struct maosc_req rq;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_value(c, "result", value, len)))
        return rc;
    if (!id)
        return maosc_fail(c, MAOS_EINVALID_ARG, "task id is NULL");
    if ((rc = maosc_req_begin(c, &rq)))
        return rc;
    switch (op) {
    case MAOS_OP_ACK:
        rc = maos_enc_ack(&rq.pk, rq.rid, id, token, (maos_slice){value, (uint32_t)len});
        break;
    case MAOS_OP_NACK:
        rc = maos_enc_nack(&rq.pk, rq.rid, id, token, text, num);
        break;
    case MAOS_OP_EXTEND:
        rc = maos_enc_extend(&rq.pk, rq.rid, id, token, (uint32_t)num);
        break;
    default:
        rc = maos_enc_task_release(&rq.pk, rq.rid, id, token);
        break;
    }
    return maosc_call(c, &rq, op, rc, f, rep);
}

int maos_ack(maos_ctx *c, const uint8_t id[16], uint64_t token, const void *result,
             size_t len)
{
    struct rxf *f;
    maos_reply rep;
    int rc = task_op(c, MAOS_OP_ACK, id, token, (maos_slice){0}, result, len, 0, &f, &rep);
    if (!rc)
        free(f);
    return rc;
}

int maos_nack(maos_ctx *c, const uint8_t id[16], uint64_t token, const char *error,
              int64_t retry_after_ms, char state[16])
{
    struct rxf *f;
    maos_reply rep;
    int rc = task_op(c, MAOS_OP_NACK, id, token, maosc_cstr(error && *error ? error : NULL),
                     NULL, 0, retry_after_ms, &f, &rep);
    if (rc)
        return rc;
    if (state)
        snprintf(state, 16, "%.*s", (int)rep.state.len, rep.state.ptr);
    free(f);
    return 0;
}

int maos_extend(maos_ctx *c, const uint8_t id[16], uint64_t token, uint32_t lease_ms,
                int64_t *lease_until)
{
    struct rxf *f;
    maos_reply rep;
    int rc = task_op(c, MAOS_OP_EXTEND, id, token, (maos_slice){0}, NULL, 0, lease_ms, &f,
                     &rep);
    if (rc)
        return rc;
    if (lease_until)
        *lease_until = rep.lease_until;
    free(f);
    return 0;
}

int maos_task_release(maos_ctx *c, const uint8_t id[16], uint64_t token)
{
    struct rxf *f;
    maos_reply rep;
    int rc = task_op(c, MAOS_OP_RELEASE, id, token, (maos_slice){0}, NULL, 0, 0, &f, &rep);
    if (!rc)
        free(f);
    return rc;
}

int maos_task_get(maos_ctx *c, const uint8_t id[16], maos_task_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!id || !out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "id or out is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_TASK, maos_enc_task_get(&rq.pk, rq.rid, id), &f,
                         &rep)))
        return rc;
    return maosc_make_task_page(c, f, &rep, 1, out);
}

int maos_queue_stats(maos_ctx *c, const char *queue, maos_queue_stat **out, size_t *n)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc)
        return rc;
    if (!out || !n)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out or n is NULL");
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, MAOS_OP_QUEUE_STATS,
                         maos_enc_queue_stats(&rq.pk, rq.rid, maosc_cstr(queue)), &f, &rep)))
        return rc;
    rc = maosc_queue_stats_from(c, &rep, out, n);
    free(f);
    return rc;
}

/* The figures of a queue_stats reply: *out (one block: the figures, then
 * the names) and *n. */
int maosc_queue_stats_from(maos_ctx *c, const maos_reply *rp, maos_queue_stat **out,
                           size_t *n)
{
    maos_reply rep = *rp;
    /* the infos, then their names, in one block */
    size_t cnt = rep.n_items, names = 0;
    maos_mpr r;
    uint32_t m;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    int bad = maos_mpr_array(&r, &m) || m != cnt;
    maos_queue_info *qi = calloc(cnt ? cnt : 1, sizeof(*qi));
    for (size_t i = 0; !bad && qi && i < cnt; i++) {
        bad = maos_queue_info_next(&r, &qi[i]) != 0;
        names += bad ? 0 : qi[i].queue.len + 1;
    }
    maos_queue_stat *all = !bad && qi ? malloc(cnt * sizeof(*all) + names + 1) : NULL;
    if (all) {
        char *p = (char *)(all + cnt);
        for (size_t i = 0; i < cnt; i++) {
            const maos_queue_info *q = &qi[i];
            memcpy(p, q->queue.ptr, q->queue.len);
            p[q->queue.len] = 0;
            all[i] = (maos_queue_stat){.queue = {p, q->queue.len}, .ready = q->ready,
                                       .delayed = q->delayed, .blocked = q->blocked,
                                       .leased = q->leased, .done = q->done,
                                       .dead = q->dead, .waiting = q->waiting,
                                       .oldest_ready = q->oldest_ready};
            p += q->queue.len + 1;
        }
    }
    free(qi);
    if (bad)
        return maosc_die(c, MAOS_EPROTO, "malformed queue figures");
    if (!all)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory");
    *out = all;
    *n = cnt;
    return 0;
}

/* dead_list (queue required) and task_list (queue NULL: every queue). */
static int task_page_call(maos_ctx *c, maos_op op, const char *queue, const uint8_t *after,
                          uint32_t limit, maos_task_page **out)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || ((queue || op == MAOS_OP_DEAD_LIST) && (rc = maosc_check_str(c, "queue", queue))))
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if (limit > MAOS_READ_LIMIT_MAX)
        limit = MAOS_READ_LIMIT_MAX;
    if ((rc = maosc_req_begin(c, &rq)))
        return rc;
    int enc = op == MAOS_OP_DEAD_LIST
                  ? maos_enc_dead_list(&rq.pk, rq.rid, maosc_cstr(queue), after, limit)
                  : maos_enc_task_list(&rq.pk, rq.rid, maosc_cstr(queue), after, limit);
    if ((rc = maosc_call(c, &rq, op, enc, &f, &rep)))
        return rc;
    return maosc_make_task_page(c, f, &rep, 0, out);
}

int maos_dead_list(maos_ctx *c, const char *queue, const uint8_t *after, uint32_t limit,
                   maos_task_page **out)
{
    return task_page_call(c, MAOS_OP_DEAD_LIST, queue, after, limit, out);
}

int maos_task_list(maos_ctx *c, const char *queue, const uint8_t *after, uint32_t limit,
                   maos_task_page **out)
{
    return task_page_call(c, MAOS_OP_TASK_LIST, queue, after, limit, out);
}

static int dead_op(maos_ctx *c, maos_op op, const char *queue, const uint8_t *id,
                   uint32_t *count, int *more)
{
    struct maosc_req rq;
    struct rxf *f;
    maos_reply rep;
    int rc = maosc_sync_ready(c);
    if (rc || (rc = maosc_check_str(c, "queue", queue)))
        return rc;
    if ((rc = maosc_req_begin(c, &rq)) ||
        (rc = maosc_call(c, &rq, op,
                         op == MAOS_OP_DEAD_RETRY
                             ? maos_enc_dead_retry(&rq.pk, rq.rid, maosc_cstr(queue), id)
                             : maos_enc_dead_purge(&rq.pk, rq.rid, maosc_cstr(queue)),
                         &f, &rep)))
        return rc;
    if (count)
        *count = (uint32_t)rep.count;
    if (more)
        *more = rep.more;
    free(f);
    return 0;
}

int maos_dead_retry(maos_ctx *c, const char *queue, const uint8_t *id, uint32_t *count,
                    int *more)
{
    return dead_op(c, MAOS_OP_DEAD_RETRY, queue, id, count, more);
}

int maos_dead_purge(maos_ctx *c, const char *queue, uint32_t *count, int *more)
{
    return dead_op(c, MAOS_OP_DEAD_PURGE, queue, NULL, count, more);
}

/* ---- the worker loop --------------------------------------------------------------- */

/*
 * The keeper: a thread with its own connection that extends the lease of
 * the task in hand while the handler runs in the caller's thread (which
 * keeps the context to itself: one context per thread).  It knows one
 * task at a time (id, token, lease), set and cleared by the worker loop
 * under `mu`; extends run outside the lock, so one may land after the
 * ack: it is refused (LEASE_LOST) and ignored.  A refusal while the task
 * is still in hand means the lease is gone (the task went back or to
 * someone else): `lost` tells the handler (maos_worker_lease_lost).
 */
struct keeper {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* CLOCK_MONOTONIC */
    maos_ctx *kc;          /* the keeper's connection (reconnects) */
    int quit;
    int active;            /* a task is in hand */
    uint64_t gen;          /* which task: bumped by every keeper_set */
    uint8_t id[16];
    uint64_t token;
    uint32_t lease_ms, every_ms;
    long long next;        /* monotonic ms of the next extend */
    int lost;
    uint64_t extends;      /* done, for tests and curiosity */
};

static void *keeper_main(void *arg)
{
    struct keeper *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->quit) {
        if (!k->active) {
            pthread_cond_wait(&k->cv, &k->mu);
            continue;
        }
        long long now = maosc_now_ms();
        if (now < k->next) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            long long ns = (long long)ts.tv_nsec + (k->next - now) * 1000000LL;
            ts.tv_sec += (time_t)(ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            pthread_cond_timedwait(&k->cv, &k->mu, &ts);
            continue;
        }
        uint8_t id[16];
        uint64_t token = k->token, gen = k->gen;
        uint32_t lease = k->lease_ms;
        memcpy(id, k->id, 16);
        k->next = now + k->every_ms;
        pthread_mutex_unlock(&k->mu);
        int rc = maos_extend(k->kc, id, token, lease, NULL);
        pthread_mutex_lock(&k->mu);
        if (gen != k->gen || !k->active)
            continue; /* the handler finished meanwhile */
        if (rc == 0)
            k->extends++;
        else if (rc == MAOS_ELEASE_LOST || rc == MAOS_ENOT_FOUND)
            k->lost = 1, k->active = 0;
        else if (maos_is_dead(k->kc))
            k->active = 0; /* no connection to extend with: the lease runs its course */
        /* else (a lost connection, reconnecting): try again next time */
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* Start the keeper on a connection of its own to c's daemon.  0, or an
 * error (no keeper: the worker goes on without it). */
static int keeper_start(maos_ctx *c, struct keeper *k)
{
    struct maos_ctx_priv *p = c->priv;
    memset(k, 0, sizeof *k);
    maos_options o = {.path = p->path,
                      .timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : MAOS_TIMEOUT_NONE,
                      .connect_timeout_ms = p->connect_timeout_ms > 0 ? p->connect_timeout_ms
                                                                      : MAOS_TIMEOUT_NONE,
                      .client_name = "libmaos-client worker keeper",
                      .reconnect = 1,
                      .reconnect_max_ms = p->reconnect_max_ms,
                      .server_uid = p->server_uid};
    k->kc = maos_connect_with(&o);
    if (!k->kc || k->kc->err) {
        maos_free(k->kc);
        k->kc = NULL;
        return MAOS_ECONNECT;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int bad = pthread_mutex_init(&k->mu, NULL) != 0;
    if (!bad && pthread_cond_init(&k->cv, &ca) != 0) {
        pthread_mutex_destroy(&k->mu);
        bad = 1;
    }
    pthread_condattr_destroy(&ca);
    if (!bad && pthread_create(&k->th, NULL, keeper_main, k) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        bad = 1;
    }
    if (bad) {
        maos_free(k->kc);
        k->kc = NULL;
        return MAOS_ENOMEM;
    }
    return 0;
}

static void keeper_stop(struct keeper *k)
{
    if (!k->kc)
        return;
    pthread_mutex_lock(&k->mu);
    k->quit = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->th, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    maos_free(k->kc);
    k->kc = NULL;
}

/* Hand the keeper a task (t != NULL) or take it back (NULL). */
static void keeper_set(struct keeper *k, const maos_task_info *t, uint32_t lease_ms,
                       uint32_t every_ms)
{
    if (!k->kc)
        return;
    pthread_mutex_lock(&k->mu);
    k->gen++;
    k->active = t != NULL;
    k->lost = 0;
    if (t) {
        memcpy(k->id, t->id, 16);
        k->token = t->token;
        k->lease_ms = lease_ms;
        k->every_ms = every_ms;
        k->next = maosc_now_ms() + every_ms;
    }
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static int conn_error(int rc)
{
    return rc == MAOS_EIO || rc == MAOS_ECLOSED || rc == MAOS_ETIMEOUT ||
           rc == MAOS_ECONNECT;
}

/* A refusal that says "not now" (maosd is stopping, or out of memory or
 * connections): the worker waits a little and goes on. */
static int busy_error(int rc)
{
    return rc == MAOS_ESHUTTING_DOWN || rc == MAOS_EOVERLOADED;
}

int maos_worker_extend(maos_ctx *c, maos_worker_task *t, uint32_t lease_ms)
{
    if (!t || !t->task)
        return MAOS_EINVALID_ARG;
    return maos_extend(c, t->task->id, t->task->token, lease_ms, NULL);
}

int maos_worker_lease_lost(const maos_worker_task *t)
{
    struct keeper *k = t ? t->keeper_ : NULL;
    if (!k || !k->kc)
        return 0;
    pthread_mutex_lock(&k->mu);
    int lost = k->lost;
    pthread_mutex_unlock(&k->mu);
    return lost;
}

int maos_worker_run(maos_ctx *c, const char *const *queues, size_t n, maos_worker_fn fn,
                    void *arg, maos_worker_opts *opts)
{
    maos_worker_opts none = {0};
    if (!opts)
        opts = &none;
    if (!fn || !c || !c->priv)
        return MAOS_EINVALID_ARG;
    uint32_t wait = opts->wait_ms ? opts->wait_ms : 1000;
    struct keeper k;
    memset(&k, 0, sizeof k);
    if (!opts->no_keeper && keeper_start(c, &k)) {
        /* the worker still works: only the handler's own extends keep
         * its leases (opts->keeper_failed says so) */
        opts->keeper_failed = 1;
    }
    int lost_conn = 0, rc = 0;
    long long backoff = 0;
    while (!(opts->stop && *opts->stop) &&
           (!opts->max_tasks || opts->done + opts->failed < opts->max_tasks)) {
        maos_task_page *pg = NULL;
        if (backoff) {
            maosc_sleep_ms(backoff);
            backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
        }
        rc = maos_claim(c, queues, n, opts->lease_ms, wait, 1, 1, &pg);
        if (rc) {
            /* the daemon went away: with reconnect on, the next call
             * reconnects (or gives up and the context is dead); it is
             * stopping: wait for it to go, then the same */
            if (conn_error(rc) && c->priv->reconnect && !c->priv->dead && lost_conn++ < 1000)
                continue;
            if (busy_error(rc) && !c->priv->dead) {
                backoff = backoff ? backoff : 50;
                continue;
            }
            break;
        }
        lost_conn = 0;
        backoff = 0;
        if (!pg->n) {
            maos_task_page_free(pg);
            continue;
        }
        maos_worker_task t = {.task = &pg->tasks[0], .keeper_ = k.kc ? &k : NULL};
        /* the lease this claim got, renewed at a third of it */
        int64_t left_ms = (t.task->lease_until - maosc_now_us_real()) / 1000;
        uint32_t lease = opts->lease_ms ? opts->lease_ms
                         : left_ms > 1000 ? (uint32_t)(left_ms > MAOS_LEASE_MS_MAX
                                                           ? MAOS_LEASE_MS_MAX
                                                           : left_ms)
                                          : 1000;
        uint32_t every = opts->extend_every_ms ? opts->extend_every_ms : lease / 3;
        keeper_set(&k, t.task, lease, every ? every : 1);
        int ok = fn(c, &t, arg) == 0;
        keeper_set(&k, NULL, 0, 0);
        if (ok)
            rc = maos_ack(c, t.task->id, t.task->token, t.result, t.result_len);
        else
            rc = maos_nack(c, t.task->id, t.task->token, t.error[0] ? t.error : "failed",
                           -1, NULL);
        free(t.result);
        maos_task_page_free(pg);
        if (!rc)
            ok ? opts->done++ : opts->failed++;
        else if (rc == MAOS_ELEASE_LOST || rc == MAOS_ENOT_FOUND)
            opts->lost++; /* another worker has the task (or had it) */
        else if (!((conn_error(rc) && c->priv->reconnect) || busy_error(rc)))
            break;
        rc = 0;
    }
    int had_keeper = k.kc != NULL;
    keeper_stop(&k); /* joined: its counter is ours to read */
    if (had_keeper)
        opts->extends += k.extends;
    return rc;
}
