/*
 * tests/stress/test_durability.c -- acknowledged means on disk (issue 2,
 * "Durability"; docs/ARCHITECTURE.md "House rules").
 *
 * test_kill9_while_appending: for 3 rounds on the same data directory,
 * 4 forked writers append continuously (batches of 1..3 events with
 * client-chosen ids); after every acknowledged append a writer writes the
 * (id, position, version) of each event to its own file with one write(),
 * so the record survives the writer's death.  Once the writers together
 * have recorded ACKS_BEFORE_KILL * (round + 1) acknowledged events (a
 * condition, not a sleep; more each round), the daemon gets kill -9 while
 * they are busy, then the writers are reaped, and the daemon is restarted
 * on the same directory.  Every acknowledged event must be at
 * its position with its id, stream and version; positions dense;
 * re-sending an acknowledged append is an idempotent duplicate; verify OK.
 *
 * test_read_only_after_write_failure: maosd-fault with
 * MAOS_FAULT_WRITE_FAIL_AFTER=5: five appends succeed, the sixth gets
 * OUTCOME_UNKNOWN and is not readable, later writes READ_ONLY, reads go on, stats say
 * read_only; the normal maosd on the same directory has everything that
 * was acknowledged and writes again.
 *
 * The journal's failure points (maosd-fault, MAOS_FAULT_JOURNAL; store.c):
 *  - apply-fails: the group is in the journal, RocksDB's apply fails: the
 *    writer gets OUTCOME_UNKNOWN, later writes READ_ONLY; after a restart
 *    the event is there (the data had reached the file: "outcome unknown"
 *    means exactly that it may be);
 *  - kill-before-apply: maosd dies between the journal's fdatasync and
 *    RocksDB: after a restart the event is there, once;
 *  - kill-in-replay: maosd dies half-way through applying the journal at
 *    open (twice, at different records): the next start has everything
 *    once, positions dense, the chain verified;
 *  - kill-in-wrap: with a 1 MiB journal, maosd dies after the flush that
 *    ends a lap and before the new lap's superblock: every acknowledged
 *    batch is there after a restart, once; the one in flight whole or not.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h" /* wire helpers (maos_mpr_*, maos_uuid_*) */

enum { WRITERS = 4, ROUNDS = 3, ACKS_BEFORE_KILL = 400 };

/* One acknowledged event, as a writer records it. */
typedef struct ack {
    uint8_t id[16];
    uint64_t position;
    uint64_t version;
    uint32_t writer;
    uint32_t round;
} ack;

static void mk_id(uint8_t id[16], uint32_t round, uint32_t w, uint32_t seq)
{
    memset(id, 0, 16);
    id[0] = 0xd0;
    id[1] = (uint8_t)round;
    id[2] = (uint8_t)w;
    memcpy(id + 10, &seq, 4); /* clear of the variant bits in id[8] */
    id[6] = 0x40;
    id[8] |= 0x80;
    id[8] &= 0xbf;
    id[15] = 0x5a;
}

