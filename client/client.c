/*
 * client/client.c -- libmaos-client: one blocking Unix-socket connection
 * to maosd per maos_ctx, a pipelined request layer and the synchronous
 * calls built on it.
 *
 * Data flow:
 *   request  -> encoded by proto (maos_enc_*) straight into the output
 *               buffer `out`, behind a 4-byte length patched afterwards;
 *   flush    -> non-blocking send() of out[out_off..], waiting with poll();
 *               while the socket is not writable, incoming bytes are read
 *               (the server may be blocked writing replies to us: a long
 *               pipeline must not deadlock);
 *   reply    -> recv() into the proto frame reader `rd`; each whole frame
 *               is copied once into an `rxf` block, queued in arrival order
 *               (rxq) and handed out.  A page or reply message takes
 *               ownership of its rxf: the events of a page are views into
 *               it, and the only other allocation per page is one array of
 *               maos_event (no per-event malloc);
 *   push     -> every whole frame is first offered to maos_push_decode:
 *               pushes never reach the reply queue.  A push is mapped from
 *               the server's subscription id to the caller's, turned into a
 *               maos_delivery (one allocation: the delivery, its events
 *               array and the frame bytes) and queued (dq) until maos_next
 *               or maos_process hands it out.
 *
 * Connect (open_conn, first connect and every reconnect alike): the trust
 * checks of trust.c on the socket's directory, connect(), the server's uid
 * (SO_PEERCRED) -- all before the first byte is sent -- then hello, the
 * whole phase within connect_timeout_ms.  After it, every wait for the
 * socket (wait_fd) fails with MAOS_ETIMEOUT after timeout_ms without any
 * progress.  Both are on by default (client.h "Timeouts").
 *
 * Replies: every request queued records its op under its rid (struct
 * opwin), so that a reply is matched to a request that is really pending
 * (not unknown, not already answered) and checked against what a reply to
 * that op promises (maos_reply_check) before anything is taken from it.
 *
 * Subscriptions (struct csub) keep their own copy of the filter or
 * pattern and `next`, the position to resume from: the `next` of the last
 * push received (every push received is delivered, from the queue, even
 * across a reconnect), or the `from` the subscribe reply gave.
 *
 * The daemon writes a subscribe reply before any push of that
 * subscription, but both can arrive in one recv() and the frames are
 * drained before the reply is matched; so while a subscribe is in flight,
 * pushes for server ids not yet known are held (orphans) and mapped once
 * the reply is taken.  Outside that window a push for an unknown id belongs
 * to a subscription the caller has unsubscribed, and is dropped.
 *
 * Connection states:
 *
 *   connected --(I/O error, EOF, timeout; reconnect on)--> down
 *      ^                                                    |  attempts at
 *      +------(connect + hello + re-subscribe all)----------+  0, 50, 100, ..
 *                                                           |  2000 ms apart
 *   connected/down --(any other connection error, or an attempt that
 *                     fails reconnect_max_ms after the loss)--> dead
 *                     (sticky; fd closed)
 *
 *   While down, fd == -1, the reader, reply queue, output and pending are
 *   empty (replies in flight are lost), and the delivery queue and
 *   subscriptions are kept.
 *
 * Invariants:
 *  - pending == requests queued or sent whose reply has not been handed
 *    out (through a sync call or maos_reply_recv).  Sync calls require
 *    pending == 0, so the only reply they can get is their own.  The
 *    window `win` holds the op of each of them; the one exception is the
 *    request an rid-0 error answered in maos_reply_recv (which one cannot
 *    be known), left in it until the connection ends.
 *  - No byte is written to a socket whose directory and server uid have
 *    not passed the trust checks.
 *  - Once `dead` is set the socket is closed, c->err == dead and errstr
 *    holds the reason; every entry point returns dead at once.
 *  - `down` and `dead` are never both set; `down` implies fd == -1.
 *  - Every queued delivery belongs to a subscription in `subs`
 *    (unsubscribe removes both).
 *  - Out-parameters are written only on success.
 *  - Nothing here logs or touches signals; send() uses MSG_NOSIGNAL.
 *  - No thread but maos_worker_run's keeper, which has a context of its
 *    own and shares only `struct keeper` (under its mutex) with the loop.
 */
#include "maos/client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "trust.h"

/* Output is pushed to the socket once this much is queued. */
#define OUT_FLUSH_BYTES (64u * 1024u)
/* An output buffer that grew beyond this is released after a flush. */
#define OUT_KEEP_BYTES (1024u * 1024u)
/* Lower bounds of one encoded item, used to refuse a reply whose declared
 * item count could not fit its bytes before allocating per-item arrays. */
#define MIN_RECORD_BYTES 64u
#define MIN_STREAM_INFO_BYTES 8u

struct rxf {
    struct rxf *next;
    size_t len;
    char data[];
};

/* A queued delivery: the node, then n maos_event, then the frame bytes. */
struct dnode {
    struct dnode *next;
    maos_delivery d;
};

/* One subscription, with its own copy of what is needed to re-subscribe. */
struct csub {
    uint64_t id;         /* the caller's id */
    uint64_t server_id;  /* on the current connection; 0: not subscribed */
    int channel;
    uint64_t next;       /* event subscriptions: position to resume from */
    uint64_t wait_version; /* subscribed from_version and nothing delivered
                            * yet: re-subscribe by that version, not by
                            * next (the daemon skips lower versions) */
    int waiting;
    maos_filter filter;  /* slices into this block (NUL-terminated) */
    maos_slice pattern;
    /* a watch: re-made on reconnect as a watch from the last revision seen
     * (next - 1), never with its entries again -- unless the connection was
     * lost before the last page of its entries (more == 0) came in:
     * entries_open.  Then the changes after its revision would come
     * without the rest of the table, so it is watched again with new
     * entries (a new revision tells the caller to start over). */
    int watch;
    int entries_open;
    uint64_t entries_pages; /* ENTRIES pushes since it was (re)watched */
    maos_slice table, key_prefix; /* in this block */
};

/*
 * Requests awaiting their reply: the op of every rid in [base, base + span),
 * 0 for a rid already answered (or never sent: a request refused before it
 * was queued still used up its rid).  A ring of cap (a power of two) bytes
 * indexed by rid; it grows with the distance between the oldest unanswered
 * request and the newest one, one byte per request.
 */
struct opwin {
    uint8_t *op;
    size_t cap;
    uint64_t base;
    size_t span;
};

struct maos_ctx_priv {
    int fd;
    int dead;           /* 0 or the sticky error */
    int timeout_ms;     /* request inactivity bound; 0: none */
    int connect_timeout_ms; /* connect + hello bound; 0: none */
    int connecting;     /* in open_conn: waits are bounded by `deadline` */
    long long deadline; /* monotonic ms end of the connect phase; 0: none */
    uid_t server_uid;   /* configured server uid; 0: none */
    struct opwin win;
    uint64_t next_rid;
    uint32_t max_frame; /* server's request limit */
    char server[64];
    size_t pending;

    msgpack_sbuffer out;
    size_t out_off;     /* bytes of out already written */

    maos_reader rd;
    struct rxf *rxq_head, *rxq_tail;

    /* details of the last refusal (cleared by every call) */
    int has_actual;
    int64_t actual;
    int64_t index;
    struct rxf *err_entry; /* WRONG_REVISION's current entry (maos_err_entry) */

    /* subscriptions and deliveries */
    struct csub **subs;
    size_t n_subs, cap_subs;
    uint64_t last_sub_id;
    uint64_t aclaims[MAOS_CLAIMS_WAITING_MAX]; /* maos_claim_start rids in flight */
    size_t n_aclaims;
    struct dnode *dq_head, *dq_tail;
    size_t dq_len;
    int sub_inflight;             /* a subscribe awaits its reply */
    /* the agent registered on this context (re-registered on reconnect):
     * one block holding the strings maos_agent_in points to, or NULL */
    maos_agent_in agent;
    char *agent_mem;
    struct rxf *orph_head, *orph_tail;

    /* reconnect */
    char *path, *client_name;     /* copies, for reconnecting */
    int reconnect, reconnect_max_ms;
    int ever_connected;           /* a handshake succeeded once */
    int down;                     /* reconnecting; fd == -1 */
    long long down_since, next_attempt;
    int backoff_ms;
    int down_err;                 /* last reason, for giving up */
    char down_why[256];
    uint64_t reconnects;

    /* event loop */
    maos_loop_hooks hooks;
    int in_process, wake_asked;
};

/* ---- errors ------------------------------------------------------------ */

static void vset_msg(maos_ctx *c, int code, const char *fmt, va_list ap)
{
    c->err = code;
    if (fmt)
        vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    else
        snprintf(c->errstr, sizeof c->errstr, "%s", maos_strerror(code));
}

/* A per-call failure: the context lives on. */
static int fail(maos_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset_msg(c, code, fmt, ap);
    va_end(ap);
    return code;
}

static int monotonic_ms(long long *ms)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts))
        return -1;
    *ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

static long long now_ms(void)
{
    long long t = 0;
    monotonic_ms(&t);
    return t;
}

static void hooks_update(struct maos_ctx_priv *p, int wake_ms)
{
    if (p->hooks.update)
        p->hooks.update(p->hooks.data, p->fd, wake_ms);
}

/* Errors after which a reconnect may help (the daemon went away, is
 * restarting, or the connection stalled). */
static int recoverable(const struct maos_ctx_priv *p, int code)
{
    if (!p->reconnect || !p->ever_connected)
        return 0;
    switch (code) {
    case MAOS_ECLOSED:
    case MAOS_EIO:
    case MAOS_ETIMEOUT:
    case MAOS_ECONNECT:
    case MAOS_ESHUTTING_DOWN:
    case MAOS_EOVERLOADED:
        return 1;
    default:
        return 0;
    }
}

/* ---- requests awaiting a reply ----------------------------------------- */

static void win_reset(struct opwin *w)
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
static void win_del(struct opwin *w, uint64_t rid)
{
    if (win_get(w, rid) == MAOS_OP_NONE)
        return;
    w->op[rid & (w->cap - 1)] = 0;
    while (w->span && w->op[w->base & (w->cap - 1)] == 0) {
        w->base++;
        w->span--;
    }
}

static void free_rxf_list(struct rxf **head, struct rxf **tail)
{
    while (*head) {
        struct rxf *f = *head;
        *head = f->next;
        free(f);
    }
    *tail = NULL;
}

static void dq_append(struct maos_ctx_priv *p, struct dnode *n);

/* The claims of maos_claim_start in flight get no answer from a lost
 * connection: each becomes an empty MAOS_DELIVERY_TASKS with code
 * MAOS_ECLOSED (claim again). */
static void aclaims_lost(struct maos_ctx_priv *p)
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

/* Forget everything that belonged to the lost connection; subscriptions
 * and queued deliveries stay. */
static void drop_connection_state(struct maos_ctx_priv *p)
{
    maos_reader_free(&p->rd);
    p->rd.err = 0;
    free_rxf_list(&p->rxq_head, &p->rxq_tail);
    free_rxf_list(&p->orph_head, &p->orph_tail);
    p->out.size = 0;
    p->out_off = 0;
    p->pending = 0;
    win_reset(&p->win);
    for (size_t i = 0; i < p->n_subs; i++)
        p->subs[i]->server_id = 0;
    aclaims_lost(p);
}

/* A connection failure: close the socket; the context is dead, or, with
 * reconnect on and a recoverable error, down (reconnecting). */
static int die(maos_ctx *c, int code, const char *fmt, ...)
{
    struct maos_ctx_priv *p = c->priv;
    va_list ap;
    va_start(ap, fmt);
    vset_msg(c, code, fmt, ap);
    va_end(ap);
    if (p) {
        /* The hooks hear fd -1 while the old socket is still open, so an
         * event loop can stop watching it cleanly; it is closed below. */
        int old = p->fd;
        p->fd = -1;
        if (recoverable(p, code)) {
            drop_connection_state(p);
            p->down_err = code;
            memcpy(p->down_why, c->errstr, sizeof p->down_why);
            if (!p->down) { /* attempts that fail later keep the schedule */
                p->down = 1;
                p->down_since = now_ms();
                p->next_attempt = p->down_since;
                p->backoff_ms = 0;
                hooks_update(p, 0);
            }
        } else {
            p->down = 0;
            p->dead = code;
            hooks_update(p, 0);
        }
        if (old >= 0)
            close(old);
    }
    return code;
}

