/*
 * client/push.c -- incoming frames that are not the reply a call waits for:
 * routing (pushes, answers of maos_claim_start, replies), the delivery
 * queue, and the consumers: maos_next, maos_process and the loop hooks.
 *
 * Invariants: every queued delivery belongs to a known subscription or
 * to a claim of maos_claim_start; deliveries are handed out in arrival
 * order.
 */
#include "client_priv.h"

static void dq_append(struct maos_ctx_priv *p, struct dnode *n);

/* The claims of maos_claim_start in flight get no answer from a lost
 * connection: each becomes an empty MAOS_DELIVERY_TASKS with code
 * MAOS_ECLOSED (claim again). */
void maosc_aclaims_lost(struct maos_ctx_priv *p)
{
    for (size_t i = 0; i < p->n_aclaims; i++) {
        struct dnode *nd = calloc(1, sizeof *nd);
        if (!nd)
            continue; /* out of memory: that claim is not announced */
        nd->d.kind = MAOS_DELIVERY_TASKS;
        nd->d.sub = p->aclaims[i];
        nd->d.code = MAOS_ECLOSED;
        nd->d.mem_ = nd;
        dq_append(p, nd);
    }
    p->n_aclaims = 0;
}


void maosc_record_to_event(const maos_record *rec, maos_event *e)
{
    e->position = rec->position;
    e->version = rec->version;
    e->time = rec->time;
    e->stream = rec->stream.ptr;
    e->stream_len = rec->stream.len;
    e->type = rec->type.ptr;
    e->type_len = rec->type.len;
    memcpy(e->id, rec->id.ptr, 16);
    memcpy(e->prev, rec->prev.ptr, MAOS_HASH_BYTES);
    e->data = rec->data.ptr;
    e->data_len = rec->data.len;
    e->meta = rec->meta.ptr;
    e->meta_len = rec->meta.len;
    e->raw = rec->raw.ptr;
    e->raw_len = rec->raw.len;
}

int maos_event_decode(const void *raw, size_t len, maos_event *e)
{
    maos_record rec;
    if (!raw || !e || maos_record_decode(raw, len, &rec))
        return MAOS_EPROTO;
    memset(e, 0, sizeof *e);
    maosc_record_to_event(&rec, e);
    return 0;
}

/* Fill ev[0..n) from a raw array of n stored records (views into it).
 * 0 or -1 when malformed. */
int maosc_records_to_events(maos_slice items, size_t n, maos_event *ev)
{
    maos_mpr r;
    uint32_t cnt;
    maos_mpr_init(&r, items.ptr, items.len);
    if (maos_mpr_array(&r, &cnt) || cnt != n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        maos_record rec;
        if (maos_record_next(&r, &rec) || rec.id.len != 16 ||
            rec.prev.len != MAOS_HASH_BYTES)
            return -1;
        maosc_record_to_event(&rec, &ev[i]);
    }
    return 0;
}



static void dq_append(struct maos_ctx_priv *p, struct dnode *n)
{
    n->next = NULL;
    if (p->dq_tail)
        p->dq_tail->next = n;
    else
        p->dq_head = n;
    p->dq_tail = n;
    p->dq_len++;
}

struct dnode *maosc_dq_pop(struct maos_ctx_priv *p)
{
    struct dnode *n = p->dq_head;
    if (!n)
        return NULL;
    p->dq_head = n->next;
    if (!p->dq_head)
        p->dq_tail = NULL;
    p->dq_len--;
    n->next = NULL;
    return n;
}

uint32_t maosc_events_declared(const void *frame, size_t len, int push)
{
    maos_mpr r;
    uint32_t n, cnt;
    int is_push = 0;
    maos_mpr_init(&r, frame, len);
    if (maos_mpr_map(&r, &n))
        return 0;
    for (uint32_t i = 0; i < n && i < 3; i++) {
        maos_slice k;
        if (maos_mpr_str(&r, &k))
            return 0;
        if (k.len == 6 && !memcmp(k.ptr, "events", 6))
            return is_push != push || maos_mpr_array(&r, &cnt) ||
                           (uint64_t)cnt * MIN_RECORD_BYTES > len
                       ? 0
                       : cnt;
        is_push |= k.len == 4 && !memcmp(k.ptr, "push", 4);
        if (maos_mpr_skip(&r, NULL))
            return 0;
    }
    return 0;
}

/* s, a slice of the bytes at from, as the same slice of their copy at to */
static maos_slice rebase(maos_slice s, const char *from, char *to)
{
    if (s.ptr)
        s.ptr = to + (s.ptr - from);
    return s;
}

