/*
 * tests/stress/test_diskfull.c -- a full disk (issue: data operations):
 *
 *  - the reserve alone: min_free_mb above what the disk has refuses every
 *    write with NO_SPACE before anything is written, while reads and a
 *    subscription's catch-up go on and stats say no_space; lowered by a
 *    reload (SIGHUP), writes resume without a restart.
 *  - a real small file system (tmpfs of FS_MB, mounted by the test;
 *    skipped with the reason when mounting is not permitted): 4 writer
 *    processes append with ids until NO_SPACE; freeing space lets writes
 *    resume in the same daemon; filled again, a kill -9 in the full state
 *    and a restart lose nothing acknowledged (every acked id at its
 *    position), and the chain verifies.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "maos/client.h"

#define WRITERS 4
#define ACKS_MAX 100000
#define FS_MB 64
#define FILLER_MB 28
#define RESERVE_MB "20"
#define EVENT_BYTES 3000

typedef struct ack {
    uint8_t id[16];
    uint64_t position;
} ack;

typedef struct shared {
    atomic_ulong n;
    atomic_int full[WRITERS]; /* writer w met NO_SPACE */
    atomic_int go;            /* 0: stop */
    ack acks[ACKS_MAX];
} shared;

static shared *sh;

static maos_ctx *conn(const char *sock)
{
    maos_ctx *c = maos_connect_timeout(sock, 10000);
    if (!c || c->err)
        MT_FAIL("connect %s: %s", sock, c ? c->errstr : "out of memory");
    return c;
}

static int append_one(maos_ctx *c, const char *stream, uint8_t id[16], uint64_t *pos)
{
    static char data[EVENT_BYTES + 8];
    data[0] = (char)0xda; /* str 16 */
    data[1] = (char)(EVENT_BYTES >> 8);
    data[2] = (char)(EVENT_BYTES & 0xff);
    randombytes_buf(data + 3, EVENT_BYTES); /* incompressible: it fills the disk */
    randombytes_buf(id, 16);
    maos_event_spec ev = {id, "fill", data, EVENT_BYTES + 3, NULL, 0};
    maos_append_info info;
    memset(&info, 0, sizeof info);
    int rc = maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, &info);
    if (!rc)
        *pos = info.position;
    return rc;
}

/* Writer w: appends until told to stop; on NO_SPACE it says so and keeps
 * trying (slowly: a refusal writes nothing, so this is a poll with a
 * bound, not a synchronisation). */
static void writer(const char *sock, int w)
{
    maos_ctx *c = maos_connect_timeout(sock, 10000);
    if (!c || c->err)
        _exit(2);
    char stream[16];
    snprintf(stream, sizeof stream, "full-%d", w);
    while (atomic_load(&sh->go)) {
        uint8_t id[16];
        uint64_t pos = 0;
        int rc = append_one(c, stream, id, &pos);
        if (rc == MAOS_ENO_SPACE) {
            atomic_store(&sh->full[w], 1);
            mt_sleep_ms(2);
            continue;
        }
        if (rc)
            _exit(3);
        atomic_store(&sh->full[w], 0);
        unsigned long k = atomic_fetch_add(&sh->n, 1);
        if (k >= ACKS_MAX)
            _exit(4);
        memcpy(sh->acks[k].id, id, 16);
        sh->acks[k].position = pos;
    }
    maos_free(c);
    _exit(0);
}

static void start_writers(const mt_daemon *d, pid_t *pids)
{
    memset(sh->full, 0, sizeof sh->full);
    atomic_store(&sh->go, 1);
    for (int w = 0; w < WRITERS; w++)
        if ((pids[w] = mt_fork()) == 0)
            writer(d->sock, w);
}

static void stop_writers(pid_t *pids)
{
    atomic_store(&sh->go, 0);
    for (int w = 0; w < WRITERS; w++)
        MT_EQ_INT(mt_wait(pids[w], 60000), 0);
}

static const char *state_of(const mt_daemon *d, char *buf, size_t cap);

/* Until every writer has met NO_SPACE and the daemon says no_space (a
 * compaction's transient use of space can refuse a few writes and then
 * free it again: the writers go on until the disk is really full;
 * deadline 120 s). */
