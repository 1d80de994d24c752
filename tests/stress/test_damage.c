/*
 * tests/stress/test_damage.c -- damage is never silent (issue 15, findings
 * 1, 2 and 7; docs/ARCHITECTURE.md "Storage integrity").
 *
 * Fixtures are real stores: a maosd takes acknowledged appends through the
 * client library and is killed with kill -9 (so the events are only in the
 * RocksDB WAL) or stopped cleanly (so they are in table files); then the
 * files are damaged the way disks, crashes and careless operators damage
 * them, and maosd is started on the result:
 *
 *  - the same for maosd's journal (the default; the WAL cases run with
 *    --journal-mb 0): a torn last record recovers and is reported, two
 *    bytes in a record in the middle refuse (file named, valid records
 *    past it counted) and --salvage opens up to them, records zeroed
 *    from the middle on are refused through MAOS-HEAD, both superblocks
 *    damaged refuse (--salvage moves the file aside and records the loss);
 *  - a torn tail (the newest WAL ends inside a record, or its last record
 *    is garbage) recovers, is reported in the log, and loses nothing;
 *  - two bytes overwritten in the middle of the WAL: exit status 3, the
 *    WAL file and the affected positions named, the WAL left as it was;
 *    --salvage opens up to the damage and records the loss in $system;
 *  - the WAL cut at a record boundary (looks like a clean end to RocksDB):
 *    refused through MAOS-HEAD; missing CURRENT / MANIFEST / MAOS-HEAD:
 *    refused with the file named; --salvage gets past a missing CURRENT
 *    without losing anything;
 *  - a byte flipped in the table file that holds events: maosctl verify
 *    names the first position that cannot be read and the file; in the
 *    block of the newest events, start-up refuses naming the file;
 *  - a rewritten newest event: start-up refuses (its hash is not the log
 *    head's); a daemon made to skip that check (fault build) is still
 *    caught by verify, which checks the head against the stored head hash;
 *  - a non-empty directory that is no store is refused and left alone; an
 *    empty one becomes a store; a store without MAOS (made before it
 *    existed) is adopted; MAOS of another store is refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <sodium.h>

#include "harness.h"
#include "keys.h"
#include "maos/client.h"
#include "journal.h"
#include "store.h"

enum {
    BATCHES = 12,        /* appends of BATCH events ... */
    BATCH = 100,
    SINGLES = 50,        /* ... then single-event appends */
    EVENTS = BATCHES * BATCH + SINGLES,
};

/* ---- fixtures ---------------------------------------------------------------- */

static maos_ctx *client(mt_daemon *d)
{
    maos_ctx *c = maos_connect_timeout(d->sock, 30000);
    MT_TRUE(c != NULL);
    if (c->err)
        MT_FAIL("connect %s: %s", d->sock, c->errstr);
    return c;
}

/* Append the fixture's events; every one acknowledged. */
static void fill(mt_daemon *d)
{
    maos_ctx *c = client(d);
    char data[BATCH][64];
    maos_event_spec ev[BATCH];
    for (int b = 0; b < BATCHES + SINGLES; b++) {
        int n = b < BATCHES ? BATCH : 1;
        for (int i = 0; i < n; i++) {
            /* a msgpack str8 of ~40 bytes: records of ~120 bytes */
            int len = snprintf(data[i] + 2, sizeof data[i] - 2,
                               "event %04d of append %04d padding....", i, b);
            data[i][0] = (char)0xd9;
            data[i][1] = (char)len;
            ev[i] = (maos_event_spec){.type = "t", .data = data[i],
                                      .data_len = (size_t)len + 2};
        }
        char stream[32];
        snprintf(stream, sizeof stream, "s%d", b < BATCHES ? b : 999);
        maos_append_info info = {0}; /* ids/ids_cap are inputs */
        int rc = maos_append(c, stream, MAOS_EXPECT_ANY, ev, (size_t)n, &info);
        if (rc)
            MT_FAIL("append %d: %s", b, c->errstr);
    }
    maos_free(c);
}