static void writer(const char *sock, const char *path, uint32_t round,
                   uint32_t w)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        _exit(20);
    maos_ctx *c = maos_connect_timeout(sock, 10000);
    if (!c || c->err)
        _exit(21);
    char stream[32];
    snprintf(stream, sizeof stream, "dur-%u", w);
    uint32_t seq = 0;
    for (uint32_t k = 0; k < 1000000; k++) {
        uint32_t n = 1 + k % 3;
        maos_event_spec ev[3];
        uint8_t ids[3][16];
        static const char data[] = "\x81\xa1k\xa5value"; /* {k: "value"} */
        for (uint32_t i = 0; i < n; i++) {
            mk_id(ids[i], round, w, seq + i);
            ev[i] = (maos_event_spec){ids[i], "Durable", data, sizeof data - 1,
                                      NULL, 0};
        }
        maos_append_info info;
        memset(&info, 0, sizeof info);
        int rc = maos_append(c, stream, MAOS_EXPECT_ANY, ev, n, &info);
        if (rc != 0) {
            /* The daemon was killed: the expected end of a writer. */
            if (maos_err_is_fatal(rc))
                _exit(0);
            dprintf(2, "writer %u: append refused: %d (%s) %s\n", w, rc,
                    maos_err_name(rc), c->errstr);
            _exit(22);
        }
        if (info.count != n || info.duplicate)
            _exit(23);
        ack a[3];
        for (uint32_t i = 0; i < n; i++) {
            memcpy(a[i].id, ids[i], 16);
            a[i].position = info.position + i;
            a[i].version = info.version + i;
            a[i].writer = w;
            a[i].round = round;
        }
        ssize_t want = (ssize_t)(n * sizeof(ack));
        if (write(fd, a, (size_t)want) != want)
            _exit(24);
        seq += n;
    }
    _exit(0);
}

/* Every event of $all into a position-indexed array; returns the head. */
typedef struct stored {
    uint8_t id[16];
    uint64_t version;
    char stream[32];
} stored;

static uint64_t load_all(maos_ctx *c, stored **out)
{
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    uint64_t head = st.head_position;
    stored *s = calloc(head + 2, sizeof *s);
    uint64_t expect = 1, from = MAOS_FROM_START;
    for (int guard = 0; guard < 100000; guard++) {
        maos_page *p = NULL;
        int rc = maos_read_all(c, NULL, from, 0, MAOS_READ_LIMIT_MAX, &p);
        if (rc)
            MT_FAIL("read_all: %d (%s) %s", rc, maos_err_name(rc), c->errstr);
        for (size_t i = 0; i < p->n; i++) {
            const maos_event *e = &p->events[i];
            if (e->position != expect)
                MT_FAIL("positions not dense after restart: got %llu, want %llu",
                        (unsigned long long)e->position,
                        (unsigned long long)expect);
            if (expect > head)
                MT_FAIL("event at %llu beyond head_position %llu",
                        (unsigned long long)expect, (unsigned long long)head);
            memcpy(s[expect].id, e->id, 16);
            s[expect].version = e->version;
            snprintf(s[expect].stream, sizeof s[expect].stream, "%.*s",
                     (int)e->stream_len, e->stream);
            expect++;
        }
        int more = p->has_next;
        from = p->next;
        maos_page_free(p);
        if (!more)
            break;
    }
    MT_EQ_U64(expect - 1, head);
    *out = s;
    return head;
}

static void verify_ok(mt_daemon *d)
{
    mt_run r;
    int st = mt_ctl(d, &r, "verify", NULL);
    if (st != 0 || !strstr(r.out, "OK"))
        MT_FAIL("maosctl verify: status %d, out \"%s\", err \"%s\"", st, r.out,
                r.err);
    mt_run_free(&r);
}

