/*
 * tests/bench/sc_tables.c -- scenarios 11 and 12 (issue 7): tables.
 *
 * kv-cas: 8 processes do read-modify-write increments of a counter with
 * compare-and-set, on 1 key (all contend) and on 100 keys (each
 * increment picks one at random): get the entry, put value + 1 expecting
 * its revision, and on WRONG_REVISION retry from the entry the refusal
 * carries (no second get).  Reported:
 * successful increments/s, the conflict rate (failed puts / puts),
 * fairness, p99 of one successful increment (retries included).  SQLite
 * side: BEGIN IMMEDIATE; SELECT rev, val; UPDATE ... WHERE rev = ?;
 * COMMIT (the write lock serialises, so it never conflicts; its waits are
 * in its latency), synchronous=FULL like maos's sync durability.
 *
 * liveness: a child registers an agent and is SIGKILLed; a watcher of the
 * agents table (in this process) waits for the agent's `offline` put.
 * Time from the kill to its receipt, over LIVENESS_KILLS kills: p50, p99,
 * worst.  SQLite has no equivalent (no row).
 *
 * Both talk the wire directly (bench_rconn: proto encoders over one Unix
 * socket), the way the daemon-level table tests do: what is measured is
 * maosd.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define CAS_PROCS 8

/* ---- kv-cas ------------------------------------------------------------------------ */

typedef struct cas_arg {
    const char *sock;
    const char *sqlite_db;
    int nkeys;
} cas_arg;

/* The counter's value in a document {"n": int}. */
static int64_t doc_n(maos_slice doc)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, doc.ptr, doc.len);
    if (maos_mpr_map(&r, &n))
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        int64_t v;
        if (maos_mpr_str(&r, &k))
            return 0;
        if (k.len == 1 && k.ptr[0] == 'n' && maos_mpr_int(&r, &v) == 0)
            return v;
        if (maos_mpr_skip(&r, NULL))
            return 0;
    }
    return 0;
}

static int cas_maos(bench_worker *w)
{
    const cas_arg *a = w->arg;
    bench_rconn c;
    if (brc_open(&c, a->sock)) {
        bench_fail(w->res, "cannot connect to %s", a->sock);
        return -1;
    }
    uint64_t seed = (uint64_t)w->idx * 7919 + 1, deadline = bench_go(w);
    char key[16], doc[16];
    while (bench_now_ns() < deadline) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(key, sizeof key, "k%d", (int)((seed >> 33) % (uint64_t)a->nkeys));
        uint64_t t0 = bench_now_ns();
        int64_t expect = MAOS_EXPECT_ABSENT, n = 0;
        int known = 0;
        for (;;) { /* read, modify, compare-and-set; again on a conflict */
            maos_reply rep;
            maos_entry e;
            int rc;
            if (!known) {
                maos_enc_get(&c.pk, ++c.rid, bench_sl("kv.bench"), bench_sl(key));
                rc = brc_call(&c, &rep);
                if (rc == 0 && maos_entry_decode(rep.entry.ptr, rep.entry.len, &e) == 0) {
                    expect = (int64_t)e.revision;
                    n = doc_n(e.data);
                } else if (rc != MAOS_ENOT_FOUND) {
                    bench_fail(w->res, "get: %s", maos_err_name(rc));
                    brc_close(&c);
                    return -1;
                }
            }
            /* {"n": n + 1} */
            doc[0] = (char)0x81;
            doc[1] = (char)0xa1;
            doc[2] = 'n';
            doc[3] = (char)0xd3;
            for (int i = 0; i < 8; i++)
                doc[4 + i] = (char)((uint64_t)(n + 1) >> (56 - 8 * i));
            maos_enc_put(&c.pk, ++c.rid, bench_sl("kv.bench"), bench_sl(key),
                         (maos_slice){doc, 12}, expect, 0);
            rc = brc_call(&c, &rep);
            if (rc == 0)
                break;
            if (rc != MAOS_EWRONG_REVISION) {
                bench_fail(w->res, "put: %s", maos_err_name(rc));
                brc_close(&c);
                return -1;
            }
            w->res->busy++; /* a conflict: counted, retried */
            /* the refusal carries the entry as it is: retry from it */
            known = rep.entry.len && maos_entry_decode(rep.entry.ptr, rep.entry.len, &e) == 0;
            if (known) {
                expect = (int64_t)e.revision;
                n = doc_n(e.data);
            }
        }
        uint64_t t1 = bench_now_ns();
        bench_lat(w->res, t1 - t0);
        if (t1 <= deadline)
            w->res->ops++;
    }
    brc_close(&c);
    return 0;
}