/* A store whose EVENTS acknowledged events are only in maosd's journal
 * (the default), or with rocksdb_wal only in RocksDB's WAL (--journal-mb
 * 0: d->args[0..1]). */
static mt_daemon *store_killed(int rocksdb_wal)
{
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    if (rocksdb_wal) {
        mt_daemon_add_arg(d, "--journal-mb");
        mt_daemon_add_arg(d, "0");
    }
    mt_daemon_up(d);
    fill(d);
    mt_daemon_kill9(d);
    return d;
}

static mt_daemon *wal_store(void)
{
    return store_killed(1);
}

/* A store whose events are in table files (clean shutdown flushes). */
static mt_daemon *table_store(void)
{
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    fill(d);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    return d;
}

/* The path of the newest (highest-numbered) file ending in suffix, or of
 * the largest when largest is set. */
static void find_file(const mt_daemon *d, const char *suffix, int largest,
                      char *out, size_t cap)
{
    DIR *dir = opendir(d->data);
    MT_TRUE(dir != NULL);
    struct dirent *e;
    unsigned long long best = 0;
    out[0] = 0;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name), sl = strlen(suffix);
        if (n <= sl || strcmp(e->d_name + n - sl, suffix))
            continue;
        char path[600];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", d->data, e->d_name);
        MT_EQ_INT(stat(path, &st), 0);
        unsigned long long key =
            largest ? (unsigned long long)st.st_size : strtoull(e->d_name, NULL, 10);
        if (!out[0] || key > best) {
            best = key;
            snprintf(out, cap, "%s", path);
        }
    }
    closedir(dir);
    if (!out[0])
        MT_FAIL("no *%s file in %s", suffix, d->data);
}

static off_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        MT_FAIL("stat %s: %s", path, strerror(errno));
    return st.st_size;
}

static void overwrite(const char *path, off_t at, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    MT_TRUE(fd >= 0);
    MT_EQ_INT(pwrite(fd, bytes, n, at), (long long)n);
    close(fd);
}

/* Complement the byte at `at`: always a change (overwriting with a fixed
 * byte left the file as it was when that byte was already there: about
 * one run in 256 of a compressed table file). */