static int die_errno(maos_ctx *c, const char *what)
{
    int e = errno;
    if (e == EPIPE || e == ECONNRESET)
        return die(c, MAOS_ECLOSED, "connection closed by the server (%s: %s)",
                   what, strerror(e));
    return die(c, MAOS_EIO, "%s: %s", what, strerror(e));
}

static int reconnect_until(maos_ctx *c, long long deadline);

/* Start of every public call: reconnect when down (blocking, until
 * connected or given up), refuse on a dead context, clear the last
 * per-call error. */
static int enter(maos_ctx *c)
{
    if (!c || !c->priv)
        return MAOS_EINVALID_ARG;
    if (c->priv->down && !c->priv->dead) {
        int rc = reconnect_until(c, -1);
        if (rc)
            return rc;
    }
    if (c->priv->dead) {
        c->err = c->priv->dead;
        return c->err;
    }
    c->err = 0;
    c->errstr[0] = '\0';
    c->priv->has_actual = 0;
    c->priv->actual = 0;
    c->priv->index = -1;
    free(c->priv->err_entry);
    c->priv->err_entry = NULL;
    return 0;
}

int maos_err_is_fatal(int err)
{
    switch (err) {
    case MAOS_ECONNECT:
    case MAOS_EIO:
    case MAOS_ECLOSED:
    case MAOS_EPROTO:
    case MAOS_ETIMEOUT:
    case MAOS_EPROTOCOL_VERSION:
    case MAOS_EHELLO_REQUIRED:
    case MAOS_EUNTRUSTED_SERVER:
        return 1;
    default:
        return 0;
    }
}

int maos_err_actual(const maos_ctx *c, int64_t *actual)
{
    if (!c || !c->priv || !c->priv->has_actual)
        return 0;
    if (actual)
        *actual = c->priv->actual;
    return 1;
}

int64_t maos_err_index(const maos_ctx *c)
{
    return c && c->priv ? c->priv->index : -1;
}

static int make_table_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, int single,
                           maos_table_page **out);

int maos_err_entry(maos_ctx *c, maos_table_page **out)
{
    if (!c || !c->priv || !out)
        return MAOS_EINVALID_ARG;
    const struct rxf *e = c->priv->err_entry;
    if (!e)
        return MAOS_ENOT_FOUND;
    struct rxf *f = malloc(sizeof *f + e->len);
    if (!f)
        return MAOS_ENOMEM;
    f->next = NULL;
    f->len = e->len;
    memcpy(f->data, e->data, e->len);
    maos_reply rep = {.entry = {f->data, (uint32_t)f->len}};
    return make_table_page(c, f, &rep, 1, out);
}

/* ---- pushes -------------------------------------------------------------- */

/* Fill ev[0..n) from a raw array of n stored records (views into it).
 * 0 or -1 when malformed. */
static int records_to_events(maos_slice items, size_t n, maos_event *ev)
{
    maos_mpr r;
    uint32_t cnt;
    maos_mpr_init(&r, items.ptr, items.len);
    if (maos_mpr_array(&r, &cnt) || cnt != n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        maos_record rec;
        maos_event *e = &ev[i];
        if (maos_record_next(&r, &rec) || rec.id.len != 16 ||
            rec.prev.len != MAOS_HASH_BYTES)
            return -1;
        e->position = rec.position;
        e->version = rec.version;
        e->time = rec.time;
        e->stream = rec.stream.ptr;
        e->stream_len = rec.stream.len;
        e->type = rec.type.ptr;
        e->type_len = rec.type.len;
        memcpy(e->id, rec.id.ptr, 16);
        memcpy(e->prev, rec.prev.ptr, MAOS_HASH_BYTES);
        e->data = rec.data.ptr;
        e->data_len = rec.data.len;
        e->meta = rec.meta.ptr;
        e->meta_len = rec.meta.len;
        e->raw = rec.raw.ptr;
        e->raw_len = rec.raw.len;
    }
    return 0;
}

static struct csub *sub_by_server_id(struct maos_ctx_priv *p, uint64_t sid)
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

static struct dnode *dq_pop(struct maos_ctx_priv *p)
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

static int hold_orphan(maos_ctx *c, const char *frame, size_t len)
{
    struct maos_ctx_priv *p = c->priv;
    struct rxf *f = malloc(sizeof *f + len);
    if (!f)
        return die(c, MAOS_ENOMEM, "out of memory receiving a push");
    f->next = NULL;
    f->len = len;
    memcpy(f->data, frame, len);
    if (p->orph_tail)
        p->orph_tail->next = f;
    else
        p->orph_head = f;
    p->orph_tail = f;
    return 0;
}

/*
 * A push frame (decoded as pu, slices into frame) arrived: queue it as a
 * delivery of its subscription, hold it while a subscribe is in flight and
 * its id is unknown, or drop it (unsubscribed).  0 or a sticky error.
 */
static int push_in(maos_ctx *c, const char *frame, size_t len, const maos_push *pu)
{
    struct maos_ctx_priv *p = c->priv;
    /* server ids start at 1; 0 marks a subscription not (yet) registered */
    struct csub *s = pu->sub ? sub_by_server_id(p, pu->sub) : NULL;
    if (!s)
        return p->sub_inflight ? hold_orphan(c, frame, len) : 0;
    if (s->channel != (pu->kind == MAOS_PUSH_MESSAGE))
        return die(c, MAOS_EPROTO, "%s push for a%s subscription",
                   maos_push_name(pu->kind), s->channel ? " channel" : "n event");
    size_t n = pu->kind == MAOS_PUSH_EVENTS ? pu->n_items : 0;
    size_t ne = pu->kind == MAOS_PUSH_ENTRIES ? pu->n_items : 0;
    if ((uint64_t)n * MIN_RECORD_BYTES > pu->items.len ||
        (uint64_t)ne * 8 > pu->items.len)
        return die(c, MAOS_EPROTO, "push declares %zu items in %u bytes", n + ne,
                   pu->items.len);
    if (ne && !s->watch)
        return die(c, MAOS_EPROTO, "entries push for a subscription that is no watch");
    struct dnode *nd = malloc(sizeof *nd + n * sizeof(maos_event) +
                              ne * sizeof(maos_entry) + len);
    if (!nd)
        return die(c, MAOS_ENOMEM, "out of memory receiving a push");
    maos_event *ev = (maos_event *)(nd + 1);
    maos_entry *en = (maos_entry *)(ev + n);
    char *copy = (char *)(en + ne);
    maos_push q;
    memcpy(copy, frame, len);
    memset(&nd->d, 0, sizeof nd->d);
    int bad = maos_push_decode(copy, len, &q) != 1 ||
              (n && records_to_events(q.items, n, ev));
    if (!bad && ne) {
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, q.items.ptr, q.items.len);
        bad = maos_mpr_array(&r, &cnt) || cnt != ne;
        for (size_t i = 0; !bad && i < ne; i++)
            bad = maos_entry_next(&r, &en[i]) != 0;
    }
    if (bad) {
        free(nd);
        return die(c, MAOS_EPROTO, "malformed %s push", maos_push_name(pu->kind));
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
    dq_append(p, nd);
    if (!p->in_process && !p->wake_asked) {
        p->wake_asked = 1;
        hooks_update(p, 0);
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
    win_del(&p->win, rep.rid);
    char why[160];
    if (maos_reply_check(&rep, MAOS_OP_CLAIM, why, sizeof why))
        return die(c, MAOS_EPROTO, "incomplete claim reply from the server: %s", why);
    size_t n = rep.ok ? rep.n_items : 0;
    if ((uint64_t)n * 8 > frame.len)
        return die(c, MAOS_EPROTO, "claim reply declares %zu tasks", n);
    struct dnode *nd = calloc(1, sizeof *nd + n * sizeof(maos_task) + frame.len);
    if (!nd)
        return die(c, MAOS_ENOMEM, "out of memory receiving a claim");
    maos_task *t = (maos_task *)(nd + 1);
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
            bad = maos_task_next(&r, &t[i]) != 0;
    }
    if (bad) {
        free(nd);
        return die(c, MAOS_EPROTO, "malformed tasks in a claim reply");
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
        hooks_update(p, 0);
    }
    return 0;
}

/* Route one whole frame: pushes to the delivery queue, replies to rxq. */
static int rxq_push(maos_ctx *c, maos_slice frame);
static int route_frame(maos_ctx *c, maos_slice frame)
{
    maos_push pu;
    int k = maos_push_decode(frame.ptr, frame.len, &pu);
    if (k < 0)
        return die(c, MAOS_EPROTO, "malformed push from the server");
    if (k == 1)
        return push_in(c, frame.ptr, frame.len, &pu);
    if (c->priv->n_aclaims) {
        int rc = aclaim_in(c, frame);
        if (rc <= 0)
            return rc;
    }
    return rxq_push(c, frame);
}

/* The subscribe in flight is settled: map the held pushes (their
 * subscription is known now) or drop them. */
static int settle_orphans(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    struct rxf *f = p->orph_head;
    int rc = 0;
    p->orph_head = p->orph_tail = NULL;
    while (f) {
        struct rxf *nx = f->next;
        maos_push pu;
        if (!rc && !p->dead && maos_push_decode(f->data, f->len, &pu) == 1)
            rc = push_in(c, f->data, f->len, &pu);
        free(f);
        f = nx;
    }
    return rc;
}

/* ---- socket waits and receive ------------------------------------------ */

/*
 * Wait for events on the socket.  Returns revents (> 0) or a sticky error:
 * MAOS_ETIMEOUT when the connect phase passes its deadline (connect +
 * hello), or, after it, when nothing happens on the socket for timeout_ms
 * (an inactivity bound: a reply that keeps coming, however slowly, is not
 * cut off).
 */
static int wait_fd(maos_ctx *c, short events)
{
    struct maos_ctx_priv *p = c->priv;
    struct pollfd pfd = {.fd = p->fd, .events = events};
    for (;;) {
        int ms = p->timeout_ms > 0 ? p->timeout_ms : -1;
        if (p->connecting) {
            long long left = p->deadline ? p->deadline - now_ms() : -1;
            ms = !p->deadline ? -1 : left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
        }
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return pfd.revents;
        if (n == 0 && p->connecting)
            return die(c, MAOS_ETIMEOUT,
                       "timed out: no answer to hello from %s within %d ms (connect timeout)",
                       p->path, p->connect_timeout_ms);
        if (n == 0)
            return die(c, MAOS_ETIMEOUT,
                       "timed out: no reply from %s for %d ms (request timeout)", p->path,
                       p->timeout_ms);
        if (errno != EINTR)
            return die_errno(c, "poll");
    }
}

static int rxq_push(maos_ctx *c, maos_slice frame)
{
    struct maos_ctx_priv *p = c->priv;
    struct rxf *f = malloc(sizeof *f + frame.len);
    if (!f)
        return die(c, MAOS_ENOMEM, "out of memory receiving a reply");
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
        int rc = route_frame(c, frame);
        if (rc)
            return rc;
    }
    if (r == MAOS_ENOMEM)
        return die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    if (r < 0)
        return die(c, MAOS_EPROTO, "bad frame from the server: %s",
                   maos_strerror(r));
    return 0;
}

/* One recv() into the reader (the socket is known or expected to be
 * readable), then drain.  *got (may be NULL): 1 when bytes were read, 0
 * when the socket had none.  0 or a connection error. */
static int rx_read(maos_ctx *c, int *got)
{
    struct maos_ctx_priv *p = c->priv;
    if (got)
        *got = 0;
    char *buf;
    long space = maos_reader_space(&p->rd, &buf, 0);
    if (space == MAOS_ENOMEM)
        return die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    if (space < 0)
        return die(c, MAOS_EPROTO, "bad frame from the server: %s",
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
            return die(c, MAOS_ECLOSED, "connection closed by the server");
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return die_errno(c, "recv");
    }
}

static int rx_read_some(maos_ctx *c)
{
    return rx_read(c, NULL);
}

