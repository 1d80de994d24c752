/*
 * client/client_priv.h -- libmaos-client internals shared by its files
 * (and by unit tests, which may include it): the context, its queues and
 * the functions one layer offers another.
 *
 * The files, one layer each (as hiredis: net.c / read.c / async.c):
 *   conn.c    errors, connect + trust + hello, reconnect and its backoff;
 *   wire.c    socket I/O, framing, the window of requests awaiting a
 *             reply, reply matching and the generic call helper
 *             (maosc_call): every synchronous call is built on it;
 *   push.c    routing of incoming frames, pushes and the delivery queue,
 *             maos_next / maos_process / loop hooks;
 *   subs.c    subscriptions, channels, watches, and their resume;
 *   calls.c   events: append/txn (and their pipelined form), reads,
 *             streams, stats, checkpoints;
 *   tables.c  tables, agents, locks, sessions;
 *   queues.c  queues and the worker loop (with its keeper thread).
 *
 *
 * Data flow:
 *   request  -> encoded by proto (maos_enc_*) straight into the output
 *               buffer `out`, behind a 4-byte length patched afterwards;
 *   flush    -> non-blocking send() of out[out_off..], waiting with poll();
 *               while the socket is not writable, incoming bytes are read
 *               (the server may be blocked writing replies to us: a long
 *               pipeline must not deadlock);
 *   reply    -> recv() into the proto frame reader `rd`; each whole frame
 *               that is a reply is matched by rid to its request's
 *               completion (struct maosc_pend: a sync call waiting, an
 *               async callback due, or the library's own handler), copied
 *               once into an `rxf` block it owns; legacy pipelined replies
 *               (maos_append_send) queue in rxq for maos_reply_recv.  A page
 *               takes ownership of its rxf: the events of a page are views
 *               into it, and the only other allocation per page is one
 *               array of maos_event (no per-event malloc);
 *   push     -> every whole frame is first offered to maos_push_decode:
 *               pushes never reach the reply queue.  A push is mapped from
 *               the server's subscription id to the caller's, turned into a
 *               maos_delivery (one allocation: the delivery, its events
 *               array and the frame bytes) and queued (dq) until maos_next
 *               or maos_process hands it out.
 *
 * Connect (conn_begin, first connect and every reconnect alike): the trust
 * checks of trust.c on the socket's directory, connect(), the server's uid
 * (SO_PEERCRED) -- all before the first byte is sent -- then the handshake
 * pipelined (hello, agent, re-subscribes, re-sent requests), the whole
 * phase within connect_timeout_ms; maos_process drives it without waiting,
 * a synchronous call by waiting (conn_finish).  After it, every wait for the
 * socket (wait_fd) fails with MAOS_ETIMEOUT after timeout_ms without any
 * progress.  Both are on by default (client.h "Timeouts").
 *
 * Replies: every request queued records its op and completion under its
 * rid (struct opwin), so that a reply is matched to a request that is
 * really pending (not unknown, not already answered; a timed-out one's
 * late reply is dropped) and checked against what a reply to that op
 * promises (maos_reply_check) before anything is taken from it.
 *
 * Subscriptions (struct csub) keep their own copy of the filter or
 * pattern and `next`, the position to resume from: the `next` of the last
 * push received (every push received is delivered, from the queue, even
 * across a reconnect), or the `from` the subscribe reply gave.
 *
 * The daemon writes a subscribe reply before any push of that
 * subscription; the reply's completion handler (subs.c sub_done) runs the
 * moment the reply is routed, so the pushes behind it in the same read
 * find their subscription.  A push for an unknown id belongs to a
 * subscription the caller has unsubscribed, and is dropped.
 *
 * Connection states:
 *
 *   connected --(I/O error, EOF, timeout; reconnect on)--> down
 *      ^                                                    |  attempts at
 *      +--(handshaking: connect, then hello + agent +        |  0, 50, 100, ..
 *          re-subscribe all + re-sent requests, pipelined;  |  2000 ms apart
 *          up when the last answer came: hs_left 0)---------+
 *   connected/down --(any other connection error, or an attempt that
 *                     fails reconnect_max_ms after the loss)--> dead
 *                     (sticky; fd closed)
 *
 *   While down, fd == -1 (or, handshaking, the new socket), the reader,
 *   reply queue, output and pending are empty (legacy replies in flight
 *   are lost); requests safe to re-send or never written wait in the
 *   resend list (rs); the delivery queue and subscriptions are kept.
 *
 * Invariants:
 *  - pending == legacy pipelined requests (maos_append_send,
 *    maos_txn_send) queued or sent whose reply has not been handed out by
 *    maos_reply_recv; n_pends == requests with a completion not yet run
 *    (in the window, in rs, or done and waiting in cq or for their sync
 *    caller).  The window `win` holds the op of each request in flight;
 *    the one exception is the request an rid-0 error answered in
 *    maos_reply_recv (which one cannot be known), left in it until the
 *    connection ends.
 *  - Every async request gets its callback exactly once (a reply, a
 *    timeout, MAOS_ECONNECTION, or maos_free).
 *  - No byte is written to a socket whose directory and server uid have
 *    not passed the trust checks.
 *  - Once `dead` is set the socket is closed, c->err == dead and errstr
 *    holds the reason; every entry point returns dead at once.
 *  - `down` and `dead` are never both set; `down` implies fd == -1 unless
 *    `handshaking`.
 *  - Every queued delivery belongs to a subscription in `subs`
 *    (unsubscribe removes both).
 *  - Out-parameters are written only on success.
 *  - Nothing here logs or touches signals; send() uses MSG_NOSIGNAL.
 *  - No thread but maos_worker_run's keeper, which has a context of its
 *    own and shares only `struct keeper` (under its mutex) with the loop.
 */
