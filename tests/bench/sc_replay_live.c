/*
 * tests/bench/sc_replay_live.c -- scenario 7: replay, then live.
 *
 * The store gets --catchup-events (200,000; --quick 2,000) events in
 * batches of 100 over 100 streams (durability none).  Then one writer
 * appends one timestamped event (sc_latency.c's body) every millisecond to
 * the stream "rl-live" while one subscriber subscribes to everything from
 * the first loaded position.  Figures:
 *  - catchup-rate: events delivered until the first caught_up push,
 *    divided by the time from the subscribe call to that push;
 *  - live-p50 / live-p99: after caught_up, for o->seconds, the latency
 *    from the writer's send to the subscriber's receipt, as in scenario 6.
 * SQLite (--vs sqlite): the subscriber reads rows pos > last in pages of
 * 1,000 until a page comes back short (caught up), then polls PRAGMA
 * data_version every millisecond and reads the new rows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define LIVE "rl-live"
#define STEADY_NS 250000000ull

typedef struct rlshared {
    volatile int stop;
    uint64_t caught_events, caught_ns, nlat, nsteady;
    uint64_t *steady;   /* the second half of lat[]: received >= STEADY_NS after caught_up */
    uint64_t fell_behind, caught_ups; /* maos: pushes of those kinds */
    uint64_t lat[];
} rlshared;

typedef struct rlarg {
    const char *sock, *db;
    uint64_t from;       /* maos: first position to subscribe from */
    double seconds;
    uint64_t max_lat;
    uint64_t steady_ns;  /* STEADY_NS, or half the run when shorter */
    rlshared *sh;
} rlarg;

static void keep(rlarg *a, uint64_t ns, int steady)
{
    if (a->sh->nlat < a->max_lat)
        a->sh->lat[a->sh->nlat++] = ns;
    if (steady && a->sh->nsteady < a->max_lat)
        a->sh->steady[a->sh->nsteady++] = ns;
}

static int stopping(rlarg *a, uint64_t t0)
{
    return a->sh->stop || bench_now_ns() - t0 > 300ull * 1000000000u;
}

static int maos_worker(bench_worker *w)
{
    rlarg *a = w->arg;
    bench_wres *r = w->res;
    maos_ctx *c = bench_connect(a->sock);
    if (!c) {
        bench_fail(r, "cannot connect");
        return -1;
    }
    bench_go(w);
    uint64_t t0 = bench_now_ns();
    if (w->idx == 0) { /* the writer */
        uint8_t buf[512];
        for (uint64_t k = 0; !stopping(a, t0); k++) {
            size_t len = bench_stamp_msgpack(buf, sizeof(buf), bench_now_ns(), k);
            maos_event_spec ev = {.type = BENCH_EVENT_TYPE, .data = buf, .data_len = len};
            if (maos_append(c, LIVE, MAOS_EXPECT_ANY, &ev, 1, NULL)) {
                bench_fail(r, "append: %s", c->errstr);
                break;
            }
            bench_sleep_us(1000);
        }
        maos_free(c);
        return r->errors ? -1 : 0;
    }
    uint64_t events = 0, caught = 0, until = 0;
    if (maos_subscribe(c, NULL, MAOS_FROM_POSITION, a->from, NULL)) {
        bench_fail(r, "subscribe: %s", c->errstr);
        goto out;
    }
    for (;;) {
        maos_delivery *d;
        int rc = maos_next(c, 10000, &d);
        uint64_t now = bench_now_ns();
        if (rc) {
            bench_fail(r, "next: %s", c->errstr);
            break;
        }
        if (d->kind == MAOS_PUSH_EVENTS) {
            events += d->n;
            for (size_t i = 0; caught && i < d->n; i++) {
                const maos_event *e = &d->events[i];
                if (e->stream_len == strlen(LIVE) && !memcmp(e->stream, LIVE, e->stream_len)) {
                    uint64_t t = bench_stamp_get(e->data, e->data_len);
                    if (t)
                        keep(a, now - t, now - caught >= a->steady_ns);
                }
            }
        } else if (d->kind == MAOS_PUSH_FELL_BEHIND) {
            a->sh->fell_behind++;
        } else if (d->kind == MAOS_PUSH_CAUGHT_UP && a->sh->caught_ups++ == 0) {
            caught = now;
            a->sh->caught_events = events;
            a->sh->caught_ns = now - t0;
            until = now + (uint64_t)(a->seconds * 1e9);
        }
        maos_delivery_free(d);
        if (caught && now >= until)
            break;
    }
out:
    a->sh->stop = 1;
    maos_free(c);
    return r->errors ? -1 : 0;
}

