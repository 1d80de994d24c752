/*
 * tests/integration/test_client_safety.c -- the client side of issue 15:
 * what libmaos-client and maosctl do when the thing on the socket is not
 * an honest maosd.
 *
 *  - Finding 3, local socket spoofing: a fake server run by another uid
 *    (the "attacker", uid 65534, a forked child that setuid()s) in a
 *    directory it owns, or behind a root-owned socket but with its own
 *    uid, or a symlinked or group/other-writable directory, or a foreign
 *    socket in a sticky directory: the library and maosctl refuse with
 *    MAOS_EUNTRUSTED_SERVER / exit 3 and a message naming the uid and the
 *    path, and the fake receives zero bytes (it counts them: a STAT
 *    connection from the test asks).  MAOS_SERVER_UID / server_uid make
 *    the same fake accepted.  The /tmp/maos-$UID default path is tried
 *    with a victim uid 65533 and the attacker 65534 (never /tmp/maos-0).
 *    These cases need root (CI runs as root) and are skipped otherwise.
 *  - Finding 6: fakes that accept and never read, or answer hello and then
 *    nothing: every maosctl command exits 3 with "timed out", with
 *    --timeout and with the defaults; the library gives MAOS_ETIMEOUT.
 *  - Finding 8: a fake answering {rid, ok: true} to everything: maosctl
 *    exits 3 with a protocol error naming the missing field for every
 *    command whose reply promises fields (and 0 for ping, which promises
 *    none); the library's append, txn and pipelined receive fail with
 *    MAOS_EPROTO and write nothing into the caller's result.
 *
 * Waits are for conditions (a child's exit, a line on a pipe) with
 * generous deadlines; nothing asserts on elapsed time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <msgpack.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */

#define ATTACKER_UID 65534 /* nobody */
#define VICTIM_UID 65533
/* Generous: a maosctl run against a fake that never answers takes the
 * default bounds (10 s to connect, 30 s per request) at most; this only
 * catches a hang. */
#define CTL_DEADLINE_MS 120000

extern char **environ;

/* ---- small helpers ---------------------------------------------------------- */

#define MT_HAS(hay, needle)                                                    \
    do {                                                                       \
        const char *mt_h_ = (hay), *mt_n_ = (needle);                          \
        if (!mt_h_ || !strstr(mt_h_, mt_n_))                                   \
            MT_FAIL("%s contains \"%s\": got \"%s\"", #hay, mt_n_,             \
                    mt_h_ ? mt_h_ : "(null)");                                 \
    } while (0)

static int is_root(void)
{
    return geteuid() == 0;
}

#define NEED_ROOT()                                                            \
    do {                                                                       \
        if (!is_root()) {                                                      \
            printf("SKIP: needs root (to run the attacker as uid %d)\n",       \
                   ATTACKER_UID);                                              \
            skip();                                                            \
        }                                                                      \
    } while (0)

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", mt_test_dir(), name);
}

static void mkdir_as(const char *dir, mode_t mode, uid_t uid)
{
    if (mkdir(dir, mode) != 0)
        MT_FAIL("mkdir %s: %s", dir, strerror(errno));
    if (chmod(dir, mode) != 0 || (uid && chown(dir, uid, uid) != 0))
        MT_FAIL("chmod/chown %s: %s", dir, strerror(errno));
}

/* Let other uids traverse the (root, 0700) test dir. */
static void open_test_dir(void)
{
    if (chmod(mt_test_dir(), 0711) != 0)
        MT_FAIL("chmod %s: %s", mt_test_dir(), strerror(errno));
}

static void drop_to(uid_t uid)
{
    if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0) {
        dprintf(2, "setuid %u: %s\n", (unsigned)uid, strerror(errno));
        _exit(126);
    }
}

/* ---- a fake server ---------------------------------------------------------- */

enum fake_mode {
    FAKE_MUTE,   /* accepts, never reads, never answers */
    FAKE_SILENT, /* reads and counts every byte, never answers; STAT */
    FAKE_HELLO,  /* answers hello, then nothing */
    FAKE_SERVE,  /* hello, ping, append answered in full; others refused */
    FAKE_BROKEN, /* hello in full, then {rid, ok: true} to everything */
    FAKE_DUP,    /* as SERVE, but answers every append twice */
};

typedef struct fake_opts {
    enum fake_mode mode;
    uid_t uid;          /* run as this uid (0: stay root) */
    int bind_as_root;   /* bind as root, setuid, then listen: a root-owned
                         * socket file whose server runs as uid */
    const char *mkdir;  /* a directory the fake creates (as uid) first */
} fake_opts;

typedef struct fake {
    pid_t pid;
    char path[300];
} fake;

#define FAKE_MAX_CONNS 64

struct fconn {
    int fd;             /* -1: closed, removed at the end of the turn */
    maos_reader rd;
    int hello_done;
};

static void fake_send(int fd, msgpack_sbuffer *sb)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)sb->size);
    if (send(fd, hdr, 4, MSG_NOSIGNAL) < 0 ||
        send(fd, sb->data, sb->size, MSG_NOSIGNAL) < 0) {
        /* the client went away: its close is seen by the loop */
    }
}

