/*
 * tests/fault/test_fault_io.c -- storage I/O errors under a fixed workload
 * (issue 15, "Fault shim"; SQLite's I/O-error tests).
 *
 * Each case is one run of the same workload with faultshim.so
 * (LD_PRELOAD) failing one chosen storage call of maosd:
 *
 *   A  maosd (no shim) on a new dir: 4 appends (S0) acknowledged, SIGTERM.
 *   B  maosd with the shim on that dir: 8 appends one after the other
 *      (each 1..3 events with ids), then stats, reads, SIGTERM.
 *   C  maosd without the shim on that dir: the history check.
 *
 * The fault is named as CLASS:OP:N (see faultshim.c): the N-th write /
 * sync / rename of a WAL, table (sst), MANIFEST, CURRENT (or its temp
 * file), OPTIONS file or of the directory itself, counted from the start
 * for faults at open and from the moment the test arms the shim (once
 * maosd serves) for the others.  The N values were chosen from a
 * MAOS_SHIM_TRACE=1 run of this workload so that each hits a
 * different place: the WAL write and the WAL sync of an append, a torn
 * WAL record, a full disk from an append on, the table file and MANIFEST
 * update of the memtable flush maosd does at shutdown, the MANIFEST,
 * CURRENT rename, directory sync and OPTIONS file of the open.  Each case
 * says where its fault must land, and the test checks that it did (the
 * shim logs every injection), so a case that silently stops hitting its
 * target fails instead of proving nothing.
 *
 * What must hold, by where the fault lands:
 *  - OPEN: maosd exits during start-up with status 1 and names the
 *    problem ("cannot open database ... IO error ..."), no crash.
 *  - RUN: the append whose storage write failed gets OUTCOME_UNKNOWN and
 *    every later one READ_ONLY (typed errors; sticky), earlier ones were
 *    acknowledged;
 *    the daemon stays up, stats say read_only, reads on the same and on a
 *    new connection return exactly S0 + the acknowledged appends;
 *    SIGTERM still ends it without a crash.
 *  - CLOSE: every append acknowledged; the fault hits the flush at
 *    shutdown; the daemon still exits without a crash.
 *  - ABSORBED: RocksDB ignores the failure (an OPTIONS file is only
 *    informative): maosd starts and works as if nothing happened.
 *  - always, in C: every acknowledged append stored once where its reply
 *    said (positions, versions, stream), nothing partly visible, positions
 *    dense, `maosctl verify` OK, the store writable again (an append works).
 *    An append that was refused may be stored after the restart (a WAL
 *    record written whose fsync then failed is replayed by RocksDB): its
 *    outcome was unknown to the writer, and it is then whole; the test
 *    prints how many.
 *
 * test_group_commit_gated: group commit, shown without timing.  The shim's
 * gate holds every WAL sync until the test lets it through, so the test
 * knows what is queued: append A1 is held in its sync; A2, A3 and a ping
 * are sent on the same connection, and the ping's reply proves A2 and A3
 * were dispatched to the commit queue (one connection is served in order);
 * releasing A1's sync must then commit A2 and A3 as ONE group: stats say 2
 * groups, 3 requests, largest group 2.  (This replaces the
 * commit_max_group >= 2 assertion of test_concurrency.c, which depended on
 * 8 writers happening to overlap.)
 *
 * Sanitizers: under ASan/TSan the shim runs after the sanitizer runtime in
 * LD_PRELOAD (fu_preload), which works with gcc's shared runtimes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <msgpack.h>

#include "fault_util.h"
#include "maos/proto.h"

enum { TAG = 0x10, S0_APPENDS = 4, B_APPENDS = 8 };

enum where { OPEN, RUN, CLOSE, ABSORBED };
static const char *const where_names[] = {"at open", "while running",
                                          "at shutdown", "absorbed"};

typedef struct fault_case {
    const char *name;
    const char *fault; /* MAOS_SHIM_FAULT */
    const char *err;   /* MAOS_SHIM_ERRNO */
    const char *tear;  /* MAOS_SHIM_TEAR or NULL */
    int sticky;
    enum where where;
    int wal; /* 1: maosd --journal-mb 0 (RocksDB's WAL carries durability) */
} fault_case;

