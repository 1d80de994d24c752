/*
 * daemon/maosd.h -- shared internals of maosd: configuration, the server
 * and connection objects, the dispatch table and the commit interface.
 *
 * Threads: everything here belongs to the loop thread except what
 * commit.h hands to the commit thread (maosd_wreq while it is queued) and
 * the atomic counters in maosd_counters.
 */
#ifndef MAOSD_H
#define MAOSD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>
#include <uv.h>

#include "datadir.h"
#include "maos/proto.h"
#include "store.h"
#include "commit.h"
#include "tables.h"

/* Exit statuses of maosd (also in --help, README and the systemd unit). */
enum {
    MAOSD_EXIT_OK = 0,
    MAOSD_EXIT_FAILURE = 1, /* could not start or run (config, socket, ...) */
    MAOSD_EXIT_USAGE = 2,   /* bad flags or config file */
    MAOSD_EXIT_DAMAGED = 3, /* the data directory is damaged, foreign or
                             * lost acknowledged writes: refused, unchanged */
};

/* ---- logging (log.c) ------------------------------------------------------ */

enum { MAOSD_LOG_ERROR = 3, MAOSD_LOG_WARN = 4, MAOSD_LOG_INFO = 6, MAOSD_LOG_DEBUG = 7 };
extern int maosd_log_level;
/* Read the environment (journald or terminal); call once at start-up,
 * before any other thread runs. */
void maosd_log_init(void);
void maosd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "error" | "warn" | "info" | "debug" -> level, or -1. */
int maosd_log_parse_level(const char *s);
#define maosd_logf(lvl, ...)                                                   \
    do {                                                                       \
        if ((lvl) <= maosd_log_level)                                          \
            maosd_log((lvl), __VA_ARGS__);                                     \
    } while (0)

/* ---- configuration (config.c) --------------------------------------------- */

typedef struct maosd_config {
    char *config_file;   /* file read, or NULL */
    char *data_dir;
    char *socket_path;
    char *socket_group;  /* NULL: socket 0600; else 0660 owned by that group */
    int sync;            /* durability: 1 sync (default), 0 none */
    uint32_t max_frame;
    uint32_t max_connections;
    uint32_t max_connections_per_uid; /* root and the daemon's uid: exempt */
    uint32_t hello_timeout_ms;        /* a connection without hello is closed */
    size_t max_output;       /* per-connection cap on what it holds, bytes */
    size_t max_total_output; /* the same, all connections together, bytes */
    size_t block_cache_mb;
    uint32_t max_subscriptions; /* per connection */
    int log_level;
    int salvage;         /* --salvage: open up to damage (flag only) */
} maosd_config;

/*
 * Connections kept for root and the daemon's own uid: the last
 * MAOSD_RESERVED_CONNS of max_connections (a quarter of it when that is
 * smaller), so that the operator can always get in.
 */
#define MAOSD_RESERVED_CONNS 16u
uint32_t maosd_config_reserved(const maosd_config *cfg);

/*
 * Fill *cfg from defaults, the config file and argv, in that order of
 * increasing precedence.  Returns 0 to run, 1 when --help/--version was
 * printed (exit 0), or -1 after printing a usage error (exit 2).
 */
int maosd_config_load(maosd_config *cfg, int argc, char **argv);
void maosd_config_free(maosd_config *cfg);

/* ---- server and connections (server.c) ------------------------------------ */

typedef struct maosd_counters {
    atomic_uint_fast64_t requests, bytes_in, bytes_out;
    atomic_uint_fast64_t commit_groups, commit_requests, commit_events;
    atomic_uint_fast64_t commit_max_group, commit_errors, commit_write_us;
    atomic_uint_fast64_t head_position;
} maosd_counters;

typedef struct maosd_conn maosd_conn;
typedef struct maosd_commit maosd_commit;
typedef struct maosd_sub maosd_sub;

/*
 * A subscription (op_sub.c).  Event subscriptions are either live (fed by
 * the fan-out of each committed group) or catching up (on the pump list,
 * fed from disk up to srv->delivered_head); channel subscriptions only
 * receive what is published while they exist.
 */
