/*
 * tests/harness.h -- the small library every integration and stress test
 * uses: a per-test runner, real maosd processes on temp dirs, maosctl runs,
 * raw socket helpers and assertions that print both values.
 *
 * Runner (docs/ARCHITECTURE.md "House rules"): a test file lists its tests in one CMUnitTest array
 * and calls mt_main().  Each test runs in its own forked process with a
 * timeout and its own temp dir (/tmp/maos-<file>-XXXXXX).  The runner is a
 * child subreaper, so a daemon or writer left behind by a test that crashed
 * or timed out is reparented to it, killed by pid and reaped.  A passing
 * test's dir is removed (rm -rf); a failing test's dir is kept and the
 * daemon log paths in it are printed with their last lines.
 *
 * Processes: every process the harness forks (daemons, maosctl, helpers from
 * mt_fork) is recorded by pid in <testdir>/pids and reaped by its owner; the
 * runner kills and reaps whatever is still alive after the test.  Nothing is
 * ever killed by name.
 *
 * Binaries: maosd from $MAOSD_BIN, maosd-fault from $MAOSD_FAULT_BIN,
 * maosctl from $MAOSCTL_BIN; meson sets them, and the MT_DEFAULT_* defines
 * from meson are the fallback when a test binary is run by hand.
 *
 * Ownership: mt_daemon objects are owned by the harness (freed by the
 * runner after the test, or by mt_daemon_free); mt_run buffers by the
 * caller (mt_run_free).  Not thread-safe: tests are single-threaded
 * processes.
 */
#ifndef MAOS_TEST_HARNESS_H
#define MAOS_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "maos/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- runner ------------------------------------------------------------ */

/*
 * Run tests[0..n) each in its own process with timeout_s seconds (env
 * MT_TIMEOUT_SCALE, a positive integer, multiplies it, e.g. under
 * valgrind).  argv[1..] may name tests to run (exact names); otherwise all
 * run.  Returns the process exit status: 0 when every test passed.
 */
int mt_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n,
            int timeout_s);

/* The running test's temp dir (set in the test process). */
const char *mt_test_dir(void);

/* ---- assertions (print both values, then fail the test) -------------- */

void mt_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define MT_FAIL(...) mt_fail_at(__FILE__, __LINE__, __VA_ARGS__)

