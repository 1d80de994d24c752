/*
 * tests/bench/sc_queue.c -- scenario 13 (issue 8): a task queue.
 *
 * One producer process and QUEUE_WORKERS worker processes, durable (sync;
 * SQLite synchronous=FULL).  Two runs per repetition:
 *
 *  throughput: the producer keeps a backlog (batches of 16 tasks, paused
 *    while more than QUEUE_BACKLOG are ready); each worker claims one task
 *    at a time and acks it (an empty handler).  A maos worker sends the
 *    ack of a task and the claim of the next one together (pipelined, as
 *    a client library's worker loop does), so one group commit answers
 *    both; SQLite cannot pipeline.  Reported: tasks completed
 *    per second (acks before the deadline), fairness across the workers.
 *  latency: the producer enqueues one task every millisecond, stamped
 *    with the time of sending; idle workers wait for work.  Reported: the
 *    time from the enqueue being sent to a worker holding the task, p50
 *    and p99.
 *
 * maos workers wait with claim's wait_ms (served by push when a task
 * becomes ready); SQLite workers poll every 1 ms when nothing is ready,
 * as teams do.  SQLite side: a tasks table with an index on (state,
 * priority, id); claim = BEGIN IMMEDIATE; SELECT ... ORDER BY priority
 * DESC, id LIMIT 1; UPDATE; COMMIT; ack = one UPDATE.  Its SQLITE_BUSY
 * errors (past busy_timeout) are reported too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define QUEUE_WORKERS 8
#define QUEUE_BACKLOG 2000
#define QUEUE_BATCH 16

typedef struct q_arg {
    const char *sock;
    char sqlite_db[420]; /* a fresh database per run */
    char queue[32];      /* a fresh queue per run */
    int latency;         /* 1: the paced latency run */
} q_arg;

/* A task's data: msgpack int64 of the time it was sent. */
static void stamp(char out[9], int64_t ns)
{
    out[0] = (char)0xd3;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (char)((uint64_t)ns >> (56 - 8 * i));
}

static int64_t unstamp(maos_slice d)
{
    maos_mpr r;
    int64_t v = 0;
    maos_mpr_init(&r, d.ptr, d.len);
    return maos_mpr_int(&r, &v) ? 0 : v;
}

/* The latency run's pace: wait for the next 1 ms slot. */
static void pace(uint64_t *next)
{
    uint64_t now = bench_now_ns();
    if (*next > now)
        bench_sleep_us((*next - now) / 1000);
    *next += 1000000;
}

/* ---- maos ---------------------------------------------------------------------------- */

static int ready_count(bench_rconn *c, const char *queue, uint64_t *ready)
{
    maos_reply rep;
    maos_enc_queue_stats(&c->pk, ++c->rid, bench_sl(queue));
    int rc = brc_call(c, &rep);
    if (rc == MAOS_ENOT_FOUND) {
        *ready = 0;
        return 0;
    }
    maos_mpr r;
    uint32_t n;
    maos_queue_info qi;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    if (rc || maos_mpr_array(&r, &n) || n != 1 || maos_queue_info_next(&r, &qi))
        return -1;
    *ready = qi.ready;
    return 0;
}

static int producer_maos(bench_worker *w, bench_rconn *c, const q_arg *a)
{
    char data[QUEUE_BATCH][9];
    maos_task_in t[QUEUE_BATCH];
    memset(t, 0, sizeof t);
    w->res->bystander = 1;
    uint64_t deadline = bench_go(w), next = bench_now_ns(), look = 0, ready = 0;
    while (bench_now_ns() < deadline) {
        int n = a->latency ? 1 : QUEUE_BATCH;
        if (a->latency) {
            pace(&next);
        } else {
            /* the backlog, looked at every 20 ms (between looks it grows
             * by what the producer adds) */
            if (bench_now_ns() >= look) {
                if (ready_count(c, a->queue, &ready)) {
                    bench_fail(w->res, "queue_stats failed");
                    return -1;
                }
                look = bench_now_ns() + 20000000;
            }
            if (ready > QUEUE_BACKLOG) {
                bench_sleep_us(1000);
                look = 0;
                continue;
            }
            ready += (uint64_t)n;
        }
        int64_t now = (int64_t)bench_now_ns();
        for (int i = 0; i < n; i++) {
            stamp(data[i], now);
            t[i].data = (maos_slice){data[i], 9};
            t[i].delay_ms = -1;
        }
        maos_reply rep;
        maos_enc_enqueue(&c->pk, ++c->rid, bench_sl(a->queue), t, (uint32_t)n);
        int rc = brc_call(c, &rep);
        if (rc) {
            bench_fail(w->res, "enqueue: %s", maos_err_name(rc));
            return -1;
        }
    }
    return 0;
}