struct maosd_sub {
    maosd_sub *next, *prev;  /* server's list: srv->subs or srv->chan_subs */
    maosd_sub *conn_next;    /* the connection's list */
    maosd_sub *pump_next;    /* srv->pump while catching up */
    maosd_conn *conn;
    uint64_t id;             /* unique per connection, from 1 */
    int channel;             /* 1: a channel subscription */
    int live;
    int pumping;
    int waiting;             /* from_version past the head: skips the
                              * stream's versions below wait_version */
    uint64_t wait_version;
    uint64_t next_pos;       /* next position this subscription considers */
    maos_filter filter;      /* slices into mem */
    char *pattern;           /* channel: NUL-terminated glob, in mem */
    char *mem;
};

typedef struct maosd_server {
    uv_loop_t *loop;
    uv_pipe_t listener;
    uv_signal_t sig_term, sig_int;
    maosd_config *cfg;
    maos_limits lim;
    maosd_store *store;
    maosd_headfile *headfile; /* MAOS-HEAD, written by the commit thread */
    maosd_commit *commit;
    maosd_counters counters;
    uint64_t start_us;
    uint64_t next_conn_id;
    uint32_t n_conns;
    uint64_t conns_total;
    uint64_t conns_refused;  /* refused at accept: a connection limit */
    uint64_t hello_timeouts; /* closed without hello within hello_timeout_ms */
    maosd_conn *conns;   /* list of open connections */
    maosd_conn *greet_head, *greet_tail; /* before hello, oldest first */
    uv_timer_t hello_timer;
    uid_t euid;          /* the daemon's own uid (exempt from the uid limit) */
    /* Memory held for connections (server.c): the sum of every
     * connection's maosd_conn_load(), against cfg->max_total_output. */
    size_t buffered;
    size_t buffered_high;    /* highest since the allocator was last trimmed */
    uint32_t n_paused;       /* connections not read: over a cap */
    uint32_t n_budget_paused;/* ... of them, for the daemon's budget */
    int over_budget;         /* buffered was over max_total_output */
    int resume_pending;      /* the budget freed up: resume paused ones */
    uv_timer_t trim_timer;
    int trim_armed;
    int stopping;
    int listening;
    int lock_fd;         /* flock on <socket>.lock, held while running */
    /* subscriptions (loop thread only) */
    maosd_sub *subs;      /* event subscriptions */
    maosd_sub *chan_subs; /* channel subscriptions */
    maosd_sub *pump;      /* catching up from disk, served round-robin */
    maosd_sub *pump_tail;
    uv_idle_t pump_idle;
    int pump_running;
    uint64_t delivered_head; /* last position fanned out to live subscribers */
    uint64_t n_subs, n_chan_subs;
    uint64_t push_frames, push_events, fell_behind;
    uint64_t channel_messages, channel_dropped;
    uint64_t drained_at; /* loop time the commit queue emptied at shutdown */
} maosd_server;

struct maosd_conn {
    uv_pipe_t pipe;      /* first: handle <-> conn casts */
    maosd_server *srv;
    maosd_conn *next, *prev;
    maosd_conn *greet_next, *greet_prev; /* srv's before-hello list */
    uint64_t accepted_ms;    /* loop time of the accept */
    int greeting;            /* on the before-hello list */
    int uid_counted;         /* counted in the per-uid table */
    uint64_t id;
    pid_t pid;
    uid_t uid;
    gid_t gid;
    maos_reader rd;
    msgpack_sbuffer out; /* replies not yet handed to uv_write */
    size_t in_flight_out;/* bytes handed to uv_write, not yet written */
    unsigned refs;       /* 1 while open + 1 per queued write request */
    int hello;           /* handshake done */
    int closing;         /* marked; freed by the loop when refs reach 0 */
    int reading;         /* uv_read_start active */
    int close_after_flush;
    int out_broken;
    int dirty;           /* on the flush list */
    maosd_conn *dirty_next;
    int paused;          /* not read: MAOSD_PAUSED_CAP (its own cap, resumed
                          * as it drains) or MAOSD_PAUSED_BUDGET (the
                          * daemon's budget, resumed as that frees up) */
    uint32_t pending_writes; /* requests at the commit thread */
    size_t pending_bytes;    /* what they cost (maosd_wreq_cost) */
    size_t acct;             /* this connection's share of srv->buffered */
    maosd_sub *subs;         /* this connection's subscriptions */
    uint32_t n_subs;
    uint64_t next_sub_id;
    /* tables (tables.c) */
    char *agent;             /* the agent it registered (NUL-terminated) */
    struct maosd_bound *bound; /* entries bound to it, newest first */
};