#define MT_EQ_INT(a, b)                                                        \
    do {                                                                       \
        long long mt_a_ = (long long)(a), mt_b_ = (long long)(b);              \
        if (mt_a_ != mt_b_)                                                    \
            MT_FAIL("%s == %s: got %lld, want %lld", #a, #b, mt_a_, mt_b_);    \
    } while (0)

#define MT_EQ_U64(a, b)                                                        \
    do {                                                                       \
        unsigned long long mt_a_ = (unsigned long long)(a),                    \
                           mt_b_ = (unsigned long long)(b);                    \
        if (mt_a_ != mt_b_)                                                    \
            MT_FAIL("%s == %s: got %llu, want %llu", #a, #b, mt_a_, mt_b_);    \
    } while (0)

#define MT_CMP_INT(a, op, b)                                                   \
    do {                                                                       \
        long long mt_a_ = (long long)(a), mt_b_ = (long long)(b);              \
        if (!(mt_a_ op mt_b_))                                                 \
            MT_FAIL("%s %s %s: got %lld vs %lld", #a, #op, #b, mt_a_, mt_b_);  \
    } while (0)

/* Error codes: printed as number and NAME. */
#define MT_EQ_ERR(a, b)                                                        \
    do {                                                                       \
        int mt_a_ = (int)(a), mt_b_ = (int)(b);                                \
        if (mt_a_ != mt_b_)                                                    \
            MT_FAIL("%s == %s: got %d (%s), want %d (%s)", #a, #b, mt_a_,      \
                    mt_a_ ? maos_err_name(mt_a_) : "OK", mt_b_,                \
                    mt_b_ ? maos_err_name(mt_b_) : "OK");                      \
    } while (0)

#define MT_EQ_STR(a, b)                                                        \
    do {                                                                       \
        const char *mt_a_ = (a), *mt_b_ = (b);                                 \
        if (!mt_a_ || !mt_b_ || strcmp(mt_a_, mt_b_) != 0)                     \
            MT_FAIL("%s == %s: got \"%s\", want \"%s\"", #a, #b,               \
                    mt_a_ ? mt_a_ : "(null)", mt_b_ ? mt_b_ : "(null)");       \
    } while (0)

/* A byte string (ptr, len) against a NUL-terminated one. */
#define MT_EQ_MEM_STR(p, n, s)                                                 \
    do {                                                                       \
        const char *mt_p_ = (const char *)(p), *mt_s_ = (s);                   \
        size_t mt_n_ = (size_t)(n);                                            \
        if (mt_n_ != strlen(mt_s_) || memcmp(mt_p_, mt_s_, mt_n_) != 0)        \
            MT_FAIL("%s == %s: got \"%.*s\" (%zu bytes), want \"%s\"", #p, #s, \
                    (int)(mt_n_ > 200 ? 200 : mt_n_), mt_p_ ? mt_p_ : "",      \
                    mt_n_, mt_s_);                                             \
    } while (0)

#define MT_TRUE(c)                                                             \
    do {                                                                       \
        if (!(c))                                                              \
            MT_FAIL("expected true: %s", #c);                                  \
    } while (0)

/* ---- daemons ----------------------------------------------------------- */

typedef struct mt_daemon {
    char dir[256];  /* <testdir>/<name> */
    char data[300]; /* dir/data */
    char sock[300]; /* dir/s.sock */
    char log[300];  /* dir/maosd.log (appended across restarts) */
    char bin[512];
    pid_t pid;      /* 0 when not running */
    char *env[8];   /* extra NAME=VALUE for the daemon, NULL-terminated */
    char *args[16]; /* extra flags, NULL-terminated */
    int start_status; /* exit status when the last mt_daemon_start saw the
                       * daemon exit during start-up, else -1 */
} mt_daemon;

/* Path of a binary: getenv(env) or fallback.  Fails the test if neither. */
const char *mt_bin(const char *env, const char *fallback);
const char *mt_maosd_bin(void);
const char *mt_maosd_fault_bin(void);
const char *mt_maosctl_bin(void);

/*
 * A daemon description on a new dir <testdir>/<name> (name NULL: "d").
 * bin NULL means maosd.  Not started.  Owned by the harness.
 */
mt_daemon *mt_daemon_new(const char *name, const char *bin);
/* Add an environment entry / a flag for the next starts (copied). */
void mt_daemon_setenv(mt_daemon *d, const char *name, const char *value);
void mt_daemon_add_arg(mt_daemon *d, const char *arg);
/* Forget every environment entry added with mt_daemon_setenv. */
void mt_daemon_clearenv(mt_daemon *d);

/*
 * Start maosd --data-dir dir/data --socket dir/s.sock --log-level warn
 * (plus extra args) with stdout/stderr appended to dir/maosd.log; wait at
 * most 10 s until the socket accepts a connection.  0, or -1 (the daemon
 * exited or never served; it is killed and reaped, the log tail printed).
 */
int mt_daemon_start(mt_daemon *d);
/* As mt_daemon_start, and fails the test on error. */
void mt_daemon_up(mt_daemon *d);
/*
 * SIGTERM, wait up to 15 s, then SIGKILL.  Returns the exit status (0..255),
 * 128+signal if killed by a signal, 1000 when it had to be SIGKILLed after
 * the timeout, -1 when not running.
 */
int mt_daemon_stop(mt_daemon *d);
/* kill -9 and reap. */
void mt_daemon_kill9(mt_daemon *d);
/* Stop (asserting a clean exit 0) and start again on the same dir. */
void mt_daemon_restart(mt_daemon *d);
/* Stop if running and forget it.  Accepts NULL. */
void mt_daemon_free(mt_daemon *d);
/* Resident set size of a running process in KiB, -1 on error. */
long mt_rss_kb(pid_t pid);
/* Virtual size (VmSize) in KiB, -1 on error: a huge malloc shows here even
 * before its pages are touched. */
long mt_vm_kb(pid_t pid);
/* Peak resident set size (VmHWM) in KiB, -1 on error: catches a spike
 * that was freed again before the test looked. */
long mt_hwm_kb(pid_t pid);
/* Whether the daemon process is still alive (not exited). */
int mt_daemon_alive(mt_daemon *d);

/* ---- child processes ---------------------------------------------------- */

/* fork(), recording the child's pid for the runner's clean-up.  The child
 * must end with _exit(). */
pid_t mt_fork(void);
/* 1 when child pid has exited (or is not our child), 0 while it runs.
 * Does not reap it: mt_wait still does. */
int mt_exited(pid_t pid);
/* waitpid with a timeout in ms; SIGKILL after it.  Returns as
 * mt_daemon_stop (exit status, 128+sig, or 1000 after a kill). */
int mt_wait(pid_t pid, int timeout_ms);

typedef struct mt_run {
    char *out;      /* stdout, NUL-terminated (malloc) */
    size_t out_len;
    char *err;      /* stderr, NUL-terminated (malloc) */
    size_t err_len;
    int status;     /* exit code; 128+sig; 1000 on timeout; -1 spawn error */
} mt_run;

/* Run argv (argv[0] a path) with optional stdin bytes and extra env
 * entries (NULL-terminated, may be NULL); capture both outputs.  Returns
 * r->status. */
int mt_spawn(const char *const argv[], const char *const env[],
             const char *in, size_t in_len, int timeout_ms, mt_run *r);
void mt_run_free(mt_run *r);

/* maosctl --socket d->sock ARGS... (NULL-terminated).  Returns status. */
int mt_ctl(const mt_daemon *d, mt_run *r, ...);
/* Same with stdin. */
int mt_ctl_in(const mt_daemon *d, const char *in, size_t in_len, mt_run *r,
              ...);

/* ---- raw sockets -------------------------------------------------------- */

/* Connected AF_UNIX stream socket, or -1. */
int mt_connect(const char *path);
/* Write all bytes (MSG_NOSIGNAL).  0, or -errno. */
int mt_send_all(int fd, const void *p, size_t n);
/*
 * Read one frame within timeout_ms.  Returns 1 with *frame (malloc,
 * caller frees) and *len, 0 when the peer closed (EOF or reset) before a
 * whole frame, -1 on timeout, -2 when the declared length exceeds maxlen.
 */
int mt_recv_frame(int fd, char **frame, uint32_t *len, uint32_t maxlen,
                  int timeout_ms);
/* 1 when the peer closed the connection within timeout_ms (reading and
 * discarding any bytes), 0 on timeout. */
int mt_wait_closed(int fd, int timeout_ms);

/* ---- sanitizer builds ------------------------------------------------- */

/*
 * MT_TSAN is 1 when the test -- and so maosd, built with the same flags --
 * runs under ThreadSanitizer.  TSan's shadow memory (several bytes for
 * every byte the program touches) counts in VmRSS and VmHWM, so memory
 * bounds mean nothing there: tests skip them under MT_TSAN (the plain and
 * ASan builds check them).
 */
#if defined(__SANITIZE_THREAD__)
#define MT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MT_TSAN 1
#endif
#endif
#ifndef MT_TSAN
#define MT_TSAN 0
#endif

/* ---- misc ---------------------------------------------------------------- */

int64_t mt_now_us(void);
void mt_sleep_ms(int ms);
/* Write a whole file; fails the test on error. */
void mt_write_file(const char *path, const void *p, size_t n);
/* Read a whole file (malloc, NUL-terminated), NULL on error. */
char *mt_read_file(const char *path, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
