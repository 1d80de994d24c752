/*
 * tests/bench/sc_latency.c -- scenario 6: delivery latency.
 *
 * One writer process appends one event at a time, one every millisecond
 * (a tick; it sleeps until the next one), so that queueing does not
 * dominate: the figure is the path of one event, not a backlog.  Each
 * event's data is {"t": CLOCK_MONOTONIC ns just before the append call,
 * "p": the usual ~200-byte payload}.  Subscribers take the clock when the
 * delivery is handed to them (maos_next returned) and record receipt - t:
 * same machine, one clock.  After o->seconds the writer appends an end
 * marker (t = 0); every subscriber must have received every event, or the
 * run fails.
 *
 * Subscribers: 1 (one process, one connection), and 100: 10 processes x 10
 * connections, one live subscription (MAOS_FROM_LIVE, filter: the run's
 * stream) per connection; a process polls its 10 sockets and drains each
 * with maos_next(c, 0).  --quick: 1 and 10 (2 processes x 5).
 * Durability none and sync, each on its own daemon.
 *
 * SQLite (--vs sqlite): the same writer, one BEGIN IMMEDIATE transaction
 * per event (synchronous NORMAL for none, FULL for sync); each subscriber
 * is one connection that polls PRAGMA data_version every millisecond (a
 * process sleeps 1 ms between rounds over its connections) and on a change
 * reads the new rows (pos > last seen).  Same processes, same figures.
 *
 * Channels: the same writer publishes {t} on channel "lat.ping" every
 * millisecond and one subscriber (maos_subscribe_channel) takes them
 * (maos only; at most once, so a lost message is counted, not a failure).
 *
 * Figures: p50, p99, p999 (99.9th percentile) in microseconds, over every
 * (event, subscriber) receipt of the run, exact (every sample kept).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define PERIOD_NS 1000000ull
#define CHANNEL "lat.ping"

/* ---- payloads and figures (shared with sc_replay_live.c) ---------------------- */