/* Next frame in arrival order, blocking.  The caller owns *out. */
static int rx_take(maos_ctx *c, struct rxf **out)
{
    struct maos_ctx_priv *p = c->priv;
    while (!p->rxq_head) {
        int rc = wait_fd(c, POLLIN);
        if (rc < 0)
            return rc;
        rc = rx_read_some(c);
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

static int flush_out(maos_ctx *c)
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
            return die_errno(c, "send");
        int rev = wait_fd(c, POLLOUT | POLLIN);
        if (rev < 0)
            return rev;
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
            int rc = rx_read_some(c);
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
 * Framing of one request in `out`: frame_begin reserves the length, the
 * caller encodes, frame_end patches the length or rolls everything back
 * (so a refused request leaves no trace).
 */
static int frame_begin(maos_ctx *c, size_t *start, msgpack_packer *pk)
{
    struct maos_ctx_priv *p = c->priv;
    *start = p->out.size;
    if (msgpack_sbuffer_write(&p->out, "\0\0\0\0", 4) != 0)
        return fail(c, MAOS_ENOMEM, "out of memory encoding a request");
    msgpack_packer_init(pk, &p->out, msgpack_sbuffer_write);
    return 0;
}

static int frame_end(maos_ctx *c, size_t start, uint64_t rid, maos_op op, int enc_rc)
{
    struct maos_ctx_priv *p = c->priv;
    if (enc_rc) {
        p->out.size = start;
        return fail(c, enc_rc, "cannot encode the request: %s",
                    maos_strerror(enc_rc));
    }
    size_t len = p->out.size - start - 4;
    if (len > p->max_frame) {
        p->out.size = start;
        return fail(c, MAOS_EFRAME_TOO_LARGE,
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
        return fail(c, MAOS_ELIMIT,
                    "request exceeds the server's nesting or element limits "
                    "(%u levels, %u elements)", lim.max_depth, lim.max_elems);
    }
    if (win_add(&p->win, rid, op)) {
        p->out.size = start;
        return fail(c, MAOS_ENOMEM, "out of memory queueing a request");
    }
    maos_frame_put_len(p->out.data + start, (uint32_t)len);
    p->pending++;
    return 0;
}

static uint64_t take_rid(struct maos_ctx_priv *p)
{
    uint64_t rid = p->next_rid++;
    if (p->next_rid == 0) /* rid 0 is never used: it marks unsolicited errors */
        p->next_rid = 1;
    return rid;
}

/* Push the buffer when it is large (pipelined sends). */
static int maybe_flush(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    if (p->out.size - p->out_off >= OUT_FLUSH_BYTES)
        return flush_out(c);
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
static int take_reply(maos_ctx *c, const struct rxf *f, uint64_t want, maos_reply *rep,
                      maos_op *op)
{
    struct maos_ctx_priv *p = c->priv;
    char why[160];
    if (maos_reply_decode(f->data, f->len, rep))
        return die(c, MAOS_EPROTO, "malformed reply from the server");
    if (rep->rid == 0 && rep->ok)
        return die(c, MAOS_EPROTO, "reply without a request id");
    uint64_t rid = rep->rid ? rep->rid : want;
    maos_op o = rid ? win_get(&p->win, rid) : MAOS_OP_NONE;
    if (rep->rid && (o == MAOS_OP_NONE || (want && rep->rid != want)))
        return die(c, MAOS_EPROTO, "reply to unknown request %llu",
                   (unsigned long long)rep->rid);
    /* an error reply's fields are the same for every op */
    if (maos_reply_check(rep, o == MAOS_OP_NONE ? MAOS_OP_PING : o, why, sizeof why))
        return die(c, MAOS_EPROTO, "incomplete reply from the server: %s", why);
    if (rid)
        win_del(&p->win, rid);
    p->pending--;
    if (op)
        *op = o;
    return 0;
}

/* Send everything and take the reply of `rid` (pending was 0 before it was
 * queued, so it is the only reply that may come).  On success *f and *rep
 * are the caller's, and rep has every field a reply to the request's op
 * promises.  A refusal sets err/errstr and the details. */
static int sync_reply(maos_ctx *c, uint64_t rid, struct rxf **fout,
                      maos_reply *rep)
{
    struct rxf *f;
    int rc = flush_out(c);
    if (rc)
        return rc;
    rc = rx_take(c, &f);
    if (rc)
        return rc;
    rc = take_reply(c, f, rid, rep, NULL);
    if (rc) {
        free(f);
        return rc;
    }
    if (!rep->ok) {
        note_refusal(c, rep);
        if (rep->message.len)
            fail(c, rep->code, "%.*s", (int)rep->message.len, rep->message.ptr);
        else
            fail(c, rep->code, NULL);
        free(f);
        return rep->code ? rep->code : MAOS_EPROTO;
    }
    *fout = f;
    return 0;
}

/* Only sync calls made with nothing in flight can match their reply. */
static int sync_ready(maos_ctx *c)
{
    int rc = enter(c);
    if (rc)
        return rc;
    if (c->priv->pending)
        return fail(c, MAOS_EBUSY, "%zu pipelined replies are outstanding",
                    c->priv->pending);
    return 0;
}

/* ---- connect ------------------------------------------------------------------ */

const char *maos_default_socket(char *buf, size_t len)
{
    const char *env = getenv("MAOS_SOCKET");
    int n;
    if (!buf)
        return NULL;
    if (env && *env) {
        n = snprintf(buf, len, "%s", env);
    } else if (geteuid() == 0) {
        n = snprintf(buf, len, "/run/maos/maosd.sock");
    } else {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (xdg && *xdg)
            n = snprintf(buf, len, "%s/maos/maosd.sock", xdg);
        else
            n = snprintf(buf, len, "/tmp/maos-%u/maosd.sock", (unsigned)geteuid());
    }
    if (n < 0 || (size_t)n >= len)
        return NULL;
    return buf;
}

/*
 * Connect the socket at path, non-blocking, retrying while the listen
 * backlog is full until the connect deadline (or for ever without one).
 * The trust checks of trust.c run first on the directory and then on the
 * server's uid, before this function returns and so before any byte is
 * sent: a socket whose directory or server is not trusted is
 * MAOS_EUNTRUSTED_SERVER (sticky, never retried by reconnect).
 */
static int sock_connect(maos_ctx *c, const char *path)
{
    struct maos_ctx_priv *p = c->priv;
    struct sockaddr_un sa;
    maosc_trust trust;
    char why[sizeof c->errstr];
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return die(c, MAOS_ECONNECT, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);

    int rc = maosc_trust_path(path, geteuid(), p->server_uid, MAOSC_SYSTEM_SOCKET_DIR,
                              &trust, why, sizeof why);
    if (rc)
        return die(c, rc, "%s", why);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return die(c, MAOS_ECONNECT, "socket: %s", strerror(errno));
    p->fd = fd;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EINPROGRESS) { /* not done by AF_UNIX today; handled anyway */
            int rev = wait_fd(c, POLLOUT);
            if (rev < 0)
                return rev;
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)
                return die(c, MAOS_ECONNECT, "cannot connect to %s: %s", path,
                           strerror(soerr ? soerr : errno));
            break;
        }
        if (e == EAGAIN) { /* backlog full: the daemon is busy accepting */
            if (p->deadline && now_ms() >= p->deadline)
                return die(c, MAOS_ECONNECT, "cannot connect to %s: server busy for %d ms",
                           path, p->connect_timeout_ms);
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        return die(c, MAOS_ECONNECT, "cannot connect to %s: %s", path, strerror(e));
    }
    rc = maosc_trust_peer(fd, &trust, path, why, sizeof why);
    if (rc)
        return die(c, rc, "%s", why);
    return 0;
}

static int handshake(maos_ctx *c, const char *client_name)
{
    struct maos_ctx_priv *p = c->priv;
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    char why[sizeof c->errstr];
    uint64_t rid = take_rid(p);
    int rc = frame_begin(c, &start, &pk);
    if (!rc)
        rc = frame_end(c, start, rid, MAOS_OP_HELLO,
                       maos_enc_hello(&pk, rid, MAOS_PROTOCOL_VERSION, client_name));
    if (!rc)
        rc = sync_reply(c, rid, &f, &rep);
    if (rc) {
        /* Whatever failed, a context without a handshake is dead (or,
         * reconnecting, down again). */
        if (p->dead || p->fd < 0)
            return rc;
        memcpy(why, c->errstr, sizeof why);
        return die(c, rc, "hello refused: %s", why);
    }
    if (rep.version != MAOS_PROTOCOL_VERSION) {
        free(f);
        return die(c, MAOS_EPROTOCOL_VERSION,
                   "server speaks protocol %llu, this client %d",
                   (unsigned long long)rep.version, MAOS_PROTOCOL_VERSION);
    }
    p->max_frame = rep.max_frame ? rep.max_frame : MAOS_DEFAULT_MAX_FRAME;
    snprintf(p->server, sizeof p->server, "%.*s", (int)rep.server.len,
             rep.server.ptr ? rep.server.ptr : "");
    /* Replies may exceed the request limit by the envelope slack. */
    uint64_t rmax = (uint64_t)p->max_frame + MAOS_REPLY_SLACK;
    p->rd.max_frame = rmax > UINT32_MAX ? UINT32_MAX : (uint32_t)rmax;
    p->ever_connected = 1;
    free(f);
    return 0;
}

/* Connect, check trust and say hello within the connect timeout (one
 * deadline for the whole phase).  0 or the error (the context is dead, or
 * down when reconnecting). */
static int open_conn(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    int rc;
    p->connecting = 1;
    p->deadline = p->connect_timeout_ms ? now_ms() + p->connect_timeout_ms : 0;
    rc = sock_connect(c, p->path);
    if (!rc)
        rc = handshake(c, p->client_name);
    p->connecting = 0;
    p->deadline = 0;
    return rc;
}

/* MAOS_SERVER_UID: a decimal uid, or unset/empty (0). */
static int env_server_uid(maos_ctx *c, uid_t *out)
{
    const char *v = getenv("MAOS_SERVER_UID");
    char *end;
    *out = 0;
    if (!v || !*v)
        return 0;
    errno = 0;
    unsigned long u = strtoul(v, &end, 10);
    if (*v < '0' || *v > '9' || *end || errno || u >= (unsigned long)(uid_t)-1)
        return die(c, MAOS_ECONNECT, "MAOS_SERVER_UID='%.64s' is not a numeric uid", v);
    *out = (uid_t)u;
    return 0;
}

maos_ctx *maos_connect_with(const maos_options *opt)
{
    maos_options o = {0};
    char defpath[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
    if (opt)
        o = *opt;
    maos_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    struct maos_ctx_priv *p = calloc(1, sizeof *p);
    if (!p) {
        free(c);
        return NULL;
    }
    c->priv = p;
    p->fd = -1;
    p->next_rid = 1;
    p->index = -1;
    /* 0: the default; negative (MAOS_TIMEOUT_NONE): none, stored as 0 */
    p->timeout_ms = o.timeout_ms > 0    ? o.timeout_ms
                    : o.timeout_ms == 0 ? MAOS_REQUEST_TIMEOUT_DEFAULT_MS
                                        : 0;
    p->connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms
                            : o.connect_timeout_ms < 0 ? 0
                            : o.timeout_ms > 0         ? o.timeout_ms
                                                       : MAOS_CONNECT_TIMEOUT_DEFAULT_MS;
    p->reconnect = o.reconnect ? 1 : 0;
    p->reconnect_max_ms = o.reconnect_max_ms > 0 ? o.reconnect_max_ms
                                                 : MAOS_RECONNECT_MAX_MS;
    /* Until hello tells us, assume the default limits. */
    p->max_frame = MAOS_DEFAULT_MAX_FRAME;
    msgpack_sbuffer_init(&p->out);
    maos_reader_init(&p->rd, MAOS_DEFAULT_MAX_FRAME + MAOS_REPLY_SLACK);

    const char *path = o.path;
    if (!path || !*path) {
        path = maos_default_socket(defpath, sizeof defpath);
        if (!path) {
            die(c, MAOS_ECONNECT, "default socket path too long");
            return c;
        }
    }
    p->path = strdup(path);
    p->client_name = strdup(o.client_name ? o.client_name : "libmaos-client");
    if (!p->path || !p->client_name) {
        die(c, MAOS_ENOMEM, "out of memory");
        return c;
    }
    p->server_uid = o.server_uid;
    if (!p->server_uid && env_server_uid(c, &p->server_uid))
        return c;
    open_conn(c);
    return c;
}

maos_ctx *maos_connect(const char *path)
{
    maos_options o = {.path = path};
    return maos_connect_with(&o);
}

maos_ctx *maos_connect_timeout(const char *path, int timeout_ms)
{
    maos_options o = {.path = path, .timeout_ms = timeout_ms};
    return maos_connect_with(&o);
}

void maos_free(maos_ctx *c)
{
    if (!c)
        return;
    struct maos_ctx_priv *p = c->priv;
    if (p) {
        if (p->fd >= 0)
            close(p->fd);
        msgpack_sbuffer_destroy(&p->out);
        maos_reader_free(&p->rd);
        free_rxf_list(&p->rxq_head, &p->rxq_tail);
        free_rxf_list(&p->orph_head, &p->orph_tail);
        while (p->dq_head)
            free(dq_pop(p));
        for (size_t i = 0; i < p->n_subs; i++)
            free(p->subs[i]);
        free(p->subs);
        free(p->agent_mem);
        free(p->err_entry);
        free(p->path);
        free(p->client_name);
        free(p->win.op);
        free(p);
    }
    free(c);
}

int maos_fd(const maos_ctx *c)
{
    return c && c->priv && !c->priv->dead ? c->priv->fd : -1;
}

int maos_set_timeout(maos_ctx *c, int timeout_ms)
{
    if (!c || !c->priv || timeout_ms < MAOS_TIMEOUT_NONE)
        return MAOS_EINVALID_ARG;
    c->priv->timeout_ms = timeout_ms > 0    ? timeout_ms
                          : timeout_ms == 0 ? MAOS_REQUEST_TIMEOUT_DEFAULT_MS
                                            : 0;
    return 0;
}

uint32_t maos_max_frame(const maos_ctx *c)
{
    return c && c->priv && c->priv->server[0] ? c->priv->max_frame : 0;
}

const char *maos_server_name(const maos_ctx *c)
{
    return c && c->priv ? c->priv->server : "";
}

size_t maos_pending(const maos_ctx *c)
{
    return c && c->priv ? c->priv->pending : 0;
}

int maos_flush(maos_ctx *c)
{
    int rc = enter(c);
    return rc ? rc : flush_out(c);
}

/* ---- request building --------------------------------------------------------- */

static maos_slice cstr(const char *s)
{
    maos_slice sl = {s, s ? (uint32_t)strlen(s) : 0};
    return sl;
}

/* Check the caller's text and msgpack before anything is queued, so that a
 * bad argument is a per-call error and never a broken frame (which the
 * server answers by closing the connection). */
static int check_str(maos_ctx *c, const char *what, const char *s)
{
    if (!s)
        return fail(c, MAOS_EINVALID_ARG, "%s is NULL", what);
    if (strlen(s) > UINT32_MAX / 2)
        return fail(c, MAOS_EINVALID_ARG, "%s is too long", what);
    return 0;
}

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
            return fail(c, MAOS_EINVALID_ARG, "event %zu: type is NULL", i);
        if (e->id) {
            memcpy(x->id, e->id, 16);
            x->has_id = 1;
        }
        x->type = cstr(e->type);
        if (e->data_len) {
            if (!e->data || e->data_len > UINT32_MAX ||
                maos_mp_check(e->data, e->data_len, &lim) != 0)
                return fail(c, MAOS_EINVALID_ARG,
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
                return fail(c, MAOS_EINVALID_ARG,
                            "event %zu: meta is not one well-formed msgpack map", i);
            x->meta.ptr = e->meta;
            x->meta.len = (uint32_t)e->meta_len;
        }
    }
    return 0;
}

/* Queue an append or a txn.  appends[0..n): n == 1 and !txn for append. */
static int queue_appends(maos_ctx *c, int txn, const maos_txn_append *ap,
                         size_t n, uint64_t *rid_out)
{
    struct maos_ctx_priv *p = c->priv;
    size_t total = 0;
    if (!ap || n == 0 || n > UINT32_MAX)
        return fail(c, MAOS_EINVALID_ARG, "no appends given");
    for (size_t i = 0; i < n; i++) {
        int rc = check_str(c, "stream", ap[i].stream);
        if (rc)
            return rc;
        if (!ap[i].events || ap[i].n_events == 0 || ap[i].n_events > UINT32_MAX)
            return fail(c, MAOS_EINVALID_ARG, "append %zu: no events given", i);
        if (ap[i].expect < MAOS_EXPECT_EXISTS)
            return fail(c, MAOS_EINVALID_ARG, "append %zu: bad expected version %lld",
                        i, (long long)ap[i].expect);
        total += ap[i].n_events;
    }
    maos_append_in *in = calloc(n, sizeof *in);
    maos_event_in *evs = calloc(total, sizeof *evs);
    if (!in || !evs) {
        free(in);
        free(evs);
        return fail(c, MAOS_ENOMEM, "out of memory");
    }
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        in[i].stream = cstr(ap[i].stream);
        in[i].expect = ap[i].expect;
        in[i].n_events = (uint32_t)ap[i].n_events;
        in[i].events = evs + k;
        rc = fill_events(c, ap[i].events, ap[i].n_events, evs + k);
        if (rc && txn)
            snprintf(c->errstr + strlen(c->errstr),
                     sizeof c->errstr - strlen(c->errstr), " (append %zu)", i);
        k += ap[i].n_events;
    }
    if (!rc) {
        msgpack_packer pk;
        size_t start;
        uint64_t rid = take_rid(p);
        rc = frame_begin(c, &start, &pk);
        if (!rc) {
            int enc = txn ? maos_enc_txn(&pk, rid, in, (uint32_t)n)
                          : maos_enc_append(&pk, rid, &in[0]);
            rc = frame_end(c, start, rid, txn ? MAOS_OP_TXN : MAOS_OP_APPEND, enc);
        }
        if (!rc && rid_out)
            *rid_out = rid;
    }
    free(evs);
    free(in);
    return rc;
}

/* Fill a caller's maos_append_info from a wire result (ids copied into the
 * caller's array up to ids_cap). */
static int copy_result(maos_ctx *c, const maos_append_result *r,
                       maos_append_info *out)
{
    if (r->ids.len != (uint64_t)r->count * 16)
        return die(c, MAOS_EPROTO, "append result: %u ids in %u bytes",
                   r->count, r->ids.len);
    if (!out)
        return 0;
    out->version = r->first_version;
    out->position = r->first_position;
    out->count = r->count;
    out->duplicate = r->duplicate;
    if (out->ids && out->ids_cap) {
        size_t k = r->count < out->ids_cap ? r->count : out->ids_cap;
        memcpy(out->ids, r->ids.ptr, k * 16);
    }
    return 0;
}

/* ---- synchronous writes ------------------------------------------------------- */

int maos_ping(maos_ctx *c)
{
    int rc = sync_ready(c);
    if (rc)
        return rc;
    msgpack_packer pk;
    size_t start;
    uint64_t rid = take_rid(c->priv);
    struct rxf *f;
    maos_reply rep;
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = frame_end(c, start, rid, MAOS_OP_PING, maos_enc_simple(&pk, rid, MAOS_OP_PING))) ||
        (rc = sync_reply(c, rid, &f, &rep)))
        return rc;
    free(f);
    return 0;
}