#ifdef BENCH_HAVE_SQLITE
typedef struct rlrow {
    rlarg *a;
    int live;
    uint64_t caught;
} rlrow;

static void sqlite_row(void *ud, int64_t pos, const char *stream, const char *data, int len)
{
    rlrow *q = ud;
    (void)pos;
    if (q->live && !strcmp(stream, LIVE)) {
        uint64_t t = bench_stamp_get_json(data, len);
        uint64_t now = bench_now_ns();
        if (t)
            keep(q->a, now - t, now - q->caught >= q->a->steady_ns);
    }
}

static int sqlite_worker(bench_worker *w)
{
    rlarg *a = w->arg;
    bench_wres *r = w->res;
    bsq *s = bsq_open(a->db, 0, r);
    if (!s)
        return -1;
    bench_go(w);
    uint64_t t0 = bench_now_ns();
    if (w->idx == 0) {
        char buf[640];
        for (uint64_t k = 0; !stopping(a, t0); k++) {
            size_t len = bench_stamp_json(buf, sizeof(buf), bench_now_ns(), k);
            if (bsq_append_data(s, LIVE, buf, len, r)) {
                bench_fail(r, "sqlite append failed");
                break;
            }
            bench_sleep_us(1000);
        }
        bsq_close(s);
        return r->errors ? -1 : 0;
    }
    int64_t last = 0, seen = -1;
    uint64_t events = 0;
    rlrow q = {a, 0, 0};
    int n;
    if (bsq_wait_change(s, &seen, 0) < 0)
        bench_fail(r, "PRAGMA data_version failed");
    while (!r->errors && (n = bsq_read_after(s, &last, 1000, sqlite_row, &q, r)) >= 0) {
        events += (uint64_t)n;
        if (n < 1000)
            break;
    }
    uint64_t now = bench_now_ns(), until = now + (uint64_t)(a->seconds * 1e9);
    a->sh->caught_events = events;
    a->sh->caught_ns = now - t0;
    q.live = 1;
    q.caught = now;
    while (!r->errors && bench_now_ns() < until) {
        int rc = bsq_wait_change(s, &seen, 0);
        if (rc < 0)
            bench_fail(r, "PRAGMA data_version failed");
        while (rc > 0 && bsq_read_after(s, &last, 1000, sqlite_row, &q, r) > 0) {
        }
        bench_sleep_us(1000);
    }
    a->sh->stop = 1;
    bsq_close(s);
    return r->errors ? -1 : 0;
}
#endif

typedef struct rlfigs {
    double rate[64], p50[64], p99[64], sp99[64];
    int n;
} rlfigs;

static int run_once(const bench_opts *o, rlarg *a, rlfigs *f, const char *what)
{
    a->seconds = o->seconds;
    a->max_lat = (uint64_t)(o->seconds * 1000) * 2 + 1000;
    a->steady_ns = STEADY_NS < o->seconds * 0.5e9 ? STEADY_NS : (uint64_t)(o->seconds * 0.5e9);
    size_t size = sizeof(rlshared) + 2 * sizeof(uint64_t) * a->max_lat;
    a->sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a->sh == MAP_FAILED) {
        bench_say("replay-live: mmap: %s", strerror(errno));
        return -1;
    }
    a->sh->steady = a->sh->lat + a->max_lat;
    bench_run r;
    int rc = 0;
#ifdef BENCH_HAVE_SQLITE
    if (a->db)
        rc = bench_spawn(2, 0, sqlite_worker, a, &r);
    else