static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    MT_TRUE(fd >= 0);
    unsigned char b;
    MT_EQ_INT(pread(fd, &b, 1, at), 1);
    b = (unsigned char)~b;
    MT_EQ_INT(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void remove_file(const mt_daemon *d, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", d->data, name);
    if (unlink(path))
        MT_FAIL("unlink %s: %s", path, strerror(errno));
}

/* Append to the newest WAL what a crash mid-write leaves: a record header
 * (WAL format: crc32c(4) length(2, LE) type(1), type 1 = whole record)
 * and either half its payload (short) or all of it as garbage. */
static void tear_wal(const mt_daemon *d, int short_write)
{
    char wal[600];
    find_file(d, ".log", 0, wal, sizeof wal);
    off_t size = file_size(wal);
    unsigned char buf[32768 + 400];
    size_t n = 0;
    size_t left = 32768 - (size_t)(size % 32768);
    if (left < 7) { /* a block's last bytes are padding */
        memset(buf, 0, left);
        n = left;
        left = 32768;
    }
    size_t len = left - 7 < 300 ? left - 7 : 300;
    memcpy(buf + n, "\x11\x22\x33\x44", 4);
    buf[n + 4] = (unsigned char)(len & 0xff);
    buf[n + 5] = (unsigned char)(len >> 8);
    buf[n + 6] = 1;
    n += 7;
    size_t body = short_write ? len / 2 : len;
    memset(buf + n, 0xab, body);
    n += body;
    overwrite(wal, size, buf, n);
}

/* Run maosd on d's directory expecting it to refuse: exit status, and its
 * log (stderr) in *r. */
static int refused_start(mt_daemon *d, mt_run *r, const char *extra)
{
    const char *argv[24] = {d->bin,    "--data-dir", d->data, "--socket", d->sock,
                            "--log-level", "info"};
    int a = 7;
    for (int i = 0; d->args[i] && a < 20; i++)
        argv[a++] = d->args[i];
    argv[a] = extra;
    int st = mt_spawn(argv, NULL, NULL, 0, 60000, r);
    if (st != 3) /* the caller's assertion shows the status; this, why */
        fprintf(stderr, "maosd exited %d; its stderr:\n%s\n", st, r->err ? r->err : "");
    return st;
}

static void expect_in(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        MT_FAIL("expected \"%s\" in:\n%s", needle, hay ? hay : "(null)");
}

static char *log_text(const mt_daemon *d)
{
    char *t = mt_read_file(d->log, NULL);
    MT_TRUE(t != NULL);
    return t;
}

static uint64_t head_of(mt_daemon *d)
{
    maos_ctx *c = client(d);
    maos_stats_info st;
    if (maos_stats_get(c, &st))
        MT_FAIL("stats: %s", c->errstr);
    maos_free(c);
    return st.head_position;
}

static void verify_ok(mt_daemon *d, uint64_t head)
{
    mt_run r;
    char want[64];
    MT_EQ_INT(mt_ctl(d, &r, "verify", NULL), 0);
    snprintf(want, sizeof want, "head %llu", (unsigned long long)head);
    expect_in(r.out, want);
    mt_run_free(&r);
}

/* BLAKE2b-256 of a file's bytes, to show a refusal left it alone. */
static void file_hash(const char *path, unsigned char out[32])
{
    size_t n;
    char *p = mt_read_file(path, &n);
    MT_TRUE(p != NULL);
    crypto_generichash(out, 32, (const unsigned char *)p, n, NULL, 0);
    free(p);
}

/* Start d with --salvage after damage: it opens up to the damage (head
 * between 1 and EVENTS), logs SALVAGE and records one `salvage` event in
 * $system at the new head; that page in *pg (caller frees). */
static uint64_t start_salvaged(mt_daemon *d, maos_page **pg_out)
{
    mt_daemon_add_arg(d, "--salvage");
    mt_daemon_up(d);
    uint64_t head = head_of(d);
    MT_CMP_INT(head, <, EVENTS);
    MT_CMP_INT(head, >, 1);
    char *log = log_text(d);
    expect_in(log, "SALVAGE");
    free(log);
    maos_ctx *c = client(d);
    maos_page *pg;
    MT_EQ_ERR(maos_read(c, "$system", 0, 0, 10, &pg), 0);
    MT_EQ_INT(pg->n, 1);
    MT_EQ_MEM_STR(pg->events[0].type, pg->events[0].type_len, "salvage");
    MT_EQ_U64(pg->events[0].position, head);
    maos_free(c);
    *pg_out = pg;
    return head;
}

/* After a salvaged start: verify OK at head; salvage is one act, so the
 * next start without it (d->args[argi], the "--salvage") is clean. */
static void salvage_was_one_act(mt_daemon *d, uint64_t head, int argi)
{
    verify_ok(d, head);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    MT_EQ_STR(d->args[argi], "--salvage");
    free(d->args[argi]);
    d->args[argi] = NULL;
    mt_daemon_up(d);
    MT_EQ_U64(head_of(d), head);
}

/* ---- WAL ----------------------------------------------------------------------- */

static void test_torn_tail_recovers(void **state)
{
    (void)state;
    for (int garbage = 0; garbage < 2; garbage++) {
        mt_daemon *d = wal_store();
        tear_wal(d, !garbage);
        mt_daemon_up(d);
        MT_EQ_U64(head_of(d), EVENTS);
        char *log = log_text(d);
        expect_in(log, "recovered from a torn write");
        expect_in(log, "nothing acknowledged was lost");
        expect_in(log, garbage ? "checksum mismatch" : "ends inside a record");
        free(log);
        verify_ok(d, EVENTS);
        mt_daemon_free(d);
        /* the next fixture gets a fresh directory name */
        char path[600];
        snprintf(path, sizeof path, "%s/d", mt_test_dir());
        const char *argv[] = {"/bin/rm", "-rf", path, NULL};
        mt_run r;
        MT_EQ_INT(mt_spawn(argv, NULL, NULL, 0, 60000, &r), 0);
        mt_run_free(&r);
    }
}

static void test_wal_damage_refuses_then_salvage(void **state)
{
    (void)state;
    mt_daemon *d = wal_store();
    char wal[600];
    find_file(d, ".log", 0, wal, sizeof wal);
    overwrite(wal, file_size(wal) / 3, "\xde\xad", 2);
    unsigned char before[32], after[32];
    file_hash(wal, before);

    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "write-ahead log");
    expect_in(r.err, strrchr(wal, '/') + 1); /* names the file */
    expect_in(r.err, "checksum mismatch");
    char want[64];
    snprintf(want, sizeof want, "acknowledged up to %d", EVENTS);
    expect_in(r.err, want);
    expect_in(r.err, "--salvage");
    mt_run_free(&r);
    file_hash(wal, after);
    MT_TRUE(memcmp(before, after, 32) == 0); /* left as it was */

    /* Salvage: open up to the damage, say so, record it. */
    maos_page *pg;
    uint64_t head = start_salvaged(d, &pg);
    maos_ctx *c = client(d);
    /* data: {reason, wal, acknowledged_head, recovered_head, repaired,
     * lost_from, lost_to} */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    MT_EQ_INT(msgpack_unpack_next(&u, pg->events[0].data, pg->events[0].data_len, NULL),
              MSGPACK_UNPACK_SUCCESS);
    MT_EQ_INT(u.data.type, MSGPACK_OBJECT_MAP);
    uint64_t lost_from = 0, lost_to = 0, acked = 0;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        const char *k = kv->key.via.str.ptr;
        uint32_t kl = kv->key.via.str.size;
        if (kl == 9 && !memcmp(k, "lost_from", 9))
            lost_from = kv->val.via.u64;
        else if (kl == 7 && !memcmp(k, "lost_to", 7))
            lost_to = kv->val.via.u64;
        else if (kl == 17 && !memcmp(k, "acknowledged_head", 17))
            acked = kv->val.via.u64;
    }
    msgpack_unpacked_destroy(&u);
    MT_EQ_U64(lost_from, head);       /* the salvage event took the first lost place */
    MT_EQ_U64(lost_to, EVENTS);
    MT_EQ_U64(acked, EVENTS);
    maos_page_free(pg);
    /* Clients cannot write there. */
    maos_event_spec ev = {.type = "x"};
    MT_EQ_ERR(maos_append(c, "$system", MAOS_EXPECT_ANY, &ev, 1, NULL),
              MAOS_EINVALID_NAME);
    maos_free(c);
    salvage_was_one_act(d, head, 2);
}

