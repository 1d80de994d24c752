/*
 * client/wire.c -- bytes on the socket and the requests in flight: bounded
 * waits, receive into the proto reader, the output buffer and its framing,
 * the window of requests awaiting a reply (rid -> op, completion), reply
 * matching by rid, the completions (sync waiter, async callback, internal
 * handler), what becomes of requests in flight when the connection is lost
 * (kept and re-sent, or failed), request timeouts, and maosc_call, the one
 * helper every request goes through (sync, async and the handshake's).
 *
 * Invariants: a frame in `out` is whole or rolled back; a request with a
 * completion is in exactly one of: the window + pends list (in flight), rs
 * (to re-send), cq (async, callback due), its sync caller's hands; a reply
 * is checked against its op (maos_reply_check) before anything is taken
 * from it; nothing here waits unless a synchronous call asked to.
 */
#include "client_priv.h"

/* ---- requests awaiting a reply ----------------------------------------- */

void maosc_win_reset(struct opwin *w)
{
    w->span = 0;
    if (w->cap > 4096) { /* a long pipeline's ring is given back */
        free(w->op);
        free(w->pd);
        w->op = NULL;
        w->pd = NULL;
        w->cap = 0;
    }
}

/* Record that rid awaits a reply to op (pd: its completion, or NULL).
 * rids are recorded in increasing order, except the requests re-sent after
 * a reconnect, which keep their (older) rids: the window then grows
 * downwards.  0, MAOS_EINVALID_ARG (rid already recorded) or MAOS_ENOMEM. */
static int win_add(struct opwin *w, uint64_t rid, maos_op op, struct maosc_pend *pd)
{
    if (w->span == 0)
        w->base = rid;
    /* A request that timed out and whose reply never comes would hold the
     * window's base for ever: past MAOSC_WIN_MAX rids it is forgotten (a
     * reply that still comes is then one to an unknown request). */
    while (w->span && rid >= w->base + MAOSC_WIN_MAX &&
           (w->op[w->base & (w->cap - 1)] & 0x80 || !w->op[w->base & (w->cap - 1)])) {
        w->op[w->base & (w->cap - 1)] = 0;
        w->base++;
        w->span--;
    }
    if (w->span == 0)
        w->base = rid;
    if (rid >= w->base + MAOSC_WIN_MAX)
        return MAOS_ELIMIT;
    uint64_t lo = rid < w->base ? rid : w->base;
    uint64_t hi = rid >= w->base + w->span ? rid + 1 : w->base + w->span;
    uint64_t need = hi - lo;
    if (need > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < need) {
            if (cap > SIZE_MAX / 2)
                return MAOS_ENOMEM;
            cap *= 2;
        }
        uint8_t *n = calloc(cap, 1);
        struct maosc_pend **np = calloc(cap, sizeof *np);
        if (!n || !np) {
            free(n);
            free(np);
            return MAOS_ENOMEM;
        }
        for (size_t i = 0; i < w->span; i++) {
            n[(w->base + i) & (cap - 1)] = w->op[(w->base + i) & (w->cap - 1)];
            np[(w->base + i) & (cap - 1)] = w->pd[(w->base + i) & (w->cap - 1)];
        }
        free(w->op);
        free(w->pd);
        w->op = n;
        w->pd = np;
        w->cap = cap;
    }
    if (rid >= w->base && rid < w->base + w->span && w->op[rid & (w->cap - 1)])
        return MAOS_EINVALID_ARG;
    for (uint64_t r = lo; r < w->base; r++) { /* below: new empty slots */
        w->op[r & (w->cap - 1)] = 0;
        w->pd[r & (w->cap - 1)] = NULL;
    }
    for (uint64_t r = w->base + w->span; r < hi; r++) { /* above */
        w->op[r & (w->cap - 1)] = 0;
        w->pd[r & (w->cap - 1)] = NULL;
    }
    w->base = lo;
    w->span = (size_t)need;
    w->op[rid & (w->cap - 1)] = (uint8_t)op;
    w->pd[rid & (w->cap - 1)] = pd;
    return 0;
}

/* The op rid awaits a reply to, or MAOS_OP_NONE. */
static maos_op win_get(const struct opwin *w, uint64_t rid)
{
    if (w->span == 0 || rid < w->base || rid - w->base >= w->span)
        return MAOS_OP_NONE;
    return (maos_op)(w->op[rid & (w->cap - 1)] & 0x7f);
}

/* The completion waiting for rid's reply, or NULL. */
static struct maosc_pend *win_pd(const struct opwin *w, uint64_t rid)
{
    if (win_get(w, rid) == MAOS_OP_NONE)
        return NULL;
    return w->pd[rid & (w->cap - 1)];
}

/* rid timed out: its completion ran; a late reply is dropped. */
static void win_abandon(struct opwin *w, uint64_t rid)
{
    if (win_get(w, rid) == MAOS_OP_NONE)
        return;
    w->op[rid & (w->cap - 1)] |= 0x80;
    w->pd[rid & (w->cap - 1)] = NULL;
}

static int win_abandoned(const struct opwin *w, uint64_t rid)
{
    return win_get(w, rid) != MAOS_OP_NONE && (w->op[rid & (w->cap - 1)] & 0x80);
}

/* rid was answered: forget it, and the answered rids at the front. */
void maosc_win_del(struct opwin *w, uint64_t rid)
{
    if (win_get(w, rid) == MAOS_OP_NONE)
        return;
    w->op[rid & (w->cap - 1)] = 0;
    w->pd[rid & (w->cap - 1)] = NULL;
    while (w->span && w->op[w->base & (w->cap - 1)] == 0) {
        w->base++;
        w->span--;
    }
}

