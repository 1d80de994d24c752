/*
 * tests/bench/bench.h -- maos-bench: the pieces every scenario uses.
 *
 * maos-bench measures maosd with real client processes (fork), and, with
 * --vs sqlite, does the same work with the same number of processes against
 * SQLite in WAL mode, in the same run, so that every figure can be printed
 * as a ratio maos/SQLite (issue 4).  It reports; it never passes or fails on
 * speed.  A non-zero exit status means something did not work (a daemon
 * did not start, an append failed), never "too slow".
 *
 * A scenario is one small file (sc_*.c) with one entry point listed in
 * BENCH_SCENARIOS below; that list is the only scenario table.  A scenario:
 *  - starts its own maosd on a fresh temp dir and socket (bench_daemon_*),
 *    or uses the running daemon given by --socket;
 *  - runs workers in forked processes (bench_spawn), which meet at a start
 *    gate and then run for a fixed time or a fixed amount of work;
 *  - hands one sample per repetition to bench_report, which keeps the
 *    median, min and max for the table and the --json file.
 *
 * Measuring rules, the same for both systems:
 *  - a timed run lasts o->seconds; an operation counts when it completed
 *    before the deadline (so a starved process cannot stretch the run);
 *    latencies of every operation are kept (p50, p99, worst);
 *  - throughput = operations completed by the deadline / seconds; fairness
 *    = slowest process / fastest process (1.0 = perfectly fair, 0 = some
 *    process got nothing);
 *  - every figure is the median of o->reps repetitions, min and max shown;
 *    maos and SQLite repetitions alternate, so load drift hits both.
 *
 * Ownership: bench_opts is owned by main and read-only for scenarios;
 * everything else is per call and documented at each function.  Processes
 * are tracked by pid and reaped by whoever forked them; nothing is ever
 * killed by name.
 */
#ifndef MAOS_BENCH_H
#define MAOS_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */

/* X(name, "one-line description") -- the one table of scenarios.  The
 * entry point of scenario NAME is int bench_sc_NAME(const bench_opts *),
 * with '-' in NAME spelled '_' in C.  --list prints this table. */
#define BENCH_SCENARIOS(X)                                                     \
    X(append, "append",                                                        \
      "1: durable appends, 1 event per request, waiting for each reply; "      \
      "1/4/8/16/64 processes")                                                 \
    X(pipeline, "pipeline",                                                    \
      "2: durable: 4 processes x 64 appends in flight; 4 processes x "         \
      "batches of 100 events")                                                 \
    X(pipeline_none, "pipeline-none",                                          \
      "3: scenario 2 with durability none (SQLite synchronous=NORMAL)")        \
    X(replay, "replay",                                                        \
      "4: read the global log (1M events) and one stream (100k) into "         \
      "one client")                                                            \
    X(startup, "startup",                                                      \
      "5: maosd exec -> accepting with 10M events stored; RSS with 1000 "      \
      "idle connections")                                                      \
    X(latency, "latency",                                                      \
      "6: append -> subscriber delivery latency, durability none/sync, 1 and " \
      "100 subscribers; channel publish -> listen")                            \
    X(replay_live, "replay-live",                                              \
      "7: subscribe from the start of 200k stored events while a writer "      \
      "appends: catch-up rate, then live latency")                             \
    X(flood, "flood",                                                          \
      "8: 4 connections pipeline 300k appends each without reading replies: "  \
      "daemon RSS peak and after")                                             \
    X(lazy_subs, "lazy-subs",                                                  \
      "9: writer p99 and RSS with 200 subscribers from the start of 810k "     \
      "events that never read")                                                \
    X(conns, "conns",                                                          \
      "10: ping latency and RSS with 5000 connections held (1/5 before "       \
      "hello, 1/10 slowloris)")                                                \
    X(kv_cas, "kv-cas",                                                        \
      "11: 8 processes, read-modify-write increments with compare-and-set "   \
      "on 1 and on 100 keys")                                                  \
    X(liveness, "liveness",                                                    \
      "12: SIGKILL of a registered agent -> a watcher sees it offline "        \
      "(100 kills)")                                                           \
    X(queue, "queue",                                                          \
      "13: 1 producer, 8 workers claiming and acking (durable): tasks/s, "     \
      "claim latency, fairness")                                               \
    X(read_under_load, "read-under-load",                                      \
      "14: cold reads of 4 interleaved streams (100k events) while 8 "         \
      "processes append durably: appenders' p99, ping, loop lag")

