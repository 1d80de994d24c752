/*
 * daemon/server.h -- the server and its connections (server.c): listening,
 * framing, replies, output caps and the daemon's memory budget, shutdown.
 *
 * Threads: everything here belongs to the loop thread except the atomic
 * counters in maosd_counters (the commit thread adds to them).
 */
#ifndef MAOSD_SERVER_H
#define MAOSD_SERVER_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>
#include <uv.h>

#include "commit.h"
#include "config.h"
#include "datadir.h"
#include "log.h"
#include "maos/proto.h"
#include "metrics.h"
#include "store.h"
#include "subs.h"
#include "tables.h"
#include "reader.h"

typedef struct maosd_counters {
    atomic_uint_fast64_t requests, bytes_in, bytes_out;
    atomic_uint_fast64_t commit_groups, commit_requests, commit_events;
    atomic_uint_fast64_t commit_max_group, commit_errors, commit_write_us;
    atomic_uint_fast64_t head_position;
} maosd_counters;

typedef struct maosd_conn maosd_conn;
typedef struct maosd_commit maosd_commit;

/* A minute of one-second samples, and the one before it. */
#define MAOSD_RATE_SAMPLES 61
/* Loop-lag histogram: 8 buckets per power of two of microseconds. */
#define MAOSD_LAG_BUCKETS (64 * 8)
typedef struct maosd_sub maosd_sub;

