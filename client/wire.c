/*
 * client/wire.c -- bytes on the socket: bounded waits, receive into the
 * proto reader, the output buffer and its framing, the window of requests
 * awaiting a reply (rid -> op), reply matching, and maosc_call, the one
 * helper every synchronous request goes through.
 *
 * Invariants: a frame in `out` is whole or rolled back; pending counts
 * the requests in the window; a reply is checked against its op
 * (maos_reply_check) before anything is taken from it.
 */
#include "client_priv.h"

/* ---- requests awaiting a reply ----------------------------------------- */

void maosc_win_reset(struct opwin *w)
{
    w->span = 0;
    if (w->cap > 4096) { /* a long pipeline's ring is given back */
        free(w->op);
        w->op = NULL;
        w->cap = 0;
    }
}

/* Record that rid (above every rid recorded so far) awaits a reply to op.
 * 0 or MAOS_ENOMEM. */
static int win_add(struct opwin *w, uint64_t rid, maos_op op)
{
    if (w->span == 0)
        w->base = rid;
    if (rid < w->base + w->span)
        return MAOS_EINVALID_ARG; /* rids only grow; cannot happen */
    uint64_t need = rid - w->base + 1;
    if (need > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < need) {
            if (cap > SIZE_MAX / 2)
                return MAOS_ENOMEM;
            cap *= 2;
        }
        uint8_t *n = calloc(cap, 1);
        if (!n)
            return MAOS_ENOMEM;
        for (size_t i = 0; i < w->span; i++)
            n[(w->base + i) & (cap - 1)] = w->op[(w->base + i) & (w->cap - 1)];
        free(w->op);
        w->op = n;
        w->cap = cap;
    }
    for (uint64_t r = w->base + w->span; r < rid; r++)
        w->op[r & (w->cap - 1)] = 0;
    w->op[rid & (w->cap - 1)] = (uint8_t)op;
    w->span = (size_t)need;
    return 0;
}

/* The op rid awaits a reply to, or MAOS_OP_NONE. */
static maos_op win_get(const struct opwin *w, uint64_t rid)
{
    if (w->span == 0 || rid < w->base || rid - w->base >= w->span)
        return MAOS_OP_NONE;
    return (maos_op)w->op[rid & (w->cap - 1)];
}

/* rid was answered: forget it, and the answered rids at the front. */
void maosc_win_del(struct opwin *w, uint64_t rid)
{
    if (win_get(w, rid) == MAOS_OP_NONE)
        return;
    w->op[rid & (w->cap - 1)] = 0;
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

int maosc_rxq_push(maos_ctx *c, maos_slice frame)
{
    struct maos_ctx_priv *p = c->priv;
    struct rxf *f = malloc(sizeof *f + frame.len);
    if (!f)
        return maosc_die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    f->next = NULL;
    f->len = frame.len;
    memcpy(f->data, frame.ptr, frame.len);
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
    if (win_add(&p->win, rid, op)) {
        p->out.size = start;
        return maosc_fail(c, MAOS_ENOMEM, "out of memory queueing a request");
    }
    maos_frame_put_len(p->out.data + start, (uint32_t)len);
    p->pending++;
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
    if (rep->code == MAOS_EWRONG_REVISION && rep->entry.len &&
        (p->err_entry = malloc(sizeof *p->err_entry + rep->entry.len))) {
        p->err_entry->next = NULL;
        p->err_entry->len = rep->entry.len;
        memcpy(p->err_entry->data, rep->entry.ptr, rep->entry.len);
    }
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

/* Send everything and take the reply of `rid` (pending was 0 before it was
 * queued, so it is the only reply that may come).  On success *f and *rep
 * are the caller's, and rep has every field a reply to the request's op
 * promises.  A refusal sets err/errstr and the details. */
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
        note_refusal(c, rep);
        if (rep->message.len)
            maosc_fail(c, rep->code, "%.*s", (int)rep->message.len, rep->message.ptr);
        else
            maosc_fail(c, rep->code, NULL);
        free(f);
        return rep->code ? rep->code : MAOS_EPROTO;
    }
    *fout = f;
    return 0;
}

/* Only sync calls made with nothing in flight can match their reply. */
int maosc_sync_ready(maos_ctx *c)
{
    int rc = maosc_enter(c);
    if (rc)
        return rc;
    if (c->priv->pending)
        return maosc_fail(c, MAOS_EBUSY, "%zu pipelined replies are outstanding",
                    c->priv->pending);
    return 0;
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
    return maosc_frame_begin(c, &rq->start, &rq->pk);
}

int maosc_req_end(maos_ctx *c, struct maosc_req *rq, maos_op op, int enc_rc)
{
    return maosc_frame_end(c, rq->start, rq->rid, op, enc_rc);
}

int maosc_call(maos_ctx *c, struct maosc_req *rq, maos_op op, int enc_rc, struct rxf **f,
               maos_reply *rep)
{
    int rc = maosc_req_end(c, rq, op, enc_rc);
    return rc ? rc : maosc_sync_reply(c, rq->rid, f, rep);
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