#ifndef MAOS_CLIENT_PRIV_H
#define MAOS_CLIENT_PRIV_H

#include "maos/client.h"
#include "maos/proto.h"

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

/* Requests in flight per context (the window's span), a limit with its
 * error: MAOS_ELIMIT "more than N requests in flight". */
#define MAOSC_WIN_MAX (1u << 20)
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
    /* the reply decoded from data (has_rep), so that the steps a reply goes
     * through (matching, completion, the caller's page) decode it once:
     * decoding walks every event of a page (tests/bench/README.md
     * "replay") */
    int has_rep;
    maos_reply rep;
    /* a read's events, made while rep was decoded (maosc_reply_in): room
     * for cap_events after data, in the same allocation; n_events of them
     * filled (all of rep.items when the decode succeeded) */
    maos_event *events;
    uint32_t n_events, cap_events;
    char data[];
};
/* A frame's copy (has_rep 0), with room for cap_events events after it,
 * or NULL when out of memory. */
struct rxf *maosc_rxf_new(const void *frame, size_t len, uint32_t cap_events);
/* push.c: one stored record as the event handed to the caller */
void maosc_record_to_event(const maos_record *rec, maos_event *e);
/* push.c: how many events a frame's `events` list declares when it comes
 * within the frame's first three keys, as maosd writes them (a read reply
 * {rid, ok, events, next}; an events push {push, sub, events, ...}), and
 * the frame is a push (push 1) or not (push 0); else 0.  Bounded by what
 * the frame can hold: a lying count costs no memory. */
uint32_t maosc_events_declared(const void *frame, size_t len, int push);

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
    /* a library-internal watch (an async waiting lock): its deliveries go
     * to hook, at routing, instead of the delivery queue */
    void (*hook)(maos_ctx *c, struct csub *s, const maos_delivery *d);
    void *hook_arg;
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
    struct maosc_pend **pd; /* parallel ring: the request's completion, or
                             * NULL (a maos_append_send/maos_txn_send reply
                             * for maos_reply_recv, or a claim_start) */
    size_t cap;
    uint64_t base;
    size_t span;
};

