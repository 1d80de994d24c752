/*
 * daemon/commit.h -- the one write path: write requests, the write kinds,
 * the commit thread and the effects of a committed group.
 * docs/ARCHITECTURE.md, "The path of a write", has the long form.
 *
 * Every write -- a client's append, txn, put, delete, checkpoint, an agent
 * op, or one of maosd's own (the $system record, the release of a closed
 * connection's bound entries) -- is a maosd_wreq: a common header, a
 * payload (a decoded maos_request: an ordered list of items, each of one
 * write kind) and an optional connection.  The loop queues it
 * (maosd_commit_submit); the commit thread takes everything queued as one
 * group and, per request:
 *
 *   check   every item's preconditions, against the database plus the
 *           group's own pending writes (reads go through the indexed batch)
 *   stage   every item's writes into the group's batch, with the events
 *           that record them (positions, versions, hash chain)
 *
 * then makes one RocksDB write for the group.  Back on the loop, the
 * group's effects go to the registered listeners (subscriptions' fan-out,
 * connection bindings, ...), then each request's done step runs (a
 * client's reply, or maosd's own follow-up).  commit.c knows the kinds
 * (the table in commit.c), not the listeners.
 *
 * Ownership: a request belongs to the loop until maosd_commit_submit, to
 * the commit thread until its group comes back, then to the loop again
 * (maosd_wreq_free).  The commit thread never touches a connection: what
 * it needs of the writer is copied into w->who when queued.
 */
#ifndef MAOSD_COMMIT_H
#define MAOSD_COMMIT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "datadir.h"
#include "maos/proto.h"
#include "store.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_conn maosd_conn;
typedef struct maosd_commit maosd_commit;
typedef struct maosd_wreq maosd_wreq;

/* Who wrote: copied from the connection when the request is queued. */
typedef struct maosd_writer {
    uint64_t conn_id;  /* 0: maosd itself */
    pid_t pid;
    uid_t uid;
    maos_slice agent;  /* the connection's registered agent id, or empty
                        * (bytes owned by the request: w->agent_mem) */
    const struct maosd_rights *rights; /* the connection's (access.h; NULL:
                                        * everything): immutable, and the
                                        * connection is held by the request */
} maosd_writer;

/* Result of one item, written by the commit thread. */
typedef struct maosd_item_out {
    maos_append_result append; /* APPEND */
    uint64_t revision;         /* table items: the revision written */
    uint64_t created_revision;
    int nothing;               /* checked: nothing to write (an idempotent
                                * re-send, a release of a rebound entry) */
    /* append_batch: this item's refusal (its other items go on): code
     * (0: none), reason (malloc'ed, or NULL) and actual version */
    int refused;
    char *refused_why;
    int has_actual;
    int64_t actual;
    size_t ids_off;            /* APPEND: its first id in w->ids (16 bytes
                                * each), set before the checks */
    /* check -> stage scratch */
    int exists;
    uint64_t head;             /* APPEND: stream head version */
    uint64_t cur_created_rev;  /* table items: the entry as found */
    int64_t cur_created;
    int was_bound;
    /* queue items: tasks claimed / enqueued / retried / purged (their
     * reply bytes are in w->qout from q_off on), more left (dead ops),
     * nack's new state, extend's lease */
    uint32_t q_n;
    size_t q_off;
    int q_more;
    const char *q_state;
    int64_t lease_until;
} maosd_item_out;

/* A queue that got ready tasks in a committed request (waiting claims are
 * woken by it). */
typedef struct maosd_qready {
    char queue[MAOS_QUEUE_NAME_MAX];
    uint32_t len;
    uint32_t n;
    uint64_t min_seq;          /* the lowest seq among them (queues.c keeps
                                * where its oldest-ready scan starts) */
} maosd_qready;

/* An entry a committed request changed (table items), for listeners. */
typedef struct maosd_change {
    maos_table_ref table;
    maos_slice key;            /* into the request's memory */
    uint64_t revision;
    int deleted;
    uint64_t bound_conn;       /* now bound to this connection id, or 0 */
} maosd_change;

/* Loop step once the request's group is back (NULL: the client reply). */
typedef void (*maosd_wdone_fn)(maosd_server *srv, maosd_wreq *w);

