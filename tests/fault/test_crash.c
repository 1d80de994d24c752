/*
 * tests/fault/test_crash.c -- the standing crash loop with a history checker
 * (issue 15, "Crash and fault harness"; SQLite's crash tests, RocksDB's
 * db_crashtest, Jepsen-style histories).
 *
 * One data directory, CYCLES times: maosd is started, actors work against
 * it, and after a varying number of acknowledged appends it is killed with
 * SIGKILL while they are busy; it is started again on the same directory
 * and the history checker runs before anyone writes again.
 *
 * Actors (processes that live for the whole test, across the restarts):
 *  - 4 appenders, each its own connection through libmaos-client: appends
 *    of 1..3 events with ids the test can decode (writer, append number,
 *    event index), alternating between the writer's own stream and one
 *    shared by all.  After each acknowledged append the writer records it
 *    (fu_ack: positions, versions, duplicate flag) with one write() to its
 *    own file, before it sends the next one.  When the daemon dies under
 *    it, the writer keeps its unanswered append, reports idle and waits;
 *    in the next cycle it reconnects and sends that append again with the
 *    same ids -- idempotent: a duplicate if it had been stored, else stored
 *    now.
 *  - 1 subscriber: libmaos-client with reconnect on, subscribed to every
 *    event from position 1; it resumes by itself after each restart and
 *    records every delivered event (position, hash of the stored record)
 *    to its file.
 *  - extension point: table CAS writers and queue workers, once they exist
 *    (see `actors` below).
 *
 * After every restart the history checker (fault_util.c, fu_check_history)
 * verifies against read_all 1..head:
 *  - every acknowledged append present exactly once, at the positions and
 *    versions its reply gave, in its stream;
 *  - nothing visible partly: each append's k events all there, at
 *    consecutive positions, in order, or none of them;
 *  - positions dense 1..head, and per writer its appends without a hole;
 *  - `maosctl verify` OK (the hash chain);
 *  - the subscriber, once it has subscribed again and caught up (the
 *    checker waits for both), has received exactly read_all 1..head: no
 *    gap, no duplicate, each the same stored record (nothing it was sent
 *    before a crash changed or vanished); it resumed once per kill.
 *
 * Cycle count: set in ONE place, CRASH_CYCLES_DEFAULT below (50, the
 * per-CI-run figure); the environment variable MAOS_CRASH_CYCLES overrides
 * it for the opt-in long run:
 *
 *     MAOS_CRASH_CYCLES=300 meson test -C build --print-errorlogs \
 *         crash-loop --timeout-multiplier 6
 *
 * (the meson timeout below is sized for the default count; the test's own
 * per-test timeout grows with the count).  The per-cycle work is small (a
 * few dozen appends) so the default run takes seconds plain and stays well
 * under a minute under ASan.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault_util.h"

/* The one place the number of kill -9 cycles is set (env MAOS_CRASH_CYCLES
 * overrides it: the opt-in long run uses 300). */
#define CRASH_CYCLES_DEFAULT 50

enum {
    APPENDERS = 4,
    TAG = 0xc7,       /* this test's event ids */
    ACKS_MIN = 6,     /* acknowledged appends per cycle before the kill: */
    ACKS_SPREAD = 23, /* ACKS_MIN + (cycle * 7) % ACKS_SPREAD */
    WAIT_MS = 60000,  /* bound on every wait for a condition */
};

static const char *const streams[] = {"crash-w0", "crash-w1", "crash-w2",
                                      "crash-w3", "crash-shared"};

/* Events in writer w's append s: 1..3, spread differently per writer. */
static uint32_t k_of(uint32_t w, uint32_t s)
{
    return 1 + (s * 7 + w * 3) % 3;
}

static uint32_t stream_of(uint32_t w, uint32_t s)
{
    return s % 2 ? 4 : w;
}

/* One delivered event, as the subscriber records it. */
typedef struct sub_rec {
    uint64_t pos;
    uint64_t hash;
} sub_rec;