static void test_kill9_while_appending(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    uint64_t total_acks = 0;
    for (uint32_t round = 0; round < ROUNDS; round++) {
        mt_daemon_up(d);
        pid_t pids[WRITERS];
        char paths[WRITERS][300];
        for (uint32_t w = 0; w < WRITERS; w++) {
            snprintf(paths[w], sizeof paths[w], "%s/acks-r%u-w%u", d->dir,
                     round, w);
            pid_t pid = mt_fork();
            if (pid < 0)
                MT_FAIL("fork: %s", strerror(errno));
            if (pid == 0)
                writer(d->sock, paths[w], round, w);
            pids[w] = pid;
        }
        /* kill once enough acknowledgements are recorded */
        size_t want = (size_t)ACKS_BEFORE_KILL * (round + 1);
        int64_t deadline = mt_now_us() + 120LL * 1000000;
        for (;;) {
            size_t have = 0;
            for (uint32_t w = 0; w < WRITERS; w++) {
                struct stat sb;
                if (stat(paths[w], &sb) == 0)
                    have += (size_t)sb.st_size / sizeof(ack);
            }
            if (have >= want)
                break;
            if (mt_now_us() > deadline)
                MT_FAIL("round %u: %zu of %zu acknowledgements within 120 s",
                        round, have, want);
            for (uint32_t w = 0; w < WRITERS; w++)
                if (mt_exited(pids[w]))
                    MT_FAIL("round %u: writer %u exited before the kill",
                            round, w);
            mt_sleep_ms(1); /* polling the ack files for the condition */
        }
        pid_t dpid = d->pid;
        mt_daemon_kill9(d);
        print_message("round %u: killed maosd pid %ld\n", round, (long)dpid);
        int bad = 0;
        for (int w = 0; w < WRITERS; w++) {
            int st = mt_wait(pids[w], 3000);
            /* 0: saw the connection die; 1000: we had to kill it */
            if (st != 0 && st != 1000) {
                fprintf(stderr, "writer %d exit status %d\n", w, st);
                bad++;
            }
        }
        MT_EQ_INT(bad, 0);

        mt_daemon_up(d);
        maos_ctx *c = maos_connect_timeout(d->sock, 30000);
        MT_TRUE(c && c->err == 0);
        stored *s = NULL;
        uint64_t head = load_all(c, &s);
        uint64_t round_acks = 0;
        for (int w = 0; w < WRITERS; w++) {
            size_t len = 0;
            char *buf = mt_read_file(paths[w], &len);
            if (!buf)
                MT_FAIL("no ack file %s", paths[w]);
            size_t n = len / sizeof(ack); /* a torn last record is ignored */
            const ack *a = (const ack *)buf;
            char stream[32];
            snprintf(stream, sizeof stream, "dur-%d", w);
            for (size_t i = 0; i < n; i++) {
                if (a[i].position == 0 || a[i].position > head)
                    MT_FAIL("round %u writer %d: acknowledged position %llu "
                            "is missing (head %llu after restart)",
                            round, w, (unsigned long long)a[i].position,
                            (unsigned long long)head);
                const stored *e = &s[a[i].position];
                if (memcmp(e->id, a[i].id, 16) != 0)
                    MT_FAIL("round %u writer %d: position %llu holds another "
                            "event than the acknowledged one",
                            round, w, (unsigned long long)a[i].position);
                MT_EQ_STR(e->stream, stream);
                MT_EQ_U64(e->version, a[i].version);
            }
            print_message("round %u writer %d: %zu acknowledged events\n",
                          round, w, n);
            round_acks += n;
            /* The first append of a writer was a batch of one event (seq
             * 0): re-sent, it is a duplicate at the same place. */
            if (n > 0) {
                maos_event_spec ev = {a[0].id, "Durable", "\x81\xa1k\xa5value",
                                      9, NULL, 0};
                maos_append_info info;
                memset(&info, 0, sizeof info);
                int rc = maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, &info);
                if (rc != 0)
                    MT_FAIL("re-send of an acknowledged event: %d (%s) %s", rc,
                            maos_err_name(rc), c->errstr);
                MT_EQ_INT(info.duplicate, 1);
                MT_EQ_U64(info.position, a[0].position);
            }
            free(buf);
        }
        MT_CMP_INT(round_acks, >, 0);
        total_acks += round_acks;
        free(s);
        maos_free(c);
        verify_ok(d);
        /* the next round starts from a clean shutdown of this restart */
        MT_EQ_INT(mt_daemon_stop(d), 0);
    }
    print_message("%llu acknowledged events checked over %d rounds\n",
                  (unsigned long long)total_acks, ROUNDS);
}

static void append1(maos_ctx *c, const char *stream, uint8_t id[16], int want)
{
    maos_event_spec ev = {id, "Fault", NULL, 0, NULL, 0};
    int rc = maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, NULL);
    if (rc != want)
        MT_FAIL("append to %s: got %d (%s) %s, want %d (%s)", stream, rc,
                maos_err_name(rc), c->errstr, want,
                want ? maos_err_name(want) : "OK");
}

