/*
 * tests/subs/test_reads.c -- reads off the loop thread (issue 9, "Reads,
 * scans and catch-up off the loop thread"): the reader pool against a real
 * maosd, over raw sockets (proto + the harness only).
 *
 *  - read-your-writes across the pool: several forked processes append and
 *    at once read back what the reply acknowledged, on another connection
 *    and on the same one, many rounds each;
 *  - a read whose connection closes while the read is in flight: nothing
 *    crashes, nothing leaks (ASan's leak check runs at the daemon's clean
 *    exit), the memory it held is given back;
 *  - a read in flight does not hold up the loop: another connection's ping
 *    is answered while the read waits;
 *  - a catch-up slice whose subscription is removed while it is read
 *    pushes nothing and frees what it held;
 *  - a get is answered on the loop from memory when its entry is in a
 *    memtable or a cached block, and by a reader when it needs a file (the
 *    stats counters say which), right both ways;
 *  - read-ahead (readahead.c): paging through a stream or the log, every
 *    page after the first full one is answered from the page read ahead
 *    (stats reads_ahead), gap-free and in order, forward and backward; a
 *    request that differs (another limit) gets its own read; the page at
 *    the end is never kept, so a write answered after it was read ahead is
 *    in the next read (read-your-writes); a connection closed with a page
 *    read ahead or in flight leaks nothing (ASan's leak check at exit).
 * The gap-free guarantee of catch-up read off the loop is test_subs_gapfree's.
 *
 * The last two hold a read in flight on purpose with maosd-fault's
 * MAOS_FAULT_READ_GATE (the read waits on its reader thread until a file
 * exists): what the test asserts is an order of events, never a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "subs_util.h"
#include "tables_util.h"

#define RYW_PROCS 4
#define RYW_ROUNDS 150

typedef struct req {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} req;

static void req_init(req *r)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

/* The first record of a read/read_all reply (its position and version);
 * 0 when the reply holds no event. */
static int first_record(const maos_reply *rep, maos_record *rec)
{
    if (!rep->n_items)
        return 0;
    maos_mpr mr;
    uint32_t n = 0;
    maos_mpr_init(&mr, rep->items.ptr, rep->items.len);
    if (maos_mpr_array(&mr, &n) || n != rep->n_items || maos_record_next(&mr, rec))
        SU_FAIL("a read reply's events do not decode");
    return 1;
}

/* read `stream` from version v, limit 1: the record (must exist). */
static void read_version(su_conn *c, const char *stream, uint64_t v, maos_record *rec,
                         char **frame)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_enc_read(&r.pk, rid, su_s(stream), 1, v, 0, 1);
    maos_reply rep;
    int code = su_call(c, &r.sb, rid, &rep, frame);
    msgpack_sbuffer_destroy(&r.sb);
    if (code)
        SU_FAIL("read %s from version %llu: %s: %.*s", stream, (unsigned long long)v,
                maos_err_name(code), (int)rep.message.len, rep.message.ptr);
    if (!first_record(&rep, rec))
        SU_FAIL("read %s from version %llu right after its append was acknowledged: "
                "no event (read-your-writes broken)", stream, (unsigned long long)v);
}

/* read_all from position p, limit 1: the record (must exist). */
static void read_position(su_conn *c, uint64_t p, maos_record *rec, char **frame)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_enc_read_all(&r.pk, rid, 1, p, 0, 1, NULL);
    maos_reply rep;
    int code = su_call(c, &r.sb, rid, &rep, frame);
    msgpack_sbuffer_destroy(&r.sb);
    if (code)
        SU_FAIL("read_all from %llu: %s", (unsigned long long)p, maos_err_name(code));
    if (!first_record(&rep, rec))
        SU_FAIL("read_all from position %llu right after its append was acknowledged: "
                "no event (read-your-writes broken)", (unsigned long long)p);
}

/* One writer-reader: append to its own stream on w, then read the event
 * back on r (another connection) and on w (the same one). */
static void ryw_child(const char *sock, int k)
{
    su_conn *w = su_open(sock), *rd = su_open(sock);
    char stream[32];
    snprintf(stream, sizeof stream, "ryw-%d", k);
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    for (uint64_t i = 0; i < RYW_ROUNDS; i++) {
        su_mk_data(&data, (uint64_t)k, i, 16);
        su_ev_in ev = {"t", data.data, data.size};
        uint64_t pos = 0;
        int code = su_append(w, stream, &ev, 1, &pos);
        if (code)
            SU_FAIL("append %llu: %s", (unsigned long long)i, maos_err_name(code));
        maos_record rec;
        char *frame = NULL;
        read_version(rd, stream, i, &rec, &frame);
        SU_EQ_U64(rec.position, pos);
        SU_EQ_U64(rec.version, i);
        free(frame);
        read_position(rd, pos, &rec, &frame);
        SU_EQ_U64(rec.position, pos);
        free(frame);
        read_version(w, stream, i, &rec, &frame);
        SU_EQ_U64(rec.position, pos);
        free(frame);
    }
    msgpack_sbuffer_destroy(&data);
    su_close(w);
    su_close(rd);
    _exit(0);
}

/* Several processes append and read back at once: every read issued after
 * an append's reply sees the appended event, whichever reader thread and
 * connection serve it. */