/* ---- what every actor process shares ------------------------------------- */

typedef struct actor_env {
    const char *sock;
    const char *dir; /* where actors keep their records */
    int go_fd;       /* one byte per cycle: the daemon is up, work */
    int idle_fd;     /* the actor writes one byte: the daemon died, idle */
} actor_env;

/* Read one go byte; 0 on EOF (the test is over). */
static int wait_go(int fd)
{
    char b;
    for (;;) {
        ssize_t r = read(fd, &b, 1);
        if (r == 1)
            return 1;
        if (r < 0 && errno == EINTR)
            continue;
        return 0;
    }
}

static void say_idle(int fd)
{
    if (write(fd, "i", 1) != 1)
        _exit(61);
}

/* Connect, or NULL: the daemon was up when go was sent, but a slow actor
 * may get here after the others' acknowledgements got it killed; then it
 * just goes idle (retrying would wait for a restart that waits for it). */
static maos_ctx *actor_connect(const char *sock)
{
    maos_ctx *c = maos_connect_timeout(sock, 10000);
    if (c && !c->err)
        return c;
    maos_free(c);
    return NULL;
}

/* ---- appenders ----------------------------------------------------------- */

static void appender(const actor_env *env, uint32_t w)
{
    char path[512];
    snprintf(path, sizeof path, "%s/acks-%u", env->dir, w);
    int afd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (afd < 0)
        _exit(30);
    static const char data[] = "\x82\xa1w\x01\xa1s\x02"; /* {w:1, s:2} */
    uint32_t s = 0; /* the next append; unanswered until its ack */
    while (wait_go(env->go_fd)) {
        maos_ctx *c = actor_connect(env->sock);
        while (c) {
            uint32_t k = k_of(w, s), sn = stream_of(w, s);
            uint8_t ids[3][16];
            maos_event_spec ev[3];
            for (uint32_t i = 0; i < k; i++) {
                fu_mk_id(ids[i], TAG, w, s, i);
                ev[i] = (maos_event_spec){ids[i], "Crash", data,
                                          sizeof data - 1, NULL, 0};
            }
            maos_append_info info;
            memset(&info, 0, sizeof info);
            int rc = maos_append(c, streams[sn], MAOS_EXPECT_ANY, ev, k, &info);
            if (rc != 0) {
                if (maos_err_is_fatal(rc) || maos_is_dead(c))
                    break; /* the daemon was killed: idle until the next go */
                dprintf(2, "appender %u append %u: refused: %d (%s) %s\n", w, s,
                        rc, maos_err_name(rc), c->errstr);
                _exit(32);
            }
            if (info.count != k) {
                dprintf(2, "appender %u append %u: count %u, sent %u\n", w, s,
                        info.count, k);
                _exit(33);
            }
            fu_ack a = {.w = w,
                        .s = s,
                        .k = k,
                        .dup = (uint32_t)info.duplicate,
                        .stream_no = sn,
                        .pos = info.position,
                        .version = info.version};
            if (fu_ack_write(afd, &a))
                _exit(34);
            s++;
        }
        maos_free(c);
        say_idle(env->idle_fd);
    }
    close(afd);
    _exit(0);
}

/* ---- the subscriber ------------------------------------------------------ */

