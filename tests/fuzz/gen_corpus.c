/*
 * tests/fuzz/gen_corpus.c -- writes the seed corpora of the fuzz targets.
 *
 *   gen_corpus DIR      writes DIR/frame/ and DIR/reply/
 *
 * DIR/frame/ holds byte streams a client could send on one connection
 * (4-byte length + msgpack, usually hello first) for fuzz_frame; DIR/reply/
 * holds single reply and push payloads for fuzz_reply.  Every op and every
 * reply and push kind has valid seeds (issue 7: tables, agents, the txn ops
 * form, entries, mixed txn results, entries pushes) and the typed
 * rejections have hostile ones.  Valid messages are made by
 * the real encoders (maos_enc_*), so the corpus follows the layout in
 * proto/msg.c; hostile ones are written byte by byte: huge declared
 * lengths, truncations, deep nesting, str32/bin32/array32/map32/ext32
 * headers declaring 4 GiB, reserved bytes, wrong types, bad names and ids,
 * limits exceeded.
 *
 * Every message marked valid is decoded again here and the program fails if
 * it does not decode to what was meant, so running it is also a test (meson
 * runs it into the build directory).  The committed corpus in
 * tests/fuzz/corpus was made with:  build/tests/fuzz/gen_corpus tests/fuzz/corpus
 * Output is deterministic: fixed ids, times and a fixed PRNG seed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "maos/proto.h"

/* A string literal and its length, NULs included. */
#define LIT(s) s, sizeof(s) - 1

static const char *out_dir;
static int n_files;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, detail);
    exit(1);
}

/* ---- byte buffers ------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            die("realloc", "out of memory");
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_bytes(buf *b, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        char c = (char)va_arg(ap, int);
        put(b, &c, 1);
    }
    va_end(ap);
}

static void put_be32(buf *b, uint32_t v)
{
    char h[4];
    maos_frame_put_len(h, v);
    put(b, h, 4);
}

/* msgpack str with the shortest header (keys and small strings). */
static void put_str(buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n < 32) {
        put_bytes(b, 1, 0xa0 | (int)n);
    } else {
        put_bytes(b, 2, 0xd9, (int)n);
    }
    put(b, s, n);
}

static void put_frame(buf *stream, const buf *payload)
{
    put_be32(stream, (uint32_t)payload->len);
    put(stream, payload->p, payload->len);
}

static void buf_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- encoder output ------------------------------------------------------ */

typedef struct enc {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} enc;

static void enc_init(enc *e)
{
    msgpack_sbuffer_init(&e->sb);
    msgpack_packer_init(&e->pk, &e->sb, msgpack_sbuffer_write);
}

static void enc_done(enc *e, buf *into)
{
    put(into, e->sb.data, e->sb.size);
    msgpack_sbuffer_destroy(&e->sb);
}

static void must(int rc, const char *what)
{
    if (rc)
        die(what, maos_err_name(rc));
}

/* ---- files ---------------------------------------------------------------- */

static void write_file(const char *sub, const char *name, const buf *b)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        die(path, strerror(errno));
    if (b->len && fwrite(b->p, 1, b->len, f) != b->len)
        die(path, "short write");
    if (fclose(f))
        die(path, strerror(errno));
    n_files++;
}

/* ---- self checks ----------------------------------------------------------- */

static void check_request(const char *name, const buf *payload, maos_op op)
{
    maos_request req;
    char why[256];
    int rc = maos_request_decode(payload->p, payload->len, NULL, &req, why, sizeof why);
    if (rc) {
        fprintf(stderr, "gen_corpus: %s: %s: %s\n", name, maos_err_name(rc), why);
        exit(1);
    }
    if (req.op != op)
        die(name, "decoded to another op");
    maos_request_free(&req);
}

/* A stream of frames, each checked to decode as the op given. */
typedef struct wire {
    const char *name;
    buf b;
} wire;

static void wire_add(wire *w, buf *payload, maos_op op)
{
    if (op != MAOS_OP_NONE)
        check_request(w->name, payload, op);
    put_frame(&w->b, payload);
    buf_free(payload);
}

static void wire_hello(wire *w)
{
    enc e;
    buf p = {0};
    enc_init(&e);
    must(maos_enc_hello(&e.pk, 1, MAOS_PROTOCOL_VERSION, "gen_corpus"), "hello");
    enc_done(&e, &p);
    wire_add(w, &p, MAOS_OP_HELLO);
}

static void wire_write(wire *w)
{
    write_file("frame", w->name, &w->b);
    buf_free(&w->b);
}

/* ---- request builders ------------------------------------------------------ */