/*
 * A push frame (decoded as pu, slices into frame) arrived: queue it as a
 * delivery of its subscription, or drop it (an unknown id: unsubscribed,
 * see client_priv.h).  made: a node maosc_route_frame already holds the
 * push in (frame is its copy, its events made while pu was decoded), taken
 * here; or NULL.  0 or a sticky error.
 */
static int push_in(maos_ctx *c, const char *frame, size_t len, const maos_push *pu,
                   struct dnode *made)
{
    struct maos_ctx_priv *p = c->priv;
    /* server ids start at 1; 0 marks a subscription not (yet) registered */
    struct csub *s = pu->sub ? maosc_sub_by_server_id(p, pu->sub) : NULL;
    if (!s) {
        free(made);
        return 0;
    }
    size_t n = pu->kind == MAOS_PUSH_EVENTS ? pu->n_items : 0;
    size_t ne = pu->kind == MAOS_PUSH_ENTRIES ? pu->n_items : 0;
    const char *bad_why = NULL;
    if (s->channel != (pu->kind == MAOS_PUSH_MESSAGE))
        bad_why = "a push of the wrong kind for its subscription";
    else if ((uint64_t)n * MIN_RECORD_BYTES > pu->items.len ||
             (uint64_t)ne * 8 > pu->items.len)
        bad_why = "a push that declares more items than it holds";
    else if (ne && !s->watch)
        bad_why = "an entries push for a subscription that is no watch";
    if (bad_why) {
        free(made);
        return maosc_die(c, MAOS_EPROTO, "%s (%s push, subscription %llu)", bad_why,
                         maos_push_name(pu->kind), (unsigned long long)s->id);
    }
    struct dnode *nd = made;
    if (!nd)
        nd = malloc(sizeof *nd + n * sizeof(maos_event) + ne * sizeof(maos_table_entry) + len);
    if (!nd)
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a push");
    maos_event *ev = (maos_event *)(nd + 1);
    maos_table_entry *en = (maos_table_entry *)(ev + n);
    /* pu, decoded from frame, moved onto the copy: decoding again would
     * walk every event once more (tests/bench/README.md "replay") */
    maos_push q = *pu;
    if (!made) {
        char *copy = (char *)(en + ne);
        memcpy(copy, frame, len);
        q.items = rebase(q.items, frame, copy);
        q.channel = rebase(q.channel, frame, copy);
        q.payload = rebase(q.payload, frame, copy);
    }
    memset(&nd->d, 0, sizeof nd->d);
    int bad = !made && n && maosc_records_to_events(q.items, n, ev);
    if (!bad && ne) {
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, q.items.ptr, q.items.len);
        bad = maos_mpr_array(&r, &cnt) || cnt != ne;
        for (size_t i = 0; !bad && i < ne; i++)
            bad = maosc_entry_next(&r, &en[i]) != 0;
    }
    if (bad) {
        free(nd);
        return maosc_die(c, MAOS_EPROTO, "malformed %s push", maos_push_name(pu->kind));
    }
    if (ne || q.kind == MAOS_PUSH_ENTRIES) {
        nd->d.n_entries = ne;
        nd->d.entries = ne ? en : NULL;
        nd->d.revision = q.revision;
        nd->d.more = q.more;
        nd->d.first = s->entries_pages++ == 0;
        if (!q.more)
            s->entries_open = 0;
    }
    nd->d.kind = q.kind;
    nd->d.sub = s->id;
    nd->d.next = q.next;
    nd->d.n = n;
    nd->d.events = n ? ev : NULL;
    if (q.kind == MAOS_PUSH_MESSAGE) {
        nd->d.channel = q.channel.ptr;
        nd->d.channel_len = q.channel.len;
        nd->d.payload = q.payload.ptr;
        nd->d.payload_len = q.payload.len;
    } else if (q.kind != MAOS_PUSH_ENTRIES) {
        s->entries_open = 0; /* the entries are a prelude: they are over */
        /* Resume point: never behind what was received. */
        uint64_t next = q.next;
        if (n)
            s->waiting = 0;
        if (n && ev[n - 1].position >= next)
            next = ev[n - 1].position + 1;
        if (next > s->next)
            s->next = next;
    }
    nd->d.mem_ = nd;
    if (q.kind == MAOS_PUSH_EVENTS && n == 0) {
        free(nd); /* nothing to deliver; next was taken */
        return 0;
    }
    if (s->hook) { /* the library's own watch: seen here, never queued */
        s->hook(c, s, &nd->d);
        free(nd);
        return 0;
    }
    dq_append(p, nd);
    if (!p->in_process && !p->wake_asked) {
        p->wake_asked = 1;
        maosc_hooks_update(p, 0);
    }
    return 0;
}

