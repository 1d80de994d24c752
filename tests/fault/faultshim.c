/*
 * tests/fault/faultshim.c -- an LD_PRELOAD library that makes the storage
 * calls of a process fail on purpose (issue 15, "Fault shim").  Test-only:
 * meson builds it only with -Dtests=true and never installs it.
 *
 * What it wraps: the calls RocksDB 7.8 makes for its WAL, table files,
 * MANIFEST, CURRENT and OPTIONS (seen with strace on maosd during appends,
 * a clean shutdown and a restart):
 *
 *   write ops   write, pwrite, pwrite64, writev, pwritev, pwritev64, pwritev2
 *               (maosd's journal, built with 64-bit offsets, calls pwritev64)
 *   sync ops    fsync, fdatasync
 *   rename ops  rename, renameat, renameat2 (CURRENT, IDENTITY and OPTIONS
 *               files are written to a *.dbtmp file, synced, then renamed)
 *
 * RocksDB also calls fallocate, ftruncate and sync_file_range(fd, 0, 0, 0)
 * (a no-op); it ignores their errors, so they are not wrapped.
 *
 * Only files under MAOS_SHIM_DIR are touched: a descriptor's path comes from
 * readlink(/proc/self/fd/N), cached per descriptor as a file class and
 * forgotten when the descriptor is closed (close, dup2, dup3 are wrapped for
 * that).  Sockets, the daemon's log on stderr and RocksDB's own info log
 * (LOG, LOG.old.*) are never touched.  Without MAOS_SHIM_DIR the library is
 * inert: every call goes straight to libc.
 *
 * Environment (read once, at the first wrapped call):
 *
 *   MAOS_SHIM_DIR=DIR            the data directory (required)
 *   MAOS_SHIM_FAULT=CLASS:OP:N   the N-th (1-based) call of OP on a file of
 *                                CLASS fails; counted per process
 *       CLASS  wal (*.log), sst (*.sst), manifest (MANIFEST-*), current
 *              (CURRENT, IDENTITY and their *.dbtmp), options (OPTIONS-*),
 *              dir (DIR itself: directory fsyncs), journal (maosd's
 *              maos.journal and maos.journal.new), any (all of these)
 *       OP     write, sync, rename, any; a rename's class is its target's
 *   MAOS_SHIM_ERRNO=EIO|ENOSPC   the error (default EIO)
 *   MAOS_SHIM_TEAR=K             a failing write first writes its first K
 *                                bytes (a torn write), then fails
 *   MAOS_SHIM_STICKY=1           every later matching call fails too (a dead
 *                                or full disk); default: only the N-th
 *   MAOS_SHIM_ARM=signal         count toward N only after SIGUSR1 (logged
 *                                "faultshim: armed"), so a test can start
 *                                the daemon first and count from there:
 *                                what the open writes does not shift N
 *   MAOS_SHIM_GATE=CLASS:OP:FIFO before every call of OP on a file of CLASS,
 *                                log "faultshim: gate: waiting ..." and
 *                                read one byte from FIFO: the test lets
 *                                such calls through one at a time (e.g.
 *                                holds a commit group in its WAL sync);
 *                                EOF (the test closed its end) opens the
 *                                gate for good
 *   MAOS_SHIM_TRACE=1            log every call on a file of the data dir
 *                                (not only faults), numbered per class and
 *                                op: the numbers MAOS_SHIM_FAULT takes
 *
 * Every injected fault is logged on stderr, one line:
 *   "faultshim: inject EIO: write fd 14 .../000004.log (314 bytes, torn at
 *    10) [wal:write #3]"
 * so a test can check that its fault was actually hit.
 *
 * Sanitizers: the library may be built with the tests' -fsanitize flags; an
 * ASan (or TSan) runtime that is a shared library must come first in
 * LD_PRELOAD (ASan checks it), so tests put it there (fault_util.c).
 *
 * Invariants: never allocates, never takes a lock (counters are atomics,
 * the cache is an array of atomic bytes), so it is safe in any thread and
 * inside malloc-free paths; logging uses the real write() on fd 2.
 */