static void test_read_your_writes_forked(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    pid_t kids[RYW_PROCS];
    for (int k = 0; k < RYW_PROCS; k++) {
        kids[k] = su_fork("reader-writer %d", k);
        if (kids[k] == 0)
            ryw_child(d->sock, k);
    }
    for (int k = 0; k < RYW_PROCS; k++) {
        int st = mt_wait(kids[k], 120000);
        if (st != 0)
            MT_FAIL("reader-writer %d exited with status %d (its message is above)", k, st);
    }
    su_conn *c = su_open(d->sock);
    SU_EQ_U64(su_head(c), RYW_PROCS * RYW_ROUNDS);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- reads held in flight (maosd-fault) ---------------------------------------- */

#define BIG_EVENTS 3000
#define BIG_PAD 1000

static char g_gate[512];

static mt_daemon *gated_daemon(void)
{
    mt_daemon *d = mt_daemon_new(NULL, mt_maosd_fault_bin());
    snprintf(g_gate, sizeof g_gate, "%s/read-gate", mt_test_dir());
    mt_daemon_setenv(d, "MAOS_FAULT_READ_GATE", g_gate);
    mt_daemon_up(d);
    return d;
}

static void gate_open(void)
{
    mt_write_file(g_gate, "", 0);
}

/* BIG_EVENTS events of about BIG_PAD bytes in stream "big", in batches. */
static void write_big(su_conn *c)
{
    msgpack_sbuffer data[100];
    su_ev_in evs[100];
    for (uint64_t i = 0; i < BIG_EVENTS; i += 100) {
        for (int j = 0; j < 100; j++) {
            msgpack_sbuffer_init(&data[j]);
            su_mk_data(&data[j], 1, i + (uint64_t)j, BIG_PAD);
            evs[j] = (su_ev_in){"big", data[j].data, data[j].size};
        }
        uint64_t pos;
        SU_EQ_ERR(su_append(c, "big", evs, 100, &pos), 0);
        for (int j = 0; j < 100; j++)
            msgpack_sbuffer_destroy(&data[j]);
    }
}

/* Send a read of all of "big" (limit: the most a reply may hold). */
static uint64_t send_big_read(su_conn *c)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_enc_read(&r.pk, rid, su_s("big"), 1, 0, 0, MAOS_READ_LIMIT_MAX);
    su_send_sb(c, &r.sb);
    msgpack_sbuffer_destroy(&r.sb);
    return rid;
}

/* While a read waits on its reader thread, the loop answers another
 * connection's ping and the reading connection has no reply yet; once the
 * read may go on, its reply arrives whole. */