void maosc_free_rxf_list(struct rxf **head, struct rxf **tail)
{
    while (*head) {
        struct rxf *f = *head;
        *head = f->next;
        free(f);
    }
    *tail = NULL;
}

/* ---- socket waits and receive ------------------------------------------ */

/*
 * Wait for events on the socket.  Returns revents (> 0) or a sticky error:
 * MAOS_ETIMEOUT when the connect phase passes its deadline (connect +
 * hello), or, after it, when nothing happens on the socket for timeout_ms
 * (an inactivity bound: a reply that keeps coming, however slowly, is not
 * cut off).
 */
int maosc_wait_fd(maos_ctx *c, short events)
{
    struct maos_ctx_priv *p = c->priv;
    struct pollfd pfd = {.fd = p->fd, .events = events};
    for (;;) {
        int ms = p->timeout_ms > 0 ? p->timeout_ms : -1;
        if (p->connecting) {
            long long left = p->deadline ? p->deadline - maosc_now_ms() : -1;
            ms = !p->deadline ? -1 : left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
        }
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return pfd.revents;
        if (n == 0 && p->connecting)
            return maosc_die(c, MAOS_ETIMEOUT,
                       "timed out: no answer to hello from %s within %d ms (connect timeout)",
                       p->path, p->connect_timeout_ms);
        if (n == 0)
            return maosc_die(c, MAOS_ETIMEOUT,
                       "timed out: no reply from %s for %d ms (request timeout)", p->path,
                       p->timeout_ms);
        if (errno != EINTR)
            return maosc_die_errno(c, "poll");
    }
}

struct rxf *maosc_rxf_new(const void *frame, size_t len, uint32_t cap_events)
{
    const size_t al = _Alignof(maos_event);
    size_t room = cap_events ? al - 1 + (size_t)cap_events * sizeof(maos_event) : 0;
    struct rxf *f = malloc(sizeof *f + len + room);
    if (!f)
        return NULL;
    f->next = NULL;
    f->len = len;
    f->has_rep = 0;
    uintptr_t at = ((uintptr_t)(f->data + len) + al - 1) / al * al;
    f->events = cap_events ? (maos_event *)at : NULL;
    f->n_events = 0;
    f->cap_events = cap_events;
    memcpy(f->data, frame, len);
    return f;
}

/* maos_reply_decode_sink's sink: each record of a read reply straight into
 * the frame's events. */
static int events_sink(void *arg, uint32_t i, uint32_t n, const maos_record *rec)
{
    struct rxf *f = arg;
    if (n > f->cap_events || i != f->n_events || rec->id.len != 16 ||
        rec->prev.len != MAOS_HASH_BYTES)
        return -1;
    maosc_record_to_event(rec, &f->events[f->n_events++]);
    return 0;
}

int maosc_rxq_push(maos_ctx *c, maos_slice frame)
{
    struct maos_ctx_priv *p = c->priv;
    struct rxf *f = maosc_rxf_new(frame.ptr, frame.len, 0);
    if (!f)
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    if (p->rxq_tail)
        p->rxq_tail->next = f;
    else
        p->rxq_head = f;
    p->rxq_tail = f;
    return 0;
}

/* Move every whole frame from the reader to the queue. */
static int rx_drain(maos_ctx *c)
{
    maos_slice frame;
    int r;
    while ((r = maos_reader_next(&c->priv->rd, &frame)) == 1) {
        int rc = maosc_route_frame(c, frame);
        if (rc)
            return rc;
    }
    if (r == MAOS_ENOMEM)
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    if (r < 0)
        return maosc_die(c, MAOS_EPROTO, "bad frame from the server: %s",
                   maos_strerror(r));
    return 0;
}

/* One recv() into the reader (the socket is known or expected to be
 * readable), then drain.  *got (may be NULL): 1 when bytes were read, 0
 * when the socket had none.  0 or a connection error. */
int maosc_rx_read(maos_ctx *c, int *got)
{
    struct maos_ctx_priv *p = c->priv;
    if (got)
        *got = 0;
    char *buf;
    long space = maos_reader_space(&p->rd, &buf, 0);
    if (space == MAOS_ENOMEM)
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    if (space < 0)
        return maosc_die(c, MAOS_EPROTO, "bad frame from the server: %s",
                   maos_strerror((int)space));
    for (;;) {
        ssize_t n = recv(p->fd, buf, (size_t)space, 0);
        if (n > 0) {
            if (got)
                *got = 1;
            maos_reader_commit(&p->rd, (size_t)n);
            return rx_drain(c);
        }
        if (n == 0)
            return maosc_die(c, MAOS_ECLOSED, "connection closed by the server");
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return maosc_die_errno(c, "recv");
    }
}

int maosc_rx_read_some(maos_ctx *c)
{
    return maosc_rx_read(c, NULL);
}

/* Next frame in arrival order, blocking.  The caller owns *out. */
int maosc_rx_take(maos_ctx *c, struct rxf **out)
{
    struct maos_ctx_priv *p = c->priv;
    while (!p->rxq_head) {
        int rc = maosc_wait_fd(c, POLLIN);
        if (rc < 0)
            return rc;
        rc = maosc_rx_read_some(c);
        if (rc)
            return rc;
    }
    *out = p->rxq_head;
    p->rxq_head = p->rxq_head->next;
    if (!p->rxq_head)
        p->rxq_tail = NULL;
    (*out)->next = NULL;
    return 0;
}