static const uint8_t ID1[16] = {0x01, 0x8f, 0x3c, 0x2a, 0x5b, 0x10, 0x7a, 0xbc,
                                0x91, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

static maos_slice S(const char *s)
{
    return (maos_slice){s, (uint32_t)strlen(s)};
}

static void make_id(uint8_t id[16], unsigned i)
{
    memcpy(id, ID1, 16);
    id[14] = (uint8_t)(i >> 8);
    id[15] = (uint8_t)i;
}

/* Events with ids, a data map and a meta map, backed by static storage. */
static maos_event_in *full_events(unsigned n, buf *store)
{
    maos_event_in *ev = calloc(n, sizeof *ev);
    if (!ev)
        die("calloc", "out of memory");
    /* Pack all data/meta first, then point into the final buffer. */
    size_t *doff = calloc(n, sizeof *doff), *moff = calloc(n, sizeof *moff);
    size_t *dlen = calloc(n, sizeof *dlen), *mlen = calloc(n, sizeof *mlen);
    for (unsigned i = 0; i < n; i++) {
        enc e;
        enc_init(&e);
        msgpack_pack_map(&e.pk, 3);
        msgpack_pack_str_with_body(&e.pk, "n", 1);
        msgpack_pack_uint32(&e.pk, i);
        msgpack_pack_str_with_body(&e.pk, "item", 4);
        msgpack_pack_str_with_body(&e.pk, "widget", 6);
        msgpack_pack_str_with_body(&e.pk, "price", 5);
        msgpack_pack_double(&e.pk, 9.5 + i);
        doff[i] = store->len;
        dlen[i] = e.sb.size;
        enc_done(&e, store);
        enc_init(&e);
        msgpack_pack_map(&e.pk, 3);
        msgpack_pack_str_with_body(&e.pk, "correlation_id", 14);
        msgpack_pack_str_with_body(&e.pk, "7d0e6a38-4f0c-4c38-9d5e-1f2a3b4c5d6e", 36);
        msgpack_pack_str_with_body(&e.pk, "agent", 5);
        msgpack_pack_str_with_body(&e.pk, "planner-1", 9);
        msgpack_pack_str_with_body(&e.pk, "session", 7);
        msgpack_pack_uint64(&e.pk, 42);
        moff[i] = store->len;
        mlen[i] = e.sb.size;
        enc_done(&e, store);
    }
    for (unsigned i = 0; i < n; i++) {
        make_id(ev[i].id, i);
        ev[i].has_id = 1;
        ev[i].type = S(i % 2 ? "OrderShipped" : "OrderCreated");
        ev[i].data = (maos_slice){store->p + doff[i], (uint32_t)dlen[i]};
        ev[i].meta = (maos_slice){store->p + moff[i], (uint32_t)mlen[i]};
    }
    free(doff);
    free(moff);
    free(dlen);
    free(mlen);
    return ev;
}

static void one_append(const char *name, const char *stream, int64_t expect,
                       maos_event_in *ev, uint32_t n)
{
    wire w = {name, {0}};
    wire_hello(&w);
    maos_append_in a = {S(stream), expect, n, ev};
    enc e;
    buf p = {0};
    enc_init(&e);
    must(maos_enc_append(&e.pk, 2, &a), name);
    enc_done(&e, &p);
    wire_add(&w, &p, MAOS_OP_APPEND);
    wire_write(&w);
}

/* A request map written by hand: {"op": op, "rid": 2, <extra>}. */
static void raw_request(buf *p, const char *op, uint32_t extra_keys)
{
    put_bytes(p, 1, 0x80 | (int)(2 + extra_keys));
    put_str(p, "op");
    put_str(p, op);
    put_str(p, "rid");
    put_bytes(p, 1, 2);
}

/* hello, then one hand-made payload (not checked: it is meant to fail). */
static void hostile(const char *name, buf *payload)
{
    wire w = {name, {0}};
    wire_hello(&w);
    wire_add(&w, payload, MAOS_OP_NONE);
    wire_write(&w);
}

/* An append of one event whose "data" is the given raw msgpack bytes. */
static void append_with_data(const char *name, const void *data, size_t n)
{
    buf p = {0};
    raw_request(&p, "append", 2);
    put_str(&p, "stream");
    put_str(&p, "fuzz-1");
    put_str(&p, "events");
    put_bytes(&p, 3, 0x91, 0x82, 0xa4);
    put(&p, "type", 4);
    put_str(&p, "T");
    put_str(&p, "data");
    put(&p, data, n);
    hostile(name, &p);
}

/* An append of one event whose event map is given raw. */
static void append_with_event(const char *name, const void *ev, size_t n)
{
    buf p = {0};
    raw_request(&p, "append", 2);
    put_str(&p, "stream");
    put_str(&p, "fuzz-1");
    put_str(&p, "events");
    put_bytes(&p, 1, 0x91);
    put(&p, ev, n);
    hostile(name, &p);
}

static uint64_t prng = 0x6d616f7366757a7aull;

static uint32_t rnd(void)
{
    prng ^= prng << 13;
    prng ^= prng >> 7;
    prng ^= prng << 17;
    return (uint32_t)prng;
}

/* One request made by an encoder, after hello, checked to decode as op. */
static void one_request(wire *w, maos_op op, int rc, enc *e)
{
    buf p = {0};
    must(rc, w->name);
    enc_done(e, &p);
    wire_add(w, &p, op);
}

/* A hand-made request with a given set of raw pairs after op and rid. */
typedef struct pair {
    const char *key;
    const char *val; /* raw msgpack */
    size_t len;
} pair;

/* ... checked to be refused with code (so each seed reaches the check it
 * is named after). */
static void hostile_pairs(const char *name, const char *op, const pair *pairs, uint32_t n,
                          int code)
{
    buf p = {0};
    maos_request req;
    char why[256];
    raw_request(&p, op, n);
    for (uint32_t i = 0; i < n; i++) {
        put_str(&p, pairs[i].key);
        put(&p, pairs[i].val, pairs[i].len);
    }
    int rc = maos_request_decode(p.p, p.len, NULL, &req, why, sizeof why);
    maos_request_free(&req);
    if (rc != code) {
        fprintf(stderr, "gen_corpus: %s: %s (%s), want %s\n", name, maos_err_name(rc), why,
                maos_err_name(code));
        exit(1);
    }
    hostile(name, &p);
}

#define PAIR(k, lit) {k, lit, sizeof(lit) - 1}
/* A hostile request of up to three raw pairs, refused with code. */
typedef struct bad_req {
    const char *name, *op;
    pair p[3];
    uint32_t n;
    int code;
} bad_req;
/* {"a": 1, "tags": ["x", "y"]} */
#define DOC "\x82\xa1" "a\x01\xa4tags\x92\xa1x\xa1y"

/* issue 7: tables, agents, the txn ops form */
static void table_frames(void)
{
    enc e;
    {
        wire w = {"valid-put", {0}};
        wire_hello(&w);
        static const int64_t expects[] = {MAOS_EXPECT_ANY, MAOS_EXPECT_ABSENT,
                                          MAOS_EXPECT_EXISTS, 17};
        for (int i = 0; i < 4; i++) {
            enc_init(&e);
            one_request(&w, MAOS_OP_PUT,
                        maos_enc_put(&e.pk, 2 + (uint64_t)i, S(i % 2 ? "kv.plan" : "locks"),
                                     S("step-3"), S(DOC), expects[i], i == 1),
                        &e);
        }
        wire_write(&w);
    }
    {
        wire w = {"valid-get-delete", {0}};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_GET, maos_enc_get(&e.pk, 2, S("agents"), S("writer-1")), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_DELETE,
                    maos_enc_delete(&e.pk, 3, S("sessions"), S("s-\xc3\x9c"), 12), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_DELETE,
                    maos_enc_delete(&e.pk, 4, S("kv.files"), S("src/a.c"), MAOS_EXPECT_EXISTS),
                    &e);
        wire_write(&w);
    }
    {
        /* where: {"status": "online", "tags": "code"} */
        static const char where[] = "\x82\xa6status\xa6online\xa4tags\xa4" "code";
        wire w = {"valid-list-count", {0}};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_LIST,
                    maos_enc_list(&e.pk, 2, S("agents"), S(""), S(""), 0, S("")), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_LIST,
                    maos_enc_list(&e.pk, 3, S("kv.files"), S("src/"), S("src/a.c"), 50,
                                  S(where)),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_COUNT,
                    maos_enc_count(&e.pk, 4, S("agents"), S("w"), S(where)), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_COUNT, maos_enc_count(&e.pk, 5, S("locks"), S(""), S("")),
                    &e);
        wire_write(&w);
    }
    {
        wire w = {"valid-watch", {0}};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_WATCH,
                    maos_enc_watch(&e.pk, 2, S("kv.plan"), S(""), MAOS_WATCH_FROM_ENTRIES, 0),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_WATCH,
                    maos_enc_watch(&e.pk, 3, S("agents"), S("w"), MAOS_WATCH_FROM_REVISION,
                                   4242),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_WATCH,
                    maos_enc_watch(&e.pk, 4, S("locks"), S("deploy"), MAOS_WATCH_FROM_NOW, 0),
                    &e);
        wire_write(&w);
    }
    {
        wire w = {"valid-agents", {0}};
        maos_agent_in a = {.id = S("writer-1"), .session = S("s-42"), .name = S("Writer"),
                           .kind = S("llm"), .tags = S("\x92\xa4" "code\xa6review"),
                           .details = S("\x81\xa5model\xa3xyz")};
        maos_agent_in min = {.id = S("w")};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_AGENT_REGISTER, maos_enc_agent_register(&e.pk, 2, &a), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_AGENT_REGISTER, maos_enc_agent_register(&e.pk, 3, &min), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_AGENT_STATUS,
                    maos_enc_agent_status(&e.pk, 4, S("busy"), S("\xa9step 3/10")), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_AGENT_STATUS,
                    maos_enc_agent_status(&e.pk, 5, S("idle"), (maos_slice){0}), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_AGENT_DEREGISTER,
                    maos_enc_agent_deregister(&e.pk, 6, S("writer-1")), &e);
        wire_write(&w);
    }
    {
        /* the ops form: every kind; and the other ops of the protocol */
        maos_event_in ev[2] = {{.type = S("A")}, {.type = S("B"), .data = S("\x01")}};
        maos_append_in ap[2] = {{S("orders-1"), 3, 2, ev},
                                {S("audit"), MAOS_EXPECT_NO_STREAM, 1, ev}};
        maos_item_in items[5] = {
            {.kind = MAOS_ITEM_PUT, .table = {MAOS_TABLE_KV, S("kv.plan")}, .key = S("s1"),
             .data = S(DOC), .expect = MAOS_EXPECT_ABSENT, .bind = 1},
            {.kind = MAOS_ITEM_APPEND, .append = &ap[0]},
            {.kind = MAOS_ITEM_DELETE, .table = {MAOS_TABLE_LOCKS, S("locks")},
             .key = S("l"), .expect = 12},
            {.kind = MAOS_ITEM_CHECKPOINT, .name = S("cp-1"), .position = 99},
            {.kind = MAOS_ITEM_APPEND, .append = &ap[1]},
        };
        wire w = {"valid-txn-ops", {0}};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_TXN, maos_enc_txn_ops(&e.pk, 2, items, 5), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_TXN, maos_enc_txn_ops(&e.pk, 3, items + 1, 1), &e);
        wire_write(&w);
        /* append_batch: the same stream twice, each append on its own */
        maos_append_in bap[3] = {ap[0], ap[1], ap[0]};
        w = (wire){"valid-append-batch", {0}};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_APPEND_BATCH, maos_enc_append_batch(&e.pk, 2, bap, 3), &e);
        wire_write(&w);
        w = (wire){"valid-append-batch-array", {0}}; /* results asked as arrays */
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_APPEND_BATCH,
                    maos_enc_append_batch_as(&e.pk, 2, bap, 3, MAOS_FORM_ARRAY), &e);
        wire_write(&w);
        w = (wire){"valid-other-ops", {0}};
        maos_slice types[1] = {S("OrderCreated")};
        maos_filter f = {.prefix = S("orders-"), .n_types = 1, .types = types};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_SUBSCRIBE, maos_enc_subscribe(&e.pk, 2, &f, MAOS_FROM_LIVE, 0),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_SUBSCRIBE,
                    maos_enc_subscribe_as(&e.pk, 3, &f, MAOS_FROM_POSITION, 10,
                                          MAOS_FORM_ARRAY), &e);
        f = (maos_filter){.stream = S("orders-1")};
        enc_init(&e);
        one_request(&w, MAOS_OP_SUBSCRIBE,
                    maos_enc_subscribe(&e.pk, 4, &f, MAOS_FROM_VERSION, 3), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_UNSUBSCRIBE, maos_enc_unsubscribe(&e.pk, 5, 1), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_CHECKPOINT_SAVE,
                    maos_enc_checkpoint_save(&e.pk, 6, S("cp"), 7), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_CHECKPOINT_GET, maos_enc_checkpoint_get(&e.pk, 7, S("cp")),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_PUBLISH,
                    maos_enc_publish(&e.pk, 8, S("cancel"), S("\x81\xa1n\x01")), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_SUBSCRIBE_CHANNEL,
                    maos_enc_subscribe_channel(&e.pk, 9, S("can*")), &e);
        wire_write(&w);
    }
    {
        /* a 512-byte key, the longest kv table name */
        static char key[MAOS_KEY_MAX], kv[3 + MAOS_KV_NAME_MAX];
        memset(key, 'k', sizeof key);
        memcpy(kv, "kv.", 3);
        memset(kv + 3, 'n', MAOS_KV_NAME_MAX);
        wire w = {"valid-key-512", {0}};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_PUT,
                    maos_enc_put(&e.pk, 2, (maos_slice){kv, sizeof kv},
                                 (maos_slice){key, sizeof key}, S("\x80"), 0, 0),
                    &e);
        wire_write(&w);
    }

    /* typed rejections */
    static const pair t_plan = PAIR("table", "\xa7kv.plan");
    static const pair k_ok = PAIR("key", "\xa1k");
    static const pair d_ok = PAIR("data", "\x80");
    static char k513[3 + MAOS_KEY_MAX + 1];
    k513[0] = (char)0xda;
    k513[1] = (char)((MAOS_KEY_MAX + 1) >> 8);
    k513[2] = (char)((MAOS_KEY_MAX + 1) & 0xff);
    memset(k513 + 3, 'k', MAOS_KEY_MAX + 1);
    const pair k_long = {"key", k513, sizeof k513};
    static char kv65_s[2 + 3 + MAOS_KV_NAME_MAX + 1], st65_s[2 + MAOS_STATUS_MAX + 1];
    kv65_s[0] = st65_s[0] = (char)0xd9;
    kv65_s[1] = (char)(sizeof kv65_s - 2);
    memcpy(kv65_s + 2, "kv.", 3);
    memset(kv65_s + 5, 'n', MAOS_KV_NAME_MAX + 1);
    st65_s[1] = (char)(sizeof st65_s - 2);
    memset(st65_s + 2, 's', MAOS_STATUS_MAX + 1);
    const pair kv65 = {"table", kv65_s, sizeof kv65_s};
    const pair st65 = {"status", st65_s, sizeof st65_s};
    const struct {
        const char *name, *op;
        pair p[4];
        uint32_t n;
        int code;
    } bad[] = {
        {"bad-key-empty", "put", {t_plan, PAIR("key", "\xa0"), d_ok}, 3, MAOS_EINVALID_NAME},
        {"bad-key-513", "put", {t_plan, k_long, d_ok}, 3, MAOS_EINVALID_NAME},
        {"bad-key-utf8", "get", {t_plan, PAIR("key", "\xa2\xc0\xaf")}, 2, MAOS_EINVALID_NAME},
        {"bad-key-nul", "delete", {t_plan, PAIR("key", "\xa3" "a\0b")}, 2, MAOS_EINVALID_NAME},
        {"bad-key-int", "get", {t_plan, PAIR("key", "\x07")}, 2, MAOS_EBAD_REQUEST},
        {"bad-data-string", "put", {t_plan, k_ok, PAIR("data", "\xa1x")}, 3, MAOS_EBAD_REQUEST},
        {"bad-data-array", "put", {t_plan, k_ok, PAIR("data", "\x91\x80")}, 3, MAOS_EBAD_REQUEST},
        {"bad-data-missing", "put", {t_plan, k_ok}, 2, MAOS_EBAD_REQUEST},
        {"bad-table-foo", "put", {PAIR("table", "\xa3" "foo"), k_ok, d_ok}, 3, MAOS_EINVALID_NAME},
        {"bad-table-kv-empty", "get", {PAIR("table", "\xa3kv."), k_ok}, 2, MAOS_EINVALID_NAME},
        {"bad-table-kv-dash", "list", {PAIR("table", "\xa6kv.a-b")}, 1, MAOS_EINVALID_NAME},
        {"bad-table-kv-65", "count", {kv65}, 1, MAOS_EINVALID_NAME},
        {"bad-table-missing", "watch", {PAIR("prefix", "\xa1p")}, 1, MAOS_EBAD_REQUEST},
        {"bad-expect-no-stream", "put", {t_plan, k_ok, d_ok, PAIR("expect", "\xa9no_stream")},
         4, MAOS_EBAD_REQUEST},
        {"bad-delete-expect-absent", "delete", {t_plan, k_ok, PAIR("expect", "\xa6" "absent")},
         3, MAOS_EBAD_REQUEST},
        {"bad-bind-int", "put", {t_plan, k_ok, d_ok, PAIR("bind", "\x01")}, 4, MAOS_EBAD_REQUEST},
        {"bad-where-array", "list", {t_plan, PAIR("where", "\x92\xa1" "a\x01")}, 2, MAOS_EBAD_REQUEST},
        {"bad-where-int-key", "count", {t_plan, PAIR("where", "\x81\x01\x02")}, 2, MAOS_EBAD_REQUEST},
        {"bad-watch-from-later", "watch", {t_plan, PAIR("from", "\xa5later")}, 2, MAOS_EBAD_REQUEST},
        {"bad-watch-from-negative", "watch", {t_plan, PAIR("from", "\xff")}, 2, MAOS_EBAD_REQUEST},
        {"bad-list-limit-zero", "list", {t_plan, PAIR("limit", "\x00")}, 2, MAOS_EBAD_REQUEST},
        {"bad-agent-no-id", "agent_register", {PAIR("name", "\xa1n")}, 1, MAOS_EBAD_REQUEST},
        {"bad-agent-tags", "agent_register",
         {PAIR("id", "\xa1w"), PAIR("tags", "\x92\xa1x\x01")}, 2, MAOS_EBAD_REQUEST},
        {"bad-agent-details", "agent_register",
         {PAIR("id", "\xa1w"), PAIR("details", "\x90")}, 2, MAOS_EBAD_REQUEST},
        {"bad-agent-status-65", "agent_status", {st65}, 1, MAOS_EBAD_REQUEST},
        {"bad-agent-deregister-empty", "agent_deregister", {PAIR("id", "\xa0")}, 1, MAOS_EINVALID_NAME},
        {"bad-reserved-session", "append",
         {PAIR("stream", "\xa9session-1"), PAIR("events", "\x91\x81\xa4type\xa1T")}, 2, MAOS_EINVALID_NAME},
        {"bad-reserved-kv", "append",
         {PAIR("stream", "\xa9kv.plan-1"), PAIR("events", "\x91\x81\xa4type\xa1T")}, 2, MAOS_EINVALID_NAME},
        {"bad-append-batch-empty", "append_batch", {PAIR("appends", "\x90")}, 1,
         MAOS_EBAD_REQUEST},
        {"bad-append-batch-none", "append_batch", {PAIR("x", "\x01")}, 1, MAOS_EBAD_REQUEST},
        {"bad-append-batch-ops", "append_batch",
         {PAIR("ops", "\x91\x83\xa2op\xaa" "checkpoint\xa4name\xa1" "c\xa8position\x01")}, 1,
         MAOS_EBAD_REQUEST},
        {"bad-append-batch-name", "append_batch",
         {PAIR("appends", "\x92\x82\xa6stream\xa1s\xa6" "events\x91\x81\xa4type\xa1T"
                          "\x82\xa6stream\xa2$s\xa6" "events\x91\x81\xa4type\xa1T")}, 1,
         MAOS_EINVALID_NAME},
        {"bad-txn-ops-empty", "txn", {PAIR("ops", "\x90")}, 1, MAOS_EBAD_REQUEST},
        {"bad-txn-op-unknown", "txn", {PAIR("ops", "\x91\x81\xa2op\xa5merge")}, 1, MAOS_EBAD_REQUEST},
        {"bad-txn-op-no-op", "txn", {PAIR("ops", "\x91\x81\xa5table\xa5locks")}, 1, MAOS_EBAD_REQUEST},
        {"bad-txn-ops-and-appends", "txn",
         {PAIR("ops", "\x91\x83\xa2op\xaa" "checkpoint\xa4name\xa1" "c\xa8position\x01"),
          PAIR("appends", "\x91\x82\xa6stream\xa1s\xa6" "events\x91\x81\xa4type\xa1T")},
         2, MAOS_EBAD_REQUEST},
        {"bad-txn-same-key-twice", "txn",
         {PAIR("ops", "\x92"
                      "\x84\xa2op\xa3put\xa5table\xa5locks\xa3key\xa1l\xa4" "data\x80"
                      "\x83\xa2op\xa6" "delete\xa5table\xa5locks\xa3key\xa1l")},
         1, MAOS_EBAD_REQUEST},
        {"bad-txn-op-reserved-stream", "txn",
         {PAIR("ops", "\x91\x83\xa2op\xa6" "append\xa6stream\xa7lock-l1"
                      "\xa6" "events\x91\x81\xa4type\xa1T")},
         1, MAOS_EINVALID_NAME},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        hostile_pairs(bad[i].name, bad[i].op, bad[i].p, bad[i].n, bad[i].code);
    {
        /* 101 ops: over max_appends */
        buf p = {0};
        raw_request(&p, "txn", 1);
        put_str(&p, "ops");
        put_bytes(&p, 3, 0xdc, 0, 101);
        for (int i = 0; i < 101; i++) {
            char k[16];
            snprintf(k, sizeof k, "k-%d", i);
            put_bytes(&p, 1, 0x84);
            put_str(&p, "op");
            put_str(&p, "put");
            put_str(&p, "table");
            put_str(&p, "kv.a");
            put_str(&p, "key");
            put_str(&p, k);
            put_str(&p, "data");
            put_bytes(&p, 1, 0x80);
        }
        hostile("bad-limit-ops-101", &p);
    }
}