/* The wrappers must define the plain symbols (pwrite, not a redirect to
 * pwrite64): no large-file renaming here. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

enum cls {
    CLS_UNKNOWN = 0, /* not looked up yet (cache value) */
    CLS_OUTSIDE,     /* not under the data dir, or RocksDB's info LOG */
    CLS_WAL,
    CLS_SST,
    CLS_MANIFEST,
    CLS_CURRENT,
    CLS_OPTIONS,
    CLS_DIR,
    CLS_JOURNAL, /* maosd's journal (maos.journal and its .new) */
    CLS_OTHER, /* under the dir, none of the above (LOCK, ...) */
    CLS_ANY    /* only as a selector */
};

enum op { OP_WRITE, OP_SYNC, OP_RENAME, OP_ANY };

static const char *const cls_names[] = {
    [CLS_UNKNOWN] = "?",         [CLS_OUTSIDE] = "outside",
    [CLS_WAL] = "wal",           [CLS_SST] = "sst",
    [CLS_MANIFEST] = "manifest", [CLS_CURRENT] = "current",
    [CLS_OPTIONS] = "options",   [CLS_DIR] = "dir",
    [CLS_JOURNAL] = "journal",
    [CLS_OTHER] = "other",       [CLS_ANY] = "any",
};
static const char *const op_names[] = {"write", "sync", "rename", "any"};

#define CACHE_FDS 4096

static struct {
    atomic_int state; /* 0 not read, 1 reading, 2 ready */
    int active;       /* MAOS_SHIM_DIR set */
    char dir[4096];
    size_t dir_len;
    int fault; /* a fault is configured */
    enum cls f_cls;
    enum op f_op;
    long f_n;
    int err;
    long tear; /* -1: no tear */
    int sticky;
    int trace;
    int gate_fd; /* -1: no gate */
    enum cls g_cls;
    enum op g_op;
    atomic_int gate_open;         /* EOF seen: no more waiting */
    atomic_int armed;             /* counting toward N (MAOS_SHIM_ARM) */
    atomic_long matches;          /* calls that match the fault's selector */
    atomic_long seen[CLS_ANY][3]; /* calls per (class, op), for the trace */
    atomic_uchar cache[CACHE_FDS];
} g;

/* ---- real functions ------------------------------------------------------ */