static void test_wal_cut_at_record_boundary(void **state)
{
    (void)state;
    mt_daemon *d = wal_store();
    char wal[600];
    find_file(d, ".log", 0, wal, sizeof wal);
    /* Half the file: RocksDB replays up to there and calls it the end (a
     * cut inside a record looks the same to it); MAOS-HEAD knows better. */
    MT_EQ_INT(truncate(wal, file_size(wal) / 2), 0);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "acknowledged events are missing");
    char want[64];
    snprintf(want, sizeof want, "positions up to %d were acknowledged", EVENTS);
    expect_in(r.err, want);
    mt_run_free(&r);
}

/* ---- the journal (daemon/journal.h has the layout) ---------------------------- */

typedef struct {
    char path[600];
    uint64_t off[BATCHES + SINGLES + 64]; /* of each record of the lap */
    size_t n;
    uint64_t end; /* past the last record */
    uint64_t lap, next_seq;
} jwalk;

/* Walk the journal's current lap the way the format says: records from
 * MAOSD_JOURNAL_DATA_OFF, each magic, len, lap, seq, check, payload,
 * padded to 8 bytes; stop at the first that is not one of this lap. */
static void journal_walk(const mt_daemon *d, jwalk *w)
{
    size_t size;
    memset(w, 0, sizeof *w);
    snprintf(w->path, sizeof w->path, "%s/%s", d->data, MAOSD_JOURNAL_FILE);
    char *f = mt_read_file(w->path, &size);
    MT_TRUE(f != NULL);
    uint64_t o = MAOSD_JOURNAL_DATA_OFF;
    while (o + MAOSD_JOURNAL_REC_HEAD <= size &&
           (!memcmp(f + o, MAOSD_JOURNAL_REC_MAGIC, 4) ||
            !memcmp(f + o, MAOSD_JOURNAL_REC_MAGIC_V1, 4))) {
        uint64_t lap = maosd_get_u64(f + o + 8), seq = maosd_get_u64(f + o + 16);
        if (w->n && lap != w->lap)
            break;
        MT_CMP_INT(w->n, <, sizeof w->off / sizeof w->off[0]);
        w->lap = lap;
        w->next_seq = seq + 1;
        w->off[w->n++] = o;
        o += (MAOSD_JOURNAL_REC_HEAD + maosd_get_u32(f + o + 4) + 7) & ~7ull;
    }
    w->end = o;
    free(f);
    /* every append of the fixture is one group, one record (after the
     * store's creation markers when it was made in this lap) */
    MT_CMP_INT(w->n, >=, BATCHES + SINGLES);
    MT_CMP_INT(w->n, <=, 1 + BATCHES + SINGLES);
}

