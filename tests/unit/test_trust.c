/*
 * tests/unit/test_trust.c -- client/trust.c on real directories and
 * sockets: which socket paths and which server uids libmaos-client trusts
 * (issue 15, finding 3).  No daemon: trust.c is compiled into this test,
 * with a system socket directory of its own (the real /run/maos is never
 * touched).
 *
 * Cases that need another owner (chown, a server run as uid 65534) need
 * root and are skipped otherwise (CI runs as root).  Each case works in
 * its own mkdtemp directory, removed at the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include <cmocka.h>

#include "maos/errors.h"
#include "trust.h"

#define OTHER_UID 65534

#define assert_err(got, want)                                                  \
    do {                                                                       \
        int e_got_ = (got), e_want_ = (want);                                  \
        if (e_got_ != e_want_) {                                               \
            print_error("%s:%d: %s: got %d (%s), want %d (%s); why: %s\n",     \
                        __FILE__, __LINE__, #got, e_got_,                      \
                        maos_err_name(e_got_), e_want_,                        \
                        maos_err_name(e_want_), why);                          \
            fail();                                                            \
        }                                                                      \
    } while (0)

#define assert_has(hay, needle)                                                \
    do {                                                                       \
        if (!strstr((hay), (needle))) {                                        \
            print_error("%s:%d: \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,    \
                        (hay), (needle));                                      \
            fail();                                                            \
        }                                                                      \
    } while (0)

#define NEED_ROOT()                                                            \
    do {                                                                       \
        if (geteuid() != 0) {                                                  \
            print_message("SKIP: needs root (chown to uid %d)\n", OTHER_UID);  \
            skip();                                                            \
        }                                                                      \
    } while (0)

static char g_tmp[128];
static char why[512];

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/maos-test-trust-XXXXXX");
    if (!mkdtemp(g_tmp))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    /* our own mkdtemp dir, by its exact name */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void p(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", g_tmp, rel);
}

static void mkdir_mode(const char *dir, mode_t mode)
{
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, mode), 0);
}

static void set_path(struct sockaddr_un *sa, const char *path);
/* A bound (not listening) socket file at path, owned by the caller. */
static void make_socket_file(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    set_path(&sa, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
}

/* sun_path = path (the test's paths are short; checked). */
static void set_path(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);
    if (n >= sizeof sa->sun_path)
        abort();
    memcpy(sa->sun_path, path, n + 1);
}

static int has_uid(const maosc_trust *t, uid_t u)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->uids[i] == u)
            return 1;
    return 0;
}

static int check(const char *sock, uid_t extra, const char *sysdir, maosc_trust *t)
{
    why[0] = '\0';
    return maosc_trust_path(sock, geteuid(), extra, sysdir, t, why, sizeof why);
}

static void test_own_dir(void **state)
{
    (void)state;
    char dir[200], sock[240];
    maosc_trust t = {{0}, 0};
    p(dir, sizeof dir, "own");
    snprintf(sock, sizeof sock, "%s/maosd.sock", dir);
    mkdir_mode(dir, 0700);
    /* the socket need not exist yet: the daemon may be starting */
    assert_err(check(sock, 0, NULL, &t), 0);
    assert_true(has_uid(&t, geteuid()));
    assert_true(has_uid(&t, 0));
    assert_int_equal(t.n, geteuid() ? 2 : 1);
    assert_int_equal(chmod(dir, 0755), 0); /* readable by others is fine */
    assert_err(check(sock, 0, NULL, &t), 0);
    assert_err(check(sock, 4242, NULL, &t), 0);
    assert_true(has_uid(&t, 4242));
    /* relative path: the directory is "." */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    assert_err(check("maosd.sock", 0, NULL, &t), 0);
    assert_int_equal(chdir(cwd), 0);
}

