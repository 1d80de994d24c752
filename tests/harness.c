/*
 * tests/harness.c -- see harness.h.
 *
 * Invariants:
 *  - Every fork() here is followed by a reap of that pid by the forking
 *    process (mt_wait / mt_daemon_stop / mt_spawn), or, when the test
 *    process died first, by the runner, which is a child subreaper and
 *    reads the pids from <testdir>/pids.  Nothing is killed by name.
 *  - A test process ends by stopping every daemon it started (SIGTERM, then
 *    SIGKILL after a timeout) and killing every helper it forked, also when
 *    an assertion longjmp'd out of the test body.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MT_DEFAULT_MAOSD
#define MT_DEFAULT_MAOSD NULL
#endif
#ifndef MT_DEFAULT_MAOSD_FAULT
#define MT_DEFAULT_MAOSD_FAULT NULL
#endif
#ifndef MT_DEFAULT_MAOSCTL
#define MT_DEFAULT_MAOSCTL NULL
#endif

#define MT_MAX_DAEMONS 16
#define MT_MAX_KIDS 256

static char g_test_dir[200];
static mt_daemon *g_daemons[MT_MAX_DAEMONS];
static pid_t g_kids[MT_MAX_KIDS];
static int g_scale = 1;

/* ---- small utilities ------------------------------------------------- */

int64_t mt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void mt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void mt_fail_at(const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error("%s:%d: %s\n", file, line, msg);
    fail();
    abort(); /* not reached: fail() longjmps out of the test */
}

const char *mt_test_dir(void)
{
    return g_test_dir[0] ? g_test_dir : "/tmp";
}

void mt_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        MT_FAIL("open %s: %s", path, strerror(errno));
    if (n && fwrite(p, 1, n, f) != n) {
        fclose(f);
        MT_FAIL("write %s: %s", path, strerror(errno));
    }
    if (fclose(f) != 0)
        MT_FAIL("close %s: %s", path, strerror(errno));
}

char *mt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static void record_pid(pid_t pid)
{
    if (g_test_dir[0]) {
        char path[300], line[32];
        snprintf(path, sizeof path, "%s/pids", g_test_dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            int n = snprintf(line, sizeof line, "%ld\n", (long)pid);
            if (write(fd, line, (size_t)n) != n) {
                /* best effort: the test process still reaps it itself */
            }
            close(fd);
        }
    }
    for (int i = 0; i < MT_MAX_KIDS; i++)
        if (g_kids[i] == 0) {
            g_kids[i] = pid;
            return;
        }
}

static void forget_pid(pid_t pid)
{
    for (int i = 0; i < MT_MAX_KIDS; i++)
        if (g_kids[i] == pid)
            g_kids[i] = 0;
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int mt_wait(pid_t pid, int timeout_ms)
{
    int st;
    int64_t deadline = mt_now_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            forget_pid(pid);
            return decode_status(st);
        }
        if (r < 0 && errno != EINTR) {
            forget_pid(pid);
            return -1;
        }
        if (mt_now_us() > deadline)
            break;
        mt_sleep_ms(2);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    forget_pid(pid);
    return 1000;
}

int mt_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 1;
    return si.si_pid != 0;
}

pid_t mt_fork(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid > 0)
        record_pid(pid);
    if (pid == 0) {
        /* The child is not the test: it owns no daemon and no helper. */
        memset(g_daemons, 0, sizeof g_daemons);
        memset(g_kids, 0, sizeof g_kids);
    }
    return pid;
}

/* ---- binaries ------------------------------------------------------------ */

const char *mt_bin(const char *env, const char *fallback)
{
    const char *p = getenv(env);
    if (p && *p)
        return p;
    if (fallback && *fallback)
        return fallback;
    MT_FAIL("set %s to the path of the binary", env);
}

const char *mt_maosd_bin(void)
{
    return mt_bin("MAOSD_BIN", MT_DEFAULT_MAOSD);
}
const char *mt_maosd_fault_bin(void)
{
    return mt_bin("MAOSD_FAULT_BIN", MT_DEFAULT_MAOSD_FAULT);
}
const char *mt_maosctl_bin(void)
{
    return mt_bin("MAOSCTL_BIN", MT_DEFAULT_MAOSCTL);
}