static void test_read_only_after_write_failure(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, mt_maosd_fault_bin());
    /* The first store write of a new store is its creation markers
     * (recover.c), then five appends succeed. */
    mt_daemon_setenv(d, "MAOS_FAULT_WRITE_FAIL_AFTER", "6");
    mt_daemon_up(d);
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    uint8_t ids[10][16];
    for (int i = 0; i < 10; i++)
        mk_id(ids[i], 99, 0, (uint32_t)i);
    for (int i = 0; i < 5; i++)
        append1(c, i % 2 ? "ro-b" : "ro-a", ids[i], 0);
    /* the sixth store write fails */
    append1(c, "ro-a", ids[5], MAOS_EOUTCOME_UNKNOWN);
    /* sticky: later writes fail too, also a txn and a new stream */
    append1(c, "ro-a", ids[6], MAOS_EREAD_ONLY);
    append1(c, "ro-new", ids[7], MAOS_EREAD_ONLY);
    maos_event_spec ev = {ids[8], "Fault", NULL, 0, NULL, 0};
    maos_txn_append tx[1] = {{"ro-b", MAOS_EXPECT_ANY, &ev, 1, NULL}};
    MT_EQ_ERR(maos_txn(c, tx, 1, NULL), MAOS_EREAD_ONLY);
    /* the context is not dead: a refusal */
    MT_EQ_ERR(maos_ping(c), 0);

    /* reads go on and show exactly the five acknowledged events */
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    MT_EQ_STR(st.state, "read_only");
    MT_EQ_U64(st.head_position, 5);
    MT_CMP_INT(st.commit_errors, >=, 1);
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read_all(c, NULL, MAOS_FROM_START, 0, 100, &p), 0);
    MT_EQ_U64(p->n, 5);
    for (size_t i = 0; i < p->n; i++) {
        MT_EQ_U64(p->events[i].position, i + 1);
        MT_TRUE(memcmp(p->events[i].id, ids[i], 16) == 0);
    }
    maos_page_free(p);
    p = NULL;
    MT_EQ_ERR(maos_read(c, "ro-a", MAOS_FROM_START, 0, 100, &p), 0);
    MT_EQ_U64(p->n, 3);
    maos_page_free(p);
    p = NULL;
    MT_EQ_ERR(maos_read(c, "ro-new", MAOS_FROM_START, 0, 100, &p),
              MAOS_ENOT_FOUND);
    maos_stream_page *sp = NULL;
    MT_EQ_ERR(maos_streams(c, "ro-", NULL, 0, &sp), 0);
    MT_EQ_U64(sp->n, 2);
    maos_stream_page_free(sp);
    /* a new connection can read too */
    maos_ctx *c2 = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c2 && c2->err == 0);
    p = NULL;
    MT_EQ_ERR(maos_read(c2, "ro-b", MAOS_FROM_START, 0, 100, &p), 0);
    MT_EQ_U64(p->n, 2);
    maos_page_free(p);
    maos_free(c2);
    maos_free(c);

    /* it still shuts down on SIGTERM (whatever its exit code) */
    int sst = mt_daemon_stop(d);
    print_message("read-only maosd exit status %d\n", sst);
    MT_CMP_INT(sst, <, 128);

    /* the normal daemon on the same directory: all acknowledged, writable */
    snprintf(d->bin, sizeof d->bin, "%s", mt_maosd_bin());
    mt_daemon_up(d);
    c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    MT_EQ_STR(st.state, "ok");
    MT_EQ_U64(st.head_position, 5);
    p = NULL;
    MT_EQ_ERR(maos_read_all(c, NULL, MAOS_FROM_START, 0, 100, &p), 0);
    MT_EQ_U64(p->n, 5);
    for (size_t i = 0; i < p->n; i++)
        MT_TRUE(memcmp(p->events[i].id, ids[i], 16) == 0);
    maos_page_free(p);
    /* the refused event was never written: its id is free to use now */
    maos_append_info info;
    memset(&info, 0, sizeof info);
    maos_event_spec e6 = {ids[5], "Fault", NULL, 0, NULL, 0};
    MT_EQ_ERR(maos_append(c, "ro-a", 2, &e6, 1, &info), 0);
    MT_EQ_INT(info.duplicate, 0);
    MT_EQ_U64(info.position, 6);
    MT_EQ_U64(info.version, 3);
    maos_free(c);
    verify_ok(d);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- the journal's failure points ------------------------------------------------ */

