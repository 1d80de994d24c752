/*
 * tests/bench/sc_startup.c -- scenario 5: start-up time and memory with a
 * big store.
 *
 * Loads --startup-events events (10,000,000; durability none, 2 processes,
 * 1,000 streams) and stops maosd cleanly.  The first start after that is
 * reported on its own ("startup-after-load"): whatever the loading daemon
 * left in RocksDB's WAL (memtables are not flushed at close) is replayed
 * and flushed by it, so it shows the cost of a restart after a write
 * burst.  Then per repetition: start (durability sync, the default), time
 * execve -> first accepted connect() ("startup"); read the RSS; open
 * --idle-conns (1,000) idle connections (each a completed HELLO) from one
 * client process and read the RSS again; stop.  The page cache is warm
 * (the data was just written): this measures the daemon's own work at
 * open, which must not grow with the log (docs/ARCHITECTURE.md: opening never scans).
 * Not run with --socket.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

typedef struct idle_arg {
    const char *sock;
    int n;
} idle_arg;

/* The holder of n idle connections (bench_fork_holder). */
static void hold_idle(void *arg, int ready_fd, int go_fd)
{
    const idle_arg *a = arg;
    maos_ctx **c = calloc((size_t)a->n, sizeof(*c));
    int ok = c != NULL;
    for (int i = 0; ok && i < a->n; i++) {
        c[i] = bench_connect(a->sock);
        ok = c[i] != NULL;
    }
    char b = ok ? 'y' : 'n';
    if (write(ready_fd, &b, 1) != 1)
        _exit(1);
    while (read(go_fd, &b, 1) < 0 && errno == EINTR) {
    }
    for (int i = 0; c && i < a->n; i++)
        maos_free(c[i]);
    free(c);
    _exit(ok ? 0 : 1);
}

int bench_sc_startup(const bench_opts *o)
{
    if (o->socket) {
        bench_say("startup: skipped with --socket (it restarts its own daemon)");
        return BENCH_SKIPPED;
    }
    bench_daemon d;
    int rc = bench_daemon_open(&d, o, "startup", "none");
    if (rc)
        return rc;
    bench_load_spec l = {.sock = d.sock, .prefix = "startup", .events = o->startup_events,
                         .nproc = 2, .nstreams = 500};
    double rate;
    bench_say("startup: loading %llu events", (unsigned long long)o->startup_events);
    if (bench_load(&l, &rate) || bench_daemon_stop(&d)) {
        bench_daemon_close(&d);
        return -1;
    }
    bench_say("startup: loaded at %.0f events/s; data dir %.1f MB", rate,
              (double)bench_du_bytes(d.data) / 1e6);
    snprintf(d.durability, sizeof(d.durability), "sync");

    double ms[64], rss0[64], rss1[64], first;
    int n = 0;
    uint64_t ready;
    if (bench_daemon_start(&d, o, 120000, &ready) || bench_daemon_stop(&d)) {
        bench_daemon_close(&d);
        return -1;
    }
    first = (double)ready / 1e6;
    bench_say("startup: first start after the load: accepting after %.1f ms", first);
    bench_report("startup", "maos", 1, "startup-after-load", "ms", BENCH_LOWER, &first, 1);
    for (int rep = 0; rep < o->reps && rep < 64 && !rc; rep++) {
        if (bench_daemon_start(&d, o, 120000, &ready)) {
            rc = -1;
            break;
        }
        ms[n] = (double)ready / 1e6;
        rss0[n] = (double)bench_rss_kb(d.pid) / 1024;
        int release = -1;
        idle_arg ia = {d.sock, o->idle_conns};
        pid_t holder = bench_fork_holder(hold_idle, &ia, 120000, "the idle connections",
                                         &release);
        if (holder < 0) {
            rc = -1;
        } else {
            maos_stats_info st;
            rss1[n] = (double)bench_rss_kb(d.pid) / 1024;
            if (bench_daemon_stats(&d, &st) == 0)
                bench_info("startup: daemon reports %llu connections, head %llu",
                           (unsigned long long)st.connections,
                           (unsigned long long)st.head_position);
            close(release);
            waitpid(holder, NULL, 0);
            bench_say("startup rep %d/%d: accepting after %.1f ms; RSS %.1f MiB, "
                      "%.1f MiB with %d idle connections",
                      rep + 1, o->reps, ms[n], rss0[n], rss1[n], o->idle_conns);
            n++;
        }
        if (bench_daemon_stop(&d))
            rc = -1;
    }
    char m[64];
    bench_report("startup", "maos", 1, "startup", "ms", BENCH_LOWER, ms, n);
    bench_report("startup", "maos", 1, "rss-started", "MiB", BENCH_LOWER, rss0, n);
    snprintf(m, sizeof(m), "rss-%d-idle-conns", o->idle_conns);
    bench_report("startup", "maos", o->idle_conns, m, "MiB", BENCH_LOWER, rss1, n);
    bench_daemon_close(&d);
    return rc;
}
