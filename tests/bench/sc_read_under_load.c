/*
 * tests/bench/sc_read_under_load.c -- scenario 14, read-under-load (issue
 * 9): cold reads of long interleaved streams while 8 processes append
 * durably.  What a long read costs everyone else: the appenders' latency
 * with and without the reads, a pinger's latency (the loop's lag as a
 * client sees it), and maosd's own loop-lag figures (stats loop_lag_*).
 *
 * Set-up: --stream-events (100,000) events in READ_STREAMS streams, loaded
 * as transactions of one event per read stream plus FILL events of the
 * ~200-byte body to a filler stream, by LOAD_PROCS processes at once: the
 * events of one stream lie ~4 KiB apart in the log, each on its own block,
 * so reading a stream touches one block per event.
 *
 * Per repetition: a warm run without reads (`alone`: 8 appenders, one
 * pinger); then maosd is stopped, the page cache of its files dropped
 * (posix_fadvise DONTNEED: no root needed) and maosd started again, so the
 * streams are cold; then the same run while one reader reads every read
 * stream from start to end (`reading`).  The run lasts --seconds, or
 * until the reader is done if that takes longer.  The loop-lag figures come
 * from stats right after the reading run: they cover the restart and that
 * run only.  A daemon without them (an older maosd, --maosd) gets the
 * pinger's figures only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define SCEN "read-under-load"
#define APPENDERS 8
#define READ_STREAMS 4
#define FILL 20          /* filler events between two events of a stream */
#define LOAD_PROCS 4     /* one per read stream */
#define LOAD_DEPTH 16    /* transactions in flight per loader */
#define PING_MAX 4000000 /* ping latencies kept */

/* Shared with the workers (MAP_SHARED, inherited by fork). */
typedef struct rul_shared {
    volatile int reader_done;
    uint64_t read_events;
    uint64_t read_ns;
    uint64_t ping_p99_ns, ping_max_ns, pings;
} rul_shared;

typedef struct rul_arg {
    const char *sock;
    int with_reader;
    rul_shared *sh;
} rul_arg;

static void stream_name(char *buf, size_t n, int k)
{
    snprintf(buf, n, "rul-read-%d", k);
}

/* ---- loading ------------------------------------------------------------------ */

typedef struct load_arg {
    const char *sock;
    uint64_t per_stream;
} load_arg;

/* Loader idx: per_stream transactions {rul-read-idx: 1 event, rul-fill-idx:
 * FILL events}, LOAD_DEPTH in flight. */
static int load_worker(bench_worker *w)
{
    const load_arg *a = w->arg;
    bench_wres *r = w->res;
    maos_ctx *c = bench_connect(a->sock);
    if (!c) {
        bench_fail(r, "cannot connect");
        return -1;
    }
    char rs[32], fs[32];
    stream_name(rs, sizeof rs, w->idx);
    snprintf(fs, sizeof fs, "rul-fill-%d", w->idx);
    msgpack_sbuffer sb[FILL + 1];
    maos_event_spec ev[FILL + 1];
    for (int i = 0; i <= FILL; i++)
        msgpack_sbuffer_init(&sb[i]);
    uint64_t sent = 0, inflight = 0;
    bench_go(w);
    uint64_t t0 = bench_now_ns();
    while (sent < a->per_stream || inflight) {
        while (sent < a->per_stream && inflight < LOAD_DEPTH) {
            for (int i = 0; i <= FILL; i++) {
                bench_data_msgpack(&sb[i], w->idx, sent * (FILL + 1) + (uint64_t)i);
                ev[i] = (maos_event_spec){.type = BENCH_EVENT_TYPE, .data = sb[i].data,
                                          .data_len = sb[i].size};
            }
            maos_txn_append t[2] = {
                {.stream = rs, .expect = MAOS_EXPECT_ANY, .events = ev, .n_events = 1},
                {.stream = fs, .expect = MAOS_EXPECT_ANY, .events = ev + 1,
                 .n_events = FILL},
            };
            if (maos_txn_send(c, t, 2, NULL)) {
                bench_fail(r, "txn_send: %s", c->errstr);
                goto out;
            }
            sent++;
            inflight++;
        }
        maos_result *m = NULL;
        if (maos_reply_recv(c, &m) || !m) {
            bench_fail(r, "reply_recv: %s", c->errstr);
            break;
        }
        inflight--;
        if (maos_result_status(m)) {
            bench_fail(r, "txn: %s", maos_result_errstr(m));
            maos_result_free(m);
            break;
        }
        maos_result_free(m);
        r->ops++;
        r->events += FILL + 1;
    }
out:
    r->elapsed_ns = bench_now_ns() - t0;
    for (int i = 0; i <= FILL; i++)
        msgpack_sbuffer_destroy(&sb[i]);
    maos_free(c);
    return r->errors ? -1 : 0;
}

