/*
 * tests/bench/writes.c -- the write workloads shared by scenarios 1-3 and
 * the loaders of scenarios 4-5.
 *
 * One writer process appends to its own stream (prefix-IDX, expected
 * version "any") `batch` events per request:
 *  - maos, depth 1: maos_append and wait for each reply;
 *  - maos, depth > 1: keep `depth` appends in flight on one connection
 *    (maos_append_send / maos_reply_recv), a new one sent per reply;
 *  - SQLite: one BEGIN IMMEDIATE transaction per request; SQLite has no
 *    pipelining, so "depth" is what a user gets: one at a time.
 * Throughput counts requests completed before the deadline.  For maos the
 * daemon's counters before and after each run give the mean commit group
 * (requests per RocksDB write) and the mean time of one group write, which
 * tell whether group commit is doing its job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define RING 1024 /* > any depth: send time by rid % RING */

typedef struct wcfg {
    const char *sock;
    const char *db;
    const char *prefix;
    int full;
    int batch;
    int depth;
    uint64_t per_proc; /* fixed work (loaders): events per process; 0: timed */
    const char *one;   /* loaders: every `ratio`-th batch goes to this stream */
    uint64_t ratio;
    int nstreams;      /* loaders: streams per process */
} wcfg;

typedef struct events {
    int batch;
    msgpack_sbuffer *sb;
    maos_event_spec *ev;
} events;

static int events_init(events *e, int batch)
{
    e->batch = batch;
    e->sb = calloc((size_t)batch, sizeof(*e->sb));
    e->ev = calloc((size_t)batch, sizeof(*e->ev));
    if (!e->sb || !e->ev)
        return -1;
    for (int i = 0; i < batch; i++)
        msgpack_sbuffer_init(&e->sb[i]);
    return 0;
}

static void events_fill(events *e, int proc, uint64_t n0, int n)
{
    for (int i = 0; i < n; i++) {
        bench_data_msgpack(&e->sb[i], proc, n0 + (uint64_t)i);
        e->ev[i] = (maos_event_spec){
            .type = BENCH_EVENT_TYPE, .data = e->sb[i].data, .data_len = e->sb[i].size};
    }
}

static void events_free(events *e)
{
    if (e->sb)
        for (int i = 0; i < e->batch; i++)
            msgpack_sbuffer_destroy(&e->sb[i]);
    free(e->sb);
    free(e->ev);
}

/* The stream of request k of a worker. */
static void stream_of(const wcfg *a, const bench_worker *w, uint64_t k, char *buf,
                      size_t len)
{
    if (a->one && a->ratio && k % a->ratio == 0)
        snprintf(buf, len, "%s", a->one);
    else if (a->nstreams > 1)
        snprintf(buf, len, "%s-%d-%llu", a->prefix, w->idx,
                 (unsigned long long)(k % (uint64_t)a->nstreams));
    else
        snprintf(buf, len, "%s-%d", a->prefix, w->idx);
}