/* Runs from the first start to the end; stop_fd: EOF means stop. */
static void subscriber(const char *sock, const char *path, int stop_fd)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        _exit(50);
    maos_options o = {.path = sock,
                      .timeout_ms = 10000,
                      .client_name = "crash-subscriber",
                      .reconnect = 1,
                      .reconnect_max_ms = WAIT_MS};
    maos_ctx *c = maos_connect_with(&o);
    if (!c || c->err)
        _exit(51);
    uint64_t sub;
    int rc = maos_subscribe(c, NULL, MAOS_FROM_POSITION, 1, &sub);
    if (rc) {
        dprintf(2, "subscriber: subscribe: %d (%s) %s\n", rc, maos_err_name(rc),
                c->errstr);
        _exit(52);
    }
    sub_rec *recs = NULL;
    size_t cap = 0;
    for (;;) {
        struct pollfd p = {stop_fd, POLLIN, 0};
        if (poll(&p, 1, 0) > 0)
            break; /* EOF: the test is done with us */
        maos_delivery *d = NULL;
        rc = maos_next(c, 100, &d);
        if (rc == MAOS_ETIMEOUT)
            continue;
        if (rc < 0) {
            if (maos_is_dead(c)) {
                dprintf(2, "subscriber: gave up: %d (%s) %s\n", rc,
                        maos_err_name(rc), c->errstr);
                _exit(53);
            }
            continue; /* reconnecting */
        }
        if (d->kind == MAOS_PUSH_EVENTS && d->n > 0) {
            if (d->n > cap) {
                cap = d->n;
                recs = realloc(recs, cap * sizeof *recs);
                if (!recs)
                    _exit(54);
            }
            for (size_t i = 0; i < d->n; i++) {
                recs[i].pos = d->events[i].position;
                recs[i].hash = fu_hash(d->events[i].raw, d->events[i].raw_len);
            }
            ssize_t want = (ssize_t)(d->n * sizeof *recs);
            if (write(fd, recs, (size_t)want) != want)
                _exit(55);
        }
        maos_delivery_free(d);
    }
    free(recs);
    /* how often it resumed, for the test to compare with the kills */
    char line[32];
    int n = snprintf(line, sizeof line, "%llu\n",
                     (unsigned long long)maos_reconnects(c));
    char rpath[600];
    snprintf(rpath, sizeof rpath, "%s.reconnects", path);
    int rfd = open(rpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (rfd < 0 || write(rfd, line, (size_t)n) != n)
        _exit(56);
    close(rfd);
    maos_free(c);
    close(fd);
    _exit(0);
}

/* ---- extension point: more kinds of actors
 * ------------------------------------------
 *
 * An actor kind is a process body that works while the daemon is up (it
 * reads one byte from go_fd per cycle, works until the daemon dies under
 * it, writes one byte to idle_fd, and waits for the next go; EOF on go_fd
 * ends it with _exit(0)), plus a check the history checker runs after
 * every restart, while every actor is idle.  Only appenders exist today.
 * Rows to add as the coordination ops land:
 *
 *   - table CAS writers: compare-and-set on a few hot keys, each
 *     acknowledged (key, expected version -> new version, value) recorded
 *     like fu_ack; the check: every acknowledged update is in the key's
 *     history in version order, no lost update, no two updates applied
 *     from the same expected version;
 *   - queue workers: enqueue/lease/renew/ack of items, each acknowledged
 *     step recorded with the lease's expiry; the check: no two valid
 *     leases on one item at once, every acknowledged item done exactly
 *     once, an expired lease's work never acknowledged.
 */
typedef struct actor_kind {
    const char *name;
    uint32_t count;
    void (*body)(const actor_env *env, uint32_t index);
    /* After every restart (log: read_all 1..head); fails the test. */
    void (*check)(const actor_env *env, const fu_log *log, const char *when);
} actor_kind;

static void check_appenders(const actor_env *env, const fu_log *log,
                            const char *when)
{
    fu_acks acks = {0};
    for (uint32_t w = 0; w < APPENDERS; w++) {
        char path[512];
        snprintf(path, sizeof path, "%s/acks-%u", env->dir, w);
        fu_acks_load(path, &acks);
    }
    fu_check_history(log, &acks, TAG, APPENDERS, k_of, streams, 1, when);
    fu_acks_free(&acks);
}

static const actor_kind actors[] = {
    {"appender", APPENDERS, appender, check_appenders},
    /* {"table-cas", 2, table_cas_writer, check_tables},   -- tables issue */
    /* {"queue-worker", 2, queue_worker, check_queues},    -- queues issue */
};
#define N_KINDS (sizeof actors / sizeof actors[0])

/* ---- the test process ---------------------------------------------------- */

