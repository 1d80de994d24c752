/*
 * tests/integration/test_badinput.c -- hostile bytes on the socket of a
 * real maosd (issue 2, "Bad input").
 *
 * Raw sockets only: no client library.  Valid frames are built with proto's
 * maos_enc_* and maos_frame_put_len; hostile ones by hand.  Each test sends
 * one kind of bad input and asserts that it got a typed error reply (decoded
 * with maos_reply_decode, asserted on rep.code) or, where the issue allows
 * it for a broken frame, the close of that one connection.  After every
 * attack, a different client must still ping and append, every event
 * committed before must still be readable with the same ids, and the daemon
 * must exit 0 on SIGTERM at the end (it did not crash).
 *
 * The last cases are hostile behaviour rather than hostile bytes (review of
 * bf6c102): a client that pipelines without reading, one that half-closes,
 * one that stops reading while the daemon shuts down.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "harness.h"
#include "maos/proto.h"

#define REPLY_MAX (MAOS_DEFAULT_MAX_FRAME + MAOS_REPLY_SLACK)
#define BASE_STREAM "base-1"
#define BASE_N 5
/* A byte-string literal and its length (no NUL). */
#define LIT(s) {s, sizeof(s) - 1}

/* Per test process state. */
static mt_daemon *g_d;
static uint8_t g_base_ids[BASE_N][16];
static int g_health_appends;

/* ---- raw protocol helpers -------------------------------------------------- */

typedef struct pkbuf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pkbuf;

static void pk_init(pkbuf *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void pk_done(pkbuf *b)
{
    msgpack_sbuffer_destroy(&b->sb);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void pk_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void send_frame(int fd, const void *p, size_t n)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)n);
    int rc = mt_send_all(fd, hdr, 4);
    if (rc == 0 && n)
        rc = mt_send_all(fd, p, n);
    MT_EQ_INT(rc, 0);
}

/* A hostile frame: the daemon may close the connection before it has read
 * all of it (that is one of the allowed answers), so a failed send is not
 * a failure here; what counts is the reply or the close that follows. */
static void send_frame_attack(int fd, const void *p, size_t n)
{
    char hdr[4];
    maos_frame_put_len(hdr, (uint32_t)n);
    int rc = mt_send_all(fd, hdr, 4);
    if (rc == 0 && n)
        rc = mt_send_all(fd, p, n);
    if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET)
        MT_FAIL("send: %s", strerror(-rc));
}

static void send_pk(int fd, pkbuf *b)
{
    send_frame(fd, b->sb.data, b->sb.size);
    pk_done(b);
}

/* Receive one reply; fails the test on close/timeout/undecodable reply.
 * *frame must be freed by the caller (rep's slices point into it). */
static void recv_reply(int fd, maos_reply *rep, char **frame)
{
    uint32_t len;
    int r = mt_recv_frame(fd, frame, &len, REPLY_MAX, 10000);
    if (r != 1)
        MT_FAIL("no reply frame: mt_recv_frame returned %d (0 closed, -1 "
                "timeout, -2 too large)",
                r);
    memset(rep, 0, sizeof *rep);
    int rc = maos_reply_decode(*frame, len, rep);
    MT_EQ_ERR(rc, 0);
}

/* Expect an error reply with this code (and this rid when rid != UINT64_MAX). */
static void expect_error(int fd, int code, uint64_t rid)
{
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    if (rep.ok) {
        free(frame);
        MT_FAIL("expected error %s, got an ok reply", maos_err_name(code));
    }
    int got = rep.code;
    uint64_t got_rid = rep.rid;
    free(frame);
    MT_EQ_ERR(got, code);
    if (rid != UINT64_MAX)
        MT_EQ_U64(got_rid, rid);
}

/* A broken frame: either an error reply with one of the codes (then the
 * connection may stay open or close), or the close of the connection. */
static void expect_error_or_close(int fd, int code1, int code2)
{
    char *frame;
    uint32_t len;
    int r = mt_recv_frame(fd, &frame, &len, REPLY_MAX, 10000);
    if (r == 0)
        return; /* closed */
    if (r != 1)
        MT_FAIL("neither an error reply nor a close: mt_recv_frame returned %d",
                r);
    maos_reply rep;
    memset(&rep, 0, sizeof rep);
    int rc = maos_reply_decode(frame, len, &rep);
    int ok = rep.ok, code = rep.code;
    free(frame);
    MT_EQ_ERR(rc, 0);
    MT_EQ_INT(ok, 0);
    if (code != code1 && code != code2)
        MT_FAIL("error code: got %d (%s), want %s or %s", code,
                maos_err_name(code), maos_err_name(code1), maos_err_name(code2));
}

static int raw_connect(void)
{
    int fd = mt_connect(g_d->sock);
    if (fd < 0)
        MT_FAIL("connect %s: %s", g_d->sock, strerror(errno));
    return fd;
}

static void raw_hello(int fd)
{
    pkbuf b;
    pk_init(&b);
    MT_EQ_ERR(maos_enc_hello(&b.pk, 1, MAOS_PROTOCOL_VERSION, "badinput"), 0);
    send_pk(fd, &b);
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    int ok = rep.ok, code = rep.code;
    uint64_t ver = rep.version;
    free(frame);
    MT_EQ_INT(ok, 1);
    MT_EQ_ERR(code, 0);
    MT_EQ_U64(ver, MAOS_PROTOCOL_VERSION);
}

static int raw_session(void)
{
    int fd = raw_connect();
    raw_hello(fd);
    return fd;
}

static void raw_ping(int fd, uint64_t rid)
{
    pkbuf b;
    pk_init(&b);
    MT_EQ_ERR(maos_enc_simple(&b.pk, rid, MAOS_OP_PING), 0);
    send_pk(fd, &b);
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    int ok = rep.ok, code = rep.code;
    uint64_t got_rid = rep.rid;
    free(frame);
    MT_EQ_ERR(code, 0);
    MT_EQ_INT(ok, 1);
    MT_EQ_U64(got_rid, rid);
}

/* Append n events with the given ids (NULL: server ids) to stream. */
static void raw_append(int fd, const char *stream, uint8_t (*ids)[16],
                       uint32_t n, uint64_t *first_position)
{
    maos_event_in ev[16];
    memset(ev, 0, sizeof ev);
    static const char data[] = {(char)0x81, (char)0xa1, 'k', 0x07}; /* {k:7} */
    for (uint32_t i = 0; i < n; i++) {
        ev[i].type = (maos_slice){"Checked", 7};
        ev[i].data = (maos_slice){data, sizeof data};
        if (ids) {
            memcpy(ev[i].id, ids[i], 16);
            ev[i].has_id = 1;
        }
    }
    maos_append_in a = {{stream, (uint32_t)strlen(stream)}, MAOS_EXPECT_ANY, n,
                        ev};
    pkbuf b;
    pk_init(&b);
    MT_EQ_ERR(maos_enc_append(&b.pk, 77, &a), 0);
    send_pk(fd, &b);
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    int ok = rep.ok, code = rep.code;
    uint32_t count = rep.result.count;
    uint64_t pos = rep.result.first_position;
    free(frame);
    MT_EQ_ERR(code, 0);
    MT_EQ_INT(ok, 1);
    MT_EQ_U64(count, n);
    if (first_position)
        *first_position = pos;
}