struct maosd_wreq {
    maosd_wreq *next;
    /* header */
    maosd_conn *conn;          /* NULL: maosd's own write */
    maosd_wdone_fn done;       /* NULL: answer conn (maosd_write_reply) */
    void *done_arg;
    size_t cost;               /* maosd_wreq_cost(), set when queued */
    size_t n_events;           /* events of its appends (the group bound) */
    uint64_t t0_ns;            /* when it arrived (uv_hrtime), for metrics */
    maosd_writer who;
    char *agent_mem;
    char *doc_mem;             /* documents maosd built for the items */
    /* payload */
    char *frame;               /* the request bytes; req's slices point here */
    size_t frame_len;
    maos_request req;          /* req.items: what to write, in order */
    int items_owned;           /* req.items is malloc'ed by maosd (its own
                                * items), not the decoder's: freed with w */
    /* outcome, filled by the commit thread */
    int code;                  /* 0 or negative MAOS_E* */
    char *why;                 /* malloc'ed reason, only on error (or NULL) */
    int has_actual;
    int64_t actual;
    int64_t index;             /* failing item of a txn, -1 */
    msgpack_sbuffer current;   /* WRONG_REVISION of a put/delete: the entry
                                * as it is (maosd_enc_entry), size 0: none */
    maosd_item_out *out;       /* req.n_items */
    uint8_t *ids;              /* 16 per event of the APPEND items */
    msgpack_sbuffer recs;      /* the committed records, back to back in
                                * position order (for the fan-out) */
    uint32_t n_recs;
    uint64_t last_pos;         /* position of the last of them */
    maosd_change *changes;     /* entries changed, n_changes */
    uint32_t n_changes;
    /* queues */
    atomic_int q_cancel;       /* a waiting claim: stop waiting (loop sets it,
                                * maosd_commit_cancel) */
    int q_touched;             /* staged a queue write (timers may move) */
    msgpack_sbuffer qout;      /* reply bytes of queue items (out[].q_off) */
    maosd_qready *qready;      /* queues that got ready tasks */
    uint32_t n_qready, cap_qready;
};

/* A request for `req` (moved in: req->mem_ and *frame are taken, *frame
 * set to NULL), with result space for its items (at least one).  NULL: out of memory
 * (nothing moved). */
maosd_wreq *maosd_wreq_new(maos_request *req, char **frame, size_t frame_len);
void maosd_wreq_free(maosd_wreq *w);
/* A request of maosd's own with one item of kind (item position: its
 * argument), no connection.  NULL: out of memory. */
maosd_wreq *maosd_own_item(int kind, uint64_t position);
/* Forget the outcome of a request that came back, so that it can be
 * submitted again (a waiting claim): code, results, records, notes. */
void maosd_wreq_reset(maosd_wreq *w);
/* Bytes the committed records of this request can take at most (the
 * commit thread sizes w->recs with it), and what a queued request costs in
 * all (dispatch.c). */
size_t maosd_wreq_records_bound(const maos_request *req, size_t frame_len);
size_t maosd_wreq_cost(const maosd_wreq *w);

/* ---- the commit thread ------------------------------------------------------ */

/* Start the commit thread from the log head recovery found (head: last
 * position and its hash; last_time: that event's time). */
int maosd_commit_start(maosd_server *srv, const maosd_head *head,
                       int64_t last_time, maosd_commit **out);
void maosd_commit_submit(maosd_commit *cm, maosd_wreq *w);
/* A waiting claim (a CLAIM request with wait_ms) that finds no ready task
 * stays with the commit thread, parked in arrival order, and is served in
 * the group that makes a task of its queues ready (the same write: one
 * fsync for the enqueue and the claim).  This ends its wait: it comes back
 * with what it has (nothing) as soon as the commit thread sees the flag.
 * Loop thread; w must be at the commit thread. */
void maosd_commit_cancel(maosd_commit *cm, maosd_wreq *w);
/* Requests submitted and not yet handed back. */
uint64_t maosd_commit_in_flight(const maosd_commit *cm);
/* Ask the thread to finish what is queued and exit; join it; free. */
void maosd_commit_stop(maosd_commit *cm);
/* Last committed position (any thread). */
uint64_t maosd_commit_head(const maosd_commit *cm);
/* How long the commit thread has been in its current group's storage
 * write (journal, sync, RocksDB), in microseconds; 0 when it is not in
 * one.  Any thread (the watchdog asks from the loop, sdnotify.c). */
uint64_t maosd_commit_write_age_us(const maosd_commit *cm);
/* The last durable position and the hash of its record, as one pair (any
 * thread). */
void maosd_commit_durable(maosd_commit *cm, uint64_t *pos,
                          uint8_t hash[MAOS_HASH_BYTES]);

/*
 * Effects: a listener is called on the loop thread with every committed
 * group (requests in commit order; a request with code != 0 wrote
 * nothing), before any request's done step.  Listeners run in the order
 * they were added; at most MAOSD_MAX_LISTENERS.
 */
typedef void (*maosd_listener_fn)(maosd_server *srv, void *arg, maosd_wreq *list);
#define MAOSD_MAX_LISTENERS 8
int maosd_commit_listen(maosd_commit *cm, maosd_listener_fn fn, void *arg);

/* ---- for the write kinds (commit thread only) ------------------------------- */