/* Answer one request frame as the mode says. */
static void fake_answer(enum fake_mode mode, struct fconn *c, const char *frame,
                        size_t len)
{
    maos_request req;
    char why[128];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc = maos_request_decode(frame, len, NULL, &req, why, sizeof why);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (rc) {
        maos_enc_error(&pk, req.rid, rc, why, 0, 0, -1);
    } else if (req.op == MAOS_OP_HELLO) {
        maos_enc_reply_hello(&pk, req.rid, MAOS_PROTOCOL_VERSION, "fake 0.0",
                             MAOS_DEFAULT_MAX_FRAME);
        c->hello_done = 1;
    } else if (mode == FAKE_HELLO) {
        goto out; /* never answers */
    } else if (mode == FAKE_BROKEN || req.op == MAOS_OP_PING) {
        maos_enc_reply_ok(&pk, req.rid);
    } else if (req.op == MAOS_OP_APPEND) {
        uint32_t n = req.appends[0].n_events;
        uint8_t *ids = calloc(n, 16);
        if (!ids)
            _exit(1);
        for (uint32_t i = 0; i < n; i++)
            ids[16 * i + 6] = 0x70, ids[16 * i + 15] = (uint8_t)(i + 1);
        maos_append_result res = {req.appends[0].stream, 0, 1, n, 0,
                                  {(const char *)ids, n * 16}};
        maos_enc_reply_append(&pk, req.rid, 0, &res, 1);
        if (mode == FAKE_DUP)
            fake_send(c->fd, &sb);
        free(ids);
    } else {
        maos_enc_error(&pk, req.rid, MAOS_EUNKNOWN_OP, "the fake only pings and appends",
                       0, 0, -1);
    }
    fake_send(c->fd, &sb);
out:
    maos_request_free(&req);
    msgpack_sbuffer_destroy(&sb);
}

/*
 * The fake's loop (a child process; ends by SIGKILL from the test, or after
 * ten minutes so that nothing can outlive a lost test).  Counters for
 * STAT: connections accepted (other than STAT ones) and bytes received on
 * them.  Each turn reads the connections accepted before it, in accept
 * order, then accepts the new ones: a client's connection and bytes, made
 * and sent before the test's STAT connection, are counted before STAT is
 * read and answered.  A MUTE fake never polls its connections (a closed
 * one would make poll spin).
 */
static void fake_run(int lfd, enum fake_mode mode)
{
    struct fconn conns[FAKE_MAX_CONNS];
    int n = 0;
    unsigned long long accepted = 0, stats = 0, bytes = 0;
    int64_t end = mt_now_us() + 600 * 1000000LL;
    while (mt_now_us() < end) {
        struct pollfd pfd[FAKE_MAX_CONNS + 1];
        int np = mode == FAKE_MUTE ? 0 : n;
        pfd[0] = (struct pollfd){lfd, POLLIN, 0};
        for (int i = 0; i < np; i++)
            pfd[i + 1] = (struct pollfd){conns[i].fd, POLLIN, 0};
        if (poll(pfd, (nfds_t)np + 1, 1000) <= 0)
            continue;
        for (int i = 0; i < np; i++) {
            struct fconn *c = &conns[i];
            char buf[65536];
            ssize_t k;
            if (!pfd[i + 1].revents)
                continue;
            k = recv(c->fd, buf, sizeof buf, 0);
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (k > 0 && !c->hello_done && c->rd.len == 0 && k >= 4 &&
                memcmp(buf, "STAT", 4) == 0) {
                char line[96];
                int l = snprintf(line, sizeof line, "accepted=%llu bytes=%llu\n",
                                 accepted - ++stats, bytes);
                if (send(c->fd, line, (size_t)l, MSG_NOSIGNAL) < 0) {
                }
                k = 0; /* done with it */
            }
            if (k <= 0) {
                close(c->fd);
                c->fd = -1;
                continue;
            }
            bytes += (unsigned long long)k;
            if (mode == FAKE_SILENT)
                continue;
            maos_slice fr;
            if (maos_reader_feed(&c->rd, buf, (size_t)k))
                _exit(1);
            while (maos_reader_next(&c->rd, &fr) == 1)
                fake_answer(mode, c, fr.ptr, fr.len);
        }
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (conns[i].fd < 0)
                maos_reader_free(&conns[i].rd);
            else
                conns[k++] = conns[i];
        }
        n = k;
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
            if (n == FAKE_MAX_CONNS) { /* keep the newest: drop the oldest */
                close(conns[0].fd);
                maos_reader_free(&conns[0].rd);
                memmove(&conns[0], &conns[1], (size_t)(n - 1) * sizeof conns[0]);
                n--;
            }
            memset(&conns[n], 0, sizeof conns[n]);
            conns[n].fd = fd;
            maos_reader_init(&conns[n].rd, MAOS_DEFAULT_MAX_FRAME);
            n++;
            accepted++;
        }
    }
    _exit(0);
}

/* Start a fake on path; returns once it listens. */
static void fake_start(fake *f, const char *path, const fake_opts *o)
{
    int ready[2];
    if (pipe(ready) != 0)
        MT_FAIL("pipe: %s", strerror(errno));
    snprintf(f->path, sizeof f->path, "%s", path);
    f->pid = mt_fork();
    if (f->pid < 0)
        MT_FAIL("fork: %s", strerror(errno));
    if (f->pid == 0) {
        close(ready[0]);
        signal(SIGPIPE, SIG_IGN);
        if (o->uid && !o->bind_as_root)
            drop_to(o->uid);
        if (o->mkdir && mkdir(o->mkdir, 0755) != 0) {
            dprintf(ready[1], "mkdir %s: %s", o->mkdir, strerror(errno));
            _exit(1);
        }
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            dprintf(ready[1], "bind %s: %s", path, strerror(errno));
            _exit(1);
        }
        /* open to every uid, as an attacker would make it (the victim
         * needs write permission on a socket to connect to it) */
        if (chmod(path, 0777) != 0) {
            dprintf(ready[1], "chmod %s: %s", path, strerror(errno));
            _exit(1);
        }
        if (o->uid && o->bind_as_root)
            drop_to(o->uid);
        if (listen(lfd, 64) != 0) {
            dprintf(ready[1], "listen: %s", strerror(errno));
            _exit(1);
        }
        if (write(ready[1], "R", 1) != 1)
            _exit(1);
        close(ready[1]);
        fake_run(lfd, o->mode);
    }
    close(ready[1]);
    char msg[256] = "";
    struct pollfd p = {ready[0], POLLIN, 0};
    ssize_t k = 0;
    if (poll(&p, 1, 30000) == 1)
        k = read(ready[0], msg, sizeof msg - 1);
    close(ready[0]);
    if (k != 1 || msg[0] != 'R') {
        msg[k > 0 ? k : 0] = '\0';
        MT_FAIL("fake server on %s did not start: %s", path, msg);
    }
}

