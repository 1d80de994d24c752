/*
 * daemon/metrics.c -- the op `metrics`: every figure of `stats`, the
 * daemon's histograms and a few RocksDB properties in the Prometheus text
 * exposition format (version 0.0.4), for node_exporter's textfile
 * collector or a scrape wrapper (`maosctl stats --prometheus`).
 *
 * Names: maos_*, base units (seconds, bytes), counters end in _total.
 * The table `figures` maps each field of MAOS_STATS_MAP to its family; a
 * static assertion keeps the two lists the same length, so a new stats
 * field cannot be forgotten here.  Histograms are cumulative on output
 * (le="..."), kept per bucket (metrics.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

static const uint64_t bounds_us[] = MAOSD_HIST_BOUNDS_US;
_Static_assert(sizeof bounds_us / sizeof bounds_us[0] + 1 == MAOSD_HIST_BUCKETS,
               "MAOSD_HIST_BUCKETS is the bounds and +Inf");

void maosd_hist_observe(maosd_hist *h, uint64_t us)
{
    size_t i = 0;
    while (i < MAOSD_HIST_BUCKETS - 1 && us > bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

enum { COUNTER, GAUGE };

typedef struct figure {
    size_t off;        /* in maos_stats */
    const char *name;
    int type;
    int us;            /* microseconds: printed as seconds */
    const char *help;
} figure;

#define F_(field, name, type, us, help) {offsetof(maos_stats, field), name, type, us, help}
static const figure figures[] = {
    F_(uptime_us, "maos_uptime_seconds", GAUGE, 1, "Time since maosd started."),
    F_(head_position, "maos_head_position", GAUGE, 0,
       "Position of the last durable event in the global log."),
    F_(connections, "maos_connections", GAUGE, 0, "Open client connections."),
    F_(connections_total, "maos_connections_accepted_total", COUNTER, 0,
       "Connections accepted since start."),
    F_(requests, "maos_requests_total", COUNTER, 0, "Requests received since start."),
    F_(commit_groups, "maos_commit_groups_total", COUNTER, 0,
       "Commit groups written (one storage write each)."),
    F_(commit_requests, "maos_commit_requests_total", COUNTER, 0,
       "Write requests committed in groups."),
    F_(commit_events, "maos_commit_events_total", COUNTER, 0, "Events committed."),
    F_(commit_max_group, "maos_commit_max_group_requests", GAUGE, 0,
       "Largest commit group so far, in requests."),
    F_(commit_errors, "maos_commit_errors_total", COUNTER, 0,
       "Commit groups whose storage write failed."),
    F_(commit_write_us, "maos_commit_write_seconds_total", COUNTER, 1,
       "Time spent in commit-group storage writes."),
    F_(subscriptions, "maos_subscriptions", GAUGE, 0, "Event subscriptions."),
    F_(subscriptions_live, "maos_subscriptions_live", GAUGE, 0,
       "Event subscriptions caught up (served live)."),
    F_(subscriptions_max_lag, "maos_subscriber_lag_max_events", GAUGE, 0,
       "Events the furthest-behind subscription still has to receive."),
    F_(push_frames, "maos_push_frames_total", COUNTER, 0, "Push frames sent."),
    F_(push_events, "maos_push_events_total", COUNTER, 0, "Events pushed to subscribers."),
    F_(fell_behind, "maos_subscriptions_fell_behind_total", COUNTER, 0,
       "Live subscriptions switched back to catching up (too slow)."),
    F_(channel_subscriptions, "maos_channel_subscriptions", GAUGE, 0,
       "Channel subscriptions."),
    F_(channel_messages, "maos_channel_messages_total", COUNTER, 0,
       "Channel messages published."),
    F_(channel_dropped, "maos_channel_dropped_total", COUNTER, 0,
       "Channel deliveries dropped (subscriber over its output cap)."),
    F_(bytes_in, "maos_received_bytes_total", COUNTER, 0, "Bytes received from clients."),
    F_(bytes_out, "maos_sent_bytes_total", COUNTER, 0, "Bytes sent to clients."),
    F_(max_frame, "maos_max_frame_bytes", GAUGE, 0, "Largest request frame accepted."),
    F_(connections_refused, "maos_connections_refused_total", COUNTER, 0,
       "Connections refused at accept (a connection limit)."),
    F_(hello_timeouts, "maos_hello_timeouts_total", COUNTER, 0,
       "Connections closed for sending no hello in time."),
    F_(connections_paused, "maos_connections_paused", GAUGE, 0,
       "Connections not read while over an output cap."),
    F_(buffered_bytes, "maos_output_buffered_bytes", GAUGE, 0,
       "Bytes held for connections (unsent output, queued writes)."),
    F_(loop_lag_max_us, "maos_loop_lag_max_seconds", GAUGE, 1,
       "Longest event-loop iteration since start."),
    F_(loop_lag_p99_us, "maos_loop_lag_p99_seconds", GAUGE, 1,
       "99th percentile of event-loop iteration time."),
    F_(reads_pooled, "maos_reads_pooled_total", COUNTER, 0,
       "Reads run on the reader pool."),
    F_(reads_in_memory, "maos_reads_in_memory_total", COUNTER, 0,
       "Point reads answered from memory on the loop."),
    F_(reads_ahead, "maos_reads_ahead_total", COUNTER, 0,
       "Pages answered from a read-ahead."),
    F_(data_bytes, "maos_data_dir_bytes", GAUGE, 0, "Disk usage of the data directory."),
    F_(requests_per_s, "maos_requests_per_second", GAUGE, 0,
       "Requests per second over the last minute."),
    F_(events_per_s, "maos_events_per_second", GAUGE, 0,
       "Events committed per second over the last minute."),
    F_(events_removed, "maos_events_removed_total", COUNTER, 0,
       "Events removed by retention, truncation or deletion since start."),
    F_(log_anchor, "maos_log_anchor_position", GAUGE, 0,
       "Position the log's hash chain starts from after retention (0: the whole log)."),
};
#undef F_