/* Read the whole stream (small streams only); returns the number of events
 * and copies up to cap ids. */
static uint32_t raw_read_ids(int fd, const char *stream, uint8_t (*ids)[16],
                             uint32_t cap)
{
    pkbuf b;
    pk_init(&b);
    MT_EQ_ERR(maos_enc_read(&b.pk, 78, (maos_slice){stream, (uint32_t)strlen(stream)},
                            0, 0, 0, 1000),
              0);
    send_pk(fd, &b);
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    if (!rep.ok) {
        int code = rep.code;
        free(frame);
        MT_FAIL("read %s: got error %d (%s)", stream, code, maos_err_name(code));
    }
    maos_mpr r;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len); /* the whole array */
    uint32_t n = rep.n_items, cnt = 0;
    if (maos_mpr_array(&r, &cnt) || cnt != n) {
        free(frame);
        MT_FAIL("read %s: items array of %u, n_items %u", stream, cnt, n);
    }
    for (uint32_t i = 0; i < n; i++) {
        maos_record rec;
        int rc = maos_record_next(&r, &rec);
        if (rc) {
            free(frame);
            MT_FAIL("record %u of %s undecodable: %d", i, stream, rc);
        }
        if (rec.version != i) {
            free(frame);
            MT_FAIL("record %u of %s has version %llu", i, stream,
                    (unsigned long long)rec.version);
        }
        if (i < cap)
            memcpy(ids[i], rec.id.ptr, 16);
    }
    free(frame);
    return n;
}

/* Another client can still ping and append; everything committed before
 * is still there. */
static void assert_healthy(void)
{
    if (!mt_daemon_alive(g_d))
        MT_FAIL("maosd died (log: %s)", g_d->log);
    int fd = raw_session();
    raw_ping(fd, 4242);
    raw_append(fd, "health-1", NULL, 1, NULL);
    g_health_appends++;
    uint8_t ids[BASE_N][16];
    uint32_t n = raw_read_ids(fd, BASE_STREAM, ids, BASE_N);
    MT_EQ_U64(n, BASE_N);
    for (int i = 0; i < BASE_N; i++)
        if (memcmp(ids[i], g_base_ids[i], 16) != 0)
            MT_FAIL("event %d of %s has a different id after the attack", i,
                    BASE_STREAM);
    uint8_t hid[1][16];
    n = raw_read_ids(fd, "health-1", hid, 0);
    MT_EQ_U64(n, (uint64_t)g_health_appends);
    close(fd);
}

/* Commit the base events on the started g_d. */
static void base_events(void)
{
    for (int i = 0; i < BASE_N; i++)
        for (int k = 0; k < 16; k++)
            g_base_ids[i][k] = (uint8_t)(0x10 * (i + 1) + k);
    g_base_ids[0][6] = 0x40; /* make them look like v4 UUIDs */
    int fd = raw_session();
    uint64_t pos = 0;
    raw_append(fd, BASE_STREAM, g_base_ids, BASE_N, &pos);
    MT_EQ_U64(pos, 1);
    close(fd);
    g_health_appends = 0;
}

/* Start a daemon and commit the base events. */
static void setup_daemon(void)
{
    g_d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(g_d);
    base_events();
}

/* Everything still fine, and the daemon shuts down cleanly. */
static void finish(void)
{
    assert_healthy();
    int st = mt_daemon_stop(g_d);
    MT_EQ_INT(st, 0);
}

/* ---- tests ------------------------------------------------------------------ */

/* The first frame is a ping: HELLO_REQUIRED, carrying the ping's rid. */
static void test_missing_hello(void **state)
{
    (void)state;
    setup_daemon();
    int fd = raw_connect();
    pkbuf b;
    pk_init(&b);
    maos_enc_simple(&b.pk, 9, MAOS_OP_PING);
    send_pk(fd, &b);
    expect_error(fd, MAOS_EHELLO_REQUIRED, 9);
    close(fd);

    /* An append before hello must not be written either. */
    fd = raw_connect();
    maos_event_in ev = {.type = {"T", 1}};
    maos_append_in a = {{"nohello-1", 9}, MAOS_EXPECT_ANY, 1, &ev};
    pk_init(&b);
    maos_enc_append(&b.pk, 10, &a);
    send_pk(fd, &b);
    expect_error(fd, MAOS_EHELLO_REQUIRED, 10);
    close(fd);
    fd = raw_session();
    pk_init(&b);
    maos_enc_read(&b.pk, 11, (maos_slice){"nohello-1", 9}, 0, 0, 0, 10);
    send_pk(fd, &b);
    expect_error(fd, MAOS_ENOT_FOUND, 11);
    close(fd);
    finish();
}

static void test_wrong_protocol_version(void **state)
{
    (void)state;
    setup_daemon();
    /* (version 0 is "no version": BAD_REQUEST, checked below with the key
     * missing) */
    uint64_t bad[] = {MAOS_PROTOCOL_VERSION + 1, 999999, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = raw_connect();
        pkbuf b;
        pk_init(&b);
        maos_enc_hello(&b.pk, 3, bad[i], "badversion");
        send_pk(fd, &b);
        expect_error(fd, MAOS_EPROTOCOL_VERSION, 3);
        close(fd);
    }
    /* hello without a version: BAD_REQUEST. */
    int fd = raw_connect();
    pkbuf b;
    pk_init(&b);
    msgpack_pack_map(&b.pk, 2);
    pk_str(&b.pk, "op");
    pk_str(&b.pk, "hello");
    pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, 4);
    send_pk(fd, &b);
    expect_error(fd, MAOS_EBAD_REQUEST, 4);
    close(fd);
    finish();
}

static void test_unknown_op(void **state)
{
    (void)state;
    setup_daemon();
    int fd = raw_session();
    const char *ops[] = {"frobnicate", "", "PING", "hello2", "append\x01"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        pkbuf b;
        pk_init(&b);
        msgpack_pack_map(&b.pk, 2);
        pk_str(&b.pk, "op");
        pk_str(&b.pk, ops[i]);
        pk_str(&b.pk, "rid");
        msgpack_pack_uint64(&b.pk, 100 + i);
        send_pk(fd, &b);
        expect_error(fd, MAOS_EUNKNOWN_OP, 100 + i);
    }
    /* A typed error leaves the connection usable. */
    raw_ping(fd, 200);
    close(fd);
    finish();
}