/* Start listening; logs and returns -1 on failure. */
int maosd_server_listen(maosd_server *srv);
/* Begin graceful shutdown (first signal). */
void maosd_server_stop(maosd_server *srv);

/*
 * Reply frames.  maosd_reply_begin reserves the 4-byte header in c->out and
 * returns a packer on it; maosd_reply_end patches the length and schedules a
 * flush.  Between the two, encode exactly one msgpack value.
 */
size_t maosd_reply_begin(maosd_conn *c, msgpack_packer *pk);
void maosd_reply_end(maosd_conn *c, size_t mark);
/* Encode an error reply frame. */
void maosd_reply_error(maosd_conn *c, uint64_t rid, int code, const char *msg,
                       int has_actual, int64_t actual, int64_t index);
/* Drop a reference taken for a queued request. */
void maosd_conn_unref(maosd_conn *c);
/* A write request costing `cost` bytes (maosd_wreq_cost) was queued for c /
 * came back: counted against the connection's cap like its output. */
void maosd_conn_write_queued(maosd_conn *c, size_t cost);
void maosd_conn_write_done(maosd_conn *c, size_t cost);
/* Close c once its output is written (a failure the client must see as a
 * dropped connection; safe inside loops over connections). */
void maosd_conn_fail(maosd_conn *c);
/* c completed hello: it leaves the hello timeout. */
void maosd_conn_greeted(maosd_conn *c);
/*
 * Memory a connection holds (server.c): its load -- output not yet written
 * (allocated bytes), output handed to the kernel but not yet taken, and the
 * cost of its writes at the commit thread -- is capped by max_output, and
 * all connections' loads together by max_total_output.  (Its reader holds
 * at most one request besides: max_frame + 4 bytes.)
 */
size_t maosd_conn_load(const maosd_conn *c);
/* 1 when c must not take more work now (another request, another push):
 * over its own cap, or the daemon is over max_total_output and c's load is
 * more than MAOSD_LIGHT_BYTES.  A connection that holds almost nothing is
 * always served, so clients that read their replies keep going however
 * much others hold. */
int maosd_conn_over_cap(const maosd_conn *c);
#define MAOSD_LIGHT_BYTES (64u << 10)
enum { MAOSD_PAUSED_CAP = 1, MAOSD_PAUSED_BUDGET = 2 };
/* 1 when a catch-up slice may go to c: its load is at most MAOSD_PUMP_WINDOW
 * (catch-up can always re-read from disk, so it never buffers more) and is
 * not over a cap. */
int maosd_conn_pump_ok(const maosd_conn *c);
#define MAOSD_PUMP_WINDOW (1u << 20)

/* Subscriptions (op_sub.c): set-up, a closing connection's clean-up, and
 * the nudge when a connection's output drains. */
void maosd_subs_init(maosd_server *srv);
void maosd_subs_close(maosd_server *srv);
void maosd_sub_conn_closed(maosd_conn *c);
void maosd_sub_kick(maosd_server *srv);
void maosd_subs_stats(maosd_server *srv, maos_stats *st);
/* A new event subscription of c (filter copied) from position `from`
 * (waiting: for version wait_version of the filter's stream), not yet
 * running: the caller replies with s->id, then maosd_sub_run (its first
 * push may go out at once).  NULL: out of memory.  The caller checks
 * max_subscriptions. */