static int worker_maos(bench_worker *w)
{
    const q_arg *a = w->arg;
    bench_rconn c;
    if (brc_open(&c, a->sock)) {
        bench_fail(w->res, "cannot connect to %s", a->sock);
        return -1;
    }
    int rc = 0;
    if (w->idx == 0) {
        rc = producer_maos(w, &c, a);
        brc_close(&c);
        return rc;
    }
    maos_slice q = bench_sl(a->queue);
    uint64_t deadline = bench_go(w);
    /* The ack of a task and the claim of the next go out together (a
     * pipelining worker): they are answered by the same group commit. */
    uint8_t ack_id[16];
    uint64_t ack_token = 0, ack_rid = 0, got = 0;
    while (!rc && bench_now_ns() < deadline) {
        int lost = 0;
        if (ack_token) { /* one frame each */
            ack_rid = ++c.rid;
            maos_enc_ack(&c.pk, ack_rid, ack_id, ack_token, (maos_slice){0});
            lost = brc_send(&c);
        }
        uint64_t claim_rid = ++c.rid;
        maos_enc_claim(&c.pk, claim_rid, &q, 1, 30000, 1000, 1, 0);
        if (lost || brc_send(&c)) {
            bench_fail(w->res, "connection lost");
            rc = -1;
            break;
        }
        maos_reply rep;
        maos_slice f;
        char *claim_frame = NULL;
        size_t claim_len = 0;
        while (ack_token || !claim_frame) {
            if (brc_recv(&c, 60000, &f) != 1 || maos_reply_decode(f.ptr, f.len, &rep)) {
                maos_push p;
                if (maos_push_decode(f.ptr, f.len, &p) == 1)
                    continue;
                bench_fail(w->res, "no reply");
                rc = -1;
                break;
            }
            if (!rep.ok) {
                bench_fail(w->res, "%s: %s", rep.rid == ack_rid ? "ack" : "claim",
                           maos_err_name(rep.code));
                rc = -1;
                break;
            }
            if (rep.rid == ack_rid && ack_token) {
                uint64_t done = bench_now_ns();
                if (!a->latency)
                    bench_lat(w->res, done - got);
                if (done <= deadline)
                    w->res->ops++;
                ack_token = 0;
            } else if (rep.rid == claim_rid) {
                claim_frame = malloc(f.len);
                if (!claim_frame) {
                    rc = -1;
                    break;
                }
                memcpy(claim_frame, f.ptr, f.len);
                claim_len = f.len;
            }
        }
        if (rc) {
            free(claim_frame);
            break;
        }
        got = bench_now_ns();
        maos_reply_decode(claim_frame, claim_len, &rep);
        maos_mpr r;
        uint32_t n;
        maos_task t;
        maos_mpr_init(&r, rep.items.ptr, rep.items.len);
        if (maos_mpr_array(&r, &n) == 0 && n == 1 && maos_task_next(&r, &t) == 0) {
            if (a->latency)
                bench_lat(w->res, got - (uint64_t)unstamp(t.data));
            memcpy(ack_id, t.id, 16);
            ack_token = t.token;
        }
        free(claim_frame);
    }
    brc_close(&c);
    return rc ? -1 : 0;
}

/* ---- SQLite ------------------------------------------------------------------------------ */

#ifdef BENCH_HAVE_SQLITE
static int worker_sqlite(bench_worker *w)
{
    const q_arg *a = w->arg;
    bsq *s = bsq_open(a->sqlite_db, 1, w->res);
    if (!s)
        return -1;
    int rc = 0;
    uint64_t deadline, next;
    if (w->idx == 0) { /* the producer */
        int64_t data[QUEUE_BATCH];
        w->res->bystander = 1;
        deadline = bench_go(w);
        next = bench_now_ns();
        uint64_t look = 0;
        int64_t ready = 0;
        while (rc >= 0 && bench_now_ns() < deadline) {
            int n = a->latency ? 1 : QUEUE_BATCH;
            if (a->latency) {
                pace(&next);
            } else { /* the same backlog rule as the maos producer */
                if (bench_now_ns() >= look) {
                    if ((ready = bsq_q_ready(s, w->res)) < 0) {
                        rc = -1;
                        break;
                    }
                    look = bench_now_ns() + 20000000;
                }
                if (ready > QUEUE_BACKLOG) {
                    bench_sleep_us(1000);
                    look = 0;
                    continue;
                }
                ready += n;
            }
            int64_t now = (int64_t)bench_now_ns();
            for (int i = 0; i < n; i++)
                data[i] = now;
            rc = bsq_q_enqueue(s, data, n, w->res);
        }
        bsq_close(s);
        return rc < 0 ? -1 : 0;
    }
    deadline = bench_go(w);
    while (bench_now_ns() < deadline) {
        int64_t id, data;
        rc = bsq_q_claim(s, &id, &data, w->res);
        if (rc < 0)
            break;
        if (rc == 1)
            continue; /* busy: counted, tried again */
        if (rc == 2) {
            bench_sleep_us(1000); /* nothing ready: poll again in 1 ms */
            continue;
        }
        uint64_t got = bench_now_ns();
        if (a->latency)
            bench_lat(w->res, got - (uint64_t)data);
        while ((rc = bsq_q_ack(s, id, w->res)) == 1)
            ;
        if (rc < 0)
            break;
        uint64_t done = bench_now_ns();
        if (!a->latency)
            bench_lat(w->res, done - got);
        if (done <= deadline)
            w->res->ops++;
    }
    bsq_close(s);
    return rc < 0 ? -1 : 0;
}
#endif