/* read_all of d: exactly the events ids[0..n) in order at positions 1..n;
 * then verify. */
static void expect_ids(mt_daemon *d, uint8_t (*ids)[16], uint64_t n)
{
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    stored *s = NULL;
    uint64_t head = load_all(c, &s);
    MT_EQ_U64(head, n);
    for (uint64_t i = 0; i < n; i++)
        if (memcmp(s[i + 1].id, ids[i], 16))
            MT_FAIL("position %llu holds another event than the one appended there",
                    (unsigned long long)(i + 1));
    free(s);
    maos_free(c);
    verify_ok(d);
}

static mt_daemon *fault_daemon(const char *fault)
{
    mt_daemon *d = mt_daemon_new(NULL, mt_maosd_fault_bin());
    mt_daemon_setenv(d, "MAOS_FAULT_JOURNAL", fault);
    return d;
}

static void test_journal_apply_fails(void **state)
{
    (void)state;
    /* occasion 0 is the store's creation markers (recover.c) */
    mt_daemon *d = fault_daemon("apply-fails:6");
    mt_daemon_up(d);
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    uint8_t ids[8][16];
    for (int i = 0; i < 8; i++)
        mk_id(ids[i], 98, 0, (uint32_t)i);
    for (int i = 0; i < 5; i++)
        append1(c, "jf", ids[i], 0);
    append1(c, "jf", ids[5], MAOS_EOUTCOME_UNKNOWN);
    append1(c, "jf", ids[6], MAOS_EREAD_ONLY);
    maos_free(c);
    MT_CMP_INT(mt_daemon_stop(d), <, 128);
    mt_daemon_clearenv(d);
    snprintf(d->bin, sizeof d->bin, "%s", mt_maosd_bin());
    mt_daemon_up(d);
    expect_ids(d, ids, 6); /* the sixth reached the journal: it is there */
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_journal_kill_before_apply(void **state)
{
    (void)state;
    mt_daemon *d = fault_daemon("kill-before-apply:6");
    mt_daemon_up(d);
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    uint8_t ids[6][16];
    for (int i = 0; i < 6; i++)
        mk_id(ids[i], 97, 0, (uint32_t)i);
    for (int i = 0; i < 5; i++)
        append1(c, "jk", ids[i], 0);
    maos_event_spec ev = {ids[5], "Fault", NULL, 0, NULL, 0};
    int rc = maos_append(c, "jk", MAOS_EXPECT_ANY, &ev, 1, NULL);
    MT_TRUE(rc != 0); /* no reply: maosd died */
    maos_free(c);
    MT_EQ_INT(mt_wait(d->pid, 30000), 128 + SIGKILL);
    d->pid = 0;
    mt_daemon_clearenv(d);
    snprintf(d->bin, sizeof d->bin, "%s", mt_maosd_bin());
    mt_daemon_up(d);
    expect_ids(d, ids, 6);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_journal_kill_in_replay(void **state)
{
    (void)state;
    enum { N = 40 };
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    uint8_t ids[N][16];
    for (int i = 0; i < N; i++) {
        mk_id(ids[i], 96, 0, (uint32_t)i);
        append1(c, i % 3 ? "jr-a" : "jr-b", ids[i], 0);
    }
    maos_free(c);
    mt_daemon_kill9(d); /* all of it only in the journal */
    static const char *const faults[] = {"kill-in-replay:20", "kill-in-replay:3"};
    for (int i = 0; i < 2; i++) {
        snprintf(d->bin, sizeof d->bin, "%s", mt_maosd_fault_bin());
        mt_daemon_clearenv(d);
        mt_daemon_setenv(d, "MAOS_FAULT_JOURNAL", faults[i]);
        MT_EQ_INT(mt_daemon_start(d), -1);
        MT_EQ_INT(d->start_status, 128 + SIGKILL);
    }
    mt_daemon_clearenv(d);
    snprintf(d->bin, sizeof d->bin, "%s", mt_maosd_bin());
    mt_daemon_up(d);
    expect_ids(d, ids, N);
    /* and the stream versions are right, each event once */
    c = maos_connect_timeout(d->sock, 30000);
    maos_page *p = NULL;
    MT_EQ_ERR(maos_read(c, "jr-b", MAOS_FROM_START, 0, 100, &p), 0);
    MT_EQ_U64(p->n, (N + 2) / 3);
    for (size_t i = 0; i < p->n; i++)
        MT_EQ_U64(p->events[i].version, i);
    maos_page_free(p);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_journal_kill_in_wrap(void **state)
{
    (void)state;
    enum { BATCH = 100, MAX_BATCHES = 400, DATA = 200 };
    mt_daemon *d = fault_daemon("kill-in-wrap:0");
    mt_daemon_add_arg(d, "--journal-mb");
    mt_daemon_add_arg(d, "1");
    mt_daemon_up(d);
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c && c->err == 0);
    static uint8_t ids[MAX_BATCHES * BATCH][16];
    static char data[DATA];
    memset(data, 'x', sizeof data);
    data[0] = (char)0xd9; /* msgpack str8 */
    data[1] = (char)(DATA - 2);
    maos_event_spec ev[BATCH];
    int acked = 0, rc = 0;
    /* ~25 KiB per record: the 1 MiB journal ends its first lap within
     * ~40 batches; the bound is far past that. */
    while (acked < MAX_BATCHES) {
        for (int i = 0; i < BATCH; i++) {
            mk_id(ids[acked * BATCH + i], 95, (uint8_t)(acked & 0xff),
                  (uint32_t)(acked * BATCH + i));
            ev[i] = (maos_event_spec){ids[acked * BATCH + i], "Fill", data, DATA, NULL, 0};
        }
        if ((rc = maos_append(c, "jw", MAOS_EXPECT_ANY, ev, BATCH, NULL)))
            break;
        acked++;
    }
    maos_free(c);
    if (!rc)
        MT_FAIL("%d batches acknowledged and the journal never wrapped", acked);
    MT_EQ_INT(mt_wait(d->pid, 30000), 128 + SIGKILL);
    d->pid = 0;
    print_message("maosd killed in the wrap after %d acknowledged batches\n", acked);
    mt_daemon_clearenv(d);
    snprintf(d->bin, sizeof d->bin, "%s", mt_maosd_bin());
    mt_daemon_up(d);
    maos_ctx *c2 = maos_connect_timeout(d->sock, 30000);
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c2, &st), 0);
    maos_free(c2);
    /* the batch in flight was not acknowledged: whole or absent */
    uint64_t n = st.head_position == (uint64_t)(acked + 1) * BATCH
                     ? (uint64_t)(acked + 1) * BATCH : (uint64_t)acked * BATCH;
    expect_ids(d, ids, n);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_while_appending),
        cmocka_unit_test(test_read_only_after_write_failure),
        cmocka_unit_test(test_journal_apply_fails),
        cmocka_unit_test(test_journal_kill_before_apply),
        cmocka_unit_test(test_journal_kill_in_replay),
        cmocka_unit_test(test_journal_kill_in_wrap),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 200);
}