maosd_sub *maosd_sub_new(maosd_server *srv, maosd_conn *c, const maos_filter *f,
                         uint64_t from, int waiting, uint64_t wait_version);
/* Live at once when its position is past delivered_head, else catching up. */
void maosd_sub_run(maosd_server *srv, maosd_sub *s);


/* Fill the stats counters (loop thread). */
void maosd_server_stats(maosd_server *srv, maos_stats *st);

/* ---- dispatch (dispatch.c, op_*.c) ------------------------------------------ */

enum {
    MAOSD_OPF_NO_HELLO = 1, /* allowed before the handshake */
    MAOSD_OPF_WRITE = 2,    /* goes to the commit thread; needs a writable store */
};

/*
 * A request being handled on the loop thread.  frame/frame_len is the
 * request's own copy for MAOSD_OPF_WRITE ops (the handler takes ownership
 * by setting *frame_owned = NULL), else a view into the reader's buffer.
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
    uint32_t count;        /* out: events written */
    uint32_t scanned;      /* out: records examined */
    int more;              /* out: stopped early; next is where to go on */
    uint64_t next;
} maosd_scan;

/* Append the raw records of matching events from position `from` (forward;
 * backward: at or before it) to out.  0 or a negative code. */
int maosd_collect(maosd_store *st, uint64_t from, maosd_scan *sc,
                  msgpack_sbuffer *out);
size_t maosd_reply_budget(const maosd_server *srv);
/* A read failed while its reply was being written from mark on: drop the
 * partial reply, set call->why, log a storage failure; returns the code
 * to answer with (OVERLOADED for out of memory). */
int maosd_drop_reply(maosd_call *call, size_t mark, int rc);
/* The position of a stream's version; MAOS_ENOT_FOUND if absent. */
int maosd_stream_version_position(maosd_store *st, maos_slice stream,
                                  uint64_t version, uint64_t *pos);

/* Subscriptions' listener on committed groups (op_sub.c): delivers
 * their records to live subscriptions. */
void maosd_sub_fanout(maosd_server *srv, void *arg, maosd_wreq *list);

/* ---- start-up recovery (recover.c) ---------------------------------------- */

typedef struct maosd_recover_opts {
    const char *dir;
    int sync;
    size_t block_cache_bytes;
    int salvage;
} maosd_recover_opts;

typedef struct maosd_recovery {
    int exit_code;          /* on failure: MAOSD_EXIT_DAMAGED or _FAILURE */
    char err[2048];         /* on failure: the one message to log */
    int created, adopted;   /* a new store; a store without MAOS adopted */
    int torn_tail;          /* replay dropped a torn tail (see wal) */
    int salvaged;           /* --salvage got past damage */
    int unsynced_loss;      /* durability none lost acknowledged events */
    char wal[768];          /* what WAL replay met, "" if nothing */
    char notes[512];
    char store_id[37];
    uint64_t acked_before;  /* the acknowledged head found in MAOS-HEAD */
    maosd_head head;        /* the recovered log head */
    int64_t last_time;
    /* an event for stream $system recording a salvage or a loss: type and
     * msgpack data (malloc'ed, freed by maosd_recovery_free) or NULL */
    const char *system_type;
    char *system_data;
    size_t system_len;
} maosd_recovery;

/* Open the data directory (recover.c top comment).  0 with *st and *hf
 * (MAOS-HEAD open for writing), or a negative code with r->err and
 * r->exit_code set; nothing is left open then. */
int maosd_recover(const maosd_recover_opts *o, maosd_store **st,
                  maosd_headfile **hf, maosd_recovery *r);
void maosd_recovery_free(maosd_recovery *r);
/* Queue a daemon-initiated append of one event (stream, type, msgpack
 * data) through the commit thread, like a client's (op_stream.c); the
 * outcome is logged.  0 or a negative code. */
int maosd_append_internal(maosd_server *srv, const char *stream, const char *type,
                          const char *data, size_t len);

/* Microseconds since the epoch (CLOCK_REALTIME). */
int64_t maosd_now_us(void);

#endif