#define COUNT_STATS_(name) +1
_Static_assert(sizeof figures / sizeof figures[0] == 0 MAOS_STATS_MAP(COUNT_STATS_),
               "every MAOS_STATS_MAP field has its figure here");
#undef COUNT_STATS_

/* A growing text buffer; failures latch (checked once at the end). */
typedef struct text {
    char *p;
    size_t len, cap;
    int oom;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap : 4096) * 2 + (size_t)n;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->oom = 1;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
}

static void family(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(text *t, uint64_t v, int us)
{
    if (us)
        put(t, "%llu.%06llu\n", (unsigned long long)(v / 1000000),
            (unsigned long long)(v % 1000000));
    else
        put(t, "%llu\n", (unsigned long long)v);
}

/* The samples of one histogram (label: "" or `op="x",`). */
static void hist(text *t, const char *name, const char *label, const maosd_hist *h)
{
    uint64_t cum = 0;
    for (int i = 0; i < MAOSD_HIST_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < MAOSD_HIST_BUCKETS - 1)
            put(t, "%s_bucket{%sle=\"%llu.%06llu\"} %llu\n", name, label,
                (unsigned long long)(bounds_us[i] / 1000000),
                (unsigned long long)(bounds_us[i] % 1000000), (unsigned long long)cum);
        else
            put(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label, (unsigned long long)cum);
    }
    uint64_t sum = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    /* the count is the +Inf bucket's, read above, so the two agree */
    if (label[0]) {
        size_t l = strlen(label);
        put(t, "%s_sum{%.*s} ", name, (int)(l - 1), label);
        value(t, sum, 1);
        put(t, "%s_count{%.*s} %llu\n", name, (int)(l - 1), label, (unsigned long long)cum);
    } else {
        put(t, "%s_sum ", name);
        value(t, sum, 1);
        put(t, "%s_count %llu\n", name, (unsigned long long)cum);
    }
}