/* issue 8: queues -- every op, the txn ops of queue kinds, and the typed
 * rejections of their fields */
static void queue_frames(void)
{
    enc e;
    uint8_t id[16];
    make_id(id, 77);
    {
        wire w = {"valid-queue-enqueue", {0}};
        wire_hello(&w);
        maos_task_in t[3] = {
            {.data = S("\xa5hello"), .delay_ms = -1},
            {.data = S("\x81\xa1k\x01"), .meta = S("\x81\xa7session\xa2s1"),
             .priority = -7, .delay_ms = 1500, .max_attempts = 3, .lease_ms = 2000,
             .backoff_ms = 100, .dedupe_key = S("d-1"), .ordering_key = S("repo/a")},
            {.not_before = 1700000000000000ll, .delay_ms = -1, .priority = 2147483647},
        };
        enc_init(&e);
        one_request(&w, MAOS_OP_ENQUEUE, maos_enc_enqueue(&e.pk, 2, S("jobs"), t, 3), &e);
        wire_write(&w);
    }
    {
        wire w = {"valid-queue-claim-ack", {0}};
        maos_slice qs[2] = {S("jobs"), S("jobs.high-1")};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_CLAIM, maos_enc_claim(&e.pk, 2, qs, 2, 30000, 5000, 10, 1),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_CLAIM, maos_enc_claim(&e.pk, 3, qs, 1, 0, 0, 1, 0), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_ACK, maos_enc_ack(&e.pk, 4, id, 42, S("\xa2ok")), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_NACK, maos_enc_nack(&e.pk, 5, id, 42, S("boom"), 250), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_NACK, maos_enc_nack(&e.pk, 6, id, 43, (maos_slice){0}, -1),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_EXTEND, maos_enc_extend(&e.pk, 7, id, 44, 60000), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_RELEASE, maos_enc_task_release(&e.pk, 8, id, 45), &e);
        wire_write(&w);
    }
    {
        wire w = {"valid-queue-reads-dead", {0}};
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_TASK, maos_enc_task_get(&e.pk, 2, id), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_QUEUE_STATS, maos_enc_queue_stats(&e.pk, 3, S("jobs")), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_QUEUE_STATS, maos_enc_queue_stats(&e.pk, 4, S("")), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_DEAD_LIST, maos_enc_dead_list(&e.pk, 5, S("jobs"), id, 10), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_DEAD_RETRY, maos_enc_dead_retry(&e.pk, 6, S("jobs"), id), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_DEAD_RETRY, maos_enc_dead_retry(&e.pk, 7, S("jobs"), NULL), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_DEAD_PURGE, maos_enc_dead_purge(&e.pk, 8, S("jobs")), &e);
        wire_write(&w);
    }
    {
        wire w = {"valid-queue-txn", {0}};
        maos_task_in t = {.data = S("\xa4next"), .delay_ms = -1};
        maos_item_in items[3];
        memset(items, 0, sizeof items);
        items[0].kind = MAOS_ITEM_ACK;
        memcpy(items[0].task, id, 16);
        items[0].has_task = 1;
        items[0].token = 9;
        items[1].kind = MAOS_ITEM_ENQUEUE;
        items[1].queue = S("next");
        items[1].tasks = &t;
        items[1].n_tasks = 1;
        items[2].kind = MAOS_ITEM_PUT;
        items[2].table = (maos_table_ref){MAOS_TABLE_SESSIONS, S("sessions")};
        items[2].key = S("s1");
        items[2].data = S("\x80");
        items[2].expect = MAOS_EXPECT_ANY;
        wire_hello(&w);
        enc_init(&e);
        one_request(&w, MAOS_OP_TXN, maos_enc_txn_ops(&e.pk, 2, items, 3), &e);
        wire_write(&w);
    }
    static const pair q_ok = PAIR("queue", "\xa4jobs");
    static const pair tasks1 = PAIR("tasks", "\x91\x81\xa4" "data\x01");
    static const pair id_ok = PAIR("task", "\xc4\x10" "0123456789abcdef");
    static const pair tok_ok = PAIR("token", "\x05");
    static const bad_req bad[] = {
        {"bad-queue-name-space", "enqueue", {PAIR("queue", "\xa3" "a b"), tasks1}, 2,
         MAOS_EINVALID_NAME},
        {"bad-queue-name-empty", "dead_purge", {PAIR("queue", "\xa0")}, 1, MAOS_EINVALID_NAME},
        {"bad-queue-name-int", "queue_stats", {PAIR("queue", "\x07")}, 1, MAOS_EBAD_REQUEST},
        {"bad-enqueue-no-tasks", "enqueue", {q_ok}, 1, MAOS_EBAD_REQUEST},
        {"bad-enqueue-tasks-empty", "enqueue", {q_ok, PAIR("tasks", "\x90")}, 2,
         MAOS_EBAD_REQUEST},
        {"bad-enqueue-task-not-map", "enqueue", {q_ok, PAIR("tasks", "\x91\x01")}, 2,
         MAOS_EBAD_REQUEST},
        {"bad-enqueue-delay-negative", "enqueue",
         {q_ok, PAIR("tasks", "\x91\x81\xa5" "delay\xff")}, 2, MAOS_EBAD_REQUEST},
        {"bad-enqueue-delay-and-not-before", "enqueue",
         {q_ok, PAIR("tasks", "\x91\x82\xa5" "delay\x01\xaanot_before\x01")}, 2,
         MAOS_EBAD_REQUEST},
        {"bad-enqueue-lease-zero", "enqueue",
         {q_ok, PAIR("tasks", "\x91\x81\xa8lease_ms\x00")}, 2, MAOS_EBAD_REQUEST},
        {"bad-enqueue-attempts-huge", "enqueue",
         {q_ok, PAIR("tasks", "\x91\x81\xacmax_attempts\xcd\xff\xff")}, 2, MAOS_EBAD_REQUEST},
        {"bad-enqueue-priority-huge", "enqueue",
         {q_ok, PAIR("tasks", "\x91\x81\xa8priority\xcf\x00\x00\x00\x01\x00\x00\x00\x00")}, 2,
         MAOS_EBAD_REQUEST},
        {"bad-enqueue-meta-array", "enqueue",
         {q_ok, PAIR("tasks", "\x91\x81\xa4meta\x90")}, 2, MAOS_EBAD_REQUEST},
        {"bad-enqueue-dedupe-empty", "enqueue",
         {q_ok, PAIR("tasks", "\x91\x81\xaa" "dedupe_key\xa0")}, 2, MAOS_EINVALID_NAME},
        {"bad-claim-no-queues", "claim", {PAIR("max", "\x01")}, 1, MAOS_EBAD_REQUEST},
        {"bad-claim-queues-empty", "claim", {PAIR("queues", "\x90")}, 1, MAOS_EBAD_REQUEST},
        {"bad-claim-max-zero", "claim", {PAIR("queues", "\x91\xa1q"), PAIR("max", "\x00")}, 2,
         MAOS_EBAD_REQUEST},
        {"bad-claim-wait-huge", "claim",
         {PAIR("queues", "\x91\xa1q"), PAIR("wait_ms", "\xce\x7f\xff\xff\xff")}, 2,
         MAOS_EBAD_REQUEST},
        {"bad-claim-bind-int", "claim", {PAIR("queues", "\x91\xa1q"), PAIR("bind", "\x01")}, 2,
         MAOS_EBAD_REQUEST},
        {"bad-ack-no-token", "ack", {id_ok}, 1, MAOS_EBAD_REQUEST},
        {"bad-ack-token-zero", "ack", {id_ok, PAIR("token", "\x00")}, 2, MAOS_EBAD_REQUEST},
        {"bad-ack-id-short", "ack", {PAIR("task", "\xc4\x02" "ab"), tok_ok}, 2,
         MAOS_EINVALID_ID},
        {"bad-ack-id-text", "ack", {PAIR("task", "\xa3" "abc"), tok_ok}, 2, MAOS_EINVALID_ID},
        {"bad-nack-error-empty", "nack", {id_ok, tok_ok, PAIR("error", "\xa0")}, 3,
         MAOS_EINVALID_NAME},
        {"bad-extend-no-lease", "extend", {id_ok, tok_ok}, 2, MAOS_EBAD_REQUEST},
        {"bad-task-no-id", "task", {q_ok}, 1, MAOS_EBAD_REQUEST},
        {"bad-dead-list-no-queue", "dead_list", {PAIR("limit", "\x05")}, 1, MAOS_EBAD_REQUEST},
        {"bad-txn-claim", "txn", {PAIR("ops", "\x91\x82\xa2op\xa5" "claim\xa6queues\x91\xa1q")},
         1, MAOS_EBAD_REQUEST},
        {"bad-txn-task-twice", "txn",
         {PAIR("ops", "\x92"
                      "\x83\xa2op\xa3" "ack\xa4task\xc4\x10" "0123456789abcdef\xa5token\x05"
                      "\x83\xa2op\xa4nack\xa4task\xc4\x10" "0123456789abcdef\xa5token\x05")},
         1, MAOS_EBAD_REQUEST},
        {"bad-reserved-queue-stream", "append",
         {PAIR("stream", "\xa8queue-jq"), PAIR("events", "\x91\x81\xa4type\xa1T")}, 2,
         MAOS_EINVALID_NAME},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        hostile_pairs(bad[i].name, bad[i].op, bad[i].p, bad[i].n, bad[i].code);
}