static void test_journal_torn_tail_recovers(void **state)
{
    (void)state;
    mt_daemon *d = store_killed(0);
    jwalk w;
    journal_walk(d, &w);
    /* What a crash in the middle of the next record's write leaves: its
     * head (right magic, lap and seq) and a payload that is not what the
     * check covers. */
    char rec[MAOSD_JOURNAL_REC_HEAD + 304];
    memset(rec, 0xab, sizeof rec);
    memcpy(rec, MAOSD_JOURNAL_REC_MAGIC, 4);
    maosd_put_u32(rec + 4, 300);
    maosd_put_u64(rec + 8, w.lap);
    maosd_put_u64(rec + 16, w.next_seq);
    overwrite(w.path, (off_t)w.end, rec, sizeof rec);
    mt_daemon_up(d);
    MT_EQ_U64(head_of(d), EVENTS);
    char *log = log_text(d);
    expect_in(log, "recovered from a torn write");
    expect_in(log, "nothing acknowledged was lost");
    expect_in(log, "was torn by a crash mid-write");
    free(log);
    verify_ok(d, EVENTS);
    /* it started a new lap: a kill now loses nothing either */
    mt_daemon_kill9(d);
    mt_daemon_up(d);
    MT_EQ_U64(head_of(d), EVENTS);
}

/* Records in the first format (MJR1: a BLAKE2b-128 check), as a maosd
 * before SipHash left them in a crashed store, are still replayed, and
 * still checked: the first half of the lap rewritten in that format, one
 * byte of one of them flipped refuses the start; put back, every
 * acknowledged event is there. */
static void test_journal_v1_records_replay(void **state)
{
    (void)state;
    mt_daemon *d = store_killed(0);
    jwalk w;
    journal_walk(d, &w);
    size_t size;
    char *f = mt_read_file(w.path, &size);
    MT_TRUE(f != NULL);
    for (size_t i = 0; i < w.n / 2; i++) {
        char *h = f + w.off[i];
        uint32_t len = maosd_get_u32(h + 4);
        memcpy(h, MAOSD_JOURNAL_REC_MAGIC_V1, 4);
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, 16);
        crypto_generichash_update(&st, (unsigned char *)h, 24);
        crypto_generichash_update(&st, (unsigned char *)h + MAOSD_JOURNAL_REC_HEAD, len);
        crypto_generichash_final(&st, (unsigned char *)h + 24, 16);
        overwrite(w.path, (off_t)w.off[i], h, MAOSD_JOURNAL_REC_HEAD + len);
    }
    /* a flipped payload byte in a v1 record: damage, refused */
    uint64_t at = w.off[w.n / 4] + MAOSD_JOURNAL_REC_HEAD + 3;
    char orig = f[at], flip = (char)(orig ^ 0x40);
    overwrite(w.path, (off_t)at, &flip, 1);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "journal is damaged");
    mt_run_free(&r);
    overwrite(w.path, (off_t)at, &orig, 1);
    free(f);
    mt_daemon_up(d);
    MT_EQ_U64(head_of(d), EVENTS);
    verify_ok(d, EVENTS);
}