int maos_append(maos_ctx *c, const char *stream, int64_t expect,
                const maos_event_spec *events, size_t n, maos_append_info *out)
{
    maos_txn_append a = {stream, expect, events, n};
    uint64_t rid;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = queue_appends(c, 0, &a, 1, &rid)) ||
        (rc = sync_reply(c, rid, &f, &rep)))
        return rc;
    maos_append_info tmp;
    if (out)
        tmp = *out;
    rc = copy_result(c, &rep.result, out ? &tmp : NULL);
    if (!rc && out)
        *out = tmp;
    free(f);
    return rc;
}

int maos_txn(maos_ctx *c, const maos_txn_append *appends, size_t n,
             maos_append_info *out)
{
    uint64_t rid;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = queue_appends(c, 1, appends, n, &rid)) ||
        (rc = sync_reply(c, rid, &f, &rep)))
        return rc;
    if (rep.n_results != n) {
        free(f);
        return die(c, MAOS_EPROTO, "txn reply has %u results for %zu appends",
                   rep.n_results, n);
    }
    maos_mpr r;
    uint32_t cnt;
    maos_mpr_init(&r, rep.results.ptr, rep.results.len);
    if (maos_mpr_array(&r, &cnt) || cnt != n) {
        free(f);
        return die(c, MAOS_EPROTO, "malformed txn reply");
    }
    /* Validate everything before writing *out (written only on success). */
    maos_append_result res;
    maos_mpr r2 = r;
    for (size_t i = 0; i < n; i++) {
        if (maos_append_result_next(&r2, &res) ||
            res.ids.len != (uint64_t)res.count * 16) {
            free(f);
            return die(c, MAOS_EPROTO, "malformed txn result %zu", i);
        }
    }
    for (size_t i = 0; out && i < n; i++) {
        maos_append_result_next(&r, &res);
        copy_result(c, &res, &out[i]);
    }
    free(f);
    return 0;
}

/* ---- reads ---------------------------------------------------------------------- */

static uint32_t clamp_limit(uint32_t limit)
{
    if (limit == 0)
        return MAOS_READ_LIMIT_DEFAULT;
    return limit > MAOS_READ_LIMIT_MAX ? MAOS_READ_LIMIT_MAX : limit;
}

/* Build a page from a read/read_all reply; takes ownership of f. */
static int make_page(maos_ctx *c, struct rxf *f, const maos_reply *rep,
                     maos_page **out)
{
    size_t n = rep->n_items;
    if ((uint64_t)n * MIN_RECORD_BYTES > rep->items.len) {
        free(f);
        return die(c, MAOS_EPROTO, "reply declares %zu events in %u bytes", n,
                   rep->items.len);
    }
    maos_page *pg = calloc(1, sizeof *pg + n * sizeof(maos_event));
    if (!pg) {
        free(f);
        return fail(c, MAOS_ENOMEM, "out of memory for a page of %zu events", n);
    }
    pg->events = (maos_event *)(pg + 1);
    if (records_to_events(rep->items, n, pg->events))
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
    return die(c, MAOS_EPROTO, "malformed event record in a reply");
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
    msgpack_packer pk;
    size_t start;
    uint64_t rid;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "stream", stream)))
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = frame_end(c, start, rid, MAOS_OP_READ,
                        maos_enc_read(&pk, rid, cstr(stream), from != MAOS_FROM_START,
                                      from, backward ? 1 : 0, clamp_limit(limit)))) ||
        (rc = sync_reply(c, rid, &f, &rep)))
        return rc;
    return make_page(c, f, &rep, out);
}

int maos_read_all(maos_ctx *c, const maos_read_filter *fl, uint64_t from,
                  int backward, uint32_t limit, maos_page **out)
{
    maos_filter mf;
    maos_slice *types = NULL;
    msgpack_packer pk;
    size_t start;
    uint64_t rid;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    memset(&mf, 0, sizeof mf);
    if (fl) {
        if (fl->n_types && !fl->types)
            return fail(c, MAOS_EINVALID_ARG, "n_types without types");
        if (fl->n_types > UINT32_MAX)
            return fail(c, MAOS_ELIMIT, "too many types");
        mf.stream = cstr(fl->stream);
        mf.prefix = cstr(fl->prefix);
        mf.category = cstr(fl->category);
        if (fl->n_types) {
            types = calloc(fl->n_types, sizeof *types);
            if (!types)
                return fail(c, MAOS_ENOMEM, "out of memory");
            for (size_t i = 0; i < fl->n_types; i++) {
                if (!fl->types[i]) {
                    free(types);
                    return fail(c, MAOS_EINVALID_ARG, "types[%zu] is NULL", i);
                }
                types[i] = cstr(fl->types[i]);
            }
            mf.types = types;
            mf.n_types = (uint32_t)fl->n_types;
        }
        mf.has_since = fl->has_since;
        mf.since = fl->since;
        mf.has_until = fl->has_until;
        mf.until = fl->until;
    }
    rid = take_rid(c->priv);
    rc = frame_begin(c, &start, &pk);
    if (!rc)
        rc = frame_end(c, start, rid, MAOS_OP_READ_ALL,
                       maos_enc_read_all(&pk, rid, from != MAOS_FROM_START, from,
                                         backward ? 1 : 0, clamp_limit(limit), &mf));
    free(types);
    if (rc || (rc = sync_reply(c, rid, &f, &rep)))
        return rc;
    return make_page(c, f, &rep, out);
}