/* Build {op, rid, <key>: <value written by fn>} plus extra fixed keys. */
typedef void (*val_fn)(msgpack_packer *pk);
static void v_int(msgpack_packer *pk) { msgpack_pack_int(pk, 5); }
static void v_neg(msgpack_packer *pk) { msgpack_pack_int(pk, -1); }
static void v_str(msgpack_packer *pk) { pk_str(pk, "x"); }
static void v_bool(msgpack_packer *pk) { msgpack_pack_true(pk); }
static void v_arr(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
static void v_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
static void v_float(msgpack_packer *pk) { msgpack_pack_double(pk, 1.5); }
static void v_events_of_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 3);
}
static void v_event_type_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    pk_str(pk, "type");
    msgpack_pack_int(pk, 3);
}
static void v_event_no_type(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    pk_str(pk, "data");
    msgpack_pack_int(pk, 3);
}
static void v_event_meta_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 2);
    pk_str(pk, "type");
    pk_str(pk, "T");
    pk_str(pk, "meta");
    msgpack_pack_int(pk, 3);
}
static void v_types_of_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    pk_str(pk, "A");
    msgpack_pack_int(pk, 3);
}

typedef struct bad_case {
    const char *op;
    const char *key;
    val_fn val;
    const char *stream; /* also send "stream": this (NULL: none) */
    int with_events;    /* also send one valid event */
} bad_case;

static void send_case(int fd, const bad_case *c, uint64_t rid)
{
    pkbuf b;
    pk_init(&b);
    uint32_t n = 3 + (c->stream ? 1 : 0) + (c->with_events ? 1 : 0);
    msgpack_pack_map(&b.pk, n);
    pk_str(&b.pk, "op");
    pk_str(&b.pk, c->op);
    pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, rid);
    if (c->stream) {
        pk_str(&b.pk, "stream");
        pk_str(&b.pk, c->stream);
    }
    if (c->with_events) {
        pk_str(&b.pk, "events");
        msgpack_pack_array(&b.pk, 1);
        msgpack_pack_map(&b.pk, 1);
        pk_str(&b.pk, "type");
        pk_str(&b.pk, "T");
    }
    pk_str(&b.pk, c->key);
    c->val(&b.pk);
    send_pk(fd, &b);
}

static void test_wrong_field_types(void **state)
{
    (void)state;
    setup_daemon();
    static const bad_case cases[] = {
        {"read", "stream", v_int, NULL, 0},
        {"read", "from", v_str, "s-1", 0},
        {"read", "from", v_neg, "s-1", 0},
        {"read", "backward", v_int, "s-1", 0},
        {"read", "limit", v_str, "s-1", 0},
        {"read", "limit", v_neg, "s-1", 0},
        {"read", "limit", v_float, "s-1", 0},
        {"read_all", "from", v_bool, NULL, 0},
        {"read_all", "types", v_str, NULL, 0},
        {"read_all", "types", v_types_of_int, NULL, 0},
        {"read_all", "since", v_str, NULL, 0},
        {"read_all", "until", v_map, NULL, 0},
        {"read_all", "prefix", v_int, NULL, 0},
        {"read_all", "backward", v_str, NULL, 0},
        {"streams", "prefix", v_arr, NULL, 0},
        {"streams", "after", v_int, NULL, 0},
        {"streams", "limit", v_str, NULL, 0},
        {"append", "stream", v_arr, NULL, 1},
        {"append", "expect", v_str, "s-1", 1},   /* "x" is no expect mode */
        {"append", "expect", v_neg, "s-1", 1},
        {"append", "expect", v_bool, "s-1", 1},
        {"append", "events", v_str, "s-1", 0},
        {"append", "events", v_map, "s-1", 0},
        {"append", "events", v_arr, "s-1", 0},   /* empty */
        {"append", "events", v_events_of_int, "s-1", 0},
        {"append", "events", v_event_type_int, "s-1", 0},
        {"append", "events", v_event_no_type, "s-1", 0},
        {"append", "events", v_event_meta_int, "s-1", 0},
        {"txn", "appends", v_str, NULL, 0},
        {"txn", "appends", v_arr, NULL, 0},
        {"txn", "appends", v_events_of_int, NULL, 0},
    };
    int fd = raw_session();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case %zu: %s.%s\n", i, cases[i].op, cases[i].key);
        send_case(fd, &cases[i], 1000 + i);
        expect_error(fd, MAOS_EBAD_REQUEST, 1000 + i);
    }
    /* rid of the wrong type: BAD_REQUEST (rid 0, as it could not be read). */
    pkbuf b;
    pk_init(&b);
    msgpack_pack_map(&b.pk, 2);
    pk_str(&b.pk, "op");
    pk_str(&b.pk, "ping");
    pk_str(&b.pk, "rid");
    pk_str(&b.pk, "one");
    send_pk(fd, &b);
    expect_error(fd, MAOS_EBAD_REQUEST, 0);
    /* op of the wrong type, op missing, rid missing, not a map. */
    pk_init(&b);
    msgpack_pack_map(&b.pk, 2);
    pk_str(&b.pk, "op");
    msgpack_pack_int(&b.pk, 2);
    pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, 5001);
    send_pk(fd, &b);
    expect_error(fd, MAOS_EBAD_REQUEST, 5001);
    pk_init(&b);
    msgpack_pack_map(&b.pk, 1);
    pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, 5002);
    send_pk(fd, &b);
    expect_error(fd, MAOS_EBAD_REQUEST, 5002);
    pk_init(&b);
    msgpack_pack_map(&b.pk, 1);
    pk_str(&b.pk, "op");
    pk_str(&b.pk, "ping");
    send_pk(fd, &b);
    expect_error(fd, MAOS_EBAD_REQUEST, UINT64_MAX);
    pk_init(&b);
    msgpack_pack_array(&b.pk, 2);
    pk_str(&b.pk, "ping");
    msgpack_pack_uint64(&b.pk, 5003);
    send_pk(fd, &b);
    expect_error(fd, MAOS_EBAD_REQUEST, UINT64_MAX);
    pk_init(&b);
    msgpack_pack_int(&b.pk, 42);
    send_pk(fd, &b);
    expect_error(fd, MAOS_EBAD_REQUEST, UINT64_MAX);

    /* Nothing was written to s-1 by any of the bad appends. */
    pk_init(&b);
    maos_enc_read(&b.pk, 5004, (maos_slice){"s-1", 3}, 0, 0, 0, 10);
    send_pk(fd, &b);
    expect_error(fd, MAOS_ENOT_FOUND, 5004);
    raw_ping(fd, 5005);
    close(fd);
    finish();
}