static void fake_stop(fake *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        mt_wait(f->pid, 10000);
        f->pid = 0;
    }
}

/* Ask a FAKE_SILENT fake how many clients sent it bytes and how many. */
static void fake_stat(const fake *f, unsigned long long *accepted,
                      unsigned long long *bytes)
{
    int fd = mt_connect(f->path);
    if (fd < 0)
        MT_FAIL("connect to the fake %s: %s", f->path, strerror(errno));
    if (mt_send_all(fd, "STAT", 4) != 0)
        MT_FAIL("send STAT: %s", strerror(errno));
    char line[128] = "";
    size_t got = 0;
    int64_t end = mt_now_us() + 30 * 1000000LL;
    while (got < sizeof line - 1 && mt_now_us() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        ssize_t k = recv(fd, line + got, sizeof line - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    line[got] = '\0';
    if (sscanf(line, "accepted=%llu bytes=%llu", accepted, bytes) != 2)
        MT_FAIL("fake STAT answered \"%s\"", line);
}

/* A SILENT fake got `conns` connections and not one byte on them. */
static void assert_fake_got_nothing(const fake *f, unsigned long long conns)
{
    unsigned long long accepted = 99, bytes = 99;
    fake_stat(f, &accepted, &bytes);
    MT_EQ_U64(bytes, 0);
    MT_EQ_U64(accepted, conns);
}

/* ---- processes (maosctl as any uid, in parallel) ---------------------------- */

typedef struct proc {
    pid_t pid;
    int out, err;
} proc;

/* environ without the variables that choose a socket or a server uid, plus
 * extra (NULL-terminated, may be NULL).  Static storage: one at a time. */
static char **env_with(const char *const *extra)
{
    static char *env[512];
    size_t n = 0;
    for (char **e = environ; *e && n < 500; e++) {
        if (!strncmp(*e, "MAOS_SOCKET=", 12) || !strncmp(*e, "XDG_RUNTIME_DIR=", 16) ||
            !strncmp(*e, "MAOS_SERVER_UID=", 16))
            continue;
        env[n++] = *e;
    }
    for (size_t i = 0; extra && extra[i] && n < 510; i++)
        env[n++] = (char *)extra[i];
    env[n] = NULL;
    return env;
}

/* Start maosctl ARGS (NULL-terminated) as uid (0: as the test), with the
 * environment of env_with(extra). */
static void ctl_start(proc *p, uid_t uid, const char *const *extra, const char *const *args)
{
    const char *argv[32];
    int k = 0;
    argv[k++] = mt_maosctl_bin();
    for (int i = 0; args[i] && k < 31; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    char **env = env_with(extra);
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0)
        MT_FAIL("pipe: %s", strerror(errno));
    p->pid = mt_fork();
    if (p->pid < 0)
        MT_FAIL("fork: %s", strerror(errno));
    if (p->pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        if (uid)
            drop_to(uid);
        signal(SIGPIPE, SIG_DFL);
        execve(argv[0], (char *const *)argv, env);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    p->out = po[0];
    p->err = pe[0];
}

static void slurp(int *fd, char **buf, size_t *len)
{
    char tmp[4096];
    ssize_t k = read(*fd, tmp, sizeof tmp);
    if (k > 0) {
        char *nb = realloc(*buf, *len + (size_t)k + 1);
        if (!nb)
            abort();
        memcpy(nb + *len, tmp, (size_t)k);
        *len += (size_t)k;
        nb[*len] = '\0';
        *buf = nb;
    } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(*fd);
        *fd = -1;
    }
}

/* Collect the outputs and the exit status (1000: killed at the deadline). */
static int ctl_finish(proc *p, mt_run *r)
{
    memset(r, 0, sizeof *r);
    r->out = calloc(1, 1);
    r->err = calloc(1, 1);
    int64_t end = mt_now_us() + CTL_DEADLINE_MS * 1000LL;
    while ((p->out >= 0 || p->err >= 0) && mt_now_us() < end) {
        struct pollfd fds[2];
        int nf = 0, io = -1, ie = -1;
        if (p->out >= 0)
            fds[io = nf++] = (struct pollfd){p->out, POLLIN, 0};
        if (p->err >= 0)
            fds[ie = nf++] = (struct pollfd){p->err, POLLIN, 0};
        if (poll(fds, (nfds_t)nf, 1000) <= 0)
            continue;
        if (io >= 0 && fds[io].revents)
            slurp(&p->out, &r->out, &r->out_len);
        if (ie >= 0 && fds[ie].revents)
            slurp(&p->err, &r->err, &r->err_len);
    }
    if (p->out >= 0)
        close(p->out);
    if (p->err >= 0)
        close(p->err);
    int64_t left = (end - mt_now_us()) / 1000;
    r->status = mt_wait(p->pid, left > 1000 ? (int)left : 1000);
    return r->status;
}

/* Run one maosctl to its end. */
static int ctl(mt_run *r, uid_t uid, const char *const *extra, const char *const *args)
{
    proc p;
    ctl_start(&p, uid, extra, args);
    return ctl_finish(&p, r);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_ctl(mt_run *r, int status, const char *what, const char *err_has)
{
    if (r->status != status)
        MT_FAIL("%s: exit %d, want %d; stderr: %s; stdout: %s", what, r->status, status,
                r->err, r->out);
    if (err_has && !strstr(r->err, err_has))
        MT_FAIL("%s: stderr lacks \"%s\": %s", what, err_has, r->err);
}

/* ---- library helpers ------------------------------------------------------- */

static maos_ctx *connect_opts(const maos_options *o)
{
    maos_ctx *c = maos_connect_with(o);
    if (!c)
        MT_FAIL("maos_connect_with returned NULL");
    return c;
}

static void expect_refused(maos_ctx *c, const char *has1, const char *has2)
{
    MT_EQ_ERR(c->err, MAOS_EUNTRUSTED_SERVER);
    MT_TRUE(maos_is_dead(c));
    MT_HAS(c->errstr, has1);
    if (has2)
        MT_HAS(c->errstr, has2);
}

/* ---- finding 3: whom the client talks to ------------------------------------- */

/* The attacker's own directory with their fake server in it. */
static void test_refuses_foreign_dir(void **state)
{
    (void)state;
    NEED_ROOT();
    open_test_dir();
    char dir[300], sock[340];
    path_in(dir, sizeof dir, "evil");
    mkdir_as(dir, 0755, ATTACKER_UID); /* theirs, as if they had made it */
    snprintf(sock, sizeof sock, "%s/maosd.sock", dir);
    fake f;
    fake_start(&f, sock, &(fake_opts){FAKE_SILENT, ATTACKER_UID, 0, NULL});

    maos_ctx *c = connect_opts(&(maos_options){.path = sock});
    expect_refused(c, "uid 65534", dir);
    MT_HAS(c->errstr, sock);
    maos_free(c);

    mt_run r;
    ctl(&r, 0, NULL, ARGS("--socket", sock, "ping"));
    expect_ctl(&r, 3, "ping to the attacker's dir", "65534");
    MT_HAS(r.err, sock);
    mt_run_free(&r);
    ctl(&r, 0, NULL,
        ARGS("--socket", sock, "append", "secrets", "key", "{\"api_key\":\"s3cr3t\"}"));
    expect_ctl(&r, 3, "append to the attacker's dir", "refusing");
    MT_EQ_STR(r.out, "");
    mt_run_free(&r);
    assert_fake_got_nothing(&f, 0);

    /* the caller names the attacker's uid as the server's: accepted */
    fake_stop(&f);
    unlink(sock);
    char sock2[340];
    snprintf(sock2, sizeof sock2, "%s/serve.sock", dir);
    fake_start(&f, sock2, &(fake_opts){FAKE_SERVE, ATTACKER_UID, 0, NULL});
    ctl(&r, 0, ARGS("MAOS_SERVER_UID=65534"), ARGS("--socket", sock2, "ping"));
    expect_ctl(&r, 0, "ping with MAOS_SERVER_UID=65534", NULL);
    MT_HAS(r.out, "pong from fake 0.0");
    mt_run_free(&r);
    fake_stop(&f);
}

/* A root-owned socket in a root-owned directory, but the server behind it
 * runs as the attacker: only SO_PEERCRED can tell. */
static void test_refuses_foreign_server_uid(void **state)
{
    (void)state;
    NEED_ROOT();
    open_test_dir();
    char dir[300], sock[340];
    path_in(dir, sizeof dir, "shared");
    mkdir_as(dir, 0755, 0);
    snprintf(sock, sizeof sock, "%s/maosd.sock", dir);
    fake f;
    fake_start(&f, sock, &(fake_opts){FAKE_SILENT, ATTACKER_UID, 1, NULL});
    struct stat st;
    MT_EQ_INT(stat(sock, &st), 0);
    MT_EQ_INT(st.st_uid, 0); /* the socket file is root's: the dir check passes */

    maos_ctx *c = connect_opts(&(maos_options){.path = sock});
    expect_refused(c, "server runs as uid 65534", sock);
    maos_free(c);
    /* the reconnect path checks the same: a context that reconnects gives
     * up at once (never retried) */
    c = connect_opts(&(maos_options){.path = sock, .reconnect = 1});
    expect_refused(c, "uid 65534", NULL);
    maos_free(c);

    mt_run r;
    ctl(&r, 0, NULL, ARGS("--socket", sock, "ping"));
    expect_ctl(&r, 3, "ping to a server run by 65534", "uid 65534");
    MT_HAS(r.err, sock);
    mt_run_free(&r);
    ctl(&r, 0, NULL, ARGS("--socket", sock, "append", "secrets", "key", "{\"k\":1}"));
    expect_ctl(&r, 3, "append to a server run by 65534", "uid 65534");
    MT_EQ_STR(r.out, "");
    mt_run_free(&r);
    ctl(&r, 0, NULL, ARGS("--socket", sock, "tail", "--from", "start", "--timeout", "5"));
    expect_ctl(&r, 3, "tail from a server run by 65534", "uid 65534");
    mt_run_free(&r);
    /* five clients connected (two contexts, three maosctl); none sent a
     * byte */
    assert_fake_got_nothing(&f, 5);
    fake_stop(&f);

    /* the same server, trusted by configuration, is accepted */
    char sock2[340];
    snprintf(sock2, sizeof sock2, "%s/serve.sock", dir);
    fake_start(&f, sock2, &(fake_opts){FAKE_SERVE, ATTACKER_UID, 1, NULL});
    c = connect_opts(&(maos_options){.path = sock2, .server_uid = ATTACKER_UID});
    MT_EQ_ERR(c->err, 0);
    MT_EQ_ERR(maos_ping(c), 0);
    maos_append_info info = {0};
    maos_event_spec ev = {.type = "t"};
    MT_EQ_ERR(maos_append(c, "s-1", MAOS_EXPECT_ANY, &ev, 1, &info), 0);
    MT_EQ_U64(info.count, 1);
    maos_free(c);
    ctl(&r, 0, ARGS("MAOS_SERVER_UID=65534"),
        ARGS("--socket", sock2, "append", "s-1", "t", "{}"));
    expect_ctl(&r, 0, "append with MAOS_SERVER_UID=65534", NULL);
    MT_HAS(r.out, "s-1@0");
    mt_run_free(&r);
    /* a bad MAOS_SERVER_UID is an error, not "no extra uid" */
    ctl(&r, 0, ARGS("MAOS_SERVER_UID=nobody"), ARGS("--socket", sock2, "ping"));
    expect_ctl(&r, 3, "ping with MAOS_SERVER_UID=nobody", "MAOS_SERVER_UID");
    mt_run_free(&r);
    fake_stop(&f);
}

/* Group- or other-writable directory of a real daemon: refused until the
 * mode is fixed.  Needs no other uid. */
static void test_refuses_writable_dir(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    static const mode_t bad[] = {0777, 0770, 0702};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        MT_EQ_INT(chmod(d->dir, bad[i]), 0);
        maos_ctx *c = connect_opts(&(maos_options){.path = d->sock});
        expect_refused(c, "writable by group or others", d->dir);
        maos_free(c);
        mt_run r;
        ctl(&r, 0, NULL, ARGS("--socket", d->sock, "ping"));
        expect_ctl(&r, 3, "ping through a writable dir", "writable by group or others");
        mt_run_free(&r);
    }
    MT_EQ_INT(chmod(d->dir, 0700), 0);
    maos_ctx *c = connect_opts(&(maos_options){.path = d->sock});
    MT_EQ_ERR(c->err, 0);
    MT_EQ_ERR(maos_ping(c), 0);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* A symlink to a perfectly good directory is refused: the client cannot
 * tell whose link it is, only where it points. */
static void test_refuses_symlinked_dir(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    char link[300], sock[340];
    path_in(link, sizeof link, "link");
    MT_EQ_INT(symlink(d->dir, link), 0);
    snprintf(sock, sizeof sock, "%s/s.sock", link);
    maos_ctx *c = connect_opts(&(maos_options){.path = sock});
    expect_refused(c, "symbolic link", link);
    maos_free(c);
    mt_run r;
    ctl(&r, 0, NULL, ARGS("--socket", sock, "ping"));
    expect_ctl(&r, 3, "ping through a symlinked dir", "symbolic link");
    mt_run_free(&r);
    ctl(&r, 0, NULL, ARGS("--socket", d->sock, "ping"));
    expect_ctl(&r, 0, "ping through the real dir", NULL);
    mt_run_free(&r);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* A sticky world-writable directory (as /tmp): the caller's (root's)
 * socket there is accepted, the attacker's is not. */
static void test_sticky_dir(void **state)
{
    (void)state;
    NEED_ROOT();
    open_test_dir();
    char dir[300], good[340], evil[340];
    path_in(dir, sizeof dir, "sticky");
    mkdir_as(dir, 01777, 0);
    snprintf(good, sizeof good, "%s/good.sock", dir);
    snprintf(evil, sizeof evil, "%s/evil.sock", dir);
    fake g, e;
    fake_start(&g, good, &(fake_opts){FAKE_SERVE, 0, 0, NULL});
    fake_start(&e, evil, &(fake_opts){FAKE_SILENT, ATTACKER_UID, 0, NULL});
    mt_run r;
    ctl(&r, 0, NULL, ARGS("--socket", good, "ping"));
    expect_ctl(&r, 0, "ping to root's socket in a sticky dir", NULL);
    mt_run_free(&r);
    maos_ctx *c = connect_opts(&(maos_options){.path = evil});
    expect_refused(c, "socket belongs to uid 65534", dir);
    maos_free(c);
    ctl(&r, 0, NULL, ARGS("--socket", evil, "append", "s-1", "t", "{}"));
    expect_ctl(&r, 3, "append to 65534's socket in a sticky dir", "uid 65534");
    mt_run_free(&r);
    assert_fake_got_nothing(&e, 0);
    /* a symlink in place of the socket is refused too */
    char ln[340];
    snprintf(ln, sizeof ln, "%s/link.sock", dir);
    MT_EQ_INT(symlink(good, ln), 0);
    c = connect_opts(&(maos_options){.path = ln});
    expect_refused(c, "not a socket", ln);
    maos_free(c);
    fake_stop(&g);
    fake_stop(&e);
}

/* Reconnects run the same checks: a context connected to the real daemon,
 * with reconnect on, meets a directory turned writable by others, then (as
 * root) a server run by another uid where its daemon was.  Either is
 * refused at once and kills the context; nothing is retried or sent. */
static void test_reconnect_checks(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_options o = {.path = d->sock, .reconnect = 1, .reconnect_max_ms = 60000};
    maos_ctx *c = connect_opts(&o);
    MT_EQ_ERR(c->err, 0);
    MT_EQ_ERR(maos_ping(c), 0);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    MT_EQ_INT(chmod(d->dir, 0777), 0);
    /* the call that meets the lost connection reconnects (a request not
     * written yet is sent on the new connection) or, when its bytes went
     * out before the loss was seen, fails with it and the next call
     * reconnects: either way the reconnect is refused for good */
    int rc = maos_checkpoint_save(c, "cp", 1);
    if (rc == MAOS_ECLOSED || rc == MAOS_EIO) {
        MT_TRUE(!maos_is_dead(c));
        rc = maos_ping(c);
    }
    MT_EQ_ERR(rc, MAOS_EUNTRUSTED_SERVER);
    MT_TRUE(maos_is_dead(c));
    MT_HAS(c->errstr, "writable by group or others");
    maos_free(c);
    MT_EQ_INT(chmod(d->dir, 0700), 0);
    if (!is_root())
        return;

    mt_daemon_up(d);
    c = connect_opts(&o);
    MT_EQ_ERR(maos_ping(c), 0);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    unlink(d->sock);
    fake f;
    fake_start(&f, d->sock, &(fake_opts){FAKE_SILENT, ATTACKER_UID, 1, NULL});
    rc = maos_checkpoint_save(c, "cp", 1);
    if (rc == MAOS_ECLOSED || rc == MAOS_EIO)
        rc = maos_ping(c);
    MT_EQ_ERR(rc, MAOS_EUNTRUSTED_SERVER);
    MT_TRUE(maos_is_dead(c));
    MT_HAS(c->errstr, "server runs as uid 65534");
    maos_free(c);
    assert_fake_got_nothing(&f, 1);
    fake_stop(&f);
}

/* ---- the /tmp/maos-$UID default path ------------------------------------------ */

#define TMP_VICTIM_DIR "/tmp/maos-65533"
#define TMP_MARK "/tmp/maos-65533.test-client-safety"

static void rm_tmp_dir(void)
{
    DIR *dh = opendir(TMP_VICTIM_DIR);
    if (dh) {
        struct dirent *e;
        while ((e = readdir(dh)) != NULL) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.'))
                continue;
            char p[400];
            snprintf(p, sizeof p, "%s/%s", TMP_VICTIM_DIR, e->d_name);
            unlink(p);
        }
        closedir(dh);
        rmdir(TMP_VICTIM_DIR);
    }
    unlink(TMP_MARK);
}

/* Remove what this test made (the mark says it was this test). */
static int tmp_teardown(void **state)
{
    (void)state;
    if (access(TMP_MARK, F_OK) == 0)
        rm_tmp_dir();
    return 0;
}

static void test_default_tmp_path(void **state)
{
    (void)state;
    NEED_ROOT();
    struct stat st;
    if (lstat(TMP_VICTIM_DIR, &st) == 0) {
        if (access(TMP_MARK, F_OK) != 0) {
            printf("SKIP: %s exists and is not this test's: not touching it\n",
                   TMP_VICTIM_DIR);
            skip();
        }
        rm_tmp_dir(); /* left by an earlier run of this test */
    }
    mt_write_file(TMP_MARK, "", 0);

    /* the attacker squats the victim's fallback directory */
    fake f;
    fake_start(&f, TMP_VICTIM_DIR "/maosd.sock",
               &(fake_opts){FAKE_SILENT, ATTACKER_UID, 0, TMP_VICTIM_DIR});
    MT_EQ_INT(lstat(TMP_VICTIM_DIR, &st), 0);
    MT_EQ_INT(st.st_uid, ATTACKER_UID);

    /* the victim, without MAOS_SOCKET or XDG_RUNTIME_DIR */
    mt_run r;
    ctl(&r, VICTIM_UID, NULL, ARGS("ping"));
    expect_ctl(&r, 3, "victim's ping", TMP_VICTIM_DIR "/maosd.sock");
    MT_HAS(r.err, "uid 65534");
    mt_run_free(&r);
    ctl(&r, VICTIM_UID, NULL,
        ARGS("append", "secrets", "key", "{\"api_key\":\"s3cr3t\"}"));
    expect_ctl(&r, 3, "victim's append", "refusing");
    MT_EQ_STR(r.out, "");
    mt_run_free(&r);
    assert_fake_got_nothing(&f, 0);
    fake_stop(&f);

    /* a symlink there, to the attacker's own directory, is refused too */
    rm_tmp_dir();
    mt_write_file(TMP_MARK, "", 0);
    char adir[300];
    open_test_dir();
    path_in(adir, sizeof adir, "attacker");
    mkdir_as(adir, 0755, ATTACKER_UID);
    char asock[340];
    snprintf(asock, sizeof asock, "%s/maosd.sock", adir);
    fake_start(&f, asock, &(fake_opts){FAKE_SILENT, ATTACKER_UID, 0, NULL});
    MT_EQ_INT(symlink(adir, TMP_VICTIM_DIR), 0);
    ctl(&r, VICTIM_UID, NULL, ARGS("append", "secrets", "key", "{\"k\":1}"));
    expect_ctl(&r, 3, "victim's append through a symlink", "symbolic link");
    mt_run_free(&r);
    assert_fake_got_nothing(&f, 0);
    fake_stop(&f);
    unlink(TMP_VICTIM_DIR);

    /* the victim's own directory and server: accepted */
    fake_start(&f, TMP_VICTIM_DIR "/maosd.sock",
               &(fake_opts){FAKE_SERVE, VICTIM_UID, 0, TMP_VICTIM_DIR});
    ctl(&r, VICTIM_UID, NULL, ARGS("append", "notes", "t", "{}"));
    expect_ctl(&r, 0, "victim's append to its own server", NULL);
    MT_HAS(r.out, "notes@0");
    mt_run_free(&r);
    fake_stop(&f);
    rm_tmp_dir();
}

/* ---- finding 6: servers that never answer --------------------------------------- */

static const char *const *const every_command[] = {
    ARGS("ping"),
    ARGS("append", "s-1", "t", "{}"),
    ARGS("read", "s-1"),
    ARGS("read-all"),
    ARGS("tail", "--from", "start"),
    ARGS("stats"),
    ARGS("verify"),
    ARGS("streams"),
    ARGS("publish", "ch", "1"),
    ARGS("listen", "ch.*"),
    ARGS("checkpoint", "n"),
    ARGS("checkpoint", "n", "5"),
};
#define N_COMMANDS (sizeof every_command / sizeof every_command[0])

static void test_timeouts_maosctl(void **state)
{
    (void)state;
    char mdir[300], hdir[300], mute[340], hello[340];
    path_in(mdir, sizeof mdir, "mute");
    path_in(hdir, sizeof hdir, "hello");
    mkdir_as(mdir, 0700, 0);
    mkdir_as(hdir, 0700, 0);
    snprintf(mute, sizeof mute, "%s/s.sock", mdir);
    snprintf(hello, sizeof hello, "%s/s.sock", hdir);
    fake fm, fh;
    fake_start(&fm, mute, &(fake_opts){FAKE_MUTE, 0, 0, NULL});
    fake_start(&fh, hello, &(fake_opts){FAKE_HELLO, 0, 0, NULL});

    /* every command against both, with --timeout 1, all at once; plus two
     * without --timeout: the defaults end them too */
    enum { N = 2 * N_COMMANDS + 2 };
    proc p[N];
    char what[N][96];
    int k = 0;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < N_COMMANDS; i++) {
            const char *args[16];
            int a = 0;
            args[a++] = "--socket";
            args[a++] = s ? hello : mute;
            args[a++] = "--timeout";
            args[a++] = "1";
            for (int j = 0; every_command[i][j]; j++)
                args[a++] = every_command[i][j];
            args[a] = NULL;
            snprintf(what[k], sizeof what[k], "%s against the %s server", every_command[i][0],
                     s ? "hello-only" : "mute");
            ctl_start(&p[k++], 0, NULL, args);
        }
    }
    snprintf(what[k], sizeof what[k], "ping against the mute server, default bound");
    ctl_start(&p[k++], 0, NULL, ARGS("--socket", mute, "ping"));
    snprintf(what[k], sizeof what[k], "append against the hello-only server, default bound");
    ctl_start(&p[k++], 0, NULL, ARGS("--socket", hello, "append", "s-1", "t", "{}"));

    for (int i = 0; i < N; i++) {
        mt_run r;
        ctl_finish(&p[i], &r);
        expect_ctl(&r, 3, what[i], "timed out");
        MT_HAS(r.err, i < (int)N_COMMANDS || i == N - 2 ? mute : hello);
        MT_HAS(r.err, i == N - 2 ? "(connect timeout)"
                      : i == N - 1 ? "(request timeout)" : "--timeout");
        MT_EQ_STR(r.out, "");
        mt_run_free(&r);
    }
    fake_stop(&fm);
    fake_stop(&fh);
}