/* ---- sockets ------------------------------------------------------------- */

int mt_connect(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int mt_send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes before the deadline: 1 ok, 0 closed, -1 timeout. */
static int recv_exact(int fd, char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        int64_t left = deadline - mt_now_us();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(left / 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return 0; /* ECONNRESET and friends: closed */
        }
        if (r == 0)
            return 0;
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

int mt_recv_frame(int fd, char **frame, uint32_t *len, uint32_t maxlen,
                  int timeout_ms)
{
    int64_t deadline = mt_now_us() + (int64_t)timeout_ms * g_scale * 1000;
    unsigned char hdr[4];
    int r = recv_exact(fd, (char *)hdr, 4, deadline);
    if (r <= 0)
        return r;
    uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
                 (uint32_t)hdr[2] << 8 | hdr[3];
    if (n > maxlen)
        return -2;
    char *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    r = recv_exact(fd, buf, n, deadline);
    if (r <= 0) {
        free(buf);
        return r;
    }
    *frame = buf;
    *len = n;
    return 1;
}

int mt_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = mt_now_us() + (int64_t)timeout_ms * g_scale * 1000;
    char buf[4096];
    for (;;) {
        int64_t left = deadline - mt_now_us();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(left / 1000) + 1);
        if (pr <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == 0)
            return 1;
        if (r < 0 && errno != EINTR && errno != EAGAIN)
            return 1;
    }
}

/* ---- daemons ----------------------------------------------------------- */

static void print_log_tail(const char *path, int lines)
{
    size_t n;
    char *buf = mt_read_file(path, &n);
    if (!buf) {
        fprintf(stderr, "    (no log at %s)\n", path);
        return;
    }
    size_t start = n;
    int seen = 0;
    while (start > 0) {
        if (buf[start - 1] == '\n' && start != n && ++seen >= lines)
            break;
        start--;
    }
    fprintf(stderr, "---- last lines of %s ----\n%s", path, buf + start);
    if (n && buf[n - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "---- end of %s ----\n", path);
    free(buf);
}

mt_daemon *mt_daemon_new(const char *name, const char *bin)
{
    mt_daemon *d = calloc(1, sizeof *d);
    if (!d)
        MT_FAIL("out of memory");
    if (!name)
        name = "d";
    snprintf(d->dir, sizeof d->dir, "%s/%s", mt_test_dir(), name);
    if (mkdir(d->dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        free(d);
        MT_FAIL("mkdir %s: %s", mt_test_dir(), strerror(e));
    }
    snprintf(d->data, sizeof d->data, "%s/data", d->dir);
    snprintf(d->sock, sizeof d->sock, "%s/s.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/maosd.log", d->dir);
    snprintf(d->bin, sizeof d->bin, "%s", bin ? bin : mt_maosd_bin());
    for (int i = 0; i < MT_MAX_DAEMONS; i++)
        if (!g_daemons[i]) {
            g_daemons[i] = d;
            return d;
        }
    free(d);
    MT_FAIL("too many daemons in one test");
}

void mt_daemon_setenv(mt_daemon *d, const char *name, const char *value)
{
    size_t nl = strlen(name);
    for (int i = 0; i < 7; i++) {
        if (d->env[i] && strncmp(d->env[i], name, nl) == 0 &&
            d->env[i][nl] == '=') {
            free(d->env[i]);
            d->env[i] = NULL;
        }
        if (!d->env[i]) {
            size_t n = nl + strlen(value) + 2;
            d->env[i] = malloc(n);
            snprintf(d->env[i], n, "%s=%s", name, value);
            return;
        }
    }
    MT_FAIL("too many env entries");
}

void mt_daemon_clearenv(mt_daemon *d)
{
    for (int i = 0; i < 7; i++) {
        free(d->env[i]);
        d->env[i] = NULL;
    }
}

void mt_daemon_add_arg(mt_daemon *d, const char *arg)
{
    for (int i = 0; i < 15; i++)
        if (!d->args[i]) {
            d->args[i] = strdup(arg);
            return;
        }
    MT_FAIL("too many daemon args");
}

int mt_daemon_alive(mt_daemon *d)
{
    if (d->pid <= 0)
        return 0;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == 0)
        return 1;
    if (r == d->pid) {
        fprintf(stderr, "maosd pid %ld exited with status %d (log: %s)\n",
                (long)d->pid, decode_status(st), d->log);
        forget_pid(d->pid);
        d->pid = 0;
    }
    return 0;
}

int mt_daemon_start(mt_daemon *d)
{
    if (d->pid > 0)
        MT_FAIL("daemon %s already running", d->dir);
    d->start_status = -1;
    const char *argv[40];
    int a = 0;
    argv[a++] = d->bin;
    argv[a++] = "--data-dir";
    argv[a++] = d->data;
    argv[a++] = "--socket";
    argv[a++] = d->sock;
    argv[a++] = "--log-level";
    argv[a++] = "warn";
    /* no signed checkpoints: tests count the events of the log exactly;
     * test_chain turns them on with flags of its own (later flags win) */
    argv[a++] = "--chain-every-events";
    argv[a++] = "0";
    argv[a++] = "--chain-interval-s";
    argv[a++] = "0";
    for (int i = 0; d->args[i] && a < 38; i++)
        argv[a++] = d->args[i];
    argv[a] = NULL;

    int logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0)
        MT_FAIL("open %s: %s", d->log, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        MT_FAIL("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        signal(SIGPIPE, SIG_DFL);
        for (int i = 0; d->env[i]; i++)
            putenv(d->env[i]);
        execv(d->bin, (char *const *)argv);
        dprintf(2, "harness: exec %s: %s\n", d->bin, strerror(errno));
        _exit(127);
    }
    close(logfd);
    record_pid(pid);
    d->pid = pid;

    int64_t deadline = mt_now_us() + 10LL * 1000000 * g_scale;
    while (mt_now_us() < deadline) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            forget_pid(pid);
            d->pid = 0;
            d->start_status = decode_status(st);
            fprintf(stderr, "maosd exited during start-up with status %d\n",
                    decode_status(st));
            print_log_tail(d->log, 30);
            return -1;
        }
        int fd = mt_connect(d->sock);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        mt_sleep_ms(10);
    }
    fprintf(stderr, "maosd did not accept on %s within 10 s\n", d->sock);
    mt_wait(pid, 0);
    d->pid = 0;
    print_log_tail(d->log, 30);
    return -1;
}

