/*
 * tests/bench/workers.c -- worker processes: fork, start gate, results.
 *
 * The parent maps one shared region: a header (start time, number of
 * workers at the gate) and one bench_wres per worker.  Workers connect or
 * open first, then wait at the gate (a pipe whose write end only the parent
 * holds: closing it releases every reader at once); the parent writes the
 * start time before closing it, so every worker computes the same deadline.
 * A worker that fails before the gate still counts as arrived, so a broken
 * worker cannot hang the run; every wait is bounded and every child is
 * reaped by pid.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

typedef struct shared {
    volatile uint64_t start_ns;
    volatile int arrived;
    bench_wres res[];
} shared;

static unsigned bucket(uint64_t ns)
{
    if (ns < 8)
        return (unsigned)ns; /* exact below 8 ns (never matters) */
    int lz = 63 - __builtin_clzll(ns);
    unsigned sub = (unsigned)(ns >> (lz - 3)) & 7;
    unsigned b = (unsigned)lz * 8 + sub;
    return b < BENCH_HIST ? b : BENCH_HIST - 1;
}

/* The middle of a bucket, in ns. */
static double bucket_value(unsigned b)
{
    if (b < 8)
        return b;
    unsigned lz = b / 8, sub = b % 8;
    double lo = (double)(8 + sub) * (double)(1ull << (lz - 3));
    return lo + (double)(1ull << (lz - 3)) / 2;
}

void bench_lat(bench_wres *r, uint64_t ns)
{
    r->hist[bucket(ns)]++;
    if (ns > r->max_ns)
        r->max_ns = ns;
}

void bench_fail(bench_wres *r, const char *fmt, ...)
{
    r->errors++;
    if (r->err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
}

uint64_t bench_go(bench_worker *w)
{
    char c;
    w->went = 1;
    __atomic_add_fetch(w->arrived, 1, __ATOMIC_SEQ_CST);
    while (read(w->gate_fd, &c, 1) < 0 && errno == EINTR) {
    }
    close(w->gate_fd);
    return *w->start_ns + (uint64_t)(w->seconds * 1e9);
}

static double percentile(const uint64_t *hist, uint64_t total, double q)
{
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (unsigned b = 0; b < BENCH_HIST; b++) {
        seen += hist[b];
        if (seen > want)
            return bucket_value(b);
    }
    return bucket_value(BENCH_HIST - 1);
}

int bench_spawn(int nproc, double seconds, bench_worker_fn fn, void *arg,
              bench_run *out)
{
    memset(out, 0, sizeof(*out));
    out->nproc = nproc;
    out->seconds = seconds;
    size_t size = sizeof(shared) + (size_t)nproc * sizeof(bench_wres);
    shared *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        snprintf(out->err, sizeof(out->err), "mmap: %s", strerror(errno));
        out->failed = 1;
        return -1;
    }
    int gate[2];
    if (pipe(gate)) {
        snprintf(out->err, sizeof(out->err), "pipe: %s", strerror(errno));
        munmap(sh, size);
        out->failed = 1;
        return -1;
    }
    pid_t *pids = calloc((size_t)nproc, sizeof(pid_t));
    int *status = calloc((size_t)nproc, sizeof(int));
    int started = 0;
    fflush(NULL);
    for (; started < nproc; started++) {
        pid_t pid = fork();
        if (pid < 0) {
            snprintf(out->err, sizeof(out->err), "fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) {
            close(gate[1]);
            bench_worker w = {
                .idx = started, .nproc = nproc, .arg = arg, .res = &sh->res[started],
                .seconds = seconds, .start_ns = &sh->start_ns, .arrived = &sh->arrived,
                .gate_fd = gate[0],
            };
            int rc = fn(&w);
            if (!w.went)
                __atomic_add_fetch(&sh->arrived, 1, __ATOMIC_SEQ_CST);
            _exit(rc ? 1 : 0);
        }
        pids[started] = pid;
    }
    close(gate[0]);

    /* Wait (bounded) until every worker is at the gate or gone. */
    uint64_t limit = bench_now_ns() + 120ull * 1000000000u;
    while (__atomic_load_n(&sh->arrived, __ATOMIC_SEQ_CST) < started &&
           bench_now_ns() < limit)
        bench_sleep_us(500);
    sh->start_ns = bench_now_ns();
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    close(gate[1]); /* go */

    limit = bench_now_ns() + (uint64_t)(seconds * 1e9) + 300ull * 1000000000u;
    int left = started;
    while (left > 0) {
        /* Only our workers, by pid: the daemon is a child of ours too. */
        for (int i = 0; i < started; i++) {
            if (pids[i] <= 0)
                continue;
            struct rusage ru;
            pid_t r = wait4(pids[i], &status[i], WNOHANG, &ru);
            if (r == pids[i])
                out->cpu_s += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
            if (r == pids[i] || (r < 0 && errno != EINTR)) {
                pids[i] = -pids[i];
                left--;
            }
        }
        if (left == 0)
            break;
        if (bench_now_ns() > limit) {
            for (int i = 0; i < started; i++)
                if (pids[i] > 0) {
                    kill(pids[i], SIGKILL);
                    waitpid(pids[i], &status[i], 0);
                    status[i] = 1000;
                    pids[i] = -pids[i];
                }
            snprintf(out->err, sizeof(out->err), "workers did not finish in time: killed");
            out->failed = 1;
            break;
        }
        bench_sleep_us(1000);
    }

    uint64_t hist[BENCH_HIST] = {0}, nlat = 0, max_ns = 0, max_el = 0;
    out->min_rate = -1;
    for (int i = 0; i < started; i++) {
        bench_wres *r = &sh->res[i];
        out->ops += r->ops;
        out->events += r->events;
        out->bytes += r->bytes;
        out->busy += r->busy;
        out->errors += r->errors;
        if (r->max_ns > max_ns)
            max_ns = r->max_ns;
        if (r->elapsed_ns > max_el)
            max_el = r->elapsed_ns;
        for (unsigned b = 0; b < BENCH_HIST; b++) {
            hist[b] += r->hist[b];
            nlat += r->hist[b];
        }
        double rate = seconds > 0 ? (double)r->ops / seconds : 0;
        if (!r->bystander && (out->min_rate < 0 || rate < out->min_rate))
            out->min_rate = rate;
        if (!r->bystander && rate > out->max_rate)
            out->max_rate = rate;
        int st = status[i];
        if (st == 1000 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || r->errors) {
            out->failed = 1;
            if (!out->err[0]) {
                if (r->err[0])
                    snprintf(out->err, sizeof(out->err), "worker %d: %s", i, r->err);
                else if (WIFSIGNALED(st))
                    snprintf(out->err, sizeof(out->err), "worker %d: killed by signal %d", i,
                             WTERMSIG(st));
                else
                    snprintf(out->err, sizeof(out->err), "worker %d failed", i);
            }
        }
    }
    if (started < nproc)
        out->failed = 1;
    if (out->min_rate < 0)
        out->min_rate = 0;
    out->fairness = out->max_rate > 0 ? out->min_rate / out->max_rate : 0;
    out->worst_ms = (double)max_ns / 1e6;
    out->p99_ms = percentile(hist, nlat, 0.99) / 1e6;
    out->p50_ms = percentile(hist, nlat, 0.50) / 1e6;
    out->n_lat = nlat;
    out->elapsed_s = (double)max_el / 1e9;
    free(pids);
    free(status);
    munmap(sh, size);
    return out->failed ? -1 : 0;
}
