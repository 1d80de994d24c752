/*
 * tests/integration/test_backup.c -- online backup (op backup, maosctl
 * backup): a copy taken while 4 writer processes append and put holds
 * every event acknowledged before the backup call, nothing past the head
 * it reports, the same events at the same positions as the original, a
 * chain that verifies, and table entries that agree with its events; a
 * second maosd starts on it as it is, and `maosctl backup --verify` checks
 * it offline.  Then the refusals: an existing target, a missing parent, a
 * relative path.  Then offline inspection (maosctl inspect --data-dir, a
 * private maosd --read-only): the same output as online, beside a running
 * maosd and after it stopped, nothing written in the directory, writes
 * refused; a directory that is no store, and a store of a newer format,
 * refused with a clear message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <sodium.h>

#include "harness.h"
#include "maos/client.h"

#define WRITERS 4
#define ACKS_MAX 200000
#define ACKS_BEFORE 400 /* acknowledged appends before the backup call */
#define ACKS_AFTER 400  /* and after its reply, so writes ran through it */

/* Shared with the writers: every acknowledged append, in ack order. */
typedef struct ack {
    uint8_t id[16];
    uint64_t position;
} ack;

typedef struct shared {
    atomic_ulong n;   /* acks recorded */
    atomic_int stop;
    ack acks[ACKS_MAX];
} shared;

static shared *sh;

static maos_ctx *connect_ok(const char *sock)
{
    maos_ctx *c = maos_connect_timeout(sock, 10000);
    if (!c || c->err)
        MT_FAIL("connect %s: %s", sock, c ? c->errstr : "out of memory");
    return c;
}

/* Writer w: appends one event (with an id) to stream bk-w, puts kv.bk key
 * w = {"n": count}, and enqueues a task on queue bk, until told to stop. */
static void writer(const char *sock, int w)
{
    maos_ctx *c = maos_connect_timeout(sock, 10000);
    if (!c || c->err)
        _exit(2);
    char stream[32], key[8];
    snprintf(stream, sizeof stream, "bk-%d", w);
    snprintf(key, sizeof key, "w%d", w);
    for (uint32_t i = 0; !atomic_load(&sh->stop); i++) {
        uint8_t id[16];
        randombytes_buf(id, sizeof id);
        unsigned char data[] = {0x81, 0xa1, 'i', 0xce, (unsigned char)(i >> 24),
                                (unsigned char)(i >> 16), (unsigned char)(i >> 8),
                                (unsigned char)i};
        maos_event_spec ev = {id, "tick", data, sizeof data, NULL, 0};
        maos_append_info info;
        memset(&info, 0, sizeof info);
        if (maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, &info))
            _exit(4);
        unsigned long k = atomic_fetch_add(&sh->n, 1);
        if (k >= ACKS_MAX)
            _exit(5);
        memcpy(sh->acks[k].id, id, 16);
        sh->acks[k].position = info.position;
        if (maos_put(c, "kv.bk", key, data, sizeof data, MAOS_EXPECT_ANY, 0, NULL))
            _exit(6);
        if (maos_enqueue(c, "bk", data, sizeof data, NULL, NULL, NULL))
            _exit(7);
    }
    maos_free(c);
    _exit(0);
}

static void wait_acks(unsigned long n)
{
    int64_t deadline = mt_now_us() + 120 * 1000000ll;
    while (atomic_load(&sh->n) < n) {
        if (mt_now_us() > deadline)
            MT_FAIL("writers made only %lu acks of %lu in 120 s",
                    atomic_load(&sh->n), n);
        mt_sleep_ms(1); /* polling a counter the writers raise, with a deadline */
    }
}

/* Every event of c's log, in order (positions must be 1..n). */
static size_t read_log(maos_ctx *c, maos_page ***pages_out, size_t *npages)
{
    maos_page **pages = NULL;
    size_t np = 0, total = 0;
    uint64_t from = MAOS_FROM_START;
    for (;;) {
        maos_page *p = NULL;
        MT_EQ_ERR(maos_read_all(c, NULL, from, 0, 10000, &p), 0);
        pages = realloc(pages, (np + 1) * sizeof *pages);
        pages[np++] = p;
        for (size_t i = 0; i < p->n; i++)
            if (p->events[i].position != ++total)
                MT_FAIL("the log has position %" PRIu64 " where %zu was due",
                        p->events[i].position, total);
        if (!p->has_next)
            break;
        from = p->next;
    }
    *pages_out = pages;
    *npages = np;
    return total;
}

