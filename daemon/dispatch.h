/*
 * daemon/dispatch.h -- the request path (dispatch.c) and the ops
 * (op_sys.c, op_stream.c, op_sub.c, tables.c): the op table's rows, the
 * hand-off of writes to the commit thread, and the bounded scans that
 * reads and subscriptions share.
 */
#ifndef MAOSD_DISPATCH_H
#define MAOSD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "keys.h"
#include "access.h"
#include "server.h"

enum {
    MAOSD_OPF_NO_HELLO = 1, /* allowed before the handshake */
    MAOSD_OPF_WRITE = 2,    /* goes to the commit thread; needs a writable store */
    MAOSD_OPF_OFFLOOP = 4,  /* read by the reader pool (reader.c): the
                             * request gets its own frame copy, as a write */
};

/*
 * A request being handled on the loop thread.  frame/frame_len is the
 * request's own copy for MAOSD_OPF_WRITE and MAOSD_OPF_OFFLOOP ops (the
 * handler takes ownership by setting call->frame = NULL), else NULL (the
 * request's slices point into the connection's reader buffer).
 */
typedef struct maosd_call {
    maosd_server *srv;
    maosd_conn *conn;
    maos_request *req;
    char *frame;       /* malloc'ed copy for write ops */
    size_t frame_len;
    char why[256];     /* error message for the reply when the handler fails */
    int has_actual;
    int64_t actual;
    int64_t index;     /* which append or op of a txn or append_batch was
                        * refused (access check), or -1 */
} maosd_call;

/* Returns 0 when it wrote (or will write) the reply, or a negative code;
 * then the dispatcher replies with that code and call->why. */
typedef int (*maosd_handler)(maosd_call *call);

typedef struct maosd_op {
    maos_op op;
    const char *name;
    maosd_handler handler;
    unsigned flags;
} maosd_op;

/* Run one request frame through decode, look up, validate, authorize,
 * storage gate and handler. */
void maosd_dispatch(maosd_conn *c, const char *frame, size_t len);

int maosd_op_hello(maosd_call *call);
int maosd_op_ping(maosd_call *call);
int maosd_op_stats(maosd_call *call);
int maosd_op_append(maosd_call *call); /* append and txn */
int maosd_op_read(maosd_call *call);
int maosd_op_read_all(maosd_call *call);
int maosd_op_streams(maosd_call *call);
int maosd_op_subscribe(maosd_call *call);
int maosd_op_unsubscribe(maosd_call *call);
int maosd_op_checkpoint_save(maosd_call *call);
int maosd_op_checkpoint_get(maosd_call *call);
int maosd_op_publish(maosd_call *call);
int maosd_op_subscribe_channel(maosd_call *call);
int maosd_op_put(maosd_call *call);      /* tables.c */
int maosd_op_delete(maosd_call *call);
int maosd_op_get(maosd_call *call);
int maosd_op_list(maosd_call *call);
int maosd_op_count(maosd_call *call);
int maosd_op_watch(maosd_call *call);
int maosd_op_agent_register(maosd_call *call);
int maosd_op_agent_status(maosd_call *call);
int maosd_op_agent_deregister(maosd_call *call);
int maosd_op_queue_write(maosd_call *call); /* queues.c: enqueue, ack, nack,
                                             * extend, release, dead_retry,
                                             * dead_purge */
int maosd_op_claim(maosd_call *call);
int maosd_op_task(maosd_call *call);
int maosd_op_queue_stats(maosd_call *call);
int maosd_op_dead_list(maosd_call *call);
int maosd_op_task_list(maosd_call *call);
int maosd_op_backup(maosd_call *call);       /* backup.c */
int maosd_op_metrics(maosd_call *call);      /* metrics.c */
int maosd_op_token_create(maosd_call *call); /* access.c */
int maosd_op_token_list(maosd_call *call);
int maosd_op_token_revoke(maosd_call *call);
/* A request of op that arrived at t0_ns (uv_hrtime) is answered now. */
void maosd_metrics_observe(maosd_server *srv, int op, uint64_t t0_ns);
/* "ok", "read_only" (a write failure, --read-only) or "no_space" (below
 * min_free_mb: writes refused until space is freed). */