void mt_daemon_up(mt_daemon *d)
{
    if (mt_daemon_start(d) != 0)
        MT_FAIL("maosd did not start (log: %s)", d->log);
}

int mt_daemon_stop(mt_daemon *d)
{
    if (!d || d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    int st = mt_wait(d->pid, 15000 * g_scale);
    d->pid = 0;
    return st;
}

void mt_daemon_kill9(mt_daemon *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    mt_wait(d->pid, 10000);
    d->pid = 0;
}

void mt_daemon_restart(mt_daemon *d)
{
    int st = mt_daemon_stop(d);
    if (st != 0)
        MT_FAIL("maosd exit status on SIGTERM: got %d, want 0 (log: %s)", st,
                d->log);
    mt_daemon_up(d);
}

void mt_daemon_free(mt_daemon *d)
{
    if (!d)
        return;
    mt_daemon_stop(d);
    for (int i = 0; i < MT_MAX_DAEMONS; i++)
        if (g_daemons[i] == d)
            g_daemons[i] = NULL;
    for (int i = 0; d->env[i]; i++)
        free(d->env[i]);
    for (int i = 0; d->args[i]; i++)
        free(d->args[i]);
    free(d);
}

static long status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t fl = strlen(field);
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0) {
            kb = strtol(line + fl, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

long mt_rss_kb(pid_t pid)
{
    return status_kb(pid, "VmRSS:");
}

long mt_vm_kb(pid_t pid)
{
    return status_kb(pid, "VmSize:");
}

long mt_hwm_kb(pid_t pid)
{
    return status_kb(pid, "VmHWM:");
}

/* ---- spawning ------------------------------------------------------------ */

static void buf_add(char **b, size_t *n, size_t *cap, const char *p, size_t k)
{
    if (*n + k + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (*n + k + 1 > nc)
            nc *= 2;
        *b = realloc(*b, nc);
        if (!*b)
            abort();
        *cap = nc;
    }
    memcpy(*b + *n, p, k);
    *n += k;
    (*b)[*n] = 0;
}

int mt_spawn(const char *const argv[], const char *const env[],
             const char *in, size_t in_len, int timeout_ms, mt_run *r)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(pout, O_CLOEXEC) != 0) {
        close(pin[0]);
        close(pin[1]);
        return -1;
    }
    if (pipe2(perr, O_CLOEXEC) != 0) {
        close(pin[0]);
        close(pin[1]);
        close(pout[0]);
        close(pout[1]);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        signal(SIGPIPE, SIG_DFL);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    record_pid(pid);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    int fin = pin[1], fout = pout[0], ferr = perr[0];
    fcntl(fin, F_SETFL, O_NONBLOCK);
    if (!in || in_len == 0) {
        close(fin);
        fin = -1;
    }
    size_t in_off = 0, ocap = 0, ecap = 0;
    buf_add(&r->out, &r->out_len, &ocap, "", 0);
    buf_add(&r->err, &r->err_len, &ecap, "", 0);
    int64_t deadline = mt_now_us() + (int64_t)timeout_ms * g_scale * 1000;
    int timed_out = 0;
    while (fout >= 0 || ferr >= 0) {
        int64_t left = deadline - mt_now_us();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p[3];
        int np = 0, iin = -1, iout = -1, ierr = -1;
        if (fin >= 0) {
            p[np] = (struct pollfd){fin, POLLOUT, 0};
            iin = np++;
        }
        if (fout >= 0) {
            p[np] = (struct pollfd){fout, POLLIN, 0};
            iout = np++;
        }
        if (ferr >= 0) {
            p[np] = (struct pollfd){ferr, POLLIN, 0};
            ierr = np++;
        }
        int pr = poll(p, (nfds_t)np, (int)(left / 1000) + 1);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        char buf[65536];
        if (iin >= 0 && p[iin].revents) {
            ssize_t w = write(fin, in + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
                in_off == in_len) {
                close(fin);
                fin = -1;
            }
        }
        if (iout >= 0 && p[iout].revents) {
            ssize_t k = read(fout, buf, sizeof buf);
            if (k > 0)
                buf_add(&r->out, &r->out_len, &ocap, buf, (size_t)k);
            else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(fout);
                fout = -1;
            }
        }
        if (ierr >= 0 && p[ierr].revents) {
            ssize_t k = read(ferr, buf, sizeof buf);
            if (k > 0)
                buf_add(&r->err, &r->err_len, &ecap, buf, (size_t)k);
            else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(ferr);
                ferr = -1;
            }
        }
    }
    if (fin >= 0)
        close(fin);
    if (fout >= 0)
        close(fout);
    if (ferr >= 0)
        close(ferr);
    if (timed_out) {
        kill(pid, SIGKILL);
        mt_wait(pid, 10000);
        r->status = 1000;
    } else {
        int64_t left = (deadline - mt_now_us()) / 1000;
        r->status = mt_wait(pid, left > 1000 ? (int)left : 1000);
    }
    return r->status;
}