static void test_journal_damage_refuses_then_salvage(void **state)
{
    (void)state;
    mt_daemon *d = store_killed(0);
    jwalk w;
    journal_walk(d, &w);
    /* two bytes in the payload of a record in the middle */
    uint64_t at = w.off[w.n / 2] + MAOSD_JOURNAL_REC_HEAD + 20;
    overwrite(w.path, (off_t)at, "\xde\xad", 2);
    unsigned char before[32], after[32];
    file_hash(w.path, before);

    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "journal is damaged");
    expect_in(r.err, MAOSD_JOURNAL_FILE); /* names the file */
    char want[96];
    snprintf(want, sizeof want, "%zu valid records follow", w.n - w.n / 2 - 1);
    expect_in(r.err, want);
    expect_in(r.err, "--salvage");
    mt_run_free(&r);
    file_hash(w.path, after);
    MT_TRUE(memcmp(before, after, 32) == 0); /* left as it was */

    /* Salvage: up to the damage, recorded in $system. */
    maos_page *pg;
    uint64_t head = start_salvaged(d, &pg);
    maos_page_free(pg);
    salvage_was_one_act(d, head, 0);
}

static void test_journal_cut_at_record_boundary(void **state)
{
    (void)state;
    mt_daemon *d = store_killed(0);
    jwalk w;
    journal_walk(d, &w);
    /* The records from the middle on never reached the disk (zeros): the
     * journal ends cleanly there; MAOS-HEAD knows better. */
    size_t n = (size_t)(w.end - w.off[w.n / 2]);
    char *zero = calloc(1, n);
    MT_TRUE(zero != NULL);
    overwrite(w.path, (off_t)w.off[w.n / 2], zero, n);
    free(zero);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "acknowledged events are missing");
    char want[64];
    snprintf(want, sizeof want, "positions up to %d were acknowledged", EVENTS);
    expect_in(r.err, want);
    mt_run_free(&r);
}

static void test_journal_superblocks_damaged(void **state)
{
    (void)state;
    /* the store's markers in table files (a clean stop), the events only
     * in the journal */
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    mt_daemon_up(d);
    fill(d);
    mt_daemon_kill9(d);
    jwalk w;
    journal_walk(d, &w);
    overwrite(w.path, 0, "\xff\xff", 2);
    overwrite(w.path, 4096, "\xff\xff", 2);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, MAOSD_JOURNAL_FILE);
    expect_in(r.err, "no valid superblock");
    mt_run_free(&r);
    /* --salvage: the file goes aside, a new journal, the loss recorded */
    mt_daemon_add_arg(d, "--salvage");
    mt_daemon_up(d);
    char aside[700];
    snprintf(aside, sizeof aside, "%s.damaged", w.path);
    struct stat st;
    MT_EQ_INT(stat(aside, &st), 0);
    uint64_t head = head_of(d); /* what reached table files, + the record */
    MT_CMP_INT(head, <=, EVENTS);
    char *log = log_text(d);
    expect_in(log, "SALVAGE");
    free(log);
    verify_ok(d, head);
}

/* ---- missing files ----------------------------------------------------------- */

static void test_missing_current(void **state)
{
    (void)state;
    mt_daemon *d = store_killed(0);
    remove_file(d, "CURRENT");
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "CURRENT");
    expect_in(r.err, "refusing to start");
    mt_run_free(&r);
    /* never re-created as an empty store */
    char path[600];
    snprintf(path, sizeof path, "%s/CURRENT", d->data);
    MT_EQ_INT(access(path, F_OK), -1);

    /* salvage points CURRENT at the MANIFEST again: nothing lost */
    mt_daemon_add_arg(d, "--salvage");
    mt_daemon_up(d);
    MT_EQ_U64(head_of(d), EVENTS + 1); /* + the $system record */
    verify_ok(d, EVENTS + 1);
}