static void test_missing_dir(void **state)
{
    (void)state;
    char sock[240];
    maosc_trust t = {{7}, 1};
    p(sock, sizeof sock, "nope/maosd.sock");
    assert_err(check(sock, 0, NULL, &t), MAOS_ECONNECT);
    assert_has(why, sock);
    assert_has(why, "No such file");
    assert_int_equal(t.n, 1); /* untouched on failure */
    assert_int_equal(t.uids[0], 7);
    /* a file where the directory should be */
    char file[200];
    p(file, sizeof file, "file");
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(sock, sizeof sock, "%s/maosd.sock", file);
    assert_err(check(sock, 0, NULL, &t), MAOS_ECONNECT);
}

static void test_symlink_dir(void **state)
{
    (void)state;
    char dir[200], link[200], sock[240];
    maosc_trust t;
    p(dir, sizeof dir, "real");
    p(link, sizeof link, "link");
    mkdir_mode(dir, 0700);
    assert_int_equal(symlink(dir, link), 0);
    snprintf(sock, sizeof sock, "%s/maosd.sock", link);
    assert_err(check(sock, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
    assert_has(why, "symbolic link");
    assert_has(why, link);
}

static void test_writable_dir(void **state)
{
    (void)state;
    static const mode_t bad[] = {0777, 0770, 0720, 0702, 0757, 0775};
    char dir[200], sock[240];
    maosc_trust t;
    p(dir, sizeof dir, "w");
    snprintf(sock, sizeof sock, "%s/maosd.sock", dir);
    mkdir_mode(dir, 0700);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(dir, bad[i]), 0);
        assert_err(check(sock, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
        assert_has(why, "writable by group or others");
    }
}

static void test_sticky_dir(void **state)
{
    (void)state;
    char dir[200], sock[240], file[240], ln[240];
    maosc_trust t;
    p(dir, sizeof dir, "sticky");
    mkdir_mode(dir, 01777);
    snprintf(sock, sizeof sock, "%s/maosd.sock", dir);
    /* the socket itself is what is trusted there: absent, the connect
     * would fail anyway */
    assert_err(check(sock, 0, NULL, &t), MAOS_ECONNECT);
    make_socket_file(sock);
    assert_err(check(sock, 0, NULL, &t), 0);
    snprintf(file, sizeof file, "%s/file.sock", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_err(check(file, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
    assert_has(why, "not a socket");
    snprintf(ln, sizeof ln, "%s/link.sock", dir);
    assert_int_equal(symlink(sock, ln), 0);
    assert_err(check(ln, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
    assert_has(why, "not a socket");
    if (geteuid() != 0)
        return;
    /* another user's socket in the shared directory */
    assert_int_equal(chown(sock, OTHER_UID, OTHER_UID), 0);
    assert_err(check(sock, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
    assert_has(why, "socket belongs to uid 65534");
    assert_err(check(sock, OTHER_UID, NULL, &t), 0);
    /* a sticky directory that is not a trusted user's: its owner could
     * remove anyone's socket */
    assert_int_equal(chown(sock, 0, 0), 0);
    assert_int_equal(chown(dir, OTHER_UID, OTHER_UID), 0);
    assert_err(check(sock, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
    assert_has(why, "belongs to uid 65534");
}

static void test_foreign_dir(void **state)
{
    (void)state;
    NEED_ROOT();
    char dir[200], sock[240];
    maosc_trust t;
    p(dir, sizeof dir, "foreign");
    snprintf(sock, sizeof sock, "%s/maosd.sock", dir);
    mkdir_mode(dir, 0700);
    assert_int_equal(chown(dir, OTHER_UID, OTHER_UID), 0);
    assert_err(check(sock, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
    assert_has(why, "belongs to uid 65534");
    assert_has(why, dir);
    assert_err(check(sock, OTHER_UID, NULL, &t), 0);
    assert_true(has_uid(&t, OTHER_UID));
}

/* The system directory's owner is trusted when only root can have made it:
 * here <tmp>/run (root, 0755) / maos (uid 65534) stands for /run/maos. */
static void test_system_dir(void **state)
{
    (void)state;
    NEED_ROOT();
    char run[200], sys[240], sock[280], other[240];
    maosc_trust t;
    p(run, sizeof run, "run");
    mkdir_mode(run, 0755);
    snprintf(sys, sizeof sys, "%s/maos", run);
    mkdir_mode(sys, 0750);
    assert_int_equal(chown(sys, OTHER_UID, OTHER_UID), 0);
    snprintf(sock, sizeof sock, "%s/maosd.sock", sys);
    assert_err(check(sock, 0, sys, &t), 0);
    assert_true(has_uid(&t, OTHER_UID));
    /* not the system directory (the real one, or none): refused */
    assert_err(check(sock, 0, MAOSC_SYSTEM_SOCKET_DIR, &t), MAOS_EUNTRUSTED_SERVER);
    assert_err(check(sock, 0, NULL, &t), MAOS_EUNTRUSTED_SERVER);
    /* another directory of that user next to it gets nothing from it */
    snprintf(other, sizeof other, "%s/other", run);
    mkdir_mode(other, 0750);
    assert_int_equal(chown(other, OTHER_UID, OTHER_UID), 0);
    char osock[280];
    snprintf(osock, sizeof osock, "%s/maosd.sock", other);
    assert_err(check(osock, 0, sys, &t), MAOS_EUNTRUSTED_SERVER);
    /* a parent others can write to: anyone could have made it */
    assert_int_equal(chmod(run, 0775), 0);
    assert_err(check(sock, 0, sys, &t), MAOS_EUNTRUSTED_SERVER);
    assert_int_equal(chmod(run, 01777), 0);
    assert_err(check(sock, 0, sys, &t), MAOS_EUNTRUSTED_SERVER);
    /* a parent owned by someone else: same */
    assert_int_equal(chmod(run, 0755), 0);
    assert_int_equal(chown(run, OTHER_UID, OTHER_UID), 0);
    assert_err(check(sock, 0, sys, &t), MAOS_EUNTRUSTED_SERVER);
}

/* SO_PEERCRED: a socketpair's peer is ourselves. */
static void test_peer_self(void **state)
{
    (void)state;
    int sv[2];
    maosc_trust t = {{geteuid()}, 1};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    why[0] = '\0';
    assert_err(maosc_trust_peer(sv[0], &t, "pair", why, sizeof why), 0);
    t.uids[0] = geteuid() + 1;
    assert_err(maosc_trust_peer(sv[0], &t, "pair", why, sizeof why),
               MAOS_EUNTRUSTED_SERVER);
    assert_has(why, "pair");
    /* not a socket at all */
    assert_err(maosc_trust_peer(-1, &t, "nofd", why, sizeof why), MAOS_EUNTRUSTED_SERVER);
    close(sv[0]);
    close(sv[1]);
}

/* A server that bound as root and listens as uid 65534. */
static void test_peer_other(void **state)
{
    (void)state;
    NEED_ROOT();
    char sock[240];
    int ready[2];
    p(sock, sizeof sock, "peer.sock");
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        set_path(&sa, sock);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || setgroups(0, NULL) ||
            setgid(OTHER_UID) || setuid(OTHER_UID) || listen(fd, 4))
            _exit(1);
        if (write(ready[1], "R", 1) != 1)
            _exit(1);
        pause(); /* killed below */
        _exit(0);
    }
    char c = 0;
    close(ready[1]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    set_path(&sa, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    maosc_trust t = {{0}, 1};
    why[0] = '\0';
    int rc1 = maosc_trust_peer(fd, &t, sock, why, sizeof why);
    char why1[512];
    snprintf(why1, sizeof why1, "%s", why);
    t.uids[t.n++] = OTHER_UID;
    int rc2 = maosc_trust_peer(fd, &t, sock, why, sizeof why);
    close(fd);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_err(rc1, MAOS_EUNTRUSTED_SERVER);
    assert_has(why1, "server runs as uid 65534");
    assert_has(why1, sock);
    assert_err(rc2, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_own_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_self, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_other, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