static int cycles(void)
{
    const char *e = getenv("MAOS_CRASH_CYCLES");
    if (e && atoi(e) > 0)
        return atoi(e);
    return CRASH_CYCLES_DEFAULT;
}

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Acknowledged appends recorded so far, all appenders. */
static uint64_t acks_so_far(const char *dir)
{
    uint64_t n = 0;
    for (uint32_t w = 0; w < APPENDERS; w++) {
        char path[512];
        snprintf(path, sizeof path, "%s/acks-%u", dir, w);
        n += file_size(path) / sizeof(fu_ack);
    }
    return n;
}

/* Fail at once when an actor exited (they run until the end). */
static void actors_alive(const pid_t *pids, uint32_t n, const char *when)
{
    for (uint32_t a = 0; a < n; a++)
        if (mt_exited(pids[a])) {
            int st = mt_wait(pids[a], 0);
            MT_FAIL("%s: actor %u (pid %ld) exited with status %d", when, a,
                    (long)pids[a], st);
        }
}

/* Read `n` idle bytes within WAIT_MS. */
static void wait_idle(int fd, uint32_t n, const char *when)
{
    int64_t deadline = mt_now_us() + (int64_t)WAIT_MS * 1000;
    uint32_t got = 0;
    while (got < n) {
        int left = (int)((deadline - mt_now_us()) / 1000);
        if (left <= 0)
            MT_FAIL("%s: %u of %u actors went idle within %d ms", when, got, n,
                    WAIT_MS);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            continue;
        char buf[64];
        uint32_t want = n - got < sizeof buf ? n - got : (uint32_t)sizeof buf;
        ssize_t r = read(fd, buf, want);
        if (r <= 0)
            MT_FAIL("%s: idle pipe closed: an actor died", when);
        got += (uint32_t)r;
    }
}

/* The subscriber's records so far (a torn last one ignored). */
static sub_rec *load_sub(const char *path, size_t *n)
{
    size_t len = 0;
    char *buf = mt_read_file(path, &len);
    *n = buf ? len / sizeof(sub_rec) : 0;
    return (sub_rec *)buf;
}

/* The subscriber's sequence: 1..m, gap- and duplicate-free, the same
 * records as the log; all of it when `whole`. */
static void check_subscriber(const char *path, const fu_log *log, int whole,
                             const char *when)
{
    size_t m;
    sub_rec *r = load_sub(path, &m);
    for (size_t j = 0; j < m; j++) {
        if (r[j].pos != j + 1) {
            unsigned long long got = r[j].pos;
            free(r);
            MT_FAIL("%s: subscriber's delivery %zu is position %llu, want %zu "
                    "(%s)",
                    when, j + 1, got, j + 1,
                    got <= j ? "a duplicate" : "a gap");
        }
        if (j >= log->n) {
            free(r);
            MT_FAIL("%s: subscriber got position %zu, the log ends at %llu "
                    "(a pushed event vanished)",
                    when, j + 1, (unsigned long long)log->n);
        }
        if (r[j].hash != log->v[j].hash) {
            free(r);
            MT_FAIL("%s: subscriber's event at position %zu differs from "
                    "read_all's",
                    when, j + 1);
        }
    }
    free(r);
    if (whole && m != log->n)
        MT_FAIL("%s: subscriber has %zu events, read_all %llu", when, m,
                (unsigned long long)log->n);
}

/* Wait until the subscriber has recorded n events (checked after). */
static void wait_subscriber(const char *path, uint64_t n, const char *when)
{
    int64_t deadline = mt_now_us() + (int64_t)WAIT_MS * 1000;
    while (file_size(path) / sizeof(sub_rec) < n) {
        if (mt_now_us() > deadline)
            MT_FAIL("%s: subscriber has %zu of %llu events after %d ms", when,
                    file_size(path) / sizeof(sub_rec), (unsigned long long)n,
                    WAIT_MS);
        mt_sleep_ms(1); /* polling the subscriber's file for the condition */
    }
}