typedef struct maosd_server {
    uv_loop_t *loop;
    uv_pipe_t listener;
    uv_signal_t sig_term, sig_int, sig_hup;
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
    uint64_t reads_pooled;   /* read jobs run on the reader pool (reader.c) */
    uint64_t reads_in_memory;/* point reads answered on the loop from memory */
    uint64_t reads_ahead;    /* pages answered from a read-ahead (readahead.c) */
    /* systemd (sdnotify.c) */
    int sd_on, sd_watchdog_on, sd_stuck;
    uint64_t sd_watchdog_us;
    uv_timer_t sd_status_timer, sd_watchdog_timer;
    int listen_fd;           /* a socket passed by socket activation, or -1 */
    /* the last minute's rates (stats): a sample of the counters a second */
    uv_timer_t rate_timer;
    struct { uint64_t ms, requests, events; } rate[MAOSD_RATE_SAMPLES];
    unsigned rate_n;         /* samples taken (the ring holds the last ones) */
    maosd_conn *conns;   /* list of open connections */
    maosd_conn *greet_head, *greet_tail; /* before hello, oldest first */
    uv_timer_t hello_timer;
    uid_t euid;          /* the daemon's own uid (exempt from the uid limit) */
    gid_t sock_gid;      /* the socket's group, whose members may connect,
                          * or -1 (server.c peer_allowed) */
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
    /* queues (queues.c, loop thread only) */
    uv_timer_t queue_timer;  /* the earliest delay or lease */
    _Atomic int64_t queue_next_due; /* set by the commit thread after a group
                                     * that wrote queues (µs, 0: none) */
    int queue_timer_on;
    int queue_tick_pending;
    struct maosd_qwait *qwait_head, *qwait_tail; /* claims waiting, by arrival */
    struct qage *qage;       /* per queue: where its oldest-ready scan starts */
    uint64_t n_qwaiting;
    /* signed checkpoints (chain.c, loop thread only) */
    uv_timer_t chain_timer;
    int chain_on, chain_pending, chain_timer_on;
    uint64_t chain_signed;    /* position of the last checkpoint (or the head at start) */
    /* retention (retention.c, loop thread only) */
    uv_timer_t retention_timer;
    int retention_on, retention_pending, retention_again;
    uint64_t events_removed;  /* by passes since start */
    uint64_t log_anchor;      /* meta log_anchor as of the last pass */
    int compacting;           /* op compact running (one at a time) */
    struct retain_cursor *retain_cursor; /* where the next pass starts */
    /* audit (audit.c): refusals at accept, rate-limited server-wide */
    int64_t audit_window_ms;
    uint32_t audit_in_window;
    uint64_t audit_suppressed;
    int64_t audit_req_window_ms;   /* refusals of requests, all connections */
    uint32_t audit_req_in_window;
    uint64_t audit_dropped;        /* records not written below min_free_mb */
    /* subscriptions (loop thread only) */
    maosd_sub *subs;      /* event subscriptions */
    maosd_sub *chan_subs; /* channel subscriptions */
    maosd_sub *pump;      /* catching up from disk, served round-robin */
    maosd_sub *pump_tail;
    uv_idle_t pump_idle;
    int pump_running;
    uint32_t pump_jobs;   /* catch-up slices at the reader pool */
    uint64_t delivered_head; /* last position fanned out to live subscribers */
    uint64_t n_subs, n_chan_subs;
    uint64_t push_frames, push_events, fell_behind;
    uint64_t channel_messages, channel_dropped;
    uint64_t drained_at; /* loop time the commit queue emptied at shutdown */
    /* loop lag (server.c): per iteration, the time it worked between two
     * polls, in a log-linear histogram of microseconds */
    uv_prepare_t lag_prepare;
    uint64_t lag_last_ns, lag_last_idle_ns;
    uint64_t lag_max_us, lag_n;
    uint64_t lag_hist[MAOSD_LAG_BUCKETS];
    /* metrics (metrics.h): group write times (commit thread), request
     * times from dispatch to the reply (loop thread), by op */
    maosd_hist commit_write_hist;
    /* disk full (commit.c space_short): the reserve, and whether writes
     * are refused for it now */
    atomic_uint_fast64_t min_free_bytes;
    atomic_int no_space;
    maosd_hist req_hist[MAOS_OP__COUNT];
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
    /* audit (audit.c): refusals recorded in the current window, and
     * held back since the last record */
    int64_t audit_window_ms;
    uint32_t audit_in_window;
    uint64_t audit_suppressed;
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
    uint32_t pending_reads;  /* jobs at the reader pool (reader.c) */
    size_t pending_bytes;    /* what both cost (maosd_wreq_cost, the jobs'
                              * cost) */
    size_t acct;             /* this connection's share of srv->buffered */
    maosd_sub *subs;         /* this connection's subscriptions */
    uint32_t n_subs;
    uint64_t next_sub_id;
    /* tables (tables.c) */
    char *agent;             /* the agent it registered (NUL-terminated) */
    struct maosd_bound *bound; /* entries bound to it, newest first */
    /* queues (queues.c) */
    uint32_t q_waiting;      /* its claims waiting for a task */
    int q_bound;             /* it made bound claims (released at close) */
    /* the read-ahead of its next page (readahead.c) */
    struct maosd_ahead *ahead;
    /* what it may do (access.c), set at hello; NULL: everything.  Never
     * changed after hello; freed with the connection. */
    struct maosd_rights *rights;
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
/* The same with the current entry of a WRONG_REVISION (len 0: none). */
void maosd_reply_error_entry(maosd_conn *c, uint64_t rid, int code, const char *msg,
                             int has_actual, int64_t actual, int64_t index,
                             maos_slice entry);
/* Drop a reference taken for a queued request. */
void maosd_conn_unref(maosd_conn *c);
/* A write request costing `cost` bytes (maosd_wreq_cost) was queued for c /
 * came back: counted against the connection's cap like its output. */
void maosd_conn_write_queued(maosd_conn *c, size_t cost);
void maosd_conn_write_done(maosd_conn *c, size_t cost);
/* The same for a read job at the reader pool (reader.c). */
void maosd_conn_read_queued(maosd_conn *c, size_t cost);
void maosd_conn_read_done(maosd_conn *c, size_t cost);
/* Count delta more (or fewer) bytes held for c outside its buffers and
 * jobs (its read-ahead page) in its load and the daemon's budget. */
void maosd_conn_hold(maosd_conn *c, ssize_t delta);
/* Whole reply frames built off the loop (a read job's buffer) go to c's
 * output: moved when c's output is empty (frames is then empty), else
 * copied; an allocation failure closes c once its earlier replies are
 * written (as maosd_reply_end). */
void maosd_conn_put_frames(maosd_conn *c, msgpack_sbuffer *frames);
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
/* Two slices' worth: with one (1 MiB, a slice's frame is a little over
 * it) the next slice was read only after the client had taken the whole
 * last one, and both sides waited in turn (42% of both CPUs idle during a
 * catch-up; 2 MiB: 2.3-2.8M -> 2.6-3.0M events/s, alternating runs). */
#define MAOSD_PUMP_WINDOW (2u << 20)

/* Measure the loop's lag from now on (loop_lag_* of stats): the loop must
 * have been configured with UV_METRICS_IDLE_TIME before it ran. */
void maosd_lag_start(maosd_server *srv);
/* Fill the stats counters (loop thread). */
void maosd_server_stats(maosd_server *srv, maos_stats *st);

#endif