/*
 * A request with a completion (wire.c "Completions").  Every request but
 * the legacy pipelined ones (maos_append_send/maos_txn_send, whose replies
 * queue in rxq for maos_reply_recv) and maos_claim_start has one, from the
 * moment its frame is queued until its completion ran:
 *   SYNC      a synchronous call waits for `done` (wire.c maosc_call);
 *   ASYNC     the caller's callback runs from maos_process (cq);
 *   INTERNAL  only `internal` (hello, re-subscribe, agent re-register:
 *             parts of a (re)connect), then nothing.
 * `internal` (any kind may have one) runs the moment the reply is routed,
 * before the next frame is looked at (so a subscribe's server id is known
 * before its first push is routed).  On a lost connection a request that
 * is safe to send twice (retry) or was never sent keeps its frame and is
 * queued again after the next handshake; the others complete with
 * MAOS_ECONNECTION (outcome unknown).
 */
enum { MAOSC_PEND_SYNC = 1, MAOSC_PEND_ASYNC, MAOSC_PEND_INTERNAL };
struct maosc_pend {
    struct maosc_pend *next, *prev;  /* `pends` list (issue order), or cq / resend */
    uint64_t rid;
    maos_op op;
    int kind;
    int retry;            /* safe to send again after a reconnect */
    int in_win;           /* in the window (sent or queued on this connection) */
    int sub_kind;         /* SUBSCRIBE/WATCH: the from_kind it was sent with */
    uint64_t sub_id;      /* SUBSCRIBE/WATCH: the subscription's id, once accepted */
    void (*internal)(maos_ctx *c, struct maosc_pend *pd, int status, struct rxf *f,
                     const maos_reply *rep);
    void *arg;            /* for internal (a csub, ...) */
    maos_callback cb;     /* ASYNC */
    void *privdata;
    long long deadline;   /* monotonic ms; 0: none */
    long long start_ms;   /* when it was issued */
    size_t out_start;     /* where its frame began in `out` ... */
    uint64_t out_gen;     /* ... of this generation of `out` (not sent yet
                           * when out_off is still below it) */
    char *frame;          /* retry: the whole frame (length prefix included) */
    size_t frame_len;
    unsigned char *kinds; /* an async txn_items: its items' kinds, to read
                           * its results (maos_result_txn_item); owned */
    size_t n_kinds;
    /* maos_result_batch: a cursor on the results, before element batch_at
     * (batch_at 0: not set), so reading them in order walks them once */
    maos_mpr batch_cur;
    uint32_t batch_at;
    char *lock_name;      /* a lock's put (tables.c, lock_put): the lock's
                           * name, owned; kept past a timeout (late_lock) */
    /* completion */
    int done;
    int status;           /* 0 or the negative MAOS_E* */
    struct rxf *f;        /* the reply frame (owned), when one came */
    char errstr[256];
};

/* The result a callback gets (async.c): a view of the completion. */
struct maos_result {
    maos_ctx *c;
    struct maosc_pend *pd;
    maos_reply rep;       /* decoded from pd->f (valid when pd->f) */
    int owned;            /* maos_reply_recv's: pd and pd->f are the
                           * result's, freed by maos_result_free */
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
    uint64_t out_gen;   /* bumped whenever out is emptied */

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
    /* the agent registered on this context (re-registered on reconnect):
     * one block holding the strings maos_agent_in points to, or NULL */
    maos_agent_in agent;
    char *agent_mem;
    void *agent_swap_;            /* during an async agent_register */
    /* async waiting locks (tables.c) and the hook their watch gets */
    struct maosc_lockw *lockw_head;
    void (*submit_hook)(maos_ctx *c, struct csub *s, const maos_delivery *d);
    void *submit_hook_arg;
    /* set before a lock's put (tables.c), cleared after it: the first put
     * made meanwhile (the lock's) keeps the name in its completion */
    const char *lock_put;
    /* locks whose put timed out on this connection, by rid: if the put
     * succeeds after all, the library deletes the lock (wire.c let_go) */
    struct maosc_late_lock *late_locks;