/* A token_create seed the daemon would accept: its spec decodes too. */
static void token_spec_ok(const enc *e)
{
    maos_token_spec t;
    char why[256];
    if (maos_token_spec_decode(e->sb.data, e->sb.size, &t, why, sizeof why))
        die("token_create seed", why);
}

/* issues 13 and 14: retention, data operations, tokens */
static void admin_frames(void)
{
    enc e;
    uint8_t id[16];
    make_id(id, 91);
    {
        wire w = {"valid-admin-ops", {0}};
        wire_hello(&w);
        maos_stream_meta_in rule = {.set = 1, .max_count = 100, .max_age_ms = 86400000};
        maos_stream_meta_in cat = {.category = S("job"), .set = 1, .max_count = 5};
        maos_stream_meta_in clear = {.category = S("job"), .clear = 1};
        maos_stream_meta_in trunc = {.has_truncate_before = 1, .truncate_before = 7};
        maos_stream_meta_in del = {.delete_ = 1};
        maos_stream_meta_in info = {0};
        const char *scopes[3] = {"read:order-", "kv.write:kv.plan/a", "admin"};
        enc_init(&e);
        one_request(&w, MAOS_OP_STREAM_META, maos_enc_stream_meta(&e.pk, 2, S("order-1"), &rule),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_STREAM_META, maos_enc_stream_meta(&e.pk, 3, S(""), &cat), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_STREAM_META, maos_enc_stream_meta(&e.pk, 4, S(""), &clear), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_STREAM_META, maos_enc_stream_meta(&e.pk, 5, S("order-1"), &trunc),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_STREAM_META, maos_enc_stream_meta(&e.pk, 6, S("order-2"), &del),
                    &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_STREAM_META, maos_enc_stream_meta(&e.pk, 7, S("order-1"), &info),
                    &e);
        enc_init(&e);
        must(maos_enc_token_create(&e.pk, 8, "ci-bot", scopes, 3, 86400000, 1000, "sess-1"),
             "token_create");
        token_spec_ok(&e);
        one_request(&w, MAOS_OP_TOKEN_CREATE, 0, &e);
        enc_init(&e);
        must(maos_enc_token_create(&e.pk, 9, "sess-only", NULL, 0, 0, -1, "s2"),
             "token_create");
        token_spec_ok(&e);
        one_request(&w, MAOS_OP_TOKEN_CREATE, 0, &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_TOKEN_LIST, maos_enc_token_list(&e.pk, 10), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_TOKEN_REVOKE, maos_enc_token_revoke(&e.pk, 11, "ci-bot"), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_TASK_LIST, maos_enc_task_list(&e.pk, 12, S("jobs"), id, 50), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_TASK_LIST, maos_enc_task_list(&e.pk, 13, S(""), NULL, 1), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_METRICS, maos_enc_metrics(&e.pk, 14), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_COMPACT, maos_enc_compact(&e.pk, 15), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_PUBKEY, maos_enc_pubkey(&e.pk, 16), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_CHAIN_SIGN, maos_enc_chain_sign(&e.pk, 17, 42), &e);
        enc_init(&e);
        one_request(&w, MAOS_OP_BACKUP, maos_enc_backup(&e.pk, 18, S("/tmp/maos-backup")), &e);
        wire_write(&w);
    }
    static const bad_req bad[] = {
        {"bad-meta-no-target", "stream_meta", {PAIR("max_count", "\x05")}, 1,
         MAOS_EBAD_REQUEST},
        {"bad-meta-both-targets", "stream_meta",
         {PAIR("stream", "\xa3" "a-1"), PAIR("category", "\xa1" "a")}, 2, MAOS_EBAD_REQUEST},
        {"bad-meta-rule-and-clear", "stream_meta",
         {PAIR("stream", "\xa3" "a-1"), PAIR("max_count", "\x05"), PAIR("clear", "\xc3")}, 3,
         MAOS_EBAD_REQUEST},
        {"bad-meta-category-delete", "stream_meta",
         {PAIR("category", "\xa1" "a"), PAIR("delete", "\xc3")}, 2, MAOS_EBAD_REQUEST},
        {"bad-meta-count-negative", "stream_meta",
         {PAIR("stream", "\xa3" "a-1"), PAIR("max_count", "\xff")}, 2, MAOS_EBAD_REQUEST},
        {"bad-token-no-name", "token_create", {PAIR("uid", "\x05")}, 1, MAOS_EINVALID_NAME},
        {"bad-token-name-space", "token_create", {PAIR("name", "\xa3" "a b")}, 1,
         MAOS_EINVALID_NAME},
        {"bad-chain-sign-zero", "chain_sign", {PAIR("position", "\x00")}, 1,
         MAOS_EBAD_REQUEST},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        hostile_pairs(bad[i].name, bad[i].op, bad[i].p, bad[i].n, bad[i].code);
}

/* ---- the frame corpus --------------------------------------------------------- */

static void frame_corpus(void)
{
    buf store = {0};
    store.cap = 1 << 20;
    store.p = malloc(store.cap); /* never moves: events point into it */
    if (!store.p)
        die("malloc", "out of memory");

    /* valid ---------------------------------------------------------------- */
    {
        wire w = {"valid-hello", {0}};
        wire_hello(&w);
        wire_write(&w);
    }
    for (int k = 0; k < 2; k++) {
        wire w = {k ? "valid-hello-stats" : "valid-hello-ping", {0}};
        enc e;
        buf p = {0};
        wire_hello(&w);
        enc_init(&e);
        must(maos_enc_simple(&e.pk, 2, k ? MAOS_OP_STATS : MAOS_OP_PING), "simple");
        enc_done(&e, &p);
        wire_add(&w, &p, k ? MAOS_OP_STATS : MAOS_OP_PING);
        wire_write(&w);
    }
    {
        maos_event_in ev = {.type = S("OrderCreated")};
        one_append("valid-append-min", "orders-1", MAOS_EXPECT_ANY, &ev, 1);
        one_append("valid-append-no-stream", "orders-2", MAOS_EXPECT_NO_STREAM, &ev, 1);
        one_append("valid-append-exists", "orders-2", MAOS_EXPECT_EXISTS, &ev, 1);
        maos_event_in *full = full_events(200, &store);
        one_append("valid-append-full", "orders-1", 4, full, 3);
        one_append("valid-append-many", "bulk-9", MAOS_EXPECT_ANY, full, 200);
        /* txn: three streams, three kinds of expectation */
        maos_append_in a[3] = {
            {S("orders-1"), 7, 2, full},
            {S("payments-1"), MAOS_EXPECT_NO_STREAM, 1, full + 2},
            {S("audit"), MAOS_EXPECT_ANY, 1, &ev},
        };
        wire w = {"valid-txn", {0}};
        enc e;
        buf p = {0};
        wire_hello(&w);
        enc_init(&e);
        must(maos_enc_txn(&e.pk, 2, a, 3), "txn");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_TXN);
        wire_write(&w);
        free(full);
    }
    {
        /* ids as UUID text instead of bin 16 */
        buf ev = {0};
        put_bytes(&ev, 1, 0x82);
        put_str(&ev, "type");
        put_str(&ev, "Started");
        put_str(&ev, "id");
        put_str(&ev, "018f3c2a-5b10-7abc-9123-456789abcdef");
        buf p = {0};
        raw_request(&p, "append", 2);
        put_str(&p, "stream");
        put_str(&p, "job-77");
        put_str(&p, "events");
        put_bytes(&p, 1, 0x91);
        put(&p, ev.p, ev.len);
        wire w = {"valid-append-id-text", {0}};
        wire_hello(&w);
        wire_add(&w, &p, MAOS_OP_APPEND);
        wire_write(&w);
        buf_free(&ev);
    }
    {
        wire w = {"valid-read", {0}};
        enc e;
        buf p = {0};
        wire_hello(&w);
        enc_init(&e);
        must(maos_enc_read(&e.pk, 2, S("orders-1"), 0, 0, 0, 0), "read");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_READ);
        enc_init(&e);
        must(maos_enc_read(&e.pk, 3, S("orders-1"), 1, 10, 1, 50), "read");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_READ);
        enc_init(&e);
        must(maos_enc_read_as(&e.pk, 4, S("orders-1"), 1, 10, 0, 50, MAOS_FORM_ARRAY),
             "read");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_READ);
        wire_write(&w);
    }
    {
        maos_slice types[3] = {S("OrderCreated"), S("OrderShipped"), S("Ü-type")};
        maos_filter f = {.stream = S("orders-1"), .prefix = S("ord"),
                         .category = S("orders"), .n_types = 3, .types = types,
                         .has_since = 1, .since = 1700000000000000,
                         .has_until = 1, .until = 1800000000000000};
        wire w = {"valid-read-all", {0}};
        enc e;
        buf p = {0};
        wire_hello(&w);
        enc_init(&e);
        must(maos_enc_read_all(&e.pk, 2, 0, 0, 0, 0, NULL), "read_all");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_READ_ALL);
        enc_init(&e);
        must(maos_enc_read_all(&e.pk, 3, 1, 100, 1, 20, &f), "read_all");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_READ_ALL);
        f.stream.len = 0;
        f.has_since = 0;
        enc_init(&e);
        must(maos_enc_read_all(&e.pk, 4, 1, 1, 0, 10000, &f), "read_all");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_READ_ALL);
        enc_init(&e);
        must(maos_enc_read_all_as(&e.pk, 5, 1, 1, 1, 300, &f, 1, MAOS_FORM_ARRAY),
             "read_all");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_READ_ALL);
        wire_write(&w);
    }
    {
        wire w = {"valid-streams", {0}};
        enc e;
        buf p = {0};
        wire_hello(&w);
        enc_init(&e);
        must(maos_enc_streams(&e.pk, 2, S(""), S(""), 0), "streams");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_STREAMS);
        enc_init(&e);
        must(maos_enc_streams(&e.pk, 3, S("orders"), S("orders-1"), 10), "streams");
        enc_done(&e, &p);
        wire_add(&w, &p, MAOS_OP_STREAMS);
        wire_write(&w);
    }
    {
        /* pipelined: many requests back to back in one write */
        wire w = {"valid-pipeline", {0}};
        maos_event_in ev = {.type = S("Tick")};
        maos_append_in a = {S("clock"), MAOS_EXPECT_ANY, 1, &ev};
        wire_hello(&w);
        for (uint64_t rid = 2; rid < 40; rid++) {
            enc e;
            buf p = {0};
            maos_op op;
            enc_init(&e);
            switch (rid % 4) {
            case 0: op = MAOS_OP_PING; must(maos_enc_simple(&e.pk, rid, op), "ping"); break;
            case 1: op = MAOS_OP_APPEND; must(maos_enc_append(&e.pk, rid, &a), "append"); break;
            case 2:
                op = MAOS_OP_READ;
                must(maos_enc_read(&e.pk, rid, S("clock"), 1, rid, 0, 5), "read");
                break;
            default:
                op = MAOS_OP_READ_ALL;
                must(maos_enc_read_all(&e.pk, rid, 1, rid, 1, 3, NULL), "read_all");
                break;
            }
            enc_done(&e, &p);
            wire_add(&w, &p, op);
        }
        wire_write(&w);
    }
    {
        /* data holding every msgpack type, in every width */
        buf d = {0};
        put_bytes(&d, 3, 0xdc, 0, 30); /* array16 of 30 */
        put_bytes(&d, 4, 0xc0, 0xc2, 0xc3, 0x7f);
        put_bytes(&d, 2, 0xcc, 0xff);
        put_bytes(&d, 3, 0xcd, 0xff, 0xff);
        put_bytes(&d, 5, 0xce, 0xff, 0xff, 0xff, 0xff);
        put_bytes(&d, 9, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
        put_bytes(&d, 1, 0xe0);
        put_bytes(&d, 2, 0xd0, 0x80);
        put_bytes(&d, 3, 0xd1, 0x80, 0x00);
        put_bytes(&d, 5, 0xd2, 0x80, 0, 0, 0);
        put_bytes(&d, 9, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
        put_bytes(&d, 5, 0xca, 0x3f, 0x80, 0, 0);
        put_bytes(&d, 9, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1); /* NaN */
        put_bytes(&d, 4, 0xd9, 2, 'h', 'i');
        put_bytes(&d, 5, 0xda, 0, 2, 'h', 'i');
        put_bytes(&d, 7, 0xdb, 0, 0, 0, 2, 'h', 'i');
        put_bytes(&d, 3, 0xc4, 1, 0);
        put_bytes(&d, 4, 0xc5, 0, 1, 0);
        put_bytes(&d, 6, 0xc6, 0, 0, 0, 1, 0);
        put_bytes(&d, 5, 0xdd, 0, 0, 0, 1), put_bytes(&d, 1, 0x90);
        put_bytes(&d, 3, 0xde, 0, 1), put_bytes(&d, 2, 0xa1, 'k'), put_bytes(&d, 1, 0x80);
        put_bytes(&d, 5, 0xdf, 0, 0, 0, 1), put_bytes(&d, 2, 0x01, 0x02); /* int key */
        put_bytes(&d, 3, 0xd4, 1, 0);
        put_bytes(&d, 4, 0xd5, 1, 0, 0);
        put_bytes(&d, 6, 0xd6, 0xff, 0, 0, 0, 0); /* timestamp 32 */
        put_bytes(&d, 4, 0xc7, 1, 5, 0);
        put_bytes(&d, 5, 0xc8, 0, 1, 5, 0);
        put_bytes(&d, 7, 0xc9, 0, 0, 0, 1, 5, 0);
        buf p = {0};
        raw_request(&p, "append", 2);
        put_str(&p, "stream");
        put_str(&p, "types-1");
        put_str(&p, "events");
        put_bytes(&p, 3, 0x91, 0x83, 0xa4);
        put(&p, "type", 4);
        put_str(&p, "AllTypes");
        put_str(&p, "data");
        put(&p, d.p, d.len);
        put_str(&p, "meta");
        put_bytes(&p, 1, 0x80);
        wire w = {"valid-data-all-types", {0}};
        wire_hello(&w);
        wire_add(&w, &p, MAOS_OP_APPEND);
        wire_write(&w);
        buf_free(&d);
    }

    /* framing ----------------------------------------------------------------- */
    {
        buf b = {0};
        put_be32(&b, 0xffffffffu);
        put(&b, "\x82\xa2op\xa4ping\xa3rid\x01", 13);
        write_file("frame", "bad-len-ffffffff", &b);
        buf_free(&b);
        put_be32(&b, MAOS_DEFAULT_MAX_FRAME + 1);
        put(&b, "\x82\xa2op\xa4ping\xa3rid\x01", 13);
        write_file("frame", "bad-len-max-plus-1", &b);
        buf_free(&b);
        put_be32(&b, 0);
        put_be32(&b, 13);
        put(&b, "\x82\xa2op\xa4ping\xa3rid\x01", 13);
        write_file("frame", "bad-len-zero", &b);
        buf_free(&b);
        put_bytes(&b, 2, 0, 0);
        write_file("frame", "bad-truncated-header", &b);
        buf_free(&b);
        put_be32(&b, 100);
        put(&b, "\x82\xa2op\xa4ping\xa3rid\x01", 13);
        write_file("frame", "bad-truncated-payload", &b);
        buf_free(&b);
        /* a frame whose payload is one byte short of its ping */
        put_be32(&b, 12);
        put(&b, "\x82\xa2op\xa4ping\xa3rid\x01", 13);
        write_file("frame", "bad-len-short-by-one", &b);
        buf_free(&b);
    }

    /* msgpack structure ------------------------------------------------------- */
    {
        /* Nesting: the request map, the events array and the event map are
         * 3 levels; data adds the rest.  64 levels in all is the default
         * limit (valid), 65 is one too many. */
        static const struct {
            const char *name;
            int data_depth;
            int valid;
        } deep[] = {
            {"valid-depth-64", 61, 1},
            {"bad-depth-65", 62, 0},
            {"bad-depth-200", 197, 0},
            {"bad-depth-10000", 9997, 0},
        };
        for (size_t k = 0; k < sizeof deep / sizeof deep[0]; k++) {
            buf d = {0};
            for (int i = 0; i < deep[k].data_depth; i++) {
                if (i % 2) {
                    put_bytes(&d, 1, 0x91);
                } else {
                    put_bytes(&d, 3, 0x81, 0xa1, 'k');
                }
            }
            put_bytes(&d, 1, 0x01);
            buf p = {0};
            raw_request(&p, "append", 2);
            put_str(&p, "stream");
            put_str(&p, "deep-1");
            put_str(&p, "events");
            put_bytes(&p, 2, 0x91, 0x82);
            put_str(&p, "type");
            put_str(&p, "T");
            put_str(&p, "data");
            put(&p, d.p, d.len);
            wire w = {deep[k].name, {0}};
            wire_hello(&w);
            wire_add(&w, &p, deep[k].valid ? MAOS_OP_APPEND : MAOS_OP_NONE);
            wire_write(&w);
            buf_free(&d);
        }
    }
    {
        static const struct {
            const char *name;
            uint8_t hdr[5];
        } big[] = {
            {"bad-str32-4g", {0xdb, 0xff, 0xff, 0xff, 0xff}},
            {"bad-bin32-4g", {0xc6, 0xff, 0xff, 0xff, 0xff}},
            {"bad-array32-4g", {0xdd, 0xff, 0xff, 0xff, 0xff}},
            {"bad-map32-4g", {0xdf, 0xff, 0xff, 0xff, 0xff}},
            {"bad-ext32-4g", {0xc9, 0xff, 0xff, 0xff, 0xff}},
            {"bad-str32-one-more", {0xdb, 0x00, 0x00, 0x00, 0x09}},
            {"bad-array16-more", {0xdc, 0x03, 0xe8, 0x01, 0x02}},
            {"bad-map16-more", {0xde, 0x03, 0xe8, 0x01, 0x02}},
        };
        for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
            buf d = {0};
            put(&d, big[k].hdr, 5);
            put(&d, "abcdefgh", 8);
            append_with_data(big[k].name, d.p, d.len);
            buf_free(&d);
            /* ... and the same header as the stream name, and as the whole request */
            char nm[64];
            buf p = {0};
            raw_request(&p, "read", 1);
            put_str(&p, "stream");
            put(&p, big[k].hdr, 5);
            put(&p, "abcdefgh", 8);
            snprintf(nm, sizeof nm, "%s-in-stream", big[k].name);
            hostile(nm, &p);
            put(&p, big[k].hdr, 5);
            put(&p, "\xa2op\xa4ping", 8);
            snprintf(nm, sizeof nm, "%s-request", big[k].name);
            hostile(nm, &p);
        }
        /* events: array32 declaring 4G elements */
        buf p = {0};
        raw_request(&p, "append", 2);
        put_str(&p, "stream");
        put_str(&p, "fuzz-1");
        put_str(&p, "events");
        put_bytes(&p, 5, 0xdd, 0xff, 0xff, 0xff, 0xff);
        put_bytes(&p, 3, 0x81, 0xa4, 't');
        put(&p, "ype\xa1T", 5);
        hostile("bad-events-array32-4g", &p);
    }
    {
        append_with_data("bad-reserved-c1", "\xc1", 1);
        append_with_data("bad-truncated-uint64", "\xcf\x01\x02", 3);
        append_with_data("bad-truncated-fixext", "\xd8\x01\x02", 3);
        buf p = {0};
        raw_request(&p, "ping", 0);
        put_bytes(&p, 1, 0xc0);
        hostile("bad-trailing-bytes", &p);
        put_bytes(&p, 3, 0x92, 0xa4, 'p');
        put(&p, "ing\x01", 4);
        hostile("bad-not-a-map", &p);
        raw_request(&p, "drop_everything", 0);
        hostile("bad-unknown-op", &p);
        put_bytes(&p, 1, 0x81);
        put_str(&p, "op");
        put_str(&p, "ping");
        hostile("bad-missing-rid", &p);
        put_bytes(&p, 1, 0x81);
        put_str(&p, "rid");
        put_bytes(&p, 1, 5);
        hostile("bad-missing-op", &p);
        put_bytes(&p, 1, 0x82);
        put_str(&p, "op");
        put_str(&p, "ping");
        put_str(&p, "rid");
        put_bytes(&p, 1, 0xff);
        hostile("bad-rid-negative", &p);
        put_bytes(&p, 1, 0x82);
        put_bytes(&p, 1, 0x01);
        put_str(&p, "ping");
        put_str(&p, "rid");
        put_bytes(&p, 1, 1);
        hostile("bad-int-key", &p);
        raw_request(&p, "hello", 1);
        put_str(&p, "version");
        put_bytes(&p, 1, 0);
        hostile("bad-hello-version-0", &p);
        raw_request(&p, "read", 2);
        put_str(&p, "stream");
        put_bytes(&p, 1, 0x07);
        put_str(&p, "limit");
        put_bytes(&p, 1, 0);
        hostile("bad-wrong-types-read", &p);
        raw_request(&p, "read", 2);
        put_str(&p, "stream");
        put_str(&p, "s");
        put_str(&p, "limit");
        put_bytes(&p, 1, 0);
        hostile("bad-limit-zero", &p);
        raw_request(&p, "read", 2);
        put_str(&p, "stream");
        put_str(&p, "s");
        put_str(&p, "form");
        put_str(&p, "arrays");
        hostile("bad-form", &p);
        raw_request(&p, "read_all", 3);
        put_str(&p, "backward");
        put_str(&p, "yes");
        put_str(&p, "since");
        put_bytes(&p, 9, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
        put_str(&p, "types");
        put_str(&p, "T");
        hostile("bad-wrong-types-read-all", &p);
        raw_request(&p, "append", 3);
        put_str(&p, "stream");
        put_str(&p, "s-1");
        put_str(&p, "expect");
        put_str(&p, "sometimes");
        put_str(&p, "events");
        put_bytes(&p, 1, 0x90);
        hostile("bad-expect-and-empty-events", &p);
        raw_request(&p, "append", 2);
        put_str(&p, "stream");
        put_str(&p, "s-1");
        put_str(&p, "events");
        put_bytes(&p, 1, 0x80);
        hostile("bad-events-map", &p);
        raw_request(&p, "txn", 1);
        put_str(&p, "appends");
        put_bytes(&p, 1, 0x92);
        for (int i = 0; i < 2; i++) {
            put_bytes(&p, 1, 0x82);
            put_str(&p, "stream");
            put_str(&p, "same-1");
            put_str(&p, "events");
            put_bytes(&p, 2, 0x91, 0x81);
            put_str(&p, "type");
            put_str(&p, "T");
        }
        hostile("bad-txn-same-stream-twice", &p);
        raw_request(&p, "txn", 1);
        put_str(&p, "appends");
        put_bytes(&p, 1, 0x90);
        hostile("bad-txn-empty", &p);
    }

    /* names and ids -------------------------------------------------------------- */
    {
        static const struct {
            const char *name;
            const char *stream;
            size_t len;
        } bad[] = {
            {"bad-name-empty", LIT("")},
            {"bad-name-nul", LIT("ab\0cd")},
            {"bad-name-overlong-slash", LIT("a\xc0\xaf")},
            {"bad-name-surrogate", LIT("a\xed\xa0\x80")},
            {"bad-name-truncated-utf8", LIT("a\xe2\x82")},
            {"bad-name-above-10ffff", LIT("\xf4\x90\x80\x80")},
            {"bad-name-reserved-dollar", LIT("$all")},
        };
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            buf p = {0};
            raw_request(&p, "append", 2);
            put_str(&p, "stream");
            put_bytes(&p, 1, 0xa0 | (int)bad[k].len);
            put(&p, bad[k].stream, bad[k].len);
            put_str(&p, "events");
            put_bytes(&p, 2, 0x91, 0x81);
            put_str(&p, "type");
            put_str(&p, "T");
            hostile(bad[k].name, &p);
        }
        /* stream names: 1..1024 bytes; types: 1..255 */
        static char long_name[MAOS_STREAM_MAX + 1];
        memset(long_name, 'n', sizeof long_name);
        buf p = {0};
        raw_request(&p, "read", 1);
        put_str(&p, "stream");
        put_bytes(&p, 3, 0xda, (MAOS_STREAM_MAX + 1) >> 8, (MAOS_STREAM_MAX + 1) & 0xff);
        put(&p, long_name, MAOS_STREAM_MAX + 1);
        hostile("bad-name-1025", &p);
        raw_request(&p, "append", 2);
        put_str(&p, "stream");
        put_str(&p, "s-1");
        put_str(&p, "events");
        put_bytes(&p, 2, 0x91, 0x81);
        put_str(&p, "type");
        put_bytes(&p, 3, 0xda, 1, 0); /* str16 of 256 */
        put(&p, long_name, 256);
        hostile("bad-type-256", &p);
        raw_request(&p, "read", 1);
        put_str(&p, "stream");
        put_bytes(&p, 2, 0xd9, 255);
        put(&p, long_name, 255);
        wire w = {"valid-name-255", {0}};
        wire_hello(&w);
        wire_add(&w, &p, MAOS_OP_READ);
        wire_write(&w);
        raw_request(&p, "read", 1);
        put_str(&p, "stream");
        put_bytes(&p, 3, 0xda, MAOS_STREAM_MAX >> 8, MAOS_STREAM_MAX & 0xff);
        put(&p, long_name, MAOS_STREAM_MAX);
        w = (wire){"valid-name-1024", {0}};
        wire_hello(&w);
        wire_add(&w, &p, MAOS_OP_READ);
        wire_write(&w);

        static const struct {
            const char *name;
            const char *ev;
            size_t len;
        } ids[] = {
            {"bad-id-text-short", LIT("\x82\xa4type\xa1T\xa2id\xa3" "abc")},
            {"bad-id-text-nonhex",
             LIT("\x82\xa4type\xa1T\xa2id\xd9\x24" "018f3c2a-5b10-7abc-9123-456789abcdeg")},
            {"bad-id-text-nil",
             LIT("\x82\xa4type\xa1T\xa2id\xd9\x24" "00000000-0000-0000-0000-000000000000")},
            {"bad-id-bin-15", LIT("\x82\xa4type\xa1T\xa2id\xc4\x0f" "0123456789abcde")},
            {"bad-id-bin-nil",
             LIT("\x82\xa4type\xa1T\xa2id\xc4\x10\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")},
            {"bad-id-int", LIT("\x82\xa4type\xa1T\xa2id\x07")},
            {"bad-event-no-type", LIT("\x81\xa4" "data\xc0")},
            {"bad-meta-array", LIT("\x82\xa4type\xa1T\xa4meta\x90")},
        };
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
            append_with_event(ids[k].name, ids[k].ev, ids[k].len);
    }

    /* limits -------------------------------------------------------------------- */
    {
        buf p = {0};
        raw_request(&p, "append", 2);
        put_str(&p, "stream");
        put_str(&p, "many-1");
        put_str(&p, "events");
        put_bytes(&p, 3, 0xdc, 0x27, 0x11); /* 10001 events */
        for (int i = 0; i < 10001; i++) {
            put_bytes(&p, 1, 0x81);
            put_str(&p, "type");
            put_str(&p, "T");
        }
        hostile("bad-limit-events-10001", &p);
        raw_request(&p, "txn", 1);
        put_str(&p, "appends");
        put_bytes(&p, 3, 0xdc, 0, 101);
        for (int i = 0; i < 101; i++) {
            char s[16];
            snprintf(s, sizeof s, "s-%d", i);
            put_bytes(&p, 1, 0x82);
            put_str(&p, "stream");
            put_str(&p, s);
            put_str(&p, "events");
            put_bytes(&p, 2, 0x91, 0x81);
            put_str(&p, "type");
            put_str(&p, "T");
        }
        hostile("bad-limit-appends-101", &p);
        raw_request(&p, "read_all", 1);
        put_str(&p, "types");
        put_bytes(&p, 3, 0xdc, 0, 65);
        for (int i = 0; i < 65; i++)
            put_str(&p, "T");
        hostile("bad-limit-types-65", &p);
    }

    /* noise ---------------------------------------------------------------------- */
    for (int k = 0; k < 4; k++) {
        char nm[32];
        buf b = {0};
        uint32_t n = 16 + rnd() % 200;
        if (k >= 2)
            put_be32(&b, n); /* a plausible header in front of noise */
        for (uint32_t i = 0; i < n; i++)
            put_bytes(&b, 1, (int)(rnd() & 0xff));
        snprintf(nm, sizeof nm, "noise-%d", k);
        write_file("frame", nm, &b);
        buf_free(&b);
    }
    table_frames();
    queue_frames();
    admin_frames();
    free(store.p);
}

