/*
 * tests/integration/test_systemd.c -- maosd under systemd (issue 12,
 * daemon/sdnotify.c), without systemd: the test plays its part.
 *
 *  - readiness: the test owns NOTIFY_SOCKET; READY=1 (with a STATUS= line)
 *    comes only once the socket accepts -- the test connects and pings the
 *    moment it has READY, without retrying -- and STOPPING=1 at SIGTERM;
 *  - socket activation: the test binds and listens, passes the socket as
 *    fd 3 with LISTEN_FDS/LISTEN_PID as systemd does; maosd serves on it,
 *    a second maosd on the same socket path is refused (the single-instance
 *    lock still holds), and the socket is left in place at exit; and the
 *    same through systemd's own systemd-socket-activate (when installed),
 *    which starts maosd on the first connection: that connection is served;
 *  - watchdog (maosd-fault): with WATCHDOG_USEC set, maosd pings; while
 *    the commit thread is held inside a group's write
 *    (MAOS_FAULT_STALL_GATE) the pings stop and each withheld tick says why
 *    in STATUS=; they resume, and the held write is answered, once it ends;
 *  - reload: SIGHUP between RELOADING=1 and READY=1 takes the new
 *    max_subscriptions and log_level at once and names a key that needs a
 *    restart (durability) without taking it.
 * Every wait is for a message or a state, with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "maos/client.h"

/* ---- the notify socket -------------------------------------------------------- */

static int g_notify = -1;
static char g_notify_path[300];