/* ---- output -------------------------------------------------------------- */

int maosc_flush_out(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    while (p->out_off < p->out.size) {
        ssize_t n = send(p->fd, p->out.data + p->out_off,
                         p->out.size - p->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            p->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return maosc_die_errno(c, "send");
        int rev = maosc_wait_fd(c, POLLOUT | POLLIN);
        if (rev < 0)
            return rev;
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
            int rc = maosc_rx_read_some(c);
            if (rc)
                return rc;
        }
    }
    if (p->out.alloc > OUT_KEEP_BYTES) {
        msgpack_sbuffer_destroy(&p->out);
        msgpack_sbuffer_init(&p->out);
    }
    p->out.size = 0;
    p->out_off = 0;
    p->out_gen++;
    return 0;
}

/*
 * Framing of one request in `out`: maosc_frame_begin reserves the length, the
 * caller encodes, maosc_frame_end patches the length or rolls everything back
 * (so a refused request leaves no trace).
 */
int maosc_frame_begin(maos_ctx *c, size_t *start, msgpack_packer *pk)
{
    struct maos_ctx_priv *p = c->priv;
    *start = p->out.size;
    if (msgpack_sbuffer_write(&p->out, "\0\0\0\0", 4) != 0)
        return maosc_fail(c, MAOS_ENOMEM, "out of memory encoding a request");
    msgpack_packer_init(pk, &p->out, msgpack_sbuffer_write);
    return 0;
}

int maosc_frame_end(maos_ctx *c, size_t start, uint64_t rid, maos_op op, int enc_rc)
{
    struct maos_ctx_priv *p = c->priv;
    if (enc_rc) {
        p->out.size = start;
        return maosc_fail(c, enc_rc, "cannot encode the request: %s",
                    maos_strerror(enc_rc));
    }
    size_t len = p->out.size - start - 4;
    if (len > p->max_frame) {
        p->out.size = start;
        return maosc_fail(c, MAOS_EFRAME_TOO_LARGE,
                    "request of %zu bytes exceeds the server's max_frame (%u)",
                    len, p->max_frame);
    }
    /* The server checks every frame against the nesting and element
     * limits before it can read the rid; refusing here instead keeps the
     * error attached to this call (e.g. data nested nearly 64 deep is over
     * the limit once inside the request's own maps and arrays). */
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    if (maos_mp_check(p->out.data + start + 4, len, &lim) != 0) {
        p->out.size = start;
        return maosc_fail(c, MAOS_ELIMIT,
                    "request exceeds the server's nesting or element limits "
                    "(%u levels, %u elements)", lim.max_depth, lim.max_elems);
    }
    (void)rid;
    (void)op;
    maos_frame_put_len(p->out.data + start, (uint32_t)len);
    return 0;
}

uint64_t maosc_take_rid(struct maos_ctx_priv *p)
{
    uint64_t rid = p->next_rid++;
    if (p->next_rid == 0) /* rid 0 is never used: it marks unsolicited errors */
        p->next_rid = 1;
    return rid;
}

/* Push the buffer when it is large (pipelined sends). */
int maosc_maybe_flush(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    if (p->out.size - p->out_off >= OUT_FLUSH_BYTES)
        return maosc_flush_out(c);
    return 0;
}

/* ---- replies ---------------------------------------------------------------- */

static void note_refusal(maos_ctx *c, const maos_reply *rep)
{
    struct maos_ctx_priv *p = c->priv;
    p->has_actual = rep->has_actual;
    p->actual = rep->actual;
    p->index = rep->index;
    free(p->err_entry);
    p->err_entry = NULL;
    if (rep->code == MAOS_EWRONG_REVISION && rep->entry.len)
        p->err_entry = maosc_rxf_new(rep->entry.ptr, rep->entry.len, 0);
}

/*
 * Decode a reply frame, match it to the request it answers and check that
 * it carries every field a reply to that request promises
 * (maos_reply_check: a reply that lacks one is a protocol error, never a
 * success with zeros).  want: the rid a synchronous call waits for (the
 * only one pending), or 0 to take a reply to any pending request.  On
 * success the request is no longer pending and *op (may be NULL) is its
 * op.  f stays the caller's.
 *
 * rid 0 is never sent by this library: the server uses it for an error
 * about a request whose rid it could not read (a frame it found malformed
 * or over its limits, PROTOCOL.md "Frames").  It answers one pending
 * request, but which one cannot be known (for a synchronous call it is
 * that call's); after a broken frame header the server also closes the
 * connection, which the next read reports.  A successful reply with rid 0
 * is a protocol error.
 */
int maosc_take_reply(maos_ctx *c, const struct rxf *f, uint64_t want, maos_reply *rep,
                      maos_op *op)
{
    struct maos_ctx_priv *p = c->priv;
    char why[160];
    if (maos_reply_decode(f->data, f->len, rep))
        return maosc_die(c, MAOS_EPROTO, "malformed reply from the server");
    if (rep->rid == 0 && rep->ok)
        return maosc_die(c, MAOS_EPROTO, "reply without a request id");
    uint64_t rid = rep->rid ? rep->rid : want;
    maos_op o = rid ? win_get(&p->win, rid) : MAOS_OP_NONE;
    if (rep->rid && (o == MAOS_OP_NONE || (want && rep->rid != want)))
        return maosc_die(c, MAOS_EPROTO, "reply to unknown request %llu",
                   (unsigned long long)rep->rid);
    /* an error reply's fields are the same for every op */
    if (maos_reply_check(rep, o == MAOS_OP_NONE ? MAOS_OP_PING : o, why, sizeof why))
        return maosc_die(c, MAOS_EPROTO, "incomplete reply from the server: %s", why);
    if (rid)
        maosc_win_del(&p->win, rid);
    p->pending--;
    if (op)
        *op = o;
    return 0;
}