static int maos_writer(bench_worker *w)
{
    const wcfg *a = w->arg;
    bench_wres *r = w->res;
    events e;
    char stream[128];
    struct {
        uint64_t rid, t;
    } ring[RING];
    maos_ctx *c = bench_connect(a->sock);
    if (!c || events_init(&e, a->batch)) {
        bench_fail(r, "cannot connect to %s", a->sock);
        maos_free(c);
        return -1;
    }
    uint64_t n = 0, k = 0, inflight = 0;
    uint64_t end = bench_go(w), t0 = bench_now_ns();
    for (;;) {
        uint64_t now = bench_now_ns();
        int more_work = a->per_proc ? n < a->per_proc : now < end;
        if (a->depth <= 1) {
            if (!more_work)
                break;
            int cnt = a->batch;
            if (a->per_proc && a->per_proc - n < (uint64_t)cnt)
                cnt = (int)(a->per_proc - n);
            events_fill(&e, w->idx, n, cnt);
            stream_of(a, w, k++, stream, sizeof(stream));
            now = bench_now_ns();
            int rc = maos_append(c, stream, MAOS_EXPECT_ANY, e.ev, (size_t)cnt, NULL);
            uint64_t t1 = bench_now_ns();
            if (rc) {
                bench_fail(r, "append: %s", c->errstr);
                break;
            }
            bench_lat(r, t1 - now);
            n += (uint64_t)cnt;
            if (a->per_proc || t1 <= end) {
                r->ops++;
                r->events += (uint64_t)cnt;
            }
            continue;
        }
        while (more_work && inflight < (uint64_t)a->depth) {
            int cnt = a->batch;
            if (a->per_proc && a->per_proc - n < (uint64_t)cnt)
                cnt = (int)(a->per_proc - n);
            events_fill(&e, w->idx, n, cnt);
            stream_of(a, w, k++, stream, sizeof(stream));
            uint64_t rid;
            if (maos_append_send(c, stream, MAOS_EXPECT_ANY, e.ev, (size_t)cnt, &rid)) {
                bench_fail(r, "append_send: %s", c->errstr);
                goto out;
            }
            ring[rid % RING].rid = rid;
            ring[rid % RING].t = bench_now_ns();
            n += (uint64_t)cnt;
            inflight++;
            more_work = a->per_proc ? n < a->per_proc : bench_now_ns() < end;
        }
        if (!inflight)
            break;
        maos_result *m = NULL;
        if (maos_reply_recv(c, &m) || !m) {
            bench_fail(r, "reply_recv: %s", m ? "?" : c->errstr);
            break;
        }
        uint64_t t1 = bench_now_ns();
        inflight--;
        if (maos_result_status(m)) {
            bench_fail(r, "append: %s", maos_result_errstr(m));
            maos_result_free(m);
            break;
        }
        if (ring[maos_result_rid(m) % RING].rid == maos_result_rid(m))
            bench_lat(r, t1 - ring[maos_result_rid(m) % RING].t);
        if (a->per_proc || t1 <= end) {
            r->ops++;
            maos_append_info ai;
            r->events += maos_result_append(m, 0, &ai) ? 0 : ai.count;
        }
        maos_result_free(m);
    }
out:
    r->elapsed_ns = bench_now_ns() - t0;
    events_free(&e);
    maos_free(c);
    return r->errors ? -1 : 0;
}

#ifdef BENCH_HAVE_SQLITE
static int sqlite_writer(bench_worker *w)
{
    const wcfg *a = w->arg;
    bench_wres *r = w->res;
    char stream[128];
    bsq *s = bsq_open(a->db, a->full, r);
    if (!s)
        return -1;
    uint64_t n = 0, k = 0;
    uint64_t end = bench_go(w), t0 = bench_now_ns();
    for (;;) {
        uint64_t now = bench_now_ns();
        if (a->per_proc ? n >= a->per_proc : now >= end)
            break;
        int cnt = a->batch;
        if (a->per_proc && a->per_proc - n < (uint64_t)cnt)
            cnt = (int)(a->per_proc - n);
        stream_of(a, w, k, stream, sizeof(stream));
        int rc = bsq_append(s, stream, w->idx, n, cnt, r);
        uint64_t t1 = bench_now_ns();
        bench_lat(r, t1 - now);
        if (rc < 0)
            break;
        if (rc == 0) {
            n += (uint64_t)cnt;
            k++;
            if (a->per_proc || t1 <= end) {
                r->ops++;
                r->events += (uint64_t)cnt;
            }
        }
    }
    r->elapsed_ns = bench_now_ns() - t0;
    bsq_close(s);
    return r->errors ? -1 : 0;
}
#endif

/* ---- timed write figures ------------------------------------------------------ */

#define MAX_REPS 64

typedef struct series {
    double v[MAX_REPS];
    int n;
} series;

static void add(series *s, double v)
{
    if (s->n < MAX_REPS)
        s->v[s->n++] = v;
}