static const maos_event *event_at(maos_page **pages, size_t np, uint64_t pos)
{
    for (size_t i = 0; i < np; i++)
        if (pages[i]->n && pos >= pages[i]->events[0].position &&
            pos <= pages[i]->events[pages[i]->n - 1].position)
            return &pages[i]->events[pos - pages[i]->events[0].position];
    return NULL;
}

static void free_pages(maos_page **pages, size_t np)
{
    for (size_t i = 0; i < np; i++)
        maos_page_free(pages[i]);
    free(pages);
}

static void test_backup_under_writers(void **state)
{
    (void)state;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    MT_TRUE(sh != MAP_FAILED);
    mt_daemon *d = mt_daemon_new("orig", NULL);
    mt_daemon_up(d);
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++)
        if ((pids[w] = mt_fork()) == 0)
            writer(d->sock, w);
    wait_acks(ACKS_BEFORE);
    unsigned long before = atomic_load(&sh->n); /* acked before the call */
    char target[400];
    snprintf(target, sizeof target, "%s/copy", d->dir);
    maos_ctx *c = connect_ok(d->sock);
    uint64_t head = 0;
    MT_EQ_ERR(maos_backup(c, target, &head), 0);
    wait_acks(atomic_load(&sh->n) + ACKS_AFTER);
    atomic_store(&sh->stop, 1);
    for (int w = 0; w < WRITERS; w++)
        MT_EQ_INT(mt_wait(pids[w], 60000), 0);
    unsigned long total_acks = atomic_load(&sh->n);
    print_message("backup: head %" PRIu64 "; %lu appends acknowledged before the call, "
                  "%lu in all\n", head, before, total_acks);

    maos_page **op, **cp;
    size_t onp, cnp;
    size_t on = read_log(c, &op, &onp);
    MT_TRUE(on > head); /* the writers went on past the copy */

    /* offline check of the copy, before anything opened it */
    mt_run r;
    char want[64];
    snprintf(want, sizeof want, "OK: %" PRIu64 " events, head %" PRIu64, head, head);
    MT_EQ_INT(mt_ctl(d, &r, "backup", "--verify", target, NULL), 0);
    if (!strstr(r.out, want))
        MT_FAIL("backup --verify: %s%s (want %s)", r.out, r.err, want);
    mt_run_free(&r);

    /* a second daemon on the copy, as it is */
    mt_daemon *b = mt_daemon_new("fromcopy", NULL);
    if (snprintf(b->data, sizeof b->data, "%s", target) >= (int)sizeof b->data)
        MT_FAIL("path too long: %s", target);
    mt_daemon_up(b);
    maos_ctx *bc = connect_ok(b->sock);
    size_t cn = read_log(bc, &cp, &cnp);
    MT_EQ_INT(cn, head); /* nothing past the reported head, nothing missing */
    for (uint64_t pos = 1; pos <= head; pos++) {
        const maos_event *x = event_at(op, onp, pos), *y = event_at(cp, cnp, pos);
        MT_TRUE(x && y);
        if (x->raw_len != y->raw_len || memcmp(x->raw, y->raw, x->raw_len))
            MT_FAIL("position %" PRIu64 " differs between the store and its copy", pos);
    }
    /* every append acknowledged before the call is in the copy */
    for (unsigned long k = 0; k < before; k++) {
        const maos_event *y = event_at(cp, cnp, sh->acks[k].position);
        if (!y || memcmp(y->id, sh->acks[k].id, 16))
            MT_FAIL("ack %lu (position %" PRIu64 ") is not in the copy", k,
                    sh->acks[k].position);
    }
    /* the copy's entries are what its events say */
    for (int w = 0; w < WRITERS; w++) {
        char key[8];
        snprintf(key, sizeof key, "w%d", w);
        maos_table_page *tp = NULL;
        MT_EQ_ERR(maos_get(bc, "kv.bk", key, &tp), 0);
        uint64_t rev = tp->entries[0].revision;
        MT_TRUE(rev >= 1 && rev <= head);
        const maos_event *y = event_at(cp, cnp, rev);
        MT_TRUE(y != NULL);
        MT_EQ_MEM_STR(y->type, y->type_len, "put");
        /* ... and the last change of that key in the copy's log */
        char st[32];
        snprintf(st, sizeof st, "kv.bk-%s", key);
        uint64_t last = 0;
        for (size_t i = 0; i < cnp; i++)
            for (size_t k = 0; k < cp[i]->n; k++)
                if (cp[i]->events[k].stream_len == strlen(st) &&
                    !memcmp(cp[i]->events[k].stream, st, strlen(st)))
                    last = cp[i]->events[k].position;
        MT_EQ_INT(rev, last);
        maos_table_page_free(tp);
    }
    /* the copy's queue holds exactly the tasks its events enqueued */
    uint64_t enqueued = 0;
    for (size_t i = 0; i < cnp; i++)
        for (size_t k = 0; k < cp[i]->n; k++) {
            const maos_event *y = &cp[i]->events[k];
            if (y->stream_len == 8 && !memcmp(y->stream, "queue-bk", 8) &&
                y->type_len == 8 && !memcmp(y->type, "enqueued", 8))
                enqueued++;
        }
    maos_queue_stat *qi = NULL;
    size_t nq = 0;
    MT_EQ_ERR(maos_queue_stats(bc, "bk", &qi, &nq), 0);
    MT_EQ_INT(nq, 1);
    MT_TRUE(enqueued > 0);
    MT_EQ_INT(qi[0].ready, enqueued);
    free(qi);
    /* the chain verifies, through maosctl as an operator would */
    MT_EQ_INT(mt_ctl(b, &r, "verify", NULL), 0);
    if (!strstr(r.out, want))
        MT_FAIL("verify of the copy: %s (want %s)", r.out, want);
    mt_run_free(&r);
    /* the copy takes writes of its own */
    uint8_t id[16];
    randombytes_buf(id, sizeof id);
    maos_event_spec ev = {id, "after", "\xc0", 1, NULL, 0};
    maos_append_info info;
    memset(&info, 0, sizeof info);
    MT_EQ_ERR(maos_append(bc, "bk-new", MAOS_EXPECT_NO_STREAM, &ev, 1, &info), 0);
    MT_EQ_INT(info.position, head + 1);

    free_pages(op, onp);
    free_pages(cp, cnp);
    maos_free(bc);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(b), 0);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    munmap(sh, sizeof *sh);
}