/*
 * The sweep.  Counts are per class and op.  Faults meant for the open
 * count from the process start: phase B's open writes a new MANIFEST (22
 * writes, 1 sync), CURRENT (a temp file: write, sync; rename; directory
 * sync) and an OPTIONS file.  All others count from when the test arms
 * the shim (SIGUSR1) once maosd serves, so whatever the open writes does
 * not shift them: each append is then one WAL write and one WAL sync;
 * shutdown syncs the WAL once more and flushes the memtables: per column
 * family with data a table file (write, sync) and a MANIFEST update
 * (writes, sync).
 */
static const fault_case cases[] = {
    {"journal_write_eio", "journal:write:1", "EIO", NULL, 0, RUN, 0},
    {"journal_write_enospc", "journal:write:3", "ENOSPC", NULL, 0, RUN, 0},
    {"journal_write_torn", "journal:write:2", "EIO", "20", 0, RUN, 0},
    {"journal_sync_eio", "journal:sync:2", "EIO", NULL, 0, RUN, 0},
    {"journal_disk_full", "journal:write:4", "ENOSPC", NULL, 1, RUN, 0},
    {"journal_lap_at_shutdown", "journal:sync:9", "EIO", NULL, 0, CLOSE, 0},
    {"wal_write_eio", "wal:write:1", "EIO", NULL, 0, RUN, 1},
    {"wal_write_enospc", "wal:write:3", "ENOSPC", NULL, 0, RUN, 1},
    {"wal_write_torn", "wal:write:2", "EIO", "20", 0, RUN, 1},
    {"wal_sync_eio", "wal:sync:2", "EIO", NULL, 0, RUN, 1},
    {"wal_disk_full", "wal:write:4", "ENOSPC", NULL, 1, RUN, 1},
    {"wal_sync_at_shutdown", "wal:sync:9", "EIO", NULL, 0, CLOSE, 1},
    {"sst_write_eio", "sst:write:1", "EIO", NULL, 0, CLOSE, 0},
    {"sst_write_torn_full", "sst:write:1", "ENOSPC", "100", 1, CLOSE, 0},
    {"sst_sync_eio", "sst:sync:1", "EIO", NULL, 0, CLOSE, 0},
    {"manifest_sync_flush", "manifest:sync:1", "EIO", NULL, 0, CLOSE, 0},
    {"manifest_write_open", "manifest:write:1", "EIO", NULL, 0, OPEN, 0},
    {"manifest_write_torn_open", "manifest:write:5", "EIO", "7", 0, OPEN, 0},
    {"manifest_sync_open", "manifest:sync:1", "EIO", NULL, 0, OPEN, 0},
    {"current_write_open", "current:write:1", "ENOSPC", NULL, 0, OPEN, 0},
    {"current_rename_open", "current:rename:1", "EIO", NULL, 0, OPEN, 0},
    {"dir_sync_open", "dir:sync:1", "EIO", NULL, 0, OPEN, 0},
    {"options_write_open", "options:write:1", "ENOSPC", NULL, 0, ABSORBED, 0},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static const char *const streams[] = {"fault-a", "fault-b"};

static uint32_t k_of(uint32_t w, uint32_t s)
{
    (void)w;
    return 1 + s % 3;
}

/* Writer w's append s, through c; 0 and *a filled, or the error. */
static int append_one(maos_ctx *c, uint32_t w, uint32_t s, fu_ack *a)
{
    uint32_t k = k_of(w, s), sn = s % 2;
    uint8_t ids[3][16];
    maos_event_spec ev[3];
    static const char data[] = "\x81\xa1n\x07"; /* {n: 7} */
    for (uint32_t i = 0; i < k; i++) {
        fu_mk_id(ids[i], TAG, w, s, i);
        ev[i] =
            (maos_event_spec){ids[i], "Fault", data, sizeof data - 1, NULL, 0};
    }
    maos_append_info info;
    memset(&info, 0, sizeof info);
    int rc = maos_append(c, streams[sn], MAOS_EXPECT_ANY, ev, k, &info);
    if (rc)
        return rc;
    if (info.count != k || info.duplicate)
        MT_FAIL("writer %u append %u: count %u duplicate %d", w, s, info.count,
                info.duplicate);
    *a = (fu_ack){.w = w,
                  .s = s,
                  .k = k,
                  .stream_no = sn,
                  .pos = info.position,
                  .version = info.version};
    return 0;
}

/* The log as maosd serves it now must be exactly the acknowledged appends
 * (nothing refused visible). */
static void check_exact(maos_ctx *c, const fu_acks *acks, const char *when)
{
    fu_log log = {0};
    fu_log_load(c, &log);
    uint64_t extra =
        fu_check_history(&log, acks, TAG, 2, k_of, streams, 1, when);
    if (extra)
        MT_FAIL("%s: %llu refused appends are readable", when,
                (unsigned long long)extra);
    fu_log_free(&log);
}

/* Wait until maosd's log holds `what` n times (it acts on a signal or
 * reached a gate). */
static void wait_log(mt_daemon *d, const char *what, unsigned n)
{
    int64_t deadline = mt_now_us() + 30LL * 1000000;
    for (;;) {
        char *buf = mt_read_file(d->log, NULL);
        unsigned k = 0;
        for (const char *p = buf; p && (p = strstr(p, what)); p++)
            k++;
        free(buf);
        if (k >= n)
            return;
        if (mt_now_us() > deadline)
            MT_FAIL("maosd did not log \"%s\" %u times in 30 s", what, n);
        if (!mt_daemon_alive(d))
            MT_FAIL("maosd died");
        mt_sleep_ms(2);
    }
}

static void run_case(void **state)
{
    const fault_case *fc = *state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    fu_acks acks = {0};
    if (fc->wal) {
        mt_daemon_add_arg(d, "--journal-mb");
        mt_daemon_add_arg(d, "0");
    }

    /* A: the acknowledged base. */
    mt_daemon_up(d);
    maos_ctx *c = fu_connect(d);
    for (uint32_t s = 0; s < S0_APPENDS; s++) {
        fu_ack a;
        int rc = append_one(c, 0, s, &a);
        if (rc)
            MT_FAIL("phase A append %u: %d (%s) %s", s, rc, maos_err_name(rc),
                    c->errstr);
        fu_acks_push(&acks, &a);
    }
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    /* B: the same dir under the shim. */
    fu_preload(d, fu_shim_path());
    mt_daemon_setenv(d, "MAOS_SHIM_DIR", d->data);
    mt_daemon_setenv(d, "MAOS_SHIM_FAULT", fc->fault);
    mt_daemon_setenv(d, "MAOS_SHIM_ERRNO", fc->err);
    if (fc->tear)
        mt_daemon_setenv(d, "MAOS_SHIM_TEAR", fc->tear);
    if (fc->sticky)
        mt_daemon_setenv(d, "MAOS_SHIM_STICKY", "1");
    print_message("%s: %s %s%s%s%s, expected %s\n", fc->name, fc->fault,
                  fc->err, fc->tear ? " torn at " : "",
                  fc->tear ? fc->tear : "", fc->sticky ? " sticky" : "",
                  where_names[fc->where]);
    /* at open (and absorbed at open): counted from the start; else from
     * when the daemon serves */
    int from_start = fc->where == OPEN || fc->where == ABSORBED;
    if (!from_start)
        mt_daemon_setenv(d, "MAOS_SHIM_ARM", "signal");
    uint32_t refused = 0;
    int started = mt_daemon_start(d) == 0;
    if (started && !from_start) {
        MT_EQ_INT(kill(d->pid, SIGUSR1), 0);
        wait_log(d, "faultshim: armed", 1);
    }
    if (!started) {
        if (fc->where != OPEN)
            MT_FAIL("maosd did not start under %s (expected the fault %s)",
                    fc->fault, where_names[fc->where]);
        if (!fu_log_has(d, "faultshim: inject"))
            MT_FAIL("maosd did not start, and the shim injected nothing");
        MT_EQ_INT(d->start_status, 1);
        if (!fu_log_has(d, "cannot open database"))
            MT_FAIL("maosd failed at open without saying why (log: %s)",
                    d->log);
        /* mt_daemon_start printed the status; the log has no crash. */
        if (fu_log_has(d, "AddressSanitizer") ||
            fu_log_has(d, "ThreadSanitizer") || fu_log_has(d, "runtime error"))
            MT_FAIL("maosd crashed at open (log: %s)", d->log);
    } else {
        if (fc->where == OPEN)
            MT_FAIL("maosd started although %s was to fail at open", fc->fault);
        c = fu_connect(d);
        for (uint32_t s = 0; s < B_APPENDS; s++) {
            fu_ack a;
            int rc = append_one(c, 1, s, &a);
            if (rc == 0) {
                if (refused)
                    MT_FAIL("append %u acknowledged after an earlier one was "
                            "refused: READ_ONLY must be sticky",
                            s);
                fu_acks_push(&acks, &a);
                continue;
            }
            /* the failed write: outcome unknown; every later one is
             * refused before writing */
            if (rc != (refused ? MAOS_EREAD_ONLY : MAOS_EOUTCOME_UNKNOWN))
                MT_FAIL("append %u: %d (%s) %s, want %s", s, rc, maos_err_name(rc),
                        c->errstr, refused ? "READ_ONLY" : "OUTCOME_UNKNOWN");
            refused++;
        }
        maos_stats_info st;
        MT_EQ_ERR(maos_stats_get(c, &st), 0);
        if (fc->where == RUN) {
            if (!refused)
                MT_FAIL("every append was acknowledged although %s was to "
                        "fail while running",
                        fc->fault);
            if (!fu_log_has(d, "faultshim: inject"))
                MT_FAIL("appends were refused, but the shim injected nothing");
            MT_EQ_STR(st.state, "read_only");
            MT_CMP_INT(st.commit_errors, >=, 1);
        } else {
            MT_EQ_INT(refused, 0);
            MT_EQ_STR(st.state, "ok");
        }
        /* reads go on, on this connection and on a new one */
        MT_EQ_ERR(maos_ping(c), 0);
        check_exact(c, &acks, "under the shim");
        maos_free(c);
        c = fu_connect(d);
        check_exact(c, &acks, "under the shim, new connection");
        maos_free(c);
        int st_exit = mt_daemon_stop(d);
        print_message("maosd under the shim: %u of %u appends refused, exit "
                      "status %d\n",
                      refused, B_APPENDS, st_exit);
        if (st_exit < 0 || st_exit >= 128)
            MT_FAIL("maosd under the shim ended with status %d (a crash or a "
                    "hang)",
                    st_exit);
        if (!fu_log_has(d, "faultshim: inject"))
            MT_FAIL("the shim injected nothing (%s %s)", fc->fault,
                    where_names[fc->where]);
    }

    /* C: without the shim, everything acknowledged is there. */
    mt_daemon_clearenv(d);
    mt_daemon_up(d);
    c = fu_connect(d);
    fu_log log = {0};
    fu_log_load(c, &log);
    uint64_t unacked = fu_check_history(&log, &acks, TAG, 2, k_of, streams, 1,
                                        "after restart");
    MT_CMP_INT(unacked, <=, refused);
    print_message("after restart: %zu acknowledged appends all stored; %llu "
                  "refused append(s) stored whole (outcome was unknown)\n",
                  acks.n, (unsigned long long)unacked);
    fu_log_free(&log);
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    MT_EQ_STR(st.state, "ok");
    fu_ack a;
    int rc = append_one(c, 1, 1000, &a);
    if (rc)
        MT_FAIL("append after the restart: %d (%s) %s", rc, maos_err_name(rc),
                c->errstr);
    maos_free(c);
    fu_verify_ok(d);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    fu_acks_free(&acks);
}

/* ---- group commit, held at the gate ----------------------------------- */

/* Encode append (writer 2, append s) or ping into sb, with rid. */
static void enc_req(msgpack_sbuffer *sb, uint64_t rid, int ping, uint32_t s)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (ping) {
        maos_enc_simple(&pk, rid, MAOS_OP_PING);
        return;
    }
    maos_event_in ev;
    memset(&ev, 0, sizeof ev);
    ev.type = (maos_slice){"Group", 5};
    ev.data = (maos_slice){"\x01", 1};
    fu_mk_id(ev.id, TAG, 2, s, 0);
    ev.has_id = 1;
    maos_append_in ap = {{"group-1", 7}, MAOS_EXPECT_ANY, 1, &ev};
    maos_enc_append(&pk, rid, &ap);
}