/* A reply frame: when it answers a maos_claim_start, queue it as a
 * MAOS_DELIVERY_TASKS delivery (0); 1 when it is another reply; or a
 * sticky error. */
static int aclaim_in(maos_ctx *c, maos_slice frame)
{
    struct maos_ctx_priv *p = c->priv;
    maos_reply rep;
    if (maos_reply_decode(frame.ptr, frame.len, &rep))
        return 1; /* the reply path reports it */
    size_t at = p->n_aclaims;
    for (size_t i = 0; i < p->n_aclaims; i++)
        if (p->aclaims[i] == rep.rid)
            at = i;
    if (at == p->n_aclaims)
        return 1;
    p->aclaims[at] = p->aclaims[--p->n_aclaims];
    maosc_win_del(&p->win, rep.rid);
    char why[160];
    if (maos_reply_check(&rep, MAOS_OP_CLAIM, why, sizeof why))
        return maosc_die(c, MAOS_EPROTO, "incomplete claim reply from the server: %s", why);
    size_t n = rep.ok ? rep.n_items : 0;
    if ((uint64_t)n * 8 > frame.len)
        return maosc_die(c, MAOS_EPROTO, "claim reply declares %zu tasks", n);
    struct dnode *nd = calloc(1, sizeof *nd + n * sizeof(maos_task_info) + frame.len);
    if (!nd)
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a claim");
    maos_task_info *t = (maos_task_info *)(nd + 1);
    char *copy = (char *)(t + n);
    memcpy(copy, frame.ptr, frame.len);
    maos_reply_decode(copy, frame.len, &rep);
    int bad = 0;
    if (n) {
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, rep.items.ptr, rep.items.len);
        bad = maos_mpr_array(&r, &cnt) || cnt != n;
        for (size_t i = 0; !bad && i < n; i++)
            bad = maosc_task_next(&r, &t[i]) != 0;
    }
    if (bad) {
        free(nd);
        return maosc_die(c, MAOS_EPROTO, "malformed tasks in a claim reply");
    }
    nd->d.kind = MAOS_DELIVERY_TASKS;
    nd->d.sub = rep.rid;
    nd->d.code = rep.ok ? 0 : rep.code;
    nd->d.n_tasks = n;
    nd->d.tasks = n ? t : NULL;
    nd->d.mem_ = nd;
    dq_append(p, nd);
    if (!p->in_process && !p->wake_asked) {
        p->wake_asked = 1;
        maosc_hooks_update(p, 0);
    }
    return 0;
}

/* Route one whole frame: pushes to the delivery queue, replies to rxq. */
/* maos_push_decode_sink's sink: an events push's records straight into
 * the node that will deliver them. */
struct made {
    maos_event *ev;
    uint32_t cap, n;
};

static int made_sink(void *arg, uint32_t i, uint32_t n, const maos_record *rec)
{
    struct made *m = arg;
    if (n > m->cap || i != m->n || rec->id.len != 16 || rec->prev.len != MAOS_HASH_BYTES)
        return -1;
    maosc_record_to_event(rec, &m->ev[m->n++]);
    return 0;
}

int maosc_route_frame(maos_ctx *c, maos_slice frame)
{
    maos_push pu;
    /* An events push (catch-up pages are up to a MiB of them) is decoded
     * once, from the node that delivers it, its events made as it is read. */
    uint32_t cap = maosc_events_declared(frame.ptr, frame.len, 1);
    if (cap) {
        struct dnode *nd = malloc(sizeof *nd + cap * sizeof(maos_event) + frame.len);
        if (!nd)
            return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a push");
        struct made m = {(maos_event *)(nd + 1), cap, 0};
        char *copy = (char *)(m.ev + cap);
        memcpy(copy, frame.ptr, frame.len);
        if (maos_push_decode_sink(copy, frame.len, &pu, made_sink, &m) == 1 &&
            pu.kind == MAOS_PUSH_EVENTS && pu.n_items == cap && m.n == cap)
            return push_in(c, copy, frame.len, &pu, nd);
        free(nd); /* not the push the peek promised: decoded below */
    }
    int k = maos_push_decode(frame.ptr, frame.len, &pu);
    if (k < 0)
        return maosc_die(c, MAOS_EPROTO, "malformed push from the server");
    if (k == 1)
        return push_in(c, frame.ptr, frame.len, &pu, NULL);
    if (c->priv->n_aclaims) {
        int rc = aclaim_in(c, frame);
        if (rc <= 0)
            return rc;
    }
    return maosc_reply_in(c, frame);
}

