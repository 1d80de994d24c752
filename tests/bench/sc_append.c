/*
 * tests/bench/sc_append.c -- scenario 1: durable appends, one event per
 * request, each process waiting for its reply, with 1, 4, 8, 16 and 64
 * processes (--procs), against maosd with durability sync and SQLite WAL
 * with synchronous=FULL.
 *
 * This is the group-commit scenario: each process has one request in
 * flight, so throughput above 1/fsync-time comes only from many processes'
 * requests sharing one RocksDB write.  group-size and group-write show it.
 */
#include <stdio.h>

#include "bench.h"

int bench_sc_append(const bench_opts *o)
{
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "append", "sync");
    if (rc)
        return rc;
    char dir[300] = "", db[400] = "";
    if (o->vs_sqlite) {
        if (bench_mkdtemp(o, "append-sqlite", dir, sizeof(dir)) < 0) {
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
    for (const int *p = o->procs; !rc && *p; p++) {
        bench_write_spec s = {
            .scenario = "append", .label = "", .unit = "appends/s", .nproc = *p,
            .batch = 1, .depth = 1, .d = &d, .prefix = "append",
            .sqlite_db = o->vs_sqlite ? db : NULL, .sqlite_full = 1,
        };
        rc = bench_writes(o, &s);
    }
    bench_daemon_close(&d);
    if (dir[0] && !o->keep)
        bench_rmtree(dir);
    return rc;
}