/* A refusal carried by a reply: err/errstr and the details of the call. */
static int refusal(maos_ctx *c, const maos_reply *rep)
{
    note_refusal(c, rep);
    if (rep->message.len)
        maosc_fail(c, rep->code, "%.*s", (int)rep->message.len, rep->message.ptr);
    else
        maosc_fail(c, rep->code, NULL);
    return rep->code ? rep->code : MAOS_EPROTO;
}

/* Legacy (maos_reply_recv's requests): send everything and take the reply
 * of `rid`, which must be the next one in rxq. */
int maosc_sync_reply(maos_ctx *c, uint64_t rid, struct rxf **fout,
                      maos_reply *rep)
{
    struct rxf *f;
    int rc = maosc_flush_out(c);
    if (rc)
        return rc;
    rc = maosc_rx_take(c, &f);
    if (rc)
        return rc;
    rc = maosc_take_reply(c, f, rid, rep, NULL);
    if (rc) {
        free(f);
        return rc;
    }
    if (!rep->ok) {
        rc = refusal(c, rep);
        free(f);
        return rc;
    }
    *fout = f;
    return 0;
}

/* Start of a synchronous call.  Replies are matched by rid, so a call may
 * be made while other requests (pipelined, async) are in flight. */
int maosc_sync_ready(maos_ctx *c)
{
    return maosc_enter(c);
}

/* ---- completions ----------------------------------------------------------- */

static void plist_add(struct maosc_pend **h, struct maosc_pend **tl, struct maosc_pend *pd)
{
    pd->next = NULL;
    pd->prev = *tl;
    if (*tl)
        (*tl)->next = pd;
    else
        *h = pd;
    *tl = pd;
}

static void plist_del(struct maosc_pend **h, struct maosc_pend **tl, struct maosc_pend *pd)
{
    if (pd->prev)
        pd->prev->next = pd->next;
    else
        *h = pd->next;
    if (pd->next)
        pd->next->prev = pd->prev;
    else
        *tl = pd->prev;
    pd->next = pd->prev = NULL;
}

void maosc_pend_free(struct maosc_pend *pd)
{
    if (!pd)
        return;
    free(pd->f);
    free(pd->frame);
    free(pd->kinds);
    free(pd->lock_name);
    free(pd);
}

/* ---- locks whose put timed out ------------------------------------------ */

/* A lock's put whose caller got MAOS_ETIMEOUT: the put is still in maosd's
 * hands, and if it succeeds the lock is held by this connection for no one
 * (bound: until the connection closes), and every other taker waits. */
struct maosc_late_lock {
    struct maosc_late_lock *next;
    uint64_t rid;
    char *name;
};

/* pd timed out: keep its lock's name for its reply (best effort: out of
 * memory leaves the lock to the connection's end). */
static void late_lock_add(struct maos_ctx_priv *p, struct maosc_pend *pd)
{
    struct maosc_late_lock *l = malloc(sizeof *l);
    if (!l)
        return;
    l->rid = pd->rid;
    l->name = pd->lock_name;
    pd->lock_name = NULL;
    l->next = p->late_locks;
    p->late_locks = l;
}

void maosc_late_locks_free(struct maos_ctx_priv *p)
{
    while (p->late_locks) {
        struct maosc_late_lock *l = p->late_locks;
        p->late_locks = l->next;
        free(l->name);
        free(l);
    }
}

/* The reply to a put that timed out: when it was a lock's and it took the
 * lock, let go of it at once (delete with its token: a later holder's lock
 * is never touched). */
static void let_go(maos_ctx *c, const maos_reply *rep)
{
    struct maos_ctx_priv *p = c->priv;
    for (struct maosc_late_lock **lp = &p->late_locks; *lp; lp = &(*lp)->next) {
        struct maosc_late_lock *l = *lp;
        if (l->rid != rep->rid)
            continue;
        *lp = l->next;
        if (rep->ok)
            maos_async_delete(c, maosc_ignore, NULL, "locks", l->name,
                              (int64_t)rep->revision);
        free(l->name);
        free(l);
        return;
    }
}

/* Ops whose request may be sent twice without harm (PROTOCOL.md: reads;
 * appends/txns only when every event has an id: decided by the caller). */
static int op_retry_safe(maos_op op)
{
    switch (op) {
    case MAOS_OP_PING:
    case MAOS_OP_READ:
    case MAOS_OP_READ_ALL:
    case MAOS_OP_STREAMS:
    case MAOS_OP_STATS:
    case MAOS_OP_CHECKPOINT_GET:
    case MAOS_OP_GET:
    case MAOS_OP_LIST:
    case MAOS_OP_COUNT:
    case MAOS_OP_TASK:
    case MAOS_OP_QUEUE_STATS:
    case MAOS_OP_DEAD_LIST:
    case MAOS_OP_TASK_LIST:
    case MAOS_OP_METRICS:
        return 1;
    default:
        return 0;
    }
}