/*
 * Per-group state: everything the commit thread keeps between requests.
 * A request's staging that fails half-way restores it from a copy (with the
 * batch rolled back to the request's mark); a failed group write restores
 * the state of the last durable group.  Revisions are log positions, so
 * the log head is also the revision counter.
 */
typedef struct maosd_wstate {
    uint64_t log_pos;                   /* last position, pending included */
    uint8_t log_hash[MAOS_HASH_BYTES];  /* its record's hash */
    int64_t last_time;                  /* group time, never decreasing */
} maosd_wstate;

/* What a kind's check and stage steps get. */
typedef struct maosd_wctx {
    maosd_server *srv;
    maosd_batch *batch;
    maosd_wstate *st;
    int64_t now;               /* the group's time */
    char *getbuf;              /* maosd_wx_get's buffer */
    size_t getcap;
    uint8_t rnd[4096];         /* random bytes for UUIDv7, refilled in bulk */
    size_t rnd_used;
    struct maosd_qcache *qcache; /* write_queue.c: where the live keys of
                                  * the queue indexes start */
    /* The stream index entry the group staged last (maosd_wx_stream_appended):
     * the next append of the same stream at the next position and version
     * extends it instead of adding an entry.  Valid only while nothing but
     * appends is staged after it (commit.c stage_items). */
    int run_valid;
    uint32_t run_count;
    uint64_t run_first, run_pos;
    size_t run_len;
    char run_stream[MAOS_STREAM_MAX];
} maosd_wctx;

/* write_queue.c, commit thread: the queue index cursors are only lower
 * bounds of what is stored; after a rollback or a failed group write they
 * are forgotten (maosd_queue_cache_reset).  After a group that wrote
 * queues was written: the earliest timer (maosd_queue_next_due: due time
 * in µs, 0 none), read from the database.  maosd_queue_cache_free at
 * exit. */
void maosd_queue_cache_reset(maosd_wctx *x);
int64_t maosd_queue_next_due(maosd_wctx *x);
void maosd_queue_cache_free(maosd_wctx *x);