    /* reconnect */
    char *path, *client_name;     /* copies, for reconnecting */
    char *token;                  /* the access token sent in hello (a copy;
                                   * NULL: none), for reconnecting */
    int reconnect, reconnect_max_ms;
    int ever_connected;           /* a handshake succeeded once */
    int connect_nb;               /* maos_async_connect's first connect, not
                                   * up yet: attempted as a reconnect is
                                   * (non-blocking from maos_process, with
                                   * the backoff), given up after
                                   * connect_timeout_ms (0: never) */
    int down;                     /* reconnecting; fd == -1 */
    long long down_since, next_attempt;
    int backoff_ms;
    int down_err;                 /* last reason, for giving up */
    char down_why[256];
    uint64_t reconnects;

    /* event loop */
    maos_loop_hooks hooks;
    maos_loop_ops ops;
    int ops_fd;                   /* fd the ops were told to watch, or -1 */
    int ops_read, ops_write;      /* interest the ops were told */
    long long ops_timer_at;       /* the timer the ops were told (abs ms), -1 */
    long long next_deadline;      /* earliest request deadline known, 0: none */
    int in_process, wake_asked;

    /* completions (wire.c, async.c) */
    struct maosc_pend *pends_head, *pends_tail; /* with a reply to come */
    struct maosc_pend *cq_head, *cq_tail;       /* ASYNC, done, callback due */
    struct maosc_pend *rs_head, *rs_tail;       /* to send after the handshake */
    size_t n_pends;
    int submit_async;             /* the request being built is async: */
    maos_callback submit_cb;      /* its callback */
    void *submit_privdata;
    int handshaking;              /* hello (and re-subscribes) in flight */
    int hs_left;                  /* their replies still to come */
    int client_ids;               /* MAOS_CLIENT_IDS */
};

/* ---- shared between the files (maosc_: library-private) ---- */

/* The wire's decoded records (maos/proto.h, views into a frame) as the
 * public types of client.h (the same views): decode with proto, then copy
 * the fields.  0 or MAOS_EPROTO, as the proto decoder. */
static inline maos_str maosc_str(maos_slice s)
{
    maos_str v = {s.ptr, s.len};
    return v;
}
static inline void maosc_entry_pub(maos_table_entry *d, const maos_entry *e)
{
    d->table = maosc_str(e->table);
    d->key = maosc_str(e->key);
    d->revision = e->revision;
    d->created_revision = e->created_revision;
    d->created = e->created;
    d->updated = e->updated;
    d->data = maosc_str(e->data);
    d->bound = e->bound;
    d->raw = maosc_str(e->raw);
}
static inline int maosc_entry_next(maos_mpr *r, maos_table_entry *d)
{
    maos_entry e;
    int rc = maos_entry_next(r, &e);
    if (!rc)
        maosc_entry_pub(d, &e);
    return rc;
}
static inline int maosc_entry_decode(const void *p, size_t len, maos_table_entry *d)
{
    maos_entry e;
    int rc = maos_entry_decode(p, len, &e);
    if (!rc)
        maosc_entry_pub(d, &e);
    return rc;
}
static inline void maosc_task_pub(maos_task_info *d, const maos_task *t)
{
    memcpy(d->id, t->id, 16);
    d->queue = maosc_str(t->queue);
    d->state = maosc_str(t->state);
    d->attempt = t->attempt;
    d->max_attempts = t->max_attempts;
    d->priority = t->priority;
    d->data = maosc_str(t->data);
    d->meta = maosc_str(t->meta);
    d->enqueued = t->enqueued;
    d->not_before = t->not_before;
    d->dedupe_key = maosc_str(t->dedupe_key);
    d->ordering_key = maosc_str(t->ordering_key);
    d->last_error = maosc_str(t->last_error);
    d->result = maosc_str(t->result);
    d->token = t->token;
    d->lease_until = t->lease_until;
    d->n_history = t->n_history;
    d->history = maosc_str(t->history);
}
static inline int maosc_task_next(maos_mpr *r, maos_task_info *d)
{
    maos_task t;
    int rc = maos_task_next(r, &t);
    if (!rc)
        maosc_task_pub(d, &t);
    return rc;
}
static inline int maosc_task_decode(const void *p, size_t len, maos_task_info *d)
{
    maos_task t;
    int rc = maos_task_decode(p, len, &t);
    if (!rc)
        maosc_task_pub(d, &t);
    return rc;
}