#ifdef BENCH_HAVE_SQLITE
static int cas_sqlite(bench_worker *w)
{
    const cas_arg *a = w->arg;
    bsq *s = bsq_open(a->sqlite_db, 1, w->res);
    if (!s)
        return -1;
    uint64_t seed = (uint64_t)w->idx * 7919 + 1, deadline = bench_go(w);
    char key[16];
    while (bench_now_ns() < deadline) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(key, sizeof key, "k%d", (int)((seed >> 33) % (uint64_t)a->nkeys));
        uint64_t t0 = bench_now_ns();
        int rc = bsq_kv_incr(s, key, w->res);
        if (rc < 0) {
            bsq_close(s);
            return -1;
        }
        uint64_t t1 = bench_now_ns();
        if (rc == 0) {
            bench_lat(w->res, t1 - t0);
            if (t1 <= deadline)
                w->res->ops++;
        }
    }
    bsq_close(s);
    return 0;
}
#endif

static void report_cas(const char *system, int nkeys, const bench_run *runs, int n)
{
    double ups[16], conf[16], fair[16], p99[16];
    for (int i = 0; i < n; i++) {
        ups[i] = (double)runs[i].ops / runs[i].seconds;
        uint64_t tries = runs[i].n_lat + runs[i].busy;
        conf[i] = tries ? 100.0 * (double)runs[i].busy / (double)tries : 0;
        fair[i] = runs[i].fairness;
        p99[i] = runs[i].p99_ms;
    }
    char m[64];
    snprintf(m, sizeof m, "%d key%s: updates", nkeys, nkeys == 1 ? "" : "s");
    bench_report("kv-cas", system, CAS_PROCS, m, "updates/s", BENCH_HIGHER, ups, n);
    snprintf(m, sizeof m, "%d key%s: %s", nkeys, nkeys == 1 ? "" : "s",
             strcmp(system, "maos") ? "lost to busy" : "conflicts");
    bench_report("kv-cas", system, CAS_PROCS, m, "% of tries", BENCH_LOWER, conf, n);
    snprintf(m, sizeof m, "%d key%s: fairness", nkeys, nkeys == 1 ? "" : "s");
    bench_report("kv-cas", system, CAS_PROCS, m, "min/max", BENCH_HIGHER, fair, n);
    snprintf(m, sizeof m, "%d key%s: update p99", nkeys, nkeys == 1 ? "" : "s");
    bench_report("kv-cas", system, CAS_PROCS, m, "ms", BENCH_LOWER, p99, n);
}

int bench_sc_kv_cas(const bench_opts *o)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "kv-cas", "sync");
    if (rc)
        return rc;
    char dir[300] = "", db[400] = "";
#ifdef BENCH_HAVE_SQLITE
    if (o->vs_sqlite && bench_mkdtemp(o, "kv-cas-sqlite", dir, sizeof dir) == 0) {
        snprintf(db, sizeof db, "%s/kv.db", dir);
        rc = bsq_create(db);
        bench_wres r = {0};
        bsq *s = rc ? NULL : bsq_open(db, 1, &r);
        if (!s || bsq_kv_seed(s, 100))
            rc = -1;
        bsq_close(s);
    }
#endif
    static const int keys[] = {1, 100};
    int reps = o->reps > 16 ? 16 : o->reps;
    for (size_t k = 0; !rc && k < sizeof keys / sizeof keys[0]; k++) {
        cas_arg a = {.sock = d.sock, .sqlite_db = db, .nkeys = keys[k]};
        bench_run m[16], s[16];
        int nm = 0, ns = 0;
        for (int r = 0; r < reps && !rc; r++) {
            if (bench_spawn(CAS_PROCS, o->seconds, cas_maos, &a, &m[nm]) == 0)
                nm++;
            else
                rc = -1;
#ifdef BENCH_HAVE_SQLITE
            if (!rc && db[0]) {
                if (bench_spawn(CAS_PROCS, o->seconds, cas_sqlite, &a, &s[ns]) == 0)
                    ns++;
                else
                    rc = -1;
            }
#endif
        }
        if (rc) {
            bench_say("kv-cas %d keys: %s", keys[k], nm ? s[ns].err : m[nm].err);
            break;
        }
        report_cas("maos", keys[k], m, nm);
        if (ns)
            report_cas("sqlite", keys[k], s, ns);
    }
    bench_daemon_close(&d);
    if (dir[0] && !o->keep)
        bench_rmtree(dir);
    return rc;
}