/* ---- the timed run --------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Read every read stream from version 0 to its end, pages of the most a
 * reply may hold. */
static int reader(bench_worker *w, maos_ctx *c, rul_shared *sh)
{
    bench_wres *r = w->res;
    r->bystander = 1;
    uint64_t t0 = bench_now_ns(), n = 0;
    for (int k = 0; k < READ_STREAMS && !r->errors; k++) {
        char s[32];
        stream_name(s, sizeof s, k);
        uint64_t from = 0;
        for (;;) {
            maos_page *p = NULL;
            if (maos_read(c, s, from, 0, MAOS_READ_LIMIT_MAX, &p)) {
                bench_fail(r, "read %s: %s", s, c->errstr);
                break;
            }
            n += p->n;
            int more = p->has_next;
            from = p->next;
            maos_page_free(p);
            if (!more)
                break;
        }
    }
    sh->read_ns = bench_now_ns() - t0;
    sh->read_events = n;
    sh->reader_done = 1;
    return r->errors ? -1 : 0;
}

static int rul_worker(bench_worker *w)
{
    const rul_arg *a = w->arg;
    rul_shared *sh = a->sh;
    bench_wres *r = w->res;
    maos_ctx *c = bench_connect(a->sock);
    if (!c) {
        bench_fail(r, "cannot connect");
        return -1;
    }
    int rc = 0;
    if (w->idx == APPENDERS) { /* the reader */
        bench_go(w);
        rc = a->with_reader ? reader(w, c, sh) : 0;
        if (!a->with_reader)
            r->bystander = 1;
        maos_free(c);
        return rc;
    }
    uint64_t *lat = NULL;
    size_t n_lat = 0;
    int pinger = w->idx == APPENDERS + 1;
    if (pinger) {
        r->bystander = 1;
        lat = malloc(PING_MAX * sizeof(*lat));
        if (!lat) {
            bench_fail(r, "out of memory");
            maos_free(c);
            return -1;
        }
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char stream[32];
    snprintf(stream, sizeof stream, "rul-append-%d", w->idx);
    uint64_t end = bench_go(w), stop = end + 60000000000ull;
    for (uint64_t k = 0;; k++) {
        uint64_t t0 = bench_now_ns();
        if (t0 >= stop || (t0 >= end && (!a->with_reader || sh->reader_done)))
            break;
        if (pinger) {
            rc = maos_ping(c);
        } else {
            bench_data_msgpack(&sb, w->idx, k);
            maos_event_spec ev = {.type = BENCH_EVENT_TYPE, .data = sb.data,
                                  .data_len = sb.size};
            rc = maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, NULL);
        }
        uint64_t t1 = bench_now_ns();
        if (rc) {
            bench_fail(r, "%s: %s", pinger ? "ping" : "append", c->errstr);
            break;
        }
        if (pinger) {
            if (n_lat < PING_MAX)
                lat[n_lat++] = t1 - t0;
            continue;
        }
        bench_lat(r, t1 - t0);
        if (t1 < end) {
            r->ops++;
            r->events++;
        }
    }
    if (pinger && n_lat) {
        qsort(lat, n_lat, sizeof(*lat), cmp_u64);
        sh->ping_p99_ns = lat[(n_lat - 1) * 99 / 100];
        sh->ping_max_ns = lat[n_lat - 1];
        sh->pings = n_lat;
    }
    free(lat);
    msgpack_sbuffer_destroy(&sb);
    maos_free(c);
    return r->errors ? -1 : 0;
}

/* ---- cold ------------------------------------------------------------------------ */

/* Drop the page cache of every file under dir (synced first: dirty pages
 * are not dropped). */
static void drop_cache(const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh))) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    closedir(dh);
}

static int run_once(const bench_opts *o, bench_daemon *d, int with_reader, rul_shared *sh,
                    bench_run *run)
{
    memset(sh, 0, sizeof(*sh));
    rul_arg a = {.sock = d->sock, .with_reader = with_reader, .sh = sh};
    if (bench_spawn(APPENDERS + 2, o->seconds, rul_worker, &a, run)) {
        bench_say(SCEN ": %s", run->err);
        return -1;
    }
    return 0;
}