static void test_missing_manifest_and_head(void **state)
{
    (void)state;
    mt_daemon *d = table_store();
    DIR *dir = opendir(d->data);
    struct dirent *e;
    while ((e = readdir(dir)))
        if (!strncmp(e->d_name, "MANIFEST-", 9))
            remove_file(d, e->d_name);
    closedir(dir);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "MANIFEST-");
    mt_run_free(&r);
    /* Table files survive a lost MANIFEST: repair rebuilds it. */
    mt_daemon_add_arg(d, "--salvage");
    mt_daemon_up(d);
    MT_EQ_U64(head_of(d), EVENTS + 1);
    verify_ok(d, EVENTS + 1);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    remove_file(d, "MAOS-HEAD");
    free(d->args[0]);
    d->args[0] = NULL;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "MAOS-HEAD is missing");
    mt_run_free(&r);
}

/* ---- table files and verify ---------------------------------------------------- */

static void test_flipped_table_byte_verify_names_position(void **state)
{
    (void)state;
    mt_daemon *d = table_store();
    char sst[600];
    find_file(d, ".sst", 1, sst, sizeof sst); /* the events are the bulk */
    flip_byte(sst, file_size(sst) / 3);
    mt_daemon_up(d);
    mt_run r;
    MT_EQ_INT(mt_ctl(d, &r, "verify", NULL), 1);
    expect_in(r.out, "BAD: position ");
    expect_in(r.out, "cannot be read");
    expect_in(r.out, strrchr(sst, '/') + 1);
    /* the position named is the first one a read cannot return */
    unsigned long long bad = strtoull(strstr(r.out, "position ") + 9, NULL, 10);
    mt_run_free(&r);
    MT_CMP_INT(bad, >, 1);
    MT_CMP_INT(bad, <, EVENTS);
    maos_ctx *c = client(d);
    uint64_t from = 1, got = 0;
    for (;;) {
        maos_page *pg;
        int rc = maos_read_all(c, NULL, from, 0, 1000, &pg);
        if (rc) {
            MT_EQ_ERR(rc, MAOS_ECORRUPT);
            break;
        }
        got += pg->n;
        from = pg->next;
        int more = pg->has_next;
        maos_page_free(pg);
        MT_TRUE(more);
    }
    MT_EQ_U64(got, bad - 1);
    MT_EQ_U64(from, bad);
    maos_free(c);
    char *log = log_text(d);
    expect_in(log, strrchr(sst, '/') + 1); /* the daemon logged it, with the file */
    free(log);
}

/* A flipped byte in the block that holds the newest events: start-up
 * reads the newest event, so it refuses, naming the table file. */
static void test_flipped_table_byte_at_head_refuses(void **state)
{
    (void)state;
    mt_daemon *d = table_store();
    char sst[600];
    find_file(d, ".sst", 1, sst, sizeof sst);
    /* past the last data block come only the small filter/index blocks
     * and the footer of this file (~1.5 KB here) */
    flip_byte(sst, file_size(sst) - 2000);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "cannot read the last event");
    expect_in(r.err, strrchr(sst, '/') + 1);
    mt_run_free(&r);
}

/* Rewrite the record at the log head in place (daemon stopped): the same
 * length and layout, one data byte changed. */
static void tamper_head(const mt_daemon *d)
{
    maosd_store_opts o = {.dir = d->data};
    maosd_store *st;
    char err[512];
    if (maosd_store_open(&o, &st, NULL, err, sizeof err))
        MT_FAIL("open %s: %s", d->data, err);
    char k[8], *rec = NULL;
    size_t klen, rlen;
    MT_EQ_ERR(maosd_store_last(st, MAOSD_CF_EVENTS, k, sizeof k, &klen, &rec, &rlen), 0);
    char *p = memmem(rec, rlen, "padding", 7);
    MT_TRUE(p != NULL);
    p[0] = 'P';
    maosd_batch *b = maosd_batch_new(st);
    maosd_batch_put(b, MAOSD_CF_EVENTS, k, klen, rec, rlen);
    MT_EQ_ERR(maosd_store_write(st, b), 0);
    maosd_batch_free(b);
    free(rec);
    maosd_store_close(st);
}