#define REAL(name, ret, args)                                                  \
    static ret(*real_##name) args;                                             \
    static ret(*get_##name(void)) args                                         \
    {                                                                          \
        ret(*f) args = __atomic_load_n(&real_##name, __ATOMIC_ACQUIRE);        \
        if (!f) {                                                              \
            f = (ret(*) args)dlsym(RTLD_NEXT, #name);                          \
            __atomic_store_n(&real_##name, f, __ATOMIC_RELEASE);               \
        }                                                                      \
        return f;                                                              \
    }

REAL(write, ssize_t, (int, const void *, size_t))
REAL(pwrite, ssize_t, (int, const void *, size_t, off_t))
REAL(pwrite64, ssize_t, (int, const void *, size_t, off_t))
REAL(writev, ssize_t, (int, const struct iovec *, int))
REAL(pwritev, ssize_t, (int, const struct iovec *, int, off_t))
REAL(pwritev64, ssize_t, (int, const struct iovec *, int, off_t))
REAL(pwritev2, ssize_t, (int, const struct iovec *, int, off_t, int))
REAL(fsync, int, (int))
REAL(fdatasync, int, (int))
REAL(rename, int, (const char *, const char *))
REAL(renameat, int, (int, const char *, int, const char *))
REAL(renameat2, int, (int, const char *, int, const char *, unsigned))
REAL(close, int, (int))
REAL(dup2, int, (int, int))
REAL(dup3, int, (int, int, int))

/* ---- set-up -------------------------------------------------------------- */

static void say(const char *msg)
{
    ssize_t (*w)(int, const void *, size_t) = get_write();
    size_t n = strlen(msg);
    if (w && w(2, msg, n) < 0) {
        /* nowhere to report it */
    }
}

static enum cls parse_cls(const char *s, size_t n)
{
    for (int c = CLS_WAL; c <= CLS_ANY; c++)
        if (c != CLS_OTHER && strlen(cls_names[c]) == n &&
            memcmp(cls_names[c], s, n) == 0)
            return (enum cls)c;
    return CLS_UNKNOWN;
}

static int parse_op(const char *s, size_t n)
{
    for (int o = 0; o < 4; o++)
        if (strlen(op_names[o]) == n && memcmp(op_names[o], s, n) == 0)
            return o;
    return -1;
}

/* Exit with a message on a bad setting: a typo must not silently test
 * nothing. */
static void bad_env(const char *what)
{
    char line[512];
    snprintf(line, sizeof line, "faultshim: bad %s; exiting\n", what);
    say(line);
    _exit(99);
}

static void setup_now(void)
{
    const char *d = getenv("MAOS_SHIM_DIR");
    if (!d || !*d)
        return;
    /* The data dir may not exist yet (first start): compare textually,
     * after dropping trailing slashes. */
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        n--;
    if (n >= sizeof g.dir)
        bad_env("MAOS_SHIM_DIR (too long)");
    memcpy(g.dir, d, n);
    g.dir[n] = 0;
    g.dir_len = n;
    g.active = 1;
    g.err = EIO;
    g.tear = -1;
    const char *e = getenv("MAOS_SHIM_ERRNO");
    if (e && *e) {
        if (strcmp(e, "EIO") == 0)
            g.err = EIO;
        else if (strcmp(e, "ENOSPC") == 0)
            g.err = ENOSPC;
        else
            bad_env("MAOS_SHIM_ERRNO (EIO or ENOSPC)");
    }
    const char *t = getenv("MAOS_SHIM_TEAR");
    if (t && *t) {
        char *end;
        g.tear = strtol(t, &end, 10);
        if (*end || g.tear < 0)
            bad_env("MAOS_SHIM_TEAR");
    }
    const char *s = getenv("MAOS_SHIM_STICKY");
    g.sticky = s && strcmp(s, "1") == 0;
    const char *tr = getenv("MAOS_SHIM_TRACE");
    g.trace = tr && strcmp(tr, "1") == 0;
    g.gate_fd = -1;
    const char *gt = getenv("MAOS_SHIM_GATE");
    if (gt && *gt) {
        const char *c1 = strchr(gt, ':');
        const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            bad_env("MAOS_SHIM_GATE (CLASS:OP:FIFO)");
        g.g_cls = parse_cls(gt, (size_t)(c1 - gt));
        int op = parse_op(c1 + 1, (size_t)(c2 - c1 - 1));
        if (g.g_cls == CLS_UNKNOWN || op < 0)
            bad_env("MAOS_SHIM_GATE (CLASS:OP:FIFO)");
        g.g_op = (enum op)op;
        /* blocks until the test holds the other end: it opens it first */
        g.gate_fd = open(c2 + 1, O_RDONLY | O_CLOEXEC);
        if (g.gate_fd < 0)
            bad_env("MAOS_SHIM_GATE (cannot open the FIFO)");
    }
    const char *f = getenv("MAOS_SHIM_FAULT");
    if (f && *f) {
        const char *c1 = strchr(f, ':');
        const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            bad_env("MAOS_SHIM_FAULT (CLASS:OP:N)");
        g.f_cls = parse_cls(f, (size_t)(c1 - f));
        int op = parse_op(c1 + 1, (size_t)(c2 - c1 - 1));
        char *end;
        g.f_n = strtol(c2 + 1, &end, 10);
        if (g.f_cls == CLS_UNKNOWN || op < 0 || *end || g.f_n < 1)
            bad_env("MAOS_SHIM_FAULT (CLASS:OP:N)");
        g.f_op = (enum op)op;
        g.fault = 1;
    }
}

static void setup(void)
{
    int st = atomic_load_explicit(&g.state, memory_order_acquire);
    if (st == 2)
        return;
    int zero = 0;
    if (atomic_compare_exchange_strong(&g.state, &zero, 1)) {
        setup_now();
        atomic_store_explicit(&g.state, 2, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&g.state, memory_order_acquire) != 2) {
        /* another thread is reading the environment: a few microseconds */
    }
}

/* SIGUSR1 is taken by one thread of ours in sigwait(), blocked everywhere
 * else (the constructor runs before maosd creates a thread, and threads
 * inherit the mask).  A handler would do under a plain build, but under
 * ThreadSanitizer a handler runs only when the thread the kernel picked
 * calls into an intercepted function -- a RocksDB background thread may
 * sleep in uninstrumented code for good, and the test would wait for
 * "faultshim: armed" in vain (as tests/fault/failmalloc_maosd.c). */
static sigset_t arm_set;
static pthread_t arm_thread;
static int have_arm_thread;

static void *arm_main(void *arg)
{
    static const char msg[] = "faultshim: armed\n";
    (void)arg;
    for (;;) {
        int sig;
        if (sigwait(&arm_set, &sig) != 0)
            continue;
        atomic_store(&g.armed, 1);
        ssize_t (*w)(int, const void *, size_t) =
            __atomic_load_n(&real_write, __ATOMIC_ACQUIRE);
        if (w && w(2, msg, sizeof msg - 1) < 0) {
            /* nowhere to say it */
        }
    }
    return NULL;
}

/* MAOS_SHIM_ARM=signal: the signal must be taken before the test can send
 * it, so the thread starts at load time, before main(). */
__attribute__((constructor)) static void shim_load(void)
{
    const char *a = getenv("MAOS_SHIM_ARM");
    if (!a || strcmp(a, "signal") != 0) {
        atomic_store(&g.armed, 1);
        return;
    }
    get_write(); /* resolved now: the thread must not race dlsym */
    sigemptyset(&arm_set);
    sigaddset(&arm_set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &arm_set, NULL);
    if (pthread_create(&arm_thread, NULL, arm_main, NULL) != 0)
        abort();
    have_arm_thread = 1;
}

/* Joined at exit (sigwait is a cancellation point): a thread still alive
 * then would make TSan sleep a second before exiting (atexit_sleep_ms). */
__attribute__((destructor)) static void shim_unload(void)
{
    if (!have_arm_thread)
        return;
    pthread_cancel(arm_thread);
    pthread_join(arm_thread, NULL);
    have_arm_thread = 0;
}

/* ---- classifying files --------------------------------------------------- */

static int starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int ends_with(const char *s, const char *p)
{
    size_t n = strlen(s), k = strlen(p);
    return n >= k && strcmp(s + n - k, p) == 0;
}

static enum cls classify_path(const char *path)
{
    if (strncmp(path, g.dir, g.dir_len) != 0)
        return CLS_OUTSIDE;
    if (path[g.dir_len] == 0)
        return CLS_DIR;
    if (path[g.dir_len] != '/')
        return CLS_OUTSIDE;
    const char *base = strrchr(path, '/') + 1;
    if (strcmp(base, "LOG") == 0 || starts_with(base, "LOG.old"))
        return CLS_OUTSIDE; /* RocksDB's info log: not the data */
    if (starts_with(base, "OPTIONS-"))
        return CLS_OPTIONS;
    if (starts_with(base, "MANIFEST-"))
        return CLS_MANIFEST;
    if (strcmp(base, "CURRENT") == 0 || strcmp(base, "IDENTITY") == 0 ||
        ends_with(base, ".dbtmp"))
        return CLS_CURRENT;
    if (ends_with(base, ".log"))
        return CLS_WAL;
    if (starts_with(base, "maos.journal"))
        return CLS_JOURNAL;
    if (ends_with(base, ".sst"))
        return CLS_SST;
    return CLS_OTHER;
}

static enum cls fd_path(int fd, char *buf, size_t cap)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, cap - 1);
    if (n <= 0)
        return CLS_OUTSIDE;
    buf[n] = 0;
    return classify_path(buf);
}

static enum cls fd_class(int fd)
{
    char path[4096];
    setup();
    if (!g.active || fd < 0)
        return CLS_OUTSIDE;
    if (fd < CACHE_FDS) {
        unsigned char c = atomic_load(&g.cache[fd]);
        if (c != CLS_UNKNOWN)
            return (enum cls)c;
    }
    enum cls c = fd_path(fd, path, sizeof path);
    if (fd < CACHE_FDS)
        atomic_store(&g.cache[fd], (unsigned char)c);
    return c;
}

static void forget_fd(int fd)
{
    if (fd >= 0 && fd < CACHE_FDS)
        atomic_store(&g.cache[fd], CLS_UNKNOWN);
}

/* The class of a rename path (relative to dirfd or the cwd). */
static enum cls path_class(int dirfd, const char *p)
{
    char buf[4096], dbuf[2048];
    setup();
    if (!g.active || !p)
        return CLS_OUTSIDE;
    if (p[0] == '/')
        return classify_path(p);
    if (dirfd == AT_FDCWD) {
        if (!getcwd(dbuf, sizeof dbuf))
            return CLS_OUTSIDE;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, dbuf, sizeof dbuf - 1);
        if (n <= 0)
            return CLS_OUTSIDE;
        dbuf[n] = 0;
    }
    if (snprintf(buf, sizeof buf, "%s/%s", dbuf, p) >= (int)sizeof buf)
        return CLS_OUTSIDE;
    return classify_path(buf);
}

/* ---- deciding ------------------------------------------------------------ */

/*
 * Called for every wrapped call on a file of class c.  Returns 0 to let
 * the call through, else the errno to fail it with (after logging).
 */
static void gate(enum op op, enum cls c, const char *what, int fd)
{
    if (g.gate_fd < 0 || atomic_load(&g.gate_open) ||
        (g.g_op != OP_ANY && g.g_op != op) ||
        (g.g_cls == CLS_ANY ? c == CLS_OTHER : g.g_cls != c))
        return;
    char line[256];
    snprintf(line, sizeof line, "faultshim: gate: waiting before %s fd %d\n",
             what, fd);
    say(line);
    char b;
    ssize_t r;
    while ((r = read(g.gate_fd, &b, 1)) < 0 && errno == EINTR) {
    }
    if (r != 1)
        atomic_store(&g.gate_open, 1);
}

static int decide(enum op op, enum cls c, const char *what, int fd,
                  size_t bytes)
{
    if (!g.active || c == CLS_OUTSIDE)
        return 0;
    gate(op, c, what, fd);
    int match = g.fault && atomic_load(&g.armed) &&
                (g.f_op == OP_ANY || g.f_op == op) &&
                (g.f_cls == CLS_ANY ? c != CLS_OTHER : g.f_cls == c);
    long k = match ? atomic_fetch_add(&g.matches, 1) + 1 : 0;
    long seen = atomic_fetch_add(&g.seen[c][op], 1) + 1;
    int inject = match && (k == g.f_n || (g.sticky && k > g.f_n));
    if (inject || (g.trace && c != CLS_OUTSIDE)) {
        char line[512], path[4096] = "";
        if (fd >= 0)
            fd_path(fd, path, sizeof path);
        else
            snprintf(path, sizeof path, "%s", what);
        char tear[48] = "";
        if (inject && op == OP_WRITE && g.tear >= 0)
            snprintf(tear, sizeof tear, ", torn at %ld", g.tear);
        snprintf(line, sizeof line,
                 "faultshim: %s%s: %s fd %d %s (%zu bytes%s) [%s:%s #%ld]\n",
                 inject ? "inject " : "trace",
                 inject ? (g.err == ENOSPC ? "ENOSPC" : "EIO") : "",
                 fd >= 0 ? what : op_names[op], fd, path, bytes, tear,
                 cls_names[c], op_names[op], seen);
        say(line);
    }
    return inject ? g.err : 0;
}

/* Write the first `tear` bytes of iov (a torn write) through the real
 * calls; offset < 0: at the file position. */
static void tear_iov(int fd, const struct iovec *iov, int n, off_t offset)
{
    size_t left = g.tear < 0 ? 0 : (size_t)g.tear;
    for (int i = 0; i < n && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        ssize_t w = offset < 0 ? get_write()(fd, iov[i].iov_base, k)
                               : get_pwrite()(fd, iov[i].iov_base, k, offset);
        if (w <= 0)
            return;
        if (offset >= 0)
            offset += w;
        left -= (size_t)w;
    }
}

static size_t iov_bytes(const struct iovec *iov, int n)
{
    size_t s = 0;
    for (int i = 0; i < n; i++)
        s += iov[i].iov_len;
    return s;
}

/* ---- the wrappers -------------------------------------------------------- */

#define FAIL_WRITE(e, fd, iov, n, off)                                         \
    do {                                                                       \
        tear_iov((fd), (iov), (n), (off));                                     \
        errno = (e);                                                           \
        return -1;                                                             \
    } while (0)

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (fd > 2) {
        int e = decide(OP_WRITE, fd_class(fd), "write", fd, n);
        if (e) {
            struct iovec v = {(void *)buf, n};
            FAIL_WRITE(e, fd, &v, 1, -1);
        }
    }
    return get_write()(fd, buf, n);
}

SHIM_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int e = decide(OP_WRITE, fd_class(fd), "pwrite", fd, n);
    if (e) {
        struct iovec v = {(void *)buf, n};
        FAIL_WRITE(e, fd, &v, 1, off);
    }
    return get_pwrite()(fd, buf, n, off);
}