/* ---- the reply corpus ------------------------------------------------------------ */

static void check_reply(const char *name, const buf *b)
{
    maos_reply rep;
    int rc = maos_reply_decode(b->p, b->len, &rep);
    if (rc)
        die(name, "valid reply does not decode");
}

/* A push payload; valid ones are checked to decode as a push. */
static void push_file(const char *name, enc *e, int valid)
{
    buf b = {0};
    maos_push p;
    enc_done(e, &b);
    if (valid && maos_push_decode(b.p, b.len, &p) != 1)
        die(name, "valid push does not decode");
    write_file("reply", name, &b);
    buf_free(&b);
}

static void reply_file(const char *name, enc *e, int valid)
{
    buf b = {0};
    enc_done(e, &b);
    if (valid)
        check_reply(name, &b);
    write_file("reply", name, &b);
    buf_free(&b);
}

static void put_record(msgpack_sbuffer *sb, uint64_t pos, const char *stream,
                       uint64_t version, const char *type, maos_slice data)
{
    msgpack_packer pk;
    uint8_t id[16], prev[32];
    make_id(id, (unsigned)pos);
    memset(prev, (int)pos, sizeof prev);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    must(maos_enc_record(&pk, pos, 1767225600000000 + (int64_t)pos * 1000, version,
                         S(stream), S(type), id, prev, data,
                         pos % 2 ? S("\x81\xa5" "agent\xa2" "a1") : (maos_slice){0}),
         "record");
}