void maos_delivery_free(maos_delivery *d)
{
    if (d)
        free(d->mem_); /* the node that holds d */
}

size_t maos_queued(const maos_ctx *c)
{
    return c && c->priv ? c->priv->dq_len : 0;
}

/* ---- consuming deliveries ---------------------------------------------------------- */

/* Entry of maos_next / maos_process: like maosc_enter(), but a down context is
 * left to the caller's own (bounded) reconnect. */
static int enter_push(maos_ctx *c)
{
    if (!c || !c->priv)
        return MAOS_EINVALID_ARG;
    if (c->priv->dead) {
        c->err = c->priv->dead;
        return c->err;
    }
    c->err = 0;
    c->errstr[0] = '\0';
    c->priv->has_actual = 0;
    c->priv->index = -1;
    return 0;
}

/* The first queued delivery of subscription sub (0: any), taken off the
 * queue. */
static struct dnode *dq_take(struct maos_ctx_priv *p, uint64_t sub)
{
    if (!sub)
        return maosc_dq_pop(p);
    struct dnode *prev = NULL;
    for (struct dnode *x = p->dq_head; x; prev = x, x = x->next)
        if (x->d.sub == sub) {
            if (prev)
                prev->next = x->next;
            else
                p->dq_head = x->next;
            if (p->dq_tail == x)
                p->dq_tail = prev;
            p->dq_len--;
            x->next = NULL;
            return x;
        }
    return NULL;
}


int maos_next(maos_ctx *c, int timeout_ms, maos_delivery **out)
{
    int rc = enter_push(c);
    if (rc)
        return rc;
    if (!out)
        return maosc_fail(c, MAOS_EINVALID_ARG, "out is NULL");
    return maosc_next_of(c, 0, timeout_ms, out);
}

/* maos_next for one subscription (0: any): the others' deliveries stay
 * queued. */
int maosc_next_of(maos_ctx *c, uint64_t sub, int timeout_ms, maos_delivery **out)
{
    struct maos_ctx_priv *p = c->priv;
    int rc;
    long long deadline = timeout_ms < 0 ? -1 : maosc_now_ms() + timeout_ms;
    for (;;) {
        struct dnode *nd = dq_take(p, sub);
        if (nd) {
            *out = &nd->d;
            return 0;
        }
        if (p->down) {
            rc = maosc_reconnect_until(c, deadline);
            if (rc == MAOS_ETIMEOUT)
                break;
            if (rc)
                return rc;
            continue;
        }
        if (p->out_off < p->out.size) {
            if ((rc = maosc_flush_out(c)) && p->dead)
                return rc;
            continue;
        }
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - maosc_now_ms();
            wait = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int n = poll(&pfd, 1, wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if ((rc = maosc_die_errno(c, "poll")) && p->dead)
                return rc;
            continue;
        }
        if (n == 0)
            break;
        if ((rc = maosc_rx_read_some(c)) && p->dead)
            return rc;
    }
    if (p->down)
        return maosc_fail(c, MAOS_ETIMEOUT, "nothing delivered within %d ms (reconnecting: %s)",
                    timeout_ms, p->down_why);
    return maosc_fail(c, MAOS_ETIMEOUT, "nothing delivered within %d ms", timeout_ms);
}

/* Reads per maos_process call: enough for a burst, bounded for fairness
 * between the connections of one loop. */
#define PROCESS_MAX_READS 16

/* Run the callbacks of up to max completed async requests, in the order
 * they completed.  Returns how many ran. */
void maosc_run_completions(maos_ctx *c, size_t max)
{
    struct maos_ctx_priv *p = c->priv;
    size_t n = 0;
    while (p->cq_head && n < max) {
        struct maosc_pend *pd = p->cq_head;
        p->cq_head = pd->next;
        if (p->cq_head)
            p->cq_head->prev = NULL;
        else
            p->cq_tail = NULL;
        pd->next = pd->prev = NULL;
        struct maos_result r;
        memset(&r, 0, sizeof r);
        r.c = c;
        r.pd = pd;
        if (pd->f)
            maos_reply_decode(pd->f->data, pd->f->len, &r.rep);
        if (pd->cb)
            pd->cb(c, pd->status, &r, pd->privdata);
        p->n_pends--;
        maosc_pend_free(pd);
        n++;
    }
}

static size_t cq_len(const struct maos_ctx_priv *p)
{
    size_t n = 0;
    for (const struct maosc_pend *x = p->cq_head; x; x = x->next)
        n++;
    return n;
}

