/*
 * tests/bench/sc_replay.c -- scenario 4: replay into one client process.
 *
 * The store gets --replay-events events (1,000,000) in batches of 100 over
 * many streams, every tenth batch (by default) to the stream "replay-one",
 * which so holds --stream-events (100,000) events interleaved with the
 * rest: reading it means following the stream index, not one key range.
 * Then one client reads the global log from its start to its end
 * (maos_read_all, the largest page the protocol allows) and the one stream
 * (maos_read), and reports events/s and MB/s of stored record bytes
 * received.  SQLite does the same with SELECT ... ORDER BY pos and
 * WHERE stream = ? ORDER BY version, reading every column; its MB/s counts
 * the column bytes.  With --socket the daemon's earlier events are skipped:
 * the read starts at the first position this scenario wrote.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define ONE "replay-one"

typedef struct rarg {
    const char *sock;
    const char *db;
    const char *stream; /* NULL: the global log */
    uint64_t from;      /* global log: first position */
} rarg;

static int maos_replayer(bench_worker *w)
{
    const rarg *a = w->arg;
    bench_wres *r = w->res;
    maos_ctx *c = bench_connect(a->sock);
    if (!c) {
        bench_fail(r, "cannot connect to %s", a->sock);
        return -1;
    }
    bench_go(w);
    uint64_t t0 = bench_now_ns(), from = a->stream ? 0 : a->from;
    for (;;) {
        maos_page *pg = NULL;
        uint64_t t1 = bench_now_ns();
        int rc = a->stream
                     ? maos_read(c, a->stream, from, 0, MAOS_READ_LIMIT_MAX, &pg)
                     : maos_read_all(c, NULL, from, 0, MAOS_READ_LIMIT_MAX, &pg);
        if (rc) {
            bench_fail(r, "read: %s", c->errstr);
            break;
        }
        bench_lat(r, bench_now_ns() - t1);
        r->ops++;
        r->events += pg->n;
        for (size_t i = 0; i < pg->n; i++)
            r->bytes += pg->events[i].raw_len;
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            break;
    }
    r->elapsed_ns = bench_now_ns() - t0;
    maos_free(c);
    return r->errors ? -1 : 0;
}

#ifdef BENCH_HAVE_SQLITE
static int sqlite_replayer(bench_worker *w)
{
    const rarg *a = w->arg;
    bench_wres *r = w->res;
    bsq *s = bsq_open(a->db, 0, r);
    if (!s)
        return -1;
    bench_go(w);
    uint64_t t0 = bench_now_ns();
    bsq_read(s, a->stream, r);
    r->elapsed_ns = bench_now_ns() - t0;
    bsq_close(s);
    return r->errors ? -1 : 0;
}
#endif

typedef struct rfigs {
    double ev[64], mb[64];
    int n;
} rfigs;

static int read_once(const bench_opts *o, bench_worker_fn fn, rarg *a, rfigs *f,
                     const char *what, uint64_t *count)
{
    bench_run r;
    if (bench_spawn(1, 0, fn, a, &r)) {
        bench_say("replay %s failed: %s", what, r.err);
        return -1;
    }
    double s = r.elapsed_s > 0 ? r.elapsed_s : 1e-9;
    if (f->n < 64) {
        f->ev[f->n] = (double)r.events / s;
        f->mb[f->n] = (double)r.bytes / s / 1e6;
        f->n++;
    }
    *count = r.events;
    bench_say("replay %s: %llu events, %.1f MB in %.3f s: %.0f events/s, %.1f MB/s", what,
              (unsigned long long)r.events, (double)r.bytes / 1e6, s, (double)r.events / s,
              (double)r.bytes / s / 1e6);
    (void)o;
    return 0;
}

static void report(const char *system, const char *what, const rfigs *f)
{
    char m[64];
    snprintf(m, sizeof(m), "%s-throughput", what);
    bench_report("replay", system, 1, m, "events/s", BENCH_HIGHER, f->ev, f->n);
    snprintf(m, sizeof(m), "%s-bandwidth", what);
    bench_report("replay", system, 1, m, "MB/s", BENCH_HIGHER, f->mb, f->n);
}

int bench_sc_replay(const bench_opts *o)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "replay", "none");
    if (rc)
        return rc;
    maos_stats_info st;
    if (bench_daemon_stats(&d, &st)) {
        bench_daemon_close(&d);
        return -1;
    }
    /* In a daemon of our own "replay-one" is new; a shared daemon may hold
     * an older one, so count the events actually read. */
    rarg all = {.sock = d.sock, .from = st.head_position + 1};
    rarg one = {.sock = d.sock, .stream = ONE};
    bench_load_spec l = {.sock = d.sock, .prefix = "replay", .events = o->replay_events,
                         .nproc = 1, .nstreams = 100, .one = ONE,
                         .one_events = o->stream_events};
    double rate;
    if (bench_load(&l, &rate)) {
        bench_daemon_close(&d);
        return -1;
    }
    bench_say("replay: loaded %llu events into maos at %.0f events/s",
              (unsigned long long)o->replay_events, rate);

    char dir[300] = "";
    rfigs qa = {0}, qo = {0}, ma = {0}, mo = {0};
    uint64_t count;
#ifdef BENCH_HAVE_SQLITE
    char db[400] = "";
    rarg qall = {.db = db}, qone = {.db = db, .stream = ONE};
    if (o->vs_sqlite) {
        if (bench_mkdtemp(o, "replay-sqlite", dir, sizeof(dir)) < 0) {
            rc = -1;
            goto out;
        }
        snprintf(db, sizeof(db), "%s/events.db", dir);
        l.sock = NULL;
        l.sqlite_db = db;
        if (bsq_create(db) || bench_load(&l, &rate)) {
            rc = -1;
            goto out;
        }
        bench_say("replay: loaded %llu events into sqlite at %.0f events/s",
                  (unsigned long long)o->replay_events, rate);
    }
#endif
    for (int rep = 0; rep < o->reps && !rc; rep++) {
        rc = read_once(o, maos_replayer, &all, &ma, "maos $all", &count);
        if (!rc)
            rc = read_once(o, maos_replayer, &one, &mo, "maos " ONE, &count);
#ifdef BENCH_HAVE_SQLITE
        if (!rc && o->vs_sqlite)
            rc = read_once(o, sqlite_replayer, &qall, &qa, "sqlite all", &count);
        if (!rc && o->vs_sqlite)
            rc = read_once(o, sqlite_replayer, &qone, &qo, "sqlite " ONE, &count);
#endif
    }
    report("maos", "all", &ma);
    report("maos", "stream", &mo);
    if (o->vs_sqlite) {
        report("sqlite", "all", &qa);
        report("sqlite", "stream", &qo);
    }
#ifdef BENCH_HAVE_SQLITE
out:
#endif
    bench_daemon_close(&d);
    if (dir[0] && !o->keep)
        bench_rmtree(dir);
    return rc;
}