typedef struct bench_opts {
    int quick;              /* tiny sizes for the test suite */
    int reps;               /* repetitions per figure */
    double seconds;         /* length of one timed run */
    const char *maosd;      /* daemon binary */
    const char *socket;     /* NULL: start our own daemons; else use this one */
    const char *tmp;        /* parent of the temp dirs */
    int vs_sqlite;          /* also run SQLite */
    int keep;               /* keep temp dirs */
    int verbose;
    uint64_t warm_events;   /* scenarios 1-3: loaded before timing */
    uint64_t replay_events; /* scenario 4: global log size */
    uint64_t stream_events; /* scenario 4: events of the one stream; 14:
                             * events of the streams read */
    uint64_t startup_events;/* scenario 5: events stored */
    int idle_conns;         /* scenario 5: idle connections */
    int block_cache_mb;     /* given to every maosd we start */
    const int *procs;       /* scenario 1 process counts, 0-terminated */
    int depth;              /* scenario 2/3 appends in flight per process */
    int batch;              /* scenario 2/3 events per batched append */
    uint64_t catchup_events;/* scenario 7: events stored before subscribing */
    uint64_t flood_requests;/* scenario 8: appends pipelined per connection */
    uint64_t lazy_events;   /* scenario 9: events stored */
    int lazy_subs;          /* scenario 9: subscribers that never read */
    int hold_conns;         /* scenario 10: connections held open */
} bench_opts;

#define BENCH_SCENARIO_DECL_(id, name, desc) int bench_sc_##id(const bench_opts *o);
BENCH_SCENARIOS(BENCH_SCENARIO_DECL_)
#undef BENCH_SCENARIO_DECL_

/* Scenario return values: 0 done, BENCH_SKIPPED (said why on stderr), or
 * -1 on a failure (said why on stderr). */
#define BENCH_SKIPPED 1

/* ---- time and messages ---------------------------------------------------- */

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */
void bench_sleep_us(unsigned us);
/* Progress and diagnostics go to stderr; bench_info only with -v. */
void bench_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int bench_verbose;

/* ---- results --------------------------------------------------------------- */

/* Which way is better, for the ratio column. */
enum { BENCH_HIGHER = 1, BENCH_LOWER = -1, BENCH_NEUTRAL = 0 };

/*
 * Record one figure: samples[0..n) (one per repetition) of metric/unit for
 * (scenario, system, processes).  Keeps median, min and max and copies
 * the strings (kept until exit).  n == 0 records nothing.
 */
void bench_report(const char *scenario, const char *system, int procs,
                  const char *metric, const char *unit, int better,
                  const double *samples, int n);
/* The table (stdout) and the --json file (NULL: none).  0 or -1. */
void bench_print_table(void);
int bench_write_json(const char *path);

/* ---- daemons ----------------------------------------------------------------- */

typedef struct bench_daemon {
    char dir[256];      /* our temp dir (empty for an external daemon) */
    char data[300];
    char sock[300];
    char log[300];
    char conf[300];     /* an empty config file: no user config leaks in */
    char durability[8]; /* "sync" or "none" */
    pid_t pid;          /* 0 when not running (always 0 when external) */
    int external;       /* --socket: not ours, never started or stopped */
    uint64_t exec_ns;   /* bench_now_ns() just before the last execve */
    int keep;
} bench_daemon;

/*
 * Prepare a daemon for scenario `tag` with `durability` ("sync"/"none"):
 * with --socket, check that the running daemon has that durability
 * (BENCH_SKIPPED if not); else make a temp dir and start maosd on it and
 * wait until it accepts.  0, BENCH_SKIPPED or -1.
 */
int bench_daemon_open(bench_daemon *d, const bench_opts *o, const char *tag,
                      const char *durability);
/* (Re)start our daemon on its dir; wait at most timeout_ms until a
 * connect() succeeds.  On success *ready_ns (may be NULL) is the time
 * from execve to the first accepted connect.  0 or -1 (log tail printed). */
int bench_daemon_start(bench_daemon *d, const bench_opts *o, int timeout_ms,
                       uint64_t *ready_ns);