int bench_sc_read_under_load(const bench_opts *o)
{
    if (o->socket) {
        bench_say(SCEN ": skipped: it restarts its own daemon");
        return BENCH_SKIPPED;
    }
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "rul", "sync");
    if (rc)
        return rc;
    rul_shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        bench_say(SCEN ": mmap: %s", strerror(errno));
        bench_daemon_close(&d);
        return -1;
    }
    uint64_t per_stream = o->stream_events / READ_STREAMS;
    if (!per_stream)
        per_stream = 1;
    load_arg la = {.sock = d.sock, .per_stream = per_stream};
    bench_run run;
    uint64_t t0 = bench_now_ns();
    if (bench_spawn(LOAD_PROCS, 1, load_worker, &la, &run)) {
        bench_say(SCEN ": load: %s", run.err);
        rc = -1;
        goto out;
    }
    bench_say(SCEN ": loaded %llu events (%d streams of %llu, interleaved) in %.1f s",
              (unsigned long long)run.events, READ_STREAMS,
              (unsigned long long)per_stream, (double)(bench_now_ns() - t0) / 1e9);
    enum { MAXR = 64 };
    double p99a[MAXR], p99r[MAXR], rate_a[MAXR], rate_r[MAXR], ping_a[MAXR],
        ping_r[MAXR], pingmax_r[MAXR], readrate[MAXR], readtime[MAXR], lagmax[MAXR],
        lagp99[MAXR];
    int n = 0, nlag = 0;
    for (int rep = 0; rep < o->reps && rep < MAXR; rep++) {
        bench_daemon_settle(&d);
        if (run_once(o, &d, 0, sh, &run)) {
            rc = -1;
            goto out;
        }
        p99a[n] = run.p99_ms;
        rate_a[n] = (double)run.ops / o->seconds;
        ping_a[n] = (double)sh->ping_p99_ns / 1e6;
        /* cold: maosd's block cache and the files' page cache both empty */
        if (bench_daemon_stop(&d)) {
            rc = -1;
            goto out;
        }
        drop_cache(d.data);
        if (bench_daemon_start(&d, o, 60000, NULL)) {
            rc = -1;
            goto out;
        }
        if (run_once(o, &d, 1, sh, &run)) {
            rc = -1;
            goto out;
        }
        if (sh->read_events != per_stream * READ_STREAMS) {
            bench_say(SCEN ": read %llu events, want %llu",
                      (unsigned long long)sh->read_events,
                      (unsigned long long)(per_stream * READ_STREAMS));
            rc = -1;
            goto out;
        }
        p99r[n] = run.p99_ms;
        rate_r[n] = (double)run.ops / o->seconds;
        ping_r[n] = (double)sh->ping_p99_ns / 1e6;
        pingmax_r[n] = (double)sh->ping_max_ns / 1e6;
        readtime[n] = (double)sh->read_ns / 1e9;
        readrate[n] = (double)sh->read_events / readtime[n];
        maos_stats_info st;
        if (bench_daemon_stats(&d, &st) == 0) {
            lagmax[nlag] = (double)st.loop_lag_max_us / 1000.0;
            lagp99[nlag] = (double)st.loop_lag_p99_us / 1000.0;
            nlag++;
        }
        n++;
    }
    bench_report(SCEN, "maos", 0, "append-p99-alone", "ms", BENCH_LOWER, p99a, n);
    bench_report(SCEN, "maos", 0, "append-rate-alone", "appends/s", BENCH_HIGHER, rate_a, n);
    bench_report(SCEN, "maos", 0, "ping-p99-alone", "ms", BENCH_LOWER, ping_a, n);
    bench_report(SCEN, "maos", APPENDERS, "append-p99-reading", "ms", BENCH_LOWER, p99r, n);
    bench_report(SCEN, "maos", APPENDERS, "append-rate-reading", "appends/s", BENCH_HIGHER,
                 rate_r, n);
    bench_report(SCEN, "maos", APPENDERS, "ping-p99-reading", "ms", BENCH_LOWER, ping_r, n);
    bench_report(SCEN, "maos", APPENDERS, "ping-max-reading", "ms", BENCH_LOWER, pingmax_r,
                 n);
    bench_report(SCEN, "maos", APPENDERS, "cold-read-rate", "events/s", BENCH_HIGHER,
                 readrate, n);
    bench_report(SCEN, "maos", APPENDERS, "cold-read-time", "s", BENCH_LOWER, readtime, n);
    if (nlag) {
        bench_report(SCEN, "maos", APPENDERS, "loop-lag-max", "ms", BENCH_LOWER, lagmax, nlag);
        bench_report(SCEN, "maos", APPENDERS, "loop-lag-p99", "ms", BENCH_LOWER, lagp99, nlag);
    } else {
        bench_say(SCEN ": this maosd has no loop-lag figures in stats (older than issue 9)");
    }
out:
    munmap(sh, sizeof(*sh));
    bench_daemon_close(&d);
    return rc;
}