static void test_backup_refusals(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d->sock);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/one", d->dir);
    MT_EQ_ERR(maos_backup(c, dir, NULL), 0);
    struct stat st;
    MT_EQ_INT(stat(dir, &st), 0);
    MT_EQ_INT(st.st_mode & 0777, 0700); /* a copy of the data: owner only */
    MT_EQ_ERR(maos_backup(c, dir, NULL), MAOS_ECONFLICT);
    snprintf(dir, sizeof dir, "%s/missing/two", d->dir);
    MT_EQ_ERR(maos_backup(c, dir, NULL), MAOS_ENOT_FOUND);
    MT_EQ_ERR(maos_backup(c, "relative/dir", NULL), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_backup(c, NULL, NULL), MAOS_EINVALID_ARG);
    mt_run r;
    MT_EQ_INT(mt_ctl(d, &r, "backup", "/", NULL), 1); /* exists */
    MT_TRUE(strstr(r.err, "CONFLICT") != NULL);
    mt_run_free(&r);
    /* onto another file system (a tmpfs of its own, /dev/shm): copied, not
     * linked, and the copy checks out offline */
    struct stat shm, data;
    if (stat("/dev/shm", &shm) == 0 && stat(d->data, &data) == 0 &&
        shm.st_dev != data.st_dev) {
        char other[64], cmd[160];
        snprintf(other, sizeof other, "/dev/shm/maos-test-backup-%d", (int)getpid());
        MT_EQ_INT(mkdir(other, 0700), 0);
        snprintf(dir, sizeof dir, "%s/copy", other);
        uint64_t h = 0;
        MT_EQ_ERR(maos_backup(c, dir, &h), 0);
        MT_EQ_INT(mt_ctl(d, &r, "backup", "--verify", dir, NULL), 0);
        MT_TRUE(strstr(r.out, "OK: ") != NULL);
        mt_run_free(&r);
        snprintf(cmd, sizeof cmd, "ls -a %s", other); /* only the copy: no .partial.* */
        const char *lsv[] = {"/bin/sh", "-c", cmd, NULL};
        mt_run ls2;
        MT_EQ_INT(mt_spawn(lsv, NULL, NULL, 0, 10000, &ls2), 0);
        MT_EQ_STR(ls2.out, ".\n..\ncopy\n");
        mt_run_free(&ls2);
        snprintf(cmd, sizeof cmd, "rm -rf %s", other);
        const char *rmv[] = {"/bin/sh", "-c", cmd, NULL};
        MT_EQ_INT(mt_spawn(rmv, NULL, NULL, 0, 10000, &ls2), 0);
        mt_run_free(&ls2);
    } else {
        print_message("/dev/shm is missing or on the data directory's file system: the "
                      "copy across file systems is not run here\n");
    }
    /* no staging directory is left in the data directory */
    mt_run ls;
    const char *argv[] = {"/bin/ls", "-a", d->data, NULL};
    MT_EQ_INT(mt_spawn(argv, NULL, NULL, 0, 10000, &ls), 0);
    if (strstr(ls.out, "backup-staging"))
        MT_FAIL("a staging directory was left behind:\n%s", ls.out);
    mt_run_free(&ls);
    MT_EQ_ERR(maos_ping(c), 0);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* maosctl [--json] inspect --data-dir dir ARGS..., into r (the harness's
 * mt_ctl adds --socket, which inspect must not have). */