static void notify_open(void)
{
    snprintf(g_notify_path, sizeof g_notify_path, "%s/notify", mt_test_dir());
    g_notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    MT_TRUE(g_notify >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    MT_TRUE(strlen(g_notify_path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, g_notify_path, strlen(g_notify_path) + 1);
    MT_EQ_INT(bind(g_notify, (struct sockaddr *)&sa, sizeof sa), 0);
}

/* The next notification (NUL-terminated into buf) within timeout_ms: 1, or
 * 0 on timeout. */
static int notify_next(char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = g_notify, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    ssize_t n = recv(g_notify, buf, cap - 1, 0);
    MT_TRUE(n >= 0);
    buf[n] = '\0';
    return 1;
}

/* Wait (30 s at most) for a notification containing want; it is left in
 * buf.  Fails the test on timeout. */
static void notify_wait(const char *want, char *buf, size_t cap)
{
    int64_t deadline = mt_now_us() + 30 * 1000000LL;
    while (mt_now_us() < deadline) {
        if (notify_next(buf, cap, 1000) && strstr(buf, want))
            return;
    }
    MT_FAIL("no notification with \"%s\" within 30 s", want);
}

/* ---- a maosd started by the test ------------------------------------------------ */

/* Start d's binary with its dirs, the notify socket and extra environment
 * entries (NULL-terminated), without waiting for anything; listen_fd >= 0
 * is passed as fd 3 by socket activation.  Extra flags in d->args. */
static void spawn(mt_daemon *d, const char *const *env, int listen_fd, const char *config)
{
    pid_t pid = mt_fork();
    MT_TRUE(pid >= 0);
    if (pid == 0) {
        int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
            _exit(127);
        setenv("NOTIFY_SOCKET", g_notify_path, 1);
        for (size_t i = 0; env && env[i]; i += 2)
            setenv(env[i], env[i + 1], 1);
        if (listen_fd >= 0) {
            if (listen_fd != 3 && dup2(listen_fd, 3) < 0)
                _exit(127);
            char pidbuf[32];
            snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
            setenv("LISTEN_FDS", "1", 1);
            setenv("LISTEN_PID", pidbuf, 1);
        }
        const char *argv[24];
        size_t n = 0;
        argv[n++] = d->bin;
        argv[n++] = "--data-dir";
        argv[n++] = d->data;
        argv[n++] = "--socket";
        argv[n++] = d->sock;
        if (config) {
            argv[n++] = "--config";
            argv[n++] = config;
        } else {
            argv[n++] = "--log-level";
            argv[n++] = "info";
        }
        for (size_t i = 0; d->args[i] && n < 23; i++)
            argv[n++] = d->args[i];
        argv[n] = NULL;
        execv(d->bin, (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
}

static void ping(mt_daemon *d)
{
    mt_run r;
    int st = mt_ctl(d, &r, "ping", NULL);
    if (st != 0)
        MT_FAIL("maosctl ping: status %d: %s", st, r.err);
    mt_run_free(&r);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_ready_and_stopping(void **state)
{
    (void)state;
    notify_open();
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    spawn(d, NULL, -1, NULL);
    char msg[512];
    notify_wait("READY=1", msg, sizeof msg);
    MT_TRUE(strstr(msg, "STATUS=head ") != NULL);
    MT_TRUE(strstr(msg, "durability sync") != NULL);
    ping(d); /* at once: READY=1 means the socket accepts */
    MT_EQ_INT(kill(d->pid, SIGTERM), 0);
    notify_wait("STOPPING=1", msg, sizeof msg);
    MT_EQ_INT(mt_wait(d->pid, 30000), 0);
    d->pid = 0;
}

/* A listening socket at path, as systemd's .socket unit makes it. */
static int listen_at(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    MT_TRUE(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    MT_TRUE(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    MT_EQ_INT(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    MT_EQ_INT(listen(fd, 16), 0);
    return fd;
}

static void test_socket_activation(void **state)
{
    (void)state;
    notify_open();
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mkdir(d->dir, 0700);
    int lfd = listen_at(d->sock);
    spawn(d, NULL, lfd, NULL);
    char msg[512];
    notify_wait("READY=1", msg, sizeof msg);
    ping(d);
    size_t len = 0;
    char *log = mt_read_file(d->log, &len);
    MT_TRUE(log && strstr(log, "passed by systemd (socket activation)"));
    free(log);
    /* another maosd on the same socket path (its own data) is refused */
    mt_daemon *e = mt_daemon_new("e", NULL);
    mkdir(e->dir, 0700);
    snprintf(e->sock, sizeof e->sock, "%s", d->sock);
    spawn(e, NULL, -1, NULL);
    MT_TRUE(mt_wait(e->pid, 30000) != 0);
    e->pid = 0;
    log = mt_read_file(e->log, &len);
    MT_TRUE(log && strstr(log, "another maosd is already listening"));
    free(log);
    ping(d);
    /* a clean stop leaves the socket to systemd: it is still there */
    MT_EQ_INT(mt_daemon_stop(d), 0);
    struct stat st;
    MT_EQ_INT(lstat(d->sock, &st), 0);
    MT_TRUE(S_ISSOCK(st.st_mode));
    close(lfd);
}

/* systemd-socket-activate listens, and on the first connection execs maosd
 * with the socket: the connection that started it is served. */
static void test_systemd_socket_activate(void **state)
{
    (void)state;
    const char *ssa = "/usr/bin/systemd-socket-activate";
    if (access(ssa, X_OK) != 0) {
        printf("SKIP: no %s\n", ssa);
        return;
    }
    notify_open();
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mkdir(d->dir, 0700);
    pid_t pid = mt_fork();
    MT_TRUE(pid >= 0);
    if (pid == 0) {
        int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
            _exit(127);
        setenv("NOTIFY_SOCKET", g_notify_path, 1);
        const char *argv[] = {ssa, "-l", d->sock, "-E", "NOTIFY_SOCKET", d->bin,
                              "--data-dir", d->data, "--socket", d->sock, NULL};
        execv(ssa, (char *const *)argv);
        _exit(127);
    }
    d->pid = pid; /* systemd-socket-activate execs maosd in its place */
    int64_t deadline = mt_now_us() + 30 * 1000000LL;
    struct stat st;
    while (lstat(d->sock, &st) != 0 && mt_now_us() < deadline)
        mt_sleep_ms(1); /* polling for the socket the tool binds */
    MT_EQ_INT(lstat(d->sock, &st), 0);
    ping(d); /* starts maosd, and is served by it */
    char msg[512];
    notify_wait("READY=1", msg, sizeof msg);
    ping(d);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_watchdog_stuck_commit(void **state)
{
    (void)state;
    notify_open();
    mt_daemon *d = mt_daemon_new(NULL, mt_maosd_fault_bin());
    char gate[300];
    snprintf(gate, sizeof gate, "%s/stall-gate", mt_test_dir());
    /* 400 ms: pings every 200 ms (the test never measures time itself) */
    const char *env[] = {"WATCHDOG_USEC", "400000", "MAOS_FAULT_STALL_GATE", gate, NULL};
    spawn(d, env, -1, NULL);
    char msg[512];
    notify_wait("READY=1", msg, sizeof msg);
    notify_wait("WATCHDOG=1", msg, sizeof msg);
    notify_wait("WATCHDOG=1", msg, sizeof msg);
    /* hold the commit thread in the next group's write */
    mt_write_file(gate, "", 0);
    pid_t kid = mt_fork();
    if (kid == 0) { /* the write that gets stuck, answered once released */
        maos_ctx *c = maos_connect(d->sock);
        maos_event_spec ev = {.type = "t"};
        _exit(c && maos_append(c, "wd", MAOS_EXPECT_ANY, &ev, 1, NULL) == 0 ? 0 : 1);
    }
    notify_wait("STATUS=commit thread stuck", msg, sizeof msg);
    /* the next two watchdog ticks withhold their ping too */
    for (int ticks = 0; ticks < 2;) {
        notify_wait("=", msg, sizeof msg);
        if (strstr(msg, "WATCHDOG=1"))
            MT_FAIL("a watchdog ping while the commit thread is stuck");
        ticks += strstr(msg, "commit thread stuck") != NULL;
    }
    MT_TRUE(!mt_exited(kid)); /* its append is still held */
    unlink(gate);
    notify_wait("WATCHDOG=1", msg, sizeof msg);
    MT_EQ_INT(mt_wait(kid, 30000), 0);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_reload(void **state)
{
    (void)state;
    notify_open();
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mkdir(d->dir, 0700);
    char conf[300];
    snprintf(conf, sizeof conf, "%s/maosd.conf", d->dir);
    const char *v1 = "[maosd]\nlog_level = info\nmax_subscriptions = 4\n";
    mt_write_file(conf, v1, strlen(v1));
    spawn(d, NULL, -1, conf);
    char msg[512];
    notify_wait("READY=1", msg, sizeof msg);
    maos_ctx *c = maos_connect(d->sock);
    MT_TRUE(c != NULL);
    uint64_t s1, s2;
    MT_EQ_ERR(maos_subscribe(c, NULL, MAOS_FROM_LIVE, 0, &s1), 0);
    MT_EQ_ERR(maos_subscribe(c, NULL, MAOS_FROM_LIVE, 0, &s2), 0);
    const char *v2 = "[maosd]\nlog_level = debug\nmax_subscriptions = 2\ndurability = none\n";
    mt_write_file(conf, v2, strlen(v2));
    MT_EQ_INT(kill(d->pid, SIGHUP), 0);
    notify_wait("RELOADING=1", msg, sizeof msg);
    notify_wait("READY=1", msg, sizeof msg);
    /* the limit holds at once: a third subscription is refused */
    uint64_t s3;
    MT_EQ_INT(maos_subscribe(c, NULL, MAOS_FROM_LIVE, 0, &s3), MAOS_ELIMIT);
    /* durability needs a restart: named, not taken */
    maos_free(c);
    mt_run r;
    MT_EQ_INT(mt_ctl(d, &r, "stats", NULL), 0);
    MT_TRUE(strstr(r.out, "sync") != NULL);
    mt_run_free(&r);
    size_t len = 0;
    char *log = mt_read_file(d->log, &len);
    MT_TRUE(log && strstr(log, "reload: max_subscriptions 4 -> 2"));
    MT_TRUE(strstr(log, "only taken at a restart, kept as they were: durability"));
    MT_TRUE(strstr(log, "reload: log_level info -> debug"));
    free(log);
    /* log_level debug is live: the refusal above was logged (before its
     * reply was sent) */
    log = mt_read_file(d->log, &len);
    MT_TRUE(log && strstr(log, "maosd debug:") && strstr(log, "LIMIT"));
    free(log);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_stopping),
        cmocka_unit_test(test_socket_activation),
        cmocka_unit_test(test_systemd_socket_activate),
        cmocka_unit_test(test_watchdog_stuck_commit),
        cmocka_unit_test(test_reload),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 240);
}