static void wait_all_full(const mt_daemon *d)
{
    int64_t deadline = mt_now_us() + 120 * 1000000ll;
    for (;;) {
        int n = 0;
        char st[16];
        for (int w = 0; w < WRITERS; w++)
            n += atomic_load(&sh->full[w]);
        if (n == WRITERS && !strcmp(state_of(d, st, sizeof st), "no_space"))
            return;
        if (mt_now_us() > deadline)
            MT_FAIL("the writers did not all meet NO_SPACE within 120 s (%lu acks)",
                    atomic_load(&sh->n));
        mt_sleep_ms(5);
    }
}

static void expect_state(maos_ctx *c, const char *want)
{
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    MT_EQ_STR(st.state, want);
}

static const char *state_of(const mt_daemon *d, char *buf, size_t cap)
{
    maos_ctx *c = conn(d->sock);
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    snprintf(buf, cap, "%s", st.state);
    maos_free(c);
    return buf;
}

static void write_conf(const mt_daemon *d, const char *min_free)
{
    char path[400];
    snprintf(path, sizeof path, "%s/maosd.conf", d->dir);
    FILE *f = fopen(path, "w");
    MT_TRUE(f != NULL);
    fprintf(f, "[maosd]\nmin_free_mb = %s\n", min_free);
    fclose(f);
}

static void test_reserve_and_reload(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    char conf[400];
    snprintf(conf, sizeof conf, "%s/maosd.conf", d->dir);
    write_conf(d, "0");
    mt_daemon_add_arg(d, "--config");
    mt_daemon_add_arg(d, conf);
    mt_daemon_up(d);
    maos_ctx *c = conn(d->sock);
    uint8_t id[16];
    uint64_t pos = 0;
    MT_EQ_ERR(append_one(c, "r-1", id, &pos), 0);
    MT_EQ_INT(pos, 1);
    /* a reserve no disk has (1 TiB): everything refused, nothing written */
    write_conf(d, "1048576");
    kill(d->pid, SIGHUP);
    int64_t deadline = mt_now_us() + 30 * 1000000ll;
    int rc;
    while ((rc = append_one(c, "r-1", id, &pos)) == 0) { /* the reload is async */
        if (mt_now_us() > deadline)
            MT_FAIL("writes still accepted 30 s after the reload");
        mt_sleep_ms(5);
    }
    MT_EQ_ERR(rc, MAOS_ENO_SPACE);
    MT_TRUE(strstr(c->errstr, "min_free_mb") != NULL);
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    MT_EQ_STR(st.state, "no_space");
    uint64_t head = st.head_position;
    for (int i = 0; i < 5; i++)
        MT_EQ_ERR(append_one(c, "r-2", id, &pos), MAOS_ENO_SPACE);
    MT_EQ_ERR(maos_put(c, "kv.r", "k", "\x80", 1, MAOS_EXPECT_ANY, 0, NULL), MAOS_ENO_SPACE);
    /* reads and a subscription's catch-up go on */
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, "r-1", MAOS_FROM_START, 0, 100, &p), 0);
    MT_TRUE(p->n >= 1);
    maos_page_free(p);
    maos_ctx *s = conn(d->sock);
    uint64_t sub;
    MT_EQ_ERR(maos_subscribe(s, NULL, MAOS_FROM_POSITION, 1, &sub), 0);
    maos_delivery *dl = NULL;
    MT_EQ_ERR(maos_next(s, 10000, &dl), 0);
    MT_EQ_INT(dl->events[0].position, 1);
    maos_delivery_free(dl);
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    MT_EQ_INT(st.head_position, head); /* nothing refused was written */
    mt_run r;
    MT_EQ_INT(mt_ctl(d, &r, "status", NULL), 0);
    MT_TRUE(strstr(r.out, "no_space") != NULL);
    mt_run_free(&r);
    /* the reserve lowered: writes resume, no restart */
    write_conf(d, "0");
    kill(d->pid, SIGHUP);
    deadline = mt_now_us() + 30 * 1000000ll;
    while ((rc = append_one(c, "r-1", id, &pos)) == MAOS_ENO_SPACE) {
        if (mt_now_us() > deadline)
            MT_FAIL("writes still refused 30 s after the reserve was lowered");
        mt_sleep_ms(5);
    }
    MT_EQ_ERR(rc, 0);
    MT_EQ_INT(pos, head + 1);
    expect_state(c, "ok");
    maos_free(s);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* A FS_MB tmpfs on dir, in a mount namespace of this test process (and
 * the daemons and tools it starts), so that it goes away with them however
 * the test ends.  0, or -1 with errno (not permitted here). */