SHIM_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    int e = decide(OP_WRITE, fd_class(fd), "pwrite64", fd, n);
    if (e) {
        struct iovec v = {(void *)buf, n};
        FAIL_WRITE(e, fd, &v, 1, off);
    }
    return get_pwrite64()(fd, buf, n, off);
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (fd > 2) {
        int e = decide(OP_WRITE, fd_class(fd), "writev", fd, iov_bytes(iov, n));
        if (e)
            FAIL_WRITE(e, fd, iov, n, -1);
    }
    return get_writev()(fd, iov, n);
}

SHIM_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    int e = decide(OP_WRITE, fd_class(fd), "pwritev", fd, iov_bytes(iov, n));
    if (e)
        FAIL_WRITE(e, fd, iov, n, off);
    return get_pwritev()(fd, iov, n, off);
}

SHIM_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
    int e = decide(OP_WRITE, fd_class(fd), "pwritev64", fd, iov_bytes(iov, n));
    if (e)
        FAIL_WRITE(e, fd, iov, n, off);
    return get_pwritev64()(fd, iov, n, off);
}

SHIM_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off,
                             int flags)
{
    int e = decide(OP_WRITE, fd_class(fd), "pwritev2", fd, iov_bytes(iov, n));
    if (e)
        FAIL_WRITE(e, fd, iov, n, off);
    return get_pwritev2()(fd, iov, n, off, flags);
}