/*
 * One turn: begin a reconnect when one is due (never waiting), write what
 * the socket takes, read a bounded amount (replies complete their
 * requests, pushes queue deliveries), expire requests past their timeout,
 * then run the callbacks of what completed and the handlers of what was
 * delivered up to now (not what they queue themselves: that is the next
 * turn's, for fairness), and tell the loop what to watch.
 */
int maos_process(maos_ctx *c, const maos_push_handlers *h, void *user)
{
    struct maos_ctx_priv *p;
    int rc;
    if (c && c->priv && c->priv->dead && c->priv->cq_head && !c->priv->in_process) {
        /* the context died outside: the requests' callbacks still run */
        c->priv->in_process = 1;
        maosc_run_completions(c, SIZE_MAX);
        c->priv->in_process = 0;
    }
    if ((rc = enter_push(c)))
        return rc;
    if (!h)
        return maosc_fail(c, MAOS_EINVALID_ARG, "handlers are NULL");
    p = c->priv;
    if (p->in_process)
        return maosc_fail(c, MAOS_EINVALID_ARG, "maos_process called from its own callback");
    p->wake_asked = 0;
    p->ops_timer_at = -1; /* the loop's timer, if that is what called, is spent */
    if (p->down && !p->handshaking)
        maosc_reconnect_nb(c);
    if (p->fd >= 0)
        maosc_flush_nb(c);
    for (int i = 0; i < PROCESS_MAX_READS && p->fd >= 0; i++) {
        int got;
        if ((rc = maosc_rx_read(c, &got)))
            break; /* down or dead: what was queued is still handed out */
        if (!got)
            break;
    }
    if (p->fd >= 0)
        maosc_flush_nb(c); /* what the handshake's answers queued */
    maosc_pends_expire(c);
    /* Only what is queued now: callbacks that make calls may queue more. */
    size_t todo = p->dq_len, done = 0, ntodo = cq_len(p);
    p->in_process = 1;
    maosc_run_completions(c, ntodo);
    while (done < todo && !p->dead) {
        struct dnode *nd = maosc_dq_pop(p);
        if (!nd)
            break; /* a callback unsubscribed what was left */
        void (*cb)(maos_ctx *, const maos_delivery *, void *) =
            nd->d.kind == MAOS_PUSH_EVENTS || nd->d.kind == MAOS_PUSH_ENTRIES ||
                    nd->d.kind == MAOS_DELIVERY_TASKS
                                              ? h->on_events
            : nd->d.kind == MAOS_PUSH_MESSAGE ? h->on_message
                                              : h->on_state;
        if (cb)
            cb(c, &nd->d, user);
        free(nd);
        done++;
    }
    if (p->dead) /* what died meanwhile still reports */
        maosc_run_completions(c, SIZE_MAX);
    p->in_process = 0;
    if (p->dead) {
        c->err = p->dead;
        return p->dead;
    }
    if (p->fd >= 0 && p->out_off < p->out.size)
        maosc_flush_nb(c);
    maosc_hooks_update(p, p->dq_head || p->cq_head ? 0 : -1);
    c->err = 0;
    c->errstr[0] = '\0';
    done += ntodo;
    return done > INT_MAX ? INT_MAX : (int)done;
}

int maos_set_loop_hooks(maos_ctx *c, const maos_loop_hooks *h)
{
    if (!c || !c->priv)
        return MAOS_EINVALID_ARG;
    struct maos_ctx_priv *p = c->priv;
    if (h) {
        p->hooks = *h;
    } else {
        memset(&p->hooks, 0, sizeof p->hooks);
        return 0;
    }
    p->wake_asked = 0;
    maosc_hooks_update(p, p->dead || p->down || p->dq_head || p->cq_head ? 0 : -1);
    return 0;
}

int maos_set_loop_ops(maos_ctx *c, const maos_loop_ops *ops)
{
    if (!c || !c->priv)
        return MAOS_EINVALID_ARG;
    struct maos_ctx_priv *p = c->priv;
    maos_loop_ops old = p->ops;
    if (p->ops_fd >= 0 && p->ops_read && old.del_read)
        old.del_read(old.data, p->ops_fd);
    if (p->ops_fd >= 0 && p->ops_write && old.del_write)
        old.del_write(old.data, p->ops_fd);
    if (p->ops_timer_at >= 0 && old.timer)
        old.timer(old.data, -1);
    p->ops_fd = -1;
    p->ops_read = p->ops_write = 0;
    p->ops_timer_at = -1;
    if (ops)
        p->ops = *ops;
    else
        memset(&p->ops, 0, sizeof p->ops);
    p->wake_asked = 0;
    maosc_hooks_update(p, p->dead || p->down || p->dq_head || p->cq_head ? 0 : -1);
    return 0;
}