static void test_timeouts_library(void **state)
{
    (void)state;
    char mdir[300], hdir[300], mute[340], hello[340];
    path_in(mdir, sizeof mdir, "mute");
    path_in(hdir, sizeof hdir, "hello");
    mkdir_as(mdir, 0700, 0);
    mkdir_as(hdir, 0700, 0);
    snprintf(mute, sizeof mute, "%s/s.sock", mdir);
    snprintf(hello, sizeof hello, "%s/s.sock", hdir);
    fake fm, fh;
    fake_start(&fm, mute, &(fake_opts){FAKE_MUTE, 0, 0, NULL});
    fake_start(&fh, hello, &(fake_opts){FAKE_HELLO, 0, 0, NULL});

    /* before hello: the connect bound */
    maos_ctx *c = connect_opts(&(maos_options){.path = mute, .connect_timeout_ms = 300});
    MT_EQ_ERR(c->err, MAOS_ETIMEOUT);
    MT_TRUE(maos_is_dead(c));
    MT_HAS(c->errstr, "no answer to hello");
    MT_HAS(c->errstr, mute);
    maos_free(c);
    /* the default connect bound, without any option */
    c = maos_connect(mute);
    MT_EQ_ERR(c->err, MAOS_ETIMEOUT);
    MT_HAS(c->errstr, "within 10000 ms");
    maos_free(c);

    /* after hello: the request bound, for every kind of call */
    c = connect_opts(&(maos_options){.path = hello, .timeout_ms = 300});
    MT_EQ_ERR(c->err, 0);
    MT_EQ_ERR(maos_ping(c), MAOS_ETIMEOUT);
    MT_TRUE(maos_is_dead(c));
    MT_HAS(c->errstr, "(request timeout)");
    MT_EQ_ERR(maos_ping(c), MAOS_ETIMEOUT); /* sticky */
    maos_free(c);

    c = connect_opts(&(maos_options){.path = hello, .timeout_ms = 300});
    maos_event_spec ev = {.type = "t"};
    MT_EQ_ERR(maos_append_send(c, "s-1", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    maos_result *m = NULL;
    MT_EQ_ERR(maos_reply_recv(c, &m), MAOS_ETIMEOUT);
    MT_TRUE(m == NULL);
    maos_free(c);

    c = connect_opts(&(maos_options){.path = hello, .timeout_ms = 300});
    maos_page *pg = NULL;
    MT_EQ_ERR(maos_read_all(c, NULL, MAOS_FROM_START, 0, 10, &pg), MAOS_ETIMEOUT);
    MT_TRUE(pg == NULL);
    maos_free(c);

    /* maos_set_timeout changes the bound of a live context */
    c = maos_connect(hello);
    MT_EQ_ERR(c->err, 0);
    MT_EQ_ERR(maos_set_timeout(c, 200), 0);
    MT_EQ_ERR(maos_set_timeout(c, -2), MAOS_EINVALID_ARG);
    uint64_t sub = 0;
    MT_EQ_ERR(maos_subscribe(c, NULL, MAOS_FROM_LIVE, 0, &sub), MAOS_ETIMEOUT);
    MT_EQ_U64(sub, 0);
    maos_free(c);
    fake_stop(&fm);
    fake_stop(&fh);
}

/* ---- finding 8: replies without the promised fields ------------------------------ */

static void test_incomplete_replies(void **state)
{
    (void)state;
    char dir[300], sock[340];
    path_in(dir, sizeof dir, "broken");
    mkdir_as(dir, 0700, 0);
    snprintf(sock, sizeof sock, "%s/s.sock", dir);
    fake f;
    fake_start(&f, sock, &(fake_opts){FAKE_BROKEN, 0, 0, NULL});

    /* the library: an append reply {rid, ok: true} is not a success */
    maos_ctx *c = maos_connect(sock);
    MT_EQ_ERR(c->err, 0);
    MT_EQ_ERR(maos_ping(c), 0); /* a ping promises nothing more */
    maos_event_spec ev = {.type = "t"};
    maos_append_info info = {.version = 77, .position = 77, .count = 77};
    MT_EQ_ERR(maos_append(c, "s-1", MAOS_EXPECT_ANY, &ev, 1, &info), MAOS_EPROTO);
    MT_HAS(c->errstr, "append reply without");
    MT_TRUE(maos_is_dead(c));
    MT_EQ_U64(info.version, 77); /* out-parameter untouched */
    MT_EQ_U64(info.count, 77);
    maos_free(c);

    c = maos_connect(sock);
    maos_txn_append ta = {"s-1", MAOS_EXPECT_ANY, &ev, 1, NULL};
    MT_EQ_ERR(maos_txn(c, &ta, 1, &info), MAOS_EPROTO);
    MT_HAS(c->errstr, "txn reply without results");
    maos_free(c);

    /* pipelined: the library knows rid 2 was an append */
    c = maos_connect(sock);
    MT_EQ_ERR(maos_append_send(c, "s-1", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    maos_result *m = NULL;
    MT_EQ_ERR(maos_reply_recv(c, &m), MAOS_EPROTO);
    MT_TRUE(m == NULL);
    MT_HAS(c->errstr, "append reply without");
    maos_free(c);

    c = maos_connect(sock);
    uint64_t pos = 77;
    MT_EQ_ERR(maos_checkpoint_get(c, "n", &pos), MAOS_EPROTO);
    MT_HAS(c->errstr, "checkpoint_get reply without position");
    MT_EQ_U64(pos, 77);
    maos_free(c);

    /* maosctl: every command whose reply promises fields exits 3 with a
     * clear protocol error; the ones that promise none succeed */
    const struct {
        const char *const *args;
        const char *missing;
    } cases[] = {
        {ARGS("append", "s-1", "t", "{}"), "append reply without stream"},
        {ARGS("read", "s-1"), "read reply without events"},
        {ARGS("read-all"), "read_all reply without events"},
        {ARGS("verify"), "stats reply without server"}, /* it reads the head first */
        {ARGS("streams"), "streams reply without streams"},
        {ARGS("stats"), "stats reply without server"},
        {ARGS("tail"), "subscribe reply without sub"},
        {ARGS("listen", "x.*"), "subscribe_channel reply without sub"},
        {ARGS("publish", "ch", "1"), "publish reply without receivers"},
        {ARGS("checkpoint", "n"), "checkpoint_get reply without position"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16];
        int a = 0;
        args[a++] = "--socket";
        args[a++] = sock;
        for (int j = 0; cases[i].args[j]; j++)
            args[a++] = cases[i].args[j];
        args[a] = NULL;
        mt_run r;
        ctl(&r, 0, NULL, args);
        expect_ctl(&r, 3, cases[i].args[0], cases[i].missing);
        MT_HAS(r.err, "PROTO");
        MT_EQ_STR(r.out, "");
        mt_run_free(&r);
    }
    mt_run r;
    ctl(&r, 0, NULL, ARGS("--socket", sock, "ping"));
    expect_ctl(&r, 0, "ping", NULL);
    mt_run_free(&r);
    ctl(&r, 0, NULL, ARGS("--socket", sock, "checkpoint", "n", "5"));
    expect_ctl(&r, 0, "checkpoint save", NULL);
    mt_run_free(&r);
    fake_stop(&f);
}

/* Replies are matched to requests really pending: a second reply to the
 * same append is a protocol error, not a success for the next request. */
static void test_duplicate_reply(void **state)
{
    (void)state;
    char dir[300], sock[340];
    path_in(dir, sizeof dir, "dup");
    mkdir_as(dir, 0700, 0);
    snprintf(sock, sizeof sock, "%s/s.sock", dir);
    fake f;
    fake_start(&f, sock, &(fake_opts){FAKE_DUP, 0, 0, NULL});
    maos_ctx *c = maos_connect(sock);
    MT_EQ_ERR(c->err, 0);
    maos_event_spec ev = {.type = "t"};
    uint64_t r1 = 0, r2 = 0;
    MT_EQ_ERR(maos_append_send(c, "s-1", MAOS_EXPECT_ANY, &ev, 1, &r1), 0);
    MT_EQ_ERR(maos_append_send(c, "s-2", MAOS_EXPECT_ANY, &ev, 1, &r2), 0);
    maos_result *m = NULL;
    MT_EQ_ERR(maos_reply_recv(c, &m), 0);
    MT_TRUE(m != NULL);
    MT_EQ_U64(maos_result_rid(m), r1);
    MT_EQ_INT(maos_result_status(m), 0);
    MT_EQ_U64(maos_result_count(m), 1);
    maos_result_free(m);
    m = NULL;
    MT_EQ_ERR(maos_reply_recv(c, &m), MAOS_EPROTO);
    MT_TRUE(m == NULL);
    MT_HAS(c->errstr, "reply to unknown request");
    MT_TRUE(maos_is_dead(c));
    maos_free(c);
    fake_stop(&f);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_foreign_dir),
        cmocka_unit_test(test_refuses_foreign_server_uid),
        cmocka_unit_test(test_refuses_writable_dir),
        cmocka_unit_test(test_refuses_symlinked_dir),
        cmocka_unit_test(test_sticky_dir),
        cmocka_unit_test(test_reconnect_checks),
        cmocka_unit_test_teardown(test_default_tmp_path, tmp_teardown),
        cmocka_unit_test(test_timeouts_maosctl),
        cmocka_unit_test(test_timeouts_library),
        cmocka_unit_test(test_incomplete_replies),
        cmocka_unit_test(test_duplicate_reply),
    };
    /* test_timeouts_maosctl waits for the 30 s default request bound once */
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 120);
}