/*
 * pd's request is over (status 0, a refusal, or a local error; f: its
 * reply, taken, or NULL).  Runs `internal` at once, then hands the result
 * to its waiter: a sync call (done), the callback queue (async), or
 * nobody (internal).  pd is no longer in the window or a list.
 */
static void pend_complete(maos_ctx *c, struct maosc_pend *pd, int status, struct rxf *f,
                          const char *why)
{
    struct maos_ctx_priv *p = c->priv;
    maos_reply rep, *rp = NULL;
    pd->f = f;
    pd->status = status;
    pd->done = 1;
    if (f && f->has_rep)
        rp = &f->rep;
    else if (f && maos_reply_decode(f->data, f->len, &rep) == 0)
        rp = &rep;
    if (rp && !rp->ok && rp->message.len)
        snprintf(pd->errstr, sizeof pd->errstr, "%.*s", (int)rp->message.len,
                 rp->message.ptr);
    if (why && !pd->errstr[0])
        snprintf(pd->errstr, sizeof pd->errstr, "%s", why);
    if (pd->internal)
        pd->internal(c, pd, status, f, rp);
    if (pd->kind == MAOSC_PEND_ASYNC) {
        plist_add(&p->cq_head, &p->cq_tail, pd);
        if (!p->in_process && !p->wake_asked) {
            p->wake_asked = 1;
            maosc_hooks_update(p, 0);
        }
    } else if (pd->kind == MAOSC_PEND_INTERNAL) {
        p->n_pends--;
        maosc_pend_free(pd);
    }
}

/* Take pd out of the requests in flight (window and list). */
static void pend_unlink(struct maos_ctx_priv *p, struct maosc_pend *pd)
{
    if (pd->in_win) {
        maosc_win_del(&p->win, pd->rid);
        plist_del(&p->pends_head, &p->pends_tail, pd);
        pd->in_win = 0;
    }
}

/*
 * A claim answered after its request timed out (its caller had
 * MAOS_ETIMEOUT): nobody works on its tasks, so they go back at once
 * (release: the attempt does not count) instead of staying leased to no
 * one until their lease runs out.  Best effort: a release that cannot be
 * queued leaves that task to its lease.
 */
static void give_back(maos_ctx *c, const maos_reply *rep)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, rep->items.ptr, rep->items.len);
    if (maos_mpr_array(&r, &n))
        return;
    for (uint32_t i = 0; i < n; i++) {
        maos_task t;
        if (maos_task_next(&r, &t) ||
            maos_async_task_release(c, maosc_ignore, NULL, t.id, t.token))
            return;
    }
}

/*
 * A reply frame that is not a push nor a claim_start answer.  Matched by
 * rid to its completion (run now: internal handlers see it before the next
 * frame), dropped when its request timed out, or queued in rxq for
 * maos_reply_recv (legacy pipelined requests: checked when taken).
 */
int maosc_reply_in(maos_ctx *c, maos_slice frame)
{
    struct maos_ctx_priv *p = c->priv;
    char why[160];
    /* Decoded once, from the copy its completion keeps (struct rxf), a
     * read's events with it. */
    uint32_t cap = maosc_events_declared(frame.ptr, frame.len, 0);
    struct rxf *f = maosc_rxf_new(frame.ptr, frame.len, cap);
    if (!f)
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    const maos_reply *rep = &f->rep;
    int rc = 0;
    if (maos_reply_decode_sink(f->data, f->len, &f->rep, cap ? events_sink : NULL, f)) {
        rc = maosc_die(c, MAOS_EPROTO, "malformed reply from the server");
        goto drop;
    }
    f->has_rep = 1;
    struct maosc_pend *pd = NULL;
    maos_op op;
    if (rep->rid == 0) {
        if (rep->ok) {
            rc = maosc_die(c, MAOS_EPROTO, "reply without a request id");
            goto drop;
        }
        /* an error about a frame the server could not read: whose it is
         * cannot be known unless one request is in flight */
        if (p->pending) {
            rc = maosc_rxq_push(c, frame);
            goto drop;
        }
        if (!p->pends_head || p->pends_head != p->pends_tail) {
            rc = maosc_die(c, MAOS_EPROTO, "error without a request id: %.*s",
                           (int)rep->message.len, rep->message.ptr ? rep->message.ptr : "");
            goto drop;
        }
        pd = p->pends_head;
        op = pd->op;
    } else {
        op = win_get(&p->win, rep->rid);
        if (op == MAOS_OP_NONE) {
            rc = maosc_die(c, MAOS_EPROTO, "reply to unknown request %llu",
                           (unsigned long long)rep->rid);
            goto drop;
        }
        if (win_abandoned(&p->win, rep->rid)) {
            maosc_win_del(&p->win, rep->rid); /* timed out: dropped */
            if (op == MAOS_OP_CLAIM && rep->ok)
                give_back(c, rep);
            else if (op == MAOS_OP_PUT)
                let_go(c, rep);
            goto drop;
        }
        pd = win_pd(&p->win, rep->rid);
        if (!pd) {
            rc = maosc_rxq_push(c, frame);
            goto drop;
        }
    }
    if (maos_reply_check(rep, op, why, sizeof why)) {
        rc = maosc_die(c, MAOS_EPROTO, "incomplete reply from the server: %s", why);
        goto drop;
    }
    int fd = p->fd;
    int status = rep->ok ? 0 : rep->code ? rep->code : MAOS_EPROTO;
    pend_unlink(p, pd);
    pend_complete(c, pd, status, f, NULL); /* f is pd's now */
    if (p->fd != fd || p->dead) /* an internal handler broke the connection */
        return p->dead ? p->dead : c->err ? c->err : MAOS_ECLOSED;
    return 0;
drop:
    free(f);
    return rc;
}