static void test_rewritten_head_event(void **state)
{
    (void)state;
    mt_daemon *d = table_store();
    tamper_head(d);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    char want[96];
    snprintf(want, sizeof want, "the last event (position %d) is corrupt", EVENTS);
    expect_in(r.err, want);
    mt_run_free(&r);

    /* A daemon fooled into skipping the start-up checks (fault build):
     * verify still catches the newest event, which no later prev covers. */
    mt_daemon *f = mt_daemon_new("f", mt_maosd_fault_bin());
    snprintf(f->data, sizeof f->data, "%s", d->data);
    mt_daemon_setenv(f, "MAOS_FAULT_TRUST_HEAD", "1");
    mt_daemon_up(f);
    MT_EQ_INT(mt_ctl(f, &r, "verify", NULL), 1);
    snprintf(want, sizeof want, "BAD: position %d: the record does not match the head "
             "hash", EVENTS);
    expect_in(r.out, want);
    mt_run_free(&r);
}

/* ---- what a directory is ------------------------------------------------------- */

static void test_foreign_and_empty_dirs(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    MT_EQ_INT(mkdir(d->data, 0700), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/notes.txt", d->data);
    mt_write_file(path, "mine\n", 5);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "not empty and holds no maos store");
    mt_run_free(&r);
    size_t n;
    char *t = mt_read_file(path, &n);
    MT_TRUE(t && n == 5 && !memcmp(t, "mine\n", 5));
    free(t);
    DIR *dir = opendir(d->data);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        entries += e->d_name[0] != '.';
    closedir(dir);
    MT_EQ_INT(entries, 1); /* nothing was created beside it */

    /* empty: a new store, with its identity */
    MT_EQ_INT(unlink(path), 0);
    mt_daemon_up(d);
    char *log = log_text(d);
    expect_in(log, "created a new store");
    free(log);
    snprintf(path, sizeof path, "%s/MAOS", d->data);
    t = mt_read_file(path, NULL);
    MT_TRUE(t != NULL);
    expect_in(t, "maos-store 1\nid ");
    free(t);
}

static void test_legacy_adopted_and_mixed_refused(void **state)
{
    (void)state;
    mt_daemon *d = table_store();
    /* as a store made before MAOS existed */
    remove_file(d, "MAOS");
    remove_file(d, "MAOS-HEAD");
    mt_daemon_up(d);
    MT_EQ_U64(head_of(d), EVENTS);
    char *log = log_text(d);
    expect_in(log, "adopted store");
    free(log);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    /* MAOS of another store */
    mt_daemon *o = mt_daemon_new("other", NULL);
    mt_daemon_up(o);
    MT_EQ_INT(mt_daemon_stop(o), 0);
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/MAOS", o->data);
    snprintf(to, sizeof to, "%s/MAOS", d->data);
    size_t n;
    char *t = mt_read_file(from, &n);
    MT_TRUE(t != NULL);
    mt_write_file(to, t, n);
    free(t);
    mt_run r;
    MT_EQ_INT(refused_start(d, &r, NULL), 3);
    expect_in(r.err, "files of two stores are mixed");
    mt_run_free(&r);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_tail_recovers),
        cmocka_unit_test(test_wal_damage_refuses_then_salvage),
        cmocka_unit_test(test_wal_cut_at_record_boundary),
        cmocka_unit_test(test_journal_torn_tail_recovers),
        cmocka_unit_test(test_journal_damage_refuses_then_salvage),
        cmocka_unit_test(test_journal_cut_at_record_boundary),
        cmocka_unit_test(test_journal_superblocks_damaged),
        cmocka_unit_test(test_journal_v1_records_replay),
        cmocka_unit_test(test_missing_current),
        cmocka_unit_test(test_missing_manifest_and_head),
        cmocka_unit_test(test_flipped_table_byte_verify_names_position),
        cmocka_unit_test(test_flipped_table_byte_at_head_refuses),
        cmocka_unit_test(test_rewritten_head_event),
        cmocka_unit_test(test_foreign_and_empty_dirs),
        cmocka_unit_test(test_legacy_adopted_and_mixed_refused),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 120);
}