/* An append whose event id is given as this value. */
static void send_append_with_id(int fd, uint64_t rid, val_fn id)
{
    pkbuf b;
    pk_init(&b);
    msgpack_pack_map(&b.pk, 4);
    pk_str(&b.pk, "op");
    pk_str(&b.pk, "append");
    pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, rid);
    pk_str(&b.pk, "stream");
    pk_str(&b.pk, "ids-1");
    pk_str(&b.pk, "events");
    msgpack_pack_array(&b.pk, 1);
    msgpack_pack_map(&b.pk, 2);
    pk_str(&b.pk, "type");
    pk_str(&b.pk, "T");
    pk_str(&b.pk, "id");
    id(&b.pk);
    send_pk(fd, &b);
}

static void id_text_short(msgpack_packer *pk) { pk_str(pk, "not-a-uuid"); }
static void id_text_badhex(msgpack_packer *pk)
{
    pk_str(pk, "0190f3c2-7d1e-7abc-9def-0123456789xz");
}
static void id_text_nodash(msgpack_packer *pk)
{
    pk_str(pk, "0190f3c27d1e7abc9def0123456789ab0000");
}
static void id_text_nil(msgpack_packer *pk)
{
    pk_str(pk, "00000000-0000-0000-0000-000000000000");
}
static void id_text_long(msgpack_packer *pk)
{
    pk_str(pk, "0190f3c2-7d1e-7abc-9def-0123456789ab0");
}
static void id_bin15(msgpack_packer *pk)
{
    msgpack_pack_bin(pk, 15);
    msgpack_pack_bin_body(pk, "0123456789abcde", 15);
}
static void id_bin17(msgpack_packer *pk)
{
    msgpack_pack_bin(pk, 17);
    msgpack_pack_bin_body(pk, "0123456789abcdefg", 17);
}
static void id_bin_nil(msgpack_packer *pk)
{
    static const char z[16];
    msgpack_pack_bin(pk, 16);
    msgpack_pack_bin_body(pk, z, 16);
}
static void id_int(msgpack_packer *pk) { msgpack_pack_int(pk, 12345); }

static void test_invalid_uuid(void **state)
{
    (void)state;
    setup_daemon();
    val_fn bad[] = {id_text_short, id_text_badhex, id_text_nodash, id_text_nil,
                    id_text_long,  id_bin15,       id_bin17,       id_bin_nil,
                    id_int};
    int fd = raw_session();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("id case %zu\n", i);
        send_append_with_id(fd, 300 + i, bad[i]);
        expect_error(fd, MAOS_EINVALID_ID, 300 + i);
    }
    /* Nothing was written. */
    pkbuf b;
    pk_init(&b);
    maos_enc_read(&b.pk, 400, (maos_slice){"ids-1", 5}, 0, 0, 0, 10);
    send_pk(fd, &b);
    expect_error(fd, MAOS_ENOT_FOUND, 400);
    raw_ping(fd, 401);
    close(fd);
    finish();
}

/* Names checked by the daemon itself, not only by the client library. */
static void test_invalid_names(void **state)
{
    (void)state;
    setup_daemon();
    /* stream names: 1..1024 bytes (MAOS_STREAM_MAX); types: 1..255 */
    char long1025[MAOS_STREAM_MAX + 2], long256[257];
    memset(long1025, 'a', MAOS_STREAM_MAX + 1);
    long1025[MAOS_STREAM_MAX + 1] = 0;
    memset(long256, 'a', 256);
    long256[256] = 0;
    struct {
        const char *s;
        size_t n;
    } streams[] = {{"", 0},           {long1025, MAOS_STREAM_MAX + 1}, {"bad\xff", 4},
                   {"\xc3\x28", 2},   {"nul\0x", 5},      {"$all", 4},
                   {"$sys-1", 6},     {"\xed\xa0\x80", 3},
                   /* categories written by table operations */
                   {"session-1", 9},  {"agent-a", 7},      {"lock-l", 6},
                   {"kv.plan-1", 9}};
    int fd = raw_session();
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        print_message("stream name case %zu\n", i);
        maos_event_in ev = {.type = {"T", 1}};
        maos_append_in a = {{streams[i].s, (uint32_t)streams[i].n},
                            MAOS_EXPECT_ANY, 1, &ev};
        pkbuf b;
        pk_init(&b);
        MT_EQ_ERR(maos_enc_append(&b.pk, 500 + i, &a), 0);
        send_pk(fd, &b);
        /* An empty stream name may be reported as missing (BAD_REQUEST). */
        if (streams[i].n == 0)
            expect_error_or_close(fd, MAOS_EINVALID_NAME, MAOS_EBAD_REQUEST);
        else
            expect_error(fd, MAOS_EINVALID_NAME, 500 + i);
    }
    /* Bad event types. */
    struct {
        const char *s;
        size_t n;
    } types[] = {{"", 0}, {long256, 256}, {"t\xff", 2}, {"t\0", 2}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        print_message("type name case %zu\n", i);
        pkbuf b;
        pk_init(&b);
        msgpack_pack_map(&b.pk, 4);
        pk_str(&b.pk, "op");
        pk_str(&b.pk, "append");
        pk_str(&b.pk, "rid");
        msgpack_pack_uint64(&b.pk, 600 + i);
        pk_str(&b.pk, "stream");
        pk_str(&b.pk, "names-1");
        pk_str(&b.pk, "events");
        msgpack_pack_array(&b.pk, 1);
        msgpack_pack_map(&b.pk, 1);
        pk_str(&b.pk, "type");
        pk_strn(&b.pk, types[i].s, types[i].n);
        send_pk(fd, &b);
        expect_error(fd, MAOS_EINVALID_NAME, 600 + i);
    }
    /* 1024 bytes is fine. */
    long1025[MAOS_STREAM_MAX] = 0;
    maos_event_in ev = {.type = {"T", 1}};
    maos_append_in a = {{long1025, MAOS_STREAM_MAX}, MAOS_EXPECT_ANY, 1, &ev};
    pkbuf b;
    pk_init(&b);
    maos_enc_append(&b.pk, 700, &a);
    send_pk(fd, &b);
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    int ok = rep.ok, code = rep.code;
    free(frame);
    MT_EQ_ERR(code, 0);
    MT_EQ_INT(ok, 1);
    raw_ping(fd, 701);
    close(fd);
    finish();
}

/* Memory of the daemon before an attack, to compare after. */
typedef struct mem_snap {
    long rss, vm;
} mem_snap;