/*
 * The connection was lost (reconnect on and the error recoverable: keep is
 * 1) or the context died (keep 0).  Every request in flight either keeps
 * its frame for the next connection (keep, and safe to send again) or
 * completes: a sync call with the connection error itself (code), an async
 * one with MAOS_ECONNECTION, an internal one (a handshake's) silently.
 * With keep 0 the requests waiting to be re-sent complete too.
 */
void maosc_pends_lost(maos_ctx *c, int code, int keep)
{
    struct maos_ctx_priv *p = c->priv;
    struct maosc_pend *pd;
    while ((pd = p->pends_head)) {
        plist_del(&p->pends_head, &p->pends_tail, pd);
        pd->in_win = 0;
        /* still in `out`, not a byte of it written: never sent */
        int unsent = pd->out_gen == p->out_gen && pd->out_start >= p->out_off &&
                     pd->out_start + 4 <= p->out.size;
        if (keep && unsent && !pd->frame && pd->kind != MAOSC_PEND_INTERNAL) {
            const unsigned char *h = (const unsigned char *)p->out.data + pd->out_start;
            size_t len = 4 + ((size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3]);
            if (pd->out_start + len <= p->out.size && (pd->frame = malloc(len))) {
                memcpy(pd->frame, p->out.data + pd->out_start, len);
                pd->frame_len = len;
            }
        }
        /* A request sent to a server that let it time out is not sent
         * again (it could wait again, for ever, past every timeout): it
         * fails with the timeout; what was never sent is still kept. */
        int retry = pd->retry && code != MAOS_ETIMEOUT;
        if (keep && (retry || unsent) && pd->frame && pd->kind != MAOSC_PEND_INTERNAL) {
            plist_add(&p->rs_head, &p->rs_tail, pd);
            continue;
        }
        pend_complete(c, pd, pd->kind == MAOSC_PEND_ASYNC ? MAOS_ECONNECTION : code, NULL,
                      pd->kind == MAOSC_PEND_ASYNC
                          ? "connection lost with the request in flight: outcome unknown"
                          : NULL);
    }
    while (!keep && (pd = p->rs_head)) {
        plist_del(&p->rs_head, &p->rs_tail, pd);
        pend_complete(c, pd, pd->kind == MAOSC_PEND_ASYNC ? MAOS_ECONNECTION : code, NULL,
                      "the context died before the request could be sent");
    }
}

/* s (a csub) is being freed: the requests that point to it (a subscribe
 * in flight) forget it. */
void maosc_pends_forget_arg(struct maos_ctx_priv *p, const void *arg)
{
    struct maosc_pend *lists[2] = {p->pends_head, p->rs_head};
    for (int i = 0; i < 2; i++)
        for (struct maosc_pend *pd = lists[i]; pd; pd = pd->next)
            if (pd->arg == arg)
                pd->arg = NULL;
}

/* Register pd (its frame just closed at `start` in out) as in flight on
 * this connection, or, while down, keep its frame for the next one. */
static int pend_register(maos_ctx *c, struct maosc_pend *pd, size_t start)
{
    struct maos_ctx_priv *p = c->priv;
    size_t len = p->out.size - start;
    if (pd->retry || p->fd < 0) {
        pd->frame = malloc(len);
        if (!pd->frame)
            return MAOS_ENOMEM;
        memcpy(pd->frame, p->out.data + start, len);
        pd->frame_len = len;
    }
    if (p->fd < 0) { /* down: sent after the next handshake */
        p->out.size = start;
        pd->retry = 1;
        plist_add(&p->rs_head, &p->rs_tail, pd);
        p->n_pends++;
        return 0;
    }
    int rc = win_add(&p->win, pd->rid, pd->op, pd);
    if (rc)
        return rc;
    pd->in_win = 1;
    pd->out_start = start;
    pd->out_gen = p->out_gen;
    plist_add(&p->pends_head, &p->pends_tail, pd);
    p->n_pends++;
    return 0;
}

/* After a handshake was queued: the requests kept from the lost
 * connection go out again, in their order, with their own rids. */
int maosc_pends_resend(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    struct maosc_pend *pd;
    while ((pd = p->rs_head)) {
        if (msgpack_sbuffer_write(&p->out, pd->frame, pd->frame_len) != 0 ||
            win_add(&p->win, pd->rid, pd->op, pd))
            return maosc_die(c, MAOS_ENOMEM, "out of memory re-sending requests");
        plist_del(&p->rs_head, &p->rs_tail, pd);
        pd->in_win = 1;
        plist_add(&p->pends_head, &p->pends_tail, pd);
    }
    return 0;
}

/* Async requests whose deadline passed complete with MAOS_ETIMEOUT (their
 * late replies are dropped); an internal one (hello) breaks the connection.
 * Returns the ms until the next deadline, or -1. */