static void test_ping_while_read_in_flight(void **state)
{
    (void)state;
    mt_daemon *d = gated_daemon();
    su_conn *w = su_open(d->sock);
    write_big(w);
    su_conn *a = su_open(d->sock), *b = su_open(d->sock);
    uint64_t rid = send_big_read(a);
    /* the read is held: pings (on b, and on a: its reply comes first) go
     * through the loop meanwhile, and so does an append */
    for (int i = 0; i < 10; i++)
        su_ping(b);
    su_ping(a);
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    su_mk_data(&data, 2, 0, 8);
    su_ev_in ev = {"t", data.data, data.size};
    uint64_t pos;
    SU_EQ_ERR(su_append(b, "other", &ev, 1, &pos), 0);
    msgpack_sbuffer_destroy(&data);
    maos_slice fr;
    MT_EQ_INT(su_recv(a, 0, &fr), -1); /* nothing for a yet */
    gate_open();
    maos_reply rep;
    char *frame = su_wait_reply(a, rid, &rep, 30000);
    MT_TRUE(rep.ok);
    MT_TRUE(rep.n_items > 0);
    maos_record rec;
    MT_TRUE(first_record(&rep, &rec));
    MT_EQ_U64(rec.version, 0);
    free(frame);
    su_close(a);
    su_close(b);
    su_close(w);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* One reply frame on c (any rid: replies to reads come back in the order
 * their jobs end), decoded into *rep; the frame's copy is returned. */
static char *next_reply(su_conn *c, maos_reply *rep)
{
    maos_slice fr;
    int r = su_recv(c, 30000, &fr);
    if (r <= 0)
        MT_FAIL("no reply within 30 s (%d)", r);
    char *copy = malloc(fr.len ? fr.len : 1);
    MT_TRUE(copy != NULL);
    memcpy(copy, fr.ptr, fr.len);
    MT_EQ_INT(maos_reply_decode(copy, fr.len, rep), 0);
    return copy;
}

/* The table reads (get, list) run on the reader pool too: while both wait
 * on their reader threads, another connection's pings and a put are
 * answered and the reading connection has nothing yet; once the reads may
 * go on, both replies arrive, whole and right. */
static void test_ping_while_table_reads_in_flight(void **state)
{
    (void)state;
    mt_daemon *d = gated_daemon();
    su_conn *a = su_open(d->sock), *b = su_open(d->sock);
    req r;
    req_init(&r);
    msgpack_sbuffer doc;
    msgpack_sbuffer_init(&doc);
    msgpack_packer dpk;
    msgpack_packer_init(&dpk, &doc, msgpack_sbuffer_write);
    msgpack_pack_map(&dpk, 1);
    msgpack_pack_str_with_body(&dpk, "f", 1);
    msgpack_pack_str_with_body(&dpk, "v", 1);
    uint64_t rid = su_rid(b);
    maos_enc_put(&r.pk, rid, su_s("kv.t"), su_s("k1"),
                 (maos_slice){doc.data, (uint32_t)doc.size}, MAOS_EXPECT_ANY, 0);
    maos_reply rep;
    char *frame;
    SU_EQ_ERR(su_call(b, &r.sb, rid, &rep, &frame), 0);
    free(frame);
    msgpack_sbuffer_destroy(&r.sb);

    req_init(&r);
    uint64_t rid_get = su_rid(a), rid_list = su_rid(a);
    maos_enc_get(&r.pk, rid_get, su_s("kv.t"), su_s("k1"));
    su_send_sb(a, &r.sb);
    msgpack_sbuffer_destroy(&r.sb);
    req_init(&r);
    maos_enc_list(&r.pk, rid_list, su_s("kv.t"), (maos_slice){0}, (maos_slice){0}, 0,
                  (maos_slice){0});
    su_send_sb(a, &r.sb);
    msgpack_sbuffer_destroy(&r.sb);
    /* both are held: pings (on b, and on a: its reply comes first) and a
     * put go through the loop meanwhile */
    for (int i = 0; i < 10; i++)
        su_ping(b);
    su_ping(a);
    req_init(&r);
    rid = su_rid(b);
    maos_enc_put(&r.pk, rid, su_s("kv.t"), su_s("k2"),
                 (maos_slice){doc.data, (uint32_t)doc.size}, MAOS_EXPECT_ANY, 0);
    SU_EQ_ERR(su_call(b, &r.sb, rid, &rep, &frame), 0);
    free(frame);
    msgpack_sbuffer_destroy(&r.sb);
    msgpack_sbuffer_destroy(&doc);
    maos_slice fr;
    MT_EQ_INT(su_recv(a, 0, &fr), -1); /* nothing for a yet */
    gate_open();
    int got_get = 0, got_list = 0;
    for (int i = 0; i < 2; i++) {
        frame = next_reply(a, &rep);
        MT_TRUE(rep.ok);
        if (rep.rid == rid_get && !got_get) {
            maos_entry e;
            MT_EQ_INT(maos_entry_decode(rep.entry.ptr, rep.entry.len, &e), 0);
            MT_TRUE(e.key.len == 2 && !memcmp(e.key.ptr, "k1", 2));
            got_get = 1;
        } else if (rep.rid == rid_list && !got_list) {
            /* read after the gate: k1, and k2 too (its put was answered
             * before the list's snapshot was taken) */
            MT_EQ_U64(rep.n_items, 2);
            got_list = 1;
        } else {
            MT_FAIL("unexpected reply rid %llu", (unsigned long long)rep.rid);
        }
        free(frame);
    }
    su_close(a);
    su_close(b);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* Connections that send reads and close before the replies come back:
 * the reads finish on their reader threads, their replies are dropped,
 * and what they held is given back (buffered_bytes falls to 0); maosd
 * stays up and exits cleanly (under ASan: without a leak). */
static void test_read_then_close(void **state)
{
    (void)state;
    mt_daemon *d = gated_daemon();
    su_conn *w = su_open(d->sock);
    write_big(w);
    maos_stats st;
    for (int k = 0; k < 8; k++) {
        su_conn *a = su_open(d->sock);
        for (int i = 0; i < 4; i++)
            send_big_read(a);
        su_ping(a); /* its reads were dispatched: they came before */
        su_close(a);
    }
    /* the closed connections are held by their reads: their cost counts */
    su_stats(w, &st);
    MT_TRUE(st.buffered_bytes > 0);
    gate_open();
    /* wait (with a deadline) until every read came back and was dropped */
    int64_t deadline = mt_now_us() + 30000000;
    for (;;) {
        su_stats(w, &st);
        if (st.buffered_bytes == 0 && st.connections == 1)
            break;
        if (mt_now_us() > deadline)
            MT_FAIL("reads of closed connections still held after 30 s: buffered_bytes "
                    "%llu, connections %llu", (unsigned long long)st.buffered_bytes,
                    (unsigned long long)st.connections);
        mt_sleep_ms(10);
    }
    /* still serving: the whole stream reads back */
    su_evs got = {0};
    maos_filter f = {.stream = su_s("big")};
    su_read_all(w, &f, 1, 0, &got);
    MT_EQ_U64(got.n, BIG_EVENTS);
    su_evs_free(&got);
    su_close(w);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void count_push(su_conn *c, const maos_push *p, void *user)
{
    (void)c;
    (void)p;
    (*(int *)user)++;
}

/* Subscriptions whose catch-up slice is being read when they go: one
 * unsubscribed (its slice comes back to nobody: nothing is pushed after the
 * unsubscribe reply), one whose peer closed (its connection closes once the
 * slice is back).  What they held is given back, and maosd exits cleanly
 * (under ASan: the detached slice leaks nothing). */
static void test_catch_up_slice_outlives_subscription(void **state)
{
    (void)state;
    mt_daemon *d = gated_daemon();
    su_conn *w = su_open(d->sock);
    write_big(w);
    su_conn *a = su_open(d->sock), *b = su_open(d->sock);
    int pushes = 0;
    su_set_push(a, count_push, &pushes);
    maos_filter f = {.stream = su_s("big")};
    uint64_t sub_a, sub_b, from;
    SU_EQ_ERR(su_subscribe(a, &f, MAOS_FROM_POSITION, 1, &sub_a, &from), 0);
    SU_EQ_ERR(su_subscribe(b, &f, MAOS_FROM_POSITION, 1, &sub_b, &from), 0);
    su_ping(a); /* the loop is free while both slices wait */
    SU_EQ_ERR(su_unsubscribe(a, sub_a), 0);
    su_close(b);
    /* b's connection waits for its slice before it closes (a peer that
     * closed gets everything it asked for first); a's slice is detached */
    maos_stats st;
    su_stats(w, &st);
    MT_TRUE(st.buffered_bytes > 0); /* both slices still held */
    gate_open();
    int64_t deadline = mt_now_us() + 30000000;
    for (;;) {
        su_stats(w, &st);
        if (st.buffered_bytes == 0 && st.connections == 2)
            break;
        if (mt_now_us() > deadline)
            MT_FAIL("catch-up slices still held after 30 s: buffered_bytes %llu, "
                    "connections %llu", (unsigned long long)st.buffered_bytes,
                    (unsigned long long)st.connections);
        mt_sleep_ms(10);
    }
    su_ping(a);
    MT_EQ_INT(pushes, 0);
    /* a new subscription catches up as usual */
    su_conn *c = su_open(d->sock);
    su_collector col = {0};
    su_sub one = {0};
    col.subs = &one;
    col.n = 1;
    su_set_push(c, su_collect, &col);
    SU_EQ_ERR(su_subscribe(c, &f, MAOS_FROM_POSITION, 1, &one.id, &one.from), 0);
    int64_t dl = mt_now_us() + 30000000;
    while (!one.caught_up && mt_now_us() < dl)
        su_pump(c, 100, NULL);
    MT_EQ_U64(one.got.n, BIG_EVENTS);
    MT_EQ_U64(one.caught_up, 1);
    su_evs_free(&one.got);
    su_close(c);
    su_close(a);
    su_close(w);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* The get of k1 on c: its field f must be want. */
static void get_f(su_conn *c, const char *want)
{
    maos_entry e;
    char *frame = NULL, f[32];
    MT_EQ_INT(tu_get(c, "kv.m", "k1", &e, &frame, NULL), 0);
    tu_doc_field(e.data, "f", f, sizeof f);
    MT_EQ_STR(f, want);
    free(frame);
}

/* What one get on c cost: *mem and *pooled are the counters' growth. */
static void get_counted(su_conn *c, const char *want, uint64_t *mem, uint64_t *pooled)
{
    maos_stats s0, s1;
    su_stats(c, &s0);
    get_f(c, want);
    su_stats(c, &s1);
    *mem = s1.reads_in_memory - s0.reads_in_memory;
    *pooled = s1.reads_pooled - s0.reads_pooled;
}

/* A get tries memory first, on the loop thread; only one that needs a file
 * (after a restart: the memtables were flushed, the block cache is empty)
 * goes to a reader, and the block it read makes the next get a memory one. */
static void test_get_memory_or_pool(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    su_conn *c = su_open(d->sock);
    MT_EQ_INT(tu_put(c, "kv.m", "k1", "f", "one", MAOS_EXPECT_ANY, 0).code, 0);
    uint64_t mem, pooled;
    get_counted(c, "one", &mem, &pooled); /* in the memtable */
    MT_EQ_U64(mem, 1);
    MT_EQ_U64(pooled, 0);
    su_close(c);
    mt_daemon_restart(d);
    c = su_open(d->sock);
    get_counted(c, "one", &mem, &pooled); /* in a table file only */
    MT_EQ_U64(mem, 0);
    MT_EQ_U64(pooled, 1);
    get_counted(c, "one", &mem, &pooled); /* its block is cached now */
    MT_EQ_U64(mem, 1);
    MT_EQ_U64(pooled, 0);
    /* a put answered on another connection is seen by the next get */
    su_conn *c2 = su_open(d->sock);
    MT_EQ_INT(tu_put(c2, "kv.m", "k1", "f", "two", MAOS_EXPECT_ANY, 0).code, 0);
    get_f(c, "two");
    maos_entry e;
    char *frame = NULL;
    MT_EQ_INT(tu_get(c, "kv.m", "absent", &e, &frame, NULL), MAOS_ENOT_FOUND);
    free(frame);
    su_close(c2);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- read-ahead ------------------------------------------------------------------ */

/* One page of read (stream != NULL) or read_all: its events' versions
 * (stream) or positions into got[] (appended at *n), whether it has a
 * next and where. */
static void read_page(su_conn *c, const char *stream, uint64_t from, int backward,
                      uint32_t limit, uint64_t *got, size_t *n, int *more, uint64_t *next)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_filter f = {.types = NULL};
    maos_slice ty = su_s("ra");
    f.n_types = 1;
    f.types = &ty;
    if (stream)
        maos_enc_read(&r.pk, rid, su_s(stream), 1, from, backward, limit);
    else
        maos_enc_read_all(&r.pk, rid, 1, from, backward, limit, &f);
    maos_reply rep;
    char *frame = NULL;
    int code = su_call(c, &r.sb, rid, &rep, &frame);
    msgpack_sbuffer_destroy(&r.sb);
    if (code)
        SU_FAIL("read from %llu: %s", (unsigned long long)from, maos_err_name(code));
    maos_mpr mr;
    uint32_t cnt = 0;
    maos_mpr_init(&mr, rep.items.ptr, rep.items.len);
    SU_TRUE(maos_mpr_array(&mr, &cnt) == 0 && cnt == rep.n_items);
    for (uint32_t i = 0; i < cnt; i++) {
        maos_record rec;
        SU_TRUE(maos_record_next(&mr, &rec) == 0);
        got[(*n)++] = stream ? rec.version : rec.position;
    }
    *more = rep.next_kind == MAOS_NEXT_UINT;
    *next = rep.next_u;
    free(frame);
}

/* n events of type "ra" to stream (and, interleaved, n of type "x" to
 * "ra-other", so a filtered read_all skips some), in batches of 50. */
static void write_ra(su_conn *c, const char *stream, int n)
{
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    su_mk_data(&data, 9, 0, 40);
    su_ev_in evs[50], other[50];
    for (int i = 0; i < 50; i++) {
        evs[i] = (su_ev_in){"ra", data.data, data.size};
        other[i] = (su_ev_in){"x", data.data, data.size};
    }
    for (int i = 0; i < n; i += 50) {
        uint64_t pos;
        SU_EQ_ERR(su_append(c, stream, evs, n - i < 50 ? (size_t)(n - i) : 50, &pos), 0);
        SU_EQ_ERR(su_append(c, "ra-other", other, 50, &pos), 0);
    }
    msgpack_sbuffer_destroy(&data);
}

static uint64_t ahead_count(su_conn *c)
{
    maos_stats st;
    su_stats(c, &st);
    return st.reads_ahead;
}

/* Page through: every page after the first full one comes from the
 * read-ahead but the last (never kept: it reached the end); the events
 * are all there, in order, each once. */
static void test_read_ahead_paging(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    su_conn *c = su_open(d->sock);
    write_ra(c, "ra-s", 1000);
    uint64_t *got = calloc(2000, sizeof *got);
    MT_TRUE(got != NULL);
    /* a stream forward: 10 pages of 100, pages 2..9 read ahead */
    uint64_t a0 = ahead_count(c), next = 0;
    size_t n = 0;
    int more = 1, pages = 0;
    for (uint64_t from = 0; more; from = next, pages++)
        read_page(c, "ra-s", from, 0, 100, got, &n, &more, &next);
    MT_EQ_INT(pages, 10);
    MT_EQ_U64(n, 1000);
    for (size_t i = 0; i < n; i++)
        MT_EQ_U64(got[i], i);
    MT_EQ_U64(ahead_count(c) - a0, 8);
    /* backward, pages of 300: 999..700, 699..400, 399..100 (read ahead),
     * 99..0 (the end: not kept) */
    a0 = ahead_count(c);
    n = 0;
    more = 1;
    for (uint64_t from = 999; more; from = next)
        read_page(c, "ra-s", from, 1, 300, got, &n, &more, &next);
    MT_EQ_U64(n, 1000);
    for (size_t i = 0; i < n; i++)
        MT_EQ_U64(got[i], 999 - i);
    MT_EQ_U64(ahead_count(c) - a0, 2);
    /* read_all of type "ra" (half the log): positions in order, each once */
    a0 = ahead_count(c);
    n = 0;
    more = 1;
    pages = 0;
    for (uint64_t from = 1; more; from = next, pages++)
        read_page(c, NULL, from, 0, 150, got, &n, &more, &next);
    MT_EQ_U64(n, 1000);
    for (size_t i = 1; i < n; i++)
        MT_TRUE(got[i] > got[i - 1]);
    MT_EQ_U64(ahead_count(c) - a0, (uint64_t)pages - 2);
    /* another limit than the page read ahead: read on its own, right */
    n = 0;
    read_page(c, "ra-s", 0, 0, 100, got, &n, &more, &next); /* reads 100.. ahead */
    a0 = ahead_count(c);
    read_page(c, "ra-s", 100, 0, 30, got, &n, &more, &next);
    MT_EQ_U64(ahead_count(c), a0);
    MT_EQ_U64(n, 130);
    for (size_t i = 0; i < n; i++)
        MT_EQ_U64(got[i], i);
    MT_TRUE(more && next == 130);
    /* closed with a page read ahead (or still being read): nothing leaks */
    su_conn *q = su_open(d->sock);
    read_page(q, "ra-s", 0, 0, 100, got, &n, &more, &next);
    su_close(q);
    free(got);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* The page at the end is not kept: a write answered after it was read
 * ahead is in the next page, every round. */
static void test_read_ahead_tail(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    su_conn *c = su_open(d->sock), *w = su_open(d->sock);
    write_ra(w, "ra-t", 150);
    uint64_t *got = calloc(4096, sizeof *got);
    MT_TRUE(got != NULL);
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    su_mk_data(&data, 3, 0, 8);
    su_ev_in ev = {"ra", data.data, data.size};
    for (uint64_t round = 0; round < 20; round++) {
        uint64_t head = 150 + round; /* events 0 .. head-1 */
        size_t n = 0;
        int more;
        uint64_t next;
        /* page 1 is full: the rest (to the end) is read ahead */
        read_page(c, "ra-t", 0, 0, 100, got, &n, &more, &next);
        MT_TRUE(more && next == 100);
        uint64_t pos;
        SU_EQ_ERR(su_append(w, "ra-t", &ev, 1, &pos), 0); /* version head */
        n = 0;
        read_page(c, "ra-t", 100, 0, 100, got, &n, &more, &next);
        MT_EQ_U64(n, head + 1 - 100);
        MT_EQ_U64(got[n - 1], head);
        MT_TRUE(!more);
    }
    msgpack_sbuffer_destroy(&data);
    free(got);
    su_close(w);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- record forms ------------------------------------------------------------------ */

/* One page of read (stream) or read_all (f, removed) in a form: 0 and
 * *rep (its frame in *frame: free it), or the error code. */
static int page_in(su_conn *c, const char *stream, const maos_filter *f, uint64_t from,
                   int backward, uint32_t limit, int removed, int form, maos_reply *rep,
                   char **frame)
{
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    if (stream)
        maos_enc_read_as(&r.pk, rid, su_s(stream), 1, from, backward, limit, form);
    else
        maos_enc_read_all_as(&r.pk, rid, 1, from, backward, limit, f, removed, form);
    int code = su_call(c, &r.sb, rid, rep, frame);
    msgpack_sbuffer_destroy(&r.sb);
    return code;
}

static int slice_eq(maos_slice a, maos_slice b)
{
    return a.len == b.len && (a.len == 0 || !memcmp(a.ptr, b.ptr, a.len));
}

/*
 * Page through one read in both forms, each page asked as arrays first and
 * then as maps (so the array request of a page comes while the page read
 * ahead for the map request before it is that page in the other form: it
 * must not be served from it).  Every page must hold the same events with
 * the same next; each array record must be [the stored record's values]
 * in order, a stub's removed hash 10th.  The events seen; the stubs among
 * them in *stubs.
 */
static size_t same_in_both_forms(su_conn *c, const char *stream, const maos_filter *f,
                                 uint64_t from, int backward, uint32_t limit,
                                 int removed, size_t *stubs)
{
    size_t n = 0;
    *stubs = 0;
    for (int more = 1; more;) {
        maos_reply ra, rm;
        char *fa = NULL, *fm = NULL;
        int ca = page_in(c, stream, f, from, backward, limit, removed, MAOS_FORM_ARRAY,
                         &ra, &fa);
        int cm = page_in(c, stream, f, from, backward, limit, removed, MAOS_FORM_MAP,
                         &rm, &fm);
        if (ca || cm)
            SU_FAIL("page from %llu: %s as arrays, %s as maps", (unsigned long long)from,
                    maos_err_name(ca), maos_err_name(cm));
        SU_TRUE(ra.n_items == rm.n_items && ra.next_kind == rm.next_kind &&
                ra.next_u == rm.next_u);
        SU_TRUE(ra.n_items == 0 || ra.items.len < rm.items.len); /* no keys */
        maos_mpr pa, pm;
        uint32_t na, nm;
        maos_mpr_init(&pa, ra.items.ptr, ra.items.len);
        maos_mpr_init(&pm, rm.items.ptr, rm.items.len);
        SU_TRUE(!maos_mpr_array(&pa, &na) && !maos_mpr_array(&pm, &nm) && na == nm);
        for (uint32_t i = 0; i < na; i++) {
            maos_record a, m;
            maos_slice ha = {0}, hm = {0};
            SU_TRUE(maos_record_next(&pa, &a) == 0 && maos_record_next(&pm, &m) == 0);
            uint8_t tag = (uint8_t)a.raw.ptr[0];
            SU_TRUE(tag == 0x99 || tag == 0x9a); /* an array, not the stored map */
            SU_TRUE((uint8_t)m.raw.ptr[0] == tag - 0x10);
            SU_TRUE(a.position == m.position && a.time == m.time &&
                    a.version == m.version && slice_eq(a.stream, m.stream) &&
                    slice_eq(a.type, m.type) && slice_eq(a.id, m.id) &&
                    slice_eq(a.prev, m.prev) && slice_eq(a.data, m.data) &&
                    slice_eq(a.meta, m.meta));
            int sa = maos_record_stub(a.raw.ptr, a.raw.len, &ha);
            SU_TRUE(sa == maos_record_stub(m.raw.ptr, m.raw.len, &hm) &&
                    slice_eq(ha, hm));
            *stubs += (size_t)sa;
            n++;
        }
        more = ra.next_kind == MAOS_NEXT_UINT;
        from = ra.next_u;
        free(fa);
        free(fm);
    }
    return n;
}

/* read and read_all with "form": "array" hand out the same events as the
 * stored maps, page for page: a stream both ways (its index), the log with
 * and without filters, both ways, stubs of removed events included; a
 * form that is neither is BAD_REQUEST and the connection goes on. */
/* The request frame[0..len) (rid) is BAD_REQUEST about its form. */
static void refused_form(su_conn *c, const char *frame, size_t len, uint64_t rid)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, frame, len);
    maos_reply rep;
    char *fr = NULL;
    MT_EQ_INT(su_call(c, &sb, rid, &rep, &fr), MAOS_EBAD_REQUEST);
    MT_TRUE(rep.message.len > 0 && memmem(rep.message.ptr, rep.message.len, "form", 4));
    free(fr);
    msgpack_sbuffer_destroy(&sb);
}

static void test_record_forms(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    su_conn *c = su_open(d->sock);
    write_ra(c, "fm-s", 300); /* and 300 of type x to ra-other, interleaved */
    /* remove versions 0..59 of fm-s: the retention pass leaves stubs */
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    maos_stream_meta_in tb = {.has_truncate_before = 1, .truncate_before = 60};
    MT_EQ_INT(maos_enc_stream_meta(&r.pk, rid, su_s("fm-s"), &tb), 0);
    maos_reply rep;
    MT_EQ_INT(su_call(c, &r.sb, rid, &rep, NULL), 0);
    msgpack_sbuffer_destroy(&r.sb);
    int64_t end = mt_now_us() + 60 * 1000000LL;
    for (maos_stats st;; su_ping(c)) {
        su_stats(c, &st);
        if (st.events_removed >= 60)
            break;
        if (mt_now_us() > end)
            MT_FAIL("events_removed %llu, want 60", (unsigned long long)st.events_removed);
    }
    size_t stubs;
    MT_EQ_U64(same_in_both_forms(c, "fm-s", NULL, 0, 0, 7, 0, &stubs), 240);
    MT_EQ_U64(same_in_both_forms(c, "fm-s", NULL, 299, 1, 11, 0, &stubs), 240);
    /* the log: 540 events and maosd's own record of the truncation */
    size_t all = same_in_both_forms(c, NULL, NULL, 1, 0, 13, 0, &stubs);
    MT_TRUE(all > 540 && all < 545);
    MT_EQ_U64(stubs, 0);
    /* with the stubs: the 10 mid-log ones at least (those at the log's
     * start may have been collapsed into its anchor by now) */
    size_t n = same_in_both_forms(c, NULL, NULL, 1, 0, 50, 1, &stubs);
    MT_EQ_U64(n, all + stubs);
    MT_TRUE(stubs >= 10);
    maos_slice ty = su_s("x");
    maos_filter f = {.types = &ty, .n_types = 1};
    MT_EQ_U64(same_in_both_forms(c, NULL, &f, UINT64_MAX, 1, 17, 0, &stubs), 300);
    f = (maos_filter){.stream = su_s("fm-s")};
    MT_EQ_U64(same_in_both_forms(c, NULL, &f, 1, 0, 9, 0, &stubs), 240);
    f = (maos_filter){.prefix = su_s("fm-"), .has_since = 1, .since = 0,
                      .has_until = 1, .until = INT64_MAX};
    MT_EQ_U64(same_in_both_forms(c, NULL, &f, 1, 0, 19, 0, &stubs), 240);
    /* a form that is neither "map" nor "array" */
    static const char *const bad[] = {
        "\x84\xa2op\xa4read\xa3rid\x01\xa6stream\xa4""fm-s\xa4""form\xa5table",
        "\x83\xa2op\xa8read_all\xa3rid\x02\xa4""form\x01",
        "\x83\xa2op\xa8read_all\xa3rid\x03\xa4""form\xc0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused_form(c, bad[i], strlen(bad[i]), i + 1);
    su_ping(c);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* append_batch with form "array": each append's result as [stream,
 * first_version, first_position, count, duplicate, ids], refusals still
 * maps; the same outcome as the map form, which stays the default; a form
 * that is neither is BAD_REQUEST. */
static void batch_in_form(su_conn *c, int form, maos_batch_result out[3], int *arrays)
{
    maos_event_in ev[3] = {{.type = {"t", 1}}, {.type = {"t", 1}}, {.type = {"t", 1}}};
    maos_append_in ba[3] = {
        {.stream = {"afm-1", 5}, .expect = MAOS_EXPECT_ANY, .n_events = 2, .events = ev},
        {.stream = {"afm-2", 5}, .expect = 5, .n_events = 1, .events = ev + 2},
        {.stream = {"afm-1", 5}, .expect = MAOS_EXPECT_ANY, .n_events = 1, .events = ev + 2},
    };
    req r;
    req_init(&r);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_append_batch_as(&r.pk, rid, ba, 3, form), 0);
    maos_reply rep;
    char *fr = NULL;
    MT_EQ_INT(su_call(c, &r.sb, rid, &rep, &fr), 0);
    maos_mpr m;
    uint32_t n;
    maos_mpr_init(&m, rep.results.ptr, rep.results.len);
    MT_EQ_INT(maos_mpr_array(&m, &n), 0);
    MT_EQ_U64(n, 3);
    *arrays = 0;
    for (uint32_t i = 0; i < n; i++) {
        *arrays += maos_mpr_peek(&m) == MAOS_MP_ARRAY;
        MT_EQ_INT(maos_batch_result_next(&m, &out[i]), 0);
    }
    free(fr);
    msgpack_sbuffer_destroy(&r.sb);
}

static void test_append_batch_result_forms(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    su_conn *c = su_open(d->sock);
    maos_batch_result a[3], b[3];
    int arrays;
    batch_in_form(c, MAOS_FORM_MAP, a, &arrays);
    MT_EQ_INT(arrays, 0);
    batch_in_form(c, MAOS_FORM_ARRAY, b, &arrays);
    MT_EQ_INT(arrays, 2); /* the two results; the refusal is a map */
    for (int i = 0; i < 3; i += 2) {
        MT_EQ_INT(a[i].code, 0);
        MT_EQ_INT(b[i].code, 0);
        MT_TRUE(b[i].append.stream.len == 5 && !memcmp(b[i].append.stream.ptr, "afm-1", 5));
        MT_EQ_U64(b[i].append.count, a[i].append.count);
        MT_EQ_U64(b[i].append.first_version, a[i].append.first_version + 3);
        MT_EQ_U64(b[i].append.first_position, a[i].append.first_position + 3);
        MT_EQ_U64(b[i].append.ids.len, 16 * b[i].append.count);
        MT_EQ_INT(b[i].append.duplicate, 0);
    }
    MT_EQ_U64(a[0].append.first_position, 1);
    MT_EQ_U64(a[2].append.first_version, 2);
    MT_EQ_INT(a[1].code, MAOS_EWRONG_EXPECTED_VERSION);
    MT_EQ_INT(b[1].code, MAOS_EWRONG_EXPECTED_VERSION);
    MT_TRUE(b[1].has_actual && b[1].actual == -1);
    /* a form that is neither */
    static const char bad[] = "\x84\xa2op\xac" "append_batch\xa3rid\x09\xa7" "appends"
                              "\x91\x82\xa6stream\xa5" "afm-3\xa6" "events\x91\x81\xa4"
                              "type\xa1t\xa4" "form\xa4" "list";
    refused_form(c, bad, sizeof bad - 1, 9);
    su_ping(c);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* What one subscription of test_subscription_forms received: positions and
 * a hash of each record in the array form (a map-form record transcoded
 * first), and how many came as arrays. */
typedef struct form_sub {
    uint64_t id;
    su_evs got;
    size_t arrays;
} form_sub;

static void form_push(su_conn *c, const maos_push *p, void *user)
{
    (void)c;
    form_sub *subs = user;
    if (p->kind != MAOS_PUSH_EVENTS)
        return;
    form_sub *s = p->sub == subs[0].id ? &subs[0] : p->sub == subs[1].id ? &subs[1] : NULL;
    SU_TRUE(s != NULL);
    maos_mpr mr;
    uint32_t n;
    maos_mpr_init(&mr, p->items.ptr, p->items.len);
    SU_TRUE(maos_mpr_array(&mr, &n) == 0 && n == p->n_items);
    msgpack_sbuffer a;
    msgpack_sbuffer_init(&a);
    for (uint32_t i = 0; i < n; i++) {
        maos_record rec;
        SU_TRUE(maos_record_next(&mr, &rec) == 0);
        uint8_t tag = (uint8_t)rec.raw.ptr[0];
        a.size = 0;
        if (tag == 0x99) {
            s->arrays++;
            msgpack_sbuffer_write(&a, rec.raw.ptr, rec.raw.len);
        } else {
            SU_TRUE(maos_record_to_array(rec.raw.ptr, rec.raw.len, &a) == 0);
        }
        su_evs_push(&s->got, rec.position, su_hash(a.data, a.size));
    }
    msgpack_sbuffer_destroy(&a);
}

/* subscribe with "form": "array" is pushed the same events as the stored
 * maps, both while catching up from disk and live (the fan-out transcodes
 * each record once for every subscription that asks for arrays). */
static void test_subscription_forms(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    su_conn *c = su_open(d->sock), *w = su_open(d->sock);
    write_ra(w, "sf-s", 300); /* 300 of type ra, 300 of type x */
    form_sub subs[2];
    memset(subs, 0, sizeof subs);
    su_set_push(c, form_push, subs);
    maos_slice ty = su_s("ra");
    maos_filter f = {.types = &ty, .n_types = 1};
    for (int k = 0; k < 2; k++) {
        req r;
        req_init(&r);
        uint64_t rid = su_rid(c);
        MT_EQ_INT(maos_enc_subscribe_as(&r.pk, rid, &f, MAOS_FROM_POSITION, 1,
                                        k ? MAOS_FORM_ARRAY : MAOS_FORM_MAP), 0);
        maos_reply rep;
        MT_EQ_INT(su_call(c, &r.sb, rid, &rep, NULL), 0);
        msgpack_sbuffer_destroy(&r.sb);
        subs[k].id = rep.sub;
    }
    write_ra(w, "sf-s", 200); /* more, while they catch up or once live */
    int64_t end = mt_now_us() + 60 * 1000000LL;
    while ((subs[0].got.n < 500 || subs[1].got.n < 500) && mt_now_us() < end)
        su_pump(c, 100, NULL);
    MT_EQ_U64(subs[0].got.n, 500);
    su_evs_assert_equal("array form vs map form", &subs[1].got, &subs[0].got);
    MT_EQ_U64(subs[0].arrays, 0);
    MT_EQ_U64(subs[1].arrays, 500);
    su_evs_free(&subs[0].got);
    su_evs_free(&subs[1].got);
    su_close(w);
    su_close(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_your_writes_forked),
        cmocka_unit_test(test_ping_while_read_in_flight),
        cmocka_unit_test(test_ping_while_table_reads_in_flight),
        cmocka_unit_test(test_read_then_close),
        cmocka_unit_test(test_catch_up_slice_outlives_subscription),
        cmocka_unit_test(test_get_memory_or_pool),
        cmocka_unit_test(test_read_ahead_paging),
        cmocka_unit_test(test_read_ahead_tail),
        cmocka_unit_test(test_record_forms),
        cmocka_unit_test(test_append_batch_result_forms),
        cmocka_unit_test(test_subscription_forms),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 180);
}