static mem_snap mem_now(void)
{
    mem_snap m = {mt_rss_kb(g_d->pid), mt_vm_kb(g_d->pid)};
    if (m.rss < 0 || m.vm < 0)
        MT_FAIL("cannot read /proc/%ld/status", (long)g_d->pid);
    return m;
}

/* No allocation from a declared length: RSS grew by less than 64 MiB and
 * the virtual size by less than 1 GiB (a 4 GiB malloc shows in VmSize
 * even untouched). */
static void assert_mem_small(mem_snap before)
{
    mem_snap after = mem_now();
    print_message("rss %ld -> %ld KiB, vm %ld -> %ld KiB\n", before.rss,
                  after.rss, before.vm, after.vm);
    if (!MT_TSAN) /* TSan's shadow memory counts in VmRSS (harness.h) */
        MT_CMP_INT(after.rss - before.rss, <, 64 * 1024);
    MT_CMP_INT(after.vm - before.vm, <, 1024 * 1024);
}

static void test_oversized_frame(void **state)
{
    (void)state;
    setup_daemon();
    uint32_t lens[] = {0xFFFFFFF0u, 0x80000000u, MAOS_DEFAULT_MAX_FRAME + 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        mem_snap m = mem_now();
        int fd = raw_session();
        char hdr[4];
        maos_frame_put_len(hdr, lens[i]);
        MT_EQ_INT(mt_send_all(fd, hdr, 4), 0);
        /* Some payload bytes, as a real sender would push. */
        static char junk[65536];
        memset(junk, 0x90, sizeof junk);
        (void)mt_send_all(fd, junk, sizeof junk); /* may fail: closed */
        expect_error_or_close(fd, MAOS_EFRAME_TOO_LARGE, MAOS_EFRAME_TOO_LARGE);
        close(fd);
        assert_mem_small(m);
        assert_healthy();
    }
    /* Before hello, too. */
    mem_snap m = mem_now();
    int fd = raw_connect();
    char hdr[4];
    maos_frame_put_len(hdr, 0xFFFFFFF0u);
    MT_EQ_INT(mt_send_all(fd, hdr, 4), 0);
    expect_error_or_close(fd, MAOS_EFRAME_TOO_LARGE, MAOS_EFRAME_TOO_LARGE);
    close(fd);
    assert_mem_small(m);
    finish();
}

/* A configured --max-frame is enforced (and a frame just under it is fine). */
static void test_max_frame_flag(void **state)
{
    (void)state;
    g_d = mt_daemon_new(NULL, NULL);
    mt_daemon_add_arg(g_d, "--max-frame");
    mt_daemon_add_arg(g_d, "4096");
    mt_daemon_up(g_d);
    int fd = raw_connect();
    pkbuf b;
    pk_init(&b);
    maos_enc_hello(&b.pk, 1, MAOS_PROTOCOL_VERSION, "maxframe");
    send_pk(fd, &b);
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    uint32_t mf = rep.max_frame;
    int ok = rep.ok;
    free(frame);
    MT_EQ_INT(ok, 1);
    MT_EQ_U64(mf, 4096);

    /* An append of ~3 KiB data is accepted. */
    char data[3000 + 5];
    data[0] = (char)0xc5; /* bin16 */
    data[1] = (char)(3000 >> 8);
    data[2] = (char)(3000 & 0xff);
    memset(data + 3, 'x', 3000);
    maos_event_in ev = {.type = {"T", 1}, .data = {data, 3003}};
    maos_append_in a = {{"mf-1", 4}, MAOS_EXPECT_ANY, 1, &ev};
    pk_init(&b);
    maos_enc_append(&b.pk, 2, &a);
    MT_CMP_INT(b.sb.size, <=, 4096);
    send_pk(fd, &b);
    recv_reply(fd, &rep, &frame);
    ok = rep.ok;
    int code = rep.code;
    free(frame);
    MT_EQ_ERR(code, 0);
    MT_EQ_INT(ok, 1);

    /* 4097 bytes: refused. */
    static char big[4097];
    memset(big, 0xc0, sizeof big);
    send_frame_attack(fd, big, sizeof big);
    expect_error_or_close(fd, MAOS_EFRAME_TOO_LARGE, MAOS_EFRAME_TOO_LARGE);
    close(fd);
    fd = raw_session();
    raw_ping(fd, 3);
    uint8_t ids[1][16];
    MT_EQ_U64(raw_read_ids(fd, "mf-1", ids, 1), 1);
    close(fd);
    MT_EQ_INT(mt_daemon_stop(g_d), 0);
}

/* A frame cut short, then the connection closed. */
static void test_truncated_frame(void **state)
{
    (void)state;
    setup_daemon();
    /* header only, header + part of the payload, part of a header */
    for (int k = 0; k < 3; k++) {
        int fd = raw_session();
        pkbuf b;
        pk_init(&b);
        maos_event_in ev = {.type = {"Trunc", 5}};
        maos_append_in a = {{"trunc-1", 7}, MAOS_EXPECT_ANY, 1, &ev};
        maos_enc_append(&b.pk, 5, &a);
        char hdr[4];
        maos_frame_put_len(hdr, (uint32_t)b.sb.size);
        if (k == 2) {
            MT_EQ_INT(mt_send_all(fd, hdr, 2), 0);
        } else {
            MT_EQ_INT(mt_send_all(fd, hdr, 4), 0);
            if (k == 1)
                MT_EQ_INT(mt_send_all(fd, b.sb.data, b.sb.size - 3), 0);
        }
        pk_done(&b);
        mt_sleep_ms(50);
        close(fd);
        assert_healthy();
    }
    /* The half-sent append was not written. */
    int fd = raw_session();
    pkbuf b;
    pk_init(&b);
    maos_enc_read(&b.pk, 6, (maos_slice){"trunc-1", 7}, 0, 0, 0, 10);
    send_pk(fd, &b);
    expect_error(fd, MAOS_ENOT_FOUND, 6);
    close(fd);
    finish();
}

static void test_zero_length_frame(void **state)
{
    (void)state;
    setup_daemon();
    int fd = raw_session();
    send_frame_attack(fd, NULL, 0);
    expect_error_or_close(fd, MAOS_EBAD_FRAME, MAOS_EBAD_REQUEST);
    close(fd);
    /* before hello too */
    fd = raw_connect();
    send_frame_attack(fd, NULL, 0);
    expect_error_or_close(fd, MAOS_EBAD_FRAME, MAOS_EBAD_REQUEST);
    close(fd);
    finish();
}

/* Deterministic garbage. */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint8_t rnd8(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint8_t)g_rng;
}

/* Read until close or timeout; every frame that comes back must be an error
 * reply with a known code. */