typedef struct figs {
    series rate, fair, worst, p99, p50, group, wtime, busy, ccpu, dcpu;
} figs;

static void add_run(figs *f, const bench_run *r, double seconds, int per_event)
{
    add(&f->rate, (double)(per_event ? r->events : r->ops) / seconds);
    add(&f->p50, r->p50_ms);
    /* CPU per request, over every request timed (a few finish after the
     * deadline), in microseconds. */
    add(&f->ccpu, r->n_lat ? r->cpu_s * 1e6 / (double)r->n_lat : 0);
    add(&f->fair, r->fairness);
    add(&f->worst, r->worst_ms);
    add(&f->p99, r->p99_ms);
    add(&f->busy, (double)r->busy);
}

static void name(char *buf, size_t len, const char *label, const char *metric)
{
    if (label && label[0])
        snprintf(buf, len, "%s-%s", label, metric);
    else
        snprintf(buf, len, "%s", metric);
}

static void report(const bench_write_spec *s, const char *system, const figs *f)
{
    char m[96];
    int procs = s->nproc;
#define REP(metric, unit, better, ser)                                         \
    do {                                                                       \
        name(m, sizeof(m), s->label, metric);                                  \
        bench_report(s->scenario, system, procs, m, unit, better, (ser).v, (ser).n); \
    } while (0)
    REP("throughput", s->unit, BENCH_HIGHER, f->rate);
    if (procs > 1)
        REP("fairness", "min/max", BENCH_HIGHER, f->fair);
    REP("latency-p50", "ms", BENCH_LOWER, f->p50);
    REP("latency-p99", "ms", BENCH_LOWER, f->p99);
    REP("latency-worst", "ms", BENCH_LOWER, f->worst);
    REP("cpu-clients", "us/req", BENCH_LOWER, f->ccpu);
    if (!strcmp(system, "sqlite"))
        REP("busy-errors", "count", BENCH_NEUTRAL, f->busy);
    else {
        if (f->dcpu.n)
            REP("cpu-daemon", "us/req", BENCH_NEUTRAL, f->dcpu);
        REP("group-size", "req/group", BENCH_NEUTRAL, f->group);
        REP("group-write", "us/group", BENCH_NEUTRAL, f->wtime);
    }
#undef REP
}