int maosd_op_metrics(maosd_call *call)
{
    maosd_server *srv = call->srv;
    maos_stats st;
    maosd_server_stats(srv, &st);
    uint8_t hash[MAOS_HASH_BYTES];
    maosd_commit_durable(srv->commit, &st.head_position, hash);
    text t = {0};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        const figure *f = &figures[i];
        family(&t, f->name, f->type == COUNTER ? "counter" : "gauge", f->help);
        put(&t, "%s ", f->name);
        value(&t, *(const uint64_t *)((const char *)&st + f->off), f->us);
    }
    family(&t, "maos_info", "gauge", "The daemon's version and durability (always 1).");
    put(&t, "maos_info{server=\"maosd %s\",durability=\"%s\"} 1\n", MAOS_VERSION,
        srv->cfg->sync ? "sync" : "none");
    family(&t, "maos_read_only", "gauge",
           "1 when writes are refused (a storage failure, or --read-only).");
    put(&t, "maos_read_only %d\n", maosd_store_state(srv->store) != MAOSD_STORE_OK);
    family(&t, "maos_no_space", "gauge",
           "1 while writes are refused because the file system is below min_free_mb.");
    put(&t, "maos_no_space %d\n", atomic_load(&srv->no_space));
    uint64_t v;
    if (maosd_store_property(srv->store, "rocksdb.estimate-pending-compaction-bytes", &v) == 0) {
        family(&t, "maos_rocksdb_pending_compaction_bytes", "gauge",
               "RocksDB's estimate of the bytes compaction still has to rewrite.");
        put(&t, "maos_rocksdb_pending_compaction_bytes %llu\n", (unsigned long long)v);
    }
    if (maosd_store_property(srv->store, "rocksdb.actual-delayed-write-rate", &v) == 0) {
        family(&t, "maos_rocksdb_write_delayed", "gauge",
               "1 while RocksDB slows writes down (a write stall).");
        put(&t, "maos_rocksdb_write_delayed %d\n", v > 0);
    }
    if (maosd_store_property(srv->store, "rocksdb.is-write-stopped", &v) == 0) {
        family(&t, "maos_rocksdb_write_stopped", "gauge",
               "1 while RocksDB stops writes (a write stall).");
        put(&t, "maos_rocksdb_write_stopped %d\n", v > 0);
    }
    family(&t, "maos_commit_write_duration_seconds", "histogram",
           "Time of one commit group's storage write (journal write and sync, apply).");
    hist(&t, "maos_commit_write_duration_seconds", "", &srv->commit_write_hist);
    family(&t, "maos_request_duration_seconds", "histogram",
           "Time from a request's arrival to its reply, by op.");
    for (int op = 1; op < MAOS_OP__COUNT; op++) {
        if (!atomic_load_explicit(&srv->req_hist[op].count, memory_order_relaxed))
            continue;
        char label[64];
        snprintf(label, sizeof label, "op=\"%s\",", maos_op_name((maos_op)op));
        hist(&t, "maos_request_duration_seconds", label, &srv->req_hist[op]);
    }
    int rc = 0;
    if (t.oom) {
        snprintf(call->why, sizeof(call->why), "out of memory");
        rc = MAOS_EOVERLOADED;
    } else {
        msgpack_packer pk;
        size_t mark = maosd_reply_begin(call->conn, &pk);
        maos_enc_reply_text(&pk, call->req->rid, (maos_slice){t.p, (uint32_t)t.len});
        maosd_reply_end(call->conn, mark);
    }
    free(t.p);
    return rc;
}

void maosd_metrics_observe(maosd_server *srv, int op, uint64_t t0_ns)
{
    if (op > 0 && op < MAOS_OP__COUNT)
        maosd_hist_observe(&srv->req_hist[op], (uv_hrtime() - t0_ns) / 1000);
}