static void drain_errors_or_close(int fd)
{
    for (int i = 0; i < 10000; i++) {
        char *frame;
        uint32_t len;
        int r = mt_recv_frame(fd, &frame, &len, REPLY_MAX, 3000);
        if (r == 0 || r == -1)
            return; /* closed, or silent waiting for more bytes */
        if (r == -2)
            MT_FAIL("reply frame larger than the maximum");
        maos_reply rep;
        memset(&rep, 0, sizeof rep);
        int rc = maos_reply_decode(frame, len, &rep);
        int ok = rep.ok, code = rep.code;
        free(frame);
        MT_EQ_ERR(rc, 0);
        MT_EQ_INT(ok, 0);
        MT_TRUE(code < 0 && -code < MAOS_ERRNO_LOCAL_MIN);
    }
}

static void test_garbage_bytes(void **state)
{
    (void)state;
    setup_daemon();
    for (int round = 0; round < 8; round++) {
        mem_snap m = mem_now();
        int fd = round % 2 ? raw_session() : raw_connect();
        static uint8_t buf[16384];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = rnd8();
        if (round == 0)
            memcpy(buf, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
        (void)mt_send_all(fd, buf, sizeof buf);
        shutdown(fd, SHUT_WR);
        drain_errors_or_close(fd);
        close(fd);
        assert_mem_small(m);
        assert_healthy();
    }
    finish();
}

static void test_malformed_msgpack(void **state)
{
    (void)state;
    setup_daemon();
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        LIT("\xc1"),                        /* reserved type byte */
        LIT("\x82\xa2op\xa4ping"),          /* map of 2 with 1 pair */
        LIT("\x82\xa2op\xa4pin"),           /* string cut short */
        LIT("\x81\xa2op\xa4ping\xc0"),      /* trailing byte */
        LIT("\xc0\xc0"),                    /* two values */
        LIT("\xd9"),                        /* str8 without its length */
        LIT("\xcf\x00\x00"),                /* uint64 cut short */
        LIT("\x92\xc1\xc1"),                /* array of reserved bytes */
        LIT("\x81\xc1\xa1x"),               /* reserved key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("malformed case %zu\n", i);
        int fd = raw_session();
        send_frame_attack(fd, bad[i].p, bad[i].n);
        expect_error_or_close(fd, MAOS_EBAD_FRAME, MAOS_EBAD_FRAME);
        close(fd);
    }
    assert_healthy();
    finish();
}

/* Headers declaring ~4 billion elements in a small frame. */
static void test_huge_declared_counts(void **state)
{
    (void)state;
    setup_daemon();
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        LIT("\xdd\xff\xff\xff\xff\xc0\xc0"),       /* array32 */
        LIT("\xdf\xff\xff\xff\xff\xa1k\xc0"),      /* map32 */
        LIT("\xdb\xff\xff\xff\xf0" "abc"),         /* str32 */
        LIT("\xc6\xff\xff\xff\xf0" "abc"),         /* bin32 */
        LIT("\xc9\xff\xff\xff\xf0\x01" "ab"),      /* ext32 */
        LIT("\xdc\xff\xff\xc0"),                   /* array16 */
        LIT("\xde\xff\xff\xc0"),                   /* map16 */
        /* inside a valid-looking request: {op:ping, rid:1, x:array32(4e9)} */
        LIT("\x83\xa2op\xa4ping\xa3rid\x01\xa1x\xdd\xff\xff\xff\xff\xc0"),
        /* an append whose events array declares 4e9 events */
        LIT("\x84\xa2op\xa6" "append\xa3rid\x02\xa6stream\xa3s-1\xa6" "events"
         "\xdd\xff\xff\xff\xff\x80"),
        /* a read_all whose types array declares 4e9 types */
        LIT("\x83\xa2op\xa8read_all\xa3rid\x03\xa5types\xdd\xff\xff\xff\xff\xa1T"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("declared count case %zu\n", i);
        mem_snap m = mem_now();
        int fd = raw_session();
        send_frame_attack(fd, bad[i].p, bad[i].n);
        expect_error_or_close(fd, MAOS_EBAD_FRAME, MAOS_ELIMIT);
        close(fd);
        assert_mem_small(m);
    }
    assert_healthy();
    finish();
}

/* 100,000 nested arrays (and maps): refused without blowing the stack. */
static void test_deep_nesting(void **state)
{
    (void)state;
    setup_daemon();
    size_t depth = 100000;
    char *buf = malloc(depth * 2 + 64);
    for (int kind = 0; kind < 3; kind++) {
        size_t n = 0;
        if (kind == 2) {
            /* {op:ping, rid:1, x: [[[[...]]]]} */
            memcpy(buf, "\x83\xa2op\xa4ping\xa3rid\x01\xa1x", 16);
            n = 16;
        }
        for (size_t i = 0; i < depth; i++) {
            if (kind == 1) {
                buf[n++] = (char)0x81; /* map of 1: key nil, value next */
                buf[n++] = (char)0xc0;
            } else {
                buf[n++] = (char)0x91;
            }
        }
        buf[n++] = (char)0xc0;
        print_message("nesting kind %d, %zu bytes\n", kind, n);
        int fd = raw_session();
        send_frame_attack(fd, buf, n);
        expect_error_or_close(fd, MAOS_ELIMIT, MAOS_EBAD_FRAME);
        close(fd);
        assert_healthy();
    }
    free(buf);
    finish();
}

/* Many clients misbehaving at once while a good one keeps working. */
static void test_mixed_abuse_many_connections(void **state)
{
    (void)state;
    setup_daemon();
    int fds[64];
    for (int i = 0; i < 64; i++) {
        fds[i] = raw_connect();
        if (i % 4 == 0) {
            char hdr[4];
            maos_frame_put_len(hdr, 0xFFFFFFF0u);
            (void)mt_send_all(fds[i], hdr, 4);
        } else if (i % 4 == 1) {
            (void)mt_send_all(fds[i], "\x00\x00\x00\x05\xc1\xc1", 6);
        } else if (i % 4 == 2) {
            (void)mt_send_all(fds[i], "\x00\x00", 2); /* half a header */
        }
        /* i % 4 == 3: idle, connected, never says hello */
    }
    assert_healthy();
    for (int i = 0; i < 64; i++)
        close(fds[i]);
    assert_healthy();
    finish();
}

/* ---- regressions from the review of bf6c102 ------------------------------ */

/* Peak memory the daemon may reach while one client floods it: the cap on
 * a connection's load (64 MiB of queued writes and output), a commit group
 * (64 MiB), the reader's frame and RocksDB's memtables and cache, with
 * room to spare.  Before bf6c102 the daemon read everything: 200 x 4 MB
 * queued reached ~1.6 GB. */
#define FLOOD_HWM_KB (600L * 1024)

static void put_be64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (char)v;
}

/* A whole append frame (header included) of one event whose data is a bin
 * of dlen bytes of `fill`; the rid is a uint64 (0xcf) whose 8 bytes are at
 * *rid_off, for the caller to patch.  Returns a malloc'd frame. */
static char *mk_big_append(const char *stream, size_t dlen, char fill,
                           uint64_t rid, size_t *flen, size_t *rid_off)
{
    pkbuf b;
    pk_init(&b);
    msgpack_pack_map(&b.pk, 4);
    pk_str(&b.pk, "op");
    pk_str(&b.pk, "append");
    pk_str(&b.pk, "rid");
    size_t off = b.sb.size + 1;
    msgpack_pack_uint64(&b.pk, rid | (1ull << 40)); /* forces 0xcf */
    pk_str(&b.pk, "stream");
    pk_str(&b.pk, stream);
    pk_str(&b.pk, "events");
    msgpack_pack_array(&b.pk, 1);
    msgpack_pack_map(&b.pk, 2);
    pk_str(&b.pk, "type");
    pk_str(&b.pk, "Big");
    pk_str(&b.pk, "data");
    msgpack_pack_bin(&b.pk, dlen);
    char *data = malloc(dlen);
    memset(data, fill, dlen);
    msgpack_pack_bin_body(&b.pk, data, dlen);
    free(data);
    MT_EQ_INT((unsigned char)b.sb.data[off - 1], 0xcf);
    char *f = malloc(b.sb.size + 4);
    maos_frame_put_len(f, (uint32_t)b.sb.size);
    memcpy(f + 4, b.sb.data, b.sb.size);
    *flen = b.sb.size + 4;
    *rid_off = off + 4;
    put_be64(f + *rid_off, rid);
    pk_done(&b);
    return f;
}

/* 1 once the child has exited (not reaped: mt_wait does that). */
static int kid_exited(pid_t kid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)kid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 1;
    return si.si_pid == kid;
}