/* form: MAOS_FORM_ARRAY for the records of an events list in the array
 * form (PROTOCOL.md "Record forms") */
static void list_reply(const char *name, const char *key, int n, int next_kind,
                       int valid_records, int form)
{
    enc e;
    maos_list_mark m;
    msgpack_sbuffer one;
    enc_init(&e);
    msgpack_sbuffer_init(&one);
    must(maos_enc_list_begin(&e.sb, 9, key, &m), "list_begin");
    for (int i = 0; i < n; i++) {
        if (key[0] == 'e') {
            static const char *streams[] = {"orders-1", "payments-1", "orders-2"};
            one.size = 0;
            put_record(form == MAOS_FORM_ARRAY ? &one : &e.sb, (uint64_t)i + 1,
                       streams[i % 3], (uint64_t)i / 3,
                       i % 2 ? "OrderShipped" : "OrderCreated",
                       i % 2 ? (maos_slice){0} : S("\x81\xa1n\x05"));
            if (form == MAOS_FORM_ARRAY)
                must(maos_record_to_array(one.data, one.size, &e.sb), "array record");
        } else {
            char s[32];
            snprintf(s, sizeof s, "orders-%d", i);
            maos_stream_info si = {S(s), (uint64_t)i, (uint64_t)i + 1, (uint64_t)i * 7 + 1};
            must(maos_enc_stream_info(&e.pk, &si), "stream_info");
        }
    }
    must(maos_enc_list_end(&e.sb, &m, (uint32_t)n, next_kind, (uint64_t)n + 1,
                           S("orders-9")),
         "list_end");
    msgpack_sbuffer_destroy(&one);
    reply_file(name, &e, valid_records);
}

static void put_entry(msgpack_packer *pk, const char *key, uint64_t rev)
{
    must(maos_enc_entry(pk, S("kv.plan"), S(key), rev, 3, 1767225600000000,
                        1767225600000000 + (int64_t)rev, (int)(rev & 1), S(DOC)),
         "entry");
}