int maos_streams(maos_ctx *c, const char *prefix, const char *after,
                 uint32_t limit, maos_stream_page **out)
{
    msgpack_packer pk;
    size_t start;
    uint64_t rid;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = frame_end(c, start, rid, MAOS_OP_STREAMS, maos_enc_streams(&pk, rid, cstr(prefix), cstr(after),
                                                   clamp_limit(limit)))) ||
        (rc = sync_reply(c, rid, &f, &rep)))
        return rc;

    size_t n = rep.n_items;
    if ((uint64_t)n * MIN_STREAM_INFO_BYTES > rep.items.len) {
        free(f);
        return die(c, MAOS_EPROTO, "reply declares %zu streams in %u bytes", n,
                   rep.items.len);
    }
    int has_next = rep.next_kind == MAOS_NEXT_STR;
    size_t nextlen = has_next ? rep.next_s.len : 0;
    maos_stream_page *pg = calloc(1, sizeof *pg + n * sizeof(maos_stream_entry) +
                                         nextlen + 1);
    if (!pg) {
        free(f);
        return fail(c, MAOS_ENOMEM, "out of memory");
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
    return die(c, MAOS_EPROTO, "malformed streams reply");
}

void maos_stream_page_free(maos_stream_page *p)
{
    if (!p)
        return;
    free(p->mem_);
    free(p);
}

int maos_stats_get(maos_ctx *c, maos_stats_info *out)
{
    msgpack_packer pk;
    size_t start;
    uint64_t rid;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = frame_end(c, start, rid, MAOS_OP_STATS,
                                  maos_enc_simple(&pk, rid, MAOS_OP_STATS))) ||
        (rc = sync_reply(c, rid, &f, &rep)))
        return rc;
    if (!rep.has_stats) {
        free(f);
        return die(c, MAOS_EPROTO, "stats reply without stats");
    }
    memset(out, 0, sizeof *out);
#define COPY_STAT_(name) out->name = rep.stats.name;
    MAOS_STATS_MAP(COPY_STAT_)
#undef COPY_STAT_
    snprintf(out->server, sizeof out->server, "%.*s", (int)rep.stats.server.len,
             rep.stats.server.ptr ? rep.stats.server.ptr : "");
    snprintf(out->state, sizeof out->state, "%.*s", (int)rep.stats.state.len,
             rep.stats.state.ptr ? rep.stats.state.ptr : "");
    snprintf(out->durability, sizeof out->durability, "%.*s",
             (int)rep.stats.durability.len,
             rep.stats.durability.ptr ? rep.stats.durability.ptr : "");
    snprintf(out->data_dir, sizeof out->data_dir, "%.*s", (int)rep.stats.data_dir.len,
             rep.stats.data_dir.ptr ? rep.stats.data_dir.ptr : "");
    if (rep.stats.head_hash.len != sizeof out->head_hash) {
        free(f);
        return die(c, MAOS_EPROTO, "stats reply without a 32-byte head_hash");
    }
    memcpy(out->head_hash, rep.stats.head_hash.ptr, sizeof out->head_hash);
    free(f);
    return 0;
}

/* ---- pipelining ---------------------------------------------------------------- */

int maos_append_send(maos_ctx *c, const char *stream, int64_t expect,
                     const maos_event_spec *events, size_t n, uint64_t *rid)
{
    maos_txn_append a = {stream, expect, events, n};
    int rc = enter(c);
    if (rc || (rc = queue_appends(c, 0, &a, 1, rid)))
        return rc;
    return maybe_flush(c);
}

int maos_txn_send(maos_ctx *c, const maos_txn_append *appends, size_t n,
                  uint64_t *rid)
{
    int rc = enter(c);
    if (rc || (rc = queue_appends(c, 1, appends, n, rid)))
        return rc;
    return maybe_flush(c);
}

static void set_msg_result(maos_append_info *dst, const maos_append_result *r,
                           struct rxf *f)
{
    dst->version = r->first_version;
    dst->position = r->first_position;
    dst->count = r->count;
    dst->duplicate = r->duplicate;
    /* The ids are a view into the message's own (writable) frame copy. */
    dst->ids = (uint8_t (*)[16])(f->data + (r->ids.ptr - f->data));
    dst->ids_cap = r->count;
    if (r->count == 0)
        dst->ids = NULL;
}

int maos_reply_recv(maos_ctx *c, maos_reply_msg **out)
{
    struct maos_ctx_priv *p;
    struct rxf *f;
    maos_reply rep;
    int rc = enter(c);
    if (rc)
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    p = c->priv;
    if (p->pending == 0) {
        *out = NULL;
        return 0;
    }
    if ((rc = flush_out(c)) || (rc = rx_take(c, &f)))
        return rc;
    maos_op op;
    if ((rc = take_reply(c, f, 0, &rep, &op))) {
        free(f);
        return rc;
    }

    /* Only appends and txns are pipelined; an rid-0 error (op unknown) is
     * an error reply, whose fields take_reply has checked. */
    size_t nres = 0;
    maos_mpr r;
    if (rep.ok) {
        if (op == MAOS_OP_TXN) {
            uint32_t cnt;
            nres = rep.n_results;
            maos_mpr_init(&r, rep.results.ptr, rep.results.len);
            if (nres == 0 || (uint64_t)nres * MIN_STREAM_INFO_BYTES > rep.results.len ||
                maos_mpr_array(&r, &cnt) || cnt != nres) {
                free(f);
                return die(c, MAOS_EPROTO, "malformed txn reply");
            }
        } else if (op == MAOS_OP_APPEND) {
            nres = 1;
        } else {
            free(f);
            return die(c, MAOS_EPROTO, "unexpected %s reply", maos_op_name(op));
        }
    }
    size_t msglen = rep.ok ? 0 : rep.message.len;
    maos_reply_msg *m = calloc(1, sizeof *m + nres * sizeof(maos_append_info) +
                                      msglen + 1);
    if (!m) {
        free(f);
        return die(c, MAOS_ENOMEM, "out of memory receiving a reply");
    }
    m->results = nres ? (maos_append_info *)(m + 1) : NULL;
    char *msg = (char *)(m + 1) + nres * sizeof(maos_append_info);
    if (msglen)
        memcpy(msg, rep.message.ptr, msglen);
    msg[msglen] = '\0';
    m->errstr = msg;
    m->rid = rep.rid;
    m->index = -1;
    m->mem_ = f;
    if (!rep.ok) {
        m->code = rep.code ? rep.code : MAOS_EPROTO;
        m->has_actual = rep.has_actual;
        m->actual = rep.actual;
        m->index = rep.index;
    } else if (op == MAOS_OP_TXN) {
        for (size_t i = 0; i < nres; i++) {
            maos_append_result res;
            /* every field required, ids == 16 * count (proto checks) */
            if (maos_append_result_next(&r, &res)) {
                maos_reply_msg_free(m);
                return die(c, MAOS_EPROTO, "malformed txn result %zu", i);
            }
            set_msg_result(&m->results[i], &res, f);
        }
    } else {
        set_msg_result(&m->results[0], &rep.result, f);
    }
    m->n_results = nres;
    *out = m;
    return 0;
}

void maos_reply_msg_free(maos_reply_msg *m)
{
    if (!m)
        return;
    free(m->mem_);
    free(m);
}

/* ---- subscriptions ---------------------------------------------------------------- */

void maos_delivery_free(maos_delivery *d)
{
    if (d)
        free(d->mem_); /* the node that holds d */
}

size_t maos_queued(const maos_ctx *c)
{
    return c && c->priv ? c->priv->dq_len : 0;
}

/* Copy a filter (event subscription) or a pattern (channel) into one new
 * csub block: the struct, the types array, then NUL-terminated strings. */
static int csub_new(maos_ctx *c, const maos_read_filter *fl, const char *pattern,
                    struct csub **out)
{
    const char *strs[3] = {NULL, NULL, NULL};
    size_t nt = 0, need = 0;
    if (fl) {
        if (fl->n_types && !fl->types)
            return fail(c, MAOS_EINVALID_ARG, "n_types without types");
        if (fl->n_types > UINT32_MAX)
            return fail(c, MAOS_ELIMIT, "too many types");
        nt = fl->n_types;
        strs[0] = fl->stream;
        strs[1] = fl->prefix;
        strs[2] = fl->category;
        for (size_t i = 0; i < nt; i++) {
            if (!fl->types[i])
                return fail(c, MAOS_EINVALID_ARG, "types[%zu] is NULL", i);
            if (strlen(fl->types[i]) > UINT32_MAX / 2)
                return fail(c, MAOS_EINVALID_ARG, "types[%zu] is too long", i);
            need += strlen(fl->types[i]) + 1;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (strs[i] && strlen(strs[i]) > UINT32_MAX / 2)
            return fail(c, MAOS_EINVALID_ARG, "filter string too long");
        need += strs[i] ? strlen(strs[i]) + 1 : 0;
    }
    if (pattern) {
        int rc = check_str(c, "pattern", pattern);
        if (rc)
            return rc;
        need += strlen(pattern) + 1;
    }
    struct csub *s = calloc(1, sizeof *s + nt * sizeof(maos_slice) + need);
    if (!s)
        return fail(c, MAOS_ENOMEM, "out of memory");
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

/*
 * Subscribe s on the current connection (new, or again after a reconnect)
 * and learn its server id and, for events, its first position.  s is in
 * p->subs already, so that pushes held meanwhile can be mapped to it.
 * Gives s its caller id on the first success.
 */
static int sub_register(maos_ctx *c, struct csub *s, int from_kind, uint64_t from)
{
    struct maos_ctx_priv *p = c->priv;
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    uint64_t rid = take_rid(p);
    int rc = frame_begin(c, &start, &pk);
    if (!rc && s->watch)
        rc = frame_end(c, start, rid, MAOS_OP_WATCH,
                       maos_enc_watch(&pk, rid, s->table, s->key_prefix, from_kind, from));
    else if (!rc)
        rc = frame_end(c, start, rid,
                       s->channel ? MAOS_OP_SUBSCRIBE_CHANNEL : MAOS_OP_SUBSCRIBE,
                       s->channel ? maos_enc_subscribe_channel(&pk, rid, s->pattern)
                                  : maos_enc_subscribe(&pk, rid, &s->filter, from_kind,
                                                       from));
    if (rc)
        return rc;
    p->sub_inflight = 1;
    rc = sync_reply(c, rid, &f, &rep);
    p->sub_inflight = 0;
    if (rc) {
        free_rxf_list(&p->orph_head, &p->orph_tail);
        return rc;
    }
    if (s->watch) /* changes after the reply's revision */
        rep.from = rep.revision + 1;
    if (rep.sub == 0 || sub_by_server_id(p, rep.sub) || (!s->channel && rep.from == 0)) {
        free(f);
        free_rxf_list(&p->orph_head, &p->orph_tail);
        return die(c, MAOS_EPROTO, "bad subscribe reply (sub %llu, from %llu)",
                   (unsigned long long)rep.sub, (unsigned long long)rep.from);
    }
    free(f);
    s->server_id = rep.sub;
    if (!s->channel)
        s->next = rep.from;
    if (!s->id)
        s->id = ++p->last_sub_id;
    /* before the held pushes are taken: they may hold the last page */
    s->entries_open = s->watch && from_kind == MAOS_WATCH_FROM_ENTRIES;
    s->entries_pages = 0;
    return settle_orphans(c);
}

/* Add s to the table and subscribe it; on failure s is freed. */
static int sub_add(maos_ctx *c, struct csub *s, int from_kind, uint64_t from,
                   uint64_t *sub)
{
    struct maos_ctx_priv *p = c->priv;
    if (p->n_subs == p->cap_subs) {
        size_t cap = p->cap_subs ? p->cap_subs * 2 : 8;
        struct csub **ns = realloc(p->subs, cap * sizeof *ns);
        if (!ns) {
            free(s);
            return fail(c, MAOS_ENOMEM, "out of memory");
        }
        p->subs = ns;
        p->cap_subs = cap;
    }
    p->subs[p->n_subs++] = s;
    if (!s->watch && from_kind == MAOS_FROM_VERSION) {
        s->waiting = 1;
        s->wait_version = from;
    }
    int rc = sub_register(c, s, from_kind, from);
    if (rc) {
        size_t i = 0;
        while (i < p->n_subs && p->subs[i] != s)
            i++;
        if (i < p->n_subs) {
            memmove(&p->subs[i], &p->subs[i + 1], (p->n_subs - i - 1) * sizeof *p->subs);
            p->n_subs--;
        }
        free(s);
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
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (from_kind != MAOS_FROM_POSITION && from_kind != MAOS_FROM_VERSION &&
        from_kind != MAOS_FROM_LIVE)
        return fail(c, MAOS_EINVALID_ARG, "bad from_kind %d", from_kind);
    if (from_kind == MAOS_FROM_VERSION && (!f || !f->stream || !*f->stream))
        return fail(c, MAOS_EINVALID_ARG, "MAOS_FROM_VERSION needs an exact stream");
    if ((rc = csub_new(c, f, NULL, &s)))
        return rc;
    return sub_add(c, s, from_kind, from, sub);
}

int maos_subscribe_channel(maos_ctx *c, const char *pattern, uint64_t *sub)
{
    struct csub *s;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!pattern || !*pattern)
        return fail(c, MAOS_EINVALID_ARG, "pattern is NULL or empty");
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
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    p = c->priv;
    size_t i = sub_index(p, sub);
    if (i == SIZE_MAX)
        return fail(c, MAOS_ENOT_FOUND, "no subscription %llu on this context",
                    (unsigned long long)sub);
    /* Gone locally first: its pushes in flight are dropped as unknown. */
    uint64_t sid = p->subs[i]->server_id;
    free(p->subs[i]);
    memmove(&p->subs[i], &p->subs[i + 1], (p->n_subs - i - 1) * sizeof *p->subs);
    p->n_subs--;
    dq_purge(p, sub);
    if (!sid)
        return 0;
    uint64_t rid = take_rid(p);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = frame_end(c, start, rid, MAOS_OP_UNSUBSCRIBE,
                                  maos_enc_unsubscribe(&pk, rid, sid))))
        return rc;
    rc = sync_reply(c, rid, &f, &rep);
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

/* One request whose reply carries fields only; *rep valid until *f is
 * freed. */
static int field_call(maos_ctx *c, uint64_t rid, maos_op op, size_t start, int enc_rc,
                      struct rxf **f, maos_reply *rep)
{
    int rc = frame_end(c, start, rid, op, enc_rc);
    return rc ? rc : sync_reply(c, rid, f, rep);
}

int maos_publish(maos_ctx *c, const char *channel, const void *payload, size_t len,
                 uint64_t *receivers)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    maos_slice pl = {NULL, 0};
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "channel", channel)))
        return rc;
    if (len) {
        maos_limits lim = {0};
        maos_limits_defaults(&lim);
        if (!payload || len > UINT32_MAX || maos_mp_check(payload, len, &lim) != 0)
            return fail(c, MAOS_EINVALID_ARG,
                        "payload is not one well-formed msgpack value");
        pl.ptr = payload;
        pl.len = (uint32_t)len;
    }
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_PUBLISH, start, maos_enc_publish(&pk, rid, cstr(channel), pl), &f,
                         &rep)))
        return rc;
    if (receivers)
        *receivers = rep.receivers;
    free(f);
    return 0;
}