static void send_req(int fd, uint64_t rid, int ping, uint32_t s)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    enc_req(&sb, rid, ping, s);
    MT_EQ_INT(fu_send_frame(fd, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* The next reply on fd: its rid (it must be ok). */
static uint64_t next_reply(int fd)
{
    char *f = NULL;
    uint32_t len = 0;
    MT_EQ_INT(mt_recv_frame(fd, &f, &len, 1 << 20, 30000), 1);
    maos_reply rep;
    if (maos_reply_decode(f, len, &rep) || !rep.ok) {
        free(f);
        MT_FAIL("a reply that is not ok");
    }
    free(f);
    return rep.rid;
}

static void test_group_commit_gated(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    char fifo[300], gate_env[400];
    snprintf(fifo, sizeof fifo, "%s/gate", d->dir);
    MT_EQ_INT(mkfifo(fifo, 0600), 0);
    /* O_RDWR: ours is open before the daemon opens its end, without
     * blocking */
    int gate = open(fifo, O_RDWR | O_CLOEXEC);
    MT_CMP_INT(gate, >=, 0);
    snprintf(gate_env, sizeof gate_env, "journal:sync:%s", fifo);
    /* Create the store first: its creation markers are a synced write of
     * their own (recover.c), which the gate would hold at start-up. */
    mt_daemon_up(d);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    fu_preload(d, fu_shim_path());
    mt_daemon_setenv(d, "MAOS_SHIM_DIR", d->data);
    mt_daemon_setenv(d, "MAOS_SHIM_GATE", gate_env);
    mt_daemon_up(d);

    int fd = mt_connect(d->sock);
    MT_CMP_INT(fd, >=, 0);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    maos_enc_hello(&pk, 1, MAOS_PROTOCOL_VERSION, "group-test");
    MT_EQ_INT(fu_send_frame(fd, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
    MT_EQ_U64(next_reply(fd), 1);

    send_req(fd, 2, 0, 0); /* A1: its group waits in the WAL sync */
    wait_log(d, "gate: waiting", 1);
    send_req(fd, 3, 0, 1); /* A2 */
    send_req(fd, 4, 0, 2); /* A3 */
    send_req(fd, 5, 1, 0); /* ping: answered after A2, A3 were queued */
    MT_EQ_U64(next_reply(fd), 5);
    MT_EQ_INT(write(gate, "g", 1), 1); /* A1's sync goes through */
    wait_log(d, "gate: waiting", 2);   /* the next group is at its sync */
    MT_EQ_INT(write(gate, "g", 1), 1);
    uint64_t got = 0;
    for (int i = 0; i < 3; i++)
        got |= 1ull << next_reply(fd);
    MT_EQ_U64(got, (1ull << 2) | (1ull << 3) | (1ull << 4));
    close(gate); /* EOF: later syncs (the shutdown's) pass */

    maos_ctx *c = fu_connect(d);
    maos_stats_info st;
    MT_EQ_ERR(maos_stats_get(c, &st), 0);
    print_message("commit groups %llu, requests %llu, max group %llu\n",
                  (unsigned long long)st.commit_groups,
                  (unsigned long long)st.commit_requests,
                  (unsigned long long)st.commit_max_group);
    MT_EQ_U64(st.commit_requests, 3);
    MT_EQ_U64(st.commit_groups, 2);
    MT_EQ_U64(st.commit_max_group, 2);
    maos_free(c);
    close(fd);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    struct CMUnitTest tests[N_CASES + 1];
    for (size_t i = 0; i < N_CASES; i++)
        tests[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL,
                                       (void *)&cases[i]};
    tests[N_CASES] =
        (struct CMUnitTest)cmocka_unit_test(test_group_commit_gated);
    return mt_main(argc, argv, tests, N_CASES + 1, 120);
}