/* Receive the reply to an append: ok, one event; returns its rid. */
static uint64_t expect_append_ok(int fd, int timeout_ms)
{
    char *frame;
    uint32_t len;
    int r = mt_recv_frame(fd, &frame, &len, REPLY_MAX, timeout_ms);
    if (r != 1)
        MT_FAIL("no append reply: mt_recv_frame returned %d (0 closed, -1 "
                "timeout, -2 too large)", r);
    maos_reply rep;
    memset(&rep, 0, sizeof rep);
    int rc = maos_reply_decode(frame, len, &rep);
    int ok = rep.ok, code = rep.code;
    uint32_t count = rep.result.count;
    uint64_t rid = rep.rid;
    free(frame);
    MT_EQ_ERR(rc, 0);
    MT_EQ_ERR(code, 0);
    MT_EQ_INT(ok, 1);
    MT_EQ_U64(count, 1);
    return rid;
}

/* A client that pipelines 200 appends of 4 MB and never reads a reply
 * cannot grow the daemon without bound: it stops reading the client while
 * the client's queued writes are over the cap.  Others are served
 * meanwhile, and every append is answered once the client reads. */
static void test_flood_without_reading(void **state)
{
    (void)state;
    g_d = mt_daemon_new(NULL, NULL);
    /* Under ASan, freed chunks wait in a quarantine (256 MB by default)
     * that counts in VmHWM: keep it small, the bound is about maosd. */
    char asan[512];
    const char *ao = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%squarantine_size_mb=16", ao ? ao : "",
             ao && *ao ? ":" : "");
    mt_daemon_setenv(g_d, "ASAN_OPTIONS", asan);
    mt_daemon_up(g_d);
    base_events();
    enum { N = 200 };
    const uint64_t rid0 = 1000;
    size_t flen, rid_off;
    char *msg = mk_big_append("flood-1", 4u << 20, 'f', rid0, &flen, &rid_off);
    int fd = raw_session();
    long hwm0 = mt_hwm_kb(g_d->pid);

    /* The sender is a child, so that this process can watch and ping. */
    pid_t kid = mt_fork();
    if (kid == 0) {
        for (int i = 0; i < N; i++) {
            put_be64(msg + rid_off, rid0 + (uint64_t)i);
            if (mt_send_all(fd, msg, flen) != 0)
                _exit(1);
        }
        _exit(0);
    }
    free(msg);
    long hwm;
    int pings = 0;
    int64_t worst_ping = 0, t0 = mt_now_us();
    while (!kid_exited(kid) && mt_now_us() - t0 < 60LL * 1000000) {
        int64_t p0 = mt_now_us();
        int pfd = raw_session();
        raw_ping(pfd, 5000 + (uint64_t)pings);
        close(pfd);
        int64_t dt = mt_now_us() - p0;
        if (dt > worst_ping)
            worst_ping = dt;
        pings++;
        mt_sleep_ms(50);
    }
    hwm = mt_hwm_kb(g_d->pid); /* the peak, whenever it was */
    print_message("flood: %d pings (worst %lld ms), VmHWM %ld -> %ld KiB, "
                  "%.1f s\n", pings, (long long)(worst_ping / 1000), hwm0, hwm,
                  (double)(mt_now_us() - t0) / 1e6);
    if (!MT_TSAN) /* TSan's shadow memory counts in VmHWM (harness.h) */
        MT_CMP_INT(hwm, <, FLOOD_HWM_KB);
    MT_CMP_INT(pings, >=, 1);
    MT_CMP_INT(worst_ping, <, 5LL * 1000000);
    MT_EQ_INT(mt_wait(kid, 60000), 0); /* every frame was taken */

    /* Now read: one ok per append, each rid once. */
    char seen[N] = {0};
    for (int k = 0; k < N; k++) {
        uint64_t rid = expect_append_ok(fd, 30000);
        if (rid < rid0 || rid >= rid0 + N || seen[rid - rid0])
            MT_FAIL("reply %d: rid %llu unexpected or repeated", k,
                    (unsigned long long)rid);
        seen[rid - rid0] = 1;
    }
    /* the last event is version N - 1 */
    pkbuf b;
    pk_init(&b);
    maos_enc_read(&b.pk, 9, (maos_slice){"flood-1", 7}, 0, 0, 1, 1);
    send_pk(fd, &b);
    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    maos_record rec;
    memset(&rec, 0, sizeof rec);
    maos_mpr r;
    uint32_t cnt = 0;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    int ok = rep.ok, rc = maos_mpr_array(&r, &cnt);
    if (!rc && cnt == 1)
        rc = maos_record_next(&r, &rec);
    free(frame);
    MT_EQ_INT(ok, 1);
    MT_EQ_ERR(rc, 0);
    MT_EQ_U64(cnt, 1);
    MT_EQ_U64(rec.version, N - 1);
    close(fd);
    finish();
}