int maos_checkpoint_save(maos_ctx *c, const char *name, uint64_t position)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "name", name)))
        return rc;
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_CHECKPOINT_SAVE, start,
                         maos_enc_checkpoint_save(&pk, rid, cstr(name), position), &f,
                         &rep)))
        return rc;
    free(f);
    return 0;
}

int maos_checkpoint_get(maos_ctx *c, const char *name, uint64_t *position)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "name", name)))
        return rc;
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_CHECKPOINT_GET, start, maos_enc_checkpoint_get(&pk, rid, cstr(name)),
                         &f, &rep)))
        return rc;
    if (position)
        *position = rep.position;
    free(f);
    return 0;
}

static int agent_send(maos_ctx *c, uint64_t *revision);

/* ---- reconnect ------------------------------------------------------------------- */

static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One attempt: connect, hello, re-subscribe everything.  0 (up again) or
 * the error (down again, or dead). */
static int reconnect_once(maos_ctx *c)
{
    struct maos_ctx_priv *p = c->priv;
    int rc;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    drop_connection_state(p);
    if ((rc = open_conn(c)))
        return rc;
    if (p->agent_mem && (rc = agent_send(c, NULL))) {
        char why[sizeof c->errstr];
        if (p->dead || p->fd < 0)
            return rc;
        memcpy(why, c->errstr, sizeof why);
        return die(c, rc, "registering agent %.*s again was refused: %s",
                   (int)p->agent.id.len, p->agent.id.ptr, why);
    }
    for (size_t i = 0; i < p->n_subs; i++) {
        struct csub *s = p->subs[i];
        rc = s->watch && s->entries_open
                 ? sub_register(c, s, MAOS_WATCH_FROM_ENTRIES, 0)
             : s->watch   ? sub_register(c, s, MAOS_WATCH_FROM_REVISION, s->next - 1)
             : s->waiting ? sub_register(c, s, MAOS_FROM_VERSION, s->wait_version)
                          : sub_register(c, s, MAOS_FROM_POSITION, s->next);
        if (rc) {
            char why[sizeof c->errstr];
            if (p->dead || p->fd < 0)
                return rc;
            memcpy(why, c->errstr, sizeof why);
            return die(c, rc, "re-subscribing subscription %llu was refused: %s",
                       (unsigned long long)s->id, why);
        }
    }
    p->down = 0;
    p->backoff_ms = 0;
    p->reconnects++;
    c->err = 0;
    c->errstr[0] = '\0';
    hooks_update(p, p->dq_head ? 0 : -1);
    return 0;
}

/*
 * While down: attempt when the backoff allows, sleeping in between, until
 * connected (0), given up (the dead error), or, with deadline >= 0 (a
 * monotonic ms time), the deadline passed (MAOS_ETIMEOUT; still down, err
 * untouched by the wait itself).  It gives up only after an attempt failed
 * reconnect_max_ms or more after the loss, so a caller that comes back
 * late still gets one try.
 */
static int reconnect_until(maos_ctx *c, long long deadline)
{
    struct maos_ctx_priv *p = c->priv;
    while (p->down && !p->dead) {
        long long now = now_ms();
        if (now < p->next_attempt) {
            if (deadline >= 0 && deadline < p->next_attempt) {
                if (deadline > now)
                    sleep_ms(deadline - now);
                return MAOS_ETIMEOUT;
            }
            sleep_ms(p->next_attempt - now);
            continue;
        }
        if (reconnect_once(c) == 0)
            return 0;
        if (p->dead)
            return p->dead;
        now = now_ms();
        if (now - p->down_since >= p->reconnect_max_ms) {
            int code = p->down_err ? p->down_err : MAOS_ECONNECT;
            p->down = 0;
            p->dead = code;
            c->err = code;
            snprintf(c->errstr, sizeof c->errstr, "gave up reconnecting after %d ms: %.200s",
                     p->reconnect_max_ms, p->down_why);
            hooks_update(p, 0);
            return code;
        }
        p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : MAOS_RECONNECT_MIN_DELAY_MS;
        if (p->backoff_ms > MAOS_RECONNECT_MAX_DELAY_MS)
            p->backoff_ms = MAOS_RECONNECT_MAX_DELAY_MS;
        p->next_attempt = now + p->backoff_ms;
        hooks_update(p, p->backoff_ms);
        if (deadline >= 0 && now >= deadline)
            return MAOS_ETIMEOUT;
    }
    return p->dead;
}

int maos_set_reconnect(maos_ctx *c, int on, int max_ms)
{
    if (!c || !c->priv || max_ms < 0)
        return MAOS_EINVALID_ARG;
    c->priv->reconnect = on ? 1 : 0;
    c->priv->reconnect_max_ms = max_ms ? max_ms : MAOS_RECONNECT_MAX_MS;
    return 0;
}

int maos_is_dead(const maos_ctx *c)
{
    return !c || !c->priv || c->priv->dead != 0;
}

uint64_t maos_reconnects(const maos_ctx *c)
{
    return c && c->priv ? c->priv->reconnects : 0;
}

/* ---- consuming deliveries ---------------------------------------------------------- */

/* Entry of maos_next / maos_process: like enter(), but a down context is
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
        return dq_pop(p);
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

static int next_of(maos_ctx *c, uint64_t sub, int timeout_ms, maos_delivery **out);

int maos_next(maos_ctx *c, int timeout_ms, maos_delivery **out)
{
    int rc = enter_push(c);
    if (rc)
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    return next_of(c, 0, timeout_ms, out);
}

/* maos_next for one subscription (0: any): the others' deliveries stay
 * queued. */
static int next_of(maos_ctx *c, uint64_t sub, int timeout_ms, maos_delivery **out)
{
    struct maos_ctx_priv *p = c->priv;
    int rc;
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        struct dnode *nd = dq_take(p, sub);
        if (nd) {
            *out = &nd->d;
            return 0;
        }
        if (p->down) {
            rc = reconnect_until(c, deadline);
            if (rc == MAOS_ETIMEOUT)
                break;
            if (rc)
                return rc;
            continue;
        }
        if (p->out_off < p->out.size) {
            if ((rc = flush_out(c)) && p->dead)
                return rc;
            continue;
        }
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            wait = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int n = poll(&pfd, 1, wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if ((rc = die_errno(c, "poll")) && p->dead)
                return rc;
            continue;
        }
        if (n == 0)
            break;
        if ((rc = rx_read_some(c)) && p->dead)
            return rc;
    }
    if (p->down)
        return fail(c, MAOS_ETIMEOUT, "nothing delivered within %d ms (reconnecting: %s)",
                    timeout_ms, p->down_why);
    return fail(c, MAOS_ETIMEOUT, "nothing delivered within %d ms", timeout_ms);
}

/* Reads per maos_process call: enough for a burst, bounded for fairness
 * between the connections of one loop. */
#define PROCESS_MAX_READS 16

int maos_process(maos_ctx *c, const maos_push_handlers *h, void *user)
{
    struct maos_ctx_priv *p;
    int rc = enter_push(c);
    if (rc)
        return rc;
    if (!h)
        return fail(c, MAOS_EINVALID_ARG, "handlers are NULL");
    p = c->priv;
    if (p->in_process)
        return fail(c, MAOS_EINVALID_ARG, "maos_process called from its own callback");
    p->wake_asked = 0;
    if (p->down) {
        /* one attempt when it is due; the hooks hear when to come back */
        rc = reconnect_until(c, now_ms());
        if (rc && rc != MAOS_ETIMEOUT)
            return rc;
        if (p->down) { /* not due yet, or failed: when to come back */
            long long wait = p->next_attempt - now_ms();
            hooks_update(p, wait < 0 ? 0 : wait > INT_MAX ? INT_MAX : (int)wait);
        }
    }
    for (int i = 0; i < PROCESS_MAX_READS && !p->down && p->fd >= 0; i++) {
        int got;
        if ((rc = rx_read(c, &got))) {
            if (p->dead)
                return rc;
            break; /* down: what was queued is still handed out */
        }
        if (!got)
            break;
    }
    /* Only what is queued now: callbacks that make calls may queue more. */
    size_t todo = p->dq_len, done = 0;
    p->in_process = 1;
    while (done < todo && !p->dead) {
        struct dnode *nd = dq_pop(p);
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
    p->in_process = 0;
    if (p->dead) {
        c->err = p->dead;
        return p->dead;
    }
    if (p->dq_head)
        hooks_update(p, 0);
    c->err = 0;
    c->errstr[0] = '\0';
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
    hooks_update(p, p->dead || p->down || p->dq_head ? 0 : -1);
    return 0;
}

/* ---- tables ------------------------------------------------------------------------ */

static int check_doc(maos_ctx *c, const char *what, const void *doc, size_t len, int empty_ok)
{
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    if (!len && empty_ok)
        return 0;
    if (!doc || !len || len > UINT32_MAX || maos_mp_check(doc, len, &lim) != 0)
        return fail(c, MAOS_EINVALID_ARG, "%s is not one well-formed msgpack value", what);
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, doc, len);
    if (maos_mpr_map(&r, &n))
        return fail(c, MAOS_EINVALID_ARG, "%s is not a msgpack map", what);
    return 0;
}

void maos_table_page_free(maos_table_page *pg)
{
    if (!pg)
        return;
    free(pg->mem_);
    free(pg);
}

/* A page over the reply frame f (taken): n entries from items (a raw
 * array), or the one entry of a get. */