void mt_run_free(mt_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static int ctl_va(const mt_daemon *d, const char *in, size_t in_len,
                  mt_run *r, va_list ap)
{
    const char *argv[64];
    int a = 0;
    argv[a++] = mt_maosctl_bin();
    argv[a++] = "--socket";
    argv[a++] = d->sock;
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && a < 63)
        argv[a++] = s;
    argv[a] = NULL;
    return mt_spawn(argv, NULL, in, in_len, 120000, r);
}

int mt_ctl(const mt_daemon *d, mt_run *r, ...)
{
    va_list ap;
    va_start(ap, r);
    int st = ctl_va(d, NULL, 0, r, ap);
    va_end(ap);
    return st;
}

int mt_ctl_in(const mt_daemon *d, const char *in, size_t in_len, mt_run *r,
              ...)
{
    va_list ap;
    va_start(ap, r);
    int st = ctl_va(d, in, in_len, r, ap);
    va_end(ap);
    return st;
}

/* ---- runner -------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* In the test process, after the test body: stop what it left running. */
static void child_cleanup(void)
{
    for (int i = 0; i < MT_MAX_DAEMONS; i++)
        if (g_daemons[i])
            mt_daemon_free(g_daemons[i]);
    for (int i = 0; i < MT_MAX_KIDS; i++)
        if (g_kids[i] > 0) {
            kill(g_kids[i], SIGKILL);
            mt_wait(g_kids[i], 10000);
        }
}