/* SIGTERM and wait (then SIGKILL after 60 s).  0 on a clean exit, else -1.
 * No-op for an external daemon. */
int bench_daemon_stop(bench_daemon *d);
/* Stop if running and remove the temp dir (unless --keep).  Accepts a
 * zeroed struct. */
void bench_daemon_close(bench_daemon *d);
/* User + system CPU seconds a process has used so far, -1 on error. */
double bench_proc_cpu_s(pid_t pid);
/* Resident set size in KiB of a process, -1 on error. */
long bench_rss_kb(pid_t pid);
/* Counters of the daemon (one connection, one stats request).  0 or -1. */
int bench_daemon_stats(const bench_daemon *d, maos_stats_info *st);
/* Wait (at most 30 s) until our daemon's CPU use falls under 5% over
 * 200 ms: RocksDB flushes and compactions of a warm-up must not be billed
 * to the measurement that follows.  No-op for an external daemon. */
void bench_daemon_settle(const bench_daemon *d);
/* Connect with a 60 s bound; NULL (message printed) on failure. */
maos_ctx *bench_connect(const char *sock);
/* A raw connected AF_UNIX stream socket (no hello), or -1. */
int bench_unix_connect(const char *path);
/*
 * Fork a process that sets something up and holds it: body(arg, ready_fd,
 * go_fd) runs in the child, writes 'y' (or 'n') to ready_fd once set up,
 * waits for EOF on go_fd, and must _exit.  Returns the child's pid once it
 * said 'y' within timeout_ms, with *release the fd to close to let it go;
 * -1 otherwise (the child killed and reaped; what names the set-up in the
 * message).
 */
pid_t bench_fork_holder(void (*body)(void *arg, int ready_fd, int go_fd), void *arg,
                        int timeout_ms, const char *what, int *release);
/* Bytes used under a directory (du), or 0. */
uint64_t bench_du_bytes(const char *dir);
/* A fresh temp dir under o->tmp for SQLite files etc.: path in buf. 0/-1. */
int bench_mkdtemp(const bench_opts *o, const char *tag, char *buf, size_t len);
void bench_rmtree(const char *dir);

/* ---- worker processes ----------------------------------------------------------- */

#define BENCH_HIST 384 /* latency buckets: 8 per power of two of ns */

/* What one worker process reports (lives in shared memory). */
typedef struct bench_wres {
    uint64_t ops;        /* operations completed before the deadline */
    uint64_t events;     /* events written or read by those operations */
    uint64_t bytes;      /* payload bytes (reads) */
    uint64_t busy;       /* SQLite: SQLITE_BUSY that escaped busy_timeout */
    uint64_t errors;     /* any other failed operation */
    uint64_t max_ns;     /* worst single-operation latency */
    int bystander;       /* a helper (a producer): not in the fairness */
    uint64_t elapsed_ns; /* fixed-work workers: time the work took */
    uint32_t hist[BENCH_HIST];
    char err[160];       /* first error, for the report */
} bench_wres;

typedef struct bench_worker bench_worker;
/* A worker body, run in a child process.  It connects/opens first, then
 * calls bench_go() (the start gate; returns the deadline), then works.
 * Returns 0 or -1 (with w->res->err set). */
typedef int (*bench_worker_fn)(bench_worker *w);

struct bench_worker {
    int idx;          /* 0..nproc-1 */
    int nproc;
    void *arg;        /* the scenario's argument, inherited by fork */
    bench_wres *res;  /* this worker's slot (shared memory) */
    double seconds;   /* run length for timed workers */
    int went;         /* bench_go was called */
    volatile uint64_t *start_ns; /* shared: set by the parent at release */
    volatile int *arrived;       /* shared: workers at the gate */
    int gate_fd;      /* read end: EOF = go */
};

/* Block at the gate until every worker is ready; returns the deadline
 * (bench_now_ns() clock). */