int maosc_pends_expire(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    long long now = maosc_now_ms(), next = -1;
    if (!p->next_deadline)
        return -1;
    if (now < p->next_deadline) /* nothing due: no scan */
        return p->next_deadline - now > INT_MAX ? INT_MAX : (int)(p->next_deadline - now);
    struct maosc_pend *pd = p->pends_head;
    while (pd && !p->dead) {
        struct maosc_pend *nx = pd->next;
        if (pd->deadline && pd->deadline <= now) {
            if (pd->kind == MAOSC_PEND_INTERNAL) {
                maosc_die(c, MAOS_ETIMEOUT,
                          "timed out: no answer to %s from %s within %d ms (connect timeout)",
                          maos_op_name(pd->op), p->path, p->connect_timeout_ms);
                return 0;
            }
            plist_del(&p->pends_head, &p->pends_tail, pd);
            pd->in_win = 0;
            win_abandon(&p->win, pd->rid);
            if (pd->lock_name)
                late_lock_add(p, pd);
            char why[96];
            snprintf(why, sizeof why, "timed out: no reply within %lld ms (request timeout)",
                     pd->deadline - pd->start_ms);
            pend_complete(c, pd, MAOS_ETIMEOUT, NULL, why);
        } else if (pd->deadline && (next < 0 || pd->deadline < next)) {
            next = pd->deadline;
        }
        pd = nx;
    }
    if (!p->dead)
        maosc_lockw_expire(c, now, &next);
    p->next_deadline = next < 0 ? 0 : next;
    if (next < 0)
        return -1;
    return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

/* Write what the socket takes now, never waiting.  0 or a connection
 * error. */
int maosc_flush_nb(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    while (p->fd >= 0 && p->out_off < p->out.size) {
        ssize_t n = send(p->fd, p->out.data + p->out_off, p->out.size - p->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            p->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return maosc_die_errno(c, "send");
    }
    if (p->out_off == p->out.size) {
        if (p->out.alloc > OUT_KEEP_BYTES) {
            msgpack_sbuffer_destroy(&p->out);
            msgpack_sbuffer_init(&p->out);
        }
        p->out.size = 0;
        p->out_off = 0;
        p->out_gen++;
    }
    return 0;
}

/* Wait (blocking) until pd completes: send, read, and, with reconnect on,
 * reconnect when the connection is lost (pd is re-sent when safe). */
static int pend_wait(maos_ctx *c, struct maosc_pend *pd)
{
    struct maos_ctx_priv *p = c->priv;
    int rc;
    while (!pd->done) {
        if (p->dead) /* maosc_pends_lost completed it; cannot happen */
            return p->dead;
        if (p->fd < 0 || p->handshaking) {
            rc = maosc_reconnect_until(c, -1);
            if (rc && !pd->done)
                return rc;
            continue;
        }
        if (p->out_off < p->out.size) {
            maosc_flush_out(c);
            continue;
        }
        rc = maosc_wait_fd(c, POLLIN);
        if (rc < 0)
            continue; /* died or down: pd completed or kept */
        maosc_rx_read_some(c);
    }
    return 0;
}

/* The outcome of a completed sync pend, as the call's return: 0 and *f /
 * *rep (the caller's), a refusal (err/errstr/details set) or the error. */
static int pend_take(maos_ctx *c, struct maosc_pend *pd, struct rxf **f, maos_reply *rep)
{
    struct maos_ctx_priv *p = c->priv;
    int rc = pd->status;
    p->n_pends--;
    if (pd->f) {
        if (pd->f->has_rep)
            *rep = pd->f->rep;
        else
            maos_reply_decode(pd->f->data, pd->f->len, rep);
        if (rc == 0) {
            *f = pd->f;
            pd->f = NULL;
        } else {
            rc = refusal(c, rep);
        }
    } else if (rc && !c->err) {
        maosc_fail(c, rc, "%s", pd->errstr[0] ? pd->errstr : maos_strerror(rc));
    }
    maosc_pend_free(pd);
    return rc;
}

size_t maos_pending(const maos_ctx *c)
{
    return c && c->priv ? c->priv->pending : 0;
}

int maos_flush(maos_ctx *c)
{
    int rc = maosc_enter(c);
    return rc ? rc : maosc_flush_out(c);
}

/* ---- request building --------------------------------------------------------- */

maos_slice maosc_cstr(const char *s)
{
    maos_slice sl = {s, s ? (uint32_t)strlen(s) : 0};
    return sl;
}

/* Check the caller's text and msgpack before anything is queued, so that a
 * bad argument is a per-call error and never a broken frame (which the
 * server answers by closing the connection). */
int maosc_check_str(maos_ctx *c, const char *what, const char *s)
{
    if (!s)
        return maosc_fail(c, MAOS_EINVALID_ARG, "%s is NULL", what);
    if (strlen(s) > UINT32_MAX / 2)
        return maosc_fail(c, MAOS_EINVALID_ARG, "%s is too long", what);
    return 0;
}


/*
 * The generic call.  Every request goes through the same three steps:
 *   maosc_req_begin  takes the next rid and opens a frame in `out`;
 *   (the caller encodes into rq->pk with rq->rid, maos_enc_*);
 *   maosc_req_end    closes the frame (rolled back when the encoder failed
 *                    or the request breaks a limit: nothing is sent) and
 *                    records rid -> op in the window;
 *   maosc_call       = maosc_req_end, then send everything and take the
 *                    reply of that rid (maosc_sync_reply): on success *f
 *                    (the caller frees it) holds a reply with every field
 *                    its op promises; a refusal sets err/errstr.
 */
int maosc_req_begin(maos_ctx *c, struct maosc_req *rq)
{
    rq->rid = maosc_take_rid(c->priv);
    rq->internal_only = 0;
    rq->retry_ids = 0;
    rq->sub_kind = 0;
    rq->internal = NULL;
    rq->arg = NULL;
    rq->kinds = NULL;
    rq->n_kinds = 0;
    return maosc_frame_begin(c, &rq->start, &rq->pk);
}

/* Legacy registration (maos_append_send, maos_txn_send, maos_claim_start):
 * no completion; the reply goes to rxq (or is a claim's delivery). */
int maosc_req_end(maos_ctx *c, struct maosc_req *rq, maos_op op, int enc_rc)
{
    struct maos_ctx_priv *p = c->priv;
    int rc = maosc_frame_end(c, rq->start, rq->rid, op, enc_rc);
    if (rc)
        return rc;
    if (win_add(&p->win, rq->rid, op, NULL)) {
        p->out.size = rq->start;
        return maosc_fail(c, MAOS_ENOMEM, "out of memory queueing a request");
    }
    p->pending++;
    return 0;
}

int maosc_call(maos_ctx *c, struct maosc_req *rq, maos_op op, int enc_rc, struct rxf **f,
               maos_reply *rep)
{
    struct maos_ctx_priv *p = c->priv;
    int rc = maosc_frame_end(c, rq->start, rq->rid, op, enc_rc);
    if (rc)
        return rc;
    struct maosc_pend *pd = calloc(1, sizeof *pd);
    if (!pd) {
        p->out.size = rq->start;
        return maosc_fail(c, MAOS_ENOMEM, "out of memory queueing a request");
    }
    pd->rid = rq->rid;
    pd->op = op;
    pd->kind = rq->internal_only ? MAOSC_PEND_INTERNAL
               : p->submit_async ? MAOSC_PEND_ASYNC
                                 : MAOSC_PEND_SYNC;
    pd->retry = p->reconnect && pd->kind != MAOSC_PEND_INTERNAL &&
                (op_retry_safe(op) || rq->retry_ids);
    pd->internal = rq->internal;
    pd->arg = rq->arg;
    pd->sub_kind = rq->sub_kind;
    pd->kinds = rq->kinds;
    pd->n_kinds = rq->n_kinds;
    rq->kinds = NULL;
    if (p->lock_put && op == MAOS_OP_PUT) { /* one put: the lock's own */
        pd->lock_name = strdup(p->lock_put); /* NULL: best effort (let_go) */
        p->lock_put = NULL;
    }
    pd->start_ms = maosc_now_ms();
    if (pd->kind == MAOSC_PEND_ASYNC) {
        pd->cb = p->submit_cb;
        pd->privdata = p->submit_privdata;
        if (p->timeout_ms > 0)
            pd->deadline = pd->start_ms + p->timeout_ms;
    } else if (pd->kind == MAOSC_PEND_INTERNAL && p->connect_timeout_ms > 0) {
        pd->deadline = pd->start_ms + p->connect_timeout_ms;
    }
    if (pd->deadline && (!p->next_deadline || pd->deadline < p->next_deadline))
        p->next_deadline = pd->deadline;
    if ((rc = pend_register(c, pd, rq->start))) {
        p->out.size = rq->start;
        maosc_pend_free(pd);
        if (rc == MAOS_ELIMIT)
            return maosc_fail(c, rc, "more than %u requests in flight", MAOSC_WIN_MAX);
        return maosc_fail(c, MAOS_ENOMEM, "out of memory queueing a request");
    }
    if (pd->kind != MAOSC_PEND_SYNC) {
        /* With loop ops the write waits for the loop's writable event (one
         * send for many requests); without, it is tried at once, so that a
         * loop watching only for replies gets them. */
        const maos_loop_ops *o = &p->ops;
        int ops = o->add_write || o->add_read || o->timer;
        if (pd->kind == MAOSC_PEND_INTERNAL)
            return MAOSC_QUEUED; /* the handshake writes once it is queued */
        if (!ops || p->out.size - p->out_off >= OUT_FLUSH_BYTES)
            maosc_flush_nb(c); /* a connection error reaches pd itself */
        maosc_hooks_update(p, -1);
        return MAOSC_QUEUED;
    }
    if ((rc = pend_wait(c, pd))) {
        /* not completed: the context is dead (reconnect gave up) */
        if (!pd->done) {
            if (pd->in_win)
                pend_unlink(p, pd);
            else if (pd->retry)
                plist_del(&p->rs_head, &p->rs_tail, pd);
            p->n_pends--;
            maosc_pend_free(pd);
            return rc;
        }
    }
    return pend_take(c, pd, f, rep);
}

int maosc_check_doc(maos_ctx *c, const char *what, const void *doc, size_t len, int empty_ok)
{
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    if (!len && empty_ok)
        return 0;
    if (!doc || !len || len > UINT32_MAX || maos_mp_check(doc, len, &lim) != 0)
        return maosc_fail(c, MAOS_EINVALID_ARG, "%s is not one well-formed msgpack value", what);
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, doc, len);
    if (maos_mpr_map(&r, &n))
        return maosc_fail(c, MAOS_EINVALID_ARG, "%s is not a msgpack map", what);
    return 0;
}

int maosc_check_value(maos_ctx *c, const char *what, const void *v, size_t len)
{
    if (!len)
        return 0;
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    if (!v || len > UINT32_MAX || maos_mp_check(v, len, &lim) != 0)
        return maosc_fail(c, MAOS_EINVALID_ARG, "%s is not one well-formed msgpack value", what);
    return 0;
}