static int mount_small_fs(const char *dir)
{
    char opts[32];
    snprintf(opts, sizeof opts, "size=%dm", FS_MB);
    if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
        mkdir(dir, 0700) || mount("tmpfs", dir, "tmpfs", 0, opts))
        return -1;
    return 0;
}

static int fill(const char *path, int mb)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    static char buf[1 << 20];
    memset(buf, 'f', sizeof buf);
    for (int i = 0; i < mb; i++)
        if (fwrite(buf, 1, sizeof buf, f) != sizeof buf) {
            fclose(f);
            return -1;
        }
    return fclose(f);
}

static void test_small_filesystem(void **state)
{
    (void)state;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    MT_TRUE(sh != MAP_FAILED);
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    char mnt[400];
    mt_run r;
    snprintf(mnt, sizeof mnt, "%s/fs", d->dir);
    if (mount_small_fs(mnt)) {
        print_message("SKIP: cannot mount a %d MB tmpfs in a mount namespace here: %s\n",
                      FS_MB, strerror(errno));
        skip();
    }
    char filler[500];
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    MT_EQ_INT(fill(filler, FILLER_MB), 0);
    if (snprintf(d->data, sizeof d->data, "%s/data", mnt) >= (int)sizeof d->data)
        MT_FAIL("path too long");
    mt_daemon_add_arg(d, "--journal-mb");
    mt_daemon_add_arg(d, "4");
    mt_daemon_add_arg(d, "--min-free-mb");
    mt_daemon_add_arg(d, RESERVE_MB);
    mt_daemon_up(d);

    /* fill it: every writer meets NO_SPACE */
    pid_t pids[WRITERS];
    start_writers(d, pids);
    wait_all_full(d);
    maos_ctx *c = conn(d->sock);
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, "full-0", MAOS_FROM_START, 0, 10, &p), 0);
    maos_page_free(p);
    unsigned long first = atomic_load(&sh->n);
    print_message("full after %lu acknowledged appends of %d bytes\n", first, EVENT_BYTES);
    MT_TRUE(first > 100);
    /* space freed: writes resume in the same daemon */
    MT_EQ_INT(unlink(filler), 0);
    int64_t deadline = mt_now_us() + 60 * 1000000ll;
    while (atomic_load(&sh->n) < first + 100) {
        if (mt_now_us() > deadline)
            MT_FAIL("writes did not resume within 60 s of freeing space (%lu acks)",
                    atomic_load(&sh->n));
        mt_sleep_ms(5);
    }
    /* full again (flags cleared: only a NO_SPACE after this counts), then
     * kill -9 in the full state */
    for (int w = 0; w < WRITERS; w++)
        atomic_store(&sh->full[w], 0);
    wait_all_full(d);
    stop_writers(pids);
    /* the writers are gone: this one writes until refused, so the daemon
     * is full (state no_space) at the kill */
    for (;;) {
        uint8_t id[16];
        uint64_t pos = 0;
        int rc = append_one(c, "full-x", id, &pos);
        if (rc == MAOS_ENO_SPACE)
            break;
        MT_EQ_ERR(rc, 0);
        unsigned long k = atomic_fetch_add(&sh->n, 1);
        MT_TRUE(k < ACKS_MAX);
        memcpy(sh->acks[k].id, id, 16);
        sh->acks[k].position = pos;
    }
    expect_state(c, "no_space");
    maos_free(c);
    mt_daemon_kill9(d);
    unsigned long acks = atomic_load(&sh->n);
    mt_daemon_up(d);
    c = conn(d->sock);
    for (unsigned long k = 0; k < acks; k++) {
        maos_page *e = NULL;
        MT_EQ_ERR(maos_read_all(c, NULL, sh->acks[k].position, 0, 1, &e), 0);
        if (e->n != 1 || e->events[0].position != sh->acks[k].position ||
            memcmp(e->events[0].id, sh->acks[k].id, 16))
            MT_FAIL("acknowledged append %lu (position %" PRIu64 ") is missing after the "
                    "restart", k, sh->acks[k].position);
        maos_page_free(e);
    }
    MT_EQ_INT(mt_ctl(d, &r, "verify", NULL), 0);
    print_message("%lu acknowledged appends all there after kill -9 in the full state; %s",
                  acks, r.out);
    mt_run_free(&r);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    munmap(sh, sizeof *sh);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_and_reload),
        cmocka_unit_test(test_small_filesystem),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 300);
}
