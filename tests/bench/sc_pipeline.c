/*
 * tests/bench/sc_pipeline.c -- scenarios 2 and 3: many events per fsync
 * from few processes.  4 processes each keep `depth` (64) single-event
 * appends in flight on one connection; then 4 processes each append
 * batches of `batch` (100) events, waiting for each reply.  Scenario 2
 * runs with durability sync (SQLite synchronous=FULL), scenario 3 with
 * none (SQLite synchronous=NORMAL).  SQLite cannot pipeline, so its
 * "pipe" figure is one transaction per event, one at a time per process:
 * what a user of it gets for the same work.
 */
#include <stdio.h>

#include "bench.h"

static int run(const bench_opts *o, const char *scenario, const char *durability)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, scenario, durability);
    if (rc)
        return rc;
    int full = durability[0] == 's';
    char dir[300] = "", db[400] = "";
    if (o->vs_sqlite) {
        if (bench_mkdtemp(o, "pipeline-sqlite", dir, sizeof(dir)) < 0) {
            bench_daemon_close(&d);
            return -1;
        }
        snprintf(db, sizeof(db), "%s/events.db", dir);
#ifdef BENCH_HAVE_SQLITE
        rc = bsq_create(db);
#endif
    }
    if (!rc)
        rc = bench_warm(o, &d, o->vs_sqlite ? db : NULL);
    char pipe_label[32], batch_label[32];
    snprintf(pipe_label, sizeof(pipe_label), "pipe%d", o->depth);
    snprintf(batch_label, sizeof(batch_label), "batch%d", o->batch);
    bench_write_spec s = {
        .scenario = scenario, .label = pipe_label, .unit = "events/s", .nproc = 4,
        .batch = 1, .depth = o->depth, .d = &d, .prefix = "pipe",
        .sqlite_db = o->vs_sqlite ? db : NULL, .sqlite_full = full,
    };
    if (!rc)
        rc = bench_writes(o, &s);
    s.label = batch_label;
    s.batch = o->batch;
    s.depth = 1;
    s.prefix = "batch";
    if (!rc)
        rc = bench_writes(o, &s);
    bench_daemon_close(&d);
    if (dir[0] && !o->keep)
        bench_rmtree(dir);
    return rc;
}

int bench_sc_pipeline(const bench_opts *o)
{
    return run(o, "pipeline", "sync");
}

int bench_sc_pipeline_none(const bench_opts *o)
{
    return run(o, "pipeline-none", "none");
}
