/*
 * tests/bench/util.c -- maos-bench plumbing: clocks, messages, the result
 * table and JSON file, our own maosd processes, temp dirs, event payloads.
 *
 * Results: every bench_report() call adds one row; rows are printed in the
 * order they were first reported, maos and SQLite side by side, so the
 * ratio column compares figures measured in the same run.
 *
 * Daemons: each one is a maosd child on its own temp dir, started with an
 * empty --config (no user config leaks into a benchmark), --log-level warn
 * and its stderr in <dir>/maosd.log.  "Ready" means a connect() to its
 * socket succeeded; the time from execve (taken in the child, just before
 * it, into a shared page) to that connect is the startup figure.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int bench_verbose;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

void bench_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("maos-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void bench_info(const char *fmt, ...)
{
    if (!bench_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("maos-bench:   ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- results ---------------------------------------------------------------- */

typedef struct row {
    const char *scenario, *system, *metric, *unit;
    int procs, better;
    double median, min, max;
} row;

static row *rows;
static size_t n_rows, cap_rows;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_report(const char *scenario, const char *system, int procs,
                  const char *metric, const char *unit, int better,
                  const double *samples, int n)
{
    if (n <= 0)
        return;
    double s[n];
    memcpy(s, samples, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    if (n_rows == cap_rows) {
        size_t nc = cap_rows ? 2 * cap_rows : 64;
        row *nr = realloc(rows, nc * sizeof(*nr));
        if (!nr) {
            bench_say("out of memory keeping results");
            return;
        }
        rows = nr;
        cap_rows = nc;
    }
    row *r = &rows[n_rows++];
    r->scenario = strdup(scenario);
    r->system = strdup(system);
    r->metric = strdup(metric);
    r->unit = strdup(unit);
    if (!r->scenario || !r->system || !r->metric || !r->unit) {
        bench_say("out of memory keeping results");
        n_rows--;
        return;
    }
    r->procs = procs;
    r->better = better;
    r->min = s[0];
    r->max = s[n - 1];
    r->median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    bench_info("%s %s p=%d %s = %.3f %s (min %.3f, max %.3f, n=%d)", scenario,
               system, procs, metric, r->median, unit, r->min, r->max, n);
}

static void fmt_num(char *buf, size_t len, double v)
{
    double a = v < 0 ? -v : v;
    if (a >= 1000 || v == (double)(long long)v)
        snprintf(buf, len, "%.0f", v);
    else if (a >= 10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2f", v);
}

static void fmt_fig(char *buf, size_t len, const row *r)
{
    char m[32], lo[32], hi[32];
    if (!r) {
        snprintf(buf, len, "-");
        return;
    }
    fmt_num(m, sizeof(m), r->median);
    fmt_num(lo, sizeof(lo), r->min);
    fmt_num(hi, sizeof(hi), r->max);
    if (r->min == r->max)
        snprintf(buf, len, "%s", m);
    else
        snprintf(buf, len, "%s [%s..%s]", m, lo, hi);
}

static int same_figure(const row *a, const row *b)
{
    return !strcmp(a->scenario, b->scenario) && a->procs == b->procs &&
           !strcmp(a->metric, b->metric);
}

void bench_print_table(void)
{
    char *done = calloc(n_rows ? n_rows : 1, 1);
    if (!done)
        return;
    printf("\n%-13s %5s  %-24s %-9s %-28s %-28s %s\n", "scenario", "procs", "metric",
           "unit", "maos median [min..max]", "sqlite median [min..max]", "maos/sqlite");
    const char *last = "";
    for (size_t i = 0; i < n_rows; i++) {
        if (done[i])
            continue;
        const row *m = NULL, *q = NULL;
        for (size_t j = i; j < n_rows; j++) {
            if (done[j] || !same_figure(&rows[i], &rows[j]))
                continue;
            if (!strcmp(rows[j].system, "maos") && !m)
                m = &rows[j], done[j] = 1;
            else if (!strcmp(rows[j].system, "sqlite") && !q)
                q = &rows[j], done[j] = 1;
        }
        if (!m && !q) { /* a third system: print on its own */
            done[i] = 1;
            m = &rows[i];
        }
        const row *r = m ? m : q;
        char fm[128], fq[128], ratio[32] = "";
        fmt_fig(fm, sizeof(fm), m);
        fmt_fig(fq, sizeof(fq), q);
        /* A ratio against (nearly) zero says nothing: a starved SQLite
         * process gives fairness 0, and x/0 is not "3867 times fairer". */
        if (m && q && q->median > 0.01 && m->median > 0.01 && r->better != BENCH_NEUTRAL) {
            double x = m->median / q->median;
            snprintf(ratio, sizeof(ratio), "%.*fx%s", x >= 10 ? 0 : x >= 1 ? 1 : x >= 0.1 ? 2 : 3,
                     x, r->better == BENCH_LOWER ? " (lower=better)" : "");
        }
        if (last[0] && strcmp(last, r->scenario))
            putchar('\n'); /* a blank line between scenarios */
        last = r->scenario;
        printf("%-13s %5d  %-24s %-9s %-28s %-28s %s\n", r->scenario, r->procs, r->metric,
               r->unit, fm, fq, ratio);
    }
    fflush(stdout);
    free(done);
}

int bench_write_json(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        bench_say("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    /* Every string here is one of our own literals: no escaping needed. */
    fputs("[\n", f);
    for (size_t i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        fprintf(f,
                "  {\"scenario\": \"%s\", \"system\": \"%s\", \"processes\": %d, "
                "\"metric\": \"%s\", \"unit\": \"%s\", \"median\": %.6g, "
                "\"min\": %.6g, \"max\": %.6g}%s\n",
                r->scenario, r->system, r->procs, r->metric, r->unit, r->median, r->min,
                r->max, i + 1 < n_rows ? "," : "");
    }
    fputs("]\n", f);
    if (fclose(f)) {
        bench_say("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- files ------------------------------------------------------------------ */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

void bench_rmtree(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

static uint64_t du_total;

static int du_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)p;
    (void)ftw;
    if (flag == FTW_F)
        du_total += (uint64_t)st->st_blocks * 512;
    return 0;
}

uint64_t bench_du_bytes(const char *dir)
{
    du_total = 0;
    nftw(dir, du_one, 32, FTW_PHYS);
    return du_total;
}

int bench_mkdtemp(const bench_opts *o, const char *tag, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/maos-bench-%s-XXXXXX", o->tmp, tag);
    if (n < 0 || (size_t)n >= len || !mkdtemp(buf)) {
        bench_say("cannot make a temp dir under %s: %s", o->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- daemons ------------------------------------------------------------------ */

/* One shared page: the child writes its execve time here. */
static volatile uint64_t *exec_stamp;

double bench_proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name (which may hold spaces): state is
     * field 3, utime 14, stime 15. */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long bench_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static void print_log_tail(const bench_daemon *d)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return;
    char line[512];
    char tail[8][512];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        snprintf(tail[n++ % 8], sizeof(tail[0]), "%s", line);
    fclose(f);
    bench_say("last lines of %s:", d->log);
    for (int i = n > 8 ? n - 8 : 0; i < n; i++)
        fprintf(stderr, "    %s", tail[i % 8]);
}

int bench_unix_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path))
        return -1;
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return -1;
    }
    return fd;
}

static int try_connect(const char *path)
{
    int fd = bench_unix_connect(path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

pid_t bench_fork_holder(void (*body)(void *arg, int ready_fd, int go_fd), void *arg,
                        int timeout_ms, const char *what, int *release)
{
    int ready[2], go[2];
    if (pipe(ready))
        return -1;
    if (pipe(go)) {
        close(ready[0]);
        close(ready[1]);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        body(arg, ready[1], go[0]);
        _exit(1); /* body must not return */
    }
    close(ready[1]);
    close(go[0]);
    if (pid < 0) {
        close(ready[0]);
        close(go[1]);
        return -1;
    }
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    char b = 'n';
    if (poll(&p, 1, timeout_ms) != 1 || read(ready[0], &b, 1) != 1 || b != 'y') {
        bench_say("could not set up %s", what);
        close(go[1]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pid = -1;
    }
    close(ready[0]);
    *release = go[1];
    return pid;
}

int bench_daemon_start(bench_daemon *d, const bench_opts *o, int timeout_ms,
                       uint64_t *ready_ns)
{
    if (d->external)
        return 0;
    if (!exec_stamp) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            bench_say("mmap: %s", strerror(errno));
            return -1;
        }
        exec_stamp = p;
    }
    char cache[32];
    snprintf(cache, sizeof(cache), "%d", o->block_cache_mb);
    const char *argv[] = {o->maosd, "--config", d->conf, "--data-dir", d->data,
                          "--socket", d->sock, "--durability", d->durability,
                          "--log-level", "warn", "--block-cache-mb", cache, NULL};
    *exec_stamp = 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        bench_say("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        *exec_stamp = bench_now_ns();
        execv(o->maosd, (char *const *)argv);
        fprintf(stderr, "maos-bench: cannot run %s: %s\n", o->maosd, strerror(errno));
        _exit(127);
    }
    d->pid = pid;
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        if (try_connect(d->sock) == 0) {
            uint64_t t = bench_now_ns();
            d->exec_ns = *exec_stamp;
            if (ready_ns)
                *ready_ns = d->exec_ns ? t - d->exec_ns : 0;
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            bench_say("maosd exited during start-up (status %d)",
                      WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            print_log_tail(d);
            return -1;
        }
        if (bench_now_ns() > deadline) {
            bench_say("maosd did not accept connections within %d ms", timeout_ms);
            bench_daemon_stop(d);
            print_log_tail(d);
            return -1;
        }
        bench_sleep_us(100);
    }
}

int bench_daemon_stop(bench_daemon *d)
{
    if (d->external || d->pid <= 0)
        return 0;
    kill(d->pid, SIGTERM);
    uint64_t deadline = bench_now_ns() + 60ull * 1000000000u;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid)
            break;
        if (r < 0 && errno != EINTR) {
            d->pid = 0;
            return -1;
        }
        if (bench_now_ns() > deadline) {
            bench_say("maosd %d ignored SIGTERM for 60 s: killing it", (int)d->pid);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            d->pid = 0;
            return -1;
        }
        bench_sleep_us(1000);
    }
    d->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        bench_say("maosd did not exit cleanly (status %d)",
                  WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        print_log_tail(d);
        return -1;
    }
    return 0;
}

void bench_daemon_settle(const bench_daemon *d)
{
    if (d->external || d->pid <= 0)
        return;
    uint64_t t0 = bench_now_ns();
    double c0 = bench_proc_cpu_s(d->pid);
    while (c0 >= 0 && bench_now_ns() - t0 < 30ull * 1000000000u) {
        bench_sleep_us(200000);
        double c1 = bench_proc_cpu_s(d->pid);
        if (c1 < 0 || c1 - c0 < 0.01)
            break;
        c0 = c1;
    }
    bench_info("settled after %.1f s", (double)(bench_now_ns() - t0) / 1e9);
}

maos_ctx *bench_connect(const char *sock)
{
    maos_options opt = {.path = sock, .timeout_ms = 60000, .client_name = "maos-bench"};
    maos_ctx *c = maos_connect_with(&opt);
    if (!c) {
        bench_say("out of memory connecting to %s", sock);
        return NULL;
    }
    if (c->err) {
        bench_say("cannot connect to %s: %s", sock, c->errstr);
        maos_free(c);
        return NULL;
    }
    return c;
}

int bench_daemon_stats(const bench_daemon *d, maos_stats_info *st)
{
    maos_ctx *c = bench_connect(d->sock);
    if (!c)
        return -1;
    int rc = maos_stats_get(c, st);
    if (rc)
        bench_say("stats: %s", c->errstr);
    maos_free(c);
    return rc ? -1 : 0;
}

int bench_daemon_open(bench_daemon *d, const bench_opts *o, const char *tag,
                      const char *durability)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->durability, sizeof(d->durability), "%s", durability);
    d->keep = o->keep;
    if (o->socket) {
        d->external = 1;
        snprintf(d->sock, sizeof(d->sock), "%s", o->socket);
        maos_stats_info st;
        if (bench_daemon_stats(d, &st))
            return -1;
        if (strcmp(st.durability, durability)) {
            bench_say("%s: skipped: needs durability %s, the daemon at %s has %s", tag,
                      durability, o->socket, st.durability);
            return BENCH_SKIPPED;
        }
        return 0;
    }
    if (bench_mkdtemp(o, tag, d->dir, sizeof(d->dir)))
        return -1;
    snprintf(d->data, sizeof(d->data), "%s/data", d->dir);
    snprintf(d->sock, sizeof(d->sock), "%s/s.sock", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/maosd.log", d->dir);
    snprintf(d->conf, sizeof(d->conf), "%s/maosd.conf", d->dir);
    int fd = open(d->conf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        bench_say("cannot create %s: %s", d->conf, strerror(errno));
        return -1;
    }
    close(fd);
    if (bench_daemon_start(d, o, 30000, NULL))
        return -1;
    bench_info("%s: maosd %d on %s (durability %s)", tag, (int)d->pid, d->dir, durability);
    return 0;
}

void bench_daemon_close(bench_daemon *d)
{
    if (d->external)
        return;
    bench_daemon_stop(d);
    if (d->dir[0] && !d->keep)
        bench_rmtree(d->dir);
    else if (d->dir[0])
        bench_say("kept %s", d->dir);
    d->dir[0] = 0;
}

/* ---- payloads -------------------------------------------------------------------- */

/* The same fields in both encodings; ~200 bytes of JSON. */
static const char *const statuses[4] = {"queued", "running", "blocked", "done"};

void bench_data_msgpack(msgpack_sbuffer *sb, int proc, uint64_t n)
{
    char agent[32], task[32], msg[96];
    int la = snprintf(agent, sizeof(agent), "agent-%02d", proc);
    int lt = snprintf(task, sizeof(task), "task-%08llu", (unsigned long long)n);
    int lm = snprintf(msg, sizeof(msg),
                      "processed chunk %llu of /data/input/part-%04d.jsonl, no errors",
                      (unsigned long long)n, proc);
    msgpack_packer pk;
    sb->size = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    msgpack_pack_str_with_body(&pk, "agent", 5);
    msgpack_pack_str_with_body(&pk, agent, (size_t)la);
    msgpack_pack_str_with_body(&pk, "task", 4);
    msgpack_pack_str_with_body(&pk, task, (size_t)lt);
    msgpack_pack_str_with_body(&pk, "step", 4);
    msgpack_pack_uint64(&pk, n);
    msgpack_pack_str_with_body(&pk, "status", 6);
    msgpack_pack_str_with_body(&pk, statuses[n % 4], strlen(statuses[n % 4]));
    msgpack_pack_str_with_body(&pk, "progress", 8);
    msgpack_pack_double(&pk, (double)(n % 100) / 100.0);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_str_with_body(&pk, msg, (size_t)lm);
    msgpack_pack_str_with_body(&pk, "tags", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "bench", 5);
    msgpack_pack_str_with_body(&pk, "maos", 4);
}

size_t bench_data_json(char *buf, size_t cap, int proc, uint64_t n)
{
    int len = snprintf(buf, cap,
                       "{\"agent\":\"agent-%02d\",\"task\":\"task-%08llu\",\"step\":%llu,"
                       "\"status\":\"%s\",\"progress\":%.2f,\"message\":\"processed chunk "
                       "%llu of /data/input/part-%04d.jsonl, no errors\","
                       "\"tags\":[\"bench\",\"maos\"]}",
                       proc, (unsigned long long)n, (unsigned long long)n, statuses[n % 4],
                       (double)(n % 100) / 100.0, (unsigned long long)n, proc);
    return len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
}