int bench_writes(const bench_opts *o, const bench_write_spec *s)
{
    figs fm = {0}, fq = {0};
    int failed = 0;
    wcfg a = {.sock = s->d->sock, .db = s->sqlite_db, .prefix = s->prefix,
              .full = s->sqlite_full, .batch = s->batch, .depth = s->depth};
    int per_event = strcmp(s->unit, "appends/s") != 0;
    for (int rep = 0; rep < o->reps && !failed; rep++) {
        maos_stats_info st0, st1;
        bench_run r;
        if (bench_daemon_stats(s->d, &st0))
            return -1;
        double dcpu0 = s->d->pid > 0 ? bench_proc_cpu_s(s->d->pid) : -1;
        if (bench_spawn(s->nproc, o->seconds, maos_writer, &a, &r)) {
            bench_say("%s %s p=%d: maos failed: %s", s->scenario, s->label, s->nproc, r.err);
            failed = 1;
        }
        double dcpu1 = s->d->pid > 0 ? bench_proc_cpu_s(s->d->pid) : -1;
        if (bench_daemon_stats(s->d, &st1))
            return -1;
        add_run(&fm, &r, o->seconds, per_event);
        if (dcpu0 >= 0 && dcpu1 >= 0 && r.n_lat)
            add(&fm.dcpu, (dcpu1 - dcpu0) * 1e6 / (double)r.n_lat);
        uint64_t groups = st1.commit_groups - st0.commit_groups;
        double gsize = groups ? (double)(st1.commit_requests - st0.commit_requests) / (double)groups : 0;
        double wt = groups ? (double)(st1.commit_write_us - st0.commit_write_us) / (double)groups : 0;
        add(&fm.group, gsize);
        add(&fm.wtime, wt);
        bench_say("%s%s%s p=%d rep %d/%d: maos %.0f %s, fairness %.2f, p50 %.2f ms, "
                  "p99 %.2f ms, worst %.1f ms, %.1f req/group, %.0f us/group write, "
                  "cpu/req %.0f us clients + %.0f us daemon",
                  s->scenario, s->label[0] ? " " : "", s->label, s->nproc, rep + 1, o->reps,
                  fm.rate.v[fm.rate.n - 1], s->unit, r.fairness, r.p50_ms, r.p99_ms,
                  r.worst_ms, gsize, wt, fm.ccpu.v[fm.ccpu.n - 1],
                  fm.dcpu.n ? fm.dcpu.v[fm.dcpu.n - 1] : -1.0);
#ifdef BENCH_HAVE_SQLITE
        if (s->sqlite_db) {
            if (bench_spawn(s->nproc, o->seconds, sqlite_writer, &a, &r)) {
                bench_say("%s %s p=%d: sqlite failed: %s", s->scenario, s->label, s->nproc,
                          r.err);
                failed = 1;
            }
            add_run(&fq, &r, o->seconds, per_event);
            bench_say("%s%s%s p=%d rep %d/%d: sqlite %.0f %s, fairness %.2f, p50 %.2f ms, "
                      "p99 %.2f ms, worst %.1f ms, %llu busy errors, cpu/req %.0f us",
                      s->scenario, s->label[0] ? " " : "", s->label, s->nproc, rep + 1,
                      o->reps, fq.rate.v[fq.rate.n - 1], s->unit, r.fairness, r.p50_ms,
                      r.p99_ms, r.worst_ms, (unsigned long long)r.busy,
                      fq.ccpu.v[fq.ccpu.n - 1]);
        }
#endif
    }
    report(s, "maos", &fm);
    if (s->sqlite_db)
        report(s, "sqlite", &fq);
    return failed ? -1 : 0;
}

/* ---- loaders -------------------------------------------------------------------- */

int bench_load(const bench_load_spec *l, double *rate)
{
    wcfg a = {.sock = l->sock, .db = l->sqlite_db, .prefix = l->prefix, .full = 0,
              .batch = 100, .depth = l->sqlite_db ? 1 : 16,
              .per_proc = (l->events + (uint64_t)l->nproc - 1) / (uint64_t)l->nproc,
              .one = l->one, .nstreams = l->nstreams};
    /* Every ratio-th request of each process goes to the one stream. */
    if (l->one && l->one_events)
        a.ratio = l->events / l->one_events;
    bench_run r;
    int rc;
#ifdef BENCH_HAVE_SQLITE
    if (l->sqlite_db)
        rc = bench_spawn(l->nproc, 0, sqlite_writer, &a, &r);
    else
#endif
        rc = bench_spawn(l->nproc, 0, maos_writer, &a, &r);
    if (rc) {
        bench_say("loading %s failed: %s", l->sqlite_db ? "sqlite" : "maos", r.err);
        return -1;
    }
    if (rate)
        *rate = r.elapsed_s > 0 ? (double)r.events / r.elapsed_s : 0;
    return 0;
}

int bench_warm(const bench_opts *o, const bench_daemon *d, const char *sqlite_db)
{
    if (!o->warm_events)
        return 0;
    bench_load_spec l = {.sock = d->sock, .prefix = "warm", .events = o->warm_events,
                         .nproc = 2, .nstreams = 50};
    double rate;
    if (bench_load(&l, &rate))
        return -1;
    bench_info("warm-up: %llu events into maos at %.0f events/s",
               (unsigned long long)o->warm_events, rate);
    if (sqlite_db) {
        l.sock = NULL;
        l.sqlite_db = sqlite_db;
        if (bench_load(&l, &rate))
            return -1;
        bench_info("warm-up: %llu events into sqlite at %.0f events/s",
                   (unsigned long long)o->warm_events, rate);
    }
    bench_daemon_settle(d);
    return 0;
}