static int make_table_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, int single,
                     maos_table_page **out)
{
    size_t n = single ? 1 : rep->n_items, nlen = rep->next_kind == MAOS_NEXT_STR ? rep->next_s.len : 0;
    maos_table_page *pg = calloc(1, sizeof *pg + n * sizeof(maos_entry) + nlen + 1);
    if (!pg) {
        free(f);
        return fail(c, MAOS_ENOMEM, "out of memory");
    }
    pg->entries = (maos_entry *)(pg + 1);
    char *next = (char *)(pg->entries + n);
    int bad = 0;
    if (single) {
        bad = maos_entry_decode(rep->entry.ptr, rep->entry.len, &pg->entries[0]) != 0;
    } else {
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, rep->items.ptr, rep->items.len);
        bad = maos_mpr_array(&r, &cnt) || cnt != n;
        for (size_t i = 0; !bad && i < n; i++)
            bad = maos_entry_next(&r, &pg->entries[i]) != 0;
    }
    if (bad) {
        free(pg);
        free(f);
        return die(c, MAOS_EPROTO, "malformed entries in a reply");
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
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "table", table)) || (rc = check_str(c, "key", key)) ||
        (rc = check_doc(c, "doc", doc, len, 0)))
        return rc;
    uint64_t rid = take_rid(c->priv);
    maos_slice d = {doc, (uint32_t)len};
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_PUT, start,
                         maos_enc_put(&pk, rid, cstr(table), cstr(key), d, expect, bind),
                         &f, &rep)))
        return rc;
    if (revision)
        *revision = rep.revision;
    free(f);
    return 0;
}

int maos_get(maos_ctx *c, const char *table, const char *key, maos_table_page **out)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "table", table)) || (rc = check_str(c, "key", key)))
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_GET, start,
                         maos_enc_get(&pk, rid, cstr(table), cstr(key)), &f, &rep)))
        return rc;
    return make_table_page(c, f, &rep, 1, out);
}

int maos_delete(maos_ctx *c, const char *table, const char *key, int64_t expect,
                uint64_t *revision)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "table", table)) || (rc = check_str(c, "key", key)))
        return rc;
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_DELETE, start,
                         maos_enc_delete(&pk, rid, cstr(table), cstr(key), expect), &f,
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
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "table", table)) ||
        (rc = check_doc(c, "where", where, where_len, 1)))
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if (limit > MAOS_READ_LIMIT_MAX)
        limit = MAOS_READ_LIMIT_MAX;
    uint64_t rid = take_rid(c->priv);
    maos_slice w = {where, (uint32_t)where_len};
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_LIST, start,
                         maos_enc_list(&pk, rid, cstr(table), cstr(prefix), cstr(after),
                                       limit, w),
                         &f, &rep)))
        return rc;
    return make_table_page(c, f, &rep, 0, out);
}

int maos_count(maos_ctx *c, const char *table, const char *prefix, const void *where,
               size_t where_len, uint64_t *count, uint64_t *revision)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "table", table)) ||
        (rc = check_doc(c, "where", where, where_len, 1)))
        return rc;
    uint64_t rid = take_rid(c->priv);
    maos_slice w = {where, (uint32_t)where_len};
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_COUNT, start,
                         maos_enc_count(&pk, rid, cstr(table), cstr(prefix), w), &f, &rep)))
        return rc;
    if (count)
        *count = rep.count;
    if (revision)
        *revision = rep.revision;
    free(f);
    return 0;
}

int maos_txn_items_ex(maos_ctx *c, const maos_item_in *items, size_t n,
                      maos_item_result *results)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!items || !n || n > 100)
        return fail(c, MAOS_EINVALID_ARG, "a txn has 1..100 items");
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_TXN, start,
                         maos_enc_txn_ops(&pk, rid, items, (uint32_t)n), &f, &rep)))
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
            (res.kind == MAOS_ITEM_ENQUEUE && res.task_ids.len % 16))
            rc = MAOS_EPROTO;
    }
    for (size_t i = 0; !rc && results && i < n; i++) {
        maos_txn_result res;
        maos_item_result *o = &results[i];
        maos_txn_result_next(&r, items[i].kind, &res);
        o->revision = res.kind == MAOS_ITEM_APPEND ? res.append.first_position : res.revision;
        o->lease_until = res.kind == MAOS_ITEM_EXTEND ? res.lease_until : 0;
        snprintf(o->state, sizeof o->state, "%.*s",
                 res.kind == MAOS_ITEM_NACK ? (int)res.state.len : 0,
                 res.state.ptr ? res.state.ptr : "");
        o->n_ids = res.kind == MAOS_ITEM_ENQUEUE ? res.task_ids.len / 16 : 0;
        if (o->ids && o->ids_cap && o->n_ids)
            memcpy(o->ids, res.task_ids.ptr,
                   16 * (o->n_ids < o->ids_cap ? o->n_ids : o->ids_cap));
    }
    free(f);
    if (rc)
        return die(c, rc, "malformed txn results");
    return 0;
}

int maos_txn_items(maos_ctx *c, const maos_item_in *items, size_t n,
                   uint64_t *revisions)
{
    maos_item_result stack[8], *res = stack;
    if (revisions && items && n > 8 && n <= 100 && !(res = calloc(n, sizeof *res)))
        return c ? fail(c, MAOS_ENOMEM, "out of memory") : MAOS_ENOMEM;
    if (revisions && res == stack)
        memset(stack, 0, sizeof stack);
    int rc = maos_txn_items_ex(c, items, n, revisions ? res : NULL);
    for (size_t i = 0; !rc && revisions && i < n; i++)
        revisions[i] = res[i].revision;
    if (res != stack)
        free(res);
    return rc;
}

int maos_watch(maos_ctx *c, const char *table, const char *prefix, int from_kind,
               uint64_t revision, uint64_t *sub)
{
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "table", table)))
        return rc;
    if (!prefix)
        prefix = "";
    if (from_kind != MAOS_WATCH_FROM_ENTRIES && from_kind != MAOS_WATCH_FROM_REVISION &&
        from_kind != MAOS_WATCH_FROM_NOW)
        return fail(c, MAOS_EINVALID_ARG, "bad from_kind %d", from_kind);
    size_t tl = strlen(table), pl = strlen(prefix);
    if (tl > 4096 || pl > 4096)
        return fail(c, MAOS_EINVALID_ARG, "table or prefix too long");
    struct csub *s = calloc(1, sizeof *s + tl + pl + 2);
    if (!s)
        return fail(c, MAOS_ENOMEM, "out of memory");
    char *mem = (char *)(s + 1);
    memcpy(mem, table, tl + 1);
    memcpy(mem + tl + 1, prefix, pl + 1);
    s->watch = 1;
    s->table = (maos_slice){mem, (uint32_t)tl};
    s->key_prefix = (maos_slice){mem + tl + 1, (uint32_t)pl};
    return sub_add(c, s, from_kind, revision, sub);
}

/* ---- agents ------------------------------------------------------------------------ */

static int agent_send(maos_ctx *c, uint64_t *revision)
{
    struct maos_ctx_priv *p = c->priv;
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    uint64_t rid = take_rid(p);
    int rc = frame_begin(c, &start, &pk);
    if (rc || (rc = field_call(c, rid, MAOS_OP_AGENT_REGISTER, start,
                               maos_enc_agent_register(&pk, rid, &p->agent), &f, &rep)))
        return rc;
    if (revision)
        *revision = rep.revision;
    free(f);
    return 0;
}

int maos_agent_register(maos_ctx *c, const maos_agent_spec *a, uint64_t *revision)
{
    struct maos_ctx_priv *p;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    p = c->priv;
    if (!a || !a->id || !*a->id)
        return fail(c, MAOS_EINVALID_ARG, "agent id is NULL or empty");
    if ((rc = check_doc(c, "details", a->details, a->details_len, 1)))
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
            return fail(c, MAOS_ENOMEM, "out of memory");
    }
    need += tags.size;
    char *mem = malloc(need);
    if (!mem) {
        msgpack_sbuffer_destroy(&tags);
        return fail(c, MAOS_ENOMEM, "out of memory");
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
    p->agent = in;
    p->agent_mem = mem;
    rc = agent_send(c, revision);
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
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "status", status)))
        return rc;
    if (len && (!detail || len > UINT32_MAX || maos_mp_check(detail, len, &lim)))
        return fail(c, MAOS_EINVALID_ARG, "detail is not one well-formed msgpack value");
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_AGENT_STATUS, start,
                         maos_enc_agent_status(&pk, rid, cstr(status),
                                               (maos_slice){detail, (uint32_t)len}),
                         &f, &rep)))
        return rc;
    free(f);
    return 0;
}

int maos_agent_deregister(maos_ctx *c, const char *id)
{
    struct maos_ctx_priv *p;
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "id", id)))
        return rc;
    p = c->priv;
    uint64_t rid = take_rid(p);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_AGENT_DEREGISTER, start,
                         maos_enc_agent_deregister(&pk, rid, cstr(id)), &f, &rep)))
        return rc;
    free(f);
    if (p->agent_mem && p->agent.id.len == strlen(id) &&
        !memcmp(p->agent.id.ptr, id, p->agent.id.len)) {
        free(p->agent_mem);
        p->agent_mem = NULL;
        memset(&p->agent, 0, sizeof p->agent);
    }
    return 0;
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

int maos_lock(maos_ctx *c, const char *name, int wait_ms, uint64_t *token)
{
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "name", name)))
        return rc;
    struct maos_ctx_priv *p = c->priv;
    char doc[64 + 255], stream[16 + MAOS_KEY_MAX];
    /* {"owner": client name, "pid": pid} */
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
    if (!sb.data || sb.size > sizeof doc) {
        msgpack_sbuffer_destroy(&sb);
        return fail(c, MAOS_ENOMEM, "out of memory");
    }
    size_t dlen = sb.size;
    memcpy(doc, sb.data, dlen);
    msgpack_sbuffer_destroy(&sb);
    snprintf(stream, sizeof stream, "lock-%s", name);
    long long deadline = wait_ms < 0 ? -1 : now_ms() + wait_ms;
    for (;;) {
        rc = maos_put(c, "locks", name, doc, dlen, MAOS_EXPECT_ABSENT, 1, token);
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
                long long l = deadline - now_ms();
                left = l <= 0 ? 0 : l > INT_MAX ? INT_MAX : (int)l;
            }
            maos_delivery *d = NULL;
            rc = next_of(c, sub, left, &d);
            if (rc)
                break;
            freed = has_deleted(d, stream);
            maos_delivery_free(d);
        }
        int urc = maos_unsubscribe(c, sub);
        if (rc == MAOS_ETIMEOUT)
            return fail(c, MAOS_ETIMEOUT, "lock %s is held (token %lld) after %d ms",
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

/* UUIDv7 text: 48-bit Unix ms, version 7, variant 10, random rest. */
static void uuidv7_text(char out[37])
{
    uint8_t id[16];
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
    maos_uuid_format(id, out);
}

static void pk_kv_str(msgpack_packer *pk, const char *k, const char *v, size_t vl)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
    msgpack_pack_str(pk, vl);
    msgpack_pack_str_body(pk, v, vl);
}

static int64_t now_us_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int maos_session_create(maos_ctx *c, const char *id, const void *metadata, size_t len,
                        char id_out[37], uint64_t *revision)
{
    int rc = sync_ready(c);
    if (rc || (rc = check_doc(c, "metadata", metadata, len, 1)))
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
    msgpack_pack_int64(&pk, now_us_real());
    msgpack_pack_str(&pk, 8);
    msgpack_pack_str_body(&pk, "metadata", 8);
    if (len)
        msgpack_pack_str_body(&pk, metadata, len);
    else
        msgpack_pack_map(&pk, 0);
    if (!sb.data)
        return fail(c, MAOS_ENOMEM, "out of memory");
    rc = maos_put(c, "sessions", id, sb.data, sb.size, MAOS_EXPECT_ABSENT, 0, revision);
    msgpack_sbuffer_destroy(&sb);
    if (!rc && id_out)
        snprintf(id_out, 37, "%.36s", id);
    return rc;
}

/* The session's document with some top-level fields set (raw msgpack
 * values), written with compare-and-set on the revision read; again when
 * someone else wrote it in between. */