/* ---- the scenario ------------------------------------------------------------------------- */

/* The arguments of one run: its own queue and SQLite database, so that no
 * run inherits another's backlog.  -1 when the database cannot be made. */
static int run_arg(q_arg *a, const char *sock, const char *dir, int rep, int latency)
{
    memset(a, 0, sizeof(*a));
    a->sock = sock;
    a->latency = latency;
    snprintf(a->queue, sizeof a->queue, "bench-%s-%d", latency ? "lat" : "tp", rep);
#ifdef BENCH_HAVE_SQLITE
    if (dir[0]) {
        snprintf(a->sqlite_db, sizeof a->sqlite_db, "%s/%s.db", dir, a->queue);
        return bsq_create(a->sqlite_db);
    }
#else
    (void)dir;
#endif
    return 0;
}

static void report(const char *system, const bench_run *tp, const bench_run *lat, int n)
{
    double rate[16], fair[16], p50[16], p99[16], busy[16];
    for (int i = 0; i < n; i++) {
        rate[i] = (double)tp[i].ops / tp[i].seconds;
        fair[i] = tp[i].fairness;
        p50[i] = lat[i].p50_ms * 1000.0;
        p99[i] = lat[i].p99_ms * 1000.0;
        busy[i] = (double)(tp[i].busy + lat[i].busy);
    }
    int procs = QUEUE_WORKERS + 1;
    bench_report("queue", system, procs, "tasks completed", "tasks/s", BENCH_HIGHER, rate, n);
    bench_report("queue", system, procs, "fairness (workers)", "min/max", BENCH_HIGHER, fair, n);
    bench_report("queue", system, procs, "enqueue -> claimed p50", "us", BENCH_LOWER, p50, n);
    bench_report("queue", system, procs, "enqueue -> claimed p99", "us", BENCH_LOWER, p99, n);
    if (strcmp(system, "maos"))
        bench_report("queue", system, procs, "busy errors", "count", BENCH_LOWER, busy, n);
}

int bench_sc_queue(const bench_opts *o)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "queue", "sync");
    if (rc)
        return rc;
    char dir[300] = "";
#ifdef BENCH_HAVE_SQLITE
    if (o->vs_sqlite && bench_mkdtemp(o, "queue-sqlite", dir, sizeof dir))
        rc = -1;
#endif
    int reps = o->reps > 16 ? 16 : o->reps;
    bench_run mt[16], ml[16], st[16], sl[16];
    int nm = 0, ns = 0;
    for (int r = 0; r < reps && !rc; r++) {
        q_arg tp, la;
        if (run_arg(&tp, d.sock, dir, r, 0) || run_arg(&la, d.sock, dir, r, 1)) {
            rc = -1;
            break;
        }
        if (bench_spawn(QUEUE_WORKERS + 1, o->seconds, worker_maos, &tp, &mt[nm]) ||
            bench_spawn(QUEUE_WORKERS + 1, o->seconds, worker_maos, &la, &ml[nm])) {
            bench_say("queue: %s", mt[nm].err[0] ? mt[nm].err : ml[nm].err);
            rc = -1;
            break;
        }
        nm++;
#ifdef BENCH_HAVE_SQLITE
        if (dir[0]) {
            if (bench_spawn(QUEUE_WORKERS + 1, o->seconds, worker_sqlite, &tp, &st[ns]) ||
                bench_spawn(QUEUE_WORKERS + 1, o->seconds, worker_sqlite, &la, &sl[ns])) {
                bench_say("queue sqlite: %s", st[ns].err[0] ? st[ns].err : sl[ns].err);
                rc = -1;
                break;
            }
            ns++;
        }
#endif
    }
    if (nm)
        report("maos", mt, ml, nm);
    if (ns)
        report("sqlite", st, sl, ns);
    bench_daemon_close(&d);
    if (dir[0] && !o->keep)
        bench_rmtree(dir);
    return rc;
}