static int inspect(mt_run *r, const char *dir, const char *a1, const char *a2,
                   const char *a3)
{
    const char *argv[] = {mt_maosctl_bin(), "inspect", "--data-dir", dir, a1, a2, a3, NULL};
    return mt_spawn(argv, NULL, NULL, 0, 60000, r);
}

/* Names and sizes of the entries of dir, one per line, sorted by ls. */
static char *dir_listing(const char *dir)
{
    mt_run r;
    const char *argv[] = {"/bin/ls", "-l", "--time-style=+%s.%N", dir, NULL};
    MT_EQ_INT(mt_spawn(argv, NULL, NULL, 0, 10000, &r), 0);
    free(r.err);
    return r.out;
}

static void test_inspect(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    mt_run r, on, off;
    for (int i = 0; i < 5; i++) {
        char data[32];
        snprintf(data, sizeof data, "{\"i\":%d}", i);
        MT_EQ_INT(mt_ctl(d, &r, "append", "ins-1", "T", data, NULL), 0);
        mt_run_free(&r);
    }
    /* beside the running daemon: it opens and answers (what it shows is
     * what reached table files: the store's identity at least) */
    MT_EQ_INT(inspect(&r, d->data, "streams", NULL, NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(inspect(&r, d->data, "append", "x", "T"), 2); /* usage: DATA missing */
    mt_run_free(&r);
    MT_EQ_INT(mt_ctl(d, &on, "read", "ins-1", NULL), 0);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    /* stopped: the same output as online, and nothing written */
    char *before = dir_listing(d->data);
    MT_EQ_INT(inspect(&off, d->data, "read", "ins-1", NULL), 0);
    MT_EQ_STR(off.out, on.out);
    mt_run_free(&off);
    MT_EQ_INT(inspect(&off, d->data, "verify", NULL, NULL), 0);
    MT_TRUE(strstr(off.out, "OK: 5 events, head 5") != NULL);
    mt_run_free(&off);
    const char *argv[] = {mt_maosctl_bin(), "inspect", "--data-dir", d->data, "append",
                          "ins-1", "T", "{}", NULL};
    MT_EQ_INT(mt_spawn(argv, NULL, NULL, 0, 60000, &off), 1);
    MT_TRUE(strstr(off.err, "READ_ONLY") && strstr(off.err, "--read-only"));
    mt_run_free(&off);
    char *after = dir_listing(d->data);
    MT_EQ_STR(after, before);
    free(before);
    free(after);
    mt_run_free(&on);
    /* not a store */
    char empty[400];
    snprintf(empty, sizeof empty, "%s/empty", d->dir);
    MT_EQ_INT(inspect(&r, empty, "streams", NULL, NULL), 1);
    MT_TRUE(strstr(r.err, "is not a maos data directory") != NULL);
    mt_run_free(&r);
    /* a store of a newer format: refused, online and offline, unchanged */
    char path[400];
    snprintf(path, sizeof path, "%s/MAOS", d->data);
    FILE *f = fopen(path, "r+");
    MT_TRUE(f != NULL);
    MT_EQ_INT(fputs("maos-store 9", f) >= 0, 1);
    fclose(f);
    MT_EQ_INT(inspect(&r, d->data, "streams", NULL, NULL), 1);
    MT_TRUE(strstr(r.err, "written by a newer maosd") != NULL);
    mt_run_free(&r);
    MT_EQ_INT(mt_daemon_start(d), -1);
    MT_EQ_INT(d->start_status, 3);
}

/* The pid of a process (not a zombie) one of whose arguments contains
 * needle, or 0. */
static pid_t pid_with_arg(const char *needle)
{
    DIR *dh = opendir("/proc");
    MT_TRUE(dh != NULL);
    struct dirent *e;
    pid_t found = 0;
    while (!found && (e = readdir(dh))) {
        char path[300], *p;
        size_t n;
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        if (!(p = mt_read_file(path, &n)))
            continue; /* gone meanwhile */
        for (size_t i = 0; i < n; i += strlen(p + i) + 1)
            if (strstr(p + i, needle))
                found = (pid_t)atoi(e->d_name);
        free(p);
    }
    closedir(dh);
    return found;
}

/* Whether pid runs (exists and is not a zombie waiting for its reaper). */
static int runs(pid_t pid)
{
    char path[64], *st;
    size_t n;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (!(st = mt_read_file(path, &n)))
        return 0;
    const char *close_paren = strrchr(st, ')');
    int alive = close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' &&
                close_paren[2] != 'X';
    free(st);
    return alive;
}

/* maosctl inspect's private maosd goes with maosctl, however maosctl goes:
 * a maosctl killed by SIGKILL in the middle of `inspect ... tail` (it
 * cannot stop its daemon) leaves no maosd behind. */
static void test_inspect_daemon_dies_with_maosctl(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    mt_run r;
    MT_EQ_INT(mt_ctl(d, &r, "append", "gone-1", "T", "{}", NULL), 0);
    mt_run_free(&r);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s/insp", d->dir);
    MT_EQ_INT(mkdir(tmp, 0700), 0);
    pid_t ctl = mt_fork();
    if (ctl == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        setenv("TMPDIR", tmp, 1);
        setenv("MAOSD_BIN", mt_maosd_bin(), 1);
        execl(mt_maosctl_bin(), mt_maosctl_bin(), "inspect", "--data-dir", d->data, "tail",
              (char *)NULL);
        _exit(127);
    }
    /* its daemon: the process with a --socket under tmp, once it accepts */
    pid_t priv = 0;
    int64_t until = mt_now_us() + 30000000;
    while (!(priv = pid_with_arg(tmp)) && mt_now_us() < until && !mt_exited(ctl))
        mt_sleep_ms(5);
    MT_TRUE(priv > 0);
    MT_TRUE(priv != ctl);
    MT_TRUE(!mt_exited(ctl)); /* tail runs until stopped */
    MT_EQ_INT(kill(ctl, SIGKILL), 0);
    MT_EQ_INT(mt_wait(ctl, 10000), 128 + SIGKILL);
    until = mt_now_us() + 30000000;
    while (runs(priv) && mt_now_us() < until)
        mt_sleep_ms(5);
    int left = runs(priv);
    if (left)
        kill(priv, SIGKILL); /* not ours to leave running */
    MT_TRUE(!left);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_under_writers),
        cmocka_unit_test(test_backup_refusals),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_inspect_daemon_dies_with_maosctl),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 240);
}