/* A client that sends hello and an append, then shuts down its writing
 * side, still gets both replies before the daemon closes (before bf6c102
 * the EOF closed the connection at once, replies unsent). */
static void test_half_close_answered(void **state)
{
    (void)state;
    setup_daemon();
    int fd = raw_connect();
    pkbuf b;
    pk_init(&b);
    MT_EQ_ERR(maos_enc_hello(&b.pk, 1, MAOS_PROTOCOL_VERSION, "halfclose"), 0);
    send_pk(fd, &b);
    maos_event_in ev = {.type = {"T", 1}};
    maos_append_in a = {{"half-1", 6}, MAOS_EXPECT_ANY, 1, &ev};
    pk_init(&b);
    MT_EQ_ERR(maos_enc_append(&b.pk, 2, &a), 0);
    send_pk(fd, &b);
    MT_EQ_INT(shutdown(fd, SHUT_WR), 0);

    maos_reply rep;
    char *frame;
    recv_reply(fd, &rep, &frame);
    int ok = rep.ok, code = rep.code;
    uint64_t rid = rep.rid, ver = rep.version;
    free(frame);
    MT_EQ_ERR(code, 0);
    MT_EQ_INT(ok, 1);
    MT_EQ_U64(rid, 1);
    MT_EQ_U64(ver, MAOS_PROTOCOL_VERSION);
    uint64_t arid = expect_append_ok(fd, 10000);
    MT_EQ_U64(arid, 2);
    /* then EOF */
    uint32_t len;
    int r = mt_recv_frame(fd, &frame, &len, REPLY_MAX, 10000);
    if (r == 1)
        free(frame);
    MT_EQ_INT(r, 0);
    close(fd);
    fd = raw_session();
    uint8_t ids[1][16];
    MT_EQ_U64(raw_read_ids(fd, "half-1", ids, 1), 1);
    close(fd);
    finish();
}

/* SIGTERM while a peer has filled its socket with read requests and reads
 * nothing: the daemon gives up on it after its drain deadline (5 s) and
 * exits 0 (before bf6c102 it waited for that peer forever). */
static void test_shutdown_with_stuck_reader(void **state)
{
    (void)state;
    setup_daemon();
    int fd = raw_session();
    size_t flen, rid_off;
    char *msg = mk_big_append("stuck-1", 100000, 's', 2, &flen, &rid_off);
    MT_EQ_INT(mt_send_all(fd, msg, flen), 0);
    free(msg);
    MT_EQ_U64(expect_append_ok(fd, 10000), 2);

    /* Read requests (each answered with the 100 KB event) until the
     * socket takes no more. */
    pkbuf b;
    pk_init(&b);
    maos_enc_read(&b.pk, 3, (maos_slice){"stuck-1", 7}, 0, 0, 0, 1000);
    char req[256];
    size_t rlen = b.sb.size + 4;
    MT_CMP_INT(rlen, <=, sizeof req);
    maos_frame_put_len(req, (uint32_t)b.sb.size);
    memcpy(req + 4, b.sb.data, b.sb.size);
    pk_done(&b);
    int sent = 0;
    size_t off = 0;
    int64_t t0 = mt_now_us();
    while (sent < 100000 && mt_now_us() - t0 < 5LL * 1000000) {
        ssize_t w = send(fd, req + off, rlen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            if (off == rlen) {
                off = 0;
                sent++;
            }
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            MT_FAIL("send: %s", strerror(errno));
        /* full: give the daemon a moment to take more, then stop */
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 300) <= 0)
            break;
    }
    print_message("sent %d read requests (%.1f s)\n", sent,
                  (double)(mt_now_us() - t0) / 1e6);
    MT_CMP_INT(sent, >=, 100);

    t0 = mt_now_us();
    MT_EQ_INT(kill(g_d->pid, SIGTERM), 0);
    int st = mt_wait(g_d->pid, 12000); /* SIGKILL after 12 s: 1000 */
    g_d->pid = 0;
    int64_t ms = (mt_now_us() - t0) / 1000;
    print_message("maosd exited with %d after %lld ms\n", st, (long long)ms);
    MT_EQ_INT(st, 0);
    MT_CMP_INT(ms, <, 10000);
    close(fd);

    /* nothing was lost */
    mt_daemon_up(g_d);
    finish();
}

/* An error about a well-formed request that breaks a limit carries the
 * request's rid: here data nested 100 levels deep (limit 64). */
static void test_limit_error_has_rid(void **state)
{
    (void)state;
    setup_daemon();
    int fd = raw_session();
    pkbuf b;
    pk_init(&b);
    msgpack_pack_map(&b.pk, 4);
    pk_str(&b.pk, "op");
    pk_str(&b.pk, "append");
    pk_str(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, 777);
    pk_str(&b.pk, "stream");
    pk_str(&b.pk, "deep-1");
    pk_str(&b.pk, "events");
    msgpack_pack_array(&b.pk, 1);
    msgpack_pack_map(&b.pk, 2);
    pk_str(&b.pk, "type");
    pk_str(&b.pk, "T");
    pk_str(&b.pk, "data");
    for (int i = 0; i < 100; i++)
        msgpack_pack_array(&b.pk, 1);
    msgpack_pack_nil(&b.pk);
    send_pk(fd, &b);
    expect_error(fd, MAOS_ELIMIT, 777);
    /* a typed error: the connection goes on */
    raw_ping(fd, 778);
    close(fd);
    /* nothing was written */
    fd = raw_session();
    pk_init(&b);
    maos_enc_read(&b.pk, 779, (maos_slice){"deep-1", 6}, 0, 0, 0, 10);
    send_pk(fd, &b);
    expect_error(fd, MAOS_ENOT_FOUND, 779);
    close(fd);
    finish();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_hello),
        cmocka_unit_test(test_wrong_protocol_version),
        cmocka_unit_test(test_unknown_op),
        cmocka_unit_test(test_wrong_field_types),
        cmocka_unit_test(test_invalid_uuid),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_oversized_frame),
        cmocka_unit_test(test_max_frame_flag),
        cmocka_unit_test(test_truncated_frame),
        cmocka_unit_test(test_zero_length_frame),
        cmocka_unit_test(test_garbage_bytes),
        cmocka_unit_test(test_malformed_msgpack),
        cmocka_unit_test(test_huge_declared_counts),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_mixed_abuse_many_connections),
        cmocka_unit_test(test_flood_without_reading),
        cmocka_unit_test(test_half_close_answered),
        cmocka_unit_test(test_shutdown_with_stuck_reader),
        cmocka_unit_test(test_limit_error_has_rid),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 60);
}