/* Wait until the subscriber (pid) is subscribed on the daemon c talks to. */
static void wait_subscribed(maos_ctx *c, pid_t pid, const char *when)
{
    int64_t deadline = mt_now_us() + (int64_t)WAIT_MS * 1000;
    for (;;) {
        maos_stats_info st;
        MT_EQ_ERR(maos_stats_get(c, &st), 0);
        if (st.subscriptions >= 1)
            return;
        if (mt_exited(pid))
            MT_FAIL("%s: the subscriber exited with status %d", when,
                    mt_wait(pid, 0));
        if (mt_now_us() > deadline)
            MT_FAIL("%s: the subscriber did not subscribe within %d ms", when,
                    WAIT_MS);
        mt_sleep_ms(2); /* polling stats for the condition */
    }
}

/* Everything the checker verifies after a restart, while actors idle. */
static void check_all(mt_daemon *d, const actor_env *env, const char *sub_path,
                      pid_t sub_pid, const char *when)
{
    /* Nobody writes now (every actor is idle), so the log is still while
     * it is read.  The subscriber reconnects by itself (the client
     * library's backoff): wait until it has subscribed again and caught
     * up, so every restart is a resume that is checked. */
    maos_ctx *c = fu_connect(d);
    fu_log log = {0};
    fu_log_load(c, &log);
    for (size_t k = 0; k < N_KINDS; k++)
        actors[k].check(env, &log, when);
    wait_subscribed(c, sub_pid, when); /* subscribed on this instance */
    maos_free(c);
    wait_subscriber(sub_path, log.n, when);
    check_subscriber(sub_path, &log, 1, when);
    fu_log_free(&log);
    fu_verify_ok(d);
}