SHIM_EXPORT int fsync(int fd)
{
    int e = decide(OP_SYNC, fd_class(fd), "fsync", fd, 0);
    if (e) {
        errno = e;
        return -1;
    }
    return get_fsync()(fd);
}

SHIM_EXPORT int fdatasync(int fd)
{
    int e = decide(OP_SYNC, fd_class(fd), "fdatasync", fd, 0);
    if (e) {
        errno = e;
        return -1;
    }
    return get_fdatasync()(fd);
}

SHIM_EXPORT int rename(const char *from, const char *to)
{
    int e = decide(OP_RENAME, path_class(AT_FDCWD, to), to, -1, 0);
    if (e) {
        errno = e;
        return -1;
    }
    return get_rename()(from, to);
}

SHIM_EXPORT int renameat(int fd1, const char *from, int fd2, const char *to)
{
    int e = decide(OP_RENAME, path_class(fd2, to), to, -1, 0);
    if (e) {
        errno = e;
        return -1;
    }
    return get_renameat()(fd1, from, fd2, to);
}

SHIM_EXPORT int renameat2(int fd1, const char *from, int fd2, const char *to,
                          unsigned flags)
{
    int e = decide(OP_RENAME, path_class(fd2, to), to, -1, 0);
    if (e) {
        errno = e;
        return -1;
    }
    return get_renameat2()(fd1, from, fd2, to, flags);
}

/* A descriptor number is reused after close: forget its class first, so a
 * new file on the same number is looked up again. */
SHIM_EXPORT int close(int fd)
{
    forget_fd(fd);
    return get_close()(fd);
}

SHIM_EXPORT int dup2(int from, int to)
{
    forget_fd(to);
    return get_dup2()(from, to);
}

SHIM_EXPORT int dup3(int from, int to, int flags)
{
    forget_fd(to);
    return get_dup3()(from, to, flags);
}