size_t bench_stamp_msgpack(uint8_t *buf, size_t cap, uint64_t t, uint64_t n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    bench_data_msgpack(&sb, 0, n);
    size_t len = 14 + sb.size;
    if (len > cap)
        len = 0;
    else {
        uint8_t *p = buf;
        *p++ = 0x82, *p++ = 0xa1, *p++ = 't', *p++ = 0xcf;
        for (int i = 7; i >= 0; i--)
            *p++ = (uint8_t)(t >> (8 * i));
        *p++ = 0xa1, *p++ = 'p';
        memcpy(p, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return len;
}

uint64_t bench_stamp_get(const void *data, size_t len)
{
    const uint8_t *p = data;
    if (len < 12 || p[0] != 0x82 || p[1] != 0xa1 || p[2] != 't' || p[3] != 0xcf)
        return 0;
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = t << 8 | p[4 + i];
    return t;
}

size_t bench_stamp_json(char *buf, size_t cap, uint64_t t, uint64_t n)
{
    char body[512];
    bench_data_json(body, sizeof(body), 0, n);
    int len = snprintf(buf, cap, "{\"t\":%llu,\"p\":%s}", (unsigned long long)t, body);
    return len < 0 || (size_t)len >= cap ? 0 : (size_t)len;
}

uint64_t bench_stamp_get_json(const char *data, int len)
{
    if (len < 6 || strncmp(data, "{\"t\":", 5))
        return 0;
    return strtoull(data + 5, NULL, 10);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double bench_quantile_us(uint64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t i = (size_t)(q * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e3;
}

/* ---- one run ------------------------------------------------------------------------ */

typedef struct lshared {
    uint64_t written;   /* events the writer sent (end marker not counted) */
    uint64_t count[];   /* per subscription: samples kept */
} lshared;

typedef struct larg {
    const char *sock;   /* maos, or */
    const char *db;     /* SQLite */
    int full;
    int channel;        /* maos: publish/listen on CHANNEL instead */
    char stream[64];
    int nsub, conns;    /* subscriptions; connections per subscriber process */
    double seconds;
    uint64_t max_events;
    lshared *sh;        /* shared with the children */
    uint64_t *lat;      /* shared: [nsub][max_events] ns */
} larg;

static void keep(larg *a, int sub, uint64_t ns)
{
    uint64_t *n = &a->sh->count[sub];
    if (*n < a->max_events)
        a->lat[(size_t)sub * a->max_events + (*n)++] = ns;
}

static void tick(uint64_t t0, uint64_t k)
{
    uint64_t at = t0 + k * PERIOD_NS, now = bench_now_ns();
    if (at > now)
        bench_sleep_us((unsigned)((at - now) / 1000));
}

static int maos_writer(bench_worker *w, larg *a)
{
    bench_wres *r = w->res;
    maos_ctx *c = bench_connect(a->sock);
    if (!c) {
        bench_fail(r, "cannot connect");
        return -1;
    }
    bench_go(w);
    uint8_t buf[512];
    uint64_t t0 = bench_now_ns(), k = 0;
    for (;; k++) {
        int end = k >= a->max_events - 1 || bench_now_ns() - t0 >= (uint64_t)(a->seconds * 1e9);
        if (!end)
            tick(t0, k);
        uint64_t t = end ? 0 : bench_now_ns();
        int rc;
        if (a->channel) {
            uint8_t pl[9] = {0xcf};
            for (int i = 0; i < 8; i++)
                pl[1 + i] = (uint8_t)(t >> (56 - 8 * i));
            rc = maos_publish(c, CHANNEL, pl, sizeof(pl), NULL);
        } else {
            size_t len = bench_stamp_msgpack(buf, sizeof(buf), t, k);
            maos_event_spec ev = {.type = BENCH_EVENT_TYPE, .data = buf, .data_len = len};
            rc = maos_append(c, a->stream, MAOS_EXPECT_ANY, &ev, 1, NULL);
        }
        if (rc) {
            bench_fail(r, "%s: %s", a->channel ? "publish" : "append", c->errstr);
            break;
        }
        if (end)
            break;
    }
    a->sh->written = k;
    maos_free(c);
    return r->errors ? -1 : 0;
}

static int maos_subscriber(bench_worker *w, larg *a)
{
    bench_wres *r = w->res;
    int m = a->conns, base = (w->idx - 1) * m;
    maos_ctx *c[m];
    int done[m];
    struct pollfd pf[m];
    memset(c, 0, sizeof(c));
    memset(done, 0, sizeof(done));
    maos_read_filter f = {.stream = a->stream};
    for (int j = 0; j < m; j++) {
        c[j] = bench_connect(a->sock);
        if (!c[j]) {
            bench_fail(r, "cannot connect");
            goto out;
        }
        int rc = a->channel ? maos_subscribe_channel(c[j], CHANNEL, NULL)
                            : maos_subscribe(c[j], &f, MAOS_FROM_LIVE, 0, NULL);
        if (rc) {
            bench_fail(r, "subscribe: %s", c[j]->errstr);
            goto out;
        }
    }
    bench_go(w);
    int left = m;
    uint64_t quiet = bench_now_ns();
    while (left > 0) {
        int got = 0;
        for (int j = 0; j < m; j++) {
            maos_delivery *d;
            int rc = 0;
            while (!done[j] && (rc = maos_next(c[j], 0, &d)) == 0) {
                uint64_t now = bench_now_ns();
                got = 1;
                if (d->kind == MAOS_PUSH_EVENTS) {
                    for (size_t i = 0; i < d->n; i++) {
                        uint64_t t = bench_stamp_get(d->events[i].data, d->events[i].data_len);
                        if (!t)
                            done[j] = 1, left--;
                        else
                            keep(a, base + j, now - t);
                    }
                } else if (d->kind == MAOS_PUSH_MESSAGE) {
                    uint64_t t = 0;
                    const uint8_t *p = d->payload;
                    if (d->payload_len == 9 && p[0] == 0xcf)
                        for (int i = 0; i < 8; i++)
                            t = t << 8 | p[1 + i];
                    if (!t)
                        done[j] = 1, left--;
                    else
                        keep(a, base + j, now - t);
                }
                maos_delivery_free(d);
            }
            if (!done[j] && rc != MAOS_ETIMEOUT) {
                bench_fail(r, "next: %s", c[j]->errstr);
                goto out;
            }
        }
        if (got) {
            quiet = bench_now_ns();
            continue;
        }
        if (bench_now_ns() - quiet > 10ull * 1000000000u) {
            if (!a->channel) /* at most once: a lost end marker is not a failure */
                bench_fail(r, "nothing received for 10 s");
            break;
        }
        int n = 0;
        for (int j = 0; j < m; j++)
            if (!done[j]) {
                pf[n].fd = maos_fd(c[j]);
                pf[n].events = POLLIN;
                n++;
            }
        poll(pf, (nfds_t)n, 100);
    }
out:
    for (int j = 0; j < m; j++)
        maos_free(c[j]);
    return r->errors ? -1 : 0;
}

#ifdef BENCH_HAVE_SQLITE
static int sqlite_writer(bench_worker *w, larg *a)
{
    bench_wres *r = w->res;
    bsq *s = bsq_open(a->db, a->full, r);
    if (!s)
        return -1;
    bench_go(w);
    char buf[640];
    uint64_t t0 = bench_now_ns(), k = 0;
    for (;; k++) {
        int end = k >= a->max_events - 1 || bench_now_ns() - t0 >= (uint64_t)(a->seconds * 1e9);
        if (!end)
            tick(t0, k);
        uint64_t t = end ? 0 : bench_now_ns();
        size_t len = bench_stamp_json(buf, sizeof(buf), t, k);
        int rc = bsq_append_data(s, a->stream, buf, len, r);
        if (rc > 0)
            bench_fail(r, "busy"); /* one writer: cannot happen */
        if (rc)
            break;
        if (end)
            break;
    }
    a->sh->written = k;
    bsq_close(s);
    return r->errors ? -1 : 0;
}

typedef struct qrow {
    larg *a;
    int sub;
    int end;
} qrow;

static void sqlite_row(void *ud, int64_t pos, const char *stream, const char *data, int len)
{
    qrow *q = ud;
    (void)pos;
    if (strcmp(stream, q->a->stream))
        return;
    uint64_t t = bench_stamp_get_json(data, len);
    if (!t)
        q->end = 1;
    else
        keep(q->a, q->sub, bench_now_ns() - t);
}

static int sqlite_subscriber(bench_worker *w, larg *a)
{
    bench_wres *r = w->res;
    int m = a->conns, base = (w->idx - 1) * m;
    bsq *s[m];
    int64_t seen[m], last[m];
    int done[m];
    memset(s, 0, sizeof(s));
    memset(done, 0, sizeof(done));
    for (int j = 0; j < m; j++) {
        s[j] = bsq_open(a->db, 0, r);
        seen[j] = -1;
        if (!s[j] || bsq_wait_change(s[j], &seen[j], 0) < 0 ||
            (last[j] = bsq_last_pos(s[j])) < 0) {
            bench_fail(r, "sqlite subscriber set-up failed");
            goto out;
        }
    }
    bench_go(w);
    int left = m;
    uint64_t quiet = bench_now_ns();
    while (left > 0) {
        int got = 0;
        for (int j = 0; j < m; j++) {
            if (done[j])
                continue;
            int rc = bsq_wait_change(s[j], &seen[j], 0);
            if (rc < 0) {
                bench_fail(r, "PRAGMA data_version failed");
                goto out;
            }
            if (rc == 0)
                continue;
            qrow q = {a, base + j, 0};
            while ((rc = bsq_read_after(s[j], &last[j], 1000, sqlite_row, &q, r)) > 0)
                got = 1;
            if (rc < 0)
                goto out;
            if (q.end)
                done[j] = 1, left--;
        }
        if (got)
            quiet = bench_now_ns();
        else if (bench_now_ns() - quiet > 10ull * 1000000000u) {
            bench_fail(r, "nothing received for 10 s");
            break;
        }
        if (left > 0)
            bench_sleep_us(1000);
    }
out:
    for (int j = 0; j < m; j++)
        bsq_close(s[j]);
    return r->errors ? -1 : 0;
}
#endif

static int lat_worker(bench_worker *w)
{
    larg *a = w->arg;
#ifdef BENCH_HAVE_SQLITE
    if (a->db)
        return w->idx == 0 ? sqlite_writer(w, a) : sqlite_subscriber(w, a);
#endif
    return w->idx == 0 ? maos_writer(w, a) : maos_subscriber(w, a);
}

typedef struct lfigs {
    double p50[64], p99[64], p999[64], gw[64];
    int n, ngw;
} lfigs;

/* One run: fork the writer and nsub/conns subscriber processes.  0 / -1. */
static int run_once(const bench_opts *o, larg *a, lfigs *f, const char *what)
{
    a->seconds = o->seconds;
    a->max_events = (uint64_t)(o->seconds * 1e9 / PERIOD_NS) + 64;
    size_t shsize = sizeof(lshared) + sizeof(uint64_t) * (size_t)a->nsub;
    size_t latsize = sizeof(uint64_t) * (size_t)a->nsub * a->max_events;
    a->sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    a->lat = mmap(NULL, latsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a->sh == MAP_FAILED || a->lat == MAP_FAILED) {
        bench_say("latency: mmap: %s", strerror(errno));
        return -1;
    }
    bench_run r;
    /* maos: the mean time of one commit group's RocksDB write, from the
     * daemon's counters (where the append part of the time goes). */
    bench_daemon sd = {0};
    maos_stats_info st0 = {0}, st1 = {0};
    int have_st = 0;
    if (a->sock && !a->channel) {
        snprintf(sd.sock, sizeof(sd.sock), "%s", a->sock);
        have_st = bench_daemon_stats(&sd, &st0) == 0;
    }
    int rc = bench_spawn(1 + a->nsub / a->conns, 0, lat_worker, a, &r);
    if (have_st && bench_daemon_stats(&sd, &st1) == 0 && st1.commit_groups > st0.commit_groups &&
        f->ngw < 64)
        f->gw[f->ngw++] = (double)(st1.commit_write_us - st0.commit_write_us) /
                          (double)(st1.commit_groups - st0.commit_groups);
    if (rc)
        bench_say("latency %s: failed: %s", what, r.err);
    uint64_t total = 0, lost = 0, *all = NULL;
    for (int i = 0; !rc && i < a->nsub; i++) {
        uint64_t n = a->sh->count[i];
        if (n < a->sh->written) {
            lost += a->sh->written - n;
            if (!a->channel) {
                bench_say("latency %s: subscriber %d got %llu of %llu events", what, i,
                          (unsigned long long)n, (unsigned long long)a->sh->written);
                rc = -1;
            }
        }
        total += n;
    }
    if (!rc && !(all = malloc(sizeof(uint64_t) * (total ? total : 1))))
        rc = -1;
    if (!rc) {
        uint64_t k = 0;
        for (int i = 0; i < a->nsub; i++) {
            memcpy(all + k, a->lat + (size_t)i * a->max_events,
                   sizeof(uint64_t) * a->sh->count[i]);
            k += a->sh->count[i];
        }
        if (f->n < 64) {
            f->p50[f->n] = bench_quantile_us(all, total, 0.50);
            f->p99[f->n] = bench_quantile_us(all, total, 0.99);
            f->p999[f->n] = bench_quantile_us(all, total, 0.999);
            bench_say("latency %s: %llu events x %d subscribers, p50 %.0f us, p99 %.0f us, "
                      "p99.9 %.0f us, max %.0f us, %llu lost",
                      what, (unsigned long long)a->sh->written, a->nsub, f->p50[f->n],
                      f->p99[f->n], f->p999[f->n], total ? (double)all[total - 1] / 1e3 : 0,
                      (unsigned long long)lost);
            f->n++;
        }
    }
    free(all);
    munmap(a->sh, shsize);
    munmap(a->lat, latsize);
    return rc;
}

static void report(const char *system, int nsub, const char *prefix, const lfigs *f)
{
    char m[64];
    snprintf(m, sizeof(m), "%s-p50", prefix);
    bench_report("latency", system, nsub, m, "us", BENCH_LOWER, f->p50, f->n);
    snprintf(m, sizeof(m), "%s-p99", prefix);
    bench_report("latency", system, nsub, m, "us", BENCH_LOWER, f->p99, f->n);
    snprintf(m, sizeof(m), "%s-p999", prefix);
    bench_report("latency", system, nsub, m, "us", BENCH_LOWER, f->p999, f->n);
    snprintf(m, sizeof(m), "%s-group-write", prefix);
    bench_report("latency", system, nsub, m, "us/group", BENCH_NEUTRAL, f->gw, f->ngw);
}

static int run_durability(const bench_opts *o, const char *dur, int *did_channel)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "latency", dur);
    if (rc)
        return rc;
    char dir[300] = "", db[400] = "";
#ifdef BENCH_HAVE_SQLITE
    if (o->vs_sqlite) {
        if (bench_mkdtemp(o, "latency-sqlite", dir, sizeof(dir)) < 0) {
            bench_daemon_close(&d);
            return -1;
        }
        snprintf(db, sizeof(db), "%s/events.db", dir);
        rc = bsq_create(db);
    }
#endif
    const int subs[2] = {1, o->quick ? 10 : 100};
    for (int si = 0; si < 2 && !rc; si++) {
        int nsub = subs[si];
        int procs = nsub == 1 ? 1 : o->quick ? 2 : 10;
        lfigs fm = {0}, fq = {0};
        for (int rep = 0; rep < o->reps && !rc; rep++) {
            char what[96];
            larg a = {.sock = d.sock, .nsub = nsub, .conns = nsub / procs};
            snprintf(a.stream, sizeof(a.stream), "lat-%s-%d-%d-%d", dur, nsub, rep, (int)getpid());
            snprintf(what, sizeof(what), "%s %d sub rep %d/%d: maos", dur, nsub, rep + 1,
                     o->reps);
            rc = run_once(o, &a, &fm, what);
#ifdef BENCH_HAVE_SQLITE
            if (!rc && o->vs_sqlite) {
                larg q = a;
                q.sock = NULL;
                q.db = db;
                q.full = dur[0] == 's';
                snprintf(what, sizeof(what), "%s %d sub rep %d/%d: sqlite %s", dur, nsub,
                         rep + 1, o->reps, q.full ? "FULL" : "NORMAL");
                rc = run_once(o, &q, &fq, what);
            }
#endif
        }
        report("maos", nsub, dur, &fm);
        if (o->vs_sqlite)
            report("sqlite", nsub, dur, &fq);
    }
    /* Channels do not depend on durability: once, on the first daemon. */
    if (!rc && !*did_channel) {
        lfigs fc = {0};
        *did_channel = 1;
        for (int rep = 0; rep < o->reps && !rc; rep++) {
            char what[96];
            larg a = {.sock = d.sock, .nsub = 1, .conns = 1, .channel = 1};
            snprintf(what, sizeof(what), "channel 1 sub rep %d/%d: maos", rep + 1, o->reps);
            rc = run_once(o, &a, &fc, what);
        }
        report("maos", 1, "channel", &fc);
    }
    bench_daemon_close(&d);
    if (dir[0] && !o->keep)
        bench_rmtree(dir);
    return rc;
}

int bench_sc_latency(const bench_opts *o)
{
    int did_channel = 0, skipped = 0;
    int rc = run_durability(o, "none", &did_channel);
    if (rc == BENCH_SKIPPED)
        skipped++, rc = 0;
    if (!rc)
        rc = run_durability(o, "sync", &did_channel);
    if (rc == BENCH_SKIPPED)
        skipped++, rc = 0;
    return rc < 0 ? -1 : skipped == 2 ? BENCH_SKIPPED : 0;
}