uint64_t bench_go(bench_worker *w);
/* Record one operation's latency (and the worst). */
void bench_lat(bench_wres *r, uint64_t ns);
/* Set r->err once (printf-style) and count an error. */
void bench_fail(bench_wres *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The merged outcome of one run. */
typedef struct bench_run {
    int nproc;
    double seconds;        /* the timed length (or the slowest fixed-work time) */
    uint64_t ops, events, bytes, busy, errors;
    double min_rate, max_rate; /* per-process ops/s (timed runs) */
    double fairness;       /* min_rate / max_rate */
    double worst_ms, p99_ms, p50_ms;
    double elapsed_s;      /* max worker elapsed_ns (fixed-work runs) */
    double cpu_s;          /* user + system CPU of all workers */
    uint64_t n_lat;        /* operations timed (also after the deadline) */
    int failed;            /* a worker failed (exit status or errors) */
    char err[256];
} bench_run;

/*
 * bench_spawn: fork nproc workers running fn(arg), release them together, wait for them
 * (bounded: seconds + 120 s, then SIGKILL) and merge their results into
 * *out.  Returns 0 when every worker exited 0 without errors; -1 otherwise
 * (out->err says the first problem).  SQLite busy errors are not failures.
 */
int bench_spawn(int nproc, double seconds, bench_worker_fn fn, void *arg,
              bench_run *out);

/* ---- raw connections (rconn.c) ------------------------------------------------------ */

/* One protocol connection: encode a request into pk (rid ++c->rid), then
 * brc_call sends it and waits for its reply, skipping pushes. */
typedef struct bench_rconn {
    int fd;
    maos_reader rd;
    uint64_t rid;
    msgpack_sbuffer sb;
    msgpack_packer pk;
} bench_rconn;

/* Connect and say hello.  0 or -1. */
int brc_open(bench_rconn *c, const char *sock);
void brc_close(bench_rconn *c);
/* Send what is packed.  0 or -1. */
int brc_send(bench_rconn *c);
/* Next frame (a reply or a push) within timeout_ms: 1, 0 on timeout, -1. */
int brc_recv(bench_rconn *c, int timeout_ms, maos_slice *frame);
/* Send what is packed and wait for its reply (pushes are skipped): the
 * reply's code (0 ok), rep filled; -1000 on a connection failure. */
int brc_call(bench_rconn *c, maos_reply *rep);
maos_slice bench_sl(const char *s);

/* ---- write workloads (writes.c) --------------------------------------------------- */

/* One timed write figure: nproc processes, each appending `batch` events
 * per request to its own stream prefix-IDX, `depth` requests in flight
 * (maos; SQLite always does one transaction at a time). */
typedef struct bench_write_spec {
    const char *scenario;
    const char *label;      /* metric prefix ("" for none), e.g. "pipe64" */
    const char *unit;       /* "appends/s" (requests) or "events/s" */
    int nproc, batch, depth;
    const bench_daemon *d;
    const char *prefix;     /* stream name prefix */
    const char *sqlite_db;  /* NULL: maos only */
    int sqlite_full;        /* synchronous=FULL (else NORMAL) */
} bench_write_spec;

/*
 * Run o->reps repetitions, maos then SQLite in each, and report
 * throughput, fairness (procs > 1), p99 and worst latency, and for maos
 * the mean commit group size and group write time, for SQLite the busy
 * errors.  0, or -1 when a run failed (reported on stderr).
 */
int bench_writes(const bench_opts *o, const bench_write_spec *s);

/* Fill a store: `events` events in batches of 100 by nproc processes
 * (maos: 16 batches in flight, durability as the daemon has it), spread
 * over nstreams streams per process (prefix-P-K), and every
 * (events / one_events)-th batch of each process to the stream `one`
 * (when not NULL). */
typedef struct bench_load_spec {
    const char *sock;       /* maos, or */
    const char *sqlite_db;  /* SQLite (synchronous=NORMAL) */
    const char *prefix;
    uint64_t events;
    int nproc, nstreams;
    const char *one;
    uint64_t one_events;
} bench_load_spec;
/* 0 and *rate (events/s, may be NULL) or -1. */
int bench_load(const bench_load_spec *l, double *rate);
/* The warm-up of the write scenarios: o->warm_events into the daemon (and
 * into the SQLite file when sqlite_db is not NULL), so that figures are
 * those of a store that has been running for a while (RocksDB's WAL has
 * rolled over and memtables were flushed; SQLite's file has grown).  0/-1. */
int bench_warm(const bench_opts *o, const bench_daemon *d, const char *sqlite_db);

/* ---- event payloads --------------------------------------------------------------- */

/* The ~200-byte JSON-shaped event body, as msgpack (maos) and as JSON
 * text (SQLite, what a user would store), for process `proc`, event n.
 * The sbuffer is reset first; the JSON goes into buf (cap >= 512) and
 * its length is returned. */
void bench_data_msgpack(msgpack_sbuffer *sb, int proc, uint64_t n);
size_t bench_data_json(char *buf, size_t cap, int proc, uint64_t n);
#define BENCH_EVENT_TYPE "task.progress"

/* ---- delivery latency (sc_latency.c) ------------------------------------------------ */

/* A timestamped event body: msgpack {"t": send_ns, "p": <the usual payload>}
 * into buf (cap >= 512); its length.  bench_stamp_get reads t back (0 when
 * the body is not one of these). */
size_t bench_stamp_msgpack(uint8_t *buf, size_t cap, uint64_t t, uint64_t n);
uint64_t bench_stamp_get(const void *data, size_t len);
/* The same as JSON text {"t":send_ns,"p":{...}} and its reader. */
size_t bench_stamp_json(char *buf, size_t cap, uint64_t t, uint64_t n);
uint64_t bench_stamp_get_json(const char *data, int len);
/* The q-quantile (0..1) of v[0..n) (sorted in place), ns -> us. */
double bench_quantile_us(uint64_t *v, size_t n, double q);

/* ---- SQLite (sqlite.c; only with BENCH_HAVE_SQLITE) ------------------------------ */

#ifdef BENCH_HAVE_SQLITE
typedef struct bsq bsq;
/* Create the database file and schema (WAL).  0 or -1 (message printed). */
int bsq_create(const char *path);
/* Open a connection as a user would: journal_mode=WAL, busy_timeout=5000,
 * synchronous FULL (full != 0) or NORMAL.  NULL on failure (r->err). */
bsq *bsq_open(const char *path, int full, bench_wres *r);
void bsq_close(bsq *s);
/*
 * Append n events to stream in one BEGIN IMMEDIATE transaction, the
 * version read from the (stream, version) index.  0; 1 when SQLITE_BUSY
 * escaped busy_timeout (rolled back, counted in r->busy); -1 on another
 * error (r->err).
 */
int bsq_append(bsq *s, const char *stream, int proc, uint64_t n0, int n,
               bench_wres *r);
/* Read every event in position order (stream NULL) or one stream in
 * version order, touching every column; adds to r->events/bytes.  0/-1. */
int bsq_read(bsq *s, const char *stream, bench_wres *r);
/* Notification as SQLite users do it: poll PRAGMA data_version every
 * millisecond until it differs from *seen (updated) or timeout_ms passes.
 * 1 changed, 0 timed out, -1 error.  (For the subscription scenarios.) */
int bsq_wait_change(bsq *s, int64_t *seen, int timeout_ms);
/* One event with data `data` (JSON text) appended as bsq_append does. */
int bsq_append_data(bsq *s, const char *stream, const char *data, size_t len,
                    bench_wres *r);
/* Rows with pos > *last_pos in position order, at most limit: fn for each,
 * *last_pos advanced.  The number of rows or -1 (r->err). */
typedef void (*bsq_row_fn)(void *ud, int64_t pos, const char *stream, const char *data,
                           int len);
int bsq_read_after(bsq *s, int64_t *last_pos, int limit, bsq_row_fn fn, void *ud,
                   bench_wres *r);
/* max(pos) (0: empty), -1 on error. */
int64_t bsq_last_pos(bsq *s);
/* kv-cas: keys k0..k(n-1) at revision 0 (0/-1); one read-modify-write
 * increment of key as a user does it with SQLite: 0 done, 1 lost (busy or
 * the revision moved), -1 error. */
int bsq_kv_seed(bsq *s, int nkeys);
int bsq_kv_incr(bsq *s, const char *key, bench_wres *r);
/* queue: n tasks (data: their enqueue times) in one transaction; claim the
 * best ready task (0 and *id, *data; 2 none ready); ack it.  1 busy, -1
 * error (r->err). */
int bsq_q_enqueue(bsq *s, const int64_t *data, int n, bench_wres *r);
int bsq_q_claim(bsq *s, int64_t *id, int64_t *data, bench_wres *r);
int bsq_q_ack(bsq *s, int64_t id, bench_wres *r);
/* Tasks ready now, or -1 (r->err). */
int64_t bsq_q_ready(bsq *s, bench_wres *r);
#endif

#endif