#endif
        rc = bench_spawn(2, 0, maos_worker, a, &r);
    if (rc)
        bench_say("replay-live %s: failed: %s", what, r.err);
    else if (!a->sh->nlat) {
        bench_say("replay-live %s: no live event received", what);
        rc = -1;
    } else if (f->n < 64) {
        double s = (double)a->sh->caught_ns / 1e9;
        f->rate[f->n] = s > 0 ? (double)a->sh->caught_events / s : 0;
        f->p50[f->n] = bench_quantile_us(a->sh->lat, a->sh->nlat, 0.5);
        f->p99[f->n] = bench_quantile_us(a->sh->lat, a->sh->nlat, 0.99);
        f->sp99[f->n] = bench_quantile_us(a->sh->steady, a->sh->nsteady, 0.99);
        bench_say("replay-live %s: caught up with %llu events in %.3f s (%.0f events/s), "
                  "then %llu live events: p50 %.0f us, p99 %.0f us (%.0f us from %.0f ms "
                  "after caught_up on); %llu fell_behind, "
                  "%llu caught_up pushes",
                  what, (unsigned long long)a->sh->caught_events, s, f->rate[f->n],
                  (unsigned long long)a->sh->nlat, f->p50[f->n], f->p99[f->n],
                  f->sp99[f->n], (double)a->steady_ns / 1e6, (unsigned long long)a->sh->fell_behind, (unsigned long long)a->sh->caught_ups);
        f->n++;
    }
    munmap(a->sh, size);
    return rc;
}

static void report(const char *system, const rlfigs *f)
{
    bench_report("replay-live", system, 1, "catchup-rate", "events/s", BENCH_HIGHER, f->rate,
                 f->n);
    bench_report("replay-live", system, 1, "live-p50", "us", BENCH_LOWER, f->p50, f->n);
    bench_report("replay-live", system, 1, "live-p99", "us", BENCH_LOWER, f->p99, f->n);
    bench_report("replay-live", system, 1, "steady-p99", "us", BENCH_LOWER, f->sp99, f->n);
}

int bench_sc_replay_live(const bench_opts *o)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "replay-live", "none");
    if (rc)
        return rc;
    maos_stats_info st;
    if (bench_daemon_stats(&d, &st)) {
        bench_daemon_close(&d);
        return -1;
    }
    rlarg am = {.sock = d.sock, .from = st.head_position + 1};
    bench_load_spec l = {.sock = d.sock, .prefix = "rl", .events = o->catchup_events,
                         .nproc = 1, .nstreams = 100};
    double rate;
    char dir[300] = "";
    rlfigs fm = {0}, fq = {0};
    if (bench_load(&l, &rate)) {
        rc = -1;
        goto out;
    }
    bench_daemon_settle(&d);
    bench_say("replay-live: loaded %llu events into maos at %.0f events/s",
              (unsigned long long)o->catchup_events, rate);
#ifdef BENCH_HAVE_SQLITE
    char db[400] = "";
    rlarg aq = {.db = db};
    if (o->vs_sqlite) {
        if (bench_mkdtemp(o, "replay-live-sqlite", dir, sizeof(dir)) < 0) {
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
        bench_say("replay-live: loaded %llu events into sqlite at %.0f events/s",
                  (unsigned long long)o->catchup_events, rate);
    }
#endif
    /* Each repetition subscribes from the same start; the live events of
     * earlier repetitions are part of the log it replays. */
    for (int rep = 0; rep < o->reps && !rc; rep++) {
        char what[64];
        snprintf(what, sizeof(what), "rep %d/%d: maos", rep + 1, o->reps);
        rc = run_once(o, &am, &fm, what);
#ifdef BENCH_HAVE_SQLITE
        if (!rc && o->vs_sqlite) {
            snprintf(what, sizeof(what), "rep %d/%d: sqlite", rep + 1, o->reps);
            rc = run_once(o, &aq, &fq, what);
        }
#endif
    }
    report("maos", &fm);
    if (o->vs_sqlite)
        report("sqlite", &fq);
out:
    bench_daemon_close(&d);
    if (dir[0] && !o->keep)
        bench_rmtree(dir);
    return rc;
}