const char *maosd_server_state(const maosd_server *srv);
/* The message of a READ_ONLY refusal: --read-only, or a write failure. */
const char *maosd_read_only_why(const maosd_server *srv);
/* Start-up: remove the staging directories of backups a stop cut short. */
void maosd_backup_clean(const char *data_dir);
/* Queue a decoded write request to the commit thread (op_stream.c): the
 * request and *frame (frame_len bytes, malloc'ed; set to NULL) move into a
 * maosd_wreq answered by maosd_write_reply.  c is NULL for maosd's own
 * writes.  0, or MAOS_EOVERLOADED (out of memory; nothing moved). */
int maosd_queue_write(maosd_server *srv, maosd_conn *c, maos_request *req,
                      char **frame, size_t frame_len);
/* maosd_queue_write without the submit: the request of c (NULL: maosd),
 * its writer and meta.agent stamping done, for a handler that adds to it
 * (its own items) before maosd_submit.  NULL: out of memory (nothing
 * moved). */
maosd_wreq *maosd_wreq_for(maosd_conn *c, maos_request *req, char **frame,
                           size_t frame_len);
/* The one place that hands a request to the commit thread: its cost
 * (maosd_wreq_cost) is counted against w->conn's cap and the daemon's
 * budget, and w->conn is held until the done step. */
void maosd_submit(maosd_server *srv, maosd_wreq *w);
/* w with the one item it (malloc'ed, taken), its done step (NULL: the
 * client's reply) and done_arg, submitted: the ops that make their own
 * item (backup, stream_meta, tokens, agents). */
void maosd_submit_item(maosd_server *srv, maosd_wreq *w, maos_item_in *it,
                       maosd_wdone_fn done, void *done_arg);
/* The default done step: answer w->conn (or log maosd's own write) and
 * free w. */
void maosd_write_reply(maosd_server *srv, maosd_wreq *w);

/* ---- scans (op_stream.c), shared by reads and subscriptions ------------------ */

/* A bounded read of events into a buffer: what to read, and what happened. */
typedef struct maosd_scan {
    const maos_filter *f;  /* NULL or empty: every event */
    int backward;
    uint64_t upto;         /* forward: stop (not "more") after this position */
    uint32_t limit;        /* events */
    size_t budget;         /* bytes (the first event always fits) */
    int next_is_version;   /* op read: "next" is a version, not a position */
    uint32_t max_scan;     /* records examined at most (0: 20,000) */
    uint64_t vmin;         /* one stream's scan: versions below are removed
                            * (retention), never returned */
    int removed;           /* read_all {removed: true}: stubs too */
    int form;              /* records out as stored (MAOS_FORM_MAP) or in
                            * the array form (maos_record_to_array) */
    const struct maosd_rights *rights; /* take only events whose stream
                                        * these allow for rights_kind
                                        * (NULL: all; access.c) */
    int rights_kind;
    uint32_t count;        /* out: events written */
    uint32_t scanned;      /* out: records examined */
    int more;              /* out: stopped early; next is where to go on */
    uint64_t next;
} maosd_scan;

/* Append the records (in sc->form) of matching events from position `from` (forward;
 * backward: at or before it) to out.  0 or a negative code. */
int maosd_collect(maosd_store *st, uint64_t from, maosd_scan *sc,
                  msgpack_sbuffer *out);
size_t maosd_reply_budget(const maosd_server *srv);
/* A read failed while its reply was being written from mark on: drop the
 * partial reply, set call->why, log a storage failure; returns the code
 * to answer with (OVERLOADED for out of memory). */
int maosd_drop_reply(maosd_call *call, size_t mark, int rc);
/* The code and message of a failed read (rc from a scan or the store):
 * out of memory is OVERLOADED, anything else a storage failure with
 * RocksDB's words of this thread's last failed read (*log_it: log why
 * once, where it is handled). */
int maosd_read_failure(int rc, char *why, size_t whylen, int *log_it);
/* A stream's meta ('m' key, keys.h); all zero when it has none. */
int maosd_stream_smeta(maosd_store *st, maos_slice stream, maosd_smeta *m);
/* The position of a stream's version (a removed version: of the first
 * version left); MAOS_ENOT_FOUND if absent. */
int maosd_stream_version_position(maosd_store *st, maos_slice stream,
                                  uint64_t version, uint64_t *pos);


/* Queue a daemon-initiated append of one event (stream, type, msgpack
 * data) through the commit thread, like a client's (op_stream.c); the
 * outcome is logged.  0 or a negative code. */
int maosd_append_internal(maosd_server *srv, const char *stream, const char *type,
                          const char *data, size_t len);

#endif