/* In the runner: kill and reap what a dead test process left behind. */
static void runner_reap_leftovers(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/pids", dir);
    char *buf = mt_read_file(path, NULL);
    int st;
    if (buf) {
        for (char *p = buf; *p;) {
            char *end;
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            p = end;
            while (*p == '\n')
                p++;
            if (pid <= 0)
                continue;
            /* Only a pid that is still our (reparented) child is touched. */
            pid_t r = waitpid((pid_t)pid, &st, WNOHANG);
            if (r == 0) {
                fprintf(stderr, "harness: killing leftover pid %ld\n", pid);
                kill((pid_t)pid, SIGKILL);
                waitpid((pid_t)pid, &st, 0);
            }
        }
        free(buf);
    }
    while (waitpid(-1, &st, WNOHANG) > 0) {
    }
}

static void print_logs(const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s/maosd.log", dir, e->d_name);
        if (access(path, R_OK) == 0) {
            fprintf(stderr, "daemon log: %s\n", path);
            print_log_tail(path, 30);
        }
    }
    closedir(dh);
}

int mt_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n,
            int timeout_s)
{
    const char *sc = getenv("MT_TIMEOUT_SCALE");
    if (sc && atoi(sc) > 0)
        g_scale = atoi(sc);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *prog = strrchr(argv[0], '/');
    prog = prog ? prog + 1 : argv[0];
    int ran = 0, failed = 0;
    char failed_names[4096] = "";

    for (size_t i = 0; i < n; i++) {
        if (argc > 1) {
            int want = 0;
            for (int k = 1; k < argc; k++)
                if (strcmp(argv[k], tests[i].name) == 0)
                    want = 1;
            if (!want)
                continue;
        }
        char dir[200];
        snprintf(dir, sizeof dir, "/tmp/maos-%s-XXXXXX", prog);
        if (!mkdtemp(dir)) {
            fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
            return 1;
        }
        ran++;
        printf("[ START    ] %s (own process, dir %s)\n", tests[i].name, dir);
        int64_t t0 = mt_now_us();
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0) {
            snprintf(g_test_dir, sizeof g_test_dir, "%s", dir);
            struct CMUnitTest one[1] = {tests[i]};
            int nf = _cmocka_run_group_tests(tests[i].name, one, 1, NULL,
                                             NULL);
            child_cleanup();
            fflush(stdout);
            fflush(stderr);
            _exit(nf ? 1 : 0);
        }
        int st = mt_wait(pid, timeout_s * g_scale * 1000);
        runner_reap_leftovers(dir);
        double secs = (double)(mt_now_us() - t0) / 1e6;
        if (st == 0) {
            printf("[ PASS     ] %s (%.2f s)\n", tests[i].name, secs);
            rm_rf(dir);
        } else {
            failed++;
            if (strlen(failed_names) + strlen(tests[i].name) + 2 <
                sizeof failed_names) {
                strcat(failed_names, " ");
                strcat(failed_names, tests[i].name);
            }
            if (st == 1000)
                printf("[  TIMEOUT ] %s after %d s\n", tests[i].name,
                       timeout_s * g_scale);
            printf("[ FAIL     ] %s (status %d, %.2f s); files kept in %s\n",
                   tests[i].name, st, secs, dir);
            fflush(stdout);
            print_logs(dir);
        }
        fflush(stdout);
    }
    if (argc > 1 && ran == 0) {
        fprintf(stderr, "no test matched\n");
        return 2;
    }
    printf("%s: %d passed, %d failed%s%s\n", prog, ran - failed, failed,
           failed ? ":" : "", failed_names);
    return failed ? 1 : 0;
}