/* ---- liveness ------------------------------------------------------------------------ */

#define LIVENESS_KILLS 100

/* The child: register agent id, say 'y' on ready_fd, wait to be killed. */
static void agent_child(const char *sock, const char *id, int ready_fd)
{
    bench_rconn c;
    maos_reply rep;
    char ok = 'n';
    if (brc_open(&c, sock) == 0) {
        maos_agent_in a = {.id = bench_sl(id), .name = bench_sl("bench")};
        maos_enc_agent_register(&c.pk, ++c.rid, &a);
        if (brc_call(&c, &rep) == 0)
            ok = 'y';
    }
    if (write(ready_fd, &ok, 1) != 1 || ok != 'y')
        _exit(1);
    for (;;)
        pause();
}

/* 1 when the events push holds the `put` of stream whose data.data.status
 * is "offline". */
static int is_offline(const maos_push *p, const char *stream)
{
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, p->items.ptr, p->items.len);
    if (maos_mpr_array(&r, &n))
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        maos_record rec;
        if (maos_record_next(&r, &rec))
            return 0;
        if (rec.stream.len != strlen(stream) || memcmp(rec.stream.ptr, stream, rec.stream.len))
            continue;
        /* data: {table, key, data: {.. status ..}, ...}: find "offline" */
        for (uint32_t j = 0; j + 8 <= rec.data.len; j++)
            if (!memcmp(rec.data.ptr + j, "\xa7offline", 8))
                return 1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_sc_liveness(const bench_opts *o)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "liveness", "sync");
    if (rc)
        return rc;
    bench_rconn w;
    if (brc_open(&w, d.sock)) {
        bench_say("liveness: cannot connect");
        bench_daemon_close(&d);
        return -1;
    }
    maos_reply rep;
    maos_enc_watch(&w.pk, ++w.rid, bench_sl("agents"), bench_sl("bench-"), MAOS_WATCH_FROM_NOW, 0);
    if (brc_call(&w, &rep)) {
        bench_say("liveness: watch refused");
        brc_close(&w);
        bench_daemon_close(&d);
        return -1;
    }
    int kills = o->quick ? 10 : LIVENESS_KILLS;
    double *ms = calloc((size_t)kills, sizeof(double));
    for (int i = 0; i < kills && !rc; i++) {
        char id[32], stream[48];
        snprintf(id, sizeof id, "bench-%d", i);
        snprintf(stream, sizeof stream, "agent-%s", id);
        int pfd[2];
        if (pipe(pfd)) {
            rc = -1;
            break;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            agent_child(d.sock, id, pfd[1]);
        }
        close(pfd[1]);
        char ok = 0;
        if (pid < 0 || read(pfd[0], &ok, 1) != 1 || ok != 'y') {
            bench_say("liveness: the agent child did not register");
            rc = -1;
        }
        close(pfd[0]);
        uint64_t t0 = bench_now_ns();
        if (pid > 0)
            kill(pid, SIGKILL);
        int seen = 0;
        while (!rc && !seen) {
            maos_slice f;
            maos_push p;
            if (brc_recv(&w, 10000, &f) != 1) {
                bench_say("liveness: no offline for %s within 10 s", id);
                rc = -1;
            } else if (maos_push_decode(f.ptr, f.len, &p) == 1 &&
                       p.kind == MAOS_PUSH_EVENTS && is_offline(&p, stream)) {
                ms[i] = (double)(bench_now_ns() - t0) / 1e6;
                seen = 1;
            }
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
    }
    if (!rc) {
        qsort(ms, (size_t)kills, sizeof(double), cmp_double);
        double p50 = ms[kills / 2], p99 = ms[(kills * 99) / 100 < kills ? (kills * 99) / 100 : kills - 1],
               worst = ms[kills - 1];
        bench_report("liveness", "maos", 1, "SIGKILL -> offline seen p50", "ms",
                     BENCH_LOWER, &p50, 1);
        bench_report("liveness", "maos", 1, "SIGKILL -> offline seen p99", "ms",
                     BENCH_LOWER, &p99, 1);
        bench_report("liveness", "maos", 1, "SIGKILL -> offline seen worst", "ms",
                     BENCH_LOWER, &worst, 1);
    }
    free(ms);
    brc_close(&w);
    bench_daemon_close(&d);
    return rc;
}