/* maosc_call's answer for an async request: queued, the callback will run. */
#define MAOSC_QUEUED 1

/* One request being built (wire.c "The generic call"). */
struct maosc_req {
    uint64_t rid;
    size_t start;       /* offset of its frame in `out` */
    msgpack_packer pk;  /* encodes into `out` */
    /* set by the caller between maosc_req_begin and maosc_call: */
    int internal_only;  /* a part of the (re)connect: no waiter */
    int retry_ids;      /* safe to re-send after a reconnect though its op is
                         * not a read: an append/txn whose events all carry
                         * ids, a (new) subscribe */
    int sub_kind;       /* subscribe/watch: from_kind */
    void (*internal)(maos_ctx *c, struct maosc_pend *pd, int status, struct rxf *f,
                     const maos_reply *rep);
    void *arg;
    unsigned char *kinds; /* malloc'ed, taken by the completion (maosc_call) */
    size_t n_kinds;
};
int maosc_req_begin(maos_ctx *c, struct maosc_req *rq);
int maosc_reply_in(maos_ctx *c, maos_slice frame);
void maosc_pends_lost(maos_ctx *c, int code, int keep);
int maosc_pends_resend(maos_ctx *c);
int maosc_pends_expire(maos_ctx *c);
int maosc_flush_nb(maos_ctx *c);
void maosc_pend_free(struct maosc_pend *pd);
void maosc_pends_forget_arg(struct maos_ctx_priv *p, const void *arg);
void maosc_run_completions(maos_ctx *c, size_t max);
int maosc_req_end(maos_ctx *c, struct maosc_req *rq, maos_op op, int enc_rc);
int maosc_call(maos_ctx *c, struct maosc_req *rq, maos_op op, int enc_rc, struct rxf **f,
               maos_reply *rep);

/* conn.c */
int maosc_fail(maos_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
long long maosc_now_ms(void);
void maosc_hooks_update(struct maos_ctx_priv *p, int wake_ms);
int maosc_die(maos_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int maosc_die_errno(maos_ctx *c, const char *what);
int maosc_enter(maos_ctx *c);
void maosc_sleep_ms(long long ms);
int maosc_reconnect_until(maos_ctx *c, long long deadline);
int maosc_reconnect_nb(maos_ctx *c);
maos_ctx *maosc_ctx_new(const maos_options *opt);
void maosc_hs_step(maos_ctx *c);

/* push.c */
void maosc_aclaims_lost(struct maos_ctx_priv *p);
int maosc_records_to_events(maos_slice items, size_t n, maos_event *ev);
struct dnode *maosc_dq_pop(struct maos_ctx_priv *p);
int maosc_route_frame(maos_ctx *c, maos_slice frame);
int maosc_next_of(maos_ctx *c, uint64_t sub, int timeout_ms, maos_delivery **out);

/* subs.c */
struct csub *maosc_sub_by_server_id(struct maos_ctx_priv *p, uint64_t sid);
int maosc_sub_register(maos_ctx *c, struct csub *s, int from_kind, uint64_t from,
                       int resume);
int maosc_subs_resume(maos_ctx *c);

/* async.c: submit mode around a synchronous call (client.h
 * "Asynchronous requests"), for the async forms built in other files */
int maosc_async_begin(maos_ctx *c, maos_callback cb, void *privdata);
int maosc_async_end(maos_ctx *c, int rc);

/* async.c: a completion with no request (status, errstr), whose callback
 * runs from maos_process like a reply's.  0 or MAOS_ENOMEM. */
int maosc_post(maos_ctx *c, maos_callback cb, void *privdata, int status, const char *errstr);
/* The callback of a request of the library's own whose answer nobody reads
 * (an unsubscribe, a release of tasks claimed for no one). */
void maosc_ignore(maos_ctx *c, int status, maos_result *r, void *arg);
/* Forget the late locks (the connection is gone: its bound locks with it). */
void maosc_late_locks_free(struct maos_ctx_priv *p);

/* tables.c: async waiting locks.  expire: those whose wait is over get
 * MAOS_ETIMEOUT; *next: the earliest deadline still to come (-1: none,
 * else kept when earlier).  abort: every one waiting gets status (maos_free). */
void maosc_lockw_expire(maos_ctx *c, long long now, long long *next);
void maosc_lockw_abort(maos_ctx *c, int status);

/* calls.c, queues.c: wire forms of the caller's input, checked */
/* append_batch (calls.c): a result as the caller's outcome; the request
 * queued for maos_async_append_batch. */
void maosc_batch_outcome(maos_ctx *c, const maos_batch_result *res, maos_batch_outcome *out,
                         uint8_t (*ids)[16], size_t cap);
int maosc_append_batch_queue(maos_ctx *c, const maos_txn_append *appends, size_t n);
int maosc_appends_in(maos_ctx *c, int txn, const maos_txn_append *ap, size_t n,
                     maos_append_in **in_out, maos_event_in **evs_out, int *all_ids_out);
int maosc_tasks_in(maos_ctx *c, const void *const *datas, const size_t *lens,
                   const maos_task_opts *opts, size_t n, maos_task_in **out);

/* tables.c */
int maosc_make_table_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, int single,
                     maos_table_page **out);
int maosc_agent_send(maos_ctx *c, uint64_t *revision);
int64_t maosc_now_us_real(void);
void maosc_uuidv7(uint8_t id[16]);

/* calls.c, queues.c: replies into the caller's objects (f taken) */
int maosc_make_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, maos_page **out);
int maosc_copy_result(maos_ctx *c, const maos_append_result *r, maos_append_info *out,
                      uint8_t (*ids)[16], size_t cap);