/* Record an error on w (item index, or -1) and return code. */
int maosd_wfail(maosd_wreq *w, int code, int64_t index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Read a value through the batch into x->getbuf. */
int maosd_wx_get(maosd_wctx *x, maosd_cf cf, const char *k, size_t klen,
                 size_t *vlen);
/* A stream's head (exists, version of its last event). */
int maosd_wx_stream_head(maosd_wctx *x, maos_slice stream, int *exists,
                         uint64_t *head);
/* Append one event to the log: the next position, the hash chain, the
 * stream's next version (head: the version before it, exists: the stream
 * had events), its ids entry; the record goes into w->recs.  The stream's
 * head and index entry come with maosd_wx_stream_appended.  id: 16
 * bytes, or NULL for a fresh UUIDv7 (written to id_out if not NULL).
 * at/of: index of the event within its append and the append's size (for
 * idempotent re-sends).  Returns 0 or MAOS_ENOMEM; *pos gets the position. */
int maosd_wx_event(maosd_wctx *x, maosd_wreq *w, maos_slice stream,
                   uint64_t version, maos_slice type, const uint8_t *id,
                   uint8_t *id_out, uint32_t at, uint32_t of, maos_slice data,
                   maos_slice meta, uint64_t *pos);
/* After count events of one append were staged with maosd_wx_event, one
 * after the other and nothing else in between (versions first.., positions
 * pos..): the stream's head and its one index entry for them (keys.h).
 * Every writer of stream events ends with this call. */
void maosd_wx_stream_appended(maosd_wctx *x, maos_slice stream, uint64_t first,
                              uint64_t pos, uint32_t count);
/* Append one event to stream (its next version), with data and meta
 * {agent} of the writer when it has one: the whole of what a kind that
 * records a change needs.  0 or MAOS_ENOMEM/a read error; *pos. */
int maosd_wx_record(maosd_wctx *x, maosd_wreq *w, maos_slice stream,
                    maos_slice type, maos_slice data, uint64_t *pos);
/* A fresh UUIDv7. */
void maosd_wx_uuid(maosd_wctx *x, uint8_t id[16]);
/* An iterator over the keys of cf under prefix (plen bytes) that sees the
 * group's pending writes too; it never visits keys past the prefix (so
 * never the deleted keys of the next range).  Invalid after the next write
 * to the batch.  NULL: out of memory. */
maosd_iter *maosd_wx_iter(maosd_wctx *x, maosd_cf cf, const char *prefix, size_t plen);
/* The first key after every key starting with prefix (its last byte below
 * 0xff plus one, cut there) into out (plen bytes); its length (0: none). */
size_t maosd_prefix_end(char *out, const char *prefix, size_t plen);

/*
 * A write kind: what one item of a request does.  check runs for every
 * item of a request before any stage: 0 (stage it), 1 (nothing to write:
 * out->nothing) or a negative code (recorded with maosd_wfail; the request
 * writes nothing).  stage puts its writes in x->batch: 0 or MAOS_ENOMEM.
 * reply (loop) encodes its result: top = 1 for a request of one item (the
 * whole reply), 0 for one element of a txn's results.
 */
typedef struct maosd_wkind {
    const char *name;
    int (*check)(maosd_wctx *x, maosd_wreq *w, uint32_t i);
    int (*stage)(maosd_wctx *x, maosd_wreq *w, uint32_t i);
    int (*reply)(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);
} maosd_wkind;

/* maosd's own item kinds (never on the wire), after proto's MAOS_ITEM_*:
 * RELEASE (a bound entry whose connection closed: item table and key,
 * position = that connection's id, 0 any) and the agent ops, which
 * op_table.c turns into items of the agents table. */
enum {
    MAOSD_ITEM_RELEASE = 16,
    MAOSD_ITEM_AGENT_REGISTER,
    MAOSD_ITEM_AGENT_STATUS,
    MAOSD_ITEM_AGENT_DEREGISTER,
    /* queues: the timers that fell due; the claims bound to a closed
     * connection (item position: its id, 0: every connection of the
     * last run) */
    MAOSD_ITEM_QUEUE_TICK,
    MAOSD_ITEM_QUEUE_UNBIND,
    /* op backup: writes nothing; taken after its group (backup.c) */
    MAOSD_ITEM_BACKUP,
    /* op stream_meta; a retention pass (retention.c) */
    MAOSD_ITEM_STREAM_META,
    MAOSD_ITEM_RETAIN,
    /* a signed checkpoint in $chain (chain.c) */
    MAOSD_ITEM_CHAIN,
    /* token_create, token_revoke (access.c): the meta record "token/NAME" */
    MAOSD_ITEM_TOKEN_PUT,
    MAOSD_ITEM_TOKEN_DELETE,
    MAOSD_ITEM__END
};

/* The kinds, by item kind (commit.c). */
const maosd_wkind *maosd_wkind_of(int item_kind);

/* The kinds' steps (write_stream.c: append, checkpoint). */
int maosd_check_append(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_stage_append(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_reply_append(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);
int maosd_check_checkpoint(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_stage_checkpoint(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_reply_checkpoint(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);
/* (write_table.c: put, delete, release, agents) */
#define MAOSD_KIND_STEPS_(k)                                                   \
    int maosd_check_##k(maosd_wctx *x, maosd_wreq *w, uint32_t i);             \
    int maosd_stage_##k(maosd_wctx *x, maosd_wreq *w, uint32_t i);             \
    int maosd_reply_##k(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);
/* (backup.c) */
MAOSD_KIND_STEPS_(backup)
/* (retention.c) */
MAOSD_KIND_STEPS_(stream_meta)
int maosd_stage_retain(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_reply_retain(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);
/* (chain.c) */
int maosd_stage_chain(maosd_wctx *x, maosd_wreq *w, uint32_t i);
/* (access.c) */
MAOSD_KIND_STEPS_(token_put)
MAOSD_KIND_STEPS_(token_delete)
/* Commit thread, between groups: checkpoint the store for backup request
 * w, whose copy then holds head h, or fail w. */
void maosd_backup_take(maosd_store *store, const char *data_dir, const maosd_head *h,
                       maosd_wreq *w);
MAOSD_KIND_STEPS_(put)
MAOSD_KIND_STEPS_(delete)
MAOSD_KIND_STEPS_(release)
MAOSD_KIND_STEPS_(agent_register)
MAOSD_KIND_STEPS_(agent_status)
MAOSD_KIND_STEPS_(agent_deregister)
/* (write_queue.c) */
MAOSD_KIND_STEPS_(claim)
MAOSD_KIND_STEPS_(ack)
MAOSD_KIND_STEPS_(nack)
MAOSD_KIND_STEPS_(extend)
MAOSD_KIND_STEPS_(task_release)
MAOSD_KIND_STEPS_(dead_retry)
#undef MAOSD_KIND_STEPS_
/* kinds with nothing to check (enqueue, dead_purge, maosd's own); maosd's
 * own queue kinds are never answered on the wire */
int maosd_check_none(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_stage_enqueue(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_reply_enqueue(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);
int maosd_stage_dead_purge(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_reply_dead_purge(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);
int maosd_stage_queue_tick(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_stage_queue_unbind(maosd_wctx *x, maosd_wreq *w, uint32_t i);
int maosd_reply_own(msgpack_packer *pk, const maosd_wreq *w, uint32_t i, int top);

#endif