/* issue 7: replies to the table and agent ops, mixed txn results, pushes */
static void table_replies(void)
{
    enc e;
    maos_list_mark m;
    enc_init(&e);
    must(maos_enc_reply_revision(&e.pk, 1, 120, 100), "put");
    reply_file("valid-put", &e, 1);
    enc_init(&e);
    must(maos_enc_reply_revision(&e.pk, 2, 121, UINT64_MAX), "delete");
    reply_file("valid-delete", &e, 1);
    enc_init(&e);
    must(maos_enc_reply_get_begin(&e.pk, 3), "get");
    put_entry(&e.pk, "step-3", 9);
    reply_file("valid-get", &e, 1);
    for (int more = 0; more < 2; more++) {
        enc_init(&e);
        must(maos_enc_list_begin(&e.sb, 4, "entries", &m), "list_begin");
        for (uint64_t i = 0; i < 3; i++) {
            char key[24];
            snprintf(key, sizeof key, "step-%llu", (unsigned long long)i);
            put_entry(&e.pk, key, 10 + i);
        }
        must(maos_enc_entries_end(&e.sb, &m, 3, more ? S("step-2") : S(""), 77), "list_end");
        reply_file(more ? "valid-list" : "valid-list-end", &e, 1);
    }
    enc_init(&e);
    must(maos_enc_reply_count(&e.pk, 5, 5000000000ull, 78), "count");
    reply_file("valid-count", &e, 1);
    enc_init(&e);
    must(maos_enc_reply_watch(&e.pk, 6, 3, 79), "watch");
    reply_file("valid-watch", &e, 1);
    enc_init(&e);
    must(maos_enc_error(&e.pk, 7, MAOS_EWRONG_REVISION, NULL, 1, 14, 2), "error");
    reply_file("valid-error-wrong-revision", &e, 1);
    {
        enc ent;
        enc_init(&ent);
        must(maos_enc_entry(&ent.pk, (maos_slice){"kv.c", 4}, (maos_slice){"k", 1}, 14, 3,
                            5, 6, 0, (maos_slice){"\x81\xa1n\x02", 4}),
             "entry");
        enc_init(&e);
        must(maos_enc_error_entry(&e.pk, 9, MAOS_EWRONG_REVISION, NULL, 1, 14, -1,
                                  (maos_slice){ent.sb.data, (uint32_t)ent.sb.size}),
             "error");
        reply_file("valid-error-wrong-revision-entry", &e, 1);
        msgpack_sbuffer_destroy(&ent.sb);
    }
    enc_init(&e);
    must(maos_enc_error(&e.pk, 8, MAOS_ENOT_FOUND, "no such entry", 1, -1, -1), "error");
    reply_file("valid-error-not-found-entry", &e, 1);

    uint8_t ids[32];
    make_id(ids, 1);
    make_id(ids + 16, 2);
    maos_txn_result res[4] = {
        {.kind = MAOS_ITEM_APPEND,
         .append = {S("orders-1"), 4, 200, 2, 0, {(const char *)ids, 32}}},
        {.kind = MAOS_ITEM_PUT, .revision = 202, .created_revision = 150},
        {.kind = MAOS_ITEM_DELETE, .revision = 203},
        {.kind = MAOS_ITEM_CHECKPOINT},
    };
    enc_init(&e);
    must(maos_enc_reply_txn_begin(&e.pk, 9, 4), "txn");
    for (int i = 0; i < 4; i++)
        must(maos_enc_txn_result(&e.pk, &res[i]), "txn result");
    reply_file("valid-txn-mixed", &e, 1);
    /* append_batch: a result, refusals with and without actual */
    enc_init(&e);
    must(maos_enc_reply_txn_begin(&e.pk, 10, 3) || maos_enc_txn_result(&e.pk, &res[0]) ||
         maos_enc_batch_refusal(&e.pk, MAOS_EWRONG_EXPECTED_VERSION, "at 4", 1, 4) ||
         maos_enc_batch_refusal(&e.pk, MAOS_ECONFLICT, NULL, 0, 0), "append_batch");
    reply_file("valid-append-batch-mixed", &e, 1);
    /* the same with the result in the array form */
    enc_init(&e);
    must(maos_enc_reply_txn_begin(&e.pk, 10, 3) ||
         maos_enc_append_result_array(&e.pk, &res[0].append) ||
         maos_enc_batch_refusal(&e.pk, MAOS_EWRONG_EXPECTED_VERSION, "at 4", 1, 4) ||
         maos_enc_batch_refusal(&e.pk, MAOS_ECONFLICT, NULL, 0, 0), "append_batch array");
    reply_file("valid-append-batch-array", &e, 1);

    /* pushes */
    for (int more = 0; more < 2; more++) {
        enc_init(&e);
        must(maos_enc_push_entries_begin(&e.sb, 4, &m), "entries push");
        put_entry(&e.pk, "a", 5);
        put_entry(&e.pk, "b", 6);
        must(maos_enc_push_entries_end(&e.sb, &m, 2, 80, more), "entries push");
        push_file(more ? "push-entries" : "push-entries-last", &e, 1);
    }
    enc_init(&e);
    must(maos_enc_push_events_begin(&e.sb, 2, &m), "events push");
    put_record(&e.sb, 7, "kv.plan-a", 0, "put", S("\x81\xa1n\x05"));
    must(maos_enc_push_events_end(&e.sb, &m, 1, 8), "events push");
    push_file("push-events", &e, 1);
    enc_init(&e);
    must(maos_enc_push_state(&e.pk, MAOS_PUSH_CAUGHT_UP, 2, 8), "caught_up");
    push_file("push-caught-up", &e, 1);
    enc_init(&e);
    must(maos_enc_push_message(&e.pk, 3, S("cancel"), S("\x01")), "message");
    push_file("push-message", &e, 1);

    /* well-formed, without a promised field, or broken */
    buf b = {0};
#define RAW(name, lit)                                                         \
    do {                                                                       \
        put(&b, lit, sizeof(lit) - 1);                                         \
        write_file("reply", name, &b);                                         \
        buf_free(&b);                                                          \
    } while (0)
    RAW("incomplete-put-no-created-revision", "\x83\xa3rid\x01\xa2ok\xc3\xa8revision\x05");
    RAW("incomplete-get-entry-no-updated",
        "\x83\xa3rid\x01\xa2ok\xc3\xa5" "entry\x87\xa5table\xa1t\xa3key\xa1k\xa8revision"
        "\x01\xb0" "created_revision\x01\xa7" "created\x01\xa4" "data\x80\xa5" "bound\xc2");
    RAW("incomplete-list-no-revision",
        "\x84\xa3rid\x01\xa2ok\xc3\xa7" "entries\x90\xa4next\xc0");
    RAW("incomplete-list-next-uint",
        "\x85\xa3rid\x01\xa2ok\xc3\xa7" "entries\x90\xa4next\x05\xa8revision\x01");
    RAW("incomplete-txn-put-no-revision",
        "\x83\xa3rid\x01\xa2ok\xc3\xa7results\x91\x81\xb0" "created_revision\x01");
    RAW("bad-entry-data-array",
        "\x83\xa3rid\x01\xa2ok\xc3\xa5" "entry\x88\xa5table\xa1t\xa3key\xa1k\xa8revision"
        "\x01\xb0" "created_revision\x01\xa7" "created\x01\xa7updated\x01\xa4" "data\x90"
        "\xa5" "bound\xc2");
    RAW("bad-entry-not-map", "\x83\xa3rid\x01\xa2ok\xc3\xa5" "entry\x90");
    RAW("bad-push-entries-no-more",
        "\x84\xa4push\xa7" "entries\xa3sub\x01\xa7" "entries\x90\xa8revision\x01");
    RAW("bad-push-entries-array32-4g",
        "\x85\xa4push\xa7" "entries\xa3sub\x01\xa7" "entries\xdd\xff\xff\xff\xff"
        "\xa8revision\x01\xa4more\xc2");
    RAW("bad-count-over-uint32-with-ids",
        "\x84\xa3rid\x01\xa2ok\xc3\xa5" "count\xcf\x00\x00\x00\x01\x00\x00\x00\x00"
        "\xa3ids\xc4\x00");
#undef RAW
}

/* issue 8: the queue replies, checked against their ops */
static void queue_reply_file(const char *name, enc *e, maos_op op)
{
    buf b = {0};
    maos_reply rep;
    char why[128];
    enc_done(e, &b);
    if (maos_reply_decode(b.p, b.len, &rep) || maos_reply_check(&rep, op, why, sizeof why))
        die(name, "valid queue reply does not decode or check");
    write_file("reply", name, &b);
    buf_free(&b);
}

static void put_task(msgpack_packer *pk, unsigned i, const char *state)
{
    static const char hist[16] = {0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 12};
    maos_task t = {.queue = S("jobs"), .state = S(state), .attempt = 1, .max_attempts = 5,
                   .priority = -3, .data = S("\xa5hello"), .meta = S("\x80"),
                   .enqueued = 1700000000000000ll, .dedupe_key = S("d"),
                   .last_error = S(i % 2 ? "boom" : ""), .token = 12,
                   .lease_until = 1700000030000000ll, .n_history = 2, .history_be = hist};
    make_id(t.id, i);
    must(maos_enc_task(pk, &t), "task");
}

static void queue_replies(void)
{
    enc e;
    uint8_t ids[32];
    make_id(ids, 1);
    make_id(ids + 16, 2);
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 1, 3) || msgpack_pack_str(&e.pk, 8) ||
             msgpack_pack_str_body(&e.pk, "task_ids", 8) || msgpack_pack_bin(&e.pk, 32) ||
             msgpack_pack_bin_body(&e.pk, ids, 32) || msgpack_pack_str(&e.pk, 10) ||
             msgpack_pack_str_body(&e.pk, "duplicates", 10) || msgpack_pack_array(&e.pk, 2) ||
             msgpack_pack_false(&e.pk) || msgpack_pack_true(&e.pk) ||
             msgpack_pack_str(&e.pk, 8) || msgpack_pack_str_body(&e.pk, "revision", 8) ||
             msgpack_pack_uint64(&e.pk, 99),
         "enqueue");
    queue_reply_file("valid-queue-enqueue", &e, MAOS_OP_ENQUEUE);
    for (int n = 0; n < 3; n += 2) {
        enc_init(&e);
        must(maos_enc_reply_head(&e.pk, 2, 1) || msgpack_pack_str(&e.pk, 5) ||
                 msgpack_pack_str_body(&e.pk, "tasks", 5) || msgpack_pack_array(&e.pk, n),
             "claim");
        for (int i = 0; i < n; i++)
            put_task(&e.pk, (unsigned)i, "leased");
        queue_reply_file(n ? "valid-queue-claim" : "valid-queue-claim-empty", &e,
                         MAOS_OP_CLAIM);
    }
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 3, 1) || msgpack_pack_str(&e.pk, 4) ||
             msgpack_pack_str_body(&e.pk, "task", 4),
         "task");
    put_task(&e.pk, 3, "dead");
    queue_reply_file("valid-queue-task", &e, MAOS_OP_TASK);
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 4, 2) || msgpack_pack_str(&e.pk, 8) ||
             msgpack_pack_str_body(&e.pk, "revision", 8) || msgpack_pack_uint64(&e.pk, 7) ||
             msgpack_pack_str(&e.pk, 5) || msgpack_pack_str_body(&e.pk, "state", 5) ||
             msgpack_pack_str(&e.pk, 4) || msgpack_pack_str_body(&e.pk, "dead", 4),
         "nack");
    queue_reply_file("valid-queue-nack", &e, MAOS_OP_NACK);
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 5, 1) || msgpack_pack_str(&e.pk, 11) ||
             msgpack_pack_str_body(&e.pk, "lease_until", 11) ||
             msgpack_pack_int64(&e.pk, 1700000060000000ll),
         "extend");
    queue_reply_file("valid-queue-extend", &e, MAOS_OP_EXTEND);
    maos_queue_info qi = {.queue = S("jobs"), .ready = 3, .leased = 1, .done = 5000000000ull,
                          .waiting = 2, .oldest_ready = 1700000000000000ll};
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 6, 1) || msgpack_pack_str(&e.pk, 6) ||
             msgpack_pack_str_body(&e.pk, "queues", 6) || msgpack_pack_array(&e.pk, 1) ||
             maos_enc_queue_info(&e.pk, &qi),
         "queue_stats");
    queue_reply_file("valid-queue-stats", &e, MAOS_OP_QUEUE_STATS);
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 7, 2) || msgpack_pack_str(&e.pk, 5) ||
             msgpack_pack_str_body(&e.pk, "tasks", 5) || msgpack_pack_array(&e.pk, 1),
         "dead_list");
    put_task(&e.pk, 7, "dead");
    must(msgpack_pack_str(&e.pk, 4) || msgpack_pack_str_body(&e.pk, "next", 4) ||
             msgpack_pack_bin(&e.pk, 16) || msgpack_pack_bin_body(&e.pk, ids, 16),
         "dead_list next");
    queue_reply_file("valid-queue-dead-list", &e, MAOS_OP_DEAD_LIST);
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 8, 2) || msgpack_pack_str(&e.pk, 5) ||
             msgpack_pack_str_body(&e.pk, "count", 5) || msgpack_pack_uint32(&e.pk, 1000) ||
             msgpack_pack_str(&e.pk, 4) || msgpack_pack_str_body(&e.pk, "more", 4) ||
             msgpack_pack_true(&e.pk),
         "dead_purge");
    queue_reply_file("valid-queue-dead-purge", &e, MAOS_OP_DEAD_PURGE);
    /* a txn's queue results */
    maos_txn_result r[4] = {
        {.kind = MAOS_ITEM_ENQUEUE, .revision = 10, .task_ids = {(const char *)ids, 16},
         .n_duplicates = 1, .duplicates = S("\x91\xc2")},
        {.kind = MAOS_ITEM_ACK, .revision = 11},
        {.kind = MAOS_ITEM_NACK, .revision = 12, .state = S("ready")},
        {.kind = MAOS_ITEM_EXTEND, .lease_until = 1700000000000000ll},
    };
    enc_init(&e);
    must(maos_enc_reply_txn_begin(&e.pk, 9, 4), "txn");
    for (int i = 0; i < 4; i++)
        must(maos_enc_txn_result(&e.pk, &r[i]), "txn result");
    queue_reply_file("valid-queue-txn", &e, MAOS_OP_TXN);
    /* hostile: a task without its history, ids not a multiple of 16 */
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 10, 1) || msgpack_pack_str(&e.pk, 4) ||
             msgpack_pack_str_body(&e.pk, "task", 4) || msgpack_pack_map(&e.pk, 1) ||
             msgpack_pack_str(&e.pk, 2) || msgpack_pack_str_body(&e.pk, "id", 2) ||
             msgpack_pack_bin(&e.pk, 16) || msgpack_pack_bin_body(&e.pk, ids, 16),
         "bad task");
    reply_file("bad-queue-task-partial", &e, 0);
    enc_init(&e);
    must(maos_enc_reply_head(&e.pk, 11, 3) || msgpack_pack_str(&e.pk, 8) ||
             msgpack_pack_str_body(&e.pk, "task_ids", 8) || msgpack_pack_bin(&e.pk, 20) ||
             msgpack_pack_bin_body(&e.pk, ids, 20) || msgpack_pack_str(&e.pk, 10) ||
             msgpack_pack_str_body(&e.pk, "duplicates", 10) || msgpack_pack_array(&e.pk, 1) ||
             msgpack_pack_false(&e.pk) || msgpack_pack_str(&e.pk, 8) ||
             msgpack_pack_str_body(&e.pk, "revision", 8) || msgpack_pack_uint64(&e.pk, 1),
         "bad enqueue");
    reply_file("bad-queue-enqueue-ids", &e, 0);
}