int maosc_make_stream_page(maos_ctx *c, struct rxf *f, const maos_reply *rp,
                           maos_stream_page **out);
int maosc_stats_from(maos_ctx *c, const maos_reply *rp, maos_stats_info *out);
void maosc_stream_meta_from(const maos_reply *rep, maos_stream_meta_info *out);
int maosc_queue_stats_from(maos_ctx *c, const maos_reply *rp, maos_queue_stat **out,
                           size_t *n);
int maosc_stats_kv_from(maos_ctx *c, const struct rxf *f, const maos_reply *rep,
                        maos_stats_kv **out);
int maosc_make_task_page(maos_ctx *c, struct rxf *f, const maos_reply *rep, int single,
                         maos_task_page **out);

/* wire.c */
void maosc_win_reset(struct opwin *w);
void maosc_win_del(struct opwin *w, uint64_t rid);
void maosc_free_rxf_list(struct rxf **head, struct rxf **tail);
int maosc_wait_fd(maos_ctx *c, short events);
int maosc_rxq_push(maos_ctx *c, maos_slice frame);
int maosc_rx_read(maos_ctx *c, int *got);
int maosc_rx_read_some(maos_ctx *c);
int maosc_rx_take(maos_ctx *c, struct rxf **out);
int maosc_flush_out(maos_ctx *c);
int maosc_frame_begin(maos_ctx *c, size_t *start, msgpack_packer *pk);
int maosc_frame_end(maos_ctx *c, size_t start, uint64_t rid, maos_op op, int enc_rc);
uint64_t maosc_take_rid(struct maos_ctx_priv *p);
int maosc_maybe_flush(maos_ctx *c);
int maosc_take_reply(maos_ctx *c, const struct rxf *f, uint64_t want, maos_reply *rep,
                      maos_op *op);
int maosc_sync_reply(maos_ctx *c, uint64_t rid, struct rxf **fout,
                      maos_reply *rep);
int maosc_sync_ready(maos_ctx *c);
maos_slice maosc_cstr(const char *s);
int maosc_check_str(maos_ctx *c, const char *what, const char *s);
int maosc_check_doc(maos_ctx *c, const char *what, const void *doc, size_t len, int empty_ok);
int maosc_check_value(maos_ctx *c, const char *what, const void *v, size_t len);

#endif