static void test_crash_loop(void **state)
{
    (void)state;
    int n_cycles = cycles();
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    /* The smallest journal: every restart applies it again and starts a
     * new lap, and the appends between kills also end laps by size (the
     * log says "journal lap N started"). */
    mt_daemon_add_arg(d, "--journal-mb");
    mt_daemon_add_arg(d, "1");
    mt_daemon_add_arg(d, "--log-level");
    mt_daemon_add_arg(d, "info");
    char sub_path[512];
    snprintf(sub_path, sizeof sub_path, "%s/sub", d->dir);
    mt_daemon_up(d);

    uint32_t n_actors = 0;
    for (size_t k = 0; k < N_KINDS; k++)
        n_actors += actors[k].count;
    int idle[2], stop[2];
    MT_EQ_INT(pipe2(idle, O_CLOEXEC), 0);
    MT_EQ_INT(pipe2(stop, O_CLOEXEC), 0);
    int go[64];
    pid_t pids[64];
    MT_CMP_INT(n_actors, <=, 64);
    uint32_t a = 0;
    for (size_t k = 0; k < N_KINDS; k++)
        for (uint32_t i = 0; i < actors[k].count; i++, a++) {
            int p[2];
            MT_EQ_INT(pipe2(p, O_CLOEXEC), 0);
            pid_t pid = mt_fork();
            if (pid < 0)
                MT_FAIL("fork: %s", strerror(errno));
            if (pid == 0) {
                /* Hold no other end of the test's pipes, or an EOF the
                 * test means for someone else never arrives. */
                close(p[1]);
                close(idle[0]);
                close(stop[0]);
                close(stop[1]);
                for (uint32_t j = 0; j < a; j++)
                    close(go[j]);
                actor_env env = {d->sock, d->dir, p[0], idle[1]};
                actors[k].body(&env, i);
                _exit(0);
            }
            close(p[0]);
            go[a] = p[1];
            pids[a] = pid;
        }
    close(idle[1]);
    pid_t sub_pid = mt_fork();
    if (sub_pid < 0)
        MT_FAIL("fork: %s", strerror(errno));
    if (sub_pid == 0) {
        close(stop[1]);
        close(idle[0]);
        for (a = 0; a < n_actors; a++)
            close(go[a]);
        subscriber(d->sock, sub_path, stop[0]);
    }
    close(stop[0]);
    actor_env env = {d->sock, d->dir, -1, -1};
    /* the first kill must find the subscriber subscribed (its first
     * connect is not retried) */
    maos_ctx *c0 = fu_connect(d);
    wait_subscribed(c0, sub_pid, "before the first cycle");
    maos_free(c0);

    uint64_t kills = 0;
    for (int cycle = 0; cycle < n_cycles; cycle++) {
        uint64_t before = acks_so_far(d->dir);
        uint64_t want = ACKS_MIN + (uint64_t)(cycle * 7) % ACKS_SPREAD;
        for (a = 0; a < n_actors; a++)
            if (write(go[a], "g", 1) != 1)
                MT_FAIL("cycle %d: actor %u is gone", cycle, a);
        int64_t deadline = mt_now_us() + (int64_t)WAIT_MS * 1000;
        while (acks_so_far(d->dir) < before + want) {
            if (mt_now_us() > deadline)
                MT_FAIL("cycle %d: %llu of %llu acknowledgements within %d ms",
                        cycle,
                        (unsigned long long)(acks_so_far(d->dir) - before),
                        (unsigned long long)want, WAIT_MS);
            if (!mt_daemon_alive(d))
                MT_FAIL("cycle %d: maosd died on its own", cycle);
            actors_alive(pids, n_actors, "waiting for acknowledgements");
            mt_sleep_ms(1); /* polling the ack files for the condition */
        }
        mt_daemon_kill9(d);
        kills++;
        char when[64];
        snprintf(when, sizeof when, "after kill %d", cycle + 1);
        wait_idle(idle[0], n_actors, when);
        mt_daemon_up(d);
        check_all(d, &env, sub_path, sub_pid, when);
    }

    /* The end: actors stop (EOF on go), the subscriber catches up fully. */
    for (a = 0; a < n_actors; a++)
        close(go[a]);
    for (a = 0; a < n_actors; a++)
        MT_EQ_INT(mt_wait(pids[a], WAIT_MS), 0);
    maos_ctx *c = fu_connect(d);
    fu_log log = {0};
    fu_log_load(c, &log);
    maos_free(c);
    wait_subscriber(sub_path, log.n, "at the end");
    check_subscriber(sub_path, &log, 1, "at the end");
    close(stop[1]);
    MT_EQ_INT(mt_wait(sub_pid, WAIT_MS), 0);
    char rpath[600];
    snprintf(rpath, sizeof rpath, "%s.reconnects", sub_path);
    char *rtext = mt_read_file(rpath, NULL);
    if (!rtext)
        MT_FAIL("the subscriber left no %s", rpath);
    uint64_t reconnects = strtoull(rtext, NULL, 10);
    free(rtext);
    /* it was subscribed at every kill (the checker waited): one resume
     * each */
    MT_EQ_U64(reconnects, kills);

    fu_acks acks = {0};
    for (uint32_t w = 0; w < APPENDERS; w++) {
        char path[512];
        snprintf(path, sizeof path, "%s/acks-%u", d->dir, w);
        fu_acks_load(path, &acks);
    }
    uint64_t dups = 0;
    for (size_t i = 0; i < acks.n; i++)
        dups += acks.v[i].dup;
    uint64_t unacked = fu_check_history(&log, &acks, TAG, APPENDERS, k_of,
                                        streams, 1, "at the end");
    print_message("%llu kill -9 cycles: %llu events, %zu acknowledged appends "
                  "(%llu of them re-sends answered as duplicates), %llu "
                  "appends stored without an ack (in flight at a kill; all "
                  "whole), the subscriber resumed %llu times gap-free\n",
                  (unsigned long long)kills, (unsigned long long)log.n, acks.n,
                  (unsigned long long)dups, (unsigned long long)unacked,
                  (unsigned long long)reconnects);
    fu_acks_free(&acks);
    fu_log_free(&log);
    close(idle[0]);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_loop),
    };
    /* Generous: ~0.2 s a cycle plain, ~0.6 s under ASan. */
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0],
                   120 + 4 * cycles());
}