static void reply_corpus(void)
{
    enc e;
    uint8_t ids[3 * 16];
    for (int i = 0; i < 3; i++)
        make_id(ids + 16 * i, (unsigned)i);

    enc_init(&e);
    must(maos_enc_reply_hello(&e.pk, 1, MAOS_PROTOCOL_VERSION, "maosd 0.1.0",
                              MAOS_DEFAULT_MAX_FRAME), "hello");
    reply_file("valid-hello", &e, 1);
    enc_init(&e);
    must(maos_enc_reply_ok(&e.pk, 2), "ok");
    reply_file("valid-ok", &e, 1);

    maos_append_result res[3] = {
        {S("orders-1"), 5, 101, 2, 0, {(const char *)ids, 32}},
        {S("payments-1"), 0, 103, 1, 0, {(const char *)ids + 32, 16}},
        {S("audit"), 17, 104, 3, 1, {(const char *)ids, 48}},
    };
    enc_init(&e);
    must(maos_enc_reply_append(&e.pk, 3, 0, res, 1), "append");
    reply_file("valid-append", &e, 1);
    enc_init(&e);
    must(maos_enc_reply_append(&e.pk, 3, 0, res + 2, 1), "append");
    reply_file("valid-append-duplicate", &e, 1);
    enc_init(&e);
    must(maos_enc_reply_append(&e.pk, 4, 1, res, 3), "txn");
    reply_file("valid-txn", &e, 1);

    enc_init(&e);
    must(maos_enc_error(&e.pk, 5, MAOS_EBAD_REQUEST, "events must be an array", 0, 0, -1),
         "error");
    reply_file("valid-error", &e, 1);
    enc_init(&e);
    must(maos_enc_error(&e.pk, 6, MAOS_EWRONG_EXPECTED_VERSION, NULL, 1, 4, 1), "error");
    reply_file("valid-error-wrong-version", &e, 1);
    enc_init(&e);
    must(maos_enc_error(&e.pk, 7, MAOS_EWRONG_EXPECTED_VERSION, "no stream", 1, -1, -1),
         "error");
    reply_file("valid-error-no-stream", &e, 1);

    maos_stats st;
    memset(&st, 0, sizeof st);
    uint64_t v = 1;
#define SET_(name) st.name = v++ * 1000;
    MAOS_STATS_MAP(SET_)
#undef SET_
    st.server = S("maosd 0.1.0");
    st.state = S("ok");
    st.durability = S("sync");
    st.head_hash = (maos_slice){"0123456789abcdef0123456789abcdef", 32};
    enc_init(&e);
    must(maos_enc_reply_stats(&e.pk, 8, &st), "stats");
    reply_file("valid-stats", &e, 1);

    list_reply("valid-read", "events", 5, MAOS_NEXT_UINT, 1, MAOS_FORM_MAP);
    list_reply("valid-read-end", "events", 2, MAOS_NEXT_NONE, 1, MAOS_FORM_MAP);
    list_reply("valid-read-empty", "events", 0, MAOS_NEXT_NONE, 1, MAOS_FORM_MAP);
    list_reply("valid-read-array", "events", 5, MAOS_NEXT_UINT, 1, MAOS_FORM_ARRAY);
    list_reply("valid-streams", "streams", 4, MAOS_NEXT_STR, 1, MAOS_FORM_MAP);

    /* hostile replies */
    buf b = {0};
#define RAW(name, lit)                                                         \
    do {                                                                       \
        put(&b, lit, sizeof(lit) - 1);                                         \
        write_file("reply", name, &b);                                         \
        buf_free(&b);                                                          \
    } while (0)
    RAW("bad-not-a-map", "\x92\x01\xc3");
    RAW("bad-missing-ok", "\x81\xa3rid\x01");
    RAW("bad-missing-rid", "\x81\xa2ok\xc3");
    RAW("bad-trailing", "\x82\xa3rid\x01\xa2ok\xc3\xc0");
    RAW("bad-truncated", "\x83\xa3rid\x01\xa2ok\xc3\xa4" "code");
    RAW("bad-unknown-code", "\x84\xa3rid\x01\xa2ok\xc2\xa4" "code\xa4" "NOPE\xa7message\xa1x");
    RAW("bad-ids-count", "\x84\xa3rid\x01\xa2ok\xc3\xa5" "count\x02\xa3ids\xc4\x10"
        "0123456789abcdef");
    RAW("bad-events-array32-4g",
        "\x83\xa3rid\x01\xa2ok\xc3\xa6" "events\xdd\xff\xff\xff\xff\x80\x80");
    RAW("bad-events-map32-4g",
        "\x83\xa3rid\x01\xa2ok\xc3\xa6" "events\x91\xdf\xff\xff\xff\xff\x80");
    RAW("bad-events-not-records",
        "\x84\xa3rid\x01\xa2ok\xc3\xa6" "events\x93\x01\x80\xc0\xa4next\xc0");
    RAW("bad-reserved-c1", "\x82\xa3rid\x01\xa2ok\xc1");
    /* well-formed, but without a field the request's reply promises
     * (maos_reply_check, issue 15) */
    RAW("incomplete-append-no-first-version",
        "\x87\xa3rid\x01\xa2ok\xc3\xa6stream\xa1" "a\xae" "first_position\x01"
        "\xa5" "count\x00\xa9" "duplicate\xc2\xa3ids\xc4\x00");
    RAW("incomplete-txn-result-no-ids",
        "\x83\xa3rid\x01\xa2ok\xc3\xa7results\x91\x85\xa6stream\xa1" "a\xad"
        "first_version\x00\xae" "first_position\x01\xa5" "count\x00\xa9" "duplicate\xc2");
    RAW("incomplete-streams-info-no-head",
        "\x84\xa3rid\x01\xa2ok\xc3\xa7streams\x91\x83\xa6stream\xa1" "a\xa5"
        "count\x01\xad" "last_position\x01\xa4next\xc0");
    RAW("incomplete-read-next-str",
        "\x84\xa3rid\x01\xa2ok\xc3\xa6" "events\x90\xa4next\xa1x");
    RAW("incomplete-error-no-message",
        "\x83\xa3rid\x01\xa2ok\xc2\xa4" "code\xa9NOT_FOUND");
    {
        /* a record list whose count says more than there is */
        enc_init(&e);
        maos_list_mark m;
        must(maos_enc_list_begin(&e.sb, 9, "events", &m), "list_begin");
        put_record(&e.sb, 1, "orders-1", 0, "T", S("\xc0"));
        must(maos_enc_list_end(&e.sb, &m, 1000, MAOS_NEXT_NONE, 0, S("")), "list_end");
        reply_file("bad-list-count-1000", &e, 0);
        /* records with a key missing, and with a short id */
        enc_init(&e);
        must(maos_enc_list_begin(&e.sb, 9, "events", &m), "list_begin");
        put_record(&e.sb, 1, "orders-1", 0, "T", S("\xc0"));
        msgpack_pack_map(&e.pk, 2);
        msgpack_pack_str_with_body(&e.pk, "position", 8);
        msgpack_pack_uint64(&e.pk, 2);
        msgpack_pack_str_with_body(&e.pk, "id", 2);
        msgpack_pack_bin_with_body(&e.pk, "short", 5);
        must(maos_enc_list_end(&e.sb, &m, 2, MAOS_NEXT_UINT, 3, S("")), "list_end");
        reply_file("bad-record-missing-keys", &e, 1);
        /* a record whose data nests deeper than any limit */
        buf d = {0};
        for (int i = 0; i < 500; i++)
            put_bytes(&d, 1, 0x91);
        put_bytes(&d, 1, 0xc0);
        enc_init(&e);
        must(maos_enc_list_begin(&e.sb, 9, "events", &m), "list_begin");
        put_record(&e.sb, 1, "deep-1", 0, "Deep", (maos_slice){d.p, (uint32_t)d.len});
        must(maos_enc_list_end(&e.sb, &m, 1, MAOS_NEXT_NONE, 0, S("")), "list_end");
        reply_file("valid-record-deep-data", &e, 1);
        buf_free(&d);
    }
    for (int k = 0; k < 3; k++) {
        char nm[32];
        uint32_t n = 8 + rnd() % 120;
        put_bytes(&b, 1, 0x80 | (int)(rnd() % 16));
        for (uint32_t i = 0; i < n; i++)
            put_bytes(&b, 1, (int)(rnd() & 0xff));
        snprintf(nm, sizeof nm, "noise-%d", k);
        write_file("reply", nm, &b);
        buf_free(&b);
    }
#undef RAW
    table_replies();
    queue_replies();
}

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path, strerror(errno));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (writes DIR/frame and DIR/reply)\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    char path[4096];
    mkdir_p(out_dir);
    snprintf(path, sizeof path, "%s/frame", out_dir);
    mkdir_p(path);
    snprintf(path, sizeof path, "%s/reply", out_dir);
    mkdir_p(path);
    frame_corpus();
    reply_corpus();
    printf("gen_corpus: wrote %d files under %s\n", n_files, out_dir);
    return 0;
}