static int session_update(maos_ctx *c, const char *id, const char *const *names,
                          const maos_slice *vals, int n, uint64_t *revision)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        maos_table_page *pg = NULL;
        int rc = maos_get(c, "sessions", id, &pg);
        if (rc)
            return rc;
        const maos_entry *e = &pg->entries[0];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        maos_mpr r;
        uint32_t m, keep = 0;
        maos_mpr_init(&r, e->data.ptr, e->data.len);
        maos_mpr scan = r;
        if (maos_mpr_map(&scan, &m)) {
            maos_table_page_free(pg);
            return fail(c, MAOS_EPROTO, "session document is not a map");
        }
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
        uint64_t rev = e->revision;
        maos_table_page_free(pg);
        if (!sb.data)
            return fail(c, MAOS_ENOMEM, "out of memory");
        rc = maos_put(c, "sessions", id, sb.data, sb.size, (int64_t)rev, 0, revision);
        msgpack_sbuffer_destroy(&sb);
        if (rc != MAOS_EWRONG_REVISION)
            return rc;
    }
    return fail(c, MAOS_ECONFLICT, "session %s kept changing under 100 attempts", id);
}

int maos_session_close(maos_ctx *c, const char *id, const void *result, size_t len,
                       uint64_t *revision)
{
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "id", id)))
        return rc;
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    if (len && (!result || len > UINT32_MAX || maos_mp_check(result, len, &lim)))
        return fail(c, MAOS_EINVALID_ARG, "result is not one well-formed msgpack value");
    char st[8], tm[16];
    st[0] = (char)0xa6;
    memcpy(st + 1, "closed", 6);
    int64_t now = now_us_real();
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
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "id", id)) ||
        (rc = check_doc(c, "metadata", metadata, len, 0)))
        return rc;
    const char *names[1] = {"metadata"};
    maos_slice vals[1] = {{metadata, (uint32_t)len}};
    return session_update(c, id, names, vals, 1, revision);
}

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
static int make_task_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, int single,
                          maos_task_page **out)
{
    size_t n = single ? 1 : rep->n_items;
    maos_task_page *pg = calloc(1, sizeof *pg + n * sizeof(maos_task));
    if (!pg) {
        free(f);
        return fail(c, MAOS_ENOMEM, "out of memory");
    }
    pg->tasks = (maos_task *)(pg + 1);
    int bad = 0;
    if (single) {
        bad = maos_task_decode(rep->task.ptr, rep->task.len, &pg->tasks[0]) != 0;
    } else {
        maos_mpr r;
        uint32_t cnt;
        maos_mpr_init(&r, rep->items.ptr, rep->items.len);
        bad = maos_mpr_array(&r, &cnt) || cnt != n;
        for (size_t i = 0; !bad && i < n; i++)
            bad = maos_task_next(&r, &pg->tasks[i]) != 0;
    }
    if (bad) {
        free(pg);
        free(f);
        return die(c, MAOS_EPROTO, "malformed tasks in a reply");
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

static int check_value(maos_ctx *c, const char *what, const void *v, size_t len)
{
    if (!len)
        return 0;
    maos_limits lim = {0};
    maos_limits_defaults(&lim);
    if (!v || len > UINT32_MAX || maos_mp_check(v, len, &lim) != 0)
        return fail(c, MAOS_EINVALID_ARG, "%s is not one well-formed msgpack value", what);
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
    t->dedupe_key = cstr(o->dedupe_key);
    t->ordering_key = cstr(o->ordering_key);
    t->meta = (maos_slice){o->meta_len ? o->meta : NULL, (uint32_t)o->meta_len};
}

int maos_enqueue_n(maos_ctx *c, const char *queue, const void *const *datas,
                   const size_t *lens, const maos_task_opts *opts, size_t n,
                   uint8_t *ids, int *duplicates)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "queue", queue)))
        return rc;
    if (!n || n > 10000)
        return fail(c, MAOS_EINVALID_ARG, "an enqueue has 1..10000 tasks");
    maos_task_in *t = calloc(n, sizeof(*t));
    if (!t)
        return fail(c, MAOS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        size_t len = lens ? lens[i] : 0;
        rc = check_value(c, "task data", datas ? datas[i] : NULL, len);
        if (!rc && opts && opts[i].meta_len)
            rc = check_doc(c, "task meta", opts[i].meta, opts[i].meta_len, 1);
        if (!rc && opts && opts[i].delay_ms < 0)
            rc = fail(c, MAOS_EINVALID_ARG, "task %zu: negative delay_ms %lld", i,
                      (long long)opts[i].delay_ms);
        task_spec(&t[i], datas ? datas[i] : NULL, len, opts ? &opts[i] : NULL);
    }
    uint64_t rid = take_rid(c->priv);
    if (!rc && !(rc = frame_begin(c, &start, &pk)))
        rc = field_call(c, rid, MAOS_OP_ENQUEUE, start,
                        maos_enc_enqueue(&pk, rid, cstr(queue), t, (uint32_t)n), &f, &rep);
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
    return rc ? die(c, MAOS_EPROTO, "malformed enqueue reply") : 0;
}

int maos_enqueue(maos_ctx *c, const char *queue, const void *data, size_t len,
                 const maos_task_opts *o, uint8_t id[16], int *duplicate)
{
    return maos_enqueue_n(c, queue, &data, &len, o, 1, id, duplicate);
}

int maos_claim(maos_ctx *c, const char *const *queues, size_t n, uint32_t lease_ms,
               uint32_t wait_ms, uint32_t max, int bind, maos_task_page **out)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if (!queues || !n || n > MAOS_CLAIM_QUEUES_MAX)
        return fail(c, MAOS_EINVALID_ARG, "a claim names 1..%d queues",
                    MAOS_CLAIM_QUEUES_MAX);
    maos_slice qs[MAOS_CLAIM_QUEUES_MAX];
    for (size_t i = 0; i < n; i++) {
        if ((rc = check_str(c, "queue", queues[i])))
            return rc;
        qs[i] = cstr(queues[i]);
    }
    uint64_t rid = take_rid(c->priv);
    /* the reply may rightly take wait_ms: stretch the request bound */
    int saved = c->priv->timeout_ms;
    if (saved > 0 && wait_ms)
        c->priv->timeout_ms = saved + (int)(wait_ms > INT32_MAX / 2 ? INT32_MAX / 2 : wait_ms);
    if (!(rc = frame_begin(c, &start, &pk)))
        rc = field_call(c, rid, MAOS_OP_CLAIM, start,
                        maos_enc_claim(&pk, rid, qs, (uint32_t)n, lease_ms, wait_ms,
                                       max ? max : 1, bind),
                        &f, &rep);
    c->priv->timeout_ms = saved;
    if (rc)
        return rc;
    return make_task_page(c, f, &rep, 0, out);
}

int maos_claim_start(maos_ctx *c, const char *const *queues, size_t n, uint32_t lease_ms,
                     uint32_t wait_ms, uint32_t max, int bind, uint64_t *rid_out)
{
    msgpack_packer pk;
    size_t start;
    int rc = enter(c);
    if (rc)
        return rc;
    struct maos_ctx_priv *p = c->priv;
    if (p->n_aclaims == MAOS_CLAIMS_WAITING_MAX)
        return fail(c, MAOS_ELIMIT, "%d claims are in flight already",
                    MAOS_CLAIMS_WAITING_MAX);
    if (!queues || !n || n > MAOS_CLAIM_QUEUES_MAX)
        return fail(c, MAOS_EINVALID_ARG, "a claim names 1..%d queues",
                    MAOS_CLAIM_QUEUES_MAX);
    maos_slice qs[MAOS_CLAIM_QUEUES_MAX];
    for (size_t i = 0; i < n; i++) {
        if ((rc = check_str(c, "queue", queues[i])))
            return rc;
        qs[i] = cstr(queues[i]);
    }
    uint64_t rid = take_rid(p);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = frame_end(c, start, rid, MAOS_OP_CLAIM,
                        maos_enc_claim(&pk, rid, qs, (uint32_t)n, lease_ms, wait_ms,
                                       max ? max : 1, bind))))
        return rc;
    p->pending--; /* answered as a delivery, not by maos_reply_recv */
    p->aclaims[p->n_aclaims++] = rid;
    if (rid_out)
        *rid_out = rid;
    return flush_out(c);
}

/* ack, nack, extend, release: one task op; *f and *rep for the caller. */
static int task_op(maos_ctx *c, maos_op op, const uint8_t id[16], uint64_t token,
                   maos_slice text, const void *value, size_t len, int64_t num,
                   struct rxf **f, maos_reply *rep)
{
    msgpack_packer pk;
    size_t start;
    int rc = sync_ready(c);
    if (rc || (rc = check_value(c, "result", value, len)))
        return rc;
    if (!id)
        return fail(c, MAOS_EINVALID_ARG, "task id is NULL");
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)))
        return rc;
    switch (op) {
    case MAOS_OP_ACK:
        rc = maos_enc_ack(&pk, rid, id, token, (maos_slice){value, (uint32_t)len});
        break;
    case MAOS_OP_NACK:
        rc = maos_enc_nack(&pk, rid, id, token, text, num);
        break;
    case MAOS_OP_EXTEND:
        rc = maos_enc_extend(&pk, rid, id, token, (uint32_t)num);
        break;
    default:
        rc = maos_enc_task_release(&pk, rid, id, token);
        break;
    }
    return field_call(c, rid, op, start, rc, f, rep);
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
    int rc = task_op(c, MAOS_OP_NACK, id, token, cstr(error && *error ? error : NULL),
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
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!id || !out)
        return fail(c, MAOS_EINVALID_ARG, "id or out is NULL");
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_TASK, start, maos_enc_task_get(&pk, rid, id), &f,
                         &rep)))
        return rc;
    return make_task_page(c, f, &rep, 1, out);
}

int maos_queue_stats(maos_ctx *c, const char *queue, maos_queue_info **out, size_t *n)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc)
        return rc;
    if (!out || !n)
        return fail(c, MAOS_EINVALID_ARG, "out or n is NULL");
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_QUEUE_STATS, start,
                         maos_enc_queue_stats(&pk, rid, cstr(queue)), &f, &rep)))
        return rc;
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
    maos_queue_info *all = !bad && qi ? malloc(cnt * sizeof(*qi) + names + 1) : NULL;
    if (all) {
        char *p = (char *)(all + cnt);
        for (size_t i = 0; i < cnt; i++) {
            all[i] = qi[i];
            memcpy(p, qi[i].queue.ptr, qi[i].queue.len);
            p[qi[i].queue.len] = 0;
            all[i].queue.ptr = p;
            p += qi[i].queue.len + 1;
        }
    }
    free(qi);
    free(f);
    if (bad)
        return die(c, MAOS_EPROTO, "malformed queue figures");
    if (!all)
        return fail(c, MAOS_ENOMEM, "out of memory");
    *out = all;
    *n = cnt;
    return 0;
}

int maos_dead_list(maos_ctx *c, const char *queue, const uint8_t *after, uint32_t limit,
                   maos_task_page **out)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "queue", queue)))
        return rc;
    if (!out)
        return fail(c, MAOS_EINVALID_ARG, "out is NULL");
    if (limit > MAOS_READ_LIMIT_MAX)
        limit = MAOS_READ_LIMIT_MAX;
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, MAOS_OP_DEAD_LIST, start,
                         maos_enc_dead_list(&pk, rid, cstr(queue), after, limit), &f, &rep)))
        return rc;
    return make_task_page(c, f, &rep, 0, out);
}

static int dead_op(maos_ctx *c, maos_op op, const char *queue, const uint8_t *id,
                   uint32_t *count, int *more)
{
    msgpack_packer pk;
    size_t start;
    struct rxf *f;
    maos_reply rep;
    int rc = sync_ready(c);
    if (rc || (rc = check_str(c, "queue", queue)))
        return rc;
    uint64_t rid = take_rid(c->priv);
    if ((rc = frame_begin(c, &start, &pk)) ||
        (rc = field_call(c, rid, op, start,
                         op == MAOS_OP_DEAD_RETRY
                             ? maos_enc_dead_retry(&pk, rid, cstr(queue), id)
                             : maos_enc_dead_purge(&pk, rid, cstr(queue)),
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
        long long now = now_ms();
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
static void keeper_set(struct keeper *k, const maos_task *t, uint32_t lease_ms,
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
        k->next = now_ms() + every_ms;
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
            sleep_ms(backoff);
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
        int64_t left_ms = (t.task->lease_until - now_us_real()) / 1000;
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
